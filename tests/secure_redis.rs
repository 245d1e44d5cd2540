//! The store, the runner and the command line on a Redis that asks for more than a plain
//! connection: TLS (`rediss://`) and ACL users (`redis://user:password@…`).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use swh_scheduler::model::{Interval, NewTask, Policy, TaskType};
use swh_scheduler::runner::{Runner, RunnerConfig};
use swh_scheduler::store::{Store, StoreConfig};

/// A redis-server with these arguments, killed when dropped (with its data directory).
struct Server(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[String]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("redis-server")
        .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir.path())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Server(child, dir)
}

/// Connects a store, waiting for the server to be up.
async fn connect(url: &str) -> Store {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match Store::connect(StoreConfig::new(url)).await {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("{url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// What every secure setup must do: types, tasks, a runner pass, and the command line.
async fn exercise(url: &str) {
    let store = connect(url).await;
    let mut t = TaskType::new("load-git", "x.load", "git");
    t.default_interval = Some(Interval::from_days(1));
    store.create_task_type(&t).await.unwrap();
    let mut task = NewTask::new("load-git", vec![json!(1)], Default::default());
    task.next_run = Some(chrono::Utc::now() - chrono::Duration::seconds(5));
    store
        .create_tasks(&[task], Policy::Recurring)
        .await
        .unwrap();
    let runner = Runner::new(store.clone(), RunnerConfig::default());
    assert_eq!(runner.pass().await.unwrap()[0].1, 1, "one task sent");
    let out = Command::new(env!("CARGO_BIN_EXE_swh-scheduler"))
        .args(["--redis-url", url, "task", "list"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Found 1 tasks"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_on_redis_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl on PATH");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = common::free_port();
    let _server = spawn(&[
        "--port".into(),
        "0".into(),
        "--tls-port".into(),
        port.to_string(),
        "--tls-cert-file".into(),
        cert.display().to_string(),
        "--tls-key-file".into(),
        key.display().to_string(),
        "--tls-ca-cert-file".into(),
        cert.display().to_string(),
        "--tls-auth-clients".into(),
        "no".into(),
    ]);
    // a self-signed certificate: verification off (#insecure), as redis-rs spells it
    exercise(&format!("rediss://127.0.0.1:{port}/0#insecure")).await;
    // and a plain connection to a TLS port is refused, not silently accepted
    assert!(
        Store::connect(StoreConfig::new(&format!("redis://127.0.0.1:{port}/0")))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_as_an_acl_user() {
    let port = common::free_port();
    let _server = spawn(&[
        "--port".into(),
        port.to_string(),
        "--user".into(),
        "alice".into(),
        "on".into(),
        ">s3cret".into(),
        "~*".into(),
        "&*".into(),
        "+@all".into(),
        "--user".into(),
        "default".into(),
        "off".into(),
    ]);
    exercise(&format!("redis://alice:s3cret@127.0.0.1:{port}/0")).await;
    let e = Store::connect(StoreConfig::new(&format!("redis://127.0.0.1:{port}/0")))
        .await
        .err()
        .expect("the default user is off");
    assert!(e.to_string().contains(&port.to_string()), "{e}");
    // a wrong password is refused, and errors never show the password
    let e = Store::connect(StoreConfig::new(&format!(
        "redis://alice:wrong@127.0.0.1:{port}/0"
    )))
    .await
    .err()
    .expect("a wrong password");
    assert!(!e.to_string().contains("wrong"), "{e}");
    assert!(e.to_string().contains("alice:***@"), "{e}");
}
