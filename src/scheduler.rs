//! The scheduler API on either side of the wire: Redis directly, or an RPC server. The command
//! line and the benchmark use this, so every command works both ways.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::Result;
use crate::model::{
    NewTask, NewTaskRun, Policy, RunStatus, Task, TaskRun, TaskSearch, TaskStatus, TaskType,
};
use crate::rpc::RpcClient;
use crate::store::Store;

/// Where the scheduler's state is reached.
#[derive(Clone)]
pub enum Scheduler {
    Redis(Store),
    Remote(RpcClient),
}

/// Forwards a method to whichever side this is.
macro_rules! both_ways {
    ($( $(#[$m:meta])* fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )+) => {
        impl Scheduler {
            $(
                $(#[$m])*
                pub async fn $name(&self $(, $arg: $ty)*) -> Result<$ret> {
                    match self {
                        Scheduler::Redis(s) => s.$name($($arg),*).await,
                        Scheduler::Remote(c) => c.$name($($arg),*).await,
                    }
                }
            )+
        }
    };
}

both_ways! {
    fn create_task_type(&self, t: &TaskType) -> ();
    fn get_task_type(&self, name: &str) -> Option<TaskType>;
    fn get_task_types(&self) -> Vec<TaskType>;
    fn create_tasks(&self, tasks: &[NewTask], policy: Policy) -> Vec<Task>;
    fn set_status_tasks(&self, ids: &[i64], status: TaskStatus, next_run: Option<DateTime<Utc>>, except_completed_tasks: bool) -> ();
    fn disable_tasks(&self, ids: &[i64]) -> ();
    fn search_tasks(&self, search: &TaskSearch) -> Vec<Task>;
    fn get_tasks(&self, ids: &[i64]) -> Vec<Task>;
    fn peek_ready_tasks(&self, task_type: &str, timestamp: Option<DateTime<Utc>>, num_tasks: Option<usize>) -> Vec<Task>;
    fn grab_ready_tasks(&self, task_type: &str, timestamp: Option<DateTime<Utc>>, num_tasks: Option<usize>) -> Vec<Task>;
    fn peek_ready_priority_tasks(&self, task_type: &str, timestamp: Option<DateTime<Utc>>, num_tasks: Option<usize>) -> Vec<Task>;
    fn grab_ready_priority_tasks(&self, task_type: &str, timestamp: Option<DateTime<Utc>>, num_tasks: Option<usize>) -> Vec<Task>;
    fn schedule_task_run(&self, task_id: i64, backend_id: &str, metadata: Option<Map<String, Value>>, timestamp: Option<DateTime<Utc>>) -> TaskRun;
    fn mass_schedule_task_runs(&self, runs: &[NewTaskRun]) -> ();
    fn start_task_run(&self, backend_id: &str, metadata: Option<Map<String, Value>>, timestamp: Option<DateTime<Utc>>) -> Option<TaskRun>;
    fn end_task_run(&self, backend_id: &str, status: RunStatus, metadata: Option<Map<String, Value>>, timestamp: Option<DateTime<Utc>>) -> Option<TaskRun>;
    fn get_task_runs(&self, task_ids: &[i64], limit: Option<usize>) -> Vec<TaskRun>;
}

impl Scheduler {
    /// Where this is, for messages: the Redis URL or the RPC server's.
    pub fn location(&self) -> String {
        match self {
            Scheduler::Redis(s) => s.config().url.clone(),
            Scheduler::Remote(c) => c.url().to_string(),
        }
    }
}
