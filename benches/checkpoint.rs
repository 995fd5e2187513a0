//! Checkpoint costs with realistic per-client state (`common::populated_engine`: six events per
//! client over 3h20m, so windows, rollups, baselines, origin tables and dedupe ids hold data).
//!
//! Issue targets: restoring 1M clients' state in at most 10 s; a periodic snapshot stalls
//! consumption by at most 100 ms (the consumer thread pays `Engine::snapshot()`, a copy; encoding
//! and writing happen on the checkpointer's writer thread). The stall is per partition engine:
//! divide the per-client cost by the partitions a consumer owns.
//!
//! - `checkpoint/snapshot/N`: `Engine::snapshot()`, the consumer's stall (100k and 1M clients);
//! - `checkpoint/round/N` and `checkpoint/round_during_snapshot/N`: one event for every client,
//!   without and with a snapshot alive: what copy on write defers to the events after it;
//! - `checkpoint/encode/N`: `checkpoint::encode` of the borrowed state (size printed per client);
//! - `checkpoint/decode_restore/N`: `checkpoint::decode` + `Engine::restore`;
//! - `checkpoint/store_round_trip/N`: `Store::put` + `Store::get` on a temporary directory,
//!   then decode + restore (what a partition's next owner does, plus the write).
//!
//! `cargo bench --bench checkpoint`. Under `cargo test` it runs once on small engines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use overage::checkpoint::{self, Meta, Store};
use overage::config::{CheckpointConfig, Config};
use overage::contract::Contracts;
use overage::engine::Engine;

mod common;

const ROUNDS: i64 = 6;

fn meta() -> Meta {
    Meta {
        topic: "events".into(),
        partition: 0,
        next_offset: 1,
        written_at: 0,
    }
}

fn label(clients: usize) -> String {
    if clients >= 1_000_000 && clients % 1_000_000 == 0 {
        format!("{}M", clients / 1_000_000)
    } else if clients >= 1000 && clients % 1000 == 0 {
        format!("{}k", clients / 1000)
    } else {
        clients.to_string()
    }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if benching {
        &[100_000, 1_000_000]
    } else {
        &[2_000, 20_000]
    };
    let big = *sizes.last().unwrap();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(if benching { 12 } else { 1 }))
        .configure_from_args();

    let config = Config::default();
    let contracts = Arc::new(Contracts::default());
    let engines: Vec<(usize, Engine)> = sizes
        .iter()
        .map(|&n| {
            let t = Instant::now();
            let e = common::populated_engine(n, ROUNDS);
            println!(
                "built an engine of {n} clients ({} events) in {:.1}s",
                n as i64 * ROUNDS,
                t.elapsed().as_secs_f64()
            );
            (n, e)
        })
        .collect();

    // Sizes first, outside criterion, so they are printed once.
    let mut encoded = Vec::new();
    for (n, e) in &engines {
        let t = Instant::now();
        let bytes = checkpoint::encode(&meta(), e.state()).expect("encodes");
        let took = t.elapsed();
        println!(
            "snapshot of {n} clients: {} bytes ({:.1} MiB), {:.0} bytes per client (one encode: {:.2}s)",
            bytes.len(),
            bytes.len() as f64 / (1 << 20) as f64,
            bytes.len() as f64 / *n as f64,
            took.as_secs_f64()
        );
        encoded.push((*n, bytes));
    }

    let mut g = c.benchmark_group("checkpoint");
    g.sampling_mode(SamplingMode::Flat);
    for (n, e) in &engines {
        g.throughput(Throughput::Elements(*n as u64));
        // The stall: a copy on the consumer thread. Its drop happens on the writer thread in
        // the service, so it is not timed (one output alive at a time).
        g.bench_with_input(BenchmarkId::new("snapshot", label(*n)), e, |b, e| {
            b.iter_batched(|| (), |()| e.snapshot(), BatchSize::PerIteration)
        });
        g.bench_with_input(BenchmarkId::new("encode", label(*n)), e, |b, e| {
            b.iter_batched(
                || (),
                |()| checkpoint::encode(&meta(), e.state()).expect("encodes"),
                BatchSize::PerIteration,
            )
        });
    }
    // What a snapshot defers: clients are shared with it (copy on write), so the first change
    // to each client while it is being written copies that client. `round` applies one event
    // to every client; `round_during_snapshot` the same with a snapshot alive, i.e. every
    // client copied once (the most a snapshot can cost, spread over the events that follow it).
    let decoder = overage::decode::Decoder::canonical(64 * 1024);
    for (n, e) in &engines {
        let e = std::cell::RefCell::new(Engine::restore(&config, contracts.clone(), e.snapshot()));
        let mut round = ROUNDS;
        let mut out = Vec::new();
        g.throughput(Throughput::Elements(*n as u64));
        for during_snapshot in [false, true] {
            let name = if during_snapshot {
                "round_during_snapshot"
            } else {
                "round"
            };
            g.bench_function(BenchmarkId::new(name, label(*n)), |b| {
                b.iter_batched(
                    || during_snapshot.then(|| e.borrow().snapshot()),
                    |snapshot| {
                        common::apply_round(&mut e.borrow_mut(), &decoder, *n, round, &mut out);
                        round += 1;
                        out.clear();
                        snapshot
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    for (n, bytes) in &encoded {
        g.throughput(Throughput::Elements(*n as u64));
        g.bench_with_input(
            BenchmarkId::new("decode_restore", label(*n)),
            bytes,
            |b, bytes| {
                b.iter_batched(
                    || (),
                    |()| {
                        let (_, state) = checkpoint::decode(bytes).expect("decodes");
                        Engine::restore(&config, contracts.clone(), state)
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }

    // The store round trip on a directory, for the largest engine only.
    let (n, bytes) = encoded.iter().find(|(n, _)| *n == big).expect("big engine");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = CheckpointConfig {
        store: Some(overage::config::StoreLocation::Dir(
            dir.path().to_path_buf(),
        )),
        ..Default::default()
    };
    let store = Store::open(&cfg, "bench")
        .expect("opens")
        .expect("configured");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    g.throughput(Throughput::Elements(*n as u64));
    g.bench_with_input(
        BenchmarkId::new("store_round_trip", label(*n)),
        bytes,
        |b, bytes| {
            b.iter_batched(
                || bytes.clone(),
                |bytes| {
                    rt.block_on(async {
                        store.put("events", 0, bytes).await.expect("put");
                        let back = store.get("events", 0).await.expect("get").expect("found");
                        let (_, state) = checkpoint::decode(&back).expect("decodes");
                        Engine::restore(&config, contracts.clone(), state)
                    })
                },
                BatchSize::PerIteration,
            )
        },
    );
    g.finish();
    let restored = {
        let (_, state) = checkpoint::decode(bytes).expect("decodes");
        Engine::restore(&config, contracts.clone(), state)
    };
    assert_eq!(restored.client_count(), *n);
    c.final_summary();
}
