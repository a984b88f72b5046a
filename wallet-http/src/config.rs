//! Configuration: command-line flags, each with an environment variable of
//! the same name, checked as a whole at start-up with a clear message.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use wallet_core::context::IDEMPOTENCY_RETENTION_MIN_HOURS;
use wallet_core::{CurrencyTable, Policy};

/// The default currency table, as the core defines it.
pub use wallet_core::money::DEFAULT_CURRENCIES;
/// The bounds of the sweep interval.
pub const SWEEP_INTERVAL_MIN: Duration = Duration::from_millis(100);
pub const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(60 * 60);
/// The bounds of the request timeout.
pub const REQUEST_TIMEOUT_MIN: Duration = Duration::from_secs(1);
pub const REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(10 * 60);
/// The most database connections per pool.
pub const DATABASE_CONNECTIONS_MAX: u32 = 1000;
/// The most batching writers.
pub const BATCH_WRITERS_MAX: usize = 64;

/// The wallet ledger's HTTP service.
#[derive(Debug, Clone, Parser)]
#[command(name = "wallet-http", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    #[command(flatten)]
    pub settings: Settings,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum CliCommand {
    /// Serve the API (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Check the whole ledger against the domain's invariants in one
    /// consistent snapshot (without blocking writers) and print what is
    /// wrong; exit code 1 when anything is found, 2 when the audit cannot run.
    Audit {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Every setting, as a flag and as an environment variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// PostgreSQL URL. Absent: an in-memory store that keeps nothing.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL URL of a read replica for queries.
    #[arg(long, env = "DATABASE_READ_URL", global = true, hide_env_values = true)]
    pub database_read_url: Option<String>,
    /// How far behind the read replica may be (the age of its data, such
    /// as 5s) before `GET /health` calls it lagging (`Degraded`).
    #[arg(
        long = "wallet-replica-lag-max",
        env = "WALLET_REPLICA_LAG_MAX",
        default_value = "5s",
        global = true
    )]
    pub replica_lag_max: String,
    /// Most connections per database pool.
    #[arg(
        long = "wallet-database-max-connections",
        env = "WALLET_DATABASE_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub database_max_connections: u32,
    /// Apply concurrent commands in shared database transactions (the
    /// batching writer of wallet-pg): on by default, faster on every
    /// measured workload with the same answers; `false` runs each command
    /// in a transaction of its own.
    #[arg(
        long = "wallet-batch",
        env = "WALLET_BATCH",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value = "true",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        global = true
    )]
    pub batch: bool,
    /// Batching writers (with WALLET_BATCH).
    #[arg(
        long = "wallet-batch-writers",
        env = "WALLET_BATCH_WRITERS",
        default_value_t = wallet_pg::batch::WRITERS_DEFAULT,
        global = true
    )]
    pub batch_writers: usize,
    /// Wallets each batching writer keeps between batches, 0 for none
    /// (with WALLET_BATCH).
    #[arg(
        long = "wallet-batch-cached-wallets",
        env = "WALLET_BATCH_CACHED_WALLETS",
        default_value_t = wallet_pg::batch::CACHED_WALLETS_DEFAULT,
        global = true
    )]
    pub batch_cached_wallets: usize,
    /// Issuer URL of the identity provider (its keys are read from
    /// `{JWT_AUTHORITY}/.well-known/openid-configuration`).
    #[arg(long, env = "JWT_AUTHORITY", global = true)]
    pub jwt_authority: Option<String>,
    /// Required `aud` of tokens, when set.
    #[arg(long, env = "JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// Address to listen on.
    #[arg(
        long = "wallet-bind",
        visible_alias = "bind",
        env = "WALLET_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: String,
    /// Currency table, CODE:scale:base-rate separated by commas.
    #[arg(
        long = "wallet-currencies",
        env = "WALLET_CURRENCIES",
        default_value = DEFAULT_CURRENCIES,
        global = true
    )]
    pub currencies: String,
    /// Hold lifetime when a hold names no `expiresAt` (such as 7d, 12h).
    #[arg(
        long = "wallet-hold-lifetime-default",
        env = "WALLET_HOLD_LIFETIME_DEFAULT",
        default_value = "7d",
        global = true
    )]
    pub hold_lifetime_default: String,
    /// Longest hold lifetime.
    #[arg(
        long = "wallet-hold-lifetime-max",
        env = "WALLET_HOLD_LIFETIME_MAX",
        default_value = "30d",
        global = true
    )]
    pub hold_lifetime_max: String,
    /// Time between two expiry sweeps (such as 5s, 500ms).
    #[arg(
        long = "wallet-sweep-interval",
        env = "WALLET_SWEEP_INTERVAL",
        default_value = "5s",
        global = true
    )]
    pub sweep_interval: String,
    /// How long idempotency records are kept (at least 24h).
    #[arg(
        long = "wallet-idempotency-retention",
        env = "WALLET_IDEMPOTENCY_RETENTION",
        default_value = "24h",
        global = true
    )]
    pub idempotency_retention: String,
    /// Longest time a request may take before it is answered with 503.
    #[arg(
        long = "wallet-request-timeout",
        env = "WALLET_REQUEST_TIMEOUT",
        default_value = "30s",
        global = true
    )]
    pub request_timeout: String,
    /// Log filter, such as `info` or `wallet_http=debug,info`.
    #[arg(
        long = "rust-log",
        env = "RUST_LOG",
        default_value = "info",
        global = true
    )]
    pub log_filter: String,
    /// Log format.
    #[arg(
        long = "log-format",
        env = "LOG_FORMAT",
        default_value = "pretty",
        value_parser = ["json", "pretty"],
        global = true
    )]
    pub log_format: String,
    /// Apply the database migrations before serving.
    #[arg(
        long,
        env = "WALLET_MIGRATE",
        action = ArgAction::Set,
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        global = true
    )]
    pub migrate: bool,
    /// NATS server the event relay publishes the outbox to; absent, the
    /// relay is off.
    #[arg(long = "wallet-nats-url", env = "WALLET_NATS_URL", global = true)]
    pub nats_url: Option<String>,
    /// First tokens of the relay's subjects (`{prefix}.{type}`).
    #[arg(
        long = "wallet-nats-subject-prefix",
        env = "WALLET_NATS_SUBJECT_PREFIX",
        default_value = crate::relay::SUBJECT_PREFIX_SETTING_DEFAULT,
        global = true
    )]
    pub nats_subject_prefix: String,
    /// JetStream stream of the relay, created when missing.
    #[arg(
        long = "wallet-nats-stream",
        env = "WALLET_NATS_STREAM",
        default_value = crate::relay::STREAM_SETTING_DEFAULT,
        global = true
    )]
    pub nats_stream: String,
    /// Development mode: sign and print tokens with a key made at start-up,
    /// in-memory store unless DATABASE_URL is set. Loopback addresses only.
    #[arg(long, global = true)]
    pub dev: bool,
}

/// How callers are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Tokens of the identity provider at `authority`.
    Provider {
        authority: String,
        audience: Option<String>,
    },
    /// Development mode: self-signed tokens.
    Development,
    /// Nobody is served (`migrate`).
    NotNeeded,
}

/// The database, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    pub url: String,
    pub read_url: Option<String>,
    /// The replica's lag above which `/health` is `Degraded`
    /// (`WALLET_REPLICA_LAG_MAX`).
    pub replica_lag_max: Duration,
    pub max_connections: u32,
    /// Batching writers, when commands are batched (`WALLET_BATCH`).
    pub batch_writers: Option<usize>,
    /// Wallets each batching writer keeps (`WALLET_BATCH_CACHED_WALLETS`).
    pub batch_cached_wallets: usize,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Settings after validation.
#[derive(Debug, Clone)]
pub struct Config {
    pub command: CliCommand,
    pub bind: SocketAddr,
    pub database: Option<DatabaseSettings>,
    pub auth: AuthMode,
    pub policy: Policy,
    pub sweep_interval: Duration,
    pub request_timeout: Duration,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub migrate: bool,
    /// The event relay, when `WALLET_NATS_URL` is set.
    pub relay: Option<crate::relay::RelaySettings>,
}

impl Cli {
    /// Checks every setting; the error says what is wrong and how to fix it.
    pub fn validate(&self) -> Result<Config, String> {
        let s = &self.settings;
        let command = self.command.unwrap_or(CliCommand::Serve);
        let bind = parse_bind(&s.bind)?;
        let database = match s.database_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err("DATABASE_URL must be a postgres:// URL".into());
                }
                if s.database_max_connections == 0
                    || s.database_max_connections > DATABASE_CONNECTIONS_MAX
                {
                    return Err(format!(
                        "WALLET_DATABASE_MAX_CONNECTIONS must be 1 to {DATABASE_CONNECTIONS_MAX}"
                    ));
                }
                Some(DatabaseSettings {
                    url: url.to_owned(),
                    read_url: s
                        .database_read_url
                        .as_deref()
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                        .map(str::to_owned),
                    replica_lag_max: parse_duration("WALLET_REPLICA_LAG_MAX", &s.replica_lag_max)?,
                    max_connections: s.database_max_connections,
                    batch_writers: if s.batch {
                        if s.batch_writers == 0 || s.batch_writers > BATCH_WRITERS_MAX {
                            return Err(format!(
                                "WALLET_BATCH_WRITERS must be 1 to {BATCH_WRITERS_MAX}"
                            ));
                        }
                        Some(s.batch_writers)
                    } else {
                        None
                    },
                    batch_cached_wallets: if s.batch_cached_wallets
                        > wallet_pg::batch::CACHED_WALLETS_LIMIT
                    {
                        return Err(format!(
                            "WALLET_BATCH_CACHED_WALLETS must be 0 to {}",
                            wallet_pg::batch::CACHED_WALLETS_LIMIT
                        ));
                    } else {
                        s.batch_cached_wallets
                    },
                })
            }
        };
        let serves = command == CliCommand::Serve;
        if !serves && database.is_none() {
            let name = match command {
                CliCommand::Audit { .. } => "audit",
                _ => "migrate",
            };
            return Err(format!("`{name}` needs DATABASE_URL (or --database-url)"));
        }
        let auth = if !serves {
            AuthMode::NotNeeded
        } else if s.dev {
            if !bind.ip().is_loopback() {
                return Err(format!(
                    "--dev signs its own tokens, so it only listens on a loopback address; \
                     WALLET_BIND is {bind}. Use 127.0.0.1:PORT, or drop --dev and set JWT_AUTHORITY"
                ));
            }
            AuthMode::Development
        } else {
            let authority = s
                .jwt_authority
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    "JWT_AUTHORITY is not set, so no caller could be authenticated. Set it to the \
                     issuer URL of your identity provider (its keys are read from \
                     {JWT_AUTHORITY}/.well-known/openid-configuration), or run with --dev to try \
                     the service locally with tokens it signs itself"
                        .to_owned()
                })?;
            if !(authority.starts_with("https://") || authority.starts_with("http://")) {
                return Err("JWT_AUTHORITY must be an http:// or https:// URL".into());
            }
            AuthMode::Provider {
                authority: authority.to_owned(),
                audience: s
                    .jwt_audience
                    .as_deref()
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned),
            }
        };
        let currencies =
            CurrencyTable::parse(&s.currencies).map_err(|e| format!("WALLET_CURRENCIES: {e}"))?;
        let hold_default =
            parse_duration("WALLET_HOLD_LIFETIME_DEFAULT", &s.hold_lifetime_default)?;
        let hold_max = parse_duration("WALLET_HOLD_LIFETIME_MAX", &s.hold_lifetime_max)?;
        let policy = Policy::new(
            currencies,
            chrono::Duration::from_std(hold_default).map_err(|_| "hold lifetime too long")?,
            chrono::Duration::from_std(hold_max).map_err(|_| "hold lifetime too long")?,
        )
        .map_err(|e| format!("WALLET_HOLD_LIFETIME_DEFAULT / _MAX: {e}"))?;
        let sweep_interval = parse_duration("WALLET_SWEEP_INTERVAL", &s.sweep_interval)?;
        if !(SWEEP_INTERVAL_MIN..=SWEEP_INTERVAL_MAX).contains(&sweep_interval) {
            return Err("WALLET_SWEEP_INTERVAL must be between 100ms and 1h".into());
        }
        let idempotency_retention =
            parse_duration("WALLET_IDEMPOTENCY_RETENTION", &s.idempotency_retention)?;
        let idempotency_retention = chrono::Duration::from_std(idempotency_retention)
            .map_err(|_| "WALLET_IDEMPOTENCY_RETENTION is too long")?;
        let policy = policy
            .with_idempotency_retention(idempotency_retention)
            .map_err(|_| {
                format!(
                    "WALLET_IDEMPOTENCY_RETENTION must be at least {IDEMPOTENCY_RETENTION_MIN_HOURS}h"
                )
            })?;
        let request_timeout = parse_duration("WALLET_REQUEST_TIMEOUT", &s.request_timeout)?;
        if !(REQUEST_TIMEOUT_MIN..=REQUEST_TIMEOUT_MAX).contains(&request_timeout) {
            return Err("WALLET_REQUEST_TIMEOUT must be between 1s and 10m".into());
        }
        let log_format = match s.log_format.as_str() {
            "json" => LogFormat::Json,
            _ => LogFormat::Pretty,
        };
        Ok(Config {
            command,
            bind,
            database,
            auth,
            policy,
            sweep_interval,
            request_timeout,
            log_filter: s.log_filter.clone(),
            log_format,
            migrate: s.migrate,
            relay: crate::relay::RelaySettings::parse(
                s.nats_url.as_deref(),
                &s.nats_subject_prefix,
                &s.nats_stream,
            )?,
        })
    }
}

fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        }
    }
    Err(format!(
        "WALLET_BIND `{text}` is not an address such as 127.0.0.1:8080 or 0.0.0.0:8080"
    ))
}

/// Parses `500ms`, `5s`, `10m`, `12h`, `7d`.
pub fn parse_duration(name: &str, text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("{name} `{text}` is not a duration such as 500ms, 5s, 10m, 12h or 7d");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60 * 1000,
        "h" => 60 * 60 * 1000,
        "d" => 24 * 60 * 60 * 1000,
        _ => return Err(bad()),
    };
    let millis = number.checked_mul(unit_ms).ok_or_else(bad)?;
    if millis == 0 || millis > 10 * 365 * 24 * 60 * 60 * 1000 {
        return Err(format!(
            "{name} `{text}` must be above zero and at most 10 years"
        ));
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Config, String> {
        let mut all = vec!["wallet-http"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
            .map_err(|e| e.to_string())?
            .validate()
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(
            parse_duration("X", "7d"),
            Ok(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            parse_duration("X", "12h"),
            Ok(Duration::from_secs(12 * 3_600))
        );
        assert_eq!(parse_duration("X", "500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "7", "d", "7 days", "-1s", "0s", "99999999999999999999d"] {
            assert!(parse_duration("X", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_policy_takes_its_defaults_from_the_core_and_its_retention_from_the_setting() {
        let config = cli(&["--dev"]).expect("defaults");
        assert_eq!(config.policy, Policy::default());
        let config = cli(&["--dev", "--wallet-idempotency-retention", "2d"]).expect("two days");
        assert_eq!(
            config.policy.idempotency_retention,
            chrono::Duration::days(2)
        );
    }

    #[test]
    fn refuses_to_start_without_an_authority_or_dev_mode() {
        let error = cli(&["--jwt-authority", ""]).err().unwrap_or_default();
        assert!(error.contains("JWT_AUTHORITY is not set"), "{error}");
        assert!(cli(&["--jwt-authority", "https://id.example"]).is_ok());
    }

    #[test]
    fn dev_mode_only_on_loopback() {
        assert!(cli(&["--dev"]).is_ok());
        let error = cli(&["--dev", "--bind", "0.0.0.0:8080"])
            .err()
            .unwrap_or_default();
        assert!(error.contains("loopback"), "{error}");
        assert!(cli(&["--dev", "--bind", "[::1]:8080"]).is_ok());
    }

    #[test]
    fn bad_settings_are_named() {
        let base = ["--jwt-authority", "https://id.example"];
        let check = |extra: &[&str], needle: &str| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            let error = cli(&args).err().unwrap_or_default();
            assert!(error.contains(needle), "{extra:?}: {error}");
        };
        check(&["--wallet-currencies", "VND:x:1"], "WALLET_CURRENCIES");
        check(
            &["--wallet-hold-lifetime-default", "40d"],
            "WALLET_HOLD_LIFETIME",
        );
        check(&["--wallet-sweep-interval", "2h"], "WALLET_SWEEP_INTERVAL");
        check(&["--wallet-idempotency-retention", "1h"], "24h");
        check(&["--bind", "nowhere"], "WALLET_BIND");
        check(&["--database-url", "mysql://x"], "postgres://");
        check(&["migrate", "--database-url", ""], "DATABASE_URL");
        check(
            &[
                "--database-url",
                "postgres://h/db",
                "--wallet-batch",
                "--wallet-batch-writers",
                "0",
            ],
            "WALLET_BATCH_WRITERS",
        );
        check(
            &[
                "--database-url",
                "postgres://h/db",
                "--wallet-batch-cached-wallets",
                "99999999",
            ],
            "WALLET_BATCH_CACHED_WALLETS",
        );
        let migrate = Cli::try_parse_from([
            "wallet-http",
            "migrate",
            "--database-url",
            "postgres://h/db",
        ])
        .map_err(|e| e.to_string())
        .and_then(|cli| {
            let mut cli = cli;
            cli.settings.jwt_authority = None;
            cli.validate()
        });
        assert!(migrate.is_ok(), "migrate needs no authority: {migrate:?}");
    }

    #[test]
    fn batching_is_on_unless_turned_off() {
        let base = [
            "--jwt-authority",
            "https://id.example",
            "--database-url",
            "postgres://h/db",
        ];
        let writers = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            cli(&args).map(|c| c.database.and_then(|d| d.batch_writers))
        };
        assert_eq!(writers(&[]), Ok(Some(wallet_pg::batch::WRITERS_DEFAULT)));
        assert_eq!(
            writers(&["--wallet-batch"]),
            Ok(Some(wallet_pg::batch::WRITERS_DEFAULT))
        );
        assert_eq!(
            writers(&["--wallet-batch", "true", "--wallet-batch-writers", "3"]),
            Ok(Some(3))
        );
        assert_eq!(
            writers(&["--wallet-batch-writers", "3"]),
            Ok(Some(3)),
            "the writers apply without asking for batching"
        );
        assert_eq!(writers(&["--wallet-batch", "false"]), Ok(None));
        assert_eq!(
            writers(&["--wallet-batch", "false", "--wallet-batch-writers", "3"]),
            Ok(None)
        );
        let cached = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            cli(&args).map(|c| c.database.map(|d| d.batch_cached_wallets))
        };
        assert_eq!(
            cached(&[]),
            Ok(Some(wallet_pg::batch::CACHED_WALLETS_DEFAULT))
        );
        assert_eq!(
            cached(&["--wallet-batch", "--wallet-batch-cached-wallets", "0"]),
            Ok(Some(0))
        );
    }

    #[test]
    fn audit_needs_no_authority() {
        // Without a database it refuses (the binary's test, which controls
        // the environment, checks that; DATABASE_URL may be set here).
        let url = "postgres://u@h/db";
        let config = cli(&["audit", "--json", "--database-url", url]).expect("audit settings");
        assert_eq!(config.command, CliCommand::Audit { json: true });
        assert_eq!(config.auth, AuthMode::NotNeeded);
        let text = cli(&["audit", "--database-url", url]).expect("audit settings");
        assert_eq!(text.command, CliCommand::Audit { json: false });
    }

    #[test]
    fn migrate_flag_reads_booleans() {
        let base = ["--jwt-authority", "https://id.example"];
        let parsed = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            cli(&args).map(|c| c.migrate)
        };
        assert_eq!(parsed(&[]), Ok(false));
        assert_eq!(parsed(&["--migrate"]), Ok(true));
        assert_eq!(parsed(&["--migrate", "false"]), Ok(false));
    }
}
