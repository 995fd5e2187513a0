//! The alert router: every transition the consumer emits goes to every configured sink.
//!
//! It keeps the set of firing alerts for the API, logs each transition, publishes it to the
//! Kafka alerts topic (the spec JSON, keyed by client id, so one client's transitions stay in
//! order), and hands it to Alertmanager. It ends when the consumer drops its sender, after
//! everything queued has been handed on, which is what makes shutdown lose nothing.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::mpsc;

use super::metrics::Metrics;
use super::state::Shared;
use crate::alert::{Alert, State};

/// Where transitions go besides the log.
pub struct Sinks {
    pub kafka: Option<(FutureProducer, String)>,
    pub alertmanager: Option<crate::sink::alertmanager::AlertmanagerHandle>,
    /// Print each transition as one readable line (the demo).
    pub console: bool,
}

pub async fn run(
    mut rx: mpsc::Receiver<Alert>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    sinks: Sinks,
) {
    while let Some(alert) = rx.recv().await {
        {
            let mut active = shared.active.write().unwrap_or_else(|e| e.into_inner());
            match alert.state {
                State::Firing => {
                    active.insert(alert.fingerprint.clone(), alert.clone());
                }
                State::Resolved => {
                    active.remove(&alert.fingerprint);
                }
            }
        }
        if shared.config.alerts.log {
            tracing::info!(
                target: "overage::alerts",
                alert = %alert.alert,
                state = ?alert.state,
                client_id = %alert.client_id,
                severity = alert.severity.as_str(),
                ratio = alert.ratio,
                at = %alert.at,
                fingerprint = %alert.fingerprint,
                "{}",
                alert.summary
            );
        }
        if sinks.console {
            println!("{}", alert.to_line());
        }
        if let Some((producer, topic)) = &sinks.kafka {
            let result = match serde_json::to_vec(&alert) {
                Ok(payload) => producer
                    .send(
                        FutureRecord::to(topic)
                            .key(alert.client_id.as_bytes())
                            .payload(&payload),
                        Duration::from_secs(30),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let label = if result.is_ok() { "ok" } else { "error" };
            metrics
                .alert_deliveries
                .with_label_values(&["kafka", label])
                .inc();
            if let Err(e) = result {
                tracing::error!("publishing alert to {topic}: {e}");
            }
        }
        if let Some(am) = &sinks.alertmanager {
            let label = match am.send(alert).await {
                Ok(()) => "ok",
                Err(e) => {
                    tracing::error!("queueing alert for Alertmanager: {e}");
                    "error"
                }
            };
            metrics
                .alert_deliveries
                .with_label_values(&["alertmanager", label])
                .inc();
        }
    }
    if let Some((producer, _)) = &sinks.kafka {
        if let Err(e) = producer.flush(Duration::from_secs(10)) {
            tracing::warn!("flushing the alerts topic: {e}");
        }
    }
}
