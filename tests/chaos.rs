//! The chaos suite (permanent): processes killed with SIGKILL in the middle of their work, and
//! Redis stalling longer than the clients wait for it. What must hold: each task sent exactly
//! once, no run without its message nor message without its run, and no write hidden behind
//! an error (an error after a timeout says the call may have been applied, and repeating it
//! is safe). Poison events, bad CSV files and fuzzed inputs are in tests/listener.rs,
//! tests/cli.rs and tests/fuzz.rs.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use chrono::{Duration as TimeDelta, Utc};
use serde_json::{Value, json};
use swh_scheduler::model::{Interval, NewTask, Policy, TaskType};
use swh_scheduler::runner::{Runner, RunnerConfig};
use swh_scheduler::store::{Store, StoreConfig};

use common::RedisServer;

const BACKEND: &str = "swh.test.tasks.chaos";

async fn make_type(store: &Store, name: &str) {
    let mut t = TaskType::new(name, BACKEND, "chaos");
    t.default_interval = Some(Interval::from_days(1));
    t.max_queue_length = None;
    store.create_task_type(&t).await.unwrap();
}

fn due(ty: &str, i: usize) -> NewTask {
    let mut t = NewTask::new(ty, vec![json!(i)], Default::default());
    t.next_run = Some(Utc::now() - TimeDelta::seconds(60));
    t
}

/// Creates `n` due tasks of type `ty`, 5000 a call.
async fn create_due(store: &Store, ty: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let tasks: Vec<NewTask> = chunk.iter().map(|&i| due(ty, i)).collect();
        store.create_tasks(&tasks, Policy::Recurring).await.unwrap();
    }
}

/// Ten runner processes killed with SIGKILL at random moments of their passes, then one clean
/// pass: every task sent once, each message's run recorded and each run's message sent.
#[tokio::test(flavor = "multi_thread")]
async fn runners_killed_mid_dispatch_leave_no_duplicate_and_no_orphan() {
    let server = RedisServer::start();
    let store = server.store().await;
    make_type(&store, "t-kill").await;
    let n = 30_000;
    create_due(&store, "t-kill", n).await;
    let bin = env!("CARGO_BIN_EXE_swh-scheduler");
    for i in 0..10u64 {
        let mut child = Command::new(bin)
            .args(["--redis-url", &server.url(), "start-runner", "-p", "0.01"])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        // a different moment each time: in a pass, between passes, at start
        tokio::time::sleep(Duration::from_millis(5 + (i * 37) % 90)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let cleanup = Runner::new(
        store.clone(),
        RunnerConfig {
            origin: "swh-scheduler@test".into(),
            ..RunnerConfig::default()
        },
    );
    while cleanup.pass().await.unwrap()[0].1 > 0 {}

    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg(BACKEND)
        .arg(0)
        .arg(-1)
        .query(&mut server.client())
        .unwrap();
    let mut message_ids = HashSet::new();
    let mut tasks_sent = HashSet::new();
    for m in &raw {
        let v: Value = serde_json::from_str(m).unwrap();
        message_ids.insert(v["headers"]["id"].as_str().unwrap().to_string());
        let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
        tasks_sent.insert(body[0][0].as_u64().unwrap());
    }
    assert_eq!(raw.len(), n, "one message per task");
    assert_eq!(tasks_sent.len(), n, "every task sent");
    assert_eq!(message_ids.len(), n, "no message twice");
    let ids: Vec<i64> = store
        .search_tasks(&Default::default())
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    let runs = store.get_task_runs(&ids, None).await.unwrap();
    assert_eq!(runs.len(), n, "one run per task");
    let run_ids: HashSet<String> = runs.into_iter().map(|r| r.backend_id).collect();
    assert_eq!(
        run_ids, message_ids,
        "each run has its message and each message its run"
    );
}

/// A redis-server that allows `DEBUG SLEEP`, a store on it with a 300 ms response timeout
/// for the operation under test, and one with the default timeout for the setup and the
/// checks (so that a slow machine fails no check).
async fn stall_setup() -> (RedisServer, Store, Store) {
    let server = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let mut config = StoreConfig::new(&server.url());
    config.response_timeout = Duration::from_millis(300);
    let store = Store::connect(config).await.unwrap();
    let reader = server.store().await;
    (server, store, reader)
}

/// Stalls Redis for `secs` from another thread (`DEBUG SLEEP`).
fn stall_redis(server: &RedisServer, secs: f64) -> std::thread::JoinHandle<()> {
    let url = server.url();
    std::thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(secs)
            .query(&mut con)
            .unwrap();
    })
}

/// Redis stalls (DEBUG SLEEP) in the middle of a large call, longer than the store waits: the
/// call fails, saying it may have been applied; the chunk it was waiting for was applied once
/// Redis woke up; repeating the call completes it and changes nothing else (create_tasks is
/// idempotent on its inputs).
#[tokio::test(flavor = "multi_thread")]
async fn a_stall_longer_than_the_timeout_hides_no_write() {
    let (server, store, reader) = stall_setup().await;
    make_type(&store, "t-stall").await;
    let n = 60_000;
    let tasks: Vec<NewTask> = (0..n).map(|i| due("t-stall", i)).collect();
    let stall = |secs: f64| stall_redis(&server, secs);
    let call = {
        let (store, tasks) = (store.clone(), tasks.clone());
        tokio::spawn(async move { store.create_tasks(&tasks, Policy::Recurring).await })
    };
    tokio::time::sleep(Duration::from_millis(120)).await;
    let sleeper = stall(2.0);
    let e = match call.await.unwrap() {
        Ok(made) => panic!("answered within the stall: {} tasks", made.len()),
        Err(e) => e,
    };
    assert!(e.to_string().contains("may have been applied"), "{e}");
    sleeper.join().unwrap();
    let partial = reader
        .search_tasks(&Default::default())
        .await
        .unwrap()
        .len();
    assert!(
        partial > 0 && partial < n,
        "{partial} of {n} written before the error"
    );
    let again = reader
        .create_tasks(&tasks, Policy::Recurring)
        .await
        .unwrap();
    assert_eq!(again.len(), n);
    assert_eq!(
        reader
            .search_tasks(&Default::default())
            .await
            .unwrap()
            .len(),
        n,
        "repeating the call completed it, with no task twice"
    );
}

/// Redis killed with SIGKILL and restarted (`appendonly yes`) while a real Celery worker runs
/// the tasks the runner sends and the listener follows its events: the services and the
/// worker reconnect by themselves, and every task ends in a final state, settled from its
/// events, from the result backend, or found lost within the bound.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_crash_under_a_real_worker_leaves_every_task_settled() {
    use swh_scheduler::listener::{Listener, ListenerConfig};
    use swh_scheduler::model::TaskStatus;

    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = server.store().await;
    let mut t = TaskType::new("chaos-dumb", "swh.example.dumb", "dumb");
    t.default_interval = Some(Interval::from_days(1));
    t.num_retries = Some(0);
    t.max_queue_length = Some(5); // sent in small waves, so that the crash falls mid-work
    store.create_task_type(&t).await.unwrap();
    let n = 40;
    let tasks: Vec<NewTask> = (0..n)
        .map(|i| {
            let mut t = NewTask::new(
                "chaos-dumb",
                vec![],
                json!({"status": "eventful", "sleep": 0.2, "n": i})
                    .as_object()
                    .unwrap()
                    .clone(),
            );
            t.next_run = Some(Utc::now() - TimeDelta::seconds(1));
            t.policy = Some(Policy::Oneshot);
            t
        })
        .collect();
    let made = store.create_tasks(&tasks, Policy::Oneshot).await.unwrap();
    let backend = format!("redis://127.0.0.1:{}/1", server.port);
    let broker = server.url();
    let start_worker =
        || common::CeleryWorker::start(&broker, Some(&backend), "swh.example.dumb", &[]);
    let mut worker = start_worker();

    let (stop, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut lc = ListenerConfig::new(&server.url());
    lc.result_backend = Some(backend.clone());
    lc.lost_after = Duration::from_secs(4);
    lc.sweep_every = Duration::from_millis(500);
    let listener = Listener::new(store.clone(), lc);
    let runner = Runner::new(
        store.clone(),
        RunnerConfig {
            period: Duration::from_millis(200),
            ..RunnerConfig::default()
        },
    );
    let (rx1, rx2) = (rx.clone(), rx);
    let l = tokio::spawn(async move { listener.run(stopped(rx1)).await });
    let r = tokio::spawn(async move { runner.run(stopped(rx2)).await });

    // let some work start, then crash Redis in the middle of it
    let ids: Vec<i64> = made.iter().map(|t| t.id).collect();
    let settled_now = |tasks: &[swh_scheduler::model::Task]| {
        tasks
            .iter()
            .filter(|t| matches!(t.status, TaskStatus::Completed | TaskStatus::Disabled))
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = settled_now(&store.get_tasks(&ids).await.unwrap());
        if done >= 3 {
            assert!(done < n, "all done before the crash: nothing tested");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::block_in_place(|| {
        server.kill();
        std::thread::sleep(Duration::from_millis(800));
        server.restart();
    });

    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut earlier_logs = String::new();
    loop {
        // Celery 5's worker sometimes dies of the broker's crash ("Unrecoverable error:
        // AttributeError ... 'hostname'", a Celery bug): a deployment's supervisor restarts
        // it, and so does this test; what is under test is the scheduler
        if worker.exited() {
            earlier_logs.push_str(&worker.log_text());
            worker = start_worker();
        }
        let settled = match store.get_tasks(&ids).await {
            Ok(tasks) => settled_now(&tasks),
            Err(_) => 0,
        };
        if settled == n {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{settled} of {n} tasks settled\n{earlier_logs}{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let runs = store.get_task_runs(&ids, None).await.unwrap();
    assert!(runs.iter().all(|r| r.status.is_final()), "{runs:?}");
    let _ = stop.send(true);
    l.await.unwrap().unwrap();
    r.await.unwrap().unwrap();
}

/// A dispatch pass caught by a stall longer than the timeout: the pass fails, saying it may
/// have been applied; the script it sent ran once Redis woke up (its tasks sent and their runs
/// recorded together), and the next pass sends the rest, nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_dispatch_caught_by_a_stall_sends_nothing_twice() {
    let (server, store, reader) = stall_setup().await;
    make_type(&store, "t-stall-dispatch").await;
    let n = 30_000;
    create_due(&reader, "t-stall-dispatch", n).await;
    let runner = Runner::new(store.clone(), RunnerConfig::default());
    let pass = tokio::spawn(async move { runner.pass().await });
    tokio::time::sleep(Duration::from_millis(60)).await;
    let sleeper = stall_redis(&server, 1.5);
    let first = pass.await.unwrap();
    sleeper.join().unwrap();
    if let Err(e) = &first {
        assert!(e.to_string().contains("may have been applied"), "{e}");
    }
    let runner = Runner::new(store.clone(), RunnerConfig::default());
    while runner.pass().await.unwrap()[0].1 > 0 {}
    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg(BACKEND)
        .arg(0)
        .arg(-1)
        .query(&mut server.client())
        .unwrap();
    let ids: HashSet<String> = raw
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_str(m).unwrap();
            v["headers"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(raw.len(), n, "every task sent once");
    assert_eq!(ids.len(), n);
    let all: Vec<i64> = reader
        .search_tasks(&Default::default())
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        reader.get_task_runs(&all, None).await.unwrap().len(),
        n,
        "one run each"
    );
}

/// Four runner processes racing on 50,000 due tasks with a queue limit: each task sent
/// exactly once, and the queue never above its limit.
#[tokio::test(flavor = "multi_thread")]
async fn four_runner_processes_race_without_duplicates_or_overflow() {
    let server = RedisServer::start();
    let store = server.store().await;
    let mut t = TaskType::new("t-race4", BACKEND, "race");
    t.default_interval = Some(Interval::from_days(1));
    t.max_queue_length = Some(20_000);
    store.create_task_type(&t).await.unwrap();
    let n = 50_000;
    create_due(&store, "t-race4", n).await;
    // four single-pass runner processes at once; then the queue must be within its limit
    let race = || server.race(&["start-runner"], BACKEND, 20_000);
    race();
    // a worker drains the queue; the racers go again until every task is sent
    let mut sent: Vec<String> = Vec::new();
    loop {
        let batch: Vec<String> = redis::cmd("LPOP")
            .arg(BACKEND)
            .arg(100_000)
            .query::<Option<Vec<String>>>(&mut server.client())
            .unwrap()
            .unwrap_or_default();
        sent.extend(batch);
        if sent.len() >= n || race() == 0 {
            break;
        }
    }
    let tasks: HashSet<u64> = sent
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_str(m).unwrap();
            let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
            body[0][0].as_u64().unwrap()
        })
        .collect();
    assert_eq!(sent.len(), n, "every task sent once");
    assert_eq!(tasks.len(), n);
}

/// The listener applying a large batch of events when Redis stalls longer than its timeout:
/// the call fails (it may have been applied), the applier retries, and every run ends once:
/// each task's interval is halved once by its eventful run, not twice.
#[tokio::test(flavor = "multi_thread")]
async fn events_applied_across_a_stall_end_each_run_once() {
    use base64::Engine;
    use swh_scheduler::listener::{Listener, ListenerConfig};
    use swh_scheduler::model::RunStatus;

    let (server, store, reader) = stall_setup().await;
    let mut t = TaskType::new("t-stall-events", BACKEND, "events");
    t.default_interval = Some(Interval::from_days(1));
    t.min_interval = Some(Interval::from_secs(3600));
    t.backoff_factor = Some(2.0);
    t.max_queue_length = None;
    store.create_task_type(&t).await.unwrap();
    let n = 20_000;
    create_due(&reader, "t-stall-events", n).await;
    let runner = Runner::new(store.clone(), RunnerConfig::default());
    while runner.pass().await.unwrap()[0].1 > 0 {}
    let ids: Vec<i64> = reader
        .search_tasks(&Default::default())
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    let runs = reader.get_task_runs(&ids, None).await.unwrap();
    assert_eq!(runs.len(), n);

    let mut lc = ListenerConfig::new(&server.url());
    lc.sweep_every = Duration::ZERO;
    let listener = Listener::new(store.clone(), lc);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        listener
            .run(async {
                stopped.await.ok();
            })
            .await
    });
    common::wait_for(10, "listener subscription", || {
        redis::cmd("PUBSUB")
            .arg("NUMPAT")
            .query::<i64>(&mut server.client())
            .ok()
            .filter(|n| *n > 0)
    });
    let now = Utc::now().timestamp_micros() as f64 / 1e6;
    let mut con = server.client();
    for chunk in runs.chunks(500) {
        let events: Vec<Value> = chunk
            .iter()
            .flat_map(|r| {
                [
                    json!({"hostname": "w1@vm", "uuid": r.backend_id, "timestamp": now, "type": "task-started"}),
                    json!({"hostname": "w1@vm", "uuid": r.backend_id, "result": "{'status': 'eventful'}", "timestamp": now + 0.5, "type": "task-succeeded"}),
                ]
            })
            .collect();
        let body =
            base64::engine::general_purpose::STANDARD.encode(Value::Array(events).to_string());
        let envelope = json!({"body": body, "content-encoding": "utf-8",
            "content-type": "application/json", "headers": {"hostname": "w1@vm"},
            "properties": {"body_encoding": "base64", "delivery_tag": "t",
                "delivery_info": {"exchange": "celeryev", "routing_key": "task.multi"}}});
        let _: i64 = redis::cmd("PUBLISH")
            .arg("/0.celeryev/task.multi")
            .arg(envelope.to_string())
            .query(&mut con)
            .unwrap();
    }
    // the listener is applying them: stall Redis in the middle
    tokio::time::sleep(Duration::from_millis(40)).await;
    let _: () = redis::cmd("DEBUG")
        .arg("SLEEP")
        .arg(1.5)
        .query(&mut con)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = store
            .get_task_runs(&ids, None)
            .await
            .map(|r| r.iter().filter(|r| r.status == RunStatus::Eventful).count())
            .unwrap_or(0);
        if done == n {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{done} of {n} runs ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tasks = reader.get_tasks(&ids).await.unwrap();
    assert!(
        tasks
            .iter()
            .all(|t| t.current_interval == Some(Interval::from_secs(12 * 3600))),
        "every interval halved once"
    );
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}
