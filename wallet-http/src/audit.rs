//! `wallet-http audit`: the ledger audit of wallet-pg
//! ([`wallet_pg::audit`]) for an operator, as text or JSON.
//!
//! It reads the primary (`DATABASE_URL`; never the replica, which may lag)
//! in one read-only snapshot, so it may run at any time beside the
//! service. Exit codes: 0 when nothing is found, 1 when something is
//! ([`EXIT_FOUND`]), 2 when the audit cannot run ([`EXIT_CANNOT_RUN`]).

use std::fmt::Write as _;

use wallet_pg::audit::AuditReport;
use wallet_pg::{PgConfig, PgStore};

use crate::config::Config;

/// The exit code when the audit found something.
pub const EXIT_FOUND: u8 = 1;
/// The exit code when the audit could not run (settings, database).
pub const EXIT_CANNOT_RUN: u8 = 2;

/// What the audit found and printed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: AuditReport,
}

impl Outcome {
    /// 0 when clean, [`EXIT_FOUND`] otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.report.is_clean() {
            0
        } else {
            EXIT_FOUND
        }
    }
}

/// Audits the database of `config`, prints the report (JSON with `json`)
/// on standard output and returns it.
pub async fn run(config: &Config, json: bool) -> Result<Outcome, String> {
    let database = config
        .database
        .as_ref()
        .ok_or("`audit` needs DATABASE_URL (or --database-url)")?;
    let mut settings = PgConfig::new(database.url.clone());
    settings.max_connections = 1;
    settings.batching = None;
    // The audit sets its own limit per statement (it reads whole tables).
    settings.statement_timeout = None;
    settings.application_name = "wallet-http audit".to_owned();
    let store = PgStore::connect(&settings)
        .await
        .map_err(|error| format!("cannot connect to the database (DATABASE_URL): {error}"))?;
    let report = store.audit().await;
    store.close().await;
    let report = report.map_err(|error| format!("the audit could not finish: {error}"))?;
    let text = if json {
        serde_json::to_string_pretty(&report)
            .map_err(|error| format!("cannot write the report: {error}"))?
    } else {
        render(&report)
    };
    println!("{text}");
    Ok(Outcome { report })
}

/// The report for a person: what was read, each check, each finding.
pub fn render(report: &AuditReport) -> String {
    let f = &report.figures;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Ledger audit of the snapshot at {} (read only, one snapshot)",
        report.snapshot_at.to_rfc3339()
    );
    let _ = writeln!(
        out,
        "  read: {} wallets, {} transactions, {} holds, {} point accounts, \
         {} point transactions, {} events",
        f.wallets, f.wallet_transactions, f.holds, f.point_accounts, f.point_transactions, f.events
    );
    for currency in &f.currencies {
        let _ = writeln!(
            out,
            "  {}: balances {}, held {}, in {} wallets",
            currency.currency, currency.balance, currency.held, currency.wallets
        );
    }
    let _ = writeln!(
        out,
        "  points: {} available, {} pending",
        f.points_available, f.points_pending
    );
    let _ = writeln!(out, "Checks:");
    for check in &report.checks {
        let status = match (check.findings, check.truncated) {
            (0, _) => "ok".to_owned(),
            (n, false) => format!("{n} found"),
            (n, true) => format!("{n}+ found"),
        };
        let _ = writeln!(out, "  {status:>9}  {}: {}", check.name, check.rule);
    }
    if report.is_clean() {
        let _ = write!(out, "Nothing found.");
        return out;
    }
    let _ = writeln!(out, "Findings:");
    for finding in &report.findings {
        let _ = writeln!(
            out,
            "  [{}] {}: {}",
            finding.check, finding.subject, finding.detail
        );
    }
    let _ = write!(out, "{} finding(s).", report.findings.len());
    out
}
