//! The listener: follows the Celery event channels and records what happens to runs; recurring
//! tasks get their next run from the end-of-run rules. Pub/sub drops events while nobody
//! listens, so after each (re)connection it reconciles open runs with the Celery result backend
//! (when there is one), and a sweep marks lost the runs that never report.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::celery::BrokerNaming;
use crate::celery::events::{self, Meaning};
use crate::error::{Error, Result};
use crate::model::{RunStatus, VisitOutcome};
use crate::runner::Backoff;
use crate::store::{BrokerLink, RunEvent, Store};

/// How often the event connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(30);

/// Batches applied at once: with four, Redis always has one to work on while the others'
/// replies are read and the next are built (two left it idle ~15% of the time: 14% fewer
/// events a second, measured alternately with the events phase). Their order does not matter: the scripts take a run's events in any
/// order (a start after the end fills in the start; ends are idempotent; visit results never
/// move a date backwards).
const BATCHES_IN_FLIGHT: usize = 4;

/// What a listener does.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    /// How the workers' kombu names channels.
    pub naming: BrokerNaming,
    /// The Redis server the workers publish events on.
    pub broker_url: String,
    /// The workers' Celery result backend on Redis, read to settle runs whose events were
    /// missed while the listener was away.
    pub result_backend: Option<String>,
    /// Runs still scheduled or started after this long are marked lost.
    pub lost_after: Duration,
    /// Per task type overrides of `lost_after`.
    pub lost_after_by_type: HashMap<String, Duration>,
    /// A scheduled run is not lost while its queue holds messages (it may be one of them),
    /// but past this age it is lost all the same (default: twice its `lost_after`).
    pub lost_scheduled_after: Option<Duration>,
    /// How often to sweep for lost runs (zero: never).
    pub sweep_every: Duration,
    /// Most events applied in one round trip.
    pub max_batch: usize,
    /// Ask the workers to send task events (`enable_events` broadcast) on each connection.
    pub enable_events: bool,
    /// Queue-name prefix of tasks with a priority (the runner's).
    pub priority_queue_prefix: String,
    /// Where the broker is (for queue lengths).
    pub broker: BrokerLink,
    /// Later versions' rules for visit results (`recurrent_visits` in the configuration).
    pub visit_rules: crate::model::VisitRules,
}

impl ListenerConfig {
    pub fn new(broker_url: &str) -> Self {
        ListenerConfig {
            naming: BrokerNaming::default(),
            broker_url: broker_url.to_string(),
            result_backend: None,
            lost_after: Duration::from_secs(86_400),
            lost_after_by_type: HashMap::new(),
            lost_scheduled_after: None,
            sweep_every: Duration::from_secs(60),
            max_batch: 1000,
            enable_events: false,
            priority_queue_prefix: "save_code_now".into(),
            broker: BrokerLink::default(),
            visit_rules: Default::default(),
        }
    }
}

/// Counters of what the listener saw and did.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Pub/sub messages received.
    pub messages: AtomicU64,
    /// Events decoded, by any type.
    pub events: AtomicU64,
    /// Start and end events that changed a run.
    pub applied: AtomicU64,
    /// Start and end events about runs we do not know, or already ended.
    pub unchanged: AtomicU64,
    /// Messages or events that could not be read.
    pub malformed: AtomicU64,
    /// Runs settled from the result backend.
    pub reconciled: AtomicU64,
    /// Runs marked lost, and visits marked failed for want of a result.
    pub lost: AtomicU64,
    /// Visit results (of visits the visit runner sent) received.
    pub visit_results: AtomicU64,
    /// Visit results that changed an origin's visit stats.
    pub visits_applied: AtomicU64,
    /// Messages dropped because the store could not take events as fast as they came (the
    /// queue between reading and applying is bounded); reconciliation and the lost-run sweep
    /// settle their runs.
    pub dropped: AtomicU64,
}

/// Messages read and not yet applied, at most: past that, new ones are dropped and counted
/// (blocking the reader instead would make Redis disconnect it, losing more).
const MAX_PENDING_MESSAGES: usize = 100_000;

/// What one round of the applier applies: run events, and results of visits the visit runner
/// sent.
#[derive(Debug, Default)]
pub struct EventBatch {
    pub runs: Vec<RunEvent>,
    pub visits: Vec<VisitOutcome>,
}

impl EventBatch {
    pub fn len(&self) -> usize {
        self.runs.len() + self.visits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A listener over one store.
pub struct Listener {
    store: Store,
    config: ListenerConfig,
    stats: Arc<ListenerStats>,
}

impl Listener {
    pub fn new(store: Store, config: ListenerConfig) -> Self {
        Listener {
            store,
            config,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<ListenerStats> {
        self.stats.clone()
    }

    /// Listens until `shutdown` resolves, reconnecting with backoff; sweeps for lost runs
    /// alongside. On shutdown, the events already received are applied first (for at most
    /// ten seconds).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let sweeper = async {
            if self.config.sweep_every.is_zero() {
                return std::future::pending().await;
            }
            let mut tick = tokio::time::interval(self.config.sweep_every);
            loop {
                tick.tick().await;
                if let Err(e) = self.sweep().await {
                    warn!("lost-run sweep failed: {e}");
                }
            }
        };
        let listen = async {
            let mut backoff = Backoff::new();
            loop {
                let e = self.session(&mut backoff, stop_rx.clone()).await;
                if *stop_rx.borrow() {
                    return;
                }
                let wait = backoff.next_delay();
                warn!("event listener disconnected ({e}); reconnecting in {wait:?}");
                // the wait ends early on shutdown
                let mut stop = stop_rx.clone();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        };
        tokio::pin!(shutdown, listen);
        tokio::select! {
            _ = &mut shutdown => {
                let _ = stop_tx.send(true);
                if tokio::time::timeout(Duration::from_secs(10), &mut listen).await.is_err() {
                    warn!("stopped before applying every event received");
                }
            }
            _ = sweeper => {}
            _ = &mut listen => {}
        }
        Ok(())
    }

    /// One connection: subscribe, reconcile, then apply events until the connection fails or
    /// `stop` is set (then what was received is applied first).
    async fn session(
        &self,
        backoff: &mut Backoff,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Error {
        let pattern = self.config.naming.event_pattern();
        let client = match redis::Client::open(self.config.broker_url.as_str()) {
            Ok(c) => c,
            Err(e) => return Error::Redis(e),
        };
        let connecting = async {
            tokio::select! {
                p = client.get_async_pubsub() => Some(p),
                _ = stop.wait_for(|s| *s) => None,
            }
        };
        let mut pubsub = match connecting.await {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                return Error::Connection {
                    url: self.config.broker_url.clone(),
                    reason: e.to_string(),
                };
            }
            None => return Error::Other("stopping".into()),
        };
        if let Err(e) = pubsub.psubscribe(&pattern).await {
            return Error::Redis(e);
        }
        info!("listening for Celery events on {pattern}");
        backoff.reset();
        // Subscribed first, so that nothing settles between the reconciliation and the events.
        if self.config.enable_events
            && let Err(e) = self.enable_events(&client).await
        {
            warn!("could not ask the workers to send events: {e}");
        }
        if let Err(e) = self.reconcile().await {
            warn!("reconciliation with the result backend failed: {e}");
        }
        // Three stages, so that decoding overlaps the round trips: the reader drains the
        // socket (pub/sub disconnects slow readers) and pings it (a silent half-open
        // connection would look like a quiet one), the decoder turns messages into batches of
        // run events, the applier applies them, BATCHES_IN_FLIGHT at a time.
        let (raw_tx, mut raw_rx) = mpsc::channel::<Vec<u8>>(MAX_PENDING_MESSAGES);
        let applier_stop = stop.clone();
        let stats = self.stats.clone();
        let (batch_tx, batch_rx) = mpsc::channel::<EventBatch>(2);
        let (mut sink, mut stream) = pubsub.split();
        let reader = async move {
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.tick().await;
            let stopping = async move {
                let _ = stop.wait_for(|s| *s).await.map(|_| ());
            };
            tokio::pin!(stopping);
            loop {
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(msg) => match raw_tx.try_send(msg.get_payload_bytes().to_vec()) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                let n = stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                                if n.is_power_of_two() {
                                    warn!(
                                        "the store is behind: {n} event messages dropped so \
                                         far (reconciliation and the lost-run sweep settle \
                                         their runs)"
                                    );
                                }
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => {
                                return Error::Other("the decoder stopped".into());
                            }
                        },
                        None => return Error::Other("the event subscription ended".into()),
                    },
                    _ = ping.tick() => {
                        let pong = tokio::time::timeout(PING_EVERY, sink.ping::<redis::Value>()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            return Error::Other("the event connection stopped answering".into());
                        }
                    }
                    _ = &mut stopping => return Error::Other("stopping".into()),
                }
            }
        };
        let decoder = async move {
            while let Some(payload) = raw_rx.recv().await {
                let mut batch = EventBatch::default();
                self.decode(&payload, &mut batch);
                while batch.len() < self.config.max_batch {
                    match raw_rx.try_recv() {
                        Ok(p) => self.decode(&p, &mut batch),
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() && batch_tx.send(batch).await.is_err() {
                    break;
                }
            }
        };
        let applier = async {
            let not_applied = AtomicUsize::new(0);
            let apply_one = |batch: EventBatch| {
                let (mut stop, not_applied) = (applier_stop.clone(), &not_applied);
                async move {
                    if not_applied.load(Ordering::Relaxed) > 0 {
                        not_applied.fetch_add(batch.len(), Ordering::Relaxed);
                        return;
                    }
                    // the events are in hand: retry until the store takes them, or until
                    // shutdown (then they are counted; reconciliation and the sweep settle
                    // their runs)
                    let mut retry = Backoff::new();
                    while let Err(e) = self.apply_batch(&batch).await {
                        let wait = retry.next_delay();
                        warn!(
                            "could not apply {} events, retrying in {wait:?}: {e}",
                            batch.len()
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stop.wait_for(|s| *s) => {
                                not_applied.fetch_add(batch.len(), Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                }
            };
            futures_util::stream::unfold(batch_rx, |mut rx| async move {
                rx.recv().await.map(|b| (b, rx))
            })
            .for_each_concurrent(BATCHES_IN_FLIGHT, apply_one)
            .await;
            let not_applied = not_applied.into_inner();
            if not_applied > 0 {
                warn!("stopped with {not_applied} events received and not applied");
            }
        };
        // the reader's end drops its sender: the decoder, then the applier, finish what came
        let (e, _, _) = tokio::join!(reader, decoder, applier);
        e
    }

    /// Decodes one pub/sub message into the batch; bad input is logged and skipped.
    fn decode(&self, payload: &[u8], batch: &mut EventBatch) {
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        let events = match events::decode_payload(payload) {
            Ok(e) => e,
            Err(e) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                warn!("skipping an unreadable event message: {e}");
                return;
            }
        };
        for event in events {
            self.stats.events.fetch_add(1, Ordering::Relaxed);
            match events::interpret_event(&event) {
                Ok(Meaning::Run(r)) => batch.runs.push(r),
                Ok(Meaning::Visit(v)) => {
                    self.stats.visit_results.fetch_add(1, Ordering::Relaxed);
                    batch.visits.push(v)
                }
                Ok(Meaning::Ignored) => {}
                Err(e) => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    warn!("skipping an unreadable event: {e}");
                }
            }
        }
    }

    /// Applies a batch: its run events, then its visit results (both are idempotent, so a
    /// retry after an error applies nothing twice).
    pub async fn apply_batch(&self, batch: &EventBatch) -> Result<()> {
        self.apply(&batch.runs).await?;
        self.apply_visits(&batch.visits).await
    }

    /// Applies visit results to the origins' visit stats (see `lua/visit_outcomes.lua`).
    pub async fn apply_visits(&self, visits: &[VisitOutcome]) -> Result<()> {
        if visits.is_empty() {
            return Ok(());
        }
        let changed = self
            .store
            .apply_visit_outcomes(visits, &self.config.visit_rules)
            .await?;
        self.stats
            .visits_applied
            .fetch_add(changed as u64, Ordering::Relaxed);
        debug!(
            "{changed} origins' stats changed by {} visit results",
            visits.len()
        );
        Ok(())
    }

    /// Applies a batch of run events in one round trip.
    pub async fn apply(&self, batch: &[RunEvent]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let outcomes = self.store.apply_run_events(batch, false).await?;
        let changed = outcomes
            .iter()
            .filter(|o| o.as_ref().is_some_and(|o| o.changed))
            .count();
        self.stats
            .applied
            .fetch_add(changed as u64, Ordering::Relaxed);
        self.stats
            .unchanged
            .fetch_add((batch.len() - changed) as u64, Ordering::Relaxed);
        debug!("applied {changed} of {} run events", batch.len());
        Ok(())
    }

    /// Settles open runs from the result backend: a stored SUCCESS or FAILURE ends the run as
    /// the matching event would have.
    pub async fn reconcile(&self) -> Result<usize> {
        let Some(url) = &self.config.result_backend else {
            return Ok(0);
        };
        let client = redis::Client::open(url.as_str())?;
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| Error::Connection {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let mut settled = 0;
        for tt in self.store.get_task_types().await? {
            let runs = self.store.inflight_runs(&tt.task_type).await?;
            for chunk in runs.chunks(500) {
                let keys: Vec<String> = chunk
                    .iter()
                    .map(|r| format!("celery-task-meta-{}", r.backend_id))
                    .collect();
                let metas: Vec<Option<String>> =
                    redis::cmd("MGET").arg(&keys).query_async(&mut con).await?;
                let events: Vec<RunEvent> = chunk
                    .iter()
                    .zip(metas)
                    .filter_map(|(run, meta)| settle_from_meta(&run.backend_id, &meta?))
                    .collect();
                let outcomes = self.store.apply_run_events(&events, false).await?;
                settled += outcomes
                    .iter()
                    .filter(|o| o.as_ref().is_some_and(|o| o.changed))
                    .count();
            }
        }
        if settled > 0 {
            info!("settled {settled} runs from the result backend");
        }
        self.stats
            .reconciled
            .fetch_add(settled as u64, Ordering::Relaxed);
        Ok(settled)
    }

    /// Marks lost, in every type, the runs open for longer than the type's deadline.
    pub async fn sweep(&self) -> Result<usize> {
        let mut total = 0;
        for tt in self.store.get_task_types().await? {
            let after = self
                .config
                .lost_after_by_type
                .get(&tt.task_type)
                .copied()
                .unwrap_or(self.config.lost_after);
            // a scheduled run is not lost while its queue holds messages: it may be one of them
            let mut waiting = 0;
            for q in [
                tt.backend_name.clone(),
                format!("{}:{}", self.config.priority_queue_prefix, tt.backend_name),
            ] {
                waiting += self
                    .store
                    .queue_waiting(
                        &self.config.naming.queue_keys(&q),
                        &self.config.broker,
                        &self.store.outbox(&tt.task_type, &q),
                    )
                    .await?;
            }
            // ... unless it is so old that no queue that moves could still hold it
            let bound = self
                .config
                .lost_scheduled_after
                .unwrap_or(after.saturating_mul(2));
            let n = self
                .store
                .sweep_lost_runs_within(&tt.task_type, after, waiting > 0, Some(bound))
                .await?;
            if n > 0 {
                warn!(task_type = %tt.task_type, "marked {n} runs lost (no news for {after:?})");
            }
            total += n;
        }
        self.stats.lost.fetch_add(total as u64, Ordering::Relaxed);
        total += self.sweep_visits().await?;
        Ok(total)
    }

    /// Marks failed the visits the visit runner sent that have had no result for the
    /// lost-run bound of their loader's task type (`load-<visit type>`), with the same rule
    /// as runs: while the loader's queue holds messages, only past `lost_scheduled_after`.
    pub async fn sweep_visits(&self) -> Result<usize> {
        let mut total = 0;
        for vt in self.store.visit_types().await? {
            let loader = format!("load-{vt}");
            let Some(info) = self.store.type_info(&loader).await? else {
                continue;
            };
            let after = self
                .config
                .lost_after_by_type
                .get(&loader)
                .copied()
                .unwrap_or(self.config.lost_after);
            let queue = &info.task_type.backend_name;
            let waiting = self
                .store
                .queue_waiting(
                    &self.config.naming.queue_keys(queue),
                    &self.config.broker,
                    &self.store.visit_outbox(&vt, queue),
                )
                .await?;
            let after = if waiting > 0 {
                self.config
                    .lost_scheduled_after
                    .unwrap_or(after.saturating_mul(2))
            } else {
                after
            };
            // a bound beyond the calendar: nothing can be that old
            let Some(before) = chrono::Duration::from_std(after)
                .ok()
                .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
            else {
                continue;
            };
            let n = self
                .store
                .sweep_lost_visits(&vt, before, &self.config.visit_rules)
                .await?;
            if n > 0 {
                warn!(visit_type = %vt, "marked {n} visits failed (no result for {after:?})");
            }
            total += n;
        }
        self.stats.lost.fetch_add(total as u64, Ordering::Relaxed);
        Ok(total)
    }

    /// Broadcasts Celery's `enable_events` remote control command.
    async fn enable_events(&self, client: &redis::Client) -> Result<()> {
        let mut con = client.get_multiplexed_async_connection().await?;
        let channel = format!(
            "{}/{}.celery.pidbox",
            self.config.naming.global_keyprefix, self.config.naming.db
        );
        let body = json!({"method": "enable_events", "arguments": {}, "destination": null, "pattern": null, "matcher": null});
        let envelope = json!({
            "body": base64::engine::general_purpose::STANDARD.encode(body.to_string()),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"clock": 1, "expires": Utc::now().timestamp() as f64 + 60.0},
            "properties": {
                "delivery_mode": 2,
                "delivery_info": {"exchange": "celery.pidbox", "routing_key": ""},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": uuid::Uuid::new_v4().to_string(),
            },
        });
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(envelope.to_string())
            .query_async(&mut con)
            .await?;
        Ok(())
    }
}

/// The run event a stored Celery result (`celery-task-meta-<id>`) stands for, if final.
pub fn settle_from_meta(backend_id: &str, meta: &str) -> Option<RunEvent> {
    let meta: Value = serde_json::from_str(meta).ok()?;
    let timestamp = meta
        .get("date_done")
        .and_then(Value::as_str)
        .and_then(parse_date_done);
    let (status, metadata) = match meta.get("status")?.as_str()? {
        "SUCCESS" => events::from_result(meta.get("result").unwrap_or(&Value::Null)),
        "FAILURE" => {
            let error = meta
                .get("traceback")
                .and_then(Value::as_str)
                .and_then(|t| t.trim_end().lines().last().map(str::to_string))
                .or_else(|| {
                    let r = meta.get("result")?;
                    Some(format!(
                        "{}: {}",
                        r.get("exc_type")?.as_str()?,
                        r.get("exc_message")
                            .map(|m| m.to_string())
                            .unwrap_or_default()
                    ))
                })
                .unwrap_or_default();
            let mut m = serde_json::Map::new();
            m.insert("error".into(), json!(error.replace('\0', "")));
            (RunStatus::Failed, m)
        }
        _ => return None,
    };
    Some(RunEvent {
        backend_id: backend_id.to_string(),
        end_status: Some(status),
        metadata: Some(metadata),
        timestamp,
    })
}

/// Celery writes `date_done` in ISO 8601, with or without an offset (then UTC).
fn parse_date_done(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_backend_entries_settle_runs() {
        let ok = r#"{"status": "SUCCESS", "result": {"status": "uneventful"}, "traceback": null, "children": [], "date_done": "2026-11-26T20:17:03.481123+00:00", "task_id": "x"}"#;
        let e = settle_from_meta("x", ok).unwrap();
        assert_eq!(e.end_status, Some(RunStatus::Uneventful));
        assert_eq!(
            e.timestamp.unwrap().timestamp_micros(),
            1_795_724_223_481_123
        );
        let failed = r#"{"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}, "traceback": "Traceback (most recent call last):\n  File x\nValueError: boom\n", "date_done": "2026-11-26T20:17:03.481123"}"#;
        let e = settle_from_meta("x", failed).unwrap();
        assert_eq!(e.end_status, Some(RunStatus::Failed));
        assert_eq!(e.metadata.unwrap()["error"], json!("ValueError: boom"));
        assert!(settle_from_meta("x", r#"{"status": "STARTED"}"#).is_none());
        assert!(settle_from_meta("x", "garbage").is_none());
    }
}
