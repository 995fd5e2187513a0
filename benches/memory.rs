//! Memory per tracked client, measured as resident set size, and the cost of many sparse
//! clients.
//!
//! `cargo bench --bench memory [-- CLIENTS]` runs each case in a process of its own (RSS does
//! not shrink when an engine is dropped, so cases cannot share one) and exits non-zero above a
//! target:
//!
//! - `full`: 1M clients with every window in use (all detectors on, 3 calls each; full windows
//!   from the first call, as a client has after `state.sparse_calls` calls). Target ≤ 2 KiB of
//!   RSS per client.
//! - `sparse`: 1M events over one day, one per client, as most clients of a large fleet look;
//!   with the default `state.sparse_calls`. Target ≤ 400 bytes per client.
//! - `dense`: the same 1M events spread over 10,000 clients, for the rate: `sparse` must ingest
//!   at ≥ 50% of it.
//! - `history`: 2,000 clients active in every hour of two months (Aug 1 to Sep 30). Target
//!   ≤ 8 KiB of RSS per client, detection state and usage history together.
//! - `twenty_hours`: 20,000 clients active 20 hours a month over the same two months, each
//!   at its own hours (so that, as in a real fleet, a few are active at any time and the rest
//!   are packed: [`overage::packed`]). Target ≤ 2 KiB of RSS per client, all state.
//!
//! Under `cargo test` (no `--bench` flag) it runs small versions, so the suite stays fast but
//! the harness cannot rot.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use overage::client::Client;
use overage::config::Config;
use overage::contract::Contracts;
use overage::decode::Decoder;
use overage::engine::Engine;
use overage::time::DAY_MS;

mod common;

const FULL_BYTES_PER_CLIENT: f64 = 2048.0;
const SPARSE_BYTES_PER_CLIENT: f64 = 400.0;
const SPARSE_RATE_OF_DENSE: f64 = 0.5;
const HISTORY_BYTES_PER_CLIENT: f64 = 8192.0;
const TWENTY_HOURS_BYTES_PER_CLIENT: f64 = 2048.0;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

struct Measured {
    per_client: f64,
    events_per_s: f64,
}

/// Ingest `lines` into a fresh engine; RSS growth per client and the ingest rate.
fn measure(
    config: &Config,
    lines: impl IntoIterator<Item = impl AsRef<str>>,
    clients: usize,
) -> Measured {
    let decoder = Decoder::canonical(64 * 1024);
    let mut engine = Engine::new(config, Arc::new(Contracts::default()));
    let mut out = Vec::new();
    let before = rss_bytes();
    let started = Instant::now();
    let mut events = 0usize;
    for line in lines {
        engine.ingest(&decoder, line.as_ref().as_bytes(), None, &mut out);
        events += 1;
        // transitions are not what is measured
        out.clear();
    }
    engine.flush(&mut out);
    let elapsed = started.elapsed().as_secs_f64();
    let after = rss_bytes();
    assert_eq!(engine.client_count(), clients);
    println!("clients tracked:          {clients}");
    println!("  of them sparse:         {}", engine.sparse_count());
    println!("  of them packed:         {}", engine.packed_count());
    println!(
        "RSS growth:               {:.1} MiB (process: {:.1} MiB)",
        (after - before) as f64 / (1 << 20) as f64,
        after as f64 / (1 << 20) as f64
    );
    let events_per_s = events as f64 / elapsed;
    println!(
        "ingest:                   {:.2} s, {:.0} k events/s",
        elapsed,
        events_per_s / 1e3
    );
    // (a sparse client's history is its calls, and walking it would rebuild it)
    if engine.sparse_count() == 0 {
        let history: usize = engine.clients().map(|c| c.rollup.heap_bytes()).sum();
        println!(
            "usage history:            {:.0} bytes per full client (of it, on the heap beside the client)",
            history as f64 / clients as f64
        );
    }
    Measured {
        per_client: (after - before) as f64 / clients as f64,
        events_per_s,
    }
}

/// Three calls per client, minutes apart, with every optional field: every ring, the origin
/// table and the scope counters are in use. Ids are distinct per client.
fn full(clients: usize) -> bool {
    let mut config = Config::default();
    config.state.max_clients = clients + 1;
    config.state.sparse_calls = 0;
    let start = common::START_MS;
    let mut lines = Vec::with_capacity(3 * clients);
    for round in 0..3i64 {
        for c in 0..clients {
            let ts = start + round * 20 * 60_000 + (c as i64 % 60_000);
            lines.push(format!(
                r#"{{"ts":{ts},"client_id":"client-{c:07}","event_id":"{c}-{round}","units":{},"product":"search","endpoint":"/2/tweets/search/recent","origin_country":"US","origin_asn":64500}}"#,
                1 + round
            ));
        }
    }
    let m = measure(&config, &lines, clients);
    println!(
        "size_of::<Client>():      {} bytes",
        std::mem::size_of::<Client>()
    );
    println!("RSS per client:           {:.0} bytes (target <= {FULL_BYTES_PER_CLIENT:.0}, includes {} remembered event ids)", m.per_client, 3 * clients);
    m.per_client <= FULL_BYTES_PER_CLIENT
}

/// `events` calls over one day, in time order, spread over `clients` clients.
fn day_of_calls(events: usize, clients: usize) -> Vec<String> {
    let start = common::START_MS;
    (0..events)
        .map(|i| {
            let ts = start + (i as i64 * DAY_MS) / events as i64;
            let c = (i * 7919) % clients;
            format!(
                r#"{{"ts":{ts},"client_id":"client-{c:07}","event_id":"{i}","units":2,"product":"search","endpoint":"/2/tweets/search/recent","origin_country":"US","origin_asn":64500}}"#
            )
        })
        .collect()
}

fn spread(events: usize, clients: usize) -> Measured {
    let mut config = Config::default();
    config.state.max_clients = clients + 1;
    let lines = day_of_calls(events, clients);
    let m = measure(&config, &lines, clients);
    // freed after the measurement: RSS taken before it includes them
    drop(lines);
    m
}

/// Clients with two months of usage history: active in every hour (`every_hour`) or in 20
/// hours a month, two calls in each active hour (one product, one country: a product row and an
/// origin row an hour), from the first of a month to the end of the next.
fn history(clients: usize, every_hour: bool) -> Measured {
    let mut config = Config::default();
    config.state.max_clients = clients + 1;
    let start = overage::time::parse_rfc3339("2026-08-01T00:00:00Z").expect("a time");
    let hours = 61 * 24;
    // 20 hours a month: every 36th hour, a client's own (its number sets the phase)
    let active = move |h: i64, c: usize| every_hour || (h + c as i64) % 36 == 5;
    let lines = (0..hours).flat_map(move |h| {
            (0..2i64).flat_map(move |half| {
                (0..clients).filter(move |&c| active(h, c)).map(move |c| {
                    let ts = start + h * 3_600_000 + half * 1_800_000 + c as i64;
                    format!(
                        r#"{{"ts":{ts},"client_id":"client-{c:07}","units":{},"product":"search","endpoint":"/2/tweets/search/recent","origin_country":"US"}}"#,
                        1 + (h * 7 + c as i64 * 13 + half * 5) % 40
                    )
                })
            })
        });
    measure(&config, lines, clients)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let n: usize = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if benching { 1_000_000 } else { 20_000 });
    if let Some(i) = args.iter().position(|a| a == "--case") {
        let ok = match args.get(i + 1).map(String::as_str) {
            Some("full") => full(n),
            Some("sparse") => {
                let m = spread(n, n);
                println!(
                    "RSS per client:           {:.0} bytes (target <= {SPARSE_BYTES_PER_CLIENT:.0}, includes {n} remembered event ids)",
                    m.per_client
                );
                println!("rate:                     {:.0}", m.events_per_s);
                m.per_client <= SPARSE_BYTES_PER_CLIENT
            }
            Some("history") => {
                let m = history((n / 500).max(1), true);
                println!(
                    "RSS per client:           {:.0} bytes (target <= {HISTORY_BYTES_PER_CLIENT:.0}: all state, two months of history)",
                    m.per_client
                );
                m.per_client <= HISTORY_BYTES_PER_CLIENT
            }
            Some("twenty_hours") => {
                let m = history((n / 50).max(1), false);
                println!(
                    "RSS per client:           {:.0} bytes (target <= {TWENTY_HOURS_BYTES_PER_CLIENT:.0}: all state, two months of history)",
                    m.per_client
                );
                m.per_client <= TWENTY_HOURS_BYTES_PER_CLIENT
            }
            Some("dense") => {
                let m = spread(n, (n / 100).max(1));
                println!("rate:                     {:.0}", m.events_per_s);
                true
            }
            other => panic!("unknown case {other:?}"),
        };
        std::process::exit(if ok || !benching { 0 } else { 1 });
    }
    let exe = std::env::current_exe().expect("own path");
    let mut ok = true;
    let mut rates = vec![];
    for case in ["full", "history", "twenty_hours", "sparse", "dense"] {
        println!("\n== {case}");
        let mut cmd = Command::new(&exe);
        cmd.arg(n.to_string()).args(["--case", case]);
        if benching {
            cmd.arg("--bench");
        }
        let output = cmd.output().expect("run a case");
        let text = String::from_utf8_lossy(&output.stdout);
        print!("{text}");
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        ok &= output.status.success();
        if let Some(rate) = text
            .lines()
            .find_map(|l| l.strip_prefix("rate:"))
            .and_then(|r| r.trim().parse::<f64>().ok())
        {
            rates.push(rate);
        }
    }
    if let [sparse, dense] = rates[..] {
        let ratio = sparse / dense;
        println!("\nsparse / dense rate:      {ratio:.2} (target >= {SPARSE_RATE_OF_DENSE})");
        ok &= !benching || ratio >= SPARSE_RATE_OF_DENSE;
    }
    if !ok {
        eprintln!("over a target");
        std::process::exit(1);
    }
}
