//! Table-driven tests of the end-of-run rules (README, "Differences"; the original has none for
//! the arithmetic). Each case: a task type, a task, how its run ends; then the task's status,
//! interval, next_run (relative to the run's end) and retries_left.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use swh_scheduler::model::{Interval, NewTask, Policy, RunStatus, TaskStatus, TaskType};

use common::RedisServer;

const H: i64 = 3600;
const D: i64 = 86_400;

struct Case {
    name: &'static str,
    factor: Option<f64>,
    min: Option<i64>,
    max: Option<i64>,
    default: i64,
    num_retries: Option<i64>,
    retry_delay: Option<i64>,
    policy: Policy,
    retries_left: Option<i64>,
    ends: &'static [RunStatus],
    want_status: TaskStatus,
    want_interval: i64,
    /// seconds after the (last) run's end; None: next_run unchanged by the last end
    want_next_in: Option<i64>,
    want_retries: i64,
}

const fn case(name: &'static str) -> Case {
    Case {
        name,
        factor: Some(2.0),
        min: Some(12 * H),
        max: Some(64 * D),
        default: 16 * D,
        num_retries: Some(7),
        retry_delay: Some(2 * H),
        policy: Policy::Recurring,
        retries_left: None,
        ends: &[RunStatus::Eventful],
        want_status: TaskStatus::NextRunNotScheduled,
        want_interval: 8 * D,
        want_next_in: Some(8 * D),
        want_retries: 7,
    }
}

use RunStatus::*;

fn cases() -> Vec<Case> {
    vec![
        Case {
            ..case("eventful divides by the factor")
        },
        Case {
            ends: &[Uneventful],
            want_interval: 32 * D,
            want_next_in: Some(32 * D),
            ..case("uneventful multiplies by the factor")
        },
        Case {
            default: 64 * D,
            ends: &[Uneventful],
            want_interval: 64 * D,
            want_next_in: Some(64 * D),
            ..case("clamped at max_interval")
        },
        Case {
            default: 16 * H,
            want_interval: 12 * H,
            want_next_in: Some(12 * H),
            ..case("clamped at min_interval")
        },
        Case {
            factor: None,
            want_interval: 16 * D,
            want_next_in: Some(16 * D),
            ..case("no factor means 1")
        },
        Case {
            min: None,
            default: 16 * H,
            want_interval: 8 * H,
            want_next_in: Some(8 * H),
            ..case("no min_interval: no lower bound")
        },
        Case {
            max: None,
            default: 64 * D,
            ends: &[Uneventful],
            want_interval: 128 * D,
            want_next_in: Some(128 * D),
            ..case("no max_interval: no upper bound")
        },
        Case {
            factor: Some(3.0),
            min: None,
            default: D,
            want_interval: 28_800,
            want_next_in: Some(28_800),
            ..case("non-integral factor")
        },
        Case {
            retries_left: Some(2),
            ends: &[Failed],
            want_interval: 16 * D,
            want_next_in: Some(2 * H),
            want_retries: 1,
            ..case("failure retries after retry_delay")
        },
        Case {
            retries_left: Some(2),
            retry_delay: None,
            ends: &[Failed],
            want_interval: 16 * D,
            want_next_in: Some(H),
            want_retries: 1,
            ..case("no retry_delay means one hour")
        },
        Case {
            retries_left: Some(1),
            ends: &[Lost],
            want_interval: 16 * D,
            want_next_in: Some(2 * H),
            want_retries: 0,
            ..case("lost counts as a failure")
        },
        Case {
            retries_left: Some(0),
            ends: &[Failed],
            want_interval: 16 * D,
            want_next_in: Some(16 * D),
            want_retries: 7,
            ..case("retries exhausted: next interval, retries reset")
        },
        Case {
            retries_left: Some(0),
            num_retries: None,
            ends: &[Lost],
            want_interval: 16 * D,
            want_next_in: Some(16 * D),
            want_retries: 0,
            ..case("retries exhausted, no num_retries: reset to 0")
        },
        Case {
            retries_left: Some(1),
            ends: &[Failed, Failed, Eventful],
            want_interval: 8 * D,
            want_next_in: Some(8 * D),
            want_retries: 7,
            ..case("a success after failures resets retries")
        },
        Case {
            policy: Policy::Oneshot,
            ends: &[Eventful],
            want_status: TaskStatus::Completed,
            want_interval: 16 * D,
            want_next_in: None,
            want_retries: 7,
            ..case("oneshot eventful completes")
        },
        Case {
            policy: Policy::Oneshot,
            ends: &[Uneventful],
            want_status: TaskStatus::Completed,
            want_interval: 16 * D,
            want_next_in: None,
            want_retries: 7,
            ..case("oneshot uneventful completes")
        },
        Case {
            policy: Policy::Oneshot,
            retries_left: Some(1),
            ends: &[Failed],
            want_interval: 16 * D,
            want_next_in: Some(2 * H),
            want_retries: 0,
            ..case("oneshot failure retries")
        },
        Case {
            policy: Policy::Oneshot,
            retries_left: Some(0),
            ends: &[Failed],
            want_status: TaskStatus::Disabled,
            want_interval: 16 * D,
            want_next_in: None,
            want_retries: 0,
            ..case("oneshot failure without retries disables")
        },
        Case {
            policy: Policy::Oneshot,
            retries_left: Some(1),
            ends: &[Failed, Lost],
            want_status: TaskStatus::Disabled,
            want_interval: 16 * D,
            want_next_in: None,
            want_retries: 0,
            ..case("oneshot retries exhausted disables")
        },
        Case {
            ends: &[Permfailed],
            want_status: TaskStatus::Disabled,
            want_interval: 16 * D,
            want_next_in: None,
            ..case("permfailed disables a recurring task")
        },
        Case {
            policy: Policy::Oneshot,
            ends: &[Permfailed],
            want_status: TaskStatus::Disabled,
            want_interval: 16 * D,
            want_next_in: None,
            ..case("permfailed disables a oneshot task")
        },
    ]
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 20, 10, 0, 0).unwrap()
}

/// The case's task type, named `ty`, and its task (arguments `[i]`, due at t0).
async fn case_task(
    store: &swh_scheduler::store::Store,
    ty: &str,
    c: &Case,
    i: usize,
) -> swh_scheduler::model::Task {
    let mut tt = TaskType::new(ty, "x.task", c.name);
    tt.backoff_factor = c.factor;
    tt.min_interval = c.min.map(Interval::from_secs);
    tt.max_interval = c.max.map(Interval::from_secs);
    tt.default_interval = Some(Interval::from_secs(c.default));
    tt.num_retries = c.num_retries;
    tt.retry_delay = c.retry_delay.map(Interval::from_secs);
    store.create_task_type(&tt).await.unwrap();
    let mut nt = NewTask::new(ty, vec![json!(i)], Default::default());
    nt.next_run = Some(t0());
    nt.policy = Some(c.policy);
    nt.retries_left = c.retries_left;
    store
        .create_tasks(&[nt], Policy::Recurring)
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test]
async fn end_of_run_rules() {
    let server = RedisServer::start();
    let store = server.store().await;
    for (i, c) in cases().into_iter().enumerate() {
        let ty = format!("type-{i}");
        let task = case_task(&store, &ty, &c, i).await;
        let mut ended = t0();
        let mut last = task.clone();
        let mut before_last = task.clone();
        for (k, status) in c.ends.iter().enumerate() {
            before_last = last.clone();
            let bid = format!("{ty}-run-{k}");
            ended += Duration::hours(1) + Duration::microseconds(123);
            store
                .schedule_task_run(task.id, &bid, None, Some(ended - Duration::minutes(30)))
                .await
                .unwrap();
            let run = store
                .end_task_run(&bid, *status, None, Some(ended))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(run.status, *status);
            assert_eq!(run.ended, Some(ended));
            last = store.get_tasks(&[task.id]).await.unwrap().remove(0);
        }
        assert_eq!(last.status, c.want_status, "{}: status", c.name);
        assert_eq!(
            last.current_interval,
            Some(Interval::from_secs(c.want_interval)),
            "{}: interval",
            c.name
        );
        let want_next = match c.want_next_in {
            Some(s) => ended + Duration::seconds(s),
            None => before_last.next_run,
        };
        assert_eq!(last.next_run, want_next, "{}: next_run", c.name);
        assert_eq!(
            last.retries_left, c.want_retries,
            "{}: retries_left",
            c.name
        );
        let ready = store
            .peek_ready_tasks(&ty, Some(want_next), None)
            .await
            .unwrap();
        assert_eq!(
            ready.len(),
            usize::from(c.want_status == TaskStatus::NextRunNotScheduled),
            "{}: ready set",
            c.name
        );
    }
}

#[tokio::test]
async fn ending_twice_changes_nothing() {
    let server = RedisServer::start();
    let store = server.store().await;
    let mut tt = TaskType::new("t", "x.task", "t");
    tt.default_interval = Some(Interval::from_days(4));
    tt.backoff_factor = Some(2.0);
    tt.num_retries = Some(3);
    store.create_task_type(&tt).await.unwrap();
    let mut nt = NewTask::new("t", vec![], Default::default());
    nt.next_run = Some(t0());
    let task = store
        .create_tasks(&[nt], Policy::Recurring)
        .await
        .unwrap()
        .remove(0);
    store
        .schedule_task_run(task.id, "b", None, None)
        .await
        .unwrap();
    let first = store
        .end_task_run(
            "b",
            Eventful,
            Some(json!({"a": 1}).as_object().unwrap().clone()),
            Some(t0()),
        )
        .await
        .unwrap()
        .unwrap();
    let after_first = store.get_tasks(&[task.id]).await.unwrap();
    assert_eq!(
        after_first[0].current_interval,
        Some(Interval::from_days(2))
    );
    let second = store
        .end_task_run(
            "b",
            Failed,
            Some(json!({"b": 2}).as_object().unwrap().clone()),
            Some(t0() + Duration::days(1)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second, first, "the run is as the first end left it");
    assert_eq!(
        store.get_tasks(&[task.id]).await.unwrap(),
        after_first,
        "the task too"
    );
    // a late start does not move an ended run back, but fills in when it started (Celery may
    // publish task-started after task-result)
    let late = t0() - Duration::seconds(5);
    let worker = json!({"worker": "w1@vm"}).as_object().unwrap().clone();
    let third = store
        .start_task_run("b", Some(worker), Some(late))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (third.status, third.ended, third.started),
        (first.status, first.ended, Some(late))
    );
    assert_eq!(third.metadata.as_ref().unwrap()["worker"], json!("w1@vm"));
    assert_eq!(
        store.get_tasks(&[task.id]).await.unwrap(),
        after_first,
        "the task is untouched"
    );
    // once started, a second start changes nothing
    let fourth = store
        .start_task_run("b", None, Some(t0()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fourth, third);
}

/// Celery's prefork parent stamps task-started when it handles the child's ack, which can be
/// after the child stamped the result: a run never starts after it ended, whichever of the two
/// events arrives first.
#[tokio::test]
async fn a_start_stamped_after_the_end_is_taken_as_the_end() {
    let server = RedisServer::start();
    let store = server.store().await;
    daily_type(&store).await;
    let end = t0() + Duration::seconds(10);
    let late = end + Duration::milliseconds(3);
    let early = end - Duration::seconds(1);
    // (backend id, whether the start arrives first, its time, the run's start as recorded)
    let cases = [
        ("end-first", false, late, end),
        ("start-first", true, late, end),
        ("in-order", true, early, early),
    ];
    let news: Vec<NewTask> = (0..cases.len())
        .map(|i| {
            // different arguments: identical tasks would be one
            let mut nt = NewTask::new("t", vec![json!(i)], Default::default());
            nt.next_run = Some(t0());
            nt
        })
        .collect();
    let tasks = store.create_tasks(&news, Policy::Recurring).await.unwrap();
    for (task, (id, start_first, started, want)) in tasks.iter().zip(cases) {
        store
            .schedule_task_run(task.id, id, None, Some(t0()))
            .await
            .unwrap();
        let start = || store.start_task_run(id, None, Some(started));
        let finish = || store.end_task_run(id, RunStatus::Eventful, None, Some(end));
        let run = if start_first {
            start().await.unwrap();
            finish().await.unwrap().unwrap()
        } else {
            finish().await.unwrap();
            start().await.unwrap().unwrap()
        };
        assert_eq!((run.started, run.ended), (Some(want), Some(end)), "{id}");
    }
}

#[tokio::test]
async fn a_task_disabled_while_its_run_is_in_flight_stays_disabled() {
    let server = RedisServer::start();
    let store = server.store().await;
    daily_type(&store).await;
    let mut nt = NewTask::new("t", vec![], Default::default());
    nt.next_run = Some(t0());
    let task = store
        .create_tasks(&[nt], Policy::Recurring)
        .await
        .unwrap()
        .remove(0);
    store
        .schedule_task_run(task.id, "b", None, None)
        .await
        .unwrap();
    store.disable_tasks(&[task.id]).await.unwrap();
    store
        .end_task_run("b", Eventful, None, None)
        .await
        .unwrap()
        .unwrap();
    let t = store.get_tasks(&[task.id]).await.unwrap().remove(0);
    assert_eq!(t.status, TaskStatus::Disabled);
    assert!(
        store
            .peek_ready_tasks("t", None, None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The ends of several runs of one task applied in one call (update_runs.lua reads the task
/// once, applies every end in memory and writes it once) leave the task, its ready entry and
/// the failed tasks' index as the same ends applied one call each.
#[tokio::test]
async fn ends_of_one_task_in_one_call_equal_one_call_each() {
    use swh_scheduler::store::RunEvent;
    let server = RedisServer::start();
    let store = server.store().await;
    for (i, c) in cases().into_iter().enumerate() {
        let mut outcome = Vec::new();
        for batched in [false, true] {
            let ty = format!("type-{i}-{batched}");
            let task = case_task(&store, &ty, &c, i).await;
            let mut ends = Vec::new();
            let mut ended = t0();
            for (k, status) in c.ends.iter().enumerate() {
                let bid = format!("{ty}-run-{k}");
                ended += Duration::hours(1) + Duration::microseconds(123);
                store
                    .schedule_task_run(task.id, &bid, None, Some(t0()))
                    .await
                    .unwrap();
                ends.push(RunEvent {
                    backend_id: bid,
                    end_status: Some(*status),
                    metadata: None,
                    timestamp: Some(ended),
                });
            }
            if batched {
                let out = store.apply_run_events(&ends, false).await.unwrap();
                assert!(out.iter().all(|o| o.as_ref().is_some_and(|o| o.changed)));
            } else {
                for e in &ends {
                    store
                        .apply_run_events(std::slice::from_ref(e), false)
                        .await
                        .unwrap();
                }
            }
            let t = store.get_tasks(&[task.id]).await.unwrap().remove(0);
            let ready = store.peek_ready_tasks(&ty, None, None).await.unwrap().len();
            // in the failed tasks' index, and since when
            let failing = store.failing_tasks(&ty, None, 10).await.unwrap();
            let failed_at = failing
                .tasks
                .iter()
                .zip(&failing.scores)
                .find(|(x, _)| x.id == task.id)
                .map(|(_, s)| *s);
            outcome.push((
                t.status,
                t.current_interval,
                t.next_run,
                t.retries_left,
                ready,
                failed_at,
            ));
        }
        assert_eq!(outcome[0], outcome[1], "{}", c.name);
    }
}

/// The starts and ends of many runs in one call, where update_runs.lua reads whole run and task
/// hashes (HGETALL when a call wants half of one or more), leave the runs and tasks as the same
/// events applied one call each.
#[tokio::test]
async fn many_runs_in_one_call_equal_one_call_each() {
    use swh_scheduler::store::RunEvent;
    let server = RedisServer::start();
    let store = server.store().await;
    let statuses = [
        RunStatus::Eventful,
        RunStatus::Uneventful,
        RunStatus::Failed,
    ];
    let mut outcome = Vec::new();
    for batched in [false, true] {
        let ty = format!("many-{batched}");
        let mut tt = TaskType::new(&ty, "x.task", &ty);
        tt.default_interval = Some(Interval::from_days(4));
        tt.backoff_factor = Some(2.0);
        tt.num_retries = Some(2);
        store.create_task_type(&tt).await.unwrap();
        let news: Vec<NewTask> = (0..300)
            .map(|i| {
                let mut nt = NewTask::new(&ty, vec![json!(i)], Default::default());
                nt.next_run = Some(t0());
                nt
            })
            .collect();
        let tasks = store.create_tasks(&news, Policy::Recurring).await.unwrap();
        let mut events = Vec::new();
        for (i, task) in tasks.iter().enumerate() {
            let bid = format!("{ty}-{i}");
            store
                .schedule_task_run(task.id, &bid, None, Some(t0()))
                .await
                .unwrap();
            let started = t0() + Duration::seconds(i as i64);
            // every seventh run only starts; the others end too
            events.push(RunEvent {
                backend_id: bid.clone(),
                end_status: None,
                metadata: Some(json!({"worker": i}).as_object().unwrap().clone()),
                timestamp: Some(started),
            });
            if i % 7 != 0 {
                events.push(RunEvent {
                    backend_id: bid,
                    end_status: Some(statuses[i % 3]),
                    metadata: None,
                    timestamp: Some(started + Duration::minutes(5)),
                });
            }
        }
        if batched {
            store.apply_run_events(&events, false).await.unwrap();
        } else {
            for e in &events {
                store
                    .apply_run_events(std::slice::from_ref(e), false)
                    .await
                    .unwrap();
            }
        }
        let ids: Vec<i64> = tasks.iter().map(|t| t.id).collect();
        let mut seen = Vec::new();
        for t in store.get_tasks(&ids).await.unwrap() {
            let run = store.get_task_runs(&[t.id], None).await.unwrap().remove(0);
            seen.push((
                t.status,
                t.current_interval,
                t.next_run,
                t.retries_left,
                run.status,
                run.started,
                run.ended,
                run.metadata,
            ));
        }
        assert_eq!(seen.len(), 300);
        outcome.push(seen);
    }
    assert!(outcome[0] == outcome[1], "batched and one by one differ");
}

/// Creates task type "t", interval a day, the rest default.
async fn daily_type(store: &swh_scheduler::store::Store) {
    let mut tt = TaskType::new("t", "x.task", "t");
    tt.default_interval = Some(Interval::from_days(1));
    store.create_task_type(&tt).await.unwrap();
}
