//! The Kafka consumer: a consumer-group member that feeds each partition's engine.
//!
//! One thread runs librdkafka's poll loop (no async hop per message) and hands each message to
//! the worker thread that owns its partition ([`super::worker`], `kafka.threads` of them), so
//! partitions are applied in parallel and each partition's messages in order. Delivery is
//! at-least-once, as in rust-rdkafka's `at_least_once` example: auto-commit is on but offsets
//! are *stored* only after a message has been applied to state and its alerts queued, so a
//! crash replays at most the uncommitted tail (and the dedupe horizon absorbs redelivered event
//! ids). Offsets are committed every `commit_interval`, by librdkafka before a revoke, and
//! synchronously at shutdown; the workers are drained before each of these.
//!
//! With checkpoints (`state.checkpoint.store`), state follows the partition instead: on
//! assignment the partition's snapshot is loaded and consumption starts at the snapshot's
//! offset, so events after it are applied exactly once to the restored state; on revoke and at
//! shutdown the state is written for the next owner (see [`super::checkpointer`]). Alert
//! transitions recomputed from events the previous owner had already processed are not sent
//! again: the router records, per partition, the event time up to which every transition was
//! delivered, and transitions at or before that mark are suppressed after a restore.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::checkpointer::{Checkpointer, Loaded};
use super::metrics::Metrics;
use super::ratelimit::LogLimiter;
use super::router::Routed;
use super::state::{lock, Health, Link, Partition, Shared, TopicProblem};
use super::worker::{run_worker, Apply, Pool};
use crate::alert::Alert;
use crate::config::{ms, Fallback, KafkaConfig};
use crate::time::{wall_now, Millis};

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("creating the Kafka consumer: {0}")]
    Create(KafkaError),
    #[error("subscribing to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: KafkaError,
    },
}

/// A librdkafka config: brokers and client id, then `settings` for this client's role, then the
/// raw `options` map last, so TLS, SASL and tuning need no code and can override anything.
pub fn client_config(k: &KafkaConfig, settings: &[(&str, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("client.id", &k.client_id);
    for (key, value) in settings {
        c.set(*key, value);
    }
    for (key, value) in &k.options {
        c.set(key, value);
    }
    c
}

/// Rebalance, error and statistics callbacks, and what they share with the poll loop (both
/// run on the consumer thread: rebalances happen inside `poll`).
pub struct Context {
    pub(super) shared: Arc<Shared>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) log: Arc<LogLimiter>,
    router: mpsc::Sender<Routed>,
    /// The workers, as the poll thread sees them (callbacks run on that thread too).
    pool: Mutex<Pool>,
    checkpoints: Mutex<Option<Checkpointer>>,
    /// Per restored partition: transitions at or before this event time were delivered before
    /// the restore.
    mute: Mutex<HashMap<Partition, Millis>>,
    /// Alerts were handed to the router since the last barrier.
    undelivered: std::sync::atomic::AtomicBool,
}

impl Context {
    pub(super) fn checkpoints(&self) -> MutexGuard<'_, Option<Checkpointer>> {
        self.checkpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mute(&self) -> MutexGuard<'_, HashMap<Partition, Millis>> {
        self.mute.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until the router has handed on every alert sent so far (and recorded its mark),
    /// so that a snapshot never reflects a transition that could still be lost. False if the
    /// router did not answer in time.
    fn barrier(&self) -> bool {
        if !self.undelivered.swap(false, Ordering::SeqCst) {
            return true;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        if self.router.blocking_send(Routed::Barrier(tx)).is_err() {
            return false;
        }
        let ok = rx.recv_timeout(Duration::from_secs(30)).is_ok();
        if !ok {
            self.undelivered.store(true, Ordering::SeqCst);
            tracing::warn!("alert sinks did not catch up within 30s; snapshot postponed");
        }
        ok
    }

    /// Hand a partition's transitions to the router, then its delivered-alerts mark.
    pub(super) fn forward(&self, out: &mut Vec<Alert>, partition: &Partition, checkpoints: bool) {
        let Some(through) = out.iter().map(|a| a.at).max() else {
            return;
        };
        if let Some(&m) = self.mute().get(partition) {
            let before = out.len();
            out.retain(|a| a.at > m);
            self.metrics
                .checkpoints
                .alerts_suppressed
                .inc_by((before - out.len()) as u64);
        }
        self.undelivered.store(true, Ordering::SeqCst);
        for a in out.drain(..) {
            if self
                .router
                .blocking_send(Routed::Alert(Box::new(a), partition.clone()))
                .is_err()
            {
                tracing::error!("alert router gone; transition lost");
            }
        }
        if checkpoints {
            let _ = self.router.blocking_send(Routed::Mark {
                partition: partition.clone(),
                through,
            });
        }
    }

    /// Load each assigned partition's state and set where its consumption starts.
    fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        self.pool().assign(&partitions(tpl));
        let mut guard = self.checkpoints();
        let Some(ck) = guard.as_mut() else {
            return;
        };
        self.shared.health.restoring.store(true, Ordering::SeqCst);
        let cfg = &self.shared.config;
        let contracts = self.shared.contracts();
        let mut replay = TopicPartitionList::new();
        let since = wall_now() - ms(ck.config().replay_history);
        for p in partitions(tpl) {
            if let Some(mark) = ck.mark(&p) {
                self.mute().insert(p.clone(), mark);
            }
            match ck.load(&p, cfg, contracts.clone()) {
                Loaded::Restored {
                    engine,
                    next_offset,
                } => {
                    if let Err(e) = tpl.set_partition_offset(&p.0, p.1, Offset::Offset(next_offset))
                    {
                        tracing::error!("seeking {}:{} to its checkpoint: {e}", p.0, p.1);
                    }
                    let firing = engine.firing();
                    self.shared.insert(p.clone(), *engine);
                    if !firing.is_empty() {
                        let _ = self.router.blocking_send(Routed::Restored(firing, p));
                    }
                }
                Loaded::Fallback => {
                    self.shared.remove(&p);
                    if ck.config().fallback == Fallback::Replay {
                        let _ = replay.add_partition_offset(&p.0, p.1, Offset::Offset(since));
                        // Rebuilding from history recomputes transitions someone was already
                        // paged for (or that are stale now): send only those after now.
                        let now = wall_now() - ms(cfg.input.allowed_lateness);
                        let mut mute = self.mute();
                        let m = mute.entry(p.clone()).or_insert(now);
                        *m = (*m).max(now);
                    }
                }
            }
        }
        if replay.count() > 0 {
            match consumer.offsets_for_times(replay, Duration::from_secs(30)) {
                Ok(found) => {
                    for e in found.elements() {
                        if let Offset::Offset(o) = e.offset() {
                            let _ = tpl.set_partition_offset(
                                e.topic(),
                                e.partition(),
                                Offset::Offset(o),
                            );
                        }
                    }
                }
                Err(e) => tracing::error!(
                    "finding offsets to replay the last {}: {e}; starting from committed offsets",
                    humantime::format_duration(ck.config().replay_history)
                ),
            }
        }
        self.shared.health.restoring.store(false, Ordering::SeqCst);
    }

    /// Write the state of revoked partitions for their next owner, then let it go.
    fn on_revoke(&self, tpl: &TopicPartitionList) {
        let revoked = partitions(tpl);
        tracing::info!(partitions = ?revoked, "partitions revoked");
        // Everything read so far applied and its offsets stored, so that librdkafka's commit
        // before the revoke and the snapshots below cover it.
        self.pool().sync();
        if self.checkpoints().is_some() {
            self.barrier();
            for p in &revoked {
                // (the engine's lock before the checkpointer's, as the workers take them)
                let shard = self.shared.shard(p);
                let engine = shard.as_ref().map(lock);
                if let Some(ck) = self.checkpoints().as_mut() {
                    if let Some(e) = &engine {
                        ck.snapshot_sync(p, e);
                    }
                    ck.forget(p);
                }
            }
        }
        self.pool().revoke(&revoked);
        let mut mute = self.mute();
        for p in &revoked {
            mute.remove(p);
        }
        drop(mute);
        self.shared.retire(&revoked);
        let _ = self.router.blocking_send(Routed::Revoked(revoked));
    }

    fn update_assigned(&self, consumer: &BaseConsumer<Self>) {
        let n = consumer.assignment().map_or(0, |a| a.count());
        let h = &self.shared.health;
        h.assigned.store(n, Ordering::Relaxed);
        h.assigned_once.store(true, Ordering::Relaxed);
        h.set_link(Link::Up);
    }
}

/// What a librdkafka error says is wrong with the link to the brokers or with a subscribed
/// topic, if it says anything about either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    Link(Link),
    Topic(TopicProblem),
}

fn trouble(code: RDKafkaErrorCode) -> Option<Trouble> {
    Some(match code {
        RDKafkaErrorCode::AllBrokersDown => Trouble::Link(Link::Unreachable),
        RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
            Trouble::Link(Link::AuthenticationFailed)
        }
        RDKafkaErrorCode::SSL => Trouble::Link(Link::TlsFailed),
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => {
            Trouble::Topic(TopicProblem::Missing)
        }
        RDKafkaErrorCode::TopicAuthorizationFailed => Trouble::Topic(TopicProblem::NotAuthorized),
        _ => return None,
    })
}

/// What `topic`'s metadata says is wrong with it, if anything. A topic the answer leaves out,
/// or lists without partitions, does not exist (every Kafka topic has at least one).
fn topic_problem(md: &Metadata, topic: &str) -> Option<TopicProblem> {
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Some(TopicProblem::Missing);
    };
    match t.error() {
        Some(e) => match trouble(e.into()) {
            Some(Trouble::Topic(p)) => Some(p),
            _ => None,
        },
        None if t.partitions().is_empty() => Some(TopicProblem::Missing),
        None => None,
    }
}

/// How often the subscribed topics' metadata is checked while they may be the reason nothing is
/// assigned.
const TOPIC_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Ask the brokers about each subscribed topic and record which cannot be consumed and why.
/// librdkafka reports a missing topic once, without its name, and never that it appeared, so
/// readiness asks the metadata instead. Patterns (`^...`) name no single topic and are skipped.
fn check_topics(consumer: &BaseConsumer<Context>, topics: &[String], health: &Health) {
    for topic in topics.iter().filter(|t| !t.starts_with('^')) {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) {
            Ok(md) => {
                // an answer is also news that the brokers are reachable
                health.set_link(Link::Up);
                health.set_topic_problem(topic, topic_problem(&md, topic));
            }
            // the link's own state says why the brokers did not answer
            Err(e) => tracing::debug!("metadata of {topic}: {e}"),
        }
    }
}

impl ClientContext for Context {
    fn stats(&self, s: Statistics) {
        let mut total = 0;
        let mut lag = self.shared.lag.lock().unwrap_or_else(|e| e.into_inner());
        lag.clear();
        for (topic, t) in &s.topics {
            for (p, ps) in &t.partitions {
                // librdkafka reports -1 for partitions it does not fetch, and an internal one
                if *p >= 0 && ps.consumer_lag >= 0 {
                    lag.insert((topic.clone(), *p), ps.consumer_lag);
                    total += ps.consumer_lag;
                }
            }
        }
        self.shared.health.total_lag.store(total, Ordering::Relaxed);
        // a broker connection that is up (not librdkafka's internal or logical handles)
        let up = s
            .brokers
            .values()
            .any(|b| b.state == "UP" && (b.source == "configured" || b.source == "learned"));
        if up {
            self.shared.health.set_link(Link::Up);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if let Some(Trouble::Link(link)) = code.and_then(trouble) {
            self.shared.health.set_link(link);
        }
        let kind = match code {
            Some(RDKafkaErrorCode::AllBrokersDown) => "all_brokers_down",
            Some(RDKafkaErrorCode::BrokerTransportFailure) => "transport",
            Some(RDKafkaErrorCode::Authentication) => "authentication",
            _ => "other",
        };
        self.metrics.kafka_errors.with_label_values(&[kind]).inc();
        if let Some(suppressed) = self.log.allow(kind) {
            tracing::warn!(kind, suppressed, "kafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for Context {
    /// Replaces rust-rdkafka's default so that a partition's starting offset can come from its
    /// checkpoint (set in the list before it is assigned), and so that state is written before
    /// a partition is given up.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.on_assign(consumer, tpl);
                tracing::info!(partitions = tpl.count(), "partitions assigned");
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.on_revoke(tpl);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!("rebalance error: {}", RDKafkaErrorCode::from(other));
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!("applying the partition assignment: {e}");
        }
        self.update_assigned(consumer);
    }
}

/// The partitions a rebalance is about.
fn partitions(tpl: &TopicPartitionList) -> Vec<Partition> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// Where rejected messages are copied, if configured.
pub(super) struct DeadLetters {
    pub topic: String,
    pub producer: ThreadedProducer<DefaultProducerContext>,
}

/// Run the consumer until `shutdown`, sending alert transitions to `alerts`. Blocking: call it
/// on its own thread.
pub fn run(
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    alerts: mpsc::Sender<Routed>,
    checkpoints: Option<Checkpointer>,
    shutdown: CancellationToken,
) -> Result<(), ConsumerError> {
    let cfg = &shared.config;
    let k = &cfg.kafka;
    // Sizes: no librdkafka fetch limit is derived from `input.max_event_bytes`. The fetch
    // limits (`fetch.max.bytes`, `max.partition.fetch.bytes`) bound whole record batches and are
    // soft (a batch larger than them is still returned, so that the consumer makes progress), and
    // `message.max.bytes` / `receive.message.max.bytes` bound protocol frames: lowering any of
    // them to one event's size would only shrink fetches, never reject a message. An oversized
    // message is rejected by `Decoder::decode` on its length, before any parsing; librdkafka's
    // defaults already bound the fetched-but-unprocessed memory (`queued.max.messages.kbytes`,
    // 64 MiB), and `kafka.options` can tune all of these.
    let instance = k
        .group_instance_id
        .iter()
        .map(|id| ("group.instance.id", id.clone()));
    let settings: Vec<(&str, String)> = [
        ("group.id", k.group_id.clone()),
        ("enable.auto.commit", "true".into()),
        ("enable.auto.offset.store", "false".into()),
        ("auto.commit.interval.ms", ms(k.commit_interval).to_string()),
        ("auto.offset.reset", "earliest".into()),
        ("statistics.interval.ms", "5000".into()),
    ]
    .into_iter()
    .chain(instance)
    .collect();
    let cc = client_config(k, &settings);
    let log = Arc::new(LogLimiter::new(Duration::from_secs(10)));
    let threads = k.worker_threads();
    let (pool, queues) = Pool::new(threads, metrics.worker_partitions.clone());
    let consumer: BaseConsumer<Context> = cc
        .create_with_context(Context {
            shared: shared.clone(),
            metrics: metrics.clone(),
            log: log.clone(),
            router: alerts,
            pool: Mutex::new(pool),
            checkpoints: Mutex::new(checkpoints),
            mute: Mutex::new(HashMap::new()),
            undelivered: Default::default(),
        })
        .map_err(ConsumerError::Create)?;
    let topics: Vec<&str> = k.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| ConsumerError::Subscribe {
            topics: k.topics.clone(),
            source,
        })?;
    let dead_letters = match &k.dead_letter_topic {
        Some(topic) => match client_config(k, &[]).create() {
            Ok(producer) => Some(DeadLetters {
                topic: topic.clone(),
                producer,
            }),
            Err(e) => {
                tracing::error!("dead-letter producer: {e}; rejected messages are only counted");
                None
            }
        },
        None => None,
    };
    let ctx = consumer.context();
    let apply = Apply {
        consumer: &consumer,
        dead_letters: dead_letters.as_ref(),
        decoder: cfg.input.decoder(),
        skew: ms(cfg.input.max_future_skew),
        lateness: ms(cfg.input.allowed_lateness),
        checkpointing: ctx.checkpoints().is_some(),
    };
    tracing::info!(topics = ?k.topics, group = %k.group_id, threads, "consuming");
    std::thread::scope(|scope| {
        for (i, queue) in queues.into_iter().enumerate() {
            let apply = &apply;
            let spawned = std::thread::Builder::new()
                .name(format!("overage-apply-{i}"))
                .spawn_scoped(scope, move || run_worker(apply, queue));
            if let Err(e) = spawned {
                // its queue is dropped with the closure: the pool sees the worker gone
                tracing::error!("starting consumer worker {i}: {e}");
            }
        }
        poll_until(&consumer, &shutdown, apply.checkpointing);
        // Hand over what was read and let the workers finish it before state is written.
        ctx.pool().close();
    });
    shared.health.shutting_down.store(true, Ordering::Relaxed);
    if let Some(ck) = ctx.checkpoints().as_mut() {
        tracing::info!("consumer stopping: writing checkpoints");
        ctx.barrier();
        for (p, s) in shared.shards() {
            ck.snapshot_sync(&p, &lock(&s));
        }
        ck.finish();
    }
    tracing::info!("consumer stopping: committing offsets");
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        // nothing stored since the last commit
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!("final commit: {e}"),
    }
    if let Some(dl) = dead_letters {
        let _ = dl.producer.flush(Duration::from_secs(5));
    }
    consumer.unsubscribe();
    Ok(())
}

/// Most messages read in one go before they are handed to the workers.
const BURST: usize = 1024;

/// The poll thread: read, hand each message to its partition's worker, and do what is due
/// (contract reloads, checkpoints, topic checks, idle partitions) until `shutdown`.
fn poll_until(consumer: &BaseConsumer<Context>, shutdown: &CancellationToken, checkpointing: bool) {
    let ctx = consumer.context();
    let shared = &ctx.shared;
    let k = &shared.config.kafka;
    let lateness = shared.config.input.allowed_lateness;
    let mut generation = shared.contracts_generation.load(Ordering::SeqCst);
    let mut last_idle_check = Instant::now();
    let mut last_topic_check = Instant::now();
    let mut topic_error = false;
    let poll_error = |e: KafkaError, topic_error: &mut bool| {
        match e.rdkafka_error_code().and_then(trouble) {
            Some(Trouble::Topic(_)) => *topic_error = true,
            Some(Trouble::Link(link)) => shared.health.set_link(link),
            None => {}
        }
        ctx.metrics.kafka_errors.with_label_values(&["poll"]).inc();
        if let Some(suppressed) = ctx.log.allow("poll") {
            tracing::warn!(suppressed, "kafka poll: {e}");
        }
    };

    while !shutdown.is_cancelled() {
        let g = shared.contracts_generation.load(Ordering::SeqCst);
        if g != generation {
            generation = g;
            let contracts = shared.contracts();
            for (_, s) in shared.shards() {
                lock(&s).set_contracts(contracts.clone());
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => poll_error(e, &mut topic_error),
            Some(Ok(first)) => {
                shared.health.set_link(Link::Up);
                // The pool is locked per message, never across a poll: a rebalance callback
                // inside `poll` needs it.
                ctx.pool().push(&first);
                drop(first);
                for _ in 1..BURST {
                    match consumer.poll(Duration::ZERO) {
                        Some(Ok(m)) => ctx.pool().push(&m),
                        Some(Err(e)) => {
                            poll_error(e, &mut topic_error);
                            break;
                        }
                        None => break,
                    }
                }
                ctx.pool().flush();
            }
        }
        if checkpointing {
            let due = ctx.checkpoints().as_mut().and_then(|ck| ck.due());
            if let Some(s) = due.as_ref().and_then(|p| shared.shard(p).map(|s| (p, s))) {
                let (p, s) = s;
                // Locked before the barrier, so no transition of this partition can be
                // handed to the router after it.
                let e = lock(&s);
                if ctx.barrier() {
                    if let Some(ck) = ctx.checkpoints().as_mut() {
                        ck.snapshot_async(p, &e);
                    }
                }
            }
        }
        // While nothing is assigned or a topic is known to be unreadable (and the brokers
        // answer, so the metadata can tell), find out which topic and why.
        if topic_error || last_topic_check.elapsed() >= TOPIC_CHECK_INTERVAL {
            last_topic_check = Instant::now();
            let h = &shared.health;
            let suspect = h.assigned.load(Ordering::Relaxed) == 0 || h.has_topic_problems();
            if topic_error || (suspect && h.link() == Link::Up) {
                check_topics(consumer, &k.topics, h);
            }
            topic_error = false;
        }
        if last_idle_check.elapsed() >= Duration::from_secs(1) {
            last_idle_check = Instant::now();
            ctx.pool().idle(lateness);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each librdkafka error readiness relies on names its own cause; errors about one broker
    /// or one request say nothing about the link as a whole.
    #[test]
    fn error_codes_name_their_cause() {
        use RDKafkaErrorCode as C;
        let link = |l| Some(Trouble::Link(l));
        let topic = |p| Some(Trouble::Topic(p));
        assert_eq!(trouble(C::AllBrokersDown), link(Link::Unreachable));
        assert_eq!(trouble(C::Authentication), link(Link::AuthenticationFailed));
        assert_eq!(
            trouble(C::SaslAuthenticationFailed),
            link(Link::AuthenticationFailed)
        );
        assert_eq!(trouble(C::SSL), link(Link::TlsFailed));
        assert_eq!(
            trouble(C::UnknownTopicOrPartition),
            topic(TopicProblem::Missing)
        );
        assert_eq!(trouble(C::UnknownTopic), topic(TopicProblem::Missing));
        assert_eq!(
            trouble(C::TopicAuthorizationFailed),
            topic(TopicProblem::NotAuthorized)
        );
        for c in [
            C::BrokerTransportFailure,
            C::Resolve,
            C::MessageTimedOut,
            C::NotCoordinator,
            C::OffsetOutOfRange,
        ] {
            assert_eq!(trouble(c), None, "{c:?}");
        }
    }
}
