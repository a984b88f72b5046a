//! What the concurrency tests share: the two write paths, a macro that
//! runs a test on both, and reads of a wallet's whole history.

#![allow(dead_code)]

use uuid::Uuid;
use wallet_core::{Policy, TransactionFilter, WalletService};
use wallet_pg::testing::ScratchDatabase;
use wallet_pg::PgStore;

/// Which write path of the store a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Path {
    Unbatched,
    Batched,
}

/// Each test, on both write paths.
macro_rules! on_both_paths {
    ($($name:ident),* $(,)?) => {
        mod unbatched {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::common::Path::Unbatched).await
                }
            )*
        }
        mod batched {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::common::Path::Batched).await
                }
            )*
        }
    };
}

/// One or two services on one scratch database (two for the batched path:
/// two processes, each with its own writers and kept wallets).
pub async fn services(path: Path) -> (Vec<WalletService<PgStore>>, ScratchDatabase) {
    let (first, database) = match path {
        Path::Unbatched => wallet_pg::testing::fresh_store_in().await,
        Path::Batched => wallet_pg::testing::fresh_batched_store_in().await,
    };
    let mut stores = vec![first];
    if matches!(path, Path::Batched) {
        let config = wallet_pg::testing::batched_test_config(&database.url);
        let second = PgStore::connect(&config).await.expect("a second process");
        stores.push(second);
    }
    let services = stores
        .into_iter()
        .map(|store| WalletService::new(store, Policy::default()))
        .collect();
    (services, database)
}

/// Every transaction of the user's wallet, newest first, over all pages.
pub async fn all_transactions(
    service: &WalletService<PgStore>,
    user: Uuid,
) -> Vec<wallet_core::WalletTransaction> {
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = service
            .transactions(
                user,
                TransactionFilter::default(),
                wallet_core::PageRequest { limit: 200, cursor },
            )
            .await
            .expect("transactions");
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(wallet_core::Cursor::decode(&next).expect("cursor")),
            None => return items,
        }
    }
}

/// Every hold of the user's wallet, over all pages.
pub async fn all_holds(service: &WalletService<PgStore>, user: Uuid) -> Vec<wallet_core::Hold> {
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = service
            .holds(user, None, wallet_core::PageRequest { limit: 200, cursor })
            .await
            .expect("holds");
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(wallet_core::Cursor::decode(&next).expect("cursor")),
            None => return items,
        }
    }
}
