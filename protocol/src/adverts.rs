//! The advert book: the latest valid advert of each peer, with replay and expiry rules, and
//! room kept for providers with a track record.
//!
//! Identities are free, so the book never lets adverts of unknown peers push out those of
//! established ones. Each advertiser has a [`Tier`], which the caller derives from its
//! reputation table ([`Tier::of`]). When the book is full:
//! - a provider on probation may only replace another one on probation: the advert issued
//!   longest ago, and only if its own is newer. What an advert claims (lifetime, price,
//!   hardware) never buys it a place, since none of it is checked;
//! - an established provider or a trust root replaces a provider on probation first, then an
//!   advert of a lower tier, then one of its own tier that expires before its own.
//!
//! Providers on probation also never hold more than
//! [`AdvertBookConfig::probation_share_percent`] of the book, nor more than
//! [`AdvertBookConfig::max_probationers_per_range`] adverts from one [`AddressRange`], so
//! one host cannot fill even their share.

mod range;

use std::collections::{BTreeSet, HashMap};

pub use range::AddressRange;

use crate::envelope::Verified;
use crate::messages::{
    CapabilityAdvert, MAX_ADVERT_ADDRESS_LEN, MAX_ADVERT_ADDRESSES, Requirements,
};
use crate::reputation::ReputationTable;
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
    /// Largest share of [`AdvertBookConfig::max_entries`], in percent, that providers on
    /// probation may hold, so that the rest stays free for established ones. Values above
    /// 100 count as 100. Default: `50`.
    pub probation_share_percent: u8,
    /// Most adverts of providers on probation from one [`AddressRange`] (an IPv4 `/24`, an
    /// IPv6 `/48`, or all adverts without an IP address together). Established providers and
    /// trust roots are never capped by range. A test network whose nodes share one host needs
    /// more. Default: `8`.
    pub max_probationers_per_range: usize,
}

impl Default for AdvertBookConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_lifetime_ms: 3_600_000,
            max_clock_skew_ms: 30_000,
            probation_share_percent: 50,
            max_probationers_per_range: 8,
        }
    }
}

impl AdvertBookConfig {
    /// Most adverts of providers on probation held at once:
    /// [`AdvertBookConfig::probation_share_percent`] of [`AdvertBookConfig::max_entries`],
    /// rounded down.
    pub fn probation_capacity(&self) -> usize {
        let percent = usize::from(self.probation_share_percent.min(100));
        self.max_entries.saturating_mul(percent) / 100
    }
}

/// How far the book trusts an advertiser, lowest first. The caller derives it from its
/// reputation table with [`Tier::of`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Tier {
    /// On probation (see [`ReputationTable::on_probation`]): any fresh identity, and anyone
    /// (a root too) whose score fell below the initial one.
    Probation,
    /// Left probation by agreeing with accepted outcomes.
    Established,
    /// A trust root named in the network spec (see [`ReputationTable::is_root`]).
    Root,
}

impl Tier {
    /// The tier of `peer` in `reputation`.
    pub fn of(reputation: &ReputationTable, peer: &NodeId) -> Self {
        if reputation.on_probation(peer) {
            Tier::Probation
        } else if reputation.is_root(peer) {
            Tier::Root
        } else {
            Tier::Established
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
    /// The book is full of adverts this one may not replace: of higher tiers, or of its own
    /// tier and not worse (see the [module documentation](self)).
    #[error("advert book is full ({max} peers); try again once adverts expire")]
    BookFull {
        /// The capacity.
        max: usize,
    },
    /// The advertiser is on probation and the share of the book for providers on probation
    /// is full of adverts issued no earlier than this one.
    #[error("the {max} places for providers on probation are taken by newer adverts")]
    ProbationFull {
        /// Most adverts of providers on probation.
        max: usize,
    },
    /// The advertiser is on probation and its address range already holds the most adverts
    /// of providers on probation allowed.
    #[error("address range {range} already holds {max} adverts of providers on probation")]
    RangeFull {
        /// The advert's range.
        range: AddressRange,
        /// Most adverts of providers on probation per range.
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
            AdvertRejection::ProbationFull { .. } => "probation_full",
            AdvertRejection::RangeFull { .. } => "range_full",
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

/// One held advert, with what the book's rules need to know of it.
#[derive(Clone, Debug)]
struct Entry {
    advert: Verified<CapabilityAdvert>,
    tier: Tier,
    range: AddressRange,
    /// Its issue time, but never later than when it arrived (so a clock skew buys nothing).
    since: Timestamp,
}

impl Entry {
    fn expires_at(&self) -> Timestamp {
        self.advert.message().expires_at
    }
}

/// The latest valid advert of each peer.
#[derive(Clone, Debug, Default)]
pub struct AdvertBook {
    config: AdvertBookConfig,
    entries: HashMap<NodeId, Entry>,
    /// Every entry by expiry, for pruning.
    by_expiry: BTreeSet<(Timestamp, NodeId)>,
    /// Entries of providers on probation by `since`, oldest first.
    probation_by_age: BTreeSet<(Timestamp, NodeId)>,
    /// Entries of providers on probation per address range.
    probation_per_range: HashMap<AddressRange, usize>,
}

impl AdvertBook {
    /// An empty book.
    pub fn new(config: AdvertBookConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Checks and stores a verified advert. `tier_of` says how far its advertiser is trusted;
    /// the node passes `|peer| Tier::of(&reputation, peer)`.
    ///
    /// The tier is kept with the advert until the peer's next advert or
    /// [`AdvertBook::retier`].
    pub fn insert(
        &mut self,
        advert: Verified<CapabilityAdvert>,
        tier_of: impl FnOnce(&NodeId) -> Tier,
        now: Timestamp,
    ) -> Result<Inserted, AdvertRejection> {
        self.check(advert.message(), now)?;
        let a = advert.message();
        let peer = a.peer;
        if let Some(held) = self.entries.get(&peer) {
            let latest = held.advert.message().sequence;
            if a.sequence <= latest {
                return Err(AdvertRejection::Replayed {
                    sequence: a.sequence,
                    latest,
                });
            }
        }
        let entry = Entry {
            tier: tier_of(&peer),
            range: AddressRange::of(&a.addresses),
            since: a.issued_at.min(now),
            advert,
        };
        let victim = match self.make_room(peer, &entry) {
            Ok(None) => None,
            _ => {
                // Expired adverts go first; they are dropped only when room is needed.
                self.prune(now);
                self.make_room(peer, &entry)?
            }
        };
        if let Some(victim) = victim {
            self.remove(&victim);
        }
        let inserted = match self.remove(&peer) {
            Some(_) => Inserted::Updated,
            None => Inserted::New,
        };
        self.add(peer, entry);
        Ok(inserted)
    }

    /// The rules that hold for an advert on its own: expiry, issue time, addresses, lifetime.
    fn check(&self, a: &CapabilityAdvert, now: Timestamp) -> Result<(), AdvertRejection> {
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
        Ok(())
    }

    /// Whether `entry` of `peer` fits, and which advert it replaces if it needs a place. The
    /// peer's own held advert (if any) is about to be replaced, so it does not count.
    fn make_room(&self, peer: NodeId, entry: &Entry) -> Result<Option<NodeId>, AdvertRejection> {
        let held = self.entries.get(&peer);
        let len = self.entries.len() - usize::from(held.is_some());
        if entry.tier == Tier::Probation {
            return self.make_probation_room(peer, entry, held, len);
        }
        if len < self.config.max_entries {
            return Ok(None);
        }
        if let Some(&(_, victim)) = self.probation_by_age.iter().find(|(_, p)| *p != peer) {
            return Ok(Some(victim));
        }
        // Full of established providers and roots: a lower tier goes first, then whatever of
        // the newcomer's own tier expires soonest, if the newcomer outlives it.
        let lowest = self
            .entries
            .iter()
            .filter(|(p, e)| **p != peer && e.tier <= entry.tier)
            .min_by_key(|(p, e)| (e.tier, e.expires_at(), **p));
        match lowest {
            Some((p, e)) if e.tier < entry.tier || e.expires_at() < entry.expires_at() => {
                Ok(Some(*p))
            }
            _ => Err(AdvertRejection::BookFull {
                max: self.config.max_entries,
            }),
        }
    }

    /// [`AdvertBook::make_room`] for a provider on probation: within its range's cap and the
    /// probationers' share, replacing only the probationer's advert issued longest ago.
    fn make_probation_room(
        &self,
        peer: NodeId,
        entry: &Entry,
        held: Option<&Entry>,
        len: usize,
    ) -> Result<Option<NodeId>, AdvertRejection> {
        let held_probation = held.filter(|h| h.tier == Tier::Probation);
        let own_in_range = held_probation.is_some_and(|h| h.range == entry.range);
        let in_range = self.probationers_in(&entry.range) - usize::from(own_in_range);
        let max_in_range = self.config.max_probationers_per_range;
        if in_range >= max_in_range {
            return Err(AdvertRejection::RangeFull {
                range: entry.range,
                max: max_in_range,
            });
        }
        let probationers = self.probation_by_age.len() - usize::from(held_probation.is_some());
        let share = self.config.probation_capacity();
        if probationers < share && len < self.config.max_entries {
            return Ok(None);
        }
        let oldest = self.probation_by_age.iter().find(|(_, p)| *p != peer);
        match oldest {
            Some(&(since, victim)) if since < entry.since => Ok(Some(victim)),
            _ if probationers >= share => Err(AdvertRejection::ProbationFull { max: share }),
            _ => Err(AdvertRejection::BookFull {
                max: self.config.max_entries,
            }),
        }
    }

    fn probationers_in(&self, range: &AddressRange) -> usize {
        self.probation_per_range.get(range).copied().unwrap_or(0)
    }

    fn add(&mut self, peer: NodeId, entry: Entry) {
        self.by_expiry.insert((entry.expires_at(), peer));
        if entry.tier == Tier::Probation {
            self.probation_by_age.insert((entry.since, peer));
            *self.probation_per_range.entry(entry.range).or_insert(0) += 1;
        }
        self.entries.insert(peer, entry);
    }

    fn remove(&mut self, peer: &NodeId) -> Option<Entry> {
        let entry = self.entries.remove(peer)?;
        self.by_expiry.remove(&(entry.expires_at(), *peer));
        if entry.tier == Tier::Probation {
            self.probation_by_age.remove(&(entry.since, *peer));
            if let Some(count) = self.probation_per_range.get_mut(&entry.range) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.probation_per_range.remove(&entry.range);
                }
            }
        }
        Some(entry)
    }

    /// Sets each held advert's tier anew, after the reputation table changed (a checkpoint or
    /// a verdict); returns how many changed. Without it, a peer's tier is refreshed with its
    /// next advert. The caps bind new adverts only: a retiered book may briefly hold more
    /// providers on probation than its share.
    pub fn retier(&mut self, mut tier_of: impl FnMut(&NodeId) -> Tier) -> usize {
        let changed: Vec<(NodeId, Tier)> = self
            .entries
            .iter()
            .filter_map(|(peer, e)| {
                let tier = tier_of(peer);
                (tier != e.tier).then_some((*peer, tier))
            })
            .collect();
        for (peer, tier) in &changed {
            if let Some(mut entry) = self.remove(peer) {
                entry.tier = *tier;
                self.add(*peer, entry);
            }
        }
        changed.len()
    }

    /// Drops expired adverts; returns how many.
    ///
    /// A dropped peer's sequence number is forgotten, but any older advert of it has expired
    /// too unless it claimed a longer lifetime, which [`AdvertBookConfig::max_lifetime_ms`]
    /// bounds.
    pub fn prune(&mut self, now: Timestamp) -> usize {
        let expired: Vec<NodeId> = self
            .by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .map(|(_, peer)| *peer)
            .collect();
        for peer in &expired {
            self.remove(peer);
        }
        expired.len()
    }

    /// Every advert held, sorted by peer (expired ones included until pruned).
    pub fn all(&self) -> Vec<&CapabilityAdvert> {
        let mut all: Vec<&CapabilityAdvert> =
            self.entries.values().map(|e| e.advert.message()).collect();
        all.sort_by_key(|a| a.peer);
        all
    }

    /// Every advert held with its signature, in no particular order (expired ones included
    /// until pruned).
    pub fn verified(&self) -> impl Iterator<Item = &Verified<CapabilityAdvert>> {
        self.entries.values().map(|e| &e.advert)
    }

    /// The advert held for `peer`.
    pub fn get(&self, peer: &NodeId) -> Option<&Verified<CapabilityAdvert>> {
        self.entries.get(peer).map(|e| &e.advert)
    }

    /// The tier `peer`'s held advert was admitted with (or last [retiered](Self::retier)).
    pub fn tier(&self, peer: &NodeId) -> Option<Tier> {
        self.entries.get(peer).map(|e| e.tier)
    }

    /// Number of peers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Number of peers held whose tier is [`Tier::Probation`].
    pub fn probationers(&self) -> usize {
        self.probation_by_age.len()
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
            .map(|e| e.advert.message())
            .filter(|a| a.expires_at > now && requirements.matches(a))
            .collect();
        found.sort_by_key(|a| a.peer);
        found
    }
}
