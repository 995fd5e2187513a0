//! `overage replay`: the detection engine over recorded events.
//!
//! Reads JSONL (plain or gzip, files or stdin) a block at a time, each line into the same
//! [`Engine::ingest`] path the service uses, writes every alert transition as a JSON line, and
//! returns a [`Summary`]. Lines have a hard length limit so one enormous line cannot exhaust
//! memory; it is counted as `too_large` like an oversized Kafka message.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use flate2::read::MultiGzDecoder;
use serde::Serialize;

use crate::alert::{Alert, State};
use crate::decode::{Decoder, Reject};
use crate::engine::Engine;

mod sharded;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Input { path: String, source: io::Error },
    #[error("writing alerts: {0}")]
    Output(io::Error),
    #[error("starting the replay threads: {0}")]
    Threads(String),
    /// The reader of a sharded replay found nobody listening (replay had stopped on an error).
    #[error("replay stopped")]
    Stopped,
}

/// What a replay did, for stderr and `--summary-json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Events by outcome (accepted, late, duplicate, and each rejection reason).
    pub events: BTreeMap<&'static str, u64>,
    pub clients: usize,
    pub alerts: AlertCounts,
    /// Units per client, late events included, duplicates and rejects excluded.
    pub usage: BTreeMap<String, f64>,
    pub elapsed_seconds: f64,
    pub events_per_second: f64,
    pub input_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertCounts {
    pub firing: u64,
    pub resolved: u64,
    pub by_kind: BTreeMap<String, (u64, u64)>,
}

impl Summary {
    /// A few lines for people.
    pub fn human(&self) -> String {
        let total: u64 = self.events.values().sum();
        let mut s = format!(
            "replayed {total} events ({:.1} MB) in {:.2}s: {:.0} events/s\n",
            self.input_bytes as f64 / 1e6,
            self.elapsed_seconds,
            self.events_per_second
        );
        let outcomes: Vec<String> = self
            .events
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        s += &format!("  events: {}\n", outcomes.join(", "));
        s += &format!(
            "  clients: {}; alerts: {} firing, {} resolved",
            self.clients, self.alerts.firing, self.alerts.resolved
        );
        for (kind, (f, r)) in &self.alerts.by_kind {
            s += &format!("\n    {kind}: {f} firing, {r} resolved");
        }
        s
    }
}

/// One input: a path, or `-` for stdin.
#[derive(Debug, Clone)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub fn parse(s: &str) -> Input {
        if s == "-" {
            Input::Stdin
        } else {
            Input::File(PathBuf::from(s))
        }
    }

    fn name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".into(),
            Input::File(p) => p.display().to_string(),
        }
    }

    /// Size on disk, for the progress bar.
    pub fn size(&self) -> Option<u64> {
        match self {
            Input::Stdin => None,
            Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        }
    }
}

/// Counts bytes as they are read from the raw (possibly compressed) input.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The input, unzipped if it is gzip, for [`Blocks`] to read (the buffer under it is small:
/// reads of a block bypass it).
fn open(input: &Input, counter: Arc<AtomicU64>) -> io::Result<Box<dyn Read>> {
    let raw: Box<dyn Read> = match input {
        Input::Stdin => Box::new(io::stdin()),
        Input::File(p) => Box::new(File::open(p)?),
    };
    let mut reader = BufReader::with_capacity(
        8 << 10,
        Counting {
            inner: raw,
            read: counter,
        },
    );
    // gzip by its magic number, whatever the file is called
    let gz = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

/// Bytes read at a time.
const BLOCK: usize = 64 << 10;

/// A line cut from [`Blocks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Where the line lies in the buffer (without its terminator).
    Line(usize, usize),
    /// The line exceeded the limit; its bytes are not kept.
    TooLong,
}

/// An input read a block at a time into one buffer, its lines cut where they lie: no line is
/// copied (copying each line out of a reader's buffer was a tenth of a replay on one thread,
/// and half the reader's work on several). Lines end at `\n`, lose a final `\r`; blank ones are
/// skipped; one longer than `max_line` (its `\r` included) is cut as [`Cut::TooLong`] without
/// holding its bytes, however long; a last line without `\n` is kept.
struct Blocks {
    bytes: Vec<u8>,
    /// Bytes before this are lines already cut.
    cut: usize,
    /// Keep the lines cut when reading the next block (a sharded replay sends them on in
    /// chunks); else they are dropped.
    keep_cut: bool,
    /// The line at `cut` was cut as too long: its bytes are dropped up to its end.
    skipping: bool,
    /// The input has ended: what follows `cut` is its last line.
    end: bool,
    max_line: usize,
    block: usize,
}

impl Blocks {
    fn new(max_line: usize, keep_cut: bool) -> Blocks {
        Blocks {
            bytes: Vec::with_capacity(2 * BLOCK),
            cut: 0,
            keep_cut,
            skipping: false,
            end: false,
            max_line,
            block: BLOCK,
        }
    }

    /// Read the next block of `r` after the bytes held.
    fn fill(&mut self, r: &mut dyn Read) -> io::Result<()> {
        if !self.keep_cut {
            self.bytes.drain(..self.cut);
            self.cut = 0;
        }
        let held = self.bytes.len();
        self.bytes.resize(held + self.block, 0);
        let got = loop {
            match r.read(&mut self.bytes[held..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        self.bytes.truncate(held + *got.as_ref().unwrap_or(&0));
        self.end = got? == 0;
        Ok(())
    }

    /// The next line of the bytes read, or `None` when more must be read (or the input has
    /// ended and every line is cut).
    fn next(&mut self) -> Option<Cut> {
        loop {
            let rest = &self.bytes[self.cut..];
            let (len, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (i, i + 1),
                None if self.end && !rest.is_empty() => (rest.len(), rest.len()),
                None if self.end => {
                    self.skipping = false;
                    return None;
                }
                None => {
                    let too_long = !self.skipping && rest.len() > self.max_line;
                    self.skipping |= too_long;
                    if self.skipping {
                        self.bytes.truncate(self.cut);
                    }
                    return too_long.then_some(Cut::TooLong);
                }
            };
            let start = self.cut;
            self.cut += next;
            if std::mem::take(&mut self.skipping) {
                // (its end: it was cut when it passed the limit)
                continue;
            }
            if len > self.max_line {
                return Some(Cut::TooLong);
            }
            let line = &self.bytes[start..start + len];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(Cut::Line(start, start + line.len()));
            }
        }
    }

    /// The bytes of the lines cut so far, to keep; what follows (the line in progress) moves
    /// to the front of `fresh`, which the next lines are read into.
    fn take_cut(&mut self, mut fresh: Vec<u8>) -> Vec<u8> {
        fresh.clear();
        fresh.extend_from_slice(&self.bytes[self.cut..]);
        let mut taken = std::mem::replace(&mut self.bytes, fresh);
        taken.truncate(self.cut);
        self.cut = 0;
        taken
    }
}

/// Progress reporting hook: called with bytes read so far, occasionally.
pub type Progress<'a> = &'a dyn Fn(u64);

/// Which of `n` engines owns `client_id`: a client's events all go to one engine.
pub fn shard_of(client_id: &str, n: usize) -> usize {
    shard_of_bytes(client_id.as_bytes(), n)
}

/// [`shard_of`] an id's bytes.
fn shard_of_bytes(client_id: &[u8], n: usize) -> usize {
    if n <= 1 {
        0
    } else {
        // (the hash scaled to 0..n by a multiply, not a division: this runs twice per event)
        ((u128::from(xxhash_rust::xxh3::xxh3_64(client_id)) * n as u128) >> 64) as usize
    }
}

/// Replay `inputs` in order through `engines`, writing alert transitions to `alerts`.
///
/// With more than one engine, clients are split between them by [`shard_of`] and each engine
/// runs on a thread of its own (see [`sharded`]); the output is byte-identical to one
/// engine's: transitions in event-time order, ties by client id, each client's own in the
/// order its detectors gave them. Limits that count clients, labels or dedupe ids
/// (`state.max_clients`, ...) apply to each engine.
pub fn replay(
    engines: &mut [Engine],
    decoder: &Decoder,
    inputs: &[Input],
    future_limit: Option<i64>,
    alerts: &mut dyn Write,
    progress: Option<Progress<'_>>,
) -> Result<Summary, ReplayError> {
    let started = Instant::now();
    let counter = Arc::new(AtomicU64::new(0));
    let read = Reading {
        inputs,
        counter: &counter,
        max_line: if decoder.max_event_bytes == 0 {
            usize::MAX
        } else {
            decoder.max_event_bytes
        },
    };
    let mut counts = AlertCounts::default();
    let mut emit = |out: &mut Vec<Alert>| write_alerts(out, alerts, &mut counts);
    match engines {
        [] => {}
        [engine] => one_thread(engine, decoder, &read, future_limit, &mut emit, progress)?,
        _ => sharded::replay(engines, decoder, &read, future_limit, &mut emit, progress)?,
    }
    alerts.flush().map_err(ReplayError::Output)?;
    if let Some(p) = progress {
        p(counter.load(Ordering::Relaxed));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut stats = crate::engine::Stats::default();
    for e in engines.iter() {
        stats.add(e.stats());
    }
    let total = stats.events();
    Ok(Summary {
        events: stats.outcomes().collect(),
        clients: engines.iter().map(Engine::client_count).sum(),
        alerts: counts,
        usage: engines
            .iter()
            .flat_map(Engine::total_units)
            .map(|(id, units)| (id.to_string(), units))
            .collect(),
        elapsed_seconds: elapsed,
        events_per_second: if elapsed > 0.0 {
            total as f64 / elapsed
        } else {
            0.0
        },
        input_bytes: counter.load(Ordering::Relaxed),
    })
}

/// The inputs and how to read them.
struct Reading<'a> {
    inputs: &'a [Input],
    /// Bytes read so far (of the raw input, before decompression), for progress.
    counter: &'a Arc<AtomicU64>,
    max_line: usize,
}

impl Reading<'_> {
    /// Every line of every input in order, cut in `blocks` and handed to `f` with them (to read
    /// the line, or take the lines cut so far), until the end or the first error.
    fn each_line(
        &self,
        blocks: &mut Blocks,
        mut f: impl FnMut(Cut, &mut Blocks) -> Result<(), ReplayError>,
    ) -> Result<(), ReplayError> {
        for input in self.inputs {
            let err = |source| ReplayError::Input {
                path: input.name(),
                source,
            };
            let mut reader = open(input, self.counter.clone()).map_err(err)?;
            loop {
                blocks.fill(reader.as_mut()).map_err(err)?;
                while let Some(cut) = blocks.next() {
                    f(cut, blocks)?;
                }
                if blocks.end {
                    break;
                }
            }
        }
        Ok(())
    }

    fn bytes_read(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }
}

/// Where alert transitions go: put in output order, written and counted.
type Emit<'a> = &'a mut dyn FnMut(&mut Vec<Alert>) -> Result<(), ReplayError>;

fn one_thread(
    engine: &mut Engine,
    decoder: &Decoder,
    read: &Reading<'_>,
    future_limit: Option<i64>,
    emit: Emit<'_>,
    progress: Option<Progress<'_>>,
) -> Result<(), ReplayError> {
    let mut out: Vec<Alert> = Vec::new();
    let mut lines: u64 = 0;
    let mut blocks = Blocks::new(read.max_line, false);
    read.each_line(&mut blocks, |cut, blocks| {
        match cut {
            Cut::TooLong => engine.reject(Reject::TooLarge),
            Cut::Line(start, end) => {
                engine.ingest(decoder, &blocks.bytes[start..end], future_limit, &mut out);
            }
        }
        if !out.is_empty() {
            emit(&mut out)?;
        }
        lines += 1;
        if lines % 65_536 == 0 {
            if let Some(p) = progress {
                p(read.bytes_read());
            }
        }
        Ok(())
    })?;
    engine.flush(&mut out);
    emit(&mut out)
}

/// The output order of transitions: event time, then client id; a stable sort keeps each
/// client's own in their order. (Event time never goes back from one evaluation to the next,
/// so sorting each batch of transitions as it comes sorts the whole output.)
fn output_order(a: &Alert, b: &Alert) -> std::cmp::Ordering {
    a.at.cmp(&b.at).then_with(|| a.client_id.cmp(&b.client_id))
}

fn write_alerts(
    out: &mut Vec<Alert>,
    w: &mut dyn Write,
    counts: &mut AlertCounts,
) -> Result<(), ReplayError> {
    out.sort_by(output_order);
    for a in out.drain(..) {
        let entry = counts.by_kind.entry(a.alert.to_string()).or_default();
        match a.state {
            State::Firing => {
                counts.firing += 1;
                entry.0 += 1;
            }
            State::Resolved => {
                counts.resolved += 1;
                entry.1 += 1;
            }
        }
        serde_json::to_writer(&mut *w, &a).map_err(|e| ReplayError::Output(e.into()))?;
        w.write_all(b"\n").map_err(ReplayError::Output)?;
    }
    Ok(())
}

/// Total size of the inputs that are files (for a progress bar), if all of them are.
pub fn total_len(inputs: &[Input]) -> Option<u64> {
    inputs.iter().map(Input::size).sum()
}

/// When to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A progress bar when stderr is a terminal.
    Auto,
    /// A bar on a terminal, else a plain line on stderr about every 2% of the input.
    Always,
    Never,
}

/// Progress on stderr while replaying: an indicatif bar on a terminal, plain lines
/// (`progress: 12.3 MB of 45.6 MB (27%), 8.1 s`) when forced on elsewhere (logs, tests).
pub struct ProgressDisplay {
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
    total: Option<u64>,
    last: std::cell::Cell<u64>,
    started: Instant,
}

impl ProgressDisplay {
    pub fn new(inputs: &[Input], mode: ProgressMode) -> ProgressDisplay {
        use std::io::IsTerminal;
        let terminal = io::stderr().is_terminal();
        let total = total_len(inputs);
        let bar = (mode != ProgressMode::Never && terminal).then(|| {
            let bar = match total {
                Some(len) => indicatif::ProgressBar::new(len),
                None => indicatif::ProgressBar::new_spinner(),
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        ProgressDisplay {
            bar,
            lines: mode == ProgressMode::Always && !terminal,
            total,
            last: std::cell::Cell::new(0),
            started: Instant::now(),
        }
    }

    /// Is anything shown? (Else pass no progress hook at all.)
    pub fn active(&self) -> bool {
        self.bar.is_some() || self.lines
    }

    /// Bytes read so far.
    pub fn update(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_position(n);
        }
        if self.lines {
            let step = self.total.map_or(64 << 20, |t| (t / 50).max(1));
            if n >= self.last.get() + step || self.total == Some(n) && n > self.last.get() {
                self.last.set(n);
                let secs = self.started.elapsed().as_secs_f64();
                match self.total {
                    Some(t) if t > 0 => eprintln!(
                        "progress: {:.1} MB of {:.1} MB ({:.0}%), {secs:.1} s",
                        n as f64 / 1e6,
                        t as f64 / 1e6,
                        100.0 * n as f64 / t as f64
                    ),
                    _ => eprintln!("progress: {:.1} MB, {secs:.1} s", n as f64 / 1e6),
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Does `path` exist? (For friendlier errors before starting.)
pub fn check_inputs(inputs: &[Input]) -> Result<(), ReplayError> {
    for i in inputs {
        if let Input::File(p) = i {
            if !Path::new(p).exists() {
                return Err(ReplayError::Input {
                    path: i.name(),
                    source: io::Error::new(io::ErrorKind::NotFound, "no such file"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as `Blocks` cuts them from `input` read `block` bytes at a time.
    fn lines(input: &[u8], max: usize, block: usize) -> Vec<Option<String>> {
        let mut blocks = Blocks::new(max, false);
        blocks.block = block;
        let mut r = input;
        let mut out = vec![];
        loop {
            blocks.fill(&mut r).unwrap();
            while let Some(cut) = blocks.next() {
                out.push(match cut {
                    Cut::Line(s, e) => Some(String::from_utf8_lossy(&blocks.bytes[s..e]).into()),
                    Cut::TooLong => None,
                });
            }
            if blocks.end {
                return out;
            }
        }
    }

    #[test]
    fn lines_are_cut_in_blocks() {
        let input = b"ab\r\ncdefghij\n \r\n\nlmno\r\nlmnop\r\nqrstuvwxyz\nk";
        let want = vec![
            Some("ab".to_string()),
            None,
            Some("lmno".into()),
            None,
            None,
            Some("k".into()),
        ];
        // a line's `\r` counts toward the limit; any block size cuts the same lines
        for block in [1, 2, 3, 7, 64] {
            assert_eq!(lines(input, 5, block), want, "block {block}");
        }
        assert!(lines(b"", 5, 4).is_empty());
        assert_eq!(lines(b"abcdefgh", 5, 3), vec![None]);
    }
}
