//! The task store: task types, tasks and runs in Redis, every change one Lua script.
//!
//! The methods are the original's `SchedulerInterface` (same names, arguments, defaults and
//! semantics; [`crate::api`] lists them); times left out are taken from the Redis server's
//! clock.

mod archive;
pub mod connection;
mod dispatch;
pub mod keys;
mod listers;
mod origin_records;
mod origins;
mod outbox;
pub mod overview;
pub use keys::OutboxKeys;
pub use origins::{VisitFigures, VisitTarget, VisitsSent};
pub use outbox::{BrokerLink, Forwarded, RemoteBroker};
pub mod records;
mod runs;
pub mod scripts;
mod tasks;
mod types;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_redis::{Pool, Runtime};
use redis::Value;

pub use self::connection::Con;
use self::connection::server_now;
pub use self::dispatch::{DispatchTarget, Dispatched};
use self::keys::{GlobalKeys, TypeKeys};
pub use self::runs::{RunEvent, RunOutcome};
use crate::error::{Error, Result};
use crate::model::TaskType;

/// How to reach the store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// `redis://[user:password@]host:port/db` or `unix:///path?db=N`.
    pub url: String,
    /// Prefix of every key.
    pub prefix: String,
    /// Runs kept per task; older ended runs are deleted when a new run is recorded.
    pub keep_runs: usize,
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long a command may take to answer before the call fails. The redis crate's default
    /// (500 ms) is shorter than a large legitimate script call, and a call that times out
    /// may still have been applied; every script call here is bounded in work (callers'
    /// batches are sent in chunks), so this is a safety net, not a pace.
    pub response_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl StoreConfig {
    pub const DEFAULT_URL: &'static str = "redis://127.0.0.1:6379/0";
    pub const DEFAULT_PREFIX: &'static str = "swh";
    pub const DEFAULT_KEEP_RUNS: usize = 3;

    pub fn new(url: &str) -> Self {
        StoreConfig {
            url: url.to_string(),
            prefix: Self::DEFAULT_PREFIX.to_string(),
            keep_runs: Self::DEFAULT_KEEP_RUNS,
            pool_size: 16,
            response_timeout: Self::DEFAULT_RESPONSE_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
        }
    }

    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
}

/// A task type as cached by a store: its definition never changes once created.
#[derive(Debug)]
pub struct TypeInfo {
    pub index: u32,
    pub task_type: TaskType,
    pub keys: TypeKeys,
}

#[derive(Default)]
struct TypeCache {
    by_name: HashMap<String, Arc<TypeInfo>>,
    by_index: HashMap<u32, Arc<TypeInfo>>,
}

/// A handle on the store; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Where the store's connections come from.
enum Backend {
    Pool(Pool),
    Cluster(redis::cluster_async::ClusterConnection),
}

struct Inner {
    backend: Backend,
    config: StoreConfig,
    global: GlobalKeys,
    types: RwLock<TypeCache>,
}

impl Store {
    /// Connects (checking that Redis answers) and loads the scripts. A Redis Cluster is found
    /// out from the server (see [`connection`]).
    pub async fn connect(config: StoreConfig) -> Result<Self> {
        let seeds = connection::seeds(&config.url);
        let backend = match seeds.as_slice() {
            [one] if !connection::is_cluster_node(one, &config).await? => {
                Backend::Pool(Self::pool(&config)?)
            }
            [] => return Err(Error::invalid("scheduler.url", "", "no Redis URL")),
            _ => Backend::Cluster(connection::connect_cluster(&seeds, &config).await?),
        };
        let store = Store {
            inner: Arc::new(Inner {
                backend,
                global: GlobalKeys::new(&config.prefix),
                config,
                types: RwLock::new(TypeCache::default()),
            }),
        };
        let mut con = store.con().await?;
        scripts::load_all(&mut con)
            .await
            .map_err(|e| Error::Connection {
                url: store.inner.config.url.clone(),
                reason: e.to_string(),
            })?;
        Ok(store)
    }

    fn pool(config: &StoreConfig) -> Result<Pool> {
        let connection = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connect_timeout));
        let unreachable = |e: &dyn std::fmt::Display| Error::Connection {
            url: config.url.clone(),
            reason: e.to_string(),
        };
        let manager = deadpool_redis::Manager::new_with_config(config.url.as_str(), connection)
            .map_err(|e| unreachable(&e))?;
        Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| unreachable(&e))
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// A connection: pooled, or the Cluster's shared one. Failing to get one is reported
    /// with the URL.
    pub async fn con(&self) -> Result<Con> {
        match &self.inner.backend {
            Backend::Cluster(c) => Ok(Con::Cluster(c.clone())),
            Backend::Pool(pool) => {
                pool.get()
                    .await
                    .map(Con::Single)
                    .map_err(|e| Error::Connection {
                        url: self.inner.config.url.clone(),
                        reason: match e {
                            deadpool_redis::PoolError::Backend(e) => e.to_string(),
                            other => other.to_string(),
                        },
                    })
            }
        }
    }

    /// A connection to every master: the server itself, or each master of the cluster (for
    /// per-node commands: `SCAN`, `INFO`).
    pub async fn masters(&self) -> Result<Vec<Con>> {
        let Backend::Cluster(c) = &self.inner.backend else {
            return Ok(vec![self.con().await?]);
        };
        let seed = connection::seeds(&self.inner.config.url)[0].to_string();
        let mut out = Vec::new();
        for addr in connection::master_addrs(&mut c.clone()).await? {
            let url = connection::url_for(&seed, &addr);
            let unreachable = |e: redis::RedisError| Error::Connection {
                url: url.clone(),
                reason: e.to_string(),
            };
            let client = redis::Client::open(url.as_str()).map_err(unreachable)?;
            let node = client
                .get_multiplexed_async_connection()
                .await
                .map_err(unreachable)?;
            out.push(Con::Node(node));
        }
        Ok(out)
    }

    /// Whether the store is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.backend, Backend::Cluster(_))
    }

    /// The database number in the store's URL.
    pub fn db(&self) -> u32 {
        url_db(&self.inner.config.url)
    }

    fn global(&self) -> &GlobalKeys {
        &self.inner.global
    }

    fn keep_runs(&self) -> usize {
        self.inner.config.keep_runs.max(1)
    }
}

/// The database number of a Redis URL (`redis://host:port/N`, `unix:///path?db=N`).
pub fn url_db(url: &str) -> u32 {
    redis::IntoConnectionInfo::into_connection_info(url)
        .map(|i| i.redis_settings().db() as u32)
        .unwrap_or(0)
}

/// Reads a script reply of (seq, state record, arguments record) triples as tasks, each with
/// its creation key: (created, id), which orders tasks as the original's ids do.
fn tasks_in_creation_order(
    info: &TypeInfo,
    items: &[Value],
) -> Result<Vec<((i64, i64), crate::model::Task)>> {
    if !items.len().is_multiple_of(3) {
        return Err(Error::Other("script returned a partial task".into()));
    }
    items
        .chunks(3)
        .map(|c| {
            let id = crate::model::ids::compose(info.index, as_int(&c[0]).unwrap_or(0) as u64);
            let rec = records::TaskRecord::decode(as_bytes(&c[1]), as_bytes(&c[2]))?;
            let key = (rec.created.unwrap_or(0), id);
            Ok((key, rec.into_task(id, &info.task_type.task_type)?))
        })
        .collect()
}

/// Reads a script reply of (seq, state record, arguments record) triples as tasks.
fn tasks_from(info: &TypeInfo, items: &[Value]) -> Result<Vec<crate::model::Task>> {
    if !items.len().is_multiple_of(3) {
        return Err(Error::Other("script returned a partial task".into()));
    }
    items
        .chunks(3)
        .map(|c| {
            let id = crate::model::ids::compose(info.index, as_int(&c[0]).unwrap_or(0) as u64);
            records::TaskRecord::decode(as_bytes(&c[1]), as_bytes(&c[2]))?
                .into_task(id, &info.task_type.task_type)
        })
        .collect()
}

/// Reads a script reply of alternating items as a list of pairs.
fn pairs(v: Value) -> Result<Vec<(Value, Value)>> {
    let items = array(v)?;
    if !items.len().is_multiple_of(2) {
        return Err(Error::Other("script returned an odd list".into()));
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    Ok(out)
}

fn array(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        other => Err(Error::Other(format!(
            "script returned {other:?}, not a list"
        ))),
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn as_bytes(v: &Value) -> &[u8] {
    match v {
        Value::BulkString(b) => b,
        _ => &[],
    }
}

/// `''` (the scripts' "none" or "now") or the number.
fn opt_arg(v: Option<i64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// Items grouped by task type, types in order of first appearance: one script call per type.
pub(crate) struct ByType<T>(Vec<(Arc<TypeInfo>, Vec<T>)>);

impl<T> ByType<T> {
    pub(crate) fn new() -> Self {
        ByType(Vec::new())
    }

    /// Adds an item to its type's group; returns the group's position.
    pub(crate) fn push(&mut self, info: &Arc<TypeInfo>, item: T) -> usize {
        match self.0.iter().position(|(t, _)| t.index == info.index) {
            Some(p) => {
                self.0[p].1.push(item);
                p
            }
            None => {
                self.0.push((info.clone(), vec![item]));
                self.0.len() - 1
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(Arc<TypeInfo>, Vec<T>)> {
        self.0.iter()
    }
}

impl<T> IntoIterator for ByType<T> {
    type Item = (Arc<TypeInfo>, Vec<T>);
    type IntoIter = std::vec::IntoIter<Self::Item>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a ByType<T> {
    type Item = &'a (Arc<TypeInfo>, Vec<T>);
    type IntoIter = std::slice::Iter<'a, (Arc<TypeInfo>, Vec<T>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
