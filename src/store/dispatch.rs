//! The runner's step: due tasks to the Celery broker (see `lua/dispatch.lua`).

use redis::Value;

use super::scripts::{Call, ScriptName};
use super::{BrokerLink, OutboxKeys, Store, TypeInfo, array, as_int};
use crate::error::Result;

/// Where and how one dispatch call sends.
#[derive(Clone, Debug)]
pub struct DispatchTarget<'a> {
    /// The priority queue (`save_code_now:<backend_name>`) and the tasks with a priority, or
    /// the type's own queue and the tasks without.
    pub priority: bool,
    /// The queue name (routing key).
    pub queue: &'a str,
    /// The queue's list keys, bucket 0 first (see `BrokerNaming::queue_keys`).
    pub queue_keys: &'a [String],
    /// `<name>@<host>` of the sender.
    pub origin: &'a str,
    /// Most tasks per call.
    pub max_tasks: usize,
    /// Apply the original's threshold (send nothing unless more than a fifth of the queue is
    /// free): true for the first call of a pass.
    pub threshold: bool,
    /// Where the broker is.
    pub broker: &'a BrokerLink,
}

/// What one dispatch call did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dispatched {
    /// Tasks sent.
    pub sent: usize,
    /// Messages waiting in the queue before the call.
    pub waiting: usize,
}

impl Store {
    /// The outbox of a task type's queue (used when the broker is another server).
    pub fn outbox(&self, task_type: &str, queue: &str) -> OutboxKeys {
        let keys = super::keys::TypeKeys::new(&self.config().prefix, task_type);
        OutboxKeys::new(&keys.base, &keys.type_key, queue)
    }

    /// Sends the due tasks of a type that fit in its queue, in one atomic step.
    pub async fn dispatch(
        &self,
        info: &TypeInfo,
        target: &DispatchTarget<'_>,
    ) -> Result<Dispatched> {
        let ready = if target.priority {
            &info.keys.ready_prio
        } else {
            &info.keys.ready
        };
        let via = self
            .script_broker(
                target.broker,
                &self.outbox(&info.task_type.task_type, target.queue),
                target.queue_keys,
            )
            .await?;
        let mut keys: Vec<&str> = vec![&info.keys.type_key, ready];
        keys.extend(via.keys.iter().map(String::as_str));
        let mut con = self.con().await?;
        let reply = Call::new(ScriptName::Dispatch, &keys)
            .arg("")
            .arg(if target.priority { "1" } else { "0" })
            .arg(self.keep_runs())
            .arg(target.queue)
            .arg(target.origin)
            .arg(target.max_tasks)
            .arg(&via.argv.0)
            .arg(&via.argv.1)
            .arg(if target.threshold { "1" } else { "0" })
            .run(&mut con)
            .await?;
        let items = array(reply)?;
        let dropped: Vec<String> = items
            .iter()
            .skip(2)
            .filter_map(|v| match v {
                Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect();
        self.forget_backend_ids(&mut con, &dropped).await?;
        Ok(Dispatched {
            sent: items.first().and_then(as_int).unwrap_or(0) as usize,
            waiting: items.get(1).and_then(as_int).unwrap_or(0) as usize,
        })
    }
}
