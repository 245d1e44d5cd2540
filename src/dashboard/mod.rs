//! The operators' dashboard, under `/ui/` of the RPC server (`rpc-serve` and `serve`): an
//! overview of every task type and visit type, charts of what the runners and the listener
//! did by the minute, pages of due and failing tasks, a task's page with its runs, a search by
//! argument text, and actions (respawn, disable, enable; respawn the failing tasks of a type).
//!
//! The page (`assets/`, embedded in the binary, no build step) is a small script that reads
//! the JSON routes below and refreshes the overview every few seconds. Every figure comes
//! from counters and sorted-set ranges (`crate::store::overview`), never from a scan, except
//! the search, which reads a bounded number of buckets per request and shows its progress.
//!
//! Actions change tasks, so they are refused unless the server asks for a password
//! (`rpc.users`) or listens on a loopback address only; and, so that no other site can make a
//! logged-in browser send them, they must carry the header `x-swh-dashboard: 1`, which a
//! cross-site form or script cannot add without a CORS preflight this server never grants.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Error;
use crate::model::{Task, TaskRun, TaskStatus};
use crate::store::Store;
use crate::store::overview::{
    Counts, ListerOverview, Overview, QueueSight, TaskPage, TypeOverview, VisitOverview,
};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// How the dashboard runs.
#[derive(Clone, Debug, Default)]
pub struct DashboardConfig {
    /// Where the broker queues are, for their lengths.
    pub queues: QueueSight,
    /// Why actions are refused, if they are (see the module's documentation).
    pub actions_refused: Option<String>,
}

impl DashboardConfig {
    /// Actions are allowed when the server asks for a password or listens on loopback only.
    pub fn new(queues: QueueSight, host: &str, has_users: bool) -> Self {
        let loopback = matches!(host, "127.0.0.1" | "::1" | "localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback());
        let actions_refused = (!has_users && !loopback).then(|| {
            format!(
                "actions are off: this server listens on {host} and asks for no password \
                 (set rpc.users to allow them)"
            )
        });
        DashboardConfig {
            queues,
            actions_refused,
        }
    }
}

#[derive(Clone)]
struct Dash {
    store: Store,
    config: std::sync::Arc<DashboardConfig>,
}

/// The dashboard's routes, to nest under `/ui`.
pub fn router(store: Store, config: DashboardConfig) -> Router {
    let state = Dash {
        store,
        config: std::sync::Arc::new(config),
    };
    Router::new()
        .route("/", get(page))
        .route("/assets/app.js", get(|| asset(APP_JS, "text/javascript")))
        .route("/assets/app.css", get(|| asset(APP_CSS, "text/css")))
        .route("/api/overview", get(overview))
        .route("/api/series", get(series))
        .route("/api/types/{task_type}/due", get(due))
        .route("/api/types/{task_type}/failing", get(failing))
        .route("/api/types/{task_type}/search", get(search))
        .route(
            "/api/types/{task_type}/respawn-failing",
            post(respawn_failing),
        )
        .route("/api/tasks/{id}", get(task))
        .route("/api/tasks/{id}/{action}", post(task_action))
        .route(
            "/api/{*rest}",
            get(|| async { not_found("no such dashboard route") }),
        )
        .route("/{*view}", get(page))
        .with_state(state)
}

/// The page (for `/ui/`, which the nested routes do not reach, and every view's path).
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, format!("{kind}; charset=utf-8")),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}

fn not_found(msg: &str) -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({ "error": msg }))).into_response()
}

/// An error as the page shows it: the caller's mistakes are 400 (404 for what is not there),
/// the rest 500.
fn error(e: Error) -> Response {
    let status = match &e {
        Error::UnknownTaskType(_) => StatusCode::NOT_FOUND,
        e if e.is_caller_error() => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::error!("dashboard: {e}");
    }
    (status, axum::Json(json!({ "error": e.to_string() }))).into_response()
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

fn time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(t.to_rfc3339()))
}

fn us(t: Option<i64>) -> Value {
    time(t.map(crate::model::from_micros))
}

fn counts(c: &Counts) -> Value {
    json!(c)
}

fn type_json(t: &TypeOverview) -> Value {
    let statuses: BTreeMap<&str, i64> = TaskStatus::ALL
        .iter()
        .zip(t.by_status)
        .map(|(s, n)| (s.as_str(), n))
        .collect();
    json!({
        "task_type": t.task_type,
        "description": t.description,
        "backend_name": t.backend_name,
        "max_queue_length": t.max_queue_length,
        "interval_s": t.interval_s,
        "tasks": statuses,
        "due": t.due,
        "due_prio": t.due_prio,
        "overdue": t.overdue,
        "in_flight": t.in_flight,
        "oldest_due": us(t.oldest_due_us),
        "queue": t.queue,
        "prio_queue": t.prio_queue,
        "failing": t.failing,
        "last_hour": counts(&t.last_hour),
    })
}

fn lister_json(l: &ListerOverview) -> Value {
    json!({
        "name": l.name,
        "instance_name": l.instance_name,
        "updated": time(l.updated),
        "known": l.known,
        "enabled": l.enabled,
        "never_visited": l.never_visited,
        "pending_changes": l.pending_changes,
    })
}

fn visit_json(v: &VisitOverview) -> Value {
    json!({
        "visit_type": v.visit_type,
        "eligible": v.eligible,
        "awaiting": v.awaiting,
        "known": v.known,
        "enabled": v.enabled,
        "never_visited": v.never_visited,
        "pending_changes": v.pending_changes,
        "oldest_sent": us(v.oldest_sent_us),
        "queue": v.queue,
        "max_queue_length": v.max_queue_length,
        "listers": v.listers.iter().map(lister_json).collect::<Vec<_>>(),
        "last_hour": counts(&v.last_hour),
    })
}

/// The overview as JSON (also used by the benchmark's dashboard phase).
pub fn overview_json(o: &Overview, actions_refused: Option<&str>) -> Value {
    json!({
        "now": us(Some(o.now_us)),
        "types": o.types.iter().map(type_json).collect::<Vec<_>>(),
        "visit_types": o.visit_types.iter().map(visit_json).collect::<Vec<_>>(),
        "actions": actions_refused.is_none(),
        "actions_refused": actions_refused,
    })
}

async fn overview(State(d): State<Dash>) -> Response {
    match d.store.overview(&d.config.queues).await {
        Ok(o) => ok(overview_json(&o, d.config.actions_refused.as_deref())),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
struct SeriesQuery {
    /// A task type, or (with `visit`) a visit type; all task types summed when absent.
    name: Option<String>,
    #[serde(default)]
    visit: bool,
    minutes: Option<i64>,
}

async fn series(State(d): State<Dash>, Query(q): Query<SeriesQuery>) -> Response {
    let minutes = q.minutes.unwrap_or(360).clamp(10, 24 * 60);
    let names = match &q.name {
        Some(n) => vec![n.clone()],
        None => match d.store.get_task_types().await {
            Ok(t) => t.into_iter().map(|t| t.task_type).collect(),
            Err(e) => return error(e),
        },
    };
    let mut summed: Vec<(DateTime<Utc>, Counts)> = Vec::new();
    for n in &names {
        match d.store.minute_counts(n, q.visit, minutes).await {
            Ok(points) if summed.is_empty() => summed = points,
            Ok(points) => {
                for ((_, into), (_, c)) in summed.iter_mut().zip(points) {
                    for (k, v) in c {
                        *into.entry(k).or_default() += v;
                    }
                }
            }
            Err(e) => return error(e),
        }
    }
    ok(json!({
        "points": summed
            .iter()
            .map(|(t, c)| json!({ "t": t.to_rfc3339(), "counts": counts(c) }))
            .collect::<Vec<_>>(),
    }))
}

fn task_json(t: &Task) -> Value {
    json!({
        "id": t.id,
        "task_type": t.task_type,
        "status": t.status.as_str(),
        "policy": t.policy.as_str(),
        "priority": t.priority.map(|p| p.as_str()),
        "next_run": t.next_run.to_rfc3339(),
        "current_interval_s": t.current_interval.map(|i| i.as_micros() as f64 / 1e6),
        "retries_left": t.retries_left,
        "args": t.arguments.args,
        "kwargs": t.arguments.kwargs,
    })
}

fn run_json(r: &TaskRun) -> Value {
    json!({
        "id": r.id,
        "backend_id": r.backend_id,
        "status": r.status.as_str(),
        "scheduled": time(r.scheduled),
        "started": time(r.started),
        "ended": time(r.ended),
        "metadata": r.metadata,
    })
}

fn page_json(p: &TaskPage) -> Value {
    json!({
        "tasks": p.tasks.iter().map(task_json).collect::<Vec<_>>(),
        "scores": p.scores.iter().map(|s| us(Some(*s))).collect::<Vec<_>>(),
        "next": p.next,
        "total": p.total,
    })
}

#[derive(Deserialize)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn due(
    State(d): State<Dash>,
    Path(task_type): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    match d
        .store
        .due_tasks(&task_type, q.cursor.as_deref(), q.limit.unwrap_or(50))
        .await
    {
        Ok(p) => ok(page_json(&p)),
        Err(e) => error(e),
    }
}

async fn failing(
    State(d): State<Dash>,
    Path(task_type): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    match d
        .store
        .failing_tasks(&task_type, q.cursor.as_deref(), q.limit.unwrap_or(50))
        .await
    {
        Ok(p) => ok(page_json(&p)),
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
    from: Option<u64>,
}

async fn search(
    State(d): State<Dash>,
    Path(task_type): Path<String>,
    Query(q): Query<SearchQuery>,
) -> Response {
    match d
        .store
        .scan_arguments(&task_type, &q.q, q.from.unwrap_or(0), 256)
        .await
    {
        Ok(step) => ok(json!({
            "tasks": step.tasks.iter().map(task_json).collect::<Vec<_>>(),
            "next": step.next,
            "buckets": step.buckets,
        })),
        Err(e) => error(e),
    }
}

fn parse_id(id: &str) -> Result<i64, Error> {
    id.parse()
        .map_err(|_| Error::invalid("id", id, "is not a task id (a number)"))
}

async fn task(State(d): State<Dash>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(e) => return error(e),
    };
    let tasks = match d.store.get_tasks(&[id]).await {
        Ok(t) => t,
        Err(e) => return error(e),
    };
    let Some(t) = tasks.first() else {
        return not_found(&format!("no task {id}"));
    };
    let runs = match d.store.get_task_runs(&[id], None).await {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let info = d.store.type_info(&t.task_type).await.ok().flatten();
    ok(json!({
        "task": task_json(t),
        "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
        "type": info.map(|i| json!({
            "interval_s": i.task_type.default_interval.map(|v| v.as_micros() as f64 / 1e6),
            "min_interval_s": i.task_type.min_interval.map(|v| v.as_micros() as f64 / 1e6),
            "max_interval_s": i.task_type.max_interval.map(|v| v.as_micros() as f64 / 1e6),
            "backoff_factor": i.task_type.backoff_factor,
            "backend_name": i.task_type.backend_name,
        })),
        "actions": d.config.actions_refused.is_none(),
    }))
}

/// The refusal of an action, unless the dashboard allows them and the request carries its
/// header.
fn refusal(d: &Dash, headers: &HeaderMap) -> Option<Response> {
    if let Some(why) = &d.config.actions_refused {
        return Some((StatusCode::FORBIDDEN, axum::Json(json!({ "error": why }))).into_response());
    }
    if headers.get("x-swh-dashboard").and_then(|v| v.to_str().ok()) != Some("1") {
        return Some((
            StatusCode::FORBIDDEN,
            axum::Json(json!({
                "error": "actions must come from the dashboard's page (header x-swh-dashboard: 1)"
            })),
        )
            .into_response());
    }
    None
}

async fn task_action(
    State(d): State<Dash>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&d, &headers) {
        return r;
    }
    let id = match parse_id(&id) {
        Ok(i) => i,
        Err(e) => return error(e),
    };
    match d.store.get_tasks(&[id]).await {
        Ok(t) if t.is_empty() => return not_found(&format!("no task {id}")),
        Ok(_) => {}
        Err(e) => return error(e),
    }
    let done = match action.as_str() {
        "respawn" => {
            d.store
                .set_status_tasks(
                    &[id],
                    TaskStatus::NextRunNotScheduled,
                    Some(Utc::now()),
                    false,
                )
                .await
        }
        "enable" => {
            d.store
                .set_status_tasks(&[id], TaskStatus::NextRunNotScheduled, None, false)
                .await
        }
        "disable" => d.store.disable_tasks(&[id]).await,
        other => {
            return error(Error::invalid(
                "action",
                other,
                "is not one of respawn, enable, disable",
            ));
        }
    };
    if let Err(e) = done {
        return error(e);
    }
    tracing::info!("dashboard: {action} task {id}");
    task(State(d), Path(id.to_string())).await
}

#[derive(Deserialize)]
struct RespawnBody {
    since: String,
    #[serde(default)]
    offset: usize,
}

async fn respawn_failing(
    State(d): State<Dash>,
    Path(task_type): Path<String>,
    headers: HeaderMap,
    body: Result<axum::Json<RespawnBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(r) = refusal(&d, &headers) {
        return r;
    }
    let body = match body {
        Ok(axum::Json(b)) => b,
        Err(e) => {
            return error(Error::invalid(
                "body",
                e.body_text(),
                "is not {since, offset}",
            ));
        }
    };
    let since = match DateTime::parse_from_rfc3339(&body.since) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => {
            return error(Error::invalid(
                "since",
                &body.since,
                "is not a date (RFC 3339, e.g. 2026-12-01T00:00:00Z)",
            ));
        }
    };
    match d
        .store
        .respawn_failing(&task_type, since, body.offset, 1000)
        .await
    {
        Ok((n, next)) => {
            tracing::info!("dashboard: respawned {n} failing tasks of {task_type}");
            ok(json!({ "respawned": n, "next": next }))
        }
        Err(e) => error(e),
    }
}
