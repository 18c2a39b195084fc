//! What a simulation measured: the JSON object `--json` prints, the human report, and the
//! helpers that compute them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::jobs::JobMix;

/// The 50th and 99th percentile (nearest rank) and the maximum of some latencies, in ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// Of `values` (any order); all zero when empty.
    pub fn of(values: &[u64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let at = |p: f64| {
            let rank = ((sorted.len() as f64) * p).ceil() as usize;
            sorted.get(rank.saturating_sub(1)).copied().unwrap_or(0)
        };
        Self {
            p50: at(0.5),
            p99: at(0.99),
            max: sorted.last().copied().unwrap_or(0),
        }
    }
}

/// Mean reputation scores, as node 0 (a requester) computes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ReputationMeans {
    /// Mean score of honest nodes.
    pub honest_mean: f64,
    /// Mean score of cheating nodes; `null` in JSON when there are none.
    pub cheater_mean: Option<f64>,
}

/// What credits did in a run (networks with credits; see docs/credits.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CreditsReport {
    /// Every credit on the network: the genesis allocation.
    pub genesis: u64,
    /// Credits requesters paid providers for accepted jobs, as the requesters' books record it.
    pub paid: u64,
    /// Accepted jobs whose requester's book shows no payment (must be 0).
    pub accepted_unpaid: usize,
    /// Whether every running node's balances add up to the genesis allocation.
    pub conserved: bool,
    /// Mean credits earned by honest providers (as each one's own book records its payments).
    pub honest_earned_mean: f64,
    /// Mean credits earned by cheating providers; `null` in JSON when there are none.
    pub cheater_earned_mean: Option<f64>,
}

/// One sample of reputation over time (for the HTML report).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ReputationSample {
    /// Seconds since the jobs started.
    pub at_secs: f64,
    /// The means at that moment.
    pub means: ReputationMeans,
}

/// Everything a simulation measured. Serialised as the one JSON object of `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    /// Nodes started.
    pub nodes: usize,
    /// Jobs the run was asked to submit.
    pub jobs: usize,
    /// Jobs submitted.
    pub submitted: usize,
    /// Jobs accepted with the correct output (checked against a local run).
    pub accepted: usize,
    /// Jobs that ended failed (or accepted but whose output could not be fetched).
    pub failed: usize,
    /// Jobs accepted with a wrong output.
    pub wrongly_accepted: usize,
    /// Jobs still running when the run gave up.
    pub unfinished: usize,
    /// Whether every job ended.
    pub finished: bool,
    /// Failure reasons and how often each occurred.
    pub failure_reasons: BTreeMap<String, usize>,
    /// Replicas asked for per job.
    pub replicas: u8,
    /// The job mix.
    pub job_mix: JobMix,
    /// Jobs in flight at once.
    pub concurrency: usize,
    /// The seed.
    pub seed: u64,
    /// Nodes that cheat.
    pub cheaters: usize,
    /// Whether cheaters collude (report the same wrong output).
    pub colluding: bool,
    /// Nodes that submit jobs.
    pub requesters: usize,
    /// Node crashes during the run.
    pub crashes: usize,
    /// Restarts of crashed nodes.
    pub restarts: usize,
    /// Replicas that missed their deadline (node 0's reputation table), crashes' main cost.
    pub replica_timeouts: u64,
    /// Reports that contradicted the accepted output (node 0's reputation table).
    pub dissenting_reports: u64,
    /// Jobs that required a GPU.
    pub gpu_jobs: usize,
    /// Replicas of GPU jobs awarded to CPU-only machines (must be 0).
    pub gpu_runs_on_cpu_only: usize,
    /// Time to start every node, in seconds.
    pub startup_secs: f64,
    /// Time from the first submission to the last job's end, in seconds.
    pub run_secs: f64,
    /// Submit to first award (auction), per job that got an award.
    pub auction_ms: Percentiles,
    /// Submit to accepted, per accepted job.
    pub end_to_end_ms: Percentiles,
    /// Accepted jobs per second of `run_secs`.
    pub jobs_per_sec: f64,
    /// Replicas awarded per ended job (escalations included).
    pub executions_per_job: f64,
    /// Fraction of (node, peer) advert pairs held when jobs started (1.0: all).
    pub advert_coverage: f64,
    /// The process's peak resident memory (VmHWM), in bytes.
    pub peak_rss_bytes: u64,
    /// `peak_rss_bytes` divided by the number of nodes.
    pub peak_rss_per_node_bytes: u64,
    /// Mean reputation at the end.
    pub reputation: ReputationMeans,
    /// What credits did; `null` when the run's network has no credits.
    pub credits: Option<CreditsReport>,
    /// Where the node data dirs were kept, if `--keep` was given.
    pub kept_in: Option<String>,
    /// Reputation checkpoints finalised and anchored (on the `simulated` chain), as node 0
    /// counts them; `null` when the run had checkpoints off.
    pub checkpoints: Option<cairn_node::checkpoints::CheckpointCounts>,
    /// What an attacker got through (`--attack`); `null` without one.
    pub attack: Option<crate::attack::AttackReport>,
}

impl SimReport {
    /// Whether the run counts as a success: finished, nothing wrongly accepted.
    pub fn success(&self) -> bool {
        self.finished && self.wrongly_accepted == 0
    }

    /// The report for people.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let cheat = if self.colluding {
            "colluding"
        } else {
            "independent"
        };
        let _ = writeln!(
            s,
            "cairn-testnet sim: {} nodes ({} requesters, {} {cheat} cheaters), {} jobs ({:?} mix, {} replicas, {} in flight), seed {}",
            self.nodes,
            self.requesters,
            self.cheaters,
            self.jobs,
            self.job_mix,
            self.replicas,
            self.concurrency,
            self.seed
        );
        let _ = writeln!(
            s,
            "  started in {:.1} s; advert coverage {:.1}%",
            self.startup_secs,
            self.advert_coverage * 100.0
        );
        let _ = writeln!(
            s,
            "  jobs: {} accepted, {} failed, {} WRONGLY ACCEPTED, {} unfinished (of {} submitted)",
            self.accepted, self.failed, self.wrongly_accepted, self.unfinished, self.submitted
        );
        for (reason, n) in &self.failure_reasons {
            let _ = writeln!(s, "    failed: {n} x {reason}");
        }
        if self.gpu_jobs > 0 {
            let _ = writeln!(
                s,
                "    {} jobs required a GPU; replicas of them on CPU-only machines: {}",
                self.gpu_jobs, self.gpu_runs_on_cpu_only
            );
        }
        let (a, e) = (self.auction_ms, self.end_to_end_ms);
        let _ = writeln!(
            s,
            "  auction (submit to award): p50 {} ms, p99 {} ms, max {} ms",
            a.p50, a.p99, a.max
        );
        let _ = writeln!(
            s,
            "  end to end (submit to accepted): p50 {} ms, p99 {} ms, max {} ms",
            e.p50, e.p99, e.max
        );
        let _ = writeln!(
            s,
            "  throughput: {:.2} accepted jobs/s over {:.1} s; {:.2} executions per job",
            self.jobs_per_sec, self.run_secs, self.executions_per_job
        );
        if let Some(c) = self.checkpoints {
            let _ = writeln!(
                s,
                "  checkpoints: {} finalised, {} anchored on the SIMULATED chain (not a real one)",
                c.finalised, c.anchored
            );
        }
        if let Some(a) = &self.attack
            && a.kind.is_some_and(|k| k.is_resource_flood())
        {
            let _ = writeln!(
                s,
                "  attack {:?}: {} requests sent, {} refused",
                a.kind, a.requests_sent, a.requests_refused
            );
        } else if let Some(a) = &self.attack {
            let _ = writeln!(
                s,
                "  attack {:?} with {} identities: {} messages published; forged applied {}, \
                 honest reputation lost {}, Sybil reputation max {}, Sybil committee seats {}",
                a.kind,
                a.sybils,
                a.published,
                a.forged_applied,
                a.honest_reputation_lost,
                a.sybil_reputation_max,
                a.sybil_committee_seats
            );
        }
        let cheater = self
            .reputation
            .cheater_mean
            .map_or("n/a (no cheaters)".into(), |m| format!("{m:.1}"));
        let _ = writeln!(
            s,
            "  reputation (node 0's table): honest mean {:.1}, cheater mean {cheater}",
            self.reputation.honest_mean
        );
        if let Some(c) = &self.credits {
            let cheater = c
                .cheater_earned_mean
                .map_or("n/a (no cheaters)".into(), |m| format!("{m:.1}"));
            let _ = writeln!(
                s,
                "  credits: genesis {}, paid {} ({} accepted jobs unpaid), conserved {}; \
                 earned: honest mean {:.1}, cheater mean {cheater}",
                c.genesis, c.paid, c.accepted_unpaid, c.conserved, c.honest_earned_mean
            );
        }
        let _ = writeln!(
            s,
            "  crashes {}, restarts {}; replicas timed out {}, dissenting reports {}",
            self.crashes, self.restarts, self.replica_timeouts, self.dissenting_reports
        );
        let _ = writeln!(
            s,
            "  peak memory {:.1} MiB ({:.1} MiB per node)",
            self.peak_rss_bytes as f64 / 1048576.0,
            self.peak_rss_per_node_bytes as f64 / 1048576.0
        );
        if let Some(dir) = &self.kept_in {
            let _ = writeln!(
                s,
                "  node data kept in {dir}/node0..; to inspect one: cairn --data-dir {dir}/node0 --api 127.0.0.1:0 node --listen /ip4/127.0.0.1/tcp/0 &, then cairn --data-dir {dir}/node0 job list"
            );
        }
        let verdict = match (self.finished, self.wrongly_accepted) {
            (false, _) => "FAILED: the run did not finish",
            (true, 0) => "OK: no job wrongly accepted",
            (true, _) => "FAILED: jobs were wrongly accepted",
        };
        let _ = writeln!(s, "{verdict}");
        s
    }
}

/// The process's peak resident set size (VmHWM in `/proc/self/status`), in bytes; 0 where
/// that file does not exist (not Linux).
pub fn peak_rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(
            Percentiles::of(&v),
            Percentiles {
                p50: 50,
                p99: 99,
                max: 100
            }
        );
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
        assert_eq!(Percentiles::of(&[7]).p99, 7);
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(peak_rss_bytes() > 1 << 20);
        }
    }
}
