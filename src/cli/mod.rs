//! The command line: the original's `swh scheduler` commands, plus `serve` and `benchmark`.

#[doc(hidden)]
pub mod benchmark;
pub mod format;
mod origin;
mod serve;
mod services;
mod simulator;
mod task;
mod task_type;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::api::SchedulerApi;
use crate::config::{self, Backend, FileConfig};
use crate::error::{Error, Result};
use crate::rpc::RpcClient;
use crate::store::{Store, StoreConfig};

/// A Redis-native Software Heritage scheduler: task types, recurring and one-shot tasks, sent
/// to unmodified Celery workers and rescheduled from what they report.
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
    /// Configuration file (YAML: a `scheduler:` section with `cls` and `url`, see README)
    #[arg(short = 'C', long, env = "SWH_CONFIG_FILENAME", global = true)]
    pub config_file: Option<PathBuf>,
    /// The configuration file once read (it is read at most once per process).
    #[arg(skip)]
    file: std::sync::OnceLock<FileConfig>,
    /// URL of a scheduler RPC server to work through, instead of Redis
    #[arg(short = 'u', long, global = true)]
    pub url: Option<String>,
    /// Redis URL of the store; on a Redis Cluster, any node's (or several, comma-separated)
    /// [default: redis://127.0.0.1:6379/0]
    #[arg(long, env = "SWH_SCHEDULER_REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key [default: swh]
    #[arg(long, env = "SWH_SCHEDULER_PREFIX", global = true)]
    pub prefix: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manipulate task types
    #[command(subcommand)]
    TaskType(task_type::TaskTypeCommand),
    /// Manipulate tasks
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Manipulate listed origins
    #[command(subcommand)]
    Origin(origin::OriginCommand),
    /// Send due tasks to the Celery workers' broker
    StartRunner(services::StartRunnerArgs),
    /// Send visits of listed origins to the loaders' Celery queues, keeping them full (the
    /// original's recurrent visit runner)
    ScheduleRecurrent(services::ScheduleRecurrentArgs),
    /// Record what the workers report, reschedule, and mark lost runs
    StartListener(services::StartListenerArgs),
    /// Serve the HTTP RPC API of the original scheduler
    RpcServe(services::RpcServeArgs),
    /// Run everything in one process: runner, listener (with the lost-run sweep) and RPC
    /// server; with no Redis configured, on a private redis-server with its data in ./var/redis
    Serve(serve::ServeArgs),
    /// Print a bcrypt hash of a password read from standard input, for rpc.users in the
    /// configuration file
    HashPassword,
    /// Measure the store's capacity on a Redis server (or, with -u, through an RPC server)
    Benchmark(benchmark::BenchmarkArgs),
    /// Simulate a forge, its lister and loaders around this scheduler, to compare scheduling
    /// policies
    #[command(subcommand)]
    Simulator(simulator::SimulatorCommand),
}

impl GlobalOptions {
    /// The configuration file named by `-C` or `SWH_CONFIG_FILENAME`, or an empty one; read
    /// once, then shared by every role that needs it.
    pub fn file_config(&self) -> Result<&FileConfig> {
        if let Some(c) = self.file.get() {
            return Ok(c);
        }
        let c = self.read_file_config()?;
        Ok(self.file.get_or_init(|| c))
    }

    fn read_file_config(&self) -> Result<FileConfig> {
        match &self.config_file {
            Some(p) => {
                let c = FileConfig::load(p)?;
                if c.scheduler.is_none() && self.url.is_none() && self.redis_url.is_none() {
                    return Err(Error::Other(format!(
                        "missing 'scheduler' configuration in {}",
                        p.display()
                    )));
                }
                Ok(c)
            }
            None => Ok(FileConfig::default()),
        }
    }

    /// Where the state is: Redis (with `explicit` false for the default URL) or an RPC server.
    pub fn backend(&self) -> Result<Backend> {
        Ok(config::resolve_backend(
            self.url.as_deref(),
            self.redis_url.as_deref(),
            self.file_config()?,
        ))
    }

    /// The store settings for a Redis backend.
    pub fn store_config(&self) -> Result<StoreConfig> {
        let file = self.file_config()?;
        match config::resolve_backend(None, self.redis_url.as_deref(), file) {
            Backend::Redis { url, .. } => {
                Ok(config::store_config(&url, self.prefix.as_deref(), file))
            }
            Backend::Remote { url } => Err(Error::Other(format!(
                "this command needs Redis, but the configuration names the RPC server {url}"
            ))),
        }
    }

    pub async fn store(&self) -> Result<Store> {
        Store::connect(self.store_config()?).await
    }

    /// The scheduler API, on Redis or through the RPC server, as configured.
    pub async fn scheduler(&self) -> Result<Arc<dyn SchedulerApi>> {
        match self.backend()? {
            Backend::Remote { url } => Ok(Arc::new(RpcClient::new(&url)?)),
            Backend::Redis { .. } => Ok(Arc::new(self.store().await?)),
        }
    }
}

/// Parses the command line and runs it; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    2
                } else {
                    0
                };
            }
            // one line: clap's message up to its usage hint
            let text = e.render().to_string();
            let line: Vec<&str> = text
                .lines()
                .take_while(|l| !l.is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{}", line.join(" "));
            return 2;
        }
    };
    if !matches!(
        cli.command,
        Command::StartRunner(_)
            | Command::StartListener(_)
            | Command::RpcServe(_)
            | Command::Serve(_)
    ) {
        quiet_on_closed_stdout();
    }
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(Error::Exit(code)) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

/// A command whose output goes to a pipe that closes (`… | head -1`) ends quietly, as other
/// Unix tools do, instead of panicking on the write: Rust ignores SIGPIPE, so the default
/// action is put back. The services keep ignoring it (a closed pipe must not stop them).
fn quiet_on_closed_stdout() {
    // SAFETY: setting a signal disposition to its default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
        Command::TaskType(cmd) => task_type::run(&cli.global, cmd).await,
        Command::Task(cmd) => task::run(&cli.global, cmd).await,
        Command::Origin(cmd) => origin::run(&cli.global, cmd).await,
        Command::StartRunner(args) => services::start_runner(&cli.global, args).await,
        Command::StartListener(args) => services::start_listener(&cli.global, args).await,
        Command::ScheduleRecurrent(args) => services::schedule_recurrent(&cli.global, args).await,
        Command::RpcServe(args) => services::rpc_serve(&cli.global, args).await,
        Command::Serve(args) => serve::run(&cli.global, args).await,
        Command::Benchmark(args) => benchmark::run(&cli.global, args).await,
        Command::Simulator(cmd) => simulator::run(&cli.global, cmd).await,
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| Error::Other(format!("cannot read the password: {e}")))?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(Error::invalid("password", "", "must not be empty"));
            }
            println!("{}", crate::rpc::auth::hash_password(password)?);
            Ok(())
        }
    }
}
