//! Arbitrary bytes through the canonical-JSON decoder.
//!
//! Never panics; every message yields exactly one result; an accepted event satisfies the
//! documented invariants and survives a round trip through its own canonical JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overage::decode::{decode_canonical, units_ok, Decoder, Event, MAX_CLIENT_ID_BYTES};

/// The service default (`input.max_event_bytes`).
const MAX_EVENT_BYTES: usize = 64 * 1024;

fn check(ev: &Event<'_>) {
    assert!(!ev.client_id.is_empty(), "accepted an empty client_id");
    assert!(
        ev.client_id.len() <= MAX_CLIENT_ID_BYTES,
        "accepted a {}-byte client_id",
        ev.client_id.len()
    );
    assert!(units_ok(ev.units), "accepted units {}", ev.units);
}

fuzz_target!(|data: &[u8]| {
    let decoder = Decoder::canonical(MAX_EVENT_BYTES);
    let mut results = 0;
    decoder.decode(data, |r| {
        results += 1;
        if let Ok(ev) = &r {
            check(ev);
        }
        // the size limit is the only thing the Decoder adds to decode_canonical
        if data.len() <= MAX_EVENT_BYTES {
            assert_eq!(r, decode_canonical(data));
        }
    });
    assert_eq!(
        results, 1,
        "one canonical message must yield exactly one result"
    );

    if let Ok(ev) = decode_canonical(data) {
        // an accepted event re-encoded as canonical JSON decodes to the same event
        let line = serde_json::json!({
            "ts": ev.ts,
            "client_id": ev.client_id,
            "event_id": ev.event_id,
            "units": ev.units,
            "product": ev.product,
            "endpoint": ev.endpoint,
            "status": ev.status,
            "bytes": ev.bytes,
            "origin_ip": ev.origin_ip,
            "origin_country": ev.origin_country,
            "origin_asn": ev.origin_asn,
        })
        .to_string();
        let mut again = decode_canonical(line.as_bytes()).expect("re-encoded event decodes");
        // serde_json's default float parser (no `float_roundtrip`, which costs decoding speed)
        // may land one ulp away from the shortest representation it printed; units are
        // billing counts, where 1e-15 relative is far below anything a report shows.
        let tolerance = ev.units.abs() * 1e-15 + f64::MIN_POSITIVE; // (and subnormals)
        assert!(
            (again.units - ev.units).abs() <= tolerance,
            "units {} came back as {} through {line}",
            ev.units,
            again.units
        );
        again.units = ev.units;
        assert_eq!(again, ev, "round trip through {line}");
    }
});
