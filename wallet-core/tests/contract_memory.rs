//! The store contract against the in-memory store.

wallet_core::store_contract_tests!(async { wallet_core::InMemoryStore::new() });

/// The same suite through `run_all`, which other stores may prefer.
#[tokio::test]
async fn run_all_scenarios() {
    wallet_core::testing::contract::run_all(|| async { wallet_core::InMemoryStore::new() }).await;
}
