//! The payload of a faucet grant, and the credit book's grant rule on it: whatever a decoded
//! grant asks, the book never creates or destroys a credit.
#![no_main]

use cairn_protocol::credits::{CreditBook, CreditParams, Faucet, FaucetGrant};
use cairn_protocol::{GrantId, Timestamp};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(grant) = cairn_fuzz::open_payload::<FaucetGrant>(data) {
        let _ = grant.check_fresh(Timestamp(grant.issued_at.0 / 2));
        let _ = grant.expires_at();
        let params = CreditParams {
            faucet: Some(Faucet {
                id: grant.faucet,
                per_identity: grant.amount / 2,
                total: grant.amount,
            }),
            ..CreditParams::default()
        };
        if let Ok(mut book) = CreditBook::new(params) {
            let _ = book.grant(GrantId::of(data), &grant);
            assert!(
                book.check_conservation().is_ok(),
                "a grant made or lost credits"
            );
        }
    }
});
