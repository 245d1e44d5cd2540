//! Archival: listing the runs of finished tasks and deleting them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use redis::Value;

use super::records::{RunRecord, TaskRecord};
use super::scripts::{Call, ScriptName};
use super::tasks::fingerprint;
use super::{Store, array, as_bytes, as_int};
use crate::error::{Error, Result};
use crate::model::{ArchivableRun, ArchivePage, ids, to_micros};

/// Finished tasks one archive_scan call reads at most.
const ARCHIVE_SCAN_TASKS: usize = 2000;

impl Store {
    /// Runs of finished tasks (oneshot tasks completed or disabled, recurring tasks disabled)
    /// started, or else scheduled, in `[after_ts, before_ts)`, by task id then start time,
    /// from task `page_token` on, `limit` at a time (the original's `filter_task_to_archive`).
    pub async fn filter_task_to_archive(
        &self,
        after_ts: DateTime<Utc>,
        before_ts: DateTime<Utc>,
        limit: usize,
        page_token: Option<&str>,
    ) -> Result<ArchivePage> {
        let limit = limit.max(1);
        let start_id: i64 = match page_token {
            None | Some("") => 0,
            Some(t) => t
                .parse()
                .map_err(|_| Error::invalid("page_token", t, "expected a task id"))?,
        };
        let (start_index, start_seq) = ids::split(start_id).unwrap_or((0, 0));
        let mut rows: Vec<ArchivableRun> = Vec::new();
        let mut con = self.con().await?;
        for tt in self.get_task_types().await? {
            let Some(info) = self.type_info(&tt.task_type).await? else {
                continue;
            };
            if info.index < start_index {
                continue;
            }
            let mut from = if info.index == start_index {
                start_seq as i64
            } else {
                0
            };
            while from >= 0 && rows.len() <= limit {
                let want = limit + 1 - rows.len();
                let reply = Call::new(ScriptName::ArchiveScan, &[&info.keys.type_key])
                    .arg(from)
                    .arg(to_micros(after_ts))
                    .arg(to_micros(before_ts))
                    .arg(want)
                    .arg(ARCHIVE_SCAN_TASKS)
                    .run(&mut con)
                    .await?;
                let items = array(reply)?;
                from = items.first().and_then(as_int).unwrap_or(-1);
                let mut it = items.into_iter().skip(1);
                while let Some(seq) = it.next() {
                    let seq = as_int(&seq).unwrap_or(0) as u64;
                    let id = ids::compose(info.index, seq);
                    let state = it.next().unwrap_or(Value::Nil);
                    let args = it.next().unwrap_or(Value::Nil);
                    let task = TaskRecord::decode(as_bytes(&state), as_bytes(&args))?
                        .into_task(id, &info.task_type.task_type)?;
                    let k = it.next().as_ref().and_then(as_int).unwrap_or(0);
                    let mut task_rows = Vec::new();
                    for _ in 0..k {
                        let rseq = it.next().as_ref().and_then(as_int).unwrap_or(0) as u64;
                        let raw = it.next().unwrap_or(Value::Nil);
                        let run =
                            self.run_from_record(&info, rseq, RunRecord::decode(as_bytes(&raw))?);
                        task_rows.push(ArchivableRun {
                            task: task.clone(),
                            run,
                        });
                    }
                    // ORDER BY started: runs never started come last
                    task_rows.sort_by_key(|r| (r.run.started.is_none(), r.run.started, r.run.id));
                    rows.extend(task_rows);
                }
            }
            if rows.len() > limit {
                break;
            }
        }
        let next_page_token = rows.get(limit).map(|r| r.task.id.to_string());
        rows.truncate(limit);
        Ok(ArchivePage {
            rows,
            next_page_token,
        })
    }

    /// Deletes the given runs, then those of their tasks left without any run.
    pub async fn delete_archived_tasks(&self, items: &[(i64, i64)]) -> Result<()> {
        for chunk in items.chunks(1000) {
            self.delete_archived_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn delete_archived_chunk(&self, items: &[(i64, i64)]) -> Result<()> {
        let task_ids: Vec<i64> = items.iter().map(|(t, _)| *t).collect();
        let tasks: HashMap<i64, _> = self
            .get_tasks(&task_ids)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let mut by_type: Vec<(u32, Call)> = Vec::new();
        for (task_id, run_id) in items {
            let (Some(task), Some((tindex, tseq)), Some((rindex, rseq))) = (
                tasks.get(task_id),
                ids::split(*task_id),
                ids::split(*run_id),
            ) else {
                continue;
            };
            if tindex != rindex {
                continue;
            }
            let info = self.require_type(&task.task_type).await?;
            let fp = fingerprint(&task.arguments.to_stored(), task.policy, task.priority);
            let slot = match by_type.iter().position(|(i, _)| *i == tindex) {
                Some(p) => p,
                None => {
                    by_type.push((
                        tindex,
                        Call::new(ScriptName::DeleteArchived, &[&info.keys.type_key]),
                    ));
                    by_type.len() - 1
                }
            };
            by_type[slot].1.arg(tseq).arg(rseq).arg(&fp[..]);
        }
        let mut con = self.con().await?;
        let mut foreign = Vec::new();
        for (_, call) in &by_type {
            let reply = array(call.run(&mut con).await?)?;
            for v in reply.into_iter().skip(1) {
                if let Value::BulkString(b) = v {
                    foreign.push(String::from_utf8_lossy(&b).into_owned());
                }
            }
        }
        self.forget_backend_ids(&mut con, &foreign).await
    }
}
