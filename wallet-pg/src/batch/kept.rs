//! Kept wallets: each writer remembers the wallets its batches committed,
//! so that a batch whose one aggregate is such a wallet (the hot wallet)
//! needs no lock-and-load statement: its write's version check takes the
//! row lock and proves the copy is still the newest (see the design in
//! [`super`]). Everything that decides whether a kept copy may be trusted
//! (a new connection of the writers' pool, a named hold it does not hold
//! as active, a failed batch) lives here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use uuid::Uuid;
use wallet_core::{HoldStatus, Wallet};

/// The wallets a writer's batches committed, as a fresh load would give
/// them (every item, the active holds), so that a later batch on one of
/// them needs no lock-and-load statement (see the module docs). Bounded:
/// when full, an arbitrary wallet makes room.
pub(crate) struct WalletCache {
    wallets: HashMap<Uuid, Wallet>,
    capacity: usize,
    /// Connections the writers' pool has opened, and how many it had when
    /// these wallets were kept.
    connections: Arc<AtomicU64>,
    seen_connections: u64,
}

impl WalletCache {
    pub fn new(capacity: usize, connections: Arc<AtomicU64>) -> Self {
        let seen_connections = connections.load(Ordering::SeqCst);
        WalletCache {
            wallets: HashMap::new(),
            capacity,
            connections,
            seen_connections,
        }
    }

    /// Forgets every kept wallet if the pool has opened a connection since
    /// they were kept: the server may be another one (a failover, a
    /// restart) that lost commits the writer saw, and a version number it
    /// hands out again must not pass for the kept one. Called once the
    /// batch has its connection.
    pub fn check_connections(&mut self) {
        let now = self.connections.load(Ordering::SeqCst);
        if now != self.seen_connections {
            self.wallets.clear();
            self.seen_connections = now;
        }
    }

    /// Takes the user's kept wallet out, if it holds every hold of `named`
    /// as active (a fresh load would add the others, in whatever status
    /// they are). Taken, not copied: a batch that commits keeps its
    /// wallets again, and one that does not clears the cache.
    pub fn take(&mut self, user_id: Uuid, named: &[Uuid]) -> Option<Wallet> {
        let wallet = self.wallets.get(&user_id)?;
        let usable = named.iter().all(|id| {
            wallet
                .holds()
                .get(id)
                .is_some_and(|hold| hold.status == HoldStatus::Active)
        });
        if usable {
            self.wallets.remove(&user_id)
        } else {
            None
        }
    }

    /// Keeps a committed wallet (without its changes, which are written).
    pub fn keep(&mut self, mut wallet: Wallet) {
        if self.capacity == 0 {
            return;
        }
        if self.wallets.len() >= self.capacity && !self.wallets.contains_key(&wallet.user_id()) {
            if let Some(any) = self.wallets.keys().next().copied() {
                self.wallets.remove(&any);
            }
        }
        wallet.forget_ended_holds();
        wallet.forget_named_transactions();
        self.wallets.insert(wallet.user_id(), wallet);
    }

    pub fn clear(&mut self) {
        self.wallets.clear();
    }
}
