//! A `nats-server` of a test's own: on a free port of the loopback, with a
//! JetStream store directory of its own, killed when dropped. Never the
//! machine's shared server. A test that cannot start one fails, saying why.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

/// Where Debian's package puts the server; `NATS_SERVER_BIN` overrides it.
pub const NATS_SERVER_PATH: &str = "/usr/sbin/nats-server";
/// The longest wait for a started server to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running test server.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store_dir: PathBuf,
}

impl NatsServer {
    /// Starts a server on a free port with a fresh store directory.
    /// Panics, saying why, when `nats-server` is missing or does not start.
    pub async fn start() -> Self {
        let port = free_port();
        let store_dir = std::env::temp_dir().join(format!("wallet-relay-nats-{}", Uuid::now_v7()));
        let mut server = NatsServer {
            child: None,
            port,
            store_dir,
        };
        server.spawn().await;
        server
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (`SIGKILL`), keeping its store directory.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store directory.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let binary = binary();
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&self.store_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {} ({error}): install it (apt-get install nats-server) \
                     or set NATS_SERVER_BIN",
                    binary.display()
                )
            });
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while tokio::net::TcpStream::connect(&address).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            ready.is_ok(),
            "nats-server did not accept connections on {address} within {START_TIMEOUT:?}"
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}

/// The server binary: `NATS_SERVER_BIN`, else Debian's path, else `PATH`'s.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let debian = PathBuf::from(NATS_SERVER_PATH);
    if debian.exists() {
        return debian;
    }
    PathBuf::from("nats-server")
}

/// A port nothing listens on now (the loopback chooses it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("cannot find a free port: {error}"))
}

/// One message as a stream holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedMessage {
    pub subject: String,
    pub payload: Vec<u8>,
    /// The `Nats-Msg-Id` header.
    pub message_id: Option<String>,
    /// The `Wallet-Sequence` header.
    pub wallet_sequence: Option<String>,
}

/// Every message of `stream` on the server at `url`, in stream order.
/// Panics, saying why, when the stream cannot be read.
pub async fn stream_messages(url: &str, stream: &str) -> Vec<StreamedMessage> {
    let client = async_nats::connect(url)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {url}: {error}"));
    let stream = async_nats::jetstream::new(client)
        .get_stream(stream)
        .await
        .unwrap_or_else(|error| panic!("no stream {stream}: {error}"));
    let state = stream
        .get_info()
        .await
        .unwrap_or_else(|error| panic!("stream info: {error}"))
        .state;
    let mut messages = Vec::new();
    if state.messages == 0 {
        return messages;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = stream
            .get_raw_message(sequence)
            .await
            .unwrap_or_else(|error| panic!("stream message {sequence}: {error}"));
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
        messages.push(StreamedMessage {
            subject: message.subject.to_string(),
            payload: message.payload.to_vec(),
            message_id: header(crate::MESSAGE_ID_HEADER),
            wallet_sequence: header(crate::SEQUENCE_HEADER),
        });
    }
    messages
}

/// The names of the streams on the server at `url`.
pub async fn stream_names(url: &str) -> Vec<String> {
    use futures::StreamExt as _;
    let client = async_nats::connect(url)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {url}: {error}"));
    let names: Vec<_> = async_nats::jetstream::new(client)
        .stream_names()
        .collect()
        .await;
    names
        .into_iter()
        .map(|name| name.unwrap_or_else(|error| panic!("stream names: {error}")))
        .collect()
}
