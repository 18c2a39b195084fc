//! A small blocking client of the control API, used by the CLI.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::api::{ADDR_FILE, TOKEN_FILE};

/// Largest response body read, in bytes.
const MAX_RESPONSE_BYTES: u64 = 512 << 20;

/// Why a call to the node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No node has run in the data dir (no `api.addr` / `api.token`).
    #[error(
        "no node found in {dir}: start one with `cairn node --data-dir {dir}`, or pass --api and --token"
    )]
    NoNode {
        /// The data dir.
        dir: PathBuf,
    },
    /// The node did not answer.
    #[error("cannot reach the node at {addr}: {reason} (is `cairn node` running?)")]
    Unreachable {
        /// The API address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The node answered with an error.
    #[error("the node refused: {message} ({kind}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error kind.
        kind: String,
        /// Human message.
        message: String,
    },
    /// The answer could not be read.
    #[error("unreadable answer from the node: {0}")]
    Decode(String),
}

/// Client of one node's API.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the API at `addr` (`127.0.0.1:4740`) with `token`.
    pub fn new(addr: &str, token: &str) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(600))
            .build();
        Self {
            base: format!("http://{addr}"),
            token: token.trim().to_owned(),
            agent,
        }
    }

    /// A client of the node whose data dir is `dir` (reads `api.addr` and `api.token`).
    pub fn from_data_dir(dir: &Path) -> Result<Self, ClientError> {
        let read = |name| std::fs::read_to_string(dir.join(name));
        match (read(ADDR_FILE), read(TOKEN_FILE)) {
            (Ok(addr), Ok(token)) => Ok(Self::new(addr.trim(), &token)),
            _ => Err(ClientError::NoNode {
                dir: dir.to_owned(),
            }),
        }
    }

    fn call(
        &self,
        request: ureq::Request,
        body: Option<&[u8]>,
    ) -> Result<ureq::Response, ClientError> {
        let request = request.set("Authorization", &format!("Bearer {}", self.token));
        let result = match body {
            Some(bytes) => request.send_bytes(bytes),
            None => request.call(),
        };
        match result {
            Ok(response) => Ok(response),
            Err(ureq::Error::Status(status, response)) => {
                let body: serde_json::Value = response.into_json().unwrap_or_default();
                let field = |f: &str| body["error"][f].as_str().unwrap_or("unknown").to_owned();
                Err(ClientError::Api {
                    status,
                    kind: field("kind"),
                    message: field("message"),
                })
            }
            Err(e) => Err(ClientError::Unreachable {
                addr: self.base.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// `GET path`, decoded from JSON.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.call(self.agent.get(&format!("{}{path}", self.base)), None)?;
        response
            .into_json()
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET path`, raw bytes.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let response = self.call(self.agent.get(&format!("{}{path}", self.base)), None)?;
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(bytes)
    }

    /// `POST path` with a raw body, decoded from JSON.
    pub fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &[u8],
    ) -> Result<T, ClientError> {
        let response = self.call(self.agent.post(&format!("{}{path}", self.base)), Some(body))?;
        response
            .into_json()
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST path` with a JSON body, decoded from JSON.
    pub fn post_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let request = self
            .agent
            .post(&format!("{}{path}", self.base))
            .set("Content-Type", "application/json");
        let response = self.call(request, Some(&bytes))?;
        response
            .into_json()
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET path` without the token, as text (for `/metrics`).
    pub fn get_text_unauthenticated(&self, path: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self.agent.get(&url).call();
        match response {
            Ok(r) => r
                .into_string()
                .map_err(|e| ClientError::Decode(e.to_string())),
            Err(e) => Err(ClientError::Unreachable {
                addr: self.base.clone(),
                reason: e.to_string(),
            }),
        }
    }
}
