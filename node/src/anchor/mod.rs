//! Anchoring backends: where a finalised checkpoint's hash is committed, behind one trait.
//!
//! - `none` ([`NoAnchor`], the default): checkpoints are signed and chained but not anchored,
//!   and reported as "not anchored";
//! - `bitcoind` ([`BitcoindBackend`]): Bitcoin Core or Elements JSON-RPC with a wallet;
//! - `simulated` (tests and simulations only, labelled everywhere): the `bitcoind` backend
//!   talking to an in-process chain ([`SimulatedChain`]) that mines real regtest-difficulty
//!   blocks and answers the same RPC calls.
//!
//! - `esplora` ([`EsploraBackend`]): a local key and one or more Esplora REST endpoints
//!   whose answers must agree.

mod bitcoind;
mod esplora;
pub mod p2wpkh;
mod simchain;
mod simulated;

pub use bitcoind::BitcoindBackend;
pub use cairn_config::anchor::{AnchorSpec, BackendKind, CheckpointSpec, chain_name};
pub use esplora::EsploraBackend;
pub use simchain::{REGTEST_BITS, SimChain, SimChainError, TxStatus};
pub use simulated::SimulatedChain;

use bitcoin::Txid;
use cairn_protocol::anchor::AnchorPayload;
use cairn_protocol::proof::AnchorProof;

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorBackendError {
    /// The RPC server could not be reached or timed out.
    #[error(
        "{method}: cannot reach the chain's RPC server: {reason} (check anchor.rpc_url and that the node runs)"
    )]
    Transport {
        /// The call.
        method: &'static str,
        /// What failed.
        reason: String,
    },
    /// The server answered with an error.
    #[error("{method} failed with RPC error {code}: {message}")]
    Rpc {
        /// The call.
        method: &'static str,
        /// Its error code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The answer is not what the call returns.
    #[error("{method} returned an unexpected answer: {reason}")]
    BadResponse {
        /// The call.
        method: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// One way of committing checkpoint hashes to a chain. Calls block; run them off the async
/// runtime.
pub trait AnchorBackend: Send + Sync {
    /// Backend name: `none`, `bitcoind` or `simulated`.
    fn kind(&self) -> &'static str;
    /// Chain name recorded in receipts and proofs.
    fn chain(&self) -> &str;
    /// Publishes a transaction carrying `payload`; `None` when this backend does not anchor.
    fn broadcast(&self, payload: &AnchorPayload) -> Result<Option<Txid>, AnchorBackendError>;
    /// The inclusion proof of `txid` once it has `min_confirmations`; `None` until then.
    fn proof(
        &self,
        txid: &Txid,
        min_confirmations: u32,
    ) -> Result<Option<AnchorProof>, AnchorBackendError>;
    /// Called once after a broadcast: the simulated chain mines the confirming blocks here;
    /// real chains do nothing.
    fn after_broadcast(&self, _confirmations: u32) -> Result<(), AnchorBackendError> {
        Ok(())
    }
}

/// The `none` backend: anchors nothing and says so.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAnchor;

impl AnchorBackend for NoAnchor {
    fn kind(&self) -> &'static str {
        "none"
    }

    fn chain(&self) -> &str {
        "none"
    }

    fn broadcast(&self, _payload: &AnchorPayload) -> Result<Option<Txid>, AnchorBackendError> {
        Ok(None)
    }

    fn proof(&self, _txid: &Txid, _min: u32) -> Result<Option<AnchorProof>, AnchorBackendError> {
        Ok(None)
    }
}

/// The `bitcoind` client pointed at a simulated chain, labelled `simulated`.
pub struct Simulated(pub BitcoindBackend);

impl AnchorBackend for Simulated {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn chain(&self) -> &str {
        self.0.chain()
    }

    fn broadcast(&self, payload: &AnchorPayload) -> Result<Option<Txid>, AnchorBackendError> {
        self.0.broadcast(payload)
    }

    fn proof(&self, txid: &Txid, min: u32) -> Result<Option<AnchorProof>, AnchorBackendError> {
        self.0.proof(txid, min)
    }

    fn after_broadcast(&self, confirmations: u32) -> Result<(), AnchorBackendError> {
        let address = self.0.call("getnewaddress", serde_json::json!([]))?;
        self.0
            .call(
                "generatetoaddress",
                serde_json::json!([confirmations, address]),
            )
            .map(|_| ())
    }
}
