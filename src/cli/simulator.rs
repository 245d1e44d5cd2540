//! `swh-scheduler simulator`: the original's `fill-test-data` and `run`, and `compare`.
//!
//! Where the scheduler is: with `-u`, an RPC server; with `--redis-url` (or a configuration
//! file), that Redis; otherwise a throwaway private `redis-server` per simulation, filled
//! with `-n` origins first. Several simulations (several `-p`, or `compare`) each start from
//! the same filled state: a private server each, or a key prefix of their own on the Redis
//! given (removed afterwards).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::GlobalOptions;
use crate::config::Backend;
use crate::error::{Error, Result};
use crate::private_redis::PrivateRedis;
use crate::rpc::RpcClient;
use crate::simulator::{self, Mode, Report, SimConfig, Target, engine, plots, report};
use crate::store::{Store, StoreConfig};

#[derive(Debug, Subcommand)]
pub enum SimulatorCommand {
    /// Fill the scheduler with test data for simulation purposes
    FillTestData(FillArgs),
    /// Run the scheduler simulator
    ///
    /// By default, the simulation runs until interrupted (Ctrl+C); cap the simulated time with
    /// --runtime. 'task_scheduler' is the task-based scheduler; 'origin_scheduler' the
    /// origin-visit scheduler, choosing origins by --policy (a policy or a weighted mix).
    Run(RunArgs),
    /// Run several policies (and schedulers) on the same seed and origins, and compare them
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
pub struct FillArgs {
    /// Number of listed origins to add
    #[arg(short = 'n', long = "num-origins", default_value_t = 100_000)]
    pub num_origins: u64,
    /// The simulated time of the listing (RFC 3339)
    #[arg(long, default_value = DEFAULT_START, value_parser = parse_time)]
    pub start: DateTime<Utc>,
}

/// What every simulation takes.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Simulated runtime in seconds (default: until interrupted)
    #[arg(short = 't', long)]
    pub runtime: Option<f64>,
    /// Write PNG charts into --plots-dir
    #[arg(short = 'P', long = "plots", overrides_with = "no_plots")]
    pub plots: bool,
    /// Do not write charts (the default)
    #[arg(long = "no-plots")]
    pub no_plots: bool,
    /// Where --plots writes
    #[arg(long, default_value = "simulator-plots")]
    pub plots_dir: PathBuf,
    /// Export the metrics in a CSV file (one simulation; with several, one file each, named
    /// after the policy)
    #[arg(short = 'o', long = "csv")]
    pub csv: Option<PathBuf>,
    /// Seed of the random parts (run ids, --failure-rate)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fill the scheduler with this many origins first (default on a private redis-server:
    /// 100000; on a Redis or RPC server given: none, use `fill-test-data` before)
    #[arg(short = 'n', long = "num-origins")]
    pub num_origins: Option<u64>,
    /// The simulated clock's start (RFC 3339); fixed by default so that runs repeat
    #[arg(long, default_value = DEFAULT_START, value_parser = parse_time)]
    pub start: DateTime<Utc>,
    /// Simulated workers
    #[arg(long, default_value_t = 48)]
    pub workers: usize,
    /// Capacity of the loaders' queue
    #[arg(long, default_value_t = 10_000)]
    pub queue_capacity: usize,
    /// Share of visits that fail whatever the forge model says (0 in the original)
    #[arg(long, default_value_t = 0.0)]
    pub failure_rate: f64,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scheduler to simulate
    #[arg(short = 's', long, default_value = "origin_scheduler", value_parser = ["origin_scheduler", "task_scheduler"])]
    pub scheduler: String,
    /// Scheduling policy (origin_scheduler only): a policy, or a mix `policy=weight,…`;
    /// several -p run one simulation each and compare them
    #[arg(short = 'p', long = "policy")]
    pub policies: Vec<String>,
    #[command(flatten)]
    pub sim: SimArgs,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Schedulers to simulate (origin_scheduler runs once per --policy)
    #[arg(short = 's', long = "scheduler", value_parser = ["origin_scheduler", "task_scheduler"])]
    pub schedulers: Vec<String>,
    /// Scheduling policies or mixes to compare
    #[arg(short = 'p', long = "policy")]
    pub policies: Vec<String>,
    #[command(flatten)]
    pub sim: SimArgs,
}

const DEFAULT_START: &str = "2026-01-01T00:00:00Z";

fn parse_time(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

pub async fn run(global: &GlobalOptions, cmd: SimulatorCommand) -> Result<()> {
    match cmd {
        SimulatorCommand::FillTestData(args) => {
            let target = explicit_target(global).await?.ok_or_else(|| {
                Error::Other(
                    "fill-test-data needs a scheduler to fill: give --redis-url, -u or a \
                     configuration file (simulator run fills a private one itself with -n)"
                        .into(),
                )
            })?;
            println!(
                "Filling {} listed origins data...",
                thousands(args.num_origins)
            );
            let t = Instant::now();
            simulator::fill_test_data(&target, args.num_origins, args.start).await?;
            println!("Completed in {:.2} seconds", t.elapsed().as_secs_f64());
            Ok(())
        }
        SimulatorCommand::Run(args) => {
            let modes = if args.scheduler == "task_scheduler" {
                vec![Mode::TaskScheduler]
            } else if args.policies.is_empty() {
                vec![Mode::OriginScheduler(simulator::parse_policy_mix(
                    "oldest_scheduled_first",
                )?)]
            } else {
                args.policies
                    .iter()
                    .map(|p| simulator::parse_policy_mix(p).map(Mode::OriginScheduler))
                    .collect::<Result<_>>()?
            };
            simulate(global, modes, &args.sim, false).await
        }
        SimulatorCommand::Compare(args) => {
            let mut modes = Vec::new();
            let schedulers = if args.schedulers.is_empty() {
                vec!["origin_scheduler".to_string()]
            } else {
                args.schedulers.clone()
            };
            for s in &schedulers {
                if s == "task_scheduler" {
                    modes.push(Mode::TaskScheduler);
                } else if args.policies.is_empty() {
                    for p in [
                        "oldest_scheduled_first",
                        "never_visited_oldest_update_first",
                        "already_visited_order_by_lag",
                    ] {
                        modes.push(Mode::OriginScheduler(simulator::parse_policy_mix(p)?));
                    }
                } else {
                    for p in &args.policies {
                        modes.push(Mode::OriginScheduler(simulator::parse_policy_mix(p)?));
                    }
                }
            }
            if args.sim.runtime.is_none() {
                return Err(Error::Other(
                    "compare needs --runtime: each simulation must end for the next to start"
                        .into(),
                ));
            }
            simulate(global, modes, &args.sim, true).await
        }
    }
}

/// The scheduler named by the options, if one is: an RPC server or an explicit Redis.
async fn explicit_target(global: &GlobalOptions) -> Result<Option<Target>> {
    match global.backend()? {
        Backend::Remote { url } => Ok(Some(Target {
            api: Arc::new(RpcClient::new(&url)?),
            store: None,
        })),
        Backend::Redis { explicit: true, .. } => {
            let store = global.store().await?;
            Ok(Some(Target {
                api: Arc::new(store.clone()),
                store: Some(store),
            }))
        }
        Backend::Redis {
            explicit: false, ..
        } => Ok(None),
    }
}

/// Where one simulation runs, and what to clean after it.
enum Place {
    /// The server lives as long as the simulation.
    Private {
        _server: PrivateRedis,
    },
    Prefix(Store),
    Given,
}

async fn simulate(
    global: &GlobalOptions,
    modes: Vec<Mode>,
    args: &SimArgs,
    compare_only: bool,
) -> Result<()> {
    if !(0.0..=1.0).contains(&args.failure_rate) {
        return Err(Error::invalid(
            "failure-rate",
            args.failure_rate,
            "must be between 0 and 1",
        ));
    }
    if args.workers == 0 {
        return Err(Error::invalid("workers", 0, "must be at least 1"));
    }
    if let Some(t) = args.runtime
        && !(t.is_finite() && t > 0.0)
    {
        return Err(Error::invalid(
            "runtime",
            t,
            "must be a positive number of seconds",
        ));
    }
    let several = modes.len() > 1;
    if several && args.runtime.is_none() {
        return Err(Error::Other(
            "several simulations need --runtime: each must end for the next to start".into(),
        ));
    }
    let given = explicit_target(global).await?;
    if given
        .as_ref()
        .and_then(|t| t.store.as_ref())
        .is_some_and(Store::is_cluster)
    {
        return Err(Error::invalid(
            "redis-url",
            crate::error::redacted(&global.store_config()?.url),
            "the simulator's queues are lists in the store's own server, which a Redis \
             Cluster cannot hold beside the scheduler's keys: give a standalone Redis, or \
             nothing for private redis-servers",
        ));
    }
    if several && given.as_ref().is_some_and(|t| t.store.is_none()) {
        return Err(Error::Other(
            "several simulations need a store that can be started afresh for each: give a \
             Redis URL, or nothing for private redis-servers, not -u"
                .into(),
        ));
    }
    let stop = engine::stop_on_interrupt();
    let mut reports: Vec<Report> = Vec::new();
    for (k, mode) in modes.into_iter().enumerate() {
        let (target, place, fill) = match &given {
            None => {
                let redis = PrivateRedis::ephemeral()?;
                let store = Store::connect(StoreConfig::new(&redis.url)).await?;
                let target = Target {
                    api: Arc::new(store.clone()),
                    store: Some(store),
                };
                (
                    target,
                    Place::Private { _server: redis },
                    Some(args.num_origins.unwrap_or(100_000)),
                )
            }
            Some(t) if several => {
                let base = t.store.as_ref().expect("checked above").config().clone();
                let config = StoreConfig {
                    prefix: format!("{}-simulator-{}-{k}", base.prefix, std::process::id()),
                    ..base
                };
                let store = Store::connect(config).await?;
                let target = Target {
                    api: Arc::new(store.clone()),
                    store: Some(store.clone()),
                };
                (
                    target,
                    Place::Prefix(store),
                    Some(args.num_origins.unwrap_or(100_000)),
                )
            }
            Some(t) => (t.clone(), Place::Given, args.num_origins),
        };
        if let Some(n) = fill {
            let t = Instant::now();
            simulator::fill_test_data(&target, n, args.start).await?;
            eprintln!(
                "Filled {} origins in {:.2} s for {}",
                thousands(n),
                t.elapsed().as_secs_f64(),
                mode.label()
            );
        }
        let config = SimConfig {
            mode,
            runtime: args.runtime,
            start: args.start,
            seed: args.seed,
            workers: args.workers,
            queue_capacity: args.queue_capacity,
            failure_rate: args.failure_rate,
            progress: true,
        };
        let result = engine::run(&target, &config, stop.clone()).await;
        if let Place::Prefix(store) = &place {
            super::benchmark::delete_prefix(store).await?;
        }
        drop(place);
        let report = result?;
        if !compare_only {
            if several {
                println!("== {}", report.label);
            }
            println!(
                "total simulated time: {}",
                report::python_timedelta(report.simulated)
            );
            print!("{}", report.format());
        }
        if let Some(csv) = &args.csv {
            let path = if several {
                csv.with_file_name(format!(
                    "{}-{}",
                    plots::slug(&report.label),
                    csv.file_name()
                        .map_or("metrics.csv".into(), |f| f.to_string_lossy())
                ))
            } else {
                csv.clone()
            };
            let mut f = std::fs::File::create(&path)
                .map_err(|e| Error::Other(format!("cannot write {}: {e}", path.display())))?;
            report
                .metrics_csv(&mut f)
                .map_err(|e| Error::Other(format!("cannot write {}: {e}", path.display())))?;
        }
        if args.plots {
            for p in plots::write_report_plots(&report, &args.plots_dir)? {
                eprintln!("wrote {}", p.display());
            }
        }
        if !compare_only && several {
            println!(
                "Simulated visits per second: {:.0}",
                report.visits_per_second()
            );
        }
        reports.push(report);
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
    }
    // the summary table, then, last, the speed over every simulation
    println!();
    print!("{}", report::comparison_table(&reports));
    if args.plots && reports.len() > 1 {
        let p = plots::write_comparison_plot(&reports, &args.plots_dir)?;
        eprintln!("wrote {}", p.display());
    }
    let visits: u64 = reports.iter().map(|r| r.total_visits).sum();
    let wall: f64 = reports.iter().map(|r| r.wall).sum();
    println!(
        "Simulated visits per second: {:.0}",
        if wall > 0.0 {
            visits as f64 / wall
        } else {
            0.0
        }
    );
    Ok(())
}

/// 100000 as Python's `{:,}` writes it: `100,000`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
