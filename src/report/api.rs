//! The usage API's wire format, its query parsing (shared with the service's handler), and the
//! client `overage report --url` uses.
//!
//! `GET /api/v1/clients/{id}/usage?from=&to=&by=product|origin|hour` answers a [`UsageResponse`];
//! `from` / `to` are RFC 3339, dates or epoch milliseconds, both optional (open ends: all the
//! data this instance keeps, i.e. the current and previous month).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{cap_span, ClientData, ContractInfo, Period, Total};
use crate::rollup::{AlertRecord, By, UsageRow};
use crate::time::{format_rfc3339, parse_rfc3339, Millis};

/// One row of the usage API: an hour, or a UTC day beyond the hourly span (and product or
/// origin, unless `by=hour`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourRow {
    /// Start of the hour (or day), RFC 3339 UTC.
    pub hour: String,
    /// 24 for a day; absent for an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub units: f64,
    pub events: u64,
    /// A day's units over the contract's hourly rate, hour by hour (see
    /// [`UsageRow::over_contract`]); absent for an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_contract: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageResponse {
    pub client_id: String,
    /// The period asked for (`null`: open).
    pub from: Option<String>,
    pub to: Option<String>,
    pub by: By,
    /// Data is complete up to here (the engine's watermark, to the minute).
    pub as_of: Option<String>,
    pub units: f64,
    pub events: u64,
    /// Per product / origin over the period, largest first (one `""` key for `by=hour`).
    pub totals: Vec<Total>,
    /// Hourly series, sorted by hour then key.
    pub rows: Vec<HourRow>,
}

impl UsageResponse {
    pub fn new(
        id: &str,
        period: &Period,
        by: By,
        as_of: Option<Millis>,
        rows: &[UsageRow],
    ) -> Self {
        UsageResponse {
            client_id: id.to_owned(),
            from: period.from.map(format_rfc3339),
            to: period.to.map(format_rfc3339),
            by,
            as_of: as_of.map(format_rfc3339),
            units: rows.iter().map(|r| r.units).sum(),
            events: rows.iter().map(|r| r.events).sum(),
            totals: super::totals(rows),
            rows: rows
                .iter()
                .map(|r| HourRow {
                    hour: format_rfc3339(r.hour),
                    hours: (r.hours != 1).then_some(r.hours),
                    key: r.key.clone(),
                    units: r.units,
                    events: r.events,
                    over_contract: r.over_contract,
                })
                .collect(),
        }
    }

    fn usage_rows(&self) -> Result<Vec<UsageRow>, ApiError> {
        self.rows
            .iter()
            .map(|r| {
                Ok(UsageRow {
                    hour: parse_rfc3339(&r.hour)
                        .ok_or_else(|| ApiError::Format(format!("bad hour `{}`", r.hour)))?,
                    hours: r.hours.unwrap_or(1),
                    key: r.key.clone(),
                    units: r.units,
                    events: r.events,
                    over_contract: r.over_contract,
                })
            })
            .collect()
    }
}

/// Parse the usage API's query string: a precise message for anything wrong.
pub fn parse_usage_query(q: &HashMap<String, String>) -> Result<(Period, By), String> {
    if let Some(k) = q
        .keys()
        .find(|k| !matches!(k.as_str(), "from" | "to" | "by"))
    {
        return Err(format!("unknown parameter `{k}`; allowed: from, to, by"));
    }
    let time = |name: &str| -> Result<Option<Millis>, String> {
        match q.get(name) {
            None => Ok(None),
            Some(v) => super::parse_time(v).map(Some).ok_or_else(|| {
                format!(
                    "`{name}` must be an RFC 3339 time (2026-09-10T14:00:00Z), a date \
                     (2026-09-10) or epoch milliseconds, not `{v}`"
                )
            }),
        }
    };
    let period = Period {
        from: time("from")?,
        to: time("to")?,
    };
    period.check().map_err(|e| e.to_string())?;
    let by = match q.get("by") {
        None => By::Product,
        Some(b) => b.parse::<By>()?,
    };
    Ok((period, by))
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the service has no state for client `{0}` (wrong instance, or no events yet)")]
    NoClient(String),
    #[error("bad URL `{0}`")]
    Url(String),
    #[error("unexpected answer: {0}")]
    Format(String),
}

/// The parts of `GET /api/v1/clients/{id}` a report needs.
#[derive(Debug, Deserialize)]
struct ClientViewLite {
    contract: Option<ContractLite>,
    as_of: String,
    first_seen: String,
    #[serde(default)]
    alert_history: Vec<AlertRecord>,
    /// Absent for clients without a cap (and from services older than this field).
    #[serde(default)]
    cap: Option<crate::service::state::CapView>,
}

#[derive(Debug, Deserialize)]
struct ContractLite {
    plan: Option<String>,
    units: f64,
    per: String,
    monthly_cap: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct SummaryLite {
    client_id: String,
}

/// A running service's API.
pub struct Api {
    base: reqwest::Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token: Option<String>) -> Result<Api, ApiError> {
        let base = reqwest::Url::parse(base).map_err(|_| ApiError::Url(base.to_owned()))?;
        if base.cannot_be_a_base() {
            return Err(ApiError::Url(base.to_string()));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|source| ApiError::Http {
                url: base.to_string(),
                source,
            })?;
        Ok(Api { base, token, http })
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> reqwest::Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        if !query.is_empty() {
            u.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        u
    }

    /// GET and decode; `Ok(None)` on 404.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        url: reqwest::Url,
    ) -> Result<Option<T>, ApiError> {
        let shown = url.to_string();
        let mut req = self.http.get(url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let err = |source| ApiError::Http {
            url: shown.clone(),
            source,
        };
        let resp = req.send().await.map_err(err)?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            let body = resp.text().await.unwrap_or_default();
            return Err(ApiError::Status {
                url: shown,
                status,
                body: body.chars().take(300).collect(),
            });
        }
        resp.json().await.map(Some).map_err(err)
    }

    /// Every client the service has state for (`GET /api/v1/clients`), sorted by id.
    pub async fn clients(&self) -> Result<Vec<String>, ApiError> {
        let url = self.url(
            &["api", "v1", "clients"],
            &[("sort", "ratio".into()), ("limit", "1000".into())],
        );
        let list: Vec<SummaryLite> = self.get(url).await?.unwrap_or_default();
        let mut ids: Vec<String> = list.into_iter().map(|s| s.client_id).collect();
        ids.sort();
        Ok(ids)
    }

    pub async fn usage(
        &self,
        id: &str,
        from: Option<Millis>,
        to: Option<Millis>,
        by: &str,
    ) -> Result<Vec<UsageRow>, ApiError> {
        let mut q = vec![("by", by.to_owned())];
        if let Some(f) = from {
            q.push(("from", format_rfc3339(f)));
        }
        if let Some(t) = to {
            q.push(("to", format_rfc3339(t)));
        }
        let url = self.url(&["api", "v1", "clients", id, "usage"], &q);
        let r: UsageResponse = self
            .get(url)
            .await?
            .ok_or_else(|| ApiError::NoClient(id.to_owned()))?;
        r.usage_rows()
    }

    /// Everything a report needs about one client.
    pub async fn client(&self, id: &str, period: &Period) -> Result<ClientData, ApiError> {
        let view: ClientViewLite = self
            .get(self.url(&["api", "v1", "clients", id], &[]))
            .await?
            .ok_or_else(|| ApiError::NoClient(id.to_owned()))?;
        let contract = match view.contract {
            Some(k) => Some(ContractInfo {
                plan: k.plan,
                units: k.units,
                per_ms: humantime::parse_duration(&k.per)
                    .map_err(|_| ApiError::Format(format!("contract per `{}`", k.per)))?
                    .as_millis() as Millis,
                monthly_cap: k.monthly_cap,
            }),
            None => None,
        };
        let as_of = parse_rfc3339(&view.as_of);
        // the service's own pace window and projection (the defaults' window from a service
        // too old to say, which then draws no forecast)
        let pace_ms = match &view.cap {
            Some(c) => humantime::parse_duration(&c.pace_window)
                .map_err(|_| ApiError::Format(format!("cap pace_window `{}`", c.pace_window)))?
                .as_millis() as Millis,
            None => crate::config::ms(crate::config::Config::default().detect.cap.pace_window),
        };
        let cap_hours = match contract.as_ref().and_then(|k| k.monthly_cap) {
            Some(_) => {
                let (_, a, b) = cap_span(period, as_of, pace_ms);
                self.usage(id, Some(a), Some(b), "hour").await?
            }
            None => Vec::new(),
        };
        Ok(ClientData {
            client_id: id.to_owned(),
            contract,
            as_of,
            first_seen: parse_rfc3339(&view.first_seen),
            products: self.usage(id, period.from, period.to, "product").await?,
            origins: self.usage(id, period.from, period.to, "origin").await?,
            cap_hours,
            alerts: view.alert_history,
            pace_ms,
            projection: view.cap.and_then(|c| c.projection),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn usage_queries_parse_or_say_what_is_wrong() {
        let (p, by) = parse_usage_query(&q(&[])).unwrap();
        assert_eq!((p, by), (Period::default(), By::Product));
        let (p, by) = parse_usage_query(&q(&[
            ("from", "2026-09-01"),
            ("to", "2026-09-02T00:00:00Z"),
            ("by", "hour"),
        ]))
        .unwrap();
        assert_eq!(by, By::Hour);
        assert_eq!(p.to.unwrap() - p.from.unwrap(), crate::time::DAY_MS);
        let e = parse_usage_query(&q(&[("by", "day")])).unwrap_err();
        assert!(e.contains("product, origin or hour"), "{e}");
        let e = parse_usage_query(&q(&[("from", "last week")])).unwrap_err();
        assert!(e.contains("`from`") && e.contains("last week"), "{e}");
        let e = parse_usage_query(&q(&[("from", "2026-09-02"), ("to", "2026-09-01")])).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = parse_usage_query(&q(&[("form", "2026-09-02")])).unwrap_err();
        assert!(e.contains("unknown parameter `form`"), "{e}");
    }

    #[test]
    fn responses_round_trip() {
        let rows = vec![
            UsageRow {
                hours: 24,
                over_contract: Some(1.5),
                ..UsageRow::hourly(
                    parse_rfc3339("2026-08-10T00:00:00Z").unwrap(),
                    Some("search".into()),
                    50.0,
                    20,
                )
            },
            UsageRow::hourly(
                parse_rfc3339("2026-09-10T10:00:00Z").unwrap(),
                Some("search".into()),
                5.0,
                2,
            ),
        ];
        let r = UsageResponse::new("a", &Period::default(), By::Product, None, &rows);
        let back: UsageResponse =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.usage_rows().unwrap(), rows);
        assert_eq!(back.units, 55.0);
    }
}
