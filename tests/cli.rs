//! The built binary against a real Redis, directly and through the RPC server: the original's
//! output formats, and one-line errors with non-zero exits.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use chrono::{Duration as TimeDelta, Utc};
use common::{RedisServer, RpcServe, free_port, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_swh-scheduler");

/// Runs the binary with `args` (after the global options `global`).
fn run(global: &[&str], args: &[&str]) -> Output {
    Command::new(BIN)
        .args(global)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(global: &[&str], args: &[&str]) -> String {
    let out = run(global, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(global: &[&str], args: &[&str]) -> (i32, String) {
    let out = run(global, args);
    assert!(
        !out.status.success(),
        "{args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    (out.status.code().unwrap(), err)
}

/// Replaces the "Next run: <natural date> (" part, which depends on today.
fn mask_dates(s: &str) -> String {
    s.lines()
        .map(|l| match l.split_once("  Next run: ") {
            Some((pre, rest)) => format!(
                "{pre}  Next run: <date> ({}",
                rest.split_once('(').map_or("", |x| x.1)
            ),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The same tour, directly on Redis and through the RPC server.
fn tour(g: &[&str]) {
    assert_eq!(
        ok(
            g,
            &[
                "task-type",
                "add",
                "swh-test-ping",
                "swh.scheduler.tests.tasks.ping",
                "Ping",
                "-i",
                "1 day",
                "--min-interval",
                "12:00:00",
                "--max-interval",
                "P2D",
                "-f",
                "2",
                "--num-retries",
                "3",
                "--retry-delay",
                "2 hours"
            ]
        ),
        "OK\n"
    );
    assert_eq!(
        ok(
            g,
            &[
                "task-type",
                "add",
                "load-git",
                "swh.loader.git.tasks.UpdateGitRepository",
                "Update a git repository"
            ]
        ),
        "OK\n"
    );
    assert_eq!(
        ok(g, &["task-type", "list"]),
        "Known task types:\nload-git:\n  Update a git repository\nswh-test-ping:\n  Ping\n"
    );
    assert_eq!(
        ok(g, &["task-type", "list", "-v", "-t", "swh-test-ping"]),
        "Known task types:\nswh-test-ping: swh.scheduler.tests.tasks.ping\n  Ping\n  interval: 1 day, 0:00:00 [12:00:00, 2 days, 0:00:00]\n  backoff_factor: 2.0\n  max_queue_length: None\n  num_retries: 3\n  retry_delay: 2:00:00\n\n"
    );
    assert_eq!(
        ok(
            g,
            &[
                "task-type",
                "list",
                "-v",
                "-n",
                "swh.loader.git.tasks.UpdateGitRepository"
            ]
        ),
        "Known task types:\nload-git: swh.loader.git.tasks.UpdateGitRepository\n  Update a git repository\n  interval: 90 days, 0:00:00 [None, None]\n  backoff_factor: 1.0\n  max_queue_length: None\n  num_retries: None\n  retry_delay: None\n\n"
    );

    let next = "2026-07-20T10:00:00+00:00";
    let out = ok(
        g,
        &[
            "task",
            "add",
            "swh-test-ping",
            "arg1",
            "42",
            "[1, two]",
            "key=value",
            "flag=true",
            "empty=",
            "-p",
            "oneshot",
            "-n",
            next,
        ],
    );
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Task "))
        .unwrap()
        .to_string();
    assert_eq!(
        mask_dates(&out),
        format!(
            "Created 1 tasks\n\nTask {id}\n  Next run: <date> (2026-07-20T10:00:00+00:00)\n  Interval: 1 day, 0:00:00\n  Type: swh-test-ping\n  Policy: oneshot\n  Args:\n    'arg1'\n    42\n    [1, 'two']\n  Keyword args:\n    empty: ''\n    flag: True\n    key: 'value'\n"
        )
    );
    // a task due today reads "today"
    let today = Utc::now().format("%Y-%m-%dT00:00:01+00:00").to_string();
    let out = ok(
        g,
        &[
            "task",
            "add",
            "load-git",
            "url=https://example.com/x.git",
            "-n",
            &today,
        ],
    );
    assert!(out.contains("  Next run: today ("), "{out}");
    let git_id = out
        .lines()
        .find_map(|l| l.strip_prefix("Task "))
        .unwrap()
        .to_string();

    let listed = ok(g, &["task", "list", "-i", &id]);
    assert_eq!(
        mask_dates(&listed),
        format!(
            "Found 1 tasks\n\nTask {id}\n  Next run: <date> (2026-07-20T10:00:00+00:00)\n  Interval: 1 day, 0:00:00\n  Type: swh-test-ping\n  Policy: oneshot\n  Status: next_run_not_scheduled\n  Priority: \n  Args:\n    'arg1'\n    42\n    [1, 'two']\n  Keyword args:\n    empty: ''\n    flag: True\n    key: 'value'\n"
        )
    );
    assert!(ok(g, &["task", "list"]).starts_with("Found 2 tasks\n"));
    assert!(
        ok(g, &["task", "list", "-t", "load-git", "-s", "disabled"]).starts_with("Found 0 tasks\n")
    );
    assert!(ok(g, &["task", "list", "-p", "oneshot", "-l", "5"]).starts_with("Found 1 tasks\n"));

    let pending = ok(g, &["task", "list-pending", "swh-test-ping", "load-git"]);
    assert!(
        pending.starts_with("Found 1 swh-test-ping tasks\n\nTask "),
        "{pending}"
    );
    assert!(pending.contains("Found 1 load-git tasks\n"), "{pending}");
    assert!(
        ok(g, &["task", "list-pending", "load-git", "-b", "2020-01-01"])
            .starts_with("Found 0 load-git tasks\n")
    );

    assert_eq!(
        ok(g, &["task", "disable", &git_id]),
        format!("Disable tasks [{git_id}]\n\n")
    );
    assert!(ok(g, &["task", "list", "-s", "disabled"]).contains(&format!("Task {git_id}\n")));
    assert_eq!(
        ok(g, &["task", "respawn", &git_id, &id, "-n", "2026-07-21"]),
        format!("Respawn tasks [{git_id}, {id}]\n\n")
    );
    let respawned = ok(g, &["task", "list", "-i", &git_id]);
    assert!(
        respawned.contains("(2026-07-21T00:00:00+00:00)")
            && respawned.contains("Status: next_run_not_scheduled"),
        "{respawned}"
    );

    // the errors: one line, non-zero
    let (code, err) = fails(g, &["task", "add", "nope"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: Unknown task name nope.\n")
    );
    let (code, err) = fails(g, &["task-type", "add", "t", "x.y", "d", "-i", "soon"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid duration \"soon\""), "{err}");
    let (_, err) = fails(g, &["task", "add", "load-git", "-n", "someday"]);
    assert!(err.contains("next_run") && err.contains("someday"), "{err}");
}

#[test]
fn the_originals_commands_on_redis_and_through_rpc() {
    let server = RedisServer::start();
    let url = server.url();
    tour(&["--redis-url", &url]);

    let server2 = RedisServer::start();
    let rpc = RpcServe::start(&server2);
    tour(&["-u", &rpc.url]);
}

#[test]
fn runs_are_listed_with_their_times_and_metadata() {
    let server = RedisServer::start();
    let g = ["--redis-url".to_string(), server.url()];
    let g: Vec<&str> = g.iter().map(String::as_str).collect();
    ok(
        &g,
        &[
            "task-type",
            "add",
            "swh-test-ping",
            "x.ping",
            "Ping",
            "-i",
            "1 day",
        ],
    );
    let out = ok(
        &g,
        &[
            "task",
            "add",
            "swh-test-ping",
            "-n",
            "2026-07-20T10:00:00+00:00",
        ],
    );
    let id: i64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Task "))
        .unwrap()
        .parse()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = server.store().await;
        let t0 = "2026-07-20T10:00:00Z".parse().unwrap();
        store
            .schedule_task_run(id, "bid-1", None, Some(t0))
            .await
            .unwrap();
        store
            .start_task_run(
                "bid-1",
                Some(
                    serde_json::json!({"worker": "w1@vm"})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
                Some(t0 + TimeDelta::seconds(1)),
            )
            .await
            .unwrap();
        store
            .end_task_run(
                "bid-1",
                swh_scheduler::model::RunStatus::Eventful,
                None,
                Some(t0 + TimeDelta::seconds(2)),
            )
            .await
            .unwrap();
    });
    let runs = ok(&g, &["task", "list", "-r"]);
    assert!(
        runs.ends_with("  Executions:\n    bid-1 [eventful]\n      scheduled: 2026-07-20T10:00:00+00:00\n      started: 2026-07-20T10:00:01+00:00\n      ended: 2026-07-20T10:00:02+00:00\n"),
        "{runs}"
    );
    let meta = ok(&g, &["task", "list", "-m"]);
    assert!(meta.ends_with("      ended: 2026-07-20T10:00:02+00:00\n      metadata:\n        {\n            \"worker\": \"w1@vm\"\n        }\n"), "{meta}");
}

#[test]
fn csv_import_checks_every_line_first() {
    let server = RedisServer::start();
    let g = ["--redis-url".to_string(), server.url()];
    let g: Vec<&str> = g.iter().map(String::as_str).collect();
    ok(
        &g,
        &[
            "task-type",
            "add",
            "load-git",
            "swh.loader.git.tasks.UpdateGitRepository",
            "Git",
            "-i",
            "1 day",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "load-git,[],\"{\"\"url\"\": \"\"https://a/1\"\"}\",2026-07-20T10:00:00+00:00\nswh.loader.git.tasks.UpdateGitRepository,\"[1]\",{},2026-07-20\n").unwrap();
    let out = ok(&g, &["task", "schedule", good.to_str().unwrap()]);
    assert!(out.starts_with("Created 2 tasks\n\nTask "), "{out}");
    assert!(
        out.contains("    url: 'https://a/1'\n") && out.contains("(2026-07-20T00:00:00+00:00)"),
        "{out}"
    );

    // a bad line: named, and nothing created
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "load-git,[],{},2026-07-21T10:00:00+00:00\nload-git,[],{},2026-07-22T10:00:00+00:00\nload-git,not json,{},2026-07-20\n").unwrap();
    let (_, err) = fails(&g, &["task", "schedule", bad.to_str().unwrap()]);
    assert!(err.contains("line 3") && err.contains("not json"), "{err}");
    assert!(ok(&g, &["task", "list"]).starts_with("Found 2 tasks\n"));

    // other columns and delimiter, from standard input
    let mut child = Command::new(BIN)
        .args([
            "--redis-url",
            &server.url(),
            "task",
            "schedule",
            "-c",
            "type",
            "-c",
            "kwargs",
            "-c",
            "policy",
            "-d",
            ";",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"load-git;{\"url\": \"https://b\"};oneshot\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.starts_with("Created 1 tasks")
            && text.contains("Policy: oneshot"),
        "{text}"
    );
    let (_, err) = fails(&g, &["task", "schedule", "/no/such/file.csv"]);
    assert!(err.contains("/no/such/file.csv"), "{err}");
}

#[test]
fn errors_name_what_is_wrong_in_one_line() {
    let (code, err) = fails(&["--redis-url", "redis://127.0.0.1:1/0"], &["task", "list"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: cannot connect to Redis at redis://127.0.0.1:1/0"),
        "{err}"
    );
    let (_, err) = fails(&["-u", "http://127.0.0.1:1/"], &["task-type", "list"]);
    assert!(
        err.starts_with("Error: cannot reach the scheduler RPC server at http://127.0.0.1:1/"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yml");
    std::fs::write(&cfg, "other: {}\n").unwrap();
    let (_, err) = fails(&["-C", cfg.to_str().unwrap()], &["task", "list"]);
    assert!(err.contains("missing 'scheduler' configuration"), "{err}");
    let (code, err) = fails(&[], &["task", "respawn", "notanumber"]);
    assert_eq!(code, 2);
    assert!(err.contains("notanumber"), "{err}");
}

#[test]
fn the_configuration_file_names_the_backend() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yml");
    std::fs::write(
        &cfg,
        format!(
            "scheduler:\n  cls: redis\n  url: {}\n  prefix: other\n",
            server.url()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    assert_eq!(
        ok(&["-C", c], &["task-type", "add", "t", "x.y", "d"]),
        "OK\n"
    );
    // the prefix from the file was used: the default prefix sees nothing
    assert_eq!(
        ok(&["--redis-url", &server.url()], &["task-type", "list"]),
        "Known task types:\n"
    );
    let out = Command::new(BIN)
        .args(["task-type", "list"])
        .env("SWH_CONFIG_FILENAME", c)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Known task types:\nt:\n  d\n"
    );
}

/// Runs the original's `swh scheduler --url URL …` (0.16.0, from PyPI) and returns stdout.
fn original_cli(url: &str, args: &[&str]) -> String {
    let venv = common::swh016_venv();
    let out = Command::new(venv.join("bin/swh"))
        .args(["scheduler", "--url", url])
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "original {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The same origins listed for two visit types in one call (so the same first/last seen),
/// through the original's client.
fn record_twins(url: &str) {
    let venv = common::swh016_venv();
    let code = r#"
import sys, datetime
from swh.scheduler.api.client import RemoteScheduler
from swh.scheduler.model import ListedOrigin
s = RemoteScheduler(url=sys.argv[1])
lister = s.get_or_create_lister(name="github")
t = datetime.datetime(2020, 6, 15, 16, 0, 0, tzinfo=datetime.timezone.utc)
s.record_listed_origins([
    ListedOrigin(lister_id=lister.id, url=f"https://example.com/{i:04d}", visit_type=vt,
                 last_update=t + datetime.timedelta(microseconds=i) if i % 3 else None,
                 extra_loader_arguments={"branch": "main", "depth": i} if i % 2 else {})
    for i in range(12) for vt in ("git", "svn")
])
"#;
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", code, url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn origin_commands_print_as_the_original() {
    let redis = RedisServer::start();
    let rpc = RpcServe::start(&redis);
    record_twins(&rpc.url);
    let direct = ["--redis-url", &redis.url()];
    let remote = ["-u", rpc.url.as_str()];
    // the original grabs git, we grab svn: same origins, same order, same format
    for (policy, n) in [
        ("oldest_scheduled_first", "4"),
        ("never_visited_oldest_update_first", "3"),
    ] {
        let theirs = original_cli(&rpc.url, &["origin", "grab-next", "-p", policy, "git", n]);
        let ours = ok(&direct, &["origin", "grab-next", "-p", policy, "svn", n]);
        assert_eq!(ours.replace(",svn,", ",git,"), theirs, "{policy}");
        assert!(ours.starts_with(
            "lister_id,url,visit_type,extra_loader_arguments,last_update,enabled,first_seen,last_seen\n"
        ));
        if policy == "oldest_scheduled_first" {
            assert!(
                ours.contains(
                    ",\"{'branch': 'main', 'depth': 1}\",2020-06-15 16:00:00.000001+00:00,True,"
                ),
                "{ours}"
            );
            assert!(ours.contains(",{},None,True,"), "{ours}");
        }
    }
    let theirs = original_cli(
        &rpc.url,
        &[
            "origin",
            "grab-next",
            "-f",
            "url,extra_loader_arguments,enabled",
            "--without-header",
            "git",
            "2",
        ],
    );
    let ours = ok(
        &remote,
        &[
            "origin",
            "grab-next",
            "-f",
            "url,extra_loader_arguments,enabled",
            "--without-header",
            "svn",
            "2",
        ],
    );
    assert_eq!(ours, theirs);
    // an unknown field is refused before anything is marked
    let (code, err) = fails(
        &direct,
        &["origin", "grab-next", "-f", "url,nope", "svn", "1"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("Unknown ListedOrigin field(s): nope"), "{err}");

    // schedule-next: oneshot load-<type> tasks, as the original
    ok(
        &direct,
        &[
            "task-type",
            "add",
            "load-svn",
            "swh.loader.svn.tasks.LoadSvn",
            "svn",
        ],
    );
    let out = ok(&remote, &["origin", "schedule-next", "svn", "2"]);
    assert!(out.starts_with("Created 2 tasks\n"), "{out}");
    assert!(
        out.contains("Type: load-svn") && out.contains("Policy: oneshot"),
        "{out}"
    );
    let listed = ok(&direct, &["task", "list", "-t", "load-svn"]);
    assert_eq!(listed.matches("Task ").count(), 2, "{listed}");

    // update-metrics: the original's JSON, and exit 2 for an unknown lister
    let theirs = original_cli(&rpc.url, &["origin", "update-metrics"]);
    let ours = ok(&direct, &["origin", "update-metrics"]);
    let mask = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("\"last_update\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(mask(&ours), mask(&theirs));
    assert!(ours.contains("\"origins_known\": \"12\""), "{ours}");
    let out = run(&remote, &["origin", "update-metrics", "--lister", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Lister not found: nope instance=None\n"
    );
    let out = ok(
        &direct,
        &[
            "origin",
            "update-metrics",
            "--lister",
            "github",
            "--instance",
            "",
        ],
    );
    assert!(out.contains("\"visit_type\": \"git\""), "{out}");
}

/// `swh-scheduler task list | head -1`: the command ends quietly when its reader goes away,
/// as Unix tools do (it used to panic on the write, exit 101).
#[test]
fn a_closed_pipe_ends_a_listing_quietly() {
    let redis = RedisServer::start();
    let g = ["--redis-url", &redis.url()];
    ok(
        &g,
        &[
            "task-type",
            "add",
            "load-csv",
            "x.load",
            "csv",
            "-i",
            "1 day",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    let lines: String = (0..3000)
        .map(|i| format!("load-csv,[],\"{{\"\"url\"\": \"\"https://e.com/{i}\"\"}}\",2026-07-20T10:00:00+00:00\n"))
        .collect();
    std::fs::write(&csv, lines).unwrap();
    ok(&g, &["task", "schedule", csv.to_str().unwrap()]);
    let mut child = Command::new(BIN)
        .args(g)
        .args(["task", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");
}

/// `benchmark` never deletes what it did not write: `--prefix` of a store with data is refused
/// however many other keys hide it from one SCAN page, and without `--prefix` it writes and
/// deletes under a fresh prefix of its own.
#[test]
fn the_benchmark_leaves_other_data_alone() {
    let redis = RedisServer::start();
    let g = ["--redis-url", &redis.url()];
    ok(&g, &["task-type", "add", "load-git", "x.load", "git"]);
    let mut con = redis.client();
    for chunk in (0..200_000).collect::<Vec<_>>().chunks(10_000) {
        let mut cmd = redis::cmd("MSET");
        for i in chunk {
            cmd.arg(format!("other:{i}")).arg(i);
        }
        let _: () = cmd.query(&mut con).unwrap();
    }
    let size = |con: &mut redis::Connection| -> i64 { redis::cmd("DBSIZE").query(con).unwrap() };
    let before = size(&mut con);
    let (code, err) = fails(
        &g,
        &[
            "benchmark",
            "-n",
            "100",
            "--phases",
            "create",
            "--prefix",
            "swh",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("exist already"), "{err}");
    ok(
        &g,
        &[
            "benchmark",
            "-n",
            "100",
            "--phases",
            "create,dispatch,visits_dispatch,visit_outcomes,record_origins",
        ],
    );
    assert_eq!(
        size(&mut con),
        before,
        "only the benchmark's own keys were deleted"
    );
    assert!(ok(&g, &["task-type", "list"]).contains("load-git"));
}

/// A CSV import is all or nothing for every check creation makes: a next_run out of range on
/// line 2,500 of 3,000 creates nothing; a huge bad value is quoted by its start only; an
/// integer beyond 64 bits is refused instead of becoming a float.
#[test]
fn csv_import_refuses_what_creation_would_refuse_before_creating_anything() {
    let redis = RedisServer::start();
    let g = ["--redis-url", &redis.url()];
    ok(
        &g,
        &[
            "task-type",
            "add",
            "load-csv",
            "x.load",
            "csv",
            "-i",
            "1 day",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let good = |i: usize| {
        format!(
            "load-csv,[],\"{{\"\"url\"\": \"\"https://e.com/{i}\"\"}}\",2026-07-20T10:00:00+00:00\n"
        )
    };
    let write = |name: &str, bad_line: usize, bad: &str| {
        let p = dir.path().join(name);
        let text: String = (1..=3000)
            .map(|i| {
                if i == bad_line {
                    bad.to_string()
                } else {
                    good(i)
                }
            })
            .collect();
        std::fs::write(&p, text).unwrap();
        p
    };
    let late = write(
        "late.csv",
        2500,
        "load-csv,[],{},2300-01-01T00:00:00+00:00\n",
    );
    let (_, err) = fails(&g, &["task", "schedule", late.to_str().unwrap()]);
    assert!(
        err.contains("late.csv: line 2500") && err.contains("next_run"),
        "{err}"
    );
    let huge = write(
        "huge.csv",
        3,
        &format!(
            "load-csv,\"[{}\",{{}},2026-07-20T10:00:00+00:00\n",
            "1,".repeat(10 << 20)
        ),
    );
    let (_, err) = fails(&g, &["task", "schedule", huge.to_str().unwrap()]);
    assert!(
        err.contains("huge.csv: line 3") && err.len() < 1000,
        "{}",
        &err[..err.len().min(300)]
    );
    let big = write(
        "big.csv",
        10,
        "load-csv,[1180591620717411303424],{},2026-07-20T10:00:00+00:00\n",
    );
    let (_, err) = fails(&g, &["task", "schedule", big.to_str().unwrap()]);
    assert!(
        err.contains("big.csv: line 10") && err.contains("64 bits"),
        "{err}"
    );
    assert_eq!(
        ok(&g, &["task", "list"]),
        "Found 0 tasks\n\n",
        "nothing was created"
    );
}

/// `task list` shows tasks in creation order across types, as the original's (whose ids
/// follow creation), and `-l N` the first N created.
#[test]
fn task_list_is_in_creation_order() {
    let redis = RedisServer::start();
    let g = ["--redis-url", &redis.url()];
    for ty in ["type-a", "type-b"] {
        ok(&g, &["task-type", "add", ty, "x.y", ty, "-i", "1 day"]);
    }
    for i in 0..3 {
        for ty in ["type-b", "type-a"] {
            ok(&g, &["task", "add", ty, &format!("n={i}")]);
        }
    }
    let order = |out: &str| -> Vec<String> {
        let types = out.lines().filter_map(|l| l.strip_prefix("  Type: "));
        let ns = out.lines().filter_map(|l| l.strip_prefix("    n: "));
        types.zip(ns).map(|(t, n)| format!("{t}/{n}")).collect()
    };
    assert_eq!(
        order(&ok(&g, &["task", "list"])),
        [
            "type-b/0", "type-a/0", "type-b/1", "type-a/1", "type-b/2", "type-a/2"
        ]
    );
    assert_eq!(
        order(&ok(&g, &["task", "list", "-l", "3"])),
        ["type-b/0", "type-a/0", "type-b/1"]
    );
}

/// `serve`: every role in one process. A task created through its RPC server is sent by its
/// runner, a poison event is skipped by its listener and counted on its `/metrics`, and it
/// stops promptly on SIGTERM.
#[test]
fn serve_runs_every_role_and_shows_the_listeners_counters() {
    let redis = RedisServer::start();
    let port = free_port();
    let mut child = Command::new(BIN)
        .args([
            "--redis-url",
            &redis.url(),
            "serve",
            "--port",
            &port.to_string(),
        ])
        .args(["--period", "0.2", "--sweep-every", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    wait_for(20, "serve's RPC server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let u = ["-u", url.as_str()];
    ok(
        &u,
        &[
            "task-type",
            "add",
            "load-git",
            "swh.loader.git.tasks.UpdateGitRepository",
            "git",
        ],
    );
    ok(
        &u,
        &["task", "add", "load-git", "url=https://example.com/a.git"],
    );
    let mut con = redis.client();
    wait_for(20, "the task sent", || {
        let n: i64 = redis::cmd("LLEN")
            .arg("swh.loader.git.tasks.UpdateGitRepository")
            .query(&mut con)
            .unwrap();
        (n == 1).then_some(())
    });
    // the visit runner's role: listed origins of that visit type are sent too
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = redis.store().await;
        let lister = store.get_or_create_lister("cgit", None).await.unwrap();
        let id = lister.id.unwrap();
        let origins: Vec<_> = (0..2)
            .map(|i| {
                swh_scheduler::model::ListedOrigin::new(
                    &id,
                    &format!("https://example.com/{i}.git"),
                    "git",
                )
            })
            .collect();
        store.record_listed_origins(&origins).await.unwrap();
    });
    wait_for(20, "the visits sent", || {
        let n: i64 = redis::cmd("LLEN")
            .arg("swh.loader.git.tasks.UpdateGitRepository")
            .query(&mut con)
            .unwrap();
        (n == 3).then_some(())
    });
    let metrics = |con: &mut redis::Connection| {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("/0.celeryev/task.multi")
            .arg("{not an event")
            .query(con)
            .unwrap();
        // a plain HTTP/1.0 GET: enough for a page
        let mut body = String::new();
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Read;
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let _ = s.read_to_string(&mut body);
        }
        body.lines()
            .find_map(|l| l.strip_prefix("swh_scheduler_listener_malformed_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v >= 1)
    };
    wait_for(20, "the listener's counters on /metrics", || {
        metrics(&mut con)
    });
    let asked = std::time::Instant::now();
    let _ = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(asked.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn schedule_recurrent_sends_the_configured_visit_types_once() {
    use swh_scheduler::model::ListedOrigin;
    let server = RedisServer::start();
    let url = server.url();
    let g = ["--redis-url", url.as_str()];
    let loader = "swh.loader.git.tasks.UpdateGitRepository";
    ok(&g, &["task-type", "add", "load-git", loader, "git loader"]);
    ok(
        &g,
        &["task-type", "add", "load-svn", "swh.loader.svn", "svn"],
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = server.store().await;
        let lister = store.get_or_create_lister("github", None).await.unwrap();
        let origins: Vec<ListedOrigin> = ["git", "svn"]
            .iter()
            .flat_map(|vt| {
                let id = lister.id.clone().unwrap();
                (0..5).map(move |i| {
                    ListedOrigin::new(&id, &format!("https://example.com/{vt}/{i}"), vt)
                })
            })
            .collect();
        store.record_listed_origins(&origins).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yml");
    let write = |policy: &str| {
        std::fs::write(
            &cfg,
            format!(
                "scheduler:\n  cls: redis\n  url: {url}\nrecurrent_visits:\n  visit_types: [git]\n  \
                 policies:\n    default:\n      - policy: {policy}\n        weight: 1\n"
            ),
        )
        .unwrap();
    };
    write("oldest_scheduled_first");
    let c = cfg.to_str().unwrap();
    ok(&["-C", c], &["schedule-recurrent"]);
    let mut con = server.client();
    let len = |con: &mut redis::Connection, key: &str| -> usize {
        redis::cmd("LLEN").arg(key).query(con).unwrap()
    };
    assert_eq!(len(&mut con, loader), 5);
    assert_eq!(
        len(&mut con, "swh.loader.svn"),
        0,
        "only the configured type"
    );
    // the option overrides the file; the git origins are in their cooldown
    ok(
        &["-C", c],
        &[
            "schedule-recurrent",
            "--visit-type",
            "svn",
            "--visit-type",
            "git",
        ],
    );
    assert_eq!(len(&mut con, "swh.loader.svn"), 5);
    assert_eq!(len(&mut con, loader), 5);

    write("newest_first");
    let (code, err) = fails(&["-C", c], &["schedule-recurrent"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("recurrent_visits.policies.default[0].policy is \"newest_first\""),
        "{err}"
    );
    std::fs::write(
        &cfg,
        format!("scheduler:\n  cls: redis\n  url: {url}\nrecurrent_visits:\n  disable_after_failures: 0\n"),
    )
    .unwrap();
    let (_, err) = fails(&["-C", c], &["start-listener"]);
    assert!(
        err.contains("recurrent_visits.disable_after_failures is 0"),
        "{err}"
    );
    for (section, wanted) in [
        (
            "failed_cooldown: -1 day",
            "recurrent_visits.failed_cooldown is -1 day",
        ),
        (
            "policies: {git: [{policy: oldest_scheduled_first, weight: 0}]}",
            "recurrent_visits.policies.git has no policy with a weight above 0",
        ),
    ] {
        std::fs::write(
            &cfg,
            format!("scheduler:\n  cls: redis\n  url: {url}\nrecurrent_visits:\n  {section}\n"),
        )
        .unwrap();
        let (_, err) = fails(&["-C", c], &["schedule-recurrent"]);
        assert!(err.contains(wanted), "{err}");
    }
}
