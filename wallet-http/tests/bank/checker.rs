//! The bank test's checker: what the definite answers imply against what
//! the service shows (through its API) and the database holds.
//!
//! Every effect is additive, so whatever order the service applied the
//! successful commands in, each wallet must end with exactly the sum of
//! their effects; and every row of the ledger must be the effect of
//! exactly one successful command.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use crate::clients::{Answer, Kind, Record, Rng, Tokens, EXPECTED_REFUSALS};
use crate::faults::Fault;

/// The most successful commands replayed at the end (all of them when
/// fewer); those that were retried during the run are always among them.
const REPLAYS_MAX: usize = 3000;
/// Commands replayed at once.
const REPLAY_CONCURRENCY: usize = 16;
/// Page size of the walks over histories and the feed.
const PAGE: u32 = 200;
const FEED_PAGE: u32 = 1000;

/// What the checker needs of the run.
pub struct Context {
    pub urls: Vec<String>,
    pub tokens: Tokens,
    pub database_url: String,
    pub users: Vec<Uuid>,
    pub seed: u64,
}

/// The result of one check.
struct Outcome {
    name: &'static str,
    failures: Vec<String>,
}

fn dec(value: &Value) -> Decimal {
    value
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("a decimal string, got {value}"))
}

fn uuid(value: &Value) -> Uuid {
    value
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("a UUID, got {value}"))
}

/// Balance and held of one wallet item.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Money {
    balance: Decimal,
    held: Decimal,
}

/// What the successful commands say about one hold.
#[derive(Debug, Default, Clone)]
struct HoldFacts {
    user: Option<Uuid>,
    original: Decimal,
    executed: Decimal,
    released: Decimal,
    cancelled: bool,
    payee_legs: usize,
}

/// Everything the answers imply.
#[derive(Debug, Default)]
struct Expected {
    money: HashMap<(Uuid, String), Money>,
    /// Available and pending points per user.
    points: HashMap<Uuid, (i64, i64)>,
    holds: HashMap<Uuid, HoldFacts>,
    /// Rows each successful command's key must be on: those of its own
    /// wallet or account (the other wallets' legs of a transfer or payout
    /// carry no key).
    rows: HashMap<String, usize>,
    /// Rows without a key: the payees' legs, and the other wallet's row of
    /// a reversal between two wallets.
    unkeyed: usize,
    /// The keys of refused commands: on no row.
    refused: HashSet<String>,
    /// Transaction ids the answers name.
    named: Vec<Uuid>,
    /// Each transfer: its payer and payee.
    transfers: HashMap<Uuid, (Uuid, Uuid)>,
}

impl Expected {
    fn of(records: &[Record]) -> Self {
        let mut expected = Expected::default();
        for record in records {
            match &record.answer {
                Answer::Done { body, .. } => expected.apply(record, body),
                Answer::Refused { .. } => {
                    expected.refused.insert(record.key.clone());
                }
                Answer::Undecided { .. } => {}
            }
        }
        // A cancelled hold released all its answers leave unexecuted and
        // unreleased; an active one holds it still.
        let mut holds = std::mem::take(&mut expected.holds);
        for facts in holds.values_mut() {
            let rest = facts.original - facts.executed - facts.released;
            if facts.cancelled {
                facts.released += rest;
            } else if let Some(user) = facts.user {
                expected.item(user, "USD").held += rest;
            }
        }
        expected.holds = holds;
        expected
    }

    fn item(&mut self, user: Uuid, currency: &str) -> &mut Money {
        self.money.entry((user, currency.to_owned())).or_default()
    }

    fn transaction(&mut self, user: Uuid, transaction: &Value) {
        let currency = transaction["currency"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.item(user, &currency).balance += dec(&transaction["amount"]);
        self.named.push(uuid(&transaction["id"]));
    }

    fn apply(&mut self, record: &Record, body: &Value) {
        let user = record.user;
        let (rows, request) = (&mut 0usize, &record.request);
        match record.kind {
            Kind::OpenWallet | Kind::OpenPoints => {}
            Kind::Deposit | Kind::Withdraw => {
                self.transaction(user, &body["transaction"]);
                *rows = 1;
            }
            Kind::Exchange => {
                for leg in body["transactions"].as_array().into_iter().flatten() {
                    self.transaction(user, leg);
                }
                *rows = 2;
            }
            Kind::Transfer => {
                let leg = &body["transaction"];
                self.transaction(user, leg);
                let payee = uuid(&request["toUserId"]);
                let currency = leg["currency"].as_str().unwrap_or_default().to_owned();
                self.item(payee, &currency).balance -= dec(&leg["amount"]);
                self.transfers
                    .insert(uuid(&body["transferId"]), (user, payee));
                self.unkeyed += 1;
                *rows = 1;
            }
            Kind::Hold => {
                let facts = self.holds.entry(uuid(&body["id"])).or_default();
                facts.user = Some(user);
                facts.original = dec(&body["originalAmount"]);
                *rows = 1;
            }
            Kind::Execute | Kind::Payout | Kind::Release | Kind::Cancel => {
                *rows = self.apply_to_hold(record, body);
            }
            Kind::Earn | Kind::EarnPending | Kind::Confirm | Kind::CancelLot => {
                let points = body["transaction"]["points"].as_i64().unwrap_or_default();
                let (available, pending) = self.points.entry(user).or_default();
                match record.kind {
                    Kind::Earn => *available += points,
                    Kind::EarnPending => *pending += points,
                    Kind::Confirm => {
                        *available += points;
                        *pending -= points;
                    }
                    _ => *pending += points,
                }
                *rows = 1;
            }
            Kind::Spend | Kind::Adjust => {
                let points = body["transaction"]["points"].as_i64().unwrap_or_default();
                self.points.entry(user).or_default().0 += points;
                *rows = 1;
            }
            Kind::Reverse => {
                // The request's wallet's row first, carrying the key; the
                // other wallet's (a transfer's payee) after it, without.
                let legs = body["transactions"].as_array().cloned().unwrap_or_default();
                for (index, leg) in legs.iter().enumerate() {
                    if index == 0 {
                        self.transaction(user, leg);
                    } else {
                        self.transaction(uuid(&legs[0]["counterpartyUserId"]), leg);
                        self.unkeyed += 1;
                    }
                }
                *rows = 1;
            }
        }
        self.rows.insert(record.key.clone(), *rows);
    }

    /// An execution, payout, release or cancellation; returns its rows.
    fn apply_to_hold(&mut self, record: &Record, body: &Value) -> usize {
        let user = record.user;
        let request = &record.request;
        let id = uuid(&body["id"]);
        match record.kind {
            Kind::Execute => {
                let amount = dec(&request["amount"]);
                self.holds.entry(id).or_default().executed += amount;
                let item = self.item(user, "USD");
                item.balance -= amount;
                1
            }
            Kind::Payout => {
                let payees = request["payees"].as_array().cloned().unwrap_or_default();
                let mut sum = Decimal::ZERO;
                for payee in &payees {
                    let share = dec(&payee["amount"]);
                    sum += share;
                    self.item(uuid(&payee["userId"]), "USD").balance += share;
                }
                let facts = self.holds.entry(id).or_default();
                facts.executed += sum;
                facts.payee_legs += payees.len();
                self.unkeyed += payees.len();
                self.item(user, "USD").balance -= sum;
                1
            }
            Kind::Release => {
                self.holds.entry(id).or_default().released += dec(&request["amount"]);
                1
            }
            _ => {
                self.holds.entry(id).or_default().cancelled = true;
                1
            }
        }
    }
}

/// What the service shows, read through its API.
#[derive(Debug, Default)]
struct Shown {
    wallets: HashMap<Uuid, Value>,
    /// Each wallet's transactions, oldest first.
    transactions: HashMap<Uuid, Vec<Value>>,
    holds: HashMap<Uuid, Vec<Value>>,
    points: HashMap<Uuid, Value>,
    point_transactions: HashMap<Uuid, Vec<Value>>,
    events: Vec<Value>,
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn get(&self, path: &str) -> Value {
        for _ in 0..50 {
            let sent = self
                .http
                .get(format!("{}{path}", self.url))
                .bearer_auth(&self.token)
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            if let Ok(response) = sent {
                if response.status().is_success() {
                    if let Ok(body) = response.json().await {
                        return body;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("GET {path} does not answer");
    }

    /// Every item of a paged list, oldest first.
    async fn all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match &cursor {
                Some(c) => self.get(&format!("{path}?limit={PAGE}&cursor={c}")).await,
                None => self.get(&format!("{path}?limit={PAGE}")).await,
            };
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        items.reverse();
        items
    }

    async fn feed(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after = 0u64;
        loop {
            let page = self
                .get(&format!(
                    "/api/v1/wallets/events?after={after}&limit={FEED_PAGE}"
                ))
                .await;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return events;
            }
            after = page["nextAfter"].as_u64().unwrap_or(after);
            events.extend(items);
        }
    }

    async fn shown(&self, users: &[Uuid]) -> Shown {
        let mut shown = Shown::default();
        for &user in users {
            let wallet = format!("/api/v1/wallets/{user}");
            shown.wallets.insert(user, self.get(&wallet).await);
            shown
                .transactions
                .insert(user, self.all(&format!("{wallet}/transactions")).await);
            shown
                .holds
                .insert(user, self.all(&format!("{wallet}/holds")).await);
            shown
                .points
                .insert(user, self.get(&format!("{wallet}/points")).await);
            shown.point_transactions.insert(
                user,
                self.all(&format!("{wallet}/points/transactions")).await,
            );
        }
        shown.events = self.feed().await;
        shown
    }
}

fn balances_of(wallet: &Value) -> HashMap<String, Money> {
    wallet["balances"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["currency"].as_str().unwrap_or_default().to_owned(),
                Money {
                    balance: dec(&b["balance"]),
                    held: dec(&b["held"]),
                },
            )
        })
        .collect()
}

/// Runs every check and prints the figures and the results; true when
/// every check passed.
pub async fn check(
    context: &Context,
    records: &[Record],
    faults: &BTreeMap<Fault, u64>,
    load_time: Duration,
) -> bool {
    print_figures(records, faults, load_time);
    let api = Api {
        http: reqwest::Client::new(),
        url: context.urls[0].clone(),
        token: context.tokens.admin.clone(),
    };
    let pool = sqlx::PgPool::connect(&context.database_url)
        .await
        .expect("connect to the run's database");
    print_batching(&api.http, &context.urls).await;
    let expected = Expected::of(records);
    let shown = api.shown(&context.users).await;
    let transactions: usize = shown.transactions.values().map(Vec::len).sum();
    println!(
        "  ledger: {} wallets, {} transactions, {} holds, {} events in the feed",
        shown.wallets.len(),
        transactions,
        shown.holds.values().map(Vec::len).sum::<usize>(),
        shown.events.len()
    );
    let mut outcomes = vec![
        answers_are_definite(records),
        per_currency(&expected, &shown),
        per_wallet(&expected, &shown),
        histories_add_up(&shown),
        one_effect_each(&expected, &shown, &pool).await,
        holds_add_up(&expected, &shown),
        points_add_up(&expected, &shown),
        feed_in_order(&shown, &pool).await,
    ];
    outcomes.push(replays(context, records, &api, &shown).await);
    outcomes.push(audit(&pool).await);
    pool.close().await;
    report(&outcomes)
}

fn print_figures(records: &[Record], faults: &BTreeMap<Fault, u64>, load_time: Duration) {
    let mut kinds: BTreeMap<Kind, (usize, usize)> = BTreeMap::new();
    let (mut done, mut refused, mut undecided, mut attempts, mut replayed) = (0, 0, 0, 0u64, 0);
    for record in records {
        let entry = kinds.entry(record.kind).or_default();
        entry.0 += 1;
        attempts += u64::from(record.attempts);
        match &record.answer {
            Answer::Done { replayed: r, .. } => {
                done += 1;
                entry.1 += 1;
                replayed += usize::from(*r);
            }
            Answer::Refused { .. } => refused += 1,
            Answer::Undecided { .. } => undecided += 1,
        }
    }
    let seconds = load_time.as_secs_f64().max(0.001);
    println!(
        "bank: {:.1} s of load: {} commands ({:.0}/s), {done} succeeded, {refused} refused, \
         {undecided} undecided; {attempts} attempts ({} retries), {replayed} answered as replays",
        seconds,
        records.len(),
        records.len() as f64 / seconds,
        attempts.saturating_sub(records.len() as u64)
    );
    let by_kind: Vec<String> = kinds
        .iter()
        .map(|(kind, (all, ok))| format!("{kind:?} {all} ({ok} ok)"))
        .collect();
    println!("  commands: {}", by_kind.join(", "));
    let total: u64 = faults.values().sum();
    let by_fault: Vec<String> = faults
        .iter()
        .map(|(fault, n)| format!("{} {n}", fault.name()))
        .collect();
    println!("  faults: {total}: {}", by_fault.join(", "));
}

/// What each instance's batching writers did since it last started (its
/// `/metrics`): batches, commands, wallets taken from the kept copies, and
/// batches run again because a kept wallet had changed elsewhere.
async fn print_batching(http: &reqwest::Client, urls: &[String]) {
    let names = [
        ("wallet_batch_size_count", "batches"),
        ("wallet_batch_size_sum", "commands"),
        ("wallet_batch_kept_wallets_total", "kept wallets used"),
        ("wallet_batch_stale_total", "stale (run again)"),
    ];
    for (index, url) in urls.iter().enumerate() {
        let text = match http.get(format!("{url}/metrics")).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(error) => format!("# no answer: {error}"),
        };
        let figures: Vec<String> = names
            .iter()
            .map(|(name, label)| {
                let value = text
                    .lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                    .unwrap_or("?");
                format!("{value} {label}")
            })
            .collect();
        println!(
            "  instance {index} since its last start: {}",
            figures.join(", ")
        );
    }
}

fn report(outcomes: &[Outcome]) -> bool {
    let mut failed = 0;
    for outcome in outcomes {
        if outcome.failures.is_empty() {
            println!("  ok      {}", outcome.name);
        } else {
            failed += 1;
            println!(
                "  FAILED  {} ({} problems)",
                outcome.name,
                outcome.failures.len()
            );
            for failure in outcome.failures.iter().take(20) {
                println!("            {failure}");
            }
        }
    }
    println!("bank: {} passed, {failed} failed", outcomes.len() - failed);
    failed == 0
}

fn answers_are_definite(records: &[Record]) -> Outcome {
    let mut failures = Vec::new();
    for record in records {
        for answer in &record.unexpected {
            failures.push(format!("{} {}: {answer}", record.key, record.path));
        }
        match &record.answer {
            Answer::Undecided { last } => failures.push(format!(
                "{} {}: no definite answer ({last})",
                record.key, record.path
            )),
            Answer::Refused { status, code } if !EXPECTED_REFUSALS.contains(&code.as_str()) => {
                failures.push(format!(
                    "{} {} {}: refused {status} {code}",
                    record.key, record.path, record.request
                ))
            }
            _ => {}
        }
    }
    Outcome {
        name: "every command has a definite answer, and only answers a correct service gives",
        failures,
    }
}

fn per_currency(expected: &Expected, shown: &Shown) -> Outcome {
    let mut implied: BTreeMap<String, Decimal> = BTreeMap::new();
    for ((_, currency), money) in &expected.money {
        *implied.entry(currency.clone()).or_default() += money.balance;
    }
    let mut held: BTreeMap<String, Decimal> = BTreeMap::new();
    for wallet in shown.wallets.values() {
        for (currency, money) in balances_of(wallet) {
            *held.entry(currency).or_default() += money.balance;
        }
    }
    let mut failures = Vec::new();
    for currency in implied
        .keys()
        .chain(held.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (want, got) = (
            implied.get(currency).copied().unwrap_or_default(),
            held.get(currency).copied().unwrap_or_default(),
        );
        println!("  {currency}: balances add up to {got}; the answers imply {want}");
        if want != got {
            failures.push(format!("{currency}: balances {got}, answers imply {want}"));
        }
    }
    Outcome {
        name: "per currency, the sum of all balances equals what the definite answers imply",
        failures,
    }
}

fn per_wallet(expected: &Expected, shown: &Shown) -> Outcome {
    let mut failures = Vec::new();
    for (user, wallet) in &shown.wallets {
        let balances = balances_of(wallet);
        let currencies: HashSet<&String> = balances
            .keys()
            .chain(
                expected
                    .money
                    .keys()
                    .filter(|(u, _)| u == user)
                    .map(|(_, c)| c),
            )
            .collect();
        for currency in currencies {
            let got = balances.get(currency).copied().unwrap_or_default();
            let want = expected
                .money
                .get(&(*user, currency.clone()))
                .copied()
                .unwrap_or_default();
            if got != want {
                failures.push(format!(
                    "{user} {currency}: shows {got:?}, answers imply {want:?}"
                ));
            }
        }
    }
    Outcome {
        name: "every wallet's balance and held equal what its answers imply",
        failures,
    }
}

fn histories_add_up(shown: &Shown) -> Outcome {
    let mut failures = Vec::new();
    for (user, transactions) in &shown.transactions {
        let mut running: HashMap<String, Money> = HashMap::new();
        for t in transactions {
            let currency = t["currency"].as_str().unwrap_or_default().to_owned();
            let item = running.entry(currency).or_default();
            item.balance += dec(&t["amount"]);
            item.held += dec(&t["heldChange"]);
            if item.balance != dec(&t["balanceAfter"]) || item.held != dec(&t["heldAfter"]) {
                failures.push(format!(
                    "{user}: transaction {} says {} / {}, its history adds up to {:?}",
                    t["id"], t["balanceAfter"], t["heldAfter"], item
                ));
            }
        }
        let balances = balances_of(&shown.wallets[user]);
        for (currency, money) in &running {
            if balances.get(currency) != Some(money) {
                failures.push(format!(
                    "{user} {currency}: history adds up to {money:?}, the wallet shows {:?}",
                    balances.get(currency)
                ));
            }
        }
    }
    Outcome {
        name: "every wallet's history adds up and its balanceAfter chain is unbroken",
        failures,
    }
}

async fn key_rows(pool: &sqlx::PgPool) -> HashMap<Option<String>, usize> {
    let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT idempotency_key, count(*) FROM (SELECT idempotency_key FROM wallet_transactions \
         UNION ALL SELECT idempotency_key FROM point_transactions) t GROUP BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("rows per key");
    rows.into_iter()
        .map(|(key, n)| (key, usize::try_from(n).unwrap_or(0)))
        .collect()
}

async fn one_effect_each(expected: &Expected, shown: &Shown, pool: &sqlx::PgPool) -> Outcome {
    let mut failures = Vec::new();
    let rows = key_rows(pool).await;
    for (key, want) in &expected.rows {
        let got = rows.get(&Some(key.clone())).copied().unwrap_or(0);
        if got != *want {
            failures.push(format!(
                "{key}: succeeded, {got} rows where its effect is {want}"
            ));
        }
    }
    for key in &expected.refused {
        if let Some(got) = rows.get(&Some(key.clone())) {
            failures.push(format!("{key}: refused, yet on {got} rows"));
        }
    }
    for (key, got) in &rows {
        match key {
            None if *got != expected.unkeyed => failures.push(format!(
                "{got} rows without a key, where the payees' legs and reversals' other rows are {}",
                expected.unkeyed
            )),
            Some(key) if !expected.rows.contains_key(key) && !expected.refused.contains(key) => {
                failures.push(format!("{key}: {got} rows of no successful command"))
            }
            _ => {}
        }
    }
    if expected.unkeyed > 0 && !rows.contains_key(&None) {
        failures.push(format!(
            "no row without a key, where the payees' legs and reversals' other rows are {}",
            expected.unkeyed
        ));
    }
    let mut seen: HashMap<Uuid, Vec<(Uuid, &str)>> = HashMap::new();
    let mut ids: HashMap<Uuid, usize> = HashMap::new();
    for (user, transactions) in &shown.transactions {
        for t in transactions {
            *ids.entry(uuid(&t["id"])).or_default() += 1;
            if let Some(transfer) = t["transferId"].as_str().and_then(|s| s.parse().ok()) {
                let kind = t["type"].as_str().unwrap_or_default();
                seen.entry(transfer).or_default().push((*user, kind));
            }
        }
    }
    for id in &expected.named {
        if ids.get(id) != Some(&1) {
            failures.push(format!(
                "transaction {id} of an answer is in the histories {:?} times",
                ids.get(id)
            ));
        }
    }
    for (transfer, (payer, payee)) in &expected.transfers {
        let mut legs = seen.get(transfer).cloned().unwrap_or_default();
        legs.sort();
        let mut want = vec![(*payer, "TransferOut"), (*payee, "TransferIn")];
        want.sort();
        if legs != want {
            failures.push(format!(
                "transfer {transfer}: legs {legs:?}, expected {want:?}"
            ));
        }
    }
    Outcome {
        name: "every successful command has exactly one effect and a refused one none",
        failures,
    }
}

fn holds_add_up(expected: &Expected, shown: &Shown) -> Outcome {
    let mut failures = Vec::new();
    let mut payee_legs: HashMap<Uuid, usize> = HashMap::new();
    for transactions in shown.transactions.values() {
        for t in transactions {
            if t["type"] == "TransferIn" {
                if let Some(hold) = t["holdId"].as_str().and_then(|s| s.parse().ok()) {
                    *payee_legs.entry(hold).or_default() += 1;
                }
            }
        }
    }
    let mut listed = HashSet::new();
    for hold in shown.holds.values().flatten() {
        let id = uuid(&hold["id"]);
        listed.insert(id);
        let [original, remaining, executed, released] = [
            "originalAmount",
            "remainingAmount",
            "executedAmount",
            "releasedAmount",
        ]
        .map(|field| dec(&hold[field]));
        if original != remaining + executed + released {
            failures.push(format!(
                "hold {id}: {original} != {remaining} + {executed} + {released}"
            ));
        }
        let Some(facts) = expected.holds.get(&id) else {
            failures.push(format!("hold {id} of no successful command"));
            continue;
        };
        if (original, executed, released) != (facts.original, facts.executed, facts.released) {
            failures.push(format!(
                "hold {id}: original {original}, executed {executed}, released {released}; \
                 the answers imply {}, {}, {}",
                facts.original, facts.executed, facts.released
            ));
        }
        let status = hold["status"].as_str().unwrap_or_default();
        if facts.cancelled != (status == "Cancelled")
            || (status == "Active") != (remaining > Decimal::ZERO)
        {
            failures.push(format!(
                "hold {id}: status {status} with {remaining} remaining"
            ));
        }
        if payee_legs.get(&id).copied().unwrap_or(0) != facts.payee_legs {
            failures.push(format!(
                "hold {id}: {:?} payee legs, {} paid",
                payee_legs.get(&id),
                facts.payee_legs
            ));
        }
    }
    for (id, facts) in &expected.holds {
        if facts.user.is_some() && !listed.contains(id) {
            failures.push(format!("hold {id} was created but is not listed"));
        }
    }
    Outcome {
        name: "every hold's amounts add up and match its answers",
        failures,
    }
}

fn points_add_up(expected: &Expected, shown: &Shown) -> Outcome {
    let mut failures = Vec::new();
    for (user, account) in &shown.points {
        let got = (
            account["availablePoints"].as_i64().unwrap_or(-1),
            account["pendingPoints"].as_i64().unwrap_or(-1),
        );
        let want = expected.points.get(user).copied().unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{user}: available, pending {got:?}; the answers imply {want:?}"
            ));
        }
        let mut running = 0i64;
        for t in &shown.point_transactions[user] {
            let points = t["points"].as_i64().unwrap_or_default();
            if matches!(
                t["type"].as_str(),
                Some("Earn" | "PendingConfirmed" | "Spend" | "Adjust")
            ) {
                running += points;
            }
            if t["balanceAfter"].as_i64() != Some(running) {
                failures.push(format!(
                    "{user}: point transaction {} says {}, runs to {running}",
                    t["id"], t["balanceAfter"]
                ));
            }
        }
        if running != got.0 {
            failures.push(format!(
                "{user}: point history runs to {running}, the account has {}",
                got.0
            ));
        }
    }
    Outcome {
        name: "every point account equals what its answers imply and its history adds up",
        failures,
    }
}

async fn feed_in_order(shown: &Shown, pool: &sqlx::PgPool) -> Outcome {
    let mut failures = Vec::new();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_events")
        .fetch_one(pool)
        .await
        .expect("count the events");
    if usize::try_from(stored).ok() != Some(shown.events.len()) {
        failures.push(format!(
            "{stored} events stored, {} in the feed",
            shown.events.len()
        ));
    }
    let mut ids = HashSet::new();
    let mut versions: HashMap<Uuid, u64> = HashMap::new();
    let mut named: HashMap<Uuid, usize> = HashMap::new();
    for (index, event) in shown.events.iter().enumerate() {
        if event["sequence"].as_u64() != Some(index as u64 + 1) {
            failures.push(format!(
                "event {index} of the feed has sequence {}",
                event["sequence"]
            ));
        }
        if !ids.insert(uuid(&event["id"])) {
            failures.push(format!("event {} appears twice", event["id"]));
        }
        let version = event["version"].as_u64().unwrap_or_default();
        let last = versions.entry(uuid(&event["aggregateId"])).or_default();
        if version < *last {
            failures.push(format!(
                "event {} at version {version} after {last}",
                event["id"]
            ));
        }
        *last = version;
        if let Some(id) = event["data"]["transactionId"]
            .as_str()
            .and_then(|s| s.parse().ok())
        {
            *named.entry(id).or_default() += 1;
        }
    }
    let raising = [
        "Deposit",
        "Withdraw",
        "HoldExecute",
        "TransferIn",
        "TransferOut",
        "Reversal",
    ];
    for transactions in shown.transactions.values() {
        for t in transactions {
            if raising.contains(&t["type"].as_str().unwrap_or_default()) {
                let id = uuid(&t["id"]);
                if named.get(&id) != Some(&1) {
                    failures.push(format!(
                        "transaction {id} is named by {:?} events",
                        named.get(&id)
                    ));
                }
            }
        }
    }
    Outcome {
        name: "the event feed has every event once, in order",
        failures,
    }
}

/// Totals a replay must not change: per currency, the rows and the events.
async fn totals(pool: &sqlx::PgPool) -> (Vec<(String, String)>, i64, i64) {
    let money: Vec<(String, String)> = sqlx::query_as(
        "SELECT currency, sum(balance)::text FROM wallet_items GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("the money");
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM wallet_transactions) + (SELECT count(*) FROM point_transactions)",
    )
    .fetch_one(pool)
    .await
    .expect("the rows");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_events")
        .fetch_one(pool)
        .await
        .expect("the events");
    (money, rows, events)
}

async fn replays(context: &Context, records: &[Record], api: &Api, shown: &Shown) -> Outcome {
    let pool = sqlx::PgPool::connect(&context.database_url)
        .await
        .expect("connect");
    let before = totals(&pool).await;
    let mut rng = Rng::new(context.seed ^ 0x5eed);
    let mut chosen: Vec<&Record> = records
        .iter()
        .filter(|r| r.done().is_some() && r.attempts > 1)
        .collect();
    let mut rest: Vec<&Record> = records
        .iter()
        .filter(|r| r.done().is_some() && r.attempts == 1)
        .collect();
    while chosen.len() < REPLAYS_MAX && !rest.is_empty() {
        let index = rng.index(rest.len());
        chosen.push(rest.swap_remove(index));
    }
    let failures = futures::future::join_all(
        chosen
            .chunks(chosen.len().div_ceil(REPLAY_CONCURRENCY).max(1))
            .map(|chunk| async {
                let mut failures = Vec::new();
                for (i, record) in chunk.iter().enumerate() {
                    let url = &context.urls[i % context.urls.len()];
                    if let Some(problem) = replay_one(&api.http, url, &context.tokens, record).await
                    {
                        failures.push(problem);
                    }
                }
                failures
            }),
    )
    .await
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    let mut failures = failures;
    let mut repeated = 0;
    for record in records {
        let (Some(first), Some(repeat)) = (record.done(), &record.repeat) else {
            continue;
        };
        repeated += 1;
        match repeat {
            Answer::Done {
                body,
                replayed: true,
            } if body == first => {}
            other => failures.push(format!(
                "{} {}: sent again during the load, answered {other:?}; first {first}",
                record.key, record.path
            )),
        }
    }
    println!("  {repeated} successful commands were sent again during the load");
    let after = totals(&pool).await;
    if before != after {
        failures.push(format!(
            "the replays changed the ledger: {before:?} -> {after:?}"
        ));
    }
    let events = api.feed().await.len();
    if events != shown.events.len() {
        failures.push(format!(
            "the replays added events: {} -> {events}",
            shown.events.len()
        ));
    }
    println!("  replayed {} successful commands", chosen.len());
    pool.close().await;
    Outcome {
        name: "replays answer the first result and change nothing",
        failures,
    }
}

async fn replay_one(
    http: &reqwest::Client,
    url: &str,
    tokens: &Tokens,
    record: &Record,
) -> Option<String> {
    let first = record.done()?;
    let response = http
        .post(format!("{url}{}", record.path))
        .bearer_auth(tokens.of(record.role))
        .header("Idempotency-Key", &record.key)
        .json(&record.request)
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            return Some(format!(
                "{} {}: no answer to the replay: {error}",
                record.key, record.path
            ))
        }
    };
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() || !replayed || &body != first {
        return Some(format!(
            "{} {}: replay answered {status} (replayed {replayed}) {body}, first {first}",
            record.key, record.path
        ));
    }
    None
}

async fn audit(pool: &sqlx::PgPool) -> Outcome {
    let report = wallet_pg::audit::audit(pool).await.expect("the audit runs");
    let failures = report
        .findings
        .iter()
        .map(|f| format!("[{}] {}: {}", f.check, f.subject, f.detail))
        .collect();
    Outcome {
        name: "the ledger audit finds nothing",
        failures,
    }
}
