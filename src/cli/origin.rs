//! `swh-scheduler origin …`: the original's `swh scheduler origin` commands, with its output.

use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{GrabOptions, ListedOrigin, NewTask, Policy};

use super::GlobalOptions;
use super::format::{py_repr, task_block};

/// The fields of a listed origin, in the original's order (its CSV columns).
const FIELDS: [&str; 8] = [
    "lister_id",
    "url",
    "visit_type",
    "extra_loader_arguments",
    "last_update",
    "enabled",
    "first_seen",
    "last_seen",
];

#[derive(Debug, Subcommand)]
pub enum OriginCommand {
    /// Grab the next COUNT origins to visit using the TYPE loader from the listed origins
    /// table (they are marked scheduled)
    GrabNext {
        /// Scheduling policy
        #[arg(short, long, default_value = "oldest_scheduled_first")]
        policy: String,
        /// Listed origin fields to print on output (comma-separated)
        #[arg(short, long)]
        fields: Option<String>,
        /// Print the CSV header (the default)
        #[arg(long, overrides_with = "without_header")]
        with_header: bool,
        /// Do not print the CSV header
        #[arg(long)]
        without_header: bool,
        #[arg(value_name = "TYPE")]
        visit_type: String,
        count: usize,
    },
    /// Send the next COUNT origin visits of the TYPE loader to the scheduler as one-shot
    /// tasks
    ScheduleNext {
        /// Scheduling policy
        #[arg(short, long, default_value = "oldest_scheduled_first")]
        policy: String,
        #[arg(value_name = "TYPE")]
        visit_type: String,
        count: usize,
    },
    /// Update the scheduler metrics on listed origins
    UpdateMetrics {
        /// Only update metrics for this lister
        #[arg(long)]
        lister: Option<String>,
        /// Only update metrics for this lister instance
        #[arg(long)]
        instance: Option<String>,
    },
}

/// Python's `str()` of a datetime: `2020-06-15 16:00:00.000001+00:00`.
fn py_datetime(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%d %H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
    }
}

fn py_opt_datetime(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "None".to_string(), py_datetime)
}

/// A listed origin's field as the original prints it (`str()` of the value).
fn field(o: &ListedOrigin, name: &str) -> String {
    match name {
        "lister_id" => o.lister_id.clone(),
        "url" => o.url.clone(),
        "visit_type" => o.visit_type.clone(),
        "extra_loader_arguments" => py_repr(&Value::Object(o.extra_loader_arguments.clone())),
        "last_update" => py_opt_datetime(o.last_update),
        "enabled" => if o.enabled { "True" } else { "False" }.to_string(),
        "first_seen" => py_opt_datetime(o.first_seen),
        "last_seen" => py_opt_datetime(o.last_seen),
        _ => unreachable!("fields are checked first"),
    }
}

/// The original's `format_origins`: CSV lines, with a header unless told otherwise.
pub fn format_origins(
    origins: &[ListedOrigin],
    fields: Option<&str>,
    with_header: bool,
) -> Result<Vec<String>> {
    let fields: Vec<&str> = match fields {
        Some(f) if !f.is_empty() => f.split(',').collect(),
        _ => FIELDS.to_vec(),
    };
    let unknown: Vec<&str> = fields
        .iter()
        .filter(|f| !FIELDS.contains(f))
        .copied()
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Other(format!(
            "Unknown ListedOrigin field(s): {}",
            unknown.join(", ")
        )));
    }
    let row = |cells: Vec<String>| -> Result<String> {
        let mut w = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(Vec::new());
        w.write_record(&cells)
            .map_err(|e| Error::Other(e.to_string()))?;
        let bytes = w.into_inner().map_err(|e| Error::Other(e.to_string()))?;
        Ok(String::from_utf8_lossy(&bytes).trim_end().to_string())
    };
    let mut out = Vec::with_capacity(origins.len() + 1);
    if with_header {
        out.push(row(fields.iter().map(|f| f.to_string()).collect())?);
    }
    for o in origins {
        out.push(row(fields.iter().map(|f| field(o, f)).collect())?);
    }
    Ok(out)
}

pub async fn run(global: &GlobalOptions, cmd: OriginCommand) -> Result<()> {
    let sched = global.scheduler().await?;
    match cmd {
        OriginCommand::GrabNext {
            policy,
            fields,
            with_header: _,
            without_header,
            visit_type,
            count,
        } => {
            // check the fields before anything is marked scheduled
            format_origins(&[], fields.as_deref(), false)?;
            let origins = sched
                .grab_next_visits(&visit_type, count, &policy, &GrabOptions::default())
                .await?;
            for line in format_origins(&origins, fields.as_deref(), !without_header)? {
                println!("{line}");
            }
        }
        OriginCommand::ScheduleNext {
            policy,
            visit_type,
            count,
        } => {
            let origins = sched
                .grab_next_visits(&visit_type, count, &policy, &GrabOptions::default())
                .await?;
            let now = Utc::now();
            let tasks: Vec<NewTask> = origins
                .iter()
                .map(|o| {
                    let mut t =
                        NewTask::new(&format!("load-{}", o.visit_type), vec![], o.task_kwargs());
                    t.policy = Some(Policy::Oneshot);
                    t.next_run = Some(now);
                    t.retries_left = Some(1);
                    t
                })
                .collect();
            let created = if tasks.is_empty() {
                Vec::new()
            } else {
                sched.create_tasks(&tasks, Policy::Oneshot).await?
            };
            let today = chrono::Local::now().date_naive();
            let mut out = vec![format!("Created {} tasks\n", created.len())];
            out.extend(created.iter().map(|t| task_block(t, false, today)));
            println!("{}", out.join("\n"));
        }
        OriginCommand::UpdateMetrics { lister, instance } => {
            let mut lister_id = None;
            if let Some(name) = &lister {
                match sched.get_lister(name, instance.as_deref()).await? {
                    Some(l) => lister_id = l.id,
                    None => {
                        println!(
                            "Lister not found: {name} instance={}",
                            instance.as_deref().unwrap_or("None")
                        );
                        return Err(Error::Exit(2));
                    }
                }
            }
            let metrics = sched.update_metrics(lister_id.as_deref(), None).await?;
            let rows: Vec<Value> = metrics
                .iter()
                .map(|m| {
                    let mut d = Map::new();
                    for (k, v) in [
                        ("last_update", py_datetime(m.last_update)),
                        ("lister_id", m.lister_id.clone()),
                        ("origins_enabled", m.origins_enabled.to_string()),
                        ("origins_known", m.origins_known.to_string()),
                        ("origins_never_visited", m.origins_never_visited.to_string()),
                        (
                            "origins_with_pending_changes",
                            m.origins_with_pending_changes.to_string(),
                        ),
                        ("visit_type", m.visit_type.clone()),
                    ] {
                        d.insert(k.to_string(), Value::String(v));
                    }
                    Value::Object(d)
                })
                .collect();
            println!("{}", python_json_dumps(&Value::Array(rows)));
        }
    }
    Ok(())
}

/// `json.dumps(v, indent=4, sort_keys=True)`: four-space indents, `", "`-free separators at
/// line ends, `[]` for an empty list.
fn python_json_dumps(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser).expect("JSON values serialize");
    String::from_utf8(buf).expect("JSON is UTF-8")
}
