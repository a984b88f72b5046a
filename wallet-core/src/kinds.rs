//! The named kinds of the wallet's records: the statuses of wallets and
//! holds, the types of transactions and why held money was released.
//!
//! They live apart from the aggregate so that the events, which name them,
//! and the aggregate, which raises the events, do not import each other.

use serde::{Deserialize, Serialize};

/// Declares an enum of plain names once, with every variant (`ALL`), its
/// name (`as_str`, `Display`) and a case-insensitive `FromStr`, so that the
/// list of variants is written in one place.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),* $(,)? }) => {
        $(#[$meta])*
        pub enum $name {
            $($variant),*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The variant's name.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::WalletError;
            /// Parses the variant's name, case-insensitively.
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(text))
                    .ok_or_else(|| $crate::error::WalletError::Validation(format!(
                        "unknown {}: {}", stringify!($name), text.chars().take(32).collect::<String>()
                    )))
            }
        }
    };
}

/// The point account's kinds use it too.
pub(crate) use text_enum;

text_enum!(
    /// Status of a wallet; see the status table in the domain rules.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    WalletStatus { Active, Frozen, Closed }
);
text_enum!(
    /// Status of a hold. `Active` while money remains; the others are final.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    HoldStatus { Active, Executed, Released, Cancelled, Expired }
);
text_enum!(
    /// Kind of a wallet transaction, with the signs of its two changes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    TransactionType {
        Deposit, Withdraw, ExchangeIn, ExchangeOut, Hold, HoldExecute, HoldRelease, TransferIn,
        TransferOut, Reversal,
    }
);
text_enum!(
    /// Why held money went back to available.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    ReleaseCause { Release, Cancel, Expiry }
);
