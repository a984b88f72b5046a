//! The named constraints are the last line of defence: a write that breaks
//! an invariant (as a buggy aggregate would) is refused by the database and
//! comes back as the precise domain error, with nothing written.

use std::collections::BTreeMap;

use sqlx::Connection;
use uuid::Uuid;
use wallet_core::testing::contract::{code, create_wallet, dec, deposit};
use wallet_core::{
    Aggregate, Ctx, CurrencyCode, Policy, SequentialIdGenerator, Wallet, WalletError, WalletItem,
    WalletService,
};

/// The items of a wallet, for a test to break.
type Items = BTreeMap<CurrencyCode, WalletItem>;

/// The wallet rebuilt with its items as `tamper` leaves them: the aggregate
/// itself never breaks an invariant, so a test rebuilds it from broken state.
fn rebuilt_with(wallet: &Wallet, tamper: impl Fn(&mut Items)) -> Wallet {
    let mut items = wallet.items().clone();
    tamper(&mut items);
    Wallet::restore(
        wallet.id(),
        wallet.user_id(),
        wallet.status(),
        wallet.default_currency(),
        wallet.frozen_reason().map(str::to_owned),
        items.into_values().collect(),
        wallet.holds().values().cloned().collect(),
        wallet.version(),
        wallet.transaction_count(),
        wallet.created_at(),
        wallet.updated_at(),
    )
}
use wallet_pg::wallets::{lock_wallet, write_wallet};

/// Locks the wallet, deposits 10 USD on the aggregate, lets `tamper` break
/// the result, writes it, and returns what the write said.
async fn tampered_write(tamper: impl Fn(&mut Items)) -> Result<(), WalletError> {
    let store = wallet_pg::testing::fresh_store().await;
    let service = WalletService::new(store.clone(), Policy::default());
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    service
        .execute(deposit(user, "10", "USD"), None)
        .await
        .expect("deposit");
    let before = service.wallet(user).await.expect("read");

    let mut conn = store.pool().acquire().await.expect("a connection");
    let mut transaction = conn.begin().await.expect("begin");
    let mut locked = lock_wallet(&mut transaction, user, &[], &[])
        .await
        .expect("lock")
        .expect("the wallet");
    let policy = Policy::default();
    let ids = SequentialIdGenerator::new();
    let ctx = Ctx {
        now: service.now(),
        ids: &ids,
        policy: &policy,
        idempotency_key: None,
    };
    let money = policy
        .currencies
        .money(dec("1"), code("USD"))
        .expect("money");
    locked
        .wallet
        .deposit(money, None, None, &ctx)
        .expect("a deposit");
    let changes = locked.wallet.take_changes();
    let tampered = rebuilt_with(&locked.wallet, tamper);
    let result = write_wallet(&mut transaction, &tampered, &changes, &[]).await;
    drop(transaction);
    drop(conn);
    assert_eq!(
        service.wallet(user).await.expect("read"),
        before,
        "nothing was written"
    );
    result
}

#[tokio::test]
async fn a_negative_balance_is_insufficient_funds() {
    let result = tampered_write(|items| {
        if let Some(item) = items.get_mut(&code("USD")) {
            item.balance = dec("-1.00");
            item.held = dec("0.00");
        }
    })
    .await;
    assert_eq!(result, Err(WalletError::InsufficientFunds));
}

#[tokio::test]
async fn held_over_balance_is_insufficient_funds() {
    let result = tampered_write(|items| {
        if let Some(item) = items.get_mut(&code("USD")) {
            item.held = dec("12.00");
        }
    })
    .await;
    assert_eq!(result, Err(WalletError::InsufficientFunds));
}

#[tokio::test]
async fn a_balance_over_the_limit_is_refused() {
    let result = tampered_write(|items| {
        if let Some(item) = items.get_mut(&code("USD")) {
            item.balance = dec("1000000000000000.01");
        }
    })
    .await;
    assert_eq!(result, Err(WalletError::BalanceLimitExceeded));
}

#[tokio::test]
async fn a_write_that_expects_another_version_is_a_conflict() {
    let store = wallet_pg::testing::fresh_store().await;
    let service = WalletService::new(store.clone(), Policy::default());
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    let mut conn = store.pool().acquire().await.expect("a connection");
    let mut transaction = conn.begin().await.expect("begin");
    let mut locked = lock_wallet(&mut transaction, user, &[], &[])
        .await
        .expect("lock")
        .expect("the wallet");
    let policy = Policy::default();
    let ids = SequentialIdGenerator::new();
    let ctx = Ctx {
        now: service.now(),
        ids: &ids,
        policy: &policy,
        idempotency_key: None,
    };
    locked.wallet.freeze("review".into(), &ctx).expect("freeze");
    let mut changes = locked.wallet.take_changes();
    changes.expected_version += 1;
    let result = write_wallet(&mut transaction, &locked.wallet, &changes, &[]).await;
    assert_eq!(result, Err(WalletError::ConcurrencyConflict));
}
