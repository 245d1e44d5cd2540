//! The HTTP RPC server (axum): one `POST /<path>` per method, `GET /`, `GET /site-map` and
//! `GET /metrics`, wire-compatible with the original's `RemoteScheduler`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tracing::info;

use super::auth::Users;
use super::codec::{self, Wire};
use super::error::CallError;
use super::metrics::{self, MetricsConfig};
use crate::api::{self, SchedulerApi};
use crate::dashboard::{self, DashboardConfig};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::overview::QueueSight;

pub const MSGPACK: &str = "application/x-msgpack";
/// The default largest request body: it fits the largest legitimate call (a page of 100,000
/// listed origins, or of tasks) with room to spare.
pub const DEFAULT_MAX_BODY: usize = 32 << 20;
pub const JSON: &str = "application/json";

/// How the server runs.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    pub host: String,
    pub port: u16,
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
    /// What `/metrics` needs to find the broker queues.
    pub metrics: MetricsConfig,
    /// Who may call (basic authentication); nobody is asked when empty.
    pub users: Arc<Users>,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            host: "127.0.0.1".into(),
            port: 5008,
            max_body: DEFAULT_MAX_BODY,
            metrics: MetricsConfig::default(),
            users: Arc::default(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    api: Arc<dyn SchedulerApi>,
    /// The store behind `api`, when it is one: `/metrics` reads the broker queues through it.
    store: Option<Store>,
    metrics: Arc<MetricsConfig>,
}

/// The server's routes, serving the API of a store.
pub fn router(store: Store, config: &RpcConfig) -> Router {
    router_for(Arc::new(store.clone()), Some(store), config)
}

/// The server's routes, serving any implementation of the API; `/metrics` needs `store`.
pub fn router_for(api: Arc<dyn SchedulerApi>, store: Option<Store>, config: &RpcConfig) -> Router {
    let dashboard = store.clone().map(|s| {
        let sight = QueueSight {
            naming: config.metrics.naming.clone(),
            priority_queue_prefix: config.metrics.priority_queue_prefix.clone(),
            broker: config.metrics.broker.clone(),
        };
        dashboard::router(
            s,
            DashboardConfig::new(sight, &config.host, config.users.enabled()),
        )
    });
    let state = AppState {
        api,
        store,
        metrics: Arc::new(config.metrics.clone()),
    };
    let mut routes = Router::new()
        .route("/", get(index))
        .route("/site-map", get(site_map))
        .route("/metrics", get(metrics_page))
        .route("/{*path}", post(rpc))
        .with_state(state);
    if let Some(ui) = dashboard {
        routes = routes.route("/ui/", get(dashboard::page)).nest("/ui", ui);
    }
    routes
        .layer(DefaultBodyLimit::max(config.max_body))
        .layer(middleware::from_fn_with_state(
            config.users.clone(),
            super::auth::require,
        ))
        .layer(middleware::from_fn(log_request))
}

/// Serves until `shutdown` resolves, then finishes the requests under way.
pub async fn serve(
    store: Store,
    config: RpcConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|e| {
            Error::Other(format!(
                "cannot listen on {}:{}: {e}",
                config.host, config.port
            ))
        })?;
    serve_on(listener, store, config, shutdown).await
}

/// Serves on a bound listener (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    store: Store,
    config: RpcConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| Error::Other(e.to_string()))?;
    info!("RPC server listening on http://{addr}/");
    axum::serve(listener, router(store, &config))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Other(format!("RPC server: {e}")))
}

async fn log_request(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let start = Instant::now();
    let response = next.run(req).await;
    info!(target: "swh_scheduler::rpc::access", "{method} {path} {} {:.1}ms", response.status().as_u16(), start.elapsed().as_secs_f64() * 1e3);
    response
}

/// The original's page, or, for a browser (when the dashboard is served), the dashboard.
async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let browser = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if browser && state.store.is_some() {
        return Redirect::to("/ui/").into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html>\n<head><title>Software Heritage scheduler RPC server</title></head>\n<body>\n\
         <p>You have reached the\n<a href=\"https://www.softwareheritage.org/\">Software Heritage</a>\n\
         scheduler RPC server.<br />\nSee its\n\
         <a href=\"https://docs.softwareheritage.org/devel/swh-scheduler/\">documentation\nand API</a> \
         for more information</p>\n</body>\n</html>",
    )
        .into_response()
}

async fn site_map(headers: HeaderMap) -> Response {
    let links = Wire::Array(
        api::site_map()
            .map(|(path, doc)| {
                Wire::map([
                    ("rule", Wire::Str(format!("/{path}"))),
                    ("description", Wire::str(doc)),
                ])
            })
            .collect(),
    );
    encode(&links, wants_msgpack(&headers), StatusCode::OK)
}

async fn metrics_page(State(state): State<AppState>) -> Response {
    let Some(store) = &state.store else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are served by a server on a Redis store\n",
        )
            .into_response();
    };
    match metrics::render(store, &state.metrics).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics unavailable: {e}\n"),
        )
            .into_response(),
    }
}

async fn rpc(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let err = CallError {
                status: e.status().as_u16(),
                ..CallError::bad(format!("cannot read the request body: {}", e.body_text()))
            };
            return error_response(&err);
        }
    };
    let args = match decode_body(&headers, &body) {
        Ok(a) => a,
        Err(e) => return error_response(&CallError::bad(format!("/{path}: {e}"))),
    };
    match api::call(state.api.as_ref(), &path, args).await {
        Ok(v) => encode(&v, wants_msgpack(&headers), StatusCode::OK),
        Err(e) => {
            if e.status >= 500 {
                tracing::error!("/{path}: {}", e.message);
            }
            error_response(&e)
        }
    }
}

/// The request's keyword arguments, by its Content-Type; an empty body means none.
fn decode_body(headers: &HeaderMap, body: &[u8]) -> std::result::Result<Wire, String> {
    if body.is_empty() {
        return Ok(Wire::Nil);
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        MSGPACK => codec::from_msgpack(body).map_err(|e| e.0),
        JSON => codec::from_json(body).map_err(|e| e.0),
        "" => Err(format!("no Content-Type: send {MSGPACK} or {JSON}")),
        other => Err(format!(
            "unsupported Content-Type {other:?}: send {MSGPACK} or {JSON}"
        )),
    }
}

/// Whether the client prefers msgpack to JSON (JSON is the default, as in the original).
pub fn wants_msgpack(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let q = |mime: &str| -> f32 {
        accept
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let m = it.next()?.trim();
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1.0);
                let matches = m == mime
                    || m == "*/*"
                    || (m == "application/*" && mime.starts_with("application/"));
                // an exact match outranks a wildcard
                matches.then_some(if m == mime { q + 0.001 } else { q })
            })
            .fold(0.0, f32::max)
    };
    let (m, j) = (q(MSGPACK), q(JSON));
    m > 0.0 && m > j
}

fn encode(w: &Wire, msgpack: bool, status: StatusCode) -> Response {
    let (body, ct) = if msgpack {
        (codec::to_msgpack(w), MSGPACK)
    } else {
        (codec::to_json(w).into_bytes(), JSON)
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

/// Errors are always msgpack, whatever Accept says, as the original sends them.
fn error_response(e: &CallError) -> Response {
    encode(
        &e.to_wire(),
        true,
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn content_negotiation_defaults_to_json() {
        assert!(wants_msgpack(&accept("application/x-msgpack")));
        assert!(!wants_msgpack(&accept("application/json")));
        assert!(!wants_msgpack(&HeaderMap::new()));
        assert!(!wants_msgpack(&accept("*/*")));
        assert!(!wants_msgpack(&accept(
            "application/json, application/x-msgpack;q=0.5"
        )));
        assert!(wants_msgpack(&accept(
            "application/json;q=0.4, application/x-msgpack"
        )));
    }
}
