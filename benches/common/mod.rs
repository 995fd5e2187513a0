//! Synthetic input shared by the benches: canonical event lines for many clients, with the
//! optional fields filled in so every per-event path (dedupe, scope checks, origins) runs.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use overage::contract::Contracts;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// 2026-08-24T00:00:00Z
pub const START_MS: i64 = 1_787_529_600_000;

const PRODUCTS: [&str; 3] = ["search", "timeline", "firehose"];
const ENDPOINTS: [&str; 4] = [
    "/2/tweets/search/recent",
    "/2/tweets/search/all",
    "/2/users/:id/timeline",
    "/2/tweets/sample/stream",
];
const COUNTRIES: [&str; 5] = ["US", "IE", "GB", "DE", "JP"];

/// `n` event lines (newline-free) spread over `span_ms` of event time, for `clients` clients
/// chosen with a skew (a few heavy hitters, a long tail), as gateways see them.
pub fn lines(n: usize, clients: usize, span_ms: i64, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let ts = START_MS + (i as i64 * span_ms) / n as i64 + rng.gen_range(0..1000);
            // squaring a uniform draw skews towards low client numbers
            let u: f64 = rng.gen();
            let client = ((u * u) * clients as f64) as usize;
            let ts_field = if i % 2 == 0 {
                ts.to_string()
            } else {
                format!("\"{}\"", overage::time::format_rfc3339(ts))
            };
            format!(
                concat!(
                    r#"{{"ts":{},"client_id":"client-{:06}","event_id":"{:016x}","units":{},"#,
                    r#""product":"{}","endpoint":"{}","status":200,"bytes":{},"#,
                    r#""origin_ip":"203.0.113.{}","origin_country":"{}","origin_asn":{}}}"#
                ),
                ts_field,
                client,
                rng.gen::<u64>(),
                rng.gen_range(1..200),
                PRODUCTS[rng.gen_range(0..PRODUCTS.len())],
                ENDPOINTS[rng.gen_range(0..ENDPOINTS.len())],
                rng.gen_range(200..20_000),
                rng.gen_range(1..255),
                COUNTRIES[client % COUNTRIES.len()],
                64_500 + client % 100,
            )
            .into_bytes()
        })
        .collect()
}

/// Contracts for every tenth client, with product, endpoint and country restrictions.
pub fn contracts(clients: usize) -> Arc<Contracts> {
    let mut text = String::new();
    for c in (0..clients).step_by(10) {
        text += &format!(
            "[[contract]]\nclient_id = \"client-{c:06}\"\nbaseline = {{ units = 100000, per = \"1h\" }}\n\
             monthly_cap = 50000000\nproducts = [\"search\", \"timeline\"]\n\
             endpoints = [\"/2/tweets/search/*\"]\norigin_countries = [\"US\", \"IE\"]\n\n"
        );
    }
    Arc::new(Contracts::parse(&text, Path::new("bench-contracts.toml")).expect("valid contracts"))
}

/// Round `round` of [`populated_engine`]'s events: one event for each of `clients` clients.
pub fn apply_round(
    engine: &mut overage::engine::Engine,
    decoder: &overage::decode::Decoder,
    clients: usize,
    round: i64,
    out: &mut Vec<overage::alert::Alert>,
) {
    use std::fmt::Write;
    let mut line = String::with_capacity(256);
    for c in 0..clients {
        let ts = START_MS + round * 40 * 60_000 + (c as i64 % 60_000);
        line.clear();
        let _ = write!(
            line,
            r#"{{"ts":{ts},"client_id":"client-{c:07}","event_id":"{c}-{round}","units":{},"product":"{}","endpoint":"{}","origin_country":"{}","origin_asn":{}}}"#,
            1 + (c as i64 + round) % 7,
            PRODUCTS[(c + round as usize) % PRODUCTS.len()],
            ENDPOINTS[c % ENDPOINTS.len()],
            COUNTRIES[c % COUNTRIES.len()],
            64_500 + c % 100,
        );
        engine.ingest(decoder, line.as_bytes(), None, out);
    }
}

/// An engine holding `clients` clients with realistic state, as `benches/memory.rs` builds
/// them but over more event time: `rounds` events per client, 40 minutes apart (6 rounds span
/// 3h20m), each with a product, endpoint and origin, so the minute, hour and day rings, the
/// hourly rollups, the seasonal baselines, the origin tables and the scope counters all hold
/// data, as do the dedupe ids of the last minutes. No contracts (as in the memory bench).
pub fn populated_engine(clients: usize, rounds: i64) -> overage::engine::Engine {
    use overage::decode::Decoder;
    let mut config = overage::config::Config::default();
    config.state.max_clients = clients + 1;
    let decoder = Decoder::canonical(64 * 1024);
    let mut engine = overage::engine::Engine::new(&config, Arc::new(Contracts::default()));
    let mut out = Vec::new();
    for round in 0..rounds {
        apply_round(&mut engine, &decoder, clients, round, &mut out);
        out.clear();
    }
    engine.flush(&mut out);
    assert_eq!(engine.client_count(), clients);
    engine
}
