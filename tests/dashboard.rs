//! The dashboard (`/ui/`) in a real headless Chromium against a real store: the numbers it
//! shows against what the store holds (counted here from the tasks and runs themselves, not
//! from the counters the dashboard reads), a respawn and a "respawn failing" clicked through
//! their confirmations, screenshots under `target/dashboard/` (light and dark); and, over
//! plain HTTP, the actions refused when they must be.

mod common;

use std::collections::HashMap;

use chrono::{Duration, Utc};
use serde_json::{Map, Value, json};
use swh_scheduler::model::{
    GrabOptions, Interval, ListedOrigin, NewTask, NewTaskRun, Policy, RunStatus, Task,
    TaskArguments, TaskSearch, TaskStatus, TaskType,
};
use swh_scheduler::rpc::server::{RpcConfig, serve_on};
use swh_scheduler::store::Store;

use common::RedisServer;
use common::browser::Browser;

fn kwargs(url: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("url".into(), json!(url));
    m
}

/// Two task types with due, future, overdue, in-flight, ended and failing tasks, and a visit
/// type with a lister.
async fn fill(store: &Store) {
    let mut git = TaskType::new(
        "load-git",
        "swh.loader.git.tasks.UpdateGitRepository",
        "git",
    );
    git.default_interval = Some(Interval::from_days(1));
    git.max_queue_length = Some(100);
    git.backoff_factor = Some(2.0);
    git.num_retries = Some(0);
    store.create_task_type(&git).await.unwrap();
    let mut hg = TaskType::new("load-hg", "swh.loader.hg.tasks.LoadHg", "hg");
    hg.default_interval = Some(Interval::from_days(7));
    store.create_task_type(&hg).await.unwrap();
    let now = Utc::now();
    let task = |t: &str, i: usize, next: chrono::DateTime<Utc>| NewTask {
        task_type: t.into(),
        arguments: TaskArguments {
            args: vec![],
            kwargs: kwargs(&format!("https://example.com/{t}/{i:03}.git")),
        },
        next_run: Some(next),
        policy: None,
        status: TaskStatus::NextRunNotScheduled,
        retries_left: None,
        priority: None,
    };
    let mut new = Vec::new();
    for i in 0..40 {
        new.push(task("load-git", i, now - Duration::hours(1))); // due
    }
    for i in 40..55 {
        new.push(task("load-git", i, now - Duration::days(3))); // overdue
    }
    for i in 55..90 {
        new.push(task("load-git", i, now + Duration::days(2))); // later
    }
    for i in 0..12 {
        new.push(task("load-hg", i, now - Duration::minutes(5)));
    }
    store.create_tasks(&new, Policy::Recurring).await.unwrap();
    // runs of some of the later ones: 10 still in flight, 6 eventful, 5 failed, 3 lost
    let later: Vec<Task> = store
        .search_tasks(&TaskSearch {
            task_types: vec!["load-git".into()],
            after: Some(now + Duration::days(1)),
            ..Default::default()
        })
        .await
        .unwrap();
    let runs: Vec<NewTaskRun> = later[..24]
        .iter()
        .enumerate()
        .map(|(i, t)| NewTaskRun {
            task: t.id,
            backend_id: format!("dash-{i}"),
            scheduled: None,
            metadata: Some(Map::new()),
        })
        .collect();
    store.mass_schedule_task_runs(&runs).await.unwrap();
    for i in 10..24 {
        let status = match i {
            10..16 => RunStatus::Eventful,
            16..21 => RunStatus::Failed,
            _ => RunStatus::Lost,
        };
        let mut meta = Map::new();
        meta.insert("worker".into(), json!("dash@host"));
        store
            .end_task_run(&format!("dash-{i}"), status, Some(meta), None)
            .await
            .unwrap();
    }
    // a few messages waiting in the git queue
    let mut con = store.con().await.unwrap();
    let _: () = redis::cmd("LPUSH")
        .arg("swh.loader.git.tasks.UpdateGitRepository")
        .arg(&["m1", "m2", "m3"][..])
        .query_async(&mut con)
        .await
        .unwrap();
    // a visit type
    let lister = store
        .get_or_create_lister("gitlab", Some("inria"))
        .await
        .unwrap();
    let origins: Vec<ListedOrigin> = (0..30)
        .map(|i| {
            let mut o = ListedOrigin::new(
                lister.id.as_deref().unwrap(),
                &format!("https://gitlab.inria.fr/p/{i:02}"),
                "git",
            );
            o.last_update = Some(now - Duration::days(i));
            o
        })
        .collect();
    store.record_listed_origins(&origins).await.unwrap();
    store
        .grab_next_visits("git", 7, "oldest_scheduled_first", &GrabOptions::default())
        .await
        .unwrap();
}

/// What the overview's row of a type should show, counted from the tasks and their runs.
async fn expected(store: &Store, task_type: &str) -> HashMap<&'static str, i64> {
    let now = Utc::now();
    let tasks = store
        .search_tasks(&TaskSearch {
            task_types: vec![task_type.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let interval = store
        .get_task_type(task_type)
        .await
        .unwrap()
        .unwrap()
        .default_interval
        .unwrap();
    let ids: Vec<i64> = tasks.iter().map(|t| t.id).collect();
    let runs = store.get_task_runs(&ids, None).await.unwrap();
    let mut e = HashMap::new();
    for s in TaskStatus::ALL {
        e.insert(
            s.as_str(),
            tasks.iter().filter(|t| t.status == *s).count() as i64,
        );
    }
    let waiting: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::NextRunNotScheduled)
        .collect();
    e.insert(
        "due",
        waiting.iter().filter(|t| t.next_run <= now).count() as i64,
    );
    e.insert(
        "overdue",
        waiting
            .iter()
            .filter(|t| t.next_run <= now - chrono::Duration::microseconds(interval.as_micros()))
            .count() as i64,
    );
    let count = |s: &[RunStatus]| runs.iter().filter(|r| s.contains(&r.status)).count() as i64;
    e.insert(
        "in_flight",
        count(&[RunStatus::Scheduled, RunStatus::Started]),
    );
    e.insert("eventful", count(&[RunStatus::Eventful]));
    e.insert("uneventful", count(&[RunStatus::Uneventful]));
    e.insert("failed", count(&[RunStatus::Failed]));
    e.insert("lost", count(&[RunStatus::Lost]));
    // failing: the last ended run of the task failed
    let mut last: HashMap<i64, (i64, RunStatus)> = HashMap::new();
    for r in runs.iter().filter(|r| r.ended.is_some()) {
        let entry = last.entry(r.task).or_insert((r.id, r.status));
        if r.id > entry.0 {
            *entry = (r.id, r.status);
        }
    }
    e.insert(
        "failing",
        last.values()
            .filter(|(_, s)| {
                matches!(
                    s,
                    RunStatus::Failed | RunStatus::Lost | RunStatus::Permfailed
                )
            })
            .count() as i64,
    );
    e
}

/// The overview's cells of a type's row, by column.
async fn shown(b: &Browser, task_type: &str) -> HashMap<String, i64> {
    let cols = [
        "next_run_not_scheduled",
        "next_run_scheduled",
        "completed",
        "disabled",
        "due",
        "overdue",
        "lag",
        "in_flight",
        "queue",
        "eventful",
        "uneventful",
        "failed",
        "lost",
        "failing",
    ];
    let cells = b
        .until(
            "the type's row",
            &format!(
                "const tr = document.querySelector('#types tr[data-type=\"{task_type}\"]');
                 return tr && [...tr.cells].slice(1).map(td => td.dataset.n ?? null);"
            ),
        )
        .await;
    cols.iter()
        .zip(cells.as_array().unwrap())
        .filter_map(|(c, v)| {
            let n = v.as_str()?.parse().ok()?;
            Some((c.to_string(), n))
        })
        .collect()
}

fn save(name: &str, png: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let img = image::load_from_memory(png).expect("a PNG");
    assert!(img.width() >= 1000 && img.height() >= 600, "{name}");
    std::fs::write(dir.join(name), png).unwrap();
}

/// A server on a free port with this configuration; its base URL.
async fn serve(store: &Store, config: RpcConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_on(
        listener,
        store.clone(),
        config,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_the_store_holds_and_acts_on_it() {
    let server = RedisServer::start();
    let store = server.store().await;
    fill(&store).await;
    let base = serve(&store, RpcConfig::default()).await;
    let b = Browser::start().await;

    // the root sends a browser to the dashboard
    b.goto(&format!("{base}/")).await;
    b.until(
        "the overview",
        "return location.pathname === '/ui/' && document.querySelector('#types')",
    )
    .await;
    for t in ["load-git", "load-hg"] {
        let want = expected(&store, t).await;
        let got = shown(&b, t).await;
        for (k, v) in &want {
            assert_eq!(
                got.get(*k),
                Some(v),
                "{t}: {k} shown {got:?}, the store has {want:?}"
            );
        }
    }
    let got = shown(&b, "load-git").await;
    assert_eq!(got.get("queue"), Some(&3), "the queue's length");
    assert!(got.contains_key("lag"), "a lag is shown: {got:?}");
    let vt = b
        .until(
            "the visit type's row",
            "const tr = document.querySelector('#visit-types tr[data-visit-type=\"git\"]');
             return tr && [...tr.cells].slice(1, 6).map(td => td.dataset.n);",
        )
        .await;
    // 30 listed, 7 grabbed: 23 eligible, 7 awaiting, 30 never visited, none pending
    assert_eq!(vt, json!(["23", "7", "30", "0", "30"]));
    save("overview-light.png", &b.screenshot().await);
    b.prefer_dark(true).await;
    let bg = b
        .eval(
            "return getComputedStyle(document.body).backgroundColor",
            json!([]),
        )
        .await;
    assert_eq!(
        bg,
        json!("rgb(18, 20, 24)"),
        "dark colours follow the system"
    );
    save("overview-dark.png", &b.screenshot().await);
    b.prefer_dark(false).await;

    // a type's page: its failing tasks, then respawn them all
    b.click("#types a[href='/ui/types/load-git']").await;
    b.until(
        "the due tasks",
        "return document.querySelectorAll('table.tasks tbody tr').length === 50",
    )
    .await;
    save("type-light.png", &b.screenshot().await);
    b.click("a[href='/ui/types/load-git?tab=failing']").await;
    b.until(
        "the failing tasks",
        "return document.querySelectorAll('table.tasks tbody tr').length === 8",
    )
    .await;
    let failing: Vec<i64> = b
        .eval(
            "return [...document.querySelectorAll('table.tasks tbody tr')].map(tr => Number(tr.dataset.task))",
            json!([]),
        )
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    b.click("#respawn-failing").await;
    b.click("#confirm-ok").await;
    b.until(
        "the respawn's report",
        "return [...document.querySelectorAll('.row .muted')].some(e => e.textContent === '8 respawned')",
    )
    .await;
    let now = Utc::now();
    for t in store.get_tasks(&failing).await.unwrap() {
        assert_eq!(t.status, TaskStatus::NextRunNotScheduled);
        assert!(
            t.next_run <= now && t.next_run > now - Duration::minutes(1),
            "{t:?}"
        );
    }

    // a task's page: its runs, and a respawn through the confirmation
    let later = store
        .search_tasks(&TaskSearch {
            task_types: vec!["load-git".into()],
            after: Some(now + Duration::days(1)),
            ..Default::default()
        })
        .await
        .unwrap();
    let target = later
        .iter()
        .find(|t| t.status == TaskStatus::NextRunNotScheduled)
        .unwrap();
    b.goto(&format!("{base}/ui/tasks/{}", target.id)).await;
    b.until(
        "the task's fields",
        "return document.querySelector('#task-fields')",
    )
    .await;
    b.click("button[data-action=respawn]").await;
    b.click("#confirm-ok").await;
    b.until(
        "the page after the respawn",
        "const t = document.querySelector('[data-k=next_run] time');
         return t && Date.parse(t.dateTime) < Date.now() + 1000",
    )
    .await;
    let after = store.get_tasks(&[target.id]).await.unwrap();
    assert!(after[0].next_run <= Utc::now(), "respawned: {:?}", after[0]);
    assert!(target.next_run > Utc::now());
    // one with runs shows them, metadata included
    b.goto(&format!("{base}/ui/tasks/{}", failing[0])).await;
    let worker = b
        .until(
            "the runs",
            "const r = document.querySelector('#runs tbody tr'); return r && r.textContent",
        )
        .await;
    assert!(worker.as_str().unwrap().contains("dash@host"), "{worker}");
    save("task-light.png", &b.screenshot().await);

    // a search by argument text, read in steps
    b.goto(&format!("{base}/ui/types/load-git?tab=search"))
        .await;
    b.until(
        "the search box",
        "return document.querySelector('#arg-search')",
    )
    .await;
    b.eval(
        "document.querySelector('#arg-search').value = 'load-git/07'; \
         document.querySelector('#arg-search').form.requestSubmit();",
        json!([]),
    )
    .await;
    let found = b
        .until(
            "the search's results",
            "const rows = document.querySelectorAll('table.tasks tbody tr');
             return document.querySelector('.progress').dataset.done === 'true' && rows.length",
        )
        .await;
    assert_eq!(found, json!(10), "load-git/070 to 079");
}

#[tokio::test]
async fn actions_need_a_password_off_loopback_and_the_page_s_header() {
    let server = RedisServer::start();
    let store = server.store().await;
    fill(&store).await;
    let task = store
        .search_tasks(&TaskSearch {
            task_types: vec!["load-hg".into()],
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .clone();
    let http = reqwest::Client::new();
    let post = |base: String, header: bool| {
        let mut r = http.post(format!("{base}/ui/api/tasks/{}/disable", task.id));
        if header {
            r = r.header("x-swh-dashboard", "1");
        }
        async move {
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
            (status, body)
        }
    };
    // listening on every address with no password: refused, whatever the header
    let open = serve(
        &store,
        RpcConfig {
            host: "0.0.0.0".into(),
            ..Default::default()
        },
    )
    .await;
    let (status, body) = post(open.clone(), true).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("rpc.users"),
        "{body}"
    );
    let overview: Value = serde_json::from_slice(
        &http
            .get(format!("{open}/ui/api/overview"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(overview["actions"], json!(false));
    // on loopback: only with the page's header
    let local = serve(&store, RpcConfig::default()).await;
    let (status, body) = post(local.clone(), false).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        store.get_tasks(&[task.id]).await.unwrap()[0].status,
        TaskStatus::NextRunNotScheduled,
        "nothing changed"
    );
    let (status, body) = post(local.clone(), true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task"]["status"], json!("disabled"));
    assert_eq!(
        store.get_tasks(&[task.id]).await.unwrap()[0].status,
        TaskStatus::Disabled
    );
    // bad input is named
    let r = http
        .get(format!("{local}/ui/api/types/load-hg/due?cursor=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .get(format!("{local}/ui/api/types/no-such-type/due"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .get(format!("{local}/ui/api/tasks/abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}
