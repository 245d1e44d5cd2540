//! The visit phases: `visits_dispatch`, `schedule-recurrent` passes sending every eligible
//! listed origin to its loader's queue (compare with `dispatch_reference`, the minimal
//! pop-and-push script of the dispatch phase, when both run); then `visit_outcomes`, a
//! listener applying the Celery events of those visits (task-received, task-started,
//! task-succeeded with the loaders' result shape) to the origins' visit stats.

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};

use std::sync::atomic::Ordering;

use redis::AsyncCommands;

use super::events::{event_payloads, publish_and_apply};
use super::phases::{BenchOptions, Measure, redis_cpu_seconds};
use crate::error::Result;
use crate::model::{ListedOrigin, TaskType};
use crate::store::Store;
use crate::visit_runner::{VisitRunner, VisitRunnerConfig};

/// The phase's visit type, apart from the origin phases' `git`.
const VISIT_TYPE: &str = "bench-visit";

/// Records `n` listed origins of [`VISIT_TYPE`] and a `load-` task type whose queue admits
/// them all, then times visit runner passes until one sends nothing (`visits_dispatch`) and,
/// if `outcomes`, the listener applying a result for each visit (`visit_outcomes`).
pub async fn run_visits_phase(
    store: &Store,
    opts: &BenchOptions,
    outcomes: bool,
) -> Result<Vec<Measure>> {
    let n = opts.tasks;
    let queue = format!("{}.visits", store.config().prefix);
    let mut t = TaskType::new(&format!("load-{VISIT_TYPE}"), &queue, "benchmark loader");
    t.max_queue_length = Some(n.max(1000) as i64);
    store.create_task_type(&t).await?;
    let lister = store
        .get_or_create_lister("bench-visits", Some("example"))
        .await?;
    let lister_id = lister.id.unwrap_or_default();
    let t0 = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    let origins: Vec<ListedOrigin> = (0..n)
        .map(|i| {
            let mut o = ListedOrigin::new(
                &lister_id,
                &format!("https://example.com/v/{i:07}.git"),
                VISIT_TYPE,
            );
            o.last_update = Some(t0 + Duration::seconds(i as i64));
            o
        })
        .collect();
    for chunk in origins.chunks(1000) {
        store.record_listed_origins(chunk).await?;
    }
    let runner = VisitRunner::new(
        store.clone(),
        VisitRunnerConfig {
            visit_types: vec![VISIT_TYPE.into()],
            ..VisitRunnerConfig::default()
        },
    );
    let cpu = redis_cpu_seconds(store).await?;
    let start = Instant::now();
    let mut sent = 0;
    loop {
        let got: usize = runner.pass().await?.iter().map(|(_, n)| n).sum();
        sent += got;
        if got == 0 {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut out = vec![Measure::server_rate(store, "visits_dispatch", sent, seconds, cpu).await?];
    let mut con = store.con().await?;
    if outcomes {
        let messages: Vec<String> = con.lrange(&queue, 0, -1).await?;
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|m| {
                let v: serde_json::Value = serde_json::from_str(m).ok()?;
                Some(v["headers"]["id"].as_str()?.to_string())
            })
            .collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        // each visit eventful with a snapshot of its own: every result changes its origin
        let payloads = event_payloads(&queue, &refs, |i| {
            format!(
                "{{'status': 'eventful', 'snapshot_id': '{:040x}'}}",
                i as u128 + 1
            )
        });
        let want = ids.len() as u64;
        let cpu = redis_cpu_seconds(store).await?;
        let seconds = publish_and_apply(store, &payloads, |stats| {
            stats.visits_applied.load(Ordering::Relaxed) >= want
        })
        .await?;
        out.push(Measure::server_rate(store, "visit_outcomes", ids.len(), seconds, cpu).await?);
    }
    let _: () = redis::cmd("UNLINK")
        .arg(&queue)
        .query_async(&mut con)
        .await?;
    Ok(out)
}
