//! The delivery metrics every sink with a receiver registers, under its own `sink` label.
//!
//! The `sink` label is constant per registration, so each sink registers the same metric
//! names (same help, same variable labels) on the same registry, and one alerting rule
//! (`OverageAlertDeliveryFailing`, `OverageAlertsUndelivered`) watches them all.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Why a delivery failed: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Any transport failure other than a timeout (refused, reset, DNS, TLS).
    Connect,
    Timeout,
    Http4xx,
    /// 5xx, and any other non-2xx, non-4xx status.
    Http5xx,
    /// Refused for good by a non-HTTP receiver (a Kafka broker: too large, not authorized).
    Rejected,
}

impl Reason {
    /// The reasons an HTTP receiver can fail with.
    pub const HTTP: [Reason; 4] = [
        Reason::Connect,
        Reason::Timeout,
        Reason::Http4xx,
        Reason::Http5xx,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Timeout => "timeout",
            Reason::Http4xx => "http_4xx",
            Reason::Http5xx => "http_5xx",
            Reason::Rejected => "rejected",
        }
    }
}

/// One sink's delivery counters and gauges.
#[derive(Debug, Clone)]
pub struct DeliveryMetrics {
    pub ok: IntCounter,
    pub error: IntCounter,
    failures: IntCounterVec,
    /// Transitions waiting in the sink's queue.
    pub queue_depth: IntGauge,
    /// What the sink still owes its receivers.
    pub pending: IntGauge,
}

impl DeliveryMetrics {
    /// Register `sink`'s series, with a zero series for each of `reasons` (series that only
    /// appear on their first increment are invisible to `increase()`). Registering the same
    /// sink twice is an error.
    pub fn register(
        registry: &Registry,
        sink: &str,
        reasons: &[Reason],
    ) -> Result<DeliveryMetrics, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("sink", sink);
        let deliveries = IntCounterVec::new(
            opts(
                "overage_alert_deliveries_total",
                "Alert delivery requests to a sink, by result.",
            ),
            &["result"],
        )?;
        let failures = IntCounterVec::new(
            opts(
                "overage_alert_delivery_failures_total",
                "Failed alert delivery requests to a sink, by reason.",
            ),
            &["reason"],
        )?;
        let queue_depth = IntGauge::with_opts(opts(
            "overage_alert_queue_depth",
            "Alert transitions queued in front of a sink.",
        ))?;
        let pending = IntGauge::with_opts(opts(
            "overage_alerts_pending_delivery",
            "Alerts a sink still owes its receivers (one per alert per receiver URL).",
        ))?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(pending.clone()))?;
        for r in reasons {
            failures.with_label_values(&[r.as_str()]);
        }
        Ok(DeliveryMetrics {
            ok: deliveries.with_label_values(&["ok"]),
            error: deliveries.with_label_values(&["error"]),
            failures,
            queue_depth,
            pending,
        })
    }

    pub fn failure(&self, reason: Reason) -> IntCounter {
        self.failures.with_label_values(&[reason.as_str()])
    }
}

/// A count as a gauge value.
pub fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register_with_bounded_labels_and_twice_is_an_error() {
        let r = Registry::new();
        let m = DeliveryMetrics::register(&r, "alertmanager", &Reason::HTTP).expect("registers");
        m.failure(Reason::Timeout).inc();
        let names: Vec<String> = r.gather().iter().map(|f| f.name().to_owned()).collect();
        assert_eq!(
            names,
            [
                "overage_alert_deliveries_total",
                "overage_alert_delivery_failures_total",
                "overage_alert_queue_depth",
                "overage_alerts_pending_delivery"
            ]
        );
        let failures = &r.gather()[1];
        assert_eq!(failures.get_metric().len(), 4);
        assert!(DeliveryMetrics::register(&r, "alertmanager", &Reason::HTTP).is_err());
        // another sink shares the names under its own label
        DeliveryMetrics::register(&r, "webhook", &Reason::HTTP).expect("a second sink");
        assert_eq!(r.gather()[1].get_metric().len(), 8);
    }
}
