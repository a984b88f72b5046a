//! An embedder's tour of the core: a wallet and a point account in the
//! in-memory store, a transfer and a marketplace payout to other wallets,
//! on a clock the example moves by hand.
//!
//! `cargo run --example embedded`

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use wallet::core::{
    Command, CommandOutput, CurrencyCode, Decimal, IdempotencyKey, InMemoryStore, ManualClock,
    Payee, Policy, SequentialIdGenerator, Uuid, WalletError, WalletService,
};

fn code(text: &str) -> Result<CurrencyCode, WalletError> {
    CurrencyCode::parse(text)
}

fn amount(text: &str) -> Result<Decimal, WalletError> {
    Decimal::from_str_exact(text).map_err(|e| WalletError::Validation(e.to_string()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), WalletError> {
    let start = Utc
        .with_ymd_and_hms(2030, 1, 1, 9, 0, 0)
        .single()
        .ok_or_else(|| WalletError::Validation("start time".into()))?;
    let clock = Arc::new(ManualClock::new(start));
    let service = WalletService::with_parts(
        Arc::new(InMemoryStore::new()),
        Policy::default(),
        clock.clone(),
        Arc::new(SequentialIdGenerator::new()),
    );
    let user_id = Uuid::from_u128(0x5eed);
    let (usd, vnd) = (code("usd")?, code("VND")?);

    // A wallet, and money in it (retried safely with an idempotency key).
    let create = Command::CreateWallet {
        user_id,
        default_currency: Some(usd),
    };
    service.execute(create, None).await?;
    let deposit = Command::Deposit {
        user_id,
        amount: amount("250")?,
        currency: usd,
        description: Some("top-up".into()),
        reference: Some("bank-transfer-17".into()),
    };
    let key = IdempotencyKey::parse("top-up-17")?;
    service.execute(deposit.clone(), Some(key.clone())).await?;
    let retry = service.execute(deposit, Some(key)).await?;
    println!("retried the top-up: replayed = {}", retry.replayed);

    // Exchange 40 USD into VND (rounded down, exactly).
    let exchange = Command::Exchange {
        user_id,
        amount: amount("40")?,
        from_currency: usd,
        to_currency: vnd,
    };
    if let CommandOutput::Exchange { exchange, .. } = service.execute(exchange, None).await?.output
    {
        println!(
            "exchanged {} USD into {} VND at {}",
            exchange.from_amount, exchange.to_amount, exchange.rate
        );
    }

    // Hold 100 USD for an order, pay out 60, release the rest.
    let hold = Command::CreateHold {
        user_id,
        amount: amount("100")?,
        currency: usd,
        reference_type: "order".into(),
        reference_id: Uuid::from_u128(1001),
        description: Some("order 1001".into()),
        expires_at: None,
    };
    let CommandOutput::Hold { hold } = service.execute(hold, None).await?.output else {
        return Err(WalletError::Internal(
            "a hold command returns a hold".into(),
        ));
    };
    let execute = Command::ExecuteHold {
        user_id,
        hold_id: hold.id,
        amount: Some(amount("60")?),
        reference: Some("shipment-1001".into()),
        payees: None,
    };
    service.execute(execute, None).await?;
    let release = Command::ReleaseHold {
        user_id,
        hold_id: hold.id,
        amount: None,
    };
    let CommandOutput::Hold { hold } = service.execute(release, None).await?.output else {
        return Err(WalletError::Internal("a release returns a hold".into()));
    };
    println!(
        "hold {}: executed {}, released {}, {}",
        hold.id, hold.executed_amount, hold.released_amount, hold.status
    );

    // A transfer to a friend, and a marketplace payout: a hold of 30 USD
    // paid to a seller (27) and the platform's fee wallet (3) in one step.
    let (seller, platform) = (Uuid::from_u128(0x5e11), Uuid::from_u128(0xfee));
    for other in [seller, platform] {
        let create = Command::CreateWallet {
            user_id: other,
            default_currency: Some(usd),
        };
        service.execute(create, None).await?;
    }
    let transfer = Command::Transfer {
        user_id,
        to_user_id: seller,
        amount: amount("5")?,
        currency: usd,
        description: Some("thanks".into()),
        reference: None,
    };
    if let CommandOutput::Transfer { transfer_id, .. } =
        service.execute(transfer, None).await?.output
    {
        println!("sent 5 USD to the seller in transfer {transfer_id}");
    }
    let order = Command::CreateHold {
        user_id,
        amount: amount("30")?,
        currency: usd,
        reference_type: "order".into(),
        reference_id: Uuid::from_u128(1002),
        description: Some("order 1002".into()),
        expires_at: None,
    };
    let CommandOutput::Hold { hold: order } = service.execute(order, None).await?.output else {
        return Err(WalletError::Internal(
            "a hold command returns a hold".into(),
        ));
    };
    let payees = vec![
        Payee {
            user_id: seller,
            amount: amount("27")?,
        },
        Payee {
            user_id: platform,
            amount: amount("3")?,
        },
    ];
    let payout = Command::ExecuteHold {
        user_id,
        hold_id: order.id,
        amount: None,
        reference: Some("delivered-1002".into()),
        payees: Some(payees),
    };
    service.execute(payout, None).await?;
    let seller_wallet = service.wallet(seller).await?;
    println!(
        "the seller has {} USD",
        seller_wallet
            .balances
            .first()
            .map_or(Decimal::ZERO, |b| b.balance)
    );

    // Loyalty points: one lot pending until the order is delivered, one
    // that expires in 30 days.
    service
        .execute(Command::CreatePointAccount { user_id }, None)
        .await?;
    let earn = |points, pending, expires_at| Command::EarnPoints {
        user_id,
        points,
        source: "order 1001".into(),
        description: None,
        expires_at,
        pending,
    };
    let pending = service.execute(earn(120, true, None), None).await?;
    let in_30_days = Some(service.now() + Duration::days(30));
    service.execute(earn(80, false, in_30_days), None).await?;
    if let CommandOutput::Points {
        lot_id: Some(lot_id),
        ..
    } = pending.output
    {
        service
            .execute(Command::ConfirmPendingPoints { user_id, lot_id }, None)
            .await?;
    }
    // Spending takes the expiring lot first.
    let spend = Command::SpendPoints {
        user_id,
        points: 50,
        source: "checkout".into(),
        description: None,
    };
    service.execute(spend, None).await?;

    // Two months later the rest of the expiring lot is gone; a sweep writes
    // it down without waiting for the next command.
    clock.advance(Duration::days(60));
    let report = service.sweep_expired(100).await?;
    println!(
        "sweep: {} wallets, {} point accounts",
        report.wallets, report.point_accounts
    );

    let wallet = service.wallet(user_id).await?;
    println!("\nwallet {} ({}):", wallet.id, wallet.status);
    for item in &wallet.balances {
        println!(
            "  {:<6} balance {:>12}  held {:>8}  available {:>12}",
            item.currency.to_string(),
            item.balance,
            item.held,
            item.available()
        );
    }
    let points = service.point_account(user_id).await?;
    println!(
        "points: available {}, pending {}, lifetime earned {}",
        points.available_points, points.pending_points, points.lifetime_earned
    );

    println!("\noutbox:");
    let (events, _next) = service.events(None, Some(100)).await?;
    for stored in events {
        println!(
            "  {:>2} {:<24} version {}",
            stored.sequence,
            stored.event.event_type(),
            stored.event.aggregate_version
        );
    }
    Ok(())
}
