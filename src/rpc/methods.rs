//! The RPC methods: the original's paths and keyword arguments, mapped onto the store, with the
//! original's row shapes (plain maps, keys in its SQL column order).

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::codec::{Wire, parse_iso_datetime};
use crate::error::Error;
use crate::model::{
    ArchivableRun, Interval, NewTask, NewTaskRun, Policy, Priority, RunStatus, Task, TaskRun,
    TaskSearch, TaskStatus, TaskType,
};
use crate::store::Store;

/// Every path the original serves, with the interface method's docstring summary (for
/// `/site-map`). The origin-visit ones answer with a clear error: this scheduler implements the
/// generic task scheduler only.
pub const PATHS: &[(&str, &str)] = &[
    (
        "task_type/create",
        "Create a new task type ready for scheduling.",
    ),
    (
        "task_type/get",
        "Retrieve the task type with id task_type_name",
    ),
    ("task_type/get_all", "Retrieve all registered task types"),
    ("task/create", "Create new tasks."),
    (
        "task/set_status",
        "Set the tasks' status whose ids are listed.",
    ),
    ("task/disable", "Disable the tasks whose ids are listed."),
    ("task/search", "Search tasks from selected criterions"),
    (
        "task/get",
        "Retrieve the info of tasks whose ids are listed.",
    ),
    (
        "task/peek_ready",
        "Fetch the list of tasks (with no priority) to be scheduled.",
    ),
    (
        "task/grab_ready",
        "Fetch task ids with no priority, and update their next_run_scheduled field",
    ),
    (
        "task/peek_ready_with_priority",
        "Fetch list of tasks (with any priority) ready to be scheduled.",
    ),
    (
        "task/grab_ready_with_priority",
        "Fetch task ids with any priority, and update their next_run_scheduled field",
    ),
    (
        "task_run/schedule_one",
        "Mark a given task as scheduled, adding a task_run entry in the database.",
    ),
    ("task_run/schedule", "Schedule a bunch of task runs."),
    (
        "task_run/start",
        "Mark a given task as started, updating the corresponding task_run entry in the database.",
    ),
    (
        "task_run/end",
        "Mark a given task as ended, updating the corresponding task_run entry in the database.",
    ),
    (
        "task/filter_for_archive",
        "Compute the tasks to archive within the datetime interval [after_ts, before_ts[.",
    ),
    (
        "task/delete_archived",
        "Delete archived tasks as much as possible.",
    ),
    ("task_run/get", "Search task run for a task id"),
    (
        "listers/get",
        "Retrieve information about all listers from the database.",
    ),
    (
        "lister/get",
        "Retrieve information about the given instance of the lister from the database.",
    ),
    (
        "lister/get_or_create",
        "Retrieve information about the given instance of the lister from the database, or create the entry if it did not exist.",
    ),
    (
        "lister/update",
        "Update the state for the given lister instance in the database.",
    ),
    (
        "origins/record",
        "Record a set of origins that a lister has listed.",
    ),
    (
        "origins/get",
        "Get information on the listed origins matching either the `url` or `lister_id`, or both arguments.",
    ),
    (
        "origins/grab_next",
        "Get at most the `count` next origins that need to be visited with the `visit_type` loader according to the given scheduling `policy`.",
    ),
    ("visit_stats/upsert", "Create a new origin visit stats"),
    (
        "visit_stats/get",
        "Retrieve the stats for an origin with a given visit type",
    ),
    (
        "scheduler_metrics/update",
        "Update the performance metrics of this scheduler instance.",
    ),
    (
        "scheduler_metrics/get",
        "Retrieve the performance metrics of this scheduler instance.",
    ),
];

/// A failed call: the caller's mistake (400) or ours (500).
#[derive(Debug)]
pub struct CallError {
    pub status: u16,
    /// The exception class name the Python client sees.
    pub kind: &'static str,
    pub module: &'static str,
    pub message: String,
}

impl CallError {
    /// A `SchedulerException` (HTTP 400): the Python client raises it by name.
    pub fn bad(message: impl Into<String>) -> Self {
        CallError {
            status: 400,
            kind: "SchedulerException",
            module: "swh.scheduler.exc",
            message: message.into(),
        }
    }

    /// The error dict of the original (`swh.core.api.serializers.exception_to_dict`).
    pub fn to_wire(&self) -> Wire {
        Wire::map([
            ("type", Wire::str(self.kind)),
            ("module", Wire::str(self.module)),
            ("args", Wire::Array(vec![Wire::str(self.message.clone())])),
            ("message", Wire::str(self.message.clone())),
            (
                "traceback",
                Wire::Array(vec![Wire::str(format!(
                    "{}: {}\n",
                    self.kind, self.message
                ))]),
            ),
        ])
    }
}

impl From<Error> for CallError {
    fn from(e: Error) -> Self {
        if e.is_caller_error() {
            CallError::bad(e.to_string())
        } else {
            CallError {
                status: 500,
                kind: "SchedulerError",
                module: "swh_scheduler",
                message: e.to_string(),
            }
        }
    }
}

type R<T> = Result<T, CallError>;

/// The keyword arguments of a call; unknown ones are refused by [`Args::finish`].
struct Args {
    entries: Vec<(String, Wire)>,
    used: HashSet<String>,
    path: String,
}

impl Args {
    fn new(path: &str, body: Wire) -> R<Self> {
        let entries = match body {
            Wire::Nil => Vec::new(),
            Wire::Map(m) => m
                .into_iter()
                .map(|(k, v)| match k {
                    Wire::Str(k) => Ok((k, v)),
                    other => Err(CallError::bad(format!(
                        "{path}: argument names must be strings, not {}",
                        other.kind()
                    ))),
                })
                .collect::<R<_>>()?,
            other => {
                return Err(CallError::bad(format!(
                    "{path}: the body must be a map of keyword arguments, not a {}",
                    other.kind()
                )));
            }
        };
        Ok(Args {
            entries,
            used: HashSet::new(),
            path: path.to_string(),
        })
    }

    /// The argument's value; `None` when missing or None.
    fn opt(&mut self, name: &str) -> Option<Wire> {
        self.used.insert(name.to_string());
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_nil())
    }

    fn req(&mut self, name: &str) -> R<Wire> {
        self.opt(name).ok_or_else(|| {
            CallError::bad(format!("{}: missing required argument {name:?}", self.path))
        })
    }

    fn finish(self) -> R<()> {
        match self.entries.iter().find(|(k, _)| !self.used.contains(k)) {
            Some((k, _)) => Err(CallError::bad(format!(
                "{}: unexpected keyword argument {k:?}",
                self.path
            ))),
            None => Ok(()),
        }
    }
}

// ---- reading values, naming the field when they are wrong ----

fn bad_type(field: &str, w: &Wire, want: &str) -> CallError {
    CallError::bad(format!(
        "invalid {field}: expected {want}, got {} {}",
        w.kind(),
        short(w)
    ))
}

fn short(w: &Wire) -> String {
    let s = super::codec::to_json(w);
    if s.len() > 60 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

fn text(field: &str, w: &Wire) -> R<String> {
    match w {
        Wire::Str(s) => Ok(s.clone()),
        other => Err(bad_type(field, other, "a string")),
    }
}

fn int(field: &str, w: &Wire) -> R<i64> {
    match w {
        Wire::Int(i) => i64::try_from(*i)
            .map_err(|_| CallError::bad(format!("invalid {field}: {i} is out of range"))),
        other => Err(bad_type(field, other, "an integer")),
    }
}

fn count(field: &str, w: &Wire) -> R<usize> {
    let i = int(field, w)?;
    usize::try_from(i).map_err(|_| CallError::bad(format!("invalid {field}: {i} is negative")))
}

fn float(field: &str, w: &Wire) -> R<f64> {
    match w {
        Wire::Int(i) => Ok(*i as f64),
        Wire::Float(f) => Ok(*f),
        other => Err(bad_type(field, other, "a number")),
    }
}

fn datetime(field: &str, w: &Wire) -> R<DateTime<Utc>> {
    match w {
        Wire::DateTime(t) => Ok(*t),
        Wire::Str(s) => {
            parse_iso_datetime(s).map_err(|e| CallError::bad(format!("invalid {field}: {e}")))
        }
        other => Err(bad_type(field, other, "a timezone-aware datetime")),
    }
}

fn interval(field: &str, w: &Wire) -> R<Interval> {
    match w {
        Wire::TimeDelta(i) => Ok(*i),
        Wire::Str(s) => s
            .parse()
            .map_err(|e| CallError::bad(format!("invalid {field}: {e}"))),
        Wire::Int(_) | Wire::Float(_) => Ok(Interval::from_micros(
            (float(field, w)? * 1e6).round() as i64,
        )),
        other => Err(bad_type(field, other, "a timedelta")),
    }
}

fn list(field: &str, w: Wire) -> R<Vec<Wire>> {
    match w {
        Wire::Array(a) => Ok(a),
        other => Err(bad_type(field, &other, "a list")),
    }
}

/// A scalar or a list of them (the original's search filters).
fn one_or_many(w: Wire) -> Vec<Wire> {
    match w {
        Wire::Array(a) => a,
        other => vec![other],
    }
}

fn parsed<T: std::str::FromStr<Err = Error>>(field: &str, w: &Wire) -> R<T> {
    let s = text(field, w)?;
    s.parse().map_err(|e: Error| match e {
        Error::InvalidArgument { reason, .. } => {
            CallError::bad(format!("invalid {field} {s:?}: {reason}"))
        }
        other => other.into(),
    })
}

/// A wire value as JSON (task arguments and run metadata are JSON in the original).
fn to_json(field: &str, w: &Wire) -> R<Value> {
    Ok(match w {
        Wire::Nil => Value::Null,
        Wire::Bool(b) => Value::Bool(*b),
        Wire::Int(i) => match (i64::try_from(*i), u64::try_from(*i)) {
            (Ok(v), _) => Value::from(v),
            (_, Ok(v)) => Value::from(v),
            _ => {
                return Err(CallError::bad(format!(
                    "invalid {field}: integer {i} does not fit in JSON"
                )));
            }
        },
        Wire::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| CallError::bad(format!("invalid {field}: {f} is not a JSON number")))?,
        Wire::Str(s) => Value::String(s.clone()),
        Wire::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| to_json(&format!("{field}[{i}]"), v))
                .collect::<R<_>>()?,
        ),
        Wire::Map(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let Wire::Str(k) = k else {
                    return Err(CallError::bad(format!(
                        "invalid {field}: JSON object keys must be strings, not {}",
                        k.kind()
                    )));
                };
                out.insert(k.clone(), to_json(&format!("{field}.{k}"), v)?);
            }
            Value::Object(out)
        }
        other => {
            return Err(CallError::bad(format!(
                "invalid {field}: a {} is not a JSON value",
                other.kind()
            )));
        }
    })
}

fn json_object(field: &str, w: &Wire) -> R<Map<String, Value>> {
    match to_json(field, w)? {
        Value::Object(m) => Ok(m),
        other => Err(CallError::bad(format!(
            "invalid {field}: expected a dict, got {other}"
        ))),
    }
}

fn from_json(v: &Value) -> Wire {
    match v {
        Value::Null => Wire::Nil,
        Value::Bool(b) => Wire::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Wire::Int(i.into()),
            (_, Some(u)) => Wire::Int(u.into()),
            _ => Wire::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Wire::Str(s.clone()),
        Value::Array(a) => Wire::Array(a.iter().map(from_json).collect()),
        Value::Object(m) => Wire::Map(
            m.iter()
                .map(|(k, v)| (Wire::Str(k.clone()), from_json(v)))
                .collect(),
        ),
    }
}

// ---- the original's rows ----

fn opt_dt(t: Option<DateTime<Utc>>) -> Wire {
    t.map_or(Wire::Nil, Wire::DateTime)
}

fn opt_td(i: Option<Interval>) -> Wire {
    i.map_or(Wire::Nil, Wire::TimeDelta)
}

fn opt_int(i: Option<i64>) -> Wire {
    i.map_or(Wire::Nil, |i| Wire::Int(i.into()))
}

pub fn task_type_row(t: &TaskType) -> Wire {
    Wire::map([
        ("type", Wire::str(t.task_type.clone())),
        ("description", Wire::str(t.description.clone())),
        ("backend_name", Wire::str(t.backend_name.clone())),
        ("default_interval", opt_td(t.default_interval)),
        ("min_interval", opt_td(t.min_interval)),
        ("max_interval", opt_td(t.max_interval)),
        (
            "backoff_factor",
            t.backoff_factor.map_or(Wire::Nil, Wire::Float),
        ),
        ("max_queue_length", opt_int(t.max_queue_length)),
        ("num_retries", opt_int(t.num_retries)),
        ("retry_delay", opt_td(t.retry_delay)),
    ])
}

fn arguments(t: &Task) -> Wire {
    Wire::map([
        (
            "args",
            Wire::Array(t.arguments.args.iter().map(from_json).collect()),
        ),
        (
            "kwargs",
            from_json(&Value::Object(t.arguments.kwargs.clone())),
        ),
    ])
}

fn priority(t: &Task) -> Wire {
    t.priority.map_or(Wire::Nil, |p| Wire::str(p.as_str()))
}

/// A task as `create_tasks` and `get_tasks` return it.
pub fn task_row(t: &Task) -> Wire {
    Wire::map([
        ("type", Wire::str(t.task_type.clone())),
        ("arguments", arguments(t)),
        ("next_run", Wire::DateTime(t.next_run)),
        ("policy", Wire::str(t.policy.as_str())),
        ("status", Wire::str(t.status.as_str())),
        ("retries_left", Wire::Int(t.retries_left.into())),
        ("priority", priority(t)),
        ("id", Wire::Int(t.id.into())),
        ("current_interval", opt_td(t.current_interval)),
    ])
}

/// A task as `search_tasks` and the ready-task calls return it (`select *` order).
pub fn task_select_row(t: &Task) -> Wire {
    Wire::map([
        ("id", Wire::Int(t.id.into())),
        ("type", Wire::str(t.task_type.clone())),
        ("arguments", arguments(t)),
        ("next_run", Wire::DateTime(t.next_run)),
        ("current_interval", opt_td(t.current_interval)),
        ("status", Wire::str(t.status.as_str())),
        ("policy", Wire::str(t.policy.as_str())),
        ("retries_left", Wire::Int(t.retries_left.into())),
        ("priority", priority(t)),
    ])
}

pub fn run_row(r: &TaskRun) -> Wire {
    Wire::map([
        ("id", Wire::Int(r.id.into())),
        ("task", Wire::Int(r.task.into())),
        ("backend_id", Wire::str(r.backend_id.clone())),
        ("scheduled", opt_dt(r.scheduled)),
        ("started", opt_dt(r.started)),
        ("ended", opt_dt(r.ended)),
        ("metadata", from_json(&Value::Object(r.metadata.clone()))),
        ("status", Wire::str(r.status.as_str())),
    ])
}

/// A row of `filter_task_to_archive`: args as `{index: value}` and kwargs as JSON text, the
/// original's Elasticsearch leftovers.
fn archive_row(a: &ArchivableRun) -> Wire {
    let args = Wire::Map(
        a.task
            .arguments
            .args
            .iter()
            .enumerate()
            .map(|(i, v)| (Wire::Int(i as i128), from_json(v)))
            .collect(),
    );
    let kwargs = Wire::Str(serde_json::to_string(&a.task.arguments.kwargs).expect("JSON"));
    Wire::map([
        ("task_id", Wire::Int(a.task.id.into())),
        ("task_policy", Wire::str(a.task.policy.as_str())),
        ("task_status", Wire::str(a.task.status.as_str())),
        ("task_run_id", Wire::Int(a.run.id.into())),
        ("arguments", Wire::map([("args", args), ("kwargs", kwargs)])),
        ("type", Wire::str(a.task.task_type.clone())),
        ("backend_id", Wire::str(a.run.backend_id.clone())),
        (
            "metadata",
            from_json(&Value::Object(a.run.metadata.clone())),
        ),
        ("scheduled", opt_dt(a.run.scheduled)),
        ("started", opt_dt(a.run.started)),
        ("ended", opt_dt(a.run.ended)),
        ("task_run_status", Wire::str(a.run.status.as_str())),
    ])
}

// ---- reading the original's dicts ----

/// A task type dict (the original's `task_type/create` argument) read as a [`TaskType`].
pub fn read_task_type(w: &Wire) -> R<TaskType> {
    let field = |k: &str| w.get(k).filter(|v| !v.is_nil());
    let name = text(
        "task_type.type",
        field("type").ok_or_else(|| CallError::bad("task_type: missing \"type\""))?,
    )?;
    let backend = text(
        "task_type.backend_name",
        field("backend_name")
            .ok_or_else(|| CallError::bad("task_type: missing \"backend_name\""))?,
    )?;
    let description = field("description")
        .map(|d| text("task_type.description", d))
        .transpose()?
        .unwrap_or_default();
    let mut t = TaskType::new(&name, &backend, &description);
    let iv = |k: &str| {
        field(k)
            .map(|v| interval(&format!("task_type.{k}"), v))
            .transpose()
    };
    t.default_interval = iv("default_interval")?;
    t.min_interval = iv("min_interval")?;
    t.max_interval = iv("max_interval")?;
    t.retry_delay = iv("retry_delay")?;
    t.backoff_factor = field("backoff_factor")
        .map(|v| float("task_type.backoff_factor", v))
        .transpose()?;
    // a missing max_queue_length takes the column default (1000); an explicit None is None
    if w.get("max_queue_length").is_some() {
        t.max_queue_length = field("max_queue_length")
            .map(|v| int("task_type.max_queue_length", v))
            .transpose()?;
    }
    t.num_retries = field("num_retries")
        .map(|v| int("task_type.num_retries", v))
        .transpose()?;
    Ok(t)
}

fn read_task(i: usize, w: &Wire) -> R<NewTask> {
    let f = |k: &str| format!("tasks[{i}].{k}");
    if !matches!(w, Wire::Map(_)) {
        return Err(bad_type(&format!("tasks[{i}]"), w, "a dict"));
    }
    let field = |k: &str| w.get(k).filter(|v| !v.is_nil());
    let task_type = text(
        &f("type"),
        field("type").ok_or_else(|| CallError::bad(format!("{}: missing", f("type"))))?,
    )?;
    let mut t = NewTask::new(&task_type, vec![], Map::new());
    if let Some(a) = field("arguments") {
        if !matches!(a, Wire::Map(_)) {
            return Err(bad_type(&f("arguments"), a, "a dict with args and kwargs"));
        }
        if let Some(args) = a.get("args").filter(|v| !v.is_nil()) {
            match to_json(&f("arguments.args"), args)? {
                Value::Array(v) => t.arguments.args = v,
                other => {
                    return Err(CallError::bad(format!(
                        "invalid {}: expected a list, got {other}",
                        f("arguments.args")
                    )));
                }
            }
        }
        if let Some(kwargs) = a.get("kwargs").filter(|v| !v.is_nil()) {
            t.arguments.kwargs = json_object(&f("arguments.kwargs"), kwargs)?;
        }
    }
    t.next_run = field("next_run")
        .map(|v| datetime(&f("next_run"), v))
        .transpose()?;
    t.policy = field("policy")
        .map(|v| parsed::<Policy>(&f("policy"), v))
        .transpose()?;
    if let Some(s) = field("status") {
        t.status = parsed::<TaskStatus>(&f("status"), s)?;
    }
    t.retries_left = field("retries_left")
        .map(|v| int(&f("retries_left"), v))
        .transpose()?;
    t.priority = field("priority")
        .map(|v| parsed::<Priority>(&f("priority"), v))
        .transpose()?;
    Ok(t)
}

/// Arguments where Python-falsy values count as missing.
struct FalsyIsNone(Args);

impl FalsyIsNone {
    /// A scalar or a list of them (the original's search filters), each read by `read`.
    fn many<T>(&mut self, name: &str, read: impl Fn(&str, &Wire) -> R<T>) -> R<Vec<T>> {
        self.opt(name).map_or(Ok(Vec::new()), |v| {
            one_or_many(v).iter().map(|v| read(name, v)).collect()
        })
    }

    fn opt(&mut self, name: &str) -> Option<Wire> {
        self.0.opt(name).filter(|v| match v {
            Wire::Str(s) => !s.is_empty(),
            Wire::Array(a) => !a.is_empty(),
            Wire::Int(i) => *i != 0,
            Wire::Bool(b) => *b,
            _ => true,
        })
    }
}

fn ids(field: &str, w: Wire) -> R<Vec<i64>> {
    list(field, w)?
        .iter()
        .enumerate()
        .map(|(i, v)| int(&format!("{field}[{i}]"), v))
        .collect()
}

fn metadata(field: &str, w: Option<Wire>) -> R<Option<Map<String, Value>>> {
    w.map(|w| json_object(field, &w)).transpose()
}

/// `after_ts`/`before_ts`: datetimes, or ISO text (a date alone, or without an offset, is UTC,
/// as PostgreSQL reads it in the original's UTC sessions).
fn archive_bound(field: &str, w: &Wire) -> R<DateTime<Utc>> {
    if let Wire::Str(s) = w {
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(d.and_hms_opt(0, 0, 0).unwrap().and_utc());
        }
        for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
                return Ok(n.and_utc());
            }
        }
    }
    datetime(field, w)
}

fn list_of<T>(items: &[T], row: impl Fn(&T) -> Wire) -> Wire {
    Wire::Array(items.iter().map(row).collect())
}

/// Runs one call: `path` without the leading slash, `body` the decoded keyword arguments.
pub async fn call(store: &Store, path: &str, body: Wire) -> R<Wire> {
    let mut a = Args::new(path, body)?;
    let out = match path {
        "task_type/create" => {
            let t = read_task_type(&a.req("task_type")?)?;
            a.finish()?;
            store.create_task_type(&t).await?;
            Wire::Nil
        }
        "task_type/get" => {
            let name = text("task_type_name", &a.req("task_type_name")?)?;
            a.finish()?;
            store
                .get_task_type(&name)
                .await?
                .as_ref()
                .map_or(Wire::Nil, task_type_row)
        }
        "task_type/get_all" => {
            a.finish()?;
            list_of(&store.get_task_types().await?, task_type_row)
        }
        "task/create" => {
            let tasks = list("tasks", a.req("tasks")?)?;
            let policy = a
                .opt("policy")
                .map(|p| parsed::<Policy>("policy", &p))
                .transpose()?
                .unwrap_or(Policy::Recurring);
            a.finish()?;
            let tasks = tasks
                .iter()
                .enumerate()
                .map(|(i, t)| read_task(i, t))
                .collect::<R<Vec<_>>>()?;
            list_of(&store.create_tasks(&tasks, policy).await?, task_row)
        }
        "task/set_status" => {
            let task_ids = ids("task_ids", a.req("task_ids")?)?;
            let status = a
                .opt("status")
                .map(|s| parsed::<TaskStatus>("status", &s))
                .transpose()?
                .unwrap_or(TaskStatus::Disabled);
            let next_run = a
                .opt("next_run")
                .map(|v| datetime("next_run", &v))
                .transpose()?;
            let except = a
                .opt("except_completed_tasks")
                .map(|v| matches!(v, Wire::Bool(true)))
                .unwrap_or(false);
            a.finish()?;
            store
                .set_status_tasks(&task_ids, status, next_run, except)
                .await?;
            Wire::Nil
        }
        "task/disable" => {
            let task_ids = ids("task_ids", a.req("task_ids")?)?;
            a.finish()?;
            store.disable_tasks(&task_ids).await?;
            Wire::Nil
        }
        "task/search" => {
            // as the original, falsy filters ("" / [] / 0) are ignored
            let mut a = FalsyIsNone(a);
            let s = TaskSearch {
                task_ids: a.many("task_id", int)?,
                task_types: a.many("task_type", text)?,
                statuses: a.many("status", parsed)?,
                priorities: a.many("priority", parsed)?,
                // a scalar in the original
                policies: a
                    .opt("policy")
                    .map(|v| parsed("policy", &v))
                    .transpose()?
                    .into_iter()
                    .collect(),
                before: a
                    .opt("before")
                    .map(|v| datetime("before", &v))
                    .transpose()?,
                after: a.opt("after").map(|v| datetime("after", &v)).transpose()?,
                limit: a
                    .opt("limit")
                    .map(|v| count("limit", &v))
                    .transpose()?
                    .filter(|l| *l > 0),
            };
            a.0.finish()?;
            list_of(&store.search_tasks(&s).await?, task_select_row)
        }
        "task/get" => {
            let task_ids = ids("task_ids", a.req("task_ids")?)?;
            a.finish()?;
            list_of(&store.get_tasks(&task_ids).await?, task_row)
        }
        "task/peek_ready"
        | "task/grab_ready"
        | "task/peek_ready_with_priority"
        | "task/grab_ready_with_priority" => {
            let task_type = text("task_type", &a.req("task_type")?)?;
            let timestamp = a
                .opt("timestamp")
                .map(|v| datetime("timestamp", &v))
                .transpose()?;
            let num_tasks = a
                .opt("num_tasks")
                .map(|v| count("num_tasks", &v))
                .transpose()?;
            a.finish()?;
            let tasks = match path {
                "task/peek_ready" => {
                    store
                        .peek_ready_tasks(&task_type, timestamp, num_tasks)
                        .await?
                }
                "task/grab_ready" => {
                    store
                        .grab_ready_tasks(&task_type, timestamp, num_tasks)
                        .await?
                }
                "task/peek_ready_with_priority" => {
                    store
                        .peek_ready_priority_tasks(&task_type, timestamp, num_tasks)
                        .await?
                }
                _ => {
                    store
                        .grab_ready_priority_tasks(&task_type, timestamp, num_tasks)
                        .await?
                }
            };
            list_of(&tasks, task_select_row)
        }
        "task_run/schedule_one" => {
            let task_id = int("task_id", &a.req("task_id")?)?;
            let backend_id = text("backend_id", &a.req("backend_id")?)?;
            let meta = metadata("metadata", a.opt("metadata"))?;
            let timestamp = a
                .opt("timestamp")
                .map(|v| datetime("timestamp", &v))
                .transpose()?;
            a.finish()?;
            run_row(
                &store
                    .schedule_task_run(task_id, &backend_id, meta, timestamp)
                    .await?,
            )
        }
        "task_run/schedule" => {
            let runs = list("task_runs", a.req("task_runs")?)?;
            a.finish()?;
            let mut new = Vec::with_capacity(runs.len());
            for (i, r) in runs.iter().enumerate() {
                let f = |k: &str| format!("task_runs[{i}].{k}");
                let field = |k: &str| r.get(k).filter(|v| !v.is_nil());
                new.push(NewTaskRun {
                    task: int(
                        &f("task"),
                        field("task")
                            .ok_or_else(|| CallError::bad(format!("{}: missing", f("task"))))?,
                    )?,
                    backend_id: text(
                        &f("backend_id"),
                        field("backend_id").ok_or_else(|| {
                            CallError::bad(format!("{}: missing", f("backend_id")))
                        })?,
                    )?,
                    scheduled: field("scheduled")
                        .map(|v| datetime(&f("scheduled"), v))
                        .transpose()?,
                    metadata: metadata(&f("metadata"), field("metadata").cloned())?
                        .unwrap_or_default(),
                });
            }
            store.mass_schedule_task_runs(&new).await?;
            Wire::Nil
        }
        "task_run/start" => {
            let backend_id = text("backend_id", &a.req("backend_id")?)?;
            let meta = metadata("metadata", a.opt("metadata"))?;
            let timestamp = a
                .opt("timestamp")
                .map(|v| datetime("timestamp", &v))
                .transpose()?;
            a.finish()?;
            store
                .start_task_run(&backend_id, meta, timestamp)
                .await?
                .as_ref()
                .map_or(Wire::Nil, run_row)
        }
        "task_run/end" => {
            let backend_id = text("backend_id", &a.req("backend_id")?)?;
            let status: RunStatus = parsed("status", &a.req("status")?)?;
            let meta = metadata("metadata", a.opt("metadata"))?;
            let timestamp = a
                .opt("timestamp")
                .map(|v| datetime("timestamp", &v))
                .transpose()?;
            let _result = a.opt("result"); // accepted and ignored, as the original does
            a.finish()?;
            store
                .end_task_run(&backend_id, status, meta, timestamp)
                .await?
                .as_ref()
                .map_or(Wire::Nil, run_row)
        }
        "task/filter_for_archive" => {
            let after = archive_bound("after_ts", &a.req("after_ts")?)?;
            let before = archive_bound("before_ts", &a.req("before_ts")?)?;
            let limit = a
                .opt("limit")
                .map(|v| count("limit", &v))
                .transpose()?
                .unwrap_or(10);
            let token = a.opt("page_token").map(|v| match v {
                Wire::Int(i) => Ok(i.to_string()),
                other => text("page_token", &other),
            });
            let token = token.transpose()?;
            a.finish()?;
            let page = store
                .filter_task_to_archive(after, before, limit, token.as_deref())
                .await?;
            let mut out = vec![(Wire::str("tasks"), list_of(&page.rows, archive_row))];
            if let Some(t) = page.next_page_token {
                out.push((Wire::str("next_page_token"), Wire::Str(t)));
            }
            Wire::Map(out)
        }
        "task/delete_archived" => {
            let items = list("task_ids", a.req("task_ids")?)?;
            a.finish()?;
            let mut pairs = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                let f = |k: &str| format!("task_ids[{i}].{k}");
                let get = |k: &str| {
                    it.get(k)
                        .ok_or_else(|| CallError::bad(format!("{}: missing", f(k))))
                };
                pairs.push((
                    int(&f("task_id"), get("task_id")?)?,
                    int(&f("task_run_id"), get("task_run_id")?)?,
                ));
            }
            store.delete_archived_tasks(&pairs).await?;
            Wire::Nil
        }
        "task_run/get" => {
            let task_ids = match a.req("task_ids")? {
                Wire::Array(v) => v
                    .iter()
                    .map(|v| int("task_ids", v))
                    .collect::<R<Vec<_>>>()?,
                other => vec![int("task_ids", &other)?],
            };
            let limit = a
                .opt("limit")
                .map(|v| count("limit", &v))
                .transpose()?
                .filter(|l| *l > 0);
            a.finish()?;
            list_of(&store.get_task_runs(&task_ids, limit).await?, run_row)
        }
        p if PATHS.iter().any(|(known, _)| *known == p) => {
            return Err(CallError::bad(format!(
                "{p}: the origin-visit scheduler (listers, listed origins, visit stats, metrics) is not \
                 implemented by this scheduler"
            )));
        }
        _ => {
            return Err(CallError {
                status: 404,
                kind: "NotFound",
                module: "werkzeug.exceptions",
                message: format!("404 Not Found: /{path}"),
            });
        }
    };
    Ok(out)
}

// ---- rows read back (for the Rust client) ----

fn row_field<'a>(row: &'a Wire, k: &str) -> R<&'a Wire> {
    row.get(k)
        .ok_or_else(|| CallError::bad(format!("row has no {k:?}")))
}

fn opt_row_dt(row: &Wire, k: &str) -> R<Option<DateTime<Utc>>> {
    row.get(k)
        .filter(|v| !v.is_nil())
        .map(|v| datetime(k, v))
        .transpose()
}

/// A task row (either key order) read back.
pub fn parse_task(row: &Wire) -> R<Task> {
    let args = row_field(row, "arguments")?;
    let a = match to_json("arguments.args", args.get("args").unwrap_or(&Wire::Nil))? {
        Value::Array(v) => v,
        Value::Null => Vec::new(),
        other => return Err(CallError::bad(format!("arguments.args is {other}"))),
    };
    let kwargs = match args.get("kwargs").filter(|v| !v.is_nil()) {
        Some(k) => json_object("arguments.kwargs", k)?,
        None => Map::new(),
    };
    Ok(Task {
        id: int("id", row_field(row, "id")?)?,
        task_type: text("type", row_field(row, "type")?)?,
        arguments: crate::model::TaskArguments { args: a, kwargs },
        next_run: datetime("next_run", row_field(row, "next_run")?)?,
        current_interval: row
            .get("current_interval")
            .filter(|v| !v.is_nil())
            .map(|v| interval("current_interval", v))
            .transpose()?,
        status: parsed("status", row_field(row, "status")?)?,
        policy: parsed("policy", row_field(row, "policy")?)?,
        retries_left: int("retries_left", row_field(row, "retries_left")?)?,
        priority: row
            .get("priority")
            .filter(|v| !v.is_nil())
            .map(|v| parsed("priority", v))
            .transpose()?,
    })
}

/// A task run row read back.
pub fn parse_run(row: &Wire) -> R<TaskRun> {
    Ok(TaskRun {
        id: int("id", row_field(row, "id")?)?,
        task: int("task", row_field(row, "task")?)?,
        backend_id: text("backend_id", row_field(row, "backend_id")?)?,
        scheduled: opt_row_dt(row, "scheduled")?,
        started: opt_row_dt(row, "started")?,
        ended: opt_row_dt(row, "ended")?,
        metadata: match row.get("metadata").filter(|v| !v.is_nil()) {
            Some(m) => json_object("metadata", m)?,
            None => Map::new(),
        },
        status: parsed("status", row_field(row, "status")?)?,
    })
}

/// The dict `task/create` takes for a new task.
pub fn new_task_dict(t: &NewTask) -> Wire {
    let mut m = vec![
        (Wire::str("type"), Wire::str(t.task_type.clone())),
        (
            Wire::str("arguments"),
            Wire::map([
                (
                    "args",
                    Wire::Array(t.arguments.args.iter().map(from_json).collect()),
                ),
                (
                    "kwargs",
                    from_json(&Value::Object(t.arguments.kwargs.clone())),
                ),
            ]),
        ),
        (Wire::str("status"), Wire::str(t.status.as_str())),
    ];
    if let Some(n) = t.next_run {
        m.push((Wire::str("next_run"), Wire::DateTime(n)));
    }
    if let Some(p) = t.policy {
        m.push((Wire::str("policy"), Wire::str(p.as_str())));
    }
    if let Some(r) = t.retries_left {
        m.push((Wire::str("retries_left"), Wire::Int(r.into())));
    }
    if let Some(p) = t.priority {
        m.push((Wire::str("priority"), Wire::str(p.as_str())));
    }
    Wire::Map(m)
}

/// JSON metadata as a wire map.
pub fn json_map(m: &Map<String, Value>) -> Wire {
    from_json(&Value::Object(m.clone()))
}
