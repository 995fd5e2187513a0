//! The alert router: every transition the consumer emits goes to every configured sink.
//!
//! It keeps the set of firing alerts for the API, logs each transition, publishes it to the
//! Kafka alerts topic (the spec JSON, keyed by client id, so one client's transitions stay in
//! order), and hands it to Alertmanager. It ends when the consumer drops its sender, after
//! everything queued has been handed on, which is what makes shutdown lose nothing.
//!
//! With checkpoints, it also keeps each partition's delivered-alerts mark in the store: after a
//! restore, the consumer recomputes transitions since the snapshot and must not send again the
//! ones delivered before the restart (see `service::consumer`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::mpsc;

use super::metrics::Metrics;
use super::state::{Partition, Shared};
use crate::alert::{Alert, State};
use crate::checkpoint::Store;
use crate::time::Millis;

/// What the consumer hands the router, in order.
#[derive(Debug)]
pub enum Routed {
    /// A transition computed from partition `1`'s events.
    Alert(Box<Alert>, Partition),
    /// Every transition of the partition up to event time `through` precedes this.
    Mark {
        partition: Partition,
        through: Millis,
    },
    /// Answered once everything before it has been handed on.
    Barrier(std::sync::mpsc::Sender<()>),
    /// Alerts firing in a partition's restored state: known again to the API and Alertmanager
    /// (which is idempotent), not logged or published again.
    Restored(Vec<Alert>, Partition),
    /// Partitions this instance no longer owns: their alerts are the next owner's.
    Revoked(Vec<Partition>),
}

/// Where transitions go besides the log.
pub struct Sinks {
    pub kafka: Option<(FutureProducer, String)>,
    pub alertmanager: Option<crate::sink::alertmanager::AlertmanagerHandle>,
    /// Print each transition as one readable line (the demo).
    pub console: bool,
    /// Where delivered-alerts marks are kept (with checkpoints).
    pub marks: Option<Store>,
}

pub async fn run(
    mut rx: mpsc::Receiver<Routed>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    sinks: Sinks,
) {
    // Partition of each firing alert, to hand them over on revoke.
    let mut owner: HashMap<String, Partition> = HashMap::new();
    let mut marked: HashMap<Partition, Millis> = HashMap::new();
    while let Some(item) = rx.recv().await {
        let (alert, partition) = match item {
            Routed::Alert(a, p) => (*a, p),
            Routed::Barrier(ack) => {
                let _ = ack.send(());
                continue;
            }
            Routed::Mark { partition, through } => {
                let (Some(store), true) = (
                    &sinks.marks,
                    marked.get(&partition).is_none_or(|m| through > *m),
                ) else {
                    continue;
                };
                match store.put_mark(&partition.0, partition.1, through).await {
                    Ok(()) => {
                        marked.insert(partition, through);
                    }
                    Err(e) => tracing::warn!(
                        "recording delivered alerts: {e}; after a crash they may be sent twice"
                    ),
                }
                continue;
            }
            Routed::Restored(alerts, partition) => {
                {
                    let mut active = shared.active.write().unwrap_or_else(|e| e.into_inner());
                    for a in &alerts {
                        active.insert(a.fingerprint.clone(), a.clone());
                        owner.insert(a.fingerprint.clone(), partition.clone());
                    }
                }
                if let Some(am) = &sinks.alertmanager {
                    for a in alerts {
                        if let Err(e) = am.send(a).await {
                            tracing::error!("queueing a restored alert for Alertmanager: {e}");
                        }
                    }
                }
                continue;
            }
            Routed::Revoked(partitions) => {
                let mut gone = Vec::new();
                {
                    let mut active = shared.active.write().unwrap_or_else(|e| e.into_inner());
                    owner.retain(|fp, p| {
                        let keep = !partitions.contains(p);
                        if !keep {
                            active.remove(fp);
                            gone.push(fp.clone());
                        }
                        keep
                    });
                }
                for p in &partitions {
                    marked.remove(p);
                }
                if let (Some(am), false) = (&sinks.alertmanager, gone.is_empty()) {
                    if let Err(e) = am.forget(gone).await {
                        tracing::warn!("handing over alerts in Alertmanager: {e}");
                    }
                }
                continue;
            }
        };
        {
            let mut active = shared.active.write().unwrap_or_else(|e| e.into_inner());
            match alert.state {
                State::Firing => {
                    active.insert(alert.fingerprint.clone(), alert.clone());
                    owner.insert(alert.fingerprint.clone(), partition);
                }
                State::Resolved => {
                    active.remove(&alert.fingerprint);
                    owner.remove(&alert.fingerprint);
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
