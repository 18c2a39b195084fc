//! Signing and checking P2WPKH inputs (BIP143 digests, ECDSA), shared by the simulated chain
//! and the esplora backend.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{self, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{CompressedPublicKey, ScriptBuf, Transaction, TxOut, Witness};

/// The P2WPKH output script of `key`.
pub fn script_of<C: secp256k1::Signing>(secp: &Secp256k1<C>, key: &SecretKey) -> ScriptBuf {
    let public = CompressedPublicKey(key.public_key(secp));
    ScriptBuf::new_p2wpkh(&public.wpubkey_hash())
}

/// Signs input `index` of `tx`, which spends `prevout` (a P2WPKH output of `key`), with
/// SIGHASH_ALL.
pub fn sign_input<C: secp256k1::Signing>(
    secp: &Secp256k1<C>,
    tx: &mut Transaction,
    index: usize,
    prevout: &TxOut,
    key: &SecretKey,
) -> Result<(), String> {
    let sighash = SighashCache::new(&*tx)
        .p2wpkh_signature_hash(
            index,
            &prevout.script_pubkey,
            prevout.value,
            EcdsaSighashType::All,
        )
        .map_err(|e| e.to_string())?;
    let message = secp256k1::Message::from_digest(sighash.to_byte_array());
    let signature = bitcoin::ecdsa::Signature::sighash_all(secp.sign_ecdsa(&message, key));
    let input = tx.input.get_mut(index).ok_or("no such input")?;
    input.witness = Witness::p2wpkh(&signature, &key.public_key(secp));
    Ok(())
}

/// Whether input `index` of `tx` carries a valid P2WPKH signature for `prevout`.
pub fn verify_input<C: secp256k1::Verification>(
    secp: &Secp256k1<C>,
    tx: &Transaction,
    index: usize,
    prevout: &TxOut,
) -> bool {
    let Some(input) = tx.input.get(index) else {
        return false;
    };
    let items: Vec<&[u8]> = input.witness.iter().collect();
    let [sig, key] = items.as_slice() else {
        return false;
    };
    let (Ok(signature), Ok(public)) = (
        bitcoin::ecdsa::Signature::from_slice(sig),
        CompressedPublicKey::from_slice(key),
    ) else {
        return false;
    };
    if ScriptBuf::new_p2wpkh(&public.wpubkey_hash()) != prevout.script_pubkey {
        return false;
    }
    let Ok(sighash) = SighashCache::new(tx).p2wpkh_signature_hash(
        index,
        &prevout.script_pubkey,
        prevout.value,
        signature.sighash_type,
    ) else {
        return false;
    };
    let message = secp256k1::Message::from_digest(sighash.to_byte_array());
    secp.verify_ecdsa(&message, &signature.signature, &public.0)
        .is_ok()
}
