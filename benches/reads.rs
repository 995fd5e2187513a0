//! Per-message processing latency while readers look at a partition of many clients.
//!
//! `cargo bench --bench reads [-- CLIENTS]` (1,000,000 clients under `--bench`, 20,000 under
//! `cargo test`) fills one partition's engine, then applies messages at a fixed rate (open
//! loop: a message's latency runs from when it was due, so a reader holding the engine shows
//! up in every message it delays, not only the one that waited) in three phases:
//!
//! - `no reads`;
//! - `published`: once a second, a Prometheus scrape (`Metrics::render`) and what a status page
//!   view reads (the top 20 clients from the published read model, then those 20 clients);
//! - `walk`: the same scrape, and the top 20 found as before the read model: every client's
//!   summary under the engine's lock.
//!
//! Event time moves 20 ms a message (`--step-ms N` to change it), so a minute passes every
//! 3,000 messages and evaluations run as they would; with `--step-ms 0` every message is in the
//! same minute and the phases measure the reads' locking alone.
//!
//! Target (issue 12): p99 with reads ≤ 2x p99 without.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use overage::board::ClientSummary;
use overage::config::Config;
use overage::contract::Contracts;
use overage::engine::Engine;
use overage::service::metrics::Metrics;
use overage::service::state::{lock, Shared};

mod common;

const RATE_PER_S: u64 = 100_000;
const TARGET_P99_RATIO: f64 = 2.0;

#[derive(Clone, Copy, PartialEq)]
enum Reads {
    None,
    Published,
    Walk,
}

impl Reads {
    fn name(self) -> &'static str {
        match self {
            Reads::None => "no reads",
            Reads::Published => "published",
            Reads::Walk => "walk",
        }
    }
}

/// A call without an event id: the dedupe set is not what this measures (with every message
/// in one minute it would be one set of millions, rehashed as it grows).
fn line(ts: i64, c: usize) -> String {
    format!(
        r#"{{"ts":{ts},"client_id":"client-{c:07}","units":2,"product":"search","origin_country":"US"}}"#
    )
}

/// One status page view's and one scrape's reads.
fn read(shared: &Shared, metrics: &Metrics, mode: Reads) -> usize {
    let top = match mode {
        Reads::None => return 0,
        Reads::Published => shared.top_clients(20),
        Reads::Walk => {
            let mut all = vec![];
            for (_, s) in shared.shards() {
                let e = lock(&s);
                let t = e.watermark().unwrap_or(0).div_euclid(60_000) * 60_000;
                for id in e.client_ids() {
                    let c = e.client(id).expect("listed");
                    let contract = c.contract.map(|k| e.contracts().by_index(k as usize));
                    all.push(ClientSummary::of(&c, t, contract, &e.detectors().baseline));
                }
            }
            all.sort_by(ClientSummary::rank);
            all.truncate(20);
            all
        }
    };
    let mut seen = 0;
    for c in &top {
        seen += shared
            .with_client(&c.client_id, |e| e.client(&c.client_id).is_some())
            .unwrap_or(false) as usize;
    }
    seen + metrics.render(shared).len()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let clients: usize = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--step-ms")
        .find_map(|a| a.parse().ok())
        .unwrap_or(if benching { 1_000_000 } else { 20_000 });
    let seconds: u64 = if benching { 10 } else { 2 };
    let step_ms: i64 = args
        .iter()
        .position(|a| a == "--step-ms")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(20);

    // Full clients (the dearer case for a walk), each with a call in the last hour.
    let mut config = Config::default();
    config.state.max_clients = clients + 1;
    config.state.sparse_calls = 0;
    let shared = Shared::new(config.clone(), Arc::new(Contracts::default()));
    let decoder = config.input.decoder();
    let start = common::START_MS;
    let mut engine = Engine::new(&config, Arc::new(Contracts::default()));
    let mut out = vec![];
    for c in 0..clients {
        let ts = start + (c as i64 * 30 * 60_000) / clients as i64;
        engine.ingest(&decoder, line(ts, c).as_bytes(), None, &mut out);
    }
    shared.insert(("events".into(), 0), engine);
    let shard = shared.shard(&("events".into(), 0)).expect("inserted");
    let metrics = Metrics::new();
    println!(
        "{clients} clients in one partition; {RATE_PER_S} messages/s, {seconds} s a phase, \
         event time {step_ms} ms a message"
    );

    let mut next_ts = start + 30 * 60_000;
    let mut p99s = vec![];
    for mode in [Reads::None, Reads::Published, Reads::Walk] {
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (shared, done) = (shared.clone(), done.clone());
            let metrics = Metrics::new();
            std::thread::spawn(move || {
                let mut reads = 0;
                let mut slowest = Duration::ZERO;
                while !done.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if read(&shared, &metrics, mode) > 0 {
                        reads += 1;
                    }
                    slowest = slowest.max(t.elapsed());
                    std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
                }
                (reads, slowest)
            })
        };
        let total = (RATE_PER_S * seconds) as usize;
        let mut latencies = Vec::with_capacity(total);
        let begun = Instant::now();
        let mut out = vec![];
        for i in 0..total {
            let due = begun + Duration::from_nanos(i as u64 * 1_000_000_000 / RATE_PER_S);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            next_ts += step_ms;
            let msg = line(next_ts, (i * 7919) % clients);
            {
                let mut e = lock(&shard);
                e.ingest(&decoder, msg.as_bytes(), None, &mut out);
                // as the service's worker does after each run of a partition's messages
                e.refresh_board(overage::time::wall_now());
            }
            out.clear();
            latencies.push(due.elapsed().as_nanos() as u64);
        }
        done.store(true, Ordering::Relaxed);
        let (reads, slowest) = reader.join().expect("reader");
        latencies.sort_unstable();
        let p99 = percentile(&latencies, 0.99);
        println!(
            "{:<10} p50 {:>8.1} us  p99 {:>9.1} us  p99.9 {:>9.1} us  max {:>9.1} us  ({reads} reads, slowest {:.1} ms)",
            mode.name(),
            percentile(&latencies, 0.5),
            p99,
            percentile(&latencies, 0.999),
            *latencies.last().unwrap_or(&0) as f64 / 1e3,
            slowest.as_secs_f64() * 1e3,
        );
        p99s.push(p99);
    }
    let _ = read(&shared, &metrics, Reads::Published);
    let ratio = p99s[1] / p99s[0].max(1e-3);
    println!(
        "p99 with published reads / without: {ratio:.2} (target <= {TARGET_P99_RATIO}); with the walk: {:.2}",
        p99s[2] / p99s[0].max(1e-3)
    );
    if benching && ratio > TARGET_P99_RATIO {
        eprintln!("over the target");
        std::process::exit(1);
    }
}
