//! The listener against a real redis-server, fed with Celery-shaped event messages on the
//! real channels: start/end, duplicates, garbage, unknown ids, lost-run sweeps (also from
//! several processes at once), result-backend reconciliation and reconnection.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use serde_json::{Value, json};
use swh_scheduler::listener::{Listener, ListenerConfig};
use swh_scheduler::model::{
    Interval, NewTask, Policy, RunStatus, Task, TaskRun, TaskStatus, TaskType,
};
use swh_scheduler::runner::{Runner, RunnerConfig};
use swh_scheduler::store::Store;

use common::{RedisServer, celery_envelope as envelope, wait_for};

const TYPE: &str = "load-test-git";

async fn setup(server: &RedisServer, n: usize) -> (Store, Vec<Task>, Vec<TaskRun>) {
    let store = server.store().await;
    let mut t = TaskType::new(TYPE, "swh.loader.git.tasks.UpdateGitRepository", "git");
    t.default_interval = Some(Interval::from_days(16));
    t.min_interval = Some(Interval::from_secs(12 * 3600));
    t.max_interval = Some(Interval::from_days(64));
    t.backoff_factor = Some(2.0);
    t.num_retries = Some(2);
    t.retry_delay = Some(Interval::from_secs(7200));
    store.create_task_type(&t).await.unwrap();
    let inputs: Vec<NewTask> = (0..n)
        .map(|i| {
            let mut t = NewTask::new(
                TYPE,
                vec![],
                json!({"url": format!("https://example.com/{i}.git")})
                    .as_object()
                    .unwrap()
                    .clone(),
            );
            t.next_run = Some(Utc::now() - TimeDelta::seconds(10));
            t
        })
        .collect();
    let tasks = store
        .create_tasks(&inputs, Policy::Recurring)
        .await
        .unwrap();
    Runner::new(store.clone(), RunnerConfig::default())
        .pass()
        .await
        .unwrap();
    let runs = store
        .get_task_runs(&tasks.iter().map(|t| t.id).collect::<Vec<_>>(), None)
        .await
        .unwrap();
    assert_eq!(runs.len(), n);
    (store, tasks, runs)
}

fn config(server: &RedisServer) -> ListenerConfig {
    let mut c = ListenerConfig::new(&server.url());
    c.sweep_every = Duration::ZERO;
    c
}

/// Starts a listener in the background; returns its handle, stats and a stopper.
fn spawn(
    store: &Store,
    config: ListenerConfig,
) -> (
    tokio::task::JoinHandle<()>,
    std::sync::Arc<swh_scheduler::listener::ListenerStats>,
    tokio::sync::oneshot::Sender<()>,
) {
    let listener = Listener::new(store.clone(), config);
    let stats = listener.stats();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        listener
            .run(async {
                rx.await.ok();
            })
            .await
            .unwrap();
    });
    (handle, stats, tx)
}

fn ts(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

fn batch(run: &TaskRun, started: DateTime<Utc>, ended: DateTime<Utc>, result: &str) -> Value {
    json!([
        {"hostname": "w1@vm", "utcoffset": 0.0, "pid": 7455, "clock": 2, "uuid": run.backend_id, "name": "x", "args": "[]", "kwargs": "{}", "retries": 0, "eta": null, "expires": null, "timestamp": ts(started) - 0.01, "type": "task-received"},
        {"hostname": "w1@vm", "utcoffset": 0.0, "pid": 7455, "clock": 3, "uuid": run.backend_id, "timestamp": ts(started), "type": "task-started"},
        {"hostname": "w1@vm", "utcoffset": 0.0, "pid": 7455, "clock": 4, "uuid": run.backend_id, "result": result, "runtime": 0.1, "timestamp": ts(ended), "type": "task-succeeded"},
    ])
}

fn publish(server: &RedisServer, channel: &str, payload: &str) {
    let mut con = server.client();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query(&mut con)
        .unwrap();
}

/// Waits for the listener's subscription (PUBSUB NUMPAT).
fn wait_subscribed(server: &RedisServer) {
    wait_for(10, "listener subscription", || {
        let mut con = server.client();
        (redis::cmd("PUBSUB")
            .arg("NUMPAT")
            .query::<i64>(&mut con)
            .ok()?
            > 0)
        .then_some(())
    });
}

async fn run_of(store: &Store, task: i64) -> TaskRun {
    store
        .get_task_runs(&[task], None)
        .await
        .unwrap()
        .pop()
        .unwrap()
}

async fn wait_run(
    store: &Store,
    task: i64,
    what: &str,
    cond: impl Fn(&TaskRun) -> bool,
) -> TaskRun {
    for _ in 0..400 {
        let r = run_of(store, task).await;
        if cond(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "timed out waiting for {what}: {:?}",
        run_of(store, task).await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn events_start_and_end_runs_with_the_events_times() {
    let server = RedisServer::start();
    let (store, tasks, runs) = setup(&server, 2).await;
    let (handle, stats, stop) = spawn(&store, config(&server));
    tokio::task::block_in_place(|| wait_subscribed(&server));

    let started = Utc::now() - TimeDelta::seconds(3);
    let ended = started + TimeDelta::milliseconds(1500);
    let both = json!([
        batch(&runs[0], started, ended, "{'status': 'uneventful'}"),
        batch(
            &runs[1],
            started,
            ended,
            "{'status': 'eventful', 'snapshot': 'x'}"
        )
    ]);
    let flat: Vec<Value> = both
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b.as_array().unwrap().clone())
        .collect();
    publish(
        &server,
        "/0.celeryev/task.multi",
        &envelope(&Value::Array(flat)),
    );

    let r0 = wait_run(&store, tasks[0].id, "run 0 ended", |r| r.status.is_final()).await;
    assert_eq!(r0.status, RunStatus::Uneventful);
    assert_eq!(
        r0.started.unwrap().timestamp_micros(),
        started.timestamp_micros()
    );
    assert_eq!(
        r0.ended.unwrap().timestamp_micros(),
        ended.timestamp_micros()
    );
    assert_eq!(r0.metadata.as_ref().unwrap()["worker"], json!("w1@vm"));
    let r1 = wait_run(&store, tasks[1].id, "run 1 ended", |r| r.status.is_final()).await;
    assert_eq!(r1.status, RunStatus::Eventful);

    let t = store.get_tasks(&[tasks[0].id, tasks[1].id]).await.unwrap();
    assert_eq!(
        t[0].current_interval,
        Some(Interval::from_days(32)),
        "uneventful: x2"
    );
    assert_eq!(t[0].next_run, r0.ended.unwrap() + TimeDelta::days(32));
    assert_eq!(
        t[1].current_interval,
        Some(Interval::from_days(8)),
        "eventful: /2"
    );
    assert_eq!(t[0].status, TaskStatus::NextRunNotScheduled);
    assert_eq!(stats.applied.load(Ordering::Relaxed), 4);

    // the same batch again changes nothing
    let before = (
        store.get_tasks(&[tasks[0].id]).await.unwrap(),
        run_of(&store, tasks[0].id).await,
    );
    publish(
        &server,
        "/0.celeryev/task.multi",
        &envelope(&batch(
            &runs[0],
            started,
            ended + TimeDelta::seconds(9),
            "{'status': 'eventful'}",
        )),
    );
    // and a task-result for it (the original worker class sends one too)
    let result = json!({"hostname": "w1@vm", "uuid": runs[0].backend_id, "result": {"status": "failed"}, "timestamp": ts(Utc::now()), "type": "task-result"});
    publish(&server, "/0.celeryev/task.result", &envelope(&result));
    tokio::task::block_in_place(|| {
        wait_for(10, "events counted", || {
            (stats.unchanged.load(Ordering::Relaxed) >= 3).then_some(())
        })
    });
    let after = (
        store.get_tasks(&[tasks[0].id]).await.unwrap(),
        run_of(&store, tasks[0].id).await,
    );
    assert_eq!(before, after);
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_unknown_ids_are_skipped() {
    let server = RedisServer::start();
    let (store, tasks, runs) = setup(&server, 1).await;
    let (handle, stats, stop) = spawn(&store, config(&server));
    tokio::task::block_in_place(|| wait_subscribed(&server));
    for garbage in [
        "not json".to_string(),
        json!({"body": 5}).to_string(),
        json!({"body": "!!!", "properties": {"body_encoding": "base64"}}).to_string(),
        envelope(&json!({"type": "task-started"})),
        envelope(&json!({"type": "task-started", "uuid": "x", "timestamp": "yesterday"})),
        envelope(
            &json!([{"type": "task-succeeded", "uuid": "11111111-2222-3333-4444-555555555555", "timestamp": 1.0, "result": "None"}]),
        ),
        envelope(
            &json!({"type": "worker-heartbeat", "hostname": "w1@vm", "timestamp": 1.0, "freq": 2.0}),
        ),
    ] {
        publish(&server, "/0.celeryev/task.multi", &garbage);
    }
    let now = Utc::now();
    publish(
        &server,
        "/0.celeryev/task.multi",
        &envelope(&batch(&runs[0], now, now, "{'status': 'eventful'}")),
    );
    wait_run(
        &store,
        tasks[0].id,
        "the valid events after the garbage",
        |r| r.status == RunStatus::Eventful,
    )
    .await;
    assert_eq!(stats.malformed.load(Ordering::Relaxed), 5);
    assert_eq!(stats.unchanged.load(Ordering::Relaxed), 1, "the unknown id");
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_that_arrives_after_the_end_fills_in_the_start() {
    // a worker publishes task-result at once and task-started in a later task.multi batch
    let server = RedisServer::start();
    let (store, tasks, runs) = setup(&server, 1).await;
    let (handle, _, stop) = spawn(&store, config(&server));
    tokio::task::block_in_place(|| wait_subscribed(&server));
    let started = Utc::now() - TimeDelta::seconds(2);
    let ended = started + TimeDelta::seconds(1);
    let result = json!({"hostname": "w1@vm", "uuid": runs[0].backend_id, "result": {"status": "eventful"}, "timestamp": ts(ended), "type": "task-result"});
    publish(&server, "/0.celeryev/task.result", &envelope(&result));
    wait_run(&store, tasks[0].id, "ended", |r| {
        r.status == RunStatus::Eventful
    })
    .await;
    publish(
        &server,
        "/0.celeryev/task.multi",
        &envelope(&batch(&runs[0], started, ended, "{'status': 'eventful'}")),
    );
    let run = wait_run(&store, tasks[0].id, "the start filled in", |r| {
        r.started.is_some()
    })
    .await;
    assert_eq!(
        run.started.unwrap().timestamp_micros(),
        started.timestamp_micros()
    );
    assert_eq!(
        (run.status, run.ended.unwrap().timestamp_micros()),
        (RunStatus::Eventful, ended.timestamp_micros())
    );
    assert_eq!(run.metadata.as_ref().unwrap()["worker"], json!("w1@vm"));
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_retry_and_record_the_error() {
    let server = RedisServer::start();
    let (store, tasks, runs) = setup(&server, 1).await;
    let (handle, _, stop) = spawn(&store, config(&server));
    tokio::task::block_in_place(|| wait_subscribed(&server));
    let now = Utc::now();
    let events = json!([
        {"hostname": "w2@vm", "uuid": runs[0].backend_id, "timestamp": ts(now), "type": "task-started"},
        {"hostname": "w2@vm", "uuid": runs[0].backend_id, "exception": "ValueError('boom')", "traceback": "Traceback (most recent call last):\n  File \"x\", line 1\nValueError: boom\n", "timestamp": ts(now + TimeDelta::seconds(1)), "type": "task-failed"},
    ]);
    publish(&server, "/0.celeryev/task.multi", &envelope(&events));
    let run = wait_run(&store, tasks[0].id, "failed run", |r| {
        r.status == RunStatus::Failed
    })
    .await;
    assert_eq!(
        run.metadata.as_ref().unwrap()["error"],
        json!("ValueError: boom")
    );
    assert_eq!(run.metadata.as_ref().unwrap()["worker"], json!("w2@vm"));
    let t = &store.get_tasks(&[tasks[0].id]).await.unwrap()[0];
    assert_eq!(t.retries_left, 1);
    assert_eq!(t.next_run, run.ended.unwrap() + TimeDelta::hours(2));
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lost_sweep_settles_silent_runs_once_even_from_several_processes() {
    let server = RedisServer::start();
    let (store, tasks, _) = setup(&server, 50).await;
    // one run started recently: not lost yet
    let recent = run_of(&store, tasks[0].id).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    store
        .start_task_run(&recent.backend_id, None, None)
        .await
        .unwrap();

    let mut handles = Vec::new();
    for _ in 0..4 {
        let s = server.store().await;
        handles.push(tokio::spawn(async move {
            s.sweep_lost_runs(TYPE, Duration::from_secs(1), false)
                .await
                .unwrap()
        }));
    }
    let mut lost = 0;
    for h in handles {
        lost += h.await.unwrap();
    }
    assert_eq!(lost, 49, "each silent run once");
    let ids: Vec<i64> = tasks.iter().map(|t| t.id).collect();
    let runs = store.get_task_runs(&ids, None).await.unwrap();
    assert_eq!(
        runs.iter().filter(|r| r.status == RunStatus::Lost).count(),
        49
    );
    assert_eq!(
        runs.iter()
            .filter(|r| r.status == RunStatus::Started)
            .count(),
        1
    );
    // the failure rules: a retry after retry_delay, consumed once
    let t = store.get_tasks(&ids).await.unwrap();
    assert!(
        t[1..]
            .iter()
            .all(|t| t.retries_left == 1 && t.status == TaskStatus::NextRunNotScheduled),
        "{:?}",
        t[1]
    );
    let r1 = runs.iter().find(|r| r.task == tasks[1].id).unwrap();
    assert_eq!(t[1].next_run, r1.ended.unwrap() + TimeDelta::hours(2));
    assert_eq!(r1.metadata.as_ref().unwrap()["lost"], json!(true));

    // a scheduled run is not lost while its queue holds messages: it may be one of them
    let made = store
        .create_tasks(
            &[{
                let mut t = NewTask::new(TYPE, vec![json!("queued")], Default::default());
                t.next_run = Some(Utc::now() - TimeDelta::seconds(10));
                t
            }],
            Policy::Recurring,
        )
        .await
        .unwrap();
    Runner::new(store.clone(), RunnerConfig::default())
        .pass()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        store
            .sweep_lost_runs(TYPE, Duration::from_secs(1), true)
            .await
            .unwrap(),
        1,
        "the started run only"
    );
    assert_eq!(run_of(&store, tasks[0].id).await.status, RunStatus::Lost);
    assert_eq!(
        run_of(&store, made[0].id).await.status,
        RunStatus::Scheduled
    );

    // the listener sweeps on its own; with the queue empty, the scheduled run is lost
    let mut con = server.client();
    let _: () = redis::cmd("DEL")
        .arg("swh.loader.git.tasks.UpdateGitRepository")
        .query(&mut con)
        .unwrap();
    let mut c = config(&server);
    c.sweep_every = Duration::from_millis(200);
    c.lost_after = Duration::from_millis(500);
    let (handle, stats, stop) = spawn(&store, c);
    wait_run(&store, made[0].id, "the queued run lost", |r| {
        r.status == RunStatus::Lost
    })
    .await;
    assert!(stats.lost.load(Ordering::Relaxed) >= 1);
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn reconnection_reconciles_from_the_result_backend() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let (store, tasks, runs) = setup(&server, 3).await;
    // results stored while no listener ran (backend in db 1)
    let mut con = server.client();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut con).unwrap();
    let done = "2026-11-26T20:17:03.481123+00:00";
    let metas = [
        json!({"status": "SUCCESS", "result": {"status": "uneventful"}, "traceback": null, "children": [], "date_done": done, "task_id": runs[0].backend_id}),
        json!({"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}, "traceback": "Traceback...\nValueError: boom\n", "children": [], "date_done": done, "task_id": runs[1].backend_id}),
        json!({"status": "STARTED", "result": {"pid": 1}, "task_id": runs[2].backend_id}),
    ];
    for (run, meta) in runs.iter().zip(&metas) {
        let _: () = redis::cmd("SET")
            .arg(format!("celery-task-meta-{}", run.backend_id))
            .arg(meta.to_string())
            .query(&mut con)
            .unwrap();
    }
    let mut c = config(&server);
    c.result_backend = Some(format!("redis://127.0.0.1:{}/1", server.port));
    let (handle, stats, stop) = spawn(&store, c);
    let r0 = wait_run(&store, tasks[0].id, "settled from SUCCESS", |r| {
        r.status.is_final()
    })
    .await;
    assert_eq!(r0.status, RunStatus::Uneventful);
    assert_eq!(r0.ended.unwrap(), done.parse::<DateTime<Utc>>().unwrap());
    let r1 = run_of(&store, tasks[1].id).await;
    assert_eq!(
        (r1.status, r1.metadata.as_ref().unwrap()["error"].clone()),
        (RunStatus::Failed, json!("ValueError: boom"))
    );
    assert_eq!(
        run_of(&store, tasks[2].id).await.status,
        RunStatus::Scheduled
    );
    assert_eq!(stats.reconciled.load(Ordering::Relaxed), 2);

    // Redis goes away and comes back: the listener reconnects and goes on
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    tokio::task::block_in_place(|| wait_subscribed(&server));
    let now = Utc::now();
    publish(
        &server,
        "/0.celeryev/task.multi",
        &envelope(&batch(&runs[2], now, now, "{'status': 'eventful'}")),
    );
    wait_run(&store, tasks[2].id, "events after the restart", |r| {
        r.status == RunStatus::Eventful
    })
    .await;
    stop.send(()).unwrap();
    handle.await.unwrap();
}

/// A start event whose time is far out of range (1e12 s), for an unknown id and for a known
/// run, in the same batch as good events: it is skipped alone, and the others are applied
/// (it used to fail the whole batch, retried forever, and stall the listener).
#[tokio::test(flavor = "multi_thread")]
async fn an_event_with_a_time_out_of_range_never_blocks_the_others() {
    let server = RedisServer::start();
    let (store, tasks, runs) = setup(&server, 2).await;
    let (handle, stats, stop) = spawn(&store, config(&server));
    tokio::task::block_in_place(|| wait_subscribed(&server));
    let now = Utc::now();
    let poison = json!([
        {"hostname": "w1@vm", "uuid": "00000000-0000-0000-0000-000000000000", "timestamp": 1e12, "type": "task-started"},
        {"hostname": "w1@vm", "uuid": runs[1].backend_id, "timestamp": -1e12, "type": "task-started"},
    ]);
    publish(&server, "/0.celeryev/task.multi", &envelope(&poison));
    publish(
        &server,
        "/0.celeryev/task.multi",
        &envelope(&batch(&runs[0], now, now, "{'status': 'eventful'}")),
    );
    wait_run(&store, tasks[0].id, "the good events applied", |r| {
        r.status == RunStatus::Eventful
    })
    .await;
    assert_eq!(
        stats.malformed.load(Ordering::Relaxed),
        2,
        "both bad events"
    );
    // and the listener goes on: the other run can still start and end
    publish(
        &server,
        "/0.celeryev/task.multi",
        &envelope(&batch(&runs[1], now, now, "{'status': 'uneventful'}")),
    );
    wait_run(&store, tasks[1].id, "the next batch applied", |r| {
        r.status == RunStatus::Uneventful
    })
    .await;
    stop.send(()).unwrap();
    handle.await.unwrap();
}

/// With its Redis gone, the listener stops at once when asked (it used to finish a reconnect
/// backoff, then wait ten seconds for a drain).
#[tokio::test(flavor = "multi_thread")]
async fn the_listener_stops_promptly_while_redis_is_down() {
    let server = RedisServer::start();
    let store = server.store().await;
    let mut c = ListenerConfig::new(&format!("redis://127.0.0.1:{}/0", common::free_port()));
    c.sweep_every = Duration::ZERO;
    let (handle, _, stop) = spawn(&store, c);
    tokio::time::sleep(Duration::from_millis(1500)).await; // a few failed connections
    let asked = std::time::Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("stopped")
        .unwrap();
    // well under a second (measured: a fraction of a millisecond); the bound leaves room for
    // a loaded machine without letting the old ten-second drain through
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
}

/// A batch that starts and ends runs together, interleaved, with a repeated start and a run
/// only started: each run ends with both times, the start-only one stays in flight with its
/// start time, and the batch's other events are not disturbed (update_runs.lua writes a run
/// started and ended in one call once).
#[tokio::test]
async fn starts_and_ends_in_one_batch_are_written_once_and_right() {
    use swh_scheduler::store::RunEvent;
    let server = RedisServer::start();
    let (store, tasks, runs) = setup(&server, 4).await;
    // microseconds, as the store keeps times
    let t0 =
        DateTime::from_timestamp_micros((Utc::now() - TimeDelta::seconds(30)).timestamp_micros())
            .unwrap();
    let ev = |r: &TaskRun, end: Option<RunStatus>, secs: i64| RunEvent {
        backend_id: r.backend_id.clone(),
        end_status: end,
        metadata: Some(json!({"at": secs}).as_object().unwrap().clone()),
        timestamp: Some(t0 + TimeDelta::seconds(secs)),
    };
    let (a, b, c, d) = (&runs[0], &runs[1], &runs[2], &runs[3]);
    let events = [
        ev(a, None, 1),
        ev(b, None, 2),
        ev(d, None, 3),
        ev(a, Some(RunStatus::Eventful), 4),
        ev(c, None, 5),
        ev(d, None, 6),
        ev(b, Some(RunStatus::Failed), 7),
        ev(d, Some(RunStatus::Uneventful), 8),
    ];
    let out = store.apply_run_events(&events, false).await.unwrap();
    assert!(
        out.iter().all(|o| o.as_ref().is_some_and(|o| o.changed)),
        "{out:?}"
    );
    let at = |s: i64| Some(t0 + TimeDelta::seconds(s));
    let after = |r: &TaskRun| {
        let store = store.clone();
        let task = r.task;
        async move { store.get_task_runs(&[task], None).await.unwrap()[0].clone() }
    };
    let (a2, b2, c2, d2) = (
        after(a).await,
        after(b).await,
        after(c).await,
        after(d).await,
    );
    assert_eq!(
        (a2.status, a2.started, a2.ended),
        (RunStatus::Eventful, at(1), at(4))
    );
    assert_eq!(
        (b2.status, b2.started, b2.ended),
        (RunStatus::Failed, at(2), at(7))
    );
    assert_eq!(
        (c2.status, c2.started, c2.ended),
        (RunStatus::Started, at(5), None)
    );
    assert_eq!(
        (d2.status, d2.started, d2.ended),
        (RunStatus::Uneventful, at(6), at(8))
    );
    // each event's metadata was merged, the last one winning
    assert_eq!(a2.metadata.as_ref().unwrap()["at"], json!(4));
    assert_eq!(d2.metadata.as_ref().unwrap()["at"], json!(8));
    // only c is in flight, under its start time
    let inflight = store.inflight_runs(TYPE).await.unwrap();
    assert_eq!(
        inflight.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![c.id]
    );
    // the ended runs' tasks were rescheduled, c's was not
    let now_tasks = store
        .get_tasks(&tasks.iter().map(|t| t.id).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(now_tasks[2].status, TaskStatus::NextRunScheduled);
    for i in [0, 1, 3] {
        assert_eq!(
            now_tasks[i].status,
            TaskStatus::NextRunNotScheduled,
            "task {i}"
        );
    }
    let started: i64 = redis::cmd("HGET")
        .arg(format!("swh:{{{TYPE}}}:type"))
        .arg("runs_started")
        .query(&mut server.client())
        .unwrap();
    assert_eq!(started, 5, "every start counted, the repeated one too");
}
