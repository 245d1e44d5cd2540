//! Task runs: scheduling, starting and ending them (the end-of-run rules live in
//! `lua/includes/end_rules.lua`), and reading them back.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redis::{AsyncCommands, Value};
use serde_json::{Map, Value as Json};

use super::records::RunRecord;
use super::scripts::{Call, ScriptName, run_pipelined};
use super::{ByType, Store, TypeInfo, array, as_bytes, as_int, opt_arg, pairs};
use crate::error::{Error, Result};
use crate::model::{NewTaskRun, RunStatus, TaskRun, ids, to_micros};

/// Runs one schedule_runs call records at most, and events one update_runs round trip
/// applies at most: bounded work per call (a large batch is sent in chunks).
const RUNS_PER_CALL: usize = 1000;
const EVENTS_PER_CALL: usize = 2000;

/// A start or end of a run, as the listener applies them in batches.
#[derive(Clone, Debug, PartialEq)]
pub struct RunEvent {
    pub backend_id: String,
    /// `None` starts the run; a status ends it with that status.
    pub end_status: Option<RunStatus>,
    pub metadata: Option<Map<String, Json>>,
    /// `None` means now.
    pub timestamp: Option<DateTime<Utc>>,
}

/// What applying a [`RunEvent`] did to the (first) run it designates.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutcome {
    /// False when the event changed nothing (the run had already ended).
    pub changed: bool,
    /// The run after the event, when asked for.
    pub run: Option<TaskRun>,
}

/// One run a backend id designates.
struct RunRef {
    info: Arc<TypeInfo>,
    seq: u64,
}

fn metadata_text(m: Option<&Map<String, Json>>) -> String {
    m.filter(|m| !m.is_empty())
        .map(|m| serde_json::to_string(m).expect("JSON values serialize"))
        .unwrap_or_default()
}

impl Store {
    pub(super) fn run_from_record(&self, info: &TypeInfo, seq: u64, rec: RunRecord) -> TaskRun {
        let id = ids::compose(info.index, seq);
        let task = ids::compose(info.index, rec.task_seq);
        let backend_id = match &rec.backend_id {
            Some(b) => b.clone(),
            None => ids::backend_id(id, rec.scheduled.unwrap_or(0).div_euclid(1000)),
        };
        rec.into_run(id, task, backend_id)
    }

    /// Records a run of a task, status `scheduled` (the task itself is not changed).
    pub async fn schedule_task_run(
        &self,
        task_id: i64,
        backend_id: &str,
        metadata: Option<Map<String, Json>>,
        timestamp: Option<DateTime<Utc>>,
    ) -> Result<TaskRun> {
        let run = NewTaskRun {
            task: task_id,
            backend_id: backend_id.to_string(),
            scheduled: timestamp,
            metadata: Some(metadata.unwrap_or_default()),
        };
        let mut runs = self.schedule_runs(&[run]).await?;
        runs.pop()
            .ok_or_else(|| Error::Other("no run was recorded".into()))
    }

    /// Records runs of tasks, status `scheduled`. Every task must exist, or nothing is written.
    pub async fn mass_schedule_task_runs(&self, runs: &[NewTaskRun]) -> Result<()> {
        self.schedule_runs(runs).await.map(drop)
    }

    /// [`Store::schedule_runs_once`], again with fresh task types if the cached ones are stale.
    async fn schedule_runs(&self, runs: &[NewTaskRun]) -> Result<Vec<TaskRun>> {
        self.fresh_types_on_retry(|| self.schedule_runs_once(runs))
            .await
    }

    async fn schedule_runs_once(&self, runs: &[NewTaskRun]) -> Result<Vec<TaskRun>> {
        let mut groups = ByType::new();
        for (i, r) in runs.iter().enumerate() {
            if r.backend_id.is_empty() {
                return Err(Error::invalid("backend_id", "", "must not be empty"));
            }
            if let Some(t) = r.scheduled {
                crate::model::check_time("scheduled", t)?;
            }
            let Some((info, seq)) = self.type_of_id(r.task).await? else {
                return Err(Error::invalid("task", r.task, "no such task"));
            };
            groups.push(&info, (i, seq));
        }
        // Every task must exist before any type's runs are written. A call that goes in one
        // script (one type, one chunk) needs no look first: the script checks before writing.
        let one_call = groups.iter().count() == 1 && runs.len() <= RUNS_PER_CALL;
        for (info, items) in groups.iter().filter(|_| !one_call) {
            let seqs: Vec<i64> = items
                .iter()
                .map(|(_, s)| ids::compose(info.index, *s))
                .collect();
            let found = self.get_tasks(&seqs).await?;
            if let Some(missing) = seqs.iter().find(|id| !found.iter().any(|t| t.id == **id)) {
                return Err(Error::invalid("task", missing, "no such task"));
            }
        }
        let mut con = self.con().await?;
        let mut out: Vec<Option<TaskRun>> = vec![None; runs.len()];
        let chunks: Vec<_> = groups
            .iter()
            .flat_map(|(info, items)| items.chunks(RUNS_PER_CALL).map(move |c| (info, c)))
            .collect();
        for (k, (info, items)) in chunks.into_iter().enumerate() {
            let mut call = Call::new(ScriptName::ScheduleRuns, &[&info.keys.type_key]);
            call.arg("").arg(self.keep_runs()).arg(info.index);
            for &(i, seq) in items {
                let r = &runs[i];
                call.arg(seq)
                    .arg(&r.backend_id)
                    .arg(opt_arg(r.scheduled.map(to_micros)))
                    .arg(match &r.metadata {
                        None => String::new(),
                        Some(m) if m.is_empty() => "{}".to_string(),
                        Some(m) => metadata_text(Some(m)),
                    });
            }
            let reply = match call.run(&mut con).await {
                // a stale type after other types' runs were written: no retry, which would
                // record those runs twice, and an error that says what was written
                Err(Error::UnknownTaskType(t)) if k > 0 => {
                    return Err(Error::Other(format!(
                        "task type {t:?} was replaced in Redis during this call; the runs \
                         sent before it were recorded, its runs and those after were not"
                    )));
                }
                other => array(other?)?,
            };
            let (made, dropped) = reply.split_at(items.len() * 2);
            let mut index_add = Vec::new();
            for (&(i, _), pair) in items.iter().zip(made.chunks(2)) {
                let seq = as_int(&pair[0]).unwrap_or(0) as u64;
                let run = self.run_from_record(info, seq, RunRecord::decode(as_bytes(&pair[1]))?);
                index_add.push((run.backend_id.clone(), run.id));
                out[i] = Some(run);
            }
            let index_remove: Vec<String> = dropped
                .iter()
                .filter_map(|d| match d {
                    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    _ => None,
                })
                .collect();
            // each chunk's runs are indexed by backend id as soon as they are written, so
            // that a failure later in the call leaves no written run unfindable
            if !index_add.is_empty() {
                let mut call = Call::new(ScriptName::BackendIds, &[&self.global().backend_ids]);
                call.arg("add");
                for (b, id) in &index_add {
                    call.arg(b).arg(*id);
                }
                call.run(&mut con).await?;
            }
            self.forget_backend_ids(&mut con, &index_remove).await?;
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Drops the fallback-index entries of backend ids whose runs were deleted.
    pub(super) async fn forget_backend_ids(
        &self,
        con: &mut super::Con,
        backend_ids: &[String],
    ) -> Result<()> {
        for chunk in backend_ids.chunks(1000) {
            let runs: Vec<Option<String>> = con.hmget(&self.global().backend_ids, chunk).await?;
            let mut call = Call::new(ScriptName::BackendIds, &[&self.global().backend_ids]);
            call.arg("remove");
            let mut any = false;
            for (b, ids) in chunk.iter().zip(runs) {
                for id in ids.iter().flat_map(|s| s.split(' ')) {
                    // only the runs that are really gone
                    if let Ok(id) = id.parse::<i64>()
                        && self.run_by_id(con, id).await?.is_none()
                    {
                        call.arg(b).arg(id);
                        any = true;
                    }
                }
            }
            if any {
                call.run(con).await?;
            }
        }
        Ok(())
    }

    async fn run_by_id(&self, con: &mut super::Con, run_id: i64) -> Result<Option<RunRecord>> {
        let Some((info, seq)) = self.type_of_id(run_id).await? else {
            return Ok(None);
        };
        let key = format!(
            "{}:r:{}",
            info.keys.type_key.trim_end_matches(":type"),
            seq / 128
        );
        let raw: Option<Vec<u8>> = con.hget(key, seq % 128).await?;
        raw.map(|r| RunRecord::decode(&r)).transpose()
    }

    /// The runs each backend id designates: the run named inside one of our ids, or those the
    /// fallback index lists for a foreign id (all looked up in one round trip).
    async fn resolve_backend_ids(
        &self,
        con: &mut super::Con,
        backend_ids: &[&str],
    ) -> Result<Vec<Vec<RunRef>>> {
        let mut out: Vec<Vec<RunRef>> = Vec::with_capacity(backend_ids.len());
        let mut foreign = Vec::new();
        for (i, b) in backend_ids.iter().enumerate() {
            let mut refs = Vec::new();
            if let Some((run_id, _)) = ids::parse_backend_id(b)
                && let Some((info, seq)) = self.type_of_id(run_id).await?
            {
                refs.push(RunRef { info, seq });
            } else {
                foreign.push(i);
            }
            out.push(refs);
        }
        if foreign.is_empty() {
            return Ok(out);
        }
        let keys: Vec<&str> = foreign.iter().map(|&i| backend_ids[i]).collect();
        let listed: Vec<Option<String>> = if keys.len() == 1 {
            vec![con.hget(&self.global().backend_ids, keys[0]).await?]
        } else {
            con.hmget(&self.global().backend_ids, &keys).await?
        };
        for (i, ids) in foreign.into_iter().zip(listed) {
            for id in ids.iter().flat_map(|s| s.split(' ')) {
                if let Ok(id) = id.parse()
                    && let Some((info, seq)) = self.type_of_id(id).await?
                {
                    out[i].push(RunRef { info, seq });
                }
            }
        }
        Ok(out)
    }

    /// Marks every run with that backend id started; returns the first, or `None` if there is
    /// none. A run that has ended is left as it is.
    pub async fn start_task_run(
        &self,
        backend_id: &str,
        metadata: Option<Map<String, Json>>,
        timestamp: Option<DateTime<Utc>>,
    ) -> Result<Option<TaskRun>> {
        self.apply_one(RunEvent {
            backend_id: backend_id.to_string(),
            end_status: None,
            metadata,
            timestamp,
        })
        .await
    }

    /// Ends every run with that backend id with `status`, applying the end-of-run rules to its
    /// task; returns the first run, or `None` if there is none. Ending twice changes nothing.
    pub async fn end_task_run(
        &self,
        backend_id: &str,
        status: RunStatus,
        metadata: Option<Map<String, Json>>,
        timestamp: Option<DateTime<Utc>>,
    ) -> Result<Option<TaskRun>> {
        self.apply_one(RunEvent {
            backend_id: backend_id.to_string(),
            end_status: Some(status),
            metadata,
            timestamp,
        })
        .await
    }

    async fn apply_one(&self, event: RunEvent) -> Result<Option<TaskRun>> {
        if let Some(t) = event.timestamp {
            crate::model::check_time("timestamp", t)?;
        }
        let outcome = self.apply_run_events(&[event], true).await?.pop().flatten();
        Ok(outcome.and_then(|o| o.run))
    }

    /// Applies starts and ends in order, one script call per type, all in one round trip.
    /// Returns, per event, the outcome for the first run it designates (`None` if none), with
    /// the run itself if `want_runs`. An event with a time out of range is logged and skipped
    /// alone: it never blocks the others.
    pub async fn apply_run_events(
        &self,
        events: &[RunEvent],
        want_runs: bool,
    ) -> Result<Vec<Option<RunOutcome>>> {
        // bounded work per round trip: a worker's task.multi can carry tens of thousands
        let mut out = Vec::with_capacity(events.len());
        for chunk in events.chunks(EVENTS_PER_CALL) {
            out.extend(self.apply_run_events_chunk(chunk, want_runs).await?);
        }
        Ok(out)
    }

    async fn apply_run_events_chunk(
        &self,
        events: &[RunEvent],
        want_runs: bool,
    ) -> Result<Vec<Option<RunOutcome>>> {
        let bad: Vec<bool> = events
            .iter()
            .map(|e| {
                e.timestamp
                    .is_some_and(|t| crate::model::check_time("timestamp", t).is_err())
            })
            .collect();
        for (e, _) in events.iter().zip(&bad).filter(|(_, b)| **b) {
            tracing::warn!(
                "skipping the run event of {:?}: its time {:?} is out of range",
                e.backend_id,
                e.timestamp
            );
        }
        // A start whose run's next event here is its end travels with that end, as one entry
        // at the end's place (update_runs.lua applies both, in order): half the entries for
        // the task.multi batches of a worker. Moving a start later, past other runs' events,
        // changes nothing, as a start touches only its own run.
        let mut start_of: Vec<Option<usize>> = vec![None; events.len()];
        let mut absorbed = vec![false; events.len()];
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (j, e) in events.iter().enumerate().filter(|(j, _)| !bad[*j]) {
            if let Some(&i) = last.get(e.backend_id.as_str())
                && e.end_status.is_some()
                && events[i].end_status.is_none()
            {
                absorbed[i] = true;
                start_of[j] = Some(i);
            }
            last.insert(&e.backend_id, j);
        }
        let mut con = self.con().await?;
        // per type: the (event index, index of the start it carries, run seq) of each of its
        // entries, and its call
        let mut groups = ByType::new();
        let mut calls: Vec<Call> = Vec::new();
        let backend_ids: Vec<&str> = events.iter().map(|e| e.backend_id.as_str()).collect();
        let resolved = self.resolve_backend_ids(&mut con, &backend_ids).await?;
        let text = |e: &RunEvent| {
            (
                metadata_text(e.metadata.as_ref()),
                opt_arg(e.timestamp.map(to_micros)),
            )
        };
        let none = (String::new(), String::new());
        for ((i, e), refs) in events.iter().enumerate().zip(resolved) {
            if bad[i] || absorbed[i] {
                continue;
            }
            // an id of ours is checked by its scheduling time (update_runs.lua), a foreign one
            // as it is
            let check = match ids::parse_backend_id(&e.backend_id.to_ascii_lowercase()) {
                Some((_, ms)) => format!("#{ms}"),
                None => e.backend_id.clone(),
            };
            let (kind, (meta_s, ts_s), (meta_e, ts_e)) = match (e.end_status, start_of[i]) {
                (None, _) => ("s", text(e), none.clone()),
                (Some(_), None) => ("e", none.clone(), text(e)),
                (Some(_), Some(s)) => ("x", text(&events[s]), text(e)),
            };
            for r in refs {
                let slot = groups.push(&r.info, (i, start_of[i], r.seq));
                if slot == calls.len() {
                    let mut call = Call::new(ScriptName::UpdateRuns, &[&r.info.keys.type_key]);
                    call.arg("").arg(if want_runs { "1" } else { "0" });
                    calls.push(call);
                }
                let call = &mut calls[slot];
                call.arg(kind)
                    .arg(r.seq)
                    .arg(opt_arg(e.end_status.map(|s| s.code() as i64)))
                    .arg(&meta_s)
                    .arg(&ts_s)
                    .arg(&meta_e)
                    .arg(&ts_e)
                    .arg(&check);
            }
        }
        let replies = run_pipelined(&mut con, &calls).await?;
        let mut out: Vec<Option<RunOutcome>> = vec![None; events.len()];
        // a failing call (say, a damaged record) is logged and its events skipped, so that one
        // bad type does not block the others; when every call fails, that is the error
        let mut first_error = None;
        let mut failed = 0;
        let calls = groups.iter().count();
        for ((info, items), reply) in groups.iter().zip(replies) {
            let values = match reply.and_then(array) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("run events of task type {}: {e}", info.task_type.task_type);
                    failed += 1;
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            // two values an event: an entry that carries a start answers for it first
            let mut answers = values.chunks(2);
            let per_event = items
                .iter()
                .flat_map(|&(i, start, seq)| start.map(|s| (s, seq)).into_iter().chain([(i, seq)]));
            for ((i, seq), v) in per_event.zip(answers.by_ref()) {
                if v.len() < 2 {
                    continue;
                }
                let found = as_int(&v[0]).unwrap_or(0);
                if found == 0 || out[i].is_some() {
                    continue;
                }
                let raw = as_bytes(&v[1]);
                let run = match raw.is_empty() {
                    true => None,
                    false => Some(self.run_from_record(info, seq, RunRecord::decode(raw)?)),
                };
                out[i] = Some(RunOutcome {
                    changed: found == 2,
                    run,
                });
            }
        }
        match first_error {
            Some(e) if failed == calls => Err(e),
            _ => Ok(out),
        }
    }

    /// The kept runs of those tasks, by run id, at most `limit`.
    pub async fn get_task_runs(
        &self,
        task_ids: &[i64],
        limit: Option<usize>,
    ) -> Result<Vec<TaskRun>> {
        let groups = self.group_ids(task_ids).await?;
        let mut calls = Vec::new();
        let mut infos = Vec::new();
        for (info, all) in &groups {
            for seqs in all.chunks(1000) {
                let mut call = Call::new(ScriptName::GetTaskRuns, &[&info.keys.type_key]);
                for s in seqs {
                    call.arg(*s);
                }
                calls.push(call);
                infos.push(info.clone());
            }
        }
        let mut con = self.con().await?;
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for (info, reply) in infos.iter().zip(run_pipelined(&mut con, &calls).await?) {
            for (seq, raw) in pairs(reply?)? {
                let seq = as_int(&seq).unwrap_or(0) as u64;
                let run = self.run_from_record(info, seq, RunRecord::decode(as_bytes(&raw))?);
                if seen.insert(run.id, ()).is_none() {
                    out.push(run);
                }
            }
        }
        out.sort_by_key(|r: &TaskRun| r.id);
        if let Some(l) = limit {
            out.truncate(l);
        }
        Ok(out)
    }
}

impl Store {
    /// Marks lost the runs of a type still scheduled or started whose last change is at least
    /// `older_than` old (by the Redis server's clock), applying the failure rules to their
    /// tasks (see `lua/sweep_lost.lua`); with `keep_scheduled`, runs still scheduled are left
    /// alone (their message may be waiting in the queue). Returns how many; safe to run from
    /// several processes.
    pub async fn sweep_lost_runs(
        &self,
        task_type: &str,
        older_than: std::time::Duration,
        keep_scheduled: bool,
    ) -> Result<usize> {
        self.sweep_lost_runs_within(task_type, older_than, keep_scheduled, None)
            .await
    }

    /// [`Store::sweep_lost_runs`], where a scheduled run kept for its busy queue is lost all
    /// the same once `scheduled_bound` old.
    pub async fn sweep_lost_runs_within(
        &self,
        task_type: &str,
        older_than: std::time::Duration,
        keep_scheduled: bool,
        scheduled_bound: Option<std::time::Duration>,
    ) -> Result<usize> {
        const PER_CALL: i64 = 1000;
        let Some(info) = self.type_info(task_type).await? else {
            return Ok(0);
        };
        let mut con = self.con().await?;
        // one "now" for the whole pass: a run left alone is put just past the cutoff, which
        // a later cutoff would reach again within the pass
        let now = super::server_now(&mut con).await?;
        let mut lost = 0;
        loop {
            let reply = array(
                Call::new(ScriptName::SweepLost, &[&info.keys.type_key])
                    .arg(now)
                    .arg(older_than.as_micros() as i64)
                    .arg(PER_CALL)
                    .arg(if keep_scheduled { "1" } else { "0" })
                    .arg(opt_arg(scheduled_bound.map(|d| d.as_micros() as i64)))
                    .run(&mut con)
                    .await?,
            )?;
            lost += reply.first().and_then(as_int).unwrap_or(0) as usize;
            if reply.get(3).and_then(as_int).unwrap_or(0) == 0 {
                return Ok(lost);
            }
        }
    }

    /// The runs of a type still scheduled or started, in the order of their in-flight entries
    /// (`lua/inflight_runs.lua`).
    pub async fn inflight_runs(&self, task_type: &str) -> Result<Vec<TaskRun>> {
        let Some(info) = self.type_info(task_type).await? else {
            return Ok(Vec::new());
        };
        let mut con = self.con().await?;
        const RUNS_PER_CALL: i64 = 1000;
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let mut reply = array(
                Call::new(ScriptName::InflightRuns, &[&info.keys.type_key])
                    .arg(offset)
                    .arg(RUNS_PER_CALL)
                    .run(&mut con)
                    .await?,
            )?;
            // entries read first: an entry whose runs ended or are gone gives no pair
            let read = reply.first().and_then(as_int).unwrap_or(0);
            let last = reply.get(1).and_then(as_int).unwrap_or(1) == 1;
            reply.drain(..2.min(reply.len()));
            for (seq, raw) in pairs(Value::Array(reply))? {
                let seq = as_int(&seq).unwrap_or(0) as u64;
                out.push(self.run_from_record(&info, seq, RunRecord::decode(as_bytes(&raw))?));
            }
            offset += read;
            if last {
                return Ok(out);
            }
        }
    }
}
