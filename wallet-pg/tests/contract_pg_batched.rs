//! The store contract against PostgreSQL with the batching writer on, each
//! scenario on its own scratch database.

wallet_core::store_contract_tests!(wallet_pg::testing::fresh_batched_store());
