//! The benchmark's driver: a capacity tool, like redis-benchmark. It creates recurring tasks
//! shaped like the original simulator's, grabs them, schedules, starts and ends one run each,
//! and reports each phase's rate and the memory a task and a run take in Redis. The phases are
//! in `api.rs`, `dispatch.rs` and `events.rs` beside this file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Duration, Utc};
use serde::Serialize;
use serde_json::{Map, json};

use crate::error::Result;
use crate::model::{Interval, NewTask, TaskType};
use crate::store::Store;

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub tasks: usize,
    /// Tasks (or runs) per call.
    pub batch: usize,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Phases to run (all when empty): store phases (`create` ... `end`, `memory`),
    /// `dispatch`, `visits_dispatch`, `visit_outcomes` and `events`.
    pub phases: Vec<String>,
}

impl BenchOptions {
    pub fn wants(&self, phase: &str) -> bool {
        self.phases.is_empty() || self.phases.iter().any(|p| p == phase)
    }
}

/// Every phase, in the order they run.
pub const PHASES: &[&str] = &[
    "create",
    "grab",
    "schedule",
    "memory",
    "start",
    "end",
    "dispatch",
    "visits_dispatch",
    "visit_outcomes",
    "events",
    "record_origins",
    "relist_origins",
    "visit_stats_upsert",
    "grab_next_visits",
    "update_metrics",
    "origin_memory",
    "dashboard",
];

/// The origin-visit phases: they run together, the later ones needing the earlier ones' data.
pub const ORIGIN_PHASES: &[&str] = &[
    "record_origins",
    "relist_origins",
    "visit_stats_upsert",
    "grab_next_visits",
    "update_metrics",
    "origin_memory",
];

/// One line of the report.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Measure {
    Rate {
        phase: String,
        tasks: usize,
        seconds: f64,
        per_s: u64,
    },
    Memory {
        phase: &'static str,
        tasks: usize,
        bytes_per_task: i64,
        bytes_per_run: i64,
    },
    /// What a run the runner created and the listener ended keeps in Redis.
    RunMemory {
        phase: &'static str,
        runs: usize,
        bytes_per_run: i64,
    },
    /// Origins (or their stats) recorded per second, and the Redis CPU an origin cost when
    /// the benchmark runs on the store itself.
    OriginRate {
        phase: &'static str,
        origins: usize,
        seconds: f64,
        per_s: u64,
        concurrency: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        redis_cpu_us_per_origin: Option<f64>,
    },
    /// `grab_next_visits`: origins returned per second, calls per second, call latencies, and
    /// the Redis CPU an origin returned cost when the benchmark runs on the store itself.
    Grab {
        phase: &'static str,
        origins: usize,
        seconds: f64,
        per_s: u64,
        calls_per_s: f64,
        p50_ms: f64,
        p99_ms: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        redis_cpu_us_per_origin: Option<f64>,
    },
    /// A rate with the Redis server's CPU time it cost (user + system, from `INFO cpu`), per
    /// task: less noisy than the wall clock on a busy machine, and what a master's capacity is.
    ServerRate {
        phase: String,
        tasks: usize,
        seconds: f64,
        per_s: u64,
        redis_cpu_us_per_task: f64,
    },
    /// A call timed `calls` times in a row: the median (one sub-millisecond timing is mostly
    /// the machine's noise).
    Seconds {
        phase: &'static str,
        seconds: f64,
        calls: usize,
    },
    /// Answers of an HTTP route, their latency (the dashboard's overview).
    Latency {
        phase: &'static str,
        tasks: usize,
        task_types: usize,
        requests: usize,
        p50_ms: f64,
        p99_ms: f64,
    },
    /// What a listed origin and its stats keep in Redis (listing, stats, indexes).
    OriginMemory {
        phase: &'static str,
        origins: usize,
        bytes_per_origin: i64,
        used_memory_before: i64,
        used_memory_after: i64,
    },
}

impl Measure {
    pub(super) fn rate(phase: &str, tasks: usize, seconds: f64) -> Self {
        let (seconds, per_s) = rounded_rate(tasks, seconds);
        Measure::Rate {
            phase: phase.to_string(),
            tasks,
            seconds,
            per_s,
        }
    }

    /// `rate` with the Redis CPU spent since `cpu_before` (from [`redis_cpu_seconds`]).
    pub(super) async fn server_rate(
        store: &Store,
        phase: &str,
        tasks: usize,
        seconds: f64,
        cpu_before: f64,
    ) -> Result<Self> {
        let cpu = redis_cpu_seconds(store).await? - cpu_before;
        let (seconds, per_s) = rounded_rate(tasks, seconds);
        Ok(Measure::ServerRate {
            phase: phase.to_string(),
            tasks,
            seconds,
            per_s,
            redis_cpu_us_per_task: (cpu * 1e8 / tasks.max(1) as f64).round() / 100.0,
        })
    }
}

/// Seconds rounded to 0.1 ms, and the per-second rate they give.
fn rounded_rate(tasks: usize, seconds: f64) -> (f64, u64) {
    let seconds = (seconds * 1e4).round() / 1e4;
    (seconds, (tasks as f64 / seconds.max(1e-9)).round() as u64)
}

/// The Redis CPU seconds spent so far (user + system), summed over the store's masters.
pub(super) async fn redis_cpu_seconds(store: &Store) -> Result<f64> {
    info_sum(store, "cpu", &["used_cpu_user", "used_cpu_sys"]).await
}

/// The benchmark's task type: the original simulator's git loader.
pub const BENCH_TYPE: &str = "load-bench-git";

pub fn bench_type() -> TaskType {
    let mut t = TaskType::new(
        BENCH_TYPE,
        "swh.loader.git.tasks.UpdateGitRepository",
        "benchmark",
    );
    t.default_interval = Some(Interval::from_days(64));
    t.min_interval = Some(Interval::from_secs(12 * 3600));
    t.max_interval = Some(Interval::from_days(64));
    t.backoff_factor = Some(2.0);
    t.num_retries = Some(7);
    t.retry_delay = Some(Interval::from_secs(2 * 3600));
    t.max_queue_length = None;
    t
}

/// The i-th benchmark task: due a day ago, kwargs `{"url": "https://example.com/NNNNNN.git"}`.
pub fn bench_task(i: usize) -> NewTask {
    let mut kwargs = Map::new();
    kwargs.insert(
        "url".into(),
        json!(format!("https://example.com/{i:06}.git")),
    );
    let mut t = NewTask::new(BENCH_TYPE, vec![], kwargs);
    t.next_run = Some(Utc::now() - Duration::days(1));
    t
}

/// Runs `jobs` (numbered 0..n) with `concurrency` workers, each taking the next number.
pub(super) async fn in_parallel<F, Fut>(n: usize, concurrency: usize, job: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let mut handles: Vec<tokio::task::JoinHandle<Result<()>>> = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, job) = (next.clone(), job.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok(());
                }
                job(i).await?;
            }
        }));
    }
    for h in handles {
        h.await.map_err(|e| crate::Error::Other(e.to_string()))??;
    }
    Ok(())
}

/// Bytes Redis uses now (`INFO memory` used_memory; on a cluster, of all the masters).
pub async fn used_memory(store: &Store) -> Result<i64> {
    Ok(info_sum(store, "memory", &["used_memory"]).await? as i64)
}

/// The sum over the store's masters of these fields of one `INFO` section (absent ones count 0).
async fn info_sum(store: &Store, section: &str, fields: &[&str]) -> Result<f64> {
    let mut total = 0.0;
    for mut con in store.masters().await? {
        let info: String = redis::cmd("INFO")
            .arg(section)
            .query_async(&mut con)
            .await?;
        for (name, value) in info.lines().filter_map(|l| l.split_once(':')) {
            if fields.contains(&name) {
                total += value.trim().parse::<f64>().unwrap_or(0.0);
            }
        }
    }
    Ok(total)
}

/// Walks the keys under the store's prefix, a SCAN page at a time (on a cluster, master after
/// master), until `page` says stop (returns false) or the whole keyspace was scanned.
pub(super) async fn scan_prefix<F>(store: &Store, mut page: F) -> Result<()>
where
    F: AsyncFnMut(&mut crate::store::Con, Vec<String>) -> Result<bool>,
{
    let pattern = format!("{}:*", store.config().prefix);
    for mut con in store.masters().await? {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut con)
                .await?;
            if !page(&mut con, keys).await? {
                return Ok(());
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}

/// Deletes every key under the store's prefix (the benchmark's own prefix), one `UNLINK` a
/// key, pipelined (a page's keys are in many slots).
pub async fn delete_prefix(store: &Store) -> Result<()> {
    scan_prefix(store, async |con, keys| {
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("UNLINK").arg(k).ignore();
            }
            let _: () = pipe.query_async(con).await?;
        }
        Ok(true)
    })
    .await
}
