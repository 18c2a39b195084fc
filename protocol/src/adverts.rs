//! The advert book: the latest valid advert of each peer, with replay and expiry rules.

use std::collections::HashMap;

use crate::envelope::Verified;
use crate::messages::{
    CapabilityAdvert, MAX_ADVERT_ADDRESS_LEN, MAX_ADVERT_ADDRESSES, Requirements,
};
use crate::{NodeId, Timestamp};

/// The advert book's limits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AdvertBookConfig {
    /// Most peers held at once. Default: `10_000`.
    pub max_entries: usize,
    /// Longest lifetime an advert may claim, in milliseconds. Default: one hour.
    pub max_lifetime_ms: u64,
    /// How far in the future an advert's issue time may be (clock skew), in milliseconds.
    /// Default: 30 seconds.
    pub max_clock_skew_ms: u64,
}

impl Default for AdvertBookConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_lifetime_ms: 3_600_000,
            max_clock_skew_ms: 30_000,
        }
    }
}

/// Why an advert was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdvertRejection {
    /// The advert has expired.
    #[error("advert expired at {expires_at} (now {now})")]
    Expired {
        /// Its expiry.
        expires_at: Timestamp,
        /// The time of the check.
        now: Timestamp,
    },
    /// A newer or equal advert of the same peer is already held.
    #[error("advert sequence {sequence} is not above the latest seen, {latest}")]
    Replayed {
        /// The advert's sequence number.
        sequence: u64,
        /// The latest sequence number held.
        latest: u64,
    },
    /// The advert claims to be issued in the future beyond the allowed clock skew.
    #[error("advert issued at {issued_at}, too far after now ({now})")]
    FromTheFuture {
        /// Its issue time.
        issued_at: Timestamp,
        /// The time of the check.
        now: Timestamp,
    },
    /// The advert claims a lifetime longer than allowed.
    #[error("advert lifetime {lifetime_ms} ms exceeds the maximum {max_ms} ms")]
    LifetimeTooLong {
        /// Claimed lifetime.
        lifetime_ms: u64,
        /// The maximum.
        max_ms: u64,
    },
    /// The advert lists too many addresses, or one too long.
    #[error("advert addresses exceed {max} of {max_len} bytes each")]
    Addresses {
        /// Most addresses allowed.
        max: usize,
        /// Longest address allowed.
        max_len: usize,
    },
    /// The book is full of adverts that outlive this one.
    #[error("advert book is full ({max} peers)")]
    BookFull {
        /// The capacity.
        max: usize,
    },
}

impl AdvertRejection {
    /// A stable, short label of the cause, for counting rejections by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            AdvertRejection::Expired { .. } => "expired",
            AdvertRejection::Replayed { .. } => "replayed",
            AdvertRejection::FromTheFuture { .. } => "from_the_future",
            AdvertRejection::LifetimeTooLong { .. } => "lifetime_too_long",
            AdvertRejection::Addresses { .. } => "addresses",
            AdvertRejection::BookFull { .. } => "book_full",
        }
    }
}

/// What an accepted advert did to the book.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Inserted {
    /// First advert held for this peer.
    New,
    /// Replaced an older advert of this peer.
    Updated,
}

/// The latest valid advert of each peer.
#[derive(Clone, Debug, Default)]
pub struct AdvertBook {
    config: AdvertBookConfig,
    entries: HashMap<NodeId, Verified<CapabilityAdvert>>,
}

impl AdvertBook {
    /// An empty book.
    pub fn new(config: AdvertBookConfig) -> Self {
        Self {
            config,
            entries: HashMap::new(),
        }
    }

    /// Checks and stores a verified advert.
    pub fn insert(
        &mut self,
        advert: Verified<CapabilityAdvert>,
        now: Timestamp,
    ) -> Result<Inserted, AdvertRejection> {
        let a = advert.message();
        if a.expires_at <= now {
            return Err(AdvertRejection::Expired {
                expires_at: a.expires_at,
                now,
            });
        }
        if a.issued_at > now.plus_ms(self.config.max_clock_skew_ms) {
            return Err(AdvertRejection::FromTheFuture {
                issued_at: a.issued_at,
                now,
            });
        }
        if a.addresses.len() > MAX_ADVERT_ADDRESSES
            || a.addresses.iter().any(|x| x.len() > MAX_ADVERT_ADDRESS_LEN)
        {
            return Err(AdvertRejection::Addresses {
                max: MAX_ADVERT_ADDRESSES,
                max_len: MAX_ADVERT_ADDRESS_LEN,
            });
        }
        let lifetime_ms = a.expires_at.since(a.issued_at);
        if lifetime_ms > self.config.max_lifetime_ms {
            let max_ms = self.config.max_lifetime_ms;
            return Err(AdvertRejection::LifetimeTooLong {
                lifetime_ms,
                max_ms,
            });
        }
        if let Some(held) = self.entries.get(&a.peer) {
            let latest = held.message().sequence;
            if a.sequence <= latest {
                return Err(AdvertRejection::Replayed {
                    sequence: a.sequence,
                    latest,
                });
            }
            self.entries.insert(a.peer, advert);
            return Ok(Inserted::Updated);
        }
        if self.entries.len() >= self.config.max_entries {
            self.prune(now);
        }
        if self.entries.len() >= self.config.max_entries {
            self.evict_soonest_expiring(a.expires_at)?;
        }
        self.entries.insert(a.peer, advert);
        Ok(Inserted::New)
    }

    fn evict_soonest_expiring(&mut self, than: Timestamp) -> Result<(), AdvertRejection> {
        let soonest = self
            .entries
            .iter()
            .min_by_key(|(_, v)| v.message().expires_at);
        match soonest {
            Some((peer, held)) if held.message().expires_at < than => {
                let peer = *peer;
                self.entries.remove(&peer);
                Ok(())
            }
            _ => Err(AdvertRejection::BookFull {
                max: self.config.max_entries,
            }),
        }
    }

    /// Drops expired adverts; returns how many.
    ///
    /// A dropped peer's sequence number is forgotten, but any older advert of it has expired
    /// too unless it claimed a longer lifetime, which [`AdvertBookConfig::max_lifetime_ms`]
    /// bounds.
    pub fn prune(&mut self, now: Timestamp) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, v| v.message().expires_at > now);
        before - self.entries.len()
    }

    /// Every advert held, sorted by peer (expired ones included until pruned).
    pub fn all(&self) -> Vec<&CapabilityAdvert> {
        let mut all: Vec<&CapabilityAdvert> =
            self.entries.values().map(Verified::message).collect();
        all.sort_by_key(|a| a.peer);
        all
    }

    /// Every advert held with its signature, in no particular order (expired ones included
    /// until pruned).
    pub fn verified(&self) -> impl Iterator<Item = &Verified<CapabilityAdvert>> {
        self.entries.values()
    }

    /// The advert held for `peer`.
    pub fn get(&self, peer: &NodeId) -> Option<&Verified<CapabilityAdvert>> {
        self.entries.get(peer)
    }

    /// Number of peers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Unexpired adverts that meet `requirements`, sorted by peer.
    pub fn matching(&self, requirements: &Requirements, now: Timestamp) -> Vec<&CapabilityAdvert> {
        let mut found: Vec<&CapabilityAdvert> = self
            .entries
            .values()
            .map(Verified::message)
            .filter(|a| a.expires_at > now && requirements.matches(a))
            .collect();
        found.sort_by_key(|a| a.peer);
        found
    }
}
