//! The batching writer: batches form under load and keep the semantics of
//! one transaction per command (each command its own result, a failing
//! command failing alone, keys replayed within a batch), a batch that
//! waited for another process's writer builds on what it committed, a full
//! queue pushes back, and a store that cannot write answers `unavailable`.
//!
//! Tests that need a batch of a known make-up run on a current-thread
//! runtime: commands submitted at once (`join_all`) are all queued before
//! the writer task gets to run, so they form one batch, in submission
//! order. Where a test compares with the in-memory store, both sides run
//! on a manual clock and sequential ids, and the in-memory side applies the
//! same commands one after another in that order.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;
use wallet_core::command::apply_to_wallet;
use wallet_core::store::WalletMutation;
use wallet_core::testing::contract::{
    create_wallet, dec, deposit, earn, execute, hold, hold_of, wallet_of, withdraw, Harness,
};
use wallet_core::{
    AggregateStore, Applied, Claim, Command, CommandOutput, Ctx, HoldStatus, IdempotencyKey,
    InMemoryStore, Policy, Store, Update, UuidV7Generator, Wallet, WalletError, WalletService,
};
use wallet_pg::testing::{batched_test_config, fresh_store_with, ScratchDatabase};
use wallet_pg::{BatchConfig, PgStore};

/// A batching store with `writers` writers and otherwise `tune`d settings.
async fn batched_store(tune: impl FnOnce(&mut BatchConfig)) -> (PgStore, ScratchDatabase) {
    let mut config = batched_test_config("");
    let mut batching = BatchConfig {
        writers: 1,
        ..BatchConfig::default()
    };
    tune(&mut batching);
    config.batching = Some(batching);
    fresh_store_with(config).await
}

fn key(text: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey::parse(text).expect("a valid key"))
}

/// The same commands, one after another in memory and all at once on the
/// batching store; returns both sides' results.
async fn side_by_side(
    memory: &Harness<InMemoryStore>,
    batched: &Harness<PgStore>,
    commands: &[(Command, Option<IdempotencyKey>)],
) -> (
    Vec<Result<Applied, WalletError>>,
    Vec<Result<Applied, WalletError>>,
) {
    let mut left = Vec::with_capacity(commands.len());
    for (command, key) in commands {
        left.push(memory.service.execute(command.clone(), key.clone()).await);
    }
    let right = join_all(
        commands
            .iter()
            .map(|(command, key)| batched.service.execute(command.clone(), key.clone())),
    )
    .await;
    (left, right)
}

async fn both_sides() -> (Harness<InMemoryStore>, Harness<PgStore>) {
    let (store, _) = batched_store(|_| {}).await;
    (Harness::new(InMemoryStore::new()), Harness::new(store))
}

/// Runs commands that must succeed, one after another.
async fn prepare<S: Store>(harness: &Harness<S>, commands: Vec<Command>) {
    for command in commands {
        harness.ok(command).await;
    }
}

fn stats(harness: &Harness<PgStore>) -> wallet_pg::BatchStats {
    harness
        .service
        .store()
        .batch_stats()
        .expect("batching is on")
}

#[tokio::test]
async fn commands_submitted_together_form_one_batch_with_a_result_each() {
    let (memory, batched) = both_sides().await;
    let user = Uuid::from_u128(1);
    let setup = || vec![create_wallet(user), deposit(user, "100", "USD")];
    prepare(&memory, setup()).await;
    prepare(&batched, setup()).await;
    let before = stats(&batched);

    // 48 commands on one wallet: deposits of 1 and withdrawals of 40; the
    // withdrawals that no longer fit fail, each alone.
    let commands: Vec<(Command, Option<IdempotencyKey>)> = (0..48)
        .map(|i| {
            let command = if i % 3 == 2 {
                withdraw(user, "40", "USD")
            } else {
                deposit(user, "1", "USD")
            };
            (command, None)
        })
        .collect();
    let (left, right) = side_by_side(&memory, &batched, &commands).await;
    assert_eq!(left, right, "the batch gave other results than one by one");
    let refused = right
        .iter()
        .filter(|r| matches!(r, Err(WalletError::InsufficientFunds)))
        .count();
    assert!(refused > 0 && refused < 16, "{refused} withdrawals refused");

    let after = stats(&batched);
    assert_eq!(after.commands - before.commands, 48);
    assert_eq!(
        after.batches - before.batches,
        1,
        "48 commands queued at once form one batch"
    );
    assert!(after.largest >= 48);
    assert_eq!((after.fallbacks, after.failures), (0, 0));
    // One version per successful command, each command's events at its own.
    assert_eq!(memory.snapshot(user).await, batched.snapshot(user).await);
    batched.check_wallet(user).await;
}

#[tokio::test]
async fn a_failing_command_in_a_batch_leaves_nothing_behind() {
    let (memory, batched) = both_sides().await;
    let user = Uuid::from_u128(2);
    let setup = |now: chrono::DateTime<chrono::Utc>| {
        vec![
            create_wallet(user),
            deposit(user, "100", "USD"),
            hold(user, "30", "USD", Some(now + chrono::Duration::hours(1))),
        ]
    };
    prepare(&memory, setup(memory.now())).await;
    prepare(&batched, setup(batched.now())).await;
    // The hold is overdue now: every command first expires it. A command
    // that then fails must not keep the expiry (the in-memory store, one
    // by one, does not).
    memory.advance(chrono::Duration::hours(2));
    batched.advance(chrono::Duration::hours(2));
    let (left, right) =
        side_by_side(&memory, &batched, &[(withdraw(user, "500", "USD"), None)]).await;
    assert_eq!(left, right);
    assert_eq!(right[0], Err(WalletError::InsufficientFunds));
    let holds = batched.all_holds(user).await;
    assert_eq!(
        holds[0].status,
        HoldStatus::Active,
        "the failed command kept nothing"
    );

    // In a batch with others: the failing one first, then one that succeeds
    // (and so expires the hold itself), then another failure.
    let (left, right) = side_by_side(
        &memory,
        &batched,
        &[
            (withdraw(user, "500", "USD"), None),
            (deposit(user, "5", "USD"), None),
            (withdraw(user, "1000", "USD"), None),
        ],
    )
    .await;
    assert_eq!(left, right);
    assert!(right[1].is_ok());
    assert_eq!(memory.snapshot(user).await, batched.snapshot(user).await);
    batched.check_wallet(user).await;
}

#[tokio::test]
async fn a_key_repeated_in_one_batch_replays_and_a_reused_key_is_refused() {
    let (memory, batched) = both_sides().await;
    let user = Uuid::from_u128(3);
    let setup = || {
        vec![
            create_wallet(user),
            Command::CreatePointAccount { user_id: user },
        ]
    };
    prepare(&memory, setup()).await;
    prepare(&batched, setup()).await;
    let before = stats(&batched);
    let mut commands: Vec<(Command, Option<IdempotencyKey>)> = (0..4)
        .map(|_| (deposit(user, "10", "USD"), key("pay")))
        .collect();
    commands.push((withdraw(user, "1", "USD"), key("pay")));
    commands.push((earn(user, 10, None, false), key("pay")));
    commands.push((earn(user, 10, None, false), key("points")));
    commands.push((earn(user, 10, None, false), key("points")));
    let (left, right) = side_by_side(&memory, &batched, &commands).await;
    assert_eq!(left, right);
    let first = right[0].as_ref().expect("the first deposit");
    assert!(!first.replayed);
    for repeat in &right[1..4] {
        let repeat = repeat.as_ref().expect("a replay");
        assert!(repeat.replayed);
        assert_eq!(repeat.output, first.output);
    }
    assert_eq!(right[4], Err(WalletError::IdempotencyKeyReused));
    assert_eq!(right[5], Err(WalletError::IdempotencyKeyReused));
    assert!(right[7].as_ref().is_ok_and(|applied| applied.replayed));

    let after = stats(&batched);
    assert_eq!(after.batches - before.batches, 1);
    assert_eq!(
        (after.fallbacks, after.failures),
        (0, 0),
        "the batch itself told the repeats apart"
    );
    assert_eq!(batched.wallet(user).await.balances[0].balance, dec("10"));
    assert_eq!(batched.points(user).await.available_points, 10);
    assert_eq!(memory.snapshot(user).await, batched.snapshot(user).await);
}

#[tokio::test]
async fn commands_on_many_wallets_share_a_batch_per_writer() {
    const WRITERS: usize = 2;
    const WALLETS: usize = 40;
    let (store, _) = batched_store(|batching| batching.writers = WRITERS).await;
    let service = WalletService::new(store, Policy::default());
    let users: Vec<Uuid> = (0..WALLETS).map(|_| Uuid::now_v7()).collect();
    for user in &users {
        service
            .execute(create_wallet(*user), None)
            .await
            .expect("create");
    }
    let before = service.store().batch_stats().expect("batching is on");
    let deposits = users
        .iter()
        .chain(&users)
        .map(|user| service.execute(deposit(*user, "2.50", "USD"), None));
    for result in join_all(deposits).await {
        result.expect("a deposit");
    }
    let after = service.store().batch_stats().expect("batching is on");
    assert_eq!(after.commands - before.commands, 2 * WALLETS as u64);
    assert!(
        after.batches - before.batches <= WRITERS as u64,
        "{WALLETS} wallets' commands queued at once form one batch per writer: {after:?}"
    );
    for user in &users {
        let wallet = service.wallet(*user).await.expect("wallet");
        assert_eq!(wallet.balances[0].balance, dec("5.00"));
        assert_eq!(wallet.version, 3);
    }
}

/// Waits until some connection to `database` waits for a lock.
async fn until_a_lock_is_awaited(admin: &mut PgConnection, database: &str) {
    for _ in 0..1500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(database)
        .fetch_one(&mut *admin)
        .await
        .expect("pg_locks");
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nobody waited for the wallet's lock");
}

/// A connection to `url` holding the user's wallet row lock until it
/// commits.
async fn hold_row_lock(url: &str, user: Uuid) -> PgConnection {
    let mut holder = PgConnection::connect(url).await.expect("a connection");
    sqlx::query("BEGIN")
        .execute(&mut holder)
        .await
        .expect("begin");
    sqlx::query("SELECT 1 FROM wallets WHERE user_id = $1 FOR UPDATE")
        .bind(user)
        .execute(&mut holder)
        .await
        .expect("lock");
    holder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_pushes_back_then_answers_unavailable() {
    let (store, database) = batched_store(|batching| {
        batching.max_batch = 1;
        batching.queue_depth = 1;
        batching.enqueue_timeout = Duration::from_millis(200);
    })
    .await;
    let service = WalletService::new(store, Policy::default());
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    // Another connection holds the wallet's row lock, so the writer's
    // batch waits for it.
    let mut holder = hold_row_lock(&database.url, user).await;
    let first = tokio::spawn({
        let service = service.clone();
        async move {
            service
                .execute(deposit(user, "1", "VND"), key("first"))
                .await
        }
    });
    let mut admin = PgConnection::connect(&wallet_pg::testing::server_url())
        .await
        .expect("an admin connection");
    until_a_lock_is_awaited(&mut admin, &database.name).await;

    // The writer is busy with the first command: the second takes the one
    // place in the queue, the third finds it full, waits, and gives up.
    let mut second = Box::pin(service.execute(deposit(user, "2", "VND"), key("second")));
    assert!(
        futures::poll!(second.as_mut()).is_pending(),
        "the second command waits in the queue"
    );
    let third = service
        .execute(deposit(user, "4", "VND"), key("third"))
        .await;
    assert!(
        matches!(third, Err(WalletError::Unavailable(_))),
        "a full queue pushes back: {third:?}"
    );

    sqlx::query("COMMIT")
        .execute(&mut holder)
        .await
        .expect("commit");
    first.await.expect("joined").expect("the first command");
    second.await.expect("the second command");
    let wallet = service.wallet(user).await.expect("wallet");
    assert_eq!(
        wallet.balances[0].balance,
        dec("3"),
        "the third was not applied"
    );
    // The second command was waiting when the first committed: its batch
    // ran in the transaction that commit began.
    let stats = service.store().batch_stats().expect("batching is on");
    assert!(stats.chained >= 1, "{stats:?}");
    // Refused for a full queue, the command can simply be sent again.
    service
        .execute(deposit(user, "4", "VND"), key("third"))
        .await
        .expect("the third, again");
}

#[tokio::test]
async fn a_closed_store_answers_unavailable_instead_of_waiting() {
    let (store, _) = batched_store(|_| {}).await;
    let service = WalletService::new(store, Policy::default());
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    service.store().close().await;
    let results = join_all((0..8).map(|_| service.execute(deposit(user, "1", "VND"), None))).await;
    for result in results {
        assert!(
            matches!(result, Err(WalletError::Unavailable(_))),
            "{result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_cut_before_its_commit_answers_every_command_unavailable_and_applies_none() {
    let (store, database) = batched_store(|_| {}).await;
    let store = Arc::new(store);
    let policy = Arc::new(Policy::default());
    let service = WalletService::with_parts(
        Arc::clone(&store),
        (*policy).clone(),
        Arc::new(wallet_core::SystemClock),
        Arc::new(UuidV7Generator::new()),
    );
    let (blocker, user) = (Uuid::now_v7(), Uuid::now_v7());
    for who in [blocker, user] {
        service
            .execute(create_wallet(who), None)
            .await
            .expect("create");
    }
    let (events_before, _) = service.events(None, Some(1000)).await.expect("events");

    // The writer first waits on a wallet whose row another connection
    // holds, so that the commands below queue up behind it and form the
    // next batch together.
    let mut holder = hold_row_lock(&database.url, blocker).await;
    let blocked = tokio::spawn({
        let service = service.clone();
        async move { service.execute(deposit(blocker, "1", "VND"), None).await }
    });
    let mut admin = PgConnection::connect(&wallet_pg::testing::server_url())
        .await
        .expect("an admin connection");
    until_a_lock_is_awaited(&mut admin, &database.name).await;

    // Four keyed deposits, then a command whose mutation tells us it runs
    // (the batch holds its locks by then) and waits until we have ended
    // the batch's connection.
    let mut deposits: Vec<_> = (0..4)
        .map(|i| Box::pin(service.execute(deposit(user, "10", "VND"), key(&format!("d{i}")))))
        .collect();
    for pending in &mut deposits {
        assert!(futures::poll!(pending.as_mut()).is_pending(), "queued");
    }
    let (running_tx, running_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let ids = Arc::new(UuidV7Generator::new());
    let last_command = deposit(user, "7", "VND");
    let mutation: WalletMutation = {
        let command = last_command.clone();
        let policy = Arc::clone(&policy);
        Arc::new(move |wallet: &mut Wallet| {
            let _ = running_tx.send(());
            tokio::task::block_in_place(|| {
                if let Ok(go) = go_rx.lock() {
                    let _ = go.recv_timeout(Duration::from_secs(30));
                }
            });
            let ctx = Ctx {
                now: wallet_core::context::truncate_to_micros(chrono::Utc::now()),
                ids: &*ids,
                policy: &policy,
                idempotency_key: None,
            };
            apply_to_wallet(wallet, &command, &ctx)
        })
    };
    let mut last = Box::pin(store.update(Update::of(user, mutation)));
    assert!(futures::poll!(last.as_mut()).is_pending(), "queued");

    sqlx::query("COMMIT")
        .execute(&mut holder)
        .await
        .expect("commit");
    blocked.await.expect("joined").expect("the blocked deposit");
    tokio::task::spawn_blocking(move || running_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .expect("joined")
        .expect("the batch ran the last command");
    // The batch's connection is the one holding row locks on `wallets` now.
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
         JOIN pg_database d ON d.oid = l.database \
         WHERE d.datname = $1 AND l.locktype = 'relation' AND l.mode = 'RowShareLock' \
         AND l.granted GROUP BY l.pid",
    )
    .bind(&database.name)
    .fetch_all(&mut admin)
    .await
    .expect("terminate");
    assert_eq!(
        ended,
        vec![true],
        "exactly the batch's connection was ended"
    );
    go_tx.send(()).expect("the mutation waits");

    let last = last.await;
    assert!(matches!(last, Err(WalletError::Unavailable(_))), "{last:?}");
    for result in join_all(deposits).await {
        assert!(
            matches!(result, Err(WalletError::Unavailable(_))),
            "every command of the cut batch is unavailable, got {result:?}"
        );
    }
    let wallet = service.wallet(user).await.expect("wallet");
    assert!(
        wallet.balances.is_empty(),
        "nothing of the batch was applied"
    );
    let (events_after, _) = service.events(None, Some(1000)).await.expect("events");
    assert_eq!(
        events_after.len(),
        events_before.len() + 1,
        "only the blocked deposit's event"
    );
    // Retried with their keys, the deposits take effect once each.
    for i in 0..4 {
        let retried = service
            .execute(deposit(user, "10", "VND"), key(&format!("d{i}")))
            .await
            .expect("the retry");
        assert!(!retried.replayed);
    }
    let wallet = service.wallet(user).await.expect("wallet");
    assert_eq!(wallet.balances[0].balance, dec("40"));
    let stats = store.batch_stats().expect("batching is on");
    assert!(stats.failures >= 1, "{stats:?}");
}

/// A unit of work that reports when it runs (its aggregate locked) and
/// then waits for `go` before applying `command`.
struct Blocker {
    running: mpsc::Receiver<()>,
    go: mpsc::Sender<()>,
}

/// A mutation of an aggregate `A`, as the store traits take it.
type Mutation<A> =
    Arc<dyn Fn(&mut A) -> Result<wallet_core::CommandOutput, WalletError> + Send + Sync>;
/// Applies a command to an aggregate `A` ([`apply_to_wallet`] and its twin).
type Apply<A> = fn(&mut A, &Command, &Ctx<'_>) -> Result<wallet_core::CommandOutput, WalletError>;

fn blocked<A: 'static>(command: Command, apply: Apply<A>) -> (Blocker, Mutation<A>) {
    let (running_tx, running) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let ids = Arc::new(UuidV7Generator::new());
    let policy = Arc::new(Policy::default());
    let mutation = Arc::new(move |aggregate: &mut A| {
        let _ = running_tx.send(());
        tokio::task::block_in_place(|| {
            if let Ok(go) = go_rx.lock() {
                let _ = go.recv_timeout(Duration::from_secs(30));
            }
        });
        let ctx = Ctx {
            now: wallet_core::context::truncate_to_micros(chrono::Utc::now()),
            ids: &*ids,
            policy: &policy,
            idempotency_key: None,
        };
        apply(aggregate, &command, &ctx)
    });
    (Blocker { running, go }, mutation)
}

async fn until_running(blocker: Blocker) -> mpsc::Sender<()> {
    let Blocker { running, go } = blocker;
    tokio::task::spawn_blocking(move || running.recv_timeout(Duration::from_secs(30)))
        .await
        .expect("joined")
        .expect("the unit of work runs");
    go
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_that_waited_for_another_writer_sees_what_it_committed() {
    let (batched, database) = batched_store(|_| {}).await;
    // Another process's store on the same database, one transaction per
    // command: its units of work hold the rows the batch then waits for.
    let other = PgStore::connect(&wallet_pg::testing::test_config(&database.url))
        .await
        .expect("a second store");
    let service = WalletService::new(batched, Policy::default());
    let user = Uuid::now_v7();
    for command in [
        create_wallet(user),
        deposit(user, "100", "USD"),
        Command::CreatePointAccount { user_id: user },
        earn(user, 100, None, false),
    ] {
        service.execute(command, None).await.expect("setup");
    }
    let mut admin = PgConnection::connect(&wallet_pg::testing::server_url())
        .await
        .expect("an admin connection");

    // The other store's deposit and earn hold the wallet and the account.
    let (wallet_blocker, wallet_mutation) = blocked(deposit(user, "10", "USD"), apply_to_wallet);
    let (points_blocker, points_mutation) = blocked(
        earn(user, 7, None, false),
        wallet_core::command::apply_to_point_account,
    );
    let other = Arc::new(other);
    let other_deposit = tokio::spawn({
        let other = Arc::clone(&other);
        async move { other.update(Update::of(user, wallet_mutation)).await }
    });
    let other_earn = tokio::spawn({
        let other = Arc::clone(&other);
        async move { other.update(Update::of(user, points_mutation)).await }
    });
    let wallet_go = until_running(wallet_blocker).await;
    let points_go = until_running(points_blocker).await;

    // A batch with a deposit and an earn waits for the wallet first...
    let batch = {
        let service = service.clone();
        tokio::spawn(async move {
            join_all([
                service.execute(deposit(user, "5", "USD"), None),
                service.execute(earn(user, 3, None, false), None),
            ])
            .await
        })
    };
    until_a_lock_is_awaited(&mut admin, &database.name).await;
    wallet_go.send(()).expect("the deposit waits");
    other_deposit
        .await
        .expect("joined")
        .expect("the other store's deposit");
    // ...then for the account.
    until_a_lock_is_awaited(&mut admin, &database.name).await;
    points_go.send(()).expect("the earn waits");
    other_earn
        .await
        .expect("joined")
        .expect("the other store's earn");

    for result in batch.await.expect("joined") {
        result.expect("the batch's commands");
    }
    // Nothing lost: the batch applied its commands on top of what the
    // other store committed while it waited.
    let wallet = service.wallet(user).await.expect("wallet");
    assert_eq!(wallet.balances[0].balance, dec("115"));
    assert_eq!(wallet.version, 4);
    let points = service.point_account(user).await.expect("points");
    assert_eq!(points.available_points, 110);
    assert_eq!(points.version, 4);
    assert_eq!(checked_history(&service, &wallet).await, 3);
}

/// Checks the wallet against its history (one page holds it in these
/// tests) by the invariants; returns how many transactions it has.
async fn checked_history(
    service: &WalletService<PgStore>,
    wallet: &wallet_core::WalletView,
) -> usize {
    let log = service
        .transactions(
            wallet.user_id,
            wallet_core::TransactionFilter::default(),
            wallet_core::PageRequest {
                limit: 100,
                cursor: None,
            },
        )
        .await
        .expect("history")
        .items;
    wallet_core::testing::invariants::check_wallet(wallet, &[], &log)
        .unwrap_or_else(|violation| panic!("{violation}"));
    log.len()
}

/// One command at a time on both sides; the results must agree.
async fn one_by_one(
    memory: &Harness<InMemoryStore>,
    batched: &Harness<PgStore>,
    command: Command,
) -> Result<CommandOutput, WalletError> {
    let left = memory.run(command.clone()).await;
    let right = batched.run(command).await;
    assert_eq!(left, right, "the batching store answered otherwise");
    right
}

#[tokio::test]
async fn a_wallet_its_writer_committed_is_kept_and_answers_as_a_fresh_load_would() {
    let (memory, batched) = both_sides().await;
    let user = Uuid::from_u128(0x4b);
    let setup = || vec![create_wallet(user), deposit(user, "100", "USD")];
    prepare(&memory, setup()).await;
    prepare(&batched, setup()).await;
    let before = stats(&batched);

    one_by_one(&memory, &batched, deposit(user, "5", "USD"))
        .await
        .expect("a deposit");
    let held = hold_of(
        one_by_one(&memory, &batched, hold(user, "30", "USD", None))
            .await
            .expect("a hold"),
    );
    // The kept copy has the hold, active.
    one_by_one(&memory, &batched, execute(user, held.id, Some("10")))
        .await
        .expect("a partial execute");
    one_by_one(&memory, &batched, execute(user, held.id, None))
        .await
        .expect("the rest");
    // Kept copies hold active holds only, as a fresh load does: this one
    // must be loaded, in its final status.
    assert_eq!(
        one_by_one(&memory, &batched, execute(user, held.id, None)).await,
        Err(WalletError::HoldNotActive)
    );
    // Refused on the kept copy, which the batch still proves newest.
    assert_eq!(
        one_by_one(&memory, &batched, withdraw(user, "500", "USD")).await,
        Err(WalletError::InsufficientFunds)
    );
    one_by_one(&memory, &batched, withdraw(user, "75", "USD"))
        .await
        .expect("a withdrawal of the rest");

    let after = stats(&batched);
    // Every command but the one naming an ended hold took the kept copy.
    assert_eq!(after.cached - before.cached, 6, "{after:?}");
    assert_eq!(after.stale - before.stale, 0, "{after:?}");
    assert_eq!(memory.snapshot(user).await, batched.snapshot(user).await);
    batched.check_wallet(user).await;
}

/// A batching store (one writer) and a second, unbatched store on the
/// same database: another process writing the same wallets.
async fn two_processes() -> (
    WalletService<PgStore>,
    WalletService<PgStore>,
    ScratchDatabase,
) {
    let (batched, database) = batched_store(|_| {}).await;
    let service = WalletService::new(batched, Policy::default());
    let other = WalletService::new(
        PgStore::connect(&wallet_pg::testing::test_config(&database.url))
            .await
            .expect("a second store"),
        Policy::default(),
    );
    (service, other, database)
}

#[tokio::test]
async fn a_kept_wallet_another_process_changed_is_noticed_and_the_batch_runs_again() {
    let (service, other, _database) = two_processes().await;
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("a wallet");
    service
        .execute(deposit(user, "100", "USD"), None)
        .await
        .expect("a deposit through the batch: the writer keeps the wallet");
    other
        .execute(deposit(user, "50", "USD"), None)
        .await
        .expect("a deposit by another process");
    let before = service.store().batch_stats().expect("batching is on");

    // On the kept copy (100) this withdrawal is refused; the wallet has
    // 150, and the answer must be the one the newest state gives.
    let result = service
        .execute(withdraw(user, "120", "USD"), None)
        .await
        .expect("the withdrawal, on the newest state");
    assert_eq!(wallet_of(&result.output).version, 4);

    let after = service.store().batch_stats().expect("batching is on");
    assert_eq!(after.stale - before.stale, 1, "{after:?}");
    assert_eq!(after.failures - before.failures, 0, "{after:?}");
    let wallet = service.wallet(user).await.expect("wallet");
    assert_eq!(wallet.balances[0].balance, dec("30"));
    assert_eq!(wallet.version, 4);

    // And a change the other process makes to a wallet the batch then
    // changes: the batch's deposit builds on it, nothing is overwritten.
    other
        .execute(withdraw(user, "10", "USD"), None)
        .await
        .expect("a withdrawal by another process");
    service
        .execute(deposit(user, "1", "USD"), None)
        .await
        .expect("a deposit on the newest state");
    let wallet = service.wallet(user).await.expect("wallet");
    assert_eq!(wallet.balances[0].balance, dec("21"));
    assert_eq!(wallet.version, 6);
    let after = service.store().batch_stats().expect("batching is on");
    assert_eq!(after.stale - before.stale, 2, "{after:?}");
    assert_eq!(after.fallbacks - before.fallbacks, 0, "{after:?}");
    assert_eq!(checked_history(&service, &wallet).await, 5);
}

#[tokio::test]
async fn with_no_wallets_kept_every_batch_locks_and_loads() {
    let (store, _database) = batched_store(|batching| batching.cached_wallets = 0).await;
    let batched = Harness::new(store);
    let user = batched.new_wallet(0x4c).await;
    for _ in 0..3 {
        batched.ok(deposit(user, "1", "USD")).await;
    }
    let after = stats(&batched);
    assert_eq!((after.cached, after.stale), (0, 0), "{after:?}");
    assert_eq!(batched.wallet(user).await.balances[0].balance, dec("3"));
}

#[tokio::test]
async fn kept_wallets_are_forgotten_when_the_writers_connect_again() {
    let (store, database) = batched_store(|_| {}).await;
    let batched = Harness::new(store);
    let user = batched.new_wallet(0x4d).await;
    batched.ok(deposit(user, "1", "USD")).await;
    let before = stats(&batched);
    batched.ok(deposit(user, "1", "USD")).await;
    let kept = stats(&batched);
    assert_eq!(kept.cached - before.cached, 1, "{kept:?}");

    // A server that went away may come back without commits the writer
    // saw: after a new connection, nothing kept is trusted.
    let ended = wallet_pg::testing::terminate_connections(&database.name).await;
    assert!(ended >= 1, "the store had connections to end");
    batched.ok(deposit(user, "1", "USD")).await;
    let reconnected = stats(&batched);
    assert_eq!(reconnected.cached - kept.cached, 0, "{reconnected:?}");
    batched.ok(deposit(user, "1", "USD")).await;
    let again = stats(&batched);
    assert_eq!(again.cached - reconnected.cached, 1, "{again:?}");
    assert_eq!(batched.wallet(user).await.balances[0].balance, dec("4"));
    batched.check_wallet(user).await;
}

/// The statements (round trips) a run of `commands` submitted at once
/// sent, by the writers' own count.
async fn statements_of(harness: &Harness<PgStore>, commands: Vec<Command>) -> u64 {
    let before = stats(harness);
    for result in join_all(
        commands
            .into_iter()
            .map(|command| harness.service.execute(command, None)),
    )
    .await
    {
        result.expect("a command");
    }
    stats(harness).statements - before.statements
}

#[tokio::test]
async fn a_batch_costs_the_round_trips_of_the_design_and_no_more() {
    let (store, _database) = batched_store(|_| {}).await;
    let batched = Harness::new(store);
    let user = batched.new_wallet(0x4e).await;
    // After a quiet spell, on a wallet the writer does not keep yet:
    // BEGIN, lock and load, write, COMMIT.
    assert_eq!(
        statements_of(&batched, vec![deposit(user, "1", "USD")]).await,
        4
    );
    // Kept now: BEGIN, write (whose version check takes the lock), COMMIT.
    assert_eq!(
        statements_of(&batched, vec![deposit(user, "1", "USD")]).await,
        3
    );
    // However many commands the batch holds.
    let many = (0..16).map(|_| deposit(user, "1", "USD")).collect();
    assert_eq!(statements_of(&batched, many).await, 3);
    // A key adds the statement that finds the records of the batch's keys.
    let before = stats(&batched);
    batched
        .service
        .execute(deposit(user, "1", "USD"), key("round-trips"))
        .await
        .expect("a keyed deposit");
    assert_eq!(stats(&batched).statements - before.statements, 4);
    // A wallet and a point account: both locked, one write, one commit.
    batched
        .ok(Command::CreatePointAccount { user_id: user })
        .await;
    let both = vec![deposit(user, "1", "USD"), earn(user, 5, None, false)];
    assert_eq!(statements_of(&batched, both).await, 5);
    let stats = stats(&batched);
    assert_eq!((stats.fallbacks, stats.failures, stats.stale), (0, 0, 0));
    assert_eq!(stats.size_counts.iter().sum::<u64>(), stats.batches);
    assert!(stats.size_counts[4] >= 1, "the batch of 16: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_whose_key_another_process_stored_first_falls_back_to_the_unbatched_answer() {
    let (batched, database) = batched_store(|batching| batching.cached_wallets = 0).await;
    let other = PgStore::connect(&wallet_pg::testing::test_config(&database.url))
        .await
        .expect("a second store");
    let other = WalletService::new(other, Policy::default());
    let service = WalletService::new(batched.clone(), Policy::default());
    let user = Uuid::now_v7();
    for command in [
        create_wallet(user),
        deposit(user, "100", "USD"),
        Command::CreatePointAccount { user_id: user },
    ] {
        service.execute(command, None).await.expect("setup");
    }
    let before = batched.batch_stats().expect("batching is on");

    // The batch has locked the wallet and found no record for the key;
    // its deposit waits inside the mutation.
    let command = deposit(user, "5", "USD");
    let (blocker, mutation) = blocked(command.clone(), apply_to_wallet);
    let claim = Claim {
        user_id: user,
        key: IdempotencyKey::parse("taken").expect("a key"),
        fingerprint: command.fingerprint(),
    };
    let cut = tokio::spawn({
        let batched = batched.clone();
        async move {
            batched
                .update(Update {
                    claim: Some(claim),
                    ..Update::of(user, mutation)
                })
                .await
        }
    });
    let go = until_running(blocker).await;
    // Meanwhile another process earns points with the same key.
    other
        .execute(earn(user, 7, None, false), key("taken"))
        .await
        .expect("the other process's earn");
    go.send(()).expect("the deposit waits");

    // The batch's write meets the stored key and falls back: the deposit
    // runs again alone and answers as the unbatched store would.
    assert_eq!(
        cut.await.expect("joined"),
        Err(WalletError::IdempotencyKeyReused)
    );
    let after = batched.batch_stats().expect("batching is on");
    assert_eq!(after.fallbacks - before.fallbacks, 1, "{after:?}");
    assert_eq!(after.failures - before.failures, 0, "{after:?}");
    let wallet = service.wallet(user).await.expect("wallet");
    assert_eq!(wallet.balances[0].balance, dec("100"));
    assert_eq!(checked_history(&service, &wallet).await, 1);
    let points = service.point_account(user).await.expect("points");
    assert_eq!(points.available_points, 7);
}

#[tokio::test]
async fn a_batch_over_several_kept_wallets_locks_them_all_and_loads_only_what_changed() {
    use wallet_core::testing::contract::transfer;
    let (memory, batched) = both_sides().await;
    let (a, b, c) = (
        Uuid::from_u128(0x51),
        Uuid::from_u128(0x52),
        Uuid::from_u128(0x53),
    );
    let setup = || {
        vec![
            create_wallet(a),
            create_wallet(b),
            create_wallet(c),
            deposit(a, "100", "USD"),
            deposit(b, "100", "USD"),
            deposit(c, "100", "USD"),
        ]
    };
    prepare(&memory, setup()).await;
    prepare(&batched, setup()).await;
    let before = stats(&batched);

    // One batch over three kept wallets: all three locked (in user id
    // order, by the lock statement), none loaded, the answers those of
    // fresh loads.
    let together = vec![
        (deposit(a, "5", "USD"), None),
        (transfer(b, c, "30", "USD"), None),
        (withdraw(c, "120", "USD"), None),
    ];
    let (left, right) = side_by_side(&memory, &batched, &together).await;
    assert_eq!(left, right, "the batching store answered otherwise");
    let after = stats(&batched);
    assert_eq!(after.batches - before.batches, 1, "{after:?}");
    assert_eq!(after.known - before.known, 3, "{after:?}");
    assert_eq!(after.cached - before.cached, 0, "{after:?}");
    for user in [a, b, c] {
        assert_eq!(memory.snapshot(user).await, batched.snapshot(user).await);
        batched.check_wallet(user).await;
    }
}

#[tokio::test]
async fn a_kept_wallet_another_process_changed_is_loaded_by_a_batch_over_several() {
    use wallet_core::testing::contract::transfer;
    let (service, other, _database) = two_processes().await;
    let (payer, payee) = (Uuid::now_v7(), Uuid::now_v7());
    for command in [
        create_wallet(payer),
        create_wallet(payee),
        deposit(payer, "100", "USD"),
        deposit(payee, "1", "USD"),
    ] {
        service.execute(command, None).await.expect("setup");
    }
    // The writer keeps both wallets; another process then pays the payer.
    other
        .execute(deposit(payer, "50", "USD"), None)
        .await
        .expect("a deposit by another process");
    let before = service.store().batch_stats().expect("batching is on");

    // On the kept copy of the payer (100) this transfer is refused; the
    // payer has 150, and the answer must be the one the newest state gives.
    service
        .execute(transfer(payer, payee, "120", "USD"), None)
        .await
        .expect("the transfer, on the newest state");
    let after = service.store().batch_stats().expect("batching is on");
    // The payee's copy was current and used; the payer's was not: loaded
    // under its lock in the same statement, no batch run again.
    assert_eq!(after.known - before.known, 1, "{after:?}");
    assert_eq!(after.stale - before.stale, 0, "{after:?}");
    assert_eq!(after.fallbacks - before.fallbacks, 0, "{after:?}");
    let payer_wallet = service.wallet(payer).await.expect("payer");
    let payee_wallet = service.wallet(payee).await.expect("payee");
    assert_eq!(payer_wallet.balances[0].balance, dec("30"));
    assert_eq!(payee_wallet.balances[0].balance, dec("121"));
    assert_eq!((payer_wallet.version, payee_wallet.version), (4, 3));
    assert_eq!(checked_history(&service, &payer_wallet).await, 3);
    assert_eq!(checked_history(&service, &payee_wallet).await, 2);
}
