//! Faucet grants: the signed word of the faucet a network spec names, that gives an identity
//! credits from the faucet pool.

use bincode::{Decode, Encode};

use crate::envelope::{Message, MessageKind};
use crate::{NodeId, Timestamp};

/// How old a grant may be when a node first checks it, in milliseconds (as for verdicts).
pub const GRANT_MAX_AGE_MS: u64 = 10 * 60_000;

/// How far in the future a grant's issue time may be (clock skew), in milliseconds.
pub const GRANT_MAX_SKEW_MS: u64 = 30_000;

/// A faucet's signed grant. It travels in an envelope like every message; its id is the hash
/// of that envelope ([`crate::GrantId`]). What it credits is decided by the book
/// ([`super::CreditBook::grant`]): never beyond the recipient's cap or the faucet pool.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct FaucetGrant {
    /// The faucet; must be the envelope's signer and the network spec's faucet.
    pub faucet: NodeId,
    /// Who receives the credits.
    pub recipient: NodeId,
    /// Credits asked for.
    pub amount: u64,
    /// When the faucet granted it.
    pub issued_at: Timestamp,
    /// Makes equal grants distinct.
    pub nonce: u64,
}

impl Message for FaucetGrant {
    const KIND: MessageKind = MessageKind::FaucetGrant;
    fn author(&self) -> &NodeId {
        &self.faucet
    }
}

/// Why a node refuses a grant before it reaches the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The grant's issue time is too far from the checker's clock.
    #[error("grant issued at {issued_at}, outside the window around now ({now})")]
    OutsideWindow {
        /// The grant's issue time.
        issued_at: Timestamp,
        /// The checker's time.
        now: Timestamp,
    },
}

impl FaucetGrant {
    /// The last time a book must remember this grant: after it, [`FaucetGrant::check_fresh`]
    /// refuses the grant anyway.
    pub fn expires_at(&self) -> Timestamp {
        self.issued_at.plus_ms(GRANT_MAX_AGE_MS)
    }

    /// Whether the grant's issue time is within [`GRANT_MAX_AGE_MS`] before and
    /// [`GRANT_MAX_SKEW_MS`] after `now`: the check a node makes when a grant first reaches it.
    pub fn check_fresh(&self, now: Timestamp) -> Result<(), GrantError> {
        let too_old = now.since(self.issued_at) > GRANT_MAX_AGE_MS;
        let too_new = self.issued_at.since(now) > GRANT_MAX_SKEW_MS;
        if too_old || too_new {
            return Err(GrantError::OutsideWindow {
                issued_at: self.issued_at,
                now,
            });
        }
        Ok(())
    }
}
