//! One simulation: the simulated forge, lister, queue and workers around the real scheduler.
//!
//! Events (see [`super::agenda`]): every 10 s the scheduler fills the loaders' queue, every
//! hour the lister re-lists its origins and adds 100, every hour `update_metrics` runs, and
//! each visit ends after the run time the forge model gives. Results reach the scheduler
//! before each scheduler pass (and every 1000), as the listener would apply them.
//!
//! - `origin_scheduler` on Redis: the visit runner's own script ([`Store::send_visits`])
//!   chooses the origins by the policy mix and pushes real Celery messages onto a Redis list;
//!   the simulated workers take them from there (prefetching up to 64, as Celery workers
//!   do) and read the task id and `url` from each message; results go through the listener's
//!   path ([`Store::apply_visit_outcomes`]).
//! - `origin_scheduler` through an RPC server: `grab_next_visits` per policy, and the
//!   original journal client's rules over `visit_stats/get` and `visit_stats/upsert`.
//! - `task_scheduler`: `grab_ready_tasks` then `mass_schedule_task_runs` (the original
//!   simulator's calls), starts and ends applied with the end-of-run rules (in batches on
//!   Redis, as the listener does; one call each through RPC).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::agenda::Agenda;
use super::forge::{Load, LoadEnd, OriginModel, origin_url};
use super::report::{MetricsPoint, Outcome, Report};
use crate::api::SchedulerApi;
use crate::error::{Error, Result};
use crate::model::{
    GrabOptions, ListedOrigin, NewTaskRun, OriginVisitStats, RunStatus, VisitOutcome, VisitPolicy,
    VisitRules, VisitStatus, ids,
};
use crate::store::{BrokerLink, RunEvent, Store, VisitTarget};

/// The visit type the simulated forge has (the original's).
pub const VISIT_TYPE: &str = "git";
/// The task type of its loader.
pub const LOAD_TASK_TYPE: &str = "load-git";
/// The lister's name.
pub const LISTER: &str = "example";
/// Scheduler passes are this far apart (s).
const RUNNER_PERIOD: f64 = 10.0;
/// The lister and the metrics run this often (s).
const HOURLY: f64 = 3600.0;
/// New origins per listing.
const NEW_ORIGINS_PER_LISTING: u64 = 100;
/// Origins per page the lister records (swh.lister's).
const PAGE: usize = 1000;
/// The lister's pages of known origins in flight at once: the store's work on one overlaps
/// the making and sending of the next.
pub const LISTING_IN_FLIGHT: usize = 2;
/// Results applied at once at most.
const FEEDBACK_BATCH: usize = 1000;
/// Messages a simulated worker pool takes from the Redis queue at once.
const PREFETCH: usize = 64;
/// Without the visit runner's own rule, a pass fills the queue only with this many free
/// slots or more (the original simulator's `min_batch_size`).
const MIN_BATCH: usize = 1000;

/// Which scheduler is simulated.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Listed origins chosen by a weighted mix of `grab_next_visits` policies.
    OriginScheduler(Vec<(VisitPolicy, u32)>),
    /// One recurring `load-git` task per origin.
    TaskScheduler,
}

impl Mode {
    /// `task_scheduler`, or the policy mix as given on the command line.
    pub fn label(&self) -> String {
        match self {
            Mode::TaskScheduler => "task_scheduler".into(),
            Mode::OriginScheduler(mix) if mix.len() == 1 => mix[0].0.as_str().into(),
            Mode::OriginScheduler(mix) => mix
                .iter()
                .map(|(p, w)| format!("{}={w}", p.as_str()))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// How a simulation runs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub mode: Mode,
    /// Simulated seconds; `None` runs until interrupted.
    pub runtime: Option<f64>,
    /// The simulated clock's start.
    pub start: DateTime<Utc>,
    /// Seeds the random parts (the task runs' backend ids, the failures of `failure_rate`).
    pub seed: u64,
    pub workers: usize,
    pub queue_capacity: usize,
    /// The share of visits that fail whatever the forge model says (0 in the original).
    pub failure_rate: f64,
    /// Draw a progress bar on standard error.
    pub progress: bool,
}

/// The scheduler under test: its API, and the store itself when it is local (for the visit
/// runner's script and the listener's batch paths, which the RPC API does not have).
#[derive(Clone)]
pub struct Target {
    pub api: Arc<dyn SchedulerApi>,
    pub store: Option<Store>,
}

/// A small, seedable generator (SplitMix64): enough for ids and coin flips, reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_bytes(bytes)
            .with_version(uuid::Version::Random)
            .with_variant(uuid::Variant::RFC4122)
            .into_uuid()
            .to_string()
    }
}

/// What the simulator knows of one origin of its forge.
struct OriginState {
    model: OriginModel,
    /// Start of the last visit (Unix s), any outcome: what the next visit's length counts from.
    last_visit: Option<f64>,
    /// The snapshot of the last full visit.
    last_snapshot: Option<[u8; 20]>,
    /// Commits up to this time (Unix s) are archived, or were made before the simulation.
    archived_until: f64,
}

/// How the scheduler knows a visit, to report its result.
#[derive(Clone, Debug)]
enum VisitRef {
    /// Sent by the visit runner: from its Celery task id.
    Sent {
        visit_type_index: u32,
        origin_id: i64,
        sent_ms: i64,
    },
    /// Grabbed through `grab_next_visits`.
    Grabbed,
    /// A task run.
    Run { backend_id: String },
}

#[derive(Clone, Debug)]
struct Visit {
    url: String,
    by: VisitRef,
}

enum Event {
    SchedulerPass,
    Listing,
    Metrics,
    VisitEnd {
        worker: usize,
        visit: Visit,
        load: Load,
        started: f64,
    },
}

/// A visit result for the journal client's rules: url, status, end, snapshot.
type JournalResult = (String, VisitStatus, DateTime<Utc>, Option<[u8; 20]>);

/// Results waiting to reach the scheduler.
#[derive(Default)]
struct Feedback {
    outcomes: Vec<VisitOutcome>,
    run_events: Vec<RunEvent>,
    /// (url, status, end, snapshot) for the journal client's rules.
    journal: Vec<JournalResult>,
}

impl Feedback {
    fn len(&self) -> usize {
        self.outcomes.len() + self.run_events.len() + self.journal.len()
    }
}

/// Fills the scheduler with `n` origins of the simulated forge as the original's
/// `fill_test_data` does: the `load-git` task type if missing, the lister `example`, `n`
/// listed origins (`last_update` as of `start`) and one recurring `load-git` task each
/// (`next_run` = `last_update`). Numbering continues after the origins the lister has.
/// Returns the number of origins the lister has now.
pub async fn fill_test_data(target: &Target, n: u64, start: DateTime<Utc>) -> Result<u64> {
    let api = &target.api;
    if api.get_task_type(LOAD_TASK_TYPE).await?.is_none() {
        api.create_task_type(&load_git_task_type()).await?;
    }
    let lister = api.get_or_create_lister(LISTER, None).await?;
    let lister_id = lister.id.clone().unwrap_or_default();
    let first = known_origins(api.as_ref(), &lister_id, start).await? + 1;
    let start_unix = unix(start);
    let numbers: Vec<u64> = (first..first + n).collect();
    for chunk in numbers.chunks(10_000) {
        let origins: Vec<ListedOrigin> = chunk
            .iter()
            .map(|i| listed(&lister_id, &origin_url(*i), start_unix))
            .collect();
        api.record_listed_origins(&origins).await?;
        let tasks: Vec<crate::model::NewTask> = origins
            .iter()
            .map(|o| {
                let mut kwargs = Map::new();
                kwargs.insert("url".into(), Value::String(o.url.clone()));
                let mut t = crate::model::NewTask::new(LOAD_TASK_TYPE, vec![], kwargs);
                t.next_run = o.last_update;
                t.policy = Some(crate::model::Policy::Recurring);
                t
            })
            .collect();
        api.create_tasks(&tasks, crate::model::Policy::Recurring)
            .await?;
    }
    Ok(first - 1 + n)
}

/// The `load-git` task type of Software Heritage's deployment: 64 days by default, between
/// 12 hours and 64 days, backoff 2.
pub fn load_git_task_type() -> crate::model::TaskType {
    use crate::model::Interval;
    let mut t = crate::model::TaskType::new(
        LOAD_TASK_TYPE,
        "swh.loader.git.tasks.UpdateGitRepository",
        "Update an origin of type git",
    );
    t.default_interval = Some(Interval::from_days(64));
    t.min_interval = Some(Interval::from_secs(12 * 3600));
    t.max_interval = Some(Interval::from_days(64));
    t.backoff_factor = Some(2.0);
    t
}

async fn known_origins(api: &dyn SchedulerApi, lister_id: &str, at: DateTime<Utc>) -> Result<u64> {
    let metrics = api.update_metrics(Some(lister_id), Some(at)).await?;
    Ok(metrics.iter().map(|m| m.origins_known.max(0) as u64).sum())
}

fn listed(lister_id: &str, url: &str, now_unix: f64) -> ListedOrigin {
    let model = OriginModel::new(VISIT_TYPE, url);
    let mut o = ListedOrigin::new(lister_id, url, VISIT_TYPE);
    o.last_update = Some(from_unix(model.last_update(now_unix)));
    o
}

fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

fn from_unix(s: f64) -> DateTime<Utc> {
    crate::model::from_micros((s * 1e6).round() as i64)
}

/// Runs one simulation to its end (or until `stop` is set) and returns its report.
pub async fn run(target: &Target, config: &SimConfig, stop: Arc<AtomicBool>) -> Result<Report> {
    let mut sim = Simulation::new(target.clone(), config.clone()).await?;
    sim.run(&stop).await?;
    Ok(sim.report)
}

struct Simulation {
    target: Target,
    config: SimConfig,
    report: Report,
    agenda: Agenda<Event>,
    start_unix: f64,
    origins: HashMap<String, OriginState>,
    lister_id: String,
    /// The origins the simulated lister generated, re-listed every hour.
    lister_urls: Vec<String>,
    next_origin: u64,
    idle: Vec<usize>,
    /// The loaders' queue (or, when it is a Redis list, what the workers prefetched).
    queue: VecDeque<Visit>,
    /// The Redis list the visit runner's script pushes to, when it is used.
    redis_queue: Option<String>,
    /// Messages in that list: the simulator is its only writer (through the script) and
    /// reader, so it knows.
    redis_waiting: usize,
    task_name: String,
    listers: Vec<(String, String)>,
    /// The visit type's index, read once (the store is the simulation's own).
    visit_type_index: u32,
    feedback: Feedback,
    rng: Rng,
    timings: Timings,
}

/// Where the wall-clock time of a simulation went (logged at its end).
#[derive(Default, Debug)]
struct Timings {
    passes: (u32, f64),
    results: (u32, f64),
    listings: (u32, f64),
    metrics: (u32, f64),
    queue_reads: (u32, f64),
}

impl Timings {
    fn add(slot: &mut (u32, f64), since: Instant) {
        slot.0 += 1;
        slot.1 += since.elapsed().as_secs_f64();
    }
}

impl Simulation {
    async fn new(target: Target, config: SimConfig) -> Result<Self> {
        let start_unix = unix(config.start);
        let api = target.api.clone();
        let loader = api.get_task_type(LOAD_TASK_TYPE).await?.ok_or_else(|| {
            Error::Other(format!(
                "no task type {LOAD_TASK_TYPE}: fill the scheduler first (simulator \
                 fill-test-data, or simulator run -n N)"
            ))
        })?;
        let lister = api.get_or_create_lister(LISTER, None).await?;
        let lister_id = lister.id.clone().unwrap_or_default();
        let known = known_origins(api.as_ref(), &lister_id, config.start).await?;
        let (redis_queue, listers, visit_type_index) = match (&config.mode, &target.store) {
            (Mode::OriginScheduler(_), Some(store)) => {
                let key = format!("{}:simulator:queue:{VISIT_TYPE}", store.config().prefix);
                let mut con = store.con().await?;
                redis::cmd("DEL")
                    .arg(&key)
                    .query_async::<()>(&mut con)
                    .await?;
                (
                    Some(key),
                    store.visit_lister_fields().await?,
                    store.visit_type_index(VISIT_TYPE).await?,
                )
            }
            _ => (None, Vec::new(), 0),
        };
        Ok(Simulation {
            report: Report::new(&config.mode.label(), config.start),
            agenda: Agenda::default(),
            start_unix,
            origins: HashMap::new(),
            lister_id,
            lister_urls: Vec::new(),
            next_origin: known + 1,
            idle: (0..config.workers).rev().collect(),
            queue: VecDeque::new(),
            redis_queue,
            redis_waiting: 0,
            visit_type_index,
            task_name: loader.backend_name,
            listers,
            feedback: Feedback::default(),
            rng: Rng::new(config.seed),
            timings: Timings::default(),
            target,
            config,
        })
    }

    fn now_unix(&self) -> f64 {
        self.start_unix + self.agenda.now()
    }

    fn now(&self) -> DateTime<Utc> {
        from_unix(self.now_unix())
    }

    async fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        let wall = Instant::now();
        let until = self.config.runtime.unwrap_or(f64::INFINITY);
        // the original's process order at time 0: scheduler, metrics, then the lister
        self.agenda.after(0.0, Event::SchedulerPass);
        self.agenda.after(0.0, Event::Metrics);
        self.agenda.after(0.0, Event::Listing);
        let bar = self.progress_bar();
        let mut last_drawn = 0u64;
        while let Some(event) = self.agenda.next_before(until) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            self.handle(event).await?;
            self.start_visits().await?;
            if let Some(bar) = &bar {
                let s = self.agenda.now() as u64;
                if s >= last_drawn + 600 {
                    last_drawn = s;
                    bar.set_position(s);
                    bar.set_message(format!("{} visits", self.report.total_visits));
                }
            }
        }
        if until.is_finite() && !stop.load(Ordering::Relaxed) {
            self.agenda.advance_to(until);
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        self.flush_feedback().await?;
        self.record_metrics().await?;
        self.report.simulated = self.agenda.now();
        self.report.wall = wall.elapsed().as_secs_f64();
        let t = &self.timings;
        let f = |(n, s): (u32, f64)| format!("{s:.2} s in {n}");
        tracing::info!(
            "wall time {:.2} s: scheduler passes {}, results {}, listings {}, metrics {}, \
             queue reads {}",
            self.report.wall,
            f(t.passes),
            f(t.results),
            f(t.listings),
            f(t.metrics),
            f(t.queue_reads)
        );
        Ok(())
    }

    fn progress_bar(&self) -> Option<indicatif::ProgressBar> {
        let runtime = self.config.runtime?;
        if !self.config.progress || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return None;
        }
        let bar = indicatif::ProgressBar::new(runtime as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} simulated {pos}/{len} s [{bar:30}] {percent}% {msg} ({elapsed})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Some(bar)
    }

    async fn handle(&mut self, event: Event) -> Result<()> {
        match event {
            Event::SchedulerPass => {
                if self.pass_can_send() {
                    self.flush_feedback().await?;
                    let t = Instant::now();
                    self.scheduler_pass().await?;
                    Timings::add(&mut self.timings.passes, t);
                } else {
                    let waiting = self.redis_waiting + self.queue.len();
                    self.report
                        .queue_fill
                        .push((self.agenda.now() as f32, waiting as u32));
                }
                self.agenda.after(RUNNER_PERIOD, Event::SchedulerPass);
            }
            Event::Listing => {
                let t = Instant::now();
                self.listing().await?;
                Timings::add(&mut self.timings.listings, t);
                self.agenda.after(HOURLY, Event::Listing);
            }
            Event::Metrics => {
                // the metrics see every result so far
                self.flush_feedback().await?;
                let t = Instant::now();
                self.record_metrics().await?;
                Timings::add(&mut self.timings.metrics, t);
                self.agenda.after(HOURLY, Event::Metrics);
            }
            Event::VisitEnd {
                worker,
                visit,
                load,
                started,
            } => {
                self.visit_end(visit, load, started)?;
                self.idle.push(worker);
                if self.feedback.len() >= FEEDBACK_BATCH {
                    self.flush_feedback().await?;
                }
            }
        }
        Ok(())
    }

    /// Whether a scheduler pass may send anything. The visit runner's script sends nothing
    /// while at most 5% of the queue is free (`lua/send_visits.lua`); the simulator knows
    /// what waits in its queue, so it skips those calls, which would change nothing. (The
    /// other modes decide in [`Self::scheduler_pass`] from the in-process queue.)
    fn pass_can_send(&self) -> bool {
        if self.redis_queue.is_none() {
            return true;
        }
        let capacity = self.config.queue_capacity.min(10_000);
        let slots = self
            .config
            .queue_capacity
            .saturating_sub(self.redis_waiting)
            .min(10_000);
        slots > capacity / 20
    }

    /// Fills the queue: the visit runner's script, or the grab calls.
    async fn scheduler_pass(&mut self) -> Result<()> {
        let now = self.now();
        let t = self.agenda.now() as f32;
        if let (Some(key), Some(store), Mode::OriginScheduler(mix)) =
            (&self.redis_queue, &self.target.store, &self.config.mode)
        {
            let sent = store
                .send_visits(&VisitTarget {
                    visit_type: VISIT_TYPE,
                    now: Some(now),
                    visit_type_index: Some(self.visit_type_index),
                    task_name: &self.task_name,
                    queue_keys: std::slice::from_ref(key),
                    queue: key,
                    max_queue_length: Some(self.config.queue_capacity as i64),
                    origin: "simulator@localhost",
                    broker: &BrokerLink::default(),
                    policies: mix,
                    listers: &self.listers,
                    scheduled_cooldown: chrono::Duration::days(7),
                    failed_cooldown: None,
                    not_found_cooldown: None,
                    absolute_cooldown: None,
                })
                .await?;
            if sent.waiting != self.redis_waiting {
                return Err(Error::Other(format!(
                    "the simulated queue {key} holds {} messages, {} expected: is another \
                     process using it?",
                    sent.waiting, self.redis_waiting
                )));
            }
            self.redis_waiting = sent.waiting + sent.sent;
            let waiting = sent.waiting + self.queue.len();
            self.report.queue_fill.push((t, waiting as u32));
            return Ok(());
        }
        self.report.queue_fill.push((t, self.queue.len() as u32));
        let free = self.config.queue_capacity.saturating_sub(self.queue.len());
        if free < MIN_BATCH.min(self.config.queue_capacity) {
            return Ok(());
        }
        let api = self.target.api.clone();
        match &self.config.mode {
            Mode::TaskScheduler => {
                let tasks = api
                    .grab_ready_tasks(LOAD_TASK_TYPE, Some(now), Some(free))
                    .await?;
                let mut runs = Vec::with_capacity(tasks.len());
                for task in tasks {
                    let url = task
                        .arguments
                        .kwargs
                        .get("url")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let backend_id = self.rng.uuid();
                    runs.push(NewTaskRun {
                        task: task.id,
                        backend_id: backend_id.clone(),
                        scheduled: Some(now),
                        metadata: None,
                    });
                    self.queue.push_back(Visit {
                        url,
                        by: VisitRef::Run { backend_id },
                    });
                }
                api.mass_schedule_task_runs(&runs).await?;
            }
            Mode::OriginScheduler(mix) => {
                for (policy, count) in split(free, mix) {
                    if count == 0 {
                        continue;
                    }
                    let options = GrabOptions {
                        timestamp: Some(now),
                        ..GrabOptions::default()
                    };
                    let origins = api
                        .grab_next_visits(VISIT_TYPE, count, policy.as_str(), &options)
                        .await?;
                    self.queue.extend(origins.into_iter().map(|o| Visit {
                        url: o.url,
                        by: VisitRef::Grabbed,
                    }));
                }
            }
        }
        Ok(())
    }

    /// The lister: re-lists its origins with a fresh `last_update`, and 100 new ones. The
    /// pages of known origins go LISTING_IN_FLIGHT at a time (the order of their writes
    /// changes nothing), then those with new origins in order, so that these take their ids
    /// in the lister's order whatever the timing.
    async fn listing(&mut self) -> Result<()> {
        use futures_util::{StreamExt, TryStreamExt};
        let now_unix = self.now_unix();
        let known = self.lister_urls.len() / PAGE * PAGE;
        for _ in 0..NEW_ORIGINS_PER_LISTING {
            self.lister_urls.push(origin_url(self.next_origin));
            self.next_origin += 1;
        }
        let page = |urls: &[String]| -> Vec<ListedOrigin> {
            urls.iter()
                .map(|u| listed(&self.lister_id, u, now_unix))
                .collect()
        };
        let api = &self.target.api;
        futures_util::stream::iter(self.lister_urls[..known].chunks(PAGE))
            .map(|urls| {
                let origins = page(urls);
                async move { api.record_listed_origins(&origins).await }
            })
            .buffer_unordered(LISTING_IN_FLIGHT)
            .try_for_each(|_| async { Ok(()) })
            .await?;
        for urls in self.lister_urls[known..].chunks(PAGE) {
            api.record_listed_origins(&page(urls)).await?;
        }
        Ok(())
    }

    async fn record_metrics(&mut self) -> Result<()> {
        let metrics = self
            .target
            .api
            .update_metrics(None, Some(self.now()))
            .await?;
        let mut point = MetricsPoint {
            t: self.agenda.now(),
            visits: self.report.total_visits,
            visited_origins: self.origins.len() as u64,
            ..MetricsPoint::default()
        };
        for m in metrics {
            point.known += m.origins_known;
            point.enabled += m.origins_enabled;
            point.never_visited += m.origins_never_visited;
            point.pending_changes += m.origins_with_pending_changes;
        }
        // one point per time: the final one replaces an hourly one at the same time
        if self.report.metrics.last().is_some_and(|m| m.t == point.t) {
            self.report.metrics.pop();
        }
        self.report.metrics.push(point);
        Ok(())
    }

    /// Gives the idle workers the next visits of the queue.
    async fn start_visits(&mut self) -> Result<()> {
        while let Some(worker) = self.idle.pop() {
            let visit = match self.queue.pop_front() {
                Some(v) => Some(v),
                None => {
                    self.prefetch().await?;
                    self.queue.pop_front()
                }
            };
            let Some(visit) = visit else {
                self.idle.push(worker);
                break;
            };
            let now_unix = self.now_unix();
            let start_unix = self.start_unix;
            let state = self
                .origins
                .entry(visit.url.clone())
                .or_insert_with(|| OriginState {
                    model: OriginModel::new(VISIT_TYPE, &visit.url),
                    last_visit: None,
                    last_snapshot: None,
                    archived_until: start_unix,
                });
            let load = state.model.load(now_unix, state.last_visit);
            state.last_visit = Some(now_unix);
            if let VisitRef::Run { backend_id } = &visit.by {
                self.feedback.run_events.push(RunEvent {
                    backend_id: backend_id.clone(),
                    end_status: None,
                    metadata: None,
                    timestamp: Some(from_unix(now_unix)),
                });
            }
            self.agenda.after(
                load.run_time,
                Event::VisitEnd {
                    worker,
                    visit,
                    load,
                    started: now_unix,
                },
            );
        }
        Ok(())
    }

    /// Takes the next messages off the Redis queue the visit runner's script fills.
    async fn prefetch(&mut self) -> Result<()> {
        let (Some(key), Some(store)) = (&self.redis_queue, &self.target.store) else {
            return Ok(());
        };
        let t = Instant::now();
        let mut con = store.con().await?;
        let messages: Option<Vec<String>> = redis::cmd("RPOP")
            .arg(key)
            .arg(PREFETCH)
            .query_async(&mut con)
            .await?;
        let messages = messages.unwrap_or_default();
        self.redis_waiting = self.redis_waiting.saturating_sub(messages.len());
        for m in messages {
            self.queue.push_back(parse_message(&m)?);
        }
        Timings::add(&mut self.timings.queue_reads, t);
        Ok(())
    }

    fn visit_end(&mut self, visit: Visit, load: Load, started: f64) -> Result<()> {
        let now = self.agenda.now();
        let now_unix = self.now_unix();
        let failed_anyway =
            self.config.failure_rate > 0.0 && self.rng.next_f64() < self.config.failure_rate;
        let state = self
            .origins
            .get_mut(&visit.url)
            .ok_or_else(|| Error::Other(format!("visit of an unknown origin {}", visit.url)))?;
        let (outcome, snapshot, lag) = match load.end {
            LoadEnd::Full(s) if !failed_anyway => {
                let lag = state
                    .model
                    .first_commit_between(state.archived_until, started)
                    .map(|c| now_unix - c);
                state.archived_until = started;
                let outcome = if state.last_snapshot == Some(s) {
                    Outcome::Uneventful
                } else {
                    Outcome::Eventful
                };
                state.last_snapshot = Some(s);
                (outcome, Some(s), lag)
            }
            _ => (Outcome::Failed, None, None),
        };
        self.report.record_visit(now, load.run_time, outcome, lag);
        let status = match outcome {
            Outcome::Eventful => VisitStatus::Eventful,
            Outcome::Uneventful => VisitStatus::Uneventful,
            Outcome::Failed => VisitStatus::Failed,
        };
        let end = from_unix(now_unix);
        match visit.by {
            VisitRef::Sent {
                visit_type_index,
                origin_id,
                sent_ms,
            } => self.feedback.outcomes.push(VisitOutcome {
                visit_type_index,
                origin_id,
                status,
                snapshot: snapshot.map(|s| s.to_vec()),
                date: Some(end),
                sent_ms: Some(sent_ms),
            }),
            VisitRef::Grabbed => self
                .feedback
                .journal
                .push((visit.url, status, end, snapshot)),
            VisitRef::Run { backend_id } => self.feedback.run_events.push(RunEvent {
                backend_id,
                end_status: Some(match outcome {
                    Outcome::Eventful => RunStatus::Eventful,
                    Outcome::Uneventful => RunStatus::Uneventful,
                    Outcome::Failed => RunStatus::Failed,
                }),
                metadata: None,
                timestamp: Some(end),
            }),
        }
        Ok(())
    }

    /// Gives the scheduler the results so far.
    async fn flush_feedback(&mut self) -> Result<()> {
        if self.feedback.len() == 0 {
            return Ok(());
        }
        let t = Instant::now();
        let fb = std::mem::take(&mut self.feedback);
        if !fb.outcomes.is_empty() {
            let store = self
                .target
                .store
                .as_ref()
                .expect("sent visits come from a store");
            store
                .apply_visit_outcomes(&fb.outcomes, &VisitRules::default())
                .await?;
        }
        if !fb.run_events.is_empty() {
            match &self.target.store {
                Some(store) => {
                    store.apply_run_events(&fb.run_events, false).await?;
                }
                None => {
                    for e in &fb.run_events {
                        match e.end_status {
                            None => {
                                self.target
                                    .api
                                    .start_task_run(&e.backend_id, None, e.timestamp)
                                    .await?;
                            }
                            Some(status) => {
                                self.target
                                    .api
                                    .end_task_run(&e.backend_id, status, None, e.timestamp)
                                    .await?;
                            }
                        }
                    }
                }
            }
        }
        if !fb.journal.is_empty() {
            journal_client(self.target.api.as_ref(), &fb.journal).await?;
        }
        Timings::add(&mut self.timings.results, t);
        Ok(())
    }
}

/// Splits `free` slots over the weighted policies (the remainder to the first ones).
fn split(free: usize, mix: &[(VisitPolicy, u32)]) -> Vec<(VisitPolicy, usize)> {
    let total: u64 = mix.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return Vec::new();
    }
    let mut out: Vec<(VisitPolicy, usize)> = mix
        .iter()
        .map(|(p, w)| (*p, (free as u64 * u64::from(*w) / total) as usize))
        .collect();
    let mut rest = free - out.iter().map(|(_, n)| n).sum::<usize>();
    for (i, (_, w)) in mix.iter().enumerate() {
        if rest == 0 {
            break;
        }
        if *w > 0 {
            out[i].1 += 1;
            rest -= 1;
        }
    }
    out
}

/// The visit a Celery message from the visit runner's script stands for: its task id and
/// its `url` keyword argument.
fn parse_message(text: &str) -> Result<Visit> {
    let bad = |why: &str| Error::Other(format!("unexpected message in the simulated queue: {why}"));
    let envelope: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let id = envelope
        .pointer("/headers/id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no headers.id"))?;
    let (visit_type_index, origin_id, sent_ms) =
        ids::parse_visit_id(id).ok_or_else(|| bad(&format!("task id {id:?} is not a visit's")))?;
    let body: Value = serde_json::from_str(
        envelope
            .get("body")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no body"))?,
    )
    .map_err(|e| bad(&e.to_string()))?;
    let url = body
        .pointer("/1/url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no url in the kwargs"))?;
    Ok(Visit {
        url: url.to_string(),
        by: VisitRef::Sent {
            visit_type_index,
            origin_id,
            sent_ms,
        },
    })
}

/// The original journal client's rules (0.16 `swh/scheduler/journal_client.py`, the same as
/// `lua/visit_outcomes.lua` applies inside Redis), over `visit_stats/get` and
/// `visit_stats/upsert`: for a scheduler reached through RPC.
async fn journal_client(api: &dyn SchedulerApi, results: &[JournalResult]) -> Result<()> {
    let mut keys: Vec<(String, String)> = results
        .iter()
        .map(|(u, ..)| (u.clone(), VISIT_TYPE.to_string()))
        .collect();
    keys.sort();
    keys.dedup();
    let mut stats: HashMap<String, OriginVisitStats> = api
        .origin_visit_stats_get(&keys)
        .await?
        .into_iter()
        .map(|s| (s.url.clone(), s))
        .collect();
    for (url, status, date, snapshot) in results {
        let s = stats
            .entry(url.clone())
            .or_insert_with(|| OriginVisitStats {
                url: url.clone(),
                visit_type: VISIT_TYPE.into(),
                last_eventful: None,
                last_uneventful: None,
                last_failed: None,
                last_notfound: None,
                last_scheduled: None,
                last_snapshot: None,
            });
        let date = *date;
        match (status, snapshot) {
            (VisitStatus::NotFound, _) => s.last_notfound = s.last_notfound.max(Some(date)),
            (VisitStatus::Eventful | VisitStatus::Uneventful, Some(snap)) => {
                let snap = snap.to_vec();
                let latest = s.last_eventful.max(s.last_uneventful);
                match &s.last_snapshot {
                    None => {
                        s.last_eventful = Some(date);
                        s.last_snapshot = Some(snap);
                    }
                    Some(stored) if *stored != snap => {
                        if latest.is_none_or(|l| date >= l) {
                            s.last_eventful = Some(date);
                            s.last_snapshot = Some(snap);
                        }
                    }
                    Some(_) => match latest {
                        Some(l) if date < l => {
                            s.last_uneventful = Some(l);
                            s.last_eventful = s.last_eventful.min(Some(date));
                        }
                        Some(l) if date == l => {}
                        _ => s.last_uneventful = Some(date),
                    },
                }
            }
            _ => s.last_failed = s.last_failed.max(Some(date)),
        }
    }
    let mut all: Vec<OriginVisitStats> = stats.into_values().collect();
    all.sort_by(|a, b| a.url.cmp(&b.url));
    // the stats of origins grabbed since would lose their last_scheduled: upsert never
    // overwrites it with a null (the coalesce rule)
    for s in &mut all {
        s.last_scheduled = None;
    }
    api.origin_visit_stats_upsert(&all).await
}

/// Stops a simulation on Ctrl+C: it then reports what it simulated so far.
pub fn stop_on_interrupt() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    stop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_gives_every_slot() {
        let mix = [
            (VisitPolicy::AlreadyVisitedOrderByLag, 40),
            (VisitPolicy::NeverVisitedOldestUpdateFirst, 40),
            (VisitPolicy::OldestScheduledFirst, 20),
        ];
        let s = split(1001, &mix);
        assert_eq!(s.iter().map(|(_, n)| n).sum::<usize>(), 1001);
        assert_eq!(s[0].1, 401);
        assert_eq!(s[2].1, 200);
        assert!(split(10, &[(VisitPolicy::OldestScheduledFirst, 0)]).is_empty());
    }

    #[test]
    fn the_rng_is_reproducible() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(a.uuid(), b.uuid());
        assert_ne!(a.uuid(), Rng::new(8).uuid());
        let x = a.next_f64();
        assert!((0.0..1.0).contains(&x));
    }
}
