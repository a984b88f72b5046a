//! Who may do what: the permission table of the service.
//!
//! The HTTP layer turns a verified token into an [`Actor`]; this module
//! decides. Roles are case-sensitive.

use uuid::Uuid;

use crate::command::Command;
use crate::error::WalletError;

/// Role name that may act on any user's wallet but not use admin routes.
pub const ROLE_SERVICE: &str = "Service";
/// Role names that may do everything.
pub const ROLES_ADMIN: [&str; 2] = ["Admin", "SuperAdmin"];

/// The caller, as established by authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Uuid,
    pub roles: Vec<String>,
}

/// Groups of operations that share a row of the permission table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads of a wallet, its transactions, holds, points.
    Read,
    /// Create a wallet or a point account.
    Create,
    /// Deposit.
    Deposit,
    /// Withdraw, exchange, create a hold, spend points.
    Spend,
    /// Transfer from the wallet to another user's.
    Transfer,
    /// Execute, release, cancel a hold; reverse a transaction; earn
    /// points; confirm or cancel pending points.
    Settle,
    /// Freeze, unfreeze, close, adjust points, list wallets, statistics, events.
    Admin,
}

impl Actor {
    /// Whether the actor has the Admin or SuperAdmin role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| ROLES_ADMIN.contains(&r.as_str()))
    }

    /// Whether the actor has the Service role.
    pub fn is_service(&self) -> bool {
        self.roles.iter().any(|r| r == ROLE_SERVICE)
    }

    /// Allows or refuses `access` to the wallet of `owner` (`None` for routes
    /// that name no user: the admin listing, statistics and events).
    pub fn authorize(&self, access: Access, owner: Option<Uuid>) -> Result<(), WalletError> {
        let allowed = if self.is_admin() {
            true
        } else {
            let own = owner == Some(self.user_id);
            match access {
                Access::Admin => false,
                Access::Read | Access::Create | Access::Spend | Access::Transfer => {
                    own || (owner.is_some() && self.is_service())
                }
                Access::Deposit | Access::Settle => owner.is_some() && self.is_service(),
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(WalletError::Forbidden)
        }
    }
}

/// The permission row of a command.
pub fn access_of(command: &Command) -> Access {
    match command {
        Command::CreateWallet { .. } | Command::CreatePointAccount { .. } => Access::Create,
        Command::Deposit { .. } => Access::Deposit,
        Command::Withdraw { .. }
        | Command::Exchange { .. }
        | Command::CreateHold { .. }
        | Command::SpendPoints { .. } => Access::Spend,
        Command::Transfer { .. } => Access::Transfer,
        Command::ExecuteHold { .. }
        | Command::ReleaseHold { .. }
        | Command::CancelHold { .. }
        | Command::ReverseTransaction { .. }
        | Command::EarnPoints { .. }
        | Command::ConfirmPendingPoints { .. }
        | Command::CancelPendingPoints { .. } => Access::Settle,
        Command::FreezeWallet { .. }
        | Command::UnfreezeWallet { .. }
        | Command::CloseWallet { .. }
        | Command::AdjustPoints { .. } => Access::Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(user_id: Uuid, roles: &[&str]) -> Actor {
        Actor {
            user_id,
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn the_permission_table() {
        let owner = Uuid::from_u128(1);
        let other = Uuid::from_u128(2);
        let accesses = [
            Access::Read,
            Access::Create,
            Access::Deposit,
            Access::Spend,
            Access::Transfer,
            Access::Settle,
            Access::Admin,
        ];
        // (caller, expected per access in the order above)
        let table: [(Actor, [bool; 7]); 6] = [
            (
                actor(owner, &[]),
                [true, true, false, true, true, false, false],
            ),
            (actor(other, &[]), [false; 7]),
            (
                actor(other, &["Service"]),
                [true, true, true, true, true, true, false],
            ),
            (actor(other, &["Admin"]), [true; 7]),
            (actor(other, &["SuperAdmin"]), [true; 7]),
            (actor(other, &["admin", "service"]), [false; 7]),
        ];
        for (caller, expected) in table {
            for (access, allowed) in accesses.iter().zip(expected) {
                assert_eq!(
                    caller.authorize(*access, Some(owner)).is_ok(),
                    allowed,
                    "{caller:?} {access:?}"
                );
            }
        }
        assert!(actor(owner, &["Service"])
            .authorize(Access::Admin, None)
            .is_err());
        assert!(actor(owner, &["Admin"])
            .authorize(Access::Admin, None)
            .is_ok());
    }
}
