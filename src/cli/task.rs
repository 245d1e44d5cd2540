//! `swh-scheduler task …`

use std::collections::{BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::Subcommand;
use serde_json::{Map, Value};

use crate::api::SchedulerApi;
use crate::error::{Error, Result};
use crate::model::{NewTask, Policy, Priority, TaskSearch, TaskStatus};

use super::GlobalOptions;
use super::format::{run_block, task_block};

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Schedule one task from arguments: positional ARGs and k=v keyword arguments, each value
    /// in YAML
    Add {
        /// The task type
        #[arg(value_name = "TYPE")]
        task_type: String,
        /// Arguments: ARG (positional) or key=value (keyword), values in YAML
        #[arg(value_name = "ARG|k=v")]
        options: Vec<String>,
        #[arg(short, long, default_value = "recurring", value_parser = ["recurring", "oneshot"])]
        policy: String,
        #[arg(short = 'P', long, value_parser = ["low", "normal", "high"])]
        priority: Option<String>,
        /// When to run first (ISO 8601; default: now)
        #[arg(short, long)]
        next_run: Option<String>,
    },
    /// Schedule tasks from a CSV file (or - for stdin), checked entirely before any is created
    Schedule {
        /// Columns of the file, in order (repeatable)
        #[arg(short, long = "columns", value_parser = ["type", "args", "kwargs", "policy", "next_run"],
              default_values = ["type", "args", "kwargs", "next_run"])]
        columns: Vec<String>,
        #[arg(short, long, default_value = ",")]
        delimiter: char,
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List tasks (all statuses unless -s is given)
    List {
        /// Only the task with this id (repeatable)
        #[arg(short = 'i', long = "task-id", value_name = "ID")]
        task_id: Vec<i64>,
        /// Only tasks of this type (repeatable)
        #[arg(short = 't', long = "task-type", value_name = "TYPE")]
        task_type: Vec<String>,
        /// The maximum number of tasks to fetch
        #[arg(short, long)]
        limit: Option<usize>,
        /// Only tasks with this status (repeatable)
        #[arg(short, long, value_parser = ["next_run_not_scheduled", "next_run_scheduled", "completed", "disabled", "all"])]
        status: Vec<String>,
        #[arg(short, long, value_parser = ["recurring", "oneshot"])]
        policy: Option<String>,
        /// Only tasks with this priority (repeatable)
        #[arg(short = 'P', long, value_parser = ["all", "low", "normal", "high"])]
        priority: Vec<String>,
        /// Only tasks due to run at or before this date
        #[arg(short, long, value_name = "DATETIME")]
        before: Option<String>,
        /// Only tasks due to run at or after this date
        #[arg(short, long, value_name = "DATETIME")]
        after: Option<String>,
        /// Also list the runs of each task
        #[arg(short = 'r', long)]
        list_runs: bool,
        /// Also list the runs of each task, with their metadata
        #[arg(short = 'm', long)]
        list_runs_metadata: bool,
    },
    /// List the due tasks (without a priority) of some types, next first
    ListPending {
        #[arg(value_name = "TYPE", required = true)]
        task_types: Vec<String>,
        /// The maximum number of tasks to fetch
        #[arg(short, long)]
        limit: Option<usize>,
        /// Due at or before this date [default: now]
        #[arg(short, long, value_name = "DATETIME")]
        before: Option<String>,
    },
    /// Make tasks due again (now, or at --next-run)
    Respawn {
        #[arg(value_name = "ID", required = true)]
        task_ids: Vec<i64>,
        #[arg(short, long, value_name = "DATETIME")]
        next_run: Option<String>,
    },
    /// Disable tasks
    Disable {
        #[arg(value_name = "ID", required = true)]
        task_ids: Vec<i64>,
    },
}

/// A date option: ISO 8601 with or without offset (then UTC, as the original's database
/// session reads it), a date alone, or `now`.
pub fn parse_when(field: &str, s: &str) -> Result<DateTime<Utc>> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(Utc::now());
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    if let Ok(d) = crate::rpc::codec::parse_iso_datetime(t) {
        return Ok(d);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(n.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap().and_utc());
    }
    Err(Error::invalid(
        field,
        s,
        "expected a date like 2026-07-20, 2026-07-20T10:00:00+00:00 or now",
    ))
}

fn opt_when(field: &str, s: &Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(|s| parse_when(field, s)).transpose()
}

/// A command-line value read as YAML, as the original reads them.
fn yaml_value(s: &str) -> Result<Value> {
    if s.is_empty() {
        return Ok(Value::String(String::new()));
    }
    serde_norway::from_str::<Value>(s)
        .map_err(|e| Error::invalid("argument", s, format!("not valid YAML: {e}")))
}

/// `ARG` and `key=value` words to args and kwargs.
pub fn parse_options(options: &[String]) -> Result<(Vec<Value>, Map<String, Value>)> {
    let mut args = Vec::new();
    let mut kwargs = Map::new();
    for o in options {
        match o.split_once('=') {
            Some((k, v)) => {
                kwargs.insert(k.to_string(), yaml_value(v)?);
            }
            None => args.push(yaml_value(o)?),
        }
    }
    Ok((args, kwargs))
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Prints blocks as the original: lines joined by newlines, then one more.
fn echo(parts: &[String]) {
    println!("{}", parts.join("\n"));
}

pub async fn run(global: &GlobalOptions, cmd: TaskCommand) -> Result<()> {
    let sched = global.scheduler().await?;
    match cmd {
        TaskCommand::Add {
            task_type,
            options,
            policy,
            priority,
            next_run,
        } => {
            if sched.get_task_type(&task_type).await?.is_none() {
                return Err(Error::Other(format!("Unknown task name {task_type}.")));
            }
            let (args, kwargs) = parse_options(&options)?;
            let mut t = NewTask::new(&task_type, args, kwargs);
            t.policy = Some(policy.parse()?);
            t.priority = priority
                .as_deref()
                .map(str::parse::<Priority>)
                .transpose()?;
            t.next_run = Some(opt_when("next_run", &next_run)?.unwrap_or_else(Utc::now));
            let created = sched.create_tasks(&[t], Policy::Recurring).await?;
            let mut out = vec![format!("Created {} tasks\n", created.len())];
            out.extend(created.iter().map(|t| task_block(t, false, today())));
            echo(&out);
        }
        TaskCommand::Schedule {
            columns,
            delimiter,
            file,
        } => schedule(&sched, &columns, delimiter, &file).await?,
        TaskCommand::List {
            task_id,
            task_type,
            limit,
            status,
            policy,
            priority,
            before,
            after,
            list_runs,
            list_runs_metadata,
        } => {
            let mut search = TaskSearch {
                task_ids: task_id,
                task_types: task_type,
                limit,
                before: opt_when("before", &before)?,
                after: opt_when("after", &after)?,
                ..Default::default()
            };
            if !status.iter().any(|s| s == "all") {
                search.statuses = status.iter().map(|s| s.parse()).collect::<Result<_>>()?;
            }
            if !priority.iter().any(|s| s == "all") {
                search.priorities = priority.iter().map(|s| s.parse()).collect::<Result<_>>()?;
            }
            if let Some(p) = policy {
                search.policies = vec![p.parse()?];
            }
            // in the order search_tasks gives: creation order, as the original's id order
            let tasks = sched.search_tasks(&search).await?;
            let mut runs: HashMap<i64, Vec<_>> = HashMap::new();
            if (list_runs || list_runs_metadata) && !tasks.is_empty() {
                let ids: Vec<i64> = tasks.iter().map(|t| t.id).collect();
                for r in sched.get_task_runs(&ids, None).await? {
                    runs.entry(r.task).or_default().push(r);
                }
            }
            let mut out = vec![format!("Found {} tasks\n", tasks.len())];
            for t in &tasks {
                out.push(task_block(t, true, today()));
                if let Some(rs) = runs.get_mut(&t.id) {
                    rs.sort_by_key(|r| r.id);
                    out.push("  Executions:".into());
                    out.extend(rs.iter().map(|r| run_block(r, list_runs_metadata)));
                }
            }
            echo(&out);
        }
        TaskCommand::ListPending {
            task_types,
            limit,
            before,
        } => {
            let before = opt_when("before", &before)?;
            let mut out = Vec::new();
            for ty in &task_types {
                let pending = sched.peek_ready_tasks(ty, before, limit).await?;
                out.push(format!("Found {} {ty} tasks\n", pending.len()));
                out.extend(pending.iter().map(|t| task_block(t, false, today())));
            }
            echo(&out);
        }
        TaskCommand::Respawn { task_ids, next_run } => {
            let next_run = opt_when("next_run", &next_run)?.unwrap_or_else(Utc::now);
            sched
                .set_status_tasks(
                    &task_ids,
                    TaskStatus::NextRunNotScheduled,
                    Some(next_run),
                    false,
                )
                .await?;
            echo(&[format!("Respawn tasks {task_ids:?}\n")]);
        }
        TaskCommand::Disable { task_ids } => {
            sched.disable_tasks(&task_ids).await?;
            echo(&[format!("Disable tasks {task_ids:?}\n")]);
        }
    }
    Ok(())
}

/// Tasks per create_tasks call when importing a CSV file, and calls in flight.
const IMPORT_BATCH: usize = 1000;
const IMPORT_IN_FLIGHT: usize = 4;
/// Up to this many created tasks are listed after an import, as the original does; past it
/// only the count is printed (a million-line import would print a million blocks).
const LIST_AT_MOST: usize = 1000;

/// A number in JSON arguments that was an integer beyond 64 bits (serde_json reads those as
/// floats, silently; the RPC API refuses them): an integral float out of the i64 and u64 range.
fn too_big_integer(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) if n.is_f64() => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (*f >= u64::MAX as f64 || *f < i64::MIN as f64)),
        Value::Array(a) => a.iter().find_map(too_big_integer),
        Value::Object(m) => m.values().find_map(too_big_integer),
        _ => None,
    }
}

/// `task schedule`: the file is read twice, first to check every line (so that a bad line
/// creates nothing), then to create the tasks in batches, streaming (memory stays flat).
/// Standard input is spooled to a temporary file for the second reading.
async fn schedule(
    sched: &Arc<dyn SchedulerApi>,
    columns: &[String],
    delimiter: char,
    file: &std::path::Path,
) -> Result<()> {
    let io = |e: std::io::Error| Error::Other(format!("cannot read {}: {e}", file.display()));
    let mut _spool = None;
    let path = if file.as_os_str() == "-" {
        let mut tmp = tempfile_in_target()?;
        std::io::copy(&mut std::io::stdin().lock(), tmp.as_file_mut()).map_err(io)?;
        let p = tmp.path().to_path_buf();
        _spool = Some(tmp);
        p
    } else {
        file.to_path_buf()
    };
    if !u8::try_from(delimiter as u32).is_ok_and(|d| d.is_ascii()) {
        return Err(Error::invalid(
            "delimiter",
            delimiter,
            "must be one ASCII character",
        ));
    }
    let types = sched.get_task_types().await?;
    let mut known: HashMap<String, String> = types
        .iter()
        .map(|t| (t.task_type.clone(), t.task_type.clone()))
        .collect();
    for t in &types {
        // a Celery task name is accepted for its type, as the original accepts it
        known
            .entry(t.backend_name.clone())
            .or_insert_with(|| t.task_type.clone());
    }
    let now = Utc::now();
    let reader = || -> Result<csv::Reader<std::fs::File>> {
        Ok(csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter as u8)
            .from_reader(std::fs::File::open(&path).map_err(io)?))
    };
    let parse = |line: u64, rec: &csv::StringRecord| -> Result<NewTask> {
        let at = |what: String| Error::Other(format!("{}: line {line}: {what}", file.display()));
        // values are quoted in errors, but only their start: a line can be megabytes
        let short = |v: &str| -> String {
            match v.char_indices().nth(40) {
                Some((cut, _)) => format!("{:?}... ({} bytes)", &v[..cut], v.len()),
                None => format!("{v:?}"),
            }
        };
        let mut t = NewTask::new("", vec![], Map::new());
        t.next_run = Some(now);
        for (col, value) in columns.iter().zip(rec.iter()) {
            match col.as_str() {
                "type" => {
                    t.task_type = known
                        .get(value)
                        .cloned()
                        .ok_or_else(|| at(format!("unknown task type {}", short(value))))?;
                }
                "args" => match serde_json::from_str(value) {
                    Ok(Value::Array(a)) => t.arguments.args = a,
                    Ok(_) => return Err(at(format!("args {} is not a JSON list", short(value)))),
                    Err(e) => return Err(at(format!("args {} is not JSON: {e}", short(value)))),
                },
                "kwargs" => match serde_json::from_str(value) {
                    Ok(Value::Object(m)) => t.arguments.kwargs = m,
                    Ok(_) => {
                        return Err(at(format!("kwargs {} is not a JSON object", short(value))));
                    }
                    Err(e) => return Err(at(format!("kwargs {} is not JSON: {e}", short(value)))),
                },
                "policy" => t.policy = Some(value.parse().map_err(|e: Error| at(e.to_string()))?),
                _ => {
                    let when = parse_when("next_run", value).map_err(|e| at(e.to_string()))?;
                    // the check creation does, done in the first reading (all or nothing)
                    crate::model::check_time("next_run", when).map_err(|e| at(e.to_string()))?;
                    t.next_run = Some(when);
                }
            }
        }
        if t.task_type.is_empty() {
            return Err(at("no task type".into()));
        }
        let args = t.arguments.args.iter();
        if let Some(n) = args
            .chain(t.arguments.kwargs.values())
            .find_map(too_big_integer)
        {
            return Err(at(format!(
                "the number {n} is an integer beyond 64 bits, which task arguments cannot hold"
            )));
        }
        Ok(t)
    };

    // first reading: check every line
    let (total, policies_need_interval) = check_lines(reader()?, &parse, file)?;
    for ty in &policies_need_interval {
        if types
            .iter()
            .any(|t| &t.task_type == ty && t.default_interval.is_none())
        {
            return Err(Error::invalid(
                "policy",
                "recurring",
                format!(
                    "task type {ty:?} has no default_interval, so its tasks can only be oneshot"
                ),
            ));
        }
    }

    // second reading: create, a few batches in flight
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} tasks  {per_sec}  eta {eta}",
            )
            .expect("template"),
        );
        b
    });
    let mut listed = Vec::new();
    let mut created = 0usize;
    let mut in_flight = tokio::task::JoinSet::new();
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut records = reader()?;
    let mut rec = csv::StringRecord::new();
    let mut line = 0u64;
    loop {
        let more = records
            .read_record(&mut rec)
            .map_err(|e| Error::Other(format!("{}: line {}: {e}", file.display(), line + 1)))?;
        if more {
            line += 1;
            batch.push(parse(line, &rec)?);
        }
        if batch.len() == IMPORT_BATCH || (!more && !batch.is_empty()) {
            let tasks = std::mem::take(&mut batch);
            let s = sched.clone();
            in_flight.spawn(async move {
                s.create_tasks(&tasks, Policy::Recurring)
                    .await
                    .map(|c| (tasks.len(), c))
            });
        }
        while in_flight.len() >= IMPORT_IN_FLIGHT || (!more && !in_flight.is_empty()) {
            let (n, made) = in_flight
                .join_next()
                .await
                .expect("a batch")
                .map_err(|e| Error::Other(e.to_string()))??;
            created += made.len();
            if listed.len() < LIST_AT_MOST + 1 {
                listed.extend(made.into_iter().take(LIST_AT_MOST + 1 - listed.len()));
            }
            if let Some(b) = &bar {
                b.inc(n as u64);
            }
        }
        if !more {
            break;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut out = vec![format!("Created {created} tasks\n")];
    if created <= LIST_AT_MOST {
        listed.sort_by_key(|t| t.id);
        out.extend(listed.iter().map(|t| task_block(t, false, today())));
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    writeln!(lock, "{}", out.join("\n")).map_err(|e| Error::Other(e.to_string()))?;
    if created > LIST_AT_MOST {
        eprintln!("(the {created} tasks are not listed; see `swh-scheduler task list`)");
    }
    Ok(())
}

/// The first reading of `task schedule`: every record of `rdr` checked by `parse`. Returns
/// the records read and the task types given recurring tasks, or the first bad line's error.
fn check_lines<R, P>(
    mut rdr: csv::Reader<R>,
    parse: &P,
    file: &std::path::Path,
) -> Result<(u64, BTreeSet<String>)>
where
    R: std::io::Read,
    P: Fn(u64, &csv::StringRecord) -> Result<NewTask>,
{
    let mut recurring = BTreeSet::new();
    let mut total = 0u64;
    // one record read into again and again: no allocation a line
    let mut rec = csv::StringRecord::new();
    loop {
        let line = total + 1;
        match rdr.read_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => return Ok((total, recurring)),
            Err(e) => {
                return Err(Error::Other(format!(
                    "{}: line {line}: {e}",
                    file.display()
                )));
            }
        }
        let t = parse(line, &rec)?;
        if t.policy.unwrap_or(Policy::Recurring) == Policy::Recurring {
            recurring.insert(t.task_type);
        }
        total = line;
    }
}

/// A temporary file for spooling standard input.
fn tempfile_in_target() -> Result<tempfile::NamedTempFile> {
    tempfile::NamedTempFile::new()
        .map_err(|e| Error::Other(format!("cannot create a temporary file: {e}")))
}
