//! The API phases: create, grab, schedule, start, end and memory, on any implementation of
//! the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{Map, json};

use super::phases::*;
use crate::api::SchedulerApi;
use crate::error::Result;
use crate::model::{NewTask, NewTaskRun, Policy, RunStatus, TaskType};
use crate::store::{RunEvent, Store};

/// Runs the API phases on `sched`, calling `report` after each; `store` is the Redis store
/// behind it, if it is one (for the memory phase, and to own the benchmark's task type).
pub async fn run_api_phases(
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
    let batch = opts.batch.max(1);
    let batches = n.div_ceil(batch);
    // through RPC the server's store is not ours to empty: a fresh type keeps runs apart
    let type_name = match store {
        Some(_) => BENCH_TYPE.to_string(),
        None => format!(
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
    let store = store.cloned();
    let memory = || async {
        match &store {
            Some(s) => used_memory(s).await,
            None => Ok(0),
        }
    };
    let mem0 = memory().await?;
    // on Redis, each phase's rate comes with the Redis CPU it cost a task
    let cpu = || async {
        match &store {
            Some(s) => redis_cpu_seconds(s).await,
            None => Ok(0.0),
        }
    };
    let measure = |phase: &'static str, n: usize, t: Instant, cpu0: f64| {
        let store = store.clone();
        async move {
            let seconds = t.elapsed().as_secs_f64();
            match &store {
                Some(s) => Measure::server_rate(s, phase, n, seconds, cpu0).await,
                None => Ok(Measure::rate(phase, n, seconds)),
            }
        }
    };

    // create
    let ids = Arc::new(std::sync::Mutex::new(vec![0i64; n]));
    let cpu0 = cpu().await?;
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
    emit(measure("create", n, t, cpu0).await?, &mut out);
    let mem1 = memory().await?;

    // grab
    let grabbed = Arc::new(AtomicUsize::new(0));
    let cpu0 = cpu().await?;
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
        measure("grab", grabbed.load(Ordering::Relaxed), t, cpu0).await?,
        &mut out,
    );

    // schedule: one run per task, backend ids chosen by the caller as the original's runner does
    let ids: Arc<Vec<i64>> = Arc::new(std::mem::take(&mut *ids.lock().unwrap()));
    let backend_ids: Arc<Vec<String>> =
        Arc::new((0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect());
    let cpu0 = cpu().await?;
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
                        metadata: Some(Map::new()),
                    })
                    .collect();
                sched.mass_schedule_task_runs(&runs).await
            }
        })
        .await?;
    }
    emit(measure("schedule", n, t, cpu0).await?, &mut out);
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
        let cpu0 = cpu().await?;
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
        emit(measure(phase, n, t, cpu0).await?, &mut out);
    }
    Ok(out)
}
