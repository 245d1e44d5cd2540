//! `swh-scheduler task-type …`

use clap::Subcommand;

use crate::error::Result;
use crate::model::{Interval, TaskType};

use super::GlobalOptions;
use super::format::task_type_entry;

#[derive(Debug, Subcommand)]
pub enum TaskTypeCommand {
    /// List the task types
    List {
        /// Verbose mode
        #[arg(short, long)]
        verbose: bool,
        /// List task types of given type
        #[arg(short = 't', long = "task_type", alias = "task-type")]
        task_type: Vec<String>,
        /// List task types of given backend task name
        #[arg(short = 'n', long = "task_name", alias = "task-name")]
        task_name: Vec<String>,
    },
    /// Create a new task type
    Add {
        /// The task type's name, e.g. load-git
        #[arg(value_name = "TYPE")]
        task_type: String,
        /// The Celery task name (also the queue it is sent to)
        task_name: String,
        description: String,
        /// Default interval, e.g. "90 days", "12:00:00", "P1D"
        #[arg(short = 'i', long, default_value = "90 days")]
        default_interval: Interval,
        /// Minimum interval
        #[arg(long)]
        min_interval: Option<Interval>,
        /// Maximum interval
        #[arg(long)]
        max_interval: Option<Interval>,
        /// Backoff factor
        #[arg(short = 'f', long, default_value_t = 1.0)]
        backoff_factor: f64,
        /// Most messages waiting in the queue [default: none, as the original: the runner then
        /// sends up to 10000 a pass without looking at the queue; 0 also means none]
        #[arg(long)]
        max_queue_length: Option<i64>,
        /// Retries after a failure
        #[arg(long)]
        num_retries: Option<i64>,
        /// Delay before a retry [default: 1 hour]
        #[arg(long)]
        retry_delay: Option<Interval>,
    },
}

pub async fn run(global: &GlobalOptions, cmd: TaskTypeCommand) -> Result<()> {
    let sched = global.scheduler().await?;
    match cmd {
        TaskTypeCommand::List {
            verbose,
            task_type,
            task_name,
        } => {
            let mut types = sched.get_task_types().await?;
            types.sort_by(|a, b| a.task_type.cmp(&b.task_type));
            println!("Known task types:");
            for t in types {
                if (!task_type.is_empty() && !task_type.contains(&t.task_type))
                    || (!task_name.is_empty() && !task_name.contains(&t.backend_name))
                {
                    continue;
                }
                println!("{}", task_type_entry(&t, verbose));
            }
        }
        TaskTypeCommand::Add {
            task_type,
            task_name,
            description,
            default_interval,
            min_interval,
            max_interval,
            backoff_factor,
            max_queue_length,
            num_retries,
            retry_delay,
        } => {
            let t = TaskType {
                task_type,
                description,
                backend_name: task_name,
                default_interval: Some(default_interval),
                min_interval,
                max_interval,
                backoff_factor: Some(backoff_factor),
                max_queue_length: max_queue_length.filter(|&m| m != 0),
                num_retries,
                retry_delay,
            };
            sched.create_task_type(&t).await?;
            println!("OK");
        }
    }
    Ok(())
}
