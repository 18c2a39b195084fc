//! The control API's credit routes: this node's wallet (balance, escrow, payments) and any
//! identity's balance in this node's book.

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_protocol::NodeId;
use serde::{Deserialize, Serialize};

use super::state::{ApiState, error};
use crate::credits::PaymentView;
use crate::verdicts::GrantIssueError;

/// `GET /v1/wallet`: this node's credits.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct WalletView {
    /// Whether the network uses credits (its spec has a `[credits]` section); without, jobs
    /// are free and every number here is 0.
    pub enabled: bool,
    /// Network name.
    pub network: String,
    /// This node's id (hex).
    pub node_id: String,
    /// Its balance in this node's live book.
    pub balance: u64,
    /// Held in escrow for its running jobs.
    pub escrowed: u64,
    /// `balance - escrowed`: what new jobs can use.
    pub available: u64,
    /// Every credit on the network (genesis, faucet and reward pool).
    pub supply: u64,
    /// Payments that concern this node, oldest first.
    pub payments: Vec<PaymentView>,
    /// Where credits come from on this network, in words.
    pub how_to_get_credits: String,
}

/// `GET /v1/balances/{node_id}`: an identity's balance in this node's book.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct BalanceView {
    /// The identity (hex).
    pub node_id: String,
    /// Its balance; 0 on a network without credits.
    pub balance: u64,
    /// Whether the network uses credits.
    pub enabled: bool,
}

pub(crate) async fn wallet(State(s): State<ApiState>) -> Response {
    let me = s.node.ctx.node_id();
    let balance = s.node.verdicts.balance(&me);
    let escrowed = s.node.market.escrowed();
    let b = balance.unwrap_or(0);
    let supply = s
        .node
        .verdicts
        .with_credits(|c| c.book().supply())
        .unwrap_or(0);
    Json(WalletView {
        enabled: balance.is_some(),
        network: s.node.ctx.options().spec.name.clone(),
        node_id: me.to_string(),
        balance: b,
        escrowed,
        available: b.saturating_sub(escrowed),
        supply,
        payments: s.node.verdicts.payments(),
        how_to_get_credits: s.node.market.how_to_get_credits(),
    })
    .into_response()
}

pub(crate) async fn balance(State(s): State<ApiState>, UrlPath(id): UrlPath<String>) -> Response {
    let peer = match parse_peer(&id) {
        Some(peer) => peer,
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_node_id",
                format!("{id:?} is neither a hex node id nor a peer id"),
            );
        }
    };
    let balance = s.node.verdicts.balance(&peer);
    Json(BalanceView {
        node_id: peer.to_string(),
        balance: balance.unwrap_or(0),
        enabled: balance.is_some(),
    })
    .into_response()
}

/// Body of `POST /v1/faucet/grants`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct GrantRequest {
    /// Who receives the credits: hex node id or peer id.
    pub recipient: String,
    /// Credits asked for.
    pub amount: u64,
}

/// Answer of `POST /v1/faucet/grants`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct GrantView {
    /// The recipient (hex node id).
    pub recipient: String,
    /// Credits asked for.
    pub asked: u64,
    /// Credits the grant moved: less than asked when the recipient reached the faucet's
    /// per-identity cap or the faucet's pool ran low.
    pub credited: u64,
    /// The recipient's balance now, in this node's book.
    pub balance: u64,
}

pub(crate) async fn grant(State(s): State<ApiState>, Json(req): Json<GrantRequest>) -> Response {
    let Some(recipient) = parse_peer(&req.recipient) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_node_id",
            format!("{:?} is neither a hex node id nor a peer id", req.recipient),
        );
    };
    match s.node.verdicts.grant(recipient, req.amount).await {
        Ok(credited) => Json(GrantView {
            recipient: recipient.to_string(),
            asked: req.amount,
            credited,
            balance: s.node.verdicts.balance(&recipient).unwrap_or(0),
        })
        .into_response(),
        Err(e @ GrantIssueError::NotTheFaucet { .. }) => {
            error(StatusCode::FORBIDDEN, "not_the_faucet", e)
        }
        Err(e) => error(StatusCode::BAD_REQUEST, "grant_refused", e),
    }
}

/// A hex node id or a libp2p peer id.
fn parse_peer(text: &str) -> Option<NodeId> {
    if let Ok(id) = text.parse::<NodeId>() {
        return Some(id);
    }
    let peer = text.parse::<libp2p::PeerId>().ok()?;
    crate::market::node_of(&peer)
}
