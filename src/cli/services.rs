//! The long-running roles: `start-runner` (and, as they land, the listener and the RPC server).

use std::time::Duration;

use crate::error::Result;
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
pub fn runner_config(global: &GlobalOptions, args: &StartRunnerArgs) -> Result<RunnerConfig> {
    let file = global.file_config()?;
    let store = global.store_config()?;
    let mut c = RunnerConfig {
        period: Duration::from_secs_f64(args.period.max(0.0)),
        task_types: args.task_types.clone(),
        task_type_patterns: args.task_type_patterns.clone(),
        with_priority: args.with_priority && !args.without_priority,
        naming: file.celery.naming.clone(),
        broker_db: runner::broker_db(&store.url, file.celery.broker_url.as_deref())?,
        ..RunnerConfig::default()
    };
    c.naming.db = c
        .broker_db
        .unwrap_or_else(|| crate::store::url_db(&store.url));
    if let Some(p) = file.celery.priority_queue_prefix {
        c.priority_queue_prefix = p;
    }
    Ok(c)
}

pub async fn start_runner(global: &GlobalOptions, args: StartRunnerArgs) -> Result<()> {
    let config = runner_config(global, &args)?;
    let store = global.store().await?;
    Runner::new(store, config)
        .run(runner::shutdown_signal())
        .await
}
