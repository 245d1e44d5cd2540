//! Listers: a few global records (`{global}` slot), each a hash, indexed by name and instance.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde_json::Value;

use super::Store;
use super::scripts::{Call, ScriptName};
use crate::error::{Error, Result};
use crate::model::{Lister, from_micros, to_micros, validate_lister_name};

impl Store {
    /// Every lister, in creation order.
    pub async fn get_listers(&self) -> Result<Vec<Lister>> {
        let mut con = self.con().await?;
        let ids: Vec<String> = con.lrange(&self.global().listers, 0, -1).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.lister_key(id));
        }
        let records: Vec<HashMap<String, String>> = pipe.query_async(&mut con).await?;
        ids.iter()
            .zip(records)
            .filter(|(_, r)| !r.is_empty())
            .map(|(id, r)| lister_from(id, r))
            .collect()
    }

    /// The lister of that name and instance (`None` is `""`), if it exists.
    pub async fn get_lister(
        &self,
        name: &str,
        instance_name: Option<&str>,
    ) -> Result<Option<Lister>> {
        let mut con = self.con().await?;
        let key = format!("{name}\n{}", instance_name.unwrap_or(""));
        let id: Option<String> = con.hget(&self.global().lister_ids, key).await?;
        match id {
            Some(id) => self.read_lister(&id).await,
            None => Ok(None),
        }
    }

    /// The lister of that name and instance, created if it does not exist.
    pub async fn get_or_create_lister(
        &self,
        name: &str,
        instance_name: Option<&str>,
    ) -> Result<Lister> {
        let instance_name = instance_name.unwrap_or("");
        validate_lister_name("name", name)?;
        validate_lister_name("instance_name", instance_name)?;
        let new_id = uuid::Uuid::new_v4().to_string();
        let g = self.global();
        let new_key = self.lister_key(&new_id);
        let mut con = self.con().await?;
        let id = Call::new(
            ScriptName::ListerGetOrCreate,
            &[&g.lister_ids, &g.listers, &new_key, &g.lister_idx],
        )
        .arg(name)
        .arg(instance_name)
        .arg(&new_id)
        .run(&mut con)
        .await?;
        let id = match id {
            redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            other => return Err(Error::Other(format!("bad lister id {other:?}"))),
        };
        self.read_lister(&id)
            .await?
            .ok_or_else(|| Error::Other(format!("lister {id} vanished")))
    }

    /// Saves a lister's name, instance name and state if `lister.updated` is the stored one;
    /// else `StaleData`. Returns the lister as stored, with its new `updated`.
    pub async fn update_lister(&self, lister: &Lister) -> Result<Lister> {
        let (Some(id), Some(updated)) = (&lister.id, lister.updated) else {
            return Err(Error::StaleData("Lister state not updated".into()));
        };
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(Error::invalid("lister.id", id, "expected a UUID"));
        }
        validate_lister_name("lister.name", &lister.name)?;
        validate_lister_name("lister.instance_name", &lister.instance_name)?;
        let state = Value::Object(lister.current_state.clone()).to_string();
        let g = self.global();
        let mut con = self.con().await?;
        let new = Call::new(
            ScriptName::ListerUpdate,
            &[&g.lister_ids, &self.lister_key(id)],
        )
        .arg(id)
        .arg(to_micros(updated))
        .arg(&lister.name)
        .arg(&lister.instance_name)
        .arg(state)
        .run(&mut con)
        .await?;
        let new = super::as_int(&new).ok_or_else(|| Error::Other("bad updated".into()))?;
        Ok(Lister {
            updated: Some(from_micros(new)),
            ..lister.clone()
        })
    }

    fn lister_key(&self, id: &str) -> String {
        format!("{}{id}", self.global().lister)
    }

    async fn read_lister(&self, id: &str) -> Result<Option<Lister>> {
        let mut con = self.con().await?;
        let r: HashMap<String, String> = con.hgetall(self.lister_key(id)).await?;
        if r.is_empty() {
            return Ok(None);
        }
        lister_from(id, r).map(Some)
    }
}

fn lister_from(id: &str, mut r: HashMap<String, String>) -> Result<Lister> {
    let bad = |field: &str| Error::Corrupt {
        key: format!("lister {id}"),
        reason: format!("bad {field}"),
    };
    let time = |r: &HashMap<String, String>, field: &str| {
        r.get(field)
            .and_then(|v| v.parse::<i64>().ok())
            .map(from_micros)
            .ok_or_else(|| bad(field))
    };
    let current_state = match serde_json::from_str(r.get("current_state").map_or("{}", |s| s)) {
        Ok(Value::Object(m)) => m,
        _ => return Err(bad("current_state")),
    };
    Ok(Lister {
        created: Some(time(&r, "created")?),
        updated: Some(time(&r, "updated")?),
        name: r.remove("name").unwrap_or_default(),
        instance_name: r.remove("instance_name").unwrap_or_default(),
        id: Some(id.to_string()),
        current_state,
    })
}
