//! The store contract against PostgreSQL, each scenario on its own scratch
//! database.

wallet_core::store_contract_tests!(wallet_pg::testing::fresh_store());
