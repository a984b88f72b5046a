//! Amounts, currencies, conversion and every limit.

use wallet_core::command::IDEMPOTENCY_KEY_LENGTH_MAX;
use wallet_core::{Command, CommandOutput, Decimal, IdempotencyKey, Uuid};

use crate::common::{code, dec, Harness};
use crate::support::*;

fn exchanged(output: CommandOutput) -> wallet_core::Exchange {
    match output {
        CommandOutput::Exchange { exchange, .. } => exchange,
        other => panic!("expected an exchange, got {other:?}"),
    }
}

#[test]
fn conversion_is_exact_and_rounds_down() {
    let harness = Harness::new();
    ok(&harness, create_wallet());
    ok(&harness, deposit("20001", "VND"));
    let result = exchanged(ok(&harness, exchange("10001", "VND", "USD")));
    assert_eq!(text(result.from_amount), "10001");
    assert_eq!(text(result.to_amount), "0.40");
    assert_eq!(result.rate, dec("0.00004"));
    let [out, into] = &result.transactions;
    assert_eq!(
        (text(out.amount), text(out.balance_after)),
        ("-10001".into(), "10000".into())
    );
    assert_eq!(
        (text(into.amount), text(into.balance_after)),
        ("0.40".into(), "0.40".into())
    );
    assert_eq!(balance(&harness, "VND"), ("10000".into(), "0".into()));
    assert_eq!(balance(&harness, "USD"), ("0.40".into(), "0.00".into()));

    let back = exchanged(ok(&harness, exchange("0.40", "USD", "VND")));
    assert_eq!(text(back.to_amount), "10000");
    assert_eq!(back.rate, Decimal::from(25_000));
    assert_eq!(balance(&harness, "VND"), ("20000".into(), "0".into()));
}

#[test]
fn a_conversion_that_rounds_to_zero_is_amount_too_small() {
    let harness = Harness::new();
    ok(&harness, create_wallet());
    ok(&harness, deposit("1000", "VND"));
    assert_eq!(
        code_of(&harness, exchange("249", "VND", "USD")),
        "amount_too_small"
    );
    let result = exchanged(ok(&harness, exchange("250", "VND", "USD")));
    assert_eq!(text(result.to_amount), "0.01");
}

#[test]
fn exchange_rejects_the_same_currency_and_unknown_ones() {
    let harness = funded();
    assert_eq!(
        code_of(&harness, exchange("1", "USD", "USD")),
        "same_currency"
    );
    assert_eq!(
        code_of(&harness, exchange("1", "usd", "USD")),
        "same_currency"
    );
    assert_eq!(
        code_of(&harness, exchange("1", "USD", "EUR")),
        "unsupported_currency"
    );
    assert_eq!(
        code_of(&harness, exchange("1", "EUR", "USD")),
        "unsupported_currency"
    );
    assert_eq!(
        code_of(&harness, exchange("100.01", "USD", "VND")),
        "insufficient_funds"
    );
}

#[test]
fn exchange_respects_the_balance_limit_of_the_target() {
    let harness = Harness::new();
    ok(&harness, create_wallet());
    ok(&harness, deposit("1000000000000000", "VND"));
    ok(&harness, deposit("1", "USD"));
    assert_eq!(
        code_of(&harness, exchange("0.01", "USD", "VND")),
        "balance_limit_exceeded"
    );
}

#[test]
fn amounts_must_be_positive_exact_and_bounded() {
    let harness = Harness::new();
    ok(&harness, create_wallet());
    for bad in ["0", "-1", "-0.01", "0.001", "1000000000000000.01", "1e16"] {
        let Ok(amount) = Decimal::from_scientific(bad).or_else(|_| Decimal::from_str_exact(bad))
        else {
            panic!("{bad} is not a decimal")
        };
        let command = Command::Deposit {
            user_id: USER,
            amount,
            currency: code("USD"),
            description: None,
            reference: None,
        };
        assert_eq!(code_of(&harness, command), "invalid_amount", "{bad}");
    }
    assert_eq!(code_of(&harness, deposit("0.5", "VND")), "invalid_amount");
    assert_eq!(
        code_of(&harness, deposit("1000000000000001", "VND")),
        "invalid_amount"
    );
    assert_eq!(
        code_of(&harness, deposit("1", "EUR")),
        "unsupported_currency"
    );
    // Trailing zeros are not precision: 10.500 USD is 10.50.
    ok(&harness, deposit("10.500", "usd"));
    assert_eq!(balance(&harness, "USD"), ("10.50".into(), "0.00".into()));
}

#[test]
fn a_balance_may_reach_but_not_pass_the_limit() {
    let harness = Harness::new();
    ok(&harness, create_wallet());
    ok(&harness, deposit("1000000000000000", "USD"));
    assert_eq!(
        balance(&harness, "USD"),
        ("1000000000000000.00".into(), "0.00".into())
    );
    assert_eq!(
        code_of(&harness, deposit("0.01", "USD")),
        "balance_limit_exceeded"
    );
    ok(&harness, withdraw("0.01", "USD"));
    ok(&harness, deposit("0.01", "USD"));
}

fn with_text(description: Option<String>, reference: Option<String>) -> Command {
    Command::Deposit {
        user_id: USER,
        amount: dec("1"),
        currency: code("USD"),
        description,
        reference,
    }
}

#[test]
fn text_fields_are_bounded() {
    let harness = funded();
    let long = |n: usize| Some("é".repeat(n));
    ok(&harness, with_text(long(500), long(255)));
    assert_eq!(
        code_of(&harness, with_text(long(501), None)),
        "validation_error"
    );
    assert_eq!(
        code_of(&harness, with_text(None, long(256))),
        "validation_error"
    );

    let hold_with = |reference_type: String| Command::CreateHold {
        user_id: USER,
        amount: dec("1"),
        currency: code("USD"),
        reference_type,
        reference_id: Uuid::nil(),
        description: None,
        expires_at: None,
    };
    ok(&harness, hold_with("t".repeat(100)));
    assert_eq!(
        code_of(&harness, hold_with("t".repeat(101))),
        "validation_error"
    );
    assert_eq!(code_of(&harness, hold_with(" ".into())), "validation_error");

    let freeze_with = |reason: String| Command::FreezeWallet {
        user_id: USER,
        reason,
    };
    assert_eq!(
        code_of(&harness, freeze_with("r".repeat(501))),
        "validation_error"
    );
    assert_eq!(
        code_of(&harness, freeze_with("".into())),
        "validation_error"
    );
    ok(&harness, freeze_with("r".repeat(500)));

    ok(&harness, create_points());
    let earn_from = |source: String| Command::EarnPoints {
        user_id: USER,
        points: 1,
        source,
        description: None,
        expires_at: None,
        pending: false,
    };
    ok(&harness, earn_from("s".repeat(255)));
    assert_eq!(
        code_of(&harness, earn_from("s".repeat(256))),
        "validation_error"
    );
}

#[test]
fn idempotency_keys_are_1_to_255_printable_ascii_characters() {
    assert_eq!(IDEMPOTENCY_KEY_LENGTH_MAX, 255);
    assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
    assert!(IdempotencyKey::parse(" ~!").is_ok());
    for bad in ["", "tab\tkey", "new\nline", "ключ", "\u{7f}"] {
        assert_eq!(
            IdempotencyKey::parse(bad).map_err(|e| e.code()),
            Err("validation_error"),
            "{bad:?}"
        );
    }
    assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
}

#[test]
fn points_per_request_are_1_to_10_to_the_12() {
    let harness = Harness::new();
    ok(&harness, create_points());
    ok(&harness, earn(1, None, false));
    ok(&harness, earn(1_000_000_000_000, None, false));
    for bad in [0, -1, 1_000_000_000_001, i64::MIN, i64::MAX] {
        assert_eq!(
            code_of(&harness, earn(bad, None, false)),
            "validation_error",
            "earn {bad}"
        );
        assert_eq!(
            code_of(&harness, spend(bad)),
            "validation_error",
            "spend {bad}"
        );
    }
    for bad in [0, 1_000_000_000_001, -1_000_000_000_001, i64::MIN, i64::MAX] {
        assert_eq!(
            code_of(&harness, adjust(bad)),
            "validation_error",
            "adjust {bad}"
        );
    }
    ok(&harness, adjust(-1_000_000_000_000));
    ok(&harness, adjust(1_000_000_000_000));
    assert_eq!(account(&harness).available_points, 1_000_000_000_001);
}
