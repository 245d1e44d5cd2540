//! The Redis key layout: every key of a task type carries the hash tag `{<type>}`, so that each
//! script touches one Cluster slot (README, "Design").
//!
//! Every key of a task type carries the hash tag `{<type>}`, so all of a type's keys are in one
//! Cluster slot and every script touches one slot. Keys of type `T` under prefix `P`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:{T}:type` | hash | the type's fields, its index, counters `task_seq` and `run_seq`, the counts by status (`tasks_<status>`, `runs_<status>`, `runs_open`: the runs scheduled or started) |
//! | `P:{T}:t:<n>` | hash | tasks `64n..64n+63`: state in field `seq % 64`, arguments in field `seq % 64 + 64` |
//! | `P:{T}:r:<n>` | hash | runs `128n..128n+127`, field = seq % 128 |
//! | `P:{T}:ready`, `P:{T}:ready:prio` | zset | due-able tasks without / with a priority, by next_run |
//! | `P:{T}:dedup` | hash | argument fingerprint -> task seqs, for `create_tasks` |
//! | `P:{T}:inflight` | zset | entries (a run, or a range of runs created together) that may hold runs still scheduled or started, scored at or before their last change (`lua/includes/run.lua`) |
//! | `P:{T}:archivable` | zset | finished tasks, by seq |
//! | `P:{T}:failed` | zset | tasks whose last ended run failed or was lost, by that end (the dashboard's failing tasks) |
//! | `P:{T}:rate:<hour>` | hash | `<minute>:<what>` -> runs dispatched, started, ended by status in that minute, kept 25 hours (the dashboard's charts) |
//! | `P:{T}:outbox:<queue>` | list | messages for a broker on another server, newest first ([`OutboxKeys`]) |
//! | `P:{T}:outbox:<queue>:batch`, `…:lease`, `…:batch_id` | list, strings | the batch a forwarder is moving, its holder, its id |
//! | `P:{T}:guard` | never present | the slot guard every script call declares (`src/store/scripts.rs`) |
//!
//! and the global keys `P:{global}:types` (name -> index), `P:{global}:type_names`
//! (index -> name) and `P:{global}:backend_ids` (foreign backend id -> run ids).

/// The keys of one task type.
#[derive(Clone, Debug)]
pub struct TypeKeys {
    /// `P:{T}`, which every key of the type starts with.
    pub base: String,
    /// `P:{T}:type`; scripts derive the others from it.
    pub type_key: String,
    pub ready: String,
    pub ready_prio: String,
}

impl TypeKeys {
    pub fn new(prefix: &str, task_type: &str) -> Self {
        let base = format!("{prefix}:{{{task_type}}}");
        TypeKeys {
            type_key: format!("{base}:type"),
            ready: format!("{base}:ready"),
            ready_prio: format!("{base}:ready:prio"),
            base,
        }
    }
}

/// Keys shared by all types.
#[derive(Clone, Debug)]
pub struct GlobalKeys {
    pub types: String,
    pub type_names: String,
    pub backend_ids: String,
    /// Hash `<name>\n<instance_name>` -> lister id.
    pub lister_ids: String,
    /// List of lister ids, in creation order.
    pub listers: String,
    /// Prefix of the hashes of listers: `<prefix><id>`.
    pub lister: String,
    /// Hash lister index -> lister id (and `seq`, the last index given).
    pub lister_idx: String,
    /// Set of the visit types that have listings or stats.
    pub visit_types: String,
    /// Prefix of the sets of the visit types of each lister: `<prefix><lister index>`.
    pub lister_visit_types: String,
    /// Hash `<lister id>|<visit type>` -> the metrics `update_metrics` last computed.
    pub metrics: String,
    /// Hash `n:<visit type>` -> index and `i:<index>` -> visit type (and `seq`): the indexes
    /// the visit runner's task ids carry.
    pub visit_type_idx: String,
}

/// The keys of one visit type of the origin-visit scheduler, all with the hash tag
/// `{vt:<visit_type>}`; `meta` is the one scripts receive, the others share its base (see
/// `lua/includes/origin.lua`).
#[derive(Clone, Debug)]
pub struct VisitTypeKeys {
    /// `<prefix>:{vt:<visit_type>}`, which every key of the visit type starts with (the
    /// scripts derive the others from it, see `lua/includes/origin.lua`).
    pub base: String,
    pub meta: String,
    pub metrics: String,
}

impl VisitTypeKeys {
    pub fn new(prefix: &str, visit_type: &str) -> Self {
        let base = format!("{prefix}:{{vt:{visit_type}}}");
        VisitTypeKeys {
            meta: format!("{base}:meta"),
            metrics: format!("{base}:m"),
            base,
        }
    }
}

impl GlobalKeys {
    pub fn new(prefix: &str) -> Self {
        GlobalKeys {
            types: format!("{prefix}:{{global}}:types"),
            type_names: format!("{prefix}:{{global}}:type_names"),
            backend_ids: format!("{prefix}:{{global}}:backend_ids"),
            lister_ids: format!("{prefix}:{{global}}:lister_ids"),
            listers: format!("{prefix}:{{global}}:listers"),
            lister: format!("{prefix}:{{global}}:lister:"),
            lister_idx: format!("{prefix}:{{global}}:lister_idx"),
            visit_types: format!("{prefix}:{{global}}:visit_types"),
            lister_visit_types: format!("{prefix}:{{global}}:lister_visit_types:"),
            metrics: format!("{prefix}:{{global}}:metrics"),
            visit_type_idx: format!("{prefix}:{{global}}:visit_type_idx"),
        }
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
    /// The batch's id.
    pub batch_id: String,
    /// The type's hash, where the forwarded and recovered counters are kept.
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
            batch_id: format!("{list}:batch_id"),
            list,
            counters: counters.to_string(),
        }
    }
}
