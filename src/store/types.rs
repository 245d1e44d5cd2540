//! Task types: creation, lookup and the per-process cache.

use std::collections::HashMap;
use std::sync::Arc;

use redis::AsyncCommands;

use super::keys::TypeKeys;
use super::scripts::{Call, ScriptName};
use super::{ByType, Store, TypeInfo};
use crate::error::{Error, Result};
use crate::model::{Interval, TaskType, ids, validate_type_name};

impl Store {
    /// Creates a task type; does nothing if it exists (the original's insert-or-ignore). It
    /// always reaches Redis: the cache may hold a type whose data went away (FLUSHDB, a restore
    /// from an older backup, a failover to a replica that had not received it).
    pub async fn create_task_type(&self, task_type: &TaskType) -> Result<()> {
        task_type.validate()?;
        let mut con = self.con().await?;
        let g = self.global();
        let index = Call::new(ScriptName::RegisterType, &[&g.types, &g.type_names])
            .arg(&task_type.task_type)
            .arg(ids::MAX_TYPE_INDEX)
            .run(&mut con)
            .await?;
        let index = super::as_int(&index).ok_or_else(|| Error::Other("bad type index".into()))?;
        let keys = TypeKeys::new(&self.config().prefix, &task_type.task_type);
        let mut call = Call::new(ScriptName::CreateTaskType, &[&keys.type_key]);
        call.arg(index);
        for (field, value) in type_fields(task_type) {
            call.arg(field).arg(value);
        }
        call.run(&mut con).await?;
        self.forget_types();
        Ok(())
    }

    /// Empties the task-type cache: the next lookups read Redis.
    pub fn forget_types(&self) {
        let mut cache = self.inner.types.write().unwrap_or_else(|e| e.into_inner());
        cache.by_index.clear();
        cache.by_name.clear();
    }

    /// Runs `op`; if a script found that a cached type is gone or was replaced
    /// (`UnknownTaskType`), empties the cache and runs it once more on what Redis has.
    pub(super) async fn fresh_types_on_retry<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        match op().await {
            Err(Error::UnknownTaskType(_)) => {
                self.forget_types();
                op().await
            }
            other => other,
        }
    }

    /// The task type of that name, if it exists.
    pub async fn get_task_type(&self, name: &str) -> Result<Option<TaskType>> {
        Ok(self.type_info(name).await?.map(|t| t.task_type.clone()))
    }

    /// Every task type, in creation order.
    pub async fn get_task_types(&self) -> Result<Vec<TaskType>> {
        let mut con = self.con().await?;
        let names: HashMap<u32, String> = con.hgetall(&self.global().type_names).await?;
        let mut names: Vec<_> = names.into_iter().collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for (_, name) in names {
            if let Some(t) = self.type_info(&name).await? {
                out.push(t.task_type.clone());
            }
        }
        Ok(out)
    }

    fn cached_type(&self, name: &str) -> Option<Arc<TypeInfo>> {
        self.inner.types.read().unwrap().by_name.get(name).cloned()
    }

    /// The type of that name, from the cache or Redis; `None` if it does not exist.
    pub async fn type_info(&self, name: &str) -> Result<Option<Arc<TypeInfo>>> {
        if let Some(t) = self.cached_type(name) {
            return Ok(Some(t));
        }
        if validate_type_name(name).is_err() {
            return Ok(None);
        }
        let keys = TypeKeys::new(&self.config().prefix, name);
        let mut con = self.con().await?;
        let fields: HashMap<String, String> = con.hgetall(&keys.type_key).await?;
        let Some(index) = fields.get("index").and_then(|i| i.parse().ok()) else {
            return Ok(None);
        };
        let info = Arc::new(TypeInfo {
            index,
            task_type: parse_type(name, &fields)?,
            keys,
        });
        let mut cache = self.inner.types.write().unwrap();
        cache.by_index.insert(index, info.clone());
        cache.by_name.insert(name.to_string(), info.clone());
        Ok(Some(info))
    }

    /// The type of that name, or `UnknownTaskType`.
    pub async fn require_type(&self, name: &str) -> Result<Arc<TypeInfo>> {
        self.type_info(name)
            .await?
            .ok_or_else(|| Error::UnknownTaskType(name.to_string()))
    }

    /// The type with that index, if any.
    pub async fn type_by_index(&self, index: u32) -> Result<Option<Arc<TypeInfo>>> {
        if let Some(t) = self.inner.types.read().unwrap().by_index.get(&index) {
            return Ok(Some(t.clone()));
        }
        let mut con = self.con().await?;
        let name: Option<String> = con.hget(&self.global().type_names, index).await?;
        match name {
            Some(name) => self.type_info(&name).await,
            None => Ok(None),
        }
    }

    /// The type an id belongs to, and the id's per-type sequence number.
    pub async fn type_of_id(&self, id: i64) -> Result<Option<(Arc<TypeInfo>, u64)>> {
        let Some((index, seq)) = ids::split(id) else {
            return Ok(None);
        };
        Ok(self.type_by_index(index).await?.map(|t| (t, seq)))
    }

    /// Groups ids by type, keeping their order; ids of no known type are dropped. A type
    /// index is looked up once per call (100,000 ids of an unknown type used to make as many
    /// round trips).
    pub(super) async fn group_ids(&self, ids: &[i64]) -> Result<ByType<u64>> {
        let mut groups = ByType::new();
        let mut unknown = std::collections::HashSet::new();
        for &id in ids {
            let Some((index, seq)) = ids::split(id) else {
                continue;
            };
            if unknown.contains(&index) {
                continue;
            }
            match self.type_by_index(index).await? {
                Some(t) => {
                    groups.push(&t, seq);
                }
                None => {
                    unknown.insert(index);
                }
            }
        }
        Ok(groups)
    }
}

fn type_fields(t: &TaskType) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("description", t.description.clone()),
        ("backend_name", t.backend_name.clone()),
    ];
    let us = |i: Option<Interval>| i.map(|i| i.as_micros().to_string());
    for (field, value) in [
        ("default_interval", us(t.default_interval)),
        ("min_interval", us(t.min_interval)),
        ("max_interval", us(t.max_interval)),
        ("retry_delay", us(t.retry_delay)),
        ("backoff_factor", t.backoff_factor.map(|f| f.to_string())),
        (
            "max_queue_length",
            t.max_queue_length.map(|v| v.to_string()),
        ),
        ("num_retries", t.num_retries.map(|v| v.to_string())),
    ] {
        if let Some(v) = value {
            out.push((field, v));
        }
    }
    out
}

fn parse_type(name: &str, f: &HashMap<String, String>) -> Result<TaskType> {
    let bad = |field: &str| Error::Corrupt {
        key: format!("task type {name}"),
        reason: format!("bad {field}: {:?}", f.get(field)),
    };
    let int = |field: &str| -> Result<Option<i64>> {
        f.get(field)
            .map(|v| v.parse().map_err(|_| bad(field)))
            .transpose()
    };
    let interval = |field: &str| Ok::<_, Error>(int(field)?.map(Interval::from_micros));
    Ok(TaskType {
        task_type: name.to_string(),
        description: f.get("description").cloned().unwrap_or_default(),
        backend_name: f.get("backend_name").cloned().unwrap_or_default(),
        default_interval: interval("default_interval")?,
        min_interval: interval("min_interval")?,
        max_interval: interval("max_interval")?,
        backoff_factor: f
            .get("backoff_factor")
            .map(|v| v.parse().map_err(|_| bad("backoff_factor")))
            .transpose()?,
        max_queue_length: int("max_queue_length")?,
        num_retries: int("num_retries")?,
        retry_delay: interval("retry_delay")?,
    })
}
