//! The simulator against the real scheduler: a real redis-server (and `rpc-serve` for -u),
//! both modes on a small forge, determinism, the report's arithmetic, the CLI's lines, and
//! the charts decoded as PNG.

mod common;

use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Utc};
use common::{RedisServer, RpcServe};
use swh_scheduler::model::VisitPolicy;
use swh_scheduler::simulator::{self, Mode, Report, SimConfig, Target, engine};

const BIN: &str = env!("CARGO_BIN_EXE_swh-scheduler");

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn config(mode: Mode, runtime: f64, seed: u64, failure_rate: f64) -> SimConfig {
    SimConfig {
        mode,
        runtime: Some(runtime),
        start: start(),
        seed,
        workers: 48,
        queue_capacity: 10_000,
        failure_rate,
        progress: false,
    }
}

/// A fresh store filled with `n` origins, and one simulation on it.
async fn simulate(n: u64, config: &SimConfig) -> Report {
    let redis = RedisServer::start();
    let store = redis.store().await;
    let target = Target {
        api: Arc::new(store.clone()),
        store: Some(store),
    };
    simulator::fill_test_data(&target, n, start())
        .await
        .unwrap();
    engine::run(&target, config, Arc::new(AtomicBool::new(false)))
        .await
        .unwrap()
}

fn csv(r: &Report) -> String {
    let mut out = Vec::new();
    r.metrics_csv(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// What must hold of any report of a run of `hours` simulated hours.
fn check_consistency(r: &Report, hours: usize, origin_mode: bool) {
    assert!(r.total_visits > 0, "{}: no visit", r.label);
    assert_eq!(r.total_visits, r.eventful + r.uneventful + r.failed);
    let hourly: u64 = r
        .hourly
        .iter()
        .map(|h| h.iter().map(|n| u64::from(*n)).sum::<u64>())
        .sum();
    assert_eq!(hourly, r.total_visits);
    assert_eq!(r.simulated, hours as f64 * 3600.0);
    // one metrics point per hour, from 0 to the end included
    assert_eq!(r.metrics.len(), hours + 1);
    for w in r.metrics.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert!(b.t > a.t);
        // the lister only adds origins, and visits only add up
        assert!(b.known >= a.known, "known went down: {a:?} {b:?}");
        assert!(b.visits >= a.visits && b.visited_origins >= a.visited_origins);
        if origin_mode {
            // a visited origin is never unvisited again; new ones come 100 an hour
            assert!(
                b.never_visited <= a.never_visited + 100,
                "never visited rose by more than the lister adds: {a:?} {b:?}"
            );
        }
    }
    let last = r.metrics.last().unwrap();
    assert_eq!(last.visits, r.total_visits);
    // the lister added 100 origins at each of the hours 0..hours
    assert_eq!(
        last.known - r.metrics[0].known,
        100 * hours as i64,
        "{:?}",
        r.metrics
    );
    assert!(r.lags.len() as u64 <= r.eventful + r.uneventful);
    assert!(r.very_long <= r.eventful);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_modes_on_a_small_forge_for_a_day() {
    let mix = simulator::parse_policy_mix(
        "never_visited_oldest_update_first=60,oldest_scheduled_first=40",
    )
    .unwrap();
    let origin = simulate(2000, &config(Mode::OriginScheduler(mix), 86400.0, 0, 0.0)).await;
    check_consistency(&origin, 24, true);
    // the origin scheduler's visits reached the store's visit stats: fewer never visited
    let (first, last) = (origin.metrics[0], *origin.metrics.last().unwrap());
    assert!(
        last.never_visited < first.never_visited + 2400,
        "{first:?} {last:?}"
    );
    assert!(last.known - last.never_visited >= origin.eventful as i64 / 2);

    let tasks = simulate(2000, &config(Mode::TaskScheduler, 86400.0, 0, 0.0)).await;
    check_consistency(&tasks, 24, false);
    // the task half keeps no visit stats: its metrics never see a visit
    assert!(tasks.metrics.iter().all(|m| m.never_visited == m.known));

    // the original's format, first lines
    let text = origin.format();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("Total visits: {}", origin.total_visits));
    assert_eq!(
        lines[1],
        format!("Uneventful visits: {}", origin.uneventful)
    );
    assert_eq!(lines[2], format!("Eventful visits: {}", origin.eventful));
    assert_eq!(
        lines[3],
        format!("Very long running tasks: {}", origin.very_long)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_report() {
    // failures at random: the seed decides which visits fail
    let c = config(
        Mode::OriginScheduler(vec![(VisitPolicy::OldestScheduledFirst, 1)]),
        6.0 * 3600.0,
        42,
        0.2,
    );
    let (a, b) = tokio::join!(simulate(1000, &c), simulate(1000, &c));
    assert!(a.failed > 0);
    assert_eq!(a.format(), b.format());
    assert_eq!(csv(&a), csv(&b));
    assert_eq!(a.hourly, b.hourly);
    assert_eq!(a.lags, b.lags);
    let other = simulate(1000, &SimConfig { seed: 43, ..c }).await;
    assert_ne!(
        (a.hourly.clone(), a.lags.clone()),
        (other.hourly, other.lags),
        "another seed, other failures"
    );
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("SWH_SCHEDULER_REDIS_URL")
        .env_remove("SWH_CONFIG_FILENAME")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The first number on the line starting with `prefix`.
fn figure(text: &str, prefix: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in {text}"));
    line[prefix.len()..].trim().parse().unwrap()
}

#[test]
fn run_on_a_private_redis_writes_the_report_the_csv_and_the_charts() {
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    let csv_path = dir.path().join("metrics.csv");
    let out = ok(&[
        "simulator",
        "run",
        "-s",
        "task_scheduler",
        "-n",
        "500",
        "-t",
        "7200",
        "--plots",
        "--plots-dir",
        plots.to_str().unwrap(),
        "-o",
        csv_path.to_str().unwrap(),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "total simulated time: 2:00:00");
    assert!(lines[1].starts_with("Total visits: "), "{out}");
    assert!(lines[2].starts_with("Uneventful visits: "), "{out}");
    assert!(lines[3].starts_with("Eventful visits: "), "{out}");
    assert!(lines[4].starts_with("Very long running tasks: "), "{out}");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("Simulated visits per second: "),
        "{out}"
    );
    let total = figure(&out, "Total visits:");
    assert!(total > 0.0);
    assert_eq!(
        total,
        figure(&out, "Uneventful visits:")
            + figure(&out, "Eventful visits:")
            + figure(&out, "Failed visits:")
    );

    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "timestamp,known_origins,enabled_origins,never_visited_origins,origins_with_pending_changes"
    );
    assert_eq!(rows.len(), 1 + 3, "{csv}");
    assert_eq!(rows[1], "2026-01-01 00:00:00+00:00,500,500,500,0");
    assert!(
        rows[3].starts_with("2026-01-01 02:00:00+00:00,700,700,"),
        "{csv}"
    );

    let mut names: Vec<String> = std::fs::read_dir(&plots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "task-scheduler-lag.png",
            "task-scheduler-metrics.png",
            "task-scheduler-queue.png",
            "task-scheduler-visits.png"
        ]
    );
    for n in names {
        let img = image::open(plots.join(&n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!((img.width(), img.height()), (1200, 700), "{n}");
        // drawn on: more than the white background
        let rgb = img.to_rgb8();
        let coloured = rgb.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(coloured > 10_000, "{n}: {coloured} non-white pixels");
    }
}

#[test]
fn compare_prints_one_row_per_policy_and_a_comparison_chart() {
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    let out = ok(&[
        "simulator",
        "compare",
        "-n",
        "300",
        "-t",
        "3600",
        "-s",
        "origin_scheduler",
        "-s",
        "task_scheduler",
        "-p",
        "oldest_scheduled_first",
        "-p",
        "never_visited_oldest_update_first=1,oldest_scheduled_first=1",
        "--plots",
        "--plots-dir",
        plots.to_str().unwrap(),
    ]);
    let rows: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert!(rows[0].starts_with("scheduler / policy"), "{out}");
    assert!(rows[2].starts_with("oldest_scheduled_first "), "{out}");
    assert!(
        rows[3].starts_with("never_visited_oldest_update_first=1,oldest_scheduled_first=1 "),
        "{out}"
    );
    assert!(rows[4].starts_with("task_scheduler "), "{out}");
    assert!(
        rows[5].starts_with("Simulated visits per second: "),
        "{out}"
    );
    let img = image::open(plots.join("comparison.png")).unwrap();
    assert_eq!((img.width(), img.height()), (1400, 1000));
}

#[test]
fn through_an_rpc_server_both_modes_run() {
    let redis = RedisServer::start();
    let rpc = RpcServe::start(&redis);
    let g = ["-u", rpc.url.as_str()];
    let fill = ok(&[g[0], g[1], "simulator", "fill-test-data", "-n", "300"]);
    assert!(
        fill.starts_with("Filling 300 listed origins data...\nCompleted in "),
        "{fill}"
    );
    for s in ["origin_scheduler", "task_scheduler"] {
        let out = ok(&[g[0], g[1], "simulator", "run", "-s", s, "-t", "3600"]);
        let total = figure(&out, "Total visits:");
        assert!(total > 0.0, "{s}: {out}");
        assert_eq!(
            total,
            figure(&out, "Uneventful visits:")
                + figure(&out, "Eventful visits:")
                + figure(&out, "Failed visits:")
        );
    }
    // the origin scheduler's results reached the visit stats through visit_stats/upsert
    let rt = tokio::runtime::Runtime::new().unwrap();
    let metrics = rt.block_on(async {
        let store = redis.store().await;
        store.update_metrics(None, Some(start())).await.unwrap()
    });
    let known: i64 = metrics.iter().map(|m| m.origins_known).sum();
    let never: i64 = metrics.iter().map(|m| m.origins_never_visited).sum();
    assert!(known >= 300 && never < known, "{metrics:?}");
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let fails = |args: &[&str]| {
        let out = run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    };
    let e = fails(&["simulator", "run", "-p", "fastest_first", "-t", "10"]);
    assert!(e.contains("policy") && e.contains("fastest_first"), "{e}");
    let e = fails(&["simulator", "compare", "-p", "oldest_scheduled_first"]);
    assert!(e.contains("--runtime"), "{e}");
    let e = fails(&["simulator", "run", "-t", "10", "--failure-rate", "2"]);
    assert!(e.contains("failure-rate") && e.contains('2'), "{e}");
    let e = fails(&["simulator", "fill-test-data", "-n", "10"]);
    assert!(e.contains("--redis-url"), "{e}");
    let e = fails(&[
        "-u",
        "http://127.0.0.1:9/",
        "simulator",
        "run",
        "-t",
        "10",
        "-p",
        "oldest_scheduled_first",
        "-p",
        "never_visited_oldest_update_first",
    ]);
    assert!(e.contains("-u"), "{e}");
}
