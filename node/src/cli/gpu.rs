//! `cairn gpu`.

use std::process::ExitCode;

use anyhow::Result;
use cairn_node::api::GpuView;
use cairn_node::gpu::{self, GpuSource};

/// Arguments of `cairn gpu`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Show what `--simulate-gpu SPEC` would advertise instead of detecting.
    #[arg(long, value_name = "SPEC")]
    simulate_gpu: Option<String>,
}

#[derive(serde::Serialize)]
struct Report {
    gpus: Vec<GpuView>,
    source: GpuSource,
    cpu_cores: u32,
    memory_bytes: u64,
    classes: Vec<String>,
}

impl Args {
    pub fn execute(&self) -> Result<ExitCode> {
        let simulated = self
            .simulate_gpu
            .as_deref()
            .map(gpu::parse_simulated)
            .transpose()?;
        let hw = gpu::detect(simulated);
        let probe = cairn_protocol::CapabilityAdvert {
            peer: cairn_protocol::NodeId([0; 32]),
            sequence: 0,
            issued_at: cairn_protocol::Timestamp(0),
            expires_at: cairn_protocol::Timestamp(0),
            gpus: hw.gpus.clone(),
            simulated_gpus: hw.source == GpuSource::Simulated,
            cpu_cores: hw.cpu_cores,
            memory_bytes: hw.memory_bytes,
            runtime: String::new(),
            price: cairn_protocol::PriceSchedule::default(),
            capacity: 0,
            addresses: Vec::new(),
        };
        let report = Report {
            gpus: hw.gpus.iter().map(GpuView::from).collect(),
            source: hw.source.clone(),
            cpu_cores: hw.cpu_cores,
            memory_bytes: hw.memory_bytes,
            classes: probe.classes(),
        };
        if self.json {
            super::print_json(&report)?;
            return Ok(ExitCode::SUCCESS);
        }
        match &hw.source {
            GpuSource::None(reason) => println!("GPUs:    none ({reason}); advertising CPU only"),
            GpuSource::Simulated => println!("GPUs:    simulated (marked as such in adverts)"),
            GpuSource::Detected => println!("GPUs:    detected through NVML"),
        }
        for g in &report.gpus {
            println!(
                "  {} x {}  {:.1} GB  compute {}  driver {}  CUDA {}",
                g.count,
                g.model,
                g.vram_bytes as f64 / 1e9,
                g.compute_capability,
                g.driver,
                g.cuda
            );
        }
        println!("CPU:     {} cores", report.cpu_cores);
        println!(
            "memory:  {:.1} GiB",
            report.memory_bytes as f64 / (1u64 << 30) as f64
        );
        println!("classes: {}", report.classes.join(", "));
        Ok(ExitCode::SUCCESS)
    }
}
