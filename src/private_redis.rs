//! The private `redis-server` that `serve` starts when no Redis is configured: data (AOF) under
//! a directory of the project, stopped when the scheduler stops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracing::info;

use crate::error::{Error, Result};

/// A `redis-server` child process.
pub struct PrivateRedis {
    child: Option<Child>,
    /// The data directory of an ephemeral server, removed when it stops.
    _scratch: Option<tempfile::TempDir>,
    pub url: String,
    pub dir: PathBuf,
}

fn answers(url: &str) -> bool {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(300)))
        .and_then(|mut con| redis::cmd("PING").query::<String>(&mut con))
        .is_ok()
}

impl PrivateRedis {
    /// Starts `redis-server` on `127.0.0.1:port` with its data in `dir` (append-only file on),
    /// or adopts the one a previous run left there.
    pub fn start(dir: &Path, port: u16) -> Result<Self> {
        Self::spawn(dir, port, true)
    }

    /// Starts a throwaway `redis-server` on a free port, without persistence, its directory
    /// removed when it stops (the simulator's store when no Redis is given).
    pub fn ephemeral() -> Result<Self> {
        let scratch = tempfile::Builder::new()
            .prefix("swh-scheduler-redis-")
            .tempdir()
            .map_err(|e| Error::Other(format!("cannot create a temporary directory: {e}")))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::Other(format!("cannot find a free port: {e}")))?
            .port();
        let mut me = Self::spawn(scratch.path(), port, false)?;
        me._scratch = Some(scratch);
        Ok(me)
    }

    fn spawn(dir: &Path, port: u16, persist: bool) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Other(format!("cannot create {}: {e}", dir.display())))?;
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let url = format!("redis://127.0.0.1:{port}/0");
        let pidfile = dir.join("redis.pid");
        if answers(&url) {
            // ours from an earlier run that did not stop it (killed): adopt it
            if pidfile.exists() {
                info!(
                    "reusing the private redis-server already running at {url} (data in {})",
                    dir.display()
                );
                return Ok(PrivateRedis {
                    child: None,
                    _scratch: None,
                    url,
                    dir,
                });
            }
            return Err(Error::Other(format!(
                "port {port} is taken by another Redis; give a free one with --private-redis-port, \
                 or use that Redis with --redis-url {url}"
            )));
        }
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--appendfsync", "everysec"])
            .args(["--appendonly", if persist { "yes" } else { "no" }])
            .args(["--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::Other(
                        "redis-server is not on PATH: install Redis (Debian/Ubuntu: apt install \
                         redis-server; Fedora: dnf install redis; macOS: brew install redis), or give \
                         the URL of a running Redis with --redis-url"
                            .into(),
                    )
                } else {
                    Error::Other(format!("cannot start redis-server: {e}"))
                }
            })?;
        let mut me = PrivateRedis {
            child: Some(child),
            _scratch: None,
            url,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if answers(&me.url) {
                break;
            }
            if let Some(Ok(Some(status))) = me.child.as_mut().map(Child::try_wait) {
                return Err(Error::Other(format!(
                    "redis-server exited ({status}) at start; see {}",
                    me.dir.join("redis.log").display()
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Other(format!(
                    "redis-server did not answer at {} within 30 s",
                    me.url
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        info!(
            "started a private redis-server at {} (data in {})",
            me.url,
            me.dir.display()
        );
        Ok(me)
    }

    /// Stops the server, saving its append-only file.
    pub fn stop(&mut self) {
        if let Ok(mut con) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        {
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut con);
        }
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    info!("stopped the private redis-server");
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
