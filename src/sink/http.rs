//! What the HTTP sinks (Alertmanager, webhook) share: URL checks and redaction, and the
//! reading of a response as delivered, worth retrying, or rejected for good.
//!
//! Both sinks must agree on what a failure is, or the `reason` label of
//! `overage_alert_delivery_failures_total` and the retry policy would differ between them.

use std::fmt::Write as _;

use super::metrics::Reason;

/// Why `u` is not a usable receiver URL (the message follows the URL in an error).
pub fn check_http_url(u: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(u).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(())
}

pub use crate::redact::url as redact_url;

/// A request that did not deliver.
#[derive(Debug)]
pub struct Failure {
    pub reason: Reason,
    /// Worth retrying: the receiver may accept the same request later.
    pub retry: bool,
    pub detail: String,
}

/// Send `request` and read the answer: `Ok` on 2xx; otherwise why, and whether to retry.
pub async fn deliver(request: reqwest::RequestBuilder) -> Result<(), Failure> {
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
    let resp = request.send().await.map_err(transport)?;
    let status = resp.status();
    // Read the body either way: on success it lets the connection be reused, on failure it
    // says what the receiver objected to.
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
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let _ = write!(s, ": {c}");
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_pass() {
        assert_eq!(check_http_url("https://h:1/p"), Ok(()));
        assert!(check_http_url("ftp://h").is_err());
        assert!(check_http_url("not a url").is_err());
        assert!(check_http_url("http://").is_err());
    }
}
