//! `new_origin`: for clients without a contracted origin list, a sustained share of recent
//! calls from an origin (a country, or a network: each tracked on its own) the client did not
//! use before.
//!
//! A count detector (see [`super::scope::count_share`]). An origin is new when first seen after
//! the client's own learning period (`learn_after` from its first event, and as many of its
//! calls as show an origin at `min_share` of them: [`LEARN_CHANCE`]) and either less than
//! `learn_after` ago or fewer of the client's calls ago than it takes to see `min_events` calls
//! at `min_share` (a client making a call an hour takes days to show a new origin at a third of
//! its calls ten times; for a week at most).
//!
//! Client state read: the origin table ([`crate::client::Origins`] in
//! [`crate::client::Scope`]: first seen, decayed calls, calls since first seen, the client's
//! call count at its first and last call) and `total`, decayed with `[detect.scope]`'s
//! `half_life`; `first_seen`. The engine fills the origin table only while
//! this detector is enabled.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::scope::{check_share, count_share, fired_lately, Violation};
use super::{About, Context, Detector, InvalidSetting, Verdicts};
use crate::alert::{AlertKind, Reading, Severity, Verdict};
use crate::client::{Client, Scope};
use crate::config::{ms, DetectConfig};
use crate::time::{duration_label, Millis};

/// `[detect.new_origin]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewOriginConfig {
    pub enabled: bool,
    /// Share of the client's recent calls from one unestablished origin that fires.
    pub min_share: f64,
    pub min_events: f64,
    /// An origin is established once it has been seen this long; origins seen in a client's
    /// first `learn_after` are its own from the start.
    #[serde(with = "humantime_serde")]
    pub learn_after: Duration,
}

impl Default for NewOriginConfig {
    fn default() -> Self {
        NewOriginConfig {
            enabled: true,
            min_share: 0.1,
            min_events: 10.0,
            learn_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl NewOriginConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        check_share("detect.new_origin.min_share", self.min_share)
    }
}

/// An origin stays new for at most this many `learn_after` spans, however few calls the client
/// made since it appeared.
const MAX_NEW_SPANS: i64 = 7;

/// An origin the client's first calls could have missed by chance is one of its own too: one
/// at `min_share` of its calls is missing from the first `ln(LEARN_CHANCE) / ln(1 − min_share)`
/// of them (44 at 10%) at this chance. A client of a call an hour, or starting on an onboarding
/// ramp, makes a few dozen calls in its first day, and an origin it uses for a tenth of them
/// was first seen on the second, to fire days later as new (seed 5's `fleet-0133`, seed 6's
/// `fleet-0186`).
const LEARN_CHANCE: f64 = 0.01;

#[derive(Debug, Clone)]
pub struct NewOrigin {
    pub enabled: bool,
    pub min_share: f64,
    pub min_events: f64,
    pub learn_after: Millis,
    /// `[detect.scope]`'s half-life, which the origin counters decay with.
    pub half_life: Millis,
}

impl NewOrigin {
    /// The largest share of recent calls from an origin that is not established, with at
    /// least `min_events` calls since it was first seen.
    pub fn verdict(&self, c: &Client, t: Millis) -> Verdict {
        let s: &Scope = &c.scope;
        let settled_by = c.first_seen + self.learn_after;
        // Enough of the client's calls to see `min_events` of them at `min_share`: a client
        // making a call an hour needs days for that, a busy one minutes.
        let calls_to_judge = self.min_events / self.min_share;
        // (counted from the table's oldest origin, where that came with the client's first
        // calls: calls without an origin are in no entry's count)
        let learn_calls = LEARN_CHANCE.ln() / (1.0 - self.min_share).ln();
        let among_the_first = |id: u32| {
            s.origins.calls_before(id).is_some_and(|(calls, from)| {
                from < c.first_seen + crate::time::HOUR_MS && calls < learn_calls
            })
        };
        let new = |id: u32, first: Millis| {
            let age = t - first;
            first >= settled_by
                && !among_the_first(id)
                && (age < self.learn_after
                    || (age < MAX_NEW_SPANS * self.learn_after
                        && s.origins.calls_since(id) < calls_to_judge))
        };
        let newest = s
            .origins
            .iter()
            .filter(|&(id, first, _)| new(id, first))
            .max_by(|a, b| a.2.total_cmp(&b.2));
        match newest {
            Some((id, _, calls)) => {
                let (count, since, ran_at, clean) = s.origins.since(id).unwrap_or((0, 0.0, 0.0, 0));
                let v = Violation {
                    part: calls as f64,
                    total: s.total as f64,
                    count: count as f64,
                    recent: count as f64,
                    long_total: since,
                    ran_at,
                    fired_lately: fired_lately(c, AlertKind::NewOrigin, t, self.half_life),
                    clean,
                    item: id,
                };
                count_share(&v, self.min_events, self.min_share, self.half_life)
            }
            None => Verdict::Clear(Reading {
                observed: 0.0,
                expected: s.total as f64,
                ratio: 0.0,
                window: self.half_life,
                item: None,
            }),
        }
    }
}

impl Detector for NewOrigin {
    fn new(d: &DetectConfig) -> Self {
        NewOrigin {
            enabled: d.new_origin.enabled,
            min_share: d.new_origin.min_share,
            min_events: d.new_origin.min_events,
            learn_after: ms(d.new_origin.learn_after),
            half_life: ms(d.scope.half_life),
        }
    }

    fn kinds(&self) -> &'static [AlertKind] {
        &[AlertKind::NewOrigin]
    }

    fn evaluate(&self, cx: &Context<'_>, out: &mut Verdicts) {
        // a contract with an origin list has `out_of_contract_origin` instead
        if self.enabled && cx.scope.is_none_or(|k| k.countries.is_none()) {
            out.push((
                AlertKind::NewOrigin,
                Severity::Warning,
                self.verdict(cx.client, cx.t),
            ));
        }
    }

    fn summary(&self, _kind: AlertKind, a: &About<'_>) -> (String, String) {
        let r = a.reading;
        (
            duration_label(r.window),
            format!(
                "{} has {:.0}% of recent calls from {}, an origin not seen for it before",
                a.client_id,
                r.ratio * 100.0,
                a.item
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::T0;
    use super::super::Detectors;
    use super::*;
    use crate::time::HOUR_MS;
    use std::sync::Arc;

    #[test]
    fn new_origin_ignores_established_origins() {
        let p = Detectors::default();
        let new_origin = |c: &Client, t| p.new_origin.verdict(c, t);
        let mut c = Client::new(Arc::from("c"), None, T0 - 10 * 24 * HOUR_MS);
        // an origin from the first day is the client's own, however big its share
        for _ in 0..100 {
            c.scope.origins.count_call();
            c.scope.origins.add(1, T0 - 10 * 24 * HOUR_MS, 1.0);
        }
        c.scope.total = 130.0;
        assert!(matches!(new_origin(&c, T0), Verdict::Clear(_)));
        // one first seen an hour ago with 30 of 130 calls is new
        for _ in 0..30 {
            c.scope.origins.count_call();
            c.scope.origins.add(2, T0 - HOUR_MS, 1.0);
        }
        assert!(matches!(new_origin(&c, T0), Verdict::Fire(r) if r.item == Some(2)));
        // a day later, after a busy client's next 200 calls, it is established...
        let mut busy = c.clone();
        (0..200).for_each(|_| busy.scope.origins.count_call());
        assert!(matches!(
            new_origin(&busy, T0 + 24 * HOUR_MS),
            Verdict::Clear(_)
        ));
        // ...but not after a slow client's next 20: too few to tell 10 calls at 10% of them
        let mut slow = c.clone();
        (0..20).for_each(|_| slow.scope.origins.count_call());
        assert!(!matches!(
            new_origin(&slow, T0 + 24 * HOUR_MS),
            Verdict::Clear(_)
        ));
        // and after a week, whatever the calls
        assert!(matches!(
            new_origin(&slow, T0 + 7 * 24 * HOUR_MS),
            Verdict::Clear(_)
        ));
    }

    #[test]
    fn an_origin_the_first_calls_could_have_missed_is_the_clients_own() {
        let p = Detectors::default();
        let calls_from = |n: usize, first_origin_at: Millis| {
            let mut c = Client::new(Arc::from("c"), None, T0 - 10 * 24 * HOUR_MS);
            for _ in 0..n {
                c.scope.origins.count_call();
                c.scope.origins.add(1, first_origin_at, 1.0);
            }
            // a second origin first seen after the first day, at 30 of the next 60 calls
            for k in 0..60 {
                c.scope.origins.count_call();
                let origin = if k % 2 == 0 { 2 } else { 1 };
                c.scope.origins.add(origin, T0 - HOUR_MS, 1.0);
            }
            c.scope.total = 60.0;
            p.new_origin.verdict(&c, T0)
        };
        let first_day_calls = |n| calls_from(n, T0 - 10 * 24 * HOUR_MS);
        // 20 calls in the first day: a tenth of the calls from the second origin would have
        // been missing from them one time in 8
        assert!(matches!(first_day_calls(20), Verdict::Clear(_)));
        // 50 calls: one in 200
        assert!(matches!(first_day_calls(50), Verdict::Fire(r) if r.item == Some(2)));
        // calls without an origin are in no origin's count: where the first origin came two
        // days after the client's first call, the calls before the second are not known
        assert!(matches!(
            calls_from(20, T0 - 8 * 24 * HOUR_MS),
            Verdict::Fire(r) if r.item == Some(2)
        ));
    }
}
