//! The provider's side of an auction, as a pure function: whether to bid on a call for bids,
//! at what price and on which device. The node feeds it its advertised capabilities, its
//! load and the clock, then signs and sends what it decides.

use crate::messages::{Bid, CapabilityAdvert, Device, JobSpec, Limits, PriceSchedule};
use crate::{JobId, Timestamp};

/// What a provider asks for a job: its price schedule applied to the job's fuel limit, at
/// least its minimum.
pub fn price_for(spec: &JobSpec, price: &PriceSchedule) -> u64 {
    let mega_fuel = spec.limits.fuel.div_ceil(1_000_000);
    price
        .minimum
        .max(mega_fuel.saturating_mul(price.per_mega_fuel))
}

/// A provider's situation when a call for bids arrives.
#[derive(Clone, Copy, Debug)]
pub struct Offer<'a> {
    /// What it advertises (its id, devices, runtime, capacity and prices).
    pub capabilities: &'a CapabilityAdvert,
    /// Jobs it holds now, running or waiting.
    pub held: u32,
    /// Jobs it may hold waiting per slot of capacity, beyond those running.
    pub backlog_per_slot: u32,
    /// How long its bid stays valid, ms.
    pub bid_lifetime_ms: u64,
    /// The most a job may ask of it: fuel, memory, wall time and output.
    pub most: Limits,
    /// The requester's balance in the provider's own credit book; `None` on a network without
    /// credits (jobs are free there, so any requester can pay).
    pub requester_balance: Option<u64>,
}

/// Why a provider does not bid; its `Display` is what the requester is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Decline {
    /// The provider lacks what the job requires (GPU, memory, runtime).
    #[error("this node does not meet the job's requirements")]
    Requirements,
    /// The job asks more of a resource than the provider allows.
    #[error("the job asks {asked} {what}, this node allows at most {most}")]
    Limit {
        /// The resource, with its unit.
        what: &'static str,
        /// What the job asks.
        asked: u64,
        /// What the provider allows.
        most: u64,
    },
    /// The job's deadline has passed: no run could be accepted.
    #[error("the job's deadline has passed")]
    JobOver,
    /// The call for bids was made too long ago (a replay), or claims to come from the future.
    #[error("the call for bids was issued at {issued_at}, too far from this node's clock ({now})")]
    Stale {
        /// When the call says it was made.
        issued_at: Timestamp,
        /// This node's clock.
        now: Timestamp,
    },
    /// It holds as many jobs as its capacity and backlog allow.
    #[error("busy: {held} jobs held, {capacity} running at once plus a backlog of {backlog}")]
    Busy {
        /// Jobs held.
        held: u32,
        /// Jobs run at once.
        capacity: u32,
        /// Jobs that may wait.
        backlog: u32,
    },
    /// Its price is above the job's maximum.
    #[error("price {price} is above the job's maximum {max_price}")]
    Price {
        /// What it would ask.
        price: u64,
        /// What the job pays at most.
        max_price: u64,
    },
    /// The requester's balance, as this provider's credit book holds it, does not cover the
    /// bid: the provider would likely not be paid.
    #[error(
        "the requester holds {balance} credits on this network, less than this node's price {price}"
    )]
    Funds {
        /// What it would ask.
        price: u64,
        /// The requester's balance in this provider's book.
        balance: u64,
    },
}

/// How old a call for bids may be when it arrives, ms: a requester waits a few seconds for
/// bids, so an older call is a replay.
pub const MAX_CALL_AGE_MS: u64 = 60_000;

/// How far ahead of the provider's clock a call's time may be, ms (clock skew).
pub const MAX_CALL_SKEW_MS: u64 = 30_000;

/// Whether a call for bids issued at `issued_at` may be answered at `now`: not older than
/// [`MAX_CALL_AGE_MS`], not more than [`MAX_CALL_SKEW_MS`] ahead.
pub fn check_call_time(issued_at: Timestamp, now: Timestamp) -> Result<(), Decline> {
    let too_old = issued_at.plus_ms(MAX_CALL_AGE_MS) < now;
    let too_new = issued_at > now.plus_ms(MAX_CALL_SKEW_MS);
    if too_old || too_new {
        return Err(Decline::Stale { issued_at, now });
    }
    Ok(())
}

/// Decides whether to bid on `spec` (whose id is `job`) and with what bid, at `now`.
pub fn decide(
    job: JobId,
    spec: &JobSpec,
    offer: &Offer<'_>,
    now: Timestamp,
) -> Result<Bid, Decline> {
    if spec.deadline <= now {
        return Err(Decline::JobOver);
    }
    let caps = offer.capabilities;
    if !spec.requirements.matches(caps) {
        return Err(Decline::Requirements);
    }
    let (asked, most) = (&spec.limits, &offer.most);
    for (what, asked, most) in [
        ("fuel", asked.fuel, most.fuel),
        ("bytes of memory", asked.memory_bytes, most.memory_bytes),
        ("ms of wall time", asked.wall_time_ms, most.wall_time_ms),
        (
            "bytes of output",
            asked.max_output_bytes,
            most.max_output_bytes,
        ),
    ] {
        if asked > most {
            return Err(Decline::Limit { what, asked, most });
        }
    }
    // Up to `capacity` run at once; a bounded backlog waits.
    let most = caps
        .capacity
        .saturating_mul(offer.backlog_per_slot.saturating_add(1));
    if offer.held >= most {
        return Err(Decline::Busy {
            held: offer.held,
            capacity: caps.capacity,
            backlog: most - caps.capacity,
        });
    }
    let price = price_for(spec, &caps.price);
    if price > spec.max_price {
        return Err(Decline::Price {
            price,
            max_price: spec.max_price,
        });
    }
    if let Some(balance) = offer.requester_balance
        && balance < price
    {
        return Err(Decline::Funds { price, balance });
    }
    let device = match spec.requirements.matching_gpus(caps) {
        // Spread concurrent jobs over the group's devices.
        Some((first, gpu)) => Device::Gpu {
            index: first + offer.held % gpu.count.max(1),
            model: gpu.model.clone(),
        },
        None => Device::Cpu { cores: 1 },
    };
    Ok(Bid {
        job,
        bidder: caps.peer,
        price,
        device,
        runtime: caps.runtime.clone(),
        expires_at: now.plus_ms(offer.bid_lifetime_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{GpuRequirement, JobRequest};
    use crate::{BlobHash, NodeId};

    fn caps() -> CapabilityAdvert {
        CapabilityAdvert {
            peer: NodeId([9; 32]),
            sequence: 1,
            issued_at: Timestamp(0),
            expires_at: Timestamp(60_000),
            gpus: Vec::new(),
            simulated_gpus: false,
            cpu_cores: 8,
            memory_bytes: 16 << 30,
            runtime: "wasmtime-48".into(),
            price: PriceSchedule {
                per_mega_fuel: 2,
                per_gpu_second: 0,
                minimum: 5,
            },
            capacity: 2,
            addresses: Vec::new(),
        }
    }

    fn spec(request: JobRequest) -> JobSpec {
        request
            .into_spec(NodeId([1; 32]), "wasmtime-48".into(), 0, Timestamp(0))
            .unwrap()
    }

    fn offer(caps: &CapabilityAdvert, held: u32) -> Offer<'_> {
        Offer {
            capabilities: caps,
            held,
            backlog_per_slot: 1,
            bid_lifetime_ms: 30_000,
            most: Limits::DEFAULT,
            requester_balance: None,
        }
    }

    fn request() -> JobRequest {
        JobRequest::new(BlobHash::of(b"m"), BlobHash::of(b"i"))
    }

    #[test]
    fn a_provider_bids_its_price_until_its_backlog_is_full() {
        let c = caps();
        let s = spec(request());
        let job = s.id().unwrap();
        let bid = decide(job, &s, &offer(&c, 0), Timestamp(100)).unwrap();
        // 10^10 fuel is 10 000 mega-fuel at 2 each.
        assert_eq!(bid.price, 20_000);
        assert_eq!((bid.job, bid.bidder), (job, c.peer));
        assert_eq!(bid.device, Device::Cpu { cores: 1 });
        assert_eq!(bid.expires_at, Timestamp(30_100));
        // Capacity 2 plus a backlog of one per slot: the fourth job held is the last.
        assert!(decide(job, &s, &offer(&c, 3), Timestamp(0)).is_ok());
        let busy = decide(job, &s, &offer(&c, 4), Timestamp(0)).unwrap_err();
        assert_eq!(
            busy.to_string(),
            "busy: 4 jobs held, 2 running at once plus a backlog of 2"
        );
    }

    #[test]
    fn a_provider_declines_a_requester_whose_balance_does_not_cover_its_price() {
        let c = caps();
        let s = spec(request());
        let job = s.id().unwrap();
        let poor = Offer {
            requester_balance: Some(19_999),
            ..offer(&c, 0)
        };
        let declined = decide(job, &s, &poor, Timestamp(0)).unwrap_err();
        assert_eq!(
            declined,
            Decline::Funds {
                price: 20_000,
                balance: 19_999
            }
        );
        assert!(declined.to_string().contains("holds 19999 credits"));
        let enough = Offer {
            requester_balance: Some(20_000),
            ..offer(&c, 0)
        };
        assert_eq!(
            decide(job, &s, &enough, Timestamp(0)).unwrap().price,
            20_000
        );
    }

    #[test]
    fn a_provider_declines_replayed_calls_and_jobs_past_their_deadline() {
        let c = caps();
        let s = spec(request());
        let job = s.id().unwrap();
        assert_eq!(
            decide(job, &s, &offer(&c, 0), s.deadline),
            Err(Decline::JobOver)
        );
        let issued = Timestamp(100_000);
        assert!(check_call_time(issued, issued).is_ok());
        assert!(check_call_time(issued, issued.plus_ms(MAX_CALL_AGE_MS)).is_ok());
        let replayed = check_call_time(issued, issued.plus_ms(MAX_CALL_AGE_MS + 1)).unwrap_err();
        assert!(
            replayed
                .to_string()
                .contains("too far from this node's clock")
        );
        assert!(check_call_time(issued.plus_ms(MAX_CALL_SKEW_MS + 1), issued).is_err());
    }

    #[test]
    fn a_provider_declines_jobs_it_cannot_run_or_that_pay_too_little() {
        let c = caps();
        let cheap = spec(JobRequest {
            max_price: 19_999,
            ..request()
        });
        assert_eq!(
            decide(cheap.id().unwrap(), &cheap, &offer(&c, 0), Timestamp(0)),
            Err(Decline::Price {
                price: 20_000,
                max_price: 19_999
            })
        );
        let small = spec(JobRequest {
            limits: crate::messages::Limits {
                fuel: 1,
                ..crate::messages::Limits::DEFAULT
            },
            ..request()
        });
        let bid = decide(small.id().unwrap(), &small, &offer(&c, 0), Timestamp(0)).unwrap();
        assert_eq!(bid.price, 5, "never below the minimum");
        let gpu = spec(JobRequest {
            gpu: Some(GpuRequirement {
                min_vram_bytes: 1,
                min_compute_capability: None,
            }),
            ..request()
        });
        assert_eq!(
            decide(gpu.id().unwrap(), &gpu, &offer(&c, 0), Timestamp(0)),
            Err(Decline::Requirements)
        );
        // Above the provider's maxima: declined, naming the resource.
        let greedy = spec(JobRequest {
            limits: crate::messages::Limits {
                memory_bytes: crate::messages::Limits::DEFAULT.memory_bytes + 1,
                ..crate::messages::Limits::DEFAULT
            },
            ..request()
        });
        let declined = decide(greedy.id().unwrap(), &greedy, &offer(&c, 0), Timestamp(0));
        assert_eq!(
            declined.unwrap_err().to_string(),
            format!(
                "the job asks {} bytes of memory, this node allows at most {}",
                (256 << 20) + 1,
                256 << 20
            )
        );
    }
}
