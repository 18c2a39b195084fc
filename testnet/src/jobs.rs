//! The jobs a simulation submits: example guests with seeded inputs, and their expected
//! results from a local run.

use cairn_protocol::{
    BlobHash, ComputeCapability, GpuRequirement, JobId, JobRequest, Limits, Requirements,
};
use cairn_runtime::{Job, JobLimits, Sandbox};

use crate::rng::SimRng;

/// Fuel a simulated job may burn (the compute guests use a few million).
pub const JOB_FUEL: u64 = 500_000_000;
/// Memory a simulated job may use.
pub const JOB_MEMORY_BYTES: u64 = 64 << 20;
/// Wall-clock limit per replica. Generous: on 2 cores shared by every node a replica may wait
/// for the CPU, and a timeout is never held against a provider.
pub const JOB_WALL_MS: u64 = 20_000;
/// Largest output accepted.
pub const JOB_MAX_OUTPUT: u64 = 1 << 20;
/// How long the auction's bid window stays open.
pub const BID_WINDOW_MS: u64 = 2_000;
/// The job's overall deadline.
pub const JOB_DEADLINE_MS: u64 = 120_000;
/// GPU jobs ask for at least this much VRAM per device.
pub const GPU_MIN_VRAM: u64 = 16_000_000_000;

/// Which jobs a run submits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobMix {
    /// `echo` and `wordcount` on small inputs: measures the market, not the CPU.
    Trivial,
    /// `hashloop` and `matmul`: a few million instructions each.
    Compute,
    /// Half trivial, a third compute, the rest compute jobs that require a GPU.
    Mixed,
    /// Compute jobs that require a GPU with 16 GB and compute capability 8.0: only the
    /// simulated GPU machines may bid.
    Gpu,
}

/// Which example guest a job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guest {
    /// Copies its input.
    Echo,
    /// Counts words.
    Wordcount,
    /// Hashes its input many times over.
    Hashloop,
    /// Multiplies two matrices seeded from the input's length.
    Matmul,
}

impl Guest {
    /// Every guest a simulation may use.
    pub const ALL: [Guest; 4] = [
        Guest::Echo,
        Guest::Wordcount,
        Guest::Hashloop,
        Guest::Matmul,
    ];

    /// The example guest's name (see `cairn_runtime::guests`).
    pub fn name(self) -> &'static str {
        match self {
            Guest::Echo => "echo",
            Guest::Wordcount => "wordcount",
            Guest::Hashloop => "hashloop",
            Guest::Matmul => "matmul",
        }
    }
}

/// One job of a run, before submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobPlan {
    /// The guest.
    pub guest: Guest,
    /// Its input.
    pub input: Vec<u8>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Whether it requires a GPU.
    pub gpu: bool,
}

const WORDS: [&str; 12] = [
    "cairn", "stone", "peer", "quorum", "wasm", "digest", "bid", "award", "node", "gpu", "job",
    "verdict",
];

impl JobPlan {
    /// Job number `index` of a run with this mix.
    pub fn new(mix: JobMix, index: usize, rng: &mut SimRng) -> Self {
        match mix {
            JobMix::Trivial => Self::trivial(index, rng),
            JobMix::Compute => Self::compute(index, rng, false),
            JobMix::Gpu => Self::compute(index, rng, true),
            JobMix::Mixed => match rng.below(6) {
                0..=2 => Self::trivial(index, rng),
                3 | 4 => Self::compute(index, rng, false),
                _ => Self::compute(index, rng, true),
            },
        }
    }

    fn trivial(index: usize, rng: &mut SimRng) -> Self {
        if rng.below(2) == 0 {
            let input = format!("job {index} {:016x}\n", rng.next_u64()).into_bytes();
            return Self::plain(Guest::Echo, input, vec![]);
        }
        let words: Vec<&str> = (0..8 + rng.below(40))
            .map(|_| WORDS[rng.below(WORDS.len())])
            .collect();
        let input = format!("job {index}\n{}\n", words.join(" ")).into_bytes();
        Self::plain(Guest::Wordcount, input, vec![])
    }

    fn compute(index: usize, rng: &mut SimRng, gpu: bool) -> Self {
        let mut input = format!("job {index} ").into_bytes();
        input.extend((0..64 + rng.below(960)).map(|_| rng.next_u64() as u8));
        let mut plan = if rng.below(2) == 0 {
            let rounds = 20 + rng.below(80);
            Self::plain(Guest::Hashloop, input, vec![rounds.to_string()])
        } else {
            let kind = if rng.below(2) == 0 { "f32" } else { "f64" };
            let n = 16 + rng.below(32);
            Self::plain(Guest::Matmul, input, vec![kind.into(), n.to_string()])
        };
        plan.gpu = gpu;
        plan
    }

    fn plain(guest: Guest, input: Vec<u8>, args: Vec<String>) -> Self {
        Self {
            guest,
            input,
            args,
            gpu: false,
        }
    }

    /// The job's requirements.
    pub fn requirements(&self) -> Requirements {
        let gpu = self.gpu.then_some(GpuRequirement {
            min_vram_bytes: GPU_MIN_VRAM,
            min_compute_capability: Some(ComputeCapability { major: 8, minor: 0 }),
        });
        Requirements {
            gpu,
            ..Requirements::default()
        }
    }

    /// What a requester asks for: `replicas` replicas and a strict-majority quorum, with the
    /// simulation's limits and deadlines; every other field is [`JobRequest::new`]'s default.
    pub fn request(&self, module: BlobHash, input: BlobHash, replicas: u8) -> JobRequest {
        JobRequest {
            args: self.args.clone(),
            limits: Limits {
                fuel: JOB_FUEL,
                memory_bytes: JOB_MEMORY_BYTES,
                wall_time_ms: JOB_WALL_MS,
                max_output_bytes: JOB_MAX_OUTPUT,
            },
            gpu: self.requirements().gpu,
            replicas,
            quorum: replicas / 2 + 1,
            bid_window_ms: BID_WINDOW_MS,
            deadline_ms: JOB_DEADLINE_MS,
            ..JobRequest::new(module, input)
        }
    }

    /// The expected output digest: this job run once in `sandbox`, as a provider runs it.
    pub fn expected_digest(
        &self,
        sandbox: &Sandbox,
        wasm: &[u8],
        id: JobId,
    ) -> Result<BlobHash, String> {
        let limits = JobLimits::default()
            .with_fuel(JOB_FUEL)
            .with_memory_bytes(JOB_MEMORY_BYTES)
            .with_timeout(std::time::Duration::from_millis(JOB_WALL_MS))
            .with_max_output_bytes(JOB_MAX_OUTPUT);
        let job = Job::new(id, self.input.clone())
            .with_args(self.args.clone())
            .with_limits(limits);
        sandbox
            .run_wasm_blocking(wasm, &job)
            .map(|out| out.digest)
            .map_err(|e| {
                format!(
                    "the local reference run of {} failed: {e}",
                    self.guest.name()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_pick_the_right_guests() {
        let mut rng = SimRng::new(3);
        for i in 0..50 {
            let t = JobPlan::new(JobMix::Trivial, i, &mut rng);
            assert!(matches!(t.guest, Guest::Echo | Guest::Wordcount) && !t.gpu);
            let g = JobPlan::new(JobMix::Gpu, i, &mut rng);
            assert!(matches!(g.guest, Guest::Hashloop | Guest::Matmul) && g.gpu);
            assert!(g.requirements().gpu.is_some());
        }
        let mixed: Vec<_> = (0..60)
            .map(|i| JobPlan::new(JobMix::Mixed, i, &mut rng))
            .collect();
        assert!(mixed.iter().any(|p| p.gpu) && mixed.iter().any(|p| !p.gpu));
    }
}
