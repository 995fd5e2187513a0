//! The consumer's side of checkpointing: when to snapshot a partition, writing it without
//! stalling consumption, and loading it back when the partition is assigned.
//!
//! - **Periodic**: every `interval / partitions`, the partition whose snapshot is oldest (and
//!   has changed) is snapshotted on the consumer thread (the only stall, measured in
//!   `overage_checkpoint_stall_seconds`: a pointer per client, the clients being shared and
//!   copied only as they change while the snapshot lives) and encoded and written on a writer
//!   thread. One write is in flight at a time; a snapshot is skipped, not queued, while
//!   the previous one is still being written.
//! - **Revoke and shutdown**: written synchronously from the live engine (no copy), after any
//!   write in flight, so the partition's next owner finds the latest state.
//! - **Assignment**: the latest snapshot is loaded and consumption seeks to its offset. A
//!   missing or unreadable snapshot is reported and the configured fallback applies.
//!
//! All store I/O runs on a small runtime owned here, so the consumer thread stays synchronous.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

use super::metrics::register;
use super::state::Partition;
use crate::checkpoint::{self, CheckpointError, Meta, Store};
use crate::config::{CheckpointConfig, Config};
use crate::contract::Contracts;
use crate::engine::{Engine, EngineState};
use crate::time::{wall_now, Millis};

/// Results of `overage_checkpoint_restores_total` (all created at zero).
pub const RESTORE_RESULTS: [&str; 5] = ["restored", "missing", "corrupt", "incompatible", "error"];

pub struct CheckpointMetrics {
    pub writes: IntCounterVec,
    pub write_seconds: Histogram,
    pub stall_seconds: Histogram,
    pub bytes: IntGauge,
    pub last_success: IntGauge,
    pub restores: IntCounterVec,
    pub restore_seconds: Histogram,
    pub alerts_suppressed: prometheus::IntCounter,
}

impl CheckpointMetrics {
    pub fn new(r: &Registry) -> CheckpointMetrics {
        let hist = |name: &str, help: &str, buckets: Vec<f64>| {
            register(
                r,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                    .expect("static metric"),
            )
        };
        let m = CheckpointMetrics {
            writes: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "overage_checkpoint_writes_total",
                        "Partition snapshots written, by result (ok, error, skipped: previous write still in flight).",
                    ),
                    &["result"],
                )
                .expect("static metric"),
            ),
            write_seconds: hist(
                "overage_checkpoint_write_seconds",
                "Time to encode and store one partition snapshot.",
                vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0],
            ),
            stall_seconds: hist(
                "overage_checkpoint_stall_seconds",
                "Time consumption paused to take one snapshot (copy, or the whole write on revoke and shutdown).",
                vec![1e-4, 1e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
            ),
            bytes: register(
                r,
                IntGauge::new(
                    "overage_checkpoint_last_bytes",
                    "Size of the last snapshot written.",
                )
                .expect("static metric"),
            ),
            last_success: register(
                r,
                IntGauge::new(
                    "overage_checkpoint_last_success_timestamp_seconds",
                    "Wall-clock time of the last snapshot written (0: none yet).",
                )
                .expect("static metric"),
            ),
            restores: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "overage_checkpoint_restores_total",
                        "Partition assignments by how their state was obtained (restored, missing, corrupt, incompatible, error).",
                    ),
                    &["result"],
                )
                .expect("static metric"),
            ),
            restore_seconds: hist(
                "overage_checkpoint_restore_seconds",
                "Time to load and decode one partition snapshot.",
                vec![0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ),
            alerts_suppressed: register(
                r,
                prometheus::IntCounter::new(
                    "overage_alerts_replay_suppressed_total",
                    "Alert transitions recomputed after a restore that had already been delivered (not sent again).",
                )
                .expect("static metric"),
            ),
        };
        for result in ["ok", "error", "skipped"] {
            m.writes.with_label_values(&[result]);
        }
        for result in RESTORE_RESULTS {
            m.restores.with_label_values(&[result]);
        }
        m
    }
}

/// A partition's state as found in the store on assignment.
pub enum Loaded {
    /// Carry on from here.
    Restored {
        engine: Box<Engine>,
        next_offset: i64,
    },
    /// No usable snapshot (the reason was reported): apply the fallback.
    Fallback,
}

/// Per-partition bookkeeping for snapshots.
struct Track {
    /// First offset not yet applied.
    next_offset: i64,
    /// `next_offset` at the last snapshot, and when it was taken.
    snapshot_offset: i64,
    snapshot_at: Instant,
}

pub struct Checkpointer {
    store: Store,
    rt: tokio::runtime::Runtime,
    cfg: CheckpointConfig,
    metrics: Arc<super::metrics::Metrics>,
    tracks: HashMap<Partition, Track>,
    in_flight: Option<JoinHandle<()>>,
    next_due: Instant,
}

impl Checkpointer {
    /// The checkpointer for `config`, if checkpoints are configured.
    pub fn open(
        config: &Config,
        metrics: Arc<super::metrics::Metrics>,
    ) -> Result<Option<Checkpointer>, CheckpointError> {
        let Some(store) = Store::open(&config.state.checkpoint, &config.kafka.group_id)? else {
            return Ok(None);
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("overage-checkpoint")
            .enable_all()
            .build()
            .map_err(|e| CheckpointError::Config(store.name().to_owned(), e.to_string()))?;
        tracing::info!(
            store = store.name(),
            interval = %humantime::format_duration(config.state.checkpoint.interval),
            "checkpoints enabled"
        );
        Ok(Some(Checkpointer {
            store,
            rt,
            cfg: config.state.checkpoint.clone(),
            metrics,
            tracks: HashMap::new(),
            in_flight: None,
            next_due: Instant::now(),
        }))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &CheckpointConfig {
        &self.cfg
    }

    /// Record that `offset` of `p` has been applied.
    pub fn applied(&mut self, p: &Partition, offset: i64) {
        match self.tracks.get_mut(p) {
            Some(t) => t.next_offset = offset + 1,
            None => {
                self.tracks.insert(
                    p.clone(),
                    Track {
                        next_offset: offset + 1,
                        snapshot_offset: -1,
                        snapshot_at: Instant::now(),
                    },
                );
            }
        }
    }

    /// Load the snapshot of `p`, if there is a usable one.
    pub fn load(&mut self, p: &Partition, config: &Config, contracts: Arc<Contracts>) -> Loaded {
        let started = Instant::now();
        let m = &self.metrics.checkpoints;
        let fetched = self.rt.block_on(self.store.get(&p.0, p.1));
        let result = fetched.and_then(|b| b.map(|b| checkpoint::decode(&b)).transpose());
        match result {
            Ok(Some((meta, state))) => {
                let clients = state.client_count();
                let engine = Engine::restore(config, contracts, state);
                m.restores.with_label_values(&["restored"]).inc();
                m.restore_seconds.observe(started.elapsed().as_secs_f64());
                tracing::info!(
                    topic = %p.0,
                    partition = p.1,
                    next_offset = meta.next_offset,
                    clients,
                    seconds = started.elapsed().as_secs_f64(),
                    "partition state restored"
                );
                self.tracks.insert(
                    p.clone(),
                    Track {
                        next_offset: meta.next_offset,
                        snapshot_offset: meta.next_offset,
                        snapshot_at: Instant::now(),
                    },
                );
                Loaded::Restored {
                    engine: Box::new(engine),
                    next_offset: meta.next_offset,
                }
            }
            Ok(None) => {
                m.restores.with_label_values(&["missing"]).inc();
                tracing::info!(
                    topic = %p.0,
                    partition = p.1,
                    fallback = ?self.cfg.fallback,
                    "no checkpoint for this partition yet"
                );
                Loaded::Fallback
            }
            Err(e) => {
                let label = match e.kind() {
                    "corrupt" => "corrupt",
                    "incompatible" => "incompatible",
                    _ => "error",
                };
                m.restores.with_label_values(&[label]).inc();
                tracing::error!(
                    topic = %p.0,
                    partition = p.1,
                    fallback = ?self.cfg.fallback,
                    "checkpoint not usable, falling back: {e}"
                );
                Loaded::Fallback
            }
        }
    }

    /// The delivered-alerts mark of `p` (see [`Store::put_mark`]).
    pub fn mark(&self, p: &Partition) -> Option<Millis> {
        match self.rt.block_on(self.store.get_mark(&p.0, p.1)) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(topic = %p.0, partition = p.1, "reading the delivered-alerts mark: {e}; alerts may be sent twice");
                None
            }
        }
    }

    /// The partition due for a periodic snapshot now, if any. Call between messages; `barrier`
    /// must be called by the caller before taking it (alerts it reflects must be delivered).
    pub fn due(&mut self) -> Option<Partition> {
        let now = Instant::now();
        if now < self.next_due {
            return None;
        }
        if self.in_flight.as_ref().is_some_and(|h| !h.is_finished()) {
            self.metrics
                .checkpoints
                .writes
                .with_label_values(&["skipped"])
                .inc();
            self.next_due = now + Duration::from_millis(500);
            return None;
        }
        let n = self.tracks.len().max(1) as u32;
        self.next_due = now + self.cfg.interval / n;
        self.tracks
            .iter()
            .filter(|(_, t)| {
                t.next_offset != t.snapshot_offset
                    && now.duration_since(t.snapshot_at) >= self.cfg.interval / 2
            })
            .min_by_key(|(_, t)| t.snapshot_at)
            .map(|(p, _)| p.clone())
    }

    /// Copy `engine`'s state and write it in the background.
    pub fn snapshot_async(&mut self, p: &Partition, engine: &Engine) {
        let Some(t) = self.tracks.get_mut(p) else {
            return;
        };
        let started = Instant::now();
        let state: EngineState = engine.snapshot();
        let meta = Meta {
            topic: p.0.clone(),
            partition: p.1,
            next_offset: t.next_offset,
            written_at: wall_now(),
        };
        t.snapshot_offset = t.next_offset;
        t.snapshot_at = Instant::now();
        self.metrics
            .checkpoints
            .stall_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Some(h) = self.in_flight.take() {
            let _ = h.join();
        }
        let (store, handle, metrics) = (
            self.store.clone(),
            self.rt.handle().clone(),
            self.metrics.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("overage-ckpt-write".into())
            .spawn(move || {
                let started = Instant::now();
                let r = checkpoint::encode(&meta, &state);
                drop(state);
                let r = r.and_then(|bytes| {
                    let n = bytes.len();
                    handle
                        .block_on(store.put(&meta.topic, meta.partition, bytes))
                        .map(|_| n)
                });
                record_write(&metrics, &meta, r, started);
            });
        match spawned {
            Ok(h) => self.in_flight = Some(h),
            Err(e) => tracing::error!("starting the checkpoint writer: {e}"),
        }
    }

    /// Write `engine`'s state now, waiting for it (revoke, shutdown).
    pub fn snapshot_sync(&mut self, p: &Partition, engine: &Engine) {
        if let Some(h) = self.in_flight.take() {
            let _ = h.join();
        }
        let Some(t) = self.tracks.get_mut(p) else {
            return; // nothing applied since it was assigned: its snapshot is current
        };
        if t.next_offset == t.snapshot_offset {
            return;
        }
        let started = Instant::now();
        let meta = Meta {
            topic: p.0.clone(),
            partition: p.1,
            next_offset: t.next_offset,
            written_at: wall_now(),
        };
        let r = checkpoint::encode(&meta, engine.state()).and_then(|bytes| {
            let n = bytes.len();
            self.rt
                .block_on(self.store.put(&meta.topic, meta.partition, bytes))
                .map(|_| n)
        });
        if r.is_ok() {
            t.snapshot_offset = t.next_offset;
            t.snapshot_at = Instant::now();
        }
        record_write(&self.metrics, &meta, r, started);
        self.metrics
            .checkpoints
            .stall_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// Forget a partition this instance no longer owns.
    pub fn forget(&mut self, p: &Partition) {
        self.tracks.remove(p);
    }

    /// Wait for the write in flight, if any.
    pub fn finish(&mut self) {
        if let Some(h) = self.in_flight.take() {
            let _ = h.join();
        }
    }
}

fn record_write(
    metrics: &super::metrics::Metrics,
    meta: &Meta,
    r: Result<usize, CheckpointError>,
    started: Instant,
) {
    let m = &metrics.checkpoints;
    match r {
        Ok(n) => {
            m.writes.with_label_values(&["ok"]).inc();
            m.write_seconds.observe(started.elapsed().as_secs_f64());
            m.bytes.set(n as i64);
            m.last_success.set(wall_now() / 1000);
            tracing::debug!(
                topic = %meta.topic,
                partition = meta.partition,
                next_offset = meta.next_offset,
                bytes = n,
                "checkpoint written"
            );
        }
        Err(e) => {
            m.writes.with_label_values(&["error"]).inc();
            tracing::error!(
                topic = %meta.topic,
                partition = meta.partition,
                "checkpoint write failed (state is still in memory; will retry): {e}"
            );
        }
    }
}
