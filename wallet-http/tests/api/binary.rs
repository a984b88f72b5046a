//! The executable: refusing to start without a way to authenticate, and
//! development mode as a new user meets it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// The service binary, with none of the settings of the environment.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wallet-http"));
    for name in [
        "JWT_AUTHORITY",
        "JWT_AUDIENCE",
        "DATABASE_URL",
        "DATABASE_READ_URL",
        "WALLET_BIND",
        "WALLET_MIGRATE",
    ] {
        command.env_remove(name);
    }
    command.env("RUST_LOG", "warn").kill_on_drop(true);
    command
}

#[tokio::test]
async fn refuses_to_start_without_an_authority_saying_why() {
    let output = binary().output().await.expect("run the binary");
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("JWT_AUTHORITY is not set"), "{message}");
    assert!(message.contains("--dev"), "{message}");

    let output = binary()
        .args(["--dev", "--bind", "0.0.0.0:0"])
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}

#[tokio::test]
async fn dev_mode_prints_tokens_that_work() {
    let mut child = binary()
        .args(["--dev", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut exports = std::collections::HashMap::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some((name, value)) =
                line.strip_prefix("export ").and_then(|l| l.split_once('='))
            {
                exports.insert(name.to_owned(), value.to_owned());
            }
            if exports.contains_key("USER_TOKEN") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the banner is printed");
    let url = exports.get("WALLET_URL").expect("WALLET_URL").clone();
    let user = exports.get("USER_ID").expect("USER_ID").clone();
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{url}/api/v1/wallets"))
        .bearer_auth(&exports["USER_TOKEN"])
        .json(&json!({"defaultCurrency": "USD"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let deposit = client
        .post(format!("{url}/api/v1/wallets/{user}/deposit"))
        .bearer_auth(&exports["SERVICE_TOKEN"])
        .json(&json!({"amount": "5", "currency": "USD"}))
        .send()
        .await
        .expect("deposit");
    assert_eq!(deposit.status().as_u16(), 200);
    let stats = client
        .get(format!("{url}/api/v1/wallets/statistics"))
        .bearer_auth(&exports["ADMIN_TOKEN"])
        .send()
        .await
        .expect("statistics");
    assert_eq!(stats.status().as_u16(), 200);
    let forbidden = client
        .get(format!("{url}/api/v1/wallets/statistics"))
        .bearer_auth(&exports["USER_TOKEN"])
        .send()
        .await
        .expect("statistics");
    assert_eq!(forbidden.status().as_u16(), 403);
    child.start_kill().expect("stop the binary");
    let _ = child.wait().await;
}
