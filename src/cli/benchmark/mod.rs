//! `swh-scheduler benchmark`: the command, and its driver (also run by `benches/scheduler.rs`).

mod api;
mod dashboard;
mod dispatch;
mod events;
mod origins;
mod phases;
mod visits;

use std::sync::Arc;

pub use api::run_api_phases;
pub use dashboard::run_dashboard_phase;
pub use dispatch::{BENCH_DISPATCH_TYPE, dispatch_queue, run_dispatch_phase};
pub use events::{BENCH_EVENTS_TYPE, run_events_phase};
pub use origins::run_origin_phases;
pub use phases::*;
pub use visits::run_visits_phase;

use crate::api::SchedulerApi;
use crate::error::{Error, Result};
use crate::rpc::RpcClient;
use crate::store::Store;

use super::GlobalOptions;

#[derive(Debug, clap::Args)]
pub struct BenchmarkArgs {
    /// Number of tasks
    #[arg(short = 'n', long, default_value_t = 100_000)]
    pub tasks: usize,
    /// Tasks or runs per call
    #[arg(short, long, default_value_t = 1000)]
    pub batch: usize,
    /// Calls in flight at once
    #[arg(short, long, default_value_t = 8)]
    pub concurrency: usize,
    /// One JSON object per phase and line
    #[arg(long)]
    pub json: bool,
    /// Keep the benchmark's keys instead of deleting them at the end
    #[arg(long)]
    pub keep: bool,
    /// Run only these phases (create, grab, schedule, start, end, memory: the task block;
    /// dispatch; visits_dispatch (schedule-recurrent sending N listed origins) and
    /// visit_outcomes (the listener applying their results); events;
    /// record_origins, visit_stats_upsert, grab_next_visits,
    /// update_metrics, origin_memory: the origin block, N listed origins;
    /// dashboard: N tasks over 20 types, then the latency of the dashboard's overview)
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(PHASES))]
    pub phases: Vec<String>,
}

/// The prefix the benchmark writes under unless `--prefix` is given, with a random suffix per
/// run, so that it only ever deletes what it wrote.
const BENCH_PREFIX: &str = "swh-benchmark";

pub async fn run(global: &GlobalOptions, args: BenchmarkArgs) -> Result<()> {
    let opts = BenchOptions {
        tasks: args.tasks,
        batch: args.batch,
        concurrency: args.concurrency,
        phases: args.phases.clone(),
    };
    let json = args.json;
    let header = |target: &str| {
        if !json {
            println!(
                "{} tasks, {} per call, {} calls in flight, {target}",
                opts.tasks, opts.batch, opts.concurrency
            );
            println!(
                "{:<20} {:>10} {:>10} {:>12}",
                "phase", "tasks", "seconds", "per second"
            );
        }
    };
    if let Some(url) = &global.url {
        // through the RPC server: the API phases only (dispatch and events need Redis)
        let sched: Arc<dyn SchedulerApi> = Arc::new(RpcClient::new(url)?);
        header(&format!("RPC server {url}"));
        if API_BLOCK.iter().any(|p| opts.wants(p)) {
            run_api_phases(&sched, None, &opts, |m| print_measure(m, json)).await?;
        }
        if ORIGIN_PHASES.iter().any(|p| opts.wants(p)) {
            run_origin_phases(&sched, None, &opts, |m| print_measure(m, json)).await?;
        }
        return Ok(());
    }
    let mut config = global.store_config()?;
    if global.prefix.is_none() {
        config.prefix = format!(
            "{BENCH_PREFIX}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
    }
    let store = Store::connect(config).await?;
    let brokered = ["dispatch", "visits_dispatch", "visit_outcomes", "events"];
    if store.is_cluster() && brokered.iter().any(|p| opts.wants(p)) {
        return Err(Error::Other(format!(
            "the {} phases use a Celery queue on the store's server, which a Redis Cluster \
             cannot hold; on a cluster, run the other phases here (--phases) and measure \
             dispatch and events with `cargo bench --bench cluster`",
            brokered.join(", ")
        )));
    }
    if let Some(key) = first_key_under(&store).await? {
        return Err(Error::Other(format!(
            "keys under the prefix {:?} exist already (e.g. {key:?}); the benchmark needs an \
             empty prefix (give another with --prefix, or none for a fresh one)",
            store.config().prefix,
        )));
    }
    header(&format!(
        "Redis {}",
        crate::error::redacted(&store.config().url)
    ));
    let mut result = Ok(Vec::new());
    // dispatch_reference's rate, for the visits_dispatch ratio
    let mut reference_per_s = None;
    if API_BLOCK.iter().any(|p| opts.wants(p)) {
        let sched: Arc<dyn SchedulerApi> = Arc::new(store.clone());
        result = run_api_phases(&sched, Some(&store), &opts, |m| print_measure(m, json)).await;
    }
    if result.is_ok() && opts.wants("dispatch") {
        let mut reference = None;
        result = run_dispatch_phase(&store, &opts, |m| {
            print_measure(m, json);
            if let Measure::Rate { per_s, .. } | Measure::ServerRate { per_s, .. } = m {
                reference = match reference {
                    None => Some(*per_s),
                    Some(ours) => {
                        reference_per_s = Some(*per_s);
                        if !json {
                            println!(
                                "dispatch / reference: {:.2}",
                                ours as f64 / (*per_s).max(1) as f64
                            );
                        }
                        None
                    }
                };
            }
        })
        .await;
    }
    if result.is_ok() && (opts.wants("visits_dispatch") || opts.wants("visit_outcomes")) {
        result = run_visits_phase(&store, &opts, opts.wants("visit_outcomes"))
            .await
            .inspect(|ms| {
                for m in ms {
                    print_measure(m, json);
                }
                let rate = |phase: &str| {
                    ms.iter().find_map(|m| match m {
                        Measure::Rate {
                            phase: p, per_s, ..
                        }
                        | Measure::ServerRate {
                            phase: p, per_s, ..
                        } if p == phase => Some(*per_s),
                        _ => None,
                    })
                };
                if json {
                    return;
                }
                if let (Some(v), Some(r)) = (rate("visits_dispatch"), reference_per_s) {
                    println!(
                        "visits_dispatch / dispatch_reference: {:.2}",
                        v as f64 / r.max(1) as f64
                    );
                }
                if let (Some(o), Some(v)) = (rate("visit_outcomes"), rate("visits_dispatch")) {
                    println!(
                        "visit_outcomes / visits_dispatch: {:.2}",
                        o as f64 / v.max(1) as f64
                    );
                }
            });
    }
    if result.is_ok() && opts.wants("events") {
        result = run_events_phase(&store, &opts, |m| print_measure(m, json))
            .await
            .map(|m| vec![m]);
    }
    if result.is_ok() && ORIGIN_PHASES.iter().any(|p| opts.wants(p)) {
        let sched: Arc<dyn SchedulerApi> = Arc::new(store.clone());
        result = run_origin_phases(&sched, Some(&store), &opts, |m| print_measure(m, json)).await;
    }
    if result.is_ok() && opts.wants("dashboard") {
        result = run_dashboard_phase(&store, &opts).await.map(|m| {
            print_measure(&m, json);
            vec![m]
        });
    }
    if !args.keep {
        delete_prefix(&store).await?;
    }
    result.map(drop)
}

/// A key under the store's prefix, if there is one: the whole keyspace is scanned (one SCAN
/// page can be empty while later ones are not), stopping at the first match.
async fn first_key_under(store: &Store) -> Result<Option<String>> {
    let mut found = None;
    phases::scan_prefix(store, async |_, keys| {
        found = keys.into_iter().next();
        Ok(found.is_none())
    })
    .await?;
    Ok(found)
}

/// The phases of the task API; they run together.
const API_BLOCK: [&str; 6] = ["create", "grab", "schedule", "memory", "start", "end"];

fn print_measure(m: &Measure, json: bool) {
    if json {
        println!("{}", serde_json::to_string(m).expect("measures serialize"));
        return;
    }
    match m {
        Measure::Rate {
            phase,
            tasks,
            seconds,
            per_s,
        } => {
            println!("{phase:<20} {tasks:>10} {seconds:>10.3} {per_s:>12}")
        }
        Measure::ServerRate {
            phase,
            tasks,
            seconds,
            per_s,
            redis_cpu_us_per_task,
        } => {
            println!(
                "{phase:<20} {tasks:>10} {seconds:>10.3} {per_s:>12}   \
                 ({redis_cpu_us_per_task} µs of Redis CPU a task)"
            )
        }
        Measure::RunMemory { bytes_per_run, .. } => {
            println!(
                "memory: {bytes_per_run} bytes per run the runner created and the listener ended"
            )
        }
        Measure::Memory {
            bytes_per_task,
            bytes_per_run,
            ..
        } => println!(
            "memory: {bytes_per_task} bytes per task (task, ready-set and dedup entries), \
             {bytes_per_run} bytes per kept run"
        ),
        Measure::OriginRate {
            phase,
            origins,
            seconds,
            per_s,
            redis_cpu_us_per_origin,
            ..
        } => println!(
            "{phase:<20} {origins:>10} {seconds:>10.3} {per_s:>12}{}",
            cpu_note(*redis_cpu_us_per_origin)
        ),
        Measure::Grab {
            phase,
            origins,
            seconds,
            per_s,
            calls_per_s,
            p50_ms,
            p99_ms,
            redis_cpu_us_per_origin,
        } => println!(
            "{phase:<20} {origins:>10} {seconds:>10.3} {per_s:>12}  ({calls_per_s} calls/s, \
             p50 {p50_ms} ms, p99 {p99_ms} ms){}",
            cpu_note(*redis_cpu_us_per_origin)
        ),
        Measure::Seconds {
            phase,
            seconds,
            calls,
        } => println!(
            "{phase:<20} {:>10} {seconds:>10.6}  (median of {calls})",
            ""
        ),
        Measure::Latency {
            phase,
            tasks,
            task_types,
            p50_ms,
            p99_ms,
            ..
        } => println!(
            "{phase:<20} {tasks:>10} tasks over {task_types} types: overview p50 {p50_ms} ms, \
             p99 {p99_ms} ms"
        ),
        Measure::OriginMemory {
            bytes_per_origin, ..
        } => println!(
            "memory: {bytes_per_origin} bytes per listed origin (listing, half with stats, \
             indexes, counters)"
        ),
    }
}

/// "  (X µs of Redis CPU an origin)", when measured.
fn cpu_note(us: Option<f64>) -> String {
    us.map(|u| format!("  ({u} µs of Redis CPU an origin)"))
        .unwrap_or_default()
}
