//! `replay --threads N`: one engine per thread, clients split between them by a hash of their
//! id, with output identical to one engine's.
//!
//! What makes the output identical is time, not locking: an engine's only clock is the
//! newest event it has seen, so every engine is shown every event's time
//! ([`Engine::observe`]) at its place in the input and applies only its own clients' events.
//! Each engine therefore evaluates the same minutes at the same lines as a single engine would,
//! and a client's evaluation depends on nothing but its own events and that clock.
//!
//! The input goes by in chunks of lines. A reader thread fills them (file reads and gzip off
//! the workers); then the pool decodes a chunk's lines in parallel, each engine walks the
//! decoded chunk in input order, and their transitions are put in the order one engine gives
//! them ([`super::output_order`]): event time never goes back from one evaluation to the next,
//! so sorting a chunk's transitions by time and client interleaves the engines' exactly.

use std::sync::mpsc;

use rayon::prelude::*;

use super::{shard_of, Emit, Line, Progress, Reading, ReplayError};
use crate::alert::Alert;
use crate::decode::{Decoder, Event, Reject};
use crate::engine::Engine;

/// Lines per chunk: enough work per parallel step that handing it out costs little, few
/// enough that a chunk (with its decoded events) stays a few MB.
const CHUNK_LINES: usize = 16_384;
/// Bytes per chunk at most (past this, a chunk is sent with fewer lines).
const CHUNK_BYTES: usize = 8 << 20;
/// Lines decoded per task, so that a slow stretch of input does not leave a core idle.
const PARSE_BATCH: usize = 1_024;
/// Chunks the reader may be ahead.
const READ_AHEAD: usize = 2;

/// Lines of input, one buffer for all of them.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    /// Where each line lies in `bytes`; `None` for one longer than the limit (not kept).
    lines: Vec<Option<(usize, usize)>>,
}

/// One decoded event (or rejection) and where it goes.
struct Decoded<'a> {
    /// The engine that applies it (a rejection is counted by one engine only).
    shard: u32,
    event: Result<Event<'a>, Reject>,
}

pub(super) fn replay(
    engines: &mut [Engine],
    decoder: &Decoder,
    read: &Reading<'_>,
    future_limit: Option<i64>,
    emit: Emit<'_>,
    progress: Option<Progress<'_>>,
) -> Result<(), ReplayError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(engines.len())
        .thread_name(|i| format!("replay-{i}"))
        .build()
        .map_err(|e| ReplayError::Threads(e.to_string()))?;
    std::thread::scope(|s| {
        let (tx, chunks) = mpsc::sync_channel(READ_AHEAD);
        s.spawn(move || read_chunks(read, tx));
        let mut chunks = chunks.into_iter();
        let mut out = Vec::new();
        let mut current: Option<DecodedChunk> = None;
        let n = engines.len();
        loop {
            // Ends early (dropping `chunks`, which stops the reader) on the first error.
            let next = chunks.next().transpose()?;
            // The next chunk is decoded while the engines walk this one, so that the cores an
            // engine with less to do leaves idle have work.
            let (next, caused) = pool.install(|| {
                rayon::join(
                    || next.map(|c| DecodedChunk::new(c, |c| decode(decoder, c, n, future_limit))),
                    || {
                        current
                            .as_ref()
                            .map(|d| walk_all(engines, d.borrow_dependent()))
                    },
                )
            });
            if let Some(caused) = caused {
                out.extend(caused);
                emit(&mut out)?;
                if let Some(p) = progress {
                    p(read.bytes_read());
                }
            }
            match next {
                Some(d) => current = Some(d),
                None => break,
            }
        }
        let flushed: Vec<Vec<Alert>> = pool.install(|| {
            engines
                .par_iter_mut()
                .map(|e| {
                    let mut out = Vec::new();
                    e.flush(&mut out);
                    out
                })
                .collect()
        });
        out.extend(flushed.into_iter().flatten());
        emit(&mut out)
    })
}

/// Fill chunks from the input and send them on, then the error that ended the input if any.
fn read_chunks(read: &Reading<'_>, tx: mpsc::SyncSender<Result<Chunk, ReplayError>>) {
    let mut bytes = Vec::with_capacity(CHUNK_BYTES);
    let mut lines = Vec::with_capacity(CHUNK_LINES);
    let ended = read.each_line(&mut bytes, |l, bytes, start| {
        lines.push(match l {
            Line::TooLong => None,
            _ => Some((start, bytes.len())),
        });
        if lines.len() == CHUNK_LINES || bytes.len() >= CHUNK_BYTES {
            let full = Chunk {
                bytes: std::mem::replace(bytes, Vec::with_capacity(CHUNK_BYTES)),
                lines: std::mem::replace(&mut lines, Vec::with_capacity(CHUNK_LINES)),
            };
            // The receiver is gone only when replay has stopped on an error of its own.
            tx.send(Ok(full)).map_err(|_| ReplayError::Stopped)?;
        }
        Ok(())
    });
    if !lines.is_empty() && tx.send(Ok(Chunk { bytes, lines })).is_err() {
        return;
    }
    if let Err(e) = ended {
        let _ = tx.send(Err(e));
    }
}

/// A chunk's lines decoded, in order, in batches of [`PARSE_BATCH`] lines.
type Events<'a> = Vec<Vec<Decoded<'a>>>;

self_cell::self_cell!(
    /// A chunk with its decoded events (which borrow its bytes), to be walked by the engines
    /// while the next one is decoded.
    struct DecodedChunk {
        owner: Chunk,
        #[covariant]
        dependent: Events,
    }
);

/// Decode a chunk's lines in parallel.
fn decode<'a>(
    decoder: &Decoder,
    chunk: &'a Chunk,
    n: usize,
    future_limit: Option<i64>,
) -> Events<'a> {
    chunk
        .lines
        .par_chunks(PARSE_BATCH)
        .map(|lines| decode_lines(decoder, chunk, lines, n, future_limit))
        .collect()
}

/// Every engine through the decoded chunk; the transitions caused, engine by engine (`emit`
/// puts them in output order).
fn walk_all(engines: &mut [Engine], decoded: &Events<'_>) -> Vec<Alert> {
    engines
        .par_iter_mut()
        .enumerate()
        .map(|(shard, engine)| walk(engine, shard as u32, decoded))
        .flatten()
        .collect()
}

fn decode_lines<'a>(
    decoder: &Decoder,
    chunk: &'a Chunk,
    lines: &[Option<(usize, usize)>],
    n: usize,
    future_limit: Option<i64>,
) -> Vec<Decoded<'a>> {
    let mut decoded = Vec::with_capacity(lines.len());
    for range in lines {
        let Some((start, end)) = *range else {
            decoded.push(Decoded {
                shard: 0,
                event: Err(Reject::TooLarge),
            });
            continue;
        };
        decoder.decode(&chunk.bytes[start..end], |event| {
            let event = match event {
                Ok(ev) if future_limit.is_some_and(|limit| ev.ts > limit) => {
                    Err(Reject::FutureTimestamp)
                }
                other => other,
            };
            let shard = match &event {
                Ok(ev) => shard_of(&ev.client_id, n) as u32,
                Err(_) => 0,
            };
            decoded.push(Decoded { shard, event });
        });
    }
    decoded
}

/// One engine through a decoded chunk: its own events applied, everyone's time observed.
fn walk(engine: &mut Engine, shard: u32, decoded: &[Vec<Decoded<'_>>]) -> Vec<Alert> {
    let mut out = Vec::new();
    for d in decoded.iter().flatten() {
        match &d.event {
            Ok(ev) if d.shard == shard => {
                engine.apply(ev, &mut out);
            }
            Ok(ev) => engine.observe(ev.ts, &mut out),
            Err(r) if d.shard == shard => engine.reject(*r),
            Err(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::path::Path;
    use std::sync::Arc;

    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::super::{replay, Input, Summary};
    use crate::config::Config;
    use crate::contract::Contracts;
    use crate::decode::Decoder;
    use crate::engine::Engine;

    const CONTRACTS: &str = r#"
[[contract]]
client_id = "c0"
baseline = { units = 600, per = "1h" }
products = ["search"]
[[contract]]
client_id = "c1"
baseline = { units = 1200, per = "1h" }
"#;

    /// Six hours of eight clients, two of them contracted and overrunning for a while, with
    /// what a real input has: disorder and late events, repeated ids, a product outside the
    /// contract, garbage, a line too long, batches.
    fn input(seed: u64) -> String {
        let mut rng = SmallRng::seed_from_u64(seed);
        let start = 1_787_529_600_000i64;
        let mut s = String::new();
        for i in 0..20_000i64 {
            let client = rng.gen_range(0..8);
            let ts = start + i * 1_000 - rng.gen_range(0..240_000);
            let over = (7_000..12_000).contains(&i) && client < 2;
            let units = if over { 40 } else { rng.gen_range(1..4) };
            let product = if rng.gen_bool(0.05) { "maps" } else { "search" };
            let id = if rng.gen_bool(0.02) { i - 1 } else { i };
            s += &format!(
                "{{\"ts\":{ts},\"client_id\":\"c{client}\",\"event_id\":\"e{id}\",\"units\":{units},\"product\":\"{product}\"}}\n"
            );
            match rng.gen_range(0..500) {
                0 => s += "not json\n",
                1 => s += &format!("{{\"client_id\":\"c{client}\",\"units\":1}}\n"),
                2 => {
                    s += &format!(
                        "{{\"ts\":{ts},\"client_id\":\"c{client}\",\"units\":1,\"x\":\"{}\"}}\n",
                        "y".repeat(3000)
                    )
                }
                3 => s += "   \n",
                _ => {}
            }
        }
        s
    }

    fn run(path: &Path, threads: usize) -> (Vec<u8>, Summary) {
        let cfg = Config::default();
        let contracts = Arc::new(Contracts::parse(CONTRACTS, Path::new("c.toml")).unwrap());
        let mut engines: Vec<Engine> = (0..threads)
            .map(|_| Engine::new(&cfg, contracts.clone()))
            .collect();
        let mut out = Vec::new();
        let summary = replay(
            &mut engines,
            &Decoder::canonical(2048),
            &[Input::File(path.to_owned())],
            None,
            &mut out,
            None,
        )
        .unwrap();
        (out, summary)
    }

    #[test]
    fn any_number_of_threads_gives_one_threads_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut alerts = 0;
        for seed in 0..4 {
            let path = dir.path().join(format!("{seed}.jsonl"));
            std::fs::File::create(&path)
                .unwrap()
                .write_all(input(seed).as_bytes())
                .unwrap();
            let (want, one) = run(&path, 1);
            alerts += want.iter().filter(|&&b| b == b'\n').count();
            assert!(one.events["too_large"] > 0 && one.events["duplicate"] > 0);
            assert!(one.events["late"] > 0, "{:?}", one.events);
            for threads in [2, 3, 5] {
                let (got, s) = run(&path, threads);
                assert!(
                    got == want,
                    "seed {seed}, {threads} threads:\n{}\nvs one:\n{}",
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want)
                );
                assert_eq!(
                    (&s.events, s.clients, &s.usage, s.input_bytes),
                    (&one.events, one.clients, &one.usage, one.input_bytes),
                    "seed {seed}, {threads} threads"
                );
            }
        }
        assert!(alerts >= 8, "the inputs raise alerts to compare: {alerts}");
    }
}
