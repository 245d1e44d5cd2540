//! The store on a real local Redis Cluster (tests/common's RedisCluster), with the Celery broker
//! on its own redis-server: a stock Celery worker closes the loop through the runner and the
//! listener; a type's slot migrating under a running runner; a master killed mid-run. The
//! shared API suite runs on a cluster too (tests/api.rs).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{Duration as TimeDelta, Utc};
use serde_json::{Value, json};
use swh_scheduler::listener::{Listener, ListenerConfig};
use swh_scheduler::model::{Interval, NewTask, Policy, RunStatus, TaskStatus, TaskType};
use swh_scheduler::runner::{Runner, RunnerConfig};
use swh_scheduler::store::{BrokerLink, Store, StoreConfig};

use common::{CeleryWorker, RedisCluster, RedisServer};

const BACKEND: &str = "swh.example.dumb";

async fn cluster_store(cluster: &RedisCluster) -> Store {
    let store = Store::connect(StoreConfig::new(&cluster.url()))
        .await
        .unwrap();
    assert!(store.is_cluster());
    store
}

async fn make_type(store: &Store, name: &str) {
    let mut t = TaskType::new(name, BACKEND, name);
    t.default_interval = Some(Interval::from_days(1));
    t.min_interval = Some(Interval::from_secs(3600));
    t.max_interval = Some(Interval::from_days(4));
    t.backoff_factor = Some(2.0);
    t.max_queue_length = None;
    store.create_task_type(&t).await.unwrap();
}

fn due(ty: &str, i: usize) -> NewTask {
    let kwargs = json!({"status": "eventful", "n": i});
    let mut t = NewTask::new(ty, vec![], kwargs.as_object().unwrap().clone());
    t.next_run = Some(Utc::now() - TimeDelta::seconds(60));
    t
}

async fn create_due(store: &Store, ty: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let tasks: Vec<NewTask> = chunk.iter().map(|&i| due(ty, i)).collect();
        let made = store.create_tasks(&tasks, Policy::Recurring).await.unwrap();
        ids.extend(made.iter().map(|t| t.id));
    }
    ids
}

fn runner(store: &Store, broker: &RedisServer, period_ms: u64) -> Runner {
    Runner::new(
        store.clone(),
        RunnerConfig {
            period: Duration::from_millis(period_ms),
            broker: BrokerLink::remote(&broker.url()).unwrap(),
            ..RunnerConfig::default()
        },
    )
}

/// The task ids of the messages in the broker's queue (each message's kwargs `n` is the
/// task's index), with their counts.
fn queued(broker: &RedisServer) -> HashMap<i64, usize> {
    let mut out = HashMap::new();
    for m in broker.messages(0, BACKEND) {
        let body: Value = serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
        *out.entry(body[1]["n"].as_i64().unwrap()).or_default() += 1;
    }
    out
}

/// The node that serves `slot`, and the other masters.
fn slot_owner(cluster: &RedisCluster, slot: i64) -> (String, u16) {
    let mut con = cluster.nodes[0].client();
    let slots: Vec<Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Vec<redis::Value>>(&mut con)
        .unwrap()
        .into_iter()
        .map(|v| redis_to_json(&v))
        .collect();
    for s in slots {
        let (lo, hi) = (s[0].as_i64().unwrap(), s[1].as_i64().unwrap());
        if lo <= slot && slot <= hi {
            let port = s[2][1].as_i64().unwrap() as u16;
            let id = s[2][2].as_str().unwrap().to_string();
            return (id, port);
        }
    }
    panic!("no node serves slot {slot}");
}

fn redis_to_json(v: &redis::Value) -> Value {
    match v {
        redis::Value::Int(i) => json!(i),
        redis::Value::BulkString(b) => json!(String::from_utf8_lossy(b)),
        redis::Value::SimpleString(s) => json!(s),
        redis::Value::Array(a) => Value::Array(a.iter().map(redis_to_json).collect()),
        _ => Value::Null,
    }
}

fn node_on(cluster: &RedisCluster, port: u16) -> &RedisServer {
    cluster.nodes.iter().find(|n| n.port == port).unwrap()
}

fn keyslot(cluster: &RedisCluster, key: &str) -> i64 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut cluster.nodes[0].client())
        .unwrap()
}

/// A stock Celery worker takes the messages the runner forwarded to the broker's own server,
/// and the listener, subscribed there, records the runs in the cluster and reschedules the
/// tasks.
#[tokio::test(flavor = "multi_thread")]
async fn a_stock_worker_closes_the_loop_through_a_cluster_store() {
    let cluster = RedisCluster::start(3, 0);
    let broker = RedisServer::start();
    let store = cluster_store(&cluster).await;
    let types = ["c-one", "c-two", "c-three"];
    let mut made = Vec::new();
    for ty in types {
        make_type(&store, ty).await;
        // the example worker's dumb task: its kwargs are status and sleep
        let tasks: Vec<NewTask> = (0..4)
            .map(|i| {
                let kwargs = json!({"status": "eventful", "sleep": i as f64 / 1000.0});
                let mut t = NewTask::new(ty, vec![], kwargs.as_object().unwrap().clone());
                t.next_run = Some(Utc::now() - TimeDelta::seconds(60));
                t
            })
            .collect();
        let tasks = store.create_tasks(&tasks, Policy::Recurring).await.unwrap();
        made.extend(tasks.iter().map(|t| t.id));
    }
    let worker = CeleryWorker::start(&broker.url(), None, BACKEND, &[]);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut lc = ListenerConfig::new(&broker.url());
    lc.broker = BrokerLink::remote(&broker.url()).unwrap();
    let l = Listener::new(store.clone(), lc);
    let r = runner(&store, &broker, 300);
    let (rx1, rx2) = (rx.clone(), rx);
    let listening = tokio::spawn(async move { l.run(stopped(rx1)).await });
    let running = tokio::spawn(async move { r.run(stopped(rx2)).await });

    for id in &made {
        let mut ended = None;
        for _ in 0..1200 {
            let runs = store.get_task_runs(&[*id], None).await.unwrap();
            if let Some(r) = runs
                .first()
                .filter(|r| r.status.is_final() && r.started.is_some())
            {
                ended = Some(r.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let run = ended.unwrap_or_else(|| panic!("no ended run for {id}\n{}", worker.log_text()));
        assert_eq!(run.status, RunStatus::Eventful);
    }
    let tasks = store.get_tasks(&made).await.unwrap();
    assert!(
        tasks
            .iter()
            .all(|t| t.next_run > Utc::now() + TimeDelta::minutes(30)),
        "every task rescheduled"
    );
    tx.send(true).unwrap();
    listening.await.unwrap().unwrap();
    running.await.unwrap().unwrap();
}

/// A type's slot migrates to another master while runners keep passing. Scripts declare a
/// guard key that never exists, so Redis refuses them while the slot is in migration (before
/// any of their writes) and the cluster client retries until the slot has moved: every task
/// is sent exactly once, and the type's keys end up whole on the new master.
#[tokio::test(flavor = "multi_thread")]
async fn runners_carry_on_while_a_type_s_slot_migrates() {
    let cluster = RedisCluster::start(3, 0);
    let broker = RedisServer::start();
    let store = cluster_store(&cluster).await;
    make_type(&store, "c-moving").await;
    let n = 3000;
    create_due(&store, "c-moving", n).await;
    // and 100 tasks due tomorrow, to be disabled while the slot migrates
    let later: Vec<NewTask> = (0..100)
        .map(|i| {
            let mut t = due("c-moving", 1_000_000 + i);
            t.next_run = Some(Utc::now() + TimeDelta::days(1));
            t
        })
        .collect();
    let later: Vec<i64> = store
        .create_tasks(&later, Policy::Recurring)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    let slot = keyslot(&cluster, "swh:{c-moving}:type");
    let (source_id, source_port) = slot_owner(&cluster, slot);
    let target = cluster
        .masters()
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| n.port != source_port)
        .unwrap();
    let source = node_on(&cluster, source_port);
    let target_id: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut target.client())
        .unwrap();
    let setslot = |node: &RedisServer, how: &str, id: &str| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(how)
            .arg(id)
            .query(&mut node.client())
            .unwrap();
    };
    setslot(target, "IMPORTING", &source_id);
    setslot(source, "MIGRATING", &target_id);
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(100_000)
        .query(&mut source.client())
        .unwrap();
    assert!(keys.len() > 10, "{keys:?}");
    let migrate = |batch: &[String]| {
        let _: () = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(target.port)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(batch)
            .query(&mut source.client())
            .unwrap();
    };
    // the keys move in batches, as redis-cli --cluster reshard moves them, while clients keep
    // calling: first the task buckets and the dedup index, while the type's hash (every
    // script's first key) and its ready set stay behind
    let (first, rest): (Vec<String>, Vec<String>) = keys
        .into_iter()
        .partition(|k| !k.ends_with(":type") && !k.ends_with(":ready"));
    migrate(&first);

    let runners: Vec<_> = (0..2)
        .map(|_| {
            let r = runner(&store, &broker, 0);
            tokio::spawn(async move { r.pass().await })
        })
        .collect();
    let creating = {
        let store = store.clone();
        tokio::spawn(async move {
            let tasks: Vec<NewTask> = (n..n + 100).map(|i| due("c-moving", i)).collect();
            store.create_tasks(&tasks, Policy::Recurring).await
        })
    };
    // every key this call declares exists (the type's hash): only the guard holds it back
    let disabling = {
        let (store, later) = (store.clone(), later.clone());
        tokio::spawn(async move { store.disable_tasks(&later).await })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    // nothing ran while the slot was split between two nodes
    assert!(queued(&broker).is_empty());
    assert!(!creating.is_finished());
    assert!(!disabling.is_finished());
    migrate(&rest);
    for node in cluster.masters().into_iter().map(|(n, _)| n) {
        setslot(node, "NODE", &target_id);
    }
    let created = creating.await.unwrap().unwrap();
    assert_eq!(created.len(), 100);
    disabling.await.unwrap().unwrap();
    let disabled = store.get_tasks(&later).await.unwrap();
    assert!(disabled.iter().all(|t| t.status == TaskStatus::Disabled));
    for r in runners {
        r.await.unwrap().unwrap();
    }
    runner(&store, &broker, 0).pass().await.unwrap();
    let sent = queued(&broker);
    assert_eq!(sent.len(), n + 100, "every task sent");
    assert!(sent.values().all(|c| *c == 1), "none twice");
    // no script ran halfway: the task counter gave each of them one id, and no more
    let seq: i64 = redis::cmd("HGET")
        .arg("swh:{c-moving}:type")
        .arg("task_seq")
        .query(&mut target.client())
        .unwrap();
    assert_eq!(seq, (n + 200) as i64);
    let (owner, _) = slot_owner(&cluster, slot);
    assert_eq!(owner, target_id);
    let left: i64 = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query(&mut source.client())
        .unwrap();
    assert_eq!(left, 0, "no key of the type left behind");
}

/// The master of a type's slot is killed while a runner sends and a listener records what a
/// worker reports: its replica is promoted, both carry on, and every task is sent and ends
/// rescheduled. A task is sent twice only if its sending had not reached the replica when the
/// master died (replication is asynchronous): a few dispatch calls at most.
#[tokio::test(flavor = "multi_thread")]
async fn runner_and_listener_carry_on_after_a_master_is_killed() {
    let mut cluster = RedisCluster::start(3, 1);
    let broker = RedisServer::start();
    let store = cluster_store(&cluster).await;
    let mut t = TaskType::new("c-failover", BACKEND, "c-failover");
    t.default_interval = Some(Interval::from_days(1));
    t.max_queue_length = Some(2000);
    store.create_task_type(&t).await.unwrap();
    let n = 20_000;
    let ids = create_due(&store, "c-failover", n).await;
    let slot = keyslot(&cluster, "swh:{c-failover}:type");
    let (_, port) = slot_owner(&cluster, slot);
    for (master, _) in cluster.masters() {
        let _: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query(&mut master.client())
            .unwrap();
    }

    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let r = runner(&store, &broker, 20);
    let mut lc = ListenerConfig::new(&broker.url());
    lc.broker = BrokerLink::remote(&broker.url()).unwrap();
    let l = Listener::new(store.clone(), lc);
    let (rx1, rx2) = (rx.clone(), rx);
    let running = tokio::spawn(async move { r.run(stopped(rx1)).await });
    let listening = tokio::spawn(async move { l.run(stopped(rx2)).await });
    // a worker taking 4,000 messages a second and reporting each as an eventful run: the
    // runner is still sending at the kill
    let url = broker.url();
    let worker = std::thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let mut seen: HashMap<i64, usize> = HashMap::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(150);
        let mut idle = 0;
        while std::time::Instant::now() < deadline && idle < 30 {
            let got: Option<Vec<String>> = redis::cmd("RPOP")
                .arg(BACKEND)
                .arg(200)
                .query(&mut con)
                .unwrap();
            match got {
                Some(batch) => {
                    idle = 0;
                    let mut events = Vec::new();
                    let now = Utc::now().timestamp_micros() as f64 / 1e6;
                    for m in batch {
                        let m: Value = serde_json::from_str(&m).unwrap();
                        let body: Value =
                            serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
                        *seen.entry(body[1]["n"].as_i64().unwrap()).or_default() += 1;
                        let id = m["headers"]["id"].clone();
                        events.push(json!({"hostname": "w1@vm", "uuid": id, "timestamp": now, "type": "task-started"}));
                        events.push(json!({"hostname": "w1@vm", "uuid": id, "timestamp": now, "type": "task-succeeded", "result": "{'status': 'eventful'}", "runtime": 0.1}));
                    }
                    let _: i64 = redis::cmd("PUBLISH")
                        .arg("/0.celeryev/task.multi")
                        .arg(common::celery_envelope(&Value::Array(events)))
                        .query(&mut con)
                        .unwrap();
                }
                None if seen.len() >= 20_000 => idle += 1,
                None => {}
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        seen
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let victim = cluster.nodes.iter().position(|n| n.port == port).unwrap();
    cluster.nodes[victim].kill();
    let seen = tokio::task::block_in_place(|| worker.join().unwrap());
    let (_, now_port) = slot_owner_alive(&cluster, slot, port).unwrap();
    assert_ne!(now_port, port, "a replica took over the slot");
    let missing: Vec<i64> = (0..n as i64).filter(|i| !seen.contains_key(i)).collect();
    assert!(missing.is_empty(), "{} tasks never sent", missing.len());
    let twice: usize = seen.values().map(|c| c - 1).sum();
    eprintln!("sent twice after the failover: {twice}");
    assert!(twice <= 3000, "{twice} tasks sent twice");
    // the listener recorded the runs' ends: every task is rescheduled a day on
    let mut pending = n;
    for _ in 0..300 {
        let tasks = store.get_tasks(&ids).await.unwrap();
        pending = tasks
            .iter()
            .filter(|t| t.next_run < Utc::now() + TimeDelta::hours(12))
            .count();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending, 0, "tasks whose run the listener did not end");
    tx.send(true).unwrap();
    running.await.unwrap().unwrap();
    listening.await.unwrap().unwrap();
}

/// Like [`slot_owner`], asked of a node other than `dead`.
fn slot_owner_alive(cluster: &RedisCluster, slot: i64, dead: u16) -> Option<(String, u16)> {
    let node = cluster.nodes.iter().find(|n| n.port != dead)?;
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut node.client())
        .ok()?;
    for s in slots.iter().map(redis_to_json) {
        let (lo, hi) = (s[0].as_i64()?, s[1].as_i64()?);
        if lo <= slot && slot <= hi {
            return Some((s[2][2].as_str()?.to_string(), s[2][1].as_i64()? as u16));
        }
    }
    None
}

/// schedule-recurrent on a cluster store: each visit type's origins are chosen, marked and
/// sent through its outbox in its own slot, and reach the broker on its own server.
#[tokio::test(flavor = "multi_thread")]
async fn the_visit_runner_sends_through_a_cluster_store() {
    use swh_scheduler::model::ListedOrigin;
    use swh_scheduler::visit_runner::{VisitRunner, VisitRunnerConfig};
    let cluster = RedisCluster::start(3, 0);
    let broker = RedisServer::start();
    let store = cluster_store(&cluster).await;
    let lister = store
        .get_or_create_lister("gitlab", Some("inria"))
        .await
        .unwrap();
    for vt in ["git", "hg", "svn"] {
        let mut t = TaskType::new(&format!("load-{vt}"), &format!("swh.loader.{vt}"), "load");
        t.max_queue_length = Some(1000);
        store.create_task_type(&t).await.unwrap();
        let origins: Vec<ListedOrigin> = (0..40)
            .map(|i| {
                ListedOrigin::new(
                    lister.id.as_deref().unwrap(),
                    &format!("https://f.example/{vt}/{i}"),
                    vt,
                )
            })
            .collect();
        store.record_listed_origins(&origins).await.unwrap();
    }
    let r = VisitRunner::new(
        store.clone(),
        VisitRunnerConfig {
            broker: BrokerLink::remote(&broker.url()).unwrap(),
            ..VisitRunnerConfig::default()
        },
    );
    let sent = r.pass().await.unwrap();
    assert_eq!(sent.iter().map(|(_, n)| n).sum::<usize>(), 120, "{sent:?}");
    for vt in ["git", "hg", "svn"] {
        let msgs = broker.messages(0, &format!("swh.loader.{vt}"));
        assert_eq!(msgs.len(), 40);
        let urls: Vec<String> = (0..40)
            .map(|i| format!("https://f.example/{vt}/{i}"))
            .collect();
        let ids: Vec<(String, String)> = urls.iter().map(|u| (u.clone(), vt.to_string())).collect();
        let stats = store.origin_visit_stats_get(&ids).await.unwrap();
        assert_eq!(stats.len(), 40);
        assert!(stats.iter().all(|s| s.last_scheduled.is_some()));
    }
    // a second pass finds nothing eligible: every origin is waiting for its result
    let again = r.pass().await.unwrap();
    assert_eq!(again.iter().map(|(_, n)| n).sum::<usize>(), 0);
}
