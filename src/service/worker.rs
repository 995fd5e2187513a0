//! The consumer's workers: partitions applied on every core, each partition's messages in order.
//!
//! The poll thread ([`super::consumer`]) reads from librdkafka and hands each message to the
//! worker that owns its partition ([`Pool::push`]). A partition is owned by one worker from its
//! assignment to its revoke, so its messages are applied in their order and its alerts are the
//! ones one thread would compute; different partitions are applied at the same time. Messages
//! travel in batches copied into one buffer, so a worker costs one channel hop per batch, not
//! per message.
//!
//! A worker applies a run of one partition's messages under that engine's lock, hands the run's
//! transitions to the router, and only then stores the run's offset (at-least-once, as with one
//! thread). Before a partition's state is written or given up (revoke, checkpoint, shutdown),
//! the poll thread waits until every worker has applied what it was handed ([`Pool::sync`]).

use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

use prometheus::IntGaugeVec;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::{Context, DeadLetters};
use super::state::{lock, Partition};
use crate::alert::Alert;
use crate::decode::{Decoder, Reject};
use crate::engine::Engine;
use crate::time::{wall_now, Millis};

/// Batches a worker may have queued before the poll thread waits for it (backpressure).
const QUEUED_BATCHES: usize = 4;

/// Messages of one partition, in their order.
pub(super) struct Run {
    partition: Partition,
    messages: Vec<Copied>,
}

/// A message copied into its batch's buffer.
pub(super) struct Copied {
    offset: i64,
    payload: Range<usize>,
    key: Option<Range<usize>>,
}

/// Messages for one worker, as runs of one partition each.
#[derive(Default)]
pub(super) struct Batch {
    data: Vec<u8>,
    runs: Vec<Run>,
}

impl Batch {
    fn push(&mut self, m: &BorrowedMessage<'_>) {
        let mut copy = |bytes: &[u8]| {
            let start = self.data.len();
            self.data.extend_from_slice(bytes);
            start..self.data.len()
        };
        let payload = copy(m.payload().unwrap_or_default());
        let key = m.key().map(copy);
        let copied = Copied {
            offset: m.offset(),
            payload,
            key,
        };
        match self.runs.last_mut() {
            Some(r) if r.partition.1 == m.partition() && r.partition.0 == m.topic() => {
                r.messages.push(copied)
            }
            _ => self.runs.push(Run {
                partition: (m.topic().to_owned(), m.partition()),
                messages: vec![copied],
            }),
        }
    }

    fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

/// What the poll thread hands a worker.
pub(super) enum Work {
    Batch(Batch),
    /// Nothing has arrived on this partition for this long: its event time moves on.
    Idle(Partition, Duration),
    /// Answer once everything handed over before this is applied.
    Sync(std::sync::mpsc::Sender<()>),
}

/// A partition assigned here, the worker applying it and when it last had a message.
struct Owned {
    partition: Partition,
    worker: usize,
    last_message: Option<Instant>,
}

/// The poll thread's side of the workers: who owns which partition, and what is not yet
/// handed over.
pub(super) struct Pool {
    senders: Vec<SyncSender<Work>>,
    pending: Vec<Batch>,
    owned: Vec<Owned>,
    /// `overage_worker_partitions`, by worker.
    gauge: IntGaugeVec,
}

impl Pool {
    /// A pool of `n` workers, and the receiving end of each (for [`run_worker`]).
    pub(super) fn new(n: usize, gauge: IntGaugeVec) -> (Pool, Vec<Receiver<Work>>) {
        let n = n.max(1);
        let (senders, receivers) = (0..n).map(|_| sync_channel(QUEUED_BATCHES)).unzip();
        let pool = Pool {
            senders,
            pending: (0..n).map(|_| Batch::default()).collect(),
            owned: vec![],
            gauge,
        };
        pool.publish();
        (pool, receivers)
    }

    /// Partitions per worker.
    fn loads(&self) -> Vec<usize> {
        let mut load = vec![0usize; self.pending.len()];
        for o in &self.owned {
            load[o.worker] += 1;
        }
        load
    }

    fn publish(&self) {
        for (w, n) in self.loads().into_iter().enumerate() {
            self.gauge
                .with_label_values(&[&w.to_string()])
                .set(n as i64);
        }
    }

    /// Give each newly assigned partition to the worker that owns the fewest.
    pub(super) fn assign(&mut self, partitions: &[Partition]) {
        for p in partitions {
            if !self.owned.iter().any(|o| &o.partition == p) {
                self.own(p.clone());
            }
        }
    }

    fn own(&mut self, partition: Partition) -> usize {
        let load = self.loads();
        let worker = (0..load.len()).min_by_key(|&w| load[w]).unwrap_or(0);
        self.owned.push(Owned {
            partition,
            worker,
            last_message: None,
        });
        self.publish();
        worker
    }

    pub(super) fn revoke(&mut self, partitions: &[Partition]) {
        self.owned.retain(|o| !partitions.contains(&o.partition));
        self.publish();
    }

    /// Queue `m` for the worker owning its partition (handed over at [`Pool::flush`]).
    pub(super) fn push(&mut self, m: &BorrowedMessage<'_>) {
        let found = self
            .owned
            .iter_mut()
            .find(|o| o.partition.1 == m.partition() && o.partition.0 == m.topic());
        let worker = match found {
            Some(o) => {
                o.last_message = Some(Instant::now());
                o.worker
            }
            // assigned without a rebalance callback (never with a group subscription)
            None => self.own((m.topic().to_owned(), m.partition())),
        };
        self.pending[worker].push(m);
    }

    /// Hand every worker what was queued for it; waits while a worker is behind.
    pub(super) fn flush(&mut self) {
        for (w, batch) in self.pending.iter_mut().enumerate() {
            if !batch.is_empty() {
                let b = Work::Batch(std::mem::take(batch));
                if self.senders.get(w).is_none_or(|s| s.send(b).is_err()) {
                    tracing::error!(worker = w, "consumer worker gone; messages not applied");
                }
            }
        }
    }

    /// Tell each worker which of its partitions have been quiet for longer than `lateness`.
    pub(super) fn idle(&mut self, lateness: Duration) {
        self.flush();
        for o in &self.owned {
            let quiet = o.last_message.map_or(Duration::ZERO, |t| t.elapsed());
            if let (true, Some(s)) = (quiet > lateness, self.senders.get(o.worker)) {
                let _ = s.send(Work::Idle(o.partition.clone(), quiet));
            }
        }
    }

    /// Return once every worker has applied everything handed to it (and stored its offsets).
    pub(super) fn sync(&mut self) {
        self.flush();
        let (tx, rx) = std::sync::mpsc::channel();
        let asked = self
            .senders
            .iter()
            .filter(|s| s.send(Work::Sync(tx.clone())).is_ok())
            .count();
        drop(tx);
        for _ in 0..asked {
            if rx.recv().is_err() {
                break;
            }
        }
    }

    /// Hand over what is queued and let the workers finish: each returns once its queue is
    /// empty.
    pub(super) fn close(&mut self) {
        self.flush();
        self.senders.clear();
    }
}

/// What a worker needs besides its queue.
pub(super) struct Apply<'c> {
    pub consumer: &'c BaseConsumer<Context>,
    pub dead_letters: Option<&'c DeadLetters>,
    pub decoder: Decoder,
    /// `input.max_future_skew` in ms (0: no limit).
    pub skew: Millis,
    /// `input.allowed_lateness` in ms.
    pub lateness: Millis,
    pub checkpointing: bool,
}

/// A worker: apply what arrives until the pool is closed.
pub(super) fn run_worker(a: &Apply<'_>, work: Receiver<Work>) {
    let mut out: Vec<Alert> = Vec::new();
    for w in work {
        match w {
            Work::Batch(b) => a.batch(&b, &mut out),
            Work::Idle(p, quiet) => a.idle(&p, quiet, &mut out),
            Work::Sync(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl Apply<'_> {
    fn batch(&self, b: &Batch, out: &mut Vec<Alert>) {
        let ctx = self.consumer.context();
        let (shared, metrics) = (&ctx.shared, &ctx.metrics);
        for run in &b.runs {
            let p = &run.partition;
            let shard =
                shared.shard_or_insert(p, || Engine::new(&shared.config, shared.contracts()));
            let mut engine = lock(&shard);
            for m in &run.messages {
                let started = Instant::now();
                let payload = &b.data[m.payload.clone()];
                let future_limit = (self.skew > 0).then(|| wall_now() + self.skew);
                if let Some(reason) = engine.ingest(&self.decoder, payload, future_limit, out) {
                    let key = m.key.clone().map(|k| &b.data[k]);
                    self.rejected(p, m.offset, payload, key, reason);
                }
                metrics.processing.observe(started.elapsed().as_secs_f64());
            }
            let Some(last) = run.messages.last().map(|m| m.offset) else {
                continue;
            };
            ctx.forward(out, p, self.checkpointing);
            // Stored only now that the run is applied and its alerts are with the router; the
            // stored offset is the next one to read.
            let mut tpl = TopicPartitionList::new();
            let stored = tpl
                .add_partition_offset(&p.0, p.1, Offset::Offset(last + 1))
                .and_then(|()| self.consumer.store_offsets(&tpl));
            if let Err(e) = stored {
                tracing::warn!("storing offset: {e}");
            }
            if let Some(ck) = ctx.checkpoints().as_mut() {
                ck.applied(p, last);
            }
            engine.refresh_board(wall_now());
        }
    }

    /// Event time of a quiet partition moves on with the wall clock, so its alerts can resolve
    /// (as idle sources do in Flink).
    fn idle(&self, p: &Partition, quiet: Duration, out: &mut Vec<Alert>) {
        let ctx = self.consumer.context();
        let Some(shard) = ctx.shared.shard(p) else {
            return;
        };
        let mut engine = lock(&shard);
        let quiet = quiet.as_millis() as Millis;
        if let (true, Some(max)) = (quiet > self.lateness, engine.max_event_time()) {
            engine.advance_to(max + quiet - self.lateness, out);
            ctx.forward(out, p, self.checkpointing);
            engine.refresh_board(wall_now());
        }
    }

    /// Log (rate-limited, never the payload: it may hold client data) and dead-letter a
    /// rejected message; the engine has counted it.
    fn rejected(
        &self,
        p: &Partition,
        offset: i64,
        payload: &[u8],
        key: Option<&[u8]>,
        reason: Reject,
    ) {
        let ctx = self.consumer.context();
        if let Some(suppressed) = ctx.log.allow(reason.as_str()) {
            tracing::warn!(
                topic = p.0,
                partition = p.1,
                offset,
                reason = reason.as_str(),
                suppressed,
                "rejected message"
            );
        }
        let Some(dl) = self.dead_letters else {
            return;
        };
        let headers = OwnedHeaders::new().insert(Header {
            key: "overage-reject",
            value: Some(reason.as_str()),
        });
        let mut record = BaseRecord::<[u8], [u8]>::to(&dl.topic)
            .payload(payload)
            .headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        match dl.producer.send(record) {
            Ok(()) => ctx.metrics.dead_letters.inc(),
            Err((e, _)) => {
                ctx.metrics
                    .kafka_errors
                    .with_label_values(&["dead_letter"])
                    .inc();
                tracing::warn!("dead-letter send: {e}");
            }
        }
    }
}
