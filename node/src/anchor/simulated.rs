//! SIMULATED chain server, for tests and simulations only: serves a [`SimChain`] over the
//! Bitcoin Core JSON-RPC calls that the `bitcoind` backend makes, on 127.0.0.1, so that
//! backend's whole code path runs in CI without Bitcoin Core.
//!
//! Calls served: `getblockchaininfo`, `getblockcount`, `getblockhash`, `getblockheader`
//! (verbose or hex), `getnewaddress` (ignored address type; always the wallet's script),
//! `generatetoaddress`, `createrawtransaction` (data outputs only), `fundrawtransaction`,
//! `signrawtransactionwithwallet`, `sendrawtransaction`, `gettransaction`, `gettxoutproof`.
//! Under `/esplora` it also answers the Esplora REST calls of the `esplora` backend.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::Path as UrlPath;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::{Amount, BlockHash, Transaction, TxOut, Txid, absolute, transaction};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::simchain::{SimChain, SimChainError};

/// Largest JSON-RPC request body accepted.
const MAX_RPC_BODY: usize = 1 << 20;
/// Most blocks one `generatetoaddress` call mines.
const MAX_GENERATE: u32 = 1_000;

/// A running simulated chain: its RPC address and credentials. Dropping it stops the server.
#[must_use = "the server stops when this is dropped"]
pub struct SimulatedChain {
    addr: SocketAddr,
    user: String,
    password: String,
    chain: Arc<Mutex<SimChain>>,
    task: JoinHandle<()>,
}

impl Drop for SimulatedChain {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct RpcState {
    chain: Arc<Mutex<SimChain>>,
    auth: String,
}

impl SimulatedChain {
    /// The `[anchor]` table of a network on this chain, with `confirmations`, for the
    /// `simulated` backend (tests and simulations).
    pub fn anchor_spec(&self, confirmations: u32) -> super::AnchorSpec {
        super::AnchorSpec {
            backend: super::BackendKind::Simulated,
            chain: "simulated".into(),
            confirmations,
            rpc_url: self.url(),
            rpc_user: self.user().into(),
            rpc_password: self.password().into(),
            ..super::AnchorSpec::default()
        }
    }

    /// Starts a chain (wallet key from `seed`) and its RPC server on 127.0.0.1, any port.
    pub async fn start(seed: [u8; 32]) -> std::io::Result<Self> {
        let chain = SimChain::new(seed).map_err(std::io::Error::other)?;
        let chain = Arc::new(Mutex::new(chain));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let user = "cairn-simulated".to_owned();
        let password = hex::encode(rand::random::<[u8; 16]>());
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let state = RpcState {
            chain: chain.clone(),
            auth,
        };
        let app = Router::new()
            .route("/", post(rpc))
            .route("/esplora/tx", post(esplora_send))
            .route("/esplora/{*path}", get(esplora_get))
            .layer(DefaultBodyLimit::max(MAX_RPC_BODY))
            .with_state(state);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(target: "cairn::anchor", error = %e, "simulated chain server stopped");
            }
        });
        Ok(Self {
            addr,
            user,
            password,
            chain,
            task,
        })
    }

    /// The RPC URL, `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Base URL of the Esplora REST interface the chain also serves.
    pub fn esplora_url(&self) -> String {
        format!("http://{}/esplora", self.addr)
    }

    /// RPC user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// RPC password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Mines `count` blocks directly (tests and the simulation's block clock).
    pub fn mine(&self, count: u32) -> Vec<BlockHash> {
        self.chain
            .lock()
            .map(|mut c| c.mine(count))
            .unwrap_or_default()
    }

    /// Mines `count` blocks whose coinbase pays `script` (to fund another wallet).
    pub fn mine_to(&self, count: u32, script: &bitcoin::ScriptBuf) -> Vec<BlockHash> {
        self.chain
            .lock()
            .map(|mut c| c.mine_to(count, script))
            .unwrap_or_default()
    }

    /// Height of the tip.
    pub fn height(&self) -> u32 {
        self.chain.lock().map(|c| c.height()).unwrap_or(0)
    }
}

async fn rpc(
    State(state): State<RpcState>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let authorised = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == state.auth);
    if !authorised {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorised"})),
        );
    }
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let params = request.get("params").cloned().unwrap_or(json!([]));
    let answer = match state.chain.lock() {
        Ok(mut chain) => call(&mut chain, method, &params),
        Err(_) => Err(RpcFailure::internal("chain state poisoned")),
    };
    match answer {
        Ok(result) => (
            StatusCode::OK,
            Json(json!({"result": result, "error": null, "id": id})),
        ),
        Err(f) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(
                json!({"result": null, "error": {"code": f.code, "message": f.message}, "id": id}),
            ),
        ),
    }
}

struct RpcFailure {
    code: i64,
    message: String,
}

impl RpcFailure {
    fn internal(message: &str) -> Self {
        Self {
            code: -1,
            message: message.to_owned(),
        }
    }

    fn params(message: impl Into<String>) -> Self {
        Self {
            code: -8,
            message: message.into(),
        }
    }
}

impl From<SimChainError> for RpcFailure {
    fn from(e: SimChainError) -> Self {
        Self {
            code: -4,
            message: e.to_string(),
        }
    }
}

type RpcResult = Result<Value, RpcFailure>;

fn call(chain: &mut SimChain, method: &str, params: &Value) -> RpcResult {
    let p = |i: usize| params.get(i).cloned().unwrap_or(Value::Null);
    match method {
        "getblockchaininfo" => Ok(json!({"chain": "simulated", "blocks": chain.height()})),
        "getblockcount" => Ok(json!(chain.height())),
        "getblockhash" => {
            let height = p(0).as_u64().ok_or_else(|| RpcFailure::params("height"))?;
            let hash = u32::try_from(height).ok().and_then(|h| chain.block_hash(h));
            hash.map(|h| json!(h.to_string()))
                .ok_or_else(|| RpcFailure::params("Block height out of range"))
        }
        "getblockheader" => block_header(chain, &p(0), p(1).as_bool().unwrap_or(true)),
        "getnewaddress" => Ok(json!(hex::encode(chain.wallet_script().as_bytes()))),
        "generatetoaddress" => {
            let count = p(0).as_u64().unwrap_or(0).min(u64::from(MAX_GENERATE)) as u32;
            Ok(json!(
                chain
                    .mine(count)
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ))
        }
        "createrawtransaction" => create_raw(&p(1)),
        "fundrawtransaction" => {
            let funded = chain.fund(parse_tx(&p(0))?)?;
            Ok(json!({"hex": serialize_hex(&funded), "changepos": funded.output.len() - 1}))
        }
        "signrawtransactionwithwallet" => {
            let signed = chain.sign(parse_tx(&p(0))?)?;
            Ok(json!({"hex": serialize_hex(&signed), "complete": true}))
        }
        "sendrawtransaction" => Ok(json!(chain.send(parse_tx(&p(0))?)?.to_string())),
        "gettransaction" => get_transaction(chain, &p(0)),
        "gettxoutproof" => txout_proof(chain, &p(0), &p(1)),
        other => Err(RpcFailure {
            code: -32601,
            message: format!("Method not found: {other} (simulated chain)"),
        }),
    }
}

fn parse_tx(value: &Value) -> Result<Transaction, RpcFailure> {
    let hex = value
        .as_str()
        .ok_or_else(|| RpcFailure::params("expected transaction hex"))?;
    deserialize_hex(hex).map_err(|e| RpcFailure {
        code: -22,
        message: format!("TX decode failed: {e}"),
    })
}

fn parse_hash<T: std::str::FromStr>(value: &Value) -> Result<T, RpcFailure> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| RpcFailure::params("expected a 64-hex-digit hash"))
}

/// `createrawtransaction [] [{"data": HEX}]`: no inputs, one OP_RETURN output per data entry.
fn create_raw(outputs: &Value) -> RpcResult {
    let entries = outputs
        .as_array()
        .ok_or_else(|| RpcFailure::params("outputs must be an array"))?;
    let mut tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![],
        output: vec![],
    };
    for entry in entries {
        let data = entry
            .get("data")
            .and_then(Value::as_str)
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| {
                RpcFailure::params("the simulated chain only creates {\"data\": HEX} outputs")
            })?;
        let script = cairn_protocol::anchor::op_return_script(&data)
            .map_err(|e| RpcFailure::params(e.to_string()))?;
        tx.output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: script,
        });
    }
    Ok(json!(serialize_hex(&tx)))
}

fn block_header(chain: &SimChain, hash: &Value, verbose: bool) -> RpcResult {
    let hash: BlockHash = parse_hash(hash)?;
    let (header, height) = chain.header(&hash).ok_or_else(|| RpcFailure {
        code: -5,
        message: "Block not found".into(),
    })?;
    if !verbose {
        return Ok(json!(serialize_hex(&header)));
    }
    let next = chain.block_hash(height + 1).map(|h| h.to_string());
    Ok(json!({
        "hash": hash.to_string(),
        "height": height,
        "confirmations": chain.height() - height + 1,
        "previousblockhash": header.prev_blockhash.to_string(),
        "nextblockhash": next,
        "bits": format!("{:08x}", header.bits.to_consensus()),
    }))
}

fn get_transaction(chain: &SimChain, txid: &Value) -> RpcResult {
    let txid: Txid = parse_hash(txid)?;
    let (status, tx) = chain
        .status(&txid)
        .zip(chain.transaction(&txid))
        .ok_or_else(|| RpcFailure {
            code: -5,
            message: "Invalid or non-wallet transaction id".into(),
        })?;
    Ok(json!({
        "txid": txid.to_string(),
        "confirmations": status.confirmations,
        "blockhash": status.block_hash.map(|h| h.to_string()),
        "blockheight": status.height,
        "hex": serialize_hex(&tx),
    }))
}

fn txout_proof(chain: &SimChain, txids: &Value, block: &Value) -> RpcResult {
    let txids: Vec<Txid> = txids
        .as_array()
        .ok_or_else(|| RpcFailure::params("txids must be an array"))?
        .iter()
        .map(parse_hash)
        .collect::<Result<_, _>>()?;
    let hash: BlockHash = match block {
        Value::Null => {
            let status = txids
                .first()
                .and_then(|t| chain.status(t))
                .and_then(|s| s.block_hash);
            status.ok_or_else(|| RpcFailure::params("Transaction not yet in block"))?
        }
        other => parse_hash(other)?,
    };
    Ok(json!(serialize_hex(&chain.txout_proof(&txids, &hash)?)))
}

type Rest = (StatusCode, String);

fn rest_err(status: StatusCode, message: impl std::fmt::Display) -> Rest {
    (status, message.to_string())
}

async fn esplora_send(State(state): State<RpcState>, body: String) -> Rest {
    let tx: Transaction = match deserialize_hex(body.trim()) {
        Ok(tx) => tx,
        Err(e) => return rest_err(StatusCode::BAD_REQUEST, e),
    };
    match state.chain.lock() {
        Ok(mut chain) => match chain.send(tx) {
            Ok(txid) => (StatusCode::OK, txid.to_string()),
            Err(e) => rest_err(StatusCode::BAD_REQUEST, e),
        },
        Err(_) => rest_err(StatusCode::INTERNAL_SERVER_ERROR, "chain state poisoned"),
    }
}

async fn esplora_get(State(state): State<RpcState>, UrlPath(path): UrlPath<String>) -> Rest {
    let Ok(chain) = state.chain.lock() else {
        return rest_err(StatusCode::INTERNAL_SERVER_ERROR, "chain state poisoned");
    };
    let parts: Vec<&str> = path.split('/').collect();
    esplora_answer(&chain, &parts).unwrap_or_else(|| rest_err(StatusCode::NOT_FOUND, "not found"))
}

fn esplora_answer(chain: &SimChain, parts: &[&str]) -> Option<Rest> {
    let ok = |text: String| Some((StatusCode::OK, text));
    match parts {
        ["address", address, "utxo"] => {
            let address: bitcoin::Address<bitcoin::address::NetworkUnchecked> =
                address.parse().ok()?;
            let script = address.assume_checked().script_pubkey();
            let utxos: Vec<Value> = chain
                .utxos_of(&script)
                .into_iter()
                .map(|(o, out, height)| {
                    json!({
                        "txid": o.txid.to_string(), "vout": o.vout, "value": out.value.to_sat(),
                        "status": {"confirmed": true, "block_height": height,
                                   "block_hash": chain.block_hash(height).map(|h| h.to_string())},
                    })
                })
                .collect();
            ok(Value::Array(utxos).to_string())
        }
        ["tx", txid, rest] => {
            let txid: Txid = txid.parse().ok()?;
            let status = chain.status(&txid)?;
            match *rest {
                "status" => ok(json!({
                    "confirmed": status.height.is_some(),
                    "block_height": status.height,
                    "block_hash": status.block_hash.map(|h| h.to_string()),
                })
                .to_string()),
                "hex" => ok(serialize_hex(&chain.transaction(&txid)?)),
                "merkleblock-proof" => ok(serialize_hex(
                    &chain.txout_proof(&[txid], &status.block_hash?).ok()?,
                )),
                _ => None,
            }
        }
        ["blocks", "tip", "height"] => ok(chain.height().to_string()),
        ["block-height", height] => ok(chain.block_hash(height.parse().ok()?)?.to_string()),
        ["block", hash, "header"] => ok(serialize_hex(&chain.header(&hash.parse().ok()?)?.0)),
        _ => None,
    }
}
