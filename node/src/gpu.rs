//! What this machine offers: GPUs detected through NVML, or set by hand for simulations, plus
//! CPU cores and memory.
//!
//! Detection never fails the node: without an NVIDIA GPU or without `libnvidia-ml.so.1` the
//! node advertises CPU only and says why.

use std::collections::BTreeMap;
use std::ffi::OsStr;

use cairn_protocol::{ComputeCapability, GpuInfo};
use nvml_wrapper::Nvml;
use serde::{Deserialize, Serialize};

/// Where NVML lives on machines whose loader path does not include the driver's directory.
const NVML_FALLBACK_PATHS: [&str; 2] = [
    "/usr/local/nvidia/lib64/libnvidia-ml.so.1",
    "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
];

/// How the GPU list was obtained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum GpuSource {
    /// Read from the NVIDIA driver.
    Detected,
    /// Set by `--simulate-gpu`; marked as simulated in adverts.
    Simulated,
    /// No GPU: the reason (no driver library, no device, an NVML error).
    None(String),
}

/// What `cairn gpu` shows and the advert carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hardware {
    /// GPUs, one entry per distinct model.
    pub gpus: Vec<GpuInfo>,
    /// How the list was obtained.
    pub source: GpuSource,
    /// Logical CPU cores.
    pub cpu_cores: u32,
    /// Physical memory, in bytes (0 when unknown).
    pub memory_bytes: u64,
}

/// Why a `--simulate-gpu` value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GPU spec {spec:?}: {reason} (expected MODEL:VRAM:CC, e.g. H100:80GB:9.0)")]
pub struct GpuSpecError {
    spec: String,
    reason: &'static str,
}

/// Detects the machine's hardware; `simulated` replaces GPU detection when given.
pub fn detect(simulated: Option<Vec<GpuInfo>>) -> Hardware {
    let (gpus, source) = match simulated {
        Some(gpus) => (gpus, GpuSource::Simulated),
        None => detect_gpus(),
    };
    Hardware {
        gpus,
        source,
        cpu_cores: cpu_cores(),
        memory_bytes: memory_bytes(),
    }
}

fn detect_gpus() -> (Vec<GpuInfo>, GpuSource) {
    let nvml = match open_nvml() {
        Ok(nvml) => nvml,
        Err(why) => return (Vec::new(), GpuSource::None(why)),
    };
    match read_gpus(&nvml) {
        Ok(gpus) if gpus.is_empty() => (gpus, GpuSource::None("NVML reports no devices".into())),
        Ok(gpus) => (gpus, GpuSource::Detected),
        Err(e) => (Vec::new(), GpuSource::None(format!("NVML error: {e}"))),
    }
}

fn open_nvml() -> Result<Nvml, String> {
    let first = match Nvml::init() {
        Ok(nvml) => return Ok(nvml),
        Err(e) => e,
    };
    for path in NVML_FALLBACK_PATHS {
        if std::path::Path::new(path).exists()
            && let Ok(nvml) = Nvml::builder().lib_path(OsStr::new(path)).init()
        {
            return Ok(nvml);
        }
    }
    Err(format!(
        "no NVIDIA driver library (libnvidia-ml.so.1): {first}"
    ))
}

fn read_gpus(nvml: &Nvml) -> Result<Vec<GpuInfo>, nvml_wrapper::error::NvmlError> {
    let driver = nvml.sys_driver_version()?;
    let cuda = nvml.sys_cuda_driver_version().map_or_else(
        |_| "unknown".to_owned(),
        |v| format!("{}.{}", v / 1000, (v % 1000) / 10),
    );
    let mut gpus = Vec::new();
    for index in 0..nvml.device_count()? {
        let device = nvml.device_by_index(index)?;
        let cc = device.cuda_compute_capability()?;
        gpus.push(GpuInfo {
            model: device.name()?,
            vram_bytes: device.memory_info()?.total,
            compute_capability: ComputeCapability {
                major: u8::try_from(cc.major).unwrap_or(0),
                minor: u8::try_from(cc.minor).unwrap_or(0),
            },
            count: 1,
            driver: driver.clone(),
            cuda: cuda.clone(),
        });
    }
    Ok(group(gpus))
}

/// Merges identical devices into one entry with a count.
fn group(gpus: Vec<GpuInfo>) -> Vec<GpuInfo> {
    let mut by_kind: BTreeMap<(String, u64, ComputeCapability), GpuInfo> = BTreeMap::new();
    for gpu in gpus {
        let key = (gpu.model.clone(), gpu.vram_bytes, gpu.compute_capability);
        by_kind
            .entry(key)
            .and_modify(|g| g.count += gpu.count)
            .or_insert(gpu);
    }
    by_kind.into_values().collect()
}

/// Parses `MODEL:VRAM:CC[,MODEL:VRAM:CC...]`, e.g. `H100:80GB:9.0,RTX4090:24GB:8.9`. VRAM takes
/// `GB` (10^9), `GiB` (2^30) or plain bytes. Repeated entries count as several devices.
pub fn parse_simulated(spec: &str) -> Result<Vec<GpuInfo>, GpuSpecError> {
    let gpus = spec
        .split(',')
        .map(|one| parse_one(one.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(group(gpus))
}

fn parse_one(spec: &str) -> Result<GpuInfo, GpuSpecError> {
    let err = |reason| GpuSpecError {
        spec: spec.to_owned(),
        reason,
    };
    let mut parts = spec.split(':');
    let (Some(model), Some(vram), Some(cc), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(err("need three ':'-separated parts"));
    };
    if model.is_empty() || model.len() > 64 {
        return Err(err("model name must be 1-64 characters"));
    }
    let vram_bytes =
        parse_bytes(vram).ok_or_else(|| err("VRAM must be like 80GB, 24GiB or bytes"))?;
    let (major, minor) = cc
        .split_once('.')
        .ok_or_else(|| err("compute capability must be like 9.0"))?;
    let compute_capability = ComputeCapability {
        major: major
            .parse()
            .map_err(|_| err("compute capability major is not a number"))?,
        minor: minor
            .parse()
            .map_err(|_| err("compute capability minor is not a number"))?,
    };
    Ok(GpuInfo {
        model: model.to_owned(),
        vram_bytes,
        compute_capability,
        count: 1,
        driver: "simulated".into(),
        cuda: "simulated".into(),
    })
}

/// Parses `80GB`, `24GiB`, `512MB` or a plain byte count.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let units: [(&str, u64); 6] = [
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("G", 1_000_000_000),
        ("M", 1_000_000),
    ];
    for (suffix, scale) in units {
        if let Some(n) = text.strip_suffix(suffix) {
            return n.trim().parse::<u64>().ok()?.checked_mul(scale);
        }
    }
    text.parse().ok()
}

fn cpu_cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

fn memory_bytes() -> u64 {
    let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_specs_parse_and_group() {
        let gpus = parse_simulated("H100:80GB:9.0, H100:80GB:9.0,RTX4090:24GiB:8.9").unwrap();
        assert_eq!(gpus.len(), 2);
        let h100 = gpus.iter().find(|g| g.model == "H100").unwrap();
        assert_eq!((h100.count, h100.vram_bytes), (2, 80_000_000_000));
        assert_eq!(
            h100.compute_capability,
            ComputeCapability { major: 9, minor: 0 }
        );
        let rtx = gpus.iter().find(|g| g.model == "RTX4090").unwrap();
        assert_eq!(rtx.vram_bytes, 24 << 30);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for bad in [
            "H100",
            "H100:80GB",
            "H100:lots:9.0",
            "H100:80GB:nine",
            ":80GB:9.0",
            "a:1:2:3",
        ] {
            let err = parse_simulated(bad).unwrap_err().to_string();
            assert!(err.contains("expected MODEL:VRAM:CC"), "{bad}: {err}");
        }
    }

    #[test]
    fn detection_never_fails() {
        let hw = detect(None);
        assert!(hw.cpu_cores >= 1);
        match hw.source {
            GpuSource::Detected => assert!(!hw.gpus.is_empty()),
            GpuSource::None(reason) => {
                assert!(hw.gpus.is_empty());
                assert!(!reason.is_empty());
            }
            GpuSource::Simulated => panic!("nothing was simulated"),
        }
    }
}
