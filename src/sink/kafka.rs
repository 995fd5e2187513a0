//! The Kafka alerts-topic sink: each transition as the spec's alert JSON, keyed by client id
//! so one client's transitions stay in order (one partition).
//!
//! Records are handed to librdkafka and their delivery reports awaited in the background, so a
//! slow broker costs no more than librdkafka's own buffer: the sink's queue fills only once
//! that buffer is full (`queue.buffering.max.messages`), and only then does sending wait.
//! librdkafka retries by itself until `message.timeout.ms`; a record it gives up on is counted
//! and logged. One request in flight per broker connection keeps those retries from
//! reordering a client's transitions (overridable in `kafka.options`).

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::metrics::{gauge, DeliveryMetrics, Reason};
use super::retry::{jittered, Backoff, LogGate};
use super::{AlertSink, BoxFuture, Queue, Queued, Stopped};
use crate::alert::Alert;
use crate::config::KafkaConfig;

pub const SINK: &str = "kafka";

/// While librdkafka's buffer is full and no delivery is pending to free it.
const QUEUE_FULL_BACKOFF: Backoff = Backoff {
    start: Duration::from_millis(50),
    cap: Duration::from_secs(1),
};
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KafkaSinkError {
    #[error("alerts topic producer: {0}")]
    Producer(#[source] KafkaError),
    #[error("kafka sink: registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(
        "kafka sink: invalid configuration: alerts.queue_capacity must be between 1 and {max}"
    )]
    QueueCapacity { max: usize },
}

pub struct KafkaSink {
    queue: Queue,
    producer: FutureProducer,
    topic: String,
}

impl KafkaSink {
    /// Create the producer and start the delivery task (inside a Tokio runtime).
    pub fn start(
        kafka: &KafkaConfig,
        topic: &str,
        queue_capacity: usize,
        registry: &prometheus::Registry,
    ) -> Result<KafkaSink, KafkaSinkError> {
        let max = super::MAX_QUEUE_CAPACITY;
        if queue_capacity == 0 || queue_capacity > max {
            return Err(KafkaSinkError::QueueCapacity { max });
        }
        let producer: FutureProducer = crate::service::consumer::client_config(
            kafka,
            &[("max.in.flight.requests.per.connection", "1".into())],
        )
        .create()
        .map_err(KafkaSinkError::Producer)?;
        let metrics = DeliveryMetrics::register(
            registry,
            SINK,
            &[Reason::Connect, Reason::Timeout, Reason::Rejected],
        )?;
        let (tx, rx) = mpsc::channel(queue_capacity);
        let task = tokio::spawn(run(producer.clone(), topic.to_owned(), rx, metrics));
        Ok(KafkaSink {
            queue: Queue::new(tx, task, SINK),
            producer,
            topic: topic.to_owned(),
        })
    }
}

impl AlertSink for KafkaSink {
    fn name(&self) -> &'static str {
        SINK
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), Stopped>> {
        Box::pin(self.queue.send(alert))
    }

    /// Every record queued before has its delivery report.
    fn settled(&self) -> BoxFuture<'_, Result<(), Stopped>> {
        Box::pin(self.queue.settled())
    }

    fn flush(self: Box<Self>, deadline: Instant) -> BoxFuture<'static, ()> {
        let KafkaSink { queue, .. } = *self;
        Box::pin(queue.flush(deadline))
    }

    /// The topic exists and its partitions have leaders.
    fn health(&self) -> BoxFuture<'static, Result<(), String>> {
        let (producer, topic) = (self.producer.clone(), self.topic.clone());
        Box::pin(async move {
            let checked = tokio::task::spawn_blocking(move || {
                let md = producer
                    .client()
                    .fetch_metadata(Some(&topic), HEALTH_TIMEOUT)
                    .map_err(|e| e.to_string())?;
                match md.topics().iter().find(|t| t.name() == topic) {
                    Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
                    Some(t) => Err(format!("topic {topic}: {:?}", t.error())),
                    None => Err(format!("topic {topic} not found")),
                }
            })
            .await;
            checked.unwrap_or_else(|e| Err(e.to_string()))
        })
    }
}

/// What a delivery report says.
type Report = Result<(), (Reason, String)>;

async fn run(
    producer: FutureProducer,
    topic: String,
    mut rx: mpsc::Receiver<Queued>,
    metrics: DeliveryMetrics,
) {
    let mut reports: JoinSet<Report> = JoinSet::new();
    let mut log = LogGate::default();
    loop {
        tokio::select! {
            biased;
            Some(done) = reports.join_next(), if !reports.is_empty() => {
                account(done, &metrics, &mut log, &topic);
            }
            next = rx.recv() => match next {
                None => break,
                Some(Queued::Alert(alert)) => {
                    produce(&producer, &topic, &alert, &mut reports, &metrics, &mut log).await;
                }
                Some(Queued::Settle(done)) => {
                    while let Some(report) = reports.join_next().await {
                        account(report, &metrics, &mut log, &topic);
                    }
                    let _ = done.send(());
                }
            },
        }
        metrics.queue_depth.set(gauge(rx.len()));
        metrics.pending.set(gauge(reports.len()));
    }
    // Every handle is gone: what was queued is in librdkafka; wait for its reports.
    while let Some(done) = reports.join_next().await {
        account(done, &metrics, &mut log, &topic);
    }
    metrics.pending.set(0);
    if let Err(e) = producer.flush(Duration::from_secs(1)) {
        tracing::warn!(sink = SINK, "flushing the alerts topic: {e}");
    }
}

/// Hand one transition to librdkafka; while its buffer is full, wait for reports to free it.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    alert: &Alert,
    reports: &mut JoinSet<Report>,
    metrics: &DeliveryMetrics,
    log: &mut LogGate,
) {
    let payload = match serde_json::to_vec(alert) {
        Ok(p) => p,
        Err(e) => {
            metrics.error.inc();
            metrics.failure(Reason::Rejected).inc();
            tracing::error!(sink = SINK, "encoding alert: {e}");
            return;
        }
    };
    let mut backoff = Duration::ZERO;
    loop {
        let record = FutureRecord::to(topic)
            .key(alert.client_id.as_bytes())
            .payload(&payload);
        match producer.send_result(record) {
            Ok(delivery) => {
                reports.spawn(async move {
                    match delivery.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((e, _))) => Err(classify(&e)),
                        Err(_) => Err((Reason::Connect, "producer closed".into())),
                    }
                });
                return;
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                match reports.join_next().await {
                    Some(done) => account(done, metrics, log, topic),
                    None => {
                        backoff = QUEUE_FULL_BACKOFF.next(backoff);
                        tokio::time::sleep(jittered(backoff)).await;
                    }
                }
            }
            Err((e, _)) => {
                account(Ok(Err(classify(&e))), metrics, log, topic);
                return;
            }
        }
    }
}

fn classify(e: &KafkaError) -> (Reason, String) {
    let reason = match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageTimedOut | RDKafkaErrorCode::RequestTimedOut) => {
            Reason::Timeout
        }
        Some(
            RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::NetworkException,
        ) => Reason::Connect,
        _ => Reason::Rejected,
    };
    (reason, e.to_string())
}

/// Count (and log) one delivery report.
fn account(
    done: Result<Report, tokio::task::JoinError>,
    metrics: &DeliveryMetrics,
    log: &mut LogGate,
    topic: &str,
) {
    let outcome = done.unwrap_or_else(|e| Err((Reason::Connect, e.to_string())));
    match outcome {
        Ok(()) => metrics.ok.inc(),
        Err((reason, detail)) => {
            metrics.error.inc();
            metrics.failure(reason).inc();
            if let Some(suppressed) = log.allow(Instant::now()) {
                tracing::error!(
                    sink = SINK,
                    reason = reason.as_str(),
                    suppressed,
                    "publishing alert to {topic}: {detail}"
                );
            }
        }
    }
}
