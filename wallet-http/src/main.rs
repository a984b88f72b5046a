//! `wallet-http`: serve the API, or `wallet-http migrate`.

use clap::Parser;
use wallet_http::config::{Cli, CliCommand};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match cli.validate() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("wallet-http: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    if let CliCommand::Audit { json } = config.command {
        return match wallet_http::audit::run(&config, json).await {
            Ok(outcome) => std::process::ExitCode::from(outcome.exit_code()),
            Err(message) => {
                eprintln!("wallet-http: {message}");
                std::process::ExitCode::from(wallet_http::audit::EXIT_CANNOT_RUN)
            }
        };
    }
    match wallet_http::server::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wallet-http: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
