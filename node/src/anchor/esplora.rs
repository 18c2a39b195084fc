//! The `esplora` backend: signs locally with a key of its own (P2WPKH) and talks to one or
//! more Esplora REST endpoints. Transactions go to every endpoint; proofs are fetched from
//! every endpoint and must agree byte for byte, so one lying endpoint cannot forge one.
//!
//! Endpoints used: `GET /address/:a/utxo`, `POST /tx`, `GET /tx/:id/status`, `GET /tx/:id/hex`,
//! `GET /tx/:id/merkleblock-proof`, `GET /blocks/tip/height`, `GET /block-height/:h`,
//! `GET /block/:hash/header`.

use std::io::Read;
use std::time::Duration;

use bitcoin::consensus::encode::{deserialize_hex, serialize, serialize_hex};
use bitcoin::secp256k1::{All, Secp256k1, SecretKey};
use bitcoin::{
    Address, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    Witness, absolute, transaction,
};
use cairn_protocol::anchor::AnchorPayload;
use cairn_protocol::proof::AnchorProof;
use cairn_protocol::spv::{HEADER_LEN, MAX_HEADERS};
use serde_json::Value;

use super::{AnchorBackend, AnchorBackendError, p2wpkh};

/// Largest response body read, in bytes.
const MAX_RESPONSE: u64 = 4 << 20;
/// Timeout of one request.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Fee rate, in satoshi per virtual byte.
const FEE_RATE: u64 = 2;
/// Signed-size allowance of one P2WPKH input's witness, in vB (rounded up).
const WITNESS_VBYTES: u64 = 28;

/// Esplora endpoints and the local signing key.
pub struct EsploraBackend {
    urls: Vec<String>,
    chain: String,
    network: Network,
    key: SecretKey,
    secp: Secp256k1<All>,
    agent: ureq::Agent,
}

fn bad(method: &'static str, reason: impl Into<String>) -> AnchorBackendError {
    AnchorBackendError::BadResponse {
        method,
        reason: reason.into(),
    }
}

impl EsploraBackend {
    /// A backend over `urls` (base URLs, no trailing slash), signing with `key`; `network`
    /// selects the address format.
    pub fn new(urls: Vec<String>, key: SecretKey, network: Network, chain: &str) -> Self {
        Self {
            urls,
            chain: chain.to_owned(),
            network,
            key,
            secp: Secp256k1::new(),
            agent: ureq::AgentBuilder::new().timeout(TIMEOUT).build(),
        }
    }

    /// The output script this backend spends from: fund it to anchor.
    pub fn script(&self) -> ScriptBuf {
        p2wpkh::script_of(&self.secp, &self.key)
    }

    /// The address of [`EsploraBackend::script`].
    pub fn address(&self) -> Result<Address, AnchorBackendError> {
        Address::from_script(&self.script(), self.network)
            .map_err(|e| bad("address", e.to_string()))
    }

    fn get(&self, url: &str, path: &str, what: &'static str) -> Result<String, AnchorBackendError> {
        let response = self
            .agent
            .get(&format!("{url}{path}"))
            .call()
            .map_err(|e| AnchorBackendError::Transport {
                method: what,
                reason: e.to_string(),
            })?;
        let mut text = String::new();
        response
            .into_reader()
            .take(MAX_RESPONSE)
            .read_to_string(&mut text)
            .map_err(|e| bad(what, e.to_string()))?;
        Ok(text.trim().to_owned())
    }

    /// The same answer from every endpoint, or an error naming the disagreement.
    fn agreed(&self, path: &str, what: &'static str) -> Result<String, AnchorBackendError> {
        let mut answer: Option<String> = None;
        for url in &self.urls {
            let text = self.get(url, path, what)?;
            match &answer {
                Some(a) if *a != text => {
                    return Err(bad(what, format!("endpoints disagree on {path}")));
                }
                _ => answer = Some(text),
            }
        }
        answer.ok_or_else(|| bad(what, "no esplora endpoint configured"))
    }

    fn funding(&self) -> Result<(OutPoint, TxOut), AnchorBackendError> {
        let address = self.address()?;
        let text = self.agreed(&format!("/address/{address}/utxo"), "utxo")?;
        let utxos: Vec<Value> =
            serde_json::from_str(&text).map_err(|e| bad("utxo", e.to_string()))?;
        let best = utxos
            .iter()
            .filter(|u| u["status"]["confirmed"].as_bool() == Some(true))
            .max_by_key(|u| u["value"].as_u64().unwrap_or(0))
            .ok_or_else(|| {
                bad(
                    "utxo",
                    format!("no confirmed funds at {address}: send some"),
                )
            })?;
        let txid: Txid = best["txid"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("utxo", "txid"))?;
        let vout = best["vout"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| bad("utxo", "vout"))?;
        let value = Amount::from_sat(best["value"].as_u64().unwrap_or(0));
        let prevout = TxOut {
            value,
            script_pubkey: self.script(),
        };
        Ok((OutPoint::new(txid, vout), prevout))
    }

    fn anchor_tx(&self, payload: &AnchorPayload) -> Result<Transaction, AnchorBackendError> {
        let (outpoint, prevout) = self.funding()?;
        let script = payload.script().map_err(|e| bad("build", e.to_string()))?;
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            }],
            output: vec![
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: script,
                },
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: self.script(),
                },
            ],
        };
        let fee = Amount::from_sat((tx.vsize() as u64 + WITNESS_VBYTES) * FEE_RATE);
        tx.output[1].value = prevout
            .value
            .checked_sub(fee)
            .ok_or_else(|| bad("build", "funds below the fee"))?;
        p2wpkh::sign_input(&self.secp, &mut tx, 0, &prevout, &self.key)
            .map_err(|e| bad("sign", e))?;
        Ok(tx)
    }

    fn header(&self, height: u64) -> Result<[u8; HEADER_LEN], AnchorBackendError> {
        let hash = self.agreed(&format!("/block-height/{height}"), "block-height")?;
        let hex = self.agreed(&format!("/block/{hash}/header"), "header")?;
        let bytes = hex::decode(&hex).map_err(|e| bad("header", e.to_string()))?;
        bytes.try_into().map_err(|_| bad("header", "not 80 bytes"))
    }
}

impl AnchorBackend for EsploraBackend {
    fn kind(&self) -> &'static str {
        "esplora"
    }

    fn chain(&self) -> &str {
        &self.chain
    }

    fn broadcast(&self, payload: &AnchorPayload) -> Result<Option<Txid>, AnchorBackendError> {
        let tx = self.anchor_tx(payload)?;
        let hex = serialize_hex(&tx);
        let mut sent = 0;
        let mut last = None;
        for url in &self.urls {
            match self.agent.post(&format!("{url}/tx")).send_string(&hex) {
                Ok(_) => sent += 1,
                Err(e) => last = Some(e.to_string()),
            }
        }
        if sent == 0 {
            return Err(AnchorBackendError::Transport {
                method: "tx",
                reason: last.unwrap_or_else(|| "no esplora endpoint configured".into()),
            });
        }
        Ok(Some(tx.compute_txid()))
    }

    fn proof(
        &self,
        txid: &Txid,
        min_confirmations: u32,
    ) -> Result<Option<AnchorProof>, AnchorBackendError> {
        let status: Value =
            serde_json::from_str(&self.agreed(&format!("/tx/{txid}/status"), "status")?)
                .map_err(|e| bad("status", e.to_string()))?;
        let Some(height) = status["block_height"]
            .as_u64()
            .filter(|_| status["confirmed"] == true)
        else {
            return Ok(None);
        };
        let tip: u64 = self
            .agreed("/blocks/tip/height", "tip")?
            .parse()
            .map_err(|_| bad("tip", "not a number"))?;
        let depth = (tip + 1).saturating_sub(height).min(MAX_HEADERS as u64);
        if depth < u64::from(min_confirmations.max(1)) {
            return Ok(None);
        }
        let mut tx: Transaction = deserialize_hex(&self.agreed(&format!("/tx/{txid}/hex"), "tx")?)
            .map_err(|e| bad("tx", e.to_string()))?;
        tx.input.iter_mut().for_each(|i| i.witness.clear());
        let merkle_block =
            hex::decode(self.agreed(&format!("/tx/{txid}/merkleblock-proof"), "merkleblock")?)
                .map_err(|e| bad("merkleblock", e.to_string()))?;
        let headers = (height..height + depth)
            .map(|h| self.header(h))
            .collect::<Result<_, _>>()?;
        Ok(Some(AnchorProof {
            chain: self.chain.clone(),
            transaction: serialize(&tx),
            merkle_block,
            headers,
        }))
    }
}
