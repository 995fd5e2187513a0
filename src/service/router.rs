//! The alert router: every transition the consumer emits goes to every configured sink.
//!
//! It keeps the set of firing alerts for the API and hands each transition, in order, to every
//! sink `sink::build` made (log, Kafka alerts topic, Alertmanager, webhook: it knows none by
//! name). Handing on is queueing: each sink delivers from its own task, so a slow receiver
//! holds back only its own queue. It ends when the consumer drops its sender, after
//! everything queued has been handed on, then drains every sink, which is what makes shutdown
//! lose nothing.
//!
//! With checkpoints, it also keeps each partition's delivered-alerts mark in the store: after a
//! restore, the consumer recomputes transitions since the snapshot and must not send again the
//! ones delivered before the restart (see `service::consumer`). A mark is written, and a
//! checkpoint barrier answered, only once every transition before it is settled with every
//! sink ([`AlertSink::settled`]: the Kafka topic's delivery reports are in, the webhook has
//! delivered or given up), so a crash after a checkpoint cannot lose a transition in flight.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::metrics::Metrics;
use super::state::{Partition, Shared};
use crate::alert::{Alert, State};
use crate::checkpoint::Store;
use crate::sink::AlertSink;
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
    /// Alerts firing in a partition's restored state: known again to the API and to the sinks
    /// that keep alerts alive (see `AlertSink::restored`), not logged or published again.
    Restored(Vec<Alert>, Partition),
    /// Partitions this instance no longer owns: their alerts are the next owner's.
    Revoked(Vec<Partition>),
}

/// Where transitions go.
pub struct Sinks {
    /// In the order each transition is handed to them.
    pub sinks: Vec<Box<dyn AlertSink>>,
    /// Where delivered-alerts marks are kept (with checkpoints).
    pub marks: Option<Store>,
    /// How long the sinks may take to drain once the consumer is done.
    pub drain_timeout: std::time::Duration,
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
                settle(&sinks.sinks).await;
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
                settle(&sinks.sinks).await;
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
                for sink in &sinks.sinks {
                    if let Err(e) = sink.restored(&alerts).await {
                        tracing::error!("queueing restored alerts: {e}");
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
                if !gone.is_empty() {
                    for sink in &sinks.sinks {
                        if let Err(e) = sink.forget(&gone).await {
                            tracing::warn!("handing over alerts: {e}");
                        }
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
        for sink in &sinks.sinks {
            let label = match sink.send(&alert).await {
                Ok(()) => "ok",
                Err(e) => {
                    tracing::error!("queueing alert: {e}");
                    "error"
                }
            };
            metrics
                .alert_deliveries
                .with_label_values(&[sink.name(), label])
                .inc();
        }
    }
    drain(sinks.sinks, Instant::now() + sinks.drain_timeout).await;
}

/// Let every sink deliver what it holds, all at once, by `deadline`.
/// Wait until every sink has settled what it was handed (see [`AlertSink::settled`]).
async fn settle(sinks: &[Box<dyn AlertSink>]) {
    for sink in sinks {
        if let Err(e) = sink.settled().await {
            tracing::warn!("waiting for deliveries to settle: {e}");
        }
    }
}

pub async fn drain(sinks: Vec<Box<dyn AlertSink>>, deadline: Instant) {
    let mut flushing = tokio::task::JoinSet::new();
    for sink in sinks {
        flushing.spawn(sink.flush(deadline));
    }
    while flushing.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    use crate::config::Config;
    use crate::contract::Contracts;
    use crate::sink::{BoxFuture, Stopped};

    type Log = Arc<Mutex<Vec<String>>>;

    /// Records what it is told; `keeps_alive` overrides the trait's defaults as Alertmanager
    /// does.
    struct Recording {
        name: &'static str,
        keeps_alive: bool,
        log: Log,
    }

    impl Recording {
        fn note(&self, what: String) {
            self.log
                .lock()
                .expect("log")
                .push(format!("{} {what}", self.name));
        }
    }

    impl AlertSink for Recording {
        fn name(&self) -> &'static str {
            self.name
        }

        fn send<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), Stopped>> {
            self.note(format!("send {} {:?}", alert.client_id, alert.state));
            Box::pin(std::future::ready(Ok(())))
        }

        fn restored<'a>(&'a self, alerts: &'a [Alert]) -> BoxFuture<'a, Result<(), Stopped>> {
            if self.keeps_alive {
                self.note(format!("restored {}", alerts.len()));
            }
            Box::pin(std::future::ready(Ok(())))
        }

        fn forget<'a>(&'a self, fps: &'a [String]) -> BoxFuture<'a, Result<(), Stopped>> {
            if self.keeps_alive {
                self.note(format!("forget {}", fps.len()));
            }
            Box::pin(std::future::ready(Ok(())))
        }

        fn flush(self: Box<Self>, _deadline: Instant) -> BoxFuture<'static, ()> {
            self.note("flush".into());
            Box::pin(std::future::ready(()))
        }
    }

    fn alert(client: &str, state: State) -> Alert {
        let t = |s| crate::time::parse_rfc3339(s).unwrap();
        Alert::example(
            state,
            client,
            t("2026-09-10T14:20:00Z"),
            t("2026-09-10T14:00:00Z"),
        )
    }

    #[tokio::test]
    async fn every_sink_gets_every_transition_in_order_and_is_drained_at_the_end() {
        let log: Log = Arc::default();
        let sinks: Vec<Box<dyn AlertSink>> = vec![
            Box::new(Recording {
                name: "first",
                keeps_alive: false,
                log: log.clone(),
            }),
            Box::new(Recording {
                name: "second",
                keeps_alive: true,
                log: log.clone(),
            }),
        ];
        let shared = Shared::new(Config::default(), Arc::new(Contracts::default()));
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = mpsc::channel(16);
        let p: Partition = ("usage".into(), 0);
        for item in [
            Routed::Restored(vec![alert("r", State::Firing)], p.clone()),
            Routed::Alert(Box::new(alert("a", State::Firing)), p.clone()),
            Routed::Alert(Box::new(alert("a", State::Resolved)), p.clone()),
            Routed::Alert(Box::new(alert("b", State::Firing)), p.clone()),
            Routed::Revoked(vec![p.clone()]),
        ] {
            tx.send(item).await.expect("queued");
        }
        drop(tx);
        let routed = Sinks {
            sinks,
            marks: None,
            drain_timeout: std::time::Duration::from_secs(5),
        };
        run(rx, shared.clone(), metrics.clone(), routed).await;
        let got = log.lock().expect("log").clone();
        assert_eq!(
            got,
            [
                "second restored 1",
                "first send a Firing",
                "second send a Firing",
                "first send a Resolved",
                "second send a Resolved",
                "first send b Firing",
                "second send b Firing",
                // the restored alert and b were firing in the revoked partition
                "second forget 2",
                "first flush",
                "second flush",
            ]
        );
        assert!(shared.active.read().expect("active").is_empty());
        for sink in ["first", "second"] {
            let sent = metrics.alert_deliveries.with_label_values(&[sink, "ok"]);
            assert_eq!(sent.get(), 3, "{sink}");
        }
    }
}
