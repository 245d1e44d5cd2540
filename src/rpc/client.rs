//! A client of the RPC API (the same protocol as the original's `RemoteScheduler`), used by the
//! command line's remote mode and the benchmark's `--url`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::codec::{self, Wire};
use super::methods::{self, new_task_dict, parse_run, parse_task, task_type_row};
use super::server::MSGPACK;
use crate::error::{Error, Result};
use crate::model::{
    NewTask, NewTaskRun, Policy, RunStatus, Task, TaskRun, TaskSearch, TaskStatus, TaskType,
};

/// A connection to an RPC server.
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    base: String,
}

fn opt_dt(t: Option<DateTime<Utc>>) -> Wire {
    t.map_or(Wire::Nil, Wire::DateTime)
}

fn opt_n(n: Option<usize>) -> Wire {
    n.map_or(Wire::Nil, |n| Wire::Int(n as i128))
}

fn opt_meta(m: Option<&Map<String, Value>>) -> Wire {
    m.map_or(Wire::Nil, methods::json_map)
}

fn ids(v: &[i64]) -> Wire {
    Wire::Array(v.iter().map(|i| Wire::Int((*i).into())).collect())
}

fn rows<T>(
    w: Wire,
    parse: impl Fn(&Wire) -> std::result::Result<T, methods::CallError>,
) -> Result<Vec<T>> {
    match w {
        Wire::Array(a) => a.iter().map(|r| parse(r).map_err(bad_reply)).collect(),
        Wire::Nil => Ok(Vec::new()),
        other => Err(Error::Other(format!(
            "unexpected reply: a {}",
            other.kind()
        ))),
    }
}

fn bad_reply(e: methods::CallError) -> Error {
    Error::Other(format!("unexpected reply: {}", e.message))
}

impl RpcClient {
    /// A client of the server at `url` (`http://host:port/`).
    pub fn new(url: &str) -> Result<Self> {
        if !url.starts_with("http://") {
            return Err(Error::invalid(
                "url",
                url,
                "expected an http:// URL of the scheduler's RPC server",
            ));
        }
        let base = if url.ends_with('/') {
            url.to_string()
        } else {
            format!("{url}/")
        };
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Other(e.to_string()))?;
        Ok(RpcClient { http, base })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Calls a method: msgpack both ways, every keyword argument sent (as the original client).
    pub async fn call(&self, path: &str, args: Wire) -> Result<Wire> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .header("content-type", MSGPACK)
            .header("accept", MSGPACK)
            .body(codec::to_msgpack(&args))
            .send()
            .await
            .map_err(|e| Error::RpcConnection {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await.map_err(|e| Error::RpcConnection {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let decoded = if ct.starts_with(MSGPACK) {
            codec::from_msgpack(&body)
        } else if ct.starts_with("application/json") {
            codec::from_json(&body)
        } else {
            Ok(Wire::Str(String::from_utf8_lossy(&body).into_owned()))
        }
        .map_err(|e| Error::Other(format!("unreadable reply from {url}: {e}")))?;
        if status == 200 {
            return Ok(decoded);
        }
        let text = |k: &str| match decoded.get(k) {
            Some(Wire::Str(s)) => Some(s.clone()),
            _ => None,
        };
        Err(Error::Remote {
            status,
            kind: text("type").unwrap_or_else(|| "HTTPError".into()),
            message: text("message").unwrap_or_else(|| format!("HTTP {status} from {url}")),
        })
    }

    pub async fn create_task_type(&self, t: &TaskType) -> Result<()> {
        self.call(
            "task_type/create",
            Wire::map([("task_type", task_type_row(t))]),
        )
        .await
        .map(drop)
    }

    pub async fn get_task_type(&self, name: &str) -> Result<Option<TaskType>> {
        match self
            .call(
                "task_type/get",
                Wire::map([("task_type_name", Wire::str(name))]),
            )
            .await?
        {
            Wire::Nil => Ok(None),
            row => methods::read_task_type(&row).map(Some).map_err(bad_reply),
        }
    }

    pub async fn get_task_types(&self) -> Result<Vec<TaskType>> {
        rows(
            self.call("task_type/get_all", Wire::Map(Vec::new()))
                .await?,
            methods::read_task_type,
        )
    }

    pub async fn create_tasks(&self, tasks: &[NewTask], policy: Policy) -> Result<Vec<Task>> {
        let args = Wire::map([
            (
                "tasks",
                Wire::Array(tasks.iter().map(new_task_dict).collect()),
            ),
            ("policy", Wire::str(policy.as_str())),
        ]);
        rows(self.call("task/create", args).await?, parse_task)
    }

    pub async fn set_status_tasks(
        &self,
        task_ids: &[i64],
        status: TaskStatus,
        next_run: Option<DateTime<Utc>>,
        except_completed_tasks: bool,
    ) -> Result<()> {
        let mut args = vec![
            (Wire::str("task_ids"), ids(task_ids)),
            (Wire::str("status"), Wire::str(status.as_str())),
            (Wire::str("next_run"), opt_dt(next_run)),
        ];
        // sent only when set, so that servers predating it (the original 0.16) accept the call
        if except_completed_tasks {
            args.push((Wire::str("except_completed_tasks"), Wire::Bool(true)));
        }
        self.call("task/set_status", Wire::Map(args))
            .await
            .map(drop)
    }

    pub async fn disable_tasks(&self, task_ids: &[i64]) -> Result<()> {
        self.call("task/disable", Wire::map([("task_ids", ids(task_ids))]))
            .await
            .map(drop)
    }

    pub async fn search_tasks(&self, s: &TaskSearch) -> Result<Vec<Task>> {
        let strs = |v: Vec<&str>| {
            if v.is_empty() {
                Wire::Nil
            } else {
                Wire::Array(v.into_iter().map(Wire::str).collect())
            }
        };
        let args = Wire::map([
            (
                "task_id",
                if s.task_ids.is_empty() {
                    Wire::Nil
                } else {
                    ids(&s.task_ids)
                },
            ),
            (
                "task_type",
                strs(s.task_types.iter().map(String::as_str).collect()),
            ),
            (
                "status",
                strs(s.statuses.iter().map(|x| x.as_str()).collect()),
            ),
            (
                "priority",
                strs(s.priorities.iter().map(|x| x.as_str()).collect()),
            ),
            (
                "policy",
                s.policies
                    .first()
                    .map_or(Wire::Nil, |p| Wire::str(p.as_str())),
            ),
            ("before", opt_dt(s.before)),
            ("after", opt_dt(s.after)),
            ("limit", opt_n(s.limit)),
        ]);
        rows(self.call("task/search", args).await?, parse_task)
    }

    pub async fn get_tasks(&self, task_ids: &[i64]) -> Result<Vec<Task>> {
        rows(
            self.call("task/get", Wire::map([("task_ids", ids(task_ids))]))
                .await?,
            parse_task,
        )
    }

    async fn ready(
        &self,
        path: &str,
        task_type: &str,
        timestamp: Option<DateTime<Utc>>,
        num_tasks: Option<usize>,
    ) -> Result<Vec<Task>> {
        let args = Wire::map([
            ("task_type", Wire::str(task_type)),
            ("timestamp", opt_dt(timestamp)),
            ("num_tasks", opt_n(num_tasks)),
        ]);
        rows(self.call(path, args).await?, parse_task)
    }

    pub async fn peek_ready_tasks(
        &self,
        task_type: &str,
        timestamp: Option<DateTime<Utc>>,
        num_tasks: Option<usize>,
    ) -> Result<Vec<Task>> {
        self.ready("task/peek_ready", task_type, timestamp, num_tasks)
            .await
    }

    pub async fn grab_ready_tasks(
        &self,
        task_type: &str,
        timestamp: Option<DateTime<Utc>>,
        num_tasks: Option<usize>,
    ) -> Result<Vec<Task>> {
        self.ready("task/grab_ready", task_type, timestamp, num_tasks)
            .await
    }

    pub async fn peek_ready_priority_tasks(
        &self,
        task_type: &str,
        timestamp: Option<DateTime<Utc>>,
        num_tasks: Option<usize>,
    ) -> Result<Vec<Task>> {
        self.ready(
            "task/peek_ready_with_priority",
            task_type,
            timestamp,
            num_tasks,
        )
        .await
    }

    pub async fn grab_ready_priority_tasks(
        &self,
        task_type: &str,
        timestamp: Option<DateTime<Utc>>,
        num_tasks: Option<usize>,
    ) -> Result<Vec<Task>> {
        self.ready(
            "task/grab_ready_with_priority",
            task_type,
            timestamp,
            num_tasks,
        )
        .await
    }

    pub async fn schedule_task_run(
        &self,
        task_id: i64,
        backend_id: &str,
        metadata: Option<Map<String, Value>>,
        timestamp: Option<DateTime<Utc>>,
    ) -> Result<TaskRun> {
        let args = Wire::map([
            ("task_id", Wire::Int(task_id.into())),
            ("backend_id", Wire::str(backend_id)),
            ("metadata", opt_meta(metadata.as_ref())),
            ("timestamp", opt_dt(timestamp)),
        ]);
        parse_run(&self.call("task_run/schedule_one", args).await?).map_err(bad_reply)
    }

    pub async fn mass_schedule_task_runs(&self, runs: &[NewTaskRun]) -> Result<()> {
        let runs = runs
            .iter()
            .map(|r| {
                Wire::map([
                    ("task", Wire::Int(r.task.into())),
                    ("backend_id", Wire::str(r.backend_id.clone())),
                    (
                        "scheduled",
                        r.scheduled
                            .map_or(Wire::DateTime(Utc::now()), Wire::DateTime),
                    ),
                    ("metadata", methods::json_map(&r.metadata)),
                ])
            })
            .collect();
        self.call(
            "task_run/schedule",
            Wire::map([("task_runs", Wire::Array(runs))]),
        )
        .await
        .map(drop)
    }

    pub async fn start_task_run(
        &self,
        backend_id: &str,
        metadata: Option<Map<String, Value>>,
        timestamp: Option<DateTime<Utc>>,
    ) -> Result<Option<TaskRun>> {
        let args = Wire::map([
            ("backend_id", Wire::str(backend_id)),
            ("metadata", opt_meta(metadata.as_ref())),
            ("timestamp", opt_dt(timestamp)),
        ]);
        match self.call("task_run/start", args).await? {
            Wire::Nil => Ok(None),
            row => parse_run(&row).map(Some).map_err(bad_reply),
        }
    }

    pub async fn end_task_run(
        &self,
        backend_id: &str,
        status: RunStatus,
        metadata: Option<Map<String, Value>>,
        timestamp: Option<DateTime<Utc>>,
    ) -> Result<Option<TaskRun>> {
        let args = Wire::map([
            ("backend_id", Wire::str(backend_id)),
            ("status", Wire::str(status.as_str())),
            ("metadata", opt_meta(metadata.as_ref())),
            ("timestamp", opt_dt(timestamp)),
            ("result", Wire::Nil),
        ]);
        match self.call("task_run/end", args).await? {
            Wire::Nil => Ok(None),
            row => parse_run(&row).map(Some).map_err(bad_reply),
        }
    }

    pub async fn get_task_runs(
        &self,
        task_ids: &[i64],
        limit: Option<usize>,
    ) -> Result<Vec<TaskRun>> {
        rows(
            self.call(
                "task_run/get",
                Wire::map([("task_ids", ids(task_ids)), ("limit", opt_n(limit))]),
            )
            .await?,
            parse_run,
        )
    }
}
