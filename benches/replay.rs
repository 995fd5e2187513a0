//! Throughput of the detection path against merely parsing the same input.
//!
//! Issue target: replay of canonical JSON sustains 1M events/s on one core, and takes at most
//! 2x the time of parsing the same lines into the event struct. Both run here side by side on
//! identical in-memory lines (no file I/O): `cargo bench --bench replay`.
//!
//! `pipeline/report` is what `overage report --events` adds on top of the replay: building every
//! client's report from the rollups and rendering it as JSON, CSV and HTML.
//!
//! `threads/N` is `overage replay --threads N`: the same lines from a file (in the page cache),
//! clients split between N engines on N threads, alerts written to a sink. Target: 2 threads
//! at least 1.8x one thread's rate on 2 cores.
//!
//! `decode/*` decodes the same events as each input format writes them (Kong logs, APISIX
//! batches of 4, as `overage simulate --format` renders them), with the config that reads them,
//! side by side with canonical JSON; `decode/kong_replay` is the whole replay of the Kong logs.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use overage::config::Config;
use overage::decode::{decode_canonical, decode_canonical_serde, Decoder};
use overage::engine::Engine;
use overage::replay;
use overage::report;
use overage::simulate::shapes::{Shape, Writer};

mod common;

const EVENTS: usize = 200_000;
const CLIENTS: usize = 10_000;
/// Ten minutes of event time: every active client is evaluated every minute.
const SPAN_MS: i64 = 10 * 60_000;

fn pipeline(c: &mut Criterion) {
    let lines = common::lines(EVENTS, CLIENTS, SPAN_MS, 1);
    let contracts = common::contracts(CLIENTS);
    let config = Config::default();
    let decoder = Decoder::canonical(64 * 1024);

    // Every line through the engine, then the end of input; the alerts of the flush.
    let replay_all = |engine: &mut Engine| {
        let mut out = Vec::new();
        for l in &lines {
            engine.ingest(&decoder, black_box(l), None, &mut out);
            out.clear();
        }
        engine.flush(&mut out);
        out.len()
    };
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(20);
    g.bench_function("parse", |b| {
        b.iter(|| {
            for l in &lines {
                let _ = black_box(decode_canonical(black_box(l)));
            }
        })
    });
    // the same without the fast path: what it saves
    g.bench_function("parse_serde", |b| {
        b.iter(|| {
            for l in &lines {
                let _ = black_box(decode_canonical_serde(black_box(l)));
            }
        })
    });
    g.bench_function("replay", |b| {
        b.iter_batched(
            || Engine::new(&config, contracts.clone()),
            |mut engine| {
                let alerts = replay_all(&mut engine);
                black_box((engine.stats().events(), alerts))
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("report", |b| {
        b.iter_batched(
            || Engine::new(&config, contracts.clone()),
            |mut engine| {
                replay_all(&mut engine);
                let period = report::Period::default();
                let clients: Vec<report::ClientReport> = report::engine_clients(&engine)
                    .iter()
                    .filter_map(|id| report::from_engine(&engine, id, &period))
                    .map(|d| report::build(&d, &period))
                    .collect();
                let r = report::report(&period, "bench".into(), Default::default(), clients);
                let mut sink = std::io::sink();
                report::to_json(&r, &mut sink).unwrap();
                report::csv::write(&r, &mut sink).unwrap();
                report::html::write(&r, &mut sink).unwrap();
                black_box(r.clients.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// The bench lines as `shape` writes them, and the decoder for them.
fn shaped(lines: &[Vec<u8>], shape: Shape) -> (Vec<Vec<u8>>, Decoder) {
    let mut out = Vec::new();
    let mut w = Writer::new(shape);
    let mut emit = |m: &[u8]| out.push(m.to_vec());
    for l in lines {
        w.line(l, &mut emit);
    }
    w.flush(&mut emit);
    let config = match shape.input_toml() {
        Some(toml) => Config::parse(toml, std::path::Path::new("bench.toml")).expect("valid"),
        None => Config::default(),
    };
    (out, config.input.decoder())
}

fn formats(c: &mut Criterion) {
    let lines = common::lines(EVENTS, CLIENTS, SPAN_MS, 1);
    let contracts = common::contracts(CLIENTS);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(20);
    for shape in [Shape::Json, Shape::Kong, Shape::Apisix] {
        let (messages, decoder) = shaped(&lines, shape);
        let name = format!("{shape:?}").to_lowercase();
        g.bench_function(name.as_str(), |b| {
            b.iter(|| {
                let mut n = 0usize;
                for m in &messages {
                    decoder.decode(black_box(m), |r| n += usize::from(r.is_ok()));
                }
                assert_eq!(n, EVENTS);
                n
            })
        });
        if shape == Shape::Kong {
            let config = Config::parse(shape.input_toml().unwrap_or_default(), "b.toml".as_ref())
                .expect("valid");
            g.bench_function("kong_replay", |b| {
                b.iter_batched(
                    || Engine::new(&config, contracts.clone()),
                    |mut engine| {
                        let mut out = Vec::new();
                        for m in &messages {
                            engine.ingest(&decoder, black_box(m), None, &mut out);
                            out.clear();
                        }
                        engine.flush(&mut out);
                        black_box(engine.stats().events())
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }
    g.finish();
}

fn threads(c: &mut Criterion) {
    let lines = common::lines(EVENTS, CLIENTS, SPAN_MS, 1);
    let contracts = common::contracts(CLIENTS);
    let config = Config::default();
    let decoder = Decoder::canonical(64 * 1024);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, lines.join(&b'\n')).expect("the bench input written");
    let inputs = [replay::Input::File(path)];
    let mut g = c.benchmark_group("threads");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(20);
    for n in [1, 2] {
        g.bench_function(n.to_string(), |b| {
            b.iter_batched(
                || {
                    (0..n)
                        .map(|_| Engine::new(&config, contracts.clone()))
                        .collect::<Vec<_>>()
                },
                |mut engines| {
                    let s = replay::replay(
                        &mut engines,
                        &decoder,
                        &inputs,
                        None,
                        &mut std::io::sink(),
                        None,
                    )
                    .expect("replayed");
                    assert_eq!(s.events["accepted"], EVENTS as u64);
                    s.alerts.firing
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, pipeline, threads, formats);
criterion_main!(benches);
