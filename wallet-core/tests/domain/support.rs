//! Command builders and short-hands for the domain tests.

use chrono::{DateTime, Utc};
use wallet_core::{
    Command, CommandOutput, Decimal, Hold, PointAccountView, Uuid, WalletError, WalletView,
};

use crate::common::{code, dec, Harness};

/// The user of most tests.
pub const USER: Uuid = Uuid::from_u128(0xa11ce);

pub fn create_wallet() -> Command {
    Command::CreateWallet {
        user_id: USER,
        default_currency: None,
    }
}

pub fn deposit(amount: &str, currency: &str) -> Command {
    Command::Deposit {
        user_id: USER,
        amount: dec(amount),
        currency: code(currency),
        description: None,
        reference: None,
    }
}

pub fn withdraw(amount: &str, currency: &str) -> Command {
    Command::Withdraw {
        user_id: USER,
        amount: dec(amount),
        currency: code(currency),
        description: None,
        reference: None,
    }
}

pub fn exchange(amount: &str, from: &str, to: &str) -> Command {
    Command::Exchange {
        user_id: USER,
        amount: dec(amount),
        from_currency: code(from),
        to_currency: code(to),
    }
}

pub fn hold(amount: &str, currency: &str, expires_at: Option<DateTime<Utc>>) -> Command {
    Command::CreateHold {
        user_id: USER,
        amount: dec(amount),
        currency: code(currency),
        reference_type: "order".into(),
        reference_id: Uuid::from_u128(42),
        description: None,
        expires_at,
    }
}

pub fn execute(hold_id: Uuid, amount: Option<&str>) -> Command {
    Command::ExecuteHold {
        user_id: USER,
        hold_id,
        amount: amount.map(dec),
        reference: None,
        payees: None,
    }
}

pub fn release(hold_id: Uuid, amount: Option<&str>) -> Command {
    Command::ReleaseHold {
        user_id: USER,
        hold_id,
        amount: amount.map(dec),
    }
}

pub fn cancel(hold_id: Uuid) -> Command {
    Command::CancelHold {
        user_id: USER,
        hold_id,
    }
}

pub fn freeze() -> Command {
    Command::FreezeWallet {
        user_id: USER,
        reason: "review".into(),
    }
}

pub fn unfreeze() -> Command {
    Command::UnfreezeWallet { user_id: USER }
}

pub fn close() -> Command {
    Command::CloseWallet { user_id: USER }
}

pub fn create_points() -> Command {
    Command::CreatePointAccount { user_id: USER }
}

pub fn earn(points: i64, expires_at: Option<DateTime<Utc>>, pending: bool) -> Command {
    Command::EarnPoints {
        user_id: USER,
        points,
        source: "shop".into(),
        description: None,
        expires_at,
        pending,
    }
}

pub fn spend(points: i64) -> Command {
    Command::SpendPoints {
        user_id: USER,
        points,
        source: "shop".into(),
        description: None,
    }
}

pub fn adjust(delta: i64) -> Command {
    Command::AdjustPoints {
        user_id: USER,
        delta,
        source: "admin".into(),
        description: None,
    }
}

pub fn confirm(lot_id: Uuid) -> Command {
    Command::ConfirmPendingPoints {
        user_id: USER,
        lot_id,
    }
}

pub fn cancel_pending(lot_id: Uuid) -> Command {
    Command::CancelPendingPoints {
        user_id: USER,
        lot_id,
    }
}

/// Runs a command that must succeed, checks every invariant, returns the
/// output.
pub fn ok(harness: &Harness, command: Command) -> CommandOutput {
    let name = command.name();
    let applied = harness
        .run(command)
        .unwrap_or_else(|error| panic!("{name} failed: {error:?}"));
    assert!(!applied.replayed, "{name} was a replay");
    harness
        .check(USER)
        .unwrap_or_else(|violation| panic!("after {name}: {violation}"));
    applied.output
}

/// Runs a command that must fail, checks that it changed nothing, returns
/// the error.
pub fn fails(harness: &Harness, command: Command) -> WalletError {
    let name = command.name();
    let before = harness.snapshot(USER);
    let error = match harness.run(command) {
        Ok(applied) => panic!("{name} succeeded: {applied:?}"),
        Err(error) => error,
    };
    assert_eq!(
        harness.snapshot(USER),
        before,
        "{name} failed but changed state"
    );
    error
}

/// The error code of a failing command.
pub fn code_of(harness: &Harness, command: Command) -> &'static str {
    fails(harness, command).code()
}

/// The hold a hold command answered with.
pub fn hold_of(output: CommandOutput) -> Hold {
    match output {
        CommandOutput::Hold { hold } => hold,
        other => panic!("expected a hold, got {other:?}"),
    }
}

/// The lot id a point command answered with.
pub fn lot_of(output: CommandOutput) -> Uuid {
    match output {
        CommandOutput::Points {
            lot_id: Some(lot_id),
            ..
        } => lot_id,
        other => panic!("expected a lot, got {other:?}"),
    }
}

/// The stored wallet.
pub fn wallet(harness: &Harness) -> WalletView {
    futures::executor::block_on(harness.service.wallet(USER)).expect("the wallet exists")
}

/// The stored point account.
pub fn account(harness: &Harness) -> PointAccountView {
    futures::executor::block_on(harness.service.point_account(USER))
        .expect("the point account exists")
}

/// Balance and held of a currency, as text (`"10.00"`), or zeros.
pub fn balance(harness: &Harness, currency: &str) -> (String, String) {
    wallet(harness)
        .balances
        .iter()
        .find(|item| item.currency == code(currency))
        .map(|item| (item.balance.to_string(), item.held.to_string()))
        .unwrap_or_else(|| ("0".into(), "0".into()))
}

/// The stored hold.
pub fn stored_hold(harness: &Harness, hold_id: Uuid) -> Hold {
    futures::executor::block_on(harness.service.hold(USER, hold_id)).expect("the hold exists")
}

/// A harness with a wallet holding 100.00 USD.
pub fn funded() -> Harness {
    let harness = Harness::new();
    ok(&harness, create_wallet());
    ok(&harness, deposit("100", "USD"));
    harness
}

/// A decimal as text with its scale, for exact comparisons.
pub fn text(value: Decimal) -> String {
    value.to_string()
}
