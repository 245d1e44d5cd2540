//! The Lua scripts of `lua/`, with their `--@include` lines resolved, called by SHA.
//!
//! Every state change is one script (see the header of each file for its KEYS, ARGV and return
//! value). Scripts are compiled into the binary, loaded on first use and called with EVALSHA;
//! when Redis has lost them (restart, `SCRIPT FLUSH`) the NOSCRIPT reply makes us load them
//! again and retry, which is safe because a NOSCRIPT call ran nothing.
//!
//! **The slot guard.** Every call declares, after its own keys, one more key of the same hash
//! tag that never exists (`<prefix>:{<tag>}:guard`). Scripts derive some key names from what
//! they read (the hash of a task's bucket, say), so they cannot declare them all up front; on
//! a Redis Cluster, a script that met a key already moved to another node while its slot
//! migrates would fail halfway, its first writes done. A declared key that is missing makes
//! Redis refuse the whole call while the slot is migrating (`ASK`, then `TRYAGAIN` on the
//! importing node), before the script starts; the cluster client retries until the slot has
//! moved. So no script ever runs on a slot in migration, and none can see part of its keys.
//! On a single server the guard costs one argument.

use std::collections::HashSet;
use std::sync::OnceLock;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, Value};

use crate::error::{Error, Result};

macro_rules! lua_files {
    ($($name:literal),+ $(,)?) => {
        &[$(($name, include_str!(concat!("../../lua/", $name, ".lua")))),+]
    };
}

const INCLUDES: &[(&str, &str)] = lua_files!(
    "includes/hashes",
    "includes/codes",
    "includes/writes",
    "includes/time",
    "includes/task",
    "includes/run",
    "includes/type",
    "includes/end_rules",
    "includes/end_run",
    "includes/origin",
    "includes/leaves",
    "includes/grab",
    "includes/broker",
);

/// The scripts, by name (their file name in `lua/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScriptName {
    RegisterType,
    CreateTaskType,
    CreateTasks,
    SetStatusTasks,
    ReadyTasks,
    GetTasks,
    ScheduleRuns,
    UpdateRuns,
    GetTaskRuns,
    ScanTasks,
    ArchiveScan,
    DeleteArchived,
    BackendIds,
    Dispatch,
    SweepLost,
    InflightRuns,
    ListerGetOrCreate,
    ListerUpdate,
    RecordOrigins,
    VisitStatsUpsert,
    VisitStatsGet,
    ListedOrigins,
    GrabNextVisits,
    SendVisits,
    VisitTypeIndex,
    VisitOutcomes,
    OutboxClaim,
    OutboxAck,
}

const SCRIPTS: &[(&str, &str)] = lua_files!(
    "register_type",
    "create_task_type",
    "create_tasks",
    "set_status_tasks",
    "ready_tasks",
    "get_tasks",
    "schedule_runs",
    "update_runs",
    "get_task_runs",
    "scan_tasks",
    "archive_scan",
    "delete_archived",
    "backend_ids",
    "dispatch",
    "sweep_lost",
    "inflight_runs",
    "lister_get_or_create",
    "lister_update",
    "record_origins",
    "visit_stats_upsert",
    "visit_stats_get",
    "listed_origins",
    "grab_next_visits",
    "send_visits",
    "visit_type_index",
    "visit_outcomes",
    "outbox_claim",
    "outbox_ack",
);

impl ScriptName {
    #[cfg(test)]
    const ALL: [ScriptName; 28] = [
        ScriptName::RegisterType,
        ScriptName::CreateTaskType,
        ScriptName::CreateTasks,
        ScriptName::SetStatusTasks,
        ScriptName::ReadyTasks,
        ScriptName::GetTasks,
        ScriptName::ScheduleRuns,
        ScriptName::UpdateRuns,
        ScriptName::GetTaskRuns,
        ScriptName::ScanTasks,
        ScriptName::ArchiveScan,
        ScriptName::DeleteArchived,
        ScriptName::BackendIds,
        ScriptName::Dispatch,
        ScriptName::SweepLost,
        ScriptName::InflightRuns,
        ScriptName::ListerGetOrCreate,
        ScriptName::ListerUpdate,
        ScriptName::RecordOrigins,
        ScriptName::VisitStatsUpsert,
        ScriptName::VisitStatsGet,
        ScriptName::ListedOrigins,
        ScriptName::GrabNextVisits,
        ScriptName::SendVisits,
        ScriptName::VisitTypeIndex,
        ScriptName::VisitOutcomes,
        ScriptName::OutboxClaim,
        ScriptName::OutboxAck,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The script's file name in `lua/`, without extension.
    pub fn file(self) -> &'static str {
        SCRIPTS[self.index()].0
    }
}

/// A script ready to send: its resolved source and SHA1.
pub struct LoadedScript {
    pub source: String,
    pub sha: String,
}

/// All scripts, resolved once per process.
pub fn scripts() -> &'static [LoadedScript] {
    static ALL: OnceLock<Vec<LoadedScript>> = OnceLock::new();
    ALL.get_or_init(|| {
        SCRIPTS
            .iter()
            .map(|(name, src)| {
                let source = resolve_includes(name, src);
                let sha = redis::Script::new(&source).get_hash().to_string();
                LoadedScript { source, sha }
            })
            .collect()
    })
}

fn script(name: ScriptName) -> &'static LoadedScript {
    &scripts()[name.index()]
}

/// Inlines `--@include <name>` lines (once per script, depth first), as BullMQ's loader does.
pub fn resolve_includes(name: &str, src: &str) -> String {
    fn walk(name: &str, src: &str, seen: &mut HashSet<String>, out: &mut String) {
        for line in src.lines() {
            if let Some(inc) = line.trim().strip_prefix("--@include ") {
                let inc = format!("includes/{}", inc.trim());
                if seen.insert(inc.clone()) {
                    let body = INCLUDES
                        .iter()
                        .find(|(n, _)| *n == inc)
                        .unwrap_or_else(|| panic!("{name}.lua includes unknown {inc}"))
                        .1;
                    walk(&inc, body, seen, out);
                }
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    let mut out = String::with_capacity(src.len() * 3);
    walk(name, src, &mut HashSet::new(), &mut out);
    out
}

/// An EVALSHA call being built.
pub struct Call {
    name: ScriptName,
    cmd: Cmd,
}

impl Call {
    /// A call of `name` on `keys`, the first of which names the slot (its hash tag); the
    /// slot guard is added after them.
    pub fn new(name: ScriptName, keys: &[&str]) -> Self {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&script(name).sha).arg(keys.len() + 1);
        for k in keys {
            cmd.arg(*k);
        }
        cmd.arg(slot_guard(keys.first().copied().unwrap_or_default()));
        Call { name, cmd }
    }

    pub fn arg<T: redis::ToRedisArgs>(&mut self, v: T) -> &mut Self {
        self.cmd.arg(v);
        self
    }

    /// Runs the call, loading the script first if Redis does not have it.
    pub async fn run<C: ConnectionLike + Send>(&self, con: &mut C) -> Result<Value> {
        match self.cmd.query_async::<Value>(con).await {
            Err(e) if is_noscript(&e) => {
                load(con, self.name).await?;
                self.cmd.query_async(con).await.map_err(script_error)
            }
            other => other.map_err(script_error),
        }
    }
}

/// The slot guard of the slot `key` is in: `<up to its hash tag>:guard`.
pub fn slot_guard(key: &str) -> String {
    match key.find('{').and_then(|o| Some(o + key[o..].find('}')?)) {
        Some(close) => format!("{}:guard", &key[..=close]),
        None => format!("{key}:guard"),
    }
}

fn is_noscript(e: &RedisError) -> bool {
    e.code() == Some("NOSCRIPT")
}

async fn load<C: ConnectionLike + Send>(con: &mut C, name: ScriptName) -> Result<()> {
    let s = script(name);
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(&s.source)
        .query_async(con)
        .await?;
    debug_assert_eq!(sha, s.sha);
    Ok(())
}

/// Runs several calls in one round trip. Calls that got NOSCRIPT did not run: they are sent
/// again once their scripts are loaded. Each call's own error stays in its slot. On a
/// Cluster, where a pipeline must stay in one slot, the calls go out at once side by side on
/// the multiplexed connection, each to its slot's node.
pub async fn run_pipelined(con: &mut super::Con, calls: &[Call]) -> Result<Vec<Result<Value>>> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    if let super::Con::Cluster(cluster) = con {
        let runs = calls.iter().map(|call| {
            let mut c = cluster.clone();
            async move { call.run(&mut c).await }
        });
        return Ok(futures_util::future::join_all(runs).await);
    }
    let mut results: Vec<Option<Result<Value>>> = (0..calls.len()).map(|_| None).collect();
    let mut pending: Vec<usize> = (0..calls.len()).collect();
    for attempt in 0..2 {
        let mut pipe = Pipeline::with_capacity(pending.len());
        pipe.ignore_errors();
        for &i in &pending {
            pipe.add_command(calls[i].cmd.clone());
        }
        let replies: Vec<Value> = pipe.query_async(con).await?;
        let mut again = Vec::new();
        let mut to_load = HashSet::new();
        for (&i, reply) in pending.iter().zip(replies) {
            match reply {
                Value::ServerError(e) if e.code() == "NOSCRIPT" && attempt == 0 => {
                    to_load.insert(calls[i].name);
                    again.push(i);
                }
                Value::ServerError(e) => results[i] = Some(Err(script_error(e.into()))),
                v => results[i] = Some(Ok(v)),
            }
        }
        if again.is_empty() {
            break;
        }
        for name in to_load {
            load(con, name).await?;
        }
        pending = again;
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Other("script not run".into()))))
        .collect())
}

/// Maps the errors our scripts raise (`SWH_*` codes) onto the crate's error type.
fn script_error(e: RedisError) -> Error {
    let detail = || {
        let d = e.detail().unwrap_or("");
        // errors raised with error() carry " script: <sha>, on @user_script:<line>."
        d.split(" script: ").next().unwrap_or(d).trim().to_string()
    };
    match e.code() {
        Some("SWH_UNKNOWN_TYPE") => Error::UnknownTaskType(detail()),
        Some("SWH_NO_INTERVAL") => Error::invalid(
            "policy",
            "recurring",
            format!(
                "task type {:?} has no default_interval, so its tasks can only be oneshot",
                detail()
            ),
        ),
        Some("SWH_STALE_DATA") => Error::StaleData(detail()),
        Some("SWH_LISTER_EXISTS") => Error::invalid(
            "lister.name",
            detail(),
            "another lister has this name and instance name",
        ),
        Some("SWH_UNKNOWN_TASK") => Error::invalid("task", detail(), "no such task"),
        Some("SWH_TOO_MANY_LISTERS") => {
            Error::Other(format!("cannot create more than {} listers", detail()))
        }
        Some("SWH_TOO_MANY_TYPES") => {
            Error::Other(format!("cannot create more than {} task types", detail()))
        }
        _ => e.into(),
    }
}

/// Loads every script (used at start-up so that the first calls need no retry). One command
/// each: on a Cluster, `SCRIPT LOAD` alone goes to every master.
pub async fn load_all<C: ConnectionLike + Send>(con: &mut C) -> Result<()> {
    for s in scripts() {
        let _: Value = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(&s.source)
            .query_async(con)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_resolves_and_names_match() {
        for (i, name) in ScriptName::ALL.iter().enumerate() {
            assert_eq!(name.index(), i);
            let src = &scripts()[i].source;
            assert!(!src.contains("--@include"), "{}", name.file());
            assert!(src.starts_with("--"), "{} lacks its header", name.file());
        }
        assert_eq!(ScriptName::ALL.len(), SCRIPTS.len());
    }

    #[test]
    fn the_slot_guard_shares_the_first_key_s_hash_tag() {
        assert_eq!(slot_guard("swh:{load-git}:type"), "swh:{load-git}:guard");
        assert_eq!(slot_guard("p:{vt:git}:meta"), "p:{vt:git}:guard");
        assert_eq!(slot_guard("swh:{global}:types"), "swh:{global}:guard");
    }

    #[test]
    fn includes_are_inlined_once() {
        let src = resolve_includes(
            "t",
            "--@include codes\n--@include codes\n--@include task\nreturn 1\n",
        );
        assert_eq!(src.matches("local TASK_BUCKET = 64").count(), 1);
        assert!(src.contains("local function load_task"));
    }
}
