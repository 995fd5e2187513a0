//! Mapping an alert transition onto Alertmanager's postable alert: labels that route it,
//! annotations on-call reads, and the `startsAt`/`endsAt` that keep it alive only while
//! overage does. Pure, so it is unit-tested without I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;

use super::config::AlertmanagerConfig;
use crate::alert::{Alert, AlertKind, State};
use crate::time::{format_rfc3339, Millis};

/// One element of the `POST /api/v2/alerts` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PostableAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    pub(crate) starts_at: String,
    pub(crate) ends_at: String,
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
/// client ids are free-form: everything but RFC 3986's unreserved characters is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `(startsAt, endsAt)` in ms. Firing: `endsAt` = now + 4 × resend, as Prometheus does, so
/// only a dead overage lets Alertmanager time the alert out. Resolved: `endsAt` = event time
/// but never in the future (Alertmanager would treat it as still active). `startsAt` never
/// exceeds `endsAt` or now: a skewed event clock would otherwise get a 400.
fn active_range(alert: &Alert, now: Millis, resend: Duration) -> (Millis, Millis) {
    let (at, since) = (alert.at, alert.since);
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
        format_rfc3339(a.since)
    );
    if a.state == State::Resolved {
        let _ = write!(d, "; resolved at {}", format_rfc3339(a.at));
    }
    for extra in [a.excess_text(), a.drivers_text()].into_iter().flatten() {
        let _ = write!(d, "; {extra}");
    }
    d
}

/// A URL template with this alert's `{client_id}` (percent-encoded), `{alert}` and
/// `{hostname}` filled in.
pub(crate) fn fill(template: &str, client_id: &str, kind: AlertKind) -> String {
    let mut u = template
        .replace(
            "{client_id}",
            &utf8_percent_encode(client_id, COMPONENT).to_string(),
        )
        .replace("{alert}", kind.as_str());
    if u.contains("{hostname}") {
        u = u.replace("{hostname}", &hostname());
    }
    u
}

/// This machine's host name: `HOSTNAME` (set in every Kubernetes pod), else the kernel's.
pub(crate) fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

pub(crate) fn to_postable(alert: &Alert, cfg: &AlertmanagerConfig, now: Millis) -> PostableAlert {
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

#[cfg(test)]
mod tests {
    use super::super::tests::{alert, cfg, T0};
    use super::*;

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
        assert_eq!(
            fill("{client_id}", "a-b.c_d~e/f?g&h%i", AlertKind::NewOrigin),
            "a-b.c_d~e%2Ff%3Fg%26h%25i"
        );
        let mut c = cfg();
        c.dashboard_url = Some("grafana/{client_id}".into());
        assert_eq!(c.validate().unwrap_err().field, "dashboard_url");
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
    }

    #[test]
    fn label_names_are_made_valid() {
        assert_eq!(label_name("plan").as_deref(), Some("plan"));
        assert_eq!(label_name("team-name").as_deref(), Some("team_name"));
        assert_eq!(label_name("9lives").as_deref(), Some("_9lives"));
        assert_eq!(label_name("é").as_deref(), Some("_"));
        assert_eq!(label_name(""), None);
    }
}
