//! The payload of a signed result report.
#![no_main]

use cairn_protocol::ResultReport;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(report) = cairn_fuzz::open_payload::<ResultReport>(data) {
        let _ = report.outcome.is_deterministic();
    }
});
