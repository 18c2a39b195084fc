//! Deliberate misbehaviour of a provider, for tests and simulations.

use cairn_protocol::{JobId, NodeId};

/// Deliberate misbehaviour, for tests and simulations only. Off by default; a node started
/// with it is a cheater and the network treats it as one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultInjection {
    /// Behave.
    #[default]
    None,
    /// Report a wrong output for every job, different from every other cheater's.
    WrongOutput,
    /// Report the same wrong output as every other colluding cheater.
    ColludingWrongOutput,
    /// Behave while on probation in this node's own table, then report the same wrong output
    /// as every other colluder ([`FaultInjection::ColludingWrongOutput`]): a colluder that
    /// earns standing first.
    ColludingOnceEstablished,
    /// Report a wrong output (its own, as [`FaultInjection::WrongOutput`]) for about
    /// `per_mille` of every thousand jobs, chosen by hashing the job id, and behave otherwise.
    WrongOutputSometimes {
        /// Jobs in a thousand that get a wrong output.
        per_mille: u16,
    },
}

impl FaultInjection {
    /// What this fault does to the honest output of `job`.
    pub(crate) fn corrupt(self, output: Vec<u8>, job: &JobId, me: &NodeId) -> Vec<u8> {
        let own_lie = |output: Vec<u8>| [output.as_slice(), b"cheated by ", me.as_bytes()].concat();
        match self {
            FaultInjection::None => output,
            FaultInjection::WrongOutput => own_lie(output),
            FaultInjection::ColludingWrongOutput | FaultInjection::ColludingOnceEstablished => {
                [output.as_slice(), b"colluding"].concat()
            }
            FaultInjection::WrongOutputSometimes { per_mille } => {
                let roll = blake3::keyed_hash(me.as_bytes(), job.as_bytes());
                let roll = u16::from_le_bytes([roll.as_bytes()[0], roll.as_bytes()[1]]) % 1000;
                if roll < per_mille {
                    own_lie(output)
                } else {
                    output
                }
            }
        }
    }

    /// Whether this node ever reports a wrong output.
    pub fn is_cheating(self) -> bool {
        !matches!(self, FaultInjection::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sometimes_cheater_lies_on_about_its_share_of_jobs_and_only_there() {
        let me = NodeId([7; 32]);
        let fault = FaultInjection::WrongOutputSometimes { per_mille: 300 };
        let mut lies = 0;
        for i in 0u32..2000 {
            let job = JobId::of(&i.to_le_bytes());
            let out = fault.corrupt(b"honest".to_vec(), &job, &me);
            if out != b"honest" {
                lies += 1;
                // The same job always gets the same answer.
                assert_eq!(fault.corrupt(b"honest".to_vec(), &job, &me), out);
            }
        }
        assert!(
            (480..720).contains(&lies),
            "{lies} lies in 2000 jobs at 30%"
        );
        let never = FaultInjection::WrongOutputSometimes { per_mille: 0 };
        let job = JobId::of(b"job");
        assert_eq!(never.corrupt(b"x".to_vec(), &job, &me), b"x");
    }
}
