//! End-to-end sealing of a job's private data: its input, sealed by the requester to each
//! awarded provider, and its output, sealed by each provider to the requester.
//!
//! HPKE (RFC 9180) in base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
//! The X25519 keys are bound to the node identity: a node's ed25519 public key, mapped to its
//! Montgomery form (as libsodium's `crypto_sign_ed25519_pk_to_curve25519`), is its sealing
//! key, so anyone who knows a [`NodeId`] can seal to it without another message, and only the
//! holder of its signing key can open. The secret half is the clamped scalar ed25519 itself
//! derives from the signing seed.
//!
//! What a sealed blob binds, so it cannot be moved to another context: the HPKE `info` names
//! the network, the job and the purpose ([`Purpose`]); the associated data is the blake3 hash
//! of the plaintext, which [`open`] checks again after decryption. The plaintext's hash is
//! what specs and reports commit to, so quorums compare the same digests whether or not the
//! bytes travelled sealed.
//!
//! Sealing takes a 32-byte seed for the ephemeral key instead of reading a random source: the
//! crate does no I/O. A node passes fresh random bytes, or [`OpeningKey::seed_for`], a keyed
//! hash of what is sealed, so that sealing the same input to the same provider again (after a
//! restart) gives the same bytes and the same blob hash.
//!
//! Layout of a sealed blob: [`MAGIC`] (4 bytes), the encapsulated key (32 bytes), then the
//! ciphertext with its 16-byte tag.

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use libp2p_identity::ed25519;
use sha2::{Digest, Sha512};
use thiserror::Error;

use crate::{BlobHash, JobId, NetworkId, NodeId};

/// The first bytes of every sealed blob (version 1 of this layout).
pub const MAGIC: [u8; 4] = *b"CSB1";
/// Bytes a sealed blob adds to its plaintext: magic, encapsulated key, tag.
pub const OVERHEAD: usize = MAGIC.len() + ENCAPPED + TAG;
const ENCAPPED: usize = 32;
const TAG: usize = 16;
const INFO_DOMAIN: &[u8] = b"cairn 2026 sealed job data v1";

type KemX = X25519HkdfSha256;

/// What a sealed blob carries; part of what it is bound to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Purpose {
    /// A job's input, sealed by its requester to one awarded provider.
    Input,
    /// A job's output, sealed by a provider to the job's requester.
    Output,
}

impl Purpose {
    fn tag(self) -> u8 {
        match self {
            Purpose::Input => 1,
            Purpose::Output => 2,
        }
    }
}

/// The context a sealed blob is bound to: the network, the job and the purpose.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Scope {
    /// The network the job runs on.
    pub network: NetworkId,
    /// The job.
    pub job: JobId,
    /// Input or output.
    pub purpose: Purpose,
}

impl Scope {
    fn info(&self) -> Vec<u8> {
        let mut info = Vec::with_capacity(INFO_DOMAIN.len() + 65);
        info.extend_from_slice(INFO_DOMAIN);
        info.extend_from_slice(self.network.as_bytes());
        info.extend_from_slice(self.job.as_bytes());
        info.push(self.purpose.tag());
        info
    }
}

/// Why data could not be sealed or opened.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The recipient's identity is not a usable key (not a point on the curve, or of small
    /// order).
    #[error("the recipient {0} has no usable sealing key")]
    BadRecipient(NodeId),
    /// The bytes are not a sealed blob of this version.
    #[error("not a sealed blob: {0}")]
    Malformed(&'static str),
    /// HPKE refused to seal (cannot happen with a valid recipient).
    #[error("cannot seal: {0}")]
    Seal(String),
    /// Decryption failed: sealed to another node, for another job, network or purpose, or
    /// tampered with.
    #[error("cannot open the sealed blob: not sealed to this node for this job, or tampered with")]
    Open,
    /// The opened bytes do not hash to what the job commits to.
    #[error("the opened bytes hash to {found}, not the expected {expected}")]
    Digest {
        /// The hash the spec or report commits to.
        expected: BlobHash,
        /// The hash of the opened bytes.
        found: BlobHash,
    },
}

/// A node's secret for opening what is sealed to it, and for deriving sealing seeds; built
/// from its identity keypair.
pub struct OpeningKey {
    secret: <KemX as Kem>::PrivateKey,
    seeds: [u8; 32],
}

impl std::fmt::Debug for OpeningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpeningKey(..)")
    }
}

impl OpeningKey {
    /// The opening key of `keypair`'s identity: the X25519 secret matching
    /// [`sealing_key`]`(NodeId::from_keypair(keypair))`.
    pub fn of(keypair: &ed25519::Keypair) -> Result<Self, SealError> {
        let seed = keypair.secret();
        let expanded = Sha512::digest(seed.as_ref());
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&expanded[..32]);
        // `from_bytes` clamps, as ed25519 does.
        let secret = <KemX as Kem>::PrivateKey::from_bytes(&scalar);
        scalar.fill(0);
        let secret = secret.map_err(|e| SealError::Seal(e.to_string()))?;
        let seeds = blake3::derive_key("cairn 2026 sealing seeds v1", seed.as_ref());
        Ok(Self { secret, seeds })
    }

    /// A seed for [`seal`] that is the same each time the same plaintext is sealed to the same
    /// recipient in the same scope, and unpredictable to anyone without this key.
    pub fn seed_for(&self, to: &NodeId, scope: &Scope, plaintext: &BlobHash) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_keyed(&self.seeds);
        hasher.update(&scope.info());
        hasher.update(to.as_bytes());
        hasher.update(plaintext.as_bytes());
        *hasher.finalize().as_bytes()
    }

    /// Seals `plaintext` to `to` in `scope` with the seed [`OpeningKey::seed_for`] gives: the
    /// same bytes sealed to the same party again are the same sealed blob. Hashes the
    /// plaintext once for both the seed and the associated data.
    pub fn seal_deterministic(
        &self,
        to: &NodeId,
        scope: &Scope,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let digest = BlobHash::of(plaintext);
        seal_digested(
            to,
            scope,
            plaintext,
            digest,
            self.seed_for(to, scope, &digest),
        )
    }
}

/// The X25519 public key `node` is sealed to: its ed25519 key in Montgomery form.
pub fn sealing_key(node: &NodeId) -> Result<<KemX as Kem>::PublicKey, SealError> {
    let point = curve25519_dalek::edwards::CompressedEdwardsY(node.0)
        .decompress()
        .filter(|p| !p.is_small_order())
        .ok_or(SealError::BadRecipient(*node))?;
    <KemX as Kem>::PublicKey::from_bytes(point.to_montgomery().as_bytes())
        .map_err(|_| SealError::BadRecipient(*node))
}

/// Seals `plaintext` to `to` in `scope`, with an ephemeral key drawn from `seed` (see the
/// module docs). The result is [`OVERHEAD`] bytes longer than the plaintext.
pub fn seal(
    to: &NodeId,
    scope: &Scope,
    plaintext: &[u8],
    seed: [u8; 32],
) -> Result<Vec<u8>, SealError> {
    seal_digested(to, scope, plaintext, BlobHash::of(plaintext), seed)
}

/// [`seal`] with the plaintext's hash, `aad`, already computed.
fn seal_digested(
    to: &NodeId,
    scope: &Scope,
    plaintext: &[u8],
    aad: BlobHash,
    seed: [u8; 32],
) -> Result<Vec<u8>, SealError> {
    let key = sealing_key(to)?;
    let mut rng = SeedRng::new(seed);
    let (encapped, ciphertext) =
        hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, KemX>(
            &OpModeS::Base,
            &key,
            &scope.info(),
            plaintext,
            aad.as_bytes(),
            &mut rng,
        )
        .map_err(|e| SealError::Seal(e.to_string()))?;
    let mut sealed = Vec::with_capacity(MAGIC.len() + ENCAPPED + ciphertext.len());
    sealed.extend_from_slice(&MAGIC);
    sealed.extend_from_slice(&encapped.to_bytes());
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Opens `sealed` with `key` in `scope`, and checks that the plaintext hashes to `expected`
/// (what the spec or the report commits to).
pub fn open(
    key: &OpeningKey,
    scope: &Scope,
    sealed: &[u8],
    expected: BlobHash,
) -> Result<Vec<u8>, SealError> {
    if sealed.len() < OVERHEAD {
        return Err(SealError::Malformed("shorter than its header and tag"));
    }
    let (magic, rest) = sealed.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(SealError::Malformed("unknown magic"));
    }
    let (encapped, ciphertext) = rest.split_at(ENCAPPED);
    let encapped = <KemX as Kem>::EncappedKey::from_bytes(encapped)
        .map_err(|_| SealError::Malformed("bad encapsulated key"))?;
    let plaintext = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, KemX>(
        &OpModeR::Base,
        &key.secret,
        &encapped,
        &scope.info(),
        ciphertext,
        expected.as_bytes(),
    )
    .map_err(|_| SealError::Open)?;
    let found = BlobHash::of(&plaintext);
    if found != expected {
        return Err(SealError::Digest { expected, found });
    }
    Ok(plaintext)
}

/// A deterministic generator for the ephemeral key: blake3's extendable output keyed by the
/// seed. HPKE draws 32 bytes from it per seal.
struct SeedRng {
    reader: blake3::OutputReader,
}

impl SeedRng {
    fn new(seed: [u8; 32]) -> Self {
        let reader = blake3::Hasher::new_keyed(&seed)
            .update(b"cairn 2026 sealing ephemeral key")
            .finalize_xof();
        Self { reader }
    }
}

impl rand_core::TryRng for SeedRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut buf = [0u8; 4];
        self.reader.fill(&mut buf);
        Ok(u32::from_le_bytes(buf))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut buf = [0u8; 8];
        self.reader.fill(&mut buf);
        Ok(u64::from_le_bytes(buf))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.reader.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for SeedRng {}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> (ed25519::Keypair, NodeId) {
        let keypair = ed25519::Keypair::generate();
        let id = NodeId::from_keypair(&keypair);
        (keypair, id)
    }

    fn scope(purpose: Purpose) -> Scope {
        Scope {
            network: NetworkId([7; 32]),
            job: JobId([9; 32]),
            purpose,
        }
    }

    #[test]
    fn only_the_recipient_opens_and_gets_the_committed_bytes() {
        let (keys, to) = node();
        let (other, _) = node();
        let input = b"private job input".to_vec();
        let hash = BlobHash::of(&input);
        let sealed = seal(&to, &scope(Purpose::Input), &input, [1; 32]).unwrap();
        assert_eq!(sealed.len(), input.len() + OVERHEAD);
        assert!(
            !sealed.windows(input.len()).any(|w| w == input.as_slice()),
            "the plaintext must not appear in the sealed bytes"
        );
        let opened = open(
            &OpeningKey::of(&keys).unwrap(),
            &scope(Purpose::Input),
            &sealed,
            hash,
        );
        assert_eq!(opened.unwrap(), input);
        let stranger = open(
            &OpeningKey::of(&other).unwrap(),
            &scope(Purpose::Input),
            &sealed,
            hash,
        );
        assert_eq!(stranger, Err(SealError::Open));
    }

    #[test]
    fn a_sealed_blob_is_bound_to_its_network_job_purpose_and_digest() {
        let (keys, to) = node();
        let key = OpeningKey::of(&keys).unwrap();
        let data = b"output".to_vec();
        let hash = BlobHash::of(&data);
        let sealed = seal(&to, &scope(Purpose::Output), &data, [2; 32]).unwrap();
        let mut other_job = scope(Purpose::Output);
        other_job.job = JobId([8; 32]);
        let mut other_net = scope(Purpose::Output);
        other_net.network = NetworkId([6; 32]);
        for wrong in [scope(Purpose::Input), other_job, other_net] {
            assert_eq!(open(&key, &wrong, &sealed, hash), Err(SealError::Open));
        }
        assert_eq!(
            open(&key, &scope(Purpose::Output), &sealed, BlobHash::of(b"x")),
            Err(SealError::Open),
            "the digest is the associated data: another one does not open"
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            open(&key, &scope(Purpose::Output), &tampered, hash),
            Err(SealError::Open)
        );
        assert!(matches!(
            open(&key, &scope(Purpose::Output), &sealed[..10], hash),
            Err(SealError::Malformed(_))
        ));
    }

    #[test]
    fn the_same_seed_seals_to_the_same_bytes_and_seeds_differ_per_recipient() {
        let (keys, to) = node();
        let (_, other) = node();
        let key = OpeningKey::of(&keys).unwrap();
        let data = b"input".to_vec();
        let hash = BlobHash::of(&data);
        let s = scope(Purpose::Input);
        let seed = key.seed_for(&to, &s, &hash);
        assert_eq!(seed, key.seed_for(&to, &s, &hash));
        assert_ne!(seed, key.seed_for(&other, &s, &hash));
        assert_eq!(
            seal(&to, &s, &data, seed).unwrap(),
            seal(&to, &s, &data, seed).unwrap()
        );
        assert_eq!(
            key.seal_deterministic(&to, &s, &data).unwrap(),
            seal(&to, &s, &data, seed).unwrap()
        );
        assert_ne!(
            seal(&to, &s, &data, seed).unwrap(),
            seal(&to, &s, &data, [0; 32]).unwrap()
        );
    }

    #[test]
    fn an_identity_that_is_no_curve_point_cannot_be_sealed_to() {
        // The identity point (small order), and y = 2, which is on no point of the curve.
        let (mut identity, mut off_curve) = ([0u8; 32], [0u8; 32]);
        identity[0] = 1;
        off_curve[0] = 2;
        for bad in [NodeId(identity), NodeId(off_curve)] {
            assert_eq!(
                seal(&bad, &scope(Purpose::Input), b"x", [0; 32]),
                Err(SealError::BadRecipient(bad))
            );
        }
    }
}
