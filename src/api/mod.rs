//! The scheduler API, declared once: the table below names, for each method of the original's
//! `SchedulerInterface` that this scheduler serves, its RPC path, its keyword arguments with
//! their types and defaults, and its result. From it come the [`SchedulerApi`] trait, the RPC
//! server's routing and argument decoding ([`call`]), the RPC client's implementation, the
//! store's implementation (forwarding to its methods of the same name) and `/site-map`.
//!
//! Adding an endpoint is one table line, one [`Store`] method and its test in the shared API
//! suite (`tests/api.rs`, run against the store and through the RPC server).

mod endpoints;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::Result;
use crate::model::{
    ArchivePage, GrabOptions, ListedOrigin, ListedOriginPage, Lister, NewTask, NewTaskRun,
    OriginVisitStats, Policy, RunStatus, SchedulerMetrics, Task, TaskRun, TaskSearch, TaskStatus,
    TaskType,
};
use crate::rpc::RpcClient;
use crate::rpc::args::{ArgCodec, Args, Flag, Limit, Param, Plain, ResultCodec};
use crate::rpc::codec::Wire;
use crate::rpc::error::{CallError, R};
use crate::rpc::rows::{
    ArchiveBound, GrabKwargs, OneOrMany, PagePosition, PageToken, SearchFilters, SelectRows,
};
use crate::store::Store;
use endpoints::{codec, endpoints};

/// One RPC endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// The path, without the leading slash.
    pub path: &'static str,
    /// The [`SchedulerApi`] method it calls.
    pub method: &'static str,
    /// The method's parameters (the keyword arguments, but for a parameter whose codec reads
    /// several, as `search_tasks`' filters).
    pub params: &'static [&'static str],
    /// The method's doc comment, line by line.
    pub doc: &'static [&'static str],
}

impl Endpoint {
    /// The docstring's summary: its first line.
    pub fn summary(&self) -> &'static str {
        self.doc.first().map_or("", |d| d.trim())
    }
}

type Timestamp = Option<DateTime<Utc>>;
type Metadata = Option<Map<String, Value>>;

endpoints! {
    /// Create a new task type ready for scheduling.
    ///
    /// Does nothing if a type of that name exists.
    "task_type/create" => fn create_task_type(task_type: &TaskType) -> ();
    /// Retrieve the task type with id task_type_name
    "task_type/get" => fn get_task_type(task_type_name: &str) -> Option<TaskType>;
    /// Retrieve all registered task types
    "task_type/get_all" => fn get_task_types() -> Vec<TaskType>;
    /// Create new tasks.
    ///
    /// A task equal to an existing one (same type, arguments and policy, not yet run) is not
    /// created again: the existing one is returned.
    "task/create" => fn create_tasks(tasks: &[NewTask], policy: Policy = Policy::Recurring) -> Vec<Task>;
    /// Set the tasks' status whose ids are listed.
    ///
    /// With `next_run`, also sets their next run; with `except_completed_tasks`, leaves
    /// completed tasks alone.
    "task/set_status" => fn set_status_tasks(
        task_ids: &[i64],
        status: TaskStatus = TaskStatus::Disabled,
        next_run: Timestamp,
        except_completed_tasks: bool [Flag] = false,
    ) -> ();
    /// Disable the tasks whose ids are listed.
    "task/disable" => fn disable_tasks(task_ids: &[i64]) -> ();
    /// Search tasks from selected criterions
    "task/search" => fn search_tasks(search: &TaskSearch [SearchFilters]) -> Vec<Task> [SelectRows];
    /// Retrieve the info of tasks whose ids are listed.
    "task/get" => fn get_tasks(task_ids: &[i64]) -> Vec<Task>;
    /// Fetch the list of tasks (with no priority) to be scheduled.
    "task/peek_ready" => fn peek_ready_tasks(task_type: &str, timestamp: Timestamp, num_tasks: Option<usize>) -> Vec<Task> [SelectRows];
    /// Fetch task ids with no priority, and update their next_run_scheduled field
    "task/grab_ready" => fn grab_ready_tasks(task_type: &str, timestamp: Timestamp, num_tasks: Option<usize>) -> Vec<Task> [SelectRows];
    /// Fetch list of tasks (with any priority) ready to be scheduled.
    "task/peek_ready_with_priority" => fn peek_ready_priority_tasks(task_type: &str, timestamp: Timestamp, num_tasks: Option<usize>) -> Vec<Task> [SelectRows];
    /// Fetch task ids with any priority, and update their next_run_scheduled field
    "task/grab_ready_with_priority" => fn grab_ready_priority_tasks(task_type: &str, timestamp: Timestamp, num_tasks: Option<usize>) -> Vec<Task> [SelectRows];
    /// Mark a given task as scheduled, adding a task_run entry in the database.
    "task_run/schedule_one" => fn schedule_task_run(task_id: i64, backend_id: &str, metadata: Metadata, timestamp: Timestamp) -> TaskRun;
    /// Schedule a bunch of task runs.
    "task_run/schedule" => fn mass_schedule_task_runs(task_runs: &[NewTaskRun]) -> ();
    /// Mark a given task as started, updating the corresponding task_run entry in the database.
    "task_run/start" => fn start_task_run(backend_id: &str, metadata: Metadata, timestamp: Timestamp) -> Option<TaskRun>;
    /// Mark a given task as ended, updating the corresponding task_run entry in the database.
    "task_run/end" ignoring("result") => fn end_task_run(backend_id: &str, status: RunStatus, metadata: Metadata, timestamp: Timestamp) -> Option<TaskRun>;
    /// Compute the tasks to archive within the datetime interval [after_ts, before_ts[.
    "task/filter_for_archive" => fn filter_task_to_archive(
        after_ts: DateTime<Utc> [ArchiveBound],
        before_ts: DateTime<Utc> [ArchiveBound],
        limit: usize = 10,
        page_token: Option<&str> [PageToken],
    ) -> ArchivePage;
    /// Delete archived tasks as much as possible.
    "task/delete_archived" => fn delete_archived_tasks(task_ids: &[(i64, i64)]) -> ();
    /// Search task run for a task id
    "task_run/get" => fn get_task_runs(task_ids: &[i64] [OneOrMany], limit: Option<usize> [Limit]) -> Vec<TaskRun>;
    /// Retrieve information about all listers from the database.
    "listers/get" => fn get_listers() -> Vec<Lister>;
    /// Retrieve information about the given instance of the lister from the database.
    "lister/get" => fn get_lister(name: &str, instance_name: Option<&str>) -> Option<Lister>;
    /// Retrieve information about the given instance of the lister from the database, or create the entry if it did not exist.
    "lister/get_or_create" => fn get_or_create_lister(name: &str, instance_name: Option<&str>) -> Lister;
    /// Update the state for the given lister instance in the database.
    ///
    /// Fails with `StaleData` if the lister was updated since the caller read it.
    "lister/update" => fn update_lister(lister: &Lister) -> Lister;
    /// Record a set of origins that a lister has listed.
    ///
    /// An upsert by (lister_id, url, visit_type); duplicates in one batch are merged, the
    /// last one winning.
    "origins/record" => fn record_listed_origins(listed_origins: &[ListedOrigin]) -> Vec<ListedOrigin>;
    /// Get information on the listed origins matching either the `url` or `lister_id`, or both arguments.
    "origins/get" => fn get_listed_origins(
        lister_id: Option<&str>,
        url: Option<&str>,
        limit: usize = 1000,
        page_token: Option<(String, String)> [PagePosition],
    ) -> ListedOriginPage;
    /// Get at most the `count` next origins that need to be visited with the `visit_type` loader according to the given scheduling `policy`.
    ///
    /// Marks them scheduled, atomically: concurrent callers never get the same origin.
    "origins/grab_next" ignoring("tablesample") => fn grab_next_visits(
        visit_type: &str,
        count: usize,
        policy: &str,
        options: &GrabOptions [GrabKwargs],
    ) -> Vec<ListedOrigin>;
    /// Create a new origin visit stats
    "visit_stats/upsert" => fn origin_visit_stats_upsert(origin_visit_stats: &[OriginVisitStats]) -> ();
    /// Retrieve the stats for an origin with a given visit type
    "visit_stats/get" => fn origin_visit_stats_get(ids: &[(String, String)]) -> Vec<OriginVisitStats>;
    /// Update the performance metrics of this scheduler instance.
    "scheduler_metrics/update" => fn update_metrics(lister_id: Option<&str>, timestamp: Timestamp) -> Vec<SchedulerMetrics>;
    /// Retrieve the performance metrics of this scheduler instance.
    "scheduler_metrics/get" => fn get_metrics(lister_id: Option<&str>, visit_type: Option<&str>) -> Vec<SchedulerMetrics>;
}

/// Paths of the original that this scheduler does not serve, with their docstring summary:
/// listed by `/site-map`, answered with a clear error. (None today: every path of 0.16 is
/// served.)
pub const NOT_SERVED: &[(&str, &str)] = &[];

/// Every path `/site-map` lists, with its description.
pub fn site_map() -> impl Iterator<Item = (&'static str, &'static str)> {
    ENDPOINTS
        .iter()
        .map(|e| (e.path, e.summary()))
        .chain(NOT_SERVED.iter().copied())
}

fn not_served(path: &str) -> CallError {
    if NOT_SERVED.iter().any(|(p, _)| *p == path) {
        CallError::bad(format!("{path}: not implemented by this scheduler"))
    } else {
        CallError::not_found(path)
    }
}

/// An implementation of the API that records which methods were called: the shared API suite
/// uses it to check that every endpoint has a test.
pub struct Recorder {
    inner: Arc<dyn SchedulerApi>,
    called: Mutex<BTreeSet<&'static str>>,
}

impl Recorder {
    pub fn new(inner: Arc<dyn SchedulerApi>) -> Self {
        Recorder {
            inner,
            called: Mutex::new(BTreeSet::new()),
        }
    }

    fn record(&self, method: &'static str) {
        self.called
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(method);
    }

    /// The methods called so far.
    pub fn called(&self) -> BTreeSet<&'static str> {
        self.called
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
