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

/// Ten runner processes killed with SIGKILL at random moments of their passes, then one clean
/// pass: every task sent once, each message's run recorded and each run's message sent.
#[tokio::test(flavor = "multi_thread")]
async fn runners_killed_mid_dispatch_leave_no_duplicate_and_no_orphan() {
    let server = RedisServer::start();
    let store = server.store().await;
    make_type(&store, "t-kill").await;
    let n = 30_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let tasks: Vec<NewTask> = chunk.iter().map(|&i| due("t-kill", i)).collect();
        store.create_tasks(&tasks, Policy::Recurring).await.unwrap();
    }
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

/// Redis stalls (DEBUG SLEEP) in the middle of a large call, longer than the store waits: the
/// call fails, saying it may have been applied; the chunk it was waiting for was applied once
/// Redis woke up; repeating the call completes it and changes nothing else (create_tasks is
/// idempotent on its inputs).
#[tokio::test(flavor = "multi_thread")]
async fn a_stall_longer_than_the_timeout_hides_no_write() {
    let server = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let mut config = StoreConfig::new(&server.url());
    config.response_timeout = Duration::from_millis(300);
    let store = Store::connect(config).await.unwrap();
    make_type(&store, "t-stall").await;
    let n = 60_000;
    let tasks: Vec<NewTask> = (0..n).map(|i| due("t-stall", i)).collect();
    let stall = |secs: f64| {
        let url = server.url();
        std::thread::spawn(move || {
            let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
            let _: () = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(secs)
                .query(&mut con)
                .unwrap();
        })
    };
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
    let partial = store.search_tasks(&Default::default()).await.unwrap().len();
    assert!(
        partial > 0 && partial < n,
        "{partial} of {n} written before the error"
    );
    let again = store.create_tasks(&tasks, Policy::Recurring).await.unwrap();
    assert_eq!(again.len(), n);
    assert_eq!(
        store.search_tasks(&Default::default()).await.unwrap().len(),
        n,
        "repeating the call completed it, with no task twice"
    );
}
