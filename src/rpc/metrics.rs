//! `GET /metrics`: Prometheus text, per task type: tasks by status, the due backlog and how
//! old its oldest task is, the broker queues' lengths, and counters of dispatched runs and of
//! run events; per visit type: origins eligible and awaiting their result, the scheduling lag,
//! and counters of visits sent and of their results. Counts come from counters the scripts keep in each type's hash, so a scrape
//! costs a few commands per type whatever the number of tasks.

use std::collections::HashMap;
use std::fmt::Write;

use redis::AsyncCommands;

use crate::celery::BrokerNaming;
use crate::error::Result;
use crate::model::TaskStatus;
use crate::store::{BrokerLink, Store, VisitFigures};

/// What `/metrics` needs beyond the store: where the broker queues are.
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    pub naming: BrokerNaming,
    pub priority_queue_prefix: String,
    /// Where the broker is, seen from the store.
    pub broker: BrokerLink,
    /// The counters of a listener running in the same process (`serve`), if any.
    pub listener: Option<std::sync::Arc<crate::listener::ListenerStats>>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            naming: BrokerNaming::default(),
            priority_queue_prefix: "save_code_now".into(),
            broker: BrokerLink::default(),
            listener: None,
        }
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The first members of a zset, with their scores.
type Scored = Vec<(Vec<u8>, f64)>;

struct TypeFigures {
    name: String,
    counters: HashMap<String, i64>,
    due: i64,
    due_prio: i64,
    oldest_due_us: Option<i64>,
    queues: Vec<(String, i64)>,
}

pub async fn render(store: &Store, cfg: &MetricsConfig) -> Result<String> {
    let mut con = store.con().await?;
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut con).await?;
    let now = secs * 1_000_000 + micros;
    let mut figures = Vec::new();
    for tt in store.get_task_types().await? {
        let Some(info) = store.type_info(&tt.task_type).await? else {
            continue;
        };
        let fields: HashMap<String, String> = con.hgetall(&info.keys.type_key).await?;
        let counters: HashMap<String, i64> = fields
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        let (due, due_prio, first, first_prio): (i64, i64, Scored, Scored) = redis::pipe()
            .zcount(&info.keys.ready, "-inf", now)
            .zcount(&info.keys.ready_prio, "-inf", now)
            .cmd("ZRANGE")
            .arg(&info.keys.ready)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .cmd("ZRANGE")
            .arg(&info.keys.ready_prio)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut con)
            .await?;
        let oldest = first
            .iter()
            .chain(&first_prio)
            .map(|(_, s)| *s as i64)
            .filter(|s| *s <= now)
            .min();
        let mut queues = Vec::new();
        let backend = &tt.backend_name;
        // a cluster store with no broker of its own configured has no queue to measure
        let reachable = store.check_broker(&cfg.broker).is_ok();
        for queue in [
            backend.clone(),
            format!("{}:{backend}", cfg.priority_queue_prefix),
        ] {
            if !reachable {
                continue;
            }
            let n = store
                .queue_waiting(
                    &cfg.naming.queue_keys(&queue),
                    &cfg.broker,
                    &store.outbox(&tt.task_type, &queue),
                )
                .await?;
            queues.push((queue, n));
        }
        figures.push(TypeFigures {
            name: tt.task_type.clone(),
            counters,
            due,
            due_prio,
            oldest_due_us: oldest,
            queues,
        });
    }
    let mut visits = Vec::new();
    for vt in store.visit_types().await? {
        let f = store.visit_figures(&vt).await?;
        visits.push((vt, f));
    }
    let mut out = String::new();
    let mut section = |name: &str, kind: &str, help: &str, lines: &mut dyn FnMut(&mut String)| {
        writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}").unwrap();
        lines(&mut out);
    };
    section(
        "swh_scheduler_tasks",
        "gauge",
        "Tasks by type and status.",
        &mut |o| {
            for f in &figures {
                for s in TaskStatus::ALL {
                    let n = f
                        .counters
                        .get(&format!("tasks_{}", s.as_str()))
                        .copied()
                        .unwrap_or(0);
                    writeln!(
                        o,
                        "swh_scheduler_tasks{{task_type=\"{}\",status=\"{s}\"}} {n}",
                        label(&f.name)
                    )
                    .unwrap();
                }
            }
        },
    );
    section(
        "swh_scheduler_due_tasks",
        "gauge",
        "Tasks whose next run has come and that are not yet sent.",
        &mut |o| {
            for f in &figures {
                writeln!(
                    o,
                    "swh_scheduler_due_tasks{{task_type=\"{}\",priority=\"false\"}} {}",
                    label(&f.name),
                    f.due
                )
                .unwrap();
                writeln!(
                    o,
                    "swh_scheduler_due_tasks{{task_type=\"{}\",priority=\"true\"}} {}",
                    label(&f.name),
                    f.due_prio
                )
                .unwrap();
            }
        },
    );
    section(
        "swh_scheduler_oldest_due_seconds",
        "gauge",
        "How long the oldest due task has been waiting (0 if none).",
        &mut |o| {
            for f in &figures {
                let age = f.oldest_due_us.map_or(0.0, |t| (now - t) as f64 / 1e6);
                writeln!(
                    o,
                    "swh_scheduler_oldest_due_seconds{{task_type=\"{}\"}} {age:.3}",
                    label(&f.name)
                )
                .unwrap();
            }
        },
    );
    section(
        "swh_scheduler_queue_length",
        "gauge",
        "Messages waiting in the Celery broker queue (with the broker on another server, plus \
         those in the queue's outbox on their way).",
        &mut |o| {
            for f in &figures {
                for (q, n) in &f.queues {
                    writeln!(
                        o,
                        "swh_scheduler_queue_length{{task_type=\"{}\",queue=\"{}\"}} {n}",
                        label(&f.name),
                        label(q)
                    )
                    .unwrap();
                }
            }
        },
    );
    section(
        "swh_scheduler_runs_dispatched_total",
        "counter",
        "Runs the runners sent to the broker.",
        &mut |o| {
            for f in &figures {
                let n = f.counters.get("runs_dispatched").copied().unwrap_or(0);
                writeln!(
                    o,
                    "swh_scheduler_runs_dispatched_total{{task_type=\"{}\"}} {n}",
                    label(&f.name)
                )
                .unwrap();
            }
        },
    );
    section(
        "swh_scheduler_outbox_messages_total",
        "counter",
        "Messages forwarded from the store's outboxes to a broker on another server; \
         recovered: of them, those of batches a forwarder left unfinished.",
        &mut |o| {
            for f in &figures {
                for (what, field) in [
                    ("forwarded", "outbox_forwarded"),
                    ("recovered", "outbox_recovered"),
                ] {
                    let n = f.counters.get(field).copied().unwrap_or(0);
                    writeln!(
                        o,
                        "swh_scheduler_outbox_messages_total{{task_type=\"{}\",outcome=\"{what}\"}} {n}",
                        label(&f.name)
                    )
                    .unwrap();
                }
            }
        },
    );
    section(
        "swh_scheduler_run_events_total",
        "counter",
        "Runs started, and ended by status.",
        &mut |o| {
            for f in &figures {
                for event in [
                    "started",
                    "eventful",
                    "uneventful",
                    "failed",
                    "permfailed",
                    "lost",
                ] {
                    let n = f
                        .counters
                        .get(&format!("runs_{event}"))
                        .copied()
                        .unwrap_or(0);
                    writeln!(
                        o,
                        "swh_scheduler_run_events_total{{task_type=\"{}\",event=\"{event}\"}} {n}",
                        label(&f.name)
                    )
                    .unwrap();
                }
            }
        },
    );
    // the origin-visit half, per visit type: what the visit runner can send, what waits for
    // its result, and what it sent and got back
    type Gauge = (&'static str, &'static str, fn(&VisitFigures, i64) -> String);
    let gauges: [Gauge; 3] = [
        (
            "swh_scheduler_visit_origins_eligible",
            "Enabled origins the policies may send now.",
            |f, _| f.eligible.to_string(),
        ),
        (
            "swh_scheduler_visit_origins_awaiting_result",
            "Origins sent whose result has not come yet (nor the scheduled cooldown passed).",
            |f, _| f.awaiting_result.to_string(),
        ),
        (
            "swh_scheduler_visit_oldest_eligible_sent_seconds",
            "How long ago the eligible origin sent longest ago was sent (0 if none): the \
             scheduling lag.",
            |f, now| {
                format!(
                    "{:.3}",
                    f.oldest_sent_us.map_or(0.0, |t| (now - t) as f64 / 1e6)
                )
            },
        ),
    ];
    for (name, help, value) in gauges {
        section(name, "gauge", help, &mut |o| {
            for (vt, f) in &visits {
                writeln!(
                    o,
                    "{name}{{visit_type=\"{}\"}} {}",
                    label(vt),
                    value(f, now)
                )
                .unwrap();
            }
        });
    }
    section(
        "swh_scheduler_visits_sent_total",
        "counter",
        "Visits the visit runner sent to the loaders' queues.",
        &mut |o| {
            for (vt, f) in &visits {
                writeln!(
                    o,
                    "swh_scheduler_visits_sent_total{{visit_type=\"{}\"}} {}",
                    label(vt),
                    f.sent
                )
                .unwrap();
            }
        },
    );
    section(
        "swh_scheduler_visit_outbox_messages_total",
        "counter",
        "Visit messages forwarded from the store's outboxes to a broker on another server; \
         recovered: of them, those of batches a forwarder left unfinished.",
        &mut |o| {
            for (vt, f) in &visits {
                for (what, n) in [
                    ("forwarded", f.outbox_forwarded),
                    ("recovered", f.outbox_recovered),
                ] {
                    writeln!(
                        o,
                        "swh_scheduler_visit_outbox_messages_total{{visit_type=\"{}\",outcome=\"{what}\"}} {n}",
                        label(vt)
                    )
                    .unwrap();
                }
            }
        },
    );
    section(
        "swh_scheduler_visit_results_total",
        "counter",
        "Results of the visits sent that changed their origin's stats, by status (lost: failed for want of a result).",
        &mut |o| {
            for (vt, f) in &visits {
                for (status, n) in &f.results {
                    writeln!(
                        o,
                        "swh_scheduler_visit_results_total{{visit_type=\"{}\",status=\"{status}\"}} {n}",
                        label(vt)
                    )
                    .unwrap();
                }
            }
        },
    );
    if let Some(stats) = &cfg.listener {
        use std::sync::atomic::Ordering::Relaxed;
        for (name, help, v) in [
            ("messages", "Pub/sub messages received", &stats.messages),
            ("events", "Celery events decoded", &stats.events),
            ("applied", "Run events that changed a run", &stats.applied),
            (
                "unchanged",
                "Run events about unknown or ended runs",
                &stats.unchanged,
            ),
            (
                "malformed",
                "Messages or events that could not be read, skipped",
                &stats.malformed,
            ),
            (
                "reconciled",
                "Runs settled from the result backend",
                &stats.reconciled,
            ),
            (
                "lost",
                "Runs marked lost, and visits failed for want of a result",
                &stats.lost,
            ),
            (
                "visit_results",
                "Results of visits the visit runner sent",
                &stats.visit_results,
            ),
            (
                "visits_applied",
                "Visit results that changed an origin's visit stats",
                &stats.visits_applied,
            ),
            (
                "dropped",
                "Messages dropped while the store could not keep up",
                &stats.dropped,
            ),
        ] {
            let metric = format!("swh_scheduler_listener_{name}_total");
            writeln!(out, "# HELP {metric} {help}.").unwrap();
            writeln!(out, "# TYPE {metric} counter").unwrap();
            writeln!(out, "{metric} {}", v.load(Relaxed)).unwrap();
        }
    }
    Ok(out)
}
