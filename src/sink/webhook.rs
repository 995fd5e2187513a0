//! A generic webhook sink: each transition POSTed as the spec's alert JSON (the Kafka topic's
//! payload) to one URL, for receivers that speak neither Kafka nor Alertmanager (chat
//! bridges, ticketing, a billing team's own service).
//!
//! Transitions are delivered one at a time, in order, from the sink's own task. A connect
//! error, a timeout, a 5xx (or 408/429) is retried with backoff up to `retries` times; any
//! other 4xx is the request's fault and would fail the same way forever, so it is counted and
//! not retried. With a non-empty `secret`, each request carries `X-Overage-Signature: sha256=<hex>`, the
//! HMAC-SHA256 of the body under the secret, so the receiver can tell overage's requests from
//! anyone else's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::http::{check_http_url, deliver, redact_url};
use super::metrics::{gauge, DeliveryMetrics, Reason};
use super::retry::{jittered, Backoff, LogGate};
use super::{AlertSink, BoxFuture, FieldError, Queue, Queued, Stopped, MAX_QUEUE_CAPACITY};
use crate::alert::Alert;
use crate::redact::REDACTED;

pub const SINK: &str = "webhook";
/// The signature header: `sha256=` and the lowercase hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-overage-signature";

const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_RETRIES: u32 = 100;
/// Headers overage sets itself, which the config must not override.
const RESERVED_HEADERS: [&str; 4] = ["content-type", "content-length", "host", SIGNATURE_HEADER];

/// The `[alerts.webhook]` section. Its `Debug` and [`WebhookConfig::redacted`] hide the
/// secret, credentials in the URL and the values of secret-looking headers.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Where to POST. Empty: the sink is disabled.
    pub url: String,
    /// Per request, connect included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Retries after a failed attempt that is worth retrying (not counting the first).
    pub retries: u32,
    /// Delay before the first retry; it doubles with each retry up to `max_backoff` (with
    /// jitter: each wait is between half and all of it).
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Key of the HMAC-SHA256 signature header. Empty: requests are not signed. Best given
    /// as `OVERAGE_ALERTS__WEBHOOK__SECRET` rather than in the file.
    pub secret: Secret,
    /// Extra headers on every request (e.g. `Authorization`).
    pub headers: BTreeMap<String, String>,
    /// Transitions waiting for the delivery task; senders wait when it is full.
    pub queue_capacity: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            timeout: Duration::from_secs(10),
            retries: 5,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            secret: Secret::default(),
            headers: BTreeMap::new(),
            queue_capacity: 10_000,
        }
    }
}

/// A secret string whose `Debug` never shows it. It serializes as itself, since the config
/// goes through TOML and back for environment overrides; printing goes through
/// [`WebhookConfig::redacted`].
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.redacted();
        f.debug_struct("WebhookConfig")
            .field("url", &r.url)
            .field("timeout", &r.timeout)
            .field("retries", &r.retries)
            .field("backoff", &r.backoff)
            .field("max_backoff", &r.max_backoff)
            .field("secret", &r.secret)
            .field("headers", &r.headers)
            .field("queue_capacity", &r.queue_capacity)
            .finish()
    }
}

/// Headers whose values are credentials.
fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || crate::redact::is_secret(&n)
}

impl WebhookConfig {
    /// Whether a URL is configured.
    pub fn is_enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// A copy safe to print: the secret, a password in the URL and secret-looking header
    /// values replaced by `<redacted>`.
    pub fn redacted(&self) -> WebhookConfig {
        let mut c = self.clone();
        c.url = redact_url(&c.url);
        if !c.secret.is_empty() {
            c.secret = Secret::new(REDACTED);
        }
        for (name, value) in c.headers.iter_mut() {
            if is_secret_header(name) {
                *value = REDACTED.to_owned();
            }
        }
        c
    }

    /// Check every field; the error's field is relative to this section.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !self.url.is_empty() {
            let shown = redact_url(&self.url);
            check_http_url(&self.url)
                .map_err(|m| FieldError::new("url", format!("{shown:?} {m}")))?;
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(FieldError::new(
                "timeout",
                "must be positive and at most 1h",
            ));
        }
        if self.retries > MAX_RETRIES {
            return Err(FieldError::new(
                "retries",
                format!("must be at most {MAX_RETRIES}"),
            ));
        }
        if self.max_backoff.is_zero() || self.max_backoff > MAX_TIMEOUT {
            return Err(FieldError::new(
                "max_backoff",
                "must be positive and at most 1h",
            ));
        }
        if self.backoff.is_zero() || self.backoff > self.max_backoff {
            return Err(FieldError::new(
                "backoff",
                format!(
                    "must be positive and at most max_backoff ({})",
                    humantime::format_duration(self.max_backoff)
                ),
            ));
        }
        self.header_map()?;
        if self.queue_capacity == 0 || self.queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(FieldError::new(
                "queue_capacity",
                format!("must be between 1 and {MAX_QUEUE_CAPACITY}"),
            ));
        }
        Ok(())
    }

    /// The extra headers, checked.
    fn header_map(&self) -> Result<HeaderMap, FieldError> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let field = || format!("headers.{name:?}");
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| FieldError::new(field(), "is not a valid header name"))?;
            if RESERVED_HEADERS.contains(&parsed.as_str()) {
                return Err(FieldError::new(field(), "is set by overage"));
            }
            let mut v = HeaderValue::from_str(value).map_err(|_| {
                FieldError::new(field(), "value must be visible ASCII (no line breaks)")
            })?;
            v.set_sensitive(is_secret_header(name));
            map.insert(parsed, v);
        }
        Ok(map)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook sink: invalid configuration: {0}")]
    Config(FieldError),
    #[error("webhook sink: registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("webhook sink: building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("webhook sink: must be started inside a Tokio runtime")]
    NoRuntime,
}

/// The sink: a queue in front of its delivery task.
pub struct WebhookSink {
    queue: Queue,
    url: String,
    timeout: Duration,
}

impl WebhookSink {
    /// Validate the config and start the delivery task.
    pub fn start(
        cfg: WebhookConfig,
        registry: &prometheus::Registry,
    ) -> Result<WebhookSink, WebhookError> {
        cfg.validate().map_err(WebhookError::Config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WebhookError::NoRuntime)?;
        let metrics = DeliveryMetrics::register(registry, SINK, &Reason::HTTP)?;
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .default_headers(cfg.header_map().map_err(WebhookError::Config)?)
            .build()
            .map_err(WebhookError::Client)?;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let (url, timeout) = (cfg.url.clone(), cfg.timeout);
        let task = runtime.spawn(run(cfg, client, rx, metrics));
        Ok(WebhookSink {
            queue: Queue::new(tx, task, SINK),
            url,
            timeout,
        })
    }
}

impl AlertSink for WebhookSink {
    fn name(&self) -> &'static str {
        SINK
    }

    fn send<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<(), Stopped>> {
        Box::pin(self.queue.send(alert))
    }

    /// Deliveries are one at a time, in order: once the fence is reached, everything before
    /// it has been delivered or given up on.
    fn settled(&self) -> BoxFuture<'_, Result<(), Stopped>> {
        Box::pin(self.queue.settled())
    }

    fn flush(self: Box<Self>, deadline: Instant) -> BoxFuture<'static, ()> {
        let WebhookSink { queue, .. } = *self;
        Box::pin(queue.flush(deadline))
    }

    /// A webhook has no standard health endpoint: the check is that its host accepts a TCP
    /// connection.
    fn health(&self) -> BoxFuture<'static, Result<(), String>> {
        let (url, timeout) = (self.url.clone(), self.timeout);
        Box::pin(async move {
            let shown = redact_url(&url);
            let parsed = reqwest::Url::parse(&url).map_err(|e| format!("{shown}: {e}"))?;
            let host = parsed.host_str().unwrap_or_default().to_owned();
            let port = parsed.port_or_known_default().unwrap_or(80);
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("{shown}: {e}")),
                Err(_) => Err(format!("{shown}: no connection within {timeout:?}")),
            }
        })
    }
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` under `secret`. `None` only if HMAC
/// refused the key, which it does for no length.
pub fn signature(secret: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(body);
    let mut out = String::from("sha256=");
    for b in mac.finalize().into_bytes() {
        let _ = write!(out, "{b:02x}");
    }
    Some(out)
}

async fn run(
    cfg: WebhookConfig,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Queued>,
    metrics: DeliveryMetrics,
) {
    let policy = Backoff {
        start: cfg.backoff,
        cap: cfg.max_backoff,
    };
    let shown = redact_url(&cfg.url);
    let mut log = LogGate::default();
    while let Some(queued) = rx.recv().await {
        let alert = match queued {
            Queued::Alert(alert) => alert,
            Queued::Settle(done) => {
                let _ = done.send(());
                continue;
            }
        };
        metrics.queue_depth.set(gauge(rx.len()));
        metrics.pending.set(gauge(rx.len() + 1));
        let body = match serde_json::to_vec(&alert) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(sink = SINK, "encoding alert: {e}");
                continue;
            }
        };
        let signed = match cfg.secret.is_empty() {
            true => None,
            false => match signature(cfg.secret.expose(), &body) {
                Some(s) => Some(s),
                None => {
                    // never sent unsigned when the receiver expects a signature
                    metrics.error.inc();
                    tracing::error!(sink = SINK, "cannot sign with the configured secret");
                    continue;
                }
            },
        };
        let mut backoff = Duration::ZERO;
        let mut attempt = 0;
        loop {
            let mut request = client
                .post(&cfg.url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(sig) = &signed {
                request = request.header(SIGNATURE_HEADER, sig);
            }
            let failure = match deliver(request).await {
                Ok(()) => {
                    metrics.ok.inc();
                    break;
                }
                Err(f) => f,
            };
            metrics.error.inc();
            metrics.failure(failure.reason).inc();
            let retry = failure.retry && attempt < cfg.retries;
            if let Some(suppressed) = log.allow(Instant::now()) {
                tracing::warn!(
                    sink = SINK,
                    url = %shown,
                    reason = failure.reason.as_str(),
                    error = %failure.detail,
                    client_id = %alert.client_id,
                    retrying = retry,
                    suppressed,
                    "webhook delivery failed"
                );
            }
            if !retry {
                break;
            }
            attempt += 1;
            backoff = policy.next(backoff);
            tokio::time::sleep(jittered(backoff)).await;
        }
        metrics.pending.set(gauge(rx.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> WebhookConfig {
        WebhookConfig {
            url: "https://hooks.example/overage".into(),
            ..WebhookConfig::default()
        }
    }

    #[test]
    fn defaults_are_valid_and_disabled() {
        let d = WebhookConfig::default();
        assert!(!d.is_enabled());
        d.validate().expect("defaults are valid");
        enabled().validate().expect("valid");
        let c: WebhookConfig = toml::from_str(
            "url = \"http://h:8080/x\"\ntimeout = \"2s\"\nretries = 3\nbackoff = \"1s\"\n\
             secret = \"k\"\nheaders = { \"X-Team\" = \"billing\" }\n",
        )
        .expect("parses");
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.secret, Secret::new("k"));
        c.validate().expect("valid");
        assert!(toml::from_str::<WebhookConfig>("urls = [\"http://h\"]").is_err());
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad = |f: fn(&mut WebhookConfig), field: &str, says: &str| {
            let mut c = enabled();
            f(&mut c);
            let e = c.validate().expect_err("invalid");
            assert_eq!(e.field, field, "{e}");
            assert!(e.message.contains(says), "{e}");
        };
        bad(|c| c.url = "ftp://h/x".into(), "url", "http or https");
        bad(|c| c.url = "hooks/overage".into(), "url", "not a URL");
        bad(|c| c.timeout = Duration::ZERO, "timeout", "positive");
        bad(|c| c.retries = 1000, "retries", "at most 100");
        bad(|c| c.backoff = Duration::ZERO, "backoff", "positive");
        bad(
            |c| c.backoff = Duration::from_secs(60),
            "backoff",
            "max_backoff (30s)",
        );
        bad(
            |c| c.max_backoff = Duration::ZERO,
            "max_backoff",
            "positive",
        );
        bad(
            |c| {
                c.headers.insert("bad header".into(), "x".into());
            },
            "headers.\"bad header\"",
            "header name",
        );
        bad(
            |c| {
                c.headers.insert("X-A".into(), "line\nbreak".into());
            },
            "headers.\"X-A\"",
            "visible ASCII",
        );
        bad(
            |c| {
                c.headers.insert("X-Overage-Signature".into(), "x".into());
            },
            "headers.\"X-Overage-Signature\"",
            "set by overage",
        );
        bad(|c| c.queue_capacity = 0, "queue_capacity", "between 1");
    }

    #[test]
    fn secrets_never_show_in_debug_or_the_redacted_dump() {
        let mut c = enabled();
        c.url = "https://ops:hunter2-url@hooks.example/x".into();
        c.secret = Secret::new("hunter2-secret");
        c.headers
            .insert("Authorization".into(), "Bearer hunter2-bearer".into());
        c.headers.insert("X-Api-Key".into(), "hunter2-key".into());
        c.headers.insert("X-Team".into(), "billing".into());
        let shown = format!("{c:?}") + &toml::to_string(&c.redacted()).expect("serializes");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("billing") && shown.contains("hooks.example"),
            "{shown}"
        );
        // the original keeps them, and serializes them (environment overrides round-trip)
        assert!(toml::to_string(&c)
            .expect("serializes")
            .contains("hunter2-secret"));
        let e = WebhookConfig {
            url: "ftp://u:hunter2@h".into(),
            ..enabled()
        }
        .validate()
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?").as_deref(),
            Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }
}
