//! `overage replay`: the detection engine over recorded events.
//!
//! Reads JSONL (plain or gzip, files or stdin) line by line into the same [`Engine::ingest`] path
//! the service uses, writes every alert transition as a JSON line, and returns a [`Summary`].
//! Lines are read with a hard length limit so one enormous line cannot exhaust memory; it is
//! counted as `too_large` like an oversized Kafka message.

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

fn open(input: &Input, counter: Arc<AtomicU64>) -> io::Result<Box<dyn BufRead>> {
    open_with(input, counter, 1 << 20)
}

/// [`open`], with a buffer of `capacity` bytes over the raw input.
fn open_with(
    input: &Input,
    counter: Arc<AtomicU64>,
    capacity: usize,
) -> io::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = match input {
        Input::Stdin => Box::new(io::stdin()),
        Input::File(p) => Box::new(File::open(p)?),
    };
    let mut reader = BufReader::with_capacity(
        capacity,
        Counting {
            inner: raw,
            read: counter,
        },
    );
    // gzip by its magic number, whatever the file is called
    let gz = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(reader),
        ))
    } else {
        Box::new(reader)
    })
}

/// Outcome of reading one line with a length limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line (without its terminator) is in the buffer.
    Ok,
    /// The line exceeded the limit and was skipped up to its end.
    TooLong,
    Eof,
}

/// Read one `\n`-terminated line into `buf` (cleared first), never holding more than `max`
/// bytes of it.
pub fn read_line_bounded(r: &mut dyn BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Line> {
    buf.clear();
    append_line_bounded(r, buf, max)
}

/// [`read_line_bounded`], appending the line to what `buf` holds (a line too long, or the end
/// of input, leaves `buf` as it was).
fn append_line_bounded(r: &mut dyn BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Line> {
    let start = buf.len();
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Ok(if too_long {
                Line::TooLong
            } else if any {
                Line::Ok
            } else {
                Line::Eof
            });
        }
        any = true;
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if !too_long {
            if buf.len() - start + chunk.len() > max {
                too_long = true;
                buf.truncate(start);
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(available.len());
        r.consume(used);
        if done.is_some() {
            if buf.len() > start && buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(if too_long { Line::TooLong } else { Line::Ok });
        }
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
        (xxhash_rust::xxh3::xxh3_64(client_id) % n as u64) as usize
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
    /// Every line of every input in order, appended to `buf` as [`append_line_bounded`] does
    /// and handed to `f` with where it starts (blank lines skipped), until the end or the
    /// first error. `f` may clear or take `buf`.
    fn each_line(
        &self,
        buf: &mut Vec<u8>,
        mut f: impl FnMut(Line, &mut Vec<u8>, usize) -> Result<(), ReplayError>,
    ) -> Result<(), ReplayError> {
        for input in self.inputs {
            let err = |source| ReplayError::Input {
                path: input.name(),
                source,
            };
            let mut reader = open(input, self.counter.clone()).map_err(err)?;
            loop {
                let start = buf.len();
                match append_line_bounded(reader.as_mut(), buf, self.max_line).map_err(err)? {
                    Line::Eof => break,
                    Line::Ok if buf[start..].iter().all(u8::is_ascii_whitespace) => {
                        buf.truncate(start)
                    }
                    l => f(l, buf, start)?,
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
    let mut buf = Vec::with_capacity(4096);
    read.each_line(&mut buf, |l, line, _| {
        match l {
            Line::TooLong => engine.reject(Reject::TooLarge),
            _ => {
                engine.ingest(decoder, line, future_limit, &mut out);
            }
        }
        line.clear();
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

    fn lines(input: &[u8], max: usize) -> Vec<(Line, String)> {
        let mut r = BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut out = vec![];
        loop {
            let l = read_line_bounded(&mut r, &mut buf, max).unwrap();
            if l == Line::Eof {
                break;
            }
            out.push((l, String::from_utf8_lossy(&buf).into_owned()));
        }
        out
    }

    #[test]
    fn bounded_lines() {
        let got = lines(b"ab\r\ncdefghij\nk", 5);
        assert_eq!(
            got,
            vec![
                (Line::Ok, "ab".into()),
                (Line::TooLong, "".into()),
                (Line::Ok, "k".into())
            ]
        );
        assert!(lines(b"", 5).is_empty());
    }
}
