//! Real concurrency against PostgreSQL: many tasks on one wallet, one
//! idempotency key from many tasks, racing creators, and outbox readers
//! racing many writers. Each test runs twice: on the store with one
//! transaction per command, and with the batching writer on.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_core::testing::contract::{adjust, create_wallet, dec, deposit, hold, withdraw};
use wallet_core::testing::invariants;
use wallet_core::{
    Applied, Command, CommandOutput, IdempotencyKey, Policy, WalletError, WalletService,
};
use wallet_pg::PgStore;

#[macro_use]
mod common;
use common::{all_holds, all_transactions, Path};

const TASKS: usize = 40;

async fn service(path: Path) -> WalletService<PgStore> {
    let store = match path {
        Path::Unbatched => wallet_pg::testing::fresh_store().await,
        Path::Batched => wallet_pg::testing::fresh_batched_store().await,
    };
    WalletService::new(store, Policy::default())
}

on_both_paths!(
    many_tasks_on_one_wallet_never_overdraw_and_lose_nothing,
    one_key_from_sixteen_tasks_takes_effect_once,
    one_key_on_both_aggregates_at_once_takes_effect_once,
    racing_creates_make_one_wallet,
    outbox_readers_see_every_event_once_while_writers_commit,
);

fn key(text: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey::parse(text).expect("a valid key"))
}

/// What one task did, when it succeeded.
#[derive(Debug, Default, Clone, Copy)]
struct Effect {
    withdrawn: i64,
    executed: i64,
    points_spent: i64,
}

async fn one_task(service: WalletService<PgStore>, user: Uuid, task: usize) -> Effect {
    let mut effect = Effect::default();
    match task % 4 {
        0 => {
            if service
                .execute(withdraw(user, "50", "USD"), None)
                .await
                .is_ok()
            {
                effect.withdrawn += 50;
            }
        }
        1 => {
            if let Ok(Applied {
                output: CommandOutput::Hold { hold },
                ..
            }) = service.execute(hold(user, "30", "USD", None), None).await
            {
                let executed = service
                    .execute(
                        Command::ExecuteHold {
                            user_id: user,
                            hold_id: hold.id,
                            amount: Some(dec("20")),
                            reference: None,
                            payees: None,
                        },
                        None,
                    )
                    .await
                    .expect("executing part of one's own hold");
                assert!(matches!(executed.output, CommandOutput::Hold { .. }));
                effect.executed += 20;
                service
                    .execute(
                        Command::ReleaseHold {
                            user_id: user,
                            hold_id: hold.id,
                            amount: None,
                        },
                        None,
                    )
                    .await
                    .expect("releasing the rest of one's own hold");
            }
        }
        2 => {
            let spent = service
                .execute(
                    Command::SpendPoints {
                        user_id: user,
                        points: 20,
                        source: "checkout".into(),
                        description: None,
                    },
                    None,
                )
                .await;
            match spent {
                Ok(_) => effect.points_spent += 20,
                Err(error) => assert_eq!(error, WalletError::InsufficientPoints),
            }
        }
        _ => {
            let result = service.execute(withdraw(user, "70", "USD"), None).await;
            match result {
                Ok(_) => effect.withdrawn += 70,
                Err(error) => assert_eq!(error, WalletError::InsufficientFunds),
            }
        }
    }
    effect
}

async fn many_tasks_on_one_wallet_never_overdraw_and_lose_nothing(path: Path) {
    let service = service(path).await;
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    service
        .execute(deposit(user, "1000", "USD"), None)
        .await
        .expect("deposit");
    service
        .execute(Command::CreatePointAccount { user_id: user }, None)
        .await
        .expect("create points");
    service
        .execute(adjust(user, 150), None)
        .await
        .expect("points");

    let tasks = (0..TASKS).map(|task| tokio::spawn(one_task(service.clone(), user, task)));
    let effects: Vec<Effect> = join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("a task finished"))
        .collect();
    let withdrawn: i64 = effects.iter().map(|e| e.withdrawn).sum();
    let executed: i64 = effects.iter().map(|e| e.executed).sum();
    let spent: i64 = effects.iter().map(|e| e.points_spent).sum();

    // The demand (10 x 50 + 10 x 30 held + 10 x 70 = 1,500) exceeds the
    // 1,000 deposited, so some commands must have been refused.
    assert!(withdrawn + executed <= 1000);
    assert!(withdrawn + executed > 0);
    let wallet = service.wallet(user).await.expect("wallet");
    let usd = &wallet.balances[0];
    assert_eq!(usd.balance, Decimal::from(1000 - withdrawn - executed));
    assert_eq!(usd.held, Decimal::ZERO);
    // The points: 150 / 20 = 7 spends fit, whatever the interleaving.
    assert_eq!(spent, 140);
    let points = service.point_account(user).await.expect("points");
    assert_eq!(points.available_points, 10);

    // The stored log is the serial story of exactly the successful commands.
    let harness_log = all_transactions(&service, user).await;
    let holds = all_holds(&service, user).await;
    invariants::check_wallet(&wallet, &holds, &harness_log)
        .unwrap_or_else(|violation| panic!("{violation}"));
    let successes = effects
        .iter()
        .map(|e| match (e.withdrawn, e.executed) {
            (0, 0) => 0,
            (_, 0) => 1,
            _ => 3, // hold, execute, release
        })
        .sum::<usize>();
    assert_eq!(harness_log.len(), 1 + successes);
    assert_eq!(wallet.version as usize, 2 + successes);
}

async fn one_key_from_sixteen_tasks_takes_effect_once(path: Path) {
    let service = service(path).await;
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    let tasks = (0..16).map(|_| {
        let service = service.clone();
        tokio::spawn(async move {
            service
                .execute(deposit(user, "10", "USD"), key("pay-once"))
                .await
        })
    });
    let results: Vec<Result<Applied, WalletError>> = join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("a task finished"))
        .collect();
    let applied: Vec<&Applied> = results
        .iter()
        .map(|r| r.as_ref().expect("every attempt succeeds or replays"))
        .collect();
    assert_eq!(applied.iter().filter(|a| !a.replayed).count(), 1);
    let first = &applied[0].output;
    assert!(applied.iter().all(|a| &a.output == first));
    let wallet = service.wallet(user).await.expect("wallet");
    assert_eq!(wallet.balances[0].balance, dec("10"));
    assert_eq!(all_transactions(&service, user).await.len(), 1);
}

async fn one_key_on_both_aggregates_at_once_takes_effect_once(path: Path) {
    let service = service(path).await;
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    service
        .execute(Command::CreatePointAccount { user_id: user }, None)
        .await
        .expect("create points");
    // Half the tasks deposit, half earn points, all with one key: the two
    // aggregates have different row locks, so only the key's unique index
    // keeps them apart.
    let tasks = (0..16).map(|task| {
        let service = service.clone();
        tokio::spawn(async move {
            let command = if task % 2 == 0 {
                deposit(user, "10", "USD")
            } else {
                Command::EarnPoints {
                    user_id: user,
                    points: 10,
                    source: "shop".into(),
                    description: None,
                    expires_at: None,
                    pending: false,
                }
            };
            service.execute(command, key("shared")).await
        })
    });
    let results: Vec<Result<Applied, WalletError>> = join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("a task finished"))
        .collect();
    let effects = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Ok(Applied {
                    replayed: false,
                    ..
                })
            )
        })
        .count();
    assert_eq!(effects, 1, "{results:?}");
    for result in &results {
        match result {
            Ok(_) | Err(WalletError::IdempotencyKeyReused) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let wallet = service.wallet(user).await.expect("wallet");
    let points = service.point_account(user).await.expect("points");
    let deposited = wallet
        .balances
        .first()
        .map(|b| b.balance)
        .unwrap_or_default();
    assert_eq!(
        (deposited == dec("10")) as i32 + (points.available_points == 10) as i32,
        1,
        "exactly one of the two commands took effect"
    );
}

async fn racing_creates_make_one_wallet(path: Path) {
    let service = service(path).await;
    let user = Uuid::now_v7();
    let tasks = (0..16).map(|_| {
        let service = service.clone();
        tokio::spawn(async move { service.execute(create_wallet(user), None).await })
    });
    let results: Vec<Result<Applied, WalletError>> = join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("a task finished"))
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for result in &results {
        if let Err(error) = result {
            assert_eq!(*error, WalletError::WalletExists);
        }
    }

    // With one key, every racer gets the one wallet.
    let keyed = Uuid::now_v7();
    let tasks = (0..16).map(|_| {
        let service = service.clone();
        tokio::spawn(async move {
            service
                .execute(create_wallet(keyed), key("create-once"))
                .await
        })
    });
    let results: Vec<Applied> = join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("a task finished").expect("create or replay"))
        .collect();
    assert_eq!(results.iter().filter(|a| !a.replayed).count(), 1);
    assert!(results.iter().all(|a| a.output == results[0].output));
}

async fn outbox_readers_see_every_event_once_while_writers_commit(path: Path) {
    const WRITERS: usize = 8;
    const COMMANDS_PER_WRITER: usize = 40;
    let service = service(path).await;
    let users: Vec<Uuid> = (0..WRITERS).map(|_| Uuid::now_v7()).collect();
    for user in &users {
        service
            .execute(create_wallet(*user), None)
            .await
            .expect("create");
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let reader = |service: WalletService<PgStore>, done: Arc<std::sync::atomic::AtomicBool>| async move {
        let mut seen = Vec::new();
        let mut after = None;
        let mut quiet_after_done = 0;
        loop {
            let writers_done = done.load(std::sync::atomic::Ordering::SeqCst);
            let (batch, next) = service.events(after, Some(7)).await.expect("events");
            for event in &batch {
                if let Some(last) = seen.last() {
                    let last: &wallet_core::StoredEvent = last;
                    assert!(event.sequence > last.sequence, "out of order");
                }
                seen.push(event.clone());
            }
            if batch.is_empty() && writers_done {
                quiet_after_done += 1;
                if quiet_after_done > 1 {
                    return seen;
                }
            }
            after = Some(next);
        }
    };
    let readers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(reader(service.clone(), Arc::clone(&done))))
        .collect();
    let writers = users.iter().map(|user| {
        let service = service.clone();
        let user = *user;
        tokio::spawn(async move {
            for _ in 0..COMMANDS_PER_WRITER {
                service
                    .execute(deposit(user, "1", "VND"), None)
                    .await
                    .expect("deposit");
            }
        })
    });
    for writer in join_all(writers).await {
        writer.expect("a writer finished");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let expected = WRITERS * (1 + COMMANDS_PER_WRITER);
    for reader in join_all(readers).await {
        let seen = reader.expect("a reader finished");
        let ids: HashSet<Uuid> = seen.iter().map(|e| e.event.id).collect();
        assert_eq!(ids.len(), seen.len(), "an event was seen twice");
        assert_eq!(seen.len(), expected, "an event was missed");
        invariants::check_events(&seen).unwrap_or_else(|violation| panic!("{violation}"));
    }
}
