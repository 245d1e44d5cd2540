//! The RPC server over real HTTP: the original's unmodified Python client (swh.scheduler 0.16.0
//! from PyPI, installed into target/venv-swh016 on first use) in msgpack and JSON, our Rust
//! client, malformed bodies, the site map and the metrics page.

mod common;

use std::process::Command;

use chrono::{Duration as TimeDelta, Utc};
use serde_json::json;
use swh_scheduler::api::SchedulerApi;
use swh_scheduler::model::{Interval, NewTask, Policy, RunStatus, TaskType};
use swh_scheduler::rpc::{RpcClient, RpcConfig, codec, serve_on};
use swh_scheduler::store::Store;

use common::{RedisServer, RpcServe, swh016_venv};

/// Starts our RPC server on a free port; returns its URL and a stopper.
async fn start_server(store: &Store) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let store = store.clone();
    tokio::spawn(async move {
        serve_on(listener, store, RpcConfig::default(), async {
            rx.await.ok();
        })
        .await
        .unwrap();
    });
    (url, tx)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_original_python_client_works_unmodified() {
    let server = RedisServer::start();
    let store = server.store().await;
    let (url, stop) = start_server(&store).await;
    let venv = tokio::task::spawn_blocking(swh016_venv).await.unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/remote_scheduler_check.py"
    );
    for encoding in ["msgpack", "json"] {
        let (url, venv) = (url.clone(), venv.clone());
        let out = tokio::task::spawn_blocking(move || {
            Command::new(venv.join("bin/python"))
                .args([script, &url, encoding, encoding])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{encoding}:\n{stdout}\n{stderr}");
        assert!(stdout.contains(&format!("OK {encoding}")), "{stdout}");
        // the errors the client raised name what was wrong
        assert!(stdout.contains("unknown task type"), "{stdout}");
        assert!(stdout.contains("tasks[0].arguments.args"), "{stdout}");
        assert!(stdout.contains("exploded"), "{stdout}");
        assert!(
            stdout.contains("Unknown scheduling policy nope"),
            "{stdout}"
        );
        assert!(
            stdout.contains("naive") || stdout.contains("tzinfo"),
            "{stdout}"
        );
    }
    stop.send(()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rust_client_round_trips_through_the_server() {
    let server = RedisServer::start();
    let store = server.store().await;
    let (url, stop) = start_server(&store).await;
    let c = RpcClient::new(&url).unwrap();
    let mut tt = TaskType::new("rt", "x.y", "round trip");
    tt.default_interval = Some(Interval::from_dsu(3, 7, 11).unwrap());
    tt.backoff_factor = Some(1.5);
    c.create_task_type(&tt).await.unwrap();
    assert_eq!(c.get_task_type("rt").await.unwrap(), Some(tt.clone()));
    assert_eq!(c.get_task_types().await.unwrap(), vec![tt]);
    let next =
        chrono::DateTime::from_timestamp_micros(Utc::now().timestamp_micros() - 5_000_007).unwrap();
    let mut nt = NewTask::new(
        "rt",
        vec![json!(1)],
        json!({"k": [true, null]}).as_object().unwrap().clone(),
    );
    nt.next_run = Some(next);
    let made = c.create_tasks(&[nt], Policy::Recurring).await.unwrap();
    assert_eq!(made[0].next_run, next);
    assert_eq!(c.get_tasks(&[made[0].id]).await.unwrap(), made);
    assert_eq!(
        store.get_tasks(&[made[0].id]).await.unwrap(),
        made,
        "what the store has"
    );
    let grabbed = c.grab_ready_tasks("rt", None, Some(10)).await.unwrap();
    assert_eq!(grabbed.len(), 1);
    let run = c
        .schedule_task_run(made[0].id, "b1", None, Some(next))
        .await
        .unwrap();
    assert_eq!(run.scheduled, Some(next));
    c.start_task_run("b1", None, None).await.unwrap().unwrap();
    let ended = c
        .end_task_run("b1", RunStatus::Uneventful, None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.status, RunStatus::Uneventful);
    assert_eq!(
        c.get_task_runs(&[made[0].id], None).await.unwrap(),
        vec![ended]
    );
    let e = c
        .create_tasks(
            &[NewTask::new("nope", vec![], Default::default())],
            Policy::Recurring,
        )
        .await
        .unwrap_err();
    assert!(
        e.is_caller_error() && e.to_string().contains("unknown task type \"nope\""),
        "{e}"
    );
    stop.send(()).unwrap();
}

/// Posts a raw body; returns the status and the decoded (msgpack) error message.
async fn post(url: &str, path: &str, ct: &str, body: Vec<u8>) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    let msg = match codec::from_msgpack(&body) {
        Ok(w) => match w.get("message") {
            Some(codec::Wire::Str(s)) => s.clone(),
            _ => format!("{w:?}"),
        },
        Err(_) => String::from_utf8_lossy(&body).into_owned(),
    };
    (status, msg)
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_get_clear_400s() {
    let server = RedisServer::start();
    let store = server.store().await;
    let (url, stop) = start_server(&store).await;
    let js = |v: serde_json::Value| v.to_string().into_bytes();
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "task/create",
            "application/x-msgpack",
            vec![0xc1],
            "invalid msgpack: the reserved byte",
        ),
        (
            "task/create",
            "application/x-msgpack",
            vec![0x81, 0xa5, b't', b'a', b's', b'k', b's'],
            "invalid msgpack: truncated",
        ),
        (
            "task/create",
            "application/json",
            b"{not json".to_vec(),
            "invalid JSON",
        ),
        (
            "task/create",
            "text/plain",
            b"x".to_vec(),
            "unsupported Content-Type",
        ),
        (
            "task/create",
            "application/json",
            js(json!([1, 2])),
            "map of keyword arguments",
        ),
        (
            "task/create",
            "application/json",
            js(json!({})),
            "missing required argument \"tasks\"",
        ),
        (
            "task/create",
            "application/json",
            js(json!({"tasks": 5})),
            "invalid tasks: expected a list",
        ),
        (
            "task/create",
            "application/json",
            js(json!({"tasks": [], "bogus": 1})),
            "unexpected keyword argument \"bogus\"",
        ),
        (
            "task/create",
            "application/json",
            js(json!({"tasks": [{"type": "t", "arguments": {"args": [], "kwargs": []}}]})),
            "tasks[0].arguments.kwargs",
        ),
        (
            "task/create",
            "application/json",
            js(
                json!({"tasks": [{"type": "t", "next_run": {"swhtype": "datetime", "d": "2026-01-01T00:00:00"}}]}),
            ),
            "naive datetime",
        ),
        (
            "task/create",
            "application/json",
            js(json!({"tasks": [{"type": "t", "policy": "sometimes"}]})),
            "invalid tasks[0].policy \"sometimes\"",
        ),
        (
            "task/set_status",
            "application/json",
            js(json!({"task_ids": [1], "status": "asleep"})),
            "invalid status \"asleep\"",
        ),
        (
            "task/peek_ready",
            "application/json",
            js(json!({"task_type": "t", "num_tasks": -3})),
            "num_tasks: -3 is negative",
        ),
        (
            "task_type/create",
            "application/json",
            js(
                json!({"task_type": {"type": "t", "backend_name": "b", "default_interval": {"swhtype": "timedelta", "d": {"days": -1}}}}),
            ),
            "default_interval",
        ),
        (
            "task_run/end",
            "application/json",
            js(json!({"backend_id": "x", "status": "meh"})),
            "invalid status \"meh\"",
        ),
        (
            "task_run/schedule",
            "application/json",
            js(json!({"task_runs": [{"backend_id": "x"}]})),
            "task_runs[0].task",
        ),
        (
            "origins/grab_next",
            "application/json",
            js(json!({"visit_type": "git", "count": 1, "policy": "nope"})),
            "Unknown scheduling policy nope",
        ),
        (
            "origins/get",
            "application/json",
            js(json!({"page_token": ["not-a-uuid", "https://a"]})),
            "page_token[0]",
        ),
    ];
    for (path, ct, body, want) in cases {
        let (status, msg) = post(&url, path, ct, body).await;
        assert_eq!(status, 400, "{path}: {msg}");
        assert!(msg.contains(want), "{path}: {msg:?} should say {want:?}");
    }
    let (status, _) = post(&url, "no/such/path", "application/json", b"{}".to_vec()).await;
    assert_eq!(status, 404);
    // an empty body means no arguments
    let (status, _) = post(&url, "task_type/get_all", "application/x-msgpack", vec![]).await;
    assert_eq!(status, 200);
    // nothing was written by the rejected calls
    assert!(store.get_task_types().await.unwrap().is_empty());
    stop.send(()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn site_map_and_metrics() {
    let server = RedisServer::start();
    let store = server.store().await;
    let mut tt = TaskType::new("m-type", "m.task", "metrics");
    tt.default_interval = Some(Interval::from_days(1));
    store.create_task_type(&tt).await.unwrap();
    let mut tasks: Vec<NewTask> = (0..3)
        .map(|i| NewTask::new("m-type", vec![json!(i)], Default::default()))
        .collect();
    for t in &mut tasks {
        t.next_run = Some(Utc::now() - TimeDelta::seconds(30));
    }
    let made = store.create_tasks(&tasks, Policy::Recurring).await.unwrap();
    store.disable_tasks(&[made[2].id]).await.unwrap();
    swh_scheduler::runner::Runner::new(
        store.clone(),
        swh_scheduler::runner::RunnerConfig {
            task_types: vec!["m-type".into()],
            ..Default::default()
        },
    )
    .pass()
    .await
    .unwrap();
    let run = store
        .get_task_runs(&[made[0].id], None)
        .await
        .unwrap()
        .remove(0);
    store
        .start_task_run(&run.backend_id, None, None)
        .await
        .unwrap();
    store
        .end_task_run(&run.backend_id, RunStatus::Eventful, None, None)
        .await
        .unwrap();
    let more: Vec<NewTask> = (5..7)
        .map(|i| {
            let mut t = NewTask::new("m-type", vec![json!(i)], Default::default());
            t.next_run = Some(Utc::now() - TimeDelta::seconds(60));
            t
        })
        .collect();
    store.create_tasks(&more, Policy::Recurring).await.unwrap();

    let (url, stop) = start_server(&store).await;
    let site: serde_json::Value = serde_json::from_str(
        &reqwest::get(format!("{url}site-map"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let rules: Vec<&str> = site
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules.len(), 30);
    assert!(rules.contains(&"/task/grab_ready_with_priority"));
    let home = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(home.contains("Software Heritage scheduler RPC server"));

    let text = reqwest::get(format!("{url}metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metric = |line: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("{line} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        metric("swh_scheduler_tasks{task_type=\"m-type\",status=\"next_run_not_scheduled\"}"),
        3.0,
        "{text}"
    );
    assert_eq!(
        metric("swh_scheduler_tasks{task_type=\"m-type\",status=\"next_run_scheduled\"}"),
        1.0
    );
    assert_eq!(
        metric("swh_scheduler_tasks{task_type=\"m-type\",status=\"disabled\"}"),
        1.0
    );
    assert_eq!(
        metric("swh_scheduler_due_tasks{task_type=\"m-type\",priority=\"false\"}"),
        2.0
    );
    assert!(metric("swh_scheduler_oldest_due_seconds{task_type=\"m-type\"}") >= 59.0);
    assert_eq!(
        metric("swh_scheduler_queue_length{task_type=\"m-type\",queue=\"m.task\"}"),
        2.0
    );
    assert_eq!(
        metric("swh_scheduler_runs_dispatched_total{task_type=\"m-type\"}"),
        2.0
    );
    assert_eq!(
        metric("swh_scheduler_run_events_total{task_type=\"m-type\",event=\"started\"}"),
        1.0
    );
    assert_eq!(
        metric("swh_scheduler_run_events_total{task_type=\"m-type\",event=\"eventful\"}"),
        1.0
    );
    stop.send(()).unwrap();
}

fn flushdb(redis: &RedisServer) {
    let _: () = redis::cmd("FLUSHDB").query(&mut redis.client()).unwrap();
}

/// The sequence a new user tried: a type created through the Python client, the data flushed
/// under the running server, the type created again, then a task of it.
#[tokio::test(flavor = "multi_thread")]
async fn a_type_created_again_after_flushdb_is_written_and_usable() {
    let redis = RedisServer::start();
    let server = RpcServe::start(&redis);
    let venv = tokio::task::spawn_blocking(swh016_venv).await.unwrap();
    let python = |code: &str| {
        let out = Command::new(venv.join("bin/python"))
            .args(["-c", code, &server.url])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{code}\n{text}");
        text
    };
    let create_type = "import sys\nfrom swh.scheduler.api.client import RemoteScheduler\n\
        s = RemoteScheduler(url=sys.argv[1])\n\
        s.create_task_type({'type': 'load-git', 'description': 'git', \
        'backend_name': 'swh.loader.git.tasks.UpdateGitRepository', \
        'default_interval': __import__('datetime').timedelta(days=64)})\n\
        print(s.get_task_type('load-git')['type'])";
    assert!(python(create_type).contains("load-git"));
    flushdb(&redis);
    assert!(python(create_type).contains("load-git"));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.client())
        .unwrap();
    assert!(
        keys.iter().any(|k| k.contains("{load-git}")),
        "the type is written again: {keys:?}"
    );
    let created = python(
        "import sys\nfrom swh.scheduler.api.client import RemoteScheduler\n\
         s = RemoteScheduler(url=sys.argv[1])\n\
         t = s.create_tasks([{'type': 'load-git', 'arguments': {'args': [], \
         'kwargs': {'url': 'https://example.com/a.git'}}}])\n\
         print('created', t[0]['id'], t[0]['type'])",
    );
    assert!(
        created.contains("created") && created.contains("load-git"),
        "{created}"
    );
}

/// Two servers on one Redis: the data is replaced under the one that cached it, with the type
/// indexes swapped; its writes by task id must land on the right type.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_whose_cache_is_stale_never_writes_with_it() {
    let redis = RedisServer::start();
    let (a, b) = (RpcServe::start(&redis), RpcServe::start(&redis));
    let (a, b) = (
        RpcClient::new(&a.url).unwrap(),
        RpcClient::new(&b.url).unwrap(),
    );
    let ty = |name: &str| {
        let mut t = TaskType::new(name, "x.y", name);
        t.default_interval = Some(Interval::from_days(1));
        t
    };
    let task = |name: &str, n: i64| NewTask::new(name, vec![json!(n)], Default::default());
    a.create_task_type(&ty("first")).await.unwrap();
    a.create_task_type(&ty("second")).await.unwrap();
    // b caches both types and their indexes
    let old = b
        .create_tasks(&[task("first", 1), task("second", 1)], Policy::Recurring)
        .await
        .unwrap();
    assert_eq!(old.len(), 2);

    flushdb(&redis);
    // recreated in the other order: "second" now has the index "first" had
    a.create_task_type(&ty("second")).await.unwrap();
    a.create_task_type(&ty("first")).await.unwrap();
    let made = a
        .create_tasks(&[task("second", 7), task("first", 7)], Policy::Recurring)
        .await
        .unwrap();
    let (second, first) = (made[0].id, made[1].id);

    // b disables "second"'s task by id; its stale cache maps that id to "first"
    b.disable_tasks(&[second]).await.unwrap();
    let now = a.get_tasks(&[second, first]).await.unwrap();
    assert_eq!(now[0].task_type, "second");
    assert_eq!(now[0].status, swh_scheduler::model::TaskStatus::Disabled);
    assert_eq!(
        now[1].status,
        swh_scheduler::model::TaskStatus::NextRunNotScheduled,
        "the other type's task is untouched"
    );
    // and b reads and writes the new data from then on
    let from_b = b.get_tasks(&[second]).await.unwrap();
    assert_eq!(from_b, vec![now[0].clone()]);
    let more = b
        .create_tasks(&[task("first", 8)], Policy::Recurring)
        .await
        .unwrap();
    assert_eq!(more[0].task_type, "first");
    let runs = b
        .schedule_task_run(more[0].id, "bid-1", None, None)
        .await
        .unwrap();
    assert_eq!(runs.task, more[0].id);
}

/// swh.lister's first calls, through the original's unmodified client: the `Lister` model
/// travels as a `scheduler_model`, and a stale update raises the client's `StaleData`.
#[tokio::test(flavor = "multi_thread")]
async fn the_original_client_gets_creates_and_updates_listers() {
    let redis = RedisServer::start();
    let server = RpcServe::start(&redis);
    let venv = tokio::task::spawn_blocking(swh016_venv).await.unwrap();
    let code = r#"
import sys
from swh.scheduler.api.client import RemoteScheduler
from swh.scheduler.exc import StaleData
from swh.scheduler.model import Lister
s = RemoteScheduler(url=sys.argv[1])
assert s.get_lister("github") is None
lister = s.get_or_create_lister(name="github")
assert isinstance(lister, Lister), type(lister)
assert lister.instance_name == "" and lister.current_state == {}, lister
assert s.get_or_create_lister(name="github") == lister
lister.current_state = {"last_page": 42}
saved = s.update_lister(lister)
assert saved.updated > lister.updated and saved.current_state == {"last_page": 42}, saved
try:
    s.update_lister(lister)
    raise SystemExit("a stale update went through")
except StaleData as e:
    print("stale:", e)
assert s.get_listers() == [saved], s.get_listers()
print("OK listers", saved.id)
"#;
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", code, &server.url])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("OK listers"),
        "{text}"
    );
    assert!(text.contains("stale:"), "{text}");
}

/// The original's own tests (swh.scheduler 0.16.0's `TestScheduler` and its journal client's
/// tests, unmodified, from the installed package) through its client against `rpc-serve`: the
/// class's 50 items (33 origin-visit ones, the task ones), and the journal client's 75 (with
/// their permutations of out-of-order messages), whose expected stats are the original's.
#[tokio::test(flavor = "multi_thread")]
async fn the_originals_test_class_passes_through_its_client() {
    let redis = RedisServer::start();
    let server = RpcServe::start(&redis);
    let venv = tokio::task::spawn_blocking(swh016_venv).await.unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python");
    let out = Command::new(venv.join("bin/python"))
        .current_dir(dir)
        .env("SWH_SCHEDULER_URL", &server.url)
        .env("SWH_SCHEDULER_REDIS", format!("127.0.0.1:{}", redis.port))
        .env("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf"])
        .arg("test_original_scheduler.py")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("125 passed"), "{text}");
}

/// A large `task_run/schedule` (30,000 runs): it used to outlast the redis crate's 500 ms
/// response timeout and answer 500 with every run written but not indexed by backend id.
/// Now the call is sent in bounded chunks under a deliberate timeout: it succeeds, and every
/// run is found by its backend id.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_schedule_through_rpc_is_written_whole_and_indexed() {
    let server = RedisServer::start();
    let store = server.store().await;
    let (url, stop) = start_server(&store).await;
    let c = RpcClient::new(&url).unwrap();
    let mut tt = TaskType::new("big", "x.y", "big");
    tt.default_interval = Some(Interval::from_days(1));
    c.create_task_type(&tt).await.unwrap();
    let tasks: Vec<NewTask> = (0..30_000)
        .map(|i| NewTask::new("big", vec![json!(i)], Default::default()))
        .collect();
    let made = c.create_tasks(&tasks, Policy::Recurring).await.unwrap();
    assert_eq!(made.len(), 30_000);
    let runs: Vec<swh_scheduler::model::NewTaskRun> = made
        .iter()
        .map(|t| swh_scheduler::model::NewTaskRun {
            task: t.id,
            backend_id: format!("bid-{}", t.id),
            scheduled: None,
            metadata: Default::default(),
        })
        .collect();
    c.mass_schedule_task_runs(&runs).await.unwrap();
    for r in [&runs[0], &runs[15_000], &runs[29_999]] {
        let ended = c
            .end_task_run(&r.backend_id, RunStatus::Eventful, None, None)
            .await
            .unwrap();
        assert_eq!(ended.map(|e| e.task), Some(r.task), "{}", r.backend_id);
    }
    stop.send(()).unwrap();
}

/// Bodies that would decode to far more memory than they take are refused (a body of one-byte
/// values used to cost about fifty times its size), and bodies over the default limit (32 MiB)
/// are refused before they are read.
#[tokio::test(flavor = "multi_thread")]
async fn dense_and_oversized_bodies_are_refused() {
    let server = RedisServer::start();
    let store = server.store().await;
    let (url, stop) = start_server(&store).await;
    let n: u32 = 1 << 20;
    let mut dense = vec![0xdd];
    dense.extend(n.to_be_bytes());
    dense.extend(std::iter::repeat_n(0u8, n as usize));
    let body = [vec![0x81, 0xa8], b"task_ids".to_vec(), dense].concat();
    let (status, msg) = post(&url, "task/get", "application/x-msgpack", body).await;
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("values in a"), "{msg}");
    let json = format!("{{\"task_ids\": [{}0]}}", "0,".repeat(1 << 20));
    let (status, msg) = post(&url, "task/get", "application/json", json.into_bytes()).await;
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("values in a"), "{msg}");
    let (status, _) = post(&url, "task/get", "application/json", vec![b' '; 33 << 20]).await;
    assert_eq!(status, 413);
    stop.send(()).unwrap();
}

/// With `rpc.users` set, every request needs a user's password (HTTP basic authentication),
/// which the original's Python client sends from its URL, as does ours.
#[tokio::test(flavor = "multi_thread")]
async fn users_are_asked_for_their_password() {
    let bin = env!("CARGO_BIN_EXE_swh-scheduler");
    let mut hash = Command::new(bin)
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(hash.stdin.as_mut().unwrap(), b"p@ss w0rd\n").unwrap();
    let hash = String::from_utf8(hash.wait_with_output().unwrap().stdout).unwrap();
    assert!(hash.starts_with("$2"), "{hash}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yml");
    std::fs::write(
        &config,
        format!("rpc:\n  users:\n    alice: '{}'\n", hash.trim()),
    )
    .unwrap();
    let redis = RedisServer::start();
    let server = RpcServe::start_with(&redis, &["-C", config.to_str().unwrap()]);
    let with = server.url.replace("http://", "http://alice:p%40ss%20w0rd@");
    let wrong = server.url.replace("http://", "http://alice:nope@");

    // the original's client, with and without the password
    let venv = tokio::task::spawn_blocking(swh016_venv).await.unwrap();
    let code = "import sys\nfrom swh.scheduler.api.client import RemoteScheduler\n\
        s = RemoteScheduler(url=sys.argv[1])\n\
        s.create_task_type({'type': 'load-git', 'description': 'git', 'backend_name': 'x.y'})\n\
        print('types', [t['type'] for t in s.get_task_types()])";
    let run = |url: &str| {
        Command::new(venv.join("bin/python"))
            .args(["-c", code, url])
            .output()
            .unwrap()
    };
    let ok = run(&with);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success() && text.contains("types ['load-git']"),
        "{text}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(!run(&wrong).status.success());
    assert!(!run(&server.url).status.success());

    // our client, through the command line
    let cli = |url: &str| {
        Command::new(bin)
            .args(["-u", url, "task-type", "list"])
            .output()
            .unwrap()
    };
    let out = cli(&with);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("load-git"),
        "{out:?}"
    );
    let out = cli(&wrong);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );

    // the pages too
    for path in ["metrics", "site-map"] {
        let status = reqwest::get(format!("{}{path}", server.url))
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 401, "{path}");
    }
}

/// A real swh.lister lister (1.3.6) lists a forge into the scheduler through its RPC server:
/// get_or_create_lister in its constructor, record_listed_origins in batches of 1000, its state
/// saved by update_lister and read back by the next run.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_swh_lister_lists_into_the_scheduler() {
    let redis = RedisServer::start();
    let server = RpcServe::start(&redis);
    let venv = tokio::task::spawn_blocking(common::swh_lister_venv)
        .await
        .unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/swh_lister_check.py"
    );
    let out = Command::new(venv.join("bin/python"))
        .args([script, &server.url])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("OK lister"), "{text}");
}
