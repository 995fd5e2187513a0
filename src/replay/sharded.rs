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
//! the workers; lines are cut where they lie in the blocks read, [`super::Blocks`]) and routes
//! each line to the engine that owns its client, by a quick look at its `"client_id"` (a wrong
//! or unreadable guess only changes which engine decodes the line). Each engine lives on one
//! thread of its own for the whole replay and, in one step per chunk, walks the current chunk
//! and then decodes its lines of the next: its own events, which it decoded itself at the end
//! of the step before (so their bytes are still in its core's cache), applied; the other
//! engines' only their time observed. Decoding a chunk on one core and applying it on another
//! made each event's strings a cache miss on the applying core: two threads did 50% more work
//! than one. The steps' transitions are put in the order one engine gives them
//! ([`super::output_order`]): event time never goes back from one evaluation to the next, so
//! sorting a step's transitions by time and client interleaves the engines' exactly.

use std::sync::{mpsc, Mutex};

use memchr::memmem;

use super::{shard_of, shard_of_bytes, Blocks, Cut, Emit, Progress, Reading, ReplayError, BLOCK};
use crate::alert::Alert;
use crate::decode::{Decoder, Event, Format, Reject};
use crate::engine::Engine;

/// Lines per chunk: an engine's share of a chunk, decoded in one step and applied in the next,
/// stays in its core's cache (2 MB of L2 here); enough lines that a step's hand-over costs
/// little.
const CHUNK_LINES: usize = 4_096;
/// Bytes per chunk at most (past this, a chunk is sent with fewer lines).
const CHUNK_BYTES: usize = 2 << 20;
/// Chunks the reader may be ahead.
const READ_AHEAD: usize = 4;

/// Lines of input, one buffer for all of them, with the engine each is routed to.
struct Chunk {
    bytes: Vec<u8>,
    /// Where each line lies in `bytes`; `None` for one longer than the limit (not kept).
    lines: Vec<Option<(usize, usize)>>,
    /// The lines (indices into `lines`) each engine decodes.
    routes: Vec<Vec<u32>>,
}

impl Chunk {
    /// No lines yet, for `n` engines, with room for `bytes`.
    fn empty(n: usize, bytes: usize) -> Chunk {
        Chunk {
            bytes: Vec::with_capacity(bytes),
            lines: Vec::with_capacity(CHUNK_LINES),
            routes: vec![Vec::with_capacity(CHUNK_LINES / n + 64); n],
        }
    }
}

/// What an engine decoded of a chunk, in line order: for each event (or rejection), where it
/// is and its time in a compact list the other engines walk (16 bytes each, in order, so
/// reading another core's list costs a cache miss per four events, not one per event), and the
/// event itself, read by the engine that applies it.
#[derive(Default)]
struct Part<'a> {
    index: Vec<Entry>,
    events: Vec<Result<Event<'a>, Reject>>,
}

#[derive(Clone, Copy)]
struct Entry {
    line: u32,
    /// The engine that applies the event, or [`REJECTED`].
    shard: u32,
    ts: i64,
}

/// [`Entry::shard`] of a rejection: counted by the engine that decoded it, observed by none.
const REJECTED: u32 = u32::MAX;

self_cell::self_cell!(
    /// A chunk with what each engine decoded of it (borrowing its bytes), to be walked by the
    /// engines in the step after.
    struct DecodedChunk {
        owner: Chunk,
        #[covariant]
        dependent: Parts,
    }
);

/// Each engine's part of a chunk, by engine.
type Parts<'a> = Vec<Part<'a>>;

pub(super) fn replay(
    engines: &mut [Engine],
    decoder: &Decoder,
    read: &Reading<'_>,
    future_limit: Option<i64>,
    emit: Emit<'_>,
    progress: Option<Progress<'_>>,
) -> Result<(), ReplayError> {
    let n = engines.len();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("replay-{i}"))
        .build()
        .map_err(|e| ReplayError::Threads(e.to_string()))?;
    let engines: Vec<Mutex<&mut Engine>> = engines.iter_mut().map(Mutex::new).collect();
    let canonical = decoder.format == Format::Json;
    let cx = Step {
        decoder,
        n,
        future_limit,
    };
    std::thread::scope(|s| {
        let (tx, chunks) = mpsc::sync_channel(READ_AHEAD);
        // Walked chunks go back to the reader, which drops their events and refills their
        // buffers: freeing them here held up every step, and fresh buffers of a few MB each
        // were fresh pages to fault in.
        let (spent, walked_chunks) = mpsc::channel();
        s.spawn(move || read_chunks(read, n, canonical, tx, walked_chunks));
        let mut chunks = chunks.into_iter();
        let mut out = Vec::new();
        let mut current: Option<DecodedChunk> = None;
        loop {
            // Ends early (dropping `chunks`, which stops the reader) on the first error.
            let next = chunks.next().transpose()?;
            let walked = current.is_some();
            let next = match next {
                Some(chunk) => Some(DecodedChunk::new(chunk, |c| {
                    step(&pool, &engines, &cx, current.as_ref(), Some(c), &mut out)
                })),
                None => {
                    step(&pool, &engines, &cx, current.as_ref(), None, &mut out);
                    None
                }
            };
            if walked {
                emit(&mut out)?;
                if let Some(p) = progress {
                    p(read.bytes_read());
                }
            }
            match next {
                Some(d) => {
                    if let Some(old) = current.replace(d) {
                        // (the reader is gone only on an error, which the next chunk brings)
                        let _ = spent.send(old);
                    }
                }
                None => break,
            }
        }
        let flushed = pool.broadcast(|ctx| {
            let mut engine = engines[ctx.index()]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            engine.flush(&mut out);
            out
        });
        out.extend(flushed.into_iter().flatten());
        emit(&mut out)
    })
}

/// What every step needs.
struct Step<'d> {
    decoder: &'d Decoder,
    n: usize,
    future_limit: Option<i64>,
}

/// One step on every engine's own thread: each decodes its lines of `next` and walks
/// `current`. Returns the parts of `next`; the transitions caused go to `out`, engine by engine
/// (`emit` puts them in output order).
fn step<'a>(
    pool: &rayon::ThreadPool,
    engines: &[Mutex<&mut Engine>],
    cx: &Step<'_>,
    current: Option<&DecodedChunk>,
    next: Option<&'a Chunk>,
    out: &mut Vec<Alert>,
) -> Parts<'a> {
    let done = pool.broadcast(|ctx| {
        let me = ctx.index();
        // (each pool thread takes the engine of its own index at every step, uncontended)
        let mut engine = engines[me].lock().unwrap_or_else(|e| e.into_inner());
        // (walked first: what this engine decoded of `current` at the end of the step before
        // is still in its core's cache)
        let caused = current
            .map(|d| walk(&mut engine, me, d.borrow_dependent()))
            .unwrap_or_default();
        let part = next.map_or_else(Part::default, |c| {
            decode(cx.decoder, c, me, cx.n, cx.future_limit)
        });
        (part, caused)
    });
    let mut parts = Vec::with_capacity(done.len());
    for (part, caused) in done {
        parts.push(part);
        out.extend(caused);
    }
    parts
}

/// Fill chunks from the input, route their lines and send them on, then the error that ended
/// the input if any.
fn read_chunks(
    read: &Reading<'_>,
    n: usize,
    canonical: bool,
    tx: mpsc::SyncSender<Result<Chunk, ReplayError>>,
    spent: mpsc::Receiver<DecodedChunk>,
) {
    let mut filler = Filler {
        // (its bytes are in `blocks` until it is sent)
        chunk: Chunk::empty(n, 0),
        finder: canonical.then(|| memmem::Finder::new(b"\"client_id\"")),
        tx,
        spent,
    };
    let mut blocks = Blocks::new(read.max_line, true);
    let ended = read
        .each_line(&mut blocks, |cut, blocks| filler.line(cut, blocks))
        .and_then(|()| filler.send(&mut blocks));
    if let Err(e) = ended {
        // (the receiver is gone only when replay has stopped on an error of its own)
        let _ = filler.tx.send(Err(e));
    }
}

/// The chunk being filled: its lines, listed and routed as they are cut, and where it goes.
struct Filler {
    chunk: Chunk,
    finder: Option<memmem::Finder<'static>>,
    tx: mpsc::SyncSender<Result<Chunk, ReplayError>>,
    /// Walked chunks, whose buffers are refilled.
    spent: mpsc::Receiver<DecodedChunk>,
}

impl Filler {
    fn line(&mut self, cut: Cut, blocks: &mut Blocks) -> Result<(), ReplayError> {
        let chunk = &mut self.chunk;
        let n = chunk.routes.len();
        let line = chunk.lines.len() as u32;
        let guess = match cut {
            Cut::TooLong => {
                chunk.lines.push(None);
                None
            }
            Cut::Line(start, end) => {
                chunk.lines.push(Some((start, end)));
                let bytes = &blocks.bytes[start..end];
                self.finder.as_ref().and_then(|f| client_id_of(f, bytes))
            }
        };
        let shard = guess.map_or(line as usize % n, |id| shard_of_bytes(id, n));
        chunk.routes[shard].push(line);
        if chunk.lines.len() == CHUNK_LINES || blocks.cut >= CHUNK_BYTES {
            self.send(blocks)?;
        }
        Ok(())
    }

    /// Send the lines cut so far as a chunk, with their bytes; a walked chunk, emptied (or a
    /// new one), takes its place.
    fn send(&mut self, blocks: &mut Blocks) -> Result<(), ReplayError> {
        if self.chunk.lines.is_empty() {
            return Ok(());
        }
        let mut next = match self.spent.try_recv() {
            Ok(walked) => walked.into_owner(),
            Err(_) => Chunk::empty(self.chunk.routes.len(), CHUNK_BYTES + 2 * BLOCK),
        };
        next.lines.clear();
        next.routes.iter_mut().for_each(Vec::clear);
        // (the next lines are read into its buffer)
        let buffer = std::mem::take(&mut next.bytes);
        let mut full = std::mem::replace(&mut self.chunk, next);
        full.bytes = blocks.take_cut(buffer);
        self.tx.send(Ok(full)).map_err(|_| ReplayError::Stopped)
    }
}

/// The client id of a canonical line at a glance: the bytes of the string after its first
/// `"client_id":`, if it has no escapes (else the decoder is left to tell). Only a guess of
/// where the line goes: the engine that decodes it hands the event to its owner if the guess
/// was wrong.
fn client_id_of<'a>(finder: &memmem::Finder<'_>, line: &'a [u8]) -> Option<&'a [u8]> {
    let at = finder.find(line)? + finder.needle().len();
    let rest = &line[at..];
    let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = rest.get(colon..)?.strip_prefix(b":")?;
    let open = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = rest.get(open..)?.strip_prefix(b"\"")?;
    let len = memchr::memchr2(b'"', b'\\', rest)?;
    (rest[len] == b'"').then(|| &rest[..len])
}

/// Decode the lines of `chunk` routed to engine `me`, each event marked with the engine that
/// owns its client.
fn decode<'a>(
    decoder: &Decoder,
    chunk: &'a Chunk,
    me: usize,
    n: usize,
    future_limit: Option<i64>,
) -> Part<'a> {
    let mine = &chunk.routes[me];
    let mut part = Part {
        index: Vec::with_capacity(mine.len()),
        events: Vec::with_capacity(mine.len()),
    };
    for &line in mine {
        let Some((start, end)) = chunk.lines[line as usize] else {
            part.push(line, Err(Reject::TooLarge), n);
            continue;
        };
        decoder.decode(&chunk.bytes[start..end], |event| {
            let event = match event {
                Ok(ev) if future_limit.is_some_and(|limit| ev.ts > limit) => {
                    Err(Reject::FutureTimestamp)
                }
                other => other,
            };
            part.push(line, event, n);
        });
    }
    part
}

impl<'a> Part<'a> {
    fn push(&mut self, line: u32, event: Result<Event<'a>, Reject>, n: usize) {
        let (shard, ts) = match &event {
            Ok(ev) => (shard_of(&ev.client_id, n) as u32, ev.ts),
            Err(_) => (REJECTED, 0),
        };
        self.index.push(Entry { line, shard, ts });
        self.events.push(event);
    }
}

/// One engine through a decoded chunk, the engines' parts merged back into input order: its
/// own events applied, everyone's time observed.
fn walk(engine: &mut Engine, me: usize, parts: &[Part<'_>]) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut at = vec![0usize; parts.len()];
    let me32 = me as u32;
    loop {
        // the part holding the lowest line not walked yet (a line is in one part only)
        let next = parts
            .iter()
            .enumerate()
            .filter_map(|(p, part)| part.index.get(at[p]).map(|e| (e.line, p)))
            .min();
        let Some((line, p)) = next else {
            break;
        };
        let part = &parts[p];
        // (a gateway's batch line holds several events)
        while let Some(e) = part.index.get(at[p]).filter(|e| e.line == line) {
            // (another engine's event is not read, only its entry)
            let event = || &part.events[at[p]];
            match e.shard {
                s if s == me32 => {
                    if let Ok(ev) = event() {
                        engine.apply(ev, &mut out);
                    }
                }
                REJECTED => {
                    if let (true, Err(r)) = (p == me, event()) {
                        engine.reject(*r);
                    }
                }
                _ => engine.observe(e.ts, &mut out),
            }
            at[p] += 1;
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
        run_all(&[Input::File(path.to_owned())], threads)
    }

    fn run_all(inputs: &[Input], threads: usize) -> (Vec<u8>, Summary) {
        let cfg = Config::default();
        let contracts = Arc::new(Contracts::parse(CONTRACTS, Path::new("c.toml")).unwrap());
        let mut engines: Vec<Engine> = (0..threads)
            .map(|_| Engine::new(&cfg, contracts.clone()))
            .collect();
        let mut out = Vec::new();
        let summary = replay(
            &mut engines,
            &Decoder::canonical(2048),
            inputs,
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

    /// What the reader routes (and how it cuts chunks) changes no output: CRLF endings, blank
    /// lines, lines too long to keep (one longer than a block, one at an input's end), a last
    /// line without its newline, an id with an escape (routed by line number, handed to its
    /// owner), several inputs, one of them gzip.
    #[test]
    fn routing_and_chunking_change_no_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = input(7).replace("\n", "\r\n");
        text += &format!(
            "{{\"ts\":1787529600000,\"x\":\"{}\"}}\n",
            "z".repeat(3 * super::BLOCK)
        );
        text += "{\"ts\":1787529700000,\"client_id\":\"c\\u0031\",\"units\":5}\n\n\r\n";
        text += "{\"ts\":1787529800000,\"client_id\":\"c3\",\"units\":2}";
        let plain = dir.path().join("a.jsonl");
        std::fs::write(&plain, &text).unwrap();
        let long_end = dir.path().join("b.jsonl");
        std::fs::write(&long_end, "y".repeat(super::BLOCK + 10)).unwrap();
        let gz = dir.path().join("c.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(input(8).as_bytes()).unwrap();
        enc.finish().unwrap();
        let inputs = [plain, long_end, gz].map(Input::File);
        let (want, one) = run_all(&inputs, 1);
        assert!(one.events["too_large"] >= 3, "{:?}", one.events);
        assert!(one.usage.contains_key("c1") && one.usage.contains_key("c3"));
        for threads in [2, 3] {
            let (got, s) = run_all(&inputs, threads);
            assert!(got == want, "{threads} threads");
            assert_eq!(
                (&s.events, s.clients, &s.usage, s.input_bytes),
                (&one.events, one.clients, &one.usage, one.input_bytes),
                "{threads} threads"
            );
        }
    }
}
