//! Sinks: where alert transitions go once the engine has produced them.
//!
//! The engine is synchronous and clock-free; delivering alerts is neither (networks fail,
//! receivers restart, re-sends run on the wall clock). Each sink is an [`AlertSink`]: a handle
//! in front of the sink's own task and bounded queue, with its own retries and backoff, so a
//! slow or unreachable receiver holds back only its own queue. A sink's queue fills only once
//! its task cannot keep up for `queue_capacity` transitions; then sending waits
//! (backpressure) instead of losing transitions or blocking detection logic on I/O.
//!
//! The router (`service::router`) fans every transition out to the sinks [`build`] made from
//! the config, and knows none of them by name. Adding a sink is one module here implementing
//! [`AlertSink`], one field in `config::AlertsConfig`, and one line in [`build`].

pub mod alertmanager;
pub mod http;
pub mod kafka;
pub mod log;
pub mod metrics;
pub mod retry;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::alert::Alert;
use crate::config::{AlertsConfig, Config};

/// Upper bound of every sink's `queue_capacity`: tokio's bounded channel panics above its
/// semaphore's limit; stay well below it.
pub const MAX_QUEUE_CAPACITY: usize = 10_000_000;

/// A boxed future, so that [`AlertSink`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A config field that failed validation, relative to the section that checked it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// `urls[1]`, `timeout`, ...: the section's path is prefixed by each caller outwards.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error seen from the enclosing section: `urls[1]` → `alertmanager.urls[1]`.
    pub fn within(mut self, section: &str) -> FieldError {
        self.field = format!("{section}.{}", self.field);
        self
    }
}

/// What the queue of a sink with its own delivery task carries: transitions, and fences
/// answered once everything queued before them is settled ([`AlertSink::settled`]).
pub(crate) enum Queued {
    Alert(Box<Alert>),
    Settle(tokio::sync::oneshot::Sender<()>),
}

/// The front of a sink that delivers from its own task (the Kafka topic, the webhook): its
/// queue and its task, and what `send`, `settled` and `flush` do with them.
pub(crate) struct Queue {
    tx: tokio::sync::mpsc::Sender<Queued>,
    task: JoinHandle<()>,
    sink: &'static str,
}

impl Queue {
    pub(crate) fn new(
        tx: tokio::sync::mpsc::Sender<Queued>,
        task: JoinHandle<()>,
        sink: &'static str,
    ) -> Queue {
        Queue { tx, task, sink }
    }

    /// Queue one transition (waits while the queue is full).
    pub(crate) async fn send(&self, alert: &Alert) -> Result<(), Stopped> {
        self.tx
            .send(Queued::Alert(Box::new(alert.clone())))
            .await
            .map_err(|_| Stopped(self.sink))
    }

    /// [`AlertSink::settled`]: queue a fence and wait for the task to answer it.
    pub(crate) async fn settled(&self) -> Result<(), Stopped> {
        let (done, answered) = tokio::sync::oneshot::channel();
        self.tx
            .send(Queued::Settle(done))
            .await
            .map_err(|_| Stopped(self.sink))?;
        answered.await.map_err(|_| Stopped(self.sink))
    }

    /// [`AlertSink::flush`]: close the queue and let the task deliver the rest, by `deadline`.
    pub(crate) async fn flush(self, deadline: Instant) {
        drop(self.tx);
        join_by(self.task, deadline, self.sink).await;
    }
}

/// The sink's task has stopped (shutdown): the transition was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} sink has stopped; transition not queued")]
pub struct Stopped(pub &'static str);

/// One destination of alert transitions.
///
/// Methods queue and return; the delivery happens in the sink's own task. They wait only
/// while the sink's queue is full, and fail only once the sink has stopped.
pub trait AlertSink: Send + Sync {
    /// The `sink` label of its metrics and log lines.
    fn name(&self) -> &'static str;

    /// Queue one transition.
    fn send<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), Stopped>>;

    /// Alerts firing in a partition's restored state. They were delivered before the
    /// restart, so only a sink whose receiver is idempotent and needs them to stay alive
    /// (Alertmanager's re-sends) takes them; by default they are ignored.
    fn restored<'a>(&'a self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), Stopped>> {
        let _ = alerts;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Firing alerts (by fingerprint) whose partition moved to another instance: stop
    /// keeping them alive, without resolving them. By default nothing is kept alive.
    fn forget<'a>(&'a self, fingerprints: &'a [String]) -> BoxFuture<'a, Result<(), Stopped>> {
        let _ = fingerprints;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Wait until every transition queued before this call is settled with the receiver
    /// (delivered, or given up on and counted). The router waits for it before a
    /// delivered-alerts mark or a checkpoint covers those transitions, so a crash after the
    /// checkpoint cannot lose one still in flight. By default a transition is settled once
    /// queued: the log writes synchronously, and Alertmanager's firing alerts are announced
    /// again from the restored state.
    fn settled(&self) -> BoxFuture<'_, Result<(), Stopped>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Stop accepting, deliver what is queued and owed, and end, by `deadline` at the
    /// latest (then whatever is left is abandoned, and logged).
    fn flush(self: Box<Self>, deadline: Instant) -> BoxFuture<'static, ()>;

    /// Whether the receiver is reachable now (vector's health check: run once at startup
    /// and logged; a failing check does not stop the service, deliveries retry). `Err`
    /// says why, with no secrets in it.
    fn health(&self) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Alertmanager(#[from] alertmanager::SinkError),
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaSinkError),
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookError),
}

/// Start every sink the config enables, in the order transitions are handed to them.
/// `console` prints each transition as one readable line on stdout (the demo).
/// Must run inside a Tokio runtime.
pub fn build(
    config: &Config,
    registry: &prometheus::Registry,
    console: bool,
) -> Result<Vec<Box<dyn AlertSink>>, BuildError> {
    let alerts = &config.alerts;
    let mut sinks: Vec<Box<dyn AlertSink>> = Vec::new();
    if alerts.log || console {
        sinks.push(Box::new(log::LogSink::new(alerts.log, console)));
    }
    if let Some(topic) = &config.kafka.alerts_topic {
        sinks.push(Box::new(kafka::KafkaSink::start(
            &config.kafka,
            topic,
            alerts.queue_capacity,
            registry,
        )?));
    }
    if alerts.alertmanager.is_enabled() {
        sinks.push(Box::new(alertmanager::AlertmanagerSink::start(
            alerts.alertmanager.clone(),
            registry,
        )?));
    }
    if alerts.webhook.is_enabled() {
        sinks.push(Box::new(webhook::WebhookSink::start(
            alerts.webhook.clone(),
            registry,
        )?));
    }
    Ok(sinks)
}

/// The sinks' sections of `[alerts]`: checked and redacted here, so that `config.rs` needs
/// no change when a sink is added.
impl AlertsConfig {
    /// Check every sink's section; the field is relative to `alerts`.
    pub fn validate_sinks(&self) -> Result<(), FieldError> {
        self.alertmanager
            .validate()
            .map_err(|e| e.within("alertmanager"))?;
        self.webhook.validate().map_err(|e| e.within("webhook"))
    }

    /// Hide the sinks' secrets, for printing the config.
    pub fn redact_sinks(&mut self) {
        for u in &mut self.alertmanager.urls {
            *u = http::redact_url(u);
        }
        self.webhook = self.webhook.redacted();
    }
}

/// Wait for a sink's task to end by `deadline`, else abort it; either way say so if it did
/// not end cleanly.
pub(crate) async fn join_by(task: JoinHandle<()>, deadline: Instant, sink: &'static str) {
    let abort = task.abort_handle();
    match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(sink, "delivery task failed: {e}"),
        Err(_) => {
            abort.abort();
            tracing::warn!(
                sink,
                "not drained by the shutdown deadline; the rest is dropped"
            );
        }
    }
}
