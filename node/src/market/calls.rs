//! The calls for bids a provider has bid on, kept until their award arrives or their bid
//! expires (finding M7).
//!
//! A call costs its sender nothing, so the table is bounded three ways: expired bids are
//! forgotten first; one requester may hold at most [`MAX_CALLS_PER_REQUESTER`]; and when the
//! table is full new calls are declined rather than evicting open ones, so a flood of calls
//! never cancels a bid this node already made.

use std::collections::{HashMap, VecDeque};

use cairn_protocol::{JobId, JobSpec, NodeId, Timestamp};

/// Open calls remembered in all.
pub(super) const MAX_OPEN_CALLS: usize = 4096;

/// Open calls remembered per requester.
pub(super) const MAX_CALLS_PER_REQUESTER: usize = 1024;

/// Why a call is not remembered (and so not bid on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Full {
    /// The requester holds its share.
    #[error("this node holds {MAX_CALLS_PER_REQUESTER} open calls for bids from this requester")]
    Requester,
    /// The table is full of unexpired bids.
    #[error("this node holds {MAX_OPEN_CALLS} open calls for bids; try later")]
    Table,
}

/// An open call: its spec, and when this node's bid expires.
struct Call {
    spec: JobSpec,
    bid_expires_at: Timestamp,
}

/// The open calls, with their arrival order for forgetting expired ones.
#[derive(Default)]
pub(super) struct OpenCalls {
    calls: HashMap<JobId, Call>,
    /// Oldest first; an id here may have been taken already.
    order: VecDeque<JobId>,
    per_requester: HashMap<NodeId, usize>,
}

impl OpenCalls {
    /// Remembers `spec` (job `job`) with this node's bid expiring at `bid_expires_at`, after
    /// forgetting the bids expired at `now`; a call already held keeps its place.
    pub(super) fn remember(
        &mut self,
        job: JobId,
        spec: &JobSpec,
        bid_expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), Full> {
        self.forget_expired(now);
        if let Some(call) = self.calls.get_mut(&job) {
            call.bid_expires_at = bid_expires_at;
            return Ok(());
        }
        let held = self
            .per_requester
            .get(&spec.requester)
            .copied()
            .unwrap_or(0);
        if held >= MAX_CALLS_PER_REQUESTER {
            return Err(Full::Requester);
        }
        if self.calls.len() >= MAX_OPEN_CALLS {
            return Err(Full::Table);
        }
        *self.per_requester.entry(spec.requester).or_default() += 1;
        self.calls.insert(
            job,
            Call {
                spec: spec.clone(),
                bid_expires_at,
            },
        );
        self.order.push_back(job);
        Ok(())
    }

    /// Takes the call of `job` out if `requester` made it, with its bid's expiry: the award
    /// uses it once.
    pub(super) fn take(&mut self, job: &JobId, requester: &NodeId) -> Option<(JobSpec, Timestamp)> {
        if self.calls.get(job)?.spec.requester != *requester {
            return None;
        }
        let call = self.remove(job)?;
        Some((call.spec, call.bid_expires_at))
    }

    /// Open calls held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.calls.len()
    }

    fn remove(&mut self, job: &JobId) -> Option<Call> {
        let call = self.calls.remove(job)?;
        if let Some(held) = self.per_requester.get_mut(&call.spec.requester) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.per_requester.remove(&call.spec.requester);
            }
        }
        Some(call)
    }

    /// Forgets, oldest first, the calls whose bid expired before `now` (bids have one
    /// lifetime, so arrival order is nearly expiry order), and ids already taken.
    fn forget_expired(&mut self, now: Timestamp) {
        while let Some(job) = self.order.front() {
            match self.calls.get(job) {
                Some(call) if call.bid_expires_at >= now => break,
                Some(_) => {
                    let job = *job;
                    self.remove(&job);
                }
                None => {}
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use cairn_protocol::{BlobHash, JobRequest};

    use super::*;

    fn spec(requester: u8, nonce: u64) -> (JobId, JobSpec) {
        let spec = JobRequest::new(BlobHash::of(b"m"), BlobHash::of(b"i"))
            .into_spec(NodeId([requester; 32]), "rt".into(), nonce, Timestamp(0))
            .expect("spec");
        (spec.id().expect("id"), spec)
    }

    #[test]
    fn a_flood_of_calls_never_cancels_an_open_bid() {
        let mut calls = OpenCalls::default();
        let (honest, honest_spec) = spec(1, 0);
        calls
            .remember(honest, &honest_spec, Timestamp(30_000), Timestamp(0))
            .unwrap();
        // One Sybil requester gets its share and no more.
        let mut refused = 0;
        for nonce in 0..MAX_CALLS_PER_REQUESTER as u64 + 10 {
            let (job, s) = spec(2, nonce);
            if calls.remember(job, &s, Timestamp(30_000), Timestamp(1)) == Err(Full::Requester) {
                refused += 1;
            }
        }
        assert_eq!(refused, 10);
        // Many Sybil requesters fill the table, and then are declined, never evicting.
        for sybil in 3..=10u8 {
            for nonce in 0..MAX_CALLS_PER_REQUESTER as u64 {
                let (job, s) = spec(sybil, nonce);
                let _ = calls.remember(job, &s, Timestamp(30_000), Timestamp(2));
            }
        }
        assert_eq!(calls.len(), MAX_OPEN_CALLS);
        let (late, late_spec) = spec(11, 0);
        assert_eq!(
            calls.remember(late, &late_spec, Timestamp(30_000), Timestamp(3)),
            Err(Full::Table)
        );
        // The honest requester's award still finds its call, once, and only from it.
        assert!(calls.take(&honest, &NodeId([2; 32])).is_none());
        assert!(calls.take(&honest, &NodeId([1; 32])).is_some());
        assert!(calls.take(&honest, &NodeId([1; 32])).is_none());
        // Once the flood's bids expire, new calls are taken again.
        assert!(
            calls
                .remember(late, &late_spec, Timestamp(90_000), Timestamp(30_001))
                .is_ok()
        );
        assert_eq!(calls.len(), 1);
    }
}
