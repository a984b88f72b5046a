//! A PostgreSQL cluster of a test's own under `target/`, for tests that
//! stop, restart or pause the server (never the shared one): started on a
//! free port with `initdb` and `pg_ctl` (as the `postgres` user when the
//! test runs as root, since PostgreSQL refuses to run as root), stopped
//! and removed when dropped.

use std::path::PathBuf;
use std::process::Command as Process;
use std::sync::atomic::{AtomicU16, Ordering};

use sqlx::{Connection, PgConnection};

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

/// A throwaway cluster; see the module docs.
#[derive(Debug)]
pub struct ThrowawayCluster {
    bin: PathBuf,
    data: PathBuf,
    root: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The newest server binaries under `/usr/lib/postgresql/<version>/bin`.
fn server_binaries() -> PathBuf {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|p| p.join("pg_ctl").exists())
                .max()
        })
        .expect(
            "PostgreSQL server binaries under /usr/lib/postgresql/<version>/bin \
             (install the postgresql package)",
        )
}

/// A port nobody listens on now: the kernel's pick.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

impl ThrowawayCluster {
    /// Creates and starts a cluster in `target/<name>-<pid>-<n>` (each
    /// cluster of a process gets its own directory), with `fsync=off`:
    /// the tests stop the server, never the machine, so what was written
    /// to the operating system survives.
    pub fn start(name: &str) -> Self {
        static CLUSTERS: AtomicU16 = AtomicU16::new(0);
        let slot = CLUSTERS.fetch_add(1, Ordering::SeqCst);
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(format!("{name}-{}-{slot}", std::process::id()));
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
        let cluster = ThrowawayCluster {
            bin: server_binaries(),
            data: root.join("data"),
            root,
            port: free_port(),
            as_postgres,
        };
        cluster.run(
            "initdb",
            &[
                "-D".into(),
                cluster.data.display().to_string(),
                "-U".into(),
                "postgres".into(),
                "--auth=trust".into(),
            ],
        );
        cluster.start_again();
        cluster
    }

    /// The URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of the database `name`.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The directory of the cluster (its data and its log).
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Starts the stopped server, waiting until it accepts connections.
    pub fn start_again(&self) {
        self.pg_ctl(&[
            "-o",
            &format!(
                "-p {} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port
            ),
            "-w",
            "start",
        ]);
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

    /// `tool` of the server binaries, to run as the `postgres` user when
    /// this process is root.
    fn tool(&self, tool: &str) -> Process {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut command = Process::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Process::new(program)
        }
    }

    fn run(&self, tool: &str, args: &[String]) {
        let output = self
            .tool(tool)
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

    fn pg_ctl(&self, args: &[&str]) {
        let mut all = vec![
            "-D".to_owned(),
            self.data.display().to_string(),
            "-l".to_owned(),
            self.root.join("log").display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        self.run("pg_ctl", &all);
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self
            .tool("pg_ctl")
            .args(["-D", data.as_str(), "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
