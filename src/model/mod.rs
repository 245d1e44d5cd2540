//! The domain: task types, tasks and their runs, with the original's names and status strings.
//! Nothing here does I/O.

pub mod ids;
mod interval;
mod lister;
mod origins;

pub use interval::{Interval, ParseIntervalError};
pub use lister::{Lister, MAX_LISTER_NAME, validate_lister_name};
pub use origins::{
    GrabOptions, ListedOrigin, ListedOriginPage, MAX_BATCH, MAX_EXTRA_LOADER_ARGUMENTS, MAX_URL,
    OriginVisitStats, SchedulerMetrics, VisitOutcome, VisitPolicy, VisitRules, VisitStatus,
    validate_origin_text,
};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Declares a string enum whose variants map one-to-one onto the original's strings and onto
/// the small integer codes stored in Redis records (see `lua/includes/codes.lua`).
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($variant:ident = $code:literal, $text:literal;)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The field name used in error messages.
            pub const FIELD: &'static str = $field;

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// The code stored in Redis records.
            pub fn code(self) -> u8 {
                match self { $($name::$variant => $code),+ }
            }
            pub fn from_code(code: u64) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> Result<Self, crate::Error> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(crate::Error::invalid(
                        $field,
                        s,
                        format!("expected one of: {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// A task's scheduling status.
    TaskStatus, "status" {
        NextRunNotScheduled = 0, "next_run_not_scheduled";
        NextRunScheduled = 1, "next_run_scheduled";
        Completed = 2, "completed";
        Disabled = 3, "disabled";
    }
);

string_enum!(
    /// Whether a task comes back after it runs.
    Policy, "policy" {
        Recurring = 0, "recurring";
        Oneshot = 1, "oneshot";
    }
);

string_enum!(
    /// A task's priority; tasks with one are served by the `*_priority_tasks` calls.
    Priority, "priority" {
        High = 1, "high";
        Normal = 2, "normal";
        Low = 3, "low";
    }
);

string_enum!(
    /// The status of one run of a task.
    RunStatus, "status" {
        Scheduled = 0, "scheduled";
        Started = 1, "started";
        Eventful = 2, "eventful";
        Uneventful = 3, "uneventful";
        Failed = 4, "failed";
        Permfailed = 5, "permfailed";
        Lost = 6, "lost";
    }
);

impl RunStatus {
    /// Whether a run in this status has ended (the end-of-run rules have applied).
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Scheduled | RunStatus::Started)
    }
}

/// The longest interval accepted: a century.
pub const MAX_INTERVAL: Interval = Interval::from_days(36_525);
/// The largest backoff factor accepted.
pub const MAX_BACKOFF_FACTOR: f64 = 1000.0;

/// Refuses times too far from 1970 for the store's microsecond counts to stay exact in Lua
/// (whose numbers are doubles): about 1685 to 2255.
pub fn check_time(field: &str, t: DateTime<Utc>) -> crate::Result<()> {
    if to_micros(t).unsigned_abs() >= 1 << 53 {
        return Err(crate::Error::invalid(
            field,
            t.to_rfc3339(),
            "must be between the years 1700 and 2250",
        ));
    }
    Ok(())
}

/// The default `max_queue_length` of a new task type (as the original's schema).
pub const DEFAULT_MAX_QUEUE_LENGTH: i64 = 1000;

/// A kind of task: which Celery task runs it and how its runs are rescheduled.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskType {
    pub task_type: String,
    pub description: String,
    /// The Celery task name; also the broker queue the runner sends to.
    pub backend_name: String,
    pub default_interval: Option<Interval>,
    pub min_interval: Option<Interval>,
    pub max_interval: Option<Interval>,
    pub backoff_factor: Option<f64>,
    /// `None` means no limit (the runner then sends up to 10000 per pass).
    pub max_queue_length: Option<i64>,
    pub num_retries: Option<i64>,
    /// `None` means one hour.
    pub retry_delay: Option<Interval>,
}

impl TaskType {
    /// A type with the original's defaults for everything but its names.
    pub fn new(task_type: &str, backend_name: &str, description: &str) -> Self {
        TaskType {
            task_type: task_type.into(),
            description: description.into(),
            backend_name: backend_name.into(),
            default_interval: None,
            min_interval: None,
            max_interval: None,
            backoff_factor: None,
            max_queue_length: Some(DEFAULT_MAX_QUEUE_LENGTH),
            num_retries: None,
            retry_delay: None,
        }
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> crate::Result<()> {
        validate_type_name(&self.task_type)?;
        if self.backend_name.is_empty() {
            return Err(crate::Error::invalid(
                "backend_name",
                "",
                "must name the Celery task",
            ));
        }
        for (field, value) in [
            ("default_interval", self.default_interval),
            ("min_interval", self.min_interval),
            ("max_interval", self.max_interval),
            ("retry_delay", self.retry_delay),
        ] {
            if let Some(v) = value.filter(|v| v.is_negative()) {
                return Err(crate::Error::invalid(field, v, "must not be negative"));
            }
            if let Some(v) = value.filter(|v| *v > MAX_INTERVAL) {
                return Err(crate::Error::invalid(field, v, "must not exceed a century"));
            }
        }
        if let (Some(min), Some(max)) = (self.min_interval, self.max_interval)
            && min > max
        {
            return Err(crate::Error::invalid(
                "min_interval",
                min,
                format!("is greater than max_interval {max}"),
            ));
        }
        if let Some(f) = self.backoff_factor
            && !(f.is_finite() && f > 0.0 && f <= MAX_BACKOFF_FACTOR)
        {
            return Err(crate::Error::invalid(
                "backoff_factor",
                f,
                format!("must be a positive number up to {MAX_BACKOFF_FACTOR}"),
            ));
        }
        for (field, value) in [
            ("max_queue_length", self.max_queue_length),
            ("num_retries", self.num_retries),
        ] {
            if let Some(v) = value.filter(|v| *v < 0) {
                return Err(crate::Error::invalid(field, v, "must not be negative"));
            }
        }
        Ok(())
    }
}

/// Task-type names become part of Redis hash tags, so braces are not allowed.
pub fn validate_type_name(name: &str) -> crate::Result<()> {
    if name.is_empty() || name.len() > 200 {
        return Err(crate::Error::invalid(
            "type",
            name,
            "must be 1 to 200 characters",
        ));
    }
    if name.contains(['{', '}']) || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(crate::Error::invalid(
            "type",
            name,
            "must not contain braces, spaces or control characters",
        ));
    }
    Ok(())
}

/// The arguments a task's Celery task is called with.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TaskArguments {
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
}

impl TaskArguments {
    /// The stored form: canonical (compact, keys sorted) JSON texts of args and kwargs. A
    /// Celery message body is `[` args `,` kwargs `,{…}]`, built by string concatenation.
    pub fn to_stored(&self) -> (String, String) {
        (
            serde_json::to_string(&self.args).expect("JSON values serialize"),
            serde_json::to_string(&self.kwargs).expect("JSON values serialize"),
        )
    }

    /// Reads the stored form back.
    pub fn from_stored(args: &str, kwargs: &str) -> Option<Self> {
        Some(TaskArguments {
            args: serde_json::from_str(args).ok()?,
            kwargs: serde_json::from_str(kwargs).ok()?,
        })
    }
}

/// A task to create (the fields `create_tasks` reads).
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    pub task_type: String,
    pub arguments: TaskArguments,
    /// `None` means now (the Redis server's clock).
    pub next_run: Option<DateTime<Utc>>,
    /// `None` takes the `policy` argument of `create_tasks`.
    pub policy: Option<Policy>,
    pub status: TaskStatus,
    /// `None` takes the type's `num_retries`, else 0.
    pub retries_left: Option<i64>,
    pub priority: Option<Priority>,
}

impl NewTask {
    pub fn new(task_type: &str, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        NewTask {
            task_type: task_type.into(),
            arguments: TaskArguments { args, kwargs },
            next_run: None,
            policy: None,
            status: TaskStatus::NextRunNotScheduled,
            retries_left: None,
            priority: None,
        }
    }
}

/// A stored task.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: i64,
    pub task_type: String,
    pub arguments: TaskArguments,
    pub next_run: DateTime<Utc>,
    pub current_interval: Option<Interval>,
    pub status: TaskStatus,
    pub policy: Policy,
    pub retries_left: i64,
    pub priority: Option<Priority>,
}

/// One run of a task: its Celery task id and what happened to it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRun {
    pub id: i64,
    pub task: i64,
    pub backend_id: String,
    pub scheduled: Option<DateTime<Utc>>,
    pub started: Option<DateTime<Utc>>,
    pub ended: Option<DateTime<Utc>>,
    /// `None` for a run recorded without metadata that has not started or ended (the
    /// original's NULL).
    pub metadata: Option<Map<String, Value>>,
    pub status: RunStatus,
}

/// A run to record with `mass_schedule_task_runs`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTaskRun {
    pub task: i64,
    pub backend_id: String,
    /// `None` means now.
    pub scheduled: Option<DateTime<Utc>>,
    /// `None` records the run without metadata (the original's NULL).
    pub metadata: Option<Map<String, Value>>,
}

/// Filters of `search_tasks`; empty lists and `None` match everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskSearch {
    pub task_ids: Vec<i64>,
    pub task_types: Vec<String>,
    pub statuses: Vec<TaskStatus>,
    pub priorities: Vec<Priority>,
    pub policies: Vec<Policy>,
    /// `next_run <= before`.
    pub before: Option<DateTime<Utc>>,
    /// `next_run >= after`.
    pub after: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

/// One row of `filter_task_to_archive`.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchivableRun {
    pub task: Task,
    pub run: TaskRun,
}

/// A page of `filter_task_to_archive`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ArchivePage {
    pub rows: Vec<ArchivableRun>,
    /// The task id to pass as `page_token` for the next page, if there is one.
    pub next_page_token: Option<String>,
}

/// Microseconds since the epoch, the unit of every time stored in Redis.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The datetime at `us` microseconds since the epoch.
pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_strings_and_codes_are_the_originals() {
        let names: Vec<_> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "scheduled",
                "started",
                "eventful",
                "uneventful",
                "failed",
                "permfailed",
                "lost"
            ]
        );
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), *s);
            assert_eq!(TaskStatus::from_code(s.code() as u64), Some(*s));
        }
        let e = "urgent".parse::<Priority>().unwrap_err().to_string();
        assert!(e.contains("priority") && e.contains("urgent"), "{e}");
    }

    #[test]
    fn stored_arguments_round_trip_and_form_a_body() {
        let a = TaskArguments {
            args: vec![json!(1), json!("x")],
            kwargs: json!({"z": 1, "a": [true]}).as_object().unwrap().clone(),
        };
        let (args, kwargs) = a.to_stored();
        assert_eq!(
            (args.as_str(), kwargs.as_str()),
            (r#"[1,"x"]"#, r#"{"a":[true],"z":1}"#)
        );
        assert_eq!(TaskArguments::from_stored(&args, &kwargs), Some(a));
        let body: Value = serde_json::from_str(&format!("[{args},{kwargs},{{}}]")).unwrap();
        assert_eq!(body.as_array().unwrap().len(), 3);
    }

    #[test]
    fn task_type_validation_names_the_field() {
        let mut t = TaskType::new(
            "load-git",
            "swh.loader.git.tasks.UpdateGitRepository",
            "git",
        );
        assert!(t.validate().is_ok());
        t.min_interval = Some(Interval::from_secs(-5));
        let e = t.validate().unwrap_err().to_string();
        assert!(
            e.contains("min_interval") && e.contains("-1 day, 23:59:55"),
            "{e}"
        );
        t.min_interval = None;
        t.task_type = "bad{type}".into();
        assert!(t.validate().unwrap_err().to_string().contains("bad{type}"));
    }
}
