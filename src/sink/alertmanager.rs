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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::alert::{Alert, AlertKind, State};
use crate::time::{format_rfc3339, parse_rfc3339, wall_now, Millis};

/// The `sink` label on this sink's metrics.
pub const SINK: &str = "alertmanager";

/// Alerts per request. Prometheus sends at most 64; larger batches are fine for Alertmanager
/// but one invalid alert makes it answer 400 for the whole request, so keep them moderate.
const MAX_BATCH: usize = 256;
/// Transitions taken off the queue per wake-up, so a flood still lets completions through.
const RECV_BATCH: usize = 1024;
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// At most one failure log line per URL per this interval; a dead Alertmanager must not
/// flood the log at the retry rate.
const LOG_EVERY: Duration = Duration::from_secs(30);
/// Upper bounds that keep `Instant + interval` and `4 × resend_interval` far from overflow.
const MAX_RESEND_INTERVAL: Duration = Duration::from_secs(24 * 3600);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// tokio's bounded channel panics above its semaphore's limit; stay well below it.
const MAX_QUEUE_CAPACITY: usize = 10_000_000;

/// Where and how to deliver; strict like the rest of the config (a misspelt key is an error).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Base URLs (`http://host:9093`, optionally with a path prefix). Every alert goes to every
    /// URL, as Prometheus does with an HA pair. Empty: the sink is disabled.
    pub urls: Vec<String>,
    /// How often every firing alert is re-sent; `endsAt` is 4× this ahead of the wall clock.
    #[serde(with = "humantime_serde")]
    pub resend_interval: Duration,
    /// Per request (connect included); also bounds the flush at shutdown.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Transitions waiting for the delivery task; senders wait when it is full.
    pub queue_capacity: usize,
    /// `runbook_url` annotation; `{alert}` is replaced by the alert kind. Empty: no annotation.
    pub runbook_url: String,
    /// `generatorURL` of each alert: the client's page on the instance that raised it, e.g.
    /// `http://{hostname}:8080/clients/{client_id}`. In this and `dashboard_url`, `{client_id}`
    /// is replaced by the percent-encoded client id, `{alert}` by the alert kind and
    /// `{hostname}` by this instance's host name (the pod's name in Kubernetes).
    pub generator_url: Option<String>,
    /// `dashboard_url` annotation: the per-client Grafana dashboard with the client selected,
    /// e.g. `https://grafana.example/d/overage-client/overage-client?var-client_id={client_id}`.
    pub dashboard_url: Option<String>,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            urls: Vec::new(),
            resend_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            queue_capacity: 10_000,
            runbook_url: "https://overage.example/runbooks/{alert}".into(),
            generator_url: None,
            dashboard_url: None,
        }
    }
}

impl AlertmanagerConfig {
    /// Whether any Alertmanager is configured.
    pub fn is_enabled(&self) -> bool {
        !self.urls.is_empty()
    }

    /// Check every field. The message starts with the field name (relative to this section,
    /// e.g. `urls[1]: ...`) so the caller can prefix the section's path.
    pub fn validate(&self) -> Result<(), String> {
        for (i, u) in self.urls.iter().enumerate() {
            // messages show the URL without its password
            let shown = redact_url(u);
            check_http_url(u).map_err(|m| format!("urls[{i}]: {shown:?} {m}"))?;
            let parsed = reqwest::Url::parse(u).map_err(|e| format!("urls[{i}]: {e}"))?;
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(format!(
                    "urls[{i}]: {shown:?} must be a base URL without query or fragment"
                ));
            }
            if let Some(j) = self.urls[..i]
                .iter()
                .position(|o| endpoint(o) == endpoint(u))
            {
                return Err(format!(
                    "urls[{i}]: {shown:?} duplicates urls[{j}] (every alert would be sent twice)"
                ));
            }
        }
        if self.resend_interval.is_zero() || self.resend_interval > MAX_RESEND_INTERVAL {
            return Err("resend_interval: must be positive and at most 24h".into());
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err("timeout: must be positive and at most 1h".into());
        }
        if self.queue_capacity == 0 || self.queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(format!(
                "queue_capacity: must be between 1 and {MAX_QUEUE_CAPACITY}"
            ));
        }
        if !self.runbook_url.is_empty() {
            let u = self.runbook_url.replace("{alert}", "over_contract");
            check_http_url(&u).map_err(|m| format!("runbook_url: {:?} {m}", self.runbook_url))?;
        }
        for (field, template) in [
            ("generator_url", &self.generator_url),
            ("dashboard_url", &self.dashboard_url),
        ] {
            if let Some(g) = template {
                let u = fill(g, "client", AlertKind::OverContract);
                check_http_url(&u).map_err(|m| format!("{field}: {g:?} {m}"))?;
            }
        }
        Ok(())
    }
}

fn check_http_url(u: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(u).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(())
}

/// The URL with any password in it replaced by `<redacted>`, for logs and messages.
/// (Credentials in a URL, `http://user:password@host:9093`, are how basic auth to Alertmanager
/// is given: reqwest sends them as an `Authorization: Basic` header.)
pub fn redact_url(u: &str) -> String {
    match reqwest::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // (`<` would be percent-encoded in the password)
            if parsed.set_password(Some("REDACTED")).is_err() {
                return "<url with credentials>".into();
            }
            parsed.to_string().replacen(":REDACTED@", ":<redacted>@", 1)
        }
        Ok(_) => u.to_owned(),
        // not a URL: it may still hold `user:secret@`; show no more than the scheme
        Err(_) => match u.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => format!("{scheme}://<redacted>"),
            _ => u.to_owned(),
        },
    }
}

fn endpoint(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("alertmanager sink: invalid configuration: {0}")]
    Config(String),
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

/// Starts the delivery task.
pub struct AlertmanagerSink;

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
        let metrics = Metrics::register(registry)?;
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .build()
            .map_err(SinkError::Client)?;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let handle = AlertmanagerHandle {
            tx,
            depth: metrics.queue_depth.clone(),
        };
        let worker = Worker {
            state: Delivery::new(cfg.urls.len()),
            targets: cfg.urls.iter().map(|u| Target::new(u)).collect(),
            client,
            cfg,
            metrics,
            rx,
            inflight: JoinSet::new(),
            inflight_ids: Vec::new(),
        };
        let task = runtime.spawn(worker.run(shutdown));
        Ok((handle, task))
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

// ---------------------------------------------------------------------------------------------
// Mapping: Alert → Alertmanager's postable alert.

/// One element of the `POST /api/v2/alerts` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<String>,
}

/// `alertname` of a kind: `over_contract` → `OverageOverContract`, in the style of Prometheus
/// rule names so routes and inhibit rules read like the rest of an Alertmanager config.
pub fn alertname(kind: AlertKind) -> String {
    let mut out = String::from("Overage");
    for word in kind.as_str().split('_') {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// Alertmanager (0.25) rejects the whole request for a label name outside
/// `[a-zA-Z_][a-zA-Z0-9_]*`, and contract labels are free-form, so map them onto that set.
fn label_name(raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    Some(out)
}

/// Alertmanager validates `generatorURL` as a URI (422 for the whole request otherwise), and
/// client ids are free-form.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn event_ms(s: &str, fallback: Millis) -> Millis {
    parse_rfc3339(s).unwrap_or(fallback)
}

/// `(startsAt, endsAt)` in ms. Firing: `endsAt` = now + 4 × resend, as Prometheus does, so
/// only a dead overage lets Alertmanager time the alert out. Resolved: `endsAt` = event time
/// but never in the future (Alertmanager would treat it as still active). `startsAt` never
/// exceeds `endsAt` or now: a skewed event clock would otherwise get a 400.
fn active_range(alert: &Alert, now: Millis, resend: Duration) -> (Millis, Millis) {
    let at = event_ms(&alert.at, alert.at_ms);
    let since = event_ms(&alert.since, at);
    match alert.state {
        State::Firing => {
            let ahead = i64::try_from(resend.as_millis().saturating_mul(4)).unwrap_or(i64::MAX);
            (since.min(now), now.saturating_add(ahead))
        }
        State::Resolved => {
            let ends = at.min(now);
            (since.min(ends), ends)
        }
    }
}

fn description(a: &Alert) -> String {
    let mut d = format!(
        "{} {} ({}): observed {} against {} expected, ratio {}, window {}; firing since {}",
        a.client_id,
        a.alert,
        a.severity.as_str(),
        a.observed,
        a.expected,
        a.ratio,
        a.window,
        a.since
    );
    if a.state == State::Resolved {
        let _ = write!(d, "; resolved at {}", a.at);
    }
    for extra in [a.excess_text(), a.drivers_text()].into_iter().flatten() {
        let _ = write!(d, "; {extra}");
    }
    d
}

/// A URL template with this alert's `{client_id}` (percent-encoded), `{alert}` and
/// `{hostname}` filled in.
fn fill(template: &str, client_id: &str, kind: AlertKind) -> String {
    let mut u = template
        .replace("{client_id}", &percent_encode(client_id))
        .replace("{alert}", kind.as_str());
    if u.contains("{hostname}") {
        u = u.replace("{hostname}", &hostname());
    }
    u
}

/// This machine's host name: `HOSTNAME` (set in every Kubernetes pod), else the kernel's.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn to_postable(alert: &Alert, cfg: &AlertmanagerConfig, now: Millis) -> PostableAlert {
    let mut labels = BTreeMap::new();
    for (k, v) in &alert.labels {
        // Alertmanager drops empty-valued labels anyway; keeping them out keeps the
        // alert's identity the same as what Alertmanager shows.
        if v.is_empty() {
            continue;
        }
        if let Some(name) = label_name(k) {
            labels.entry(name).or_insert_with(|| v.clone());
        }
    }
    // Set last: the identity labels must win over a contract label of the same name.
    labels.insert("alertname".into(), alertname(alert.alert));
    labels.insert("alert".into(), alert.alert.as_str().into());
    labels.insert("client_id".into(), alert.client_id.clone());
    labels.insert("severity".into(), alert.severity.as_str().into());

    let mut annotations = BTreeMap::new();
    annotations.insert("summary".into(), alert.summary.clone());
    annotations.insert("description".into(), description(alert));
    if !cfg.runbook_url.is_empty() {
        annotations.insert(
            "runbook_url".into(),
            cfg.runbook_url.replace("{alert}", alert.alert.as_str()),
        );
    }
    if let Some(d) = &cfg.dashboard_url {
        annotations.insert(
            "dashboard_url".into(),
            fill(d, &alert.client_id, alert.alert),
        );
    }
    if let Some(d) = alert.drivers_text() {
        annotations.insert("drivers".into(), d);
    }
    if let Some(e) = alert.excess_text() {
        annotations.insert("excess_units".into(), e);
    }
    let (starts, ends) = active_range(alert, now, cfg.resend_interval);
    PostableAlert {
        labels,
        annotations,
        starts_at: format_rfc3339(starts),
        ends_at: format_rfc3339(ends),
        generator_url: cfg
            .generator_url
            .as_ref()
            .map(|g| fill(g, &alert.client_id, alert.alert)),
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery state: what each URL is owed. Pure, so the bookkeeping is unit-tested without I/O.

/// Each transition gets a sequence number, so a transition that arrives while a request for
/// the same fingerprint is in flight is not mistaken for delivered when that request succeeds.
type Seq = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Firing,
    Resolve,
}

/// One alert in a request, to settle when the request completes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    fingerprint: String,
    seq: Seq,
    kind: Kind,
}

#[derive(Debug, Default)]
struct Owed {
    /// Firing alerts to (re-)send: fingerprint → seq of the firing transition.
    firing: BTreeMap<String, Seq>,
    /// Resolves not yet delivered: a resolve is sent once, not re-sent, so it must stay here
    /// until it is.
    resolves: BTreeMap<String, (Seq, Alert)>,
}

impl Owed {
    fn len(&self) -> usize {
        self.firing.len() + self.resolves.len()
    }
}

#[derive(Debug)]
struct Delivery {
    /// Currently firing alerts, by fingerprint.
    firing: BTreeMap<String, (Seq, Alert)>,
    owed: Vec<Owed>,
    seq: Seq,
}

impl Delivery {
    fn new(targets: usize) -> Self {
        Delivery {
            firing: BTreeMap::new(),
            owed: (0..targets).map(|_| Owed::default()).collect(),
            seq: 0,
        }
    }

    fn ingest(&mut self, alert: Alert) {
        if self.owed.is_empty() {
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        let fp = alert.fingerprint.clone();
        match alert.state {
            State::Firing => {
                for o in &mut self.owed {
                    o.firing.insert(fp.clone(), seq);
                }
                self.firing.insert(fp, (seq, alert));
            }
            State::Resolved => {
                self.firing.remove(&fp);
                for o in &mut self.owed {
                    o.firing.remove(&fp);
                    o.resolves.insert(fp.clone(), (seq, alert.clone()));
                }
            }
        }
    }

    fn forget(&mut self, fingerprint: &str) {
        self.firing.remove(fingerprint);
        for o in &mut self.owed {
            o.firing.remove(fingerprint);
        }
    }

    /// The re-send: every firing alert is owed again to this target.
    fn resend_all(&mut self, target: usize) {
        if let Some(o) = self.owed.get_mut(target) {
            for (fp, (seq, _)) in &self.firing {
                o.firing.insert(fp.clone(), *seq);
            }
        }
    }

    fn is_owed(&self, target: usize) -> bool {
        self.owed.get(target).is_some_and(|o| o.len() > 0)
    }

    fn pending(&self) -> usize {
        self.owed.iter().map(Owed::len).sum()
    }

    /// The next request for `target`: resolves first, so that a resolve of an old episode
    /// reaches Alertmanager before the firing of a new episode of the same alert.
    fn batch(
        &self,
        target: usize,
        cfg: &AlertmanagerConfig,
        now: Millis,
    ) -> (Vec<PostableAlert>, Vec<Sent>) {
        let mut body = Vec::new();
        let mut sent = Vec::new();
        let Some(o) = self.owed.get(target) else {
            return (body, sent);
        };
        for (fp, (seq, a)) in o.resolves.iter().take(MAX_BATCH) {
            body.push(to_postable(a, cfg, now));
            sent.push(Sent {
                fingerprint: fp.clone(),
                seq: *seq,
                kind: Kind::Resolve,
            });
        }
        for (fp, seq) in &o.firing {
            if body.len() >= MAX_BATCH {
                break;
            }
            if let Some((_, a)) = self.firing.get(fp) {
                body.push(to_postable(a, cfg, now));
                sent.push(Sent {
                    fingerprint: fp.clone(),
                    seq: *seq,
                    kind: Kind::Firing,
                });
            }
        }
        (body, sent)
    }

    /// Settle a request that Alertmanager accepted (or rejected for good): what it carried is
    /// no longer owed, unless a newer transition for the same alert arrived meanwhile.
    fn settle(&mut self, target: usize, sent: &[Sent]) {
        let Some(o) = self.owed.get_mut(target) else {
            return;
        };
        for s in sent {
            match s.kind {
                Kind::Firing => {
                    if o.firing.get(&s.fingerprint) == Some(&s.seq) {
                        o.firing.remove(&s.fingerprint);
                    }
                }
                Kind::Resolve => {
                    if o.resolves.get(&s.fingerprint).map(|r| r.0) == Some(s.seq) {
                        o.resolves.remove(&s.fingerprint);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Any transport failure other than a timeout (refused, reset, DNS, TLS).
    Connect,
    Timeout,
    Http4xx,
    /// 5xx, and any other non-2xx, non-4xx status.
    Http5xx,
}

impl Reason {
    const ALL: [Reason; 4] = [
        Reason::Connect,
        Reason::Timeout,
        Reason::Http4xx,
        Reason::Http5xx,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Timeout => "timeout",
            Reason::Http4xx => "http_4xx",
            Reason::Http5xx => "http_5xx",
        }
    }
}

#[derive(Debug, Clone)]
struct Metrics {
    ok: IntCounter,
    error: IntCounter,
    failures: [IntCounter; 4],
    queue_depth: IntGauge,
    pending: IntGauge,
}

impl Metrics {
    /// `sink` is a constant label so that other sinks can register the same metric names
    /// (same help, same variable labels) on the same registry.
    fn register(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("sink", SINK);
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
        Ok(Metrics {
            ok: deliveries.with_label_values(&["ok"]),
            error: deliveries.with_label_values(&["error"]),
            failures: Reason::ALL.map(|r| failures.with_label_values(&[r.as_str()])),
            queue_depth,
            pending,
        })
    }

    fn failure(&self, reason: Reason) -> &IntCounter {
        &self.failures[reason as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// The delivery task.

#[derive(Debug)]
struct Failure {
    reason: Reason,
    /// Worth retrying: the receiver may accept the same request later.
    retry: bool,
    detail: String,
}

async fn post(
    client: reqwest::Client,
    url: String,
    body: Vec<PostableAlert>,
) -> Result<(), Failure> {
    let transport = |e: reqwest::Error| Failure {
        reason: if e.is_timeout() {
            Reason::Timeout
        } else {
            Reason::Connect
        },
        retry: true,
        // reqwest's message names the URL, credentials included
        detail: error_chain(&e.without_url()),
    };
    let resp = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(transport)?;
    let status = resp.status();
    // Read the body either way: on success it lets the connection be reused, on failure it
    // says what Alertmanager objected to.
    let text = resp.text().await;
    if status.is_success() {
        return Ok(());
    }
    let mut detail = format!("HTTP {status}");
    if let Ok(t) = text {
        let t = t.trim();
        if !t.is_empty() {
            let cut: String = t.chars().take(300).collect();
            let _ = write!(detail, ": {cut}");
        }
    }
    let client_error = status.is_client_error();
    Err(Failure {
        reason: if client_error {
            Reason::Http4xx
        } else {
            Reason::Http5xx
        },
        // A 4xx is about the request and would fail the same way forever, except these two,
        // which proxies use for "later".
        retry: !client_error
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS,
        detail,
    })
}

/// reqwest's top-level message ("error sending request") hides the cause (refused, DNS, TLS).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let _ = write!(s, ": {c}");
        cur = c.source();
    }
    s
}

/// Base retry delay after one more failure: 500 ms, doubling, capped at 30 s, so a dead
/// Alertmanager is probed rarely while a brief blip is retried almost at once.
fn next_backoff(prev: Duration) -> Duration {
    if prev.is_zero() {
        BACKOFF_START
    } else {
        (prev * 2).min(BACKOFF_CAP)
    }
}

/// "Equal jitter" (half fixed, half random), so that several overage instances whose
/// Alertmanager comes back do not all retry in lockstep.
fn jittered(base: Duration) -> Duration {
    base / 2 + base.mul_f64(rand::thread_rng().gen_range(0.0..0.5))
}

/// Lets one log line through per interval and counts what it held back.
#[derive(Debug, Default)]
struct LogGate {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogGate {
    fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(l) if now.duration_since(l) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[derive(Debug)]
struct Target {
    /// The base URL without its password, for logs (`endpoint` has it, and is never logged).
    shown: String,
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
    fn new(base: &str) -> Self {
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

/// What a request task reports: its target, what it carried, how it went.
type Done = (usize, Vec<Sent>, Result<(), Failure>);

struct Worker {
    cfg: AlertmanagerConfig,
    client: reqwest::Client,
    metrics: Metrics,
    rx: mpsc::Receiver<Command>,
    state: Delivery,
    targets: Vec<Target>,
    inflight: JoinSet<Done>,
    /// Task id → target, so that a request task that panicked still frees its target.
    inflight_ids: Vec<(Id, usize)>,
}

impl Worker {
    async fn run(mut self, shutdown: CancellationToken) {
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
                    t.backoff = next_backoff(t.backoff);
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
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.metrics.queue_depth.set(gauge(self.rx.len()));
        self.metrics.pending.set(gauge(self.state.pending()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;

    const T0: Millis = 1_789_050_000_000; // 2026-09-10T14:20:00Z

    fn alert(state: State, client: &str, at: Millis, since: Millis) -> Alert {
        Alert {
            alert: AlertKind::OverContract,
            state,
            client_id: client.into(),
            at: format_rfc3339(at),
            severity: Severity::Critical,
            window: "1h".into(),
            observed: 362000.0,
            expected: 120000.0,
            ratio: 3.02,
            summary: format!("{client} consumed 3.0x its contracted 120000 units/h"),
            since: format_rfc3339(since),
            labels: [("plan".to_string(), "enterprise".to_string())].into(),
            fingerprint: crate::alert::fingerprint(
                client,
                AlertKind::OverContract,
                Severity::Critical,
            ),
            drivers: Vec::new(),
            excess_units: None,
            excess_units_month: None,
            at_ms: at,
        }
    }

    fn cfg() -> AlertmanagerConfig {
        AlertmanagerConfig {
            urls: vec!["http://127.0.0.1:9093".into()],
            ..AlertmanagerConfig::default()
        }
    }

    #[test]
    fn alertnames_are_camel_case() {
        assert_eq!(alertname(AlertKind::OverContract), "OverageOverContract");
        assert_eq!(
            alertname(AlertKind::OutOfContractEndpoint),
            "OverageOutOfContractEndpoint"
        );
        assert_eq!(alertname(AlertKind::NewOrigin), "OverageNewOrigin");
        for k in AlertKind::ALL {
            let n = alertname(k);
            assert!(n.chars().all(|c| c.is_ascii_alphanumeric()), "{n}");
        }
    }

    #[test]
    fn firing_alert_maps_to_the_postable_json() {
        let mut c = cfg();
        c.generator_url = Some("https://status.example/clients/{client_id}".into());
        c.dashboard_url =
            Some("https://grafana.example/d/overage-client/x?var-client_id={client_id}".into());
        let mut a = alert(State::Firing, "msft bing/1", T0, T0 - 60_000);
        a.drivers = vec![crate::alert::DriverInfo {
            dimension: "product".into(),
            name: "firehose".into(),
            excess_share: 0.72,
            share: 0.7,
            usual_share: 0.0,
        }];
        a.excess_units = Some(242_000.0);
        a.excess_units_month = Some(1_250_000.0);
        a.labels.insert("team-name".into(), "search".into());
        a.labels.insert("severity".into(), "spoofed".into());
        a.labels.insert("empty".into(), String::new());
        let now = T0 + 5_000;
        let v = serde_json::to_value(to_postable(&a, &c, now)).expect("serializes");
        assert_eq!(v["labels"]["alertname"], "OverageOverContract");
        assert_eq!(v["labels"]["alert"], "over_contract");
        assert_eq!(v["labels"]["client_id"], "msft bing/1");
        assert_eq!(v["labels"]["severity"], "critical");
        assert_eq!(v["labels"]["plan"], "enterprise");
        assert_eq!(v["labels"]["team_name"], "search");
        assert!(v["labels"].get("empty").is_none());
        assert_eq!(v["annotations"]["summary"], a.summary);
        assert_eq!(
            v["annotations"]["runbook_url"],
            "https://overage.example/runbooks/over_contract"
        );
        let d = v["annotations"]["description"].as_str().expect("string");
        for part in ["362000", "120000", "3.02", "1h", "2026-09-10T14:19:00Z"] {
            assert!(d.contains(part), "{d} lacks {part}");
        }
        assert_eq!(
            v["annotations"]["dashboard_url"],
            "https://grafana.example/d/overage-client/x?var-client_id=msft%20bing%2F1"
        );
        assert_eq!(
            v["annotations"]["drivers"],
            "72% of the excess is product \"firehose\" (usually 0%)"
        );
        assert_eq!(
            v["annotations"]["excess_units"],
            "242000 units over contract since 2026-09-10T14:00Z, 1.25M this month"
        );
        for part in ["firehose", "242000 units over contract"] {
            assert!(d.contains(part), "{d} lacks {part}");
        }
        assert_eq!(v["startsAt"], "2026-09-10T14:19:00Z");
        assert_eq!(v["endsAt"], format_rfc3339(now + 4 * 60_000));
        assert_eq!(
            v["generatorURL"],
            "https://status.example/clients/msft%20bing%2F1"
        );
        let keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "annotations",
                "endsAt",
                "generatorURL",
                "labels",
                "startsAt"
            ]
        );
    }

    #[test]
    fn url_templates_name_this_instance_and_the_client() {
        let u = fill(
            "http://{hostname}:8080/clients/{client_id}#{alert}",
            "a b",
            AlertKind::NewOrigin,
        );
        let host = hostname();
        assert!(!host.is_empty() && !host.contains('{'), "{host}");
        assert_eq!(u, format!("http://{host}:8080/clients/a%20b#new_origin"));
        let mut c = cfg();
        c.dashboard_url = Some("grafana/{client_id}".into());
        assert!(c.validate().unwrap_err().starts_with("dashboard_url:"));
    }

    #[test]
    fn no_generator_url_and_no_runbook_when_not_configured() {
        let mut c = cfg();
        c.runbook_url = String::new();
        let v = serde_json::to_value(to_postable(&alert(State::Firing, "c", T0, T0), &c, T0))
            .expect("serializes");
        assert!(v.get("generatorURL").is_none());
        assert!(v["annotations"].get("runbook_url").is_none());
        for absent in ["dashboard_url", "drivers", "excess_units"] {
            assert!(v["annotations"].get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn ends_at_rules() {
        let resend = Duration::from_secs(60);
        // firing: endsAt = wall now + 4 × resend, whatever the event time
        let f = alert(State::Firing, "c", T0, T0 - 600_000);
        assert_eq!(
            active_range(&f, T0 + 1_000, resend),
            (T0 - 600_000, T0 + 241_000)
        );
        // resolved in the past (replay, lag): endsAt = event time
        let r = alert(State::Resolved, "c", T0, T0 - 600_000);
        assert_eq!(active_range(&r, T0 + 3_600_000, resend), (T0 - 600_000, T0));
        // resolved with an event time ahead of the wall clock: endsAt = now, never future
        assert_eq!(
            active_range(&r, T0 - 1_000, resend),
            (T0 - 600_000, T0 - 1_000)
        );
        // a skewed event clock: startsAt clamped so that startsAt <= endsAt
        let skewed = alert(State::Resolved, "c", T0, T0 - 1_000);
        assert_eq!(
            active_range(&skewed, T0 - 5_000, resend),
            (T0 - 5_000, T0 - 5_000)
        );
        let skewed = alert(State::Firing, "c", T0, T0);
        assert_eq!(active_range(&skewed, T0 - 5_000, resend).0, T0 - 5_000);
        // the text fields are authoritative; at_ms only if `at` does not parse
        let mut odd = alert(State::Resolved, "c", T0, T0 - 1_000);
        odd.at = "garbage".into();
        assert_eq!(active_range(&odd, T0 + 1, resend).1, T0);
    }

    #[test]
    fn label_names_are_made_valid() {
        assert_eq!(label_name("plan").as_deref(), Some("plan"));
        assert_eq!(label_name("team-name").as_deref(), Some("team_name"));
        assert_eq!(label_name("9lives").as_deref(), Some("_9lives"));
        assert_eq!(label_name("é").as_deref(), Some("_"));
        assert_eq!(label_name(""), None);
    }

    #[test]
    fn config_defaults_parse_and_validate() {
        let d = AlertmanagerConfig::default();
        assert!(!d.is_enabled());
        assert_eq!(d.resend_interval, Duration::from_secs(60));
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert_eq!(d.queue_capacity, 10_000);
        d.validate().expect("defaults are valid");
        let c: AlertmanagerConfig = serde_json::from_value(serde_json::json!({
            "urls": ["http://am-0:9093", "https://am-1:9093/prefix/"],
            "resend_interval": "30s",
            "timeout": "2s",
        }))
        .expect("parses");
        assert_eq!(c.resend_interval, Duration::from_secs(30));
        c.validate().expect("valid");
        assert!(serde_json::from_value::<AlertmanagerConfig>(
            serde_json::json!({"url": "http://x"})
        )
        .is_err());
        assert_eq!(
            endpoint("https://am-1:9093/prefix/"),
            "https://am-1:9093/prefix/api/v2/alerts"
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad = |f: fn(&mut AlertmanagerConfig), field: &str| {
            let mut c = cfg();
            f(&mut c);
            let e = c.validate().expect_err("invalid");
            assert!(e.starts_with(field), "{e:?} does not start with {field}");
        };
        bad(|c| c.urls.push("ftp://x".into()), "urls[1]");
        bad(|c| c.urls.push("not a url".into()), "urls[1]");
        bad(|c| c.urls.push("http://x?y=1".into()), "urls[1]");
        bad(|c| c.urls.push("http://127.0.0.1:9093/".into()), "urls[1]");
        bad(|c| c.resend_interval = Duration::ZERO, "resend_interval");
        bad(
            |c| c.resend_interval = Duration::from_secs(1 << 40),
            "resend_interval",
        );
        bad(|c| c.timeout = Duration::ZERO, "timeout");
        bad(|c| c.queue_capacity = 0, "queue_capacity");
        bad(|c| c.runbook_url = "runbooks/{alert}".into(), "runbook_url");
        bad(
            |c| c.generator_url = Some("{client_id}".into()),
            "generator_url",
        );
    }

    fn kinds(sent: &[Sent]) -> Vec<(&str, Kind)> {
        sent.iter()
            .map(|s| (s.fingerprint.as_str(), s.kind))
            .collect()
    }

    #[test]
    fn delivered_alerts_are_settled_and_firing_ones_come_back_on_resend() {
        let c = cfg();
        let mut d = Delivery::new(2);
        let a = alert(State::Firing, "a", T0, T0);
        d.ingest(a.clone());
        assert_eq!(d.pending(), 2);
        let (body, sent) = d.batch(0, &c, T0);
        assert_eq!(body.len(), 1);
        d.settle(0, &sent);
        assert!(!d.is_owed(0));
        // the other URL still owes it
        assert!(d.is_owed(1));
        d.resend_all(0);
        assert_eq!(
            kinds(&d.batch(0, &c, T0).1),
            [(a.fingerprint.as_str(), Kind::Firing)]
        );
    }

    #[test]
    fn resolve_before_delivery_sends_only_the_resolve_and_then_forgets_it() {
        let c = cfg();
        let mut d = Delivery::new(1);
        let f = alert(State::Firing, "a", T0, T0);
        d.ingest(f.clone());
        d.ingest(alert(State::Resolved, "a", T0 + 60_000, T0));
        let (body, sent) = d.batch(0, &c, T0 + 120_000);
        assert_eq!(kinds(&sent), [(f.fingerprint.as_str(), Kind::Resolve)]);
        assert_eq!(body[0].ends_at, format_rfc3339(T0 + 60_000));
        d.settle(0, &sent);
        assert_eq!(d.pending(), 0);
        d.resend_all(0);
        assert_eq!(d.pending(), 0, "resolved alerts are not re-sent");
    }

    #[test]
    fn a_resolve_goes_before_the_next_episode_of_the_same_alert() {
        let c = cfg();
        let mut d = Delivery::new(1);
        d.ingest(alert(State::Firing, "a", T0, T0));
        d.ingest(alert(State::Resolved, "a", T0 + 60_000, T0));
        d.ingest(alert(State::Firing, "a", T0 + 180_000, T0 + 180_000));
        let (body, sent) = d.batch(0, &c, T0 + 200_000);
        assert_eq!(sent.len(), 2);
        assert_eq!((sent[0].kind, sent[1].kind), (Kind::Resolve, Kind::Firing));
        assert_eq!(body[1].starts_at, format_rfc3339(T0 + 180_000));
    }

    #[test]
    fn a_transition_arriving_during_a_request_is_not_settled_by_it() {
        let c = cfg();
        let mut d = Delivery::new(1);
        let fp = alert(State::Firing, "a", T0, T0).fingerprint;
        d.ingest(alert(State::Firing, "a", T0, T0));
        let (_, in_flight) = d.batch(0, &c, T0);
        d.ingest(alert(State::Resolved, "a", T0 + 60_000, T0));
        d.settle(0, &in_flight);
        assert_eq!(kinds(&d.batch(0, &c, T0).1), [(fp.as_str(), Kind::Resolve)]);
        // and a resolve superseded by a newer resolve stays owed too
        let (_, first) = d.batch(0, &c, T0);
        d.ingest(alert(State::Firing, "a", T0 + 120_000, T0 + 120_000));
        d.ingest(alert(State::Resolved, "a", T0 + 180_000, T0 + 120_000));
        d.settle(0, &first);
        assert!(d.is_owed(0));
    }

    #[test]
    fn batches_are_bounded() {
        let c = cfg();
        let mut d = Delivery::new(1);
        for i in 0..(MAX_BATCH + 10) {
            d.ingest(alert(State::Firing, &format!("c{i}"), T0, T0));
        }
        let (body, sent) = d.batch(0, &c, T0);
        assert_eq!(body.len(), MAX_BATCH);
        d.settle(0, &sent);
        assert_eq!(d.batch(0, &c, T0).0.len(), 10);
    }

    #[test]
    fn disabled_sink_keeps_nothing() {
        let mut d = Delivery::new(0);
        d.ingest(alert(State::Firing, "a", T0, T0));
        assert!(d.firing.is_empty());
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn backoff_doubles_to_a_cap_with_bounded_jitter() {
        let mut b = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..10 {
            b = next_backoff(b);
            seen.push(b.as_millis());
        }
        assert_eq!(
            seen,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
        );
        for _ in 0..100 {
            let j = jittered(BACKOFF_CAP);
            assert!(j >= BACKOFF_CAP / 2 && j <= BACKOFF_CAP, "{j:?}");
        }
    }

    #[test]
    fn log_gate_lets_one_line_through_per_interval() {
        let mut g = LogGate::default();
        let t = Instant::now();
        assert_eq!(g.allow(t), Some(0));
        assert_eq!(g.allow(t + Duration::from_secs(1)), None);
        assert_eq!(g.allow(t + Duration::from_secs(2)), None);
        assert_eq!(g.allow(t + LOG_EVERY + Duration::from_secs(1)), Some(2));
    }

    #[test]
    fn metrics_register_with_bounded_labels_and_twice_is_an_error() {
        let r = Registry::new();
        let m = Metrics::register(&r).expect("registers");
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
        assert!(Metrics::register(&r).is_err());
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
    fn passwords_in_urls_are_redacted_in_messages_and_logs() {
        assert_eq!(
            redact_url("https://ops:hunter2-secret@am:9093/prefix"),
            "https://ops:<redacted>@am:9093/prefix"
        );
        assert_eq!(redact_url("http://am:9093"), "http://am:9093");
        assert!(!redact_url("xx://u:hunter2-secret@").contains("hunter2"));
        let c = AlertmanagerConfig {
            urls: vec![
                "http://ops:hunter2-secret@am:9093".into(),
                "http://ops:hunter2-secret@am:9093/".into(),
            ],
            ..Default::default()
        };
        let e = c.validate().unwrap_err();
        assert!(e.starts_with("urls[1]:") && !e.contains("hunter2"), "{e}");
        assert!(!format!("{:?}", Target::new(&c.urls[0]).shown).contains("hunter2"));
    }
}
