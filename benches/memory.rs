//! Memory per tracked client, measured as resident set size.
//!
//! Issue target: at most 2 KiB of state per client with all detectors on, measured with 1M
//! distinct clients. `cargo bench --bench memory [-- CLIENTS]` prints bytes per client and
//! exits non-zero above the target. Under `cargo test` (no `--bench` flag) it runs a small
//! smoke version, so the suite stays fast but the harness cannot rot.

use std::sync::Arc;

use overage::client::Client;
use overage::config::Config;
use overage::contract::Contracts;
use overage::decode::Decoder;
use overage::engine::Engine;

mod common;

const TARGET_BYTES_PER_CLIENT: f64 = 2048.0;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let clients: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if benching { 1_000_000 } else { 20_000 });
    let mut config = Config::default();
    config.state.max_clients = clients + 1;
    let decoder = Decoder::canonical(64 * 1024);
    let mut engine = Engine::new(&config, Arc::new(Contracts::default()));
    let mut out = Vec::new();
    let before = rss_bytes();
    // Three events per client, minutes apart, with every optional field: every ring, the
    // origin table and the scope counters are in use. Ids are distinct per client.
    let start = common::START_MS;
    for round in 0..3i64 {
        for c in 0..clients {
            let ts = start + round * 20 * 60_000 + (c as i64 % 60_000);
            let line = format!(
                r#"{{"ts":{ts},"client_id":"client-{c:07}","event_id":"{c}-{round}","units":{},"product":"search","endpoint":"/2/tweets/search/recent","origin_country":"US","origin_asn":64500}}"#,
                1 + round
            );
            engine.ingest(&decoder, line.as_bytes(), None, &mut out);
        }
    }
    engine.flush(&mut out);
    let after = rss_bytes();
    assert_eq!(engine.client_count(), clients);
    // Dedupe ids are per event, not per client: report them apart.
    let per_client = (after - before) as f64 / clients as f64;
    println!("clients tracked:          {clients}");
    println!(
        "size_of::<Client>():      {} bytes",
        std::mem::size_of::<Client>()
    );
    println!(
        "RSS growth:               {:.1} MiB",
        (after - before) as f64 / (1 << 20) as f64
    );
    println!("RSS per client:           {per_client:.0} bytes (target <= {TARGET_BYTES_PER_CLIENT:.0}, includes {} remembered event ids)", 3 * clients);
    if benching && per_client > TARGET_BYTES_PER_CLIENT {
        eprintln!("over the memory target");
        std::process::exit(1);
    }
}
