//! The runner against a real redis-server: messages, queue limits, priority queues, racing
//! runners, broker naming, Redis restarts and signals.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{Duration as TimeDelta, Utc};
use serde_json::{Value, json};
use swh_scheduler::celery::BrokerNaming;
use swh_scheduler::celery::message::{TaskMessage, validate};
use swh_scheduler::model::{Interval, NewTask, Policy, Priority, RunStatus, TaskStatus, TaskType};
use swh_scheduler::runner::{Runner, RunnerConfig};
use swh_scheduler::store::{BrokerLink, Store};

use common::{RedisServer, wait_for};

const BACKEND: &str = "swh.test.tasks.record";

async fn make_type(store: &Store, name: &str, mql: Option<i64>) {
    let mut t = TaskType::new(name, BACKEND, "test");
    t.default_interval = Some(Interval::from_days(1));
    t.max_queue_length = mql;
    store.create_task_type(&t).await.unwrap();
}

fn due(ty: &str, i: usize) -> NewTask {
    let kwargs = json!({"url": format!("https://example.com/{i}/\"q\"/ü"), "n": i});
    let mut t = NewTask::new(
        ty,
        vec![json!(i), json!("x")],
        kwargs.as_object().unwrap().clone(),
    );
    t.next_run = Some(Utc::now() - TimeDelta::seconds(60) + TimeDelta::microseconds(i as i64));
    t
}

fn lrange(server: &RedisServer, db: u32, key: &str) -> Vec<Value> {
    server.messages(db, key)
}

fn llen(server: &RedisServer, key: &str) -> usize {
    let mut con = server.client();
    redis::cmd("LLEN").arg(key).query(&mut con).unwrap()
}

fn runner(store: &Store, f: impl FnOnce(&mut RunnerConfig)) -> Runner {
    let mut c = RunnerConfig {
        origin: "swh-scheduler@test".into(),
        ..RunnerConfig::default()
    };
    f(&mut c);
    Runner::new(store.clone(), c)
}

#[tokio::test]
async fn due_tasks_become_celery_messages_and_runs() {
    let server = RedisServer::start();
    let store = server.store().await;
    make_type(&store, "t-record", Some(1000)).await;
    let mut inputs: Vec<NewTask> = (0..3).map(|i| due("t-record", i)).collect();
    let mut later = due("t-record", 9);
    later.next_run = Some(Utc::now() + TimeDelta::hours(1));
    inputs.push(later);
    let tasks = store
        .create_tasks(&inputs, Policy::Recurring)
        .await
        .unwrap();

    let report = runner(&store, |_| {}).pass().await.unwrap();
    assert_eq!(report, vec![("t-record".to_string(), 3)]);

    // BRPOP takes from the tail: the oldest task first
    let mut messages = lrange(&server, 0, BACKEND);
    messages.reverse();
    assert_eq!(messages.len(), 3);
    for (task, msg) in tasks.iter().zip(&messages) {
        validate(msg).unwrap();
        let id = msg["headers"]["id"].as_str().unwrap();
        let want = TaskMessage {
            task: BACKEND,
            id,
            args: &task.arguments.args,
            kwargs: &task.arguments.kwargs,
            queue: BACKEND,
            origin: "swh-scheduler@test",
        }
        .envelope();
        assert_eq!(msg, &want, "the Lua envelope is the Rust one");
        let runs = store.get_task_runs(&[task.id], None).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (runs[0].backend_id.as_str(), runs[0].status),
            (id, RunStatus::Scheduled)
        );
        assert_eq!(
            swh_scheduler::model::ids::parse_backend_id(id).map(|r| r.0),
            Some(runs[0].id)
        );
    }
    let stored = store
        .get_tasks(&tasks.iter().map(|t| t.id).collect::<Vec<_>>())
        .await
        .unwrap();
    let st: Vec<TaskStatus> = stored.iter().map(|t| t.status).collect();
    assert_eq!(
        st,
        [
            TaskStatus::NextRunScheduled,
            TaskStatus::NextRunScheduled,
            TaskStatus::NextRunScheduled,
            TaskStatus::NextRunNotScheduled
        ]
    );

    // the backend id in the message finds its run
    let first = messages[0]["headers"]["id"].as_str().unwrap();
    let run = store
        .start_task_run(first, None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.task, tasks[0].id);
    assert_eq!(
        runner(&store, |_| {}).pass().await.unwrap(),
        vec![("t-record".to_string(), 0)]
    );
}

#[tokio::test]
async fn queues_never_exceed_max_queue_length() {
    let server = RedisServer::start();
    let store = server.store().await;
    make_type(&store, "t-limited", Some(100)).await;
    let inputs: Vec<NewTask> = (0..1000).map(|i| due("t-limited", i)).collect();
    store
        .create_tasks(&inputs, Policy::Recurring)
        .await
        .unwrap();
    let r = runner(&store, |_| {});
    for _ in 0..20 {
        r.pass().await.unwrap();
        assert_eq!(llen(&server, BACKEND), 100);
    }
    // messages in the other priority buckets count too
    let mut con = server.client();
    let _: () = redis::cmd("LPUSH")
        .arg(format!("{BACKEND}\x06\x169"))
        .arg("{}")
        .query(&mut con)
        .unwrap();
    // a worker takes 30: 31 slots free, more than 1/5 of 100: refilled to 100 in all
    let _: () = redis::cmd("RPOP")
        .arg(BACKEND)
        .arg(30)
        .query(&mut con)
        .unwrap();
    assert_eq!(r.pass().await.unwrap()[0].1, 29);
    assert_eq!(llen(&server, BACKEND), 99);
    // a worker takes 20: exactly 1/5 free is not enough (the original's threshold)
    let _: () = redis::cmd("RPOP")
        .arg(BACKEND)
        .arg(20)
        .query(&mut con)
        .unwrap();
    assert_eq!(r.pass().await.unwrap()[0].1, 0);
    let _: () = redis::cmd("RPOP")
        .arg(BACKEND)
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert_eq!(r.pass().await.unwrap()[0].1, 21);
}

#[tokio::test]
async fn priority_tasks_go_to_the_save_code_now_queue() {
    let server = RedisServer::start();
    let store = server.store().await;
    make_type(&store, "t-prio", Some(5)).await;
    let mut inputs: Vec<NewTask> = (0..8).map(|i| due("t-prio", i)).collect();
    for t in &mut inputs[..6] {
        t.priority = Some(Priority::High);
    }
    store.create_tasks(&inputs, Policy::Oneshot).await.unwrap();
    assert_eq!(
        runner(&store, |_| {}).pass().await.unwrap()[0].1,
        2,
        "only those without priority"
    );
    let prio = runner(&store, |c| c.with_priority = true);
    // no 1/5 threshold for priority tasks, but never past max_queue_length
    assert_eq!(prio.pass().await.unwrap()[0].1, 5);
    let queue = format!("save_code_now:{BACKEND}");
    assert_eq!(llen(&server, &queue), 5);
    let mut con = server.client();
    let _: () = redis::cmd("RPOP").arg(&queue).query(&mut con).unwrap();
    assert_eq!(prio.pass().await.unwrap()[0].1, 1);
    for m in lrange(&server, 0, &queue) {
        validate(&m).unwrap();
        assert_eq!(
            m["properties"]["delivery_info"]["routing_key"],
            json!(queue)
        );
    }
    assert_eq!(llen(&server, BACKEND), 2);
}

#[tokio::test]
async fn four_racing_runners_send_each_task_exactly_once() {
    let server = RedisServer::start();
    let store = server.store().await;
    make_type(&store, "t-race", None).await;
    let n = 100_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let inputs: Vec<NewTask> = chunk.iter().map(|&i| due("t-race", i)).collect();
        store
            .create_tasks(&inputs, Policy::Recurring)
            .await
            .unwrap();
    }
    let mut handles = Vec::new();
    for _ in 0..4 {
        let s = server.store().await;
        handles.push(tokio::spawn(async move {
            runner(&s, |_| {}).pass().await.unwrap()[0].1
        }));
    }
    let mut sent = 0;
    for h in handles {
        sent += h.await.unwrap();
    }
    assert_eq!(sent, n);
    let mut con = server.client();
    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg(BACKEND)
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(raw.len(), n, "messages in the queue");
    let mut ids = HashSet::new();
    let mut tasks = HashSet::new();
    for m in &raw {
        let v: Value = serde_json::from_str(m).unwrap();
        ids.insert(v["headers"]["id"].as_str().unwrap().to_string());
        let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
        tasks.insert(body[1]["n"].as_u64().unwrap());
    }
    assert_eq!(ids.len(), n, "distinct task ids");
    assert_eq!(tasks.len(), n, "every task once");
}

#[tokio::test]
async fn broker_naming_and_database_follow_the_workers_kombu() {
    let server = RedisServer::start();
    let store = server.store().await;
    make_type(&store, "t-named", Some(10)).await;
    store
        .create_tasks(&[due("t-named", 1)], Policy::Recurring)
        .await
        .unwrap();
    let r = runner(&store, |c| {
        c.naming = BrokerNaming {
            global_keyprefix: "pfx:".into(),
            ..Default::default()
        };
        c.broker = BrokerLink::SameServer { db: Some(3) };
    });
    assert_eq!(r.pass().await.unwrap()[0].1, 1);
    let m = lrange(&server, 3, &format!("pfx:{BACKEND}"));
    assert_eq!(m.len(), 1);
    validate(&m[0]).unwrap();
    assert!(lrange(&server, 0, &format!("pfx:{BACKEND}")).is_empty());
    // the store's own keys stayed in db 0
    assert_eq!(
        store.search_tasks(&Default::default()).await.unwrap()[0].status,
        TaskStatus::NextRunScheduled
    );
}

#[tokio::test]
async fn the_runner_survives_a_redis_restart() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = server.store().await;
    make_type(&store, "t-restart", None).await;
    store
        .create_tasks(&[due("t-restart", 1)], Policy::Recurring)
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let r = runner(&store, |c| c.period = Duration::from_millis(100));
    let handle = tokio::spawn(async move {
        r.run(async {
            stop_rx.await.ok();
        })
        .await
    });
    let port = server.port;
    let count = move || {
        let c = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
        c.get_connection().ok().and_then(|mut con| {
            redis::cmd("LLEN")
                .arg(BACKEND)
                .query::<usize>(&mut con)
                .ok()
        })
    };
    tokio::task::spawn_blocking(move || {
        wait_for(10, "first dispatch", || count().filter(|n| *n == 1))
    })
    .await
    .unwrap();

    server.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.restart();
    // the runner is still there: new due tasks get sent
    store
        .create_tasks(
            &[due("t-restart", 2), due("t-restart", 3)],
            Policy::Recurring,
        )
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        wait_for(20, "dispatch after restart", || count().filter(|n| *n == 3))
    })
    .await
    .unwrap();
    stop_tx.send(()).unwrap();
    handle.await.unwrap().unwrap();
    let runs = store
        .get_task_runs(
            &store
                .search_tasks(&Default::default())
                .await
                .unwrap()
                .iter()
                .map(|t| t.id)
                .collect::<Vec<_>>(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(runs.len(), 3, "one run per task, none twice");
}

#[tokio::test]
async fn start_runner_stops_cleanly_on_sigterm_and_names_unknown_types() {
    let server = RedisServer::start();
    let store = server.store().await;
    make_type(&store, "t-cli", None).await;
    store
        .create_tasks(&[due("t-cli", 1)], Policy::Recurring)
        .await
        .unwrap();
    let bin = env!("CARGO_BIN_EXE_swh-scheduler");
    let mut child = std::process::Command::new(bin)
        .args(["--redis-url", &server.url(), "start-runner", "-p", "0.2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let s = server.url();
    tokio::task::spawn_blocking(move || {
        wait_for(10, "dispatch by the CLI runner", || {
            let c = redis::Client::open(s.as_str()).unwrap();
            let mut con = c.get_connection().ok()?;
            (redis::cmd("LLEN")
                .arg(BACKEND)
                .query::<usize>(&mut con)
                .ok()?
                == 1)
                .then_some(())
        })
    })
    .await
    .unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_for(10, "runner exit", || child.try_wait().unwrap());
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("Scheduled 1 tasks"), "{err}");

    let out = std::process::Command::new(bin)
        .args([
            "--redis-url",
            &server.url(),
            "start-runner",
            "--task-type",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown task type \"nope\""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The broker on another server: dispatch writes to the type's outbox in the store, in the
/// same step as the runs, and the runner forwards the outbox; backpressure counts the broker's
/// queue and the outbox together.
#[tokio::test]
async fn a_broker_on_another_server_gets_the_messages_through_the_outbox() {
    let server = RedisServer::start();
    let broker = RedisServer::start();
    let store = server.store().await;
    make_type(&store, "t-remote", Some(10)).await;
    let inputs: Vec<NewTask> = (0..25).map(|i| due("t-remote", i)).collect();
    let tasks = store
        .create_tasks(&inputs, Policy::Recurring)
        .await
        .unwrap();
    let link = BrokerLink::new(&server.url(), Some(&broker.url())).unwrap();
    assert!(matches!(link, BrokerLink::Remote(_)));
    let r = runner(&store, |c| c.broker = link.clone());
    assert_eq!(r.pass().await.unwrap()[0].1, 10);
    let mut messages = lrange(&broker, 0, BACKEND);
    messages.reverse();
    assert_eq!(messages.len(), 10);
    // the oldest first, each message once, the broker's order the dispatch order
    for (task, msg) in tasks.iter().zip(&messages) {
        validate(msg).unwrap();
        let run = store.get_task_runs(&[task.id], Some(1)).await.unwrap();
        assert_eq!(
            Some(run[0].backend_id.as_str()),
            msg["headers"]["id"].as_str()
        );
    }
    // nothing left in the store's outbox, and the store's server has no broker list
    assert_eq!(llen(&server, BACKEND), 0);
    let outbox = store.outbox("t-remote", BACKEND);
    assert_eq!(llen(&server, &outbox.list), 0);
    assert_eq!(llen(&server, &outbox.batch), 0);
    // the queue is full: nothing more until the workers take some
    assert_eq!(r.pass().await.unwrap()[0].1, 0);
    let mut b = broker.client();
    let _: Vec<String> = redis::cmd("RPOP")
        .arg(BACKEND)
        .arg(5)
        .query(&mut b)
        .unwrap();
    assert_eq!(r.pass().await.unwrap()[0].1, 5);
    assert_eq!(llen(&broker, BACKEND), 10);
    let info = store.require_type("t-remote").await.unwrap();
    let forwarded: i64 = redis::cmd("HGET")
        .arg(&info.keys.type_key)
        .arg("outbox_forwarded")
        .query(&mut server.client())
        .unwrap();
    assert_eq!(forwarded, 15);
}

/// Forwarders that die mid-batch: the next one takes the batch over once the lease lapses,
/// and the push, idempotent by the batch's id, puts each message into the broker once, whether
/// the dead forwarder had pushed the batch (and a worker taken some of it) or not.
#[tokio::test]
async fn forwarders_that_die_mid_batch_neither_lose_nor_duplicate_a_message() {
    let server = RedisServer::start();
    let broker = RedisServer::start();
    let store = server.store().await;
    make_type(&store, "t-crash", None).await;
    let link = BrokerLink::new(&server.url(), Some(&broker.url())).unwrap();
    let info = store.require_type("t-crash").await.unwrap();
    let keys = BrokerNaming::default().queue_keys(BACKEND);
    let outbox = store.outbox("t-crash", BACKEND);
    let dispatch = async |from: usize, n: usize| {
        let inputs: Vec<NewTask> = (from..from + n).map(|i| due("t-crash", i)).collect();
        store
            .create_tasks(&inputs, Policy::Recurring)
            .await
            .unwrap();
        let target = swh_scheduler::store::DispatchTarget {
            priority: false,
            queue: BACKEND,
            queue_keys: &keys,
            origin: "test@here",
            max_tasks: 100,
            threshold: true,
            broker: &link,
        };
        assert_eq!(store.dispatch(&info, &target).await.unwrap().sent, n);
    };
    // a forwarder's first step, done by hand: a batch of `max` under a 100 ms lease
    let claim = |token: &str, max: usize| -> (String, Vec<Vec<u8>>) {
        let reply: Vec<redis::Value> = redis::Script::new(include_str!("../lua/outbox_claim.lua"))
            .key(&outbox.list)
            .key(&outbox.batch)
            .key(&outbox.lease)
            .key(&outbox.batch_id)
            .arg(token)
            .arg(100)
            .arg(max)
            .arg(format!("batch-of-{token}"))
            .invoke(&mut server.client())
            .unwrap();
        assert_eq!(reply[0], redis::Value::Int(1), "a fresh batch");
        let id: String = redis::from_redis_value_ref(&reply[1]).unwrap();
        let msgs = reply[2..]
            .iter()
            .map(|v| redis::from_redis_value_ref(v).unwrap())
            .collect();
        (id, msgs)
    };
    let in_broker = || -> Vec<Vec<u8>> {
        redis::cmd("LRANGE")
            .arg(BACKEND)
            .arg(0)
            .arg(-1)
            .query(&mut broker.client())
            .unwrap()
    };
    let lapse = || std::thread::sleep(std::time::Duration::from_millis(150));
    let forward = async || {
        store
            .forward_outbox(&link, &outbox, &keys[0])
            .await
            .unwrap()
    };

    // 1. a forwarder takes two of six messages, pushes them, and dies before its ack; a
    // worker takes one of them
    dispatch(0, 6).await;
    let (id, first) = claim("dead-1", 2);
    let pushed: i64 = redis::Script::new(include_str!("../lua/broker_push.lua"))
        .key(BACKEND)
        .key(format!("swh-scheduler:outbox-batch:{id}"))
        .arg(600)
        .arg(&first)
        .invoke(&mut broker.client())
        .unwrap();
    assert_eq!(pushed, 1);
    let taken: Vec<u8> = redis::cmd("RPOP")
        .arg(BACKEND)
        .query(&mut broker.client())
        .unwrap();
    assert_eq!(taken, first[0], "the oldest first");
    // while its lease holds, nobody else forwards
    let f = forward().await;
    assert_eq!(f, Default::default());
    lapse();
    let f = forward().await;
    // its batch is taken over and found in the broker; the other four go on
    assert_eq!((f.sent, f.recovered, f.already_in), (6, 2, 2));
    let waiting = in_broker();
    assert_eq!(waiting.len(), 5, "nothing twice");
    assert!(!waiting.contains(&taken) && waiting.contains(&first[1]));

    // 2. a forwarder takes three more and dies before pushing them
    dispatch(6, 3).await;
    let (_, second) = claim("dead-2", 3);
    lapse();
    let f = forward().await;
    assert_eq!((f.sent, f.recovered, f.already_in), (3, 3, 0));
    let waiting = in_broker();
    assert_eq!(waiting.len(), 8);
    assert!(second.iter().all(|m| waiting.contains(m)));
    assert_eq!(llen(&server, &outbox.batch), 0);
    assert_eq!(llen(&server, &outbox.list), 0);
    let counter = |field: &str| -> i64 {
        redis::cmd("HGET")
            .arg(&info.keys.type_key)
            .arg(field)
            .query(&mut server.client())
            .unwrap()
    };
    assert_eq!(counter("outbox_forwarded"), 9);
    assert_eq!(counter("outbox_recovered"), 5);
}
