//! PostgreSQL clusters of a test's own, for tests that stop, restart or
//! replicate a server (never the shared one): a primary made with `initdb`
//! on a free port, and a streaming hot standby of it made with
//! `pg_basebackup -R`. Their directories are under the workspace's
//! `target/`; a cluster is stopped and its directory removed when dropped.
//!
//! The server binaries are taken from `/usr/lib/postgresql/<version>/bin`
//! (the newest there); without them [`Cluster::primary`] panics saying so.
//! PostgreSQL refuses to run as root, so when the tests run as root the
//! tools run as the `postgres` user (`runuser -u postgres --`).

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::atomic::{AtomicU16, Ordering};

use sqlx::{Connection, PgConnection};

/// Where the Debian packages put the server binaries, one directory per
/// major version.
pub const SERVER_BINARIES_ROOT: &str = "/usr/lib/postgresql";

/// The settings every test cluster starts with: loopback only, its socket
/// in `/tmp`, no fsync (a test cluster is thrown away, never recovered from
/// a power cut), and enough to stream to standbys.
const SERVER_OPTIONS: &str = "-c listen_addresses=127.0.0.1 -k /tmp -c fsync=off \
     -c wal_level=replica -c max_wal_senders=4 -c hot_standby=on";

/// How a cluster is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Waits for sessions to end (`-m fast`: rolls back what is running).
    Fast,
    /// Ends every process at once, as a crash would; the next start
    /// recovers from the write-ahead log (`-m immediate`).
    Immediate,
}

impl StopMode {
    fn flag(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// One running cluster of the test's own.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    root: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    /// A new primary: `initdb` (trust authentication, replication allowed
    /// from loopback in `pg_hba.conf`), started on a free port with
    /// `wal_level=replica`. `name` names its directory
    /// (`target/pg-<name>-<pid>-<n>`).
    pub fn primary(name: &str) -> Self {
        let cluster = Cluster::prepare(name);
        cluster.run_on_data("initdb", &["-U", "postgres", "--auth=trust"]);
        cluster.allow_replication();
        cluster.start_again();
        cluster
    }

    /// A streaming hot standby of `primary`: a base backup taken with
    /// `pg_basebackup -R` (which writes `primary_conninfo` and
    /// `standby.signal`), started on a free port of its own. It serves
    /// reads at once and replays the primary's changes as they stream in.
    pub fn standby_of(primary: &Cluster, name: &str) -> Self {
        let cluster = Cluster::prepare(name);
        cluster.run_on_data(
            "pg_basebackup",
            &[
                "-R",
                "-X",
                "stream",
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
            ],
        );
        cluster.start_again();
        cluster
    }

    /// A primary and a streaming standby of it, named `<name>-primary` and
    /// `<name>-standby`, started on a blocking thread (initdb and the base
    /// backup take seconds). Drop the standby first.
    pub async fn replicated(name: &str) -> (Cluster, Cluster) {
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            let primary = Cluster::primary(&format!("{name}-primary"));
            let standby = Cluster::standby_of(&primary, &format!("{name}-standby"));
            (primary, standby)
        })
        .await
        .expect("the primary and its standby started")
    }

    /// A URL of the cluster's `postgres` database as user `postgres`.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// A URL of the cluster's database `name` as user `postgres`.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server.
    pub fn stop(&self, mode: StopMode) {
        self.pg_ctl(&["-m", mode.flag(), "-w", "stop"]);
    }

    /// Restarts the server (`-m fast`).
    pub fn restart(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "restart"]);
    }

    /// Ends every session on the database `name` but its own
    /// (`pg_terminate_backend`); returns how many.
    pub async fn terminate_backends(&self, name: &str) -> Result<u64, sqlx::Error> {
        let mut conn = PgConnection::connect(&self.url()).await?;
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()) ended",
        )
        .bind(name)
        .fetch_one(&mut conn)
        .await?;
        let _ = conn.close().await;
        Ok(u64::try_from(ended).unwrap_or(0))
    }

    /// The port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (its data directory is `data` in it, its
    /// server log `log`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs `pg_ctl` on the cluster with `args` after `-D` and `-l`, e.g.
    /// `["-m", "fast", "-w", "restart"]`; panics with the server log when it
    /// fails.
    pub fn pg_ctl(&self, args: &[&str]) {
        let log = self.root.join("log").display().to_string();
        let mut all = vec!["-l", log.as_str()];
        all.extend_from_slice(args);
        self.run_on_data("pg_ctl", &all);
    }

    /// The server binaries' directory, a directory for the cluster (owned
    /// by `postgres` when running as root) and a free port.
    fn prepare(name: &str) -> Self {
        let bin = server_binaries();
        // Each cluster of this process gets its own directory: tests run
        // at once.
        static CLUSTERS: AtomicU16 = AtomicU16::new(0);
        let slot = CLUSTERS.fetch_add(1, Ordering::SeqCst);
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(format!("pg-{name}-{}-{slot}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("a directory for the cluster");
        let uid = Process::new("id").arg("-u").output().expect("id -u");
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        if as_postgres {
            let status = Process::new("chown")
                .args(["-R", "postgres"])
                .arg(&root)
                .status()
                .expect("chown");
            assert!(status.success(), "chown the cluster directory");
        }
        Cluster {
            bin,
            data: root.join("data"),
            root,
            port: free_port(),
            as_postgres,
        }
    }

    /// Makes sure `pg_hba.conf` lets a standby on loopback stream (trust,
    /// as the rest of a test cluster).
    fn allow_replication(&self) {
        let path = self.data.join("pg_hba.conf");
        let mut hba = std::fs::read_to_string(&path).expect("read pg_hba.conf");
        hba.push_str("\nhost replication all 127.0.0.1/32 trust\n");
        std::fs::write(&path, hba).expect("write pg_hba.conf");
    }

    /// Starts the (stopped) server, waiting until it accepts connections.
    pub fn start_again(&self) {
        self.pg_ctl(&[
            "-o",
            &format!("-p {} {SERVER_OPTIONS}", self.port),
            "-w",
            "start",
        ]);
    }

    fn command(&self, tool: &str) -> Process {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut command = Process::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Process::new(program)
        }
    }

    /// Runs `tool` with `-D` and the cluster's data directory, then `args`;
    /// panics with the server log when it fails.
    fn run_on_data(&self, tool: &str, args: &[&str]) {
        let output = self
            .command(tool)
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {tool}: {error}"));
        assert!(
            output.status.success(),
            "{tool} failed: {}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.root.join("log")).unwrap_or_default()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.as_str(), "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin`, or a panic saying what
/// to install.
fn server_binaries() -> PathBuf {
    std::fs::read_dir(SERVER_BINARIES_ROOT)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|p| p.join("pg_ctl").exists() && p.join("pg_basebackup").exists())
                .max()
        })
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) under \
                 {SERVER_BINARIES_ROOT}/<version>/bin are needed: install the postgresql package"
            )
        })
}

/// A port nobody listens on now: the kernel's pick.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port for the cluster")
}
