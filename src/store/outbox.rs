//! The Celery broker as the store sees it ([`BrokerLink`]), and the outboxes that carry
//! messages to a broker on another server.
//!
//! When the broker is a database of the store's server, the runners' scripts push their
//! messages onto its lists in the same atomic step that marks the tasks scheduled. When it is
//! another server (always, for a store on a Redis Cluster: kombu does not speak Cluster), no
//! script can reach it: the scripts push onto an outbox list in the type's own slot instead,
//! still in that one step, and a forwarder moves the outbox to the broker in batches
//! (`lua/outbox_claim.lua`, an LPUSH onto the broker, `lua/outbox_ack.lua`).
//!
//! A batch gets an id and is held under a lease, so one forwarder at a time moves an outbox.
//! The push into the broker is idempotent by that id (`lua/broker_push.lua`, run on the broker:
//! a marker key set with the LPUSH, kept 10 minutes). A forwarder that dies between its push
//! and its ack, or stalls past its lease, leaves the batch to the next forwarder, whose push
//! finds the marker or pushes the batch: either way each message reaches the broker once.
//! (Only a batch left untouched longer than the marker lives could be pushed twice: no runner
//! for 10 minutes after one died mid-batch.) Batches taken over are counted in the type's
//! `outbox_recovered` field (`/metrics`).

use std::fmt;
use std::time::Duration;

use deadpool_redis::{Pool, Runtime};
use redis::Value;

use super::Store;
use super::keys::OutboxKeys;
use super::scripts::{Call, ScriptName};
use crate::error::{Error, Result, redacted};

/// Most messages a forwarder moves in one batch.
pub const FORWARD_BATCH: usize = 1000;
/// How long a forwarder holds a batch before another may take it over (a longer stall only
/// delays the batch: the push is idempotent).
pub const FORWARD_LEASE: Duration = Duration::from_secs(10);
/// How long the broker keeps a pushed batch's marker.
pub const BATCH_MARKER_LIFETIME: Duration = Duration::from_secs(600);

/// Where the workers' broker is, seen from the store.
#[derive(Clone, Debug)]
pub enum BrokerLink {
    /// A database of the store's server: the store's own (`None`) or another.
    SameServer { db: Option<u32> },
    /// Another server, reached through outboxes.
    Remote(RemoteBroker),
}

impl Default for BrokerLink {
    fn default() -> Self {
        BrokerLink::SameServer { db: None }
    }
}

/// A broker on another server than the store.
#[derive(Clone)]
pub struct RemoteBroker {
    url: String,
    pool: Pool,
}

impl fmt::Debug for RemoteBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteBroker({})", redacted(&self.url))
    }
}

impl BrokerLink {
    /// The link from a store at `store_url` (one URL, or a cluster's seed URLs separated by
    /// commas) to the workers' broker at `broker_url` (`None`: the store's Redis): a database
    /// of the same server, or another server.
    pub fn new(store_url: &str, broker_url: Option<&str>) -> Result<Self> {
        let Some(broker) = broker_url else {
            return Ok(BrokerLink::default());
        };
        let info = |field: &str, u: &str| {
            redis::IntoConnectionInfo::into_connection_info(u)
                .map_err(|e| Error::invalid(field, redacted(u), format!("not a Redis URL: {e}")))
        };
        let b = info("celery.broker_url", broker)?;
        for seed in super::connection::seeds(store_url) {
            let s = info("scheduler.url", seed)?;
            if s.addr() == b.addr() {
                let (sd, bd) = (s.redis_settings().db(), b.redis_settings().db());
                return Ok(BrokerLink::SameServer {
                    db: (sd != bd).then_some(bd as u32),
                });
            }
        }
        BrokerLink::remote(broker)
    }

    /// A link to the broker at `url`, through outboxes (whatever server it is on).
    pub fn remote(url: &str) -> Result<Self> {
        let bad = |e: &dyn fmt::Display| Error::Connection {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let connection = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(super::StoreConfig::DEFAULT_CONNECT_TIMEOUT))
            .set_response_timeout(Some(super::StoreConfig::DEFAULT_RESPONSE_TIMEOUT));
        let manager =
            deadpool_redis::Manager::new_with_config(url, connection).map_err(|e| bad(&e))?;
        let pool = Pool::builder(manager)
            .max_size(4)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| bad(&e))?;
        Ok(BrokerLink::Remote(RemoteBroker {
            url: url.to_string(),
            pool,
        }))
    }

    /// The broker's database on the store's server, when it is there and not the store's.
    pub fn other_db(&self) -> Option<u32> {
        match self {
            BrokerLink::SameServer { db } => *db,
            BrokerLink::Remote(_) => None,
        }
    }
}

impl RemoteBroker {
    async fn con(&self) -> Result<deadpool_redis::Connection> {
        self.pool.get().await.map_err(|e| Error::Connection {
            url: self.url.clone(),
            reason: match e {
                deadpool_redis::PoolError::Backend(e) => e.to_string(),
                other => other.to_string(),
            },
        })
    }

    /// Messages waiting in the queue whose list keys are `queue_keys`.
    pub async fn queue_waiting(&self, queue_keys: &[String]) -> Result<i64> {
        let mut pipe = redis::pipe();
        for k in queue_keys {
            pipe.llen(k);
        }
        let lens: Vec<i64> = pipe.query_async(&mut self.con().await?).await?;
        Ok(lens.iter().sum())
    }

    /// Pushes a batch onto the list `queue_key`, oldest first, unless the batch `batch_id`
    /// is there already (`lua/broker_push.lua`). Returns whether it pushed.
    async fn push_batch(&self, queue_key: &str, batch_id: &str, msgs: &[Vec<u8>]) -> Result<bool> {
        static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
        let script =
            SCRIPT.get_or_init(|| redis::Script::new(include_str!("../../lua/broker_push.lua")));
        let mut inv = script.key(queue_key);
        inv.key(format!("swh-scheduler:outbox-batch:{batch_id}"))
            .arg(BATCH_MARKER_LIFETIME.as_secs());
        for m in msgs {
            inv.arg(m);
        }
        let pushed: i64 = inv.invoke_async(&mut self.con().await?).await?;
        Ok(pushed == 1)
    }
}

/// How a script reaches the broker queue: its keys after the type's own, and its two ARGV
/// fields (see `lua/includes/broker.lua`).
pub(super) struct ScriptBroker {
    pub keys: Vec<String>,
    pub argv: (String, String),
}

/// What forwarding an outbox did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Forwarded {
    /// Messages of the batches moved into the broker.
    pub sent: usize,
    /// Of them, messages of batches a forwarder had left unfinished (taken over).
    pub recovered: usize,
    /// Of the batches taken over, messages the previous forwarder had pushed already (the
    /// batch's marker was in the broker): not pushed again.
    pub already_in: usize,
}

impl Store {
    /// Messages waiting in a broker queue: the sum of the lengths of its list keys (see
    /// `BrokerNaming::queue_keys`), wherever the broker is; for a broker on another server,
    /// plus what waits in the queue's outbox (`outbox`) on its way there.
    pub async fn queue_waiting(
        &self,
        queue_keys: &[String],
        broker: &BrokerLink,
        outbox: &OutboxKeys,
    ) -> Result<i64> {
        self.check_broker(broker)?;
        let db = match broker {
            BrokerLink::Remote(r) => {
                let mut con = self.con().await?;
                let (list, batch): (i64, i64) = redis::pipe()
                    .llen(&outbox.list)
                    .llen(&outbox.batch)
                    .query_async(&mut con)
                    .await?;
                return Ok(r.queue_waiting(queue_keys).await? + list + batch);
            }
            BrokerLink::SameServer { db } => *db,
        };
        let mut pipe = redis::pipe();
        if let Some(db) = db {
            pipe.cmd("SELECT").arg(db).ignore();
        }
        for k in queue_keys {
            pipe.llen(k);
        }
        if db.is_some() {
            pipe.cmd("SELECT").arg(self.db()).ignore();
        }
        let lens: Vec<i64> = pipe.query_async(&mut self.con().await?).await?;
        Ok(lens.iter().sum())
    }

    /// Checks that the broker can be reached from this store: a store on a Redis Cluster
    /// needs the broker on its own server (Celery's kombu does not speak Cluster, and a
    /// script cannot reach keys outside its slot).
    pub fn check_broker(&self, broker: &BrokerLink) -> Result<()> {
        if self.is_cluster() && matches!(broker, BrokerLink::SameServer { .. }) {
            return Err(Error::invalid(
                "celery.broker_url",
                "(the store's Redis)",
                "the store is a Redis Cluster, which cannot be Celery's broker (kombu does not \
                 speak Cluster): give the broker its own Redis server",
            ));
        }
        Ok(())
    }

    /// The broker keys and ARGV fields of a dispatching script: for a remote broker, the
    /// outbox and the count of messages waiting in the broker, read now.
    pub(super) async fn script_broker(
        &self,
        broker: &BrokerLink,
        outbox: &OutboxKeys,
        queue_keys: &[String],
    ) -> Result<ScriptBroker> {
        self.check_broker(broker)?;
        Ok(match broker {
            BrokerLink::SameServer { db: None } => ScriptBroker {
                keys: queue_keys.to_vec(),
                argv: (String::new(), String::new()),
            },
            BrokerLink::SameServer { db: Some(db) } => ScriptBroker {
                keys: queue_keys.to_vec(),
                argv: (db.to_string(), self.db().to_string()),
            },
            BrokerLink::Remote(r) => ScriptBroker {
                keys: vec![outbox.list.clone(), outbox.batch.clone()],
                argv: (
                    "outbox".into(),
                    r.queue_waiting(queue_keys).await?.to_string(),
                ),
            },
        })
    }

    /// Moves an outbox into the broker's list `queue_key` (the queue's bucket 0), batch after
    /// batch, until it is empty or another forwarder holds it. A no-op for a broker on the
    /// store's server.
    pub async fn forward_outbox(
        &self,
        broker: &BrokerLink,
        outbox: &OutboxKeys,
        queue_key: &str,
    ) -> Result<Forwarded> {
        let BrokerLink::Remote(remote) = broker else {
            return Ok(Forwarded::default());
        };
        let token = uuid::Uuid::new_v4().to_string();
        let mut done = Forwarded::default();
        loop {
            let reply = Call::new(
                ScriptName::OutboxClaim,
                &[&outbox.list, &outbox.batch, &outbox.lease, &outbox.batch_id],
            )
            .arg(&token)
            .arg(FORWARD_LEASE.as_millis() as u64)
            .arg(FORWARD_BATCH)
            .arg(uuid::Uuid::new_v4().to_string())
            .run(&mut self.con().await?)
            .await?;
            let items = match reply {
                Value::Array(items) if items.len() > 2 => items,
                _ => return Ok(done),
            };
            let fresh = super::as_int(&items[0]) == Some(1);
            let batch_id = match String::from_utf8_lossy(super::as_bytes(&items[1])) {
                id if id.is_empty() => token.clone(),
                id => id.into_owned(),
            };
            let msgs: Vec<Vec<u8>> = items[2..]
                .iter()
                .map(|v| super::as_bytes(v).to_vec())
                .collect();
            let pushed = remote.push_batch(queue_key, &batch_id, &msgs).await;
            let acked = Call::new(
                ScriptName::OutboxAck,
                &[
                    &outbox.batch,
                    &outbox.lease,
                    &outbox.batch_id,
                    &outbox.counters,
                ],
            )
            .arg(&token)
            .arg(if pushed.is_ok() { "1" } else { "0" })
            .arg(msgs.len())
            .arg(if fresh { "0" } else { "1" })
            .run(&mut self.con().await?)
            .await?;
            let pushed = pushed?;
            if super::as_int(&acked) != Some(1) {
                // the lease lapsed under a slow push: the batch is another forwarder's now
                // (its push finds this one's marker)
                tracing::warn!(outbox = %outbox.list, "lost the lease of a batch while pushing it");
                return Ok(done);
            }
            done.sent += msgs.len();
            if !fresh {
                done.recovered += msgs.len();
                if !pushed {
                    done.already_in += msgs.len();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_link_follows_the_servers_of_both_urls() {
        let same = |s: &str, b: &str| match BrokerLink::new(s, Some(b)).unwrap() {
            BrokerLink::SameServer { db } => Some(db),
            BrokerLink::Remote(_) => None,
        };
        assert_eq!(same("redis://h:6379/0", "redis://h:6379/0"), Some(None));
        assert_eq!(same("redis://h:6379/0", "redis://h:6379/3"), Some(Some(3)));
        assert_eq!(same("redis://h:6379/0", "redis://other:6379/0"), None);
        // a cluster's seeds: the broker is on one of them, or elsewhere
        assert_eq!(
            same("redis://a:7000,redis://b:7001", "redis://c:6379/0"),
            None
        );
        assert_eq!(
            same("redis://a:7000,redis://b:7001", "redis://b:7001"),
            Some(None)
        );
        let err = BrokerLink::new("redis://h:6379/0", Some("nonsense:")).unwrap_err();
        assert!(err.to_string().contains("celery.broker_url"), "{err}");
    }
}
