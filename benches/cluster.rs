//! The store on a local Redis Cluster of 1 and of 3 masters, beside a standalone redis-server
//! in the same run, with 10 task types and the Celery broker on its own server:
//!
//!     cargo bench --bench cluster -- [--tasks N] [--concurrency C]
//!
//! Phases (each over all 10 types): create (N tasks), grab (grab_ready_tasks of the first N/2),
//! dispatch (runner passes: the other N/2 to the outboxes and on to the broker), start and end
//! (the runs' Celery events, applied as the listener does). For each phase and topology: the
//! throughput, and per master the Redis CPU time spent (`INFO cpu`), the script calls it served
//! (`INFO commandstats`), and the tasks per CPU second it would sustain alone; then the bytes
//! per task. The 2-core machine cannot show wall-clock scaling with three masters: what shows
//! the split is each master's share of the work and CPU. Figures go to stdout and to
//! `target/bench-cluster.json`.

use std::time::{Duration, Instant};

use chrono::{Duration as TimeDelta, Utc};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use swh_scheduler::model::{Interval, NewTask, Policy, TaskType};
use swh_scheduler::runner::{Runner, RunnerConfig};
use swh_scheduler::store::{BrokerLink, RunEvent, Store, StoreConfig};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{RedisCluster, RedisServer};

const TYPES: usize = 10;
const BACKEND: &str = "swh.bench.cluster";

struct Args {
    tasks: usize,
    concurrency: usize,
}

fn args() -> Args {
    let a = common::bench_args(&["--tasks", "--concurrency"], &[]);
    Args {
        tasks: common::bench_number(&a, "--tasks", 100_000),
        concurrency: common::bench_number(&a, "--concurrency", 8),
    }
}

/// What one master reported: CPU seconds (user + sys), script calls, memory, keys.
#[derive(Clone, Debug, Default)]
struct NodeStats {
    cpu: f64,
    evalsha: i64,
    memory: i64,
}

fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

fn node_stats(node: &RedisServer) -> NodeStats {
    let mut c = node.client();
    let info: String = redis::cmd("INFO").arg("everything").query(&mut c).unwrap();
    let num = |n: &str| {
        info_field(&info, n)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let evalsha = info_field(&info, "cmdstat_evalsha")
        .and_then(|v| {
            v.split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    NodeStats {
        cpu: num("used_cpu_user") + num("used_cpu_sys"),
        evalsha,
        memory: num("used_memory") as i64,
    }
}

/// The masters of a topology: the cluster's, or the standalone server.
fn masters<'a>(
    cluster: Option<&'a RedisCluster>,
    single: Option<&'a RedisServer>,
) -> Vec<&'a RedisServer> {
    match (cluster, single) {
        (Some(c), _) => c.masters().into_iter().map(|(n, _)| n).collect(),
        (None, Some(s)) => vec![s],
        _ => unreachable!(),
    }
}

fn type_name(i: usize) -> String {
    format!("bench-type-{i}")
}

fn new_task(i: usize) -> NewTask {
    let kwargs = json!({"url": format!("https://example.com/repo/{i}.git")});
    let mut t = NewTask::new(
        &type_name(i % TYPES),
        vec![],
        kwargs.as_object().unwrap().clone(),
    );
    t.next_run = Some(Utc::now() - TimeDelta::seconds(3600) + TimeDelta::microseconds(i as i64));
    t
}

async fn create(store: &Store, from: usize, n: usize, concurrency: usize) {
    let batches: Vec<Vec<NewTask>> = (from..from + n)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|c| c.iter().map(|&i| new_task(i)).collect())
        .collect();
    stream::iter(batches)
        .map(|b| async move { store.create_tasks(&b, Policy::Recurring).await.unwrap() })
        .buffer_unordered(concurrency)
        .for_each(|_| async {})
        .await;
}

async fn events(store: &Store, ids: &[String], end: bool, concurrency: usize) {
    let batches: Vec<Vec<RunEvent>> = ids
        .chunks(1000)
        .map(|c| {
            c.iter()
                .map(|id| RunEvent {
                    backend_id: id.clone(),
                    end_status: end.then_some(swh_scheduler::model::RunStatus::Eventful),
                    metadata: None,
                    timestamp: None,
                })
                .collect()
        })
        .collect();
    stream::iter(batches)
        .map(|b| async move { store.apply_run_events(&b, false).await.unwrap() })
        .buffer_unordered(concurrency)
        .for_each(|_| async {})
        .await;
}

/// Runs the phases on one topology and returns its JSON record.
async fn run_topology(name: &str, url: &str, nodes: Vec<&RedisServer>, args: &Args) -> Value {
    let broker = RedisServer::start();
    let store = Store::connect(StoreConfig::new(url)).await.unwrap();
    for i in 0..TYPES {
        let mut t = TaskType::new(&type_name(i), BACKEND, "bench");
        t.default_interval = Some(Interval::from_days(1));
        t.max_queue_length = None;
        store.create_task_type(&t).await.unwrap();
    }
    let n = args.tasks;
    let mut phases = Vec::new();
    let snapshot = |nodes: &[&RedisServer]| nodes.iter().map(|n| node_stats(n)).collect::<Vec<_>>();
    let record =
        |phase: &str, count: usize, secs: f64, before: &[NodeStats], after: &[NodeStats]| {
            let per_master: Vec<Value> = before
                .iter()
                .zip(after)
                .map(|(b, a)| {
                    let cpu = a.cpu - b.cpu;
                    json!({
                        "cpu_s": (cpu * 1000.0).round() / 1000.0,
                        "evalsha": a.evalsha - b.evalsha,
                    })
                })
                .collect();
            let cpu_total: f64 = before.iter().zip(after).map(|(b, a)| a.cpu - b.cpu).sum();
            json!({
                "phase": phase,
                "tasks": count,
                "seconds": (secs * 1000.0).round() / 1000.0,
                "per_s": (count as f64 / secs).round(),
                "redis_cpu_s": (cpu_total * 1000.0).round() / 1000.0,
                "tasks_per_redis_cpu_s": (count as f64 / cpu_total.max(1e-9)).round(),
                "cpu_us_per_task": (cpu_total * 1e6 / count as f64 * 10.0).round() / 10.0,
                "masters": per_master,
            })
        };

    // create: both halves
    let mem_before: i64 = snapshot(&nodes).iter().map(|s| s.memory).sum();
    let before = snapshot(&nodes);
    let t = Instant::now();
    create(&store, 0, n, args.concurrency).await;
    let secs = t.elapsed().as_secs_f64();
    let after = snapshot(&nodes);
    phases.push(record("create", n, secs, &before, &after));
    let mem_after: i64 = after.iter().map(|s| s.memory).sum();

    // grab: half of each type's tasks, 1000 a call
    let before = snapshot(&nodes);
    let t = Instant::now();
    let per_type = n / 2 / TYPES;
    let grabbed: usize = stream::iter(0..TYPES)
        .map(|i| {
            let store = store.clone();
            async move {
                let mut got = 0;
                while got < per_type {
                    let want = (per_type - got).min(1000);
                    got += store
                        .grab_ready_tasks(&type_name(i), None, Some(want))
                        .await
                        .unwrap()
                        .len();
                }
                got
            }
        })
        .buffer_unordered(args.concurrency)
        .fold(0, |a, b| async move { a + b })
        .await;
    let secs = t.elapsed().as_secs_f64();
    phases.push(record("grab", grabbed, secs, &before, &snapshot(&nodes)));

    // dispatch: one runner pass over the ten types sends the rest through the outboxes
    let runner = Runner::new(
        store.clone(),
        RunnerConfig {
            broker: BrokerLink::remote(&broker.url()).unwrap(),
            ..RunnerConfig::default()
        },
    );
    let before = snapshot(&nodes);
    let t = Instant::now();
    let sent: usize = runner.pass().await.unwrap().iter().map(|(_, s)| s).sum();
    let secs = t.elapsed().as_secs_f64();
    phases.push(record("dispatch", sent, secs, &before, &snapshot(&nodes)));

    let ids: Vec<String> = {
        let mut c = broker.client();
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(BACKEND)
            .arg(0)
            .arg(-1)
            .query(&mut c)
            .unwrap();
        raw.iter()
            .map(|m| {
                let v: Value = serde_json::from_str(m).unwrap();
                v["headers"]["id"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(ids.len(), sent);
    for (phase, end) in [("start", false), ("end", true)] {
        let before = snapshot(&nodes);
        let t = Instant::now();
        events(&store, &ids, end, args.concurrency).await;
        let secs = t.elapsed().as_secs_f64();
        phases.push(record(phase, ids.len(), secs, &before, &snapshot(&nodes)));
    }
    let keys: Vec<i64> = nodes
        .iter()
        .map(|n| redis::cmd("DBSIZE").query(&mut n.client()).unwrap())
        .collect();
    json!({
        "topology": name,
        "masters": nodes.len(),
        "types": TYPES,
        "keys_per_master": keys,
        "bytes_per_task": (mem_after - mem_before) as f64 / n as f64,
        "phases": phases,
    })
}

fn print(rec: &Value) {
    println!(
        "\n{} ({} master(s)), {:.0} bytes per task, keys per master {}",
        rec["topology"].as_str().unwrap(),
        rec["masters"],
        rec["bytes_per_task"].as_f64().unwrap(),
        rec["keys_per_master"]
    );
    println!(
        "| phase | tasks/s | Redis CPU µs/task | tasks per Redis CPU second | CPU s per master | script calls per master |"
    );
    println!("|---|---|---|---|---|---|");
    for p in rec["phases"].as_array().unwrap() {
        let masters = p["masters"].as_array().unwrap();
        let cpu: Vec<String> = masters.iter().map(|m| m["cpu_s"].to_string()).collect();
        let calls: Vec<String> = masters.iter().map(|m| m["evalsha"].to_string()).collect();
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            p["phase"].as_str().unwrap(),
            p["per_s"],
            p["cpu_us_per_task"],
            p["tasks_per_redis_cpu_s"],
            cpu.join(" / "),
            calls.join(" / ")
        );
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let mut out = Vec::new();
    {
        let single = RedisServer::start();
        let rec = run_topology(
            "standalone",
            &single.url(),
            masters(None, Some(&single)),
            &args,
        )
        .await;
        print(&rec);
        out.push(rec);
    }
    for m in [1, 3] {
        let cluster = RedisCluster::start(m, 0);
        let rec = run_topology(
            &format!("cluster-{m}"),
            &cluster.url(),
            masters(Some(&cluster), None),
            &args,
        )
        .await;
        print(&rec);
        out.push(rec);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-cluster.json");
    let doc = json!({
        "command": format!("cargo bench --bench cluster -- --tasks {} --concurrency {}", args.tasks, args.concurrency),
        "date": Utc::now().to_rfc3339(),
        "runs": out,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    println!("\nwritten to {}", path.display());
}
