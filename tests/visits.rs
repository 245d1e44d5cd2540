//! The recurrent visit runner (`schedule-recurrent`) against a real redis-server: its Celery
//! messages, the queue limit, the weighted policies, and racing runners.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use serde_json::{Value, json};
use swh_scheduler::celery::BrokerNaming;
use swh_scheduler::celery::message::validate;
use swh_scheduler::model::{ListedOrigin, OriginVisitStats, TaskType, VisitPolicy};
use swh_scheduler::store::{BrokerLink, Store, VisitTarget};
use swh_scheduler::visit_runner::{VisitRunner, VisitRunnerConfig};

use common::RedisServer;

const LOADER: &str = "swh.loader.git.tasks.UpdateGitRepository";

async fn loader_type(store: &Store, visit_type: &str, mql: Option<i64>) {
    let mut t = TaskType::new(&format!("load-{visit_type}"), LOADER, "load");
    t.max_queue_length = mql;
    store.create_task_type(&t).await.unwrap();
}

/// Records `n` listings of `visit_type` (urls `https://f.example/<tag>/<i>`), with a known
/// `last_update` so that every policy can choose them.
async fn listed(store: &Store, visit_type: &str, tag: &str, n: usize) -> Vec<ListedOrigin> {
    let lister = store
        .get_or_create_lister("gitlab", Some("inria"))
        .await
        .unwrap();
    let origins: Vec<ListedOrigin> = (0..n)
        .map(|i| {
            let mut o = ListedOrigin::new(
                lister.id.as_deref().unwrap(),
                &format!("https://f.example/{tag}/{i}"),
                visit_type,
            );
            o.last_update = Some(t0() + TimeDelta::seconds(i as i64));
            o
        })
        .collect();
    for chunk in origins.chunks(1000) {
        store.record_listed_origins(chunk).await.unwrap();
    }
    origins
}

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn runner(store: &Store, f: impl FnOnce(&mut VisitRunnerConfig)) -> VisitRunner {
    let mut c = VisitRunnerConfig {
        origin: "swh-scheduler@test".into(),
        ..VisitRunnerConfig::default()
    };
    f(&mut c);
    VisitRunner::new(store.clone(), c)
}

fn queue(server: &RedisServer, db: u32, key: &str) -> Vec<Value> {
    server.messages(db, key)
}

fn rpop(server: &RedisServer, key: &str, n: usize) -> Vec<Value> {
    let mut con = server.client();
    let raw: Option<Vec<String>> = redis::cmd("RPOP").arg(key).arg(n).query(&mut con).unwrap();
    raw.unwrap_or_default()
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect()
}

/// The kwargs a message carries (its body is `[args, kwargs, embed]` as JSON text).
fn kwargs(msg: &Value) -> Value {
    let body: Value = serde_json::from_str(msg["body"].as_str().unwrap()).unwrap();
    assert_eq!(body[0], json!([]), "{msg}");
    body[1].clone()
}

#[tokio::test]
async fn visits_become_celery_messages_and_are_marked_scheduled() {
    let server = RedisServer::start();
    let store = server.store().await;
    loader_type(&store, "git", None).await;
    let lister = store
        .get_or_create_lister("gitlab", Some("inria"))
        .await
        .unwrap();
    let lid = lister.id.clone().unwrap();
    let urls = [
        "https://f.example/a.git",
        "https://f.example/\"quoted\"\\back/ü",
        "https://f.example/c.git",
    ];
    let mut origins = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let mut o = ListedOrigin::new(&lid, url, "git");
        o.last_update = Some(t0());
        if i == 0 {
            o.extra_loader_arguments = json!({"branch": "main", "deep": {"x": [1, null, "\"é"]}})
                .as_object()
                .unwrap()
                .clone();
        } else if i == 2 {
            // quotes and no backslash: the script's other escaping path
            o.extra_loader_arguments = json!({"branch": "dev"}).as_object().unwrap().clone();
        }
        origins.push(o);
    }
    store.record_listed_origins(&origins).await.unwrap();
    // another visit type with no load-hg task type: nothing is sent for it
    listed(&store, "hg", "hg", 2).await;

    let before = Utc::now();
    let sent = runner(&store, |_| {}).pass().await.unwrap();
    assert_eq!(sent, vec![("git".to_string(), 3)]);

    let msgs = queue(&server, 0, LOADER);
    assert_eq!(msgs.len(), 3);
    let mut ids = HashSet::new();
    let mut by_url = std::collections::HashMap::new();
    for m in &msgs {
        validate(m).unwrap_or_else(|e| panic!("{e}: {m}"));
        assert_eq!(m["headers"]["task"], json!(LOADER));
        assert_eq!(m["headers"]["origin"], json!("swh-scheduler@test"));
        assert_eq!(
            m["properties"]["delivery_info"]["routing_key"],
            json!(LOADER)
        );
        assert!(ids.insert(m["headers"]["id"].as_str().unwrap().to_string()));
        let kw = kwargs(m);
        assert_eq!(kw["lister_name"], json!("gitlab"), "{kw}");
        assert_eq!(kw["lister_instance_name"], json!("inria"), "{kw}");
        let repr: Value = serde_json::from_str(m["headers"]["kwargsrepr"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("kwargsrepr: {e}: {m}"));
        assert_eq!(repr, kw);
        by_url.insert(kw["url"].as_str().unwrap().to_string(), kw);
    }
    let mut got: Vec<&String> = by_url.keys().collect();
    got.sort();
    let mut want: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
    want.sort();
    assert_eq!(got, want.iter().collect::<Vec<_>>());
    let first = &by_url[urls[0]];
    assert_eq!(first["branch"], json!("main"));
    assert_eq!(first["deep"], json!({"x": [1, null, "\"é"]}));
    assert_eq!(
        by_url[urls[1]].as_object().unwrap().len(),
        3,
        "url and the lister's names only"
    );
    assert_eq!(by_url[urls[2]]["branch"], json!("dev"));

    // marked scheduled: the stats say when, and the next pass sends nothing
    let ids: Vec<(String, String)> = urls.iter().map(|u| (u.to_string(), "git".into())).collect();
    let stats = store.origin_visit_stats_get(&ids).await.unwrap();
    assert_eq!(stats.len(), 3);
    for s in &stats {
        let at = s.last_scheduled.expect("last_scheduled");
        assert!(
            at >= before - TimeDelta::seconds(1) && at <= Utc::now(),
            "{s:?}"
        );
    }
    assert_eq!(
        runner(&store, |_| {}).pass().await.unwrap(),
        vec![("git".to_string(), 0)]
    );
    assert_eq!(queue(&server, 0, LOADER).len(), 3);

    // past the cooldown, with no result since, they are sent again
    tokio::time::sleep(Duration::from_millis(50)).await;
    let again = runner(&store, |c| {
        c.scheduled_cooldown = TimeDelta::milliseconds(10);
    });
    assert_eq!(again.pass().await.unwrap(), vec![("git".to_string(), 3)]);
    assert_eq!(queue(&server, 0, LOADER).len(), 6);
}

#[tokio::test]
async fn the_queue_limit_is_kept_and_small_gaps_wait() {
    let server = RedisServer::start();
    let store = server.store().await;
    loader_type(&store, "git", Some(100)).await;
    listed(&store, "git", "q", 300).await;
    let r = runner(&store, |_| {});
    assert_eq!(r.pass().await.unwrap()[0].1, 100);
    assert_eq!(r.pass().await.unwrap()[0].1, 0, "the queue is full");

    // five free slots are 5% of 100: the original's runner waits for more
    assert_eq!(rpop(&server, LOADER, 5).len(), 5);
    assert_eq!(r.pass().await.unwrap()[0].1, 0);
    assert_eq!(rpop(&server, LOADER, 1).len(), 1);
    assert_eq!(r.pass().await.unwrap()[0].1, 6);
    assert_eq!(queue(&server, 0, LOADER).len(), 100);

    // messages waiting in the priority buckets count too
    let naming = BrokerNaming::default();
    let keys = naming.queue_keys(LOADER);
    assert!(keys.len() > 1, "{keys:?}");
    let moved = rpop(&server, LOADER, 50);
    let mut con = server.client();
    for m in &moved {
        let _: () = redis::cmd("LPUSH")
            .arg(&keys[1])
            .arg(m.to_string())
            .query(&mut con)
            .unwrap();
    }
    assert_eq!(r.pass().await.unwrap()[0].1, 0);
}

#[tokio::test]
async fn the_policies_share_the_slots_and_pass_on_what_they_cannot_fill() {
    let server = RedisServer::start();
    let store = server.store().await;
    loader_type(&store, "git", Some(100)).await;
    // 10 visited origins changed since (only `lag` and `osf` choose them), 60 never visited
    // with a known last update (`nv`, `osf`), 20 with no last update (`osf` only)
    let visited = listed(&store, "git", "visited", 10).await;
    let snapshot = Some(vec![7u8; 20]);
    let stats: Vec<OriginVisitStats> = visited
        .iter()
        .map(|o| OriginVisitStats {
            url: o.url.clone(),
            visit_type: "git".into(),
            last_eventful: Some(t0() - TimeDelta::days(1)),
            last_snapshot: snapshot.clone(),
            ..Default::default()
        })
        .collect();
    store.origin_visit_stats_upsert(&stats).await.unwrap();
    listed(&store, "git", "fresh", 60).await;
    let lister = store
        .get_or_create_lister("gitlab", Some("inria"))
        .await
        .unwrap();
    let unknown: Vec<ListedOrigin> = (0..20)
        .map(|i| {
            ListedOrigin::new(
                lister.id.as_deref().unwrap(),
                &format!("https://f.example/unknown/{i}"),
                "git",
            )
        })
        .collect();
    store.record_listed_origins(&unknown).await.unwrap();

    let keys = BrokerNaming::default().queue_keys(LOADER);
    let listers = store.visit_lister_fields().await.unwrap();
    let policies = [
        (VisitPolicy::AlreadyVisitedOrderByLag, 40),
        (VisitPolicy::NeverVisitedOldestUpdateFirst, 40),
        (VisitPolicy::OldestScheduledFirst, 20),
    ];
    let sent = store
        .send_visits(&VisitTarget {
            now: None,
            visit_type_index: None,
            visit_type: "git",
            task_name: LOADER,
            queue_keys: &keys,
            queue: LOADER,
            max_queue_length: Some(100),
            origin: "test@here",
            broker: &BrokerLink::default(),
            policies: &policies,
            listers: &listers,
            scheduled_cooldown: TimeDelta::days(7),
            failed_cooldown: None,
            not_found_cooldown: None,
            absolute_cooldown: None,
        })
        .await
        .unwrap();
    // lag fills 10 of its 40; nv gets its 40 plus those 30 and finds 60; osf takes what
    // is left of the 100 slots, and finds the 20 no other policy chooses
    assert_eq!(sent.sent, 90, "{sent:?}");
    assert_eq!(sent.waiting, 0);
    assert_eq!(sent.by_policy, vec![10, 60, 20]);
    let urls: HashSet<String> = queue(&server, 0, LOADER)
        .iter()
        .map(|m| kwargs(m)["url"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(urls.len(), 90);

    // a mix with no weight sends nothing
    let none = store
        .send_visits(&VisitTarget {
            now: None,
            visit_type_index: None,
            policies: &[(VisitPolicy::OldestScheduledFirst, 0)],
            listers: &listers,
            scheduled_cooldown: TimeDelta::zero(),
            visit_type: "git",
            task_name: LOADER,
            queue_keys: &keys,
            queue: LOADER,
            max_queue_length: None,
            origin: "test@here",
            broker: &BrokerLink::default(),
            failed_cooldown: None,
            not_found_cooldown: None,
            absolute_cooldown: None,
        })
        .await
        .unwrap();
    assert_eq!(none.sent, 0);
}

#[tokio::test]
async fn a_separate_broker_database_gets_the_messages() {
    let server = RedisServer::start();
    let store = server.store().await;
    loader_type(&store, "git", None).await;
    listed(&store, "git", "db", 4).await;
    let r = runner(&store, |c| {
        c.broker = BrokerLink::SameServer { db: Some(5) }
    });
    assert_eq!(r.pass().await.unwrap()[0].1, 4);
    assert_eq!(queue(&server, 5, LOADER).len(), 4);
    assert_eq!(queue(&server, 0, LOADER).len(), 0);
    // and the store is still the one written (the script went back to its database)
    assert_eq!(store.visit_types().await.unwrap(), vec!["git".to_string()]);
}

#[tokio::test]
async fn a_broker_on_another_server_gets_the_visits_through_the_outbox() {
    let server = RedisServer::start();
    let broker = RedisServer::start();
    let store = server.store().await;
    loader_type(&store, "git", Some(10)).await;
    listed(&store, "git", "remote", 15).await;
    let link = BrokerLink::new(&server.url(), Some(&broker.url())).unwrap();
    let r = runner(&store, |c| c.broker = link.clone());
    assert_eq!(r.pass().await.unwrap()[0].1, 10);
    let urls: HashSet<String> = queue(&broker, 0, LOADER)
        .iter()
        .map(|m| kwargs(m)["url"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(urls.len(), 10);
    assert_eq!(queue(&server, 0, LOADER).len(), 0);
    let outbox = store.visit_outbox("git", LOADER);
    let mut con = server.client();
    let left: usize = redis::cmd("LLEN")
        .arg(&outbox.list)
        .query(&mut con)
        .unwrap();
    assert_eq!(left, 0);
    // the broker's queue is full: nothing more is sent
    assert_eq!(r.pass().await.unwrap()[0].1, 0);
    let figures = store.visit_figures("git").await.unwrap();
    assert_eq!(
        (figures.outbox_forwarded, figures.outbox_recovered),
        (10, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_runners_send_each_origin_once() {
    let server = RedisServer::start();
    let store = server.store().await;
    loader_type(&store, "git", Some(200)).await;
    listed(&store, "git", "race", 3000).await;

    // four runners passing every few ms while a consumer drains the queue
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut handles = Vec::new();
    for _ in 0..4 {
        let r = runner(&store, |c| c.period = Duration::from_millis(5));
        let mut rx = rx.clone();
        handles.push(tokio::spawn(async move {
            r.run(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
            .unwrap()
        }));
    }
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 3000 && std::time::Instant::now() < deadline {
        let got = rpop(&server, LOADER, 37);
        if got.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        seen.extend(
            got.iter()
                .map(|m| kwargs(m)["url"].as_str().unwrap().to_string()),
        );
    }
    // a little longer: a duplicate would show up now
    tokio::time::sleep(Duration::from_millis(200)).await;
    seen.extend(
        rpop(&server, LOADER, 1000)
            .iter()
            .map(|m| kwargs(m)["url"].as_str().unwrap().to_string()),
    );
    tx.send(true).unwrap();
    for h in handles {
        h.await.unwrap();
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 3000, "sent {} visits", seen.len());
    assert_eq!(unique.len(), 3000);
}

/// Four `schedule-recurrent` processes racing on 100,000 eligible origins with a queue limit,
/// a worker draining the queue between races: each origin sent exactly once, and the queue
/// never above its limit.
#[tokio::test(flavor = "multi_thread")]
async fn four_schedule_recurrent_processes_race_without_duplicates_or_overflow() {
    let server = RedisServer::start();
    let store = server.store().await;
    loader_type(&store, "git", Some(20_000)).await;
    let n = 100_000;
    listed(&store, "git", "p", n).await;
    let race = || server.race(&["schedule-recurrent"], LOADER, 20_000);
    race();
    let mut urls: Vec<String> = Vec::new();
    loop {
        let drained = rpop(&server, LOADER, 100_000);
        urls.extend(
            drained
                .iter()
                .map(|m| kwargs(m)["url"].as_str().unwrap().to_string()),
        );
        if race() == 0 {
            break;
        }
    }
    let unique: HashSet<&String> = urls.iter().collect();
    assert_eq!(urls.len(), n, "every origin sent once");
    assert_eq!(unique.len(), n);
}

mod results {
    use super::*;
    use swh_scheduler::model::ids::parse_visit_id;
    use swh_scheduler::model::{VisitOutcome, VisitStatus};

    /// The (visit-type index, origin id) of each url sent, from the messages' task ids.
    fn sent_ids(server: &RedisServer) -> std::collections::HashMap<String, (u32, i64)> {
        queue(server, 0, LOADER)
            .iter()
            .map(|m| {
                let (vt, origin, _) =
                    parse_visit_id(m["headers"]["id"].as_str().unwrap()).expect("a visit id");
                (kwargs(m)["url"].as_str().unwrap().to_string(), (vt, origin))
            })
            .collect()
    }

    fn at(hours: i64) -> DateTime<Utc> {
        t0() + TimeDelta::days(365) + TimeDelta::hours(hours)
    }

    async fn stats(store: &Store, url: &str) -> OriginVisitStats {
        store
            .origin_visit_stats_get(&[(url.to_string(), "git".into())])
            .await
            .unwrap()
            .pop()
            .unwrap()
    }

    /// The original journal client's rules, on results arriving in and out of order.
    #[tokio::test]
    async fn results_update_the_stats_as_the_journal_client_does() {
        let server = RedisServer::start();
        let store = server.store().await;
        loader_type(&store, "git", None).await;
        let origins = listed(&store, "git", "r", 3).await;
        assert_eq!(runner(&store, |_| {}).pass().await.unwrap()[0].1, 3);
        let ids = sent_ids(&server);
        let (a, b, c) = (&origins[0].url, &origins[1].url, &origins[2].url);
        let outcome = |url: &str, status, snapshot: Option<u8>, date| {
            let (visit_type_index, origin_id) = ids[url];
            VisitOutcome {
                visit_type_index,
                origin_id,
                status,
                snapshot: snapshot.map(|s| vec![s; 20]),
                date: Some(date),
                sent_ms: None,
            }
        };
        use VisitStatus::*;
        let apply = async |o: &[VisitOutcome]| {
            store
                .apply_visit_outcomes(o, &Default::default())
                .await
                .unwrap()
        };
        let scheduled = stats(&store, a).await.last_scheduled;

        assert_eq!(apply(&[outcome(a, Eventful, Some(1), at(1))]).await, 1);
        let s = stats(&store, a).await;
        assert_eq!(
            (s.last_eventful, s.last_snapshot.clone()),
            (Some(at(1)), Some(vec![1; 20]))
        );
        assert_eq!(s.last_scheduled, scheduled, "kept");
        // the same result again changes nothing
        assert_eq!(apply(&[outcome(a, Eventful, Some(1), at(1))]).await, 0);
        // the same snapshot later: uneventful
        apply(&[outcome(a, Uneventful, Some(1), at(3))]).await;
        assert_eq!(stats(&store, a).await.last_uneventful, Some(at(3)));
        // the same snapshot from an earlier visit arriving late: it was eventful earlier
        apply(&[outcome(a, Eventful, Some(1), at(0))]).await;
        let s = stats(&store, a).await;
        assert_eq!(
            (s.last_eventful, s.last_uneventful),
            (Some(at(0)), Some(at(3)))
        );
        // another snapshot from before the last success is ignored; after it, it is eventful
        assert_eq!(apply(&[outcome(a, Eventful, Some(2), at(2))]).await, 0);
        apply(&[outcome(a, Eventful, Some(2), at(4))]).await;
        let s = stats(&store, a).await;
        assert_eq!(
            (s.last_eventful, s.last_snapshot),
            (Some(at(4)), Some(vec![2; 20]))
        );

        // failures and not-found never move their date backwards; several results of one
        // origin in one batch apply in order
        apply(&[
            outcome(b, Failed, None, at(5)),
            outcome(b, Failed, None, at(2)),
            outcome(b, NotFound, None, at(6)),
        ])
        .await;
        let s = stats(&store, b).await;
        assert_eq!((s.last_failed, s.last_notfound), (Some(at(5)), Some(at(6))));
        assert_eq!((s.last_eventful, s.last_snapshot), (None, None));

        // a success naming no snapshot: its date only
        apply(&[outcome(c, Eventful, None, at(7))]).await;
        let s = stats(&store, c).await;
        assert_eq!((s.last_eventful, s.last_snapshot), (Some(at(7)), None));

        // a visit type index this store never gave: skipped
        let mut stray = outcome(c, Failed, None, at(8));
        stray.visit_type_index = 4000;
        assert_eq!(apply(&[stray]).await, 0);
        assert_eq!(stats(&store, c).await.last_failed, None);
    }

    /// Later versions' rules, when configured: an origin is disabled after N failed or
    /// not-found results in a row (a success in between starts the count again; a repeated
    /// result does not count), or after a success for a visit type listed in
    /// stop_after_success; listing it again enables it again.
    #[tokio::test]
    async fn later_versions_rules_disable_origins_when_asked() {
        use swh_scheduler::model::VisitRules;
        let server = RedisServer::start();
        let store = server.store().await;
        loader_type(&store, "git", None).await;
        let origins = listed(&store, "git", "d", 3).await;
        runner(&store, |_| {}).pass().await.unwrap();
        let ids = sent_ids(&server);
        let outcome = |url: &str, status, hours| {
            let (visit_type_index, origin_id) = ids[url];
            VisitOutcome {
                visit_type_index,
                origin_id,
                status,
                snapshot: Some(vec![5; 20]).filter(|_| status == VisitStatus::Eventful),
                date: Some(at(hours)),
                sent_ms: None,
            }
        };
        let enabled = async |url: &str| {
            let lister = store
                .get_or_create_lister("gitlab", Some("inria"))
                .await
                .unwrap();
            let page = store
                .get_listed_origins(lister.id.as_deref(), Some(url), 10, None)
                .await
                .unwrap();
            page.results[0].enabled
        };
        use VisitStatus::*;
        let rules = VisitRules {
            disable_after_failures: Some(3),
            stop_after_success: vec![],
        };
        let (a, b) = (&origins[0].url, &origins[1].url);
        // a: failed, not found, (the same again), a success, then three failures
        for (status, h) in [(Failed, 1), (NotFound, 2), (NotFound, 2), (Eventful, 3)] {
            store
                .apply_visit_outcomes(&[outcome(a, status, h)], &rules)
                .await
                .unwrap();
        }
        assert!(enabled(a).await);
        for h in [4, 5] {
            store
                .apply_visit_outcomes(&[outcome(a, Failed, h)], &rules)
                .await
                .unwrap();
        }
        assert!(enabled(a).await, "two in a row");
        store
            .apply_visit_outcomes(&[outcome(a, NotFound, 6)], &rules)
            .await
            .unwrap();
        assert!(!enabled(a).await, "three in a row");
        // off by default: b fails five times and stays
        for h in 1..=5 {
            store
                .apply_visit_outcomes(&[outcome(b, Failed, h)], &Default::default())
                .await
                .unwrap();
        }
        assert!(enabled(b).await);
        // stop_after_success
        let c = &origins[2].url;
        let once = VisitRules {
            disable_after_failures: None,
            stop_after_success: vec!["git".into()],
        };
        store
            .apply_visit_outcomes(&[outcome(c, Eventful, 1)], &once)
            .await
            .unwrap();
        assert!(!enabled(c).await);
        // a disabled origin is not sent; the lister listing it again enables it
        tokio::time::sleep(Duration::from_millis(20)).await;
        let again = runner(&store, |c| {
            c.scheduled_cooldown = TimeDelta::milliseconds(1)
        });
        let sent: HashSet<String> = {
            again.pass().await.unwrap();
            let q = queue(&server, 0, LOADER);
            // newest first (LPUSH): the first pass's three are at the end
            q[..q.len() - 3]
                .iter()
                .map(|m| kwargs(m)["url"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(sent, HashSet::from([b.clone()]));
        listed(&store, "git", "d", 3).await;
        assert!(enabled(a).await && enabled(c).await);
    }

    /// Later versions' cooldowns, when configured: after a failed visit, after a not-found
    /// one, and after any sending.
    #[tokio::test]
    async fn later_versions_cooldowns_hold_origins_back_when_asked() {
        let server = RedisServer::start();
        let store = server.store().await;
        loader_type(&store, "git", None).await;
        let origins = listed(&store, "git", "c", 3).await;
        let osf = |c: &mut VisitRunnerConfig| {
            c.policies
                .insert("git".into(), vec![(VisitPolicy::OldestScheduledFirst, 1)]);
        };
        runner(&store, osf).pass().await.unwrap();
        let ids = sent_ids(&server);
        // a failed, b not found, c eventful: all have a result, so all are eligible again
        let results: Vec<VisitOutcome> = origins
            .iter()
            .zip([
                VisitStatus::Failed,
                VisitStatus::NotFound,
                VisitStatus::Eventful,
            ])
            .map(|(o, status)| {
                let (visit_type_index, origin_id) = ids[&o.url];
                VisitOutcome {
                    visit_type_index,
                    origin_id,
                    status,
                    snapshot: Some(vec![1; 20]).filter(|_| status == VisitStatus::Eventful),
                    date: None,
                    sent_ms: None,
                }
            })
            .collect();
        store
            .apply_visit_outcomes(&results, &Default::default())
            .await
            .unwrap();
        async fn sent_now(server: &RedisServer, r: VisitRunner) -> Vec<String> {
            let before = queue(server, 0, LOADER).len();
            r.pass().await.unwrap();
            let q = queue(server, 0, LOADER);
            let mut urls: Vec<String> = q[..q.len() - before]
                .iter()
                .map(|m| kwargs(m)["url"].as_str().unwrap().to_string())
                .collect();
            urls.sort();
            urls
        }
        let day = Some(TimeDelta::days(1));
        // the absolute cooldown holds all three back (each pass marks what it sends, so the
        // passes go from the strictest to the loosest)
        let all = sent_now(
            &server,
            runner(&store, |c| {
                osf(c);
                c.absolute_cooldown = day;
            }),
        )
        .await;
        assert!(all.is_empty(), "{all:?}");
        let sent = sent_now(
            &server,
            runner(&store, |c| {
                osf(c);
                c.failed_cooldown = day;
                c.not_found_cooldown = day;
            }),
        )
        .await;
        assert_eq!(sent, vec![origins[2].url.clone()], "only the eventful one");
        let sent = sent_now(
            &server,
            runner(&store, |c| {
                osf(c);
                c.not_found_cooldown = day;
            }),
        )
        .await;
        assert_eq!(sent, vec![origins[0].url.clone()], "the failed one, now");
    }

    /// The listener's sweep marks failed the visits with no result within the lost-run
    /// bound, not those with a result, and, while the loader's queue holds messages, only
    /// past lost_scheduled_after; a lost visit is not sent again before the scheduled
    /// cooldown.
    #[tokio::test]
    async fn visits_with_no_result_are_failed_by_the_sweep() {
        use swh_scheduler::listener::{Listener, ListenerConfig};
        let server = RedisServer::start();
        let store = server.store().await;
        loader_type(&store, "git", None).await;
        let origins = listed(&store, "git", "l", 3).await;
        runner(&store, |_| {}).pass().await.unwrap();
        let ids = sent_ids(&server);
        let (visit_type_index, origin_id) = ids[&origins[0].url];
        store
            .apply_visit_outcomes(
                &[VisitOutcome {
                    visit_type_index,
                    origin_id,
                    status: VisitStatus::Eventful,
                    snapshot: Some(vec![1; 20]),
                    date: None,
                    sent_ms: None,
                }],
                &Default::default(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut config = ListenerConfig::new(&server.url());
        config.lost_after = Duration::from_millis(10);
        config.lost_scheduled_after = Some(Duration::from_secs(3600));
        let listener = Listener::new(store.clone(), config);
        // the three messages still wait in the queue: not lost yet
        assert_eq!(listener.sweep_visits().await.unwrap(), 0);
        let _: () = redis::cmd("DEL")
            .arg(LOADER)
            .query(&mut server.client())
            .unwrap();
        assert_eq!(listener.sweep_visits().await.unwrap(), 2);
        assert_eq!(listener.sweep_visits().await.unwrap(), 0, "once");
        let first = stats(&store, &origins[0].url).await;
        assert!(first.last_failed.is_none() && first.last_eventful.is_some());
        // a lost mark after a result changes nothing (the sweep's check is in the script)
        let late = VisitOutcome {
            visit_type_index,
            origin_id,
            status: VisitStatus::Lost,
            snapshot: None,
            date: Some(Utc::now()),
            sent_ms: None,
        };
        assert_eq!(
            store
                .apply_visit_outcomes(&[late], &Default::default())
                .await
                .unwrap(),
            0
        );
        // failed at their sending, and still waiting: a visit still queued could yet run
        for o in &origins[1..] {
            let s = stats(&store, &o.url).await;
            assert_eq!(s.last_failed, s.last_scheduled, "{s:?}");
        }
        runner(&store, |_| {}).pass().await.unwrap();
        let resent: Vec<String> = queue(&server, 0, LOADER)
            .iter()
            .map(|m| kwargs(m)["url"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            resent,
            vec![origins[0].url.clone()],
            "only the one with a result"
        );
        let m = swh_scheduler::rpc::metrics::render(&store, &Default::default())
            .await
            .unwrap();
        assert!(
            m.contains("swh_scheduler_visit_results_total{visit_type=\"git\",status=\"lost\"} 2"),
            "{m}"
        );
    }

    /// A sent origin waits for its result (or the cooldown): once its result is in, the
    /// policies see it again.
    #[tokio::test]
    async fn a_result_ends_the_wait_of_a_sent_origin() {
        let server = RedisServer::start();
        let store = server.store().await;
        loader_type(&store, "git", None).await;
        let origins = listed(&store, "git", "w", 1).await;
        let only_osf = |c: &mut VisitRunnerConfig| {
            c.policies
                .insert("git".into(), vec![(VisitPolicy::OldestScheduledFirst, 1)]);
        };
        assert_eq!(runner(&store, only_osf).pass().await.unwrap()[0].1, 1);
        assert_eq!(runner(&store, only_osf).pass().await.unwrap()[0].1, 0);
        let (visit_type_index, origin_id) = sent_ids(&server)[&origins[0].url];
        let changed = store
            .apply_visit_outcomes(
                &[VisitOutcome {
                    visit_type_index,
                    origin_id,
                    status: VisitStatus::Uneventful,
                    snapshot: Some(vec![9; 20]),
                    date: None,
                    sent_ms: None,
                }],
                &Default::default(),
            )
            .await
            .unwrap();
        assert_eq!(changed, 1);
        assert_eq!(runner(&store, only_osf).pass().await.unwrap()[0].1, 1);

        // a worker whose clock is behind: its result, dated before the sending it answers,
        // still ends the wait (the task id names the sending)
        let msg = &queue(&server, 0, LOADER)[0];
        let (_, _, sent_ms) = parse_visit_id(msg["headers"]["id"].as_str().unwrap()).unwrap();
        let behind = VisitOutcome {
            visit_type_index,
            origin_id,
            status: VisitStatus::NotFound,
            snapshot: None,
            date: Some(Utc::now() - TimeDelta::seconds(30)),
            sent_ms: Some(sent_ms),
        };
        assert_eq!(runner(&store, only_osf).pass().await.unwrap()[0].1, 0);
        let mut stale = behind.clone();
        stale.sent_ms = Some(sent_ms - 1);
        store
            .apply_visit_outcomes(&[stale], &Default::default())
            .await
            .unwrap();
        assert_eq!(
            runner(&store, only_osf).pass().await.unwrap()[0].1,
            0,
            "an earlier sending's result, dated before this one, does not end the wait"
        );
        store
            .apply_visit_outcomes(&[behind], &Default::default())
            .await
            .unwrap();
        assert_eq!(runner(&store, only_osf).pass().await.unwrap()[0].1, 1);
    }
}

/// `/metrics` per visit type: eligible and waiting origins, the lag, and counters of visits
/// sent and of their results.
#[tokio::test]
async fn metrics_follow_the_visits_and_their_results() {
    use swh_scheduler::model::ids::parse_visit_id;
    use swh_scheduler::model::{VisitOutcome, VisitStatus};
    use swh_scheduler::rpc::metrics::{MetricsConfig, render};
    let server = RedisServer::start();
    let store = server.store().await;
    loader_type(&store, "git", None).await;
    listed(&store, "git", "m", 5).await;
    let value = |text: &str, line: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
    };
    let m = render(&store, &MetricsConfig::default()).await.unwrap();
    let g = |name: &str| format!("{name}{{visit_type=\"git\"}} ");
    assert_eq!(value(&m, &g("swh_scheduler_visit_origins_eligible")), 5.0);
    assert_eq!(value(&m, &g("swh_scheduler_visits_sent_total")), 0.0);

    assert_eq!(runner(&store, |_| {}).pass().await.unwrap()[0].1, 5);
    let outcomes: Vec<VisitOutcome> = queue(&server, 0, LOADER)[..2]
        .iter()
        .zip([VisitStatus::Eventful, VisitStatus::NotFound])
        .map(|(msg, status)| {
            let (visit_type_index, origin_id, _) =
                parse_visit_id(msg["headers"]["id"].as_str().unwrap()).unwrap();
            VisitOutcome {
                visit_type_index,
                origin_id,
                status,
                snapshot: Some(vec![3; 20]).filter(|_| status == VisitStatus::Eventful),
                date: None,
                sent_ms: None,
            }
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    store
        .apply_visit_outcomes(&outcomes, &Default::default())
        .await
        .unwrap();
    let m = render(&store, &MetricsConfig::default()).await.unwrap();
    assert_eq!(value(&m, &g("swh_scheduler_visits_sent_total")), 5.0);
    assert_eq!(value(&m, &g("swh_scheduler_visit_origins_eligible")), 2.0);
    assert_eq!(
        value(&m, &g("swh_scheduler_visit_origins_awaiting_result")),
        3.0
    );
    let lag = value(&m, &g("swh_scheduler_visit_oldest_eligible_sent_seconds"));
    assert!((0.02..60.0).contains(&lag), "{lag}");
    let r = |status: &str| {
        value(
            &m,
            &format!(
                "swh_scheduler_visit_results_total{{visit_type=\"git\",status=\"{status}\"}} "
            ),
        )
    };
    assert_eq!(
        (r("eventful"), r("not_found"), r("failed")),
        (1.0, 1.0, 0.0)
    );
}
