//! The whole benchmark in one command, on a private redis-server (default configuration):
//!
//!     cargo bench --bench scheduler -- [--tasks N] [--rpc-tasks N] [--csv-lines N]
//!         [--origins N] [--original]
//!
//! Runs the store phases, dispatch (with its reference script), schedule-recurrent
//! (visits_dispatch), events, the origin-visit
//! phases, the same API through the RPC server, and a CSV import with the CLI; with `--original`, also the original
//! scheduler on PostgreSQL (`benches/original/run.sh`) in the same run, and prints each figure
//! as a ratio to the reference measured beside it. Figures go to stdout as a Markdown table
//! and to `target/bench-results.json`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use swh_scheduler::api::SchedulerApi;
use swh_scheduler::cli::benchmark::{self as bench, BenchOptions, Measure};
use swh_scheduler::rpc::{RpcClient, RpcConfig};
use swh_scheduler::store::{Store, StoreConfig};

#[path = "../tests/common/mod.rs"]
mod common;
use common::RedisServer;

struct Args {
    tasks: usize,
    rpc_tasks: usize,
    csv_lines: usize,
    original: bool,
    concurrency: usize,
    origins: usize,
}

fn args() -> Args {
    let a = common::bench_args(
        &[
            "--tasks",
            "--rpc-tasks",
            "--csv-lines",
            "--concurrency",
            "--origins",
        ],
        &["--original"],
    );
    Args {
        tasks: common::bench_number(&a, "--tasks", 200_000),
        rpc_tasks: common::bench_number(&a, "--rpc-tasks", 20_000),
        csv_lines: common::bench_number(&a, "--csv-lines", 200_000),
        original: a.contains_key("--original"),
        concurrency: common::bench_number(&a, "--concurrency", 8),
        origins: common::bench_number(&a, "--origins", 100_000),
    }
}

/// Empties the server between phases, so each starts from the same state.
fn flush(redis: &RedisServer) {
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.client()).unwrap();
}

fn rate(results: &[Value], section: &str, phase: &str) -> Option<f64> {
    results
        .iter()
        .find(|r| r["section"] == section && r["phase"] == phase)
        .and_then(|r| r["per_s"].as_f64())
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = RedisServer::start();
    let mut results: Vec<Value> = Vec::new();
    let mut record = |section: &str, m: &Measure| {
        let mut v = serde_json::to_value(m).unwrap();
        v["section"] = json!(section);
        eprintln!("{v}");
        results.push(v);
    };
    let opts = |n: usize| BenchOptions {
        tasks: n,
        batch: 1000,
        concurrency: a.concurrency,
        phases: vec![],
    };

    rt.block_on(async {
        let store = Store::connect(StoreConfig::new(&redis.url()))
            .await
            .unwrap();
        bench::run_api_phases(
            &(Arc::new(store.clone()) as Arc<dyn SchedulerApi>),
            Some(&store),
            &opts(a.tasks),
            |m| record("redis", m),
        )
        .await
        .unwrap();
        flush(&redis);
        let store = Store::connect(StoreConfig::new(&redis.url()))
            .await
            .unwrap();
        bench::run_dispatch_phase(&store, &opts(a.tasks), |m| record("redis", m))
            .await
            .unwrap();
        for m in bench::run_visits_phase(&store, &opts(a.tasks), true)
            .await
            .unwrap()
        {
            record("redis", &m);
        }
        flush(&redis);
        let store = Store::connect(StoreConfig::new(&redis.url()))
            .await
            .unwrap();
        bench::run_events_phase(&store, &opts(a.tasks), |m| record("redis", m))
            .await
            .unwrap();
        flush(&redis);
        let store = Store::connect(StoreConfig::new(&redis.url()))
            .await
            .unwrap();
        bench::run_origin_phases(
            &(Arc::new(store.clone()) as Arc<dyn SchedulerApi>),
            Some(&store),
            &opts(a.origins),
            |m| record("redis", m),
        )
        .await
        .unwrap();
        flush(&redis);

        // through the RPC server, in this process
        let store = Store::connect(StoreConfig::new(&redis.url()))
            .await
            .unwrap();
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", socket.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(swh_scheduler::rpc::serve_on(
            socket,
            store,
            RpcConfig::default(),
            async {
                stopped.await.ok();
            },
        ));
        let rpc: Arc<dyn SchedulerApi> = Arc::new(RpcClient::new(&url).unwrap());
        let mut o = opts(a.rpc_tasks);
        o.concurrency = 16;
        bench::run_api_phases(&rpc, None, &o, |m| record("rpc", m))
            .await
            .unwrap();
        let _ = stop.send(());
        let _ = server.await;
        flush(&redis);
    });

    // CSV import with the CLI
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tasks.csv");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
        for i in 0..a.csv_lines {
            writeln!(f, "load-csv,[],\"{{\"\"url\"\": \"\"https://example.com/{i:07}.git\"\"}}\",2026-07-20T10:00:00+00:00").unwrap();
        }
    }
    let bin = env!("CARGO_BIN_EXE_swh-scheduler");
    let status = Command::new(bin)
        .args([
            "--redis-url",
            &redis.url(),
            "task-type",
            "add",
            "load-csv",
            "x.load",
            "csv",
            "-i",
            "1 day",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(["--redis-url", &redis.url(), "task", "schedule"])
        .arg(&csv)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak_kb = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = start.elapsed().as_secs_f64();
    let m = json!({"section": "cli", "phase": "csv_import", "tasks": a.csv_lines, "seconds": (secs * 1e3).round() / 1e3,
                   "per_s": (a.csv_lines as f64 / secs).round(), "peak_rss_mb": (peak_kb as f64 / 1024.0).round()});
    eprintln!("{m}");
    results.push(m);

    // the original, on PostgreSQL, in the same run
    if a.original {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/original/run.sh");
        for (backend, n, section) in [
            ("postgresql", 100_000usize, "original"),
            ("remote", 10_000, "original_rpc"),
        ] {
            for conc in [1, 4] {
                let out = Command::new("bash")
                    .args([
                        script,
                        "--backend",
                        backend,
                        "--tasks",
                        &n.to_string(),
                        "--concurrency",
                        &conc.to_string(),
                    ])
                    .stderr(Stdio::inherit())
                    .output()
                    .expect("benches/original/run.sh");
                for line in String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| l.starts_with('{'))
                {
                    let mut v: Value = serde_json::from_str(line).unwrap();
                    v["section"] = json!(format!("{section}_c{conc}"));
                    eprintln!("{v}");
                    results.push(v);
                }
            }
        }
    }

    // the original's origin-visit half, same workload
    if a.original {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/original/run.sh");
        let out = Command::new("bash")
            .args([
                script,
                "--workload",
                "origins",
                "--tasks",
                &a.origins.to_string(),
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("benches/original/run.sh");
        for line in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('{'))
        {
            let mut v: Value = serde_json::from_str(line).unwrap();
            v["section"] = json!("original_origins");
            eprintln!("{v}");
            results.push(v);
        }
    }

    // the table
    println!("| figure | this scheduler | reference | ratio |");
    println!("|---|---|---|---|");
    let row = |label: &str, ours: Option<f64>, reference: Option<(String, f64)>| {
        let ours_s = ours.map_or("-".into(), |v| format!("{v:.0}/s"));
        match (ours, reference) {
            (Some(o), Some((name, r))) => {
                println!("| {label} | {ours_s} | {r:.0}/s ({name}) | {:.1}x |", o / r)
            }
            _ => println!("| {label} | {ours_s} | - | - |"),
        }
    };
    let best_orig = |section: &str, phase: &str| -> Option<(String, f64)> {
        // the concurrency it ran at, as it reports it (create and schedule run one call at a
        // time in both of its runs)
        [1, 4]
            .iter()
            .filter_map(|c| {
                let sec = format!("{section}_c{c}");
                let r = results
                    .iter()
                    .find(|r| r["section"] == sec.as_str() && r["phase"] == phase)?;
                let c = r["concurrency"].as_u64().unwrap_or(*c);
                r["per_s"]
                    .as_f64()
                    .map(|v| (format!("original, {c} in flight"), v))
            })
            .max_by(|x, y| x.1.total_cmp(&y.1))
    };
    for phase in ["create", "grab", "schedule", "start", "end"] {
        row(
            &format!("{phase} (Redis)"),
            rate(&results, "redis", phase),
            best_orig("original", phase),
        );
    }
    row(
        "dispatch (Redis)",
        rate(&results, "redis", "dispatch"),
        rate(&results, "redis", "dispatch_reference")
            .map(|r| ("minimal Lua script".to_string(), r)),
    );
    row(
        "schedule-recurrent (Redis)",
        rate(&results, "redis", "visits_dispatch"),
        rate(&results, "redis", "dispatch_reference")
            .map(|r| ("minimal Lua script".to_string(), r)),
    );
    row(
        "visit results applied by the listener (Redis)",
        rate(&results, "redis", "visit_outcomes"),
        rate(&results, "redis", "visits_dispatch")
            .map(|r| ("schedule-recurrent's sending".to_string(), r)),
    );
    row(
        "runs recorded by the listener, 2 events each (Redis)",
        rate(&results, "redis", "events").map(|e| e / 2.0),
        rate(&results, "redis", "dispatch").map(|r| ("this scheduler's dispatch".to_string(), r)),
    );
    row(
        "events applied (Redis)",
        rate(&results, "redis", "events"),
        best_orig("original", "end").map(|(n, v)| (format!("{n}, end_task_run"), v)),
    );
    for phase in ["create", "grab", "schedule", "start", "end"] {
        row(
            &format!("{phase} (RPC)"),
            rate(&results, "rpc", phase),
            best_orig("original_rpc", phase),
        );
    }
    row(
        "task schedule (CSV, CLI)",
        rate(&results, "cli", "csv_import"),
        rate(&results, "redis", "create").map(|r| ("this scheduler's create".to_string(), r)),
    );
    for (label, phase) in [
        ("record_listed_origins (Redis)", "record_origins"),
        (
            "record_listed_origins again, unchanged (Redis)",
            "relist_origins",
        ),
        ("origin_visit_stats_upsert (Redis)", "visit_stats_upsert"),
        ("grab_next_visits, origins (Redis)", "grab_next_visits"),
    ] {
        row(
            label,
            rate(&results, "redis", phase),
            rate(&results, "original_origins", phase).map(|r| ("original".to_string(), r)),
        );
    }
    let field = |section: &str, phase: &str, key: &str| {
        results
            .iter()
            .find(|r| r["section"] == section && r["phase"] == phase)
            .and_then(|r| r[key].as_f64())
    };
    if let Some(ours) = field("redis", "update_metrics", "seconds") {
        match field("original_origins", "update_metrics", "seconds") {
            Some(orig) => println!(
                "| update_metrics (Redis) | {ours:.6} s | {orig:.4} s (original) | {:.0}x |",
                orig / ours.max(1e-6)
            ),
            None => println!("| update_metrics (Redis) | {ours:.6} s | - | - |"),
        }
    }
    if let (Some(ours), Some(p50)) = (
        field("redis", "grab_next_visits", "calls_per_s"),
        field("redis", "grab_next_visits", "p50_ms"),
    ) {
        let orig = field("original_origins", "grab_next_visits", "p50_ms");
        println!(
            "| grab_next_visits, calls of 1000 (Redis) | {ours:.1}/s, p50 {p50} ms | {} | {} |",
            orig.map_or("-".into(), |o| format!("p50 {o} ms (original)")),
            orig.map_or("-".into(), |o| format!("{:.1}x", o / p50.max(1e-6)))
        );
    }
    if let Some(m) = results.iter().find(|r| r["phase"] == "memory") {
        println!(
            "\nmemory: {} bytes per task, {} bytes per kept run",
            m["bytes_per_task"], m["bytes_per_run"]
        );
    }
    if let Some(m) = results
        .iter()
        .find(|r| r["phase"] == "origin_memory" && r["section"] == "redis")
    {
        let orig = results
            .iter()
            .find(|r| r["phase"] == "origin_memory" && r["section"] == "original_origins");
        println!(
            "origins: {} bytes per listed origin (original on PostgreSQL: {})",
            m["bytes_per_origin"],
            orig.map_or("-".to_string(), |o| o["bytes_per_origin"].to_string())
        );
    }
    if let Some(m) = results.iter().find(|r| r["phase"] == "csv_import") {
        println!(
            "CSV import peak RSS: {} MB for {} lines",
            m["peak_rss_mb"], m["tasks"]
        );
    }
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-results.json");
    std::fs::write(out, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    eprintln!("results in {out}");
}
