//! The origin-visit phases: `record_origins`, `visit_stats_upsert`, `grab_next_visits`,
//! `update_metrics` and `origin_memory`, on any implementation of the API. The workload is
//! the one `benches/original/bench_original.py --workload origins` runs on the original:
//! N listed origins of one lister (visit type git, `last_update` set), then the same again
//! (`relist_origins`: a lister's next pass over an unchanged forge); half of them get visit
//! stats with a snapshot and a visit before their `last_update`; then
//! `grab_next_visits("git", 1000, policy, timestamp=now)` ten times for each of the three
//! policies; then `update_metrics()` five times (the median).

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};

use crate::api::SchedulerApi;
use crate::error::Result;
use crate::model::{GrabOptions, ListedOrigin, OriginVisitStats, VisitPolicy};
use crate::store::Store;

use super::phases::{BenchOptions, Measure, redis_cpu_seconds, used_memory};

/// Listings or stats per call, as swh.lister sends them.
const ORIGIN_BATCH: usize = 1000;
/// Grabs per policy.
const GRABS: usize = 10;
/// `update_metrics` calls, of which the median is reported (as `bench_original.py` does).
const METRICS_CALLS: usize = 5;

/// The i-th benchmark origin: `https://example.com/0000042.git`, updated i seconds after
/// 2020-01-01.
fn bench_origin(lister_id: &str, visit_type: &str, i: usize) -> ListedOrigin {
    let mut o = ListedOrigin::new(
        lister_id,
        &format!("https://example.com/{i:07}.git"),
        visit_type,
    );
    o.last_update =
        Some(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(i as i64));
    o
}

/// Runs the origin phases, calling `report` after each; `store` is the Redis store behind
/// `sched`, if it is one (for the memory figure and to own the visit type `git`).
pub async fn run_origin_phases(
    sched: &Arc<dyn SchedulerApi>,
    store: Option<&Store>,
    opts: &BenchOptions,
    mut report: impl FnMut(&Measure),
) -> Result<Vec<Measure>> {
    let mut out = Vec::new();
    let mut emit = |m: Measure, out: &mut Vec<Measure>| {
        report(&m);
        out.push(m);
    };
    let n = opts.tasks;
    // through RPC the server's data is not ours: a visit type of our own keeps runs apart
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let visit_type = match store {
        Some(_) => "git".to_string(),
        None => format!("bench-git-{suffix}"),
    };
    let mem0 = match store {
        Some(s) => used_memory(s).await?,
        None => 0,
    };
    let lister = sched
        .get_or_create_lister("bench", Some(&format!("example-{suffix}")))
        .await?;
    let lister_id = lister.id.unwrap_or_default();
    let origins: Vec<ListedOrigin> = (0..n)
        .map(|i| bench_origin(&lister_id, &visit_type, i))
        .collect();

    let cpu = redis_cpu(store).await?;
    let t = Instant::now();
    for chunk in origins.chunks(ORIGIN_BATCH) {
        sched.record_listed_origins(chunk).await?;
    }
    let seconds = t.elapsed().as_secs_f64();
    emit(
        Measure::origin_rate("record_origins", n, seconds, cpu_since(store, cpu).await?),
        &mut out,
    );
    // the lister's next pass: the same origins, unchanged (last_seen moves)
    let cpu = redis_cpu(store).await?;
    let t = Instant::now();
    for chunk in origins.chunks(ORIGIN_BATCH) {
        sched.record_listed_origins(chunk).await?;
    }
    let seconds = t.elapsed().as_secs_f64();
    emit(
        Measure::origin_rate("relist_origins", n, seconds, cpu_since(store, cpu).await?),
        &mut out,
    );

    let stats: Vec<OriginVisitStats> = origins
        .iter()
        .step_by(2)
        .map(|o| OriginVisitStats {
            url: o.url.clone(),
            visit_type: visit_type.clone(),
            last_eventful: o.last_update.map(|t| t - Duration::days(1)),
            last_snapshot: Some(vec![1; 20]),
            ..Default::default()
        })
        .collect();
    let cpu = redis_cpu(store).await?;
    let t = Instant::now();
    for chunk in stats.chunks(ORIGIN_BATCH) {
        sched.origin_visit_stats_upsert(chunk).await?;
    }
    let seconds = t.elapsed().as_secs_f64();
    let cpu = cpu_since(store, cpu).await?;
    emit(
        Measure::origin_rate("visit_stats_upsert", stats.len(), seconds, cpu),
        &mut out,
    );
    let mem1 = match store {
        Some(s) => used_memory(s).await?,
        None => 0,
    };

    let now = GrabOptions {
        timestamp: Some(Utc::now()),
        ..Default::default()
    };
    let mut times = Vec::new();
    let mut returned = 0;
    let cpu = redis_cpu(store).await?;
    for policy in VisitPolicy::ALL {
        for _ in 0..GRABS {
            let t = Instant::now();
            let got = sched
                .grab_next_visits(&visit_type, ORIGIN_BATCH, policy.as_str(), &now)
                .await?;
            times.push(t.elapsed().as_secs_f64());
            returned += got.len();
        }
    }
    let cpu = cpu_since(store, cpu).await?;
    emit(Measure::grab(returned, &times, cpu), &mut out);

    let mut times = Vec::with_capacity(METRICS_CALLS);
    for _ in 0..METRICS_CALLS {
        let t = Instant::now();
        sched.update_metrics(None, None).await?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    emit(
        Measure::Seconds {
            phase: "update_metrics",
            // to the microsecond: one call takes well under a millisecond here
            seconds: (times[METRICS_CALLS / 2] * 1e6).round() / 1e6,
            calls: METRICS_CALLS,
        },
        &mut out,
    );

    if store.is_some() {
        emit(
            Measure::OriginMemory {
                phase: "origin_memory",
                origins: n,
                bytes_per_origin: (mem1 - mem0) / n.max(1) as i64,
                used_memory_before: mem0,
                used_memory_after: mem1,
            },
            &mut out,
        );
    }
    Ok(out)
}

/// The store's Redis CPU seconds so far, when the benchmark runs on the store.
async fn redis_cpu(store: Option<&Store>) -> Result<Option<f64>> {
    match store {
        Some(s) => Ok(Some(redis_cpu_seconds(s).await?)),
        None => Ok(None),
    }
}

/// The Redis CPU seconds spent since `before` (from [`redis_cpu`]).
async fn cpu_since(store: Option<&Store>, before: Option<f64>) -> Result<Option<f64>> {
    Ok(match (redis_cpu(store).await?, before) {
        (Some(now), Some(before)) => Some(now - before),
        _ => None,
    })
}

fn round4(s: f64) -> f64 {
    (s * 1e4).round() / 1e4
}

impl Measure {
    fn origin_rate(phase: &'static str, origins: usize, seconds: f64, cpu: Option<f64>) -> Self {
        Measure::OriginRate {
            phase,
            origins,
            seconds: round4(seconds),
            per_s: (origins as f64 / seconds.max(1e-9)).round() as u64,
            concurrency: 1,
            redis_cpu_us_per_origin: cpu.map(|c| us_each(c, origins)),
        }
    }

    fn grab(returned: usize, times: &[f64], cpu: Option<f64>) -> Self {
        let total: f64 = times.iter().sum();
        let mut sorted = times.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            sorted
                .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
        };
        Measure::Grab {
            phase: "grab_next_visits",
            origins: returned,
            seconds: round4(total),
            per_s: (returned as f64 / total.max(1e-9)).round() as u64,
            calls_per_s: (times.len() as f64 / total.max(1e-9) * 100.0).round() / 100.0,
            p50_ms: (at(0.5) * 1e5).round() / 100.0,
            p99_ms: (at(0.99) * 1e5).round() / 100.0,
            redis_cpu_us_per_origin: cpu.map(|c| us_each(c, returned)),
        }
    }
}

/// Microseconds each of `n` items cost, from `seconds` in all, to 0.01 µs.
fn us_each(seconds: f64, n: usize) -> f64 {
    (seconds * 1e8 / n.max(1) as f64).round() / 100.0
}
