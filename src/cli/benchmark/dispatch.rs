//! The dispatch phase: the runner's script against a minimal pop-and-push script.

use std::time::Instant;

use chrono::Utc;

use super::phases::*;
use crate::celery::message::TaskMessage;
use crate::error::Result;
use crate::model::{NewTask, Policy};
use crate::runner::{Runner, RunnerConfig};
use crate::store::Store;

/// The dispatch benchmark's task type; its queue is [`dispatch_queue`].
pub const BENCH_DISPATCH_TYPE: &str = "load-bench-dispatch";

/// The broker queue the dispatch phase fills (deleted at the end): named after the store's
/// prefix, so that it is the benchmark's own.
pub fn dispatch_queue(store: &Store) -> String {
    format!("{}.dispatch", store.config().prefix)
}

/// The dispatch phase: `n` due tasks moved into the broker queue by one runner, with
/// max_queue_length high enough not to throttle; then the reference script on as many ids.
pub async fn run_dispatch_phase(
    store: &Store,
    opts: &BenchOptions,
    mut report: impl FnMut(&Measure),
) -> Result<Vec<Measure>> {
    let n = opts.tasks;
    let queue = dispatch_queue(store);
    let mut t = bench_type();
    t.task_type = BENCH_DISPATCH_TYPE.into();
    t.backend_name = queue.clone();
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
    let cpu = redis_cpu_seconds(store).await?;
    let start = Instant::now();
    let sent: usize = runner.pass().await?.iter().map(|(_, n)| n).sum();
    let ours =
        Measure::server_rate(store, "dispatch", sent, start.elapsed().as_secs_f64(), cpu).await?;
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
        task: &queue,
        id: "01a219e3-af2e-85c8-8000-0100000",
        args: &[],
        kwargs: &sample_task.arguments.kwargs,
        queue: &queue,
        origin: "swh-scheduler@host",
    }
    .envelope()
    .to_string();
    let (head, tail) = sample.split_at(sample.len() / 2);
    let script = redis::Script::new(include_str!("../../../lua/bench_reference_dispatch.lua"));
    let cpu = redis_cpu_seconds(store).await?;
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
    let seconds = start.elapsed().as_secs_f64();
    let reference = Measure::server_rate(store, "dispatch_reference", moved, seconds, cpu).await?;
    report(&reference);
    let _: () = redis::cmd("UNLINK")
        .arg(&list)
        .arg(&queue)
        .query_async(&mut con)
        .await?;
    Ok(vec![ours, reference])
}
