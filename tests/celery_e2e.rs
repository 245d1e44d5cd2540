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
                // the worker stores STARTED first (task_track_started), then the outcome
                || result(&server, &run.backend_id).filter(|r| r["status"] != "STARTED"),
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

mod loop_closing {
    use super::*;
    use std::time::Duration;
    use swh_scheduler::listener::{Listener, ListenerConfig};
    use swh_scheduler::model::{RunStatus, TaskRun, TaskStatus};

    /// Starts a listener and a runner (every 300 ms) in the background.
    fn services(store: &Store, listener: ListenerConfig) -> tokio::sync::watch::Sender<bool> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let l = Listener::new(store.clone(), listener);
        let r = Runner::new(
            store.clone(),
            RunnerConfig {
                period: Duration::from_millis(300),
                ..RunnerConfig::default()
            },
        );
        let (rx1, rx2) = (rx.clone(), rx);
        tokio::spawn(async move { l.run(stopped(rx1)).await.unwrap() });
        tokio::spawn(async move { r.run(stopped(rx2)).await.unwrap() });
        tx
    }

    async fn dumb_type(
        store: &Store,
        name: &str,
        backend: &str,
        retries: i64,
        retry_delay: Interval,
    ) {
        let mut t = TaskType::new(name, backend, name);
        t.default_interval = Some(Interval::from_days(1));
        t.min_interval = Some(Interval::from_secs(3600));
        t.max_interval = Some(Interval::from_days(4));
        t.backoff_factor = Some(2.0);
        t.num_retries = Some(retries);
        t.retry_delay = Some(retry_delay);
        store.create_task_type(&t).await.unwrap();
    }

    fn task(ty: &str, kwargs: Value, policy: Policy) -> NewTask {
        let mut t = NewTask::new(ty, vec![], kwargs.as_object().unwrap().clone());
        t.next_run = Some(Utc::now() - TimeDelta::seconds(1));
        t.policy = Some(policy);
        t
    }

    async fn runs(store: &Store, task: i64) -> Vec<TaskRun> {
        store.get_task_runs(&[task], None).await.unwrap()
    }

    async fn wait_runs(
        store: &Store,
        task: i64,
        what: &str,
        worker: &CeleryWorker,
        cond: impl Fn(&[TaskRun]) -> bool,
    ) -> Vec<TaskRun> {
        for _ in 0..1200 {
            let r = runs(store, task).await;
            if cond(&r) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}: {:?}\n{}",
            runs(store, task).await,
            worker.log_text()
        );
    }

    fn check_times(run: &TaskRun) {
        let (s, e) = (run.started.expect("started"), run.ended.expect("ended"));
        assert!(run.scheduled.unwrap() <= s && s <= e, "{run:?}");
        assert!(
            run.metadata.as_ref().unwrap()["worker"]
                .as_str()
                .unwrap()
                .starts_with("w1@"),
            "{run:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn runs_reported_by_a_real_worker_reschedule_their_tasks() {
        let server = RedisServer::start();
        let store = server.store().await;
        dumb_type(
            &store,
            "e2e-dumb",
            "swh.example.dumb",
            1,
            Interval::from_secs(1),
        )
        .await;
        dumb_type(
            &store,
            "e2e-fail",
            "swh.example.fail",
            1,
            Interval::from_secs(1),
        )
        .await;
        let made = store
            .create_tasks(
                &[
                    task("e2e-dumb", json!({"status": "eventful"}), Policy::Recurring),
                    task(
                        "e2e-dumb",
                        json!({"status": "uneventful"}),
                        Policy::Recurring,
                    ),
                    task(
                        "e2e-dumb",
                        json!({"status": "eventful", "sleep": 0.2}),
                        Policy::Oneshot,
                    ),
                    task(
                        "e2e-fail",
                        json!({"message": "no such repository"}),
                        Policy::Recurring,
                    ),
                ],
                Policy::Recurring,
            )
            .await
            .unwrap();
        let worker = CeleryWorker::start(
            &server.url(),
            None,
            "swh.example.dumb,swh.example.fail",
            &[],
        );
        let stop = services(&store, ListenerConfig::new(&server.url()));

        // final, and started: task-started may come after task-result (see update_runs.lua)
        let ended = |r: &[TaskRun]| {
            r.first()
                .is_some_and(|r| r.status.is_final() && r.started.is_some())
        };
        let eventful = wait_runs(&store, made[0].id, "eventful run", &worker, ended).await;
        let uneventful = wait_runs(&store, made[1].id, "uneventful run", &worker, ended).await;
        let oneshot = wait_runs(&store, made[2].id, "oneshot run", &worker, ended).await;
        assert_eq!(eventful[0].status, RunStatus::Eventful);
        assert_eq!(uneventful[0].status, RunStatus::Uneventful);
        assert_eq!(oneshot[0].status, RunStatus::Eventful);
        for r in [&eventful[0], &uneventful[0], &oneshot[0]] {
            check_times(r);
        }
        let tasks = store
            .get_tasks(&made.iter().map(|t| t.id).collect::<Vec<_>>())
            .await
            .unwrap();
        assert_eq!(
            tasks[0].current_interval,
            Some(Interval::from_secs(12 * 3600)),
            "eventful divides by 2"
        );
        assert_eq!(
            tasks[0].next_run,
            eventful[0].ended.unwrap() + TimeDelta::hours(12)
        );
        assert_eq!(
            tasks[1].current_interval,
            Some(Interval::from_days(2)),
            "uneventful multiplies by 2"
        );
        assert_eq!(
            tasks[1].next_run,
            uneventful[0].ended.unwrap() + TimeDelta::days(2)
        );
        assert_eq!(tasks[2].status, TaskStatus::Completed);

        // the failing task: retried after retry_delay (1 s), then back to its interval
        let failed = wait_runs(&store, made[3].id, "a retry that fails too", &worker, |r| {
            r.len() == 2 && r.iter().all(|r| r.status.is_final() && r.started.is_some())
        })
        .await;
        assert!(
            failed.iter().all(|r| r.status == RunStatus::Failed),
            "{failed:?}"
        );
        for r in &failed {
            check_times(r);
            assert_eq!(
                r.metadata.as_ref().unwrap()["error"],
                json!("ValueError: no such repository")
            );
        }
        assert!(failed[1].scheduled.unwrap() >= failed[0].ended.unwrap() + TimeDelta::seconds(1));
        let t = &store.get_tasks(&[made[3].id]).await.unwrap()[0];
        assert_eq!(
            (t.retries_left, t.status),
            (1, TaskStatus::NextRunNotScheduled),
            "retries reset"
        );
        assert_eq!(t.next_run, failed[1].ended.unwrap() + TimeDelta::days(1));
        stop.send(true).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_listener_away_while_tasks_run_leaves_no_run_stuck() {
        let server = RedisServer::start();
        let store = server.store().await;
        dumb_type(
            &store,
            "e2e-slow",
            "swh.example.dumb",
            3,
            Interval::from_secs(3600),
        )
        .await;
        let made = store
            .create_tasks(
                &(0..3)
                    .map(|i| {
                        task(
                            "e2e-slow",
                            json!({"status": "uneventful", "sleep": 1.5 + 0.1 * i as f64}),
                            Policy::Recurring,
                        )
                    })
                    .collect::<Vec<_>>(),
                Policy::Recurring,
            )
            .await
            .unwrap();
        let backend = format!("redis://127.0.0.1:{}/1", server.port);
        let worker = CeleryWorker::start(
            &server.url(),
            Some(&backend),
            "swh.example.dumb",
            &["-c", "3"],
        );
        // the listener, a process of its own, sees the tasks start and is killed (-9) while
        // they run
        let listener = |extra: &[&str]| {
            std::process::Command::new(env!("CARGO_BIN_EXE_swh-scheduler"))
                .args([
                    "--redis-url",
                    &server.url(),
                    "start-listener",
                    "--sweep-every",
                    "0",
                ])
                .args(extra)
                .env("RUST_LOG", "warn")
                .spawn()
                .unwrap()
        };
        let mut first = listener(&[]);
        Runner::new(store.clone(), RunnerConfig::default())
            .pass()
            .await
            .unwrap();
        for t in &made {
            wait_runs(&store, t.id, "started", &worker, |r| {
                r.first().is_some_and(|r| r.status == RunStatus::Started)
            })
            .await;
        }
        first.kill().unwrap();
        first.wait().unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            runs(&store, made[0].id).await[0].status == RunStatus::Started,
            "nobody listened"
        );
        // restarted: the result backend settles them
        let mut second = listener(&["--result-backend", &backend]);
        for t in &made {
            let r = wait_runs(&store, t.id, "settled", &worker, |r| {
                r.first().is_some_and(|r| r.status.is_final())
            })
            .await;
            assert_eq!(r[0].status, RunStatus::Uneventful);
        }
        second.kill().unwrap();
        second.wait().unwrap();

        // without a result backend, the lost sweep settles them
        let more = store
            .create_tasks(
                &[task(
                    "e2e-slow",
                    json!({"status": "eventful", "sleep": 1.0}),
                    Policy::Recurring,
                )],
                Policy::Recurring,
            )
            .await
            .unwrap();
        Runner::new(store.clone(), RunnerConfig::default())
            .pass()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await; // ran and finished unheard
        let mut sweeping = ListenerConfig::new(&server.url());
        sweeping.lost_after = Duration::from_millis(500);
        sweeping.sweep_every = Duration::from_millis(200);
        let stop = services(&store, sweeping);
        let r = wait_runs(&store, more[0].id, "lost", &worker, |r| {
            r.first().is_some_and(|r| r.status.is_final())
        })
        .await;
        assert_eq!(r[0].status, RunStatus::Lost);
        let t = &store.get_tasks(&[more[0].id]).await.unwrap()[0];
        assert_eq!(t.retries_left, 2, "a lost run counts as a failure");
        stop.send(true).unwrap();
    }
}

/// The recurrent visit runner's messages, run by a stock worker: the loader gets the url, the
/// lister's names and the listing's extra arguments as keyword arguments.
#[tokio::test(flavor = "multi_thread")]
async fn a_stock_worker_runs_the_visits_the_visit_runner_sends() {
    use swh_scheduler::model::ListedOrigin;
    use swh_scheduler::visit_runner::{VisitRunner, VisitRunnerConfig};

    let server = RedisServer::start();
    let store = server.store().await;
    store
        .create_task_type(&TaskType::new("load-git", ECHO, "load git"))
        .await
        .unwrap();
    let lister = store.get_or_create_lister("cgit", None).await.unwrap();
    let origins: Vec<ListedOrigin> = (0..3)
        .map(|i| {
            let mut o = ListedOrigin::new(
                lister.id.as_deref().unwrap(),
                &format!("https://git.example/r{i}/ü\"q\".git"),
                "git",
            );
            o.extra_loader_arguments = json!({"base_git_url": null, "n": i})
                .as_object()
                .unwrap()
                .clone();
            o
        })
        .collect();
    store.record_listed_origins(&origins).await.unwrap();
    let sent = VisitRunner::new(store.clone(), VisitRunnerConfig::default())
        .pass()
        .await
        .unwrap();
    assert_eq!(sent, vec![("git".to_string(), 3)]);
    let mut con = server.client();
    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg(ECHO)
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    let ids: Vec<String> = raw
        .iter()
        .map(|m| {
            let m: Value = serde_json::from_str(m).unwrap();
            m["headers"]["id"].as_str().unwrap().to_string()
        })
        .collect();

    let backend = format!("redis://127.0.0.1:{}/1", server.port);
    let worker = CeleryWorker::start(&server.url(), Some(&backend), ECHO, &[]);
    let mut urls = Vec::new();
    for id in &ids {
        let got = tokio::task::block_in_place(|| {
            wait_for(
                90,
                &format!("result of {id}\n{}", worker.log_text()),
                || result(&server, id).filter(|r| r["status"] != "STARTED"),
            )
        });
        assert_eq!(got["status"], json!("SUCCESS"), "{got}");
        assert_eq!(got["result"]["args"], json!([]));
        let kw = &got["result"]["kwargs"];
        let n = kw["n"].as_i64().unwrap();
        assert_eq!(
            kw,
            &json!({
                "url": format!("https://git.example/r{n}/ü\"q\".git"),
                "lister_name": "cgit",
                "lister_instance_name": null,
                "base_git_url": null,
                "n": n,
            })
        );
        urls.push(n);
    }
    urls.sort();
    assert_eq!(urls, vec![0, 1, 2]);
}

/// The loop closed for visits: listed origins sent by the visit runner, loaded by a stock
/// worker whose task returns the loaders' result shape, and the listener applying each result
/// to the origin's visit stats (eventful, uneventful, not found, and a task that raises).
#[tokio::test(flavor = "multi_thread")]
async fn visit_results_from_a_real_worker_update_the_visit_stats() {
    use std::time::Duration;
    use swh_scheduler::listener::{Listener, ListenerConfig};
    use swh_scheduler::model::{ListedOrigin, OriginVisitStats};
    use swh_scheduler::visit_runner::{VisitRunner, VisitRunnerConfig};

    const VISIT: &str = "swh.example.visit";
    let server = RedisServer::start();
    let store = server.store().await;
    store
        .create_task_type(&TaskType::new("load-git", VISIT, "load git"))
        .await
        .unwrap();
    let lister = store
        .get_or_create_lister("gitea", Some("codeberg"))
        .await
        .unwrap();
    let snp = "0123456789abcdef0123456789abcdef01234567";
    let cases = [
        (
            "eventful",
            json!({"status": "eventful", "snapshot_id": snp}),
        ),
        (
            "uneventful",
            json!({"status": "uneventful", "snapshot_id": snp}),
        ),
        ("not_found", json!({"status": "not_found"})),
        ("raise", json!({"status": "raise"})),
    ];
    let origins: Vec<ListedOrigin> = cases
        .iter()
        .map(|(name, extra)| {
            let mut o = ListedOrigin::new(
                lister.id.as_deref().unwrap(),
                &format!("https://codeberg.example/{name}.git"),
                "git",
            );
            o.extra_loader_arguments = extra.as_object().unwrap().clone();
            o
        })
        .collect();
    store.record_listed_origins(&origins).await.unwrap();

    let (tx, rx) = tokio::sync::watch::channel(false);
    let listener = Listener::new(store.clone(), ListenerConfig::new(&server.url()));
    let counters = listener.stats();
    let mut rx1 = rx.clone();
    let l = tokio::spawn(async move {
        listener
            .run(async move {
                let _ = rx1.wait_for(|s| *s).await;
            })
            .await
    });
    // the listener subscribed before anything runs (pub/sub keeps nothing for later)
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = VisitRunner::new(store.clone(), VisitRunnerConfig::default())
        .pass()
        .await
        .unwrap();
    assert_eq!(sent, vec![("git".to_string(), 4)]);
    let before = Utc::now();
    let worker = CeleryWorker::start(&server.url(), None, VISIT, &[]);

    let ids: Vec<(String, String)> = origins
        .iter()
        .map(|o| (o.url.clone(), "git".to_string()))
        .collect();
    let done = |s: &OriginVisitStats| {
        s.last_eventful.is_some()
            || s.last_uneventful.is_some()
            || s.last_failed.is_some()
            || s.last_notfound.is_some()
    };
    let mut stats = Vec::new();
    for _ in 0..1800 {
        stats = store.origin_visit_stats_get(&ids).await.unwrap();
        if stats.len() == 4 && stats.iter().all(done) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let by_url = |name: &str| {
        stats
            .iter()
            .find(|s| s.url.ends_with(&format!("/{name}.git")))
            .unwrap_or_else(|| panic!("no stats for {name}: {stats:?}\n{}", worker.log_text()))
            .clone()
    };
    let snapshot: Vec<u8> = (0..20)
        .map(|i| u8::from_str_radix(&snp[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let now = Utc::now();
    let within = |t: Option<chrono::DateTime<Utc>>| t.is_some_and(|t| t >= before && t <= now);
    let e = by_url("eventful");
    assert!(within(e.last_eventful), "{e:?}\n{}", worker.log_text());
    assert_eq!(e.last_snapshot.as_deref(), Some(&snapshot[..]));
    // the first result naming a snapshot makes the visit eventful, whatever the loader said
    let u = by_url("uneventful");
    assert!(within(u.last_eventful), "{u:?}");
    assert_eq!(u.last_snapshot.as_deref(), Some(&snapshot[..]));
    let n = by_url("not_found");
    assert!(
        within(n.last_notfound) && n.last_eventful.is_none(),
        "{n:?}"
    );
    let f = by_url("raise");
    assert!(within(f.last_failed) && f.last_snapshot.is_none(), "{f:?}");
    for s in &stats {
        assert!(s.last_scheduled.is_some_and(|t| t <= before), "{s:?}");
    }
    // the worker's SWHTask sends task-result and task-succeeded: one visit each, not two
    use std::sync::atomic::Ordering::Relaxed;
    // (the counter moves just after the write it counts)
    for _ in 0..100 {
        if counters.visits_applied.load(Relaxed) >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counters.visit_results.load(Relaxed), 4);
    assert_eq!(counters.visits_applied.load(Relaxed), 4);
    assert_eq!(
        stats.iter().filter(|s| s.last_uneventful.is_some()).count(),
        0
    );
    tx.send(true).unwrap();
    l.await.unwrap().unwrap();
    drop(worker);
}
