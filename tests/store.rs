//! The store against a real redis-server, where the shared API suite (`tests/api.rs`) cannot
//! look: what a rejected call leaves in Redis, concurrency, run retention and script reloading.

mod common;

use std::collections::HashSet;

use chrono::Duration;
use serde_json::Map;
use swh_scheduler::Error;
use swh_scheduler::model::{Interval, NewTaskRun, Policy, RunStatus, Task, TaskType};
use swh_scheduler::store::RunEvent;

use common::RedisServer;
use common::fixtures::{fixture_types, git_type, t0, task};

/// Every key and value in the db, to compare the store before and after a rejected call.
fn dump(server: &RedisServer) -> Vec<(String, Vec<u8>)> {
    let mut con = server.client();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let v: Vec<u8> = redis::cmd("DUMP").arg(&k).query(&mut con).unwrap();
            (k, v)
        })
        .collect()
}

#[tokio::test]
async fn bad_task_types_are_rejected_naming_field_and_value() {
    let server = RedisServer::start();
    let store = server.store().await;
    let mut t = git_type();
    t.default_interval = Some(Interval::from_secs(-60));
    let e = store.create_task_type(&t).await.unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument { ref field, .. } if field == "default_interval"),
        "{e}"
    );
    assert!(e.to_string().contains("-1 day, 23:59:00"), "{e}");
    let mut t = git_type();
    t.task_type = "a{b}".into();
    assert!(
        store
            .create_task_type(&t)
            .await
            .unwrap_err()
            .to_string()
            .contains("a{b}")
    );
    let mut t = git_type();
    t.backoff_factor = Some(0.0);
    assert!(
        store
            .create_task_type(&t)
            .await
            .unwrap_err()
            .to_string()
            .contains("backoff_factor")
    );
    assert!(dump(&server).is_empty(), "nothing written");
}

#[tokio::test]
async fn rejected_batches_write_nothing() {
    let server = RedisServer::start();
    let store = server.store().await;
    fixture_types(&store).await;
    let mut no_interval = TaskType::new("oneshot-only", "x.y", "no interval");
    no_interval.max_queue_length = Some(10);
    store.create_task_type(&no_interval).await.unwrap();
    store
        .create_tasks(&[task("load-test-git", 1, t0())], Policy::Recurring)
        .await
        .unwrap();
    let before = dump(&server);

    let e = store
        .create_tasks(
            &[
                task("load-test-git", 2, t0()),
                task("no-such-type", 3, t0()),
            ],
            Policy::Recurring,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::UnknownTaskType(t) if t == "no-such-type"),
        "{e}"
    );

    let e = store
        .create_tasks(
            &[
                task("load-test-git", 2, t0()),
                task("oneshot-only", 3, t0()),
            ],
            Policy::Recurring,
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("oneshot-only") && e.to_string().contains("default_interval"),
        "{e}"
    );

    let mut neg = task("load-test-git", 4, t0());
    neg.retries_left = Some(-1);
    let e = store
        .create_tasks(&[task("load-test-git", 2, t0()), neg], Policy::Recurring)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("retries_left") && e.to_string().contains("-1"),
        "{e}"
    );

    let bad_run = NewTaskRun {
        task: 1 << 40 | 999,
        backend_id: "x".into(),
        scheduled: None,
        metadata: Some(Map::new()),
    };
    let e = store.mass_schedule_task_runs(&[bad_run]).await.unwrap_err();
    assert!(e.to_string().contains("task"), "{e}");
    assert_eq!(dump(&server), before, "store unchanged");

    // oneshot tasks of a type without interval are fine
    let mut one = task("oneshot-only", 1, t0());
    one.policy = Some(Policy::Oneshot);
    assert_eq!(
        store.create_tasks(&[one], Policy::Recurring).await.unwrap()[0].current_interval,
        None
    );
}

#[tokio::test]
async fn concurrent_grabbers_get_disjoint_tasks() {
    let server = RedisServer::start();
    let store = server.store().await;
    fixture_types(&store).await;
    let n = 5000;
    let inputs: Vec<_> = (0..n)
        .map(|i| task("load-test-git", i, t0() - Duration::seconds(i % 7)))
        .collect();
    let made = store
        .create_tasks(&inputs, Policy::Recurring)
        .await
        .unwrap();
    assert_eq!(made.len(), n as usize);
    let mut handles = Vec::new();
    for _ in 0..8 {
        let s = server.store().await;
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .grab_ready_tasks("load-test-git", None, Some(37))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|t| t.id));
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), n as usize, "every task grabbed once");
    assert_eq!(unique, made.iter().map(|t| t.id).collect());
}

#[tokio::test]
async fn runs_beyond_the_kept_number_are_dropped_oldest_first() {
    let server = RedisServer::start();
    let store = server.store_with(|c| c.keep_runs = 2).await;
    fixture_types(&store).await;
    let a = store
        .create_tasks(&[task("swh-test-ping", 1, t0())], Policy::Recurring)
        .await
        .unwrap()[0]
        .id;
    for i in 0..5 {
        let bid = format!("r{i}");
        store.schedule_task_run(a, &bid, None, None).await.unwrap();
        if i != 1 {
            store
                .end_task_run(&bid, RunStatus::Uneventful, None, None)
                .await
                .unwrap();
        }
    }
    let kept: Vec<String> = store
        .get_task_runs(&[a], None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.backend_id)
        .collect();
    // r1 never ended, so it is kept although it is older; the others make room
    assert_eq!(kept, ["r1", "r4"]);
    // dropped runs are gone from the fallback index too
    let mut con = server.client();
    let indexed: Vec<String> = redis::cmd("HKEYS")
        .arg("swh:{global}:backend_ids")
        .query(&mut con)
        .unwrap();
    let indexed: HashSet<String> = indexed.into_iter().collect();
    assert_eq!(
        indexed,
        ["r1", "r4"].into_iter().map(String::from).collect()
    );
    assert_eq!(
        store
            .end_task_run("r0", RunStatus::Eventful, None, None)
            .await
            .unwrap(),
        None
    );
}

/// The listener's reconciliation pages through the in-flight runs by the entries it read: an
/// entry whose run is gone does not end the listing early.
#[tokio::test]
async fn in_flight_runs_are_all_listed_past_a_stale_entry() {
    let server = RedisServer::start();
    let store = server.store().await;
    fixture_types(&store).await;
    let a = store
        .create_tasks(&[task("swh-test-ping", 1, t0())], Policy::Recurring)
        .await
        .unwrap()[0]
        .id;
    let runs: Vec<NewTaskRun> = (0..1500)
        .map(|i| NewTaskRun {
            task: a,
            backend_id: format!("f{i}"),
            scheduled: Some(t0()),
            metadata: None,
        })
        .collect();
    store.mass_schedule_task_runs(&runs).await.unwrap();
    // an entry first in line (score 0) naming no run
    let mut con = server.client();
    let _: i64 = redis::cmd("ZADD")
        .arg("swh:{swh-test-ping}:inflight")
        .arg(0)
        .arg(99_999_999)
        .query(&mut con)
        .unwrap();
    let listed = store.inflight_runs("swh-test-ping").await.unwrap();
    assert_eq!(listed.len(), 1500);
    let distinct: HashSet<i64> = listed.iter().map(|r| r.id).collect();
    assert_eq!(distinct.len(), 1500, "no run listed twice");
}

/// A run for each task, scheduled at `at`, backend ids r0, r1, …
fn a_run_each(tasks: &[Task], at: chrono::DateTime<chrono::Utc>) -> Vec<NewTaskRun> {
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| NewTaskRun {
            task: t.id,
            backend_id: format!("r{i}"),
            scheduled: Some(at),
            metadata: None,
        })
        .collect()
}

/// The open runs of a type, as the type hash counts them.
fn runs_open(server: &RedisServer, task_type: &str) -> Option<i64> {
    redis::cmd("HGET")
        .arg(format!("swh:{{{task_type}}}:type"))
        .arg("runs_open")
        .query(&mut server.client())
        .unwrap()
}

/// Runs created together are in flight as ranges, which starting and ending leave alone: the
/// sweep reads their records, marks lost only the silent ones, puts back one by one the runs
/// still open, and the listing and the count see only open runs.
#[tokio::test]
async fn runs_in_flight_as_ranges_are_swept_listed_and_counted() {
    let server = RedisServer::start();
    let store = server.store().await;
    fixture_types(&store).await;
    let ty = "swh-test-ping";
    let inputs: Vec<_> = (0..2500).map(|i| task(ty, i, t0())).collect();
    let made = store
        .create_tasks(&inputs, Policy::Recurring)
        .await
        .unwrap();
    let two_days_ago = chrono::Utc::now() - Duration::days(2);
    store
        .mass_schedule_task_runs(&a_run_each(&made, two_days_ago))
        .await
        .unwrap();
    assert_eq!(runs_open(&server, ty), Some(2500));
    let entries = || -> i64 {
        redis::cmd("ZCARD")
            .arg(format!("swh:{{{ty}}}:inflight"))
            .query(&mut server.client())
            .unwrap()
    };
    assert!(entries() <= 10, "ranges, not a run each: {}", entries());

    // 1000 end, 500 started two days ago, 250 started now, 750 still scheduled
    let event = |i: usize, end: Option<RunStatus>, at| RunEvent {
        backend_id: format!("r{i}"),
        end_status: end,
        metadata: None,
        timestamp: at,
    };
    let mut events: Vec<RunEvent> = (0..1000)
        .map(|i| event(i, Some(RunStatus::Eventful), None))
        .collect();
    events.extend((1000..1500).map(|i| event(i, None, Some(two_days_ago))));
    events.extend((1500..1750).map(|i| event(i, None, None)));
    store.apply_run_events(&events, false).await.unwrap();
    assert_eq!(runs_open(&server, ty), Some(1500));
    assert_eq!(store.inflight_runs(ty).await.unwrap().len(), 1500);

    let day = std::time::Duration::from_secs(86_400);
    let lost = store.sweep_lost_runs(ty, day, true).await.unwrap();
    assert_eq!(
        lost, 500,
        "the runs started two days ago; the scheduled ones kept"
    );
    assert_eq!(runs_open(&server, ty), Some(1000));
    assert_eq!(entries(), 1000, "the open runs, one by one");
    let listed = store.inflight_runs(ty).await.unwrap();
    assert_eq!(listed.len(), 1000);
    assert_eq!(
        listed
            .iter()
            .filter(|r| r.status == RunStatus::Scheduled)
            .count(),
        750
    );
    // a sweep again keeps the scheduled ones again, and ends
    assert_eq!(store.sweep_lost_runs(ty, day, true).await.unwrap(), 0);
    assert_eq!(store.sweep_lost_runs(ty, day, false).await.unwrap(), 750);
    assert_eq!(runs_open(&server, ty), Some(250));
    let listed = store.inflight_runs(ty).await.unwrap();
    assert_eq!(listed.len(), 250);
    assert!(listed.iter().all(|r| r.status == RunStatus::Started));
    let ids: Vec<i64> = made.iter().map(|t| t.id).collect();
    let all = store.get_task_runs(&ids, None).await.unwrap();
    let count = |s: RunStatus| all.iter().filter(|r| r.status == s).count();
    assert_eq!(
        (count(RunStatus::Eventful), count(RunStatus::Lost)),
        (1000, 1250)
    );
}

/// A store written before the count of open runs had an in-flight entry for each open run
/// alone: the first script that changes the count starts it from them.
#[tokio::test]
async fn the_count_of_open_runs_starts_from_an_older_stores_entries() {
    let server = RedisServer::start();
    let store = server.store().await;
    fixture_types(&store).await;
    let ty = "swh-test-ping";
    let made = store
        .create_tasks(
            &(0..3).map(|i| task(ty, i, t0())).collect::<Vec<_>>(),
            Policy::Recurring,
        )
        .await
        .unwrap();
    store
        .mass_schedule_task_runs(&a_run_each(&made, t0()))
        .await
        .unwrap();
    // as the older store had them: a run an entry, no count
    let seqs: Vec<i64> = store
        .inflight_runs(ty)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id & 0xFF_FFFF_FFFF)
        .collect();
    let mut con = server.client();
    let key = format!("swh:{{{ty}}}:inflight");
    let _: () = redis::cmd("DEL").arg(&key).query(&mut con).unwrap();
    for s in &seqs {
        let _: () = redis::cmd("ZADD")
            .arg(&key)
            .arg(1)
            .arg(s)
            .query(&mut con)
            .unwrap();
    }
    let _: () = redis::cmd("HDEL")
        .arg(format!("swh:{{{ty}}}:type"))
        .arg("runs_open")
        .query(&mut con)
        .unwrap();
    store
        .end_task_run("r0", RunStatus::Eventful, None, None)
        .await
        .unwrap();
    assert_eq!(runs_open(&server, ty), Some(2));
    assert_eq!(store.inflight_runs(ty).await.unwrap().len(), 2);
}

#[tokio::test]
async fn scripts_still_work_after_script_flush_and_keys_share_a_slot() {
    let server = RedisServer::start();
    let store = server.store().await;
    fixture_types(&store).await;
    let mut con = server.client();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
    let made = store
        .create_tasks(&[task("load-test-git", 1, t0())], Policy::Recurring)
        .await
        .unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
    // a pipelined path (get_tasks runs one call per type in a pipeline)
    assert_eq!(store.get_tasks(&[made[0].id]).await.unwrap(), made);
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
    store
        .schedule_task_run(made[0].id, "x", None, None)
        .await
        .unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
    assert!(
        store
            .end_task_run("x", RunStatus::Eventful, None, None)
            .await
            .unwrap()
            .is_some()
    );

    // every key of a type hashes to the type's slot
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("swh:{load-test-git}*")
        .query(&mut con)
        .unwrap();
    assert!(keys.len() >= 4, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("swh:{load-test-git}:")),
        "{keys:?}"
    );
}

/// `get_tasks` of 100,000 ids of a type index that does not exist looks the index up once, not
/// once per id (bounded work per request).
#[tokio::test]
async fn ids_of_an_unknown_type_cost_one_lookup() {
    let server = RedisServer::start();
    let store = server.store().await;
    let hgets = |server: &RedisServer| -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut server.client())
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_hget:calls="))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let before = hgets(&server);
    let ids: Vec<i64> = (0..100_000).map(|i| (77i64 << 40) + i).collect();
    assert!(store.get_tasks(&ids).await.unwrap().is_empty());
    assert!(
        hgets(&server) - before <= 2,
        "{} lookups",
        hgets(&server) - before
    );
}

/// A scheduled run is left alone while its queue holds messages (it may be one of them), but
/// not forever: past the hard bound it is lost all the same (it used to stay open for good on
/// a busy queue).
#[tokio::test]
async fn scheduled_runs_on_a_busy_queue_are_lost_past_the_bound() {
    let server = RedisServer::start();
    let store = server.store().await;
    fixture_types(&store).await;
    let made = store
        .create_tasks(&[task("load-test-git", 1, t0())], Policy::Recurring)
        .await
        .unwrap();
    let three_days_ago = chrono::Utc::now() - Duration::days(3);
    store
        .schedule_task_run(made[0].id, "old-run", None, Some(three_days_ago))
        .await
        .unwrap();
    let day = std::time::Duration::from_secs(86_400);
    let kept = store
        .sweep_lost_runs_within("load-test-git", day, true, Some(day * 4))
        .await
        .unwrap();
    assert_eq!(kept, 0, "within the bound: kept for the busy queue");
    let lost = store
        .sweep_lost_runs_within("load-test-git", day, true, Some(day * 2))
        .await
        .unwrap();
    assert_eq!(lost, 1, "past the bound: lost");
    let runs = store.get_task_runs(&[made[0].id], None).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Lost);
}

/// Two urls whose 8-byte hashes are the same (the url index files the second in its collision
/// hash): recorded in one call and found again by later ones, in any order, as two origins.
/// The store's own hash (xxh3) is never seen to collide, so the test gives record_origins
/// the same hash for both directly.
#[tokio::test]
async fn urls_of_the_same_hash_are_two_origins() {
    use swh_scheduler::store::scripts::{Call, ScriptName};
    let server = RedisServer::start();
    let store = server.store().await;
    let lister = store.get_or_create_lister("github", None).await.unwrap();
    let id = lister.id.clone().unwrap();
    let mut con = server.client();
    // the lister's index: field <index> -> its id (beside a "seq" counter)
    let index: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg("swh:{global}:lister_idx")
        .query(&mut con)
        .unwrap();
    let lidx: u16 = index
        .iter()
        .find(|(_, v)| **v == id)
        .unwrap()
        .0
        .parse()
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("swh:{global}:visit_types")
        .arg("git")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg(format!("swh:{{global}}:lister_visit_types:{lidx}"))
        .arg("git")
        .query(&mut con)
        .unwrap();
    // a listing entry as lua/includes/origin.lua stores it: '>HBi7i7i7H', then the extra text
    let entry = |upd_us: i64, now: i64| {
        let mut e = lidx.to_be_bytes().to_vec();
        e.push(3); // enabled, with a last_update
        for v in [upd_us, now, now] {
            e.extend_from_slice(&v.to_be_bytes()[1..]);
        }
        e.extend_from_slice(&0u16.to_be_bytes());
        e
    };
    let same = [0x5au8; 8];
    let t0 = 1_600_000_000_000_000i64;
    let mut acon = store.con().await.unwrap();
    let record = |urls: &[&str], upd: i64, now: i64| {
        let mut call = Call::new(ScriptName::RecordOrigins, &["swh:{vt:git}:meta"]);
        let order: Vec<u8> = (0..urls.len() as u16)
            .flat_map(|i| i.to_be_bytes())
            .collect();
        call.arg(now).arg(order);
        for u in urls {
            call.arg(*u).arg(&same[..]).arg(entry(upd, now));
        }
        call
    };
    let a = "https://example.com/a";
    let b = "https://example.com/b";
    let c = "https://example.com/c";
    record(&[a, b], t0, t0).run(&mut acon).await.unwrap();
    // found again, in the other order and with a new last_update: still two origins
    let got = record(&[b, a], t0 + 5, t0 + 10)
        .run(&mut acon)
        .await
        .unwrap();
    assert_eq!(got, redis::Value::Array(vec![redis::Value::Int(t0); 2]));
    // a third url of that hash, alone
    record(&[c], t0, t0 + 20).run(&mut acon).await.unwrap();
    let page = store
        .get_listed_origins(Some(&id), None, 10, None)
        .await
        .unwrap();
    let seen: Vec<_> = page
        .results
        .iter()
        .map(|o| (o.url.as_str(), o.last_update.unwrap().timestamp_micros()))
        .collect();
    assert_eq!(seen, [(a, t0 + 5), (b, t0 + 5), (c, t0)]);
    let m = store.update_metrics(Some(&id), None).await.unwrap();
    assert_eq!((m[0].origins_known, m[0].origins_enabled), (3, 3));
}
