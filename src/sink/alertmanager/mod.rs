//! Alertmanager v2 sink: alert transitions → `POST {url}/api/v2/alerts`.
//!
//! On-call routing, silences, inhibition and Grafana alerting already speak Alertmanager, so
//! overage talks to it exactly as Prometheus does rather than inventing a paging path:
//!
//! - Alertmanager has no notion of "firing until told otherwise". A firing alert carries an
//!   `endsAt` a few re-send intervals ahead and is re-sent (all firing alerts, every
//!   `resend_interval`) to keep it alive; if overage dies, Alertmanager resolves its alerts by
//!   itself once `endsAt` passes.
//! - A resolved transition is sent with `endsAt` at the event time (never in the future, or
//!   Alertmanager would keep it active) and dropped from the firing set once delivered.
//! - Every URL gets every alert (HA pairs deduplicate among themselves); each URL has its own
//!   delivery state and backoff, so one dead replica does not hold back the other.
//!
//! Nothing is lost while an Alertmanager is down: per URL, what is owed is one entry per
//! fingerprint (the latest firing transition and the latest undelivered resolve), so the state
//! stays bounded by the number of distinct alerts however long the outage lasts. Requests run
//! in their own tasks, so ingesting transitions never waits on the network; the queue in front
//! of the task only fills (and [`AlertmanagerHandle::send`] only waits) if the task itself
//! cannot keep up.

mod config;
mod mapping;
mod state;
mod worker;

use prometheus::IntGauge;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use self::config::AlertmanagerConfig;
pub use self::mapping::alertname;
use self::worker::Worker;
use crate::alert::Alert;
use crate::sink::http::deliver;
pub use crate::sink::http::redact_url;
use crate::sink::metrics::{DeliveryMetrics, Reason};
use crate::sink::{join_by, AlertSink, BoxFuture, FieldError, Stopped};

/// The `sink` label on this sink's metrics.
pub const SINK: &str = "alertmanager";

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("alertmanager sink: invalid configuration: {0}")]
    Config(FieldError),
    #[error("alertmanager sink: registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("alertmanager sink: building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("alertmanager sink: must be started inside a Tokio runtime")]
    NoRuntime,
    /// The delivery task has stopped (shutdown); the transition was not queued.
    #[error("alertmanager sink has stopped; transition not queued")]
    Closed,
}

/// The sink: a handle on the delivery task, and the task.
pub struct AlertmanagerSink {
    handle: AlertmanagerHandle,
    task: JoinHandle<()>,
    /// Hard stop once the drain's deadline has passed.
    stop: CancellationToken,
    /// For the health check: the base URLs and a client.
    urls: Vec<String>,
    client: reqwest::Client,
}

impl AlertmanagerSink {
    /// Start the delivery task. Returns a handle to send transitions and the task's JoinHandle.
    ///
    /// The task ends when `shutdown` is cancelled or every handle is dropped: it then delivers
    /// what is queued and owed (bounded by `timeout`) and exits. Firing alerts are deliberately
    /// not resolved at shutdown: a restart must not page-resolve-page; if overage stays down,
    /// Alertmanager times them out after 4 × `resend_interval`.
    ///
    /// With no URLs configured the task accepts and discards transitions.
    pub fn spawn(
        cfg: AlertmanagerConfig,
        registry: &prometheus::Registry,
        shutdown: CancellationToken,
    ) -> Result<(AlertmanagerHandle, tokio::task::JoinHandle<()>), SinkError> {
        cfg.validate().map_err(SinkError::Config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SinkError::NoRuntime)?;
        let metrics = DeliveryMetrics::register(registry, SINK, &Reason::HTTP)?;
        let client = client(&cfg)?;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let handle = AlertmanagerHandle {
            tx,
            depth: metrics.queue_depth.clone(),
        };
        let worker = Worker::new(cfg, client, metrics, rx);
        let task = runtime.spawn(worker.run(shutdown));
        Ok((handle, task))
    }

    /// Start the delivery task as an [`AlertSink`], stopped by [`AlertSink::flush`].
    pub fn start(
        cfg: AlertmanagerConfig,
        registry: &prometheus::Registry,
    ) -> Result<AlertmanagerSink, SinkError> {
        let stop = CancellationToken::new();
        let urls = cfg.urls.clone();
        let client = client(&cfg)?;
        let (handle, task) = AlertmanagerSink::spawn(cfg, registry, stop.clone())?;
        Ok(AlertmanagerSink {
            handle,
            task,
            stop,
            urls,
            client,
        })
    }
}

fn client(cfg: &AlertmanagerConfig) -> Result<reqwest::Client, SinkError> {
    reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .build()
        .map_err(SinkError::Client)
}

impl AlertSink for AlertmanagerSink {
    fn name(&self) -> &'static str {
        SINK
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), Stopped>> {
        Box::pin(async move {
            self.handle
                .send(alert.clone())
                .await
                .map_err(|_| Stopped(SINK))
        })
    }

    /// Alertmanager is idempotent, and a restored firing alert must be re-sent to stay alive.
    fn restored<'a>(&'a self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), Stopped>> {
        Box::pin(async move {
            for a in alerts {
                self.handle
                    .send(a.clone())
                    .await
                    .map_err(|_| Stopped(SINK))?;
            }
            Ok(())
        })
    }

    fn forget<'a>(&'a self, fingerprints: &'a [String]) -> BoxFuture<'a, Result<(), Stopped>> {
        Box::pin(async move {
            self.handle
                .forget(fingerprints.to_vec())
                .await
                .map_err(|_| Stopped(SINK))
        })
    }

    fn flush(self: Box<Self>, deadline: Instant) -> BoxFuture<'static, ()> {
        let AlertmanagerSink {
            handle, task, stop, ..
        } = *self;
        // The task drains and ends by itself once its last handle is gone.
        drop(handle);
        Box::pin(async move {
            join_by(task, deadline, SINK).await;
            stop.cancel();
        })
    }

    /// Every URL answers `GET /-/healthy`.
    fn health(&self) -> BoxFuture<'static, Result<(), String>> {
        let (urls, client) = (self.urls.clone(), self.client.clone());
        Box::pin(async move {
            let mut failing = Vec::new();
            for u in &urls {
                let probe = format!("{}/-/healthy", u.trim_end_matches('/'));
                let request = client.get(probe);
                if let Err(f) = deliver(request).await {
                    failing.push(format!("{}: {}", redact_url(u), f.detail));
                }
            }
            match failing.is_empty() {
                true => Ok(()),
                false => Err(failing.join("; ")),
            }
        })
    }
}

/// What the delivery task is told.
#[derive(Debug)]
enum Command {
    Transition(Box<Alert>),
    /// Stop re-sending these firing alerts: another instance owns them now.
    Forget(Vec<String>),
}

/// Sends transitions to the delivery task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertmanagerHandle {
    tx: mpsc::Sender<Command>,
    depth: IntGauge,
}

impl AlertmanagerHandle {
    /// Queue one transition, waiting for space when the queue is full (never drops).
    /// Fails only once the sink has stopped.
    pub async fn send(&self, alert: Alert) -> Result<(), SinkError> {
        self.tx
            .send(Command::Transition(Box::new(alert)))
            .await
            .map_err(|_| SinkError::Closed)?;
        let queued = self.tx.max_capacity().saturating_sub(self.tx.capacity());
        self.depth.set(i64::try_from(queued).unwrap_or(i64::MAX));
        Ok(())
    }
}

impl AlertmanagerHandle {
    /// Stop re-sending these firing alerts (by fingerprint) without resolving them: their
    /// partition moved to another instance, which announces them from now on.
    pub async fn forget(&self, fingerprints: Vec<String>) -> Result<(), SinkError> {
        self.tx
            .send(Command::Forget(fingerprints))
            .await
            .map_err(|_| SinkError::Closed)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use prometheus::Registry;

    use super::*;
    use crate::alert::State;
    use crate::time::Millis;

    pub(crate) const T0: Millis = 1_789_050_000_000; // 2026-09-10T14:20:00Z

    pub(crate) fn alert(state: State, client: &str, at: Millis, since: Millis) -> Alert {
        Alert::example(state, client, at, since)
    }

    pub(crate) fn cfg() -> AlertmanagerConfig {
        AlertmanagerConfig {
            urls: vec!["http://127.0.0.1:9093".into()],
            ..AlertmanagerConfig::default()
        }
    }

    #[tokio::test]
    async fn sends_fail_after_shutdown() {
        let r = Registry::new();
        let stop = CancellationToken::new();
        let mut c = cfg();
        c.timeout = Duration::from_millis(200);
        let (h, task) = AlertmanagerSink::spawn(c, &r, stop.clone()).expect("spawns");
        stop.cancel();
        task.await.expect("task ends cleanly");
        assert!(matches!(
            h.send(alert(State::Firing, "a", T0, T0)).await,
            Err(SinkError::Closed)
        ));
    }

    #[test]
    fn spawn_rejects_invalid_config_and_needs_a_runtime() {
        let r = Registry::new();
        let mut c = cfg();
        c.queue_capacity = 0;
        assert!(matches!(
            AlertmanagerSink::spawn(c, &r, CancellationToken::new()),
            Err(SinkError::Config(_))
        ));
        assert!(matches!(
            AlertmanagerSink::spawn(cfg(), &r, CancellationToken::new()),
            Err(SinkError::NoRuntime)
        ));
    }

    #[test]
    fn passwords_in_urls_are_redacted_in_logs() {
        let c = AlertmanagerConfig {
            urls: vec![
                "http://ops:hunter2-secret@am:9093".into(),
                "http://ops:hunter2-secret@am:9093/".into(),
            ],
            ..Default::default()
        };
        assert!(!format!("{:?}", worker::Target::new(&c.urls[0]).shown).contains("hunter2"));
    }
}
