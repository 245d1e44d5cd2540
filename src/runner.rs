//! The runner: moves due tasks onto the Celery broker, type by type, never over a type's
//! `max_queue_length`. Each step is one atomic script (`lua/dispatch.lua`), so several runners
//! may run at once, and a lost connection can neither lose a task nor send one twice.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::celery::BrokerNaming;
use crate::error::Result;
use crate::store::{BrokerLink, DispatchTarget, Store, TypeInfo};

/// Tasks per dispatch call: bounds how long one call holds Redis (a few milliseconds).
pub const MAX_TASKS_PER_CALL: usize = 1000;

/// What a runner does.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Pause between passes; zero for a single pass.
    pub period: Duration,
    /// Only these task types (all if empty).
    pub task_types: Vec<String>,
    /// Only task types whose name starts with one of these (all if empty).
    pub task_type_patterns: Vec<String>,
    /// Send the tasks that have a priority (to `<priority_queue_prefix>:<backend_name>`)
    /// instead of those without.
    pub with_priority: bool,
    /// How the workers' kombu names keys.
    pub naming: BrokerNaming,
    /// Where the broker is, seen from the store.
    pub broker: BrokerLink,
    /// Queue-name prefix of priority tasks (the original's `save_code_now`).
    pub priority_queue_prefix: String,
    /// `<name>@<host>` written in the messages.
    pub origin: String,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            period: Duration::ZERO,
            task_types: Vec::new(),
            task_type_patterns: Vec::new(),
            with_priority: false,
            naming: BrokerNaming::default(),
            broker: BrokerLink::default(),
            priority_queue_prefix: "save_code_now".into(),
            origin: format!("swh-scheduler@{}", hostname()),
        }
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// A runner over one store.
pub struct Runner {
    store: Store,
    config: RunnerConfig,
}

impl Runner {
    pub fn new(store: Store, config: RunnerConfig) -> Self {
        Runner { store, config }
    }

    /// The queue a type's tasks go to.
    pub fn queue_of(&self, info: &TypeInfo) -> String {
        if self.config.with_priority {
            format!(
                "{}:{}",
                self.config.priority_queue_prefix, info.task_type.backend_name
            )
        } else {
            info.task_type.backend_name.clone()
        }
    }

    /// The types this runner serves; unknown explicitly named types are an error.
    pub async fn task_types(&self) -> Result<Vec<Arc<TypeInfo>>> {
        let mut out = Vec::new();
        if self.config.task_types.is_empty() {
            for t in self.store.get_task_types().await? {
                out.extend(self.store.type_info(&t.task_type).await?);
            }
        } else {
            for name in &self.config.task_types {
                out.push(self.store.require_type(name).await?);
            }
        }
        let patterns = &self.config.task_type_patterns;
        out.retain(|t| {
            patterns.is_empty()
                || patterns
                    .iter()
                    .any(|p| t.task_type.task_type.starts_with(p))
        });
        Ok(out)
    }

    /// One pass: for each type, sends due tasks until its queue is full or none is due.
    /// Returns the number of tasks sent per type.
    pub async fn pass(&self) -> Result<Vec<(String, usize)>> {
        let mut report = Vec::new();
        for info in self.task_types().await? {
            let queue = self.queue_of(&info);
            let queue_keys = self.config.naming.queue_keys(&queue);
            let mut target = DispatchTarget {
                priority: self.config.with_priority,
                queue: &queue,
                queue_keys: &queue_keys,
                origin: &self.config.origin,
                max_tasks: MAX_TASKS_PER_CALL,
                broker: &self.config.broker,
                threshold: true,
            };
            // with the broker on another server, what a dispatch wrote to the outbox is moved
            // on at once; the first forward takes over what a runner that died left behind
            let outbox = self.store.outbox(&info.task_type.task_type, &queue);
            let forward = || {
                self.store
                    .forward_outbox(&self.config.broker, &outbox, &queue_keys[0])
            };
            forward().await?;
            let mut sent = 0;
            loop {
                let d = self.store.dispatch(&info, &target).await?;
                sent += d.sent;
                forward().await?;
                if d.sent == 0 {
                    break;
                }
                target.threshold = false;
            }
            if sent > 0 {
                info!(task_type = %info.task_type.task_type, queue = %queue, "Scheduled {sent} tasks");
            }
            report.push((info.task_type.task_type.clone(), sent));
        }
        Ok(report)
    }

    /// Runs passes every `period` until `shutdown` resolves (or once, with no period).
    /// Errors (Redis down, connection lost) are logged and retried with backoff.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        // Unknown types are a configuration error: say so at once.
        for name in &self.config.task_types {
            self.store.require_type(name).await?;
        }
        tokio::pin!(shutdown);
        let mut backoff = Backoff::new();
        loop {
            let pause = tokio::select! {
                r = self.pass() => match r {
                    Ok(_) => {
                        backoff.reset();
                        if self.config.period.is_zero() {
                            return Ok(());
                        }
                        self.config.period
                    }
                    Err(e) if self.config.period.is_zero() => return Err(e),
                    Err(e) => {
                        let wait = backoff.next_delay();
                        warn!("runner pass failed, retrying in {wait:?}: {e}");
                        wait
                    }
                },
                _ = &mut shutdown => return Ok(()),
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = &mut shutdown => return Ok(()),
            }
        }
    }
}

/// Exponential backoff for reconnections: 0.5 s doubling up to 30 s.
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub fn new() -> Self {
        Backoff { attempt: 0 }
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = Duration::from_millis(500u64.saturating_mul(1 << self.attempt.min(6)));
        self.attempt += 1;
        d.min(Duration::from_secs(30))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    info!("shutting down");
}
