//! Alerts: kinds, the firing/resolved lifecycle, and the JSON every sink receives.
//!
//! Detectors only say, at each evaluation, whether a condition is over its firing threshold,
//! in the hysteresis band, or clear. This module turns those verdicts into transitions with the
//! properties on-call engineers rely on: an alert fires once, stays firing while the condition
//! holds, resolves once (only after the condition has been clear for a while, so a borderline
//! client does not flap), and carries a fingerprint that is stable across restarts.
//!
//! Warning and critical are separate alerts (as two Prometheus rules would be), so that
//! Alertmanager can inhibit the warning while the critical one fires.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::{format_rfc3339, Millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    OverContract,
    BaselineJump,
    CapForecast,
    CapExceeded,
    OutOfContractProduct,
    OutOfContractEndpoint,
    OutOfContractOrigin,
    NewOrigin,
}

impl AlertKind {
    pub const ALL: [AlertKind; 8] = [
        AlertKind::OverContract,
        AlertKind::BaselineJump,
        AlertKind::CapForecast,
        AlertKind::CapExceeded,
        AlertKind::OutOfContractProduct,
        AlertKind::OutOfContractEndpoint,
        AlertKind::OutOfContractOrigin,
        AlertKind::NewOrigin,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::OverContract => "over_contract",
            AlertKind::BaselineJump => "baseline_jump",
            AlertKind::CapForecast => "cap_forecast",
            AlertKind::CapExceeded => "cap_exceeded",
            AlertKind::OutOfContractProduct => "out_of_contract_product",
            AlertKind::OutOfContractEndpoint => "out_of_contract_endpoint",
            AlertKind::OutOfContractOrigin => "out_of_contract_origin",
            AlertKind::NewOrigin => "new_origin",
        }
    }

    /// Alerts about the volume of consumption; while one fires, the learned baseline is frozen.
    pub fn is_volume(self) -> bool {
        matches!(self, AlertKind::OverContract | AlertKind::BaselineJump)
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Firing,
    Resolved,
}

/// What a detector measured for one alert at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub observed: f64,
    pub expected: f64,
    pub ratio: f64,
    /// The window the numbers are over.
    pub window: Millis,
    /// The product / endpoint / origin concerned (interned id), for scope alerts.
    pub item: Option<u32>,
}

/// A detector's verdict on one (kind, severity) at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Over the firing threshold.
    Fire(Reading),
    /// Between the resolve and the firing thresholds: a firing alert stays firing, a pending
    /// one does not advance.
    Hold(Reading),
    /// A firing alert's excess is still seen, if no longer over its firing test (a
    /// heavy-tailed client's overage passes that test now and then): it holds, and what comes
    /// after is judged from here, as after a `Fire`.
    Seen(Reading),
    /// Below the resolve threshold.
    Clear(Reading),
    /// Below the resolve threshold by the numbers, on too few calls to be sure (a small
    /// client's night): a firing alert resolves on these only after [`WEAK_RESOLVE_EVALS`] in a
    /// row (a [`Verdict::Unsure`] between them breaks no row), so it neither resolves on a
    /// lull nor stays firing forever on a silent client.
    Weak(Reading),
    /// Still in the band by the numbers (or, for a client whose usual day peaks in the band,
    /// close enough to its usual that its busiest hour ahead would be), on too few calls to be
    /// sure: a firing alert neither resolves on it nor counts it toward resolving for want of
    /// calls (a small client three days into a 6x jump is at 3x over a quiet night, and
    /// resolved after four such hours to page again in the morning), while an evaluation that
    /// leans out of the band still does.
    Unsure(Reading),
}

/// Evaluations (minutes) of [`Verdict::Weak`] or `Clear` in a row that resolve a firing alert.
pub const WEAK_RESOLVE_EVALS: u16 = 240;

impl Verdict {
    pub fn reading(&self) -> &Reading {
        match self {
            Verdict::Fire(r)
            | Verdict::Hold(r)
            | Verdict::Seen(r)
            | Verdict::Clear(r)
            | Verdict::Weak(r)
            | Verdict::Unsure(r) => r,
        }
    }
}

/// Lifecycle of one (kind, severity) on one client. Only exists while pending or firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    pub kind: AlertKind,
    pub severity: Severity,
    /// Evaluations in a row with `Fire` (pending) or, once firing, with `Clear`.
    pub streak: u16,
    /// Once firing, evaluations in a row with `Clear` or `Weak` (`Unsure` ones in between pass
    /// without counting).
    #[serde(default)]
    pub below: u16,
    /// `Some(since)` once firing.
    pub firing_since: Option<Millis>,
    /// The last evaluation whose verdict was `Fire` (or, once firing, `Seen`): where a volume
    /// alert's episode was last seen going on, so that resolving judges only what came after
    /// it.
    pub last_fire: Millis,
    pub last: Reading,
}

/// What a slot did at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Nothing,
    Fired,
    Resolved,
    /// Back to idle without having fired; the slot can be dropped.
    Dropped,
}

impl Slot {
    pub fn new(kind: AlertKind, severity: Severity, reading: Reading) -> Self {
        Slot {
            kind,
            severity,
            streak: 0,
            below: 0,
            firing_since: None,
            last_fire: 0,
            last: reading,
        }
    }

    pub fn is_firing(&self) -> bool {
        self.firing_since.is_some()
    }

    /// Did it resolve for want of calls ([`WEAK_RESOLVE_EVALS`] verdicts too few to tell since
    /// it last held), rather than on a clear reading? Its last reading may then still be in the
    /// band.
    pub fn expired(&self) -> bool {
        self.streak == 0 && self.below >= WEAK_RESOLVE_EVALS
    }

    /// Advance the lifecycle. `fire_after` and `resolve_after` are counts of evaluations.
    pub fn step(&mut self, v: Verdict, at: Millis, fire_after: u16, resolve_after: u16) -> Step {
        // A clear reading of a scope or origin alert names no item (nothing is out of scope any
        // more): the alert keeps naming the one it fired for, so its resolve says what resolved.
        let item = self.last.item;
        self.last = *v.reading();
        self.last.item = self.last.item.or(item);
        if matches!(v, Verdict::Fire(_)) || (self.is_firing() && matches!(v, Verdict::Seen(_))) {
            self.last_fire = at;
        }
        match (self.firing_since, v) {
            (None, Verdict::Fire(_)) => {
                self.streak += 1;
                if self.streak >= fire_after.max(1) {
                    self.firing_since = Some(at);
                    self.streak = 0;
                    Step::Fired
                } else {
                    Step::Nothing
                }
            }
            (None, _) => Step::Dropped,
            (Some(_), Verdict::Clear(_)) => {
                self.streak += 1;
                self.below = self.below.saturating_add(1);
                if self.streak >= resolve_after.max(1) || self.below >= WEAK_RESOLVE_EVALS {
                    Step::Resolved
                } else {
                    Step::Nothing
                }
            }
            (Some(_), Verdict::Weak(_)) => {
                self.streak = 0;
                self.below = self.below.saturating_add(1);
                if self.below >= WEAK_RESOLVE_EVALS {
                    Step::Resolved
                } else {
                    Step::Nothing
                }
            }
            (Some(_), Verdict::Unsure(_)) => {
                self.streak = 0;
                Step::Nothing
            }
            (Some(_), _) => {
                self.streak = 0;
                self.below = 0;
                Step::Nothing
            }
        }
    }
}

/// One alert transition, as written to stdout, the alerts topic and (translated) Alertmanager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert: AlertKind,
    pub state: State,
    pub client_id: String,
    /// Event time of the transition.
    #[serde(with = "crate::time::rfc3339")]
    pub at: Millis,
    pub severity: Severity,
    pub window: String,
    pub observed: f64,
    pub expected: f64,
    pub ratio: f64,
    pub summary: String,
    /// When this episode started firing.
    #[serde(with = "crate::time::rfc3339")]
    pub since: Millis,
    pub labels: BTreeMap<String, String>,
    pub fingerprint: String,
    /// What the excess comes from, most unusual first (volume alerts, when firing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drivers: Vec<DriverInfo>,
    /// Units above the contract (`over_contract`) or the learned baseline (`baseline_jump`),
    /// hour by hour, since the start of the hour the episode began in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excess_units: Option<f64>,
    /// Units above the contract, hour by hour, in the month so far (contracted clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excess_units_month: Option<f64>,
}

/// One driver of an excess, as alerts carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverInfo {
    /// `product`, `endpoint`, `country` or `asn`.
    pub dimension: String,
    pub name: String,
    /// The part of the excess it carries, its share of the client's units now, and usually.
    pub excess_share: f64,
    pub share: f64,
    pub usual_share: f64,
}

impl DriverInfo {
    /// `72% of the excess is product "firehose" (usually 0%)`.
    pub fn describe(&self) -> String {
        format!(
            "{:.0}% of the excess is {} \"{}\" (usually {:.0}%)",
            self.excess_share * 100.0,
            self.dimension,
            self.name,
            self.usual_share * 100.0
        )
    }
}

/// Stable identity of an alert: the same client, kind and severity always give the same value.
pub fn fingerprint(client_id: &str, kind: AlertKind, severity: Severity) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(client_id.as_bytes());
    h.update(&[0]);
    h.update(kind.as_str().as_bytes());
    h.update(&[0]);
    h.update(severity.as_str().as_bytes());
    format!("{:016x}", h.digest())
}

/// Round for display: ratios to 2 decimals, amounts to 2 decimals.
pub fn round2(x: f64) -> f64 {
    if x.is_finite() {
        (x * 100.0).round() / 100.0
    } else {
        0.0
    }
}

impl Alert {
    /// A critical `over_contract` transition of `client` (3x a 120,000 units/h enterprise
    /// contract over the last hour): the alert that sink and router tests send, in one place.
    #[doc(hidden)]
    pub fn example(state: State, client: &str, at: Millis, since: Millis) -> Alert {
        Alert {
            alert: AlertKind::OverContract,
            state,
            client_id: client.into(),
            at,
            severity: Severity::Critical,
            window: "1h".into(),
            observed: 362000.0,
            expected: 120000.0,
            ratio: 3.02,
            summary: format!(
                "{client} consumed 3.0x its contracted 120000 units/h over the last 1h"
            ),
            since,
            labels: [("plan".to_string(), "enterprise".to_string())].into(),
            fingerprint: fingerprint(client, AlertKind::OverContract, Severity::Critical),
            drivers: Vec::new(),
            excess_units: None,
            excess_units_month: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        state: State,
        client_id: &str,
        slot: &Slot,
        at: Millis,
        window: String,
        summary: String,
        labels: BTreeMap<String, String>,
    ) -> Alert {
        let r = &slot.last;
        Alert {
            alert: slot.kind,
            state,
            client_id: client_id.to_owned(),
            at,
            severity: slot.severity,
            window,
            observed: round2(r.observed),
            expected: round2(r.expected),
            ratio: round2(r.ratio),
            summary,
            since: slot.firing_since.unwrap_or(at),
            labels,
            fingerprint: fingerprint(client_id, slot.kind, slot.severity),
            drivers: Vec::new(),
            excess_units: None,
            excess_units_month: None,
        }
    }

    /// The drivers in one sentence, if any: `72% of the excess is product "firehose"
    /// (usually 0%); 70% of the excess is asn "AS8075" (usually 5%)`.
    pub fn drivers_text(&self) -> Option<String> {
        (!self.drivers.is_empty()).then(|| {
            self.drivers
                .iter()
                .map(DriverInfo::describe)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// The excess in one phrase, if measured: `41200 units over since 14:00Z, 96000 this month`.
    pub fn excess_text(&self) -> Option<String> {
        let episode = self.excess_units?;
        let over = if self.alert == AlertKind::BaselineJump {
            "above the usual"
        } else {
            "over contract"
        };
        let since = format_rfc3339(self.since);
        let hour = since
            .get(..13)
            .map_or(String::new(), |h| format!(" since {h}:00Z"));
        Some(match self.excess_units_month {
            Some(m) => format!(
                "{} units {over}{hour}, {} this month",
                fmt_units(episode),
                fmt_units(m)
            ),
            None => format!("{} units {over}{hour}", fmt_units(episode)),
        })
    }

    /// One human line, for logs and the demo.
    pub fn to_line(&self) -> String {
        let state = match self.state {
            State::Firing => "FIRING  ",
            State::Resolved => "RESOLVED",
        };
        format!(
            "{} {state} [{}] {} {}: {}",
            format_rfc3339(self.at),
            self.severity.as_str(),
            self.alert,
            self.client_id,
            self.details()
        )
    }

    /// The summary, then the excess and the drivers when there are any, `|`-separated.
    pub fn details(&self) -> String {
        let mut s = self.summary.clone();
        for extra in [self.excess_text(), self.drivers_text()]
            .into_iter()
            .flatten()
        {
            s.push_str(" | ");
            s.push_str(&extra);
        }
        s
    }
}

/// Units for people: `120000`, `1.2M`, `3.5k`.
pub fn fmt_units(x: f64) -> String {
    if x >= 10_000_000.0 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1_000_000.0 {
        format!("{:.2}M", x / 1e6)
    } else if x.fract() == 0.0 || x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ratio: f64) -> Reading {
        Reading {
            observed: ratio * 100.0,
            expected: 100.0,
            ratio,
            window: 60_000,
            item: None,
        }
    }

    #[test]
    fn fires_once_holds_and_resolves_once_after_a_clear_streak() {
        let mut s = Slot::new(AlertKind::OverContract, Severity::Warning, r(2.0));
        assert_eq!(s.step(Verdict::Fire(r(2.0)), 1, 1, 3), Step::Fired);
        assert_eq!(s.step(Verdict::Fire(r(2.0)), 2, 1, 3), Step::Nothing);
        assert_eq!(s.step(Verdict::Clear(r(0.5)), 3, 1, 3), Step::Nothing);
        assert_eq!(s.step(Verdict::Clear(r(0.5)), 4, 1, 3), Step::Nothing);
        // a value in the hysteresis band resets the clear streak
        assert_eq!(s.step(Verdict::Hold(r(1.4)), 5, 1, 3), Step::Nothing);
        assert_eq!(s.step(Verdict::Clear(r(0.5)), 6, 1, 3), Step::Nothing);
        assert_eq!(s.step(Verdict::Clear(r(0.5)), 7, 1, 3), Step::Nothing);
        assert_eq!(s.step(Verdict::Clear(r(0.5)), 8, 1, 3), Step::Resolved);
        assert_eq!(s.firing_since, Some(1));
        assert!(!s.expired());
    }

    #[test]
    fn an_excess_still_seen_holds_a_firing_alert_and_moves_where_it_was_last_seen() {
        let mut s = Slot::new(AlertKind::OverContract, Severity::Warning, r(2.0));
        // nothing to hold before it fires
        assert_eq!(s.step(Verdict::Seen(r(1.4)), 1, 2, 3), Step::Dropped);
        assert_eq!(s.last_fire, 0);
        assert_eq!(s.step(Verdict::Fire(r(2.0)), 2, 1, 3), Step::Fired);
        assert_eq!(s.step(Verdict::Clear(r(0.5)), 3, 1, 3), Step::Nothing);
        assert_eq!(s.step(Verdict::Seen(r(1.4)), 4, 1, 3), Step::Nothing);
        assert_eq!(s.last_fire, 4);
        // and it breaks a clear streak as a hold does
        assert_eq!(s.step(Verdict::Clear(r(0.5)), 5, 1, 3), Step::Nothing);
        assert_eq!(s.step(Verdict::Clear(r(0.5)), 6, 1, 3), Step::Nothing);
        assert_eq!(s.step(Verdict::Clear(r(0.5)), 7, 1, 3), Step::Resolved);
    }

    #[test]
    fn too_few_calls_to_tell_resolves_only_after_hours() {
        let mut s = Slot::new(AlertKind::OverContract, Severity::Warning, r(2.0));
        assert_eq!(s.step(Verdict::Fire(r(2.0)), 0, 1, 10), Step::Fired);
        // a quiet night: below the band by the numbers, proving nothing
        for t in 1..WEAK_RESOLVE_EVALS as i64 {
            assert_eq!(
                s.step(Verdict::Weak(r(0.2)), t, 1, 10),
                Step::Nothing,
                "{t}"
            );
        }
        // the morning's calls are over again: the same episode, no new alert
        assert_eq!(s.step(Verdict::Hold(r(1.4)), 500, 1, 10), Step::Nothing);
        for t in 501..500 + WEAK_RESOLVE_EVALS as i64 {
            assert_eq!(
                s.step(Verdict::Weak(r(0.2)), t, 1, 10),
                Step::Nothing,
                "{t}"
            );
        }
        // a client that stays silent resolves in the end
        assert_eq!(
            s.step(
                Verdict::Weak(r(0.0)),
                500 + WEAK_RESOLVE_EVALS as i64,
                1,
                10
            ),
            Step::Resolved
        );
        assert!(s.expired());
    }

    #[test]
    fn a_reading_still_in_the_band_on_few_calls_pauses_the_wait_for_calls() {
        let mut s = Slot::new(AlertKind::BaselineJump, Severity::Warning, r(6.0));
        assert_eq!(s.step(Verdict::Fire(r(6.0)), 0, 1, 10), Step::Fired);
        // a small client's night: out of the band, then still in it, on too few calls
        for t in 1..WEAK_RESOLVE_EVALS as i64 {
            assert_eq!(s.step(Verdict::Weak(r(0.5)), t, 1, 10), Step::Nothing);
        }
        // ...however long it stays in the band, and the hours out of it before still count
        for t in 0..2 * WEAK_RESOLVE_EVALS as i64 {
            let at = WEAK_RESOLVE_EVALS as i64 + t;
            assert_eq!(s.step(Verdict::Unsure(r(3.0)), at, 1, 10), Step::Nothing);
        }
        assert_eq!(
            s.step(Verdict::Weak(r(0.5)), 3 * WEAK_RESOLVE_EVALS as i64, 1, 10),
            Step::Resolved
        );
        assert!(s.expired());
    }

    #[test]
    fn a_resolve_names_the_item_it_fired_for() {
        let fired = Reading {
            item: Some(7),
            ..r(0.3)
        };
        let mut s = Slot::new(AlertKind::NewOrigin, Severity::Warning, fired);
        assert_eq!(s.step(Verdict::Fire(fired), 1, 1, 1), Step::Fired);
        assert_eq!(s.step(Verdict::Clear(r(0.0)), 2, 1, 1), Step::Resolved);
        assert_eq!(s.last.item, Some(7));
        assert_eq!(s.last.ratio, 0.0);
    }

    #[test]
    fn pending_needs_consecutive_fires() {
        let mut s = Slot::new(AlertKind::OverContract, Severity::Warning, r(2.0));
        assert_eq!(s.step(Verdict::Fire(r(2.0)), 1, 3, 1), Step::Nothing);
        assert_eq!(s.step(Verdict::Fire(r(2.0)), 2, 3, 1), Step::Nothing);
        assert_eq!(s.step(Verdict::Hold(r(1.4)), 3, 3, 1), Step::Dropped);
    }

    #[test]
    fn fingerprints_are_stable_and_distinct() {
        let a = fingerprint("c", AlertKind::OverContract, Severity::Warning);
        assert_eq!(
            a,
            fingerprint("c", AlertKind::OverContract, Severity::Warning)
        );
        assert_ne!(
            a,
            fingerprint("c", AlertKind::OverContract, Severity::Critical)
        );
        assert_ne!(
            a,
            fingerprint("d", AlertKind::OverContract, Severity::Warning)
        );
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn json_has_the_spec_fields() {
        let mut s = Slot::new(AlertKind::OverContract, Severity::Critical, r(3.02));
        s.step(Verdict::Fire(r(3.02)), 1_789_050_000_000, 1, 1);
        let a = Alert::new(
            State::Firing,
            "msft-bing",
            &s,
            1_789_050_000_000,
            "1h".into(),
            "x".into(),
            [("plan".to_string(), "enterprise".to_string())].into(),
        );
        let v: serde_json::Value = serde_json::to_value(&a).unwrap();
        for f in [
            "alert",
            "state",
            "client_id",
            "at",
            "severity",
            "window",
            "observed",
            "expected",
            "ratio",
            "summary",
            "labels",
            "fingerprint",
        ] {
            assert!(v.get(f).is_some(), "missing {f}");
        }
        assert_eq!(v["alert"], "over_contract");
        assert_eq!(v["state"], "firing");
        assert_eq!(v["at"], "2026-09-10T14:20:00Z");
        assert_eq!(v["ratio"], 3.02);
        assert_eq!(v["labels"]["plan"], "enterprise");
    }
}
