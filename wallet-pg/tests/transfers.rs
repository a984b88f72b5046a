//! Real concurrency of units of work over several wallets on PostgreSQL:
//! many tasks moving money among a few wallets in both directions at once,
//! mixed with withdrawals, holds and payouts, and one key on a transfer
//! from many tasks at once. Each test runs on the store with one
//! transaction per command and with the batching writer on; the batched
//! run uses two stores on one database, as two processes would, so that
//! each one's kept wallets are changed behind its back.

use std::collections::HashMap;

use futures::future::join_all;
use rust_decimal::Decimal;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;
use wallet_core::testing::contract::{code, create_wallet, dec, deposit, hold, withdraw};
use wallet_core::testing::invariants;
use wallet_core::{
    Applied, Command, CommandOutput, IdempotencyKey, Payee, TransactionType, WalletError,
    WalletService,
};
use wallet_pg::testing::ScratchDatabase;
use wallet_pg::PgStore;

#[macro_use]
mod common;
use common::{all_holds, all_transactions, services, Path};

/// Wallets the money moves among.
const WALLETS: usize = 4;
/// Tasks running at once.
const TASKS: usize = 40;
/// Commands (or hold, payout and release sequences) each task runs.
const ROUNDS: usize = 4;
/// What each wallet starts with: little enough that some commands must be
/// refused for want of money.
const OPENING: i64 = 300;

on_both_paths!(
    transfers_and_payouts_among_four_wallets_conserve_money_without_deadlocks,
    one_key_on_a_transfer_from_sixteen_tasks_takes_effect_once,
);

fn transfer(from: Uuid, to: Uuid, amount: i64) -> Command {
    Command::Transfer {
        user_id: from,
        to_user_id: to,
        amount: Decimal::from(amount),
        currency: code("USD"),
        description: None,
        reference: None,
    }
}

/// What the successful commands of one task did, per wallet index: the
/// serial effect the end state must equal.
#[derive(Debug, Default, Clone)]
struct Effect {
    /// The change of each wallet's balance.
    delta: [i64; WALLETS],
    /// Rows added to each wallet's log.
    rows: [usize; WALLETS],
    /// Successful commands that changed each wallet (each bumps its
    /// version once).
    touches: [usize; WALLETS],
    /// Money that left the ledger.
    withdrawn: i64,
}

impl Effect {
    fn moved(&mut self, from: usize, to: &[(usize, i64)]) {
        for &(index, amount) in to {
            self.delta[from] -= amount;
            self.delta[index] += amount;
            self.rows[index] += 1;
            self.touches[index] += 1;
        }
        self.rows[from] += 1;
        self.touches[from] += 1;
    }

    fn add(&mut self, other: &Effect) {
        for index in 0..WALLETS {
            self.delta[index] += other.delta[index];
            self.rows[index] += other.rows[index];
            self.touches[index] += other.touches[index];
        }
        self.withdrawn += other.withdrawn;
    }
}

/// An answer that may only be a success or a refusal for want of money:
/// a deadlock, a conflict past the retries or anything else fails the test.
fn succeeded(result: Result<Applied, WalletError>, what: &str) -> Option<Applied> {
    match result {
        Ok(applied) => Some(applied),
        Err(WalletError::InsufficientFunds) => None,
        Err(error) => panic!("{what}: {error:?}"),
    }
}

/// A hold on `payer`, paid out to two other wallets, the rest released.
async fn payout(
    service: &WalletService<PgStore>,
    users: &[Uuid],
    payer: usize,
    effect: &mut Effect,
) {
    let held = service
        .execute(hold(users[payer], "50", "USD", None), None)
        .await;
    let Some(Applied {
        output: CommandOutput::Hold { hold },
        ..
    }) = succeeded(held, "a hold")
    else {
        return;
    };
    effect.rows[payer] += 1;
    effect.touches[payer] += 1;
    let shares = [((payer + 1) % WALLETS, 20), ((payer + 2) % WALLETS, 10)];
    let payees = shares
        .iter()
        .map(|&(index, amount)| Payee {
            user_id: users[index],
            amount: Decimal::from(amount),
        })
        .collect();
    let execute = Command::ExecuteHold {
        user_id: users[payer],
        hold_id: hold.id,
        amount: None,
        reference: None,
        payees: Some(payees),
    };
    service
        .execute(execute, None)
        .await
        .expect("paying out one's own active hold");
    effect.moved(payer, &shares);
    let release = Command::ReleaseHold {
        user_id: users[payer],
        hold_id: hold.id,
        amount: None,
    };
    service
        .execute(release, None)
        .await
        .expect("releasing the rest of one's own hold");
    effect.rows[payer] += 1;
    effect.touches[payer] += 1;
}

/// One task: transfers both ways between varying pairs, withdrawals and
/// payouts, on wallets chosen by the task and the round.
async fn one_task(service: WalletService<PgStore>, users: Vec<Uuid>, task: usize) -> Effect {
    let mut effect = Effect::default();
    for round in 0..ROUNDS {
        let a = (task + round) % WALLETS;
        // Neighbours for tasks 0 and 2 of every four, the wallet across
        // for tasks 1 and 3: every pair of wallets is used.
        let b = (a + 1 + task % 2) % WALLETS;
        match task % 4 {
            0 | 1 => {
                // Every other group of four tasks sends the other way, so
                // that at each round pairs of units lock the same two wallets
                // from both ends at once.
                let (from, to) = if (task / 4).is_multiple_of(2) {
                    (a, b)
                } else {
                    (b, a)
                };
                let amount = 40 + i64::try_from(task % 3).unwrap_or(0) * 5;
                // Each transfer carries a key of its own, as a client's
                // would: a retry inside the store must not apply it twice.
                let key = IdempotencyKey::parse(&format!("transfer-{task}-{round}")).ok();
                let result = service
                    .execute(transfer(users[from], users[to], amount), key)
                    .await;
                if succeeded(result, "a transfer").is_some() {
                    effect.moved(from, &[(to, amount)]);
                }
            }
            2 => {
                let result = service.execute(withdraw(users[a], "30", "USD"), None).await;
                if succeeded(result, "a withdrawal").is_some() {
                    effect.delta[a] -= 30;
                    effect.withdrawn += 30;
                    effect.rows[a] += 1;
                    effect.touches[a] += 1;
                }
            }
            _ => payout(&service, &users, a, &mut effect).await,
        }
    }
    effect
}

/// The deadlocks PostgreSQL has detected in the database. A backend counts
/// a deadlock in its pending statistics and reports them when idle or when
/// it exits, so callers read this after closing their stores.
async fn deadlocks(database: &ScratchDatabase) -> i64 {
    let mut conn = PgConnection::connect(&wallet_pg::testing::server_url())
        .await
        .expect("a connection to the server");
    sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = $1")
        .bind(&database.name)
        .fetch_one(&mut conn)
        .await
        .expect("the database's statistics")
}

async fn open_wallets(service: &WalletService<PgStore>) -> Vec<Uuid> {
    let mut users: Vec<Uuid> = (0..WALLETS).map(|_| Uuid::now_v7()).collect();
    // Call order differs from user id order for half the pairs: the store
    // must not lock in the order a command names its wallets.
    users.reverse();
    for user in &users {
        service
            .execute(create_wallet(*user), None)
            .await
            .expect("create");
        let opening = OPENING.to_string();
        service
            .execute(deposit(*user, &opening, "USD"), None)
            .await
            .expect("deposit");
    }
    users
}

async fn transfers_and_payouts_among_four_wallets_conserve_money_without_deadlocks(path: Path) {
    let (services, database) = services(path).await;
    let users = open_wallets(&services[0]).await;
    let before = deadlocks(&database).await;

    let tasks = (0..TASKS).map(|task| {
        let service = services[task % services.len()].clone();
        tokio::spawn(one_task(service, users.clone(), task))
    });
    let mut total = Effect::default();
    for joined in join_all(tasks).await {
        total.add(&joined.expect("a task finished"));
    }

    let service = &services[0];
    let mut sum = Decimal::ZERO;
    let mut legs: HashMap<Uuid, Decimal> = HashMap::new();
    for (index, user) in users.iter().enumerate() {
        let wallet = service.wallet(*user).await.expect("wallet");
        let log = all_transactions(service, *user).await;
        let holds = all_holds(service, *user).await;
        invariants::check_wallet(&wallet, &holds, &log)
            .unwrap_or_else(|violation| panic!("{violation}"));
        let usd = &wallet.balances[0];
        // The end state is the serial effect of exactly the successful
        // commands: no lost update, no leg without its other side.
        assert_eq!(
            usd.balance,
            Decimal::from(OPENING + total.delta[index]),
            "wallet {index}"
        );
        assert_eq!(usd.held, Decimal::ZERO, "wallet {index}");
        assert_eq!(log.len(), 1 + total.rows[index], "wallet {index}");
        assert_eq!(
            wallet.version as usize,
            2 + total.touches[index],
            "wallet {index}"
        );
        sum += usd.balance;
        for row in log.iter().filter(|row| row.transfer_id.is_some()) {
            assert!(matches!(
                row.transaction_type,
                TransactionType::TransferIn
                    | TransactionType::TransferOut
                    | TransactionType::HoldExecute
            ));
            *legs.entry(row.transfer_id.unwrap_or_default()).or_default() += row.amount;
        }
    }
    // Invariant 5 across the wallets: only withdrawals left the ledger,
    // and the legs of every transfer and payout add up to zero.
    let opened = i64::try_from(WALLETS).unwrap_or(0) * OPENING;
    assert_eq!(sum, Decimal::from(opened - total.withdrawn));
    assert!(!legs.is_empty(), "some transfers succeeded");
    for (transfer, net) in &legs {
        assert_eq!(*net, Decimal::ZERO, "the legs of {transfer} do not add up");
    }

    for service in &services {
        service.store().close().await;
    }
    // Every backend of the test has exited, so its statistics are in.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        deadlocks(&database).await,
        before,
        "PostgreSQL reported deadlocks"
    );
    wallet_pg::testing::drop_database(&database.name).await;
}

async fn one_key_on_a_transfer_from_sixteen_tasks_takes_effect_once(path: Path) {
    let (services, database) = services(path).await;
    let users = open_wallets(&services[0]).await;
    let key = IdempotencyKey::parse("pay-once").expect("a valid key");
    let tasks = (0..16).map(|task| {
        let service = services[task % services.len()].clone();
        let command = transfer(users[0], users[1], 25);
        let key = key.clone();
        tokio::spawn(async move { service.execute(command, Some(key)).await })
    });
    let results: Vec<Applied> = join_all(tasks)
        .await
        .into_iter()
        .map(|joined| {
            joined
                .expect("a task finished")
                .expect("every attempt succeeds or replays")
        })
        .collect();
    assert_eq!(results.iter().filter(|a| !a.replayed).count(), 1);
    assert!(results.iter().all(|a| a.output == results[0].output));
    let service = &services[0];
    let payer = service.wallet(users[0]).await.expect("payer");
    let payee = service.wallet(users[1]).await.expect("payee");
    assert_eq!(payer.balances[0].balance, Decimal::from(OPENING - 25));
    assert_eq!(payee.balances[0].balance, Decimal::from(OPENING + 25));
    assert_eq!(all_transactions(service, users[0]).await.len(), 2);
    assert_eq!(all_transactions(service, users[1]).await.len(), 2);
    // A replay afterwards answers the first result again.
    let again = service
        .execute(transfer(users[0], users[1], 25), Some(key))
        .await
        .expect("a replay");
    assert!(again.replayed);
    assert_eq!(again.output, results[0].output);
    assert_eq!(
        dec("275"),
        service.wallet(users[0]).await.expect("payer").balances[0].balance
    );
    for service in &services {
        service.store().close().await;
    }
    wallet_pg::testing::drop_database(&database.name).await;
}
