//! The status page (`/`), per-client pages (`/clients/{id}`), a client's HTML report from live
//! state (`/clients/{id}/report?month=YYYY-MM`) and the usage API
//! (`/api/v1/clients/{id}/usage`).
//!
//! Plain server-rendered HTML (maud: every value escaped), no scripts, no external assets, a
//! meta refresh every 10 s on the status and client pages: something to keep open on a laptop
//! during an incident. Handlers take the shard lock only to copy out small views.
//!
//! The first questions in an incident are "since when, and against what": each top client and
//! each client page has its last 24 hours by hour as a sparkline against what the client is
//! measured by (its contract, else its learned baseline), drawn for the clients shown only,
//! since the consumer waits on the same lock. A client whose learned baseline is still in its
//! warm-up shows how many days it still needs instead of a ratio of 0.00, which reads as "idle".

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
use super::state::{eval_time, readiness, Shared};
use crate::baseline::{BaselineParams, Seasonal};
use crate::client::Client;
use crate::engine::Engine;
use crate::report::svg::{short, sparkline, SparkPoint, SparkSize};
use crate::report::{self, api::UsageResponse, html::num, html::CSS, Period};
use crate::time::{
    format_rfc3339, hour_of, hour_of_day, month_label, month_of, wall_now, Millis, HOUR_MS,
};

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

/// Hours a sparkline shows: whole clock hours, and the last 60 minutes last.
const TREND_HOURS: i64 = 24;

/// What the pages draw beside a client's numbers, copied out under the shard lock.
struct Glance {
    trend: Vec<SparkPoint>,
    /// What the trend's reference line is, for its titles.
    reference: &'static str,
    /// The last hour against the contract, else the warm learned baseline (as the top-clients
    /// table computes it); `None` when there is nothing to measure against.
    ratio: Option<f64>,
    /// Days until the learned baseline may be trusted; `None` once it is.
    learning_days_left: Option<u32>,
}

impl Glance {
    /// Whether the client is only measured against a baseline still in its warm-up.
    fn learning(&self, contracted: bool) -> Option<u32> {
        self.learning_days_left.filter(|_| !contracted)
    }
}

fn glance(e: &Engine, c: &Client) -> Glance {
    let t = eval_time(e);
    let p = &e.detectors().baseline;
    let contract_rate = c
        .contract
        .map(|k| e.contracts().by_index(k as usize).rate_per_ms());
    let warm = c.baseline.is_warm(p);
    let expected = |end: Millis, dur: Millis| match contract_rate {
        Some(r) => r * dur as f64,
        None if warm => c.baseline.expected(end, dur, p),
        None => 0.0,
    };
    // The last point is the 60 minutes up to `t`, the same numbers as the top-clients table's
    // "units, last hour" and ratio (a clock hour still under way would dip at the end of every
    // line, or swing with every call if scaled up); before it, whole clock hours from the
    // rollup (exact, late events included).
    let (used, dur) = c.windows.sum(t, HOUR_MS);
    let last_h = (t - 1).div_euclid(HOUR_MS);
    let first_h = hour_of(c.first_seen);
    let mut totals = c
        .rollup
        .hour_totals((last_h - TREND_HOURS + 1) * HOUR_MS, last_h * HOUR_MS)
        .into_iter()
        .peekable();
    let mut trend: Vec<SparkPoint> = (last_h - TREND_HOURS + 1..last_h)
        .map(|h| {
            let mut units = 0.0;
            while let Some(&(hour, u)) = totals.peek() {
                if i64::from(hour) > h {
                    break;
                }
                if i64::from(hour) == h {
                    units = u;
                }
                totals.next();
            }
            SparkPoint {
                t: h * HOUR_MS,
                units: (h >= first_h).then_some(units),
                reference: (contract_rate.is_some() || warm)
                    .then(|| expected((h + 1) * HOUR_MS, HOUR_MS)),
            }
        })
        .collect();
    trend.push(SparkPoint {
        t: t - HOUR_MS,
        units: Some(used),
        reference: (contract_rate.is_some() || warm).then(|| expected(t, HOUR_MS)),
    });
    let expected = expected(t, dur);
    Glance {
        trend,
        reference: if contract_rate.is_some() {
            "contract"
        } else {
            "learned baseline"
        },
        ratio: (expected > 0.0).then(|| crate::alert::round2(used / expected)),
        learning_days_left: learning_days_left(&c.baseline, c.first_seen, t, p),
    }
}

/// Whole days until `b` may be trusted (see [`Seasonal::is_warm`]), at event time `t`: the
/// configured warm-up, and at least a first complete week of calendar days (a client first
/// seen at 15:00 needs the rest of that day too). Counted from where the baseline started, not
/// from `first_seen`, which a relearn after a long silence does not move; and up to `t` rather
/// than its learned hours, which an idle client catches up on only at its next evaluation. At
/// least 1 while not warm: a week without traffic, or frozen by an alert, teaches no weekday
/// factors, and the next day to close may.
fn learning_days_left(
    b: &Seasonal,
    first_seen: Millis,
    t: Millis,
    p: &BaselineParams,
) -> Option<u32> {
    if b.is_warm(p) {
        return None;
    }
    // Every hour since the start is learned once, so the start is the next hour less those.
    let start = b.next_hour().map_or_else(
        || hour_of(first_seen),
        |next| next - i64::from(b.learned_hours()),
    );
    let partial_first_day = (24 - hour_of_day(start) as i64) % 24;
    let needed = i64::from(p.warmup_hours).max(7 * 24 + partial_first_day);
    let elapsed = (t.div_euclid(HOUR_MS) - start).max(i64::from(b.learned_hours()));
    let left = (needed - elapsed).max(0);
    Some(u32::try_from((left + 23) / 24).unwrap_or(u32::MAX).max(1))
}

fn learning(days_left: u32) -> String {
    match days_left {
        1 => "learning (1 day left)".to_owned(),
        n => format!("learning ({n} days left)"),
    }
}

/// A sparkline's accessible summary: the last point against its reference.
fn trend_label(id: &str, g: &Glance) -> String {
    let last = g
        .trend
        .iter()
        .rev()
        .find_map(|p| p.units.map(|u| (u, p.reference)));
    match last {
        Some((u, Some(r))) => format!(
            "{id}: units per hour over the last 24 h, now {} against {} by its {}",
            short(u),
            short(r),
            g.reference
        ),
        Some((u, None)) => format!(
            "{id}: units per hour over the last 24 h, now {} (its learned baseline is still learning)",
            short(u)
        ),
        None => format!("{id}: no usage in the last 24 h"),
    }
}

/// `GET /`: readiness, consumption, active alerts, top clients, lag.
pub async fn index(State(app): State<App>) -> Response {
    let shared = &app.shared;
    let ready = readiness(shared);
    let rate = consumption_rate(shared);
    let (stats, tracked) = shared.stats();
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
    // Only the clients shown, one engine lock at a time: the consumer needs them too.
    let glances: Vec<Option<Glance>> = top
        .iter()
        .map(|c| {
            shared
                .with_client(&c.client_id, |e| {
                    e.client(&c.client_id).map(|cl| glance(e, &cl))
                })
                .flatten()
        })
        .collect();
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
            div.kpi { small { "clients tracked" } b { (num(tracked.clients as f64)) } }
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
                        td { (format_rfc3339(a.since)) } td.n { (format!("{:.2}", a.ratio)) } td { (a.details()) }
                    }
                } }
            }
        }
        h2 { "Top clients by ratio (last hour against contract, else learned baseline)" }
        @if top.is_empty() { p.empty { "No client yet." } } @else {
            table.top {
                thead { tr { th { "client" } th { "measured against" } th.n { "ratio" }
                    th { "last 24 h, units per hour" } th.n { "units, last hour" } th.n { "alerts firing" } } }
                tbody { @for (c, g) in top.iter().zip(&glances) {
                    tr {
                        td { a href={"/clients/" (seg(&c.client_id))} { (c.client_id) } }
                        td { @if c.contracted { "contract" } @else { "learned baseline" } }
                        @match g.as_ref().and_then(|g| g.learning(c.contracted)) {
                            Some(days) => td.n.ratio.muted { (learning(days)) },
                            None => td class=(if c.ratio >= 1.5 { "n ratio bad" } else { "n ratio" }) {
                                (format!("{:.2}", c.ratio)) },
                        }
                        td.trend { @if let Some(g) = g {
                            (sparkline(&g.trend, SparkSize::Cell, &trend_label(&c.client_id, g), g.reference)) } }
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
                    tr { td { (topic) } td.n { (p) } td class=(if *l > shared.config.kafka.max_ready_lag { "n bad" } else { "n" }) { (num(*l as f64)) } }
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
    let g = app
        .shared
        .with_client(&id, |e| e.client(&id).map(|c| glance(e, &c)))
        .flatten();
    let contracted = v.contract.is_some();
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
            @if let Some(over) = v.usage.over_contract_month {
                div.kpi #over-contract { small { "units over contract this month" }
                    b class=(if over > 0.0 { "bad" } else { "good" }) { (num(over)) } }
            }
            div.kpi #ratio { small { "last hour against " @if contracted { "contract" } @else { "learned baseline" } }
                @match g.as_ref().map(|g| (g.learning(contracted), g.ratio)) {
                    Some((Some(days), _)) => b.muted { (learning(days)) },
                    Some((None, Some(r))) => b class=(if r >= 1.5 { "bad" } else { "" }) { (format!("{r:.2}")) },
                    _ => b { "—" },
                } }
            div.kpi { small { "baseline" }
                @match g.as_ref().map(|g| g.learning_days_left) {
                    Some(None) => b { "warm" },
                    Some(Some(days)) => b { (learning(days)) },
                    None => b { @if v.baseline.warm { "warm" } @else { "learning" } },
                }
                small { (v.baseline.learned_hours) " h learned" } }
        }
        @if let Some(g) = &g {
            h2 { "Last 24 hours, units per hour against its " (g.reference) }
            (sparkline(&g.trend, SparkSize::Page, &trend_label(&v.client_id, g), g.reference))
        }
        h2 { "Windows" }
        table.windows {
            thead { tr { th { "window" } th.n { "observed" } th.n { "contracted" } th.n { "ratio" } } }
            tbody { @for w in &v.windows {
                tr { td { (w.window) } td.n { (num(w.observed)) }
                    td.n { (w.expected.map(num).unwrap_or_else(|| "-".into())) }
                    td class=(if w.ratio.is_some_and(|r| r >= 1.5) { "n bad" } else { "n" }) {
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
    use crate::time::MINUTE_MS;

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
        let mut lines = vec![];
        for (i, (ts, product)) in [
            ("2026-09-10T10:05:00Z", "search"),
            ("2026-09-10T10:20:00Z", "timeline"),
            ("2026-09-10T11:05:00Z", "search"),
            ("2026-09-10T12:30:00Z", "search"),
        ]
        .iter()
        .enumerate()
        {
            let ts = crate::time::parse_rfc3339(ts).unwrap();
            lines.push((ts, serde_json::json!({"ts": ts, "client_id": "<script>alert(1)</script>",
                "event_id": i.to_string(), "units": 10, "product": product, "origin_country": "US"})));
        }
        // Uncontracted: `learner` since 11:10 the same day (its baseline in warm-up), `veteran`
        // every hour since the start of the month (warm).
        for (i, m) in [70, 100, 140].iter().enumerate() {
            let ts = crate::time::parse_rfc3339("2026-09-10T10:00:00Z").unwrap() + m * MINUTE_MS;
            lines.push((
                ts,
                serde_json::json!({"ts": ts, "client_id": "learner",
                "event_id": format!("l{i}"), "units": 5}),
            ));
        }
        let month = crate::time::parse_rfc3339("2026-09-01T00:30:00Z").unwrap();
        for h in 0..9 * 24 + 13 {
            let ts = month + h * HOUR_MS;
            lines.push((
                ts,
                serde_json::json!({"ts": ts, "client_id": "veteran",
                "event_id": format!("v{h}"), "units": 60}),
            ));
        }
        // in time order, as a partition delivers them (nothing late)
        lines.sort_by_key(|l| l.0);
        for (_, line) in lines {
            engine.ingest(&decoder, line.to_string().as_bytes(), None, &mut out);
        }
        engine.flush(&mut out);
        shared.insert(("t".into(), 0), engine);
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
        // with the token, each route's own answer: no client "a" here, so 404 past the index
        for (path, authorised) in [
            ("/", 200),
            ("/clients/a", 404),
            ("/clients/a/report", 404),
            ("/api/v1/clients/a/usage", 404),
        ] {
            let r = c.get(format!("http://{addr}{path}")).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{path}");
            let r = c
                .get(format!("http://{addr}{path}"))
                .bearer_auth("status-page-token-0123456789")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), authorised, "{path}");
        }
    }

    /// The `<tr>` of `id` in the top-clients table.
    fn top_row<'a>(page: &'a str, id: &str) -> &'a str {
        let table = &page[page.find("<table class=\"top\"").expect("a top table")..];
        let at = table
            .find(&format!("href=\"/clients/{id}\""))
            .unwrap_or_else(|| panic!("{id} in the top table: {table}"));
        let start = table[..at].rfind("<tr>").unwrap();
        &table[start..at + table[at..].find("</tr>").unwrap()]
    }

    /// The text of the first element whose class attribute starts with `class`.
    fn text_of<'a>(html: &'a str, class: &str) -> &'a str {
        let at = html
            .find(&format!("class=\"{class}"))
            .unwrap_or_else(|| panic!("no {class} in {html}"));
        let start = at + html[at..].find('>').unwrap() + 1;
        &html[start..start + html[start..].find('<').unwrap()]
    }

    /// Points of the polyline of `class` in `html` (0 when there is none).
    fn points(html: &str, class: &str) -> usize {
        let Some(at) = html.find(&format!("<polyline class=\"{class}\" points=\"")) else {
            return 0;
        };
        let rest = &html[at..];
        let start = rest.find("points=\"").unwrap() + 8;
        rest[start..start + rest[start..].find('"').unwrap()]
            .split(' ')
            .count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_show_trends_and_how_long_a_baseline_still_learns() {
        let base = serve().await;
        let (s, page) = get(format!("{base}/")).await;
        assert_eq!(s, 200, "{page}");
        // one sparkline per top client, nothing more
        assert_eq!(page.matches("<svg class=\"spark\"").count(), 3, "{page}");

        // learning since 11:10 on Thursday the 10th, at 12:31: the first whole week of days
        // ends with the 17th, so 7.5 days left, said as 8
        let learner = top_row(&page, "learner");
        assert_eq!(
            text_of(learner, "n ratio"),
            "learning (8 days left)",
            "{learner}"
        );
        assert!(!learner.contains("0.00"), "{learner}");
        // its usage since 11:00 (that hour, and the last 60 minutes), no reference yet
        assert_eq!(points(learner, "usage"), 2, "{learner}");
        assert_eq!(points(learner, "reference"), 0, "{learner}");
        assert!(learner.contains("still learning"), "{learner}");

        // warm: a ratio, against the learned baseline hour by hour over the whole day
        let veteran = top_row(&page, "veteran");
        let ratio: f64 = text_of(veteran, "n ratio")
            .parse()
            .unwrap_or_else(|_| panic!("a warmed-up client shows a number: {veteran}"));
        assert!((0.5..2.0).contains(&ratio), "{veteran}");
        assert_eq!(points(veteran, "usage"), 24, "{veteran}");
        assert_eq!(points(veteran, "reference"), 24, "{veteran}");
        assert!(veteran.contains("by its learned baseline"), "{veteran}");

        // contracted: a number from the start, against its contract's flat 100 units per hour,
        // usage from its first hour (10:00) on
        let contracted = top_row(&page, ID);
        assert!(
            text_of(contracted, "n ratio").parse::<f64>().is_ok(),
            "{contracted}"
        );
        assert_eq!(points(contracted, "usage"), 3, "{contracted}");
        assert_eq!(points(contracted, "reference"), 24, "{contracted}");
        assert!(
            contracted.contains("contract: 100 units per hour"),
            "{contracted}"
        );

        // the client pages: the same, larger, and the warm-up there too
        let (s, page) = get(format!("{base}/clients/learner")).await;
        assert_eq!(s, 200, "{page}");
        assert_eq!(page.matches("learning (8 days left)").count(), 2, "{page}");
        assert_eq!(
            page.matches("<svg class=\"spark large\"").count(),
            1,
            "{page}"
        );
        assert_eq!(points(&page, "usage"), 2, "{page}");
        let (_, page) = get(format!("{base}/clients/veteran")).await;
        assert!(!page.contains("learning ("), "{page}");
        let kpi = &page[page.find("id=\"ratio\"").expect("a ratio kpi")..];
        let b = &kpi[kpi.find("<b").unwrap()..];
        let r = &b[b.find('>').unwrap() + 1..b.find("</b>").unwrap()];
        assert!(r.parse::<f64>().is_ok(), "a number once warm: {kpi}");
        assert_eq!(points(&page, "reference"), 24, "{page}");
        let (_, page) = get(format!("{base}/clients/{ID}")).await;
        assert_eq!(points(&page, "usage"), 3, "{page}");
        assert!(!page.contains("<script>"), "{page}");
    }

    /// A Monday 00:00 UTC, as an hour index.
    const MONDAY_H: i64 = 1_787_529_600_000 / HOUR_MS;

    #[test]
    fn days_left_in_warm_up_count_whole_calendar_days_from_where_learning_started() {
        let p = BaselineParams::default();
        let at = |h: i64| (MONDAY_H + h) * HOUR_MS;
        // not evaluated yet: from first_seen; a week to learn, an hour of it gone
        let fresh = Seasonal::default();
        assert_eq!(learning_days_left(&fresh, at(0), at(1), &p), Some(7));
        // first seen at 15:00: the rest of Monday does not count as a day of the first week
        let mut b = Seasonal::default();
        b.start(MONDAY_H + 15);
        for h in 15..18 {
            b.learn_hour(MONDAY_H + h, 60.0, 1.0, false, &p);
        }
        assert_eq!(learning_days_left(&b, at(15), at(18), &p), Some(8));
        // an idle client's hours are not learned until its next evaluation; they still pass
        assert_eq!(learning_days_left(&b, at(15), at(18 + 48), &p), Some(6));

        let mut b = Seasonal::default();
        b.start(MONDAY_H);
        for h in 0..8 * 24 {
            b.learn_hour(MONDAY_H + h, 60.0, 1.0, false, &p);
        }
        assert_eq!(learning_days_left(&b, at(0), at(8 * 24), &p), None, "warm");
        // a longer configured warm-up
        let slow = BaselineParams {
            warmup_hours: 14 * 24,
            ..p.clone()
        };
        assert_eq!(learning_days_left(&b, at(0), at(8 * 24), &slow), Some(6));
        // relearning after three silent days starts the count again, first_seen or not
        for h in 8 * 24..11 * 24 {
            b.learn_hour(MONDAY_H + h, 0.0, 1.0, false, &p);
        }
        assert_eq!(learning_days_left(&b, at(0), at(11 * 24), &p), Some(7));

        // a week frozen by an alert taught nothing: still learning, with a day to go at least
        let mut b = Seasonal::default();
        b.start(MONDAY_H);
        for h in 0..8 * 24 {
            b.learn_hour(MONDAY_H + h, 60.0, 1.0, true, &p);
        }
        assert_eq!(learning_days_left(&b, at(0), at(8 * 24), &p), Some(1));
        assert_eq!(learning(1), "learning (1 day left)");
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("a b/c?"), "a%20b%2Fc%3F");
        assert_eq!(seg("msft-bing"), "msft-bing");
    }
}
