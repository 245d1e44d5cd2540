//! The `dashboard` phase: N tasks spread over 20 task types (a fifth of them due, a run in
//! flight for a tenth, a failed run for a twentieth), then the dashboard's overview
//! (`GET /ui/api/overview`) asked 100 times over HTTP from a server in this process; `p50_ms`
//! and `p99_ms` of its answers.

use std::time::Instant;

use chrono::{Duration, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::{Map, json};

use super::phases::{BenchOptions, Measure};
use crate::error::{Error, Result};
use crate::model::{Interval, NewTask, NewTaskRun, Policy, RunStatus, TaskArguments, TaskType};
use crate::rpc::server::{RpcConfig, serve_on};
use crate::store::Store;

/// Task types the tasks are spread over.
const TYPES: usize = 20;
/// Overview requests timed.
const REQUESTS: usize = 100;

pub async fn run_dashboard_phase(store: &Store, opts: &BenchOptions) -> Result<Measure> {
    let n = opts.tasks;
    let now = Utc::now();
    for t in 0..TYPES {
        let mut tt = TaskType::new(
            &format!("load-bench-dash-{t:02}"),
            &format!("bench.dash.{t:02}"),
            "benchmark",
        );
        tt.default_interval = Some(Interval::from_days(1));
        store.create_task_type(&tt).await?;
    }
    let batch = opts.batch.max(1);
    let chunks: Vec<(usize, usize)> = (0..n)
        .step_by(batch)
        .map(|i| (i, (i + batch).min(n)))
        .collect();
    stream::iter(chunks)
        .map(|(from, to)| async move {
            let tasks: Vec<NewTask> = (from..to)
                .map(|i| {
                    let mut kwargs = Map::new();
                    kwargs.insert(
                        "url".into(),
                        json!(format!("https://example.com/{i:08}.git")),
                    );
                    NewTask {
                        task_type: format!("load-bench-dash-{:02}", i % TYPES),
                        arguments: TaskArguments {
                            args: vec![],
                            kwargs,
                        },
                        // a fifth due now, the rest later
                        next_run: Some(if i % 5 == 0 {
                            now - Duration::minutes(10)
                        } else {
                            now + Duration::days(1)
                        }),
                        policy: None,
                        status: crate::model::TaskStatus::NextRunNotScheduled,
                        retries_left: None,
                        priority: None,
                    }
                })
                .collect();
            let created = store.create_tasks(&tasks, Policy::Recurring).await?;
            // a run for a tenth of them, a twentieth failed
            let runs: Vec<NewTaskRun> = created
                .iter()
                .enumerate()
                .filter(|(k, _)| (from + k) % 10 == 1)
                .map(|(_, t)| NewTaskRun {
                    task: t.id,
                    backend_id: format!("dash-{}", t.id),
                    scheduled: None,
                    metadata: Some(Map::new()),
                })
                .collect();
            store.mass_schedule_task_runs(&runs).await?;
            let ends: Vec<_> = runs
                .iter()
                .step_by(2)
                .map(|r| crate::store::RunEvent {
                    backend_id: r.backend_id.clone(),
                    end_status: Some(RunStatus::Failed),
                    metadata: None,
                    timestamp: None,
                })
                .collect();
            store.apply_run_events(&ends, false).await?;
            Ok::<_, Error>(())
        })
        .buffer_unordered(opts.concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Other(format!("cannot listen: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Other(e.to_string()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(
        listener,
        store.clone(),
        RpcConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let url = format!("http://{addr}/ui/api/overview");
    let http = reqwest::Client::new();
    let mut times = Vec::with_capacity(REQUESTS);
    for i in 0..=REQUESTS {
        let t = Instant::now();
        let resp = http
            .get(&url)
            .send()
            .await
            .map_err(|e| Error::Other(format!("GET {url}: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Other(format!("GET {url}: {e}")))?;
        if !status.is_success() {
            return Err(Error::Other(format!(
                "GET {url}: {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        // the first, which warms the connection and the type cache, is not counted
        if i > 0 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Ok(Measure::Latency {
        phase: "dashboard",
        tasks: n,
        task_types: TYPES,
        requests: REQUESTS,
        p50_ms: (at(0.5) * 100.0).round() / 100.0,
        p99_ms: (at(0.99) * 100.0).round() / 100.0,
    })
}
