//! What the concurrency tests share: the two write paths, a macro that
//! runs a test on both, and reads of a wallet's whole history.

#![allow(dead_code)]

use uuid::Uuid;
use wallet_core::{TransactionFilter, WalletService};
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
