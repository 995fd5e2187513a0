//! `overage run`: the long-running service.
//!
//! ```text
//!   Kafka ──► consumer thread ──(bounded channel)──► router ──► log / alerts topic / Alertmanager
//!              │ one Engine per partition
//!              └──────────── shared state ◄──── HTTP: /metrics /healthz /readyz /api/v1/...
//! ```
//!
//! One cancellation token is watched by every loop. On SIGTERM or SIGINT: the consumer stops
//! fetching, finishes the message in hand, commits its offsets and drops its sender; the router
//! hands on everything queued and flushes the alerts topic; then the HTTP server stops. The
//! whole drain is bounded by `shutdown_timeout`. SIGHUP (or a change of the file) reloads the
//! contracts; a reload that fails validation keeps the contracts in force and says why.

pub mod auth;
pub mod checkpointer;
pub mod consumer;
pub mod http;
pub mod metrics;
pub mod ratelimit;
pub mod router;
pub mod state;
pub mod status;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::contract::Contracts;
use metrics::Metrics;
use state::Shared;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Consumer(#[from] consumer::ConsumerError),
    #[error("alerts topic producer: {0}")]
    Producer(rdkafka::error::KafkaError),
    #[error("shutdown did not finish within {0:?}")]
    ShutdownTimeout(Duration),
    #[error("alertmanager sink: {0}")]
    Alertmanager(#[from] crate::sink::alertmanager::SinkError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
}

/// How the service is started (beyond its config).
#[derive(Debug, Default)]
pub struct Options {
    /// Contracts file to load and watch.
    pub contracts_path: Option<PathBuf>,
    /// Print alert transitions as readable lines on stdout (the demo).
    pub console: bool,
    /// The HTTP listener, already bound ([`http::listen`]); `None` binds `http.listen`.
    pub listener: Option<std::net::TcpListener>,
}

/// Bound on the whole drain at shutdown.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Run until `shutdown` is cancelled (the caller wires signals to it).
pub async fn run(
    config: Config,
    contracts: Contracts,
    opts: Options,
    shutdown: CancellationToken,
) -> Result<(), ServiceError> {
    let shared = Shared::new(config, Arc::new(contracts));
    let metrics = Arc::new(Metrics::new());
    let cfg = &shared.config;

    let listener = match opts.listener {
        Some(l) => l,
        None => http::listen(cfg.http.listen)?,
    };
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|source| ServiceError::Listen {
            addr: cfg.http.listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(cfg.http.listen);
    tracing::info!(%addr, "http listening");
    let http_stop = CancellationToken::new();
    let app = http::router(http::App {
        shared: shared.clone(),
        metrics: metrics.clone(),
    });
    let http_task = {
        let stop = http_stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!("http server: {e}");
            }
        })
    };

    let kafka_sink = match &cfg.kafka.alerts_topic {
        Some(topic) => {
            let producer: FutureProducer = consumer::client_config(&cfg.kafka, &[])
                .create()
                .map_err(ServiceError::Producer)?;
            Some((producer, topic.clone()))
        }
        None => None,
    };
    // The sink drains and stops by itself once the router (its only handle holder) is done;
    // its token is only a hard stop.
    let am_stop = CancellationToken::new();
    let (alertmanager, am_task) = if cfg.alerts.alertmanager.is_enabled() {
        let (handle, task) = crate::sink::alertmanager::AlertmanagerSink::spawn(
            cfg.alerts.alertmanager.clone(),
            &metrics.registry,
            am_stop.clone(),
        )?;
        (Some(handle), Some(task))
    } else {
        (None, None)
    };
    let checkpoints = checkpointer::Checkpointer::open(cfg, metrics.clone())?;
    if checkpoints.is_none() {
        tracing::warn!(
            "state.checkpoint.store is not set: state is not durable and is rebuilt from the stream after a restart"
        );
    }
    let marks = checkpoints.as_ref().map(|c| c.store().clone());
    let (tx, rx) = mpsc::channel(cfg.alerts.queue_capacity);
    let router_task = tokio::spawn(router::run(
        rx,
        shared.clone(),
        metrics.clone(),
        router::Sinks {
            kafka: kafka_sink,
            alertmanager,
            console: opts.console,
            marks,
        },
    ));

    let consumer_stop = CancellationToken::new();
    let consumer_thread = {
        let (shared, metrics, stop) = (shared.clone(), metrics.clone(), consumer_stop.clone());
        std::thread::Builder::new()
            .name("overage-consumer".into())
            .spawn(move || consumer::run(shared, metrics, tx, checkpoints, stop))
            .map_err(|source| ServiceError::Listen { addr, source })?
    };
    let consumer_done = tokio::task::spawn_blocking(move || consumer_thread.join());

    let reload_task = tokio::spawn(watch_contracts(
        opts.contracts_path.clone(),
        shared.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));

    tokio::select! {
        _ = shutdown.cancelled() => tracing::info!("shutting down"),
        r = consumer_done => {
            // The consumer only ends by itself on a fatal setup error.
            http_stop.cancel();
            reload_task.abort();
            return match r {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(e.into()),
                _ => Err(ServiceError::ShutdownTimeout(Duration::ZERO)),
            };
        }
    }
    shared.health.shutting_down.store(true, Ordering::Relaxed);
    let drain = async {
        consumer_stop.cancel();
        // The router ends once the consumer thread has dropped its sender; Alertmanager's sink
        // once the router has dropped its handle.
        let _ = router_task.await;
        if let Some(task) = am_task {
            let _ = task.await;
        }
        http_stop.cancel();
        let _ = http_task.await;
    };
    reload_task.abort();
    let drained = tokio::time::timeout(SHUTDOWN_TIMEOUT, drain).await;
    am_stop.cancel();
    drained.map_err(|_| ServiceError::ShutdownTimeout(SHUTDOWN_TIMEOUT))?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Reload contracts on SIGHUP or when the file changes; keep the old ones if the new fail.
async fn watch_contracts(
    path: Option<PathBuf>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let Some(path) = path else { return };
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut last = modified(&path);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = hangup => true,
            _ = tokio::time::sleep(Duration::from_secs(5)) => false,
        };
        let now = modified(&path);
        if !forced && now == last {
            continue;
        }
        last = now;
        match Contracts::load(&path) {
            Ok(c) => {
                tracing::info!(contracts = c.len(), path = %path.display(), "contracts reloaded");
                shared.set_contracts(Arc::new(c));
                metrics.contracts_reloads.with_label_values(&["ok"]).inc();
            }
            Err(e) => {
                tracing::error!("contracts reload failed, keeping the previous ones: {e}");
                metrics
                    .contracts_reloads
                    .with_label_values(&["error"])
                    .inc();
            }
        }
    }
}
