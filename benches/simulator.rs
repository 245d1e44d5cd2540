//! The simulator's speed, in simulated visits per wall-clock second, against the original's
//! simulator (SimPy on PostgreSQL) over the same model and size, in the same run:
//!
//!     cargo bench --bench simulator -- [--origins N] [--runtime SECONDS] [--original]
//!
//! For each mode (`origin_scheduler` with `oldest_scheduled_first`, `task_scheduler`): a
//! private redis-server, `fill_test_data` of N origins, one simulation of the given simulated
//! time (default: 100,000 origins over one week). With `--original`, the same through
//! `benches/original/run.sh --simulator`. Both sides drive their scheduler from one thread;
//! ours keeps two of the lister's pages in flight (`listing_pages_in_flight`), the original
//! sends one at a time.
//! Prints a Markdown table and writes `target/bench-simulator.json`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use swh_scheduler::simulator::{self, Mode, SimConfig, Target, engine};

#[path = "../tests/common/mod.rs"]
mod common;
use common::RedisServer;

struct Args {
    origins: u64,
    runtime: f64,
    original: bool,
}

fn args() -> Args {
    let a = common::bench_args(&["--origins", "--runtime"], &["--original"]);
    Args {
        origins: common::bench_number(&a, "--origins", 100_000),
        runtime: common::bench_number(&a, "--runtime", 7.0 * 86400.0),
        original: a.contains_key("--original"),
    }
}

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

const MODES: [(&str, &str); 2] = [
    ("origin_scheduler", "oldest_scheduled_first"),
    ("task_scheduler", "-"),
];

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut results: Vec<Value> = Vec::new();
    for (scheduler, policy) in MODES {
        let redis = RedisServer::start();
        let report = rt.block_on(async {
            let store = redis.store().await;
            let target = Target {
                api: Arc::new(store.clone()),
                store: Some(store),
            };
            let t = Instant::now();
            simulator::fill_test_data(&target, a.origins, start())
                .await
                .unwrap();
            let fill_s = t.elapsed().as_secs_f64();
            let mode = if scheduler == "task_scheduler" {
                Mode::TaskScheduler
            } else {
                Mode::OriginScheduler(simulator::parse_policy_mix(policy).unwrap())
            };
            let config = SimConfig {
                mode,
                runtime: Some(a.runtime),
                start: start(),
                seed: 0,
                workers: 48,
                queue_capacity: 10_000,
                failure_rate: 0.0,
                progress: false,
            };
            let r = engine::run(&target, &config, Arc::new(AtomicBool::new(false)))
                .await
                .unwrap();
            (fill_s, r)
        });
        let (fill_s, r) = report;
        let v = json!({
            "implementation": "this", "scheduler": scheduler, "policy": policy,
            "origins": a.origins, "simulated_s": a.runtime,
            "fill_s": (fill_s * 1e3).round() / 1e3, "wall_s": (r.wall * 1e3).round() / 1e3,
            "total_visits": r.total_visits, "eventful": r.eventful, "uneventful": r.uneventful,
            "failed": r.failed, "visits_per_s": r.visits_per_second().round(),
            "listing_pages_in_flight": engine::LISTING_IN_FLIGHT,
        });
        eprintln!("{v}");
        results.push(v);
        if a.original {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/original/run.sh");
            let out = Command::new(script)
                .args(["--simulator", "--scheduler", scheduler])
                .args(["--origins", &a.origins.to_string()])
                .args(["--runtime", &a.runtime.to_string()])
                .args(if scheduler == "origin_scheduler" {
                    vec!["--policy", policy]
                } else {
                    vec![]
                })
                .stderr(Stdio::inherit())
                .output()
                .expect("benches/original/run.sh");
            assert!(out.status.success(), "the original's simulator failed");
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    eprintln!("{v}");
                    results.push(v);
                }
            }
        }
    }
    println!("| mode | this scheduler | original, same run | ratio |\n|---|---|---|---|");
    for (scheduler, _) in MODES {
        let find = |imp: &str| {
            results
                .iter()
                .find(|r| r["scheduler"] == scheduler && r["implementation"] == imp)
        };
        let ours = find("this").expect("our run");
        let orig = find("original");
        let cell = |r: &Value| {
            format!(
                "{} visits/s ({} visits in {} s)",
                r["visits_per_s"], r["total_visits"], r["wall_s"]
            )
        };
        let ratio = orig
            .and_then(|o| {
                Some(ours["visits_per_s"].as_f64()? / o["visits_per_s"].as_f64()?.max(1e-9))
            })
            .map_or("-".to_string(), |r| format!("{r:.1}x"));
        println!(
            "| {scheduler} | {} | {} | {ratio} |",
            cell(ours),
            orig.map_or("-".to_string(), cell)
        );
    }
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-simulator.json");
    std::fs::write(out, serde_json::to_string_pretty(&results).unwrap()).unwrap();
}
