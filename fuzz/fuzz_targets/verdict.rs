//! The payload of a signed verdict, then every check of its evidence (the signed reports inside it, awards, quorum).
#![no_main]

use cairn_protocol::{NetworkId, Verdict};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(verdict) = cairn_fuzz::open_payload::<Verdict>(data) {
        // The network its first report was signed for, so that seeds made by the property
        // tests get past the network check to the signatures and the quorum rules.
        let network = verdict
            .agreeing
            .first()
            .map_or(NetworkId([0; 32]), |e| e.network);
        if let Err(e) = verdict.evidence(&network) {
            assert!(!e.reason().is_empty());
        }
        let _ = verdict.check_fresh(verdict.issued_at);
    }
});
