//! The shortest path through the store: connect, migrate twice, a command
//! and a query.

use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_core::{Command, CommandOutput, CurrencyCode, Policy, WalletService};

#[tokio::test]
async fn create_deposit_and_read_back() {
    let store = wallet_pg::testing::fresh_store().await;
    store
        .migrate()
        .await
        .expect("a second migrate changes nothing");
    let service = WalletService::new(store, Policy::default());
    let user_id = Uuid::now_v7();
    service
        .execute(
            Command::CreateWallet {
                user_id,
                default_currency: None,
            },
            None,
        )
        .await
        .expect("create");
    let usd = CurrencyCode::parse("usd").expect("code");
    let applied = service
        .execute(
            Command::Deposit {
                user_id,
                amount: Decimal::new(1050, 2),
                currency: usd,
                description: None,
                reference: None,
            },
            None,
        )
        .await
        .expect("deposit");
    let CommandOutput::Transaction { wallet, .. } = applied.output else {
        panic!("a deposit returns a transaction");
    };
    assert_eq!(wallet.balances[0].balance.to_string(), "10.50");
    let read = service.wallet(user_id).await.expect("read back");
    assert_eq!(read, wallet);
    assert_eq!(read.balances[0].balance.to_string(), "10.50");
}
