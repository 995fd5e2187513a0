//! Prometheus metrics of the service, all named `overage_*`, all with bounded label sets.
//!
//! The engines count events and alerts themselves (plain integers on the hot path); those
//! counts are copied into Prometheus counters when `/metrics` is scraped, by incrementing each
//! counter by what it is behind. Per-client series exist only for contracted clients, capped at
//! `metrics.max_client_series` (the highest ratios win).

use std::sync::atomic::Ordering;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::state::Shared;
use crate::alert::AlertKind;

/// Every `kind` of `overage_kafka_errors_total` (the consumer uses no other).
pub const KAFKA_ERROR_KINDS: [&str; 6] = [
    "all_brokers_down",
    "transport",
    "authentication",
    "other",
    "poll",
    "dead_letter",
];

pub struct Metrics {
    pub registry: Registry,
    events: IntCounterVec,
    alerts: IntCounterVec,
    evictions: IntCounterVec,
    clients: IntGauge,
    sparse_clients: IntGauge,
    packed_clients: IntGauge,
    alerts_active: IntGauge,
    lag: IntGaugeVec,
    ratio: prometheus::GaugeVec,
    pub processing: Histogram,
    pub dead_letters: IntCounter,
    pub kafka_errors: IntCounterVec,
    pub contracts_reloads: IntCounterVec,
    pub alert_deliveries: IntCounterVec,
    pub assigned_partitions: IntGauge,
    pub worker_partitions: IntGaugeVec,
    pub checkpoints: super::checkpointer::CheckpointMetrics,
}

pub(super) fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    // Names are static and unique, so registration cannot fail but for a programming error,
    // which the tests catch; never panic in the service for it.
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::error!("metric registration failed: {e}");
    }
    c
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        // (series that only appear on their first increment are invisible to `increase()`;
        // the ones alerting rules watch are created at zero below)
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("static metric"),
            )
        };
        let gauge = |name: &str, help: &str| {
            register(&r, IntGauge::new(name, help).expect("static metric"))
        };
        Metrics {
            events: counter(
                "overage_events_total",
                "Events by outcome: accepted, late, duplicate, overflow, or a rejection reason.",
                &["outcome"],
            ),
            alerts: counter(
                "overage_alerts_total",
                "Alert transitions by alert kind and state.",
                &["alert", "state"],
            ),
            evictions: counter(
                "overage_client_evictions_total",
                "Clients forgotten, by reason (idle, capacity).",
                &["reason"],
            ),
            clients: gauge("overage_clients_tracked", "Clients with state in memory."),
            sparse_clients: gauge(
                "overage_clients_sparse",
                "Of the clients tracked, those kept as their few calls (state.sparse_calls).",
            ),
            packed_clients: gauge(
                "overage_clients_packed",
                "Of the clients tracked, those packed while quiet (state.pack_after).",
            ),
            alerts_active: gauge("overage_alerts_active", "Alerts firing now."),
            lag: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "overage_consumer_lag",
                        "Messages behind the partition's high watermark.",
                    ),
                    &["topic", "partition"],
                )
                .expect("static metric"),
            ),
            ratio: register(
                &r,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "overage_client_contract_ratio",
                        "Last hour's consumption over the contracted rate (capped set of contracted clients).",
                    ),
                    &["client_id"],
                )
                .expect("static metric"),
            ),
            processing: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "overage_processing_seconds",
                        "Time to decode and apply one message, alerts included.",
                    )
                    .buckets(vec![
                        1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.1, 1.0,
                    ]),
                )
                .expect("static metric"),
            ),
            dead_letters: register(
                &r,
                IntCounter::new(
                    "overage_dead_letters_total",
                    "Rejected messages copied to the dead-letter topic.",
                )
                .expect("static metric"),
            ),
            kafka_errors: counter(
                "overage_kafka_errors_total",
                "Kafka client errors by kind.",
                &["kind"],
            ),
            contracts_reloads: counter(
                "overage_contracts_reloads_total",
                "Contract reloads by result (ok, error).",
                &["result"],
            ),
            alert_deliveries: counter(
                "overage_alert_sink_sends_total",
                "Alert transitions handed to each sink, by result.",
                &["sink", "result"],
            ),
            assigned_partitions: gauge(
                "overage_assigned_partitions",
                "Partitions this instance owns.",
            ),
            worker_partitions: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "overage_worker_partitions",
                        "Partitions each consumer worker applies (kafka.threads workers).",
                    ),
                    &["worker"],
                )
                .expect("static metric"),
            ),
            checkpoints: super::checkpointer::CheckpointMetrics::new(&r),
            registry: r,
        }
        .with_zero_series()
    }

    fn with_zero_series(self) -> Metrics {
        for result in ["ok", "error"] {
            self.contracts_reloads.with_label_values(&[result]);
        }
        for kind in KAFKA_ERROR_KINDS {
            self.kafka_errors.with_label_values(&[kind]);
        }
        self
    }

    /// Bring the engine-derived metrics up to date and render the text format.
    pub fn render(&self, shared: &Shared) -> String {
        let (stats, tracked) = shared.stats();
        // every outcome, zeros included, so dashboards see no gaps
        for (label, n) in stats.outcomes() {
            catch_up(&self.events.with_label_values(&[label]), n);
        }
        for kind in AlertKind::ALL {
            let fired = stats.fired.get(&kind).copied().unwrap_or(0);
            let resolved = stats.resolved.get(&kind).copied().unwrap_or(0);
            catch_up(
                &self.alerts.with_label_values(&[kind.as_str(), "firing"]),
                fired,
            );
            catch_up(
                &self.alerts.with_label_values(&[kind.as_str(), "resolved"]),
                resolved,
            );
        }
        catch_up(
            &self.evictions.with_label_values(&["idle"]),
            stats.evicted_idle,
        );
        catch_up(
            &self.evictions.with_label_values(&["capacity"]),
            stats.evicted_capacity,
        );
        self.clients.set(tracked.clients as i64);
        self.sparse_clients.set(tracked.sparse as i64);
        self.packed_clients.set(tracked.packed as i64);
        self.alerts_active.set(
            shared
                .active
                .read()
                .map(|a| a.len() as i64)
                .unwrap_or_default(),
        );
        self.assigned_partitions
            .set(shared.health.assigned.load(Ordering::Relaxed) as i64);
        self.lag.reset();
        if let Ok(lag) = shared.lag.lock() {
            for ((topic, partition), l) in lag.iter() {
                self.lag
                    .with_label_values(&[topic, &partition.to_string()])
                    .set(*l);
            }
        }
        self.ratio.reset();
        let cap = shared.config.metrics.max_client_series;
        if cap > 0 {
            let mut ratios = shared.contract_ratios();
            ratios.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (client, r) in ratios.into_iter().take(cap) {
                self.ratio.with_label_values(&[&client]).set(r);
            }
        }
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!("encoding metrics: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn catch_up(c: &IntCounter, total: u64) {
    let behind = total.saturating_sub(c.get());
    if behind > 0 {
        c.inc_by(behind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::contract::Contracts;
    use std::sync::Arc;

    #[test]
    fn renders_engine_counters_and_stays_monotonic() {
        let shared = Shared::new(Config::default(), Arc::new(Contracts::default()));
        let m = Metrics::new();
        let text = m.render(&shared);
        assert!(
            text.contains("overage_events_total{outcome=\"accepted\"} 0"),
            "{text}"
        );
        {
            let s = shared.shard_or_insert(&("t".into(), 0), || {
                crate::engine::Engine::new(&Config::default(), Arc::new(Contracts::default()))
            });
            crate::service::state::lock(&s).reject(crate::decode::Reject::Malformed);
        }
        let text = m.render(&shared);
        assert!(
            text.contains("overage_events_total{outcome=\"malformed\"} 1"),
            "{text}"
        );
        // retiring the engine keeps its counts
        shared.retire(&[("t".into(), 0)]);
        let text = m.render(&shared);
        assert!(
            text.contains("overage_events_total{outcome=\"malformed\"} 1"),
            "{text}"
        );
        for name in [
            "overage_alerts_total",
            "overage_clients_tracked",
            "overage_clients_sparse",
            "overage_clients_packed",
            "overage_processing_seconds",
            "overage_alerts_active",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
