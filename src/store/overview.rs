//! What the dashboard shows (`src/dashboard`), read from counters and sorted-set ranges only,
//! never by scanning tasks or origins: per task type a few commands in one pipeline, the types
//! side by side, so that the overview costs the same with ten tasks or ten million.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use redis::AsyncCommands;

use super::keys::{TypeKeys, VisitTypeKeys};
use super::outbox::BrokerLink;
use super::records::TaskRecord;
use super::{Store, TypeInfo};
use crate::celery::BrokerNaming;
use crate::error::{Error, Result};
use crate::model::{Lister, Task, TaskStatus, from_micros, ids, to_micros};

/// What the scripts count by the minute (`lua/includes/task.lua` RATE_FIELDS and
/// `lua/includes/origin.lua` count_minute), by short name.
pub const RATE_NAMES: &[(&str, &str)] = &[
    ("d", "dispatched"),
    ("s", "started"),
    ("e", "eventful"),
    ("u", "uneventful"),
    ("f", "failed"),
    ("p", "permfailed"),
    ("l", "lost"),
    ("vs", "sent"),
    ("ve", "eventful"),
    ("vu", "uneventful"),
    ("vf", "failed"),
    ("vn", "not_found"),
    ("vl", "lost"),
];

/// Counts of one minute (or summed over several), by short name.
pub type Counts = BTreeMap<String, i64>;

/// One task type's row of the overview.
#[derive(Clone, Debug, Default)]
pub struct TypeOverview {
    pub task_type: String,
    pub description: String,
    pub backend_name: String,
    pub max_queue_length: Option<i64>,
    /// The type's default interval, in seconds.
    pub interval_s: Option<f64>,
    /// Tasks by status, in `TaskStatus::ALL` order.
    pub by_status: [i64; 4],
    /// Ready to run now: next_run passed, not yet sent (without and with a priority).
    pub due: i64,
    pub due_prio: i64,
    /// Of those, the ones due for longer than the type's default interval.
    pub overdue: i64,
    /// Runs sent or started and not ended.
    pub in_flight: i64,
    /// The next_run of the oldest due task (us), if any.
    pub oldest_due_us: Option<i64>,
    /// Messages waiting in the Celery queue and in its priority queue, when the broker can be
    /// reached.
    pub queue: Option<i64>,
    pub prio_queue: Option<i64>,
    /// Tasks whose last ended run failed or was lost.
    pub failing: i64,
    /// What its runs did in the last 60 minutes, by short name (d, s, e, u, f, p, l).
    pub last_hour: Counts,
}

/// One lister's part of a visit type.
#[derive(Clone, Debug, Default)]
pub struct ListerOverview {
    pub name: String,
    pub instance_name: String,
    /// When the lister last saved its state (its `updated`).
    pub updated: Option<DateTime<Utc>>,
    pub known: i64,
    pub enabled: i64,
    pub never_visited: i64,
    pub pending_changes: i64,
}

/// One visit type's row of the overview.
#[derive(Clone, Debug, Default)]
pub struct VisitOverview {
    pub visit_type: String,
    /// Enabled origins oldest_scheduled_first would choose now.
    pub eligible: i64,
    /// Sent and waiting for their result.
    pub awaiting: i64,
    /// The counters of `update_metrics`, summed over the listers.
    pub known: i64,
    pub enabled: i64,
    pub never_visited: i64,
    pub pending_changes: i64,
    /// The earliest last sending among the eligible origins sent before (us).
    pub oldest_sent_us: Option<i64>,
    pub listers: Vec<ListerOverview>,
    /// The loader's queue (`load-<visit_type>`'s), when there is one and it can be reached.
    pub queue: Option<i64>,
    pub max_queue_length: Option<i64>,
    /// Visits sent and results in the last 60 minutes (vs, ve, vu, vf, vn, vl).
    pub last_hour: Counts,
}

/// The whole overview, at the Redis server's `now`.
#[derive(Clone, Debug, Default)]
pub struct Overview {
    pub now_us: i64,
    pub types: Vec<TypeOverview>,
    pub visit_types: Vec<VisitOverview>,
}

/// A page of tasks and where the next one starts.
#[derive(Clone, Debug, Default)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// The score of each task in its index (next_run, or the failed run's end; us).
    pub scores: Vec<i64>,
    pub next: Option<String>,
    /// How many there are in all.
    pub total: i64,
}

/// What one step of a search by argument text found.
#[derive(Clone, Debug, Default)]
pub struct ScanStep {
    pub tasks: Vec<Task>,
    /// The next bucket to read, if any is left.
    pub next: Option<u64>,
    /// Buckets in all (each holds 64 tasks), for the progress.
    pub buckets: u64,
}

/// Where the broker queues are, seen from the store.
#[derive(Clone, Debug, Default)]
pub struct QueueSight {
    pub naming: BrokerNaming,
    pub priority_queue_prefix: String,
    pub broker: BrokerLink,
}

const MINUTE_US: i64 = 60_000_000;
/// Types read at once by the overview.
const OVERVIEW_CONCURRENCY: usize = 8;

/// A reply of a pipeline, as the type it should be.
fn val<T: redis::FromRedisValue>(v: redis::Value) -> Result<T> {
    redis::from_redis_value(v).map_err(|e| Error::Other(format!("unexpected reply: {e}")))
}

/// The hour keys holding the minutes [first, last].
fn rate_keys(base: &str, first: i64, last: i64) -> Vec<(i64, String)> {
    (first.div_euclid(60)..=last.div_euclid(60))
        .map(|h| (h, format!("{base}:rate:{h}")))
        .collect()
}

/// Reads hour hashes of per-minute counts into minute -> counts, keeping [first, last].
fn minutes_from(
    hours: &[(i64, String)],
    replies: Vec<HashMap<String, i64>>,
    first: i64,
    last: i64,
) -> BTreeMap<i64, Counts> {
    let mut out: BTreeMap<i64, Counts> = BTreeMap::new();
    for ((hour, _), fields) in hours.iter().zip(replies) {
        for (field, n) in fields {
            let Some((m, what)) = field.split_once(':') else {
                continue;
            };
            let Ok(m) = m.parse::<i64>() else { continue };
            let minute = hour * 60 + m;
            if (first..=last).contains(&minute) {
                *out.entry(minute)
                    .or_default()
                    .entry(what.to_string())
                    .or_default() += n;
            }
        }
    }
    out
}

fn sum(minutes: &BTreeMap<i64, Counts>) -> Counts {
    let mut out = Counts::new();
    for c in minutes.values() {
        for (k, n) in c {
            *out.entry(k.clone()).or_default() += n;
        }
    }
    out
}

/// The ready-set member of a task seq (5 bytes, big-endian: `lua/includes/task.lua`).
fn ready_member(seq: u64) -> Vec<u8> {
    seq.to_be_bytes()[3..].to_vec()
}

fn member_seq(m: &[u8]) -> u64 {
    m.iter().fold(0, |a, b| a << 8 | u64::from(*b))
}

/// A page cursor: `<score>:<member as hex>`.
fn cursor_of(score: f64, member: &[u8]) -> String {
    let hex: String = member.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}:{hex}", score as i64)
}

fn parse_cursor(c: &str) -> Result<(i64, Vec<u8>)> {
    let bad = || Error::invalid("cursor", c, "is not a cursor this dashboard gave");
    let (s, hex) = c.split_once(':').ok_or_else(bad)?;
    let score = s.parse().map_err(|_| bad())?;
    if hex.len() % 2 != 0 || hex.len() > 64 {
        return Err(bad());
    }
    let member = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>>>()?;
    Ok((score, member))
}

impl Store {
    async fn server_now_us(&self) -> Result<i64> {
        super::server_now(&mut self.con().await?).await
    }

    /// The overview of every task type and visit type.
    pub async fn overview(&self, queues: &QueueSight) -> Result<Overview> {
        let now = self.server_now_us().await?;
        let mut infos = Vec::new();
        for t in self.get_task_types().await? {
            infos.extend(self.type_info(&t.task_type).await?);
        }
        // side by side, a few at a time (each holds a pooled connection at once)
        let reads: Vec<_> = infos
            .iter()
            .map(|i| self.type_overview(i, now, queues))
            .collect();
        let types: Vec<TypeOverview> = stream::iter(reads)
            .buffered(OVERVIEW_CONCURRENCY)
            .try_collect()
            .await?;
        let listers = self.get_listers().await?;
        let reads: Vec<_> = self
            .visit_types()
            .await?
            .into_iter()
            .map(|vt| self.visit_overview(vt, now, &listers, &types))
            .collect();
        let visit_types: Vec<VisitOverview> = stream::iter(reads)
            .buffered(OVERVIEW_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(Overview {
            now_us: now,
            types,
            visit_types,
        })
    }

    async fn type_overview(
        &self,
        info: &TypeInfo,
        now: i64,
        queues: &QueueSight,
    ) -> Result<TypeOverview> {
        let t = &info.task_type;
        let TypeKeys {
            base,
            type_key,
            ready,
            ready_prio,
        } = &info.keys;
        let interval_us = t.default_interval.map(|i| i.as_micros());
        let minute = now.div_euclid(MINUTE_US);
        let hours = rate_keys(base, minute - 59, minute);
        let mut pipe = redis::pipe();
        let status_fields: Vec<String> = TaskStatus::ALL
            .iter()
            .map(|s| format!("tasks_{}", s.as_str()))
            .collect();
        pipe.cmd("HMGET")
            .arg(type_key)
            .arg(&status_fields)
            .zcount(ready, "-inf", now)
            .zcount(ready_prio, "-inf", now)
            .zcount(
                ready,
                "-inf",
                interval_us.map_or(i64::MIN, |i| now.saturating_sub(i)),
            )
            .hget(type_key, "runs_open")
            .zcard(format!("{base}:inflight"))
            .zcard(format!("{base}:failed"))
            .cmd("ZRANGE")
            .arg(ready)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .cmd("ZRANGE")
            .arg(ready_prio)
            .arg(0)
            .arg(0)
            .arg("WITHSCORES");
        for (_, k) in &hours {
            pipe.hgetall(k);
        }
        // (the connection goes back to the pool before the queues are read with others)
        let replies: Vec<redis::Value> = pipe.query_async(&mut self.con().await?).await?;
        let mut it = replies.into_iter();
        let mut next = || it.next().unwrap_or(redis::Value::Nil);
        let statuses: Vec<Option<i64>> = val(next())?;
        let due: i64 = val(next())?;
        let due_prio: i64 = val(next())?;
        let overdue: i64 = if interval_us.is_some() {
            val(next())?
        } else {
            next();
            0
        };
        // runs scheduled or started: counted by the scripts (lua/includes/run.lua), or, in a
        // store no script changed since it began counting, one in-flight entry each
        let open: Option<i64> = val(next())?;
        let entries: i64 = val(next())?;
        let in_flight = open.unwrap_or(entries);
        let failing: i64 = val(next())?;
        let first: Vec<(Vec<u8>, f64)> = val(next())?;
        let first_prio: Vec<(Vec<u8>, f64)> = val(next())?;
        let mut per_hour = Vec::new();
        for _ in &hours {
            per_hour.push(val(next())?);
        }
        let oldest_due_us = first
            .iter()
            .chain(&first_prio)
            .map(|(_, s)| *s as i64)
            .filter(|s| *s <= now)
            .min();
        let mut by_status = [0; 4];
        for (slot, n) in by_status.iter_mut().zip(statuses) {
            *slot = n.unwrap_or(0);
        }
        let (queue, prio_queue) = if self.check_broker(&queues.broker).is_ok() {
            let q = |name: String| async move {
                self.queue_waiting(
                    &queues.naming.queue_keys(&name),
                    &queues.broker,
                    &self.outbox(&t.task_type, &name),
                )
                .await
            };
            let (a, b) = tokio::try_join!(
                q(t.backend_name.clone()),
                q(format!(
                    "{}:{}",
                    queues.priority_queue_prefix, t.backend_name
                ))
            )?;
            (Some(a), Some(b))
        } else {
            (None, None)
        };
        Ok(TypeOverview {
            task_type: t.task_type.clone(),
            description: t.description.clone(),
            backend_name: t.backend_name.clone(),
            max_queue_length: t.max_queue_length,
            interval_s: interval_us.map(|i| i as f64 / 1e6),
            by_status,
            due,
            due_prio,
            overdue,
            in_flight,
            oldest_due_us,
            queue,
            prio_queue,
            failing,
            last_hour: sum(&minutes_from(&hours, per_hour, minute - 59, minute)),
        })
    }

    async fn visit_overview(
        &self,
        visit_type: String,
        now: i64,
        listers: &[Lister],
        types: &[TypeOverview],
    ) -> Result<VisitOverview> {
        let figures = self.visit_figures(&visit_type).await?;
        let keys = VisitTypeKeys::new(&self.config().prefix, &visit_type);
        let minute = now.div_euclid(MINUTE_US);
        let hours = rate_keys(&keys.base, minute - 59, minute);
        let mut pipe = redis::pipe();
        pipe.hgetall(&keys.metrics);
        for (_, k) in &hours {
            pipe.hgetall(k);
        }
        let mut con = self.con().await?;
        let mut replies: Vec<HashMap<String, i64>> = pipe.query_async(&mut con).await?;
        let counters = replies.remove(0);
        let index: HashMap<String, String> = con.hgetall(&self.global().lister_idx).await?;
        let mut by_lister: BTreeMap<&str, [i64; 4]> = BTreeMap::new();
        for (field, n) in &counters {
            let Some((lidx, c)) = field.split_once(':') else {
                continue;
            };
            let slot = match c {
                "k" => 0,
                "e" => 1,
                "n" => 2,
                "p" => 3,
                _ => continue,
            };
            by_lister.entry(lidx).or_default()[slot] = *n;
        }
        let mut out = VisitOverview {
            visit_type: visit_type.clone(),
            eligible: figures.eligible,
            awaiting: figures.awaiting_result,
            oldest_sent_us: figures.oldest_sent_us,
            last_hour: sum(&minutes_from(&hours, replies, minute - 59, minute)),
            ..Default::default()
        };
        for (lidx, [known, enabled, never, pending]) in by_lister {
            out.known += known;
            out.enabled += enabled;
            out.never_visited += never;
            out.pending_changes += pending;
            let Some(id) = index.get(lidx) else { continue };
            let Some(l) = listers.iter().find(|l| l.id.as_ref() == Some(id)) else {
                continue;
            };
            out.listers.push(ListerOverview {
                name: l.name.clone(),
                instance_name: l.instance_name.clone(),
                updated: l.updated,
                known,
                enabled,
                never_visited: never,
                pending_changes: pending,
            });
        }
        if let Some(loader) = types
            .iter()
            .find(|t| t.task_type == format!("load-{visit_type}"))
        {
            out.queue = loader.queue;
            out.max_queue_length = loader.max_queue_length;
        }
        Ok(out)
    }

    /// The per-minute counts of a task type (`visit = false`) or visit type over the last
    /// `minutes` minutes, oldest first, one entry per minute (empty minutes included).
    pub async fn minute_counts(
        &self,
        name: &str,
        visit: bool,
        minutes: i64,
    ) -> Result<Vec<(DateTime<Utc>, Counts)>> {
        let base = if visit {
            VisitTypeKeys::new(&self.config().prefix, name).base
        } else {
            TypeKeys::new(&self.config().prefix, name).base
        };
        let now = self.server_now_us().await?;
        let last = now.div_euclid(MINUTE_US);
        let first = last - minutes.clamp(1, 24 * 60) + 1;
        let hours = rate_keys(&base, first, last);
        let mut pipe = redis::pipe();
        for (_, k) in &hours {
            pipe.hgetall(k);
        }
        let replies: Vec<HashMap<String, i64>> = pipe.query_async(&mut self.con().await?).await?;
        let mut found = minutes_from(&hours, replies, first, last);
        Ok((first..=last)
            .map(|m| {
                (
                    from_micros(m * MINUTE_US),
                    found.remove(&m).unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Due tasks of a type (next_run passed, not yet sent), oldest first, `limit` from the
    /// cursor of the page before (none for the first page). A page ends at a task; the next
    /// starts after it if it is still waiting, else at the first task of its next_run (so a
    /// task sent meanwhile skips none).
    pub async fn due_tasks(
        &self,
        task_type: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<TaskPage> {
        let info = self.require_type(task_type).await?;
        let now = self.server_now_us().await?;
        let ready = &info.keys.ready;
        let mut con = self.con().await?;
        let start: i64 = match cursor {
            None => 0,
            Some(c) => {
                let (score, member) = parse_cursor(c)?;
                let rank: Option<i64> = con.zrank(ready, &member).await?;
                match rank {
                    Some(r) => r + 1,
                    None => con.zcount(ready, "-inf", format!("({score}")).await?,
                }
            }
        };
        let limit = limit.clamp(1, 500) as i64;
        let (page, total): (Vec<(Vec<u8>, f64)>, i64) = redis::pipe()
            .cmd("ZRANGE")
            .arg(ready)
            .arg(start)
            .arg(start + limit - 1)
            .arg("WITHSCORES")
            .zcount(ready, "-inf", now)
            .query_async(&mut con)
            .await?;
        let page: Vec<_> = page.into_iter().filter(|(_, s)| *s as i64 <= now).collect();
        self.page_of(&info, page, total, limit as usize).await
    }

    /// Tasks of a type whose last ended run failed or was lost, latest failure first.
    pub async fn failing_tasks(
        &self,
        task_type: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<TaskPage> {
        let info = self.require_type(task_type).await?;
        let key = format!("{}:failed", info.keys.base);
        let mut con = self.con().await?;
        let start: i64 = match cursor {
            None => 0,
            Some(c) => {
                let (score, member) = parse_cursor(c)?;
                let rank: Option<i64> = con.zrevrank(&key, &member).await?;
                match rank {
                    Some(r) => r + 1,
                    None => con.zcount(&key, format!("({score}"), "+inf").await?,
                }
            }
        };
        let limit = limit.clamp(1, 500) as i64;
        let (page, total): (Vec<(Vec<u8>, f64)>, i64) = redis::pipe()
            .cmd("ZRANGE")
            .arg(&key)
            .arg(start)
            .arg(start + limit - 1)
            .arg("REV")
            .arg("WITHSCORES")
            .zcard(&key)
            .query_async(&mut con)
            .await?;
        // (members are decimal seqs here)
        let page = page
            .into_iter()
            .map(|(m, s)| {
                let seq: u64 = std::str::from_utf8(&m)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                (ready_member(seq), s, m)
            })
            .collect::<Vec<_>>();
        let mut out = self
            .page_of(
                &info,
                page.iter().map(|(m, s, _)| (m.clone(), *s)).collect(),
                total,
                limit as usize,
            )
            .await?;
        if let Some((_, s, m)) = page.last().filter(|_| out.next.is_some()) {
            out.next = Some(cursor_of(*s, m));
        }
        Ok(out)
    }

    async fn page_of(
        &self,
        info: &TypeInfo,
        page: Vec<(Vec<u8>, f64)>,
        total: i64,
        limit: usize,
    ) -> Result<TaskPage> {
        let next = (page.len() == limit)
            .then(|| page.last().map(|(m, s)| cursor_of(*s, m)))
            .flatten();
        let ids: Vec<i64> = page
            .iter()
            .map(|(m, _)| ids::compose(info.index, member_seq(m)))
            .collect();
        let found = self.get_tasks(&ids).await?;
        let by_id: HashMap<i64, Task> = found.into_iter().map(|t| (t.id, t)).collect();
        let mut out = TaskPage {
            next,
            total,
            ..Default::default()
        };
        for ((_, s), id) in page.iter().zip(&ids) {
            if let Some(t) = by_id.get(id) {
                out.tasks.push(t.clone());
                out.scores.push(*s as i64);
            }
        }
        Ok(out)
    }

    /// One step of a search of a type's tasks by the text of their arguments (`needle` in
    /// their args or kwargs JSON): reads `buckets` buckets of 64 tasks from `from` on and
    /// returns the matches and where to go on. Bounded: each step reads at most 4,096 buckets.
    pub async fn scan_arguments(
        &self,
        task_type: &str,
        needle: &str,
        from: u64,
        buckets: u64,
    ) -> Result<ScanStep> {
        if needle.is_empty() {
            return Err(Error::invalid("q", needle, "must not be empty"));
        }
        let info = self.require_type(task_type).await?;
        let mut con = self.con().await?;
        let seq: Option<u64> = con.hget(&info.keys.type_key, "task_seq").await?;
        let total = seq.unwrap_or(0) / 64 + 1;
        let stop = (from + buckets.clamp(1, 4096)).min(total);
        let mut pipe = redis::pipe();
        for b in from..stop {
            pipe.hgetall(format!("{}:t:{b}", info.keys.base));
        }
        let hashes: Vec<HashMap<u64, Vec<u8>>> = if from < stop {
            pipe.query_async(&mut con).await?
        } else {
            Vec::new()
        };
        let mut tasks = Vec::new();
        for (b, fields) in (from..stop).zip(hashes) {
            let mut seqs: Vec<u64> = fields.keys().copied().filter(|f| *f < 64).collect();
            seqs.sort_unstable();
            for f in seqs {
                let (Some(state), Some(args)) = (fields.get(&f), fields.get(&(f + 64))) else {
                    continue;
                };
                let text = String::from_utf8_lossy(args);
                if !text.contains(needle) {
                    continue;
                }
                let id = ids::compose(info.index, b * 64 + f);
                tasks.push(
                    TaskRecord::decode(state, args)?.into_task(id, &info.task_type.task_type)?,
                );
            }
        }
        Ok(ScanStep {
            tasks,
            next: (stop < total).then_some(stop),
            buckets: total,
        })
    }

    /// Makes due again, now, up to `limit` of a type's failing tasks whose failure is at or
    /// after `since`, from `offset` on among them (latest first); returns how many it
    /// respawned and the offset of the next batch, if more are left. Respawned tasks stay in
    /// the failing list until a run of theirs succeeds.
    pub async fn respawn_failing(
        &self,
        task_type: &str,
        since: DateTime<Utc>,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Option<usize>)> {
        crate::model::check_time("since", since)?;
        let info = self.require_type(task_type).await?;
        let key = format!("{}:failed", info.keys.base);
        let limit = limit.clamp(1, 1000);
        let mut con = self.con().await?;
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg("+inf")
            .arg(to_micros(since))
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(offset)
            .arg(limit)
            .query_async(&mut con)
            .await?;
        let ids: Vec<i64> = members
            .iter()
            .filter_map(|m| m.parse().ok())
            .map(|seq| ids::compose(info.index, seq))
            .collect();
        if !ids.is_empty() {
            self.set_status_tasks(
                &ids,
                TaskStatus::NextRunNotScheduled,
                Some(Utc::now()),
                false,
            )
            .await?;
        }
        let more = (members.len() == limit).then_some(offset + limit);
        Ok((ids.len(), more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let c = cursor_of(1.7e15, &[0, 0, 0, 1, 2]);
        assert_eq!(
            parse_cursor(&c).unwrap(),
            (1_700_000_000_000_000, vec![0, 0, 0, 1, 2])
        );
        for bad in ["", "x", "12:zz", "12:abc", "nope:00"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
        assert_eq!(member_seq(&ready_member(0x01_0203_0405)), 0x01_0203_0405);
    }

    #[test]
    fn minutes_are_read_from_their_hours() {
        let hours = rate_keys("b", 119, 121);
        assert_eq!(hours.len(), 2);
        let mut h1 = HashMap::new();
        h1.insert("59:d".to_string(), 3);
        h1.insert("58:d".to_string(), 9); // minute 118: outside
        let mut h2 = HashMap::new();
        h2.insert("0:e".to_string(), 2);
        h2.insert("1:d".to_string(), 1);
        h2.insert("junk".to_string(), 1);
        let m = minutes_from(&hours, vec![h1, h2], 119, 121);
        assert_eq!(m.len(), 3);
        assert_eq!(sum(&m).get("d"), Some(&4));
        assert_eq!(sum(&m).get("e"), Some(&2));
    }
}
