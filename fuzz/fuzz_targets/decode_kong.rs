//! Arbitrary bytes through the Kong (kafka-log / http-log) decoder, with the default client-id
//! sources and with a header fallback.
//!
//! Never panics; every message yields at least one result (a batch array one per entry, an
//! empty batch one rejection), so nothing disappears without being counted; accepted events
//! satisfy the documented invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overage::decode::kong::{ClientSource, KongOptions};
use overage::decode::{Decoder, Format, MAX_CLIENT_ID_BYTES};

fuzz_target!(|data: &[u8]| {
    let options = [
        KongOptions::default(),
        KongOptions {
            client_id_from: vec![ClientSource::ConsumerId, ClientSource::ConsumerUsername],
            client_id_header: Some("apikey".into()),
        },
    ];
    for kong in options {
        let decoder = Decoder::new(Format::Kong, 64 * 1024, kong);
        let mut results = 0usize;
        decoder.decode(data, |r| {
            results += 1;
            if let Ok(ev) = r {
                assert!(!ev.client_id.is_empty(), "accepted an empty client_id");
                assert!(ev.client_id.len() <= MAX_CLIENT_ID_BYTES);
                assert_eq!(ev.units, 1.0, "a Kong log line is one call");
            }
        });
        assert!(results >= 1, "a message yielded no result at all");
        // a batch yields one result per entry, never more
        if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(data) {
            if data.len() <= 64 * 1024 && !items.is_empty() {
                assert_eq!(results, items.len());
            }
        }
    }
});
