//! The `[alerts.alertmanager]` section and its validation: strict like the rest of the config
//! (a misspelt key is an error) and precise (the error names the field, URLs shown redacted).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::mapping::fill;
use crate::alert::AlertKind;
use crate::sink::http::{check_http_url, redact_url};
use crate::sink::{FieldError, MAX_QUEUE_CAPACITY};

/// Upper bounds that keep `Instant + interval` and `4 × resend_interval` far from overflow.
const MAX_RESEND_INTERVAL: Duration = Duration::from_secs(24 * 3600);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Where and how to deliver.
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

    /// Check every field. The error's field is relative to this section (e.g. `urls[1]`), so
    /// the caller prefixes the section's path.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (i, u) in self.urls.iter().enumerate() {
            let field = || format!("urls[{i}]");
            // messages show the URL without its password
            let shown = redact_url(u);
            check_http_url(u).map_err(|m| FieldError::new(field(), format!("{shown:?} {m}")))?;
            let parsed =
                reqwest::Url::parse(u).map_err(|e| FieldError::new(field(), e.to_string()))?;
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(FieldError::new(
                    field(),
                    format!("{shown:?} must be a base URL without query or fragment"),
                ));
            }
            if let Some(j) = self.urls[..i]
                .iter()
                .position(|o| endpoint(o) == endpoint(u))
            {
                return Err(FieldError::new(
                    field(),
                    format!("{shown:?} duplicates urls[{j}] (every alert would be sent twice)"),
                ));
            }
        }
        if self.resend_interval.is_zero() || self.resend_interval > MAX_RESEND_INTERVAL {
            return Err(FieldError::new(
                "resend_interval",
                "must be positive and at most 24h",
            ));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(FieldError::new(
                "timeout",
                "must be positive and at most 1h",
            ));
        }
        if self.queue_capacity == 0 || self.queue_capacity > MAX_QUEUE_CAPACITY {
            return Err(FieldError::new(
                "queue_capacity",
                format!("must be between 1 and {MAX_QUEUE_CAPACITY}"),
            ));
        }
        if !self.runbook_url.is_empty() {
            let u = self.runbook_url.replace("{alert}", "over_contract");
            check_http_url(&u).map_err(|m| {
                FieldError::new("runbook_url", format!("{:?} {m}", self.runbook_url))
            })?;
        }
        for (field, template) in [
            ("generator_url", &self.generator_url),
            ("dashboard_url", &self.dashboard_url),
        ] {
            if let Some(g) = template {
                let u = fill(g, "client", AlertKind::OverContract);
                check_http_url(&u).map_err(|m| FieldError::new(field, format!("{g:?} {m}")))?;
            }
        }
        Ok(())
    }
}

/// Where a base URL takes alerts.
pub(crate) fn endpoint(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::super::tests::cfg;
    use super::*;

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
            assert_eq!(e.field, field, "{e}");
            assert!(
                !e.message.is_empty() && !e.message.starts_with(field),
                "{e}"
            );
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

    #[test]
    fn passwords_in_urls_are_redacted_in_messages() {
        let c = AlertmanagerConfig {
            urls: vec![
                "http://ops:hunter2-secret@am:9093".into(),
                "http://ops:hunter2-secret@am:9093/".into(),
            ],
            ..Default::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "urls[1]");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
