//! Each way a signed envelope can be wrong gets its own typed error.

use cairn_protocol::codec::CodecError;
use cairn_protocol::envelope::MAX_ENVELOPE_BYTES;
use cairn_protocol::*;

use crate::fixtures::{self, NET, keypair, node};

fn signed_bid(seed: u8) -> (Bid, Envelope) {
    let bid = Bid {
        job: JobId::of(b"job"),
        bidder: node(seed),
        price: 42,
        device: Device::Cpu { cores: 2 },
        runtime: "wasmtime-48/test".into(),
        expires_at: Timestamp(9_000),
    };
    let envelope = Envelope::seal(&bid, &keypair(seed), &NET).unwrap();
    (bid, envelope)
}

#[test]
fn a_good_envelope_opens() {
    let (bid, envelope) = signed_bid(1);
    let opened = Envelope::open::<Bid>(&envelope.to_bytes().unwrap(), &NET).unwrap();
    assert_eq!(opened.message(), &bid);
    assert_eq!(opened.signer(), node(1));
}

#[test]
fn tampered_payload_is_a_bad_signature() {
    let (bid, mut envelope) = signed_bid(1);
    envelope.payload = codec::encode(&Bid { price: 1, ..bid }).unwrap();
    let err = envelope.verify::<Bid>(&NET).unwrap_err();
    assert!(
        matches!(err, EnvelopeError::BadSignature { signer } if signer == node(1)),
        "{err}"
    );
}

#[test]
fn signature_by_another_key_is_a_bad_signature() {
    let (_, mut envelope) = signed_bid(1);
    envelope.signer = node(2); // claims to be node 2, signed by node 1
    assert!(matches!(
        envelope.verify::<Bid>(&NET),
        Err(EnvelopeError::BadSignature { .. })
    ));
}

#[test]
fn message_signed_by_a_different_node_than_its_author_is_a_signer_mismatch() {
    // Node 2 signs (validly) a bid that claims to come from node 1.
    let (bid, _) = signed_bid(1);
    let envelope = Envelope::seal(&bid, &keypair(2), &NET).unwrap();
    let err = envelope.verify::<Bid>(&NET).unwrap_err();
    assert!(
        matches!(err, EnvelopeError::SignerMismatch { author, signer }
            if author == node(1) && signer == node(2)),
        "{err}"
    );
}

#[test]
fn envelope_of_another_kind_is_refused() {
    let (_, envelope) = signed_bid(1);
    let err = envelope.clone().verify::<ResultReport>(&NET).unwrap_err();
    assert!(matches!(
        err,
        EnvelopeError::WrongKind {
            expected: MessageKind::ResultReport,
            found: MessageKind::Bid
        }
    ));
    // Relabelling the kind does not help: each kind signs in its own domain.
    let relabelled = Envelope {
        kind: MessageKind::Award,
        ..envelope
    };
    assert!(matches!(
        relabelled.verify::<Award>(&NET),
        Err(EnvelopeError::BadSignature { .. })
    ));
}

#[test]
fn oversize_frame_is_refused_before_decoding() {
    let bytes = vec![0u8; MAX_ENVELOPE_BYTES + 1];
    let err = Envelope::open::<Bid>(&bytes, &NET).unwrap_err();
    assert!(
        matches!(
            err,
            EnvelopeError::Framing(CodecError::FrameTooLarge { .. })
        ),
        "{err}"
    );
}

#[test]
fn trailing_garbage_is_refused() {
    let (_, envelope) = signed_bid(1);
    let mut bytes = envelope.to_bytes().unwrap();
    bytes.extend_from_slice(b"junk");
    let err = Envelope::open::<Bid>(&bytes, &NET).unwrap_err();
    assert!(
        matches!(
            err,
            EnvelopeError::Framing(CodecError::TrailingBytes { extra: 4 })
        ),
        "{err}"
    );
}

#[test]
fn another_protocol_version_is_refused() {
    let (_, envelope) = signed_bid(1);
    let other = Envelope {
        version: PROTOCOL_VERSION + 1,
        ..envelope
    };
    assert!(matches!(
        other.verify::<Bid>(&NET),
        Err(EnvelopeError::UnsupportedVersion { found, expected: PROTOCOL_VERSION })
            if found == PROTOCOL_VERSION + 1
    ));
}

#[test]
fn oversize_payload_is_refused_even_when_signed() {
    // A validly signed advert whose payload exceeds the advert limit.
    let mut advert = fixtures::advert(3, 1, 0, 1_000);
    advert.runtime = "x".repeat(MessageKind::Advert.max_payload_bytes() + 1);
    assert!(matches!(
        Envelope::seal(&advert, &keypair(3), &NET),
        Err(CodecError::FrameTooLarge { .. })
    ));
}

#[test]
fn the_errors_are_distinct() {
    // The five rejections of the acceptance list, each a different variant.
    let (bid, good) = signed_bid(1);
    let tampered = Envelope {
        payload: codec::encode(&Bid {
            price: 9,
            ..bid.clone()
        })
        .unwrap(),
        ..good.clone()
    };
    let wrong_signer = Envelope::seal(&bid, &keypair(2), &NET).unwrap();
    let mut trailing = good.to_bytes().unwrap();
    trailing.push(0);
    let errors = [
        tampered.verify::<Bid>(&NET).unwrap_err(),
        wrong_signer.verify::<Bid>(&NET).unwrap_err(),
        good.clone().verify::<Award>(&NET).unwrap_err(),
        Envelope::open::<Bid>(&vec![0u8; MAX_ENVELOPE_BYTES + 1], &NET).unwrap_err(),
        Envelope::open::<Bid>(&trailing, &NET).unwrap_err(),
    ];
    let reasons: Vec<&str> = errors.iter().map(EnvelopeError::reason).collect();
    assert_eq!(
        reasons,
        [
            "bad_signature",
            "signer_mismatch",
            "wrong_kind",
            "frame_too_large",
            "trailing_bytes"
        ]
    );
}

#[test]
fn a_re_encoded_envelope_is_refused() {
    // H1: the version (first field) written as a three-byte varint still decodes with bincode
    // 2, but it is not the canonical encoding: the copy must not open under a new id.
    let (_, envelope) = signed_bid(1);
    let bytes = envelope.to_bytes().unwrap();
    assert!(bytes[0] < 251, "version is a one-byte varint");
    let mut widened = vec![251, bytes[0], 0];
    widened.extend_from_slice(&bytes[1..]);
    let err = Envelope::open::<Bid>(&widened, &NET).unwrap_err();
    assert_eq!(err.reason(), "non_canonical", "{err}");
    // The payload length, widened the same way inside the frame, is refused too.
    let payload_len_at = 1 + 32 + 1 + 32; // version, network, kind, signer
    assert!(bytes[payload_len_at] < 251);
    let mut widened = bytes[..payload_len_at].to_vec();
    widened.extend_from_slice(&[251, bytes[payload_len_at], 0]);
    widened.extend_from_slice(&bytes[payload_len_at + 1..]);
    assert_eq!(
        Envelope::open::<Bid>(&widened, &NET).unwrap_err().reason(),
        "non_canonical"
    );
}

#[test]
fn a_message_signed_for_another_network_is_refused() {
    // M12: the network is signed; a copy claiming another network fails the signature.
    let (_, envelope) = signed_bid(1);
    let other = NetworkId([9; 32]);
    let err = envelope.clone().verify::<Bid>(&other).unwrap_err();
    assert!(matches!(err, EnvelopeError::WrongNetwork { .. }), "{err}");
    let mut relabelled = envelope;
    relabelled.network = other;
    assert!(matches!(
        relabelled.verify::<Bid>(&other),
        Err(EnvelopeError::BadSignature { .. })
    ));
}
