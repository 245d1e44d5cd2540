//! The events phase: Celery event batches applied by a listener.

use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::Utc;
use serde_json::json;

use super::phases::*;
use crate::error::Result;
use crate::model::{NewTask, Policy};
use crate::runner::{Runner, RunnerConfig};
use crate::store::Store;

/// The events benchmark's task type; its queue is deleted at the end.
pub const BENCH_EVENTS_TYPE: &str = "load-bench-events";

/// The events phase: `n` dispatched runs, started and ended by Celery event batches published
/// on the event channel (prefork-worker shaped: task.multi messages of received, started and
/// succeeded events for 25 tasks) and applied by a listener. Reports the start and end events
/// applied per second.
pub async fn run_events_phase(
    store: &Store,
    opts: &BenchOptions,
    mut report: impl FnMut(&Measure),
) -> Result<Measure> {
    let n = opts.tasks;
    // the broker queue, named after the store's prefix so that it is the benchmark's own
    let queue = format!("{}.events", store.config().prefix);
    let mut t = bench_type();
    t.task_type = BENCH_EVENTS_TYPE.into();
    t.backend_name = queue.clone();
    store.create_task_type(&t).await?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(opts.batch.max(1)) {
        let tasks: Vec<NewTask> = chunk
            .iter()
            .map(|&i| NewTask {
                task_type: BENCH_EVENTS_TYPE.into(),
                ..bench_task(i)
            })
            .collect();
        store.create_tasks(&tasks, Policy::Recurring).await?;
    }
    let runner = Runner::new(
        store.clone(),
        RunnerConfig {
            task_types: vec![BENCH_EVENTS_TYPE.into()],
            ..RunnerConfig::default()
        },
    );
    let mem0 = used_memory(store).await?;
    runner.pass().await?;
    let runs = store.inflight_runs(BENCH_EVENTS_TYPE).await?;

    // the messages, built before the clock starts
    let ids: Vec<&str> = runs.iter().map(|r| r.backend_id.as_str()).collect();
    let payloads = event_payloads(&queue, &ids, |_| "{'status': 'eventful'}".to_string());
    let want = 2 * runs.len() as u64;
    let cpu = redis_cpu_seconds(store).await?;
    let seconds = publish_and_apply(store, &payloads, |stats| {
        stats.applied.load(Ordering::Relaxed) + stats.unchanged.load(Ordering::Relaxed) >= want
    })
    .await?;
    // per_s counts events (two a run), the Redis CPU is a run's (its two events)
    let m = match Measure::server_rate(store, "events", runs.len(), seconds, cpu).await? {
        Measure::ServerRate {
            phase,
            tasks,
            seconds,
            redis_cpu_us_per_task,
            ..
        } => Measure::ServerRate {
            per_s: (want as f64 / seconds.max(1e-9)).round() as u64,
            phase,
            tasks,
            seconds,
            redis_cpu_us_per_task,
        },
        other => other,
    };
    report(&m);
    let mut con = store.con().await?;
    let _: () = redis::cmd("DEL").arg(&queue).query_async(&mut con).await?;
    // the tasks are back in their ready set: what remains is the runs (records, run-list
    // entries), as they are kept once ended
    let mem1 = used_memory(store).await?;
    report(&Measure::RunMemory {
        phase: "run_memory",
        runs: runs.len(),
        bytes_per_run: ((mem1 - mem0) as f64 / runs.len().max(1) as f64).round() as i64,
    });
    Ok(m)
}

/// Celery event messages as a prefork worker publishes them: `task.multi` batches of
/// task-received, task-started and task-succeeded (its result's repr from `result`) for 25
/// tasks each.
pub(super) fn event_payloads(
    task_name: &str,
    ids: &[&str],
    result: impl Fn(usize) -> String,
) -> Vec<String> {
    use base64::Engine;
    let now = Utc::now().timestamp_micros() as f64 / 1e6;
    let mut payloads = Vec::new();
    for (c, chunk) in ids.chunks(25).enumerate() {
        let mut events = Vec::new();
        for (j, id) in chunk.iter().enumerate() {
            let common =
                json!({"hostname": "celery@bench", "utcoffset": 0.0, "pid": 4242, "clock": 1});
            let with = |mut v: serde_json::Value, extra: serde_json::Value| {
                v.as_object_mut()
                    .unwrap()
                    .extend(extra.as_object().unwrap().clone());
                v
            };
            events.push(with(common.clone(), json!({"uuid": id, "name": task_name, "args": "[]", "kwargs": "{}", "retries": 0, "eta": null, "expires": null, "timestamp": now, "type": "task-received"})));
            events.push(with(
                common.clone(),
                json!({"uuid": id, "timestamp": now + 0.001, "type": "task-started"}),
            ));
            events.push(with(common, json!({"uuid": id, "result": result(c * 25 + j), "runtime": 0.5, "timestamp": now + 0.5, "type": "task-succeeded"})));
        }
        let body = base64::engine::general_purpose::STANDARD
            .encode(serde_json::Value::Array(events).to_string());
        payloads.push(
            json!({"body": body, "content-encoding": "utf-8", "content-type": "application/json",
                   "headers": {"hostname": "celery@bench"},
                   "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": "task.multi"},
                                  "priority": 0, "body_encoding": "base64", "delivery_tag": uuid::Uuid::new_v4().to_string()}})
            .to_string(),
        );
    }
    payloads
}

/// Starts a listener on the store's event channel, publishes the payloads once it listens,
/// and returns the seconds from the first publication until `done` says the listener applied
/// them.
pub(super) async fn publish_and_apply(
    store: &Store,
    payloads: &[String],
    done: impl Fn(&crate::listener::ListenerStats) -> bool,
) -> Result<f64> {
    let mut config = crate::listener::ListenerConfig::new(&store.config().url);
    config.naming.db = store.db();
    config.sweep_every = std::time::Duration::ZERO;
    let channel = format!("/{}.celeryev/task.multi", store.db());
    let listener = crate::listener::Listener::new(store.clone(), config);
    let stats = listener.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        listener
            .run(async {
                stopped.await.ok();
            })
            .await
    });
    let mut con = store.con().await?;
    while redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async::<i64>(&mut con)
        .await?
        == 0
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let start = Instant::now();
    for chunk in payloads.chunks(100) {
        let mut pipe = redis::pipe();
        for p in chunk {
            pipe.cmd("PUBLISH").arg(&channel).arg(p).ignore();
        }
        let _: () = pipe.query_async(&mut con).await?;
    }
    let mut result = Ok(());
    while !done(&stats) {
        if start.elapsed() > std::time::Duration::from_secs(600) {
            result = Err(crate::Error::Other(
                "the listener did not apply every event".into(),
            ));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = handle.await;
    result.map(|()| seconds)
}
