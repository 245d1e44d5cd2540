//! `swh-scheduler benchmark`: a capacity tool, like redis-benchmark. It creates recurring tasks
//! shaped like the original simulator's, grabs them, schedules, starts and ends one run each,
//! and reports each phase's rate and the memory a task and a run take in Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{Duration, Utc};
use serde::Serialize;
use serde_json::{Map, json};

use crate::celery::message::TaskMessage;
use crate::error::Result;
use crate::model::{Interval, NewTask, NewTaskRun, Policy, RunStatus, TaskType};
use crate::runner::{Runner, RunnerConfig};
use crate::scheduler::Scheduler;
use crate::store::{RunEvent, Store};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub tasks: usize,
    /// Tasks (or runs) per call.
    pub batch: usize,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Phases to run (all when empty): store phases (`create` ... `end`, `memory`),
    /// `dispatch` and `events`.
    pub phases: Vec<String>,
}

impl BenchOptions {
    pub fn wants(&self, phase: &str) -> bool {
        self.phases.is_empty() || self.phases.iter().any(|p| p == phase)
    }
}

/// Every phase, in the order they run.
pub const PHASES: &[&str] = &[
    "create", "grab", "schedule", "memory", "start", "end", "dispatch", "events",
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
}

impl Measure {
    fn rate(phase: &str, tasks: usize, seconds: f64) -> Self {
        let seconds = (seconds * 1e4).round() / 1e4;
        Measure::Rate {
            phase: phase.to_string(),
            tasks,
            seconds,
            per_s: (tasks as f64 / seconds.max(1e-9)).round() as u64,
        }
    }
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
async fn in_parallel<F, Fut>(n: usize, concurrency: usize, job: F) -> Result<()>
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

/// Bytes Redis uses now (`INFO memory` used_memory).
pub async fn used_memory(store: &Store) -> Result<i64> {
    let mut con = store.con().await?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut con)
        .await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// Runs the store phases, calling `report` after each.
pub async fn run_api_phases(
    sched: &Scheduler,
    opts: &BenchOptions,
    mut report: impl FnMut(&Measure),
) -> Result<Vec<Measure>> {
    let mut out = Vec::new();
    let mut emit = |m: Measure, out: &mut Vec<Measure>| {
        report(&m);
        out.push(m);
    };
    let n = opts.tasks;
    let batch = opts.batch.max(1);
    let batches = n.div_ceil(batch);
    // through RPC the server's store is not ours to empty: a fresh type keeps runs apart
    let type_name = match sched {
        Scheduler::Redis(_) => BENCH_TYPE.to_string(),
        Scheduler::Remote(_) => format!(
            "{BENCH_TYPE}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
    };
    sched
        .create_task_type(&TaskType {
            task_type: type_name.clone(),
            ..bench_type()
        })
        .await?;
    let store = match sched {
        Scheduler::Redis(s) => Some(s.clone()),
        Scheduler::Remote(_) => None,
    };
    let memory = || async {
        match &store {
            Some(s) => used_memory(s).await,
            None => Ok(0),
        }
    };
    let mem0 = memory().await?;

    // create
    let ids = Arc::new(std::sync::Mutex::new(vec![0i64; n]));
    let t = Instant::now();
    {
        let (sched, ids, ty) = (sched.clone(), ids.clone(), type_name.clone());
        in_parallel(batches, opts.concurrency, move |b| {
            let (sched, ids, ty) = (sched.clone(), ids.clone(), ty.clone());
            async move {
                let range = b * batch..((b + 1) * batch).min(n);
                let tasks: Vec<NewTask> = range
                    .clone()
                    .map(|i| NewTask {
                        task_type: ty.clone(),
                        ..bench_task(i)
                    })
                    .collect();
                let made = sched.create_tasks(&tasks, Policy::Recurring).await?;
                let mut ids = ids.lock().unwrap();
                for (i, t) in range.zip(made) {
                    ids[i] = t.id;
                }
                Ok(())
            }
        })
        .await?;
    }
    emit(
        Measure::rate("create", n, t.elapsed().as_secs_f64()),
        &mut out,
    );
    let mem1 = memory().await?;

    // grab
    let grabbed = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    {
        let (sched, grabbed, ty) = (sched.clone(), grabbed.clone(), type_name.clone());
        in_parallel(opts.concurrency, opts.concurrency, move |_| {
            let (sched, grabbed, ty) = (sched.clone(), grabbed.clone(), ty.clone());
            async move {
                loop {
                    let got = sched.grab_ready_tasks(&ty, None, Some(batch)).await?;
                    if got.is_empty() {
                        return Ok(());
                    }
                    grabbed.fetch_add(got.len(), Ordering::Relaxed);
                }
            }
        })
        .await?;
    }
    emit(
        Measure::rate(
            "grab",
            grabbed.load(Ordering::Relaxed),
            t.elapsed().as_secs_f64(),
        ),
        &mut out,
    );

    // schedule: one run per task, backend ids chosen by the caller as the original's runner does
    let ids: Arc<Vec<i64>> = Arc::new(std::mem::take(&mut *ids.lock().unwrap()));
    let backend_ids: Arc<Vec<String>> =
        Arc::new((0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect());
    let t = Instant::now();
    {
        let (sched, ids, bids) = (sched.clone(), ids.clone(), backend_ids.clone());
        in_parallel(batches, opts.concurrency, move |b| {
            let (sched, ids, bids) = (sched.clone(), ids.clone(), bids.clone());
            async move {
                let runs: Vec<NewTaskRun> = (b * batch..((b + 1) * batch).min(n))
                    .map(|i| NewTaskRun {
                        task: ids[i],
                        backend_id: bids[i].clone(),
                        scheduled: None,
                        metadata: Map::new(),
                    })
                    .collect();
                sched.mass_schedule_task_runs(&runs).await
            }
        })
        .await?;
    }
    emit(
        Measure::rate("schedule", n, t.elapsed().as_secs_f64()),
        &mut out,
    );
    if store.is_some() {
        let mem2 = memory().await?;
        emit(
            Measure::Memory {
                phase: "memory",
                tasks: n,
                bytes_per_task: ((mem1 - mem0) as f64 / n as f64).round() as i64,
                bytes_per_run: ((mem2 - mem1) as f64 / n as f64).round() as i64,
            },
            &mut out,
        );
    }

    // start, then end: on Redis in batches of events, as the listener applies them; through
    // RPC one call per run (the API has no batch call), many in flight
    for (phase, status) in [("start", None), ("end", Some(RunStatus::Eventful))] {
        let t = Instant::now();
        let mut meta = Map::new();
        meta.insert("worker".into(), json!("bench@host"));
        match &store {
            Some(store) => {
                let (store, bids) = (store.clone(), backend_ids.clone());
                in_parallel(batches, opts.concurrency, move |b| {
                    let (store, bids, meta) = (store.clone(), bids.clone(), meta.clone());
                    async move {
                        let events: Vec<RunEvent> = (b * batch..((b + 1) * batch).min(n))
                            .map(|i| RunEvent {
                                backend_id: bids[i].clone(),
                                end_status: status,
                                metadata: status.is_none().then(|| meta.clone()),
                                timestamp: None,
                            })
                            .collect();
                        store.apply_run_events(&events, false).await.map(drop)
                    }
                })
                .await?;
            }
            None => {
                let (sched, bids) = (sched.clone(), backend_ids.clone());
                in_parallel(n, opts.concurrency, move |i| {
                    let (sched, bids, meta) = (sched.clone(), bids.clone(), meta.clone());
                    async move {
                        match status {
                            None => sched
                                .start_task_run(&bids[i], Some(meta), None)
                                .await
                                .map(drop),
                            Some(s) => sched.end_task_run(&bids[i], s, None, None).await.map(drop),
                        }
                    }
                })
                .await?;
            }
        }
        emit(Measure::rate(phase, n, t.elapsed().as_secs_f64()), &mut out);
    }
    Ok(out)
}

/// Deletes every key under the store's prefix (the benchmark's own prefix).
pub async fn delete_prefix(store: &Store) -> Result<()> {
    let mut con = store.con().await?;
    let pattern = format!("{}:*", store.config().prefix);
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
        if !keys.is_empty() {
            let _: () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut con)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The dispatch benchmark's task type; its queue is `BENCH_DISPATCH_QUEUE`.
pub const BENCH_DISPATCH_TYPE: &str = "load-bench-dispatch";
/// The broker queue the dispatch phase fills (deleted at the end).
pub const BENCH_DISPATCH_QUEUE: &str = "swh-benchmark.dispatch";

/// The dispatch phase: `n` due tasks moved into the broker queue by one runner, with
/// max_queue_length high enough not to throttle; then the reference script on as many ids.
pub async fn run_dispatch_phase(
    store: &Store,
    opts: &BenchOptions,
    mut report: impl FnMut(&Measure),
) -> Result<Vec<Measure>> {
    let n = opts.tasks;
    let mut t = bench_type();
    t.task_type = BENCH_DISPATCH_TYPE.into();
    t.backend_name = BENCH_DISPATCH_QUEUE.into();
    t.max_queue_length = Some(n.max(1000) as i64);
    store.create_task_type(&t).await?;
    let batches = n.div_ceil(opts.batch.max(1));
    {
        let store = store.clone();
        let batch = opts.batch.max(1);
        in_parallel(batches, opts.concurrency, move |b| {
            let store = store.clone();
            async move {
                let tasks: Vec<NewTask> = (b * batch..((b + 1) * batch).min(n))
                    .map(|i| {
                        let mut t = bench_task(i);
                        t.task_type = BENCH_DISPATCH_TYPE.into();
                        t
                    })
                    .collect();
                store
                    .create_tasks(&tasks, Policy::Recurring)
                    .await
                    .map(drop)
            }
        })
        .await?;
    }
    let runner = Runner::new(
        store.clone(),
        RunnerConfig {
            task_types: vec![BENCH_DISPATCH_TYPE.into()],
            ..RunnerConfig::default()
        },
    );
    let start = Instant::now();
    let sent: usize = runner.pass().await?.iter().map(|(_, n)| n).sum();
    let ours = Measure::rate("dispatch", sent, start.elapsed().as_secs_f64());
    report(&ours);

    // the reference, on the same number of ids and messages of the same size
    let mut con = store.con().await?;
    let zset = format!("{}:reference:ready", store.config().prefix);
    let list = format!("{}:reference:queue", store.config().prefix);
    let due_ms = Utc::now().timestamp_micros() - 86_400_000_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(&zset);
        for i in chunk {
            cmd.arg(due_ms + *i as i64).arg(*i);
        }
        let _: () = cmd.query_async(&mut con).await?;
    }
    let sample_task = bench_task(0);
    let sample = TaskMessage {
        task: BENCH_DISPATCH_QUEUE,
        id: "01a219e3-af2e-85c8-8000-0100000",
        args: &[],
        kwargs: &sample_task.arguments.kwargs,
        queue: BENCH_DISPATCH_QUEUE,
        origin: "swh-scheduler@host",
    }
    .envelope()
    .to_string();
    let (head, tail) = sample.split_at(sample.len() / 2);
    let script = redis::Script::new(include_str!("../lua/bench_reference_dispatch.lua"));
    let start = Instant::now();
    let mut moved = 0usize;
    loop {
        let got: usize = script
            .key(&zset)
            .key(&list)
            .arg(Utc::now().timestamp_micros())
            .arg(crate::runner::MAX_TASKS_PER_CALL)
            .arg(head)
            .arg(tail)
            .invoke_async(&mut con)
            .await?;
        moved += got;
        if got == 0 {
            break;
        }
    }
    let reference = Measure::rate("dispatch_reference", moved, start.elapsed().as_secs_f64());
    report(&reference);
    let _: () = redis::cmd("UNLINK")
        .arg(&list)
        .arg(BENCH_DISPATCH_QUEUE)
        .query_async(&mut con)
        .await?;
    Ok(vec![ours, reference])
}

/// The events benchmark's task type; its queue is deleted at the end.
pub const BENCH_EVENTS_TYPE: &str = "load-bench-events";
const BENCH_EVENTS_QUEUE: &str = "swh-benchmark.events";

/// The events phase: `n` dispatched runs, started and ended by Celery event batches published
/// on the event channel (prefork-worker shaped: task.multi messages of received, started and
/// succeeded events for 25 tasks) and applied by a listener. Reports the start and end events
/// applied per second.
pub async fn run_events_phase(
    store: &Store,
    opts: &BenchOptions,
    mut report: impl FnMut(&Measure),
) -> Result<Measure> {
    use base64::Engine;
    let n = opts.tasks;
    let mut t = bench_type();
    t.task_type = BENCH_EVENTS_TYPE.into();
    t.backend_name = BENCH_EVENTS_QUEUE.into();
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
    let now = Utc::now().timestamp_micros() as f64 / 1e6;
    let mut payloads = Vec::new();
    for chunk in runs.chunks(25) {
        let mut events = Vec::new();
        for r in chunk {
            let common =
                json!({"hostname": "celery@bench", "utcoffset": 0.0, "pid": 4242, "clock": 1});
            let with = |mut v: serde_json::Value, extra: serde_json::Value| {
                v.as_object_mut()
                    .unwrap()
                    .extend(extra.as_object().unwrap().clone());
                v
            };
            events.push(with(common.clone(), json!({"uuid": r.backend_id, "name": BENCH_EVENTS_QUEUE, "args": "[]", "kwargs": "{}", "retries": 0, "eta": null, "expires": null, "timestamp": now, "type": "task-received"})));
            events.push(with(
                common.clone(),
                json!({"uuid": r.backend_id, "timestamp": now + 0.001, "type": "task-started"}),
            ));
            events.push(with(common, json!({"uuid": r.backend_id, "result": "{'status': 'eventful'}", "runtime": 0.5, "timestamp": now + 0.5, "type": "task-succeeded"})));
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
    let want = 2 * runs.len() as u64;
    let start = Instant::now();
    for chunk in payloads.chunks(100) {
        let mut pipe = redis::pipe();
        for p in chunk {
            pipe.cmd("PUBLISH").arg(&channel).arg(p).ignore();
        }
        let _: () = pipe.query_async(&mut con).await?;
    }
    while stats.applied.load(Ordering::Relaxed) + stats.unchanged.load(Ordering::Relaxed) < want {
        if start.elapsed() > std::time::Duration::from_secs(600) {
            return Err(crate::Error::Other(
                "the listener did not apply every event".into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let m = Measure::rate("events", runs.len(), start.elapsed().as_secs_f64());
    let m = match m {
        Measure::Rate {
            phase,
            tasks,
            seconds,
            ..
        } => Measure::Rate {
            per_s: (want as f64 / seconds.max(1e-9)).round() as u64,
            phase,
            tasks,
            seconds,
        },
        other => other,
    };
    report(&m);
    let _ = stop.send(());
    let _ = handle.await;
    let _: () = redis::cmd("DEL")
        .arg(BENCH_EVENTS_QUEUE)
        .query_async(&mut con)
        .await?;
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
