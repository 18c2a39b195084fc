//! Answers peers' sync requests (adverts, checkpoints, reputation leaves) off the dispatch
//! loop, fairly.
//!
//! A request of a few bytes can ask for an answer of up to 4 MiB (finding M4), so answers are
//! built in their own tasks, at most [`SYNC_AT_ONCE`] at a time in all (others wait their
//! turn: a hundred newcomers joining through one bootstrap node all get their answer) and one
//! of each kind at a time per peer: a second request of a kind whose answer is still being
//! built is refused at once (the peer's stream is closed) and counted. So the requests waiting
//! are at most three per connected peer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use tokio::sync::Semaphore;
use tracing::debug;

use crate::adverts::Adverts;
use crate::checkpoints::Checkpoints;
use crate::context::Context;
use crate::net::{SyncRequest, SyncResponse};

/// Sync answers built at once, in all.
pub const SYNC_AT_ONCE: usize = 16;

/// The sync service: a cheap-to-clone handle.
#[derive(Clone)]
pub struct SyncServer {
    ctx: Arc<Context>,
    adverts: Adverts,
    checkpoints: Checkpoints,
    gate: Gate,
    permits: Arc<Semaphore>,
}

impl SyncServer {
    pub(crate) fn new(ctx: Arc<Context>, adverts: Adverts, checkpoints: Checkpoints) -> Self {
        Self {
            ctx,
            adverts,
            checkpoints,
            gate: Gate::new(),
            permits: Arc::new(Semaphore::new(SYNC_AT_ONCE)),
        }
    }

    /// Answers `peer`'s `request` in a task of its own, after at most [`SYNC_AT_ONCE`] others,
    /// or refuses it (dropping `channel`) when the peer already has one of its kind waiting or
    /// being answered.
    pub(crate) fn serve(
        &self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let ticket = match self.gate.enter((peer, kind(&request))) {
            Ok(ticket) => ticket,
            Err(why) => {
                self.ctx.metrics.reject("sync", why);
                return;
            }
        };
        let this = self.clone();
        self.ctx.spawn(async move {
            let Ok(_permit) = this.permits.acquire().await else {
                return;
            };
            let response = this.answer(peer, request);
            let _ = this.ctx.net.respond_sync(channel, response).await;
            drop(ticket);
        });
    }

    fn answer(&self, peer: PeerId, request: SyncRequest) -> SyncResponse {
        match request {
            SyncRequest::Adverts => {
                let adverts = self.adverts.envelopes();
                debug!(target: "cairn::adverts", %peer, count = adverts.len(), "advert sync served");
                SyncResponse::Adverts(adverts)
            }
            SyncRequest::Checkpoints { from } => {
                SyncResponse::Checkpoints(self.checkpoints.chain_from(from))
            }
            SyncRequest::Leaves { epoch } => SyncResponse::Leaves(self.checkpoints.leaves(epoch)),
        }
    }
}

/// A peer and the kind of its request: each has one answer built at a time.
type Asker = (PeerId, u8);

fn kind(request: &SyncRequest) -> u8 {
    match request {
        SyncRequest::Adverts => 0,
        SyncRequest::Checkpoints { .. } => 1,
        SyncRequest::Leaves { .. } => 2,
    }
}

/// Admits one request per asker at a time.
#[derive(Clone)]
struct Gate {
    /// Askers whose answer is waiting or being built.
    serving: Arc<Mutex<HashSet<Asker>>>,
}

/// An admitted answer; dropping it lets its asker in again.
struct Ticket {
    asker: Asker,
    serving: Arc<Mutex<HashSet<Asker>>>,
}

impl Gate {
    fn new() -> Self {
        Self {
            serving: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// A ticket for `asker`, or why not (the reason counted in metrics).
    fn enter(&self, asker: Asker) -> Result<Ticket, &'static str> {
        let mut serving = self.serving.lock().map_err(|_| "poisoned")?;
        if !serving.insert(asker) {
            return Err("one_at_a_time");
        }
        Ok(Ticket {
            asker,
            serving: self.serving.clone(),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut serving) = self.serving.lock() {
            serving.remove(&self.asker);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_of_each_kind_per_peer_at_a_time() {
        let gate = Gate::new();
        let (a, b) = (PeerId::random(), PeerId::random());
        let first = gate.enter((a, 0)).expect("a");
        assert_eq!(gate.enter((a, 0)).err(), Some("one_at_a_time"));
        let _second = gate.enter((a, 1)).expect("another kind from a");
        let _third = gate.enter((b, 0)).expect("the same kind from b");
        drop(first);
        assert!(
            gate.enter((a, 0)).is_ok(),
            "a finished answer frees its place"
        );
    }
}
