//! The `bitcoind` backend: Bitcoin Core (or Elements) JSON-RPC with the node's wallet.
//!
//! Anchoring is `createrawtransaction` with one data output, `fundrawtransaction`,
//! `signrawtransactionwithwallet` and `sendrawtransaction`; the proof is `gettransaction` (for
//! confirmations and the block), `gettxoutproof`, and the raw headers from that block up
//! (`getblockhash`, `getblockheader`). Calls are blocking (ureq); the node runs them on the
//! blocking pool.

use std::io::Read;
use std::time::Duration;

use base64::Engine;
use bitcoin::Txid;
use bitcoin::consensus::encode::{deserialize_hex, serialize};
use cairn_protocol::anchor::AnchorPayload;
use cairn_protocol::proof::AnchorProof;
use cairn_protocol::spv::{HEADER_LEN, MAX_HEADERS};
use serde_json::{Value, json};

use super::{AnchorBackend, AnchorBackendError};

/// Largest JSON-RPC response read, in bytes.
const MAX_RPC_RESPONSE: u64 = 4 << 20;
/// Timeout of one RPC call.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// A Bitcoin Core or Elements node reached over JSON-RPC.
pub struct BitcoindBackend {
    url: String,
    auth: String,
    chain: String,
    agent: ureq::Agent,
}

impl BitcoindBackend {
    /// A client of `url` with basic-auth credentials, anchoring on the chain called `chain`.
    pub fn new(url: &str, user: &str, password: &str, chain: &str) -> Self {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self {
            url: url.to_owned(),
            auth: format!("Basic {auth}"),
            chain: chain.to_owned(),
            agent: ureq::AgentBuilder::new().timeout(RPC_TIMEOUT).build(),
        }
    }

    /// Calls `method` and returns its `result`.
    pub fn call(&self, method: &'static str, params: Value) -> Result<Value, AnchorBackendError> {
        let body = json!({"jsonrpc": "1.0", "id": "cairn", "method": method, "params": params});
        let response = match self
            .agent
            .post(&self.url)
            .set("Authorization", &self.auth)
            .send_json(body)
        {
            Ok(r) => r,
            // Bitcoin Core answers RPC errors with HTTP 500 and a JSON body.
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => {
                return Err(AnchorBackendError::Transport {
                    method,
                    reason: e.to_string(),
                });
            }
        };
        let mut text = String::new();
        response
            .into_reader()
            .take(MAX_RPC_RESPONSE)
            .read_to_string(&mut text)
            .map_err(|e| bad(method, e.to_string()))?;
        let reply: Value = serde_json::from_str(&text).map_err(|e| bad(method, e.to_string()))?;
        match reply.get("error") {
            Some(Value::Null) | None => Ok(reply.get("result").cloned().unwrap_or(Value::Null)),
            Some(error) => Err(AnchorBackendError::Rpc {
                method,
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            }),
        }
    }

    fn call_str(&self, method: &'static str, params: Value) -> Result<String, AnchorBackendError> {
        let value = self.call(method, params)?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(method, "expected a string".into()))
    }

    fn field_str(
        method: &'static str,
        value: &Value,
        field: &str,
    ) -> Result<String, AnchorBackendError> {
        value
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad(method, format!("missing field {field}")))
    }

    fn headers_from(
        &self,
        block: &str,
        count: u32,
    ) -> Result<Vec<[u8; HEADER_LEN]>, AnchorBackendError> {
        let info = self.call("getblockheader", json!([block, true]))?;
        let height = info
            .get("height")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("getblockheader", "missing height".into()))?;
        let mut headers = Vec::new();
        for h in height..height + u64::from(count) {
            let hash = self.call_str("getblockhash", json!([h]))?;
            let hex = self.call_str("getblockheader", json!([hash, false]))?;
            let bytes = hex::decode(&hex).map_err(|e| bad("getblockheader", e.to_string()))?;
            let header: [u8; HEADER_LEN] = bytes
                .try_into()
                .map_err(|_| bad("getblockheader", "header is not 80 bytes".into()))?;
            headers.push(header);
        }
        Ok(headers)
    }
}

fn bad(method: &'static str, reason: String) -> AnchorBackendError {
    AnchorBackendError::BadResponse { method, reason }
}

impl AnchorBackend for BitcoindBackend {
    fn kind(&self) -> &'static str {
        "bitcoind"
    }

    fn chain(&self) -> &str {
        &self.chain
    }

    fn broadcast(&self, payload: &AnchorPayload) -> Result<Option<Txid>, AnchorBackendError> {
        let data = hex::encode(payload.to_bytes());
        let raw = self.call_str("createrawtransaction", json!([[], [{"data": data}]]))?;
        let funded = self.call("fundrawtransaction", json!([raw]))?;
        let funded = Self::field_str("fundrawtransaction", &funded, "hex")?;
        let signed = self.call("signrawtransactionwithwallet", json!([funded]))?;
        if signed.get("complete").and_then(Value::as_bool) != Some(true) {
            return Err(bad(
                "signrawtransactionwithwallet",
                "the wallet could not sign every input".into(),
            ));
        }
        let signed = Self::field_str("signrawtransactionwithwallet", &signed, "hex")?;
        let txid = self.call_str("sendrawtransaction", json!([signed]))?;
        txid.parse()
            .map(Some)
            .map_err(|_| bad("sendrawtransaction", "not a txid".into()))
    }

    fn proof(
        &self,
        txid: &Txid,
        min_confirmations: u32,
    ) -> Result<Option<AnchorProof>, AnchorBackendError> {
        let info = self.call("gettransaction", json!([txid.to_string()]))?;
        let confirmations = info
            .get("confirmations")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let confirmations = u32::try_from(confirmations).unwrap_or(0);
        if confirmations == 0 || confirmations < min_confirmations {
            return Ok(None);
        }
        let block = Self::field_str("gettransaction", &info, "blockhash")?;
        let hex = Self::field_str("gettransaction", &info, "hex")?;
        let mut tx: bitcoin::Transaction =
            deserialize_hex(&hex).map_err(|e| bad("gettransaction", e.to_string()))?;
        // The txid does not cover witnesses, so the proof carries none.
        tx.input.iter_mut().for_each(|i| i.witness.clear());
        let merkle_block = self.call_str("gettxoutproof", json!([[txid.to_string()], block]))?;
        let merkle_block =
            hex::decode(&merkle_block).map_err(|e| bad("gettxoutproof", e.to_string()))?;
        let depth = confirmations.min(MAX_HEADERS as u32);
        Ok(Some(AnchorProof {
            chain: self.chain.clone(),
            transaction: serialize(&tx),
            merkle_block,
            headers: self.headers_from(&block, depth)?,
        }))
    }
}
