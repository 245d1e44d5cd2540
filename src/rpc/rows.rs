//! The original's dicts and rows for the model's types: what the server writes and the client
//! reads back (and the other way for arguments). Keys are in the original's SQL column order.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::args::{
    ArgCodec, Args, FromWire, Plain, ResultCodec, ToWire, bad_type, by_ref, field, from_json,
    opt_field, put, req_field, to_json,
};
use super::codec::Wire;
use super::error::{CallError, R};
use crate::model::{
    ArchivableRun, ArchivePage, GrabOptions, Interval, ListedOrigin, ListedOriginPage, Lister,
    NewTask, NewTaskRun, OriginVisitStats, SchedulerMetrics, Task, TaskArguments, TaskRun,
    TaskSearch, TaskType,
};

by_ref!(TaskType, TaskSearch);

fn opt<T: ToWire>(v: &Option<T>) -> Wire {
    v.to_wire()
}

/// A task type dict (the original's `task_type/create` argument and `task_type/get` row).
impl ToWire for TaskType {
    fn to_wire(&self) -> Wire {
        Wire::map([
            ("type", Wire::str(self.task_type.clone())),
            ("description", Wire::str(self.description.clone())),
            ("backend_name", Wire::str(self.backend_name.clone())),
            ("default_interval", opt(&self.default_interval)),
            ("min_interval", opt(&self.min_interval)),
            ("max_interval", opt(&self.max_interval)),
            ("backoff_factor", opt(&self.backoff_factor)),
            ("max_queue_length", opt(&self.max_queue_length)),
            ("num_retries", opt(&self.num_retries)),
            ("retry_delay", opt(&self.retry_delay)),
        ])
    }
}

impl FromWire for TaskType {
    fn from_wire(name: &str, w: &Wire) -> R<Self> {
        if !matches!(w, Wire::Map(_)) {
            return Err(bad_type(name, w, "a dict"));
        }
        let task_type: String = req_field(w, name, "type")?;
        let backend: String = req_field(w, name, "backend_name")?;
        let description: Option<String> = opt_field(w, name, "description")?;
        let mut t = TaskType::new(&task_type, &backend, &description.unwrap_or_default());
        t.default_interval = opt_field(w, name, "default_interval")?;
        t.min_interval = opt_field(w, name, "min_interval")?;
        t.max_interval = opt_field(w, name, "max_interval")?;
        t.retry_delay = opt_field(w, name, "retry_delay")?;
        t.backoff_factor = opt_field(w, name, "backoff_factor")?;
        // a missing max_queue_length takes the column default (1000); an explicit None is None
        if w.get("max_queue_length").is_some() {
            t.max_queue_length = opt_field(w, name, "max_queue_length")?;
        }
        t.num_retries = opt_field(w, name, "num_retries")?;
        Ok(t)
    }
}

fn arguments(a: &TaskArguments) -> Wire {
    Wire::map([
        ("args", Wire::Array(a.args.iter().map(from_json).collect())),
        ("kwargs", a.kwargs.to_wire()),
    ])
}

/// `{"args": [...], "kwargs": {...}}`; either may be missing or None.
fn read_arguments(name: &str, a: &Wire) -> R<TaskArguments> {
    if !matches!(a, Wire::Map(_)) {
        return Err(bad_type(name, a, "a dict with args and kwargs"));
    }
    let mut out = TaskArguments {
        args: Vec::new(),
        kwargs: Map::new(),
    };
    if let Some(args) = a.get("args").filter(|v| !v.is_nil()) {
        match to_json(&format!("{name}.args"), args)? {
            Value::Array(v) => out.args = v,
            other => {
                return Err(CallError::bad(format!(
                    "invalid {name}.args: expected a list, got {other}"
                )));
            }
        }
    }
    out.kwargs = opt_field(a, name, "kwargs")?.unwrap_or_default();
    Ok(out)
}

/// A new task, as `task/create` takes it.
impl ToWire for NewTask {
    fn to_wire(&self) -> Wire {
        let mut m = vec![
            (Wire::str("type"), Wire::str(self.task_type.clone())),
            (Wire::str("arguments"), arguments(&self.arguments)),
            (Wire::str("status"), self.status.to_wire()),
        ];
        for (k, v) in [
            ("next_run", self.next_run.to_wire()),
            ("policy", self.policy.to_wire()),
            ("retries_left", self.retries_left.to_wire()),
            ("priority", self.priority.to_wire()),
        ] {
            if !v.is_nil() {
                m.push((Wire::str(k), v));
            }
        }
        Wire::Map(m)
    }
}

impl FromWire for NewTask {
    fn from_wire(name: &str, w: &Wire) -> R<Self> {
        if !matches!(w, Wire::Map(_)) {
            return Err(bad_type(name, w, "a dict"));
        }
        let task_type = String::from_wire(
            &format!("{name}.type"),
            w.get("type")
                .filter(|v| !v.is_nil())
                .ok_or_else(|| CallError::bad(format!("{name}.type: missing")))?,
        )?;
        let mut t = NewTask::new(&task_type, vec![], Map::new());
        if let Some(a) = w.get("arguments").filter(|v| !v.is_nil()) {
            t.arguments = read_arguments(&format!("{name}.arguments"), a)?;
        }
        t.next_run = opt_field(w, name, "next_run")?;
        t.policy = opt_field(w, name, "policy")?;
        if let Some(s) = opt_field(w, name, "status")? {
            t.status = s;
        }
        t.retries_left = opt_field(w, name, "retries_left")?;
        t.priority = opt_field(w, name, "priority")?;
        Ok(t)
    }
}

/// A task as `create_tasks` and `get_tasks` return it.
impl ToWire for Task {
    fn to_wire(&self) -> Wire {
        Wire::map([
            ("type", Wire::str(self.task_type.clone())),
            ("arguments", arguments(&self.arguments)),
            ("next_run", Wire::DateTime(self.next_run)),
            ("policy", self.policy.to_wire()),
            ("status", self.status.to_wire()),
            ("retries_left", self.retries_left.to_wire()),
            ("priority", self.priority.to_wire()),
            ("id", self.id.to_wire()),
            ("current_interval", opt(&self.current_interval)),
        ])
    }
}

/// A task row, in either key order.
impl FromWire for Task {
    fn from_wire(name: &str, row: &Wire) -> R<Self> {
        Ok(Task {
            id: req_field(row, name, "id")?,
            task_type: req_field(row, name, "type")?,
            arguments: read_arguments(
                &format!("{name}.arguments"),
                field(row, name, "arguments")?,
            )?,
            next_run: req_field(row, name, "next_run")?,
            current_interval: opt_field(row, name, "current_interval")?,
            status: req_field(row, name, "status")?,
            policy: req_field(row, name, "policy")?,
            retries_left: req_field(row, name, "retries_left")?,
            priority: opt_field(row, name, "priority")?,
        })
    }
}

/// Tasks as `search_tasks` and the ready-task calls return them (`select *` order).
pub struct SelectRows;

impl ResultCodec<Vec<Task>> for SelectRows {
    fn encode(tasks: &Vec<Task>) -> Wire {
        Wire::Array(
            tasks
                .iter()
                .map(|t| {
                    Wire::map([
                        ("id", t.id.to_wire()),
                        ("type", Wire::str(t.task_type.clone())),
                        ("arguments", arguments(&t.arguments)),
                        ("next_run", Wire::DateTime(t.next_run)),
                        ("current_interval", opt(&t.current_interval)),
                        ("status", t.status.to_wire()),
                        ("policy", t.policy.to_wire()),
                        ("retries_left", t.retries_left.to_wire()),
                        ("priority", t.priority.to_wire()),
                    ])
                })
                .collect(),
        )
    }

    fn decode(reply: &Wire) -> R<Vec<Task>> {
        <Plain as ResultCodec<Vec<Task>>>::decode(reply)
    }
}

impl ToWire for TaskRun {
    fn to_wire(&self) -> Wire {
        Wire::map([
            ("id", self.id.to_wire()),
            ("task", self.task.to_wire()),
            ("backend_id", Wire::str(self.backend_id.clone())),
            ("scheduled", opt(&self.scheduled)),
            ("started", opt(&self.started)),
            ("ended", opt(&self.ended)),
            ("metadata", self.metadata.to_wire()),
            ("status", self.status.to_wire()),
        ])
    }
}

impl FromWire for TaskRun {
    fn from_wire(name: &str, row: &Wire) -> R<Self> {
        let task = req_field(row, name, "task")?;
        read_run(row, name, ["id", "status"], task)
    }
}

/// A run's fields in a row, whose id and status keys are `keys`.
fn read_run(row: &Wire, name: &str, keys: [&str; 2], task: i64) -> R<TaskRun> {
    Ok(TaskRun {
        id: req_field(row, name, keys[0])?,
        task,
        backend_id: req_field(row, name, "backend_id")?,
        scheduled: opt_field(row, name, "scheduled")?,
        started: opt_field(row, name, "started")?,
        ended: opt_field(row, name, "ended")?,
        metadata: opt_field(row, name, "metadata")?,
        status: req_field(row, name, keys[1])?,
    })
}

/// A run to schedule, as `task_run/schedule` takes it; `scheduled` is sent as now when unset.
impl ToWire for NewTaskRun {
    fn to_wire(&self) -> Wire {
        Wire::map([
            ("task", self.task.to_wire()),
            ("backend_id", Wire::str(self.backend_id.clone())),
            (
                "scheduled",
                Wire::DateTime(self.scheduled.unwrap_or_else(Utc::now)),
            ),
            ("metadata", self.metadata.to_wire()),
        ])
    }
}

impl FromWire for NewTaskRun {
    fn from_wire(name: &str, w: &Wire) -> R<Self> {
        let req = |k: &str| {
            w.get(k)
                .filter(|v| !v.is_nil())
                .ok_or_else(|| CallError::bad(format!("{name}.{k}: missing")))
        };
        Ok(NewTaskRun {
            task: i64::from_wire(&format!("{name}.task"), req("task")?)?,
            backend_id: String::from_wire(&format!("{name}.backend_id"), req("backend_id")?)?,
            scheduled: opt_field(w, name, "scheduled")?,
            metadata: opt_field(w, name, "metadata")?,
        })
    }
}

/// An archived task and run to delete: `{"task_id": …, "task_run_id": …}`.
impl ToWire for (i64, i64) {
    fn to_wire(&self) -> Wire {
        Wire::map([
            ("task_id", self.0.to_wire()),
            ("task_run_id", self.1.to_wire()),
        ])
    }
}

impl FromWire for (i64, i64) {
    fn from_wire(name: &str, w: &Wire) -> R<Self> {
        let get = |k: &str| {
            w.get(k)
                .ok_or_else(|| CallError::bad(format!("{name}.{k}: missing")))
        };
        Ok((
            i64::from_wire(&format!("{name}.task_id"), get("task_id")?)?,
            i64::from_wire(&format!("{name}.task_run_id"), get("task_run_id")?)?,
        ))
    }
}

/// A row of `filter_task_to_archive`: args as `{index: value}` and kwargs as JSON text, the
/// original's Elasticsearch leftovers.
impl ToWire for ArchivableRun {
    fn to_wire(&self) -> Wire {
        let (task, run) = (&self.task, &self.run);
        let args = Wire::Map(
            task.arguments
                .args
                .iter()
                .enumerate()
                .map(|(i, v)| (Wire::Int(i as i128), from_json(v)))
                .collect(),
        );
        let kwargs = Wire::Str(Value::Object(task.arguments.kwargs.clone()).to_string());
        Wire::map([
            ("task_id", task.id.to_wire()),
            ("task_policy", task.policy.to_wire()),
            ("task_status", task.status.to_wire()),
            ("task_run_id", run.id.to_wire()),
            ("arguments", Wire::map([("args", args), ("kwargs", kwargs)])),
            ("type", Wire::str(task.task_type.clone())),
            ("backend_id", Wire::str(run.backend_id.clone())),
            ("metadata", run.metadata.to_wire()),
            ("scheduled", opt(&run.scheduled)),
            ("started", opt(&run.started)),
            ("ended", opt(&run.ended)),
            ("task_run_status", Wire::str(run.status.as_str())),
        ])
    }
}

impl FromWire for ArchivableRun {
    fn from_wire(name: &str, row: &Wire) -> R<Self> {
        let a = field(row, name, "arguments")?;
        let args = match a.get("args") {
            Some(Wire::Map(m)) => m
                .iter()
                .map(|(_, v)| to_json(&format!("{name}.arguments.args"), v))
                .collect::<R<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let kwargs = match a.get("kwargs") {
            Some(Wire::Str(s)) => match serde_json::from_str(s) {
                Ok(Value::Object(m)) => m,
                _ => return Err(CallError::bad(format!("{name}.arguments.kwargs: {s:?}"))),
            },
            _ => Map::new(),
        };
        let id: i64 = req_field(row, name, "task_id")?;
        Ok(ArchivableRun {
            task: Task {
                id,
                task_type: req_field(row, name, "type")?,
                arguments: TaskArguments { args, kwargs },
                next_run: DateTime::<Utc>::UNIX_EPOCH,
                current_interval: None,
                status: req_field(row, name, "task_status")?,
                policy: req_field(row, name, "task_policy")?,
                retries_left: 0,
                priority: None,
            },
            run: read_run(row, name, ["task_run_id", "task_run_status"], id)?,
        })
    }
}

impl ToWire for ArchivePage {
    fn to_wire(&self) -> Wire {
        let mut out = vec![(Wire::str("tasks"), self.rows.to_wire())];
        if let Some(t) = &self.next_page_token {
            out.push((Wire::str("next_page_token"), Wire::str(t.clone())));
        }
        Wire::Map(out)
    }
}

impl FromWire for ArchivePage {
    fn from_wire(name: &str, w: &Wire) -> R<Self> {
        Ok(ArchivePage {
            rows: opt_field(w, name, "tasks")?.unwrap_or_default(),
            next_page_token: opt_field(w, name, "next_page_token")?,
        })
    }
}

/// `search_tasks`' filters: eight keyword arguments, each a scalar or a list (`policy` a
/// scalar), where Python-falsy values ("", [], 0) are ignored, as the original does.
pub struct SearchFilters;

fn many<T: FromWire>(args: &mut Args, name: &str) -> R<Vec<T>> {
    match args.truthy(name) {
        None => Ok(Vec::new()),
        Some(Wire::Array(a)) => a.iter().map(|v| T::from_wire(name, v)).collect(),
        Some(one) => Ok(vec![T::from_wire(name, &one)?]),
    }
}

fn one<T: FromWire>(args: &mut Args, name: &str) -> R<Option<T>> {
    args.truthy(name)
        .map(|v| T::from_wire(name, &v))
        .transpose()
}

impl<'a> ArgCodec<&'a TaskSearch, TaskSearch> for SearchFilters {
    fn read(args: &mut Args, _: &str, _: Option<TaskSearch>) -> R<TaskSearch> {
        Ok(TaskSearch {
            task_ids: many(args, "task_id")?,
            task_types: many(args, "task_type")?,
            statuses: many(args, "status")?,
            priorities: many(args, "priority")?,
            policies: one(args, "policy")?.into_iter().collect(),
            before: one(args, "before")?,
            after: one(args, "after")?,
            limit: one::<usize>(args, "limit")?.filter(|l| *l > 0),
        })
    }

    fn write(s: &&'a TaskSearch, _: &str, out: &mut Vec<(Wire, Wire)>) {
        let list = |v: Wire| match v {
            Wire::Array(a) if a.is_empty() => Wire::Nil,
            v => v,
        };
        for (k, v) in [
            ("task_id", list(s.task_ids.to_wire())),
            ("task_type", list(s.task_types.to_wire())),
            ("status", list(s.statuses.to_wire())),
            ("priority", list(s.priorities.to_wire())),
            ("policy", s.policies.first().to_wire()),
            ("before", s.before.to_wire()),
            ("after", s.after.to_wire()),
            ("limit", s.limit.to_wire()),
        ] {
            out.push((Wire::str(k), v));
        }
    }
}

/// `after_ts`/`before_ts`: datetimes, or ISO text (a date alone, or without an offset, is UTC,
/// as PostgreSQL reads it in the original's UTC sessions).
pub struct ArchiveBound;

impl ArgCodec<DateTime<Utc>, DateTime<Utc>> for ArchiveBound {
    fn read(args: &mut Args, name: &str, _: Option<DateTime<Utc>>) -> R<DateTime<Utc>> {
        let w = args.opt(name).ok_or_else(|| args.missing(name))?;
        if let Wire::Str(s) = &w {
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
            }
            for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
                    return Ok(n.and_utc());
                }
            }
        }
        DateTime::from_wire(name, &w)
    }

    fn write(value: &DateTime<Utc>, name: &str, out: &mut Vec<(Wire, Wire)>) {
        put(value, name, out)
    }
}

/// `filter_task_to_archive`'s page token: a task id, as text or as an integer.
pub struct PageToken;

impl<'a> ArgCodec<Option<&'a str>, Option<String>> for PageToken {
    fn read(args: &mut Args, name: &str, _: Option<Option<String>>) -> R<Option<String>> {
        args.opt(name)
            .map(|v| match v {
                Wire::Int(i) => Ok(i.to_string()),
                other => String::from_wire(name, &other),
            })
            .transpose()
    }

    fn write(value: &Option<&'a str>, name: &str, out: &mut Vec<(Wire, Wire)>) {
        put(value, name, out)
    }
}

/// `get_task_runs`' task ids: a list, or one id.
pub struct OneOrMany;

impl<'a> ArgCodec<&'a [i64], Vec<i64>> for OneOrMany {
    fn read(args: &mut Args, name: &str, _: Option<Vec<i64>>) -> R<Vec<i64>> {
        match args.opt(name).ok_or_else(|| args.missing(name))? {
            Wire::Array(v) => v.iter().map(|v| i64::from_wire(name, v)).collect(),
            other => Ok(vec![i64::from_wire(name, &other)?]),
        }
    }

    fn write(value: &&'a [i64], name: &str, out: &mut Vec<(Wire, Wire)>) {
        put(value, name, out)
    }
}

by_ref!(Lister);

/// An origin-visit model object as the original sends it: a `scheduler_model` with the attrs
/// fields in order, then `__type__`.
fn scheduler_model<const N: usize>(class: &str, fields: [(&str, Wire); N]) -> Wire {
    let mut m: Vec<(Wire, Wire)> = fields.into_iter().map(|(k, v)| (Wire::str(k), v)).collect();
    m.push((Wire::str("__type__"), Wire::str(class)));
    Wire::Tagged("scheduler_model", Box::new(Wire::Map(m)))
}

/// A UUID, as the tagged `uuid` the original sends or as text.
fn uuid(field: &str, w: &Wire) -> R<String> {
    let s = match w {
        Wire::Uuid(s) | Wire::Str(s) => s,
        other => return Err(bad_type(field, other, "a UUID")),
    };
    uuid::Uuid::parse_str(s)
        .map(|u| u.to_string())
        .map_err(|_| CallError::bad(format!("invalid {field}: {s:?} is not a UUID")))
}

impl ToWire for Lister {
    fn to_wire(&self) -> Wire {
        scheduler_model(
            "Lister",
            [
                ("name", Wire::str(self.name.clone())),
                ("instance_name", Wire::str(self.instance_name.clone())),
                ("id", self.id.clone().map_or(Wire::Nil, Wire::Uuid)),
                ("current_state", self.current_state.to_wire()),
                ("created", opt(&self.created)),
                ("updated", opt(&self.updated)),
            ],
        )
    }
}

impl FromWire for Lister {
    fn from_wire(name: &str, w: &Wire) -> R<Self> {
        if !matches!(w, Wire::Map(_)) {
            return Err(bad_type(name, w, "a Lister"));
        }
        Ok(Lister {
            name: req_field(w, name, "name")?,
            instance_name: opt_field(w, name, "instance_name")?.unwrap_or_default(),
            id: w
                .get("id")
                .filter(|v| !v.is_nil())
                .map(|v| uuid(&format!("{name}.id"), v))
                .transpose()?,
            current_state: opt_field(w, name, "current_state")?.unwrap_or_default(),
            created: opt_field(w, name, "created")?,
            updated: opt_field(w, name, "updated")?,
        })
    }
}

by_ref!(GrabOptions);

fn opt_uuid(name: &str, w: &Wire, k: &str) -> R<Option<String>> {
    w.get(k)
        .filter(|v| !v.is_nil())
        .map(|v| uuid(&format!("{name}.{k}"), v))
        .transpose()
}

impl ToWire for ListedOrigin {
    fn to_wire(&self) -> Wire {
        scheduler_model(
            "ListedOrigin",
            [
                ("lister_id", Wire::Uuid(self.lister_id.clone())),
                ("url", Wire::str(self.url.clone())),
                ("visit_type", Wire::str(self.visit_type.clone())),
                (
                    "extra_loader_arguments",
                    self.extra_loader_arguments.to_wire(),
                ),
                ("last_update", opt(&self.last_update)),
                ("enabled", Wire::Bool(self.enabled)),
                ("first_seen", opt(&self.first_seen)),
                ("last_seen", opt(&self.last_seen)),
            ],
        )
    }
}

impl FromWire for ListedOrigin {
    fn from_wire(name: &str, w: &Wire) -> R<Self> {
        if !matches!(w, Wire::Map(_)) {
            return Err(bad_type(name, w, "a ListedOrigin"));
        }
        Ok(ListedOrigin {
            lister_id: opt_uuid(name, w, "lister_id")?
                .ok_or_else(|| CallError::bad(format!("{name}: missing \"lister_id\"")))?,
            url: req_field(w, name, "url")?,
            visit_type: req_field(w, name, "visit_type")?,
            extra_loader_arguments: opt_field(w, name, "extra_loader_arguments")?
                .unwrap_or_default(),
            last_update: opt_field(w, name, "last_update")?,
            enabled: opt_field(w, name, "enabled")?.unwrap_or(true),
            first_seen: opt_field(w, name, "first_seen")?,
            last_seen: opt_field(w, name, "last_seen")?,
        })
    }
}

fn bytes_field(name: &str, w: &Wire, k: &str) -> R<Option<Vec<u8>>> {
    match w.get(k) {
        None | Some(Wire::Nil) => Ok(None),
        Some(Wire::Bytes(b)) => Ok(Some(b.clone())),
        Some(other) => Err(bad_type(&format!("{name}.{k}"), other, "bytes")),
    }
}

impl ToWire for OriginVisitStats {
    fn to_wire(&self) -> Wire {
        scheduler_model(
            "OriginVisitStats",
            [
                ("url", Wire::str(self.url.clone())),
                ("visit_type", Wire::str(self.visit_type.clone())),
                ("last_eventful", opt(&self.last_eventful)),
                ("last_uneventful", opt(&self.last_uneventful)),
                ("last_failed", opt(&self.last_failed)),
                ("last_notfound", opt(&self.last_notfound)),
                ("last_scheduled", opt(&self.last_scheduled)),
                (
                    "last_snapshot",
                    self.last_snapshot.clone().map_or(Wire::Nil, Wire::Bytes),
                ),
            ],
        )
    }
}

impl FromWire for OriginVisitStats {
    fn from_wire(name: &str, w: &Wire) -> R<Self> {
        if !matches!(w, Wire::Map(_)) {
            return Err(bad_type(name, w, "an OriginVisitStats"));
        }
        Ok(OriginVisitStats {
            url: req_field(w, name, "url")?,
            visit_type: req_field(w, name, "visit_type")?,
            last_eventful: opt_field(w, name, "last_eventful")?,
            last_uneventful: opt_field(w, name, "last_uneventful")?,
            last_failed: opt_field(w, name, "last_failed")?,
            last_notfound: opt_field(w, name, "last_notfound")?,
            last_scheduled: opt_field(w, name, "last_scheduled")?,
            last_snapshot: bytes_field(name, w, "last_snapshot")?,
        })
    }
}

impl ToWire for SchedulerMetrics {
    fn to_wire(&self) -> Wire {
        scheduler_model(
            "SchedulerMetrics",
            [
                ("lister_id", Wire::Uuid(self.lister_id.clone())),
                ("visit_type", Wire::str(self.visit_type.clone())),
                ("last_update", Wire::DateTime(self.last_update)),
                ("origins_known", self.origins_known.to_wire()),
                ("origins_enabled", self.origins_enabled.to_wire()),
                (
                    "origins_never_visited",
                    self.origins_never_visited.to_wire(),
                ),
                (
                    "origins_with_pending_changes",
                    self.origins_with_pending_changes.to_wire(),
                ),
            ],
        )
    }
}

impl FromWire for SchedulerMetrics {
    fn from_wire(name: &str, w: &Wire) -> R<Self> {
        Ok(SchedulerMetrics {
            lister_id: opt_uuid(name, w, "lister_id")?
                .ok_or_else(|| CallError::bad(format!("{name}: missing \"lister_id\"")))?,
            visit_type: req_field(w, name, "visit_type")?,
            last_update: req_field(w, name, "last_update")?,
            origins_known: opt_field(w, name, "origins_known")?.unwrap_or(0),
            origins_enabled: opt_field(w, name, "origins_enabled")?.unwrap_or(0),
            origins_never_visited: opt_field(w, name, "origins_never_visited")?.unwrap_or(0),
            origins_with_pending_changes: opt_field(w, name, "origins_with_pending_changes")?
                .unwrap_or(0),
        })
    }
}

/// A `(url, visit_type)` pair of `origin_visit_stats_get`, a 2-list on the wire.
impl ToWire for (String, String) {
    fn to_wire(&self) -> Wire {
        Wire::Array(vec![Wire::str(self.0.clone()), Wire::str(self.1.clone())])
    }
}

impl FromWire for (String, String) {
    fn from_wire(name: &str, w: &Wire) -> R<Self> {
        match w {
            Wire::Array(a) if a.len() == 2 => Ok((
                String::from_wire(&format!("{name}[0]"), &a[0])?,
                String::from_wire(&format!("{name}[1]"), &a[1])?,
            )),
            other => Err(bad_type(name, other, "a pair [url, visit_type]")),
        }
    }
}

/// A page of listings: the original's `paged_result`, whose token is `[lister_id, url]`.
impl ToWire for ListedOriginPage {
    fn to_wire(&self) -> Wire {
        Wire::Tagged(
            "paged_result",
            Box::new(Wire::map([
                ("results", self.results.to_wire()),
                (
                    "next_page_token",
                    self.next_page_token.as_ref().map_or(Wire::Nil, |(l, u)| {
                        Wire::Array(vec![Wire::str(l.clone()), Wire::str(u.clone())])
                    }),
                ),
            ])),
        )
    }
}

impl FromWire for ListedOriginPage {
    fn from_wire(name: &str, w: &Wire) -> R<Self> {
        let token = match w.get("next_page_token") {
            None | Some(Wire::Nil) => None,
            Some(t) => Some(page_position(&format!("{name}.next_page_token"), t)?),
        };
        Ok(ListedOriginPage {
            results: opt_field(w, name, "results")?.unwrap_or_default(),
            next_page_token: token,
        })
    }
}

/// A page token of `get_listed_origins`: `[lister_id, url]`.
fn page_position(field: &str, w: &Wire) -> R<(String, String)> {
    match w {
        Wire::Array(a) if a.len() == 2 => Ok((
            uuid(&format!("{field}[0]"), &a[0])?,
            String::from_wire(&format!("{field}[1]"), &a[1])?,
        )),
        other => Err(bad_type(field, other, "a page token [lister_id, url]")),
    }
}

/// `get_listed_origins`' page token argument.
pub struct PagePosition;

impl ArgCodec<Option<(String, String)>, Option<(String, String)>> for PagePosition {
    fn read(
        args: &mut Args,
        name: &str,
        _: Option<Option<(String, String)>>,
    ) -> R<Option<(String, String)>> {
        args.opt(name).map(|w| page_position(name, &w)).transpose()
    }

    fn write(value: &Option<(String, String)>, name: &str, out: &mut Vec<(Wire, Wire)>) {
        if let Some(t) = value {
            out.push((Wire::str(name), t.to_wire()));
        }
    }
}

/// `grab_next_visits`' keyword arguments past the policy: the original's `timestamp`, and
/// those later versions added (each applied only when sent).
pub struct GrabKwargs;

fn cooldown(args: &mut Args, name: &str) -> R<Option<chrono::Duration>> {
    args.opt(name)
        .map(|w| {
            let i = Interval::from_wire(name, &w)?;
            Ok(chrono::Duration::microseconds(i.as_micros()))
        })
        .transpose()
}

impl<'a> ArgCodec<&'a GrabOptions, GrabOptions> for GrabKwargs {
    fn read(args: &mut Args, _: &str, _: Option<GrabOptions>) -> R<GrabOptions> {
        let opt_text =
            |args: &mut Args, k: &str| args.opt(k).map(|w| String::from_wire(k, &w)).transpose();
        // later clients send `enabled=True` (the default); disabled origins are not indexed
        if let Some(w) = args.opt("enabled")
            && !bool::from_wire("enabled", &w)?
        {
            return Err(CallError::bad(
                "invalid enabled False: this scheduler grabs enabled origins only",
            ));
        }
        Ok(GrabOptions {
            timestamp: args
                .opt("timestamp")
                .map(|w| DateTime::from_wire("timestamp", &w))
                .transpose()?,
            scheduled_cooldown: cooldown(args, "scheduled_cooldown")?,
            failed_cooldown: cooldown(args, "failed_cooldown")?,
            not_found_cooldown: cooldown(args, "not_found_cooldown")?,
            absolute_cooldown: cooldown(args, "absolute_cooldown")?,
            lister_uuid: args
                .opt("lister_uuid")
                .map(|w| uuid("lister_uuid", &w))
                .transpose()?,
            lister_name: opt_text(args, "lister_name")?,
            lister_instance_name: opt_text(args, "lister_instance_name")?,
            dry_run: args
                .opt("dry_run")
                .map(|w| bool::from_wire("dry_run", &w))
                .transpose()?
                .unwrap_or(false),
        })
    }

    fn write(o: &&'a GrabOptions, _: &str, out: &mut Vec<(Wire, Wire)>) {
        // only what is set, so that a 0.16 server accepts the call
        let td = |d: Option<chrono::Duration>| {
            d.and_then(|d| d.num_microseconds())
                .map(Interval::from_micros)
        };
        put(&o.timestamp, "timestamp", out);
        put(&td(o.scheduled_cooldown), "scheduled_cooldown", out);
        put(&td(o.failed_cooldown), "failed_cooldown", out);
        put(&td(o.not_found_cooldown), "not_found_cooldown", out);
        put(&td(o.absolute_cooldown), "absolute_cooldown", out);
        put(&o.lister_uuid, "lister_uuid", out);
        put(&o.lister_name, "lister_name", out);
        put(&o.lister_instance_name, "lister_instance_name", out);
        if o.dry_run {
            put(&true, "dry_run", out);
        }
    }
}
