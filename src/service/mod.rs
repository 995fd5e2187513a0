//! `overage run`: the long-running service.
//!
//! ```text
//!   Kafka ──► poll thread ──► workers ──(bounded channel)──► router ──► sinks: log / alerts
//!                              │ one Engine per partition,             topic / Alertmanager /
//!                              │ each partition on one worker          webhook
//!                              └──── shared state ◄──── HTTP: /metrics /healthz /readyz /api/v1/...
//! ```
//!
//! One cancellation token is watched by every loop. On SIGTERM or SIGINT: the consumer stops
//! fetching, its workers apply what was read, it commits its offsets and drops its sender; the router
//! hands on everything queued and every sink delivers what it holds; then the HTTP server
//! stops. The whole drain is bounded by `shutdown_timeout`. SIGHUP (or a change of the file)
//! reloads the contracts; a reload that fails validation keeps the contracts in force and says
//! why.

pub mod auth;
pub mod checkpointer;
pub mod consumer;
pub mod http;
pub mod metrics;
pub mod ratelimit;
pub mod router;
pub mod state;
pub mod status;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
    #[error("cannot start the consumer thread: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the consumer thread panicked: {0}")]
    ConsumerPanicked(String),
    #[error("shutdown did not finish within {0:?}")]
    ShutdownTimeout(Duration),
    #[error(transparent)]
    Sink(#[from] crate::sink::BuildError),
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

    let sinks = crate::sink::build(cfg, &metrics.registry, opts.console)?;
    tokio::spawn(check_sinks(
        sinks.iter().map(|s| (s.name(), s.health())).collect(),
    ));
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
            sinks,
            marks,
            drain_timeout: SHUTDOWN_TIMEOUT,
        },
    ));

    let consumer_stop = CancellationToken::new();
    let consumer_thread = {
        let (shared, metrics, stop) = (shared.clone(), metrics.clone(), consumer_stop.clone());
        std::thread::Builder::new()
            .name("overage-consumer".into())
            .spawn(move || consumer::run(shared, metrics, tx, checkpoints, stop))
            .map_err(ServiceError::Spawn)?
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
                Ok(Err(panic)) => Err(ServiceError::ConsumerPanicked(panic_message(&*panic))),
                Err(e) => Err(ServiceError::ConsumerPanicked(e.to_string())),
            };
        }
    }
    shared.health.shutting_down.store(true, Ordering::Relaxed);
    let drain = async {
        consumer_stop.cancel();
        // The router ends once the consumer thread has dropped its sender and every sink
        // has delivered what it holds.
        let _ = router_task.await;
        http_stop.cancel();
        let _ = http_task.await;
    };
    reload_task.abort();
    let drained = tokio::time::timeout(SHUTDOWN_TIMEOUT, drain).await;
    drained.map_err(|_| ServiceError::ShutdownTimeout(SHUTDOWN_TIMEOUT))?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// What a panic carried, when it is text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// Each sink's health check, once at startup: a receiver that is down is said at once rather
/// than at the first alert. Deliveries retry either way.
async fn check_sinks(
    checks: Vec<(
        &'static str,
        crate::sink::BoxFuture<'static, Result<(), String>>,
    )>,
) {
    for (sink, check) in checks {
        match check.await {
            Ok(()) => tracing::info!(sink, "alert sink healthy"),
            Err(e) => tracing::warn!(sink, "alert sink unhealthy (deliveries will retry): {e}"),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_panic_is_reported_with_its_message() {
        let caught = std::thread::Builder::new()
            .name("panics".into())
            .spawn(|| -> () { panic!("partition {} lost its engine", 3) })
            .expect("spawns")
            .join()
            .expect_err("panicked");
        let e = ServiceError::ConsumerPanicked(panic_message(&*caught));
        assert_eq!(
            e.to_string(),
            "the consumer thread panicked: partition 3 lost its engine"
        );
        let caught = std::thread::spawn(|| -> () { panic!("static text") })
            .join()
            .expect_err("panicked");
        assert_eq!(panic_message(&*caught), "static text");
    }
}
