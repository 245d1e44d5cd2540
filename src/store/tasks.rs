//! Tasks: creation with dedup, status changes, lookups, search and the ready sets.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::scripts::{Call, ScriptName, run_pipelined};
use super::{ByType, Store, array, as_int, opt_arg, tasks_from};
use crate::error::{Error, Result};
use crate::model::{NewTask, Policy, Priority, Task, TaskSearch, TaskStatus, to_micros};

/// Tasks per create_tasks script call: bounds how long one call holds Redis.
const CREATE_CHUNK: usize = 2000;
/// Ready tasks one call peeks at or grabs.
const READY_PAGE: usize = 10_000;
/// Ids one get or set-status call handles.
const IDS_PER_CALL: usize = 1000;
/// Buckets (of 64 tasks) one search call reads.
const SCAN_BUCKETS: usize = 64;

/// The dedup fingerprint of a task: its arguments, policy and priority. The original also
/// compares status and, for oneshot tasks, next_run; the script compares those on the stored
/// record, as they change over a task's life and a fingerprint must not.
pub fn fingerprint(
    arguments: &(String, String),
    policy: Policy,
    priority: Option<Priority>,
) -> [u8; 8] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&[policy.code(), priority.map_or(0, Priority::code)]);
    h.update(arguments.0.as_bytes());
    h.update(&[0]);
    h.update(arguments.1.as_bytes());
    h.digest().to_be_bytes()
}

impl Store {
    /// Creates tasks, skipping duplicates of existing ones (see `lua/create_tasks.lua`), and
    /// returns the tasks the inputs resolve to, without repeats. `policy` applies to inputs
    /// that have none. The whole batch is checked before anything is written.
    pub async fn create_tasks(&self, tasks: &[NewTask], policy: Policy) -> Result<Vec<Task>> {
        self.fresh_types_on_retry(|| self.create_tasks_once(tasks, policy))
            .await
    }

    async fn create_tasks_once(&self, tasks: &[NewTask], policy: Policy) -> Result<Vec<Task>> {
        // Check everything first, so that a rejected batch writes nothing.
        let mut groups = ByType::new();
        for (i, t) in tasks.iter().enumerate() {
            let info = self.require_type(&t.task_type).await?;
            let policy = t.policy.unwrap_or(policy);
            if policy == Policy::Recurring && info.task_type.default_interval.is_none() {
                return Err(Error::invalid(
                    "policy",
                    "recurring",
                    format!(
                        "task type {:?} has no default_interval, so its tasks can only be oneshot",
                        t.task_type
                    ),
                ));
            }
            if let Some(r) = t.retries_left.filter(|r| *r < 0) {
                return Err(Error::invalid("retries_left", r, "must not be negative"));
            }
            if let Some(n) = t.next_run {
                crate::model::check_time("next_run", n)?;
            }
            groups.push(&info, i);
        }
        let mut resolved: Vec<Option<Task>> = vec![None; tasks.len()];
        let mut con = self.con().await?;
        for (info, indexes) in groups.iter() {
            for chunk in indexes.chunks(CREATE_CHUNK) {
                let mut call = Call::new(ScriptName::CreateTasks, &[&info.keys.type_key]);
                call.arg("");
                for &i in chunk {
                    let t = &tasks[i];
                    let policy = t.policy.unwrap_or(policy);
                    let args = t.arguments.to_stored();
                    let next_run = t.next_run.map(to_micros);
                    call.arg(&fingerprint(&args, policy, t.priority)[..])
                        .arg(opt_arg(next_run))
                        .arg(t.status.code())
                        .arg(policy.code())
                        .arg(opt_arg(t.retries_left))
                        .arg(opt_arg(t.priority.map(|p| p.code() as i64)))
                        .arg(args.0)
                        .arg(args.1);
                }
                let reply = array(call.run(&mut con).await?)?;
                for (&i, item) in chunk.iter().zip(reply.chunks(3)) {
                    if as_int(&item[0]).unwrap_or(0) > 0 {
                        let task = tasks_from(info, item)?.remove(0);
                        resolved[i] = Some(task);
                    }
                }
            }
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for task in resolved.into_iter().flatten() {
            if seen.insert(task.id) {
                out.push(task);
            }
        }
        Ok(out)
    }

    /// Sets the status of tasks (and their next_run, if given). With `except_completed_tasks`,
    /// tasks that are completed or whose next_run is not in the past are left alone.
    pub async fn set_status_tasks(
        &self,
        task_ids: &[i64],
        status: TaskStatus,
        next_run: Option<DateTime<Utc>>,
        except_completed_tasks: bool,
    ) -> Result<()> {
        self.fresh_types_on_retry(|| {
            self.set_status_tasks_once(task_ids, status, next_run, except_completed_tasks)
        })
        .await
    }

    async fn set_status_tasks_once(
        &self,
        task_ids: &[i64],
        status: TaskStatus,
        next_run: Option<DateTime<Utc>>,
        except_completed_tasks: bool,
    ) -> Result<()> {
        if let Some(n) = next_run {
            crate::model::check_time("next_run", n)?;
        }
        let mut con = self.con().await?;
        let mut calls = Vec::new();
        for (info, all) in self.group_ids(task_ids).await? {
            for seqs in all.chunks(IDS_PER_CALL) {
                let mut call = Call::new(ScriptName::SetStatusTasks, &[&info.keys.type_key]);
                call.arg("")
                    .arg(status.code())
                    .arg(opt_arg(next_run.map(to_micros)))
                    .arg(if except_completed_tasks { "1" } else { "0" })
                    .arg(info.index);
                for s in seqs {
                    call.arg(*s);
                }
                calls.push(call);
            }
        }
        for r in run_pipelined(&mut con, &calls).await? {
            r?;
        }
        Ok(())
    }

    /// Disables tasks.
    pub async fn disable_tasks(&self, task_ids: &[i64]) -> Result<()> {
        self.set_status_tasks(task_ids, TaskStatus::Disabled, None, false)
            .await
    }

    /// The tasks with those ids that exist, in the order asked, without repeats.
    pub async fn get_tasks(&self, task_ids: &[i64]) -> Result<Vec<Task>> {
        let groups = self.group_ids(task_ids).await?;
        let mut calls = Vec::new();
        let mut infos = Vec::new();
        for (info, all) in &groups {
            for seqs in all.chunks(IDS_PER_CALL) {
                let mut call = Call::new(ScriptName::GetTasks, &[&info.keys.type_key]);
                for s in seqs {
                    call.arg(*s);
                }
                calls.push(call);
                infos.push(info.clone());
            }
        }
        let mut con = self.con().await?;
        let mut found = std::collections::HashMap::new();
        for (info, reply) in infos.iter().zip(run_pipelined(&mut con, &calls).await?) {
            for task in tasks_from(info, &array(reply?)?)? {
                found.insert(task.id, task);
            }
        }
        Ok(task_ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Tasks matching every given filter, by type then id.
    pub async fn search_tasks(&self, search: &TaskSearch) -> Result<Vec<Task>> {
        let limit = search.limit.unwrap_or(usize::MAX);
        let matches = |t: &Task| {
            (search.task_types.is_empty() || search.task_types.contains(&t.task_type))
                && (search.statuses.is_empty() || search.statuses.contains(&t.status))
                && (search.policies.is_empty() || search.policies.contains(&t.policy))
                && (search.priorities.is_empty()
                    || t.priority.is_some_and(|p| search.priorities.contains(&p)))
                && search.before.is_none_or(|b| t.next_run <= b)
                && search.after.is_none_or(|a| t.next_run >= a)
        };
        if !search.task_ids.is_empty() {
            let mut tasks = self.get_tasks(&search.task_ids).await?;
            tasks.retain(matches);
            tasks.sort_by_key(|t| t.id);
            tasks.truncate(limit);
            return Ok(tasks);
        }
        // each type's matching tasks in creation order (its seq order), at most `limit` of
        // each, then merged by creation across types: the tasks, and the order, the original
        // gives (its ids follow creation across types)
        let mut infos = Vec::new();
        if search.task_types.is_empty() {
            for t in self.get_task_types().await? {
                infos.extend(self.type_info(&t.task_type).await?);
            }
        } else {
            for name in &search.task_types {
                infos.extend(self.type_info(name).await?);
            }
        }
        let codes = |v: Vec<u8>| v.iter().map(u8::to_string).collect::<Vec<_>>().join(",");
        let statuses = codes(search.statuses.iter().map(|s| s.code()).collect());
        let priorities = codes(search.priorities.iter().map(|p| p.code()).collect());
        let policies = codes(search.policies.iter().map(|p| p.code()).collect());
        // the types are scanned side by side (on a Cluster, each on its own master)
        let scans = infos.into_iter().map(|info| {
            let (statuses, priorities, policies) = (&statuses, &priorities, &policies);
            async move {
                let mut con = self.con().await?;
                let mut out = Vec::new();
                let mut bucket = 0i64;
                while bucket >= 0 && out.len() < limit {
                    let reply = Call::new(ScriptName::ScanTasks, &[&info.keys.type_key])
                        .arg(bucket)
                        .arg(SCAN_BUCKETS)
                        .arg(limit - out.len())
                        .arg(statuses)
                        .arg(priorities)
                        .arg(policies)
                        .arg(opt_arg(search.before.map(to_micros)))
                        .arg(opt_arg(search.after.map(to_micros)))
                        .run(&mut con)
                        .await?;
                    let mut items = super::array(reply)?.into_iter();
                    bucket = items.next().as_ref().and_then(as_int).unwrap_or(-1);
                    let rest: Vec<_> = items.collect();
                    out.extend(super::tasks_in_creation_order(&info, &rest)?);
                }
                Ok::<_, crate::error::Error>(out)
            }
        });
        let mut out = Vec::new();
        for scanned in futures_util::future::join_all(scans).await {
            out.extend(scanned?);
        }
        out.sort_by_key(|(key, _)| *key);
        out.truncate(limit);
        Ok(out.into_iter().map(|(_, t)| t).collect())
    }

    /// The due tasks of a type without a priority, oldest first, left as they are.
    pub async fn peek_ready_tasks(
        &self,
        task_type: &str,
        timestamp: Option<DateTime<Utc>>,
        num_tasks: Option<usize>,
    ) -> Result<Vec<Task>> {
        self.ready_tasks(task_type, timestamp, num_tasks, false, false)
            .await
    }

    /// Like [`Store::peek_ready_tasks`], and marks them `next_run_scheduled`, atomically.
    pub async fn grab_ready_tasks(
        &self,
        task_type: &str,
        timestamp: Option<DateTime<Utc>>,
        num_tasks: Option<usize>,
    ) -> Result<Vec<Task>> {
        self.ready_tasks(task_type, timestamp, num_tasks, false, true)
            .await
    }

    /// The due tasks of a type that have a priority (any), oldest first.
    pub async fn peek_ready_priority_tasks(
        &self,
        task_type: &str,
        timestamp: Option<DateTime<Utc>>,
        num_tasks: Option<usize>,
    ) -> Result<Vec<Task>> {
        self.ready_tasks(task_type, timestamp, num_tasks, true, false)
            .await
    }

    /// Like [`Store::peek_ready_priority_tasks`], and marks them `next_run_scheduled`.
    pub async fn grab_ready_priority_tasks(
        &self,
        task_type: &str,
        timestamp: Option<DateTime<Utc>>,
        num_tasks: Option<usize>,
    ) -> Result<Vec<Task>> {
        self.ready_tasks(task_type, timestamp, num_tasks, true, true)
            .await
    }

    async fn ready_tasks(
        &self,
        task_type: &str,
        timestamp: Option<DateTime<Utc>>,
        num_tasks: Option<usize>,
        with_priority: bool,
        grab: bool,
    ) -> Result<Vec<Task>> {
        self.fresh_types_on_retry(|| {
            self.ready_tasks_once(task_type, timestamp, num_tasks, with_priority, grab)
        })
        .await
    }

    async fn ready_tasks_once(
        &self,
        task_type: &str,
        timestamp: Option<DateTime<Utc>>,
        num_tasks: Option<usize>,
        with_priority: bool,
        grab: bool,
    ) -> Result<Vec<Task>> {
        // As the original, an unknown type simply has no ready task.
        let Some(info) = self.type_info(task_type).await? else {
            return Ok(Vec::new());
        };
        let ready = if with_priority {
            &info.keys.ready_prio
        } else {
            &info.keys.ready
        };
        let mut con = self.con().await?;
        // pages of at most READY_PAGE, so that no call holds Redis long
        let mut out = Vec::new();
        loop {
            let want = num_tasks.map_or(READY_PAGE, |n| (n - out.len()).min(READY_PAGE));
            if want == 0 {
                return Ok(out);
            }
            let reply = Call::new(ScriptName::ReadyTasks, &[&info.keys.type_key, ready])
                .arg(opt_arg(timestamp.map(to_micros)))
                .arg(want)
                .arg(if grab { "1" } else { "0" })
                .arg(if grab { 0 } else { out.len() })
                .run(&mut con)
                .await?;
            let page = tasks_from(&info, &array(reply)?)?;
            let last = page.len() < want;
            out.extend(page);
            if last {
                return Ok(out);
            }
        }
    }
}
