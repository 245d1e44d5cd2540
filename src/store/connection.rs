//! How the store reaches Redis: a pool of connections to one server, or a Redis Cluster.
//!
//! The store finds out which from the server itself (`INFO cluster`), so the URL of any one
//! node is enough, as with `redis-cli -c`; several seed nodes may be given, separated by
//! commas, in case one is down at start-up. On a Cluster, redis-rs's cluster client routes
//! each command by its first key (every script gets its type's hash-tagged key first, see
//! `src/store/keys.rs`), follows `MOVED` and `ASK` while slots migrate, and retries on
//! `TRYAGAIN` and `CLUSTERDOWN` (a failover in progress). Its connection is already
//! multiplexed, one socket per node shared by every caller, so it needs no pool.

use redis::aio::ConnectionLike;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::StoreConfig;
use crate::error::{Error, Result};

/// A connection of the store: pooled (one server) or the cluster's shared one, or a direct
/// connection to one master of the cluster (for what is per node: `SCAN`, `INFO`).
pub enum Con {
    Single(deadpool_redis::Connection),
    Cluster(ClusterConnection),
    Node(redis::aio::MultiplexedConnection),
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Con::Single(c) => c.req_packed_command(cmd),
            Con::Cluster(c) => c.req_packed_command(cmd),
            Con::Node(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Con::Single(c) => c.req_packed_commands(cmd, offset, count),
            Con::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Con::Node(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Con::Single(c) => c.get_db(),
            Con::Cluster(c) => c.get_db(),
            Con::Node(c) => c.get_db(),
        }
    }
}

impl Con {
    /// Sends commands that may name keys of different slots in one round trip: a pipeline on
    /// one server; on a Cluster, where a pipeline must stay in one slot, side by side on the
    /// multiplexed connection, each to its slot's node.
    pub async fn query_each<T: redis::FromRedisValue>(&mut self, cmds: Vec<Cmd>) -> Result<Vec<T>> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        if let Con::Cluster(cluster) = self {
            let each = cmds.into_iter().map(|cmd| {
                let mut c = cluster.clone();
                async move { cmd.query_async::<T>(&mut c).await }
            });
            let replies = futures_util::future::join_all(each).await;
            return Ok(replies
                .into_iter()
                .collect::<redis::RedisResult<Vec<T>>>()?);
        }
        let mut pipe = Pipeline::with_capacity(cmds.len());
        for cmd in cmds {
            pipe.add_command(cmd);
        }
        Ok(pipe.query_async(self).await?)
    }
}

/// The seed URLs of a store URL (`redis://a:7000,redis://b:7001`, or one URL).
pub fn seeds(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether the server at `url` is a node of a Redis Cluster (`cluster_enabled:1`).
pub async fn is_cluster_node(url: &str, config: &StoreConfig) -> Result<bool> {
    let unreachable = |e: &dyn std::fmt::Display| Error::Connection {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let client = redis::Client::open(url).map_err(|e| unreachable(&e))?;
    let connection = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(config.response_timeout))
        .set_connection_timeout(Some(config.connect_timeout));
    let mut con = client
        .get_multiplexed_async_connection_with_config(&connection)
        .await
        .map_err(|e| unreachable(&e))?;
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut con)
        .await
        .map_err(|e| unreachable(&e))?;
    Ok(info.lines().any(|l| l.trim() == "cluster_enabled:1"))
}

/// Connects to the Cluster that the seed nodes belong to.
pub async fn connect_cluster(seeds: &[&str], config: &StoreConfig) -> Result<ClusterConnection> {
    let joined = seeds.join(",");
    let unreachable = |e: &dyn std::fmt::Display| Error::Connection {
        url: joined.clone(),
        reason: e.to_string(),
    };
    for s in seeds {
        let db = super::url_db(s);
        if db != 0 {
            return Err(Error::invalid(
                "scheduler.url",
                crate::error::redacted(s),
                format!("a Redis Cluster has only database 0, not {db}"),
            ));
        }
    }
    // retried calls wait up to 20 ms, 40 ms, … 2 s between tries, some 20 s in all: longer
    // than a slot's migration or a failover (a few node timeouts), short enough to report a
    // cluster that stays down
    let client = ClusterClientBuilder::new(seeds.to_vec())
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.response_timeout)
        .retries(25)
        .min_retry_wait(10)
        .max_retry_wait(2000)
        .retry_wait_formula(20, 2)
        .build()
        .map_err(|e| unreachable(&e))?;
    client
        .get_async_connection()
        .await
        .map_err(|e| unreachable(&e))
}

/// The masters of the cluster, as `host:port`, from `CLUSTER NODES` (flag `master`, not
/// failing).
pub async fn master_addrs(con: &mut ClusterConnection) -> Result<Vec<String>> {
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(con).await?;
    Ok(nodes
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let flags = f.get(2)?;
            (flags.contains("master") && !flags.contains("fail") && f.get(7) == Some(&"connected"))
                .then(|| f[1].split('@').next().unwrap_or(f[1]).to_string())
        })
        .collect())
}

/// A seed URL with its `host:port` replaced by `addr` (keeping scheme, user and password).
pub fn url_for(seed: &str, addr: &str) -> String {
    let Some((scheme, rest)) = seed.split_once("://") else {
        return format!("redis://{addr}");
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@"));
    format!("{scheme}://{}{addr}{path}", user.unwrap_or_default())
}

/// The Redis server's clock, in microseconds ("now" for the store is the server's clock).
pub(super) async fn server_now(con: &mut Con) -> Result<i64> {
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(con).await?;
    Ok(s * 1_000_000 + us)
}
