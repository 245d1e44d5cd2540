//! Listers: the processes that list a forge's origins, one record per (name, instance).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A lister instance, as the original's `Lister` model (exactly its fields: a 0.16 client
/// rebuilds it with `Lister(**fields)`).
#[derive(Clone, Debug, PartialEq)]
pub struct Lister {
    pub name: String,
    /// `""` when the lister has a single instance (the original stores None as `""`).
    pub instance_name: String,
    /// A UUID, given by the scheduler on creation.
    pub id: Option<String>,
    /// What the lister saves between runs (pages seen, last dates), as JSON.
    pub current_state: Map<String, Value>,
    pub created: Option<DateTime<Utc>>,
    /// Changes on every update; `update_lister` fails if the caller's copy is older.
    pub updated: Option<DateTime<Utc>>,
}

/// Longest lister name or instance name accepted, in bytes.
pub const MAX_LISTER_NAME: usize = 512;

/// Checks a lister's name or instance name: not too long, no control characters.
pub fn validate_lister_name(field: &str, name: &str) -> Result<()> {
    if name.len() > MAX_LISTER_NAME {
        return Err(Error::invalid(
            field,
            format!("{}...", name.chars().take(40).collect::<String>()),
            format!("longer than {MAX_LISTER_NAME} bytes"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(field, name, "contains a control character"));
    }
    Ok(())
}

impl Lister {
    /// A lister not yet stored.
    pub fn new(name: &str, instance_name: &str) -> Self {
        Lister {
            name: name.to_string(),
            instance_name: instance_name.to_string(),
            id: None,
            current_state: Map::new(),
            created: None,
            updated: None,
        }
    }
}
