//! Test harness: a private `redis-server` per test, on a free port, with its own data dir.
#![allow(dead_code)]

pub mod browser;
pub mod fixtures;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use swh_scheduler::store::{Store, StoreConfig};

/// A local Redis Cluster: `masters` masters, each with `replicas` replicas, every node a
/// `redis-server --cluster-enabled yes` on free ports, joined by `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(masters: usize, replicas: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| {
                let bus = free_port().to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        if masters == 1 && replicas == 0 {
            // redis-cli --cluster create wants three masters: one node takes every slot
            let mut c = nodes[0].client();
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(0)
                .arg(16383)
                .query(&mut c)
                .unwrap();
            let cluster = RedisCluster { nodes };
            cluster.wait_ok();
            return cluster;
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli on PATH");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        cluster
    }

    fn wait_ok(&self) {
        for n in &self.nodes {
            wait_for(30, "the cluster to be ready", || {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.client())
                    .ok()?;
                (info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384"))
                    .then_some(())
            });
        }
    }

    /// The URL of one node, which is all the store needs.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The nodes that are masters now, with the number of keys each holds.
    pub fn masters(&self) -> Vec<(&RedisServer, i64)> {
        self.nodes
            .iter()
            .filter_map(|n| {
                let mut c = n.client();
                let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).ok()?;
                let master = matches!(&role[0], redis::Value::BulkString(b) if b == b"master");
                let keys: i64 = redis::cmd("DBSIZE").query(&mut c).ok()?;
                master.then_some((n, keys))
            })
            .collect()
    }
}

/// A `redis-server` child process, killed when dropped.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

fn spawn_redis(args: &[String]) -> Child {
    Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server on PATH (install redis-server)")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `--name value` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.push("--dir".into());
            args.push(dir.path().display().to_string());
            args.extend(extra.iter().map(|s| s.to_string()));
            let child = spawn_redis(&args);
            let mut server = RedisServer {
                child,
                port,
                dir,
                args,
            };
            if server.wait_ready() {
                return server;
            }
            let _ = server.child.kill();
        }
        panic!("could not start redis-server");
    }

    /// Kills the server (SIGKILL: no shutdown save).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port, with the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_redis(&self.args);
        assert!(self.wait_ready(), "redis-server did not restart");
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut con) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut con).is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A plain synchronous connection, for looking at keys directly.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// The messages of a broker list in database `db`, newest first, as JSON.
    pub fn messages(&self, db: u32, key: &str) -> Vec<serde_json::Value> {
        let mut con = self.client();
        let _: () = redis::cmd("SELECT").arg(db).query(&mut con).unwrap();
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        raw.iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect()
    }

    /// Runs four `swh-scheduler … <command>` processes at once, each with the store's URL,
    /// waits for them, and returns the length of `queue`, checked to be at most `limit`.
    pub fn race(&self, command: &[&str], queue: &str, limit: usize) -> usize {
        let racers: Vec<_> = (0..4)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_swh-scheduler"))
                    .args(["--redis-url", &self.url()])
                    .args(command)
                    .env("RUST_LOG", "warn")
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut r in racers {
            assert!(r.wait().unwrap().success());
        }
        let len: usize = redis::cmd("LLEN")
            .arg(queue)
            .query(&mut self.client())
            .unwrap();
        assert!(len <= limit, "the queue went past its limit: {len}");
        len
    }

    pub async fn store(&self) -> Store {
        Store::connect(StoreConfig::new(&self.url()))
            .await
            .expect("store connects")
    }

    pub async fn store_with(&self, f: impl FnOnce(&mut StoreConfig)) -> Store {
        let mut c = StoreConfig::new(&self.url());
        f(&mut c);
        Store::connect(c).await.expect("store connects")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python virtualenv under `target/`, created on first use by running `pip install` with
/// each of `steps` in turn. Concurrent test processes wait for the one that installs (a lock
/// directory guards the install).
pub fn python_venv(name: &str, steps: &[&[&str]]) -> std::path::PathBuf {
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let venv = target.join(format!("venv-{name}"));
    let stamp = venv.join(".installed");
    let wanted = steps
        .iter()
        .map(|s| s.join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return venv;
    }
    std::fs::create_dir_all(&target).unwrap();
    let lock = target.join(format!("venv-{name}.lock"));
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        match std::fs::create_dir(&lock) {
            Ok(()) => break,
            Err(_) if Instant::now() > deadline => {
                panic!("timed out waiting for {}", lock.display())
            }
            Err(_) => {
                // a lock left by a killed process goes stale after 15 minutes
                if let Ok(age) = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .map(|m| m.elapsed().unwrap_or_default())
                    && age > Duration::from_secs(900)
                {
                    let _ = std::fs::remove_dir(&lock);
                }
                std::thread::sleep(Duration::from_millis(500));
                if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
                    return venv;
                }
            }
        }
    }
    let result = std::panic::catch_unwind(|| {
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
            return;
        }
        let run = |cmd: &mut Command| {
            let out = cmd.output().expect("python3 on PATH");
            assert!(
                out.status.success(),
                "{cmd:?} failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let _ = std::fs::remove_dir_all(&venv);
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        let pip = venv.join("bin/pip");
        for step in steps {
            run(Command::new(&pip)
                .args(["install", "-q", "--disable-pip-version-check"])
                .args(*step));
        }
        std::fs::write(&stamp, &wanted).unwrap();
    });
    let _ = std::fs::remove_dir(&lock);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    venv
}

/// Waits until `check` returns `Some`, polling every 50 ms, or panics after `secs` seconds.
pub fn wait_for<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Celery the end-to-end tests run: the version the protocol reference was verified with.
pub const CELERY: &[&[&str]] = &[&["celery[redis]==5.7.0"]];

/// The original scheduler's Python package (and its RPC client), at the version the wire
/// reference describes, with the pins that make it install on Python 3.11.
pub fn swh016_venv() -> std::path::PathBuf {
    let constraints = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/swh016-constraints.txt"
    );
    python_venv(
        "swh016",
        &[
            &["pip==24.0", "setuptools==65.5.0"],
            &[
                "-c",
                constraints,
                "swh.scheduler==0.16.0",
                "swh.core[http]==0.14.3",
            ],
        ],
    )
}

/// The original's lister framework (swh.lister 1.3.6, of swh.scheduler 0.16's time), with
/// the scheduler client it uses.
pub fn swh_lister_venv() -> std::path::PathBuf {
    let constraints = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/swh016-constraints.txt"
    );
    python_venv(
        "swhlister",
        &[
            &["pip==24.0", "setuptools==65.5.0"],
            &[
                "-c",
                constraints,
                "swh.lister==1.3.6",
                "swh.scheduler==0.16.0",
                "swh.core[http]==0.14.3",
            ],
        ],
    )
}

/// A real Celery worker running `examples/worker/worker.py`, stopped when dropped.
pub struct CeleryWorker {
    child: Child,
    pub log: std::path::PathBuf,
    _logdir: tempfile::TempDir,
}

impl CeleryWorker {
    /// `celery -A worker worker -Q <queues>` with the broker at `broker` and the result
    /// backend at `backend` (if any), plus extra worker options.
    pub fn start(broker: &str, backend: Option<&str>, queues: &str, extra: &[&str]) -> Self {
        use std::os::unix::process::CommandExt;
        let venv = python_venv("celery", CELERY);
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("worker.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(venv.join("bin/celery"))
            .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/worker"))
            .args([
                "-A", "worker", "worker", "-Q", queues, "-l", "info", "-n", "w1@%h",
            ])
            .args(extra)
            .env("CELERY_BROKER_URL", broker)
            .env("CELERY_RESULT_BACKEND", backend.unwrap_or(""))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("celery worker");
        CeleryWorker {
            child,
            log,
            _logdir: logdir,
        }
    }

    /// Whether the worker process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the worker and its pool processes at once (SIGKILL to the process group).
    pub fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for CeleryWorker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An `rpc-serve` process on a free port, killed when dropped.
pub struct RpcServe {
    child: std::process::Child,
    pub url: String,
}

impl RpcServe {
    pub fn start(redis: &RedisServer) -> Self {
        Self::start_with(redis, &[])
    }

    /// With global options `before` (a configuration file, say).
    pub fn start_with(redis: &RedisServer, before: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_swh-scheduler"))
            .args(before)
            .args([
                "--redis-url",
                &redis.url(),
                "rpc-serve",
                "--host",
                "127.0.0.1",
            ])
            .args(["--port", &port.to_string()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_for(30, "rpc-serve listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        RpcServe {
            child,
            url: format!("http://127.0.0.1:{port}/"),
        }
    }
}

impl Drop for RpcServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Celery event envelope as a worker publishes it (base64 body, task.multi routing).
pub fn celery_envelope(events: &serde_json::Value) -> String {
    use base64::Engine;
    serde_json::json!({
        "body": base64::engine::general_purpose::STANDARD.encode(events.to_string()),
        "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"hostname": "w1@vm"},
        "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": "task.multi"},
                       "priority": 0, "body_encoding": "base64", "delivery_tag": uuid::Uuid::new_v4().to_string()},
    })
    .to_string()
}

/// A bench's command line (`cargo bench --bench B -- …`): the values of the `--name value`
/// options among `options` and the `--name` switches among `switches` (as "true"). cargo's own
/// `--bench` is skipped; anything else stops the bench, naming it.
pub fn bench_args(
    options: &[&str],
    switches: &[&str],
) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        if options.contains(&x.as_str()) {
            let v = it.next().unwrap_or_else(|| panic!("{x} needs a value"));
            out.insert(x, v);
        } else if switches.contains(&x.as_str()) {
            out.insert(x, "true".into());
        } else if x != "--bench" {
            panic!("unknown argument {x}");
        }
    }
    out
}

/// The number given to a bench option, or `default`.
pub fn bench_number<T: std::str::FromStr>(
    args: &std::collections::HashMap<String, String>,
    name: &str,
    default: T,
) -> T {
    args.get(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} needs a number, not {v:?}"))
    })
}
