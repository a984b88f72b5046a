//! The clients of the bank test: commands drawn at random, each with its
//! own idempotency key, sent to either instance and retried with that key
//! until a definite answer (a success or a refusal), and recorded with it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::idp::{Claims, Idp};
use crate::Options;

/// The longest one command is retried before it counts as undecided.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// The client's wait for one answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const BACKOFF_MAX: Duration = Duration::from_millis(1000);
/// One successful command in this many is sent again with its key.
const REPEAT_ONE_IN: u64 = 20;
/// The most transactions kept for reversals to draw from (a full pool
/// forgets one at random for each new one).
const REVERSIBLE_MAX: usize = 500;
/// What each user starts with.
const OPENING_USD: &str = "1000.00";
const OPENING_VND: &str = "5000000";

/// The refusals a correct service may give to the commands drawn here.
pub const EXPECTED_REFUSALS: &[&str] = &[
    "insufficient_funds",
    "amount_exceeds_hold",
    "hold_not_active",
    "amount_too_small",
    "insufficient_points",
    "lot_not_pending",
    // A reversal of what earlier reversals have already given back in full.
    "reversal_exceeds_original",
];

/// A seedable generator: a run can be repeated with `--seed`.
#[derive(Debug, Clone)]
pub struct Rng(fastrand::Rng);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(fastrand::Rng::with_seed(seed))
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0.u64(low..=high)
    }

    /// An index into a non-empty list of `len` items.
    pub fn index(&mut self, len: usize) -> usize {
        self.0.usize(..len)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }
}

/// Nanoseconds of the clock, to seed a run that names no seed.
pub fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// What a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    OpenWallet,
    OpenPoints,
    Deposit,
    Withdraw,
    Exchange,
    Transfer,
    Hold,
    Execute,
    Payout,
    Release,
    Cancel,
    Earn,
    EarnPending,
    Confirm,
    CancelLot,
    Spend,
    Adjust,
    /// A reversal of a deposit, a withdrawal or a transfer, in full or in
    /// part (a transfer's through the payer's id).
    Reverse,
}

/// The kinds drawn during the load, with their weights.
const MIX: &[(Kind, u64)] = &[
    (Kind::Deposit, 10),
    (Kind::Withdraw, 8),
    (Kind::Exchange, 5),
    (Kind::Transfer, 20),
    (Kind::Hold, 10),
    (Kind::Execute, 7),
    (Kind::Payout, 6),
    (Kind::Release, 5),
    (Kind::Cancel, 3),
    (Kind::Earn, 6),
    (Kind::EarnPending, 3),
    (Kind::Confirm, 3),
    (Kind::CancelLot, 1),
    (Kind::Spend, 5),
    (Kind::Adjust, 2),
    (Kind::Reverse, 6),
];

/// Who sends a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Service,
    Admin,
}

/// The tokens of the run, valid for all of it.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub service: String,
    pub admin: String,
}

impl Tokens {
    pub fn new(idp: &Idp, seconds: u64) -> Self {
        let token = |roles: &[&str]| {
            let mut claims = Claims::new(idp, Uuid::now_v7(), roles);
            let lifetime = i64::try_from(seconds).unwrap_or(i64::MAX / 2);
            claims.exp = claims.exp.saturating_add(lifetime.saturating_add(3600));
            claims.sign()
        };
        Tokens {
            service: token(&["Service"]),
            admin: token(&["Admin"]),
        }
    }

    pub fn of(&self, role: Role) -> &str {
        match role {
            Role::Service => &self.service,
            Role::Admin => &self.admin,
        }
    }
}

/// The definite (or missing) answer to a command.
#[derive(Debug, Clone)]
pub enum Answer {
    Done {
        body: Value,
        /// The answer carried `Idempotent-Replayed: true`.
        replayed: bool,
    },
    Refused {
        status: u16,
        code: String,
    },
    /// No definite answer within [`COMMAND_DEADLINE`].
    Undecided {
        last: String,
    },
}

/// A command as sent, and its answer.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: Kind,
    pub user: Uuid,
    pub key: String,
    pub path: String,
    pub role: Role,
    pub request: Value,
    pub answer: Answer,
    pub attempts: u32,
    /// Answers a correct service never gives (a 500, a 401, ...).
    pub unexpected: Vec<String>,
    /// The answer to the same command sent again with its key after its
    /// success (as a client does whose answer was late): one success in
    /// [`REPEAT_ONE_IN`] is.
    pub repeat: Option<Answer>,
}

impl Record {
    pub fn done(&self) -> Option<&Value> {
        match &self.answer {
            Answer::Done { body, .. } => Some(body),
            _ => None,
        }
    }
}

/// A hold a client may act on next (taken out while one does).
#[derive(Debug, Clone)]
struct OpenHold {
    user: Uuid,
    id: Uuid,
    remaining: Decimal,
}

/// A transaction a reversal may name: its wallet's user, its id, and its
/// amount in the smallest units of its currency (cents of USD, VND).
#[derive(Debug, Clone)]
struct Reversible {
    user: Uuid,
    id: Uuid,
    currency: &'static str,
    units: u64,
}

impl Reversible {
    /// The transaction of a successful deposit, withdrawal or transfer.
    fn of(record: &Record, body: &Value) -> Option<Self> {
        if !matches!(record.kind, Kind::Deposit | Kind::Withdraw | Kind::Transfer) {
            return None;
        }
        let transaction = &body["transaction"];
        let id = transaction["id"].as_str()?.parse().ok()?;
        let amount: Decimal = transaction["amount"].as_str()?.parse().ok()?;
        let (currency, scale) = match transaction["currency"].as_str()? {
            "USD" => ("USD", Decimal::from(100)),
            "VND" => ("VND", Decimal::ONE),
            _ => return None,
        };
        let units = (amount.abs() * scale).trunc().try_into().ok()?;
        Some(Reversible {
            user: record.user,
            id,
            currency,
            units,
        })
    }
}

/// The clients and what they share.
pub struct Clients {
    http: reqwest::Client,
    urls: Vec<String>,
    tokens: Tokens,
    users: Vec<Uuid>,
    holds: Mutex<Vec<OpenHold>>,
    lots: Mutex<Vec<(Uuid, Uuid)>>,
    reversible: Mutex<Vec<Reversible>>,
    opening: Mutex<Vec<Record>>,
    clients: usize,
    seed: u64,
}

/// A command to send.
struct Request {
    kind: Kind,
    user: Uuid,
    path: String,
    role: Role,
    body: Value,
    /// The hold or lot taken out of the shared pool for it.
    hold: Option<OpenHold>,
    lot: Option<(Uuid, Uuid)>,
}

fn usd(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl Clients {
    pub fn new(urls: Vec<String>, tokens: Tokens, options: &Options) -> Arc<Self> {
        Arc::new(Clients {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("an HTTP client"),
            urls,
            tokens,
            users: (0..options.users).map(|_| Uuid::now_v7()).collect(),
            holds: Mutex::new(Vec::new()),
            lots: Mutex::new(Vec::new()),
            reversible: Mutex::new(Vec::new()),
            opening: Mutex::new(Vec::new()),
            clients: options.clients,
            seed: options.seed,
        })
    }

    pub fn users(&self) -> Vec<Uuid> {
        self.users.clone()
    }

    /// A wallet, a point account and the opening deposits of every user,
    /// before the load (and its faults) begins.
    pub async fn open_accounts(self: &Arc<Self>) {
        let mut rng = Rng::new(self.seed);
        for &user in &self.users {
            let wallet = format!("/api/v1/wallets/{user}");
            let steps = [
                (
                    Kind::OpenWallet,
                    "/api/v1/wallets".to_owned(),
                    json!({"userId": user}),
                ),
                (Kind::OpenPoints, format!("{wallet}/points"), json!({})),
                (
                    Kind::Deposit,
                    format!("{wallet}/deposit"),
                    json!({"amount": OPENING_USD, "currency": "USD"}),
                ),
                (
                    Kind::Deposit,
                    format!("{wallet}/deposit"),
                    json!({"amount": OPENING_VND, "currency": "VND"}),
                ),
            ];
            for (kind, path, body) in steps {
                let request = Request {
                    kind,
                    user,
                    path,
                    role: Role::Service,
                    body,
                    hold: None,
                    lot: None,
                };
                let record = self.send(&mut rng, request).await.0;
                assert!(record.done().is_some(), "opening {user}: {record:?}");
                self.opening.lock().expect("opening").push(record);
            }
        }
    }

    /// Runs every client until `deadline`; the records of all commands,
    /// the opening ones first.
    pub async fn run_until(self: &Arc<Self>, deadline: Instant) -> Vec<Record> {
        let tasks: Vec<_> = (0..self.clients)
            .map(|index| {
                let clients = Arc::clone(self);
                tokio::spawn(async move {
                    let mut rng = Rng::new(clients.seed.wrapping_add(1 + index as u64));
                    let mut records = Vec::new();
                    while Instant::now() < deadline {
                        let request = clients.draw(&mut rng);
                        let (mut record, hold, lot) = clients.send(&mut rng, request).await;
                        if record.done().is_some() && rng.between(1, REPEAT_ONE_IN) == 1 {
                            record.repeat = Some(clients.resend(&mut rng, &record).await);
                        }
                        clients.give_back(&record, hold, lot);
                        records.push(record);
                    }
                    records
                })
            })
            .collect();
        let mut all = std::mem::take(&mut *self.opening.lock().expect("opening"));
        for task in tasks {
            all.extend(task.await.expect("a client"));
        }
        all
    }

    fn take_hold(&self, rng: &mut Rng) -> Option<OpenHold> {
        let mut holds = self.holds.lock().expect("holds");
        if holds.is_empty() {
            return None;
        }
        let index = rng.index(holds.len());
        Some(holds.swap_remove(index))
    }

    fn take_lot(&self, rng: &mut Rng) -> Option<(Uuid, Uuid)> {
        let mut lots = self.lots.lock().expect("lots");
        if lots.is_empty() {
            return None;
        }
        let index = rng.index(lots.len());
        Some(lots.swap_remove(index))
    }

    /// A transaction to reverse (left in the pool: it may be reversed
    /// again, in part, until its amount is given back).
    fn pick_reversible(&self, rng: &mut Rng) -> Option<Reversible> {
        let reversible = self.reversible.lock().expect("reversible");
        if reversible.is_empty() {
            return None;
        }
        Some(reversible[rng.index(reversible.len())].clone())
    }

    fn other_user(&self, rng: &mut Rng, not: Uuid) -> Uuid {
        loop {
            let user = *rng.pick(&self.users);
            if user != not {
                return user;
            }
        }
    }

    fn draw_kind(rng: &mut Rng) -> Kind {
        let total: u64 = MIX.iter().map(|(_, w)| w).sum();
        let mut at = rng.between(0, total - 1);
        for (kind, weight) in MIX {
            if at < *weight {
                return *kind;
            }
            at -= weight;
        }
        Kind::Deposit
    }

    /// The next command of a client.
    fn draw(&self, rng: &mut Rng) -> Request {
        let kind = Self::draw_kind(rng);
        if matches!(
            kind,
            Kind::Execute | Kind::Payout | Kind::Release | Kind::Cancel
        ) {
            if let Some(hold) = self.take_hold(rng) {
                return self.hold_command(rng, kind, hold);
            }
        }
        if kind == Kind::Reverse {
            if let Some(original) = self.pick_reversible(rng) {
                return Self::reversal(rng, original);
            }
        }
        if matches!(kind, Kind::Confirm | Kind::CancelLot) {
            if let Some(lot) = self.take_lot(rng) {
                let action = if kind == Kind::Confirm {
                    "confirm"
                } else {
                    "cancel"
                };
                return Request {
                    kind,
                    user: lot.0,
                    path: format!("/api/v1/wallets/{}/points/lots/{}/{action}", lot.0, lot.1),
                    role: Role::Service,
                    body: json!({}),
                    hold: None,
                    lot: Some(lot),
                };
            }
        }
        self.money_or_points_command(rng, kind)
    }

    fn money_or_points_command(&self, rng: &mut Rng, kind: Kind) -> Request {
        let user = *rng.pick(&self.users);
        let wallet = format!("/api/v1/wallets/{user}");
        let currency = *rng.pick(&["USD", "VND"]);
        let amount = match currency {
            "USD" => usd(rng.between(1, 8_000)),
            _ => rng.between(1_000, 400_000).to_string(),
        };
        let (kind, path, role, body) = match kind {
            Kind::Deposit | Kind::Withdraw => {
                let action = if kind == Kind::Deposit {
                    "deposit"
                } else {
                    "withdraw"
                };
                let body = json!({"amount": amount, "currency": currency});
                (kind, format!("{wallet}/{action}"), Role::Service, body)
            }
            Kind::Exchange => {
                let (amount, from, to) = match currency {
                    "USD" => (usd(rng.between(1, 5_000)), "USD", "VND"),
                    _ => (rng.between(10_000, 900_000).to_string(), "VND", "USD"),
                };
                let body = json!({"amount": amount, "fromCurrency": from, "toCurrency": to});
                (kind, format!("{wallet}/exchange"), Role::Service, body)
            }
            Kind::Transfer => {
                let to = self.other_user(rng, user);
                let body = json!({"toUserId": to, "amount": amount, "currency": currency});
                (kind, format!("{wallet}/transfers"), Role::Service, body)
            }
            Kind::Earn | Kind::EarnPending | Kind::Confirm | Kind::CancelLot => {
                let pending = kind != Kind::Earn;
                let kind = if pending {
                    Kind::EarnPending
                } else {
                    Kind::Earn
                };
                let body = json!({"points": rng.between(1, 500), "source": "purchase",
                                  "pending": pending});
                (kind, format!("{wallet}/points/earn"), Role::Service, body)
            }
            Kind::Spend => {
                let body = json!({"points": rng.between(1, 300), "source": "checkout"});
                (kind, format!("{wallet}/points/spend"), Role::Service, body)
            }
            Kind::Adjust => {
                let size = rng.between(1, 100) as i64;
                let delta = if rng.between(1, 3) == 1 { -size } else { size };
                let body = json!({"points": delta, "source": "support"});
                (kind, format!("{wallet}/points/adjust"), Role::Admin, body)
            }
            // A hold, and what finds no open hold to act on.
            _ => {
                let body = json!({"amount": usd(rng.between(100, 20_000)), "currency": "USD",
                                  "referenceType": "order", "referenceId": Uuid::new_v4()});
                (Kind::Hold, format!("{wallet}/holds"), Role::Service, body)
            }
        };
        Request {
            kind,
            user,
            path,
            role,
            body,
            hold: None,
            lot: None,
        }
    }

    /// A reversal of `original`: of all that is left of it one time in
    /// three (no amount), else of a part of its amount (which earlier
    /// reversals may have given back already).
    fn reversal(rng: &mut Rng, original: Reversible) -> Request {
        let mut body = json!({"reason": "refund"});
        if rng.between(1, 3) != 1 {
            let part = rng.between(1, original.units.max(1));
            body["amount"] = match original.currency {
                "USD" => json!(usd(part)),
                _ => json!(part.to_string()),
            };
        }
        Request {
            kind: Kind::Reverse,
            user: original.user,
            path: format!(
                "/api/v1/wallets/{}/transactions/{}/reverse",
                original.user, original.id
            ),
            role: Role::Service,
            body,
            hold: None,
            lot: None,
        }
    }

    fn hold_command(&self, rng: &mut Rng, kind: Kind, hold: OpenHold) -> Request {
        let base = format!("/api/v1/wallets/{}/holds/{}", hold.user, hold.id);
        let remaining_cents = (hold.remaining * Decimal::from(100))
            .trunc()
            .try_into()
            .unwrap_or(1u64)
            .max(1);
        let part = |rng: &mut Rng| {
            // Often all that remains, else a part of it.
            if rng.between(1, 3) == 1 {
                remaining_cents
            } else {
                rng.between(1, remaining_cents)
            }
        };
        let (path, body) = match kind {
            Kind::Execute => (format!("{base}/execute"), json!({"amount": usd(part(rng))})),
            Kind::Release => (format!("{base}/release"), json!({"amount": usd(part(rng))})),
            Kind::Payout => {
                let mut left = part(rng);
                let mut payees = Vec::new();
                let mut chosen = Vec::new();
                for _ in 0..rng.between(1, 3) {
                    let payee = self.other_user(rng, hold.user);
                    if left == 0 || chosen.contains(&payee) {
                        continue;
                    }
                    let share = rng.between(1, left);
                    left -= share;
                    chosen.push(payee);
                    payees.push(json!({"userId": payee, "amount": usd(share)}));
                }
                (format!("{base}/execute"), json!({"payees": payees}))
            }
            _ => (format!("{base}/cancel"), json!({})),
        };
        Request {
            kind,
            user: hold.user,
            path,
            role: Role::Service,
            body,
            hold: Some(hold),
            lot: None,
        }
    }

    /// Puts back what a command took from the pools, as its answer left
    /// it, and adds what it made (a hold, a pending lot).
    fn give_back(&self, record: &Record, hold: Option<OpenHold>, lot: Option<(Uuid, Uuid)>) {
        let open = |body: &Value| -> Option<OpenHold> {
            let remaining = body["remainingAmount"].as_str()?.parse().ok()?;
            let id = body["id"].as_str()?.parse().ok()?;
            (body["status"] == "Active").then_some(OpenHold {
                user: record.user,
                id,
                remaining,
            })
        };
        match (&record.answer, hold) {
            (Answer::Done { body, .. }, _) if record.kind == Kind::Hold => {
                self.holds.lock().expect("holds").extend(open(body));
            }
            (Answer::Done { body, .. }, Some(_)) => {
                self.holds.lock().expect("holds").extend(open(body));
            }
            (Answer::Refused { code, .. }, Some(hold)) if code != "hold_not_active" => {
                self.holds.lock().expect("holds").push(hold);
            }
            _ => {}
        }
        if let Some(original) = record.done().and_then(|body| Reversible::of(record, body)) {
            let mut reversible = self.reversible.lock().expect("reversible");
            if reversible.len() >= REVERSIBLE_MAX {
                let forget =
                    usize::try_from(original.id.as_u128() % REVERSIBLE_MAX as u128).unwrap_or(0);
                reversible.swap_remove(forget);
            }
            reversible.push(original);
        }
        if let (Answer::Done { body, .. }, Kind::EarnPending) = (&record.answer, record.kind) {
            if let Some(id) = body["lotId"].as_str().and_then(|t| t.parse().ok()) {
                self.lots.lock().expect("lots").push((record.user, id));
            }
        }
        if let (Answer::Refused { code, .. }, Some(lot)) = (&record.answer, lot) {
            if code != "lot_not_pending" {
                self.lots.lock().expect("lots").push(lot);
            }
        }
    }

    /// Sends a command with a new key and retries it with that key until
    /// a definite answer.
    async fn send(
        &self,
        rng: &mut Rng,
        request: Request,
    ) -> (Record, Option<OpenHold>, Option<(Uuid, Uuid)>) {
        let key = format!("bank-{}", Uuid::new_v4());
        let mut record = Record {
            kind: request.kind,
            user: request.user,
            key,
            path: request.path,
            role: request.role,
            request: request.body,
            answer: Answer::Undecided {
                last: String::new(),
            },
            attempts: 0,
            unexpected: Vec::new(),
            repeat: None,
        };
        let (answer, attempts, unexpected) = self.until_definite(rng, &record).await;
        record.answer = answer;
        record.attempts = attempts;
        record.unexpected = unexpected;
        (record, request.hold, request.lot)
    }

    /// The command of `record` again, with its key, until a definite answer.
    async fn resend(&self, rng: &mut Rng, record: &Record) -> Answer {
        let (answer, _, unexpected) = self.until_definite(rng, record).await;
        match unexpected.first() {
            Some(problem) => Answer::Undecided {
                last: problem.clone(),
            },
            None => answer,
        }
    }

    /// Attempts until a definite answer (or [`COMMAND_DEADLINE`]): the
    /// answer, the attempts and the answers a correct service never gives.
    async fn until_definite(&self, rng: &mut Rng, record: &Record) -> (Answer, u32, Vec<String>) {
        let started = Instant::now();
        let mut unexpected = Vec::new();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let url = rng.pick(&self.urls).clone();
            match self.attempt(&url, record).await {
                Attempt::Definite(answer) => return (answer, attempts, unexpected),
                Attempt::Again(reason) => {
                    if reason.starts_with("HTTP 5") && !reason.starts_with("HTTP 503") {
                        unexpected.push(reason.clone());
                    }
                    if started.elapsed() > COMMAND_DEADLINE {
                        return (Answer::Undecided { last: reason }, attempts, unexpected);
                    }
                }
            }
            let step = 20u64 << attempts.min(6);
            let wait = Duration::from_millis(rng.between(step / 2, step)).min(BACKOFF_MAX);
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, url: &str, record: &Record) -> Attempt {
        let sent = self
            .http
            .post(format!("{url}{}", record.path))
            .bearer_auth(self.tokens.of(record.role))
            .header("Idempotency-Key", &record.key)
            .json(&record.request)
            .timeout(ATTEMPT_TIMEOUT)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Attempt::Again(format!("no answer: {error}")),
        };
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(error) => return Attempt::Again(format!("HTTP {status}, body cut: {error}")),
        };
        let code = body["code"].as_str().unwrap_or_default().to_owned();
        match status {
            200..=299 => Attempt::Definite(Answer::Done { body, replayed }),
            409 if code == "idempotency_key_in_flight" || code == "concurrency_conflict" => {
                Attempt::Again(format!("HTTP 409 {code}"))
            }
            500..=599 => Attempt::Again(format!("HTTP {status} {code}")),
            _ => Attempt::Definite(Answer::Refused { status, code }),
        }
    }
}

enum Attempt {
    Definite(Answer),
    Again(String),
}
