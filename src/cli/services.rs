//! The long-running roles: `start-runner`, `start-listener` (and the RPC server).

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::listener::{Listener, ListenerConfig};
use crate::model::Interval;
use crate::rpc::RpcConfig;
use crate::rpc::metrics::MetricsConfig;
use crate::runner::{self, Runner, RunnerConfig};

use super::GlobalOptions;

#[derive(Debug, clap::Args)]
pub struct StartRunnerArgs {
    /// Period (in s) at which pending tasks are checked and sent; 0 for a single pass
    #[arg(short, long, default_value_t = 0.0)]
    pub period: f64,
    /// Only this task type (repeatable)
    #[arg(long = "task-type")]
    pub task_types: Vec<String>,
    /// Only task types whose name starts with this (repeatable)
    #[arg(long = "task-type-pattern")]
    pub task_type_patterns: Vec<String>,
    /// Send the tasks that have a priority, to their save_code_now: queues
    #[arg(long, overrides_with = "without_priority")]
    pub with_priority: bool,
    /// Send the tasks without a priority (the default)
    #[arg(long)]
    pub without_priority: bool,
}

/// The runner settings from the options and the configuration file.
pub fn runner_config(
    global: &GlobalOptions,
    store_url: &str,
    args: &StartRunnerArgs,
) -> Result<RunnerConfig> {
    let broker = global.file_config()?.celery.broker(store_url)?;
    let mut c = RunnerConfig {
        period: Duration::from_secs_f64(args.period.max(0.0)),
        task_types: args.task_types.clone(),
        task_type_patterns: args.task_type_patterns.clone(),
        with_priority: args.with_priority && !args.without_priority,
        naming: broker.naming,
        broker: broker.link,
        ..RunnerConfig::default()
    };
    if let Some(p) = broker.priority_queue_prefix {
        c.priority_queue_prefix = p;
    }
    Ok(c)
}

pub async fn start_runner(global: &GlobalOptions, args: StartRunnerArgs) -> Result<()> {
    let store = global.store().await?;
    let config = runner_config(global, &store.config().url, &args)?;
    store.check_broker(&config.broker)?;
    Runner::new(store, config)
        .run(runner::shutdown_signal())
        .await
}

#[derive(Debug, clap::Args)]
pub struct StartListenerArgs {
    /// The workers' Celery result backend on Redis, read after each (re)connection to settle
    /// runs whose events were missed [config: celery.result_backend]
    #[arg(long)]
    pub result_backend: Option<String>,
    /// Mark lost the runs with no news for this long, e.g. "1 day", "12 hours"
    /// [config: listener.lost_after; default: 1 day]
    #[arg(long)]
    pub lost_after: Option<Interval>,
    /// Seconds between lost-run sweeps; 0 disables them [default: 60]
    #[arg(long)]
    pub sweep_every: Option<f64>,
    /// Ask the workers to send task events (Celery's enable_events) on each connection
    #[arg(long)]
    pub enable_events: bool,
}

/// The listener settings from the options and the configuration file.
pub fn listener_config(
    global: &GlobalOptions,
    store_url: &str,
    args: &StartListenerArgs,
) -> Result<ListenerConfig> {
    let file = global.file_config()?;
    let broker = file.celery.broker(store_url)?;
    let mut c = ListenerConfig::new(&broker.url);
    c.naming = broker.naming;
    c.broker = broker.link;
    if let Some(p) = broker.priority_queue_prefix {
        c.priority_queue_prefix = p;
    }
    c.result_backend = args
        .result_backend
        .clone()
        .or(file.celery.result_backend.clone());
    let positive = |field: &str, i: Interval| -> Result<Duration> {
        if i.as_micros() <= 0 {
            return Err(Error::invalid(field, i, "must be positive"));
        }
        Ok(Duration::from_micros(i.as_micros() as u64))
    };
    if let Some(i) = args.lost_after.or(file.listener.lost_after) {
        c.lost_after = positive("lost_after", i)?;
    }
    if let Some(i) = file.listener.lost_scheduled_after {
        c.lost_scheduled_after = Some(positive("lost_scheduled_after", i)?);
    }
    for (t, i) in &file.listener.lost_after_by_type {
        c.lost_after_by_type
            .insert(t.clone(), positive("lost_after_by_type", *i)?);
    }
    if let Some(s) = args.sweep_every.or(file.listener.sweep_every) {
        c.sweep_every = Duration::from_secs_f64(s.max(0.0));
    }
    c.enable_events = args.enable_events || file.listener.enable_events.unwrap_or(false);
    c.visit_rules = crate::model::VisitRules {
        disable_after_failures: file.recurrent_visits.disable_after_failures,
        stop_after_success: file.recurrent_visits.stop_after_success.clone(),
    };
    Ok(c)
}

pub async fn start_listener(global: &GlobalOptions, args: StartListenerArgs) -> Result<()> {
    let store = global.store().await?;
    let config = listener_config(global, &store.config().url, &args)?;
    store.check_broker(&config.broker)?;
    Listener::new(store, config)
        .run(runner::shutdown_signal())
        .await
}

#[derive(Debug, clap::Args)]
pub struct RpcServeArgs {
    /// Host to listen on (0.0.0.0 for every interface: the API has no authentication, so
    /// only on a trusted network)
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on
    #[arg(long, default_value_t = 5008)]
    pub port: u16,
    /// Largest request body accepted, in bytes
    #[arg(long, default_value_t = crate::rpc::server::DEFAULT_MAX_BODY)]
    pub max_body_size: usize,
    /// Accepted for compatibility with the original (log levels come from RUST_LOG)
    #[arg(long, overrides_with = "nodebug")]
    pub debug: bool,
    /// Accepted for compatibility with the original
    #[arg(long)]
    pub nodebug: bool,
}

/// The RPC server settings from the options and the configuration file.
pub fn rpc_config(
    global: &GlobalOptions,
    store_url: &str,
    args: &RpcServeArgs,
) -> Result<RpcConfig> {
    let broker = global.file_config()?.celery.broker(store_url)?;
    let mut metrics = MetricsConfig {
        naming: broker.naming,
        broker: broker.link,
        ..MetricsConfig::default()
    };
    if let Some(p) = broker.priority_queue_prefix {
        metrics.priority_queue_prefix = p;
    }
    let users = Arc::new(crate::rpc::auth::Users::new(
        global.file_config()?.rpc.users.clone(),
    )?);
    let loopback = matches!(args.host.as_str(), "127.0.0.1" | "::1" | "localhost");
    if !users.enabled() && !loopback {
        tracing::warn!(
            "the RPC server listens on {} without authentication: anyone who reaches it can \
             change the scheduler (set rpc.users in the configuration file)",
            args.host
        );
    }
    Ok(RpcConfig {
        host: args.host.clone(),
        port: args.port,
        max_body: args.max_body_size,
        metrics,
        users,
    })
}

pub async fn rpc_serve(global: &GlobalOptions, args: RpcServeArgs) -> Result<()> {
    let store = global.store().await?;
    let config = rpc_config(global, &store.config().url, &args)?;
    crate::rpc::serve(store, config, runner::shutdown_signal()).await
}

#[derive(Debug, clap::Args)]
pub struct ScheduleRecurrentArgs {
    /// Period (in s) between passes; 0 for a single pass
    #[arg(short, long, default_value_t = 0.0)]
    pub period: f64,
    /// Only this visit type (repeatable) [config: recurrent_visits.visit_types]
    #[arg(long = "visit-type")]
    pub visit_types: Vec<String>,
}

/// The visit runner's settings from the options and the configuration file.
pub fn visit_runner_config(
    global: &GlobalOptions,
    store_url: &str,
    args: &ScheduleRecurrentArgs,
) -> Result<crate::visit_runner::VisitRunnerConfig> {
    let file = global.file_config()?;
    let broker = file.celery.broker(store_url)?;
    let section = &file.recurrent_visits;
    let mut policies = std::collections::HashMap::new();
    for (vt, mix) in &section.policies {
        let mix = mix
            .iter()
            .map(|p| Ok((p.policy.parse()?, p.weight)))
            .collect::<Result<Vec<_>>>()?;
        policies.insert(vt.clone(), mix);
    }
    let mut c = crate::visit_runner::VisitRunnerConfig {
        period: Duration::from_secs_f64(args.period.max(0.0)),
        visit_types: if args.visit_types.is_empty() {
            section.visit_types.clone()
        } else {
            args.visit_types.clone()
        },
        policies,
        naming: broker.naming,
        broker: broker.link,
        ..Default::default()
    };
    let duration = |i: Option<crate::model::Interval>| {
        i.map(|i| chrono::Duration::microseconds(i.as_micros()))
    };
    if let Some(d) = duration(section.scheduled_cooldown) {
        c.scheduled_cooldown = d;
    }
    c.failed_cooldown = duration(section.failed_cooldown);
    c.not_found_cooldown = duration(section.not_found_cooldown);
    c.absolute_cooldown = duration(section.absolute_cooldown);
    Ok(c)
}

pub async fn schedule_recurrent(global: &GlobalOptions, args: ScheduleRecurrentArgs) -> Result<()> {
    let store = global.store().await?;
    let config = visit_runner_config(global, &store.config().url, &args)?;
    store.check_broker(&config.broker)?;
    crate::visit_runner::VisitRunner::new(store, config)
        .run(runner::shutdown_signal())
        .await
}
