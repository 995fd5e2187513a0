//! The webhook sink against a local HTTP server (bound on port 0, so tests run in parallel):
//! what arrives, in which order, signed how, and what is retried. Every wait is on a request
//! arriving (bounded by a deadline), never on a sleep.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use overage::alert::{Alert, State};
use overage::sink::webhook::{signature, Secret, WebhookConfig, WebhookSink};
use overage::sink::AlertSink;
use prometheus::Registry;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::time::Instant;

const T0: i64 = 1_789_050_000_000;
const DEADLINE: Duration = Duration::from_secs(10);

fn transition(state: State, client: &str, at: i64) -> Alert {
    Alert::example(state, client, at, T0)
}

/// One request as the receiver saw it.
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Clone)]
struct Receiver {
    /// Statuses to answer, in order; 200 once exhausted.
    script: Arc<Mutex<VecDeque<u16>>>,
    seen: mpsc::UnboundedSender<Received>,
}

async fn hook(AxumState(r): AxumState<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = r.script.lock().expect("script").pop_front().unwrap_or(200);
    let _ = r.seen.send(Received { headers, body });
    StatusCode::from_u16(status).expect("status")
}

/// A receiver at `http://127.0.0.1:<port>/hook` answering `script`, then 200.
async fn receiver(script: &[u16]) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (seen, rx) = mpsc::unbounded_channel();
    let state = Receiver {
        script: Arc::new(Mutex::new(script.iter().copied().collect())),
        seen,
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("a request within the deadline")
        .expect("the receiver is running")
}

fn config(url: String) -> WebhookConfig {
    WebhookConfig {
        url,
        timeout: Duration::from_secs(2),
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        ..WebhookConfig::default()
    }
}

/// Value of the webhook sink's `name{label=value}`.
fn metric(registry: &Registry, name: &str, label: (&str, &str)) -> f64 {
    for family in registry.gather() {
        if family.name() != name {
            continue;
        }
        for m in family.get_metric() {
            let labels = m.get_label();
            let has = |k: &str, v: &str| labels.iter().any(|l| l.name() == k && l.value() == v);
            if has("sink", "webhook") && has(label.0, label.1) {
                return m.get_counter().get_value();
            }
        }
    }
    panic!("no metric {name} {label:?}");
}

async fn flush(sink: WebhookSink) {
    Box::new(sink).flush(Instant::now() + DEADLINE).await;
}

#[tokio::test]
async fn firing_and_resolved_arrive_in_order_signed_with_the_extra_headers() {
    let (url, mut rx) = receiver(&[]).await;
    let mut cfg = config(url);
    cfg.secret = Secret::new("s3cr3t-shared-with-the-receiver");
    cfg.headers.insert("X-Team".into(), "billing".into());
    let registry = Registry::new();
    let sink = WebhookSink::start(cfg, &registry).expect("starts");
    let firing = transition(State::Firing, "acme", T0);
    let resolved = transition(State::Resolved, "acme", T0 + 3_600_000);
    sink.send(&firing).await.expect("queued");
    sink.send(&resolved).await.expect("queued");

    for sent in [&firing, &resolved] {
        let got = next(&mut rx).await;
        // the spec's alert JSON, as on the Kafka topic
        assert_eq!(got.json(), serde_json::to_value(sent).expect("json"));
        assert_eq!(got.headers["content-type"], "application/json");
        assert_eq!(got.headers["x-team"], "billing");
        // the receiver's side of the signature: HMAC-SHA256 of the raw body, hex
        let header = got.headers["x-overage-signature"].to_str().expect("ascii");
        let hex = header.strip_prefix("sha256=").expect("sha256= prefix");
        let mac_bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cr3t-shared-with-the-receiver")
            .expect("any key length");
        mac.update(&got.body);
        mac.verify_slice(&mac_bytes)
            .expect("the signature verifies");
        // and another key does not verify
        let mut other = Hmac::<Sha256>::new_from_slice(b"another key").expect("key");
        other.update(&got.body);
        assert!(other.verify_slice(&mac_bytes).is_err());
    }
    // (counted once the response is read: after the flush)
    flush(sink).await;
    assert_eq!(
        metric(
            &registry,
            "overage_alert_deliveries_total",
            ("result", "ok")
        ),
        2.0
    );
}

#[tokio::test]
async fn unsigned_without_a_secret() {
    let (url, mut rx) = receiver(&[]).await;
    let sink = WebhookSink::start(config(url), &Registry::new()).expect("starts");
    sink.send(&transition(State::Firing, "a", T0))
        .await
        .expect("queued");
    assert!(next(&mut rx)
        .await
        .headers
        .get("x-overage-signature")
        .is_none());
    flush(sink).await;
}

#[tokio::test]
async fn a_503_is_retried_with_the_same_request_until_it_succeeds() {
    let (url, mut rx) = receiver(&[503, 503]).await;
    let registry = Registry::new();
    let mut cfg = config(url);
    cfg.secret = Secret::new("k");
    let sink = WebhookSink::start(cfg, &registry).expect("starts");
    let a = transition(State::Firing, "a", T0);
    sink.send(&a).await.expect("queued");
    let first = next(&mut rx).await;
    for _ in 0..2 {
        let again = next(&mut rx).await;
        assert_eq!(again.body, first.body);
        assert_eq!(
            again.headers["x-overage-signature"],
            signature(b"k", &first.body).expect("signs").as_str()
        );
    }
    flush(sink).await;
    let m = |label| metric(&registry, "overage_alert_deliveries_total", label);
    assert_eq!((m(("result", "error")), m(("result", "ok"))), (2.0, 1.0));
    assert_eq!(
        metric(
            &registry,
            "overage_alert_delivery_failures_total",
            ("reason", "http_5xx")
        ),
        2.0
    );
    assert!(rx.try_recv().is_err(), "nothing after the success");
}

#[tokio::test]
async fn a_400_is_counted_and_not_retried() {
    let (url, mut rx) = receiver(&[400]).await;
    let registry = Registry::new();
    let sink = WebhookSink::start(config(url), &registry).expect("starts");
    let rejected = transition(State::Firing, "rejected", T0);
    let next_one = transition(State::Firing, "next", T0);
    sink.send(&rejected).await.expect("queued");
    sink.send(&next_one).await.expect("queued");
    assert_eq!(next(&mut rx).await.json()["client_id"], "rejected");
    // the very next request is the next transition, not a retry
    assert_eq!(next(&mut rx).await.json()["client_id"], "next");
    flush(sink).await;
    assert!(rx.try_recv().is_err(), "no retry after the flush either");
    assert_eq!(
        metric(
            &registry,
            "overage_alert_delivery_failures_total",
            ("reason", "http_4xx")
        ),
        1.0
    );
    let m = |label| metric(&registry, "overage_alert_deliveries_total", label);
    assert_eq!((m(("result", "error")), m(("result", "ok"))), (1.0, 1.0));
}

#[tokio::test]
async fn retries_are_bounded_then_the_next_transition_goes() {
    let (url, mut rx) = receiver(&[500, 500, 500]).await;
    let registry = Registry::new();
    let mut cfg = config(url);
    cfg.retries = 2;
    let sink = WebhookSink::start(cfg, &registry).expect("starts");
    sink.send(&transition(State::Firing, "given-up", T0))
        .await
        .expect("queued");
    sink.send(&transition(State::Firing, "next", T0))
        .await
        .expect("queued");
    for _ in 0..3 {
        assert_eq!(next(&mut rx).await.json()["client_id"], "given-up");
    }
    assert_eq!(next(&mut rx).await.json()["client_id"], "next");
    flush(sink).await;
}

fn refused_url() -> String {
    // a port with nothing listening
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    format!("http://127.0.0.1:{port}/hook")
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_given_up() {
    let registry = Registry::new();
    let mut cfg = config(refused_url());
    cfg.retries = 3;
    let sink = WebhookSink::start(cfg, &registry).expect("starts");
    assert!(sink.health().await.is_err(), "nothing listens there");
    sink.send(&transition(State::Firing, "a", T0))
        .await
        .expect("queued");
    flush(sink).await;
    let failures = metric(
        &registry,
        "overage_alert_delivery_failures_total",
        ("reason", "connect"),
    );
    assert_eq!(failures, 4.0, "the first attempt and 3 retries");
}

#[tokio::test]
async fn flush_gives_up_at_its_deadline() {
    let mut cfg = config(refused_url());
    // hours of retries
    cfg.retries = 100;
    cfg.backoff = Duration::from_secs(60);
    cfg.max_backoff = Duration::from_secs(3600);
    let sink = WebhookSink::start(cfg, &Registry::new()).expect("starts");
    sink.send(&transition(State::Firing, "a", T0))
        .await
        .expect("queued");
    let flushed = Box::new(sink).flush(Instant::now() + Duration::from_millis(100));
    tokio::time::timeout(DEADLINE, flushed)
        .await
        .expect("the flush ends at its deadline, not after the retries");
}

#[tokio::test]
async fn health_is_a_connection_to_the_receiver() {
    let (url, _rx) = receiver(&[]).await;
    let sink = WebhookSink::start(config(url), &Registry::new()).expect("starts");
    sink.health().await.expect("the receiver listens");
}

#[tokio::test]
async fn sending_only_queues_so_a_hung_receiver_holds_back_nobody() {
    // accepts connections and never answers
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (accepted, mut connections) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = accepted.send(socket);
        }
    });
    let mut cfg = config(format!("http://{addr}/hook"));
    cfg.timeout = Duration::from_secs(3600);
    let sink = WebhookSink::start(cfg, &Registry::new()).expect("starts");
    let queued = async {
        for i in 0..100 {
            let client = format!("c{i}");
            sink.send(&transition(State::Firing, &client, T0))
                .await
                .expect("queued");
        }
    };
    tokio::time::timeout(DEADLINE, queued)
        .await
        .expect("every send returns while the first request hangs");
    let _held = tokio::time::timeout(DEADLINE, connections.recv())
        .await
        .expect("the sink is connected");
    Box::new(sink)
        .flush(Instant::now() + Duration::from_millis(50))
        .await;
}
