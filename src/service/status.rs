//! The status page (`/`), per-client pages (`/clients/{id}`), a client's HTML report from live
//! state (`/clients/{id}/report?month=YYYY-MM`) and the usage API
//! (`/api/v1/clients/{id}/usage`).
//!
//! Plain server-rendered HTML (maud: every value escaped), no scripts, no external assets, a
//! meta refresh every 10 s on the status and client pages: something to keep open on a laptop
//! during an incident. Handlers take the shard lock only to copy out small views.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::http::App;
use super::state::{readiness, Shared};
use crate::report::{self, api::UsageResponse, html::num, html::CSS, Period};
use crate::time::{format_rfc3339, month_label, month_of, wall_now, Millis};

/// Seconds between automatic refreshes of the status and client pages.
pub const REFRESH_SECONDS: u32 = 10;

/// Samples of (when, events read) per service instance (keyed by its shared state), so the
/// page can show a consumption rate without a background task.
static SAMPLES: Mutex<BTreeMap<usize, VecDeque<(Instant, u64)>>> = Mutex::new(BTreeMap::new());

/// How far back the rate looks at most.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Events per second since the oldest sample within [`RATE_WINDOW`], and over how long; `None`
/// on the first view (nothing to compare with yet).
pub fn consumption_rate(shared: &Arc<Shared>) -> Option<(f64, Duration)> {
    let now = Instant::now();
    let events = shared.events_seen();
    let key = Arc::as_ptr(shared) as usize;
    let mut all = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    let q = all.entry(key).or_default();
    while q.len() > 1 && q.front().is_some_and(|(t, _)| now - *t > RATE_WINDOW) {
        q.pop_front();
    }
    let rate = q.front().and_then(|&(t, n)| {
        let dt = now - t;
        (dt >= Duration::from_millis(500))
            .then(|| (events.saturating_sub(n) as f64 / dt.as_secs_f64(), dt))
    });
    q.push_back((now, events));
    while q.len() > 64 {
        q.pop_front();
    }
    rate
}

/// Percent-encode a path segment (client ids are arbitrary strings).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

fn page(title: &str, refresh: bool, body: Markup) -> Response {
    let m = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh { meta http-equiv="refresh" content=(REFRESH_SECONDS); }
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    };
    html_response(StatusCode::OK, m)
}

fn html_response(status: StatusCode, m: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        m.into_string(),
    )
        .into_response()
}

fn not_found(id: &str) -> Response {
    let m = html! {
        (DOCTYPE)
        html lang="en" { head { meta charset="utf-8"; title { "not found" } style { (PreEscaped(CSS)) } }
            body { nav { a href="/" { "← status" } }
                h1 { "No state for " (id) }
                p { "This instance holds no state for this client (another instance may own its \
                     partition, or it has sent no events)." } } }
    };
    html_response(StatusCode::NOT_FOUND, m)
}

/// `GET /`: readiness, consumption, active alerts, top clients, lag.
pub async fn index(State(app): State<App>) -> Response {
    let shared = &app.shared;
    let ready = readiness(shared);
    let rate = consumption_rate(shared);
    let (stats, clients) = shared.stats();
    let mut active: Vec<crate::alert::Alert> = shared
        .active
        .read()
        .map(|a| a.values().cloned().collect())
        .unwrap_or_default();
    active.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| b.ratio.total_cmp(&a.ratio))
            .then_with(|| a.client_id.cmp(&b.client_id))
    });
    let top = shared.top_clients(20);
    let lag: Vec<((String, i32), i64)> = shared
        .lag
        .lock()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    let assigned = shared.health.assigned.load(Ordering::Relaxed);
    let body = html! {
        h1 { "overage status" }
        p.meta {
            span { "as of " (format_rfc3339(wall_now() / 1000 * 1000)) " (refreshes every "
                (REFRESH_SECONDS) " s)" }
            span { a href="/metrics" { "metrics" } } span { a href="/api/v1/alerts" { "alerts JSON" } }
        }
        div.kpis {
            @match &ready {
                Ok(()) => div.kpi #ready { small { "readiness" } b.good { "ready" } },
                Err(why) => div.kpi #ready { small { "readiness" } b.bad { "not ready" }
                    ul.reasons { @for w in why { li { (w) } } } },
            }
            div.kpi #rate { small { "consumption (events/s, all outcomes)" }
                @match rate {
                    Some((r, dt)) => { b { (num(r.round())) } small { "over the last "
                        (format!("{:.0}", dt.as_secs_f64())) " s (since the previous view)" } },
                    None => { b { "—" } small { "first view: shown from the next refresh" } },
                }
            }
            div.kpi { small { "events read" } b { (num(stats.events() as f64)) } }
            div.kpi { small { "clients tracked" } b { (num(clients as f64)) } }
            div.kpi { small { "partitions" } b { (assigned) } }
            div.kpi { small { "alerts firing" } b class=(if active.is_empty() { "good" } else { "bad" }) { (active.len()) } }
        }
        h2 { "Active alerts" }
        @if active.is_empty() {
            p.empty #no-alerts { "No alert is firing." }
        } @else {
            table.alerts {
                thead { tr { th { "client" } th { "alert" } th { "severity" } th { "since" } th.n { "ratio" } th { "summary" } } }
                tbody { @for a in &active {
                    tr {
                        td { a href={"/clients/" (seg(&a.client_id))} { (a.client_id) } }
                        td { (a.alert.as_str()) }
                        td class={"sev-" (a.severity.as_str())} { (a.severity.as_str()) }
                        td { (a.since) } td.n { (format!("{:.2}", a.ratio)) } td { (a.summary) }
                    }
                } }
            }
        }
        h2 { "Top clients by ratio (last hour against contract, else learned baseline)" }
        @if top.is_empty() { p.empty { "No client yet." } } @else {
            table.top {
                thead { tr { th { "client" } th { "measured against" } th.n { "ratio" } th.n { "units, last hour" } th.n { "alerts firing" } } }
                tbody { @for c in &top {
                    tr {
                        td { a href={"/clients/" (seg(&c.client_id))} { (c.client_id) } }
                        td { @if c.contracted { "contract" } @else { "learned baseline" } }
                        td.n class=(if c.ratio >= 1.5 { "bad" } else { "" }) { (format!("{:.2}", c.ratio)) }
                        td.n { (num(c.last_hour_units)) } td.n { (c.alerts_firing) }
                    }
                } }
            }
        }
        h2 { "Consumer lag per partition" }
        @if lag.is_empty() { p.empty { "No lag reported yet (no assignment, or no statistics yet)." } } @else {
            table.lag {
                thead { tr { th { "topic" } th.n { "partition" } th.n { "lag (messages)" } } }
                tbody { @for ((topic, p), l) in &lag {
                    tr { td { (topic) } td.n { (p) } td.n class=(if *l > shared.config.kafka.max_ready_lag { "bad" } else { "" }) { (num(*l as f64)) } }
                } }
            }
        }
    };
    page("overage status", true, body)
}

/// `GET /clients/{id}`: a client's windows, contract, month, alerts, and a link to its report.
pub async fn client_page(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some(v) = app.shared.client_view(&id) else {
        return not_found(&id);
    };
    let month = crate::time::parse_rfc3339(&v.as_of).map_or_else(
        || month_label(month_of(wall_now())),
        |t| month_label(month_of(t)),
    );
    let body = html! {
        nav { a href="/" { "← status" } }
        h1 { "Client " (v.client_id) }
        p.meta { span { "as of " (v.as_of) } span { "first seen " (v.first_seen) }
            span { "last seen " (v.last_seen) } }
        p { a #report href={"/clients/" (seg(&v.client_id)) "/report?month=" (month)} {
            "Usage report for " (month) " (HTML, charts)" } }
        div.kpis {
            @match &v.contract {
                Some(k) => div.kpi { small { "contract" } b { (num(k.units)) " / " (k.per) }
                    small { (k.plan.as_deref().unwrap_or("")) } },
                None => div.kpi { small { "contract" } b { "none" } small { "learned baseline" } },
            }
            div.kpi { small { "units this month" } b { (num(v.usage.month_units)) }
                @if let Some(cap) = v.contract.as_ref().and_then(|k| k.monthly_cap) {
                    small { (format!("{:.0}% of cap {}", 100.0 * v.usage.month_units / cap.max(1e-9), num(cap))) }
                } }
            div.kpi { small { "units last month" } b { (num(v.usage.previous_month_units)) } }
            div.kpi { small { "baseline" } b { @if v.baseline.warm { "warm" } @else { "learning" } }
                small { (v.baseline.learned_hours) " h learned" } }
        }
        h2 { "Windows" }
        table.windows {
            thead { tr { th { "window" } th.n { "observed" } th.n { "contracted" } th.n { "ratio" } } }
            tbody { @for w in &v.windows {
                tr { td { (w.window) } td.n { (num(w.observed)) }
                    td.n { (w.expected.map(num).unwrap_or_else(|| "-".into())) }
                    td.n class=(if w.ratio.is_some_and(|r| r >= 1.5) { "bad" } else { "" }) {
                        (w.ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into())) } }
            } }
        }
        h2 { "Alerts" }
        @if v.alerts.is_empty() { p.empty { "None pending or firing." } } @else {
            ul.alerts { @for a in &v.alerts {
                li.alert { span class={"sev-" (a.severity)} { (a.severity) } " " b { (a.alert) }
                    " ratio " (format!("{:.2}", a.ratio))
                    @if let Some(s) = &a.firing_since { " firing since " (s) } @else { " (pending)" } }
            } }
        }
        h2 { "Recent alert transitions" }
        @if v.alert_history.is_empty() { p.empty { "None." } } @else {
            table.history {
                thead { tr { th { "at" } th { "alert" } th { "severity" } th { "state" } th { "summary" } } }
                tbody { @for a in v.alert_history.iter().rev() {
                    tr { td { (format_rfc3339(a.at)) } td { (a.kind.as_str()) }
                        td class={"sev-" (a.severity.as_str())} { (a.severity.as_str()) }
                        td { (format!("{:?}", a.state).to_lowercase()) } td { (a.summary) } }
                } }
            }
        }
    };
    page(&format!("overage: {}", v.client_id), true, body)
}

/// `GET /clients/{id}/report?month=YYYY-MM`: the HTML report from live state.
pub async fn client_report(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let period = match q.get("month") {
        None => Period::default(),
        Some(m) => match report::parse_month(m) {
            Some((from, to)) => Period {
                from: Some(from),
                to: Some(to),
            },
            None => {
                return bad_request(&format!("`month` must be like 2026-09, not `{m}`"));
            }
        },
    };
    let Some(data) = app
        .shared
        .with_client(&id, |e| report::from_engine(e, &id, &period))
        .flatten()
    else {
        return not_found(&id);
    };
    let r = report::report(
        &period,
        "live state of this instance".into(),
        BTreeMap::new(),
        vec![report::build(&data, &period)],
    );
    html_response(StatusCode::OK, report::html::page(&r))
}

fn bad_request(msg: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": msg })),
    )
        .into_response()
}

/// `GET /api/v1/clients/{id}/usage?from=&to=&by=product|origin|hour`.
pub async fn usage(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (period, by) = match report::api::parse_usage_query(&q) {
        Ok(x) => x,
        Err(msg) => return bad_request(&msg),
    };
    let (from, to): (Millis, Millis) = (
        period.from.unwrap_or(Millis::MIN),
        period.to.unwrap_or(Millis::MAX),
    );
    match app.shared.usage(&id, from, to, by) {
        Some((rows, as_of)) => {
            Json(UsageResponse::new(&id, &period, by, Some(as_of), &rows)).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no state for this client on this instance"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::http::router;
    use super::super::metrics::Metrics;
    use super::*;
    use crate::config::Config;
    use crate::contract::Contracts;
    use crate::engine::Engine;

    const CONTRACTS: &str = r#"
[[contract]]
client_id = "<script>alert(1)</script>"
plan = "gold"
baseline = { units = 100, per = "1h" }
monthly_cap = 100000
"#;

    /// The real router over state with one engine fed a few events.
    async fn serve() -> String {
        let config = Config::default();
        let contracts =
            Arc::new(Contracts::parse(CONTRACTS, std::path::Path::new("contracts.toml")).unwrap());
        let shared = Shared::new(config.clone(), contracts.clone());
        let mut engine = Engine::new(&config, contracts);
        let decoder = crate::decode::Decoder::canonical(config.input.max_event_bytes);
        let mut out = vec![];
        for (i, (ts, product)) in [
            ("2026-09-10T10:05:00Z", "search"),
            ("2026-09-10T10:20:00Z", "timeline"),
            ("2026-09-10T11:05:00Z", "search"),
            ("2026-09-10T12:30:00Z", "search"),
        ]
        .iter()
        .enumerate()
        {
            let line = serde_json::json!({"ts": ts, "client_id": "<script>alert(1)</script>",
                "event_id": i.to_string(), "units": 10, "product": product, "origin_country": "US"});
            engine.ingest(&decoder, line.to_string().as_bytes(), None, &mut out);
        }
        engine.flush(&mut out);
        shared.shards().insert(("t".into(), 0), engine);
        let app = router(App {
            shared,
            metrics: Arc::new(Metrics::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    const ID: &str = "%3Cscript%3Ealert%281%29%3C%2Fscript%3E";

    async fn get(url: String) -> (u16, String) {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn usage_api_answers_and_rejects_precisely() {
        let base = serve().await;
        let (s, body) = get(format!("{base}/api/v1/clients/{ID}/usage?by=product")).await;
        assert_eq!(s, 200, "{body}");
        let r: UsageResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(r.client_id, "<script>alert(1)</script>");
        assert_eq!((r.units, r.events), (40.0, 4));
        assert_eq!(r.totals[0].key, "search");
        assert_eq!(r.totals[0].units, 30.0);
        assert_eq!(r.rows.len(), 4);
        let (s, body) = get(format!(
            "{base}/api/v1/clients/{ID}/usage?by=hour&from=2026-09-10T11:00:00Z&to=2026-09-10T12:00:00Z"
        ))
        .await;
        assert_eq!(s, 200);
        let r: UsageResponse = serde_json::from_str(&body).unwrap();
        assert_eq!((r.units, r.rows.len()), (10.0, 1));
        let (s, body) = get(format!("{base}/api/v1/clients/{ID}/usage?by=origin")).await;
        assert_eq!(s, 200);
        assert!(body.contains("\"US\""), "{body}");

        for (q, needle) in [
            ("by=day", "product, origin or hour"),
            ("from=soon", "`from`"),
            ("from=2026-09-11&to=2026-09-10", "empty"),
            ("limit=3", "unknown parameter `limit`"),
        ] {
            let (s, body) = get(format!("{base}/api/v1/clients/{ID}/usage?{q}")).await;
            assert_eq!(s, 400, "{q}: {body}");
            assert!(body.contains(needle), "{q}: {body}");
        }
        let (s, _) = get(format!("{base}/api/v1/clients/nobody/usage")).await;
        assert_eq!(s, 404);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_render_and_escape() {
        let base = serve().await;
        let (s, body) = get(format!("{base}/")).await;
        assert_eq!(s, 200);
        assert!(body.contains("http-equiv=\"refresh\""), "{body}");
        assert!(body.contains("Top clients"), "{body}");
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains(&format!("/clients/{ID}")), "{body}");
        let (s, body) = get(format!("{base}/clients/{ID}")).await;
        assert_eq!(s, 200);
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains("report?month=2026-09"), "{body}");
        let (s, body) = get(format!("{base}/clients/{ID}/report?month=2026-09")).await;
        assert_eq!(s, 200);
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains("svg class=\"chart usage\""), "{body}");
        assert!(body.contains("svg class=\"chart burn\""), "{body}");
        let (s, _) = get(format!("{base}/clients/{ID}/report?month=Sept")).await;
        assert_eq!(s, 400);
        let (s, _) = get(format!("{base}/clients/nobody")).await;
        assert_eq!(s, 404);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_and_usage_need_the_token_when_one_is_set() {
        let mut config = Config::default();
        config.http.api_token =
            Some(crate::config::ApiToken::new("status-page-token-0123456789").unwrap());
        let app = router(App {
            shared: Shared::new(config, Arc::new(Contracts::default())),
            metrics: Arc::new(Metrics::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let c = reqwest::Client::new();
        for path in [
            "/",
            "/clients/a",
            "/clients/a/report",
            "/api/v1/clients/a/usage",
        ] {
            let r = c.get(format!("http://{addr}{path}")).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{path}");
            let r = c
                .get(format!("http://{addr}{path}"))
                .bearer_auth("status-page-token-0123456789")
                .send()
                .await
                .unwrap();
            assert!(matches!(r.status().as_u16(), 200 | 404), "{path}");
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("a b/c?"), "a%20b%2Fc%3F");
        assert_eq!(seg("msft-bing"), "msft-bing");
    }
}
