//! Counters the node keeps and serves in Prometheus text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The node's counters. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Adverts accepted from peers.
    pub adverts_accepted: AtomicU64,
    /// Adverts this node published.
    pub adverts_published: AtomicU64,
    /// Adverts learned from peers' sync answers (not gossip).
    pub adverts_synced: AtomicU64,
    /// Blobs fetched from peers and verified.
    pub blobs_fetched: AtomicU64,
    /// Blob requests served.
    pub blobs_served: AtomicU64,
    rejections: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    /// Counts a rejected input: `what` is the kind (`advert`, `blob`), `reason` a stable label.
    pub fn reject(&self, what: &'static str, reason: &'static str) {
        if let Ok(mut map) = self.rejections.lock() {
            *map.entry((what, reason)).or_insert(0) += 1;
        }
    }

    /// Rejections of `what` for `reason` so far.
    pub fn rejections(&self, what: &str, reason: &str) -> u64 {
        let map = self.rejections.lock();
        map.map_or(0, |m| {
            m.iter()
                .filter(|((w, r), _)| *w == what && *r == reason)
                .map(|(_, n)| *n)
                .sum()
        })
    }

    /// Every rejection counter, as `(what, reason, count)`.
    pub fn all_rejections(&self) -> Vec<(&'static str, &'static str, u64)> {
        let map = self.rejections.lock();
        map.map_or_else(
            |_| Vec::new(),
            |m| m.iter().map(|((w, r), n)| (*w, *r, *n)).collect(),
        )
    }

    /// Renders these counters, the given gauges and the given counters kept elsewhere (the
    /// swarm task's, say) in Prometheus text format.
    pub fn render(&self, gauges: &[(&str, &str, u64)], counters: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let own = [
            (
                "cairn_adverts_accepted_total",
                "Adverts accepted from peers.",
                &self.adverts_accepted,
            ),
            (
                "cairn_adverts_published_total",
                "Adverts this node published.",
                &self.adverts_published,
            ),
            (
                "cairn_adverts_synced_total",
                "Adverts learned from peers' sync answers.",
                &self.adverts_synced,
            ),
            (
                "cairn_blobs_fetched_total",
                "Blobs fetched from peers and verified.",
                &self.blobs_fetched,
            ),
            (
                "cairn_blobs_served_total",
                "Blob requests served.",
                &self.blobs_served,
            ),
        ];
        let own = own.map(|(name, help, value)| (name, help, value.load(Ordering::Relaxed)));
        for (name, help, value) in own.iter().chain(counters) {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let name = "cairn_rejections_total";
        let _ = writeln!(
            out,
            "# HELP {name} Inputs rejected, by kind and reason.\n# TYPE {name} counter"
        );
        for (what, reason, n) in self.all_rejections() {
            let _ = writeln!(out, "{name}{{what=\"{what}\",reason=\"{reason}\"}} {n}");
        }
        out
    }
}
