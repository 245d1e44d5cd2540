//! The fixtures of the original's tests: its task types and tasks.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use swh_scheduler::api::SchedulerApi;
use swh_scheduler::model::{Interval, NewTask, TaskType};

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 20, 10, 0, 0).unwrap()
}

pub fn kwargs(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// The original's test fixtures: `swh-test-ping` (1 day) and `load-test-git`
/// (64 days in [12 hours, 64 days], backoff 2, 7 retries, 2 hours apart).
pub async fn fixture_types(store: &dyn SchedulerApi) {
    let mut ping = TaskType::new("swh-test-ping", "swh.scheduler.tests.tasks.ping", "Ping");
    ping.default_interval = Some(Interval::from_days(1));
    store.create_task_type(&ping).await.unwrap();
    store.create_task_type(&git_type()).await.unwrap();
}

pub fn git_type() -> TaskType {
    let mut git = TaskType::new(
        "load-test-git",
        "swh.loader.git.tasks.UpdateGitRepository",
        "Git",
    );
    git.default_interval = Some(Interval::from_days(64));
    git.min_interval = Some(Interval::from_secs(12 * 3600));
    git.max_interval = Some(Interval::from_days(64));
    git.backoff_factor = Some(2.0);
    git.max_queue_length = None;
    git.num_retries = Some(7);
    git.retry_delay = Some(Interval::from_secs(2 * 3600));
    git
}

pub fn task(ty: &str, n: i64, next_run: DateTime<Utc>) -> NewTask {
    let mut t = NewTask::new(
        ty,
        vec![json!(n)],
        kwargs(json!({"url": format!("https://example.com/{n}.git")})),
    );
    t.next_run = Some(next_run);
    t
}
