//! Simulated machine profiles: a realistic mix of data-centre GPUs, consumer GPUs and
//! CPU-only boxes, assigned to nodes from a seed.

use cairn_node::gpu::Hardware;
use cairn_node::testing;

use crate::TestnetError;

/// One kind of machine a simulated node pretends to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Short name, shown in reports.
    pub name: &'static str,
    /// Simulated GPUs as `MODEL:VRAM:CC[,...]`, or `None` for a CPU-only machine.
    pub gpus: Option<&'static str>,
    /// Logical CPU cores advertised.
    pub cpu_cores: u32,
    /// Memory advertised, in GiB.
    pub memory_gib: u64,
}

/// The mix, as a cycle of ten machines: 1 H100 box, 2 A100, 2 RTX 4090, 1 RTX 3090 and 4
/// CPU-only machines. Node `i` gets entry `(i + offset) % 10`, the offset drawn from the seed.
pub const MIX: [Profile; 10] = [
    H100, CPU_SMALL, A100, RTX4090, CPU_LARGE, RTX3090, CPU_SMALL, A100, RTX4090, CPU_LARGE,
];

/// The biggest machine of the mix: eight H100s (what a Sybil flood claims to have).
pub const H100: Profile = Profile {
    name: "h100x8",
    gpus: Some(
        "H100:80GB:9.0,H100:80GB:9.0,H100:80GB:9.0,H100:80GB:9.0,H100:80GB:9.0,H100:80GB:9.0,H100:80GB:9.0,H100:80GB:9.0",
    ),
    cpu_cores: 112,
    memory_gib: 2048,
};
const A100: Profile = Profile {
    name: "a100x4",
    gpus: Some("A100:40GB:8.0,A100:40GB:8.0,A100:40GB:8.0,A100:40GB:8.0"),
    cpu_cores: 64,
    memory_gib: 512,
};
const RTX4090: Profile = Profile {
    name: "rtx4090",
    gpus: Some("RTX4090:24GB:8.9"),
    cpu_cores: 16,
    memory_gib: 64,
};
const RTX3090: Profile = Profile {
    name: "rtx3090",
    gpus: Some("RTX3090:24GB:8.6"),
    cpu_cores: 12,
    memory_gib: 32,
};
const CPU_SMALL: Profile = Profile {
    name: "cpu8",
    gpus: None,
    cpu_cores: 8,
    memory_gib: 16,
};
const CPU_LARGE: Profile = Profile {
    name: "cpu32",
    gpus: None,
    cpu_cores: 32,
    memory_gib: 128,
};

impl Profile {
    /// The hardware a node with this profile advertises.
    pub fn hardware(&self) -> Result<Hardware, TestnetError> {
        let mut hw = match self.gpus {
            Some(spec) => testing::simulated(spec).map_err(|e| TestnetError::Profile {
                profile: self.name,
                reason: e.to_string(),
            })?,
            None => testing::cpu_only(),
        };
        hw.cpu_cores = self.cpu_cores;
        hw.memory_bytes = self.memory_gib << 30;
        Ok(hw)
    }

    /// Whether the machine has a GPU.
    pub fn has_gpu(&self) -> bool {
        self.gpus.is_some()
    }
}

/// The profile of node `index` for a mix rotated by `offset`.
pub fn profile_for(index: usize, offset: usize) -> Profile {
    MIX[(index + offset) % MIX.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_parses_and_the_mix_has_gpus_and_cpus() {
        for p in MIX {
            let hw = p.hardware().unwrap();
            assert_eq!(hw.gpus.is_empty(), !p.has_gpu(), "{}", p.name);
        }
        let gpus = MIX.iter().filter(|p| p.has_gpu()).count();
        assert_eq!(gpus, 6);
    }
}
