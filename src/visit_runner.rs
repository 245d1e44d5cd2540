//! The recurrent visit runner (`schedule-recurrent`, the original's since 0.19): keeps each
//! loader's Celery queue full with visits of listed origins, chosen by a weighted mix of the
//! `grab_next_visits` policies and sent straight to Celery, with no task rows. For each visit
//! type T that has a task type `load-T`, one pass is one script (`lua/send_visits.lua`), so
//! any number of runners can run at once without sending an origin twice.

use std::collections::HashMap;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::celery::BrokerNaming;
use crate::error::Result;
use crate::model::VisitPolicy;
use crate::store::{BrokerLink, Store, VisitTarget};

/// The default mix, the original's (v0.20 on) with `oldest_scheduled_first` in the place of
/// `origins_without_last_update`, a later policy: 40% to origins changed since their last
/// visit, 40% to never visited ones, 20% to those scheduled longest ago.
pub const DEFAULT_POLICIES: [(VisitPolicy, u32); 3] = [
    (VisitPolicy::AlreadyVisitedOrderByLag, 40),
    (VisitPolicy::NeverVisitedOldestUpdateFirst, 40),
    (VisitPolicy::OldestScheduledFirst, 20),
];

/// How the visit runner runs.
#[derive(Clone, Debug)]
pub struct VisitRunnerConfig {
    /// Pause between passes; zero for a single pass.
    pub period: Duration,
    /// Only these visit types (all that have listings and a `load-<type>` task type if empty).
    pub visit_types: Vec<String>,
    /// Policies and weights by visit type; `default` for the others.
    pub policies: HashMap<String, Vec<(VisitPolicy, u32)>>,
    /// An origin sent less than this ago, with no visit result since, is not sent again.
    pub scheduled_cooldown: chrono::Duration,
    /// Later versions' cooldowns (none by default): after a failed visit, after a not-found
    /// one, and after any sending whatever happened since.
    pub failed_cooldown: Option<chrono::Duration>,
    pub not_found_cooldown: Option<chrono::Duration>,
    pub absolute_cooldown: Option<chrono::Duration>,
    pub naming: BrokerNaming,
    /// Where the broker is, seen from the store.
    pub broker: BrokerLink,
    /// `<name>@<host>` written in the messages.
    pub origin: String,
}

impl Default for VisitRunnerConfig {
    fn default() -> Self {
        VisitRunnerConfig {
            period: Duration::ZERO,
            visit_types: Vec::new(),
            policies: HashMap::new(),
            scheduled_cooldown: chrono::Duration::days(7),
            failed_cooldown: None,
            not_found_cooldown: None,
            absolute_cooldown: None,
            naming: BrokerNaming::default(),
            broker: BrokerLink::default(),
            origin: format!("swh-scheduler@{}", crate::runner::hostname()),
        }
    }
}

/// A recurrent visit runner over one store.
pub struct VisitRunner {
    store: Store,
    config: VisitRunnerConfig,
}

impl VisitRunner {
    pub fn new(store: Store, config: VisitRunnerConfig) -> Self {
        VisitRunner { store, config }
    }

    fn policies(&self, visit_type: &str) -> &[(VisitPolicy, u32)] {
        self.config
            .policies
            .get(visit_type)
            .or_else(|| self.config.policies.get("default"))
            .map_or(&DEFAULT_POLICIES[..], Vec::as_slice)
    }

    /// One pass over the visit types; returns the visits sent per visit type. A visit type
    /// that fails (a queue key of the wrong type, say) is logged and the others are served;
    /// the first error is returned after them.
    pub async fn pass(&self) -> Result<Vec<(String, usize)>> {
        let types = if self.config.visit_types.is_empty() {
            self.store.visit_types().await?
        } else {
            self.config.visit_types.clone()
        };
        let listers = self.store.visit_lister_fields().await?;
        let mut out = Vec::with_capacity(types.len());
        let mut first_error = None;
        for vt in types {
            let Some(loader) = self.store.type_info(&format!("load-{vt}")).await? else {
                // asked for by name, its absence is worth a warning
                if self.config.visit_types.is_empty() {
                    debug!("no task type load-{vt}: its origins are not sent");
                } else {
                    warn!("no task type load-{vt}: its origins are not sent");
                }
                continue;
            };
            let queue = loader.task_type.backend_name.clone();
            let keys = self.config.naming.queue_keys(&queue);
            let outbox = self.store.visit_outbox(&vt, &queue);
            let forward = || {
                self.store
                    .forward_outbox(&self.config.broker, &outbox, &keys[0])
            };
            if let Err(e) = forward().await {
                warn!(visit_type = %vt, queue = %queue, "could not forward the outbox: {e}");
                first_error.get_or_insert(e);
                continue;
            }
            let sent = match self
                .store
                .send_visits(&VisitTarget {
                    now: None,
                    visit_type_index: None,
                    visit_type: &vt,
                    task_name: &loader.task_type.backend_name,
                    queue_keys: &keys,
                    queue: &queue,
                    max_queue_length: loader.task_type.max_queue_length,
                    origin: &self.config.origin,
                    broker: &self.config.broker,
                    policies: self.policies(&vt),
                    listers: &listers,
                    scheduled_cooldown: self.config.scheduled_cooldown,
                    failed_cooldown: self.config.failed_cooldown,
                    not_found_cooldown: self.config.not_found_cooldown,
                    absolute_cooldown: self.config.absolute_cooldown,
                })
                .await
            {
                Ok(sent) => sent,
                Err(e) => {
                    warn!(visit_type = %vt, queue = %queue, "could not send visits: {e}");
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            if let Err(e) = forward().await {
                warn!(visit_type = %vt, queue = %queue, "could not forward the outbox: {e}");
                first_error.get_or_insert(e);
            }
            if sent.sent > 0 {
                let mix: Vec<String> = self
                    .policies(&vt)
                    .iter()
                    .zip(&sent.by_policy)
                    .map(|((p, _), n)| format!("{} {n}", p.as_str()))
                    .collect();
                info!(
                    visit_type = %vt,
                    queue = %queue,
                    "Sent {} visits ({})",
                    sent.sent,
                    mix.join(", ")
                );
            }
            out.push((vt, sent.sent));
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Passes every `period` until `shutdown` resolves (one pass if the period is zero).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.pass().await {
                if self.config.period.is_zero() {
                    return Err(e);
                }
                warn!("visit runner pass failed: {e}");
            }
            if self.config.period.is_zero() {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.period) => {}
                _ = &mut shutdown => return Ok(()),
            }
        }
    }
}
