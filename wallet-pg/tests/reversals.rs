//! The cap of reversals under real concurrency on PostgreSQL: sixteen tasks
//! reversing parts of one deposit at once, and of one transfer through
//! both sides' ids at once, never reverse more than its amount in total,
//! and the wallets end as a serial order of the successful reversals.
//! Each test runs on the store with one transaction per command and with
//! the batching writer on (two stores on one database, as two processes).

use futures::future::join_all;
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_core::testing::contract::{code, create_wallet, dec, deposit};
use wallet_core::testing::invariants;
use wallet_core::{
    Command, CommandOutput, TransactionType, WalletError, WalletService, WalletTransaction,
};
use wallet_pg::PgStore;

#[macro_use]
mod common;
use common::{all_holds, all_transactions, services, Path};

/// Tasks reversing at once.
const TASKS: usize = 16;
/// The original's amount, in whole USD.
const ORIGINAL: i64 = 100;

on_both_paths!(
    sixteen_reversals_of_one_deposit_never_exceed_it,
    sixteen_reversals_of_one_transfer_from_both_sides_never_exceed_it,
);

/// Task `task`'s share: 7 to 22 USD, together far more than the original.
fn share(task: usize) -> i64 {
    7 + (task as i64 * 5) % 16
}

fn reverse(user_id: Uuid, transaction_id: Uuid, amount: i64) -> Command {
    Command::ReverseTransaction {
        user_id,
        transaction_id,
        amount: Some(Decimal::from(amount)),
        reason: "refund".into(),
    }
}

async fn open_wallet(service: &WalletService<PgStore>, seed: u128, opening: &str) -> Uuid {
    let user = Uuid::from_u128(seed);
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    if opening != "0" {
        service
            .execute(deposit(user, opening, "USD"), None)
            .await
            .expect("an opening deposit");
    }
    user
}

/// Sends each task's reversal (through `named(task)`: the user and the
/// leg it names) at once, spread over the services; returns the amounts
/// that succeeded and those refused for the cap. Any other answer fails.
async fn race(
    services: &[WalletService<PgStore>],
    named: impl Fn(usize) -> (Uuid, Uuid),
) -> (Vec<i64>, Vec<i64>) {
    let attempts = (0..TASKS).map(|task| {
        let service = services[task % services.len()].clone();
        let (user, leg) = named(task);
        async move {
            let result = service.execute(reverse(user, leg, share(task)), None).await;
            (share(task), result)
        }
    });
    let mut done = (Vec::new(), Vec::new());
    for (amount, result) in join_all(attempts).await {
        match result {
            Ok(applied) => {
                assert!(matches!(applied.output, CommandOutput::Reversal { .. }));
                done.0.push(amount);
            }
            Err(WalletError::ReversalExceedsOriginal) => done.1.push(amount),
            Err(error) => panic!("a reversal of {amount}: {error:?}"),
        }
    }
    done
}

/// The outcome is a serial order of the successful reversals: they add up
/// to at most the original, and each refused one asked for more than what
/// was left in the end (so it was refused whenever it ran).
fn assert_serial(succeeded: &[i64], refused: &[i64]) -> i64 {
    let total: i64 = succeeded.iter().sum();
    assert!(total <= ORIGINAL, "reversed {total} of {ORIGINAL}");
    assert!(!succeeded.is_empty(), "no reversal succeeded");
    for amount in refused {
        assert!(
            total + amount > ORIGINAL,
            "{amount} was refused with only {total} reversed"
        );
    }
    total
}

/// The reversal rows of a log that name `leg`.
fn reversals_of(log: &[WalletTransaction], leg: Uuid) -> Vec<&WalletTransaction> {
    log.iter()
        .filter(|t| t.reverses_transaction_id == Some(leg))
        .collect()
}

async fn check_wallet(service: &WalletService<PgStore>, user: Uuid) -> Vec<WalletTransaction> {
    let view = service.wallet(user).await.expect("wallet");
    let holds = all_holds(service, user).await;
    let log = all_transactions(service, user).await;
    invariants::check_wallet(&view, &holds, &log).expect("wallet invariants");
    log
}

async fn sixteen_reversals_of_one_deposit_never_exceed_it(path: Path) {
    let (services, _database) = services(path).await;
    let service = &services[0];
    // Enough besides the deposit that the debit never lacks money: only
    // the cap can refuse.
    let user = open_wallet(service, 1, "1000").await;
    let deposited = service
        .execute(deposit(user, &ORIGINAL.to_string(), "USD"), None)
        .await
        .expect("the deposit to reverse");
    let CommandOutput::Transaction {
        transaction: original,
        ..
    } = deposited.output
    else {
        panic!("a deposit answers with its transaction");
    };
    let version = service.wallet(user).await.expect("wallet").version;
    let (succeeded, refused) = race(&services, |_| (user, original.id)).await;
    let total = assert_serial(&succeeded, &refused);
    let wallet = service.wallet(user).await.expect("wallet");
    assert_eq!(
        wallet.balances[0].balance,
        dec("1100") - Decimal::from(total)
    );
    assert_eq!(wallet.version, version + succeeded.len() as u64);
    let log = check_wallet(service, user).await;
    let rows = reversals_of(&log, original.id);
    assert_eq!(rows.len(), succeeded.len());
    assert!(rows
        .iter()
        .all(|t| t.transaction_type == TransactionType::Reversal));
    let read = service
        .transaction(user, original.id)
        .await
        .expect("the original");
    assert_eq!(read.reversed_amount, Some(Decimal::new(total * 100, 2)));
}

async fn sixteen_reversals_of_one_transfer_from_both_sides_never_exceed_it(path: Path) {
    let (services, _database) = services(path).await;
    let service = &services[0];
    let payer = open_wallet(service, 1, "500").await;
    // The payee has more than it received, so that giving back never lacks
    // money: only the cap can refuse.
    let payee = open_wallet(service, 2, "200").await;
    let sent = service
        .execute(
            Command::Transfer {
                user_id: payer,
                to_user_id: payee,
                amount: Decimal::from(ORIGINAL),
                currency: code("USD"),
                description: None,
                reference: None,
            },
            None,
        )
        .await
        .expect("the transfer to reverse");
    let CommandOutput::Transfer {
        transaction: out, ..
    } = sent.output
    else {
        panic!("a transfer answers with its leg");
    };
    let received = all_transactions(service, payee)
        .await
        .into_iter()
        .find(|t| t.transaction_type == TransactionType::TransferIn)
        .expect("the payee's leg");
    // Even tasks name the payer's leg, odd ones the payee's.
    let (succeeded, refused) = race(&services, |task| {
        if task % 2 == 0 {
            (payer, out.id)
        } else {
            (payee, received.id)
        }
    })
    .await;
    let total = assert_serial(&succeeded, &refused);
    let balance = |service: &WalletService<PgStore>, user| {
        let service = service.clone();
        async move { service.wallet(user).await.expect("wallet").balances[0].balance }
    };
    assert_eq!(
        balance(service, payer).await,
        dec("400") + Decimal::from(total)
    );
    assert_eq!(
        balance(service, payee).await,
        dec("300") - Decimal::from(total)
    );
    let payer_log = check_wallet(service, payer).await;
    let payee_log = check_wallet(service, payee).await;
    assert_eq!(reversals_of(&payer_log, out.id).len(), succeeded.len());
    assert_eq!(reversals_of(&payee_log, received.id).len(), succeeded.len());
    let expected = Some(Decimal::new(total * 100, 2));
    for (user, leg) in [(payer, out.id), (payee, received.id)] {
        let read = service.transaction(user, leg).await.expect("a leg");
        assert_eq!(read.reversed_amount, expected, "both legs share one total");
    }
    let views = [
        service.wallet(payer).await.expect("payer"),
        service.wallet(payee).await.expect("payee"),
    ];
    invariants::check_ledger_conserved([
        (&views[0], payer_log.as_slice()),
        (&views[1], payee_log.as_slice()),
    ])
    .expect("the ledger is conserved");
}
