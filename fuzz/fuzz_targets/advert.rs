//! The payload of a signed capability advert.
#![no_main]

use cairn_protocol::CapabilityAdvert;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(advert) = cairn_fuzz::open_payload::<CapabilityAdvert>(data) {
        let _ = advert.classes();
        let _ = cairn_protocol::adverts::AddressRange::of(&advert.addresses);
    }
});
