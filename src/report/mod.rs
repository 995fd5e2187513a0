//! `overage report`: per-client usage over a period, against contract and cap.
//!
//! The numbers come from the engine's exact hourly rollups ([`crate::rollup`]): every applied
//! event once (duplicates were dropped), late events included. Two sources give the same
//! [`ClientData`]:
//!
//! - [`from_engine`]: an [`Engine`] that has replayed recorded events (`--events`), or the live
//!   service's engine (`/clients/{id}/report`);
//! - [`api::fetch`]: a running service over HTTP (`--url`), through
//!   `GET /api/v1/clients/{id}/usage` and `GET /api/v1/clients/{id}`.
//!
//! [`build`] turns it into a [`ClientReport`]; the renderers write CSV ([`csv`]), JSON
//! ([`to_json`]) or a self-contained HTML page ([`html`], charts from [`svg`]).
//!
//! Periods are whole UTC hours: an hour counts when it starts inside `[from, to)`.
//!
//! Against the contract, a report counts only the hours its data covers ([`Coverage`]: from the
//! first hour with usage in the period to the end of the last), not the whole period asked
//! for: a month asked for mid-month, or a client that started on the 20th, would otherwise look
//! far under its contract. The units over contract ([`AgainstContract`]) are the number the
//! account team bills: per hour, the units above the contract's hourly rate, summed (an hour
//! under the rate does not offset one over it). They are computed by [`crate::rollup::Rollup::
//! excess`], the one implementation of that arithmetic, fed with the report's hourly rows
//! whichever their source ([`excess_by_day`]), so `--events` and `--url` agree by construction.

pub mod api;
pub mod csv;
pub mod html;
pub mod svg;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::detect::cap::Projection;
use crate::engine::Engine;
use crate::rollup::{AlertRecord, By, UsageRow};
use crate::time::{
    day_of, format_rfc3339, month_label, month_of, month_start, parse_rfc3339, Millis, DAY_MS,
    HOUR_MS,
};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Period(String),
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing CSV: {0}")]
    Csv(#[from] ::csv::Error),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Api(#[from] api::ApiError),
}

/// A time for `--from` / `--to` / `?from=`: RFC 3339, a date (`YYYY-MM-DD`, midnight UTC) or
/// epoch milliseconds.
pub fn parse_time(s: &str) -> Option<Millis> {
    let s = s.trim();
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|dt| dt.and_utc().timestamp_millis());
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    None
}

/// Is `s` a bare date (so that `--to 2026-09-07` can mean the end of that day)?
pub fn is_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").is_ok()
}

/// `YYYY-MM` → `[start, end)` of that UTC month.
pub fn parse_month(s: &str) -> Option<(Millis, Millis)> {
    let (y, m) = s.trim().split_once('-')?;
    let (y, m): (i32, i32) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) || !(1970..=9999).contains(&y) {
        return None;
    }
    let month = y * 12 + m - 1;
    Some((month_start(month), month_start(month + 1)))
}

/// The period asked for; either end may be open (then the data's extent is used).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub from: Option<Millis>,
    pub to: Option<Millis>,
}

impl Period {
    /// From the command line's `--month` or `--from` / `--to` (a bare-date `--to` includes that
    /// day).
    pub fn from_args(
        month: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Period, ReportError> {
        let bad = |what: &str, v: &str| {
            ReportError::Period(format!(
                "{what} `{v}` is neither an RFC 3339 time (2026-09-10T14:00:00Z), a date \
                 (2026-09-10) nor epoch milliseconds"
            ))
        };
        let mut p = Period::default();
        if let Some(m) = month {
            if from.is_some() || to.is_some() {
                return Err(ReportError::Period(
                    "--month cannot be combined with --from / --to".into(),
                ));
            }
            let (a, b) = parse_month(m).ok_or_else(|| {
                ReportError::Period(format!("--month `{m}` is not a month like 2026-09"))
            })?;
            return Ok(Period {
                from: Some(a),
                to: Some(b),
            });
        }
        if let Some(f) = from {
            p.from = Some(parse_time(f).ok_or_else(|| bad("--from", f))?);
        }
        if let Some(t) = to {
            let v = parse_time(t).ok_or_else(|| bad("--to", t))?;
            p.to = Some(if is_date(t) { v + DAY_MS } else { v });
        }
        p.check()?;
        Ok(p)
    }

    pub fn check(&self) -> Result<(), ReportError> {
        if let (Some(a), Some(b)) = (self.from, self.to) {
            if a >= b {
                return Err(ReportError::Period(format!(
                    "the period is empty: from {} is not before to {}",
                    format_rfc3339(a),
                    format_rfc3339(b)
                )));
            }
        }
        Ok(())
    }

    fn bounds(&self) -> (Millis, Millis) {
        (
            self.from.unwrap_or(Millis::MIN),
            self.to.unwrap_or(Millis::MAX),
        )
    }
}

/// A client's contract, as far as a report needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractInfo {
    pub plan: Option<String>,
    /// Contracted units per `per_ms`.
    pub units: f64,
    pub per_ms: Millis,
    pub monthly_cap: Option<f64>,
}

impl ContractInfo {
    /// Contracted units over `ms` milliseconds.
    pub fn over(&self, ms: Millis) -> f64 {
        if self.per_ms > 0 {
            self.units * ms as f64 / self.per_ms as f64
        } else {
            0.0
        }
    }
}

/// What a report is built from, whichever the source.
#[derive(Debug, Clone, Default)]
pub struct ClientData {
    pub client_id: String,
    pub contract: Option<ContractInfo>,
    /// Data is complete up to here (the engine's watermark).
    pub as_of: Option<Millis>,
    pub first_seen: Option<Millis>,
    /// Rows in the period by hour and product, and by hour and origin.
    pub products: Vec<UsageRow>,
    pub origins: Vec<UsageRow>,
    /// Rows by hour from the start of the cap's pace window or month (whichever is earlier)
    /// to the end of the cap month: the burn-down and its forecast.
    pub cap_hours: Vec<UsageRow>,
    pub alerts: Vec<AlertRecord>,
    /// The cap detector's pace window (`detect.cap.pace_window`): how far back the burn-down's
    /// rows start.
    pub pace_ms: Millis,
    /// The cap detector's own projection of the month at `as_of` (`None` while the client is
    /// too new for a pace): the report draws the forecast `cap_forecast` fires on.
    pub projection: Option<Projection>,
}

/// The month whose cap a report shows, and the span of hourly rows its burn-down needs.
pub fn cap_span(period: &Period, as_of: Option<Millis>, pace_ms: Millis) -> (i32, Millis, Millis) {
    let end = match (period.to, as_of) {
        (Some(t), Some(a)) => t.min(a),
        (Some(t), None) => t,
        (None, Some(a)) => a,
        (None, None) => 0,
    };
    let month = month_of(end - 1);
    let start = month_start(month).min(as_of.unwrap_or(end) - pace_ms);
    (month, start, month_start(month + 1))
}

/// Read a client's data from an engine.
pub fn from_engine(engine: &Engine, id: &str, period: &Period) -> Option<ClientData> {
    let c = engine.client(id)?;
    let (from, to) = period.bounds();
    let contract = c.contract.map(|k| {
        let k = engine.contracts().by_index(k as usize);
        ContractInfo {
            plan: k.plan.clone(),
            units: k.baseline_units,
            per_ms: k.per,
            monthly_cap: k.monthly_cap,
        }
    });
    // to the minute, as the service's client view says it
    let as_of = engine
        .watermark()
        .map(|w| w.div_euclid(crate::time::MINUTE_MS) * crate::time::MINUTE_MS);
    let pace_ms = engine.detectors().cap.pace;
    let cap_hours = match contract.as_ref().and_then(|k| k.monthly_cap) {
        Some(_) => {
            let (_, a, b) = cap_span(period, as_of, pace_ms);
            engine.usage(id, a, b, By::Hour)?
        }
        None => Vec::new(),
    };
    Some(ClientData {
        client_id: id.to_owned(),
        contract,
        as_of,
        first_seen: Some(c.first_seen),
        products: engine.usage(id, from, to, By::Product)?,
        origins: engine.usage(id, from, to, By::Origin)?,
        cap_hours,
        alerts: engine.alert_history(id)?.to_vec(),
        pace_ms,
        projection: as_of.and_then(|t| engine.cap_projection(id, t)),
    })
}

/// Every client of an engine, sorted by id.
pub fn engine_clients(engine: &Engine) -> Vec<String> {
    let mut ids: Vec<String> = engine.client_ids().map(|id| id.to_string()).collect();
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// A whole report: one or more clients over one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Start (inclusive) and end (exclusive) of the period, RFC 3339; open ends are the data's
    /// extent.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Where the numbers come from (`events: FILE...` or `url: URL`).
    pub source: String,
    /// For `--events`: input events by outcome (accepted, late, duplicate, rejections).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input: BTreeMap<String, u64>,
    pub clients: Vec<ClientReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientReport {
    pub client_id: String,
    pub contract: Option<ContractInfo>,
    pub as_of: Option<String>,
    pub units: f64,
    pub events: u64,
    /// Totals per product and per origin over the period, largest first.
    pub by_product: Vec<Total>,
    pub by_origin: Vec<Total>,
    /// Usage per UTC day and product.
    pub days: Vec<DayRow>,
    /// Usage per hour (all products), for the charts.
    pub hours: Vec<Point>,
    /// The hours the data covers in the period (`None` without usage).
    #[serde(default)]
    pub covered: Option<Coverage>,
    /// Use against the contract over those hours (`None` without a contract or usage).
    #[serde(default)]
    pub against_contract: Option<AgainstContract>,
    pub cap: Option<CapBurn>,
    /// Alert transitions in the period, oldest first.
    pub alerts: Vec<AlertRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Total {
    pub key: String,
    pub units: f64,
    pub events: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayRow {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub product: String,
    pub units: f64,
    pub events: u64,
}

/// The hours a client's data covers within the period: from the start of the first hour with
/// usage to the end of the last (whole hours, as periods are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// RFC 3339, and the same in epoch milliseconds.
    pub from: String,
    pub to: String,
    pub from_ms: Millis,
    pub to_ms: Millis,
    pub hours: i64,
}

/// Use against the contract over the hours the data covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgainstContract {
    /// The contract's rate per hour: what each hour is measured against.
    pub allowance_per_hour: f64,
    /// Contracted units over the covered hours (the allowance times their number).
    pub contracted: f64,
    /// Units used as a percentage of `contracted`.
    pub used_pct: f64,
    /// Units above the contract, summed per hour (an hour under its allowance does not offset
    /// one over it): what an overage invoice counts.
    pub over_contract: f64,
    /// The same per UTC day with usage, oldest first.
    pub days: Vec<DayExcess>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayExcess {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Units used that day (all products).
    pub units: f64,
    /// Units above the contract that day, summed per hour.
    pub over_contract: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Start of the bucket, epoch milliseconds.
    pub t: Millis,
    /// Hours the bucket covers: 1, or 24 for a day beyond the engine's hourly span.
    #[serde(
        default = "crate::rollup::default_hours",
        skip_serializing_if = "crate::rollup::one_hour"
    )]
    pub hours: u32,
    pub units: f64,
    pub events: u64,
}

/// Monthly cap burn-down: what is left of the cap through the month, and where the cap
/// detector's linear pace takes it by month end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapBurn {
    /// `YYYY-MM`.
    pub month: String,
    pub month_start: Millis,
    pub month_end: Millis,
    pub cap: f64,
    /// Units used in the month up to `as_of`.
    pub used: f64,
    /// Cap minus cumulative use, at the end of each hour with traffic.
    pub remaining: Vec<(Millis, f64)>,
    /// Units per hour over the pace window (as `cap_forecast` computes it, at hourly
    /// resolution).
    pub pace_per_hour: f64,
    /// Whether the client has the history the cap detector needs before it forecasts (else
    /// the forecast is just `used`).
    pub forecast_ready: bool,
    /// Projected month-end use, and when the cap would run out at that pace (if before the end).
    pub forecast_units: f64,
    pub forecast_exhausted_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    pub at: String,
    pub at_ms: Millis,
    pub alert: String,
    pub severity: String,
    pub state: String,
    pub ratio: f64,
    pub summary: String,
}

fn totals(rows: &[UsageRow]) -> Vec<Total> {
    let mut m: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
    for r in rows {
        let e = m.entry(r.key.as_deref().unwrap_or("")).or_default();
        e.0 += r.units;
        e.1 += r.events;
    }
    let mut v: Vec<Total> = m
        .into_iter()
        .map(|(k, (units, events))| Total {
            key: k.to_owned(),
            units,
            events,
        })
        .collect();
    v.sort_by(|a, b| b.units.total_cmp(&a.units).then_with(|| a.key.cmp(&b.key)));
    v
}

fn day_label(t: Millis) -> String {
    format_rfc3339(day_of(t) * DAY_MS)[..10].to_owned()
}

/// Units above `allowance_per_hour` in each hour, summed per UTC day (days since the epoch),
/// from rows of any breakdown (an hour's rows are added up first), with the engine's
/// arithmetic ([`crate::rollup::excess_over`]), so a report and an alert count excess alike.
/// A day kept as a day brings its own figure (`over_contract`), counted when its hours were.
pub fn excess_by_day(rows: &[UsageRow], allowance_per_hour: f64) -> BTreeMap<i64, f64> {
    let mut hours: BTreeMap<i64, f64> = BTreeMap::new();
    let mut days: BTreeMap<i64, f64> = BTreeMap::new();
    for r in rows {
        match r.over_contract {
            Some(x) => *days.entry(day_of(r.hour)).or_default() += x,
            None => *hours.entry(r.hour.div_euclid(HOUR_MS)).or_default() += r.units,
        }
    }
    for (h, units) in hours {
        *days.entry(day_of(h * HOUR_MS)).or_default() +=
            crate::rollup::excess_over([(h as i32, units)], |_| allowance_per_hour);
    }
    days
}

fn coverage(hours: &BTreeMap<Millis, (f64, u64, u32)>) -> Option<Coverage> {
    let (&first, _) = hours.first_key_value()?;
    let (&last, &(_, _, span)) = hours.last_key_value()?;
    let to = last + i64::from(span) * HOUR_MS;
    Some(Coverage {
        from: format_rfc3339(first),
        to: format_rfc3339(to),
        from_ms: first,
        to_ms: to,
        hours: (to - first) / HOUR_MS,
    })
}

fn against_contract(
    d: &ClientData,
    covered: &Coverage,
    units: f64,
    days: &BTreeMap<(i64, &str), (f64, u64)>,
) -> Option<AgainstContract> {
    let k = d.contract.as_ref()?;
    let allowance_per_hour = k.over(HOUR_MS);
    let contracted = k.over(covered.to_ms - covered.from_ms);
    let excess = excess_by_day(&d.products, allowance_per_hour);
    let mut per_day: BTreeMap<i64, f64> = BTreeMap::new();
    for (&(day, _), &(u, _)) in days {
        *per_day.entry(day).or_default() += u;
    }
    Some(AgainstContract {
        allowance_per_hour,
        contracted,
        used_pct: if contracted > 0.0 {
            100.0 * units / contracted
        } else {
            0.0
        },
        over_contract: excess.values().sum(),
        days: per_day
            .into_iter()
            .map(|(day, units)| DayExcess {
                day: day_label(day * DAY_MS),
                units,
                over_contract: excess.get(&day).copied().unwrap_or(0.0),
            })
            .collect(),
    })
}

/// Turn a client's data into its report over `period`.
pub fn build(d: &ClientData, period: &Period) -> ClientReport {
    let (from, to) = period.bounds();
    let mut days: BTreeMap<(i64, &str), (f64, u64)> = BTreeMap::new();
    let mut hours: BTreeMap<Millis, (f64, u64, u32)> = BTreeMap::new();
    let (mut units, mut events) = (0.0, 0u64);
    for r in &d.products {
        let e = days
            .entry((day_of(r.hour), r.key.as_deref().unwrap_or("")))
            .or_default();
        e.0 += r.units;
        e.1 += r.events;
        let h = hours.entry(r.hour).or_insert((0.0, 0, r.hours));
        h.0 += r.units;
        h.1 += r.events;
        units += r.units;
        events += r.events;
    }
    let cap = d
        .contract
        .as_ref()
        .and_then(|k| k.monthly_cap)
        .map(|cap| burn_down(d, period, cap));
    let covered = coverage(&hours);
    let against_contract = covered
        .as_ref()
        .and_then(|c| against_contract(d, c, units, &days));
    ClientReport {
        client_id: d.client_id.clone(),
        contract: d.contract.clone(),
        as_of: d.as_of.map(format_rfc3339),
        units,
        events,
        by_product: totals(&d.products),
        by_origin: totals(&d.origins),
        days: days
            .into_iter()
            .map(|((day, product), (units, events))| DayRow {
                day: day_label(day * DAY_MS),
                product: product.to_owned(),
                units,
                events,
            })
            .collect(),
        hours: hours
            .into_iter()
            .map(|(t, (units, events, hours))| Point {
                t,
                hours,
                units,
                events,
            })
            .collect(),
        covered,
        against_contract,
        cap,
        alerts: d
            .alerts
            .iter()
            .filter(|a| a.at >= from && a.at < to)
            .map(|a| AlertRow {
                at: format_rfc3339(a.at),
                at_ms: a.at,
                alert: a.kind.to_string(),
                severity: a.severity.as_str().to_owned(),
                state: match a.state {
                    crate::alert::State::Firing => "firing",
                    crate::alert::State::Resolved => "resolved",
                }
                .to_owned(),
                ratio: crate::alert::round2(a.ratio),
                summary: a.summary.to_string(),
            })
            .collect(),
    }
}

fn burn_down(d: &ClientData, period: &Period, cap: f64) -> CapBurn {
    let (month, _, _) = cap_span(period, d.as_of, d.pace_ms);
    let (start, end) = (month_start(month), month_start(month + 1));
    let as_of = d.as_of.unwrap_or(end).clamp(start, end);
    let mut used = 0.0;
    let mut remaining = vec![(start, cap)];
    for r in d
        .cap_hours
        .iter()
        .filter(|r| r.hour >= start && r.hour < as_of)
    {
        used += r.units;
        remaining.push(((r.hour + HOUR_MS).min(as_of), cap - used));
    }
    if remaining.last().is_some_and(|&(t, _)| t < as_of) {
        remaining.push((as_of, cap - used));
    }
    // the cap detector's projection, when it is of this month
    let projection = d.projection.filter(|p| p.month_end == end && p.at == as_of);
    let pace_per_ms = projection.map_or(0.0, |p| p.pace_per_ms);
    let forecast_units = projection.map_or(used, |p| p.projected);
    let forecast_exhausted_at = if used >= cap {
        remaining.iter().find(|&&(_, r)| r <= 0.0).map(|&(t, _)| t)
    } else {
        projection.and_then(|p| p.exhausted_at(cap))
    };
    CapBurn {
        month: month_label(month),
        month_start: start,
        month_end: end,
        cap,
        used,
        remaining,
        pace_per_hour: pace_per_ms * HOUR_MS as f64,
        forecast_ready: projection.is_some(),
        forecast_units,
        forecast_exhausted_at,
    }
}

/// The period a report covers: as asked, with open ends closed by the data.
pub fn resolve(period: &Period, clients: &[ClientReport]) -> (Option<Millis>, Option<Millis>) {
    let first = clients
        .iter()
        .filter_map(|c| c.hours.first())
        .map(|p| p.t)
        .min();
    let last = clients
        .iter()
        .filter_map(|c| c.hours.last())
        .map(|p| p.t + HOUR_MS)
        .max();
    (period.from.or(first), period.to.or(last))
}

/// Assemble a report.
pub fn report(
    period: &Period,
    source: String,
    input: BTreeMap<String, u64>,
    clients: Vec<ClientReport>,
) -> Report {
    let (from, to) = resolve(period, &clients);
    Report {
        from: from.map(format_rfc3339),
        to: to.map(format_rfc3339),
        source,
        input,
        clients,
    }
}

/// JSON, pretty-printed.
pub fn to_json(r: &Report, w: &mut dyn std::io::Write) -> Result<(), ReportError> {
    serde_json::to_writer_pretty(&mut *w, r)?;
    w.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertKind, Severity, State};
    use crate::time::MINUTE_MS;

    pub(crate) fn sample() -> ClientData {
        let t = parse_rfc3339("2026-09-10T00:00:00Z").unwrap();
        let row = |h: i64, k: &str, u: f64, e: u64| {
            UsageRow::hourly(t + h * HOUR_MS, Some(k.into()), u, e)
        };
        ClientData {
            client_id: "acme".into(),
            contract: Some(ContractInfo {
                plan: Some("gold".into()),
                units: 100.0,
                per_ms: HOUR_MS,
                monthly_cap: Some(10_000.0),
            }),
            as_of: Some(t + 30 * HOUR_MS),
            first_seen: Some(t - 20 * DAY_MS),
            products: vec![
                row(0, "search", 50.0, 5),
                row(0, "timeline", 20.0, 2),
                row(25, "search", 300.0, 30),
            ],
            origins: vec![row(0, "US", 70.0, 7), row(25, "IE", 300.0, 30)],
            cap_hours: vec![
                UsageRow::hourly(t - 9 * DAY_MS, None, 5000.0, 10),
                UsageRow::hourly(t, None, 70.0, 7),
                UsageRow::hourly(t + 25 * HOUR_MS, None, 300.0, 30),
            ],
            alerts: vec![AlertRecord {
                kind: AlertKind::OverContract,
                severity: Severity::Critical,
                state: State::Firing,
                at: t + 25 * HOUR_MS + 600_000,
                ratio: 3.04,
                summary: "acme consumed 3.0x".into(),
            }],
            pace_ms: 7 * DAY_MS,
            // 370 units over the 7-day pace window, as the cap detector would project it
            projection: Some(Projection {
                at: t + 30 * HOUR_MS,
                month_end: month_start(month_of(t) + 1),
                used: 5370.0,
                pace_per_ms: 370.0 / (7 * DAY_MS) as f64,
                at_usual_pace: false,
                projected: 5370.0
                    + 370.0 / (7 * DAY_MS) as f64
                        * (month_start(month_of(t) + 1) - t - 30 * HOUR_MS) as f64,
            }),
        }
    }

    #[test]
    fn builds_days_totals_and_the_burn_down() {
        let d = sample();
        let r = build(&d, &Period::default());
        assert_eq!(r.units, 370.0);
        assert_eq!(r.events, 37);
        assert_eq!(r.days.len(), 3);
        assert_eq!(r.days[0].day, "2026-09-10");
        assert_eq!(r.days[2].day, "2026-09-11");
        assert_eq!(r.by_product[0].key, "search");
        assert_eq!(r.by_product[0].units, 350.0);
        assert_eq!(r.by_origin[0].key, "IE");
        assert_eq!(r.alerts.len(), 1);
        let cap = r.cap.unwrap();
        assert_eq!(cap.month, "2026-09");
        assert_eq!(cap.used, 5370.0);
        assert_eq!(cap.remaining.last().unwrap().1, 10_000.0 - 5370.0);
        // pace: 370 units over the 7-day window
        assert!((cap.pace_per_hour - 370.0 / 168.0).abs() < 1e-9);
        assert!(cap.forecast_ready);
        assert!(cap.forecast_units > cap.used);
        // too little history: no forecast, as the detector
        let mut young = sample();
        young.projection = None;
        let cap = build(&young, &Period::default()).cap.unwrap();
        assert!(!cap.forecast_ready);
        assert_eq!(cap.forecast_units, cap.used);
        // a projection of another month (a report of last month) is not this month's forecast
        let mut stale = sample();
        stale.projection.as_mut().unwrap().at -= HOUR_MS;
        assert!(
            !build(&stale, &Period::default())
                .cap
                .unwrap()
                .forecast_ready
        );
    }

    /// The burn-down's forecast is the one `cap_forecast` fires on: the same projection at the
    /// same minute, the learned day's pace included.
    #[test]
    fn the_forecast_is_the_one_the_cap_alert_fires_on() {
        use crate::config::Config;
        use crate::contract::Contracts;
        use std::sync::Arc;
        let contracts = Contracts::parse(
            "[[contract]]\nclient_id = \"acme\"\nbaseline = { units = 600, per = \"1h\" }\n\
             monthly_cap = 600000\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        let cfg = Config::default();
        let mut e = Engine::new(&cfg, Arc::new(contracts));
        let decoder = cfg.input.decoder();
        let start = parse_rfc3339("2026-09-01T00:00:00Z").unwrap();
        let mut out = Vec::new();
        // ten days at the contract (a call of 10 units a minute), then a day at 4x
        for m in 0..(11 * 24 * 60) {
            let calls = if m < 10 * 24 * 60 { 1 } else { 4 };
            for k in 0..calls {
                let ts = start + m * MINUTE_MS + k * 1000;
                let line =
                    format!(r#"{{"ts":{ts},"client_id":"acme","event_id":"e{m}-{k}","units":10}}"#);
                e.ingest(&decoder, line.as_bytes(), None, &mut out);
            }
        }
        e.flush(&mut out);
        assert!(
            out.iter().any(|a| a.alert == AlertKind::CapForecast),
            "the 4x day blows the cap by month end"
        );
        let d = from_engine(&e, "acme", &Period::default()).unwrap();
        let cap = build(&d, &Period::default()).cap.unwrap();
        assert!(cap.forecast_ready);
        // the firing alert's reading at the last evaluated minute, which the report is as of
        let acme = e.client("acme").unwrap();
        let slot = acme
            .alerts
            .iter()
            .find(|s| s.kind == AlertKind::CapForecast)
            .expect("still firing");
        assert_eq!(cap.forecast_units, slot.last.observed);
        // the day's pace, not the ten-day average: above what the window alone would say
        let window_pace = (10.0 * 60.0 * 24.0 * 6.0 + 40.0 * 60.0 * 24.0) / (7.0 * DAY_MS as f64);
        assert!(
            cap.pace_per_hour > 1.5 * window_pace * HOUR_MS as f64,
            "{cap:?}"
        );
    }

    #[test]
    fn contract_use_counts_only_the_hours_the_data_covers() {
        let d = sample();
        // a whole month asked for; the data covers 00:00 on the 10th to 02:00 on the 11th
        let month = Period::from_args(Some("2026-09"), None, None).unwrap();
        for p in [Period::default(), month] {
            let r = build(&d, &p);
            let c = r.covered.as_ref().unwrap();
            assert_eq!(c.hours, 26, "{p:?}");
            assert_eq!(c.from, "2026-09-10T00:00:00Z");
            assert_eq!(c.to, "2026-09-11T02:00:00Z");
            let k = r.against_contract.as_ref().unwrap();
            assert_eq!(k.allowance_per_hour, 100.0);
            assert_eq!(k.contracted, 2600.0, "{p:?}");
            assert!((k.used_pct - 100.0 * 370.0 / 2600.0).abs() < 1e-9, "{p:?}");
        }
        // a contract per day is prorated per hour
        let mut daily = sample();
        if let Some(k) = daily.contract.as_mut() {
            k.units = 2400.0;
            k.per_ms = DAY_MS;
        }
        let k = build(&daily, &Period::default()).against_contract.unwrap();
        assert_eq!((k.allowance_per_hour, k.contracted), (100.0, 2600.0));
        // no contract, no comparison; no usage, no coverage
        let mut none = sample();
        none.contract = None;
        let r = build(&none, &Period::default());
        assert!(r.against_contract.is_none() && r.covered.is_some());
        let mut idle = sample();
        idle.products.clear();
        let r = build(&idle, &Period::default());
        assert!(r.covered.is_none() && r.against_contract.is_none());
    }

    #[test]
    fn units_over_contract_are_summed_per_hour_and_per_day() {
        let d = sample();
        let k = build(&d, &Period::default()).against_contract.unwrap();
        // hour 0: 70 of 100 (its 30 unused offset nothing); hour 25: 300, 200 over
        assert_eq!(k.over_contract, 200.0);
        let days: Vec<(&str, f64, f64)> = k
            .days
            .iter()
            .map(|x| (x.day.as_str(), x.units, x.over_contract))
            .collect();
        assert_eq!(
            days,
            [("2026-09-10", 70.0, 0.0), ("2026-09-11", 300.0, 200.0)]
        );
        // an hour's rows are added up before the allowance: two products at 60 are 20 over
        let t = parse_rfc3339("2026-09-10T10:00:00Z").unwrap();
        let row = |h: i64, k: &str, u: f64| UsageRow::hourly(t + h * HOUR_MS, Some(k.into()), u, 1);
        let by_product = [row(0, "a", 60.0), row(0, "b", 60.0), row(14, "a", 150.0)];
        let by_hour = [
            UsageRow {
                key: None,
                ..row(0, "", 120.0)
            },
            UsageRow {
                key: None,
                ..row(14, "", 150.0)
            },
        ];
        let day = day_of(t);
        let want = BTreeMap::from([(day, 20.0), (day + 1, 50.0)]);
        assert_eq!(excess_by_day(&by_product, 100.0), want);
        assert_eq!(excess_by_day(&by_hour, 100.0), want);
        // any order (the API's rows, or a merge of several)
        let mut shuffled = by_product.to_vec();
        shuffled.reverse();
        assert_eq!(excess_by_day(&shuffled, 100.0), want);
        // a day beyond the hourly span brings its own figure, whatever its units
        let folded = UsageRow {
            hours: 24,
            over_contract: Some(7.0),
            ..UsageRow::hourly((day - 3) * DAY_MS, Some("a".into()), 5000.0, 9)
        };
        shuffled.push(folded.clone());
        shuffled.push(UsageRow {
            key: Some("b".into()),
            over_contract: Some(1.0),
            ..folded
        });
        let mut want = want;
        want.insert(day - 3, 8.0);
        assert_eq!(excess_by_day(&shuffled, 100.0), want);
    }

    #[test]
    fn alerts_outside_the_period_are_left_out() {
        let d = sample();
        let p = Period {
            from: None,
            to: parse_rfc3339("2026-09-11T00:00:00Z"),
        };
        let r = build(&d, &p);
        assert!(r.alerts.is_empty());
    }

    #[test]
    fn periods_parse_with_precise_errors() {
        let p = Period::from_args(Some("2026-09"), None, None).unwrap();
        assert_eq!(p.from, parse_rfc3339("2026-09-01T00:00:00Z"));
        assert_eq!(p.to, parse_rfc3339("2026-10-01T00:00:00Z"));
        let p = Period::from_args(None, Some("2026-09-03"), Some("2026-09-04")).unwrap();
        assert_eq!(
            p.to,
            parse_rfc3339("2026-09-05T00:00:00Z"),
            "a date --to includes it"
        );
        let p = Period::from_args(None, Some("2026-09-03T10:00:00+02:00"), None).unwrap();
        assert_eq!(p.from, parse_rfc3339("2026-09-03T08:00:00Z"));
        let e = Period::from_args(None, Some("yesterday"), None).unwrap_err();
        assert!(e.to_string().contains("--from `yesterday`"), "{e}");
        let e = Period::from_args(None, Some("2026-09-05"), Some("2026-09-01")).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        assert!(Period::from_args(Some("2026-13"), None, None).is_err());
        assert!(Period::from_args(Some("2026-09"), Some("2026-09-01"), None).is_err());
    }
}
