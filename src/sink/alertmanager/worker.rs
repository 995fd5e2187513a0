//! The delivery task: one per sink, owning the delivery state; requests run in their own
//! tasks so ingesting transitions never waits on the network, and each URL has its own
//! backoff so one dead replica does not hold back the other.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::config::{endpoint, AlertmanagerConfig};
use super::mapping::PostableAlert;
use super::state::{Delivery, Sent};
use super::{Command, SINK};
use crate::sink::http::{deliver, redact_url, Failure};
use crate::sink::metrics::{gauge, DeliveryMetrics, Reason};
use crate::sink::retry::{jittered, Backoff, LogGate};
use crate::time::wall_now;

/// Transitions taken off the queue per wake-up, so a flood still lets completions through.
const RECV_BATCH: usize = 1024;
/// 500 ms doubling to 30 s: a dead Alertmanager is probed rarely, a blip retried at once.
const BACKOFF: Backoff = Backoff {
    start: Duration::from_millis(500),
    cap: Duration::from_secs(30),
};

#[derive(Debug)]
pub(super) struct Target {
    /// The base URL without its password, for logs (`endpoint` has it, and is never logged).
    pub(super) shown: String,
    endpoint: String,
    next_resend: Instant,
    /// Base delay of the current backoff; zero while healthy.
    backoff: Duration,
    retry_at: Option<Instant>,
    in_flight: bool,
    failures_in_a_row: u64,
    log: LogGate,
}

impl Target {
    pub(super) fn new(base: &str) -> Self {
        Target {
            shown: redact_url(base),
            endpoint: endpoint(base),
            next_resend: Instant::now(),
            backoff: Duration::ZERO,
            retry_at: None,
            in_flight: false,
            failures_in_a_row: 0,
            log: LogGate::default(),
        }
    }
}

/// POST one batch to one Alertmanager.
async fn post(
    client: reqwest::Client,
    url: String,
    body: Vec<PostableAlert>,
) -> Result<(), Failure> {
    deliver(client.post(&url).json(&body)).await
}

/// What a request task reports: its target, what it carried, how it went.
type Done = (usize, Vec<Sent>, Result<(), Failure>);

pub(super) struct Worker {
    cfg: AlertmanagerConfig,
    client: reqwest::Client,
    metrics: DeliveryMetrics,
    rx: mpsc::Receiver<Command>,
    state: Delivery,
    targets: Vec<Target>,
    inflight: JoinSet<Done>,
    /// Task id → target, so that a request task that panicked still frees its target.
    inflight_ids: Vec<(Id, usize)>,
}

impl Worker {
    pub(super) fn new(
        cfg: AlertmanagerConfig,
        client: reqwest::Client,
        metrics: DeliveryMetrics,
        rx: mpsc::Receiver<Command>,
    ) -> Worker {
        Worker {
            state: Delivery::new(cfg.urls.len()),
            targets: cfg.urls.iter().map(|u| Target::new(u)).collect(),
            client,
            cfg,
            metrics,
            rx,
            inflight: JoinSet::new(),
            inflight_ids: Vec::new(),
        }
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let mut buf = Vec::with_capacity(RECV_BATCH);
        // Some(deadline) once shutting down: no more re-sends, deliver what is owed, stop.
        let mut draining: Option<Instant> = None;
        let mut rx_open = true;
        loop {
            let now = Instant::now();
            if let Some(deadline) = draining {
                let idle = self.inflight.is_empty()
                    && !rx_open
                    && (0..self.targets.len()).all(|i| !self.state.is_owed(i));
                if idle || now >= deadline {
                    break;
                }
            }
            self.dispatch(now, draining.is_none());
            self.update_gauges();
            let wake = self.next_wake(now, draining);
            tokio::select! {
                biased;
                () = shutdown.cancelled(), if draining.is_none() => {
                    draining = Some(self.start_draining());
                }
                Some(done) = self.inflight.join_next_with_id(), if !self.inflight.is_empty() => {
                    self.complete(done);
                }
                n = self.rx.recv_many(&mut buf, RECV_BATCH), if rx_open => {
                    if n == 0 {
                        // Every handle is gone: nothing more will come, so wind down as at
                        // shutdown (the firing alerts then time out in Alertmanager).
                        rx_open = false;
                        if draining.is_none() {
                            draining = Some(self.start_draining());
                        }
                    }
                    for command in buf.drain(..) {
                        match command {
                            Command::Transition(alert) => self.state.ingest(*alert),
                            Command::Forget(fps) => fps.iter().for_each(|fp| self.state.forget(fp)),
                        }
                    }
                }
                () = sleep_until(wake) => {}
            }
        }
        self.update_gauges();
        let owed = self.state.pending();
        if owed > 0 {
            tracing::warn!(
                sink = SINK,
                owed,
                "stopping with alerts not delivered to every alertmanager"
            );
        }
        // Dropping the JoinSet aborts any request still running past the deadline.
    }

    fn start_draining(&mut self) -> Instant {
        // Stop accepting; what is already queued is still received and delivered.
        self.rx.close();
        // One immediate last attempt everywhere, even for a URL deep in backoff.
        for t in &mut self.targets {
            t.retry_at = None;
        }
        Instant::now() + self.cfg.timeout
    }

    fn dispatch(&mut self, now: Instant, resend: bool) {
        for i in 0..self.targets.len() {
            let t = &mut self.targets[i];
            if resend && now >= t.next_resend {
                t.next_resend = now + self.cfg.resend_interval;
                self.state.resend_all(i);
            }
            let t = &mut self.targets[i];
            if t.in_flight || t.retry_at.is_some_and(|r| now < r) || !self.state.is_owed(i) {
                continue;
            }
            let (body, sent) = self.state.batch(i, &self.cfg, wall_now());
            if body.is_empty() {
                continue;
            }
            t.in_flight = true;
            let fut = post(self.client.clone(), t.endpoint.clone(), body);
            let abort = self.inflight.spawn(async move {
                let outcome = fut.await;
                (i, sent, outcome)
            });
            self.inflight_ids.push((abort.id(), i));
        }
    }

    fn complete(&mut self, done: Result<(Id, Done), tokio::task::JoinError>) {
        let (id, result) = match done {
            Ok((id, (i, sent, outcome))) => (id, Some((i, sent, outcome))),
            Err(e) => (e.id(), None),
        };
        let Some(pos) = self.inflight_ids.iter().position(|(x, _)| *x == id) else {
            return;
        };
        let (_, i) = self.inflight_ids.swap_remove(pos);
        let now = Instant::now();
        let t = &mut self.targets[i];
        t.in_flight = false;
        let (sent, outcome) = match result {
            Some((_, sent, outcome)) => (sent, outcome),
            // A panicked request task: nothing is settled, so everything stays owed.
            None => (
                Vec::new(),
                Err(Failure {
                    reason: Reason::Connect,
                    retry: true,
                    detail: "request task failed".into(),
                }),
            ),
        };
        match outcome {
            Ok(()) => {
                self.metrics.ok.inc();
                if t.failures_in_a_row > 0 {
                    tracing::info!(
                        sink = SINK,
                        url = %t.shown,
                        failed_attempts = t.failures_in_a_row,
                        "alertmanager reachable again"
                    );
                }
                t.failures_in_a_row = 0;
                t.backoff = Duration::ZERO;
                t.retry_at = None;
                self.state.settle(i, &sent);
            }
            Err(f) => {
                self.metrics.error.inc();
                self.metrics.failure(f.reason).inc();
                t.failures_in_a_row += 1;
                if f.retry {
                    t.backoff = BACKOFF.next(t.backoff);
                    let delay = jittered(t.backoff);
                    t.retry_at = Some(now + delay);
                    if let Some(suppressed) = t.log.allow(now) {
                        tracing::warn!(
                            sink = SINK,
                            url = %t.shown,
                            reason = f.reason.as_str(),
                            error = %f.detail,
                            retry_in = ?delay,
                            suppressed,
                            "alertmanager delivery failed; keeping alerts and retrying"
                        );
                    }
                } else {
                    // The receiver answered, so it is up: no backoff, and the batch is given
                    // up (firing alerts in it come back with the next re-send).
                    t.backoff = Duration::ZERO;
                    t.retry_at = None;
                    if let Some(suppressed) = t.log.allow(now) {
                        tracing::error!(
                            sink = SINK,
                            url = %t.shown,
                            alerts = sent.len(),
                            error = %f.detail,
                            suppressed,
                            "alertmanager rejected alerts; not retrying this batch"
                        );
                    }
                    self.state.settle(i, &sent);
                }
            }
        }
    }

    fn next_wake(&self, now: Instant, draining: Option<Instant>) -> Instant {
        let mut wake = draining.unwrap_or(now + Duration::from_secs(3600));
        for (i, t) in self.targets.iter().enumerate() {
            if draining.is_none() {
                wake = wake.min(t.next_resend);
            }
            if let Some(r) = t.retry_at {
                if !t.in_flight && self.state.is_owed(i) {
                    wake = wake.min(r);
                }
            }
        }
        wake
    }

    fn update_gauges(&self) {
        self.metrics.queue_depth.set(gauge(self.rx.len()));
        self.metrics.pending.set(gauge(self.state.pending()));
    }
}
