//! The origin-visit half: origins a lister listed, what their visits found, and the metrics
//! computed from both. Fields are exactly the original 0.16 models' (a 0.16 client rebuilds
//! each object with `Class(**fields)`).

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// An origin (URL) that a lister found, to be visited by the `visit_type` loader.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedOrigin {
    /// The lister's id (a UUID).
    pub lister_id: String,
    pub url: String,
    pub visit_type: String,
    /// Extra keyword arguments for the loader (JSON).
    pub extra_loader_arguments: Map<String, Value>,
    /// When the forge says the origin last changed, if it says.
    pub last_update: Option<DateTime<Utc>>,
    /// False once the lister stops finding it.
    pub enabled: bool,
    /// Set by the scheduler when the listing is first recorded.
    pub first_seen: Option<DateTime<Utc>>,
    /// Set by the scheduler each time the listing is recorded.
    pub last_seen: Option<DateTime<Utc>>,
}

impl ListedOrigin {
    /// A listing to record.
    pub fn new(lister_id: &str, url: &str, visit_type: &str) -> Self {
        ListedOrigin {
            lister_id: lister_id.to_string(),
            url: url.to_string(),
            visit_type: visit_type.to_string(),
            extra_loader_arguments: Map::new(),
            last_update: None,
            enabled: true,
            first_seen: None,
            last_seen: None,
        }
    }

    /// The task the original's `as_task_dict` makes: `load-<visit_type>` with kwargs `url`
    /// and the extra loader arguments.
    pub fn task_kwargs(&self) -> Map<String, Value> {
        let mut kwargs = Map::new();
        kwargs.insert("url".into(), Value::String(self.url.clone()));
        kwargs.extend(self.extra_loader_arguments.clone());
        kwargs
    }
}

/// What the visits of one origin with one visit type found (the original's
/// `origin_visit_stats` row).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OriginVisitStats {
    pub url: String,
    pub visit_type: String,
    pub last_eventful: Option<DateTime<Utc>>,
    pub last_uneventful: Option<DateTime<Utc>>,
    pub last_failed: Option<DateTime<Utc>>,
    pub last_notfound: Option<DateTime<Utc>>,
    /// When the origin was last handed to a loader (`grab_next_visits`).
    pub last_scheduled: Option<DateTime<Utc>>,
    /// The snapshot the last eventful visit made (a SHA1, 20 bytes).
    pub last_snapshot: Option<Vec<u8>>,
}

/// The four counters of one (lister, visit type), as `update_metrics` computes them.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerMetrics {
    pub lister_id: String,
    pub visit_type: String,
    pub last_update: DateTime<Utc>,
    /// Listings recorded.
    pub origins_known: i64,
    /// Listings enabled.
    pub origins_enabled: i64,
    /// Enabled listings whose origin has no snapshot.
    pub origins_never_visited: i64,
    /// Enabled listings changed (`last_update`) since their origin's last successful visit.
    pub origins_with_pending_changes: i64,
}

/// A page of `get_listed_origins`, with the token of the next one: `(lister_id, url)`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ListedOriginPage {
    pub results: Vec<ListedOrigin>,
    pub next_page_token: Option<(String, String)>,
}

/// The three policies of 0.16's `grab_next_visits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VisitPolicy {
    /// Origins never scheduled first, then by `last_scheduled`.
    OldestScheduledFirst,
    /// Origins without a snapshot whose `last_update` is known, oldest update first.
    NeverVisitedOldestUpdateFirst,
    /// Origins with a snapshot changed since their last successful visit, largest lag first.
    AlreadyVisitedOrderByLag,
}

impl VisitPolicy {
    pub const ALL: [VisitPolicy; 3] = [
        VisitPolicy::OldestScheduledFirst,
        VisitPolicy::NeverVisitedOldestUpdateFirst,
        VisitPolicy::AlreadyVisitedOrderByLag,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VisitPolicy::OldestScheduledFirst => "oldest_scheduled_first",
            VisitPolicy::NeverVisitedOldestUpdateFirst => "never_visited_oldest_update_first",
            VisitPolicy::AlreadyVisitedOrderByLag => "already_visited_order_by_lag",
        }
    }
}

impl std::str::FromStr for VisitPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        VisitPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Error::UnknownPolicy(s.to_string()))
    }
}

/// `grab_next_visits`' options beyond the visit type and count. Absent ones keep 0.16's
/// behaviour; the others are what later versions added.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct GrabOptions {
    /// The time to grab at (default: the Redis server's clock).
    pub timestamp: Option<DateTime<Utc>>,
    /// An origin scheduled less than this ago and without a result since is not taken
    /// (0.16: 7 days).
    pub scheduled_cooldown: Option<Duration>,
    /// An origin whose last visit failed less than this ago is not taken (0.16: none).
    pub failed_cooldown: Option<Duration>,
    /// An origin whose last visit found nothing less than this ago is not taken.
    pub not_found_cooldown: Option<Duration>,
    /// An origin scheduled less than this ago is not taken, whatever happened since.
    pub absolute_cooldown: Option<Duration>,
    /// Only the origins listed by this lister (its id, or its name and instance).
    pub lister_uuid: Option<String>,
    pub lister_name: Option<String>,
    pub lister_instance_name: Option<String>,
    /// Choose, but mark nothing.
    pub dry_run: bool,
}

/// Longest URL accepted, in bytes.
pub const MAX_URL: usize = 8192;
/// Largest `extra_loader_arguments` accepted, as JSON text in bytes.
pub const MAX_EXTRA_LOADER_ARGUMENTS: usize = 65535;
/// Most listings or stats one call may carry; larger batches are refused whole.
pub const MAX_BATCH: usize = 100_000;

/// Checks a URL or a visit type: not empty, not too long, no control characters (they
/// separate fields in the stored records).
pub fn validate_origin_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, value, "must not be empty"));
    }
    if value.len() > max {
        return Err(Error::invalid(
            field,
            format!("{}...", value.chars().take(40).collect::<String>()),
            format!("is {} bytes, longer than the {max} accepted", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, value, "contains a control character"));
    }
    Ok(())
}

/// What a loader's visit found, as its Celery task returns it (`{"status": …}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VisitStatus {
    Eventful,
    Uneventful,
    Failed,
    NotFound,
    /// No result came within the listener's lost-run bound (`lost_after`): a failed visit,
    /// unless a result came meanwhile.
    Lost,
}

impl VisitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VisitStatus::Eventful => "eventful",
            VisitStatus::Uneventful => "uneventful",
            VisitStatus::Failed => "failed",
            VisitStatus::NotFound => "not_found",
            VisitStatus::Lost => "lost",
        }
    }
}

/// Later versions' rules for visit results (0.16 has none, so both are off by default).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VisitRules {
    /// Disable an origin's listings after this many failed or not-found results in a row
    /// (later versions use 3).
    pub disable_after_failures: Option<u32>,
    /// Visit types whose origins are disabled after their first successful visit (their
    /// artifacts never change).
    pub stop_after_success: Vec<String>,
}

/// The result of one visit the visit runner sent, from the loader's Celery task, to apply to
/// the origin's visit stats.
#[derive(Clone, Debug, PartialEq)]
pub struct VisitOutcome {
    /// The visit type's index and the origin's id, from the Celery task id
    /// (`crate::model::ids::parse_visit_id`).
    pub visit_type_index: u32,
    pub origin_id: i64,
    pub status: VisitStatus,
    /// The snapshot the visit made or found (a SHA1), when the result names one.
    pub snapshot: Option<Vec<u8>>,
    /// When the visit ended (the event's time); `None` for now. For [`VisitStatus::Lost`],
    /// the bound: the visit is lost if it was sent before it, with no result since.
    pub date: Option<DateTime<Utc>>,
    /// When the visit was sent (ms, from the task id), if known: a result of the origin's
    /// latest sending ends its wait even if the worker's clock is behind Redis's.
    pub sent_ms: Option<i64>,
}
