//! The ledger audit: every invariant of the domain that the stored data can
//! show, checked over the whole ledger in one consistent snapshot.
//!
//! [`audit`] opens one `REPEATABLE READ, READ ONLY` transaction on the
//! primary, so every check sees the same committed state (a unit of work
//! that commits meanwhile is either wholly in it or wholly out of it), and
//! it takes no lock that a writer waits for: PostgreSQL serves the snapshot
//! from row versions. It holds that snapshot for its whole run, which keeps
//! `VACUUM` from removing row versions newer than it until it ends.
//!
//! Each check ([`CHECKS`]) is one query that returns the rows that break
//! its rule, each as a subject (what is wrong: a wallet item, a
//! transaction, a hold, an event) and a detail (the figures that disagree).
//! A check reports at most [`FINDINGS_PER_CHECK_MAX`] findings and says
//! when it found more. Adding a rule is adding an entry to [`CHECKS`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use wallet_core::money::BALANCE_MAX_UNITS;
use wallet_core::{Decimal, WalletError};

use crate::codec::{column, decimal, unsigned};
use crate::error::map_error;

/// The most findings one check reports; a check that finds more says so
/// ([`CheckSummary::truncated`]).
pub const FINDINGS_PER_CHECK_MAX: i64 = 100;
/// The longest one statement of the audit may run: each check reads a
/// whole table, which the service's own statement limit is not meant for.
pub const AUDIT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One rule of the domain as the stored data shows it.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// A short name, stable for machines (`--json`).
    pub name: &'static str,
    /// The rule, in words.
    pub rule: &'static str,
    /// A query whose rows (`subject`, `detail`, both text) break the rule.
    sql: &'static str,
}

/// Something that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The check's name.
    pub check: &'static str,
    /// What is wrong (a wallet item, a transaction, a hold, an event).
    pub subject: String,
    /// The figures that disagree.
    pub detail: String,
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckSummary {
    pub name: &'static str,
    pub rule: &'static str,
    /// Findings reported (at most [`FINDINGS_PER_CHECK_MAX`]).
    pub findings: usize,
    /// Whether the check found more than it reports.
    pub truncated: bool,
}

/// The money of one currency across the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrencyFigures {
    pub currency: String,
    /// The sum of every wallet's balance.
    pub balance: Decimal,
    /// The sum of every wallet's held amount.
    pub held: Decimal,
    /// Wallets with an item in the currency.
    pub wallets: u64,
}

/// How much the audit read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditFigures {
    pub wallets: u64,
    pub wallet_transactions: u64,
    pub holds: u64,
    pub point_accounts: u64,
    pub point_transactions: u64,
    pub events: u64,
    pub currencies: Vec<CurrencyFigures>,
    /// Available points across the ledger.
    pub points_available: u64,
    /// Pending points across the ledger.
    pub points_pending: u64,
}

/// The audit's result: what it read and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    /// The snapshot's time (the start of the audit's transaction).
    pub snapshot_at: DateTime<Utc>,
    pub figures: AuditFigures,
    pub checks: Vec<CheckSummary>,
    pub findings: Vec<Finding>,
}

impl AuditReport {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings of the check named `name`.
    pub fn findings_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.iter().filter(move |f| f.check == name)
    }
}

/// Audits the ledger on `pool` (the primary) in one snapshot.
pub async fn audit(pool: &PgPool) -> Result<AuditReport, WalletError> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *conn)
        .await
        .map_err(map_error)?;
    let result = audit_in(&mut conn).await;
    // Read only: nothing to keep, so the end is a rollback either way.
    let ended = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    let report = result?;
    ended.map_err(map_error)?;
    Ok(report)
}

/// The audit's steps inside its snapshot transaction.
async fn audit_in(conn: &mut PgConnection) -> Result<AuditReport, WalletError> {
    let timeout = format!(
        "SET LOCAL statement_timeout = {}",
        AUDIT_STATEMENT_TIMEOUT.as_millis()
    );
    sqlx::query(&timeout)
        .execute(&mut *conn)
        .await
        .map_err(map_error)?;
    let snapshot_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_error)?;
    let figures = read_figures(conn).await?;
    let mut checks = Vec::with_capacity(CHECKS.len());
    let mut findings = Vec::new();
    for check in CHECKS {
        let (found, truncated) = run_check(conn, check).await?;
        checks.push(CheckSummary {
            name: check.name,
            rule: check.rule,
            findings: found.len(),
            truncated,
        });
        findings.extend(found);
    }
    Ok(AuditReport {
        snapshot_at,
        figures,
        checks,
        findings,
    })
}

/// Runs one check: its findings (at most [`FINDINGS_PER_CHECK_MAX`]) and
/// whether there were more.
async fn run_check(
    conn: &mut PgConnection,
    check: &Check,
) -> Result<(Vec<Finding>, bool), WalletError> {
    let sql = format!(
        "SELECT subject, detail FROM ({}) AS found ORDER BY subject, detail LIMIT $1",
        check
            .sql
            .replace("{BALANCE_MAX}", &BALANCE_MAX_UNITS.to_string())
    );
    let rows = sqlx::query(&sql)
        .bind(FINDINGS_PER_CHECK_MAX + 1)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_error)?;
    let truncated = rows.len() > FINDINGS_PER_CHECK_MAX as usize;
    let findings = rows
        .iter()
        .take(FINDINGS_PER_CHECK_MAX as usize)
        .map(|row| {
            Ok(Finding {
                check: check.name,
                subject: column::<Option<String>>(row, "subject")?.unwrap_or_default(),
                detail: column::<Option<String>>(row, "detail")?.unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, WalletError>>()?;
    Ok((findings, truncated))
}

const COUNTS_SQL: &str = "SELECT \
    (SELECT count(*) FROM wallets) AS wallets, \
    (SELECT count(*) FROM wallet_transactions) AS wallet_transactions, \
    (SELECT count(*) FROM holds) AS holds, \
    (SELECT count(*) FROM point_accounts) AS point_accounts, \
    (SELECT count(*) FROM point_transactions) AS point_transactions, \
    (SELECT count(*) FROM outbox_events) AS events, \
    (SELECT coalesce(sum(available_points), 0)::bigint FROM point_accounts) AS points_available, \
    (SELECT coalesce(sum(pending_points), 0)::bigint FROM point_accounts) AS points_pending";

const CURRENCIES_SQL: &str = "SELECT currency, sum(balance)::text AS balance, \
    sum(held)::text AS held, count(*) AS wallets FROM wallet_items \
    GROUP BY currency ORDER BY currency";

async fn read_figures(conn: &mut PgConnection) -> Result<AuditFigures, WalletError> {
    let counts = sqlx::query(COUNTS_SQL)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_error)?;
    let count = |name: &str| -> Result<u64, WalletError> { unsigned(column(&counts, name)?, name) };
    let currencies = sqlx::query(CURRENCIES_SQL)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_error)?
        .iter()
        .map(|row| {
            Ok(CurrencyFigures {
                currency: column(row, "currency")?,
                balance: decimal(&column::<String>(row, "balance")?)?,
                held: decimal(&column::<String>(row, "held")?)?,
                wallets: unsigned(column(row, "wallets")?, "wallets")?,
            })
        })
        .collect::<Result<Vec<_>, WalletError>>()?;
    Ok(AuditFigures {
        wallets: count("wallets")?,
        wallet_transactions: count("wallet_transactions")?,
        holds: count("holds")?,
        point_accounts: count("point_accounts")?,
        point_transactions: count("point_transactions")?,
        events: count("events")?,
        currencies,
        points_available: count("points_available")?,
        points_pending: count("points_pending")?,
    })
}

/// Every check, in the order of the report.
pub const CHECKS: &[Check] = &[
    Check {
        name: "item_bounds",
        rule: "balance >= 0, held >= 0, held <= balance, balance <= 10^15",
        sql: "SELECT format('wallet %s %s', wallet_id, currency) AS subject, \
              format('balance %s, held %s', balance, held) AS detail \
              FROM wallet_items \
              WHERE balance < 0 OR held < 0 OR held > balance OR balance > {BALANCE_MAX}",
    },
    Check {
        name: "item_totals",
        rule: "an item's balance and held are the sums of its transactions' amounts and held changes",
        sql: "WITH sums AS (SELECT wallet_id, currency, sum(amount) AS balance, \
                  sum(held_change) AS held FROM wallet_transactions GROUP BY wallet_id, currency) \
              SELECT format('wallet %s %s', coalesce(i.wallet_id, s.wallet_id), \
                  coalesce(i.currency, s.currency)) AS subject, \
              CASE WHEN i.wallet_id IS NULL \
                  THEN format('no item, but its transactions add up to balance %s, held %s', \
                      s.balance, s.held) \
                  ELSE format('item: balance %s, held %s; its transactions: balance %s, held %s', \
                      i.balance, i.held, coalesce(s.balance, 0), coalesce(s.held, 0)) END AS detail \
              FROM wallet_items i FULL JOIN sums s \
                  ON s.wallet_id = i.wallet_id AND s.currency = i.currency \
              WHERE i.wallet_id IS NULL \
                 OR i.balance <> coalesce(s.balance, 0) OR i.held <> coalesce(s.held, 0)",
    },
    Check {
        name: "transaction_chain",
        rule: "each transaction's balanceAfter and heldAfter are the running sums of its item's log",
        sql: "SELECT DISTINCT ON (wallet_id, currency) \
                  format('wallet %s %s, transaction %s (#%s)', wallet_id, currency, id, sequence) \
                  AS subject, \
                  format('balanceAfter %s, heldAfter %s; the running sums are %s, %s \
                      (the first break of this chain)', \
                      balance_after, held_after, running_balance, running_held) AS detail \
              FROM (SELECT wallet_id, currency, id, sequence, balance_after, held_after, \
                  sum(amount) OVER w AS running_balance, sum(held_change) OVER w AS running_held \
                  FROM wallet_transactions \
                  WINDOW w AS (PARTITION BY wallet_id, currency ORDER BY sequence)) t \
              WHERE balance_after <> running_balance OR held_after <> running_held \
              ORDER BY wallet_id, currency, sequence",
    },
    Check {
        name: "transaction_sequence",
        rule: "a wallet's log is numbered 1..n without gaps, n being its transaction count",
        sql: "SELECT format('wallet %s', w.id) AS subject, \
              format('transaction count %s; %s rows, the last numbered %s', \
                  w.transaction_count, coalesce(t.rows, 0), coalesce(t.last, 0)) AS detail \
              FROM wallets w LEFT JOIN (SELECT wallet_id, count(*) AS rows, \
                  max(sequence) AS last FROM wallet_transactions GROUP BY wallet_id) t \
                  ON t.wallet_id = w.id \
              WHERE w.transaction_count <> coalesce(t.rows, 0) \
                 OR coalesce(t.rows, 0) <> coalesce(t.last, 0)",
    },
    Check {
        name: "transaction_shape",
        rule: "each transaction type changes balance and held as its table says \
               (e.g. Deposit +x/0, Hold 0/+x, HoldExecute -x/-x)",
        sql: "SELECT format('transaction %s (wallet %s #%s)', id, wallet_id, sequence) AS subject, \
              format('%s with amount %s, held change %s, hold %s', transaction_type, amount, \
                  held_change, coalesce(hold_id::text, 'none')) AS detail \
              FROM wallet_transactions WHERE NOT CASE \
                  WHEN transaction_type IN ('Deposit', 'ExchangeIn', 'TransferIn') \
                      THEN amount > 0 AND held_change = 0 \
                  WHEN transaction_type IN ('Withdraw', 'ExchangeOut', 'TransferOut') \
                      THEN amount < 0 AND held_change = 0 \
                  WHEN transaction_type = 'Hold' \
                      THEN amount = 0 AND held_change > 0 AND hold_id IS NOT NULL \
                  WHEN transaction_type = 'HoldExecute' \
                      THEN amount < 0 AND held_change = amount AND hold_id IS NOT NULL \
                  WHEN transaction_type = 'HoldRelease' \
                      THEN amount = 0 AND held_change < 0 AND hold_id IS NOT NULL \
                  ELSE false END",
    },
    Check {
        name: "held_by_holds",
        rule: "an item's held amount is the sum of its active holds' remaining amounts",
        sql: "WITH active AS (SELECT wallet_id, currency, sum(remaining_amount) AS remaining \
                  FROM holds WHERE status = 'Active' GROUP BY wallet_id, currency) \
              SELECT format('wallet %s %s', coalesce(i.wallet_id, a.wallet_id), \
                  coalesce(i.currency, a.currency)) AS subject, \
              format('held %s; its active holds have %s remaining', \
                  coalesce(i.held, 0), coalesce(a.remaining, 0)) AS detail \
              FROM wallet_items i FULL JOIN active a \
                  ON a.wallet_id = i.wallet_id AND a.currency = i.currency \
              WHERE coalesce(i.held, 0) <> coalesce(a.remaining, 0)",
    },
    Check {
        name: "hold_amounts",
        rule: "original = remaining + executed + released, none negative; \
               remaining > 0 exactly while the hold is Active",
        sql: "SELECT format('hold %s (wallet %s)', id, wallet_id) AS subject, \
              format('%s: original %s, remaining %s, executed %s, released %s', status, \
                  original_amount, remaining_amount, executed_amount, released_amount) AS detail \
              FROM holds \
              WHERE original_amount <> remaining_amount + executed_amount + released_amount \
                 OR original_amount <= 0 OR remaining_amount < 0 \
                 OR executed_amount < 0 OR released_amount < 0 \
                 OR (status = 'Active') <> (remaining_amount > 0)",
    },
    Check {
        name: "hold_transactions",
        rule: "a hold has one Hold transaction of its original amount, and its executions and \
               releases add up to its executed and released amounts, on its wallet and currency",
        sql: "WITH t AS (SELECT hold_id, \
                  count(*) FILTER (WHERE transaction_type = 'Hold') AS holds, \
                  coalesce(sum(held_change) FILTER (WHERE transaction_type = 'Hold'), 0) AS held, \
                  coalesce(-sum(amount) FILTER (WHERE transaction_type = 'HoldExecute'), 0) \
                      AS executed, \
                  coalesce(-sum(held_change) FILTER (WHERE transaction_type = 'HoldRelease'), 0) \
                      AS released, \
                  array_agg(DISTINCT wallet_id) AS wallets, array_agg(DISTINCT currency) AS currencies \
                  FROM wallet_transactions \
                  WHERE transaction_type IN ('Hold', 'HoldExecute', 'HoldRelease') \
                  GROUP BY hold_id) \
              SELECT format('hold %s', coalesce(h.id, t.hold_id)) AS subject, \
              CASE WHEN h.id IS NULL THEN 'transactions name a hold that does not exist' \
                   WHEN t.hold_id IS NULL THEN 'the hold has no transaction' \
                   ELSE format('original %s, executed %s, released %s; its transactions: \
                       %s Hold row(s) of %s, executed %s, released %s, on %s wallet(s), %s', \
                       h.original_amount, h.executed_amount, h.released_amount, t.holds, t.held, \
                       t.executed, t.released, cardinality(t.wallets), t.currencies) END AS detail \
              FROM holds h FULL JOIN t ON t.hold_id = h.id \
              WHERE h.id IS NULL OR t.hold_id IS NULL OR t.holds <> 1 \
                 OR t.held <> h.original_amount OR t.executed <> h.executed_amount \
                 OR t.released <> h.released_amount \
                 OR t.wallets <> ARRAY[h.wallet_id] OR t.currencies <> ARRAY[h.currency]",
    },
    Check {
        name: "transfer_legs",
        rule: "the legs of a transfer or payout add up to zero in one currency, \
               with one debited wallet and at least one credited",
        sql: "SELECT format('transfer %s', transfer_id) AS subject, \
              format('%s leg(s) in %s add up to %s; %s debit(s), %s credit(s)', count(*), \
                  string_agg(DISTINCT currency, ', '), sum(amount), \
                  count(*) FILTER (WHERE amount < 0), count(*) FILTER (WHERE amount > 0)) \
                  AS detail \
              FROM wallet_transactions WHERE transfer_id IS NOT NULL GROUP BY transfer_id \
              HAVING sum(amount) <> 0 OR count(DISTINCT currency) <> 1 \
                  OR count(*) FILTER (WHERE amount < 0) <> 1 \
                  OR count(*) FILTER (WHERE amount > 0) < 1",
    },
    Check {
        name: "transfer_counterparties",
        rule: "each credited leg names the debited wallet's user, and a debited leg that names \
               a counterparty names a credited one",
        sql: "WITH legs AS (SELECT t.id, t.transfer_id, t.amount, t.counterparty_user_id, w.user_id \
                  FROM wallet_transactions t JOIN wallets w ON w.id = t.wallet_id \
                  WHERE t.transfer_id IS NOT NULL), \
              payers AS (SELECT transfer_id, (array_agg(user_id))[1] AS user_id FROM legs \
                  WHERE amount < 0 GROUP BY transfer_id) \
              SELECT format('transaction %s of transfer %s', l.id, l.transfer_id) AS subject, \
              format('names %s as the other side; the payer is %s', \
                  coalesce(l.counterparty_user_id::text, 'nobody'), p.user_id) AS detail \
              FROM legs l JOIN payers p ON p.transfer_id = l.transfer_id \
              WHERE (l.amount > 0 AND l.counterparty_user_id IS DISTINCT FROM p.user_id) \
                 OR (l.amount < 0 AND l.counterparty_user_id IS NOT NULL AND NOT EXISTS ( \
                     SELECT 1 FROM legs c WHERE c.transfer_id = l.transfer_id AND c.amount > 0 \
                     AND c.user_id = l.counterparty_user_id))",
    },
    Check {
        name: "exchange_legs",
        rule: "each ExchangeOut is followed in its wallet's log by its ExchangeIn in another currency",
        sql: "SELECT format('transaction %s (wallet %s #%s)', o.id, o.wallet_id, o.sequence) \
                  AS subject, \
              format('%s of %s %s without its other leg', o.transaction_type, o.amount, \
                  o.currency) AS detail \
              FROM wallet_transactions o LEFT JOIN wallet_transactions p \
                  ON p.wallet_id = o.wallet_id AND p.currency <> o.currency AND \
                  ((o.transaction_type = 'ExchangeOut' AND p.sequence = o.sequence + 1 \
                      AND p.transaction_type = 'ExchangeIn') OR \
                   (o.transaction_type = 'ExchangeIn' AND p.sequence = o.sequence - 1 \
                      AND p.transaction_type = 'ExchangeOut')) \
              WHERE o.transaction_type IN ('ExchangeOut', 'ExchangeIn') AND p.id IS NULL",
    },
    Check {
        name: "currency_conservation",
        rule: "per currency, the balances add up to deposits - withdrawals - executions without \
               payees + exchange legs, and transfers and payouts add up to zero",
        sql: "WITH flows AS (SELECT currency, \
                  coalesce(sum(amount) FILTER (WHERE transfer_id IS NULL), 0) AS edge, \
                  coalesce(sum(amount) FILTER (WHERE transfer_id IS NOT NULL), 0) AS within \
                  FROM wallet_transactions GROUP BY currency), \
              balances AS (SELECT currency, sum(balance) AS balance FROM wallet_items \
                  GROUP BY currency) \
              SELECT format('currency %s', coalesce(f.currency, b.currency)) AS subject, \
              format('balances add up to %s; money in and out of the ledger to %s; \
                  between wallets to %s', coalesce(b.balance, 0), coalesce(f.edge, 0), \
                  coalesce(f.within, 0)) AS detail \
              FROM flows f FULL JOIN balances b ON b.currency = f.currency \
              WHERE coalesce(b.balance, 0) <> coalesce(f.edge, 0) OR coalesce(f.within, 0) <> 0",
    },
    Check {
        name: "point_lots",
        rule: "a point account's available and pending points are the remainders of its \
               available and pending lots",
        sql: "WITH lots AS (SELECT account_id, \
                  coalesce(sum(remaining) FILTER (WHERE state = 'Available'), 0) AS available, \
                  coalesce(sum(remaining) FILTER (WHERE state = 'Pending'), 0) AS pending \
                  FROM point_lots GROUP BY account_id) \
              SELECT format('point account %s', a.id) AS subject, \
              format('available %s, pending %s; its lots: available %s, pending %s', \
                  a.available_points, a.pending_points, coalesce(l.available, 0), \
                  coalesce(l.pending, 0)) AS detail \
              FROM point_accounts a LEFT JOIN lots l ON l.account_id = a.id \
              WHERE a.available_points <> coalesce(l.available, 0) \
                 OR a.pending_points <> coalesce(l.pending, 0) \
                 OR a.available_points < 0 OR a.pending_points < 0",
    },
    Check {
        name: "point_chain",
        rule: "each point transaction's balanceAfter is the running sum of the available points \
               it moved, the last one the account's available points",
        sql: "WITH moved AS (SELECT t.account_id, t.id, t.sequence, t.balance_after, \
                  sum(CASE WHEN t.transaction_type IN ('EarnPending', 'PendingCancelled') THEN 0 \
                      WHEN t.transaction_type = 'Expire' AND l.state = 'Pending' THEN 0 \
                      ELSE t.points END) \
                  OVER (PARTITION BY t.account_id ORDER BY t.sequence) AS running, \
                  row_number() OVER (PARTITION BY t.account_id ORDER BY t.sequence DESC) AS from_end \
                  FROM point_transactions t LEFT JOIN point_lots l ON l.id = t.lot_id) \
              SELECT format('point account %s, transaction %s (#%s)', m.account_id, m.id, \
                  m.sequence) AS subject, \
              format('balanceAfter %s; the running sum is %s; the account has %s available', \
                  m.balance_after, m.running, a.available_points) AS detail \
              FROM moved m JOIN point_accounts a ON a.id = m.account_id \
              WHERE m.balance_after <> m.running \
                 OR (m.from_end = 1 AND m.running <> a.available_points)",
    },
    Check {
        name: "point_totals",
        rule: "points are conserved: available + pending is what was earned less what was spent, \
               cancelled or expired, plus adjustments; lifetime earned is every point made available",
        sql: "WITH t AS (SELECT account_id, count(*) AS rows, max(sequence) AS last, \
                  coalesce(sum(points) FILTER (WHERE transaction_type <> 'PendingConfirmed'), 0) \
                      AS total, \
                  coalesce(sum(points) FILTER (WHERE transaction_type IN ('Earn', \
                      'PendingConfirmed') OR (transaction_type = 'Adjust' AND points > 0)), 0) \
                      AS earned \
                  FROM point_transactions GROUP BY account_id) \
              SELECT format('point account %s', a.id) AS subject, \
              format('available + pending %s, lifetime earned %s, %s transactions; its log: \
                  total %s, earned %s, %s rows, the last numbered %s', \
                  a.available_points + a.pending_points, a.lifetime_earned, a.transaction_count, \
                  coalesce(t.total, 0), coalesce(t.earned, 0), coalesce(t.rows, 0), \
                  coalesce(t.last, 0)) AS detail \
              FROM point_accounts a LEFT JOIN t ON t.account_id = a.id \
              WHERE a.available_points + a.pending_points <> coalesce(t.total, 0) \
                 OR a.lifetime_earned <> coalesce(t.earned, 0) \
                 OR a.transaction_count <> coalesce(t.rows, 0) \
                 OR coalesce(t.rows, 0) <> coalesce(t.last, 0)",
    },
    Check {
        name: "point_shape",
        rule: "earnings and confirmations add points, spends, cancellations and expiries take \
               them, an adjustment is not zero",
        sql: "SELECT format('point transaction %s (account %s #%s)', id, account_id, sequence) \
                  AS subject, format('%s of %s points', transaction_type, points) AS detail \
              FROM point_transactions WHERE NOT CASE \
                  WHEN transaction_type IN ('Earn', 'EarnPending', 'PendingConfirmed') \
                      THEN points > 0 \
                  WHEN transaction_type IN ('Spend', 'PendingCancelled', 'Expire') THEN points < 0 \
                  WHEN transaction_type = 'Adjust' THEN points <> 0 \
                  ELSE false END",
    },
    Check {
        name: "events_per_effect",
        rule: "every effect has exactly one outbox event and every such event an effect",
        sql: EVENTS_PER_EFFECT_SQL,
    },
    Check {
        name: "events_duplicated",
        rule: "no event is stored twice (same type, aggregate, version and data)",
        sql: "SELECT format('%s of aggregate %s at version %s', event_type, aggregate_id, \
                  aggregate_version) AS subject, \
              format('stored %s times (ids %s)', count(*), string_agg(id::text, ', ')) AS detail \
              FROM outbox_events GROUP BY event_type, aggregate_id, aggregate_version, data \
              HAVING count(*) > 1",
    },
    Check {
        name: "events_sequence",
        rule: "numbered events are numbered 1..n without gaps, each aggregate's in version order",
        sql: "SELECT 'the event feed' AS subject, \
              format('%s numbered events, the last numbered %s', count(sequence), \
                  coalesce(max(sequence), 0)) AS detail \
              FROM outbox_events HAVING count(sequence) <> coalesce(max(sequence), 0) \
              UNION ALL \
              SELECT format('event %s (#%s)', id, sequence) AS subject, \
              format('version %s of aggregate %s after version %s', aggregate_version, \
                  aggregate_id, previous) AS detail \
              FROM (SELECT id, sequence, aggregate_id, aggregate_version, \
                  lag(aggregate_version) OVER (PARTITION BY aggregate_id ORDER BY sequence) \
                      AS previous \
                  FROM outbox_events WHERE sequence IS NOT NULL) e \
              WHERE previous > aggregate_version",
    },
];

/// Each effect's expected event, keyed by the event's type and what names
/// the effect (a transaction, a hold, a lot, the aggregate), against the
/// events stored under the same key.
const EVENTS_PER_EFFECT_SQL: &str = "WITH expected AS ( \
        SELECT 'WalletCreated' AS event_type, id AS key FROM wallets \
        UNION ALL SELECT 'WalletClosed', id FROM wallets WHERE status = 'Closed' \
        UNION ALL SELECT 'PointAccountCreated', id FROM point_accounts \
        UNION ALL SELECT CASE transaction_type \
                WHEN 'TransferOut' THEN 'TransferSent' WHEN 'TransferIn' THEN 'TransferReceived' \
                ELSE 'WalletBalanceChanged' END, id \
            FROM wallet_transactions WHERE transaction_type IN \
                ('Deposit', 'Withdraw', 'HoldExecute', 'TransferOut', 'TransferIn') \
        UNION ALL SELECT CASE transaction_type WHEN 'Hold' THEN 'EscrowHeld' \
                WHEN 'HoldExecute' THEN 'EscrowExecuted' ELSE 'EscrowReleased' END, hold_id \
            FROM wallet_transactions WHERE transaction_type IN ('Hold', 'HoldExecute', 'HoldRelease') \
        UNION ALL SELECT 'WalletExchanged', wallet_id FROM wallet_transactions \
            WHERE transaction_type = 'ExchangeOut' \
        UNION ALL SELECT CASE transaction_type \
                WHEN 'Earn' THEN 'PointsEarned' WHEN 'EarnPending' THEN 'PointsEarned' \
                WHEN 'PendingConfirmed' THEN 'PendingPointsConfirmed' \
                WHEN 'PendingCancelled' THEN 'PendingPointsCancelled' \
                WHEN 'Expire' THEN 'PointsExpired' END, lot_id \
            FROM point_transactions WHERE transaction_type IN \
                ('Earn', 'EarnPending', 'PendingConfirmed', 'PendingCancelled', 'Expire') \
        UNION ALL SELECT CASE transaction_type WHEN 'Spend' THEN 'PointsSpent' \
                ELSE 'PointsAdjusted' END, account_id \
            FROM point_transactions WHERE transaction_type IN ('Spend', 'Adjust')), \
    wanted AS (SELECT event_type, key, count(*) AS effects FROM expected GROUP BY event_type, key), \
    stored AS (SELECT event_type, CASE \
                WHEN event_type IN ('WalletBalanceChanged', 'TransferSent', 'TransferReceived') \
                    THEN (data->>'transactionId')::uuid \
                WHEN event_type IN ('EscrowHeld', 'EscrowExecuted', 'EscrowReleased') \
                    THEN (data->>'holdId')::uuid \
                WHEN event_type IN ('PointsEarned', 'PendingPointsConfirmed', \
                    'PendingPointsCancelled', 'PointsExpired') THEN (data->>'lotId')::uuid \
                ELSE aggregate_id END AS key, count(*) AS events \
            FROM outbox_events WHERE event_type NOT IN ('WalletFrozen', 'WalletUnfrozen') \
            GROUP BY 1, 2) \
    SELECT format('%s of %s', coalesce(w.event_type, s.event_type), coalesce(w.key, s.key)) \
        AS subject, \
    format('%s effect(s), %s event(s)', coalesce(w.effects, 0), coalesce(s.events, 0)) AS detail \
    FROM wanted w FULL JOIN stored s ON s.event_type = w.event_type AND s.key = w.key \
    WHERE coalesce(w.effects, 0) <> coalesce(s.events, 0)";
