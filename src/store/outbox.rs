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
//! A batch is held under a lease, so one forwarder at a time moves an outbox. A forwarder that
//! dies between its push and its ack leaves the batch behind; once the lease lapses the next
//! forwarder takes it again and sends only the messages the broker does not hold (`LPOS`: a
//! message is a unique text, its task id is in it). A message is therefore sent twice only when
//! a worker had already taken the first copy: at most one duplicate per message, counted in
//! the type's `outbox_resent` field (`/metrics`).

use std::fmt;
use std::time::Duration;

use deadpool_redis::{Pool, Runtime};
use redis::Value;

use super::Store;
use super::scripts::{Call, ScriptName};
use crate::error::{Error, Result, redacted};

/// Most messages a forwarder moves in one batch.
pub const FORWARD_BATCH: usize = 1000;
/// How long a forwarder holds a batch before another may take it over.
pub const FORWARD_LEASE: Duration = Duration::from_secs(10);

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
    /// The link from a store at `store_url` to the workers' broker at `broker_url` (`None`:
    /// the store's Redis): a database of the same server, or another server.
    pub fn new(store_url: &str, broker_url: Option<&str>) -> Result<Self> {
        let Some(broker) = broker_url else {
            return Ok(BrokerLink::default());
        };
        let info = |u: &str| {
            redis::IntoConnectionInfo::into_connection_info(u).map_err(|e| {
                Error::invalid(
                    "celery.broker_url",
                    redacted(u),
                    format!("not a Redis URL: {e}"),
                )
            })
        };
        let (s, b) = (info(store_url)?, info(broker)?);
        if s.addr() == b.addr() {
            let (sd, bd) = (s.redis_settings().db(), b.redis_settings().db());
            return Ok(BrokerLink::SameServer {
                db: (sd != bd).then_some(bd as u32),
            });
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
}

/// The outbox of one queue, in the slot of a task type or visit type.
#[derive(Clone, Debug)]
pub struct OutboxKeys {
    /// List of messages, newest first.
    pub list: String,
    /// The batch a forwarder is moving, oldest first.
    pub batch: String,
    /// The forwarder holding the batch.
    pub lease: String,
    /// The type's hash, where the forwarded and resent counters are kept.
    pub counters: String,
}

impl OutboxKeys {
    /// The outbox of `queue` for the type whose keys start with `tag_base`
    /// (`<prefix>:{<type>}`) and whose hash is `counters`.
    pub fn new(tag_base: &str, counters: &str, queue: &str) -> Self {
        let list = format!("{tag_base}:outbox:{queue}");
        OutboxKeys {
            batch: format!("{list}:batch"),
            lease: format!("{list}:lease"),
            list,
            counters: counters.to_string(),
        }
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
    /// Messages put into the broker.
    pub sent: usize,
    /// Of them, messages of a batch a forwarder had left unfinished that the broker did not
    /// hold: never pushed, or pushed and already taken by a worker (a duplicate).
    pub resent: usize,
}

impl Store {
    /// Messages waiting in a broker queue: the sum of the lengths of its list keys (see
    /// `BrokerNaming::queue_keys`), wherever the broker is.
    pub async fn queue_waiting(&self, queue_keys: &[String], broker: &BrokerLink) -> Result<i64> {
        self.check_broker(broker)?;
        let db = match broker {
            BrokerLink::Remote(r) => return r.queue_waiting(queue_keys).await,
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
                &[&outbox.list, &outbox.batch, &outbox.lease],
            )
            .arg(&token)
            .arg(FORWARD_LEASE.as_millis() as u64)
            .arg(FORWARD_BATCH)
            .run(&mut self.con().await?)
            .await?;
            let Value::Array(mut items) = reply else {
                return Ok(done);
            };
            if items.is_empty() {
                return Ok(done);
            }
            let fresh = super::as_int(&items[0]) == Some(1);
            let msgs: Vec<Vec<u8>> = items
                .drain(1..)
                .map(|v| super::as_bytes(&v).to_vec())
                .collect();
            let pushed = self.push_batch(remote, queue_key, &msgs, fresh).await;
            let (in_broker, sent) = match &pushed {
                Ok(sent) => (true, *sent),
                Err(_) => (false, 0),
            };
            let resent = if fresh { 0 } else { sent };
            Call::new(
                ScriptName::OutboxAck,
                &[&outbox.batch, &outbox.lease, &outbox.counters],
            )
            .arg(&token)
            .arg(if in_broker { "1" } else { "0" })
            .arg(sent)
            .arg(resent)
            .run(&mut self.con().await?)
            .await?;
            pushed?;
            done.sent += sent;
            done.resent += resent;
        }
    }

    /// Pushes a batch, oldest first, onto the broker list; of a batch a forwarder left
    /// unfinished, only the messages the broker does not hold. Returns how many were pushed.
    async fn push_batch(
        &self,
        remote: &RemoteBroker,
        queue_key: &str,
        msgs: &[Vec<u8>],
        fresh: bool,
    ) -> Result<usize> {
        let mut con = remote.con().await?;
        if fresh {
            let _: () = redis::cmd("LPUSH")
                .arg(queue_key)
                .arg(msgs)
                .query_async(&mut con)
                .await?;
            return Ok(msgs.len());
        }
        let mut pipe = redis::pipe();
        for m in msgs {
            pipe.cmd("LPOS").arg(queue_key).arg(m);
        }
        let found: Vec<Option<i64>> = pipe.query_async(&mut con).await?;
        let missing: Vec<&Vec<u8>> = msgs
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(m, _)| m)
            .collect();
        if !missing.is_empty() {
            let _: () = redis::cmd("LPUSH")
                .arg(queue_key)
                .arg(&missing)
                .query_async(&mut con)
                .await?;
        }
        Ok(missing.len())
    }
}
