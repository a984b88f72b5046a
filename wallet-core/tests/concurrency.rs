//! Many tasks at once on one wallet and one point account: nobody ever
//! overdraws, the final state equals a serial order of the successful
//! commands, and one idempotency key takes effect exactly once. Transfers
//! among four wallets in both directions at once conserve money, and one
//! key on a transfer from many tasks takes effect once.

mod common;

use common::{code, dec, key, Harness};
use wallet_core::{
    Command, CommandOutput, Decimal, HoldStatus, InMemoryStore, Uuid, WalletError, WalletService,
};

const USER: Uuid = Uuid::from_u128(0xc0c0);

fn deposit(amount: Decimal) -> Command {
    Command::Deposit {
        user_id: USER,
        amount,
        currency: code("USD"),
        description: None,
        reference: None,
    }
}

fn withdraw(amount: Decimal) -> Command {
    Command::Withdraw {
        user_id: USER,
        amount,
        currency: code("USD"),
        description: None,
        reference: None,
    }
}

/// A wallet with `funds` USD and a point account with `points` in five lots.
async fn setup(funds: &str, points: i64) -> Harness {
    let harness = Harness::new();
    let service = &harness.service;
    let create = Command::CreateWallet {
        user_id: USER,
        default_currency: None,
    };
    service.execute(create, None).await.expect("wallet");
    service
        .execute(deposit(dec(funds)), None)
        .await
        .expect("funds");
    service
        .execute(Command::CreatePointAccount { user_id: USER }, None)
        .await
        .expect("account");
    for _ in 0..5 {
        let earn = Command::EarnPoints {
            user_id: USER,
            points: points / 5,
            source: "shop".into(),
            description: None,
            expires_at: None,
            pending: false,
        };
        service.execute(earn, None).await.expect("earn");
    }
    harness
}

/// Runs every command on its own task, all at once; returns the results in
/// the order of the commands.
async fn all_at_once(
    service: &WalletService<InMemoryStore>,
    commands: Vec<(Command, Option<&str>)>,
) -> Vec<Result<wallet_core::Applied, WalletError>> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(commands.len()));
    let tasks: Vec<_> = commands
        .into_iter()
        .map(|(command, idempotency_key)| {
            let service = service.clone();
            let barrier = std::sync::Arc::clone(&barrier);
            let idempotency_key = idempotency_key.map(key);
            tokio::spawn(async move {
                barrier.wait().await;
                service.execute(command, idempotency_key).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("the task finished"));
    }
    results
}

fn usd_balance(harness: &Harness) -> (Decimal, Decimal) {
    let stored = harness.store.stored_wallet(USER).expect("wallet");
    let item = stored.wallet.item(code("USD")).expect("USD").clone();
    (item.balance, item.held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn equal_withdrawals_succeed_exactly_as_often_as_the_money_allows() {
    let harness = setup("1000", 500).await;
    let commands = (0..64).map(|_| (withdraw(dec("30")), None)).collect();
    let results = all_at_once(&harness.service, commands).await;
    let successes = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(successes, 33, "1000 / 30 = 33 withdrawals fit");
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| *e == WalletError::InsufficientFunds));
    assert_eq!(usd_balance(&harness), (dec("10.00"), dec("0.00")));
    harness.check(USER).expect("invariants");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uneven_withdrawals_match_a_serial_order() {
    let harness = setup("500", 500).await;
    let amounts: Vec<Decimal> = (0..48).map(|i| Decimal::new(700 + 137 * i, 2)).collect();
    let commands = amounts.iter().map(|a| (withdraw(*a), None)).collect();
    let results = all_at_once(&harness.service, commands).await;
    let taken: Decimal = amounts
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(a, _)| *a)
        .sum();
    let (balance, _) = usd_balance(&harness);
    assert_eq!(balance, dec("500") - taken);
    // The balance only went down, so each refusal was right when it was
    // made only if the amount is more than what is left now.
    for (amount, result) in amounts.iter().zip(&results) {
        if let Err(error) = result {
            assert_eq!(*error, WalletError::InsufficientFunds);
            assert!(
                *amount > balance,
                "{amount} was refused with {balance} left"
            );
        }
    }
    // The log holds exactly the successful withdrawals, in some order.
    let stored = harness.store.stored_wallet(USER).expect("wallet");
    let logged: Decimal = stored
        .transactions
        .iter()
        .filter(|t| t.amount < Decimal::ZERO)
        .map(|t| -t.amount)
        .sum();
    assert_eq!(logged, taken);
    harness.check(USER).expect("invariants");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_executes_releases_and_withdrawals_at_once_never_overdraw() {
    let harness = setup("1000", 500).await;
    let service = harness.service.clone();
    let workers: Vec<_> = (0..16i64)
        .map(|worker| {
            let service = service.clone();
            tokio::spawn(async move {
                let mut executed = Decimal::ZERO;
                let mut withdrawn = Decimal::ZERO;
                let mut deposited = Decimal::ZERO;
                for round in 0..8i64 {
                    let amount = Decimal::new(500 + 100 * ((worker + round) % 7), 2);
                    let hold = Command::CreateHold {
                        user_id: USER,
                        amount,
                        currency: code("USD"),
                        reference_type: "order".into(),
                        reference_id: Uuid::from_u128(worker as u128),
                        description: None,
                        expires_at: None,
                    };
                    if let Ok(applied) = service.execute(hold, None).await {
                        let CommandOutput::Hold { hold } = applied.output else {
                            panic!("a hold command answered {:?}", applied.output)
                        };
                        let part = Decimal::new(200, 2);
                        let execute = Command::ExecuteHold {
                            user_id: USER,
                            hold_id: hold.id,
                            amount: Some(part),
                            reference: None,
                            payees: None,
                        };
                        service.execute(execute, None).await.expect("execute part");
                        executed += part;
                        let release = Command::ReleaseHold {
                            user_id: USER,
                            hold_id: hold.id,
                            amount: None,
                        };
                        let released = service.execute(release, None).await.expect("release");
                        let CommandOutput::Hold { hold } = released.output else {
                            panic!("a release answered {:?}", released.output)
                        };
                        assert_eq!(hold.status, HoldStatus::Released);
                    }
                    let amount = Decimal::new(1300 + 100 * round, 2);
                    match service.execute(withdraw(amount), None).await {
                        Ok(_) => withdrawn += amount,
                        Err(error) => assert_eq!(error, WalletError::InsufficientFunds),
                    }
                    if round % 3 == 0 {
                        service
                            .execute(deposit(dec("1")), None)
                            .await
                            .expect("deposit");
                        deposited += dec("1");
                    }
                }
                (executed, withdrawn, deposited)
            })
        })
        .collect();
    let mut totals = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for worker in workers {
        let (executed, withdrawn, deposited) = worker.await.expect("worker");
        totals = (
            totals.0 + executed,
            totals.1 + withdrawn,
            totals.2 + deposited,
        );
    }
    let (executed, withdrawn, deposited) = totals;
    let (balance, held) = usd_balance(&harness);
    assert_eq!(balance, dec("1000") + deposited - withdrawn - executed);
    assert_eq!(held, Decimal::ZERO);
    assert!(withdrawn > Decimal::ZERO && executed > Decimal::ZERO);
    harness.check(USER).expect("invariants");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_spends_take_exactly_the_points_there_are() {
    let harness = setup("1", 500).await;
    let spend = |points| Command::SpendPoints {
        user_id: USER,
        points,
        source: "shop".into(),
        description: None,
    };
    let commands = (0..40).map(|_| (spend(17), None)).collect();
    let results = all_at_once(&harness.service, commands).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        29,
        "500 / 17 = 29"
    );
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| *e == WalletError::InsufficientPoints));
    let account = harness.store.stored_point_account(USER).expect("account");
    assert_eq!(account.account.available_points(), 500 - 29 * 17);
    harness.check(USER).expect("invariants");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sent_by_many_tasks_takes_effect_exactly_once() {
    let harness = setup("10", 500).await;
    let commands = (0..24)
        .map(|_| (deposit(dec("5")), Some("retry-1")))
        .collect();
    let results = all_at_once(&harness.service, commands).await;
    let applied: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("a replay or the first result"))
        .collect();
    assert_eq!(applied.iter().filter(|a| !a.replayed).count(), 1);
    assert!(applied.iter().all(|a| a.output == applied[0].output));
    assert_eq!(usd_balance(&harness).0, dec("15.00"));
    harness.check(USER).expect("invariants");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_with_different_parameters_at_once_lets_one_win() {
    let harness = setup("10", 500).await;
    let commands = (1..=20)
        .map(|i| (deposit(Decimal::from(i)), Some("retry-2")))
        .collect();
    let results = all_at_once(&harness.service, commands).await;
    let winners: Vec<Decimal> = (1..=20)
        .zip(&results)
        .filter(|(_, r)| matches!(r, Ok(a) if !a.replayed))
        .map(|(i, _)| Decimal::from(i))
        .collect();
    assert_eq!(winners.len(), 1);
    for result in &results {
        match result {
            Ok(applied) => assert!(!applied.replayed, "only the winner's own parameters replay"),
            Err(error) => assert_eq!(*error, WalletError::IdempotencyKeyReused),
        }
    }
    assert_eq!(usd_balance(&harness).0, dec("10") + winners[0]);
    let again = harness
        .service
        .execute(deposit(winners[0]), Some(key("retry-2")))
        .await
        .expect("replay");
    assert!(again.replayed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn point_spends_with_one_key_take_effect_once() {
    let harness = setup("1", 500).await;
    let spend = Command::SpendPoints {
        user_id: USER,
        points: 100,
        source: "shop".into(),
        description: None,
    };
    let commands = (0..16).map(|_| (spend.clone(), Some("spend-1"))).collect();
    let results = all_at_once(&harness.service, commands).await;
    let fresh = results
        .iter()
        .filter(|r| matches!(r, Ok(a) if !a.replayed))
        .count();
    assert_eq!(fresh, 1);
    assert!(results.iter().all(|r| r.is_ok()));
    let account = harness.store.stored_point_account(USER).expect("account");
    assert_eq!(account.account.available_points(), 400);
}

/// The peers of the transfer tests: one user id below [`USER`] and two
/// above, so that units of work list their wallets in both orders.
const PEERS: [Uuid; 3] = [
    Uuid::from_u128(0x0001),
    Uuid::from_u128(0xd0d0),
    Uuid::from_u128(0xe0e0),
];

fn transfer(from: Uuid, to: Uuid, amount: &str) -> Command {
    Command::Transfer {
        user_id: from,
        to_user_id: to,
        amount: dec(amount),
        currency: code("USD"),
        description: None,
        reference: None,
    }
}

/// [`USER`] with `funds` USD and each of [`PEERS`] with `funds` too.
async fn setup_peers(funds: &str) -> Harness {
    let harness = setup(funds, 5).await;
    for peer in PEERS {
        let create = Command::CreateWallet {
            user_id: peer,
            default_currency: None,
        };
        harness.service.execute(create, None).await.expect("peer");
        let fund = Command::Deposit {
            user_id: peer,
            amount: dec(funds),
            currency: code("USD"),
            description: None,
            reference: None,
        };
        harness.service.execute(fund, None).await.expect("funds");
    }
    harness
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_on_a_transfer_from_sixteen_tasks_takes_effect_once() {
    let harness = setup_peers("100").await;
    let commands = (0..16)
        .map(|_| (transfer(USER, PEERS[0], "7"), Some("pay-once")))
        .collect();
    let results = all_at_once(&harness.service, commands).await;
    let first: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|applied| !applied.replayed)
        .collect();
    assert_eq!(first.len(), 1, "{results:?}");
    for result in &results {
        match result {
            Ok(applied) => assert_eq!(applied.output, first[0].output),
            Err(error) => assert_eq!(*error, WalletError::IdempotencyKeyInFlight),
        }
    }
    assert_eq!(usd_balance(&harness).0, dec("93"));
    let payee = harness.store.stored_wallet(PEERS[0]).expect("payee");
    assert_eq!(payee.wallet.items()[&code("USD")].balance, dec("107"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfers_both_ways_among_four_wallets_conserve_money() {
    let harness = setup_peers("50").await;
    let users = [PEERS[0], USER, PEERS[1], PEERS[2]];
    let commands = (0..64)
        .map(|i| {
            let from = users[i % 4];
            let to = users[(i + 1 + i / 4) % 4];
            let amount = ["9", "13.5", "20"][i % 3];
            if from == to {
                (withdraw(dec("1")), None)
            } else {
                (transfer(from, to, amount), None)
            }
        })
        .collect();
    let results = all_at_once(&harness.service, commands).await;
    for result in &results {
        if let Err(error) = result {
            assert_eq!(*error, WalletError::InsufficientFunds, "{results:?}");
        }
    }
    let withdrawn: Decimal = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|applied| match &applied.output {
            CommandOutput::Transaction { transaction, .. } => Some(-transaction.amount),
            _ => None,
        })
        .sum();
    let stored: Vec<_> = users
        .iter()
        .map(|user| harness.store.stored_wallet(*user).expect("wallet"))
        .collect();
    let total: Decimal = stored
        .iter()
        .map(|s| s.wallet.items()[&code("USD")].balance)
        .sum();
    assert_eq!(total + withdrawn, dec("200"));
    for wallet in &stored {
        wallet_core::testing::invariants::check_wallet_aggregate(
            &wallet.wallet,
            &wallet.holds,
            &wallet.transactions,
        )
        .unwrap_or_else(|violation| panic!("{violation}"));
    }
    let views: Vec<_> = stored.iter().map(|s| s.wallet.view()).collect();
    wallet_core::testing::invariants::check_ledger_conserved(
        views
            .iter()
            .zip(&stored)
            .map(|(view, s)| (view, s.transactions.as_slice())),
    )
    .unwrap_or_else(|violation| panic!("{violation}"));
}
