//! The cases of the shared API suite, each a function of `&dyn SchedulerApi` (the original's
//! `TestScheduler`): `tests/api.rs` runs them against the store and through the RPC server.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::future::BoxFuture;
use serde_json::{Map, json};
use swh_scheduler::api::SchedulerApi;
use swh_scheduler::model::{
    GrabOptions, Interval, ListedOrigin, Lister, NewTaskRun, OriginVisitStats, Policy, Priority,
    RunStatus, TaskSearch, TaskStatus,
};

use crate::common::fixtures::{fixture_types, git_type, kwargs, t0, task};

/// A case of the suite.
pub type Case = for<'a> fn(&'a dyn SchedulerApi) -> BoxFuture<'a, ()>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, by name.
        pub const CASES: &[(&str, Case)] = &[$((stringify!($name), |api| Box::pin($name(api)))),*];
    };
}

cases![
    listed_origins_are_recorded_by_upsert,
    listed_origins_are_paged_by_lister_then_url,
    grab_next_visits_follows_the_three_policies,
    grab_next_visits_takes_later_versions_options,
    grabs_at_any_timestamp_follow_the_rule,
    concurrent_grabs_never_return_an_origin_twice,
    visit_stats_are_coalesced,
    metrics_count_as_the_original,
    relisting_with_a_new_last_update_moves_origins_in_policies_and_metrics,
    listers_are_created_once_and_updated_by_compare_and_set,
    task_types_are_created_once_and_read_back,
    calls_naming_what_is_unknown_fail_as_the_callers_mistake,
    create_tasks_applies_the_originals_defaults,
    create_tasks_dedups_as_the_original,
    peek_and_grab_serve_due_tasks_oldest_first,
    set_status_moves_tasks_in_and_out_of_the_ready_set,
    search_tasks_filters_like_the_original,
    runs_are_scheduled_started_ended_and_listed,
    archival_lists_finished_tasks_runs_and_deletes_them,
];

pub async fn create_tasks_applies_the_originals_defaults(store: &dyn SchedulerApi) {
    fixture_types(store).await;
    let mut explicit = task("load-test-git", 2, t0());
    explicit.retries_left = Some(2);
    let mut oneshot = task("swh-test-ping", 3, t0());
    oneshot.policy = Some(Policy::Oneshot);
    let mut prio = task("swh-test-ping", 4, t0());
    prio.priority = Some(Priority::High);
    let mut now = task("swh-test-ping", 5, t0());
    now.next_run = None;
    let before = Utc::now();
    let created = store
        .create_tasks(
            &[task("load-test-git", 1, t0()), explicit, oneshot, prio, now],
            Policy::Recurring,
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 5);
    let git = &created[0];
    assert_eq!(git.current_interval, Some(Interval::from_days(64)));
    assert_eq!(git.retries_left, 7, "num_retries of the type");
    assert_eq!(git.status, TaskStatus::NextRunNotScheduled);
    assert_eq!(git.policy, Policy::Recurring);
    assert_eq!(git.next_run, t0());
    assert_eq!(git.arguments.args, vec![json!(1)]);
    assert_eq!(
        git.arguments.kwargs,
        kwargs(json!({"url": "https://example.com/1.git"}))
    );
    assert_eq!(created[1].retries_left, 2, "given retries_left wins");
    assert_eq!(created[2].policy, Policy::Oneshot);
    assert_eq!(
        created[2].current_interval,
        Some(Interval::from_days(1)),
        "forced even for oneshot"
    );
    assert_eq!(created[2].retries_left, 0, "no num_retries: 0");
    assert_eq!(created[3].priority, Some(Priority::High));
    assert!(
        created[4].next_run >= before - Duration::seconds(5),
        "next_run defaults to now"
    );
    // ids name their type
    assert_ne!(created[0].id >> 40, created[2].id >> 40);
    assert_eq!(
        store
            .get_tasks(&created.iter().map(|t| t.id).collect::<Vec<_>>())
            .await
            .unwrap(),
        created
    );

    // the policy argument only fills in missing policies
    let made = store
        .create_tasks(&[task("swh-test-ping", 9, t0())], Policy::Oneshot)
        .await
        .unwrap();
    assert_eq!(made[0].policy, Policy::Oneshot);
}

pub async fn create_tasks_dedups_as_the_original(store: &dyn SchedulerApi) {
    fixture_types(store).await;
    let first = store
        .create_tasks(&[task("load-test-git", 1, t0())], Policy::Recurring)
        .await
        .unwrap();

    // same type, args, policy, priority, status, next_run: the same task comes back
    let again = store
        .create_tasks(&[task("load-test-git", 1, t0())], Policy::Recurring)
        .await
        .unwrap();
    assert_eq!(again, first);

    // a recurring duplicate with another next_run is not inserted: the existing task is
    // returned, as the original's create_tasks returns it
    let later = store
        .create_tasks(
            &[task("load-test-git", 1, t0() + Duration::days(1))],
            Policy::Recurring,
        )
        .await
        .unwrap();
    assert_eq!(later, first);

    // duplicates inside one batch give one task, returned once
    let batch = store
        .create_tasks(
            &[
                task("load-test-git", 7, t0()),
                task("load-test-git", 7, t0()),
            ],
            Policy::Recurring,
        )
        .await
        .unwrap();
    assert_eq!(batch.len(), 1);
    // the same arguments with another priority or status, then again, in one batch: three
    // tasks, each repeat found behind the others of its arguments
    let mut low = task("load-test-git", 8, t0());
    low.priority = Some(Priority::Low);
    let plain = task("load-test-git", 8, t0());
    let mut off = task("load-test-git", 8, t0());
    off.status = TaskStatus::Disabled;
    let batch = store
        .create_tasks(
            &[low.clone(), plain.clone(), off.clone(), off, plain, low],
            Policy::Recurring,
        )
        .await
        .unwrap();
    assert_eq!(batch.len(), 3, "{batch:?}");
    assert_eq!(
        batch.iter().map(|t| t.id).collect::<HashSet<_>>().len(),
        3,
        "{batch:?}"
    );

    // another priority, status or type is another task
    let mut prio = task("load-test-git", 1, t0());
    prio.priority = Some(Priority::Low);
    let mut disabled = task("load-test-git", 1, t0());
    disabled.status = TaskStatus::Disabled;
    let other_type = task("swh-test-ping", 1, t0());
    let made = store
        .create_tasks(&[prio, disabled, other_type], Policy::Recurring)
        .await
        .unwrap();
    let ids: HashSet<i64> = made
        .iter()
        .map(|t| t.id)
        .chain([first[0].id, batch[0].id])
        .collect();
    assert_eq!(ids.len(), 5);

    // oneshot tasks also compare next_run
    let mut one = task("swh-test-ping", 50, t0());
    one.policy = Some(Policy::Oneshot);
    let mut one_later = one.clone();
    one_later.next_run = Some(t0() + Duration::hours(1));
    let a = store
        .create_tasks(&[one.clone(), one_later], Policy::Recurring)
        .await
        .unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(
        store.create_tasks(&[one], Policy::Recurring).await.unwrap(),
        a[..1]
    );

    // a oneshot task moved to another next_run (respawned) is found at its new next_run, and
    // deleting it leaves no dedup entry behind
    let moved = t0() + Duration::days(9);
    store
        .set_status_tasks(
            &[a[0].id],
            TaskStatus::NextRunNotScheduled,
            Some(moved),
            false,
        )
        .await
        .unwrap();
    let mut at_new = task("swh-test-ping", 50, moved);
    at_new.policy = Some(Policy::Oneshot);
    assert_eq!(
        store
            .create_tasks(&[at_new], Policy::Recurring)
            .await
            .unwrap()[0]
            .id,
        a[0].id
    );

    // once the task moves on (grabbed: next_run_scheduled), an identical input is a new task,
    // as in the original where status is part of the comparison
    store
        .grab_ready_tasks("load-test-git", Some(t0()), None)
        .await
        .unwrap();
    let fresh = store
        .create_tasks(&[task("load-test-git", 1, t0())], Policy::Recurring)
        .await
        .unwrap();
    assert_eq!(fresh.len(), 1);
    assert_ne!(fresh[0].id, first[0].id);
    // ... and dedup then finds the new one
    let again = store
        .create_tasks(&[task("load-test-git", 1, t0())], Policy::Recurring)
        .await
        .unwrap();
    assert_eq!(again, fresh);
}

pub async fn peek_and_grab_serve_due_tasks_oldest_first(store: &dyn SchedulerApi) {
    fixture_types(store).await;
    // ids 1..=6; next_runs t0+2h, t0+1h, t0, t0, t0+3h, t0-1h
    let offsets = [2, 1, 0, 0, 3, -1];
    let inputs: Vec<_> = offsets
        .iter()
        .enumerate()
        .map(|(i, h)| task("load-test-git", i as i64, t0() + Duration::hours(*h)))
        .collect();
    let made = store
        .create_tasks(&inputs, Policy::Recurring)
        .await
        .unwrap();
    let mut prio = task("load-test-git", 100, t0() - Duration::hours(5));
    prio.priority = Some(Priority::Normal);
    let prio = store
        .create_tasks(&[prio], Policy::Recurring)
        .await
        .unwrap();

    let ids = |v: Vec<swh_scheduler::model::Task>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let want = |idx: &[usize]| idx.iter().map(|&i| made[i].id).collect::<Vec<_>>();
    // inclusive bound, by next_run then id, no priority tasks
    let peek = ids(store
        .peek_ready_tasks("load-test-git", Some(t0() + Duration::hours(1)), None)
        .await
        .unwrap());
    assert_eq!(peek, want(&[5, 2, 3, 1]));
    let peek = ids(store
        .peek_ready_tasks("load-test-git", Some(t0() + Duration::hours(9)), Some(2))
        .await
        .unwrap());
    assert_eq!(peek, want(&[5, 2]));
    assert!(
        store
            .peek_ready_tasks("load-test-git", Some(t0() - Duration::hours(2)), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .peek_ready_tasks("no-such-type", None, None)
            .await
            .unwrap()
            .is_empty()
    );
    // peeking twice gives the same
    assert_eq!(
        ids(store
            .peek_ready_tasks("load-test-git", Some(t0()), None)
            .await
            .unwrap()),
        want(&[5, 2, 3])
    );

    let grabbed = store
        .grab_ready_tasks("load-test-git", Some(t0()), Some(2))
        .await
        .unwrap();
    assert!(
        grabbed
            .iter()
            .all(|t| t.status == TaskStatus::NextRunScheduled)
    );
    assert_eq!(ids(grabbed), want(&[5, 2]));
    assert_eq!(
        ids(store
            .grab_ready_tasks("load-test-git", Some(t0()), None)
            .await
            .unwrap()),
        want(&[3])
    );
    let stored = store.get_tasks(&want(&[5, 2, 3])).await.unwrap();
    assert!(
        stored
            .iter()
            .all(|t| t.status == TaskStatus::NextRunScheduled)
    );

    // priority tasks only through the priority calls
    let p = ids(store
        .peek_ready_priority_tasks("load-test-git", Some(t0()), None)
        .await
        .unwrap());
    assert_eq!(p, vec![prio[0].id]);
    let p = store
        .grab_ready_priority_tasks("load-test-git", None, Some(10))
        .await
        .unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].status, TaskStatus::NextRunScheduled);
    assert!(
        store
            .peek_ready_priority_tasks("load-test-git", None, None)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn set_status_moves_tasks_in_and_out_of_the_ready_set(store: &dyn SchedulerApi) {
    fixture_types(store).await;
    let made = store
        .create_tasks(
            &[
                task("load-test-git", 1, t0()),
                task("load-test-git", 2, t0()),
            ],
            Policy::Recurring,
        )
        .await
        .unwrap();
    let (a, b) = (made[0].id, made[1].id);
    store.disable_tasks(&[a, 12345]).await.unwrap(); // unknown ids are skipped
    let ready = store
        .peek_ready_tasks("load-test-git", Some(t0()), None)
        .await
        .unwrap();
    assert_eq!(ready.iter().map(|t| t.id).collect::<Vec<_>>(), vec![b]);
    assert_eq!(
        store.get_tasks(&[a]).await.unwrap()[0].status,
        TaskStatus::Disabled
    );

    let later = t0() + Duration::days(3);
    store
        .set_status_tasks(&[a], TaskStatus::NextRunNotScheduled, Some(later), false)
        .await
        .unwrap();
    let got = &store.get_tasks(&[a]).await.unwrap()[0];
    assert_eq!(
        (got.status, got.next_run),
        (TaskStatus::NextRunNotScheduled, later)
    );
    assert!(
        store
            .peek_ready_tasks("load-test-git", Some(t0()), None)
            .await
            .unwrap()
            .iter()
            .all(|t| t.id != a)
    );
    assert_eq!(
        store
            .peek_ready_tasks("load-test-git", Some(later), None)
            .await
            .unwrap()
            .len(),
        2
    );
    store
        .set_status_tasks(&[], TaskStatus::Disabled, None, false)
        .await
        .unwrap();

    // except_completed_tasks: only tasks not completed and with next_run in the past
    let mut one = task("swh-test-ping", 1, t0());
    one.policy = Some(Policy::Oneshot);
    let future = task("swh-test-ping", 2, Utc::now() + Duration::days(1));
    let past = task("swh-test-ping", 3, t0());
    let m = store
        .create_tasks(&[one, future, past], Policy::Recurring)
        .await
        .unwrap();
    store
        .set_status_tasks(&[m[0].id], TaskStatus::Completed, None, false)
        .await
        .unwrap();
    let ids: Vec<i64> = m.iter().map(|t| t.id).collect();
    store
        .set_status_tasks(&ids, TaskStatus::NextRunScheduled, None, true)
        .await
        .unwrap();
    let st: Vec<TaskStatus> = store
        .get_tasks(&ids)
        .await
        .unwrap()
        .iter()
        .map(|t| t.status)
        .collect();
    assert_eq!(
        st,
        [
            TaskStatus::Completed,
            TaskStatus::NextRunNotScheduled,
            TaskStatus::NextRunScheduled
        ]
    );
}

pub async fn search_tasks_filters_like_the_original(store: &dyn SchedulerApi) {
    fixture_types(store).await;
    let mut inputs: Vec<_> = (0..300)
        .map(|i| task("load-test-git", i, t0() + Duration::hours(i)))
        .collect();
    let mut p = task("swh-test-ping", 1, t0());
    p.priority = Some(Priority::High);
    let mut o = task("swh-test-ping", 2, t0());
    o.policy = Some(Policy::Oneshot);
    inputs.push(p);
    inputs.push(o);
    let made = store
        .create_tasks(&inputs, Policy::Recurring)
        .await
        .unwrap();
    store
        .disable_tasks(&[made[5].id, made[250].id])
        .await
        .unwrap();

    let all = store.search_tasks(&TaskSearch::default()).await.unwrap();
    assert_eq!(all.len(), 302);
    let s = |f: TaskSearch| async move {
        store
            .search_tasks(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        s(TaskSearch {
            statuses: vec![TaskStatus::Disabled],
            ..Default::default()
        })
        .await,
        vec![made[5].id, made[250].id]
    );
    assert_eq!(
        s(TaskSearch {
            task_types: vec!["swh-test-ping".into()],
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    assert_eq!(
        s(TaskSearch {
            priorities: vec![Priority::High],
            ..Default::default()
        })
        .await,
        vec![made[300].id]
    );
    assert_eq!(
        s(TaskSearch {
            policies: vec![Policy::Oneshot],
            ..Default::default()
        })
        .await,
        vec![made[301].id]
    );
    let window = TaskSearch {
        task_types: vec!["load-test-git".into()],
        after: Some(t0() + Duration::hours(10)),
        before: Some(t0() + Duration::hours(12)),
        ..Default::default()
    };
    assert_eq!(s(window).await, vec![made[10].id, made[11].id, made[12].id]);
    assert_eq!(
        s(TaskSearch {
            limit: Some(130),
            ..Default::default()
        })
        .await
        .len(),
        130
    );
    assert_eq!(
        s(TaskSearch {
            task_ids: vec![made[3].id, made[301].id],
            task_types: vec!["swh-test-ping".into()],
            ..Default::default()
        })
        .await,
        vec![made[301].id]
    );
    assert!(
        s(TaskSearch {
            task_types: vec!["nope".into()],
            ..Default::default()
        })
        .await
        .is_empty()
    );
}

pub async fn runs_are_scheduled_started_ended_and_listed(store: &dyn SchedulerApi) {
    fixture_types(store).await;
    let made = store
        .create_tasks(
            &[
                task("load-test-git", 1, t0()),
                task("load-test-git", 2, t0()),
            ],
            Policy::Recurring,
        )
        .await
        .unwrap();
    let (a, b) = (made[0].id, made[1].id);
    let run = store
        .schedule_task_run(a, "bid-1", Some(kwargs(json!({"k": 1}))), Some(t0()))
        .await
        .unwrap();
    assert_eq!(
        (run.task, run.backend_id.as_str(), run.status, run.scheduled),
        (a, "bid-1", RunStatus::Scheduled, Some(t0()))
    );
    assert_eq!(run.metadata, Some(kwargs(json!({"k": 1}))));
    assert_eq!(
        store.get_tasks(&[a]).await.unwrap()[0].status,
        TaskStatus::NextRunNotScheduled,
        "task untouched"
    );

    store
        .mass_schedule_task_runs(&[
            NewTaskRun {
                task: b,
                backend_id: "bid-2".into(),
                scheduled: Some(t0()),
                metadata: Some(Map::new()),
            },
            NewTaskRun {
                task: a,
                backend_id: "bid-3".into(),
                scheduled: None,
                metadata: None,
            },
        ])
        .await
        .unwrap();
    // a run recorded without metadata has none (the original's NULL)
    let bid3 = store.get_task_runs(&[a], None).await.unwrap();
    let bid3 = bid3.iter().find(|r| r.backend_id == "bid-3").unwrap();
    assert_eq!(bid3.metadata, None);

    let started = store
        .start_task_run(
            "bid-1",
            Some(kwargs(json!({"worker": "w1@vm"}))),
            Some(t0() + Duration::minutes(1)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.status, RunStatus::Started);
    assert_eq!(started.started, Some(t0() + Duration::minutes(1)));
    assert_eq!(
        started.metadata,
        Some(kwargs(json!({"k": 1, "worker": "w1@vm"}))),
        "shallow merge"
    );

    let ended = store
        .end_task_run(
            "bid-1",
            RunStatus::Eventful,
            Some(kwargs(json!({"k": 2}))),
            Some(t0() + Duration::minutes(2)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.status, RunStatus::Eventful);
    assert_eq!(ended.ended, Some(t0() + Duration::minutes(2)));
    assert_eq!(
        ended.metadata,
        Some(kwargs(json!({"k": 2, "worker": "w1@vm"})))
    );

    assert_eq!(
        store.start_task_run("nope", None, None).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .end_task_run("nope", RunStatus::Failed, None, None)
            .await
            .unwrap(),
        None
    );

    let runs = store.get_task_runs(&[a, b], None).await.unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r.backend_id.as_str())
            .collect::<Vec<_>>(),
        ["bid-1", "bid-2", "bid-3"]
    );
    assert_eq!(
        store.get_task_runs(&[a, b], Some(2)).await.unwrap().len(),
        2
    );
    assert!(store.get_task_runs(&[], None).await.unwrap().is_empty());

    // one backend id on two runs: both start, the first is returned
    store
        .schedule_task_run(b, "shared", None, None)
        .await
        .unwrap();
    store
        .schedule_task_run(a, "shared", None, None)
        .await
        .unwrap();
    store
        .start_task_run("shared", None, None)
        .await
        .unwrap()
        .unwrap();
    let shared: Vec<_> = store
        .get_task_runs(&[a, b], None)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.backend_id == "shared")
        .collect();
    assert_eq!(shared.len(), 2);
    assert!(shared.iter().all(|r| r.status == RunStatus::Started));
}

pub async fn archival_lists_finished_tasks_runs_and_deletes_them(store: &dyn SchedulerApi) {
    fixture_types(store).await;
    let mut inputs = Vec::new();
    for i in 0..4 {
        let mut t = task("swh-test-ping", i, t0());
        t.policy = Some(Policy::Oneshot);
        inputs.push(t);
    }
    inputs.push(task("swh-test-ping", 10, t0())); // recurring
    let made = store
        .create_tasks(&inputs, Policy::Recurring)
        .await
        .unwrap();
    for (i, t) in made.iter().enumerate() {
        let bid = format!("b{i}");
        store
            .schedule_task_run(t.id, &bid, None, Some(t0() + Duration::minutes(i as i64)))
            .await
            .unwrap();
        store
            .start_task_run(&bid, None, Some(t0() + Duration::minutes(i as i64)))
            .await
            .unwrap();
        store
            .end_task_run(
                &bid,
                RunStatus::Eventful,
                None,
                Some(t0() + Duration::hours(1)),
            )
            .await
            .unwrap();
    }
    // task 3 ran twice; its second run is outside the window
    store
        .schedule_task_run(made[3].id, "late", None, Some(t0() + Duration::days(5)))
        .await
        .unwrap();
    store.disable_tasks(&[made[4].id]).await.unwrap();

    let after = t0() - Duration::hours(1);
    let before = t0() + Duration::hours(2);
    let page = store
        .filter_task_to_archive(after, before, 3, None)
        .await
        .unwrap();
    let got: Vec<(i64, String)> = page
        .rows
        .iter()
        .map(|r| (r.task.id, r.run.backend_id.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (made[0].id, "b0".into()),
            (made[1].id, "b1".into()),
            (made[2].id, "b2".into())
        ]
    );
    assert_eq!(page.next_page_token, Some(made[3].id.to_string()));
    let page2 = store
        .filter_task_to_archive(after, before, 3, page.next_page_token.as_deref())
        .await
        .unwrap();
    let got: Vec<(i64, String)> = page2
        .rows
        .iter()
        .map(|r| (r.task.id, r.run.backend_id.clone()))
        .collect();
    assert_eq!(
        got,
        vec![(made[3].id, "b3".into()), (made[4].id, "b4".into())]
    );
    assert_eq!(page2.next_page_token, None);
    assert_eq!(page2.rows[1].task.status, TaskStatus::Disabled);

    // delete: tasks whose runs are all gone go too
    let items: Vec<(i64, i64)> = page
        .rows
        .iter()
        .chain(&page2.rows)
        .map(|r| (r.task.id, r.run.id))
        .collect();
    store.delete_archived_tasks(&items).await.unwrap();
    let left: Vec<i64> = store
        .get_tasks(&made.iter().map(|t| t.id).collect::<Vec<_>>())
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(left, vec![made[3].id], "task 3 keeps its late run");
    assert!(
        store
            .filter_task_to_archive(after, before, 10, None)
            .await
            .unwrap()
            .rows
            .is_empty()
    );
    // a deleted oneshot task's arguments can be created again
    let mut again = task("swh-test-ping", 0, t0());
    again.policy = Some(Policy::Oneshot);
    let re = store
        .create_tasks(&[again], Policy::Recurring)
        .await
        .unwrap();
    assert_ne!(re[0].id, made[0].id);
}

pub async fn task_types_are_created_once_and_read_back(store: &dyn SchedulerApi) {
    assert_eq!(store.get_task_type("load-test-git").await.unwrap(), None);
    assert!(store.get_task_types().await.unwrap().is_empty());
    fixture_types(store).await;
    assert_eq!(
        store.get_task_type("load-test-git").await.unwrap(),
        Some(git_type())
    );

    // insert-or-ignore: a second create with other fields changes nothing
    let mut other = git_type();
    other.description = "changed".into();
    store.create_task_type(&other).await.unwrap();
    assert_eq!(
        store.get_task_type("load-test-git").await.unwrap(),
        Some(git_type())
    );

    let names: Vec<String> = store
        .get_task_types()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_type)
        .collect();
    assert_eq!(names, ["swh-test-ping", "load-test-git"]);
    let ping = store.get_task_type("swh-test-ping").await.unwrap().unwrap();
    assert_eq!(ping.max_queue_length, Some(1000), "the original's default");
    assert_eq!(ping.retry_delay, None);
    assert_eq!(store.get_task_type("no-such-type").await.unwrap(), None);
}

pub async fn calls_naming_what_is_unknown_fail_as_the_callers_mistake(store: &dyn SchedulerApi) {
    fixture_types(store).await;
    let e = store
        .create_tasks(
            &[task("load-test-git", 1, t0()), task("nope", 1, t0())],
            Policy::Recurring,
        )
        .await
        .unwrap_err();
    assert!(e.is_caller_error(), "{e}");
    assert!(e.to_string().contains("unknown task type \"nope\""), "{e}");
    assert!(
        store
            .search_tasks(&TaskSearch::default())
            .await
            .unwrap()
            .is_empty(),
        "a rejected batch writes nothing"
    );
    let mut bad = git_type();
    bad.task_type = "has space".into();
    let e = store.create_task_type(&bad).await.unwrap_err();
    assert!(
        e.is_caller_error() && e.to_string().contains("has space"),
        "{e}"
    );
    let e = store
        .schedule_task_run(12345, "b", None, None)
        .await
        .unwrap_err();
    assert!(
        e.is_caller_error() && e.to_string().contains("12345"),
        "{e}"
    );
    assert!(
        store
            .start_task_run("no-such-run", None, None)
            .await
            .unwrap()
            .is_none()
    );
    // a missing task of a known type among real ones: refused, and no run written, whether
    // the batch goes in one script call or in several
    let made = store
        .create_tasks(&[task("load-test-git", 2, t0())], Policy::Recurring)
        .await
        .unwrap();
    let real = made[0].id;
    let missing = real + 1_000_000;
    for batch in [2, 2500] {
        let runs: Vec<NewTaskRun> = (0..batch)
            .map(|i| NewTaskRun {
                task: if i == batch - 1 { missing } else { real },
                backend_id: format!("refused-{batch}-{i}"),
                scheduled: None,
                metadata: None,
            })
            .collect();
        let e = store.mass_schedule_task_runs(&runs).await.unwrap_err();
        assert!(
            e.is_caller_error() && e.to_string().contains(&missing.to_string()),
            "{e}"
        );
        assert!(
            store.get_task_runs(&[real], None).await.unwrap().is_empty(),
            "a refused batch of {batch} runs writes none"
        );
    }
}

/// The original's `test_get_or_create_lister`, `test_update_lister`, `test_get_listers`.
pub async fn listers_are_created_once_and_updated_by_compare_and_set(store: &dyn SchedulerApi) {
    assert!(store.get_listers().await.unwrap().is_empty());
    assert_eq!(store.get_lister("github", None).await.unwrap(), None);
    let a = store.get_or_create_lister("github", None).await.unwrap();
    assert_eq!((a.name.as_str(), a.instance_name.as_str()), ("github", ""));
    assert!(a.id.is_some() && a.created.is_some() && a.updated.is_some());
    assert_eq!(a.created, a.updated);
    assert!(a.current_state.is_empty());
    // a second call finds it; an empty instance name is the same lister
    assert_eq!(
        store
            .get_or_create_lister("github", Some(""))
            .await
            .unwrap(),
        a
    );
    assert_eq!(
        store.get_lister("github", None).await.unwrap(),
        Some(a.clone())
    );
    let b = store
        .get_or_create_lister("gitlab", Some("inria"))
        .await
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(store.get_lister("gitlab", None).await.unwrap(), None);
    assert_eq!(
        store.get_listers().await.unwrap(),
        vec![a.clone(), b.clone()],
        "creation order"
    );

    let mut changed = a.clone();
    changed.current_state = kwargs(json!({"last_page": 42, "nested": {"l": [1, 2.5, null]}}));
    let saved = store.update_lister(&changed).await.unwrap();
    assert!(saved.updated > a.updated, "updated strictly increases");
    assert_eq!(saved.current_state, changed.current_state);
    assert_eq!(
        store.get_lister("github", None).await.unwrap(),
        Some(saved.clone())
    );
    // the stale copy is refused, and nothing changes
    let e = store.update_lister(&changed).await.unwrap_err();
    assert!(e.to_string().contains("Stale data"), "{e}");
    assert!(e.is_caller_error(), "{e}");
    assert_eq!(
        store.get_lister("github", None).await.unwrap(),
        Some(saved.clone())
    );
    // an unknown lister is stale data too
    let mut ghost = saved.clone();
    ghost.id = Some("00000000-0000-4000-8000-000000000000".into());
    assert!(
        store
            .update_lister(&ghost)
            .await
            .unwrap_err()
            .to_string()
            .contains("Stale data")
    );
    // updating again from the saved copy works
    let again = store.update_lister(&saved).await.unwrap();
    assert!(again.updated > saved.updated);
    // bad names are refused, naming the field
    let e = store
        .get_or_create_lister(&"x".repeat(1000), None)
        .await
        .unwrap_err();
    assert!(e.is_caller_error() && e.to_string().contains("name"), "{e}");
}

// ---- the origin-visit half (the original's TestScheduler items, and what 0.16 got wrong) ----

fn june(us: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 6, 15, 16, 0, 0).unwrap() + Duration::microseconds(us)
}

fn jan(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(secs)
}

/// The original's `listed_origins_by_type` fixture: `n` origins of each visit type.
fn listed(lister: &Lister, visit_type: &str, n: usize, j: i64) -> Vec<ListedOrigin> {
    (0..n)
        .map(|i| {
            let mut o = ListedOrigin::new(
                lister.id.as_deref().unwrap(),
                &format!("https://{visit_type}.example.com/{i:04}"),
                visit_type,
            );
            o.last_update = Some(june(j * 1000 + i as i64));
            o
        })
        .collect()
}

fn stats(url: &str, visit_type: &str) -> OriginVisitStats {
    OriginVisitStats {
        url: url.into(),
        visit_type: visit_type.into(),
        ..Default::default()
    }
}

fn urls(v: &[ListedOrigin]) -> Vec<&str> {
    v.iter().map(|o| o.url.as_str()).collect()
}

pub async fn listed_origins_are_recorded_by_upsert(store: &dyn SchedulerApi) {
    let lister = store.get_or_create_lister("github", None).await.unwrap();
    let origins = listed(&lister, "git", 200, 0);
    let first = store.record_listed_origins(&origins[..100]).await.unwrap();
    assert_eq!(urls(&first), urls(&origins[..100]));
    assert!(
        first
            .iter()
            .all(|o| o.first_seen == o.last_seen && o.first_seen.is_some())
    );
    let all = store.record_listed_origins(&origins).await.unwrap();
    assert_eq!(all.len(), 200);
    let firsts: HashSet<_> = all.iter().map(|o| o.first_seen).collect();
    let lasts: HashSet<_> = all.iter().map(|o| o.last_seen).collect();
    assert_eq!(
        (firsts.len(), lasts.len()),
        (2, 1),
        "first_seen on insert only"
    );
    assert_eq!(all[0].last_update, origins[0].last_update);

    // re-listing an unchanged origin (most of a re-listing) refreshes its last_seen and its
    // extra arguments, and nothing else
    let find = |url: String| async move {
        store
            .get_listed_origins(None, Some(&url), 10, None)
            .await
            .unwrap()
            .results
    };
    let mut again = origins[5].clone();
    again.extra_loader_arguments = kwargs(json!({"branch": "c"}));
    let before = find(again.url.clone()).await;
    let got = store.record_listed_origins(&[again.clone()]).await.unwrap();
    let after = find(again.url.clone()).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].first_seen, before[0].first_seen);
    assert!(after[0].last_seen > before[0].last_seen);
    assert_eq!(got[0].last_seen, after[0].last_seen);
    assert_eq!(after[0].last_update, before[0].last_update);
    assert_eq!(
        after[0].extra_loader_arguments,
        kwargs(json!({"branch": "c"}))
    );

    // duplicates in one batch are merged, the last winning (0.16: a 500)
    let mut a = origins[0].clone();
    a.extra_loader_arguments = kwargs(json!({"branch": "a"}));
    let mut b = a.clone();
    b.extra_loader_arguments = kwargs(json!({"branch": "b"}));
    b.enabled = false;
    let got = store.record_listed_origins(&[a, b]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].extra_loader_arguments,
        kwargs(json!({"branch": "b"}))
    );
    assert!(!got[0].enabled);

    // a bad batch is refused whole, naming the field
    let mut bad = listed(&lister, "git", 3, 7);
    bad[2].url = format!("https://example.com/{}", "x".repeat(100_000));
    let e = store.record_listed_origins(&bad).await.unwrap_err();
    assert!(
        e.is_caller_error() && e.to_string().contains("listed_origins[2].url"),
        "{e}"
    );
    let mut bad = listed(&lister, "hg", 3, 7);
    bad[1].lister_id = "00000000-0000-4000-8000-000000000000".into();
    let e = store.record_listed_origins(&bad).await.unwrap_err();
    assert!(e.to_string().contains("listed_origins[1].lister_id"), "{e}");
    let page = store
        .get_listed_origins(None, None, 1000, None)
        .await
        .unwrap();
    assert_eq!(
        page.results.len(),
        200,
        "nothing of the refused batches was written"
    );
}

pub async fn listed_origins_are_paged_by_lister_then_url(store: &dyn SchedulerApi) {
    let lister = store.get_or_create_lister("github", None).await.unwrap();
    let id = lister.id.clone().unwrap();
    let origins = listed(&lister, "git", 20, 0);
    store.record_listed_origins(&origins).await.unwrap();
    for o in &origins[..3] {
        let p = store
            .get_listed_origins(Some(&id), Some(&o.url), 1000, None)
            .await
            .unwrap();
        assert_eq!(p.next_page_token, None);
        assert_eq!(urls(&p.results), [o.url.as_str()]);
    }
    // (num_origins, limit, calls): the original's parametrized cases; a full last page is
    // followed by an empty one, as in the original
    for (limit, calls) in [(6, 4), (42, 1), (20, 2)] {
        let (mut seen, mut token, mut n) = (Vec::new(), None, 0);
        loop {
            n += 1;
            let p = store
                .get_listed_origins(Some(&id), None, limit, token)
                .await
                .unwrap();
            seen.extend(p.results);
            token = p.next_page_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(n, calls, "limit {limit}");
        assert_eq!(urls(&seen), urls(&origins));
    }
    // two visit types of one url are never split by a page boundary (0.16 skipped one)
    let svn = listed(&lister, "svn", 20, 1)
        .into_iter()
        .zip(&origins)
        .map(|(mut o, g)| {
            o.url = g.url.clone();
            o
        })
        .collect::<Vec<_>>();
    store.record_listed_origins(&svn).await.unwrap();
    let (mut seen, mut token) = (Vec::new(), None);
    loop {
        let p = store
            .get_listed_origins(Some(&id), None, 5, token)
            .await
            .unwrap();
        assert!(!p.results.is_empty() || p.next_page_token.is_none());
        seen.extend(p.results);
        token = p.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 40, "every (url, visit type) once");
    let all = store
        .get_listed_origins(None, None, 1000, None)
        .await
        .unwrap();
    assert_eq!(all.results.len(), 40);
    assert_eq!(all.next_page_token, None);
    // an unknown lister has nothing
    let none = store
        .get_listed_origins(Some("00000000-0000-4000-8000-000000000000"), None, 10, None)
        .await
        .unwrap();
    assert!(none.results.is_empty());
}

/// The original's `_check_grab_next_visit`: exactly `expected`, in order; marked scheduled;
/// not again at once; all again a week later.
async fn check_grab(store: &dyn SchedulerApi, policy: &str, expected: &[ListedOrigin]) {
    let before = Utc::now();
    let opts = GrabOptions::default();
    let got = store
        .grab_next_visits("git", expected.len() + 1, policy, &opts)
        .await
        .unwrap();
    let after = Utc::now();
    assert_eq!(urls(&got), urls(expected), "{policy}");
    assert_eq!(got, expected, "{policy}: the stored rows");
    let ids: Vec<_> = expected
        .iter()
        .map(|o| (o.url.clone(), o.visit_type.clone()))
        .collect();
    let st = store.origin_visit_stats_get(&ids).await.unwrap();
    assert_eq!(st.len(), expected.len());
    for s in &st {
        let t = s.last_scheduled.unwrap();
        assert!(before - Duration::seconds(1) <= t && t <= after + Duration::seconds(1));
    }
    let again = store
        .grab_next_visits("git", expected.len() + 1, policy, &opts)
        .await
        .unwrap();
    assert!(again.is_empty(), "{policy}: already scheduled");
    let week = GrabOptions {
        timestamp: Some(after + Duration::days(7) + Duration::seconds(1)),
        ..Default::default()
    };
    let mut later = store
        .grab_next_visits("git", expected.len() + 1, policy, &week)
        .await
        .unwrap();
    later.sort_by(|a, b| a.url.cmp(&b.url));
    let mut want = expected.to_vec();
    want.sort_by(|a, b| a.url.cmp(&b.url));
    assert_eq!(
        urls(&later),
        urls(&want),
        "{policy}: eligible again a week later"
    );
}

pub async fn grab_next_visits_follows_the_three_policies(store: &dyn SchedulerApi) {
    let lister = store.get_or_create_lister("github", None).await.unwrap();
    let e = store
        .grab_next_visits("git", 5, "non_existing_policy", &GrabOptions::default())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("non_existing_policy") && e.is_caller_error(),
        "{e}"
    );

    // oldest_scheduled_first: never scheduled first, then the oldest last_scheduled
    let origins = store
        .record_listed_origins(&listed(&lister, "git", 100, 0))
        .await
        .unwrap();
    let sched: Vec<_> = origins[1..]
        .iter()
        .enumerate()
        .map(|(i, o)| OriginVisitStats {
            last_scheduled: Some(jan(-(i as i64))),
            ..stats(&o.url, "git")
        })
        .collect();
    store.origin_visit_stats_upsert(&sched).await.unwrap();
    let mut expected = vec![origins[0].clone()];
    expected.extend(origins[1..].iter().rev().cloned());
    check_grab(store, "oldest_scheduled_first", &expected).await;

    // never_visited_oldest_update_first, on fresh origins
    let fresh: Vec<_> = listed(&lister, "git", 100, 0)
        .into_iter()
        .enumerate()
        .map(|(i, mut o)| {
            o.url = format!("https://nv.example.com/{i:04}");
            o.last_update = Some(jan(-(i as i64)));
            o
        })
        .collect();
    let fresh = store.record_listed_origins(&fresh).await.unwrap();
    let mut expected = fresh.clone();
    expected.sort_by_key(|o| o.last_update);
    check_grab(store, "never_visited_oldest_update_first", &expected).await;

    // already_visited_order_by_lag: half visited at the middle date
    let lag: Vec<_> = listed(&lister, "git", 100, 0)
        .into_iter()
        .enumerate()
        .map(|(i, mut o)| {
            o.url = format!("https://lag.example.com/{i:04}");
            o.last_update = Some(jan(-(i as i64)));
            o
        })
        .collect();
    let lag = store.record_listed_origins(&lag).await.unwrap();
    let visit_date = lag[lag.len() / 2].last_update.unwrap();
    let visited: Vec<_> = lag.iter().step_by(2).cloned().collect();
    let st: Vec<_> = visited
        .iter()
        .map(|o| OriginVisitStats {
            last_snapshot: Some(vec![0xd8; 20]),
            last_eventful: Some(visit_date),
            ..stats(&o.url, "git")
        })
        .collect();
    store.origin_visit_stats_upsert(&st).await.unwrap();
    let mut expected: Vec<_> = visited
        .iter()
        .filter(|o| o.last_update.unwrap() > visit_date)
        .cloned()
        .collect();
    expected.sort_by_key(|o| visit_date - o.last_update.unwrap());
    check_grab(store, "already_visited_order_by_lag", &expected).await;

    // underflow: fewer than asked
    let few = listed(&lister, "hg", 5, 0);
    store.record_listed_origins(&few).await.unwrap();
    let got = store
        .grab_next_visits("hg", 7, "oldest_scheduled_first", &GrabOptions::default())
        .await
        .unwrap();
    assert_eq!(got.len(), 5);
    // a visit result after the grab makes the origin eligible again at once
    store
        .origin_visit_stats_upsert(&[OriginVisitStats {
            last_uneventful: Some(Utc::now() + Duration::seconds(5)),
            ..stats(&few[0].url, "hg")
        }])
        .await
        .unwrap();
    let opts = GrabOptions {
        timestamp: Some(Utc::now() + Duration::seconds(10)),
        ..Default::default()
    };
    let got = store
        .grab_next_visits("hg", 7, "oldest_scheduled_first", &opts)
        .await
        .unwrap();
    assert_eq!(urls(&got), [few[0].url.as_str()]);
}

/// Grabs whose timestamps go back in time, or that meet results dated after them, follow
/// 0.16's rule (eligible when never scheduled, or scheduled before max(timestamp - 7 days,
/// the latest result); last_scheduled = max(it, timestamp)) exactly as grabs at the present
/// time do (the store takes the head of its indexes for the latter, and checks each origin
/// for the former).
pub async fn grabs_at_any_timestamp_follow_the_rule(store: &dyn SchedulerApi) {
    let lister = store.get_or_create_lister("github", None).await.unwrap();
    let origins = store
        .record_listed_origins(&listed(&lister, "svn", 4, 0))
        .await
        .unwrap();
    let at = |days: i64| GrabOptions {
        timestamp: Some(jan(0) + Duration::days(days)),
        ..Default::default()
    };
    let osf = "oldest_scheduled_first";
    let grab = |n: usize, opts: GrabOptions| async move {
        let got = store.grab_next_visits("svn", n, osf, &opts).await.unwrap();
        got.iter().map(|o| o.url.clone()).collect::<Vec<_>>()
    };
    let last_scheduled = || async {
        let ids: Vec<_> = origins
            .iter()
            .map(|o| (o.url.clone(), "svn".to_string()))
            .collect();
        let mut st = store.origin_visit_stats_get(&ids).await.unwrap();
        st.sort_by(|a, b| a.url.cmp(&b.url));
        st.iter()
            .map(|s| s.last_scheduled.map(|t| (t - jan(0)).num_days()))
            .collect::<Vec<_>>()
    };
    assert_eq!(grab(1, at(20)).await, urls(&origins[..1]));
    // ten days earlier: the first was scheduled after that, the others not at all
    assert_eq!(grab(2, at(10)).await, urls(&origins[1..3]));
    assert_eq!(last_scheduled().await, [Some(20), Some(10), Some(10)]);
    // at day 12 nothing is due (the week since day 10 has not passed); at day 18 the two of
    // day 10 are, and keep day 18
    assert_eq!(grab(4, at(12)).await, urls(&origins[3..4]));
    assert!(grab(4, at(16)).await.is_empty());
    let mut again = grab(4, at(18)).await;
    again.sort();
    assert_eq!(again, urls(&origins[1..3]));
    // back to day 15: day 20 and day 18 are later, day 12 not a week before
    assert!(grab(4, at(15)).await.is_empty());
    // a result dated day 30 makes the first eligible at day 25 (after the one of day 12, a
    // week past), and being grabbed then (before its result) it stays eligible: it is not
    // waiting for anything; at day 26 the two of day 18 are due too, and come first
    store
        .origin_visit_stats_upsert(&[OriginVisitStats {
            last_eventful: Some(jan(0) + Duration::days(30)),
            last_snapshot: Some(vec![7; 20]),
            ..stats(&origins[0].url, "svn")
        }])
        .await
        .unwrap();
    assert_eq!(
        grab(4, at(25)).await,
        [origins[3].url.clone(), origins[0].url.clone()]
    );
    let day26 = grab(4, at(26)).await;
    assert_eq!(day26[2], origins[0].url);
    let mut first_two = day26[..2].to_vec();
    first_two.sort();
    assert_eq!(first_two, urls(&origins[1..3]));
    assert_eq!(
        last_scheduled().await,
        [Some(26), Some(26), Some(26), Some(25)]
    );
    // and the present time takes all of them, the first last (scheduled latest, its
    // result of day 30 being older than now)
    let now = grab(4, GrabOptions::default()).await;
    assert_eq!(now[0], origins[3].url);
    assert_eq!(now.len(), 4);
}

pub async fn grab_next_visits_takes_later_versions_options(store: &dyn SchedulerApi) {
    let gh = store.get_or_create_lister("github", None).await.unwrap();
    let gl = store
        .get_or_create_lister("gitlab", Some("inria"))
        .await
        .unwrap();
    let mine = listed(&gh, "git", 4, 0);
    store.record_listed_origins(&mine).await.unwrap();
    // the same urls listed by another lister: still one origin each (0.16: a 500)
    let theirs: Vec<_> = listed(&gl, "git", 6, 0);
    store.record_listed_origins(&theirs).await.unwrap();
    let now = Utc::now();
    let at = |t| GrabOptions {
        timestamp: Some(t),
        ..Default::default()
    };
    // dry run: chosen, nothing marked
    let dry = GrabOptions {
        dry_run: true,
        ..at(now)
    };
    let peek = store
        .grab_next_visits("git", 10, "oldest_scheduled_first", &dry)
        .await
        .unwrap();
    assert_eq!(peek.len(), 6, "each url once");
    assert!(
        store
            .origin_visit_stats_get(&[(mine[0].url.clone(), "git".into())])
            .await
            .unwrap()
            .is_empty()
    );
    // the lister filter
    let by_name = GrabOptions {
        lister_name: Some("gitlab".into()),
        lister_instance_name: Some("inria".into()),
        ..at(now)
    };
    let got = store
        .grab_next_visits("git", 2, "oldest_scheduled_first", &by_name)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|o| o.lister_id == gl.id.clone().unwrap()));
    let by_id = GrabOptions {
        lister_uuid: gh.id.clone(),
        ..at(now)
    };
    let got = store
        .grab_next_visits("git", 10, "oldest_scheduled_first", &by_id)
        .await
        .unwrap();
    assert_eq!(got.len(), 2, "the two gitlab took are not taken again");
    assert!(got.iter().all(|o| o.lister_id == gh.id.clone().unwrap()));
    // cooldowns: a failed visit an hour ago keeps the origin out while failed_cooldown lasts
    let url = theirs[5].url.clone();
    store
        .origin_visit_stats_upsert(&[OriginVisitStats {
            last_failed: Some(now - Duration::hours(1)),
            ..stats(&url, "git")
        }])
        .await
        .unwrap();
    let cooled = GrabOptions {
        failed_cooldown: Some(Duration::days(1)),
        ..at(now)
    };
    assert!(
        store
            .grab_next_visits("git", 10, "oldest_scheduled_first", &cooled)
            .await
            .unwrap()
            .iter()
            .all(|o| o.url != url)
    );
    let got = store
        .grab_next_visits("git", 10, "oldest_scheduled_first", &at(now))
        .await
        .unwrap();
    assert!(
        got.iter().any(|o| o.url == url),
        "without the cooldown: 0.16"
    );
    // absolute cooldown: scheduled at `now`, a result an hour later (so eligible again), but
    // not within 3 days of being scheduled
    let url = theirs[4].url.clone();
    store
        .origin_visit_stats_upsert(&[OriginVisitStats {
            last_eventful: Some(now + Duration::hours(1)),
            last_snapshot: Some(vec![1; 20]),
            ..stats(&url, "git")
        }])
        .await
        .unwrap();
    let abs = GrabOptions {
        absolute_cooldown: Some(Duration::days(3)),
        ..at(now + Duration::days(2))
    };
    assert!(
        store
            .grab_next_visits("git", 10, "oldest_scheduled_first", &abs)
            .await
            .unwrap()
            .is_empty()
    );
    let got = store
        .grab_next_visits(
            "git",
            10,
            "oldest_scheduled_first",
            &at(now + Duration::days(2)),
        )
        .await
        .unwrap();
    assert_eq!(urls(&got), [url.as_str()]);
}

pub async fn concurrent_grabs_never_return_an_origin_twice(store: &dyn SchedulerApi) {
    let lister = store.get_or_create_lister("github", None).await.unwrap();
    let origins = listed(&lister, "git", 1000, 0);
    store.record_listed_origins(&origins).await.unwrap();
    let grab = || async {
        let mut mine = Vec::new();
        loop {
            let got = store
                .grab_next_visits(
                    "git",
                    37,
                    "never_visited_oldest_update_first",
                    &GrabOptions::default(),
                )
                .await
                .unwrap();
            if got.is_empty() {
                return mine;
            }
            mine.extend(got.into_iter().map(|o| o.url));
        }
    };
    let all: Vec<String> = futures_util::future::join_all((0..6).map(|_| grab()))
        .await
        .into_iter()
        .flatten()
        .collect();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 1000);
    assert_eq!(unique.len(), 1000);
}

pub async fn visit_stats_are_coalesced(store: &dyn SchedulerApi) {
    assert!(store.origin_visit_stats_get(&[]).await.unwrap().is_empty());
    let (eventful, uneventful, failed, notfound) = (jan(1), jan(2), jan(3), jan(4));
    let first = OriginVisitStats {
        last_eventful: Some(eventful),
        last_scheduled: Some(jan(0)),
        ..stats("https://a", "git")
    };
    store
        .origin_visit_stats_upsert(std::slice::from_ref(&first))
        .await
        .unwrap();
    let key = vec![("https://a".to_string(), "git".to_string())];
    assert_eq!(store.origin_visit_stats_get(&key).await.unwrap(), [first]);
    // None never erases; last_scheduled is not taken on conflict
    store
        .origin_visit_stats_upsert(&[OriginVisitStats {
            last_uneventful: Some(uneventful),
            last_failed: Some(failed),
            last_notfound: Some(notfound),
            last_scheduled: Some(jan(99)),
            last_snapshot: Some(vec![0xab; 20]),
            ..stats("https://a", "git")
        }])
        .await
        .unwrap();
    let got = store.origin_visit_stats_get(&key).await.unwrap();
    assert_eq!(
        got,
        [OriginVisitStats {
            last_eventful: Some(eventful),
            last_uneventful: Some(uneventful),
            last_failed: Some(failed),
            last_notfound: Some(notfound),
            last_scheduled: Some(jan(0)),
            last_snapshot: Some(vec![0xab; 20]),
            ..stats("https://a", "git")
        }]
    );
    // a batch, and 101 keys read back with unknown ones dropped
    let batch: Vec<_> = (0..101)
        .map(|i| OriginVisitStats {
            last_eventful: Some(jan(i)),
            ..stats(
                &format!("https://b/{i}"),
                if i % 2 == 0 { "git" } else { "svn" },
            )
        })
        .collect();
    store.origin_visit_stats_upsert(&batch).await.unwrap();
    let mut ids: Vec<_> = batch
        .iter()
        .map(|s| (s.url.clone(), s.visit_type.clone()))
        .collect();
    ids.push(("https://nope".into(), "git".into()));
    assert_eq!(store.origin_visit_stats_get(&ids).await.unwrap().len(), 101);
    // a key twice in one batch: refused whole
    let dup = vec![
        OriginVisitStats {
            last_eventful: Some(jan(500)),
            ..stats("https://c", "git")
        },
        stats("https://c", "git"),
    ];
    let e = store.origin_visit_stats_upsert(&dup).await.unwrap_err();
    assert!(e.to_string().contains("CardinalityViolation"), "{e}");
    assert!(
        store
            .origin_visit_stats_get(&[("https://c".into(), "git".into())])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn metrics_count_as_the_original(store: &dyn SchedulerApi) {
    assert!(store.update_metrics(None, None).await.unwrap().is_empty());
    let lister = store.get_or_create_lister("github", None).await.unwrap();
    let other = store.get_or_create_lister("gitlab", None).await.unwrap();
    let id = lister.id.clone().unwrap();
    let mut git = listed(&lister, "git", 10, 0);
    for o in &mut git[..3] {
        o.enabled = false;
    }
    store.record_listed_origins(&git).await.unwrap();
    store
        .record_listed_origins(&listed(&lister, "svn", 4, 1))
        .await
        .unwrap();
    store
        .record_listed_origins(&listed(&other, "git", 2, 0))
        .await
        .unwrap();
    // git[3]: visited after its last update; git[4]: visited before it (pending changes);
    // git[5]: only failed (still never visited)
    store
        .origin_visit_stats_upsert(&[
            OriginVisitStats {
                last_eventful: Some(june(1_000_000)),
                last_snapshot: Some(vec![1; 20]),
                ..stats(&git[3].url, "git")
            },
            OriginVisitStats {
                last_uneventful: Some(jan(0)),
                last_snapshot: Some(vec![2; 20]),
                ..stats(&git[4].url, "git")
            },
            OriginVisitStats {
                last_failed: Some(june(1_000_000)),
                ..stats(&git[5].url, "git")
            },
        ])
        .await
        .unwrap();
    let t = jan(42);
    let mut m = store.update_metrics(Some(&id), Some(t)).await.unwrap();
    m.sort_by(|a, b| a.visit_type.cmp(&b.visit_type));
    assert_eq!(m.len(), 2, "{m:?}");
    let (g, s) = (&m[0], &m[1]);
    assert_eq!((g.visit_type.as_str(), g.last_update), ("git", t));
    assert_eq!(
        (
            g.origins_known,
            g.origins_enabled,
            g.origins_never_visited,
            g.origins_with_pending_changes
        ),
        (10, 7, 5, 1)
    );
    assert_eq!(
        (s.origins_known, s.origins_enabled, s.origins_never_visited),
        (4, 4, 4)
    );
    // every lister, and get_metrics' filters
    let all = store.update_metrics(None, None).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(store.get_metrics(None, None).await.unwrap().len(), 3);
    assert_eq!(store.get_metrics(Some(&id), None).await.unwrap().len(), 2);
    let gits = store.get_metrics(None, Some("git")).await.unwrap();
    assert_eq!(gits.len(), 2);
    assert!(
        store
            .update_metrics(Some("00000000-0000-4000-8000-000000000000"), None)
            .await
            .unwrap()
            .is_empty()
    );
    // counters follow changes: re-enable the three disabled
    for o in &mut git[..3] {
        o.enabled = true;
    }
    store.record_listed_origins(&git[..3]).await.unwrap();
    let m = store.update_metrics(Some(&id), None).await.unwrap();
    let g = m.iter().find(|m| m.visit_type == "git").unwrap();
    assert_eq!((g.origins_enabled, g.origins_never_visited), (10, 8));
}

/// A lister re-listing its forge gives most origins a new `last_update` and nothing else: the
/// order of never_visited_oldest_update_first and already_visited_order_by_lag and the
/// pending-changes counter follow it, for origins in every state (never visited, visited
/// with a snapshot before or after the update, scheduled and waiting for a result, disabled).
pub async fn relisting_with_a_new_last_update_moves_origins_in_policies_and_metrics(
    store: &dyn SchedulerApi,
) {
    let lister = store.get_or_create_lister("github", None).await.unwrap();
    let id = lister.id.clone().unwrap();
    let at = |hours: i64| jan(hours * 3600);
    let origin = |name: &str, hours: i64, enabled: bool| {
        let mut o = ListedOrigin::new(&id, &format!("https://example.com/{name}"), "git");
        o.last_update = Some(at(hours));
        o.enabled = enabled;
        o
    };
    // a, b never visited; c visited after its update, d before it (pending); e scheduled,
    // no result yet; f disabled
    let first = [
        origin("a", 1, true),
        origin("b", 2, true),
        origin("c", 1, true),
        origin("d", 3, true),
        origin("e", 1, true),
        origin("f", 1, false),
    ];
    let recorded = store.record_listed_origins(&first).await.unwrap();
    let visited = |name: &str| OriginVisitStats {
        last_eventful: Some(at(2)),
        last_snapshot: Some(vec![7; 20]),
        ..stats(&format!("https://example.com/{name}"), "git")
    };
    store
        .origin_visit_stats_upsert(&[
            visited("c"),
            visited("d"),
            OriginVisitStats {
                last_scheduled: Some(Utc::now()),
                ..stats("https://example.com/e", "git")
            },
        ])
        .await
        .unwrap();
    let peek = |policy: &'static str| async move {
        let opts = GrabOptions {
            dry_run: true,
            ..Default::default()
        };
        let got = store
            .grab_next_visits("git", 10, policy, &opts)
            .await
            .unwrap();
        got.into_iter().map(|o| o.url).collect::<Vec<_>>()
    };
    let counts = || async {
        let m = store.update_metrics(Some(&id), None).await.unwrap();
        assert_eq!(m.len(), 1, "{m:?}");
        let m = &m[0];
        (
            m.origins_known,
            m.origins_enabled,
            m.origins_never_visited,
            m.origins_with_pending_changes,
        )
    };
    let u = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| format!("https://example.com/{n}"))
            .collect()
    };
    assert_eq!(
        peek("never_visited_oldest_update_first").await,
        u(&["a", "b"])
    );
    assert_eq!(peek("already_visited_order_by_lag").await, u(&["d"]));
    assert_eq!(counts().await, (6, 5, 3, 1));

    // the re-listing: a after b, c now pending, d no longer, e and f moved but not chosen
    let second = [
        origin("a", 4, true),
        origin("b", 2, true),
        origin("c", 5, true),
        origin("d", 1, true),
        origin("e", 0, true),
        origin("f", 0, false),
    ];
    let got = store.record_listed_origins(&second).await.unwrap();
    for (g, o) in got.iter().zip(&second) {
        assert_eq!((&g.url, g.last_update), (&o.url, o.last_update));
    }
    assert_eq!(
        peek("never_visited_oldest_update_first").await,
        u(&["b", "a"])
    );
    assert_eq!(peek("already_visited_order_by_lag").await, u(&["c"]));
    assert_eq!(counts().await, (6, 5, 3, 1));
    // and back past the visit: no origin has pending changes
    store
        .record_listed_origins(&[origin("c", 2, true)])
        .await
        .unwrap();
    assert!(peek("already_visited_order_by_lag").await.is_empty());
    assert_eq!(counts().await.3, 0);
    // the listings keep their first_seen and show the new last_update
    let page = store
        .get_listed_origins(Some(&id), None, 10, None)
        .await
        .unwrap();
    let c = page.results.iter().find(|o| o.url.ends_with("/c")).unwrap();
    assert_eq!(c.last_update, Some(at(2)));
    let before = recorded.iter().find(|o| o.url.ends_with("/c")).unwrap();
    assert_eq!(c.first_seen, before.first_seen);
    assert!(c.last_seen > before.last_seen);
}
