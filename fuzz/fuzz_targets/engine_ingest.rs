//! Arbitrary bytes through `Engine::ingest`, the one path from bytes to state that `replay` and
//! the service share, then `flush`.
//!
//! Input layout: the first byte picks the mode (bit 0: Kong instead of canonical JSON; bit 1:
//! check future timestamps against a fixed "now"), the rest is split on `\n` into messages fed
//! to one engine in order, so the fuzzer also explores sequences (watermark, dedupe, eviction,
//! alert lifecycle) rather than single events.
//!
//! Invariants, from how `Stats::events()` counts (the sum of all outcome counters, one per
//! event applied or rejection counted):
//! - a canonical message adds exactly 1 to it; a Kong message at least 1 (a batch one per
//!   entry), so no message disappears without an outcome;
//! - `ingest` returns a rejection (the message is dead-lettered) exactly when some rejection
//!   counter moved, and that reason's counter is among those that moved;
//! - `flush` evaluates but counts nothing.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use overage::config::Config;
use overage::contract::Contracts;
use overage::decode::{Format, Reject};
use overage::engine::Engine;

const CONTRACTS: &str = r#"
[[contract]]
client_id = "msft-bing"
plan = "enterprise"
baseline = { units = 6000, per = "1h" }
monthly_cap = 500000
products = ["search", "timeline"]
endpoints = ["/2/tweets/search/*"]
origin_countries = ["US", "IE"]

[[contract]]
client_id = "steady"
baseline = { units = 600, per = "1m" }
"#;

/// 2026-09-10T14:20:00Z, "now" when future timestamps are checked (with the default 5m skew).
const NOW: i64 = 1_789_050_000_000;

fn contracts() -> Arc<Contracts> {
    static C: OnceLock<Arc<Contracts>> = OnceLock::new();
    C.get_or_init(|| {
        Arc::new(Contracts::parse(CONTRACTS, Path::new("fuzz-contracts.toml")).expect("valid"))
    })
    .clone()
}

fn rejections(engine: &Engine) -> u64 {
    Reject::ALL
        .iter()
        .map(|r| engine.stats().count(r.as_str()))
        .sum()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let mut cfg = Config::default();
    let kong = mode & 1 == 1;
    if kong {
        cfg.input.format = Format::Kong;
    }
    let future_limit = (mode & 2 == 2).then_some(NOW + 300_000);
    let decoder = cfg.input.decoder();
    let mut engine = Engine::new(&cfg, contracts());
    let mut out = Vec::new();
    for message in body.split(|&b| b == b'\n') {
        let before = engine.stats().clone();
        let rejected_before = rejections(&engine);
        let reason = engine.ingest(&decoder, message, future_limit, &mut out);
        let counted = engine.stats().events() - before.events();
        if kong {
            assert!(counted >= 1, "a Kong message left no outcome: {message:?}");
        } else {
            assert_eq!(counted, 1, "a canonical message must have one outcome");
        }
        let rejected = rejections(&engine) - rejected_before;
        match reason {
            Some(r) => assert!(
                engine.stats().count(r.as_str()) > before.count(r.as_str()),
                "ingest reported {r} without counting it"
            ),
            None => assert_eq!(rejected, 0, "a rejection was counted but not reported"),
        }
        out.clear();
    }
    let events = engine.stats().events();
    engine.flush(&mut out);
    assert_eq!(engine.stats().events(), events, "flush counted outcomes");
});
