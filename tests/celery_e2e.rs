//! End to end with a real Celery worker (installed from PyPI into target/venv-celery on first
//! use): tasks created in the store are sent by the runner and executed by an unmodified
//! worker with their args and kwargs.

mod common;

use chrono::{Duration as TimeDelta, Utc};
use serde_json::{Value, json};
use swh_scheduler::model::{Interval, NewTask, Policy, Priority, TaskType};
use swh_scheduler::runner::{Runner, RunnerConfig};
use swh_scheduler::store::Store;

use common::{CeleryWorker, RedisServer, wait_for};

const ECHO: &str = "swh.example.echo";

async fn echo_type(store: &Store) {
    let mut t = TaskType::new("e2e-echo", ECHO, "echo");
    t.default_interval = Some(Interval::from_days(1));
    store.create_task_type(&t).await.unwrap();
}

/// The result the worker stored for a task id (in the backend's db 1).
fn result(server: &RedisServer, task_id: &str) -> Option<Value> {
    let mut con = server.client();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut con).unwrap();
    let raw: Option<String> = redis::cmd("GET")
        .arg(format!("celery-task-meta-{task_id}"))
        .query(&mut con)
        .unwrap();
    raw.map(|r| serde_json::from_str(&r).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stock_worker_runs_what_the_runner_sends() {
    let server = RedisServer::start();
    let store = server.store().await;
    echo_type(&store).await;
    let mut inputs = Vec::new();
    for i in 0..5 {
        let kwargs = json!({"url": format!("https://example.com/{i}.git"), "deep": {"list": [1, 2.5, null, "ü\"/"]}});
        let mut t = NewTask::new(
            "e2e-echo",
            vec![json!(i), json!("two")],
            kwargs.as_object().unwrap().clone(),
        );
        t.next_run = Some(Utc::now() - TimeDelta::seconds(5));
        inputs.push(t);
    }
    let mut urgent = NewTask::new("e2e-echo", vec![json!("urgent")], Default::default());
    urgent.priority = Some(Priority::High);
    urgent.next_run = Some(Utc::now() - TimeDelta::seconds(5));
    urgent.policy = Some(Policy::Oneshot);
    inputs.push(urgent);
    let tasks = store
        .create_tasks(&inputs, Policy::Recurring)
        .await
        .unwrap();

    let normal = Runner::new(store.clone(), RunnerConfig::default());
    assert_eq!(normal.pass().await.unwrap()[0].1, 5);
    let prio = Runner::new(
        store.clone(),
        RunnerConfig {
            with_priority: true,
            ..RunnerConfig::default()
        },
    );
    assert_eq!(prio.pass().await.unwrap()[0].1, 1);

    // a plain worker on each queue, no configuration beyond its broker
    let backend = format!("redis://127.0.0.1:{}/1", server.port);
    let worker = CeleryWorker::start(
        &server.url(),
        Some(&backend),
        &format!("{ECHO},save_code_now:{ECHO}"),
        &[],
    );
    for task in &tasks {
        let run = &store.get_task_runs(&[task.id], None).await.unwrap()[0];
        let got = tokio::task::block_in_place(|| {
            wait_for(
                90,
                &format!("result of {}\n{}", run.backend_id, worker.log_text()),
                || result(&server, &run.backend_id),
            )
        });
        assert_eq!(got["status"], json!("SUCCESS"), "{got}");
        assert_eq!(got["result"]["args"], json!(task.arguments.args));
        assert_eq!(
            got["result"]["kwargs"],
            Value::Object(task.arguments.kwargs.clone())
        );
    }
    let log = worker.log_text();
    assert!(
        !log.contains("ERROR") && !log.contains("Traceback"),
        "{log}"
    );
}
