//! The node's live credit book: balances as this node has seen them move, applied as verdicts
//! arrive (like the live reputation table), and the payments that concern this node, for its
//! wallet. The rules are `cairn_protocol::credits`'; this module holds their state for the
//! verdict service, the market (escrow, the provider's balance check) and the API.
//!
//! On a network whose spec has no `[credits]` section credits are off: jobs are free, nobody
//! is asked to pay, and every balance shows 0.

use std::collections::VecDeque;

use cairn_protocol::credits::{
    CreditBook, CreditError, CreditParams, FaucetGrant, Granted, Payment, Settled, Settlement,
};
use cairn_protocol::merkle::ReputationLeaf;
use cairn_protocol::{GrantId, JobId, NodeId, Timestamp};
use serde::{Deserialize, Serialize};

/// Payments a node remembers for its wallet, at most; the oldest go first.
pub const MAX_PAYMENTS: usize = 1_024;

/// One payment as a wallet shows it: what a job's verdict moved for this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    /// The job, hex.
    pub job: String,
    /// `paid` (this node was the requester), `received` (it was an agreeing provider) or
    /// `granted` (a faucet grant to this node; `job` is then the grant's id).
    pub direction: String,
    /// The requester, hex.
    pub requester: String,
    /// Credits that moved for this node (for a requester, what it paid in all; for a
    /// provider, what it was paid plus any energy bonus).
    pub amount: u64,
    /// What the verdict owed (in all for a requester, to this provider otherwise).
    pub owed: u64,
    /// Energy reward on top (providers only).
    pub bonus: u64,
    /// Agreeing providers the job paid.
    pub providers: usize,
    /// When the verdict was issued, ms since the Unix epoch.
    pub issued_at: u64,
}

/// The live book, and this node's payments.
#[derive(Debug)]
pub(crate) struct LiveCredits {
    me: NodeId,
    params: Option<CreditParams>,
    book: CreditBook,
    payments: VecDeque<PaymentView>,
}

impl LiveCredits {
    /// The book at genesis for `me`; credits off when `params` is `None`.
    pub(crate) fn new(me: NodeId, params: Option<CreditParams>) -> Result<Self, CreditError> {
        let book = CreditBook::new(params.clone().unwrap_or_default())?;
        Ok(Self {
            me,
            params,
            book,
            payments: VecDeque::new(),
        })
    }

    /// Whether the network uses credits.
    pub(crate) fn enabled(&self) -> bool {
        self.params.is_some()
    }

    /// The book.
    pub(crate) fn book(&self) -> &CreditBook {
        &self.book
    }

    /// `peer`'s balance; `None` when credits are off.
    pub(crate) fn balance(&self, peer: &NodeId) -> Option<u64> {
        self.enabled().then(|| self.book.balance(peer))
    }

    /// Starts again from a finalised checkpoint's leaves (a restart); keeps the book as it is
    /// when they do not hold the supply.
    pub(crate) fn adopt_leaves(&mut self, leaves: &[ReputationLeaf]) -> Result<(), CreditError> {
        let params = self.params.clone().unwrap_or_default();
        self.book = CreditBook::from_leaves(params, leaves)?;
        Ok(())
    }

    /// Applies what a checked verdict owes; returns the payment when credits moved for the
    /// first time for its job.
    pub(crate) fn settle(&mut self, settlement: &Settlement) -> Option<Payment> {
        let Settled::Paid(payment) = self.book.settle(settlement) else {
            return None;
        };
        self.remember(&payment, settlement.issued_at);
        Some(payment)
    }

    /// Applies a verified faucet grant; what it credited (see `CreditBook::grant`).
    pub(crate) fn grant(&mut self, id: GrantId, grant: &FaucetGrant) -> Granted {
        let granted = self.book.grant(id, grant);
        if let (Granted::Credited { amount }, true) = (granted, grant.recipient == self.me) {
            self.push(PaymentView {
                job: id.to_string(),
                direction: "granted".into(),
                requester: grant.faucet.to_string(),
                amount,
                owed: grant.amount,
                bonus: 0,
                providers: 0,
                issued_at: grant.issued_at.0,
            });
        }
        granted
    }

    /// The payments that concern this node, oldest first.
    pub(crate) fn payments(&self) -> impl Iterator<Item = &PaymentView> {
        self.payments.iter()
    }

    /// The payment of `job`, when this node paid or was paid for it.
    pub(crate) fn payment_of(&self, job: &JobId) -> Option<PaymentView> {
        let job = job.to_string();
        self.payments.iter().rev().find(|p| p.job == job).cloned()
    }

    fn remember(&mut self, payment: &Payment, issued_at: Timestamp) {
        let view = |direction: &str, amount, owed, bonus| PaymentView {
            job: payment.job.to_string(),
            direction: direction.into(),
            requester: payment.requester.to_string(),
            amount,
            owed,
            bonus,
            providers: payment.payouts.len(),
            issued_at: issued_at.0,
        };
        let mut views = Vec::new();
        if payment.requester == self.me {
            views.push(view("paid", payment.paid(), payment.owed(), 0));
        }
        for p in payment.payouts.iter().filter(|p| p.provider == self.me) {
            let amount = p.paid.saturating_add(p.bonus);
            views.push(view("received", amount, p.owed, p.bonus));
        }
        for v in views {
            self.push(v);
        }
    }

    fn push(&mut self, view: PaymentView) {
        if self.payments.len() >= MAX_PAYMENTS {
            self.payments.pop_front();
        }
        self.payments.push_back(view);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_are_off_without_a_credits_section_and_on_with_one() {
        let me = NodeId([1; 32]);
        let off = LiveCredits::new(me, None).unwrap();
        assert_eq!(off.balance(&me), None);
        let params = CreditParams {
            genesis: vec![(me, 500)],
            ..CreditParams::default()
        };
        let on = LiveCredits::new(me, Some(params)).unwrap();
        assert_eq!(on.balance(&me), Some(500));
        assert_eq!(on.balance(&NodeId([2; 32])), Some(0));
    }
}
