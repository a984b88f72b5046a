//! The service instances of the bank test: `wallet-http` processes on one
//! database, started, killed, paused and resumed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};
use wallet_pg::testing::cluster::{free_port, Cluster};

use crate::idp::AUDIENCE;

/// The longest an instance may take to answer `/health/ready`.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// Wallets each batching writer keeps between batches.
const KEPT_WALLETS: &str = "10000";

/// Creates the run's database on the cluster.
pub async fn create_database(cluster: &Cluster, name: &str) {
    let mut conn = PgConnection::connect(&cluster.url())
        .await
        .expect("connect to the throwaway cluster");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create the run's database");
    let _ = conn.close().await;
}

/// `wallet-http migrate` on the database.
pub async fn migrate(database_url: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_wallet-http"))
        .arg("migrate")
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .status()
        .await
        .expect("run wallet-http migrate");
    assert!(status.success(), "wallet-http migrate succeeds");
}

/// One `wallet-http` process, always on the same port (a restart comes
/// back where clients look for it).
pub struct Instance {
    pub index: usize,
    pub url: String,
    port: u16,
    database_url: String,
    authority: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    pub fn new(index: usize, database_url: &str, authority: &str, dir: &Path) -> Self {
        let port = free_port();
        Instance {
            index,
            url: format!("http://127.0.0.1:{port}"),
            port,
            database_url: database_url.to_owned(),
            authority: authority.to_owned(),
            log: dir.join(format!("instance-{index}.log")),
            child: None,
        }
    }

    /// Starts the process and waits until it is ready.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the instance's log file");
        let err = log.try_clone().expect("the log file twice");
        let child = Command::new(env!("CARGO_BIN_EXE_wallet-http"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("JWT_AUTHORITY", &self.authority)
            .env("JWT_AUDIENCE", AUDIENCE)
            .env("WALLET_BIND", format!("127.0.0.1:{}", self.port))
            .env("WALLET_BATCH", "true")
            .env("WALLET_BATCH_CACHED_WALLETS", KEPT_WALLETS)
            .env("WALLET_REQUEST_TIMEOUT", "20s")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .expect("start wallet-http");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let until = Instant::now() + READY_WITHIN;
        loop {
            let ready = client
                .get(format!("{}/health/ready", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.print_log_tail();
                    panic!("instance {} exited while starting: {status}", self.index);
                }
            }
            assert!(
                Instant::now() < until,
                "instance {} is not ready within {READY_WITHIN:?}",
                self.index
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, then a new process on the same port.
    pub async fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.start().await;
    }

    fn signal(&self, signal: &str) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            let status = std::process::Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {signal} {pid}");
        }
    }

    /// SIGSTOP: the process stops answering, its connections stay open.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Stops the process (SIGKILL: the run is over).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    pub fn print_log_tail(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        eprintln!(
            "--- the last lines of instance {}'s log ({}):\n{}",
            self.index,
            self.log.display(),
            tail.join("\n")
        );
    }
}
