//! Decoding of the task and run records the Lua scripts store (layouts in
//! `lua/includes/task.lua` and `lua/includes/run.lua`).

use rmpv::Value as Mp;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{Interval, Policy, Priority, RunStatus, TaskArguments, TaskStatus, from_micros};

/// A task record as stored, before it is given its id and type.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    pub next_run: i64,
    pub interval: Option<i64>,
    pub status: TaskStatus,
    pub policy: Policy,
    pub retries_left: i64,
    pub priority: Option<Priority>,
    /// When the task was created (us), for listings in creation order; absent from records
    /// written before it was kept.
    pub created: Option<i64>,
    pub args: String,
    pub kwargs: String,
}

/// A run record as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub task_seq: u64,
    pub status: RunStatus,
    pub scheduled: Option<i64>,
    pub started: Option<i64>,
    pub ended: Option<i64>,
    pub metadata: String,
    pub backend_id: Option<String>,
}

fn values(raw: &[u8], what: &str) -> Result<Vec<Mp>> {
    let mut cur = raw;
    let mut out = Vec::with_capacity(8);
    while !cur.is_empty() {
        out.push(rmpv::decode::read_value(&mut cur).map_err(|e| corrupt(what, e))?);
    }
    Ok(out)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        key: what.to_string(),
        reason: e.to_string(),
    }
}

fn int(v: Option<&Mp>) -> Option<i64> {
    match v? {
        Mp::Integer(i) => i.as_i64(),
        // cmsgpack writes a Lua number with a fraction as a float; our values are whole
        Mp::F64(f) => Some(f.round() as i64),
        Mp::F32(f) => Some(f.round() as i64),
        _ => None,
    }
}

/// Intervals are stored in seconds (whole ones as integers, to keep records small).
fn seconds_to_micros(v: Option<&Mp>) -> Option<i64> {
    match v? {
        Mp::Integer(i) => i.as_i64().map(|s| s * 1_000_000),
        Mp::F64(f) => Some((f * 1e6).round() as i64),
        Mp::F32(f) => Some((*f as f64 * 1e6).round() as i64),
        _ => None,
    }
}

fn text(v: Option<&Mp>) -> Option<String> {
    match v? {
        Mp::String(s) => s.as_str().map(str::to_string),
        Mp::Binary(b) => String::from_utf8(b.clone()).ok(),
        _ => None,
    }
}

impl TaskRecord {
    /// Reads a task from its state record and its arguments record
    /// (layouts in `lua/includes/task.lua`).
    pub fn decode(state: &[u8], args: &[u8]) -> Result<Self> {
        let v = values(state, "task")?;
        let bad = |field: &str| corrupt("task", format!("bad {field} in {v:?}"));
        let flags = int(v.get(2)).ok_or_else(|| bad("flags"))? as u64;
        let text = std::str::from_utf8(args).map_err(|_| bad("arguments"))?;
        let (args, kwargs) = text.split_once('\n').ok_or_else(|| bad("arguments"))?;
        Ok(TaskRecord {
            next_run: int(v.first()).ok_or_else(|| bad("next_run"))?,
            interval: seconds_to_micros(v.get(1)),
            status: TaskStatus::from_code(flags % 4).ok_or_else(|| bad("status"))?,
            policy: Policy::from_code(flags / 4 % 2).ok_or_else(|| bad("policy"))?,
            priority: match flags / 8 % 4 {
                0 => None,
                c => Some(Priority::from_code(c).ok_or_else(|| bad("priority"))?),
            },
            retries_left: int(v.get(3)).ok_or_else(|| bad("retries_left"))?,
            created: int(v.get(5)),
            args: args.to_string(),
            kwargs: kwargs.to_string(),
        })
    }

    /// The task this record stores, given its id and type.
    pub fn into_task(self, id: i64, task_type: &str) -> Result<crate::model::Task> {
        let arguments = TaskArguments::from_stored(&self.args, &self.kwargs).ok_or_else(|| {
            corrupt(
                "task",
                format!("bad arguments {:?} {:?}", self.args, self.kwargs),
            )
        })?;
        Ok(crate::model::Task {
            id,
            task_type: task_type.to_string(),
            arguments,
            next_run: from_micros(self.next_run),
            current_interval: self.interval.map(Interval::from_micros),
            status: self.status,
            policy: self.policy,
            retries_left: self.retries_left,
            priority: self.priority,
        })
    }
}

impl RunRecord {
    pub fn decode(raw: &[u8]) -> Result<Self> {
        let v = values(raw, "run")?;
        let bad = |field: &str| corrupt("run", format!("bad {field} in {v:?}"));
        Ok(RunRecord {
            task_seq: int(v.first()).ok_or_else(|| bad("task"))? as u64,
            status: int(v.get(1))
                .and_then(|c| RunStatus::from_code(c as u64))
                .ok_or_else(|| bad("status"))?,
            scheduled: int(v.get(2)),
            started: int(v.get(3)),
            ended: int(v.get(4)),
            metadata: text(v.get(5)).unwrap_or_else(|| "{}".into()),
            backend_id: text(v.get(6)),
        })
    }

    /// The run this record stores, given its id, its task's id and its backend id.
    pub fn into_run(self, id: i64, task: i64, backend_id: String) -> crate::model::TaskRun {
        crate::model::TaskRun {
            id,
            task,
            backend_id,
            scheduled: self.scheduled.map(from_micros),
            started: self.started.map(from_micros),
            ended: self.ended.map(from_micros),
            // '' is NULL (see lua/includes/run.lua)
            metadata: (!self.metadata.is_empty()).then(|| merge_metadata(&self.metadata)),
            status: self.status,
        }
    }
}

/// Merges the newline-separated JSON objects of a stored metadata field, later keys winning.
pub fn merge_metadata(stored: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for part in stored.split('\n') {
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(part) {
            out.extend(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_fragments_merge_later_wins() {
        let m = merge_metadata("{\"worker\":\"a\",\"x\":1}\n{\"x\":2}\n{\"error\":\"boom\"}");
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"worker": "a", "x": 2, "error": "boom"})
        );
    }

    #[test]
    fn decodes_a_task_record() {
        // cmsgpack.pack(1795723864000000, nil, 0 + 4 * 1 + 8 * 2, 3, {})
        let mut raw = Vec::new();
        rmp::encode::write_uint(&mut raw, 1_795_723_864_000_000).unwrap();
        rmp::encode::write_nil(&mut raw).unwrap();
        rmp::encode::write_uint(&mut raw, 20).unwrap();
        rmp::encode::write_uint(&mut raw, 3).unwrap();
        rmp::encode::write_array_len(&mut raw, 0).unwrap();
        let r = TaskRecord::decode(&raw, b"[]\n{}").unwrap();
        assert_eq!(r.interval, None);
        assert_eq!(r.status, TaskStatus::NextRunNotScheduled);
        assert_eq!(r.policy, Policy::Oneshot);
        assert_eq!(r.priority, Some(Priority::Normal));
        assert_eq!(r.retries_left, 3);
        assert_eq!((r.args.as_str(), r.kwargs.as_str()), ("[]", "{}"));
        let mut raw2 = Vec::new();
        rmp::encode::write_uint(&mut raw2, 1).unwrap();
        rmp::encode::write_f64(&mut raw2, 0.5).unwrap();
        rmp::encode::write_uint(&mut raw2, 3).unwrap();
        rmp::encode::write_uint(&mut raw2, 0).unwrap();
        let r = TaskRecord::decode(&raw2, b"[1]\n{\"a\":2}").unwrap();
        assert_eq!(
            (r.interval, r.status),
            (Some(500_000), TaskStatus::Disabled)
        );
        assert!(TaskRecord::decode(&raw2, b"no newline").is_err());
    }
}
