//! Configuration: the original's YAML file (`-C`/`SWH_CONFIG_FILENAME`, a `scheduler:` section)
//! plus our own sections, overridden by command-line options and environment variables.

use std::path::Path;

use serde::Deserialize;

use crate::celery::BrokerNaming;
use crate::error::{Error, Result};
use crate::model::Interval;
use crate::store::StoreConfig;

/// The whole configuration file. Unknown keys are ignored, as the original ignores them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    pub scheduler: Option<SchedulerSection>,
    pub celery: CelerySection,
    pub listener: ListenerSection,
    pub rpc: RpcSection,
    pub recurrent_visits: RecurrentVisitsSection,
}

/// The `recurrent_visits:` section: what `schedule-recurrent` sends.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RecurrentVisitsSection {
    /// Only these visit types (default: every one with listings and a `load-<type>` task type).
    pub visit_types: Vec<String>,
    /// An origin sent less than this ago, with no visit result since, is not sent again
    /// (default 7 days).
    pub scheduled_cooldown: Option<Interval>,
    /// Policies and weights by visit type, and `default` for the others.
    pub policies: std::collections::HashMap<String, Vec<WeightedPolicy>>,
    /// Later versions' cooldowns (none by default, as in 0.16): an origin whose last visit
    /// failed, or found nothing, less than this ago is not sent; nor one sent less than
    /// `absolute_cooldown` ago, whatever happened since.
    pub failed_cooldown: Option<Interval>,
    pub not_found_cooldown: Option<Interval>,
    pub absolute_cooldown: Option<Interval>,
    /// The listener disables an origin after this many failed or not-found visits in a row
    /// (later versions' rule, with 3; off by default as in 0.16).
    pub disable_after_failures: Option<u32>,
    /// Visit types whose origins the listener disables after a successful visit.
    pub stop_after_success: Vec<String>,
}

/// One policy of a mix.
#[derive(Clone, Debug, Deserialize)]
pub struct WeightedPolicy {
    pub policy: String,
    pub weight: u32,
}

/// The `rpc:` section: the RPC server's users.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RpcSection {
    /// User name -> bcrypt hash of the password (`swh-scheduler hash-password`); when set,
    /// every request needs one of them (HTTP basic authentication).
    pub users: std::collections::HashMap<String, String>,
}

/// The `celery:` section: where the workers' broker is and how their kombu names things.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CelerySection {
    /// The workers' broker URL; default: the store's Redis. On another server, the runners'
    /// messages go through outboxes in the store (see `src/store/outbox.rs`).
    pub broker_url: Option<String>,
    /// The workers' kombu transport options (`global_keyprefix`, `sep`, `priority_steps`,
    /// `fanout_prefix`) and `event_exchange`.
    #[serde(flatten)]
    pub naming: BrokerNaming,
    /// Queue-name prefix of tasks with a priority (default `save_code_now`).
    pub priority_queue_prefix: Option<String>,
    /// The workers' result backend, if on Redis (`redis://…/1`): read by the listener to settle
    /// runs whose events it missed.
    pub result_backend: Option<String>,
}

/// The `listener:` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListenerSection {
    /// Runs open longer than this are marked lost (default 1 day).
    pub lost_after: Option<Interval>,
    /// Per task type overrides of `lost_after`.
    pub lost_after_by_type: std::collections::HashMap<String, Interval>,
    /// Scheduled runs are lost past this age even while their queue is busy (default: twice
    /// their `lost_after`).
    pub lost_scheduled_after: Option<Interval>,
    /// Seconds between lost-run sweeps (default 60; 0 disables).
    pub sweep_every: Option<f64>,
    /// Broadcast `enable_events` to the workers on each connection.
    pub enable_events: Option<bool>,
}

/// The `scheduler:` section: `cls: redis` with `url: redis://…`, or `cls: remote` with
/// `url: http://…` (the RPC server).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SchedulerSection {
    pub cls: Option<String>,
    pub url: Option<String>,
    /// Prefix of every Redis key (default `swh`).
    pub prefix: Option<String>,
    /// Runs kept per task (default 3).
    pub keep_runs: Option<usize>,
    /// Seconds a Redis command may take to answer (default 30).
    pub response_timeout: Option<f64>,
}

/// The workers' broker as the roles see it: its URL, its database when it is not the store's,
/// how kombu names its keys, and the priority queues' prefix. Built in one place,
/// [`CelerySection::broker`], for the runner, the listener and `/metrics`.
#[derive(Clone, Debug)]
pub struct Broker {
    pub url: String,
    /// Where the broker is, seen from the store.
    pub link: crate::store::BrokerLink,
    /// kombu's naming, with the broker URL's database.
    pub naming: BrokerNaming,
    /// Queue-name prefix of tasks with a priority, when configured.
    pub priority_queue_prefix: Option<String>,
}

impl CelerySection {
    /// The broker for a store at `store_url`: the configured one, or the store's Redis.
    pub fn broker(&self, store_url: &str) -> Result<Broker> {
        let url = self
            .broker_url
            .clone()
            .unwrap_or_else(|| store_url.to_string());
        let mut naming = self.naming.clone();
        naming.db = crate::store::url_db(&url);
        Ok(Broker {
            link: crate::store::BrokerLink::new(store_url, self.broker_url.as_deref())?,
            url,
            naming,
            priority_queue_prefix: self.priority_queue_prefix.clone(),
        })
    }
}

impl FileConfig {
    /// Reads and parses a configuration file, saying which file is wrong and why.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Other(format!(
                "cannot read configuration file {}: {e}",
                path.display()
            ))
        })?;
        let config: FileConfig = serde_norway::from_str(&text).map_err(|e| {
            Error::Other(format!(
                "invalid configuration file {}: {e}",
                path.display()
            ))
        })?;
        if let Some(t) = config.scheduler.as_ref().and_then(|s| s.response_timeout)
            && !(t.is_finite() && t > 0.0)
        {
            return Err(Error::Other(format!(
                "invalid configuration file {}: scheduler.response_timeout is {t}; it must be a \
                 positive number of seconds",
                path.display()
            )));
        }
        if config.recurrent_visits.disable_after_failures == Some(0) {
            return Err(Error::Other(format!(
                "invalid configuration file {}: recurrent_visits.disable_after_failures is 0; \
                 it must be at least 1 (leave it out to never disable origins)",
                path.display()
            )));
        }
        let rv = &config.recurrent_visits;
        for (field, v) in [
            ("scheduled_cooldown", rv.scheduled_cooldown),
            ("failed_cooldown", rv.failed_cooldown),
            ("not_found_cooldown", rv.not_found_cooldown),
            ("absolute_cooldown", rv.absolute_cooldown),
        ] {
            if let Some(i) = v
                && i.as_micros() < 0
            {
                return Err(Error::Other(format!(
                    "invalid configuration file {}: recurrent_visits.{field} is {i}; it must \
                     not be negative",
                    path.display()
                )));
            }
        }
        for (vt, mix) in &rv.policies {
            if mix.iter().all(|p| p.weight == 0) {
                return Err(Error::Other(format!(
                    "invalid configuration file {}: recurrent_visits.policies.{vt} has no \
                     policy with a weight above 0, so it would send nothing",
                    path.display()
                )));
            }
            for (i, p) in mix.iter().enumerate() {
                if p.policy.parse::<crate::model::VisitPolicy>().is_err() {
                    return Err(Error::Other(format!(
                        "invalid configuration file {}: recurrent_visits.policies.{vt}[{i}].policy \
                         is {:?}; it must be one of oldest_scheduled_first, \
                         never_visited_oldest_update_first, already_visited_order_by_lag",
                        path.display(),
                        p.policy
                    )));
                }
            }
        }
        if let Some(s) = &config.scheduler
            && let Some(cls) = s.cls.as_deref()
            && !matches!(cls, "redis" | "remote")
        {
            return Err(Error::Other(format!(
                "invalid configuration file {}: scheduler.cls is {cls:?}; this scheduler \
                 supports \"redis\" (a Redis URL) and \"remote\" (an RPC server URL)",
                path.display()
            )));
        }
        Ok(config)
    }
}

/// Where the scheduler's state is, once options, environment and file are combined.
#[derive(Clone, Debug, PartialEq)]
pub enum Backend {
    /// Redis directly; `explicit` is false when the URL is only the default.
    Redis { url: String, explicit: bool },
    /// Through an RPC server.
    Remote { url: String },
}

/// Combines, by priority: the RPC URL option, the Redis URL option (or environment), the file's
/// `scheduler` section, and the default Redis URL.
pub fn resolve_backend(
    rpc_url: Option<&str>,
    redis_url: Option<&str>,
    file: &FileConfig,
) -> Backend {
    if let Some(url) = rpc_url {
        return Backend::Remote {
            url: url.to_string(),
        };
    }
    if let Some(url) = redis_url {
        return Backend::Redis {
            url: url.to_string(),
            explicit: true,
        };
    }
    if let Some(s) = &file.scheduler
        && let Some(url) = &s.url
    {
        return match s.cls.as_deref() {
            Some("remote") => Backend::Remote { url: url.clone() },
            _ => Backend::Redis {
                url: url.clone(),
                explicit: true,
            },
        };
    }
    Backend::Redis {
        url: StoreConfig::DEFAULT_URL.to_string(),
        explicit: false,
    }
}

/// The store settings for a Redis URL, with the file's prefix and run retention unless the
/// command line gives them.
pub fn store_config(url: &str, prefix: Option<&str>, file: &FileConfig) -> StoreConfig {
    let mut c = StoreConfig::new(url);
    let section = file.scheduler.clone().unwrap_or_default();
    if let Some(p) = prefix.map(str::to_string).or(section.prefix) {
        c.prefix = p;
    }
    if let Some(k) = section.keep_runs {
        c.keep_runs = k;
    }
    if let Some(t) = section
        .response_timeout
        .filter(|t| t.is_finite() && *t > 0.0)
    {
        c.response_timeout = std::time::Duration::from_secs_f64(t);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> FileConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn options_beat_the_file_which_beats_the_default() {
        let file = parse("scheduler:\n  cls: redis\n  url: redis://h:1/2\n");
        assert_eq!(
            resolve_backend(None, None, &file),
            Backend::Redis {
                url: "redis://h:1/2".into(),
                explicit: true
            }
        );
        assert_eq!(
            resolve_backend(None, Some("redis://o:3/0"), &file),
            Backend::Redis {
                url: "redis://o:3/0".into(),
                explicit: true
            }
        );
        assert_eq!(
            resolve_backend(Some("http://x:5008/"), Some("redis://o:3/0"), &file),
            Backend::Remote {
                url: "http://x:5008/".into()
            }
        );
        let remote = parse("scheduler:\n  cls: remote\n  url: http://s:5008/\n");
        assert_eq!(
            resolve_backend(None, None, &remote),
            Backend::Remote {
                url: "http://s:5008/".into()
            }
        );
        assert_eq!(
            resolve_backend(None, None, &FileConfig::default()),
            Backend::Redis {
                url: StoreConfig::DEFAULT_URL.into(),
                explicit: false
            }
        );
    }

    #[test]
    fn celery_section_follows_kombu_names() {
        let f = parse(
            "celery:\n  broker_url: redis://h:1/3\n  global_keyprefix: 'p:'\n  sep: ':'\n  priority_steps: [0, 5]\n",
        );
        assert_eq!(f.celery.broker_url.as_deref(), Some("redis://h:1/3"));
        assert_eq!(f.celery.naming.global_keyprefix, "p:");
        assert_eq!(f.celery.naming.queue_keys("q"), ["p:q", "p:q:5"]);
        let d = parse("scheduler:\n  cls: redis\n");
        assert_eq!(d.celery.naming, BrokerNaming::default());
    }

    #[test]
    fn a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yml");
        std::fs::write(&p, "scheduler:\n  cls: postgresql\n  db: x\n").unwrap();
        let e = FileConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("c.yml") && e.contains("postgresql"), "{e}");
        std::fs::write(&p, "scheduler: [unclosed").unwrap();
        assert!(
            FileConfig::load(&p)
                .unwrap_err()
                .to_string()
                .contains("c.yml")
        );
    }
}
