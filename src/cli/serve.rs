//! `swh-scheduler serve`: every role in one process, and the newcomer's demo (`--example`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tracing::{info, warn};

use crate::config::Backend;
use crate::error::{Error, Result};
use crate::listener::Listener;
use crate::model::{Interval, NewTask, Policy, TaskType};
use crate::private_redis::PrivateRedis;
use crate::runner::{self, Runner};
use crate::store::Store;
use crate::visit_runner::VisitRunner;

use super::GlobalOptions;
use super::services::{self, StartListenerArgs};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Host the RPC server listens on
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port the RPC server listens on
    #[arg(long, default_value_t = 5008)]
    pub port: u16,
    /// Seconds between runner passes (the task runners' and the visit runner's)
    #[arg(long, default_value_t = 1.0)]
    pub period: f64,
    /// Port of the private redis-server started when no Redis is configured
    #[arg(long, default_value_t = 6390)]
    pub private_redis_port: u16,
    /// Where the private redis-server keeps its data
    #[arg(long, default_value = "var/redis")]
    pub data_dir: PathBuf,
    /// Create example task types and tasks, start the example Celery worker (when python3 is
    /// here; installed into var/example-worker on first use) and print runs as they end
    #[arg(long)]
    pub example: bool,
    /// Do not run the recurrent visit runner (`schedule-recurrent`) in this process
    #[arg(long)]
    pub no_visit_runner: bool,
    #[command(flatten)]
    pub listener: StartListenerArgs,
}

pub async fn run(global: &GlobalOptions, args: ServeArgs) -> Result<()> {
    let mut private = None;
    let redis_url = match global.backend()? {
        Backend::Remote { url } => {
            return Err(Error::Other(format!(
                "serve runs on Redis, but the configuration names the RPC server {url}"
            )));
        }
        Backend::Redis {
            url,
            explicit: true,
        } => url,
        Backend::Redis {
            explicit: false, ..
        } => {
            let (dir, port) = (args.data_dir.clone(), args.private_redis_port);
            let redis = tokio::task::spawn_blocking(move || PrivateRedis::start(&dir, port))
                .await
                .map_err(|e| Error::Other(e.to_string()))??;
            let url = redis.url.clone();
            private = Some(redis);
            url
        }
    };
    let result = serve(global, &args, &redis_url).await;
    if let Some(mut r) = private {
        tokio::task::spawn_blocking(move || r.stop()).await.ok();
    }
    result
}

async fn serve(global: &GlobalOptions, args: &ServeArgs, redis_url: &str) -> Result<()> {
    let file = global.file_config()?;
    let mut store_config = crate::config::store_config(redis_url, global.prefix.as_deref(), file);
    store_config.url = redis_url.to_string();
    let store = Store::connect(store_config).await?;

    let runner_args = services::StartRunnerArgs {
        period: args.period.max(0.05),
        task_types: vec![],
        task_type_patterns: vec![],
        with_priority: false,
        without_priority: false,
    };
    let normal = services::runner_config(global, redis_url, &runner_args)?;
    let priority = runner::RunnerConfig {
        with_priority: true,
        ..normal.clone()
    };
    let listener = services::listener_config(global, redis_url, &args.listener)?;
    let visits = services::visit_runner_config(
        global,
        redis_url,
        &services::ScheduleRecurrentArgs {
            period: args.period.max(0.05),
            visit_types: vec![],
        },
    )?;
    let rpc_args = services::RpcServeArgs {
        host: args.host.clone(),
        port: args.port,
        max_body_size: crate::rpc::server::DEFAULT_MAX_BODY,
        debug: false,
        nodebug: false,
    };
    let rpc = services::rpc_config(global, redis_url, &rpc_args)?;
    store.check_broker(&normal.broker)?;
    // bind first, so that a taken port is reported before anything starts
    let socket = tokio::net::TcpListener::bind((rpc.host.as_str(), rpc.port))
        .await
        .map_err(|e| Error::Other(format!("cannot listen on {}:{}: {e}", rpc.host, rpc.port)))?;

    let mut worker = None;
    if args.example {
        let tasks = create_examples(&store).await?;
        worker = start_example_worker(redis_url).await;
        tokio::spawn(report_runs(store.clone(), tasks));
    }
    println!(
        "swh-scheduler is serving: Redis {redis_url}, RPC http://{}:{}/\n  dashboard http://{}:{}/ui/\n  e.g. swh-scheduler --redis-url {redis_url} task list\n  or   swh-scheduler -u http://127.0.0.1:{}/ task-type list\nStop with Ctrl-C.",
        rpc.host, rpc.port, rpc.host, rpc.port, rpc.port
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut roles = tokio::task::JoinSet::new();
    for config in [normal, priority] {
        let (r, rx) = (Runner::new(store.clone(), config), stop_rx.clone());
        roles.spawn(async move { r.run(stopped(rx)).await });
    }
    if !args.no_visit_runner {
        let (v, rx) = (VisitRunner::new(store.clone(), visits), stop_rx.clone());
        roles.spawn(async move { v.run(stopped(rx)).await });
    }
    let (l, rx) = (Listener::new(store.clone(), listener), stop_rx.clone());
    // one process: /metrics shows the listener's counters too
    let mut rpc = rpc;
    rpc.metrics.listener = Some(l.stats());
    roles.spawn(async move { l.run(stopped(rx)).await });
    let (s, rx) = (store.clone(), stop_rx.clone());
    roles.spawn(async move { crate::rpc::serve_on(socket, s, rpc, stopped(rx)).await });

    let mut result = Ok(());
    tokio::select! {
        _ = runner::shutdown_signal() => {}
        Some(r) = roles.join_next() => {
            // a role stopping on its own is an error (say which)
            result = match r {
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => Err(Error::Other("a role stopped unexpectedly".into())),
                Err(e) => Err(Error::Other(e.to_string())),
            };
        }
    }
    let _ = stop_tx.send(true);
    while let Some(r) = roles.join_next().await {
        if let Ok(Err(e)) = r {
            warn!("{e}");
        }
    }
    if let Some(mut w) = worker {
        stop_worker(&mut w);
    }
    result
}

/// The example task types and tasks: a dumb task that ends eventful or uneventful (watch its
/// interval halve or double) and one that fails (watch it retry).
async fn create_examples(store: &Store) -> Result<Vec<i64>> {
    let mut dumb = TaskType::new(
        "example-dumb",
        "swh.example.dumb",
        "Example task: returns the status it is given",
    );
    dumb.default_interval = Some(Interval::from_secs(60));
    dumb.min_interval = Some(Interval::from_secs(15));
    dumb.max_interval = Some(Interval::from_secs(600));
    dumb.backoff_factor = Some(2.0);
    dumb.num_retries = Some(1);
    dumb.retry_delay = Some(Interval::from_secs(10));
    store.create_task_type(&dumb).await?;
    let fail = TaskType {
        task_type: "example-fail".into(),
        backend_name: "swh.example.fail".into(),
        description: "Example task: always fails".into(),
        ..dumb.clone()
    };
    store.create_task_type(&fail).await?;
    let task = |ty: &str, kwargs: serde_json::Value, policy| {
        let mut t = NewTask::new(ty, vec![], kwargs.as_object().unwrap().clone());
        t.policy = Some(policy);
        t.next_run = Some(Utc::now());
        t
    };
    let made = store
        .create_tasks(
            &[
                task(
                    "example-dumb",
                    json!({"status": "eventful"}),
                    Policy::Recurring,
                ),
                task(
                    "example-dumb",
                    json!({"status": "uneventful"}),
                    Policy::Recurring,
                ),
                task(
                    "example-dumb",
                    json!({"status": "eventful", "sleep": 2}),
                    Policy::Oneshot,
                ),
                task(
                    "example-fail",
                    json!({"message": "this task always fails"}),
                    Policy::Recurring,
                ),
            ],
            Policy::Recurring,
        )
        .await?;
    println!(
        "Example task types example-dumb and example-fail, with {} tasks.",
        made.len()
    );
    Ok(made.iter().map(|t| t.id).collect())
}

/// Prints each run of the example tasks as it ends, with what it did to its task.
async fn report_runs(store: Store, tasks: Vec<i64>) {
    let mut seen = HashSet::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(runs) = store.get_task_runs(&tasks, None).await else {
            continue;
        };
        let Ok(current) = store.get_tasks(&tasks).await else {
            continue;
        };
        for r in runs.iter().filter(|r| r.status.is_final()) {
            if !seen.insert(r.id) {
                continue;
            }
            let Some(t) = current.iter().find(|t| t.id == r.task) else {
                continue;
            };
            let took = match (r.started, r.ended) {
                // the start is the worker's clock, the end may be Redis': they can disagree
                (Some(s), Some(e)) if e < s => " in 0.00 s (the clocks differ)".to_string(),
                (Some(s), Some(e)) => {
                    format!(" in {:.2} s", (e - s).num_milliseconds() as f64 / 1000.0)
                }
                _ => String::new(),
            };
            let worker = r
                .metadata
                .as_ref()
                .and_then(|m| m.get("worker"))
                .and_then(|w| w.as_str())
                .map(|w| format!(" on {w}"))
                .unwrap_or_default();
            let next = match t.status {
                crate::model::TaskStatus::NextRunNotScheduled => format!(
                    "next run in {} (interval {})",
                    Interval::from_micros(
                        (t.next_run - Utc::now())
                            .num_microseconds()
                            .unwrap_or(0)
                            .max(0)
                            / 1_000_000
                            * 1_000_000
                    ),
                    t.current_interval.map_or("None".into(), |i| i.to_string())
                ),
                other => format!("task {other}"),
            };
            println!(
                "task {} ({}) {} run ended {}{worker}{took}: {next}",
                t.id, t.task_type, t.policy, r.status
            );
        }
    }
}

/// The example worker's directory: beside the working directory, or in the source tree.
fn example_dir() -> Option<PathBuf> {
    [
        PathBuf::from("examples/worker"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/worker"),
    ]
    .into_iter()
    .find(|p| p.join("worker.py").exists())
}

/// Starts the example Celery worker, installing Celery into var/example-worker/venv on first
/// use. Missing Python or a failed install is reported, not fatal.
async fn start_example_worker(redis_url: &str) -> Option<Child> {
    let Some(dir) = example_dir() else {
        warn!(
            "examples/worker not found: no example worker (run one yourself, see examples/worker/README.md)"
        );
        return None;
    };
    let home = PathBuf::from("var/example-worker");
    let venv = home.join("venv");
    let celery = venv.join("bin/celery");
    if !celery.exists() {
        println!(
            "Installing Celery for the example worker into {} (once)...",
            venv.display()
        );
        let ok = tokio::task::spawn_blocking({
            let (venv, req) = (venv.clone(), dir.join("requirements.txt"));
            move || {
                Command::new("python3")
                    .arg("-m")
                    .arg("venv")
                    .arg(&venv)
                    .status()
                    .is_ok_and(|s| s.success())
                    && Command::new(venv.join("bin/pip"))
                        .args(["install", "-q", "--disable-pip-version-check", "-r"])
                        .arg(&req)
                        .status()
                        .is_ok_and(|s| s.success())
            }
        })
        .await
        .unwrap_or(false);
        if !ok {
            warn!(
                "could not install Celery (is python3 with venv here?): no example worker; see examples/worker/README.md"
            );
            return None;
        }
    }
    let _ = std::fs::create_dir_all(&home);
    let log = std::fs::File::create(home.join("worker.log")).ok()?;
    let abs_celery = celery.canonicalize().ok()?;
    let queues = ["swh.example.dumb", "swh.example.fail"]
        .iter()
        .flat_map(|q| [q.to_string(), format!("save_code_now:{q}")])
        .collect::<Vec<_>>()
        .join(",");
    let child = Command::new(abs_celery)
        .current_dir(&dir)
        .args([
            "-A",
            "worker",
            "worker",
            "-Q",
            &queues,
            "-l",
            "info",
            "-c",
            "2",
            "-n",
            "example@%h",
        ])
        .env("CELERY_BROKER_URL", redis_url)
        .stdout(log.try_clone().ok()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn();
    match child {
        Ok(c) => {
            info!(
                "started the example Celery worker (log: {})",
                home.join("worker.log").display()
            );
            Some(c)
        }
        Err(e) => {
            warn!("could not start the example worker: {e}");
            None
        }
    }
}

fn stop_worker(child: &mut Child) {
    // a warm shutdown: the worker finishes its task and returns unacknowledged messages
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
