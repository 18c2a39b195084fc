//! Glue shared by Cairn's fuzz targets (`fuzz_targets/`): each target hands its input to one
//! decoder of outside bytes, through the same function the node calls, and checks what a user
//! relies on when it succeeds.
//!
//! - [`canonical`]: a frame that decodes is the exact encoding of what it decoded to (so no
//!   second byte string carries the same message, which content-addressed ids and signatures
//!   rely on), and it fitted the limit it was decoded under;
//! - [`open_payload`]: the payload decoder of one signed message kind, with that kind's limit;
//! - [`verify_as_its_kind`]: an envelope goes through every check `Envelope::verify` makes.
//!
//! A failed check panics, which libFuzzer reports as a crash with the input that caused it.
#![deny(missing_docs)]

use bincode::{Decode, Encode};
use cairn_protocol::codec;
use cairn_protocol::*;

/// Decodes a `T` from `data` with [`codec::decode`] under `limit`, and checks that a decoded
/// value fitted the limit and re-encodes to exactly `data`.
pub fn canonical<T: Decode<()> + Encode>(data: &[u8], limit: usize) -> Option<T> {
    let value: T = codec::decode(data, limit).ok()?;
    assert!(
        data.len() <= limit,
        "decoded {} bytes over the limit {limit}",
        data.len()
    );
    let again = codec::encode(&value).expect("a decoded value encodes");
    assert_eq!(
        again, data,
        "decoded frame is not the canonical encoding of its value"
    );
    Some(value)
}

/// Decodes a signed message's payload as `Envelope::verify` does once the signature holds:
/// with the kind's own payload limit, canonical.
pub fn open_payload<T: Message>(data: &[u8]) -> Option<T> {
    canonical(data, T::KIND.max_payload_bytes())
}

/// Runs `Envelope::verify` on `envelope`, on the network the envelope names, as the message
/// type its kind tag names: every check of an envelope from a peer is reached, up to the
/// signature (which the fuzzer cannot forge; seeds made by `Envelope::seal` pass it).
pub fn verify_as_its_kind(envelope: &Envelope) {
    let network = envelope.network;
    let e = envelope.clone();
    let verified = match envelope.kind {
        MessageKind::Advert => e.verify::<CapabilityAdvert>(&network).map(|_| ()),
        MessageKind::CallForBids => e.verify::<CallForBids>(&network).map(|_| ()),
        MessageKind::Bid => e.verify::<Bid>(&network).map(|_| ()),
        MessageKind::Award => e.verify::<Award>(&network).map(|_| ()),
        MessageKind::ResultReport => e.verify::<ResultReport>(&network).map(|_| ()),
        MessageKind::Verdict => e.verify::<Verdict>(&network).map(|_| ()),
        MessageKind::Checkpoint => e.verify::<Checkpoint>(&network).map(|_| ()),
        MessageKind::CheckpointVote => e.verify::<CheckpointVote>(&network).map(|_| ()),
        MessageKind::AnchorReceipt => e.verify::<AnchorReceipt>(&network).map(|_| ()),
        MessageKind::JobReceipt => e.verify::<JobReceipt>(&network).map(|_| ()),
        // A kind added to the protocol must be added here too; until then it is decoded only.
        _ => Ok(()),
    };
    if let Err(e) = verified {
        // Every refusal has a stable label (counted by cause in the node's metrics).
        assert!(!e.reason().is_empty());
    }
}

/// Decodes signed envelope bytes as the node does for gossip and sync answers, and verifies
/// what decodes.
pub fn envelope_bytes(data: &[u8]) {
    if let Ok(envelope) = Envelope::from_bytes(data) {
        let again = envelope.to_bytes().expect("a decoded envelope encodes");
        assert_eq!(again, data, "envelope is not canonical");
        assert!(data.len() <= envelope::MAX_ENVELOPE_BYTES);
        verify_as_its_kind(&envelope);
    }
}

/// A genesis that the chain starting with a checkpoint of `network` signed by `votes` can
/// satisfy: its first committee is whoever signed (sorted, once each), at the default
/// threshold. Verifying against it lets seeds from real chains reach the vote, chain and
/// anchor checks; the fuzzer explores from there.
pub fn genesis_of(network: &str, votes: &[Envelope]) -> checkpoint::Genesis {
    let mut committee: Vec<NodeId> = votes.iter().map(|v| v.signer).collect();
    committee.sort();
    committee.dedup();
    checkpoint::Genesis {
        network: network.to_owned(),
        committee_size: u32::try_from(committee.len()).unwrap_or(u32::MAX),
        committee,
        threshold: checkpoint::Threshold::default(),
        credits: None,
    }
}

/// Verifier rules that a proof built like the protocol tests' can satisfy: [`genesis_of`] its
/// first checkpoint, and its own anchor chain at regtest's easiest target, one confirmation.
pub fn rules_of(proof: &proof::ReputationProof) -> proof::NetworkRules {
    let genesis = match proof.chain.first() {
        Some(first) => genesis_of(&first.checkpoint.network, &first.votes),
        None => genesis_of("", &[]),
    };
    let anchor = proof.anchor.as_ref().map(|a| proof::AnchorRule {
        chain: a.chain.clone(),
        pow: spv::PowRule {
            max_target_bits: REGTEST_BITS,
            min_confirmations: 1,
        },
    });
    proof::NetworkRules { genesis, anchor }
}

/// Bitcoin regtest's target in compact form: half of all header hashes meet it.
pub const REGTEST_BITS: u32 = 0x207f_ffff;
