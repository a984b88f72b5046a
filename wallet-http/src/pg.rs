//! The PostgreSQL store, as the service uses it.

use wallet_core::WalletError;
use wallet_pg::{BatchConfig, PgConfig, PgStore, ReplicaLag};

use crate::backend::Backend;
use crate::config::DatabaseSettings;

impl Backend for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn batch_stats(&self) -> Option<wallet_pg::BatchStats> {
        PgStore::batch_stats(self)
    }

    async fn replica_lag(&self) -> Option<Result<ReplicaLag, WalletError>> {
        PgStore::replica_lag(self).await
    }
}

/// Connects to the database, saying clearly what failed.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgStore, String> {
    let mut config = PgConfig::new(settings.url.clone());
    config.read_url = settings.read_url.clone();
    config.replica_lag_max = settings.replica_lag_max;
    config.max_connections = settings.max_connections;
    config.application_name = "wallet-http".to_owned();
    config.batching = settings.batch_writers.map(|writers| BatchConfig {
        writers,
        cached_wallets: settings.batch_cached_wallets,
        ..BatchConfig::default()
    });
    let store = PgStore::connect(&config).await.map_err(|error| {
        format!(
            "cannot connect to the database (DATABASE_URL): {}",
            describe(&error)
        )
    })?;
    match settings.batch_writers {
        Some(writers) => tracing::info!(writers, "commands are applied in batches (WALLET_BATCH)"),
        None => tracing::info!("one transaction per command (WALLET_BATCH=false)"),
    }
    Ok(store)
}

/// Applies the migrations.
pub async fn migrate(store: &PgStore) -> Result<(), String> {
    store
        .migrate()
        .await
        .map_err(|error| format!("cannot apply the migrations: {}", describe(&error)))
}

/// An error's text for an operator (start-up messages, not responses).
fn describe(error: &WalletError) -> String {
    error.to_string()
}
