//! Scoring: a replay's alerts against a scenario's ground truth.
//!
//! Detection quality is easy to talk about and hard to pin down; this module pins it down with
//! fixed, documented rules so that a change to a detector shows up as a number that moved:
//!
//! - a `firing` is **matching** when some anomaly of its client lists its kind in `expect` or
//!   `allow` and `at` is in `[start - 10 min, end + 2h]`, and **false** otherwise (so every
//!   firing on a well-behaved client is false);
//! - an anomaly is **detected** when a matching `firing` of one of its `expect` kinds exists;
//!   the **delay** is the first such `at` minus `start`, negative when the detector was ahead
//!   of the modelled start. (An anomaly's start is a modelling choice, e.g. "the noise-free
//!   30-minute average reaches 1.6x contract" for a slow creep, and a detector alerting at its
//!   own threshold a minute earlier is right, not late; the early grace exists for exactly
//!   that, so an early firing must not leave the anomaly counted as missed either.)
//! - a **flap** is a fingerprint firing more than once within one anomaly's window, or more
//!   than once outside all of its client's anomaly windows (on a well-behaved client: more
//!   than once at all);
//! - **precision** is matching firings over all firings; **recall** detected over anomalies.
//! - a **false page** is a false firing of severity `critical`; false firings are also given
//!   per 1,000 client-days, so fleets of different sizes compare;
//! - a **re-fire** is every firing of one alert (kind and severity) inside an anomaly's window
//!   after its first: one overage should be one alert, however long; but not one after the
//!   alert resolved across a pause of the anomaly (in one or the day before it: a holiday of
//!   its client inside it, or a day or more within its contract), where the client was over
//!   nothing;
//! - a **stuck** alert is still firing 6 h after its anomaly ended (or after it fired, for a
//!   false one), or never resolves although the run went on that long; a cap alert in a month
//!   whose units do cross the cap is due only 6 h after that month ends;
//! - when the truth says when an anomaly became clearly detectable, delays are measured from
//!   there, and grouped by kind and magnitude.
//!
//! [`compare`] sets two scores of the same scenarios side by side, episode by episode.

pub mod compare;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::simulate::{kind, Anomaly, SimError, Truth};
use crate::time::{
    format_rfc3339, month_label, month_of, month_start, parse_rfc3339, HOUR_MS, MINUTE_MS,
};

/// How long after an anomaly ends an alert about it still counts.
pub const LATE_GRACE_MS: i64 = 2 * HOUR_MS;
/// How long before an anomaly's start an alert about it still counts (an anomaly's start is a
/// modelling choice; a detector a few minutes ahead of it is not wrong).
pub const EARLY_GRACE_MS: i64 = 10 * MINUTE_MS;
pub use crate::simulate::STUCK_AFTER_MS;

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Truth(#[from] SimError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not an alert: {message}")]
    Alert {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}: no report of `overage score --json` in it")]
    NoReports(PathBuf),
}

/// The fields of the alert JSON (interface spec, section 4) that scoring needs; others are
/// ignored. `at` is parsed when the record is read, so a bad timestamp is an input error and
/// not a silently misplaced alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawAlert")]
pub struct AlertRecord {
    pub alert: String,
    pub state: String,
    pub client_id: String,
    pub at: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub fingerprint: String,
    /// The first of the alert's `drivers`, as `dimension:name`.
    #[serde(default)]
    pub top_driver: Option<String>,
    #[serde(default)]
    pub excess_units: Option<f64>,
    /// When its episode began (`since`).
    #[serde(default)]
    pub since_ms: Option<i64>,
    #[serde(skip)]
    pub at_ms: i64,
}

#[derive(Deserialize)]
struct RawAlert {
    alert: String,
    state: String,
    client_id: String,
    at: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    drivers: Vec<RawDriver>,
    #[serde(default)]
    excess_units: Option<f64>,
    #[serde(default)]
    since: Option<String>,
}

#[derive(Deserialize)]
struct RawDriver {
    dimension: String,
    name: String,
}

impl TryFrom<RawAlert> for AlertRecord {
    type Error = String;

    fn try_from(r: RawAlert) -> Result<Self, String> {
        let at_ms =
            parse_rfc3339(&r.at).ok_or_else(|| format!("`at` is not RFC 3339: {:?}", r.at))?;
        Ok(AlertRecord {
            alert: r.alert,
            state: r.state,
            client_id: r.client_id,
            at: r.at,
            severity: r.severity,
            fingerprint: r.fingerprint,
            top_driver: r
                .drivers
                .first()
                .map(|d| format!("{}:{}", d.dimension, d.name)),
            excess_units: r.excess_units,
            since_ms: r.since.as_deref().and_then(parse_rfc3339),
            at_ms,
        })
    }
}

impl AlertRecord {
    /// A firing (or resolved, with `firing = false`) record, for tests and tools.
    pub fn new(alert: &str, firing: bool, client_id: &str, at_ms: i64, severity: &str) -> Self {
        AlertRecord {
            alert: alert.to_owned(),
            state: if firing { "firing" } else { "resolved" }.to_owned(),
            client_id: client_id.to_owned(),
            at: format_rfc3339(at_ms),
            severity: severity.to_owned(),
            fingerprint: format!("{client_id}/{alert}/{severity}"),
            top_driver: None,
            excess_units: None,
            since_ms: None,
            at_ms,
        }
    }

    pub fn is_firing(&self) -> bool {
        self.state == "firing"
    }

    /// The alert's identity: its fingerprint, or client, kind and severity without one.
    fn identity(&self) -> String {
        if self.fingerprint.is_empty() {
            format!("{}/{}/{}", self.client_id, self.alert, self.severity)
        } else {
            self.fingerprint.clone()
        }
    }
}

/// Read alert JSON lines (blank lines skipped).
pub fn read_alerts(path: &Path) -> Result<Vec<AlertRecord>, ScoreError> {
    let io = |source| ScoreError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: AlertRecord = serde_json::from_str(&line).map_err(|e| ScoreError::Alert {
            path: path.to_owned(),
            line: n + 1,
            message: e.to_string(),
        })?;
        out.push(rec);
    }
    Ok(out)
}

/// Score the alerts in `alerts_jsonl` against `truth.json`.
pub fn score_files(truth_path: &Path, alerts_jsonl: &Path) -> Result<Report, ScoreError> {
    let truth = Truth::load(truth_path)?;
    let alerts = read_alerts(alerts_jsonl)?;
    Ok(score(&truth, &alerts))
}

/// Detection statistics of a group of anomalies (one alert kind, or one scenario).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    pub name: String,
    pub anomalies: usize,
    pub detected: usize,
    pub recall: f64,
    pub median_delay_s: Option<f64>,
    pub p90_delay_s: Option<f64>,
    pub max_delay_s: Option<f64>,
}

/// What became of one anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyResult {
    pub client_id: String,
    pub scenario: String,
    pub expect: Vec<String>,
    pub start: String,
    pub end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magnitude: Option<f64>,
    pub detected: bool,
    /// Seconds from the anomaly's start to the first detecting firing (negative if it came in
    /// the early grace).
    pub delay_s: Option<f64>,
    /// Kind and severity of the first detecting firing.
    pub detected_by: Option<String>,
    /// The label that carried the excess, if one did (truth), and the top driver the first
    /// detecting firing named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named: Option<String>,
}

/// Excess units an alert reported against the truth's, over the same hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcessCheck {
    pub client_id: String,
    pub at: String,
    pub reported: f64,
    pub truth: f64,
}

impl ExcessCheck {
    /// Within 1% (and a unit, for rounding).
    pub fn agrees(&self) -> bool {
        (self.reported - self.truth).abs() <= 0.01 * self.truth + 1.0
    }
}

/// A firing that matches no anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FalseFiring {
    pub client_id: String,
    pub alert: String,
    pub severity: String,
    pub at: String,
    /// The client's scenario role, `well_behaved`, or `unknown` for clients not in the truth.
    pub client_role: String,
    /// The legitimate behaviours the fleet gave that client (holiday, ramp, heavy_tail, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_traits: Vec<String>,
}

/// An alert that did not resolve in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stuck {
    pub client_id: String,
    /// Its kind and severity (`over_contract warning`).
    pub alert: String,
    pub fingerprint: String,
    pub fired: String,
    /// When it resolved, if it did.
    pub resolved: Option<String>,
    /// The anomaly it was about, or `false` for a false firing.
    pub context: String,
    /// For a scope or new-origin alert: the client's calls in the [`STUCK_AFTER_MS`] after the
    /// violation ended, and the run of clean calls that tells a violation at its share has
    /// stopped ([`crate::detect::scope::clean_run_needed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_after_end: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_to_tell: Option<u32>,
}

impl Stuck {
    /// The client made too few calls after the violation ended, in the time it had, for any
    /// alert to tell the end from the violation going on at its share.
    pub fn untold(&self) -> bool {
        matches!((self.calls_after_end, self.calls_to_tell), (Some(n), Some(m)) if n < m)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flap {
    pub client_id: String,
    pub alert: String,
    pub fingerprint: String,
    pub firings: usize,
    /// Of them, firings after the alert resolved across a pause of the anomaly (a holiday
    /// inside it), which are not re-fires.
    #[serde(default)]
    pub after_pause: usize,
    /// The anomaly's scenario whose window it flapped in, or `outside anomalies`.
    pub context: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub anomalies: usize,
    pub detected: usize,
    pub recall: f64,
    pub firings: usize,
    pub resolved: usize,
    pub matching_firings: usize,
    pub false_firings: usize,
    pub precision: f64,
    pub false_by_kind: BTreeMap<String, usize>,
    /// False firings of severity `critical`.
    pub false_pages: usize,
    /// Clients with traffic × days of the run.
    pub client_days: f64,
    pub false_per_1000_client_days: f64,
    /// Firings of an alert inside one anomaly's window after its first.
    pub refires: usize,
    pub stuck: Vec<Stuck>,
    pub flaps: Vec<Flap>,
    pub by_kind: Vec<GroupStats>,
    /// By expected kind and magnitude (`over_contract 4x`, `out_of_contract_product 15%`).
    pub by_magnitude: Vec<GroupStats>,
    pub by_scenario: Vec<GroupStats>,
    pub results: Vec<AnomalyResult>,
    pub false_list: Vec<FalseFiring>,
    /// Detected incidents one label drove, and of them those whose first alert named it.
    #[serde(default)]
    pub attributable: usize,
    #[serde(default)]
    pub attributed: usize,
    /// Every `over_contract` transition's excess units, against the truth (in-process scoring
    /// only: the per-minute truth is not written to `truth.json`).
    #[serde(default)]
    pub excess_checks: Vec<ExcessCheck>,
}

impl Report {
    /// The stuck alerts no alert could have resolved in time ([`Stuck::untold`]).
    pub fn stuck_untold(&self) -> usize {
        self.stuck.iter().filter(|s| s.untold()).count()
    }

    /// Median delay (seconds) of the detected anomalies `pick` selects.
    pub fn median_delay_s(&self, pick: impl Fn(&AnomalyResult) -> bool) -> Option<f64> {
        let mut d: Vec<f64> = self
            .results
            .iter()
            .filter(|r| pick(r))
            .filter_map(|r| r.delay_s)
            .collect();
        median(&mut d)
    }

    pub fn group(&self, kind_name: &str) -> Option<&GroupStats> {
        self.by_kind.iter().find(|g| g.name == kind_name)
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    }
}

fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

fn group_stats(name: &str, rows: &[(bool, Option<f64>)]) -> GroupStats {
    let detected = rows.iter().filter(|r| r.0).count();
    let mut delays: Vec<f64> = rows.iter().filter_map(|r| r.1).collect();
    let med = median(&mut delays);
    GroupStats {
        name: name.to_owned(),
        anomalies: rows.len(),
        detected,
        recall: ratio(detected, rows.len()),
        median_delay_s: med,
        p90_delay_s: percentile(&delays, 0.9),
        max_delay_s: delays.last().copied(),
    }
}

fn in_match_window(a: &Anomaly, at: i64) -> bool {
    at >= a.start_ms - EARLY_GRACE_MS && at <= a.end_ms + LATE_GRACE_MS
}

fn kind_rank(k: &str) -> (usize, String) {
    (
        kind::ALL
            .iter()
            .position(|x| *x == k)
            .unwrap_or(kind::ALL.len()),
        k.to_owned(),
    )
}

/// Did an alert of anomaly `a` that resolved at `resolved` and fired again at `again` resolve
/// across one of its pauses (in it, or in the day before it) and fire again after it? A
/// client at a tenth of its traffic for a day, or within its contract, is not over anything,
/// whatever its incident.
fn resolved_across_a_pause(a: &Anomaly, resolved: i64, again: i64) -> bool {
    a.pauses
        .iter()
        .any(|&[from, to]| (from - 24 * HOUR_MS..=to).contains(&resolved) && again >= to)
}

/// Score `alerts` (all transitions of a replay, any order) against `truth`.
pub fn score(truth: &Truth, alerts: &[AlertRecord]) -> Report {
    let mut firings: Vec<&AlertRecord> = alerts.iter().filter(|a| a.is_firing()).collect();
    firings.sort_by(|a, b| (a.at_ms, &a.client_id).cmp(&(b.at_ms, &b.client_id)));
    let resolved = alerts.len() - firings.len();

    let mut by_client: BTreeMap<&str, Vec<&Anomaly>> = BTreeMap::new();
    for a in &truth.anomalies {
        by_client.entry(a.client_id.as_str()).or_default().push(a);
    }
    let traits_of = |client: &str| -> Vec<String> {
        truth
            .client(client)
            .map_or_else(Vec::new, |c| c.traits.clone())
    };
    let role_of = |client: &str| -> String {
        if truth.is_well_behaved(client) {
            "well_behaved".to_owned()
        } else {
            truth
                .client(client)
                .map_or_else(|| "unknown".to_owned(), |c| c.role.as_str().to_owned())
        }
    };

    // detection
    let mut results = Vec::with_capacity(truth.anomalies.len());
    for a in &truth.anomalies {
        let first = firings.iter().find(|f| {
            f.client_id == a.client_id && a.expect.contains(&f.alert) && in_match_window(a, f.at_ms)
        });
        results.push(AnomalyResult {
            client_id: a.client_id.clone(),
            scenario: a.scenario.clone(),
            expect: a.expect.clone(),
            start: format_rfc3339(a.start_ms),
            end: format_rfc3339(a.end_ms),
            magnitude: a.magnitude,
            detected: first.is_some(),
            delay_s: first.map(|f| (f.at_ms - a.detectable()) as f64 / 1000.0),
            detected_by: first.map(|f| format!("{} {}", f.alert, f.severity)),
            driver: a.driver.clone(),
            named: first.and_then(|f| f.top_driver.clone()),
        });
    }
    let driven = || results.iter().filter(|r| r.detected && r.driver.is_some());
    let attributable = driven().count();
    let attributed = driven().filter(|r| r.named == r.driver).count();

    // matching and false firings
    let mut matching = 0;
    let mut false_list = Vec::new();
    let mut false_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for f in &firings {
        let ok = by_client.get(f.client_id.as_str()).is_some_and(|list| {
            list.iter().any(|a| {
                (a.expect.contains(&f.alert) || a.allow.contains(&f.alert))
                    && in_match_window(a, f.at_ms)
            })
        }) || cap_exceeded_indeed(truth, f);
        if ok {
            matching += 1;
        } else {
            *false_by_kind.entry(f.alert.clone()).or_insert(0) += 1;
            false_list.push(FalseFiring {
                client_id: f.client_id.clone(),
                alert: f.alert.clone(),
                severity: f.severity.clone(),
                at: f.at.clone(),
                client_role: role_of(&f.client_id),
                client_traits: traits_of(&f.client_id),
            });
        }
    }

    // flaps
    let mut by_identity: BTreeMap<(String, String), Vec<&AlertRecord>> = BTreeMap::new();
    for f in &firings {
        by_identity
            .entry((f.client_id.clone(), f.identity()))
            .or_default()
            .push(f);
    }
    let mut resolves_by_identity: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for r in alerts.iter().filter(|a| !a.is_firing()) {
        resolves_by_identity
            .entry((r.client_id.clone(), r.identity()))
            .or_default()
            .push(r.at_ms);
    }
    resolves_by_identity
        .values_mut()
        .for_each(|v| v.sort_unstable());
    let mut flaps = Vec::new();
    for ((client, identity), fs) in &by_identity {
        let list = by_client
            .get(client.as_str())
            .map_or(&[][..], |v| v.as_slice());
        let alert = fs.first().map_or(String::new(), |f| f.alert.clone());
        let resolves = resolves_by_identity.get(&(client.clone(), identity.clone()));
        for a in list {
            let within: Vec<i64> = fs
                .iter()
                .filter(|f| in_match_window(a, f.at_ms))
                .map(|f| f.at_ms)
                .collect();
            if within.len() > 1 {
                let after_pause = within
                    .windows(2)
                    .filter(|w| {
                        let resolve = resolves
                            .and_then(|rs| rs.iter().copied().find(|&r| r > w[0] && r <= w[1]));
                        resolve.is_some_and(|r| resolved_across_a_pause(a, r, w[1]))
                    })
                    .count();
                flaps.push(Flap {
                    client_id: client.clone(),
                    alert: alert.clone(),
                    fingerprint: identity.clone(),
                    firings: within.len(),
                    after_pause,
                    context: a.scenario.clone(),
                });
            }
        }
        let outside = fs
            .iter()
            .filter(|f| !list.iter().any(|a| in_match_window(a, f.at_ms)))
            .count();
        if outside > 1 {
            flaps.push(Flap {
                client_id: client.clone(),
                alert,
                fingerprint: identity.clone(),
                firings: outside,
                after_pause: 0,
                context: OUTSIDE.to_owned(),
            });
        }
    }

    // per kind: every anomaly counts under each kind it expects, detected by that kind
    let mut kinds: BTreeSet<(usize, String)> = BTreeSet::new();
    for a in &truth.anomalies {
        for k in &a.expect {
            kinds.insert(kind_rank(k));
        }
    }
    let by_kind = kinds
        .iter()
        .map(|(_, k)| {
            let rows: Vec<(bool, Option<f64>)> = truth
                .anomalies
                .iter()
                .filter(|a| a.expect.contains(k))
                .map(|a| {
                    let first = firings.iter().find(|f| {
                        f.client_id == a.client_id && &f.alert == k && in_match_window(a, f.at_ms)
                    });
                    (
                        first.is_some(),
                        first.map(|f| (f.at_ms - a.detectable()) as f64 / 1000.0),
                    )
                })
                .collect();
            group_stats(k, &rows)
        })
        .collect();

    let mut scenarios: Vec<&str> = Vec::new();
    for r in &results {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    let by_scenario = scenarios
        .iter()
        .map(|s| {
            let rows: Vec<(bool, Option<f64>)> = results
                .iter()
                .filter(|r| r.scenario == *s)
                .map(|r| (r.detected, r.delay_s))
                .collect();
            group_stats(s, &rows)
        })
        .collect();

    let mut magnitudes: Vec<(usize, String, i64)> = Vec::new();
    let magnitude_key = |r: &AnomalyResult| -> (usize, String, i64) {
        let k = r.expect.first().cloned().unwrap_or_default();
        let m = r.magnitude.map_or(0, |m| (m * 100.0).round() as i64);
        (kind_rank(&k).0, k, m)
    };
    for r in &results {
        let key = magnitude_key(r);
        if !magnitudes.contains(&key) {
            magnitudes.push(key);
        }
    }
    magnitudes.sort();
    let by_magnitude = magnitudes
        .iter()
        .map(|key| {
            let rows: Vec<(bool, Option<f64>)> = results
                .iter()
                .filter(|r| magnitude_key(r) == *key)
                .map(|r| (r.detected, r.delay_s))
                .collect();
            let (_, k, m) = key;
            let name = match (*m, k.as_str()) {
                (0, _) => k.clone(),
                (m, kind::OVER_CONTRACT | kind::BASELINE_JUMP | kind::CAP_FORECAST) => {
                    format!("{k} {}x", m as f64 / 100.0)
                }
                (m, _) => format!("{k} {m}%"),
            };
            group_stats(&name, &rows)
        })
        .collect();

    let refires = flaps
        .iter()
        .filter(|f| f.context != OUTSIDE)
        .map(|f| f.firings - 1 - f.after_pause)
        .sum();
    let stuck = stuck_alerts(truth, alerts, &by_client);
    let false_pages = false_list
        .iter()
        .filter(|f| f.severity == "critical")
        .count();
    let days = (truth.end_ms - truth.start_ms) as f64 / (24 * HOUR_MS) as f64;
    let active = truth.clients.iter().filter(|c| c.events > 0).count();
    let client_days = days * active as f64;

    let detected = results.iter().filter(|r| r.detected).count();
    Report {
        false_pages,
        client_days,
        false_per_1000_client_days: if client_days > 0.0 {
            false_list.len() as f64 * 1000.0 / client_days
        } else {
            0.0
        },
        refires,
        stuck,
        by_magnitude,
        anomalies: results.len(),
        detected,
        recall: ratio(detected, results.len()),
        firings: firings.len(),
        resolved,
        matching_firings: matching,
        false_firings: false_list.len(),
        precision: ratio(matching, firings.len()),
        false_by_kind,
        flaps,
        by_kind,
        by_scenario,
        results,
        false_list,
        attributable,
        attributed,
        excess_checks: excess_checks(truth, alerts),
    }
}

/// Each `over_contract` transition's excess units against the truth's, where the truth has
/// the client's minutes: the units above the contract's hour, hour by hour, from the start of
/// the hour the episode began in up to the transition (the hour in progress up to it).
fn excess_checks(truth: &Truth, alerts: &[AlertRecord]) -> Vec<ExcessCheck> {
    let mut out = Vec::new();
    for a in alerts {
        if a.alert != kind::OVER_CONTRACT {
            continue;
        }
        let (Some(reported), Some(since), Some(minutes), Some(per_hour)) = (
            a.excess_units,
            a.since_ms,
            truth.minute_units.get(&a.client_id),
            truth
                .client(&a.client_id)
                .and_then(|c| c.contract_units_per_hour),
        ) else {
            continue;
        };
        let minute = |t: i64| ((t - truth.start_ms).div_euclid(60_000)).max(0) as usize;
        let units = |from: i64, to: i64| -> f64 {
            minutes
                .get(minute(from).min(minutes.len())..minute(to).min(minutes.len()))
                .map_or(0.0, |m| m.iter().sum())
        };
        let mut total = 0.0;
        let mut h = since.div_euclid(HOUR_MS) * HOUR_MS;
        while h < a.at_ms {
            total += (units(h, (h + HOUR_MS).min(a.at_ms)) - per_hour).max(0.0);
            h += HOUR_MS;
        }
        out.push(ExcessCheck {
            client_id: a.client_id.clone(),
            at: a.at.clone(),
            reported,
            truth: total,
        });
    }
    out
}

const OUTSIDE: &str = "outside anomalies";

/// Alerts that stayed firing [`STUCK_AFTER_MS`] past their anomaly's end (or their own start,
/// when they match no anomaly).
fn stuck_alerts(
    truth: &Truth,
    alerts: &[AlertRecord],
    by_client: &BTreeMap<&str, Vec<&Anomaly>>,
) -> Vec<Stuck> {
    let mut by_identity: BTreeMap<String, Vec<&AlertRecord>> = BTreeMap::new();
    for a in alerts {
        by_identity.entry(a.identity()).or_default().push(a);
    }
    let mut out = Vec::new();
    for (identity, mut list) in by_identity {
        list.sort_by_key(|a| (a.at_ms, !a.is_firing()));
        for (i, f) in list.iter().enumerate() {
            if !f.is_firing() {
                continue;
            }
            let resolved = list[i + 1..]
                .iter()
                .find(|r| !r.is_firing())
                .map(|r| r.at_ms);
            let anomaly = by_client.get(f.client_id.as_str()).and_then(|l| {
                l.iter().find(|a| {
                    (a.expect.contains(&f.alert) || a.allow.contains(&f.alert))
                        && in_match_window(a, f.at_ms)
                })
            });
            let mut due = anomaly.map_or(f.at_ms, |a| a.end_ms.max(f.at_ms)) + STUCK_AFTER_MS;
            if let Some(month_end) = cap_blown_until(truth, f) {
                due = due.max(month_end + STUCK_AFTER_MS);
            }
            let late = match resolved {
                Some(r) => r > due,
                None => truth.end_ms > due,
            };
            if late {
                out.push(Stuck {
                    client_id: f.client_id.clone(),
                    alert: format!("{} {}", f.alert, f.severity),
                    fingerprint: identity.clone(),
                    fired: f.at.clone(),
                    resolved: resolved.map(format_rfc3339),
                    context: anomaly.map_or_else(|| "false".to_owned(), |a| a.scenario.clone()),
                    calls_after_end: anomaly.and_then(|a| a.calls_after_end),
                    calls_to_tell: anomaly
                        .filter(|a| a.calls_after_end.is_some())
                        .and_then(|a| a.magnitude)
                        .map(|share| crate::detect::scope::clean_run_needed(share).ceil() as u32),
                });
            }
        }
    }
    out
}

/// For a cap alert in a month whose units do cross the client's cap (the truth's crossings,
/// counted from the events, or, for a month the run ends in, expected to cross it by its end):
/// the end of that month. What such an alert says stays true until the cap resets, whatever
/// caused it (an overage that ate the month's budget days before still blows the cap), so it is
/// not stuck before then.
fn cap_blown_until(truth: &Truth, f: &AlertRecord) -> Option<i64> {
    if f.alert != kind::CAP_FORECAST && f.alert != kind::CAP_EXCEEDED {
        return None;
    }
    let month = month_of(f.at_ms);
    let client = truth.client(&f.client_id)?;
    let label = month_label(month);
    (client.cap_crossings.contains_key(&label)
        || client.cap_crossed_after_run.as_ref() == Some(&label))
    .then(|| month_start(month + 1))
}

/// A `cap_exceeded` firing at or after the minute its month's units did cross the client's cap
/// (the truth's crossing, counted from the events): true whatever used the month up, an
/// episode days before included, so never false (seed 4's `fleet-0123` crossed its cap six
/// days after its 4x episode ended, and was paged for it one minute later).
fn cap_exceeded_indeed(truth: &Truth, f: &AlertRecord) -> bool {
    f.alert == kind::CAP_EXCEEDED
        && truth
            .client(&f.client_id)
            .and_then(|c| c.cap_crossings.get(&month_label(month_of(f.at_ms))))
            .is_some_and(|&crossed| crossed <= f.at_ms)
}

/// `9m30s`, `45s`, `2h05m`: delays as people read them.
fn human_delay(s: Option<f64>) -> String {
    let Some(s) = s else {
        return "-".to_owned();
    };
    let s = s.round() as i64;
    let sign = if s < 0 { "-" } else { "" };
    let a = s.abs();
    if a >= 3600 {
        format!("{sign}{}h{:02}m", a / 3600, a % 3600 / 60)
    } else if a >= 60 {
        format!("{sign}{}m{:02}s", a / 60, a % 60)
    } else {
        format!("{sign}{a}s")
    }
}

fn write_groups(f: &mut fmt::Formatter<'_>, title: &str, groups: &[GroupStats]) -> fmt::Result {
    writeln!(
        f,
        "{title:<26} {:>9} {:>8} {:>6} {:>9} {:>9} {:>9}",
        "anomalies", "detected", "recall", "median", "p90", "max"
    )?;
    for g in groups {
        writeln!(
            f,
            "{:<26} {:>9} {:>8} {:>6.2} {:>9} {:>9} {:>9}",
            g.name,
            g.anomalies,
            g.detected,
            g.recall,
            human_delay(g.median_delay_s),
            human_delay(g.p90_delay_s),
            human_delay(g.max_delay_s)
        )?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "anomalies: {} detected of {} (recall {:.2}); firings: {} ({} matching, {} false, \
             precision {:.2}), {} resolved; flaps: {}",
            self.detected,
            self.anomalies,
            self.recall,
            self.firings,
            self.matching_firings,
            self.false_firings,
            self.precision,
            self.resolved,
            self.flaps.len()
        )?;
        writeln!(
            f,
            "false firings: {:.2} per 1,000 client-days ({:.0} client-days), {} of them pages; \
             re-fires inside anomalies: {}; stuck alerts: {}{}",
            self.false_per_1000_client_days,
            self.client_days,
            self.false_pages,
            self.refires,
            self.stuck.len(),
            match self.stuck_untold() {
                0 => String::new(),
                n => format!(
                    " ({n} of them on too few calls after their violation ended to tell it had)"
                ),
            }
        )?;
        if self.attributable > 0 || !self.excess_checks.is_empty() {
            writeln!(
                f,
                "drivers: the first alert named the label behind {} of {} driven incidents; \
                 excess units within 1% of the truth in {} of {} over_contract transitions",
                self.attributed,
                self.attributable,
                self.excess_checks.iter().filter(|c| c.agrees()).count(),
                self.excess_checks.len()
            )?;
        }
        writeln!(f)?;
        write_groups(f, "alert kind", &self.by_kind)?;
        if self.by_magnitude.iter().any(|g| g.name.contains(' ')) {
            writeln!(f)?;
            write_groups(f, "kind and magnitude", &self.by_magnitude)?;
        }
        writeln!(f)?;
        write_groups(f, "scenario", &self.by_scenario)?;
        writeln!(
            f,
            "(delay: from when the anomaly is clearly detectable (else its start) to its first \
             firing; negative when ahead of it)"
        )?;
        let missed: Vec<&AnomalyResult> = self.results.iter().filter(|r| !r.detected).collect();
        if !missed.is_empty() {
            writeln!(f, "\nmissed:")?;
            for r in missed {
                writeln!(
                    f,
                    "  {} {} ({}) {} .. {}",
                    r.client_id,
                    r.scenario,
                    r.expect.join("|"),
                    r.start,
                    r.end
                )?;
            }
        }
        if !self.false_list.is_empty() {
            let counts: Vec<String> = self
                .false_by_kind
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(f, "\nfalse firings ({}):", counts.join(", "))?;
            const SHOWN: usize = 25;
            for x in self.false_list.iter().take(SHOWN) {
                writeln!(
                    f,
                    "  {} {} {} [{}] ({}{}{})",
                    x.at,
                    x.client_id,
                    x.alert,
                    x.severity,
                    x.client_role,
                    if x.client_traits.is_empty() { "" } else { "; " },
                    x.client_traits.join(", ")
                )?;
            }
            if self.false_list.len() > SHOWN {
                writeln!(f, "  ... and {} more", self.false_list.len() - SHOWN)?;
            }
        }
        if !self.stuck.is_empty() {
            writeln!(f, "\nstuck:")?;
            for x in self.stuck.iter().take(25) {
                let evidence = match (x.calls_after_end, x.calls_to_tell) {
                    (Some(n), Some(m)) => format!(
                        "; {n} calls in the {} after its end, {m} clean in a row tell",
                        crate::time::duration_label(STUCK_AFTER_MS)
                    ),
                    _ => String::new(),
                };
                writeln!(
                    f,
                    "  {} {} {} fired {} resolved {} ({}{evidence})",
                    x.client_id,
                    x.alert,
                    x.fingerprint,
                    x.fired,
                    x.resolved.as_deref().unwrap_or("never"),
                    x.context
                )?;
            }
        }
        if !self.flaps.is_empty() {
            writeln!(f, "\nflaps:")?;
            for x in &self.flaps {
                writeln!(
                    f,
                    "  {} {} fired {} times ({})",
                    x.client_id, x.alert, x.firings, x.context
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::{ClientTruth, Faults, Role, SimParams};

    pub(super) const T0: i64 = 1_789_050_000_000; // 2026-09-10T14:20:00Z

    fn anomaly(
        client: &str,
        scenario: &str,
        expect: &str,
        allow: &[&str],
        start: i64,
        end: i64,
    ) -> Anomaly {
        Anomaly {
            client_id: client.into(),
            scenario: scenario.into(),
            expect: vec![expect.into()],
            allow: allow.iter().map(|s| s.to_string()).collect(),
            start_ms: start,
            end_ms: end,
            start: String::new(),
            end: String::new(),
            description: String::new(),
            magnitude: None,
            detectable_ms: None,
            driver: None,
            calls_after_end: None,
            pauses: Vec::new(),
        }
    }

    pub(super) fn truth() -> Truth {
        let client = |id: &str, role| ClientTruth {
            client_id: id.into(),
            role,
            contracted: true,
            contract_units_per_hour: Some(100.0),
            events: 1,
            cap_crossings: Default::default(),
            cap_crossed_after_run: None,
            traits: Vec::new(),
        };
        Truth {
            params: SimParams::default(),
            start_ms: T0 - 10 * 24 * HOUR_MS,
            end_ms: T0 + 10 * 24 * HOUR_MS,
            anomalies: vec![
                anomaly(
                    "jumpy",
                    "sudden_jump_contracted",
                    kind::OVER_CONTRACT,
                    &[kind::CAP_FORECAST],
                    T0,
                    T0 + 3 * HOUR_MS,
                ),
                anomaly(
                    "newbie",
                    "new_origin",
                    kind::NEW_ORIGIN,
                    &[],
                    T0,
                    T0 + 6 * HOUR_MS,
                ),
                anomaly(
                    "creepy",
                    "slow_creep_contracted",
                    kind::OVER_CONTRACT,
                    &[],
                    T0,
                    T0 + HOUR_MS,
                ),
            ],
            well_behaved: vec!["calm".into()],
            clients: vec![
                client("jumpy", Role::SuddenJumpContracted),
                client("newbie", Role::NewOrigin),
                client("creepy", Role::SlowCreepContracted),
                client("calm", Role::WellBehavedContracted),
            ],
            usage: Default::default(),
            usage_by_day: Default::default(),
            faults: Faults::default(),
            minute_units: Default::default(),
        }
    }

    #[test]
    fn drivers_and_excess_units_are_checked_against_the_truth() {
        let mut t = truth();
        t.anomalies[0].driver = Some("product:firehose".into());
        // "jumpy" at 5 units a minute for the 2h from 14:00, against 100 an hour: 200 over in
        // each whole hour
        let hour = T0 - T0 % HOUR_MS;
        let mut minutes = vec![0.0; ((t.end_ms - t.start_ms) / MINUTE_MS) as usize];
        let first = ((hour - t.start_ms) / MINUTE_MS) as usize;
        minutes[first..first + 120]
            .iter_mut()
            .for_each(|m| *m = 5.0);
        t.minute_units.insert("jumpy".into(), minutes);
        let with = |mut a: AlertRecord, driver: Option<&str>, excess: f64| {
            a.top_driver = driver.map(str::to_owned);
            a.excess_units = Some(excess);
            a.since_ms = Some(T0 + 9 * MINUTE_MS);
            a
        };
        let firing = fire(kind::OVER_CONTRACT, "jumpy", T0 + 9 * MINUTE_MS);
        let resolved = AlertRecord::new(
            kind::OVER_CONTRACT,
            false,
            "jumpy",
            T0 + 4 * HOUR_MS,
            "warning",
        );
        // at 14:29, 29 minutes of the hour: 145 units, 45 over
        let r = score(
            &t,
            &[
                with(firing.clone(), Some("product:firehose"), 45.0),
                with(resolved.clone(), None, 400.0),
            ],
        );
        assert_eq!((r.attributable, r.attributed), (1, 1));
        assert_eq!(r.excess_checks.len(), 2);
        assert!(
            r.excess_checks.iter().all(ExcessCheck::agrees),
            "{:?}",
            r.excess_checks
        );
        // the wrong label, and a total 2% off, are both caught
        let r = score(
            &t,
            &[
                with(firing, Some("country:US"), 45.0),
                with(resolved, None, 408.0),
            ],
        );
        assert_eq!((r.attributable, r.attributed), (1, 0));
        assert_eq!(r.results[0].named.as_deref(), Some("country:US"));
        assert!(!r.excess_checks[1].agrees(), "{:?}", r.excess_checks);
    }

    fn fire(kind: &str, client: &str, at: i64) -> AlertRecord {
        AlertRecord::new(kind, true, client, at, "warning")
    }

    #[test]
    fn detection_delay_and_recall() {
        let t = truth();
        let alerts = vec![
            fire(kind::OVER_CONTRACT, "jumpy", T0 + 9 * MINUTE_MS),
            AlertRecord::new(
                kind::OVER_CONTRACT,
                true,
                "jumpy",
                T0 + 20 * MINUTE_MS,
                "critical",
            ),
            AlertRecord::new(
                kind::OVER_CONTRACT,
                false,
                "jumpy",
                T0 + 4 * HOUR_MS,
                "warning",
            ),
            // allowed kind on the same client, inside the window: matching
            fire(kind::CAP_FORECAST, "jumpy", T0 + HOUR_MS),
            // detected 2h after the end: still in the window
            fire(kind::NEW_ORIGIN, "newbie", T0 + 8 * HOUR_MS),
        ];
        let r = score(&t, &alerts);
        assert_eq!((r.anomalies, r.detected), (3, 2));
        assert_eq!(r.results[0].delay_s, Some(540.0));
        assert_eq!(r.results[1].delay_s, Some(8.0 * 3600.0));
        assert!(!r.results[2].detected);
        let oc = r.group(kind::OVER_CONTRACT).unwrap();
        assert_eq!((oc.anomalies, oc.detected), (2, 1));
        assert_eq!(oc.median_delay_s, Some(540.0));
        assert_eq!((r.firings, r.resolved, r.false_firings), (4, 1, 0));
        assert_eq!(r.precision, 1.0);
        assert!(r.flaps.is_empty());
        assert_eq!(
            r.median_delay_s(|x| x.scenario.starts_with("sudden_jump")),
            Some(540.0)
        );
    }

    #[test]
    fn stuck_is_firing_six_hours_past_the_episode_or_the_blown_caps_month() {
        let resolve = |kind: &str, at: i64| AlertRecord::new(kind, false, "jumpy", at, "warning");
        let stuck = |t: &Truth, resolved_at: i64| {
            let alerts = [
                fire(kind::OVER_CONTRACT, "jumpy", T0 + 9 * MINUTE_MS),
                resolve(kind::OVER_CONTRACT, resolved_at),
                // the jump's consequence, never resolved in the run
                fire(kind::CAP_FORECAST, "jumpy", T0 + HOUR_MS),
            ];
            let r = score(t, &alerts);
            r.stuck.into_iter().map(|x| x.alert).collect::<Vec<_>>()
        };
        let mut t = truth();
        // the jump ends at T0 + 3h: resolving 9h later is stuck, 5h later is not
        assert_eq!(
            stuck(&t, T0 + 12 * HOUR_MS),
            ["cap_forecast warning", "over_contract warning"]
        );
        assert_eq!(stuck(&t, T0 + 8 * HOUR_MS), ["cap_forecast warning"]);
        // a month whose units do cross the cap: the forecast stays true until the month ends
        // (after the run here)
        t.clients[0]
            .cap_crossings
            .insert("2026-09".into(), T0 + 5 * 24 * HOUR_MS);
        assert!(stuck(&t, T0 + 8 * HOUR_MS).is_empty());
        // nor in a month the run ends in, when the rest of it at the client's usual rate
        // crosses the cap
        t.clients[0].cap_crossings.clear();
        t.clients[0].cap_crossed_after_run = Some("2026-09".into());
        assert!(stuck(&t, T0 + 8 * HOUR_MS).is_empty());
        t.clients[0].cap_crossed_after_run = None;
        // a crossing in another month does not count
        t.clients[0].cap_crossings.insert("2026-08".into(), T0);
        assert_eq!(stuck(&t, T0 + 8 * HOUR_MS), ["cap_forecast warning"]);
    }

    /// A cap really exceeded is paged truly, long after the episode that used it up.
    #[test]
    fn a_cap_exceeded_after_its_crossing_is_not_false() {
        let mut t = truth();
        let at = T0 + 9 * 24 * HOUR_MS;
        let alerts = [fire(kind::CAP_EXCEEDED, "jumpy", at)];
        let falses = |t: &Truth| score(t, &alerts).false_firings;
        assert_eq!(falses(&t), 1);
        // crossed after the alert, or in another month: still false
        t.clients[0].cap_crossings.insert("2026-09".into(), at + 1);
        assert_eq!(falses(&t), 1);
        t.clients[0].cap_crossings.clear();
        t.clients[0].cap_crossings.insert("2026-08".into(), at - 1);
        assert_eq!(falses(&t), 1);
        // crossed that month before it fired
        t.clients[0].cap_crossings.insert("2026-09".into(), at - 1);
        assert_eq!(falses(&t), 0);
    }

    /// A stuck scope or new-origin alert says whether its client's calls after the violation
    /// could show that it ended: a violation at 30% of the calls leaves 20 clean calls in a
    /// row one time in a thousand.
    #[test]
    fn a_stuck_violation_alert_says_whether_the_calls_after_it_could_tell() {
        let mut t = truth();
        let alerts = [fire(kind::NEW_ORIGIN, "newbie", T0 + HOUR_MS)];
        let stuck = |t: &Truth| score(t, &alerts).stuck.remove(0);
        // no count of the calls after (a volume incident, an older truth.json): nothing said
        let s = stuck(&t);
        assert_eq!(
            (s.calls_after_end, s.calls_to_tell, s.untold()),
            (None, None, false)
        );
        t.anomalies[1].magnitude = Some(0.3);
        for (after, untold) in [(19, true), (20, false)] {
            t.anomalies[1].calls_after_end = Some(after);
            let s = stuck(&t);
            assert_eq!(s.calls_to_tell, Some(20));
            assert_eq!(s.untold(), untold, "{after} calls after");
            let r = score(&t, &alerts);
            assert_eq!(r.to_string().contains("1 of them on too few calls"), untold);
            assert!(r.to_string().contains(&format!(
                "(new_origin; {after} calls in the 6h after its end, 20 clean in a row tell)"
            )));
        }
    }

    #[test]
    fn windows_are_inclusive_and_early_firings_count() {
        let t = truth();
        // at the very end of the grace: detected
        let r = score(&t, &[fire(kind::NEW_ORIGIN, "newbie", T0 + 8 * HOUR_MS)]);
        assert!(r.results[1].detected);
        // one millisecond later: missed and false
        let r = score(
            &t,
            &[fire(kind::NEW_ORIGIN, "newbie", T0 + 8 * HOUR_MS + 1)],
        );
        assert!(!r.results[1].detected);
        assert_eq!(r.false_firings, 1);
        // five minutes ahead of the modelled start: detected, with a negative delay
        let r = score(
            &t,
            &[fire(kind::OVER_CONTRACT, "creepy", T0 - 5 * MINUTE_MS)],
        );
        assert_eq!((r.false_firings, r.detected), (0, 1));
        assert_eq!(r.results[2].delay_s, Some(-300.0));
        assert_eq!(
            r.results[2].detected_by.as_deref(),
            Some("over_contract warning")
        );
        // eleven minutes ahead: false, and missed
        let r = score(
            &t,
            &[fire(kind::OVER_CONTRACT, "creepy", T0 - 11 * MINUTE_MS)],
        );
        assert_eq!((r.false_firings, r.detected), (1, 0));
    }

    #[test]
    fn false_firings_wrong_kind_client_or_time() {
        let t = truth();
        let alerts = vec![
            fire(kind::OVER_CONTRACT, "calm", T0), // well-behaved
            fire(kind::BASELINE_JUMP, "jumpy", T0 + HOUR_MS), // kind not expected/allowed
            fire(kind::OVER_CONTRACT, "jumpy", T0 - 2 * 24 * HOUR_MS), // days before
            fire(kind::NEW_ORIGIN, "stranger", T0), // not in the truth
            fire(kind::OVER_CONTRACT, "jumpy", T0 + MINUTE_MS), // the one good firing
        ];
        let r = score(&t, &alerts);
        assert_eq!(r.false_firings, 4);
        assert_eq!(r.matching_firings, 1);
        assert!((r.precision - 0.2).abs() < 1e-12);
        assert_eq!(r.false_by_kind[kind::OVER_CONTRACT], 2);
        let roles: Vec<&str> = r
            .false_list
            .iter()
            .map(|f| f.client_role.as_str())
            .collect();
        assert!(roles.contains(&"well_behaved") && roles.contains(&"unknown"));
        assert_eq!(r.detected, 1);
    }

    #[test]
    fn flaps_within_an_anomaly_and_on_well_behaved_clients() {
        let t = truth();
        let alerts = vec![
            fire(kind::OVER_CONTRACT, "jumpy", T0 + 5 * MINUTE_MS),
            AlertRecord::new(
                kind::OVER_CONTRACT,
                false,
                "jumpy",
                T0 + 30 * MINUTE_MS,
                "warning",
            ),
            fire(kind::OVER_CONTRACT, "jumpy", T0 + 40 * MINUTE_MS),
            // the critical one is a different fingerprint: no flap
            AlertRecord::new(
                kind::OVER_CONTRACT,
                true,
                "jumpy",
                T0 + 41 * MINUTE_MS,
                "critical",
            ),
            fire(kind::OVER_CONTRACT, "calm", T0),
            fire(kind::OVER_CONTRACT, "calm", T0 + 5 * 24 * HOUR_MS),
        ];
        let r = score(&t, &alerts);
        assert_eq!(r.flaps.len(), 2, "{:?}", r.flaps);
        assert_eq!(
            r.flaps
                .iter()
                .find(|f| f.client_id == "jumpy")
                .unwrap()
                .firings,
            2
        );
        assert_eq!(
            r.flaps
                .iter()
                .find(|f| f.client_id == "calm")
                .unwrap()
                .context,
            "outside anomalies"
        );
        // a single firing per episode is fine
        let r = score(&t, &alerts[..2]);
        assert!(r.flaps.is_empty());
    }

    #[test]
    fn an_alert_resolved_across_a_holiday_inside_its_anomaly_is_not_a_re_fire() {
        let mut t = truth();
        // the client's holiday in the second hour of its incident
        t.anomalies[0].pauses = vec![[T0 + HOUR_MS, T0 + 2 * HOUR_MS]];
        let resolve = |at| AlertRecord::new(kind::OVER_CONTRACT, false, "jumpy", at, "warning");
        let alerts = |again| {
            vec![
                fire(kind::OVER_CONTRACT, "jumpy", T0 + 5 * MINUTE_MS),
                resolve(T0 + 30 * MINUTE_MS),
                fire(kind::OVER_CONTRACT, "jumpy", again),
            ]
        };
        // fired again after the holiday: a new alert
        let r = score(&t, &alerts(T0 + 2 * HOUR_MS + 10 * MINUTE_MS));
        assert_eq!((r.flaps.len(), r.refires), (1, 0), "{:?}", r.flaps);
        // fired again before it ended: a re-fire
        let r = score(&t, &alerts(T0 + 40 * MINUTE_MS));
        assert_eq!(r.refires, 1);
        // without the holiday, the first too
        t.anomalies[0].pauses.clear();
        let r = score(&t, &alerts(T0 + 2 * HOUR_MS + 10 * MINUTE_MS));
        assert_eq!(r.refires, 1);
    }

    #[test]
    fn percentiles_and_report_rendering() {
        let rows: Vec<(bool, Option<f64>)> = [60.0, 120.0, 180.0, 240.0, 600.0]
            .iter()
            .map(|&d| (true, Some(d)))
            .chain(std::iter::once((false, None)))
            .collect();
        let g = group_stats("x", &rows);
        assert_eq!((g.anomalies, g.detected), (6, 5));
        assert_eq!(g.median_delay_s, Some(180.0));
        assert_eq!(g.p90_delay_s, Some(600.0));
        assert_eq!(g.max_delay_s, Some(600.0));
        assert_eq!(human_delay(Some(570.0)), "9m30s");
        assert_eq!(human_delay(Some(7500.0)), "2h05m");

        let r = score(&truth(), &[fire(kind::OVER_CONTRACT, "calm", T0)]);
        let text = r.to_string();
        assert!(text.contains("over_contract"), "{text}");
        assert!(
            text.contains("missed:") && text.contains("false firings"),
            "{text}"
        );
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn reads_the_spec_alert_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        std::fs::write(
            &path,
            r#"{"alert":"over_contract","state":"firing","client_id":"msft-bing","at":"2026-09-10T14:20:00Z","severity":"critical","window":"1h","observed":362000,"expected":120000,"ratio":3.02,"summary":"x","labels":{"plan":"enterprise"},"fingerprint":"abc"}

{"alert":"over_contract","state":"resolved","client_id":"msft-bing","at":"2026-09-10T16:20:00.5+02:00","severity":"critical","fingerprint":"abc"}
"#,
        )
        .unwrap();
        let a = read_alerts(&path).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].at_ms, T0);
        assert_eq!(a[1].at_ms, T0 + 500);
        assert!(a[0].is_firing() && !a[1].is_firing());
        std::fs::write(
            &path,
            "{\"alert\":\"x\",\"state\":\"firing\",\"client_id\":\"c\",\"at\":\"soon\"}\n",
        )
        .unwrap();
        let e = read_alerts(&path).unwrap_err().to_string();
        assert!(
            e.contains("alerts.jsonl:1") && e.contains("RFC 3339"),
            "{e}"
        );
    }
}
