//! Arbitrary bytes through every gateway decoder: Kong (default client-id sources, and a header
//! fallback with units from a header), APISIX, Tyk, and a generic `[input.mapping]` with
//! fallbacks, indexed arrays and numeric time.
//!
//! Never panics; every message yields at least one result (a batch array one per entry, an
//! empty batch one rejection), so nothing disappears without being counted; accepted events
//! satisfy the documented invariants.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use overage::decode::kong::{ClientSource, KongOptions};
use overage::decode::mapping::{Mapping, Paths, TimeFormat, Units};
use overage::decode::{units_ok, Decoder, Format, MAX_CLIENT_ID_BYTES, MAX_TS, MIN_TS};

fn decoders() -> Vec<Decoder> {
    let none = Mapping::default();
    let kong_header = KongOptions {
        client_id_from: vec![ClientSource::ConsumerId, ClientSource::ConsumerUsername],
        client_id_header: Some("apikey".into()),
    };
    let units = Mapping {
        units: Some(Units::From(Paths::of(&[
            "response.headers.x-records-returned",
        ]))),
        ..Mapping::default()
    };
    let generic = Mapping {
        client_id: Some(Paths::of(&[
            "consumer",
            "request_headers.x-api-key",
            "who.0.name",
        ])),
        ts: Some(Paths::of(&["start_time", "t"])),
        ts_format: Some(TimeFormat::EpochS),
        units: Some(Units::From(Paths::of(&["n", "tags.1"]))),
        status: Some(Paths::of(&["response_code"])),
        origin_asn: Some(Paths::of(&["asn"])),
        endpoint: Some(Paths::of(&["path"])),
        ..Mapping::default()
    };
    vec![
        Decoder::new(Format::Kong, 64 * 1024, &KongOptions::default(), &none),
        Decoder::new(Format::Kong, 64 * 1024, &kong_header, &units),
        Decoder::new(Format::Apisix, 64 * 1024, &KongOptions::default(), &none),
        Decoder::new(Format::Tyk, 64 * 1024, &KongOptions::default(), &none),
        Decoder::new(
            Format::Mapping,
            64 * 1024,
            &KongOptions::default(),
            &generic,
        ),
    ]
}

static DECODERS: OnceLock<Vec<Decoder>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    for (i, decoder) in DECODERS.get_or_init(decoders).iter().enumerate() {
        let mut results = 0usize;
        decoder.decode(data, |r| {
            results += 1;
            if let Ok(ev) = r {
                assert!(!ev.client_id.is_empty(), "accepted an empty client_id");
                assert!(ev.client_id.len() <= MAX_CLIENT_ID_BYTES);
                assert!((MIN_TS..=MAX_TS).contains(&ev.ts), "time out of range");
                assert!(units_ok(ev.units), "bad units accepted: {}", ev.units);
                if i == 0 {
                    assert_eq!(ev.units, 1.0, "a Kong log line is one call by default");
                }
                if let Some(e) = &ev.endpoint {
                    assert!(!e.contains('?'), "query string kept in the endpoint");
                }
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
