//! The command line: the original's `swh scheduler` commands, plus `serve` and `benchmark`.

mod benchmark;
mod services;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{self, Backend, FileConfig};
use crate::error::{Error, Result};
use crate::store::{Store, StoreConfig};

/// A Redis-native Software Heritage scheduler.
#[derive(Debug, Parser)]
#[command(name = "swh-scheduler", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub struct GlobalOptions {
    /// Configuration file (YAML, a `scheduler:` section with `cls` and `url`)
    #[arg(short = 'C', long, env = "SWH_CONFIG_FILENAME", global = true)]
    pub config_file: Option<PathBuf>,
    /// URL of a scheduler RPC server to work through, instead of Redis
    #[arg(short = 'u', long, global = true)]
    pub url: Option<String>,
    /// Redis URL of the store [default: redis://127.0.0.1:6379/0]
    #[arg(long, env = "SWH_SCHEDULER_REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key [default: swh]
    #[arg(long, env = "SWH_SCHEDULER_PREFIX", global = true)]
    pub prefix: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send due tasks to the Celery workers' broker
    StartRunner(services::StartRunnerArgs),
    /// Record what the workers report, reschedule, and mark lost runs
    StartListener(services::StartListenerArgs),
    /// Serve the HTTP RPC API of the original scheduler
    RpcServe(services::RpcServeArgs),
    /// Measure the store's capacity on a Redis server
    Benchmark(benchmark::BenchmarkArgs),
}

impl GlobalOptions {
    /// The configuration file named by `-C` or `SWH_CONFIG_FILENAME`, or an empty one.
    pub fn file_config(&self) -> Result<FileConfig> {
        match &self.config_file {
            Some(p) => FileConfig::load(p),
            None => Ok(FileConfig::default()),
        }
    }

    /// The store settings for a Redis backend.
    pub fn store_config(&self) -> Result<StoreConfig> {
        let file = self.file_config()?;
        match config::resolve_backend(None, self.redis_url.as_deref(), &file) {
            Backend::Redis { url, .. } => {
                Ok(config::store_config(&url, self.prefix.as_deref(), &file))
            }
            Backend::Remote { url } => Err(Error::Other(format!(
                "this command needs Redis, but the configuration names the RPC server {url}"
            ))),
        }
    }

    pub async fn store(&self) -> Result<Store> {
        Store::connect(self.store_config()?).await
    }
}

/// Parses the command line and runs it; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::StartRunner(args) => services::start_runner(&cli.global, args).await,
        Command::StartListener(args) => services::start_listener(&cli.global, args).await,
        Command::RpcServe(args) => services::rpc_serve(&cli.global, args).await,
        Command::Benchmark(args) => benchmark::run(&cli.global, args).await,
    }
}
