//! `out_of_contract_product`, `_endpoint` and `_origin`: a sustained share of a contracted
//! client's calls breaking its contract's product, endpoint or origin list (each kind only for
//! contracts that have the list).
//!
//! Count detectors: enough violating calls since the violation began, making enough of the
//! client's recent traffic, fire; the alert ends once the share is under half that and a run of
//! the client's own clean calls shows the violation has stopped (see [`count_share`], shared
//! with [`super::new_origin`]).
//!
//! Client state read: the scope counters ([`crate::client::Scope`]: decayed `bad_*`,
//! `bad_long`, `total`, `total_long`; the violation's calls `run` and long share `ran_at`; the
//! last violating item of each kind and the calls since the last violating one), which the
//! engine keeps with this section's `half_life`; the last time a firing alert of the kind was
//! over its thresholds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{stats, About, Context, Detector, InvalidSetting, Verdicts};
use crate::alert::{AlertKind, Reading, Severity, Verdict};
use crate::client::{Client, LONG_HALF_LIVES};
use crate::config::{ms, DetectConfig};
use crate::time::{duration_label, Millis};

/// `[detect.scope]`: `out_of_contract_product`, `_endpoint` and `_origin`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScopeConfig {
    pub enabled: bool,
    /// Out-of-contract calls are counted with exponential decay of this half-life.
    #[serde(with = "humantime_serde")]
    pub half_life: Duration,
    /// Sustained use: at least this many violating calls since the violation began...
    pub min_events: f64,
    /// ...making at least this share of the client's calls.
    pub min_share: f64,
}

impl Default for ScopeConfig {
    fn default() -> Self {
        ScopeConfig {
            enabled: true,
            half_life: Duration::from_secs(30 * 60),
            min_events: 10.0,
            min_share: 0.05,
        }
    }
}

impl ScopeConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.half_life < Duration::from_secs(60) {
            return Err(InvalidSetting::new(
                "detect.scope.half_life",
                "must be at least 1m",
            ));
        }
        check_share("detect.scope.min_share", self.min_share)
    }
}

/// A share setting is in (0, 1).
pub(super) fn check_share(field: &str, share: f64) -> Result<(), InvalidSetting> {
    if !(share > 0.0 && share < 1.0) {
        return Err(InvalidSetting::new(field, "must be in (0, 1)"));
    }
    Ok(())
}

/// Hysteresis of count-based detectors: they clear below half their thresholds.
const COUNT_CLEAR_FRACTION: f64 = 0.5;
/// A long count below this (half a call) means the violation has stopped being seen at all.
const SILENT_COUNT: f64 = 0.5;

#[derive(Debug, Clone)]
pub struct OutOfContract {
    pub enabled: bool,
    /// Half-life of the decayed scope and origin counters (the engine decays them with it;
    /// `new_origin` reads them too).
    pub half_life: Millis,
    pub min_events: f64,
    pub min_share: f64,
}

/// What a count detector knows of one violation (calls breaking a scope rule, or from a new
/// origin) at one evaluation.
pub(super) struct Violation {
    /// Decayed violating calls and decayed calls, with the half-life: the share now.
    pub part: f64,
    pub total: f64,
    /// Violating calls since the violation began, however slowly the client calls: enough of
    /// them to fire.
    pub count: f64,
    /// Violating calls over a longer span, of `long_total` calls (their share:
    /// [`Violation::long_share`]); once under half a call, nothing is left to tell.
    pub recent: f64,
    pub long_total: f64,
    /// The long share as of the last violating call: what the violation ran at.
    pub ran_at: f64,
    /// A firing alert of the kind was over its thresholds within the long half-life: the long
    /// share may still be rising from the calls before the violation began.
    pub fired_lately: bool,
    /// The client's calls since the last violating one.
    pub clean: u32,
    pub item: u32,
}

impl Violation {
    /// The share of violating calls over the longer span.
    fn long_share(&self) -> f64 {
        if self.long_total > 0.0 {
            self.recent / self.long_total
        } else {
            0.0
        }
    }
}

/// Is the long share clearly under `min_share`, on enough calls to tell? A client making a few
/// calls an hour shows a violation at 5% of them as no violating call for hours at a time.
fn clearly_under(v: &Violation, min_share: f64) -> bool {
    let calls = v.long_total;
    // (non-finite counters read as nothing left, as in `faded`)
    !(calls.is_finite() && v.recent.is_finite())
        || stats::clearly_below(v.recent, min_share * calls, 1.0, CLEAN_RUN_CHANCE)
}

/// Was a firing alert of `kind` over its thresholds within the long half-life before `t`?
pub(super) fn fired_lately(c: &Client, kind: AlertKind, t: Millis, half_life: Millis) -> bool {
    c.last_fire(kind)
        .is_some_and(|at| ((t - at) as f64) < half_life as f64 * LONG_HALF_LIVES)
}

/// A run of clean calls this unlikely under a violation still going on at its share ends it.
const CLEAN_RUN_CHANCE: f64 = 1e-3;

/// The run of clean calls that shows a violation at `share` of the calls has stopped.
pub(crate) fn clean_run_needed(share: f64) -> f64 {
    CLEAN_RUN_CHANCE.ln() / (1.0 - share.min(0.99)).ln()
}

/// Fires on at least `min_events` violating calls making at least `min_share` of the recent
/// calls. Clears once the recent share is under half that and the violation is over in the
/// client's own calls: a run of clean calls that the share the violation ran at would hardly
/// leave, or a long share clearly under the threshold and under half of it, once a long
/// half-life has passed since the alert was last over its thresholds (a violation at 5% of a
/// busy client's calls has a long share still under half that for hours after it began: it
/// resolved and fired again). Counted in calls, not minutes, because a small client's decayed
/// share empties in any quiet hour and refills with its next violating call: scope alerts
/// resolved every night and fired again every morning.
pub(super) fn count_share(
    v: &Violation,
    min_events: f64,
    min_share: f64,
    window: Millis,
) -> Verdict {
    let share = if v.total > 0.0 { v.part / v.total } else { 0.0 };
    let r = Reading {
        observed: v.count,
        expected: v.total,
        ratio: share,
        window,
        item: Some(v.item),
    };
    let clear_at = min_share * COUNT_CLEAR_FRACTION;
    // (Counters that went non-finite, decayed across an absurd jump in event time, read as
    // nothing left, not as a violation held forever.)
    let faded = |x: f64| x.is_nan() || x < clear_at;
    // (a violating call within about the recent half-life: a silent client keeps its last
    // shares and counts, and fired for good on them)
    if v.count >= min_events && share >= min_share && v.part >= SILENT_COUNT {
        Verdict::Fire(r)
    } else if faded(share)
        && ((faded(v.long_share()) && !v.fired_lately && clearly_under(v, min_share))
            || v.clean as f64 >= clean_run_needed(v.ran_at))
    {
        Verdict::Clear(r)
    } else if v.recent.is_nan() || v.recent < SILENT_COUNT {
        // A client that went silent keeps its last shares forever: once even the long count
        // has decayed to nothing, there is nothing left to tell, and the alert resolves after
        // the weak span instead of holding (and being evaluated every minute) for good.
        Verdict::Weak(r)
    } else {
        Verdict::Hold(r)
    }
}

impl Detector for OutOfContract {
    fn new(d: &DetectConfig) -> Self {
        OutOfContract {
            enabled: d.scope.enabled,
            half_life: ms(d.scope.half_life),
            min_events: d.scope.min_events,
            min_share: d.scope.min_share,
        }
    }

    fn kinds(&self) -> &'static [AlertKind] {
        &[
            AlertKind::OutOfContractProduct,
            AlertKind::OutOfContractEndpoint,
            AlertKind::OutOfContractOrigin,
        ]
    }

    fn evaluate(&self, cx: &Context<'_>, out: &mut Verdicts) {
        if !self.enabled {
            return;
        }
        let s = &cx.client.scope;
        let kinds = [
            (
                AlertKind::OutOfContractProduct,
                cx.scope.is_some_and(|k| k.products.is_some()),
                s.bad_product,
                s.last_product,
            ),
            (
                AlertKind::OutOfContractEndpoint,
                cx.contract.is_some_and(|k| k.endpoints.is_some()),
                s.bad_endpoint,
                s.last_endpoint,
            ),
            (
                AlertKind::OutOfContractOrigin,
                cx.scope.is_some_and(|k| k.countries.is_some()),
                s.bad_origin,
                s.last_origin,
            ),
        ];
        for (i, (kind, applies, bad, item)) in kinds.into_iter().enumerate() {
            if !applies {
                continue;
            }
            let (ran_at, clean) = s.last_violation(i);
            let fired_lately = fired_lately(cx.client, kind, cx.t, self.half_life);
            let v = Violation {
                part: bad as f64,
                total: s.total as f64,
                count: s.run[i] as f64,
                recent: s.bad_long[i] as f64,
                long_total: s.total_long as f64,
                ran_at,
                fired_lately,
                clean,
                item,
            };
            out.push((
                kind,
                Severity::Warning,
                count_share(&v, self.min_events, self.min_share, self.half_life),
            ));
        }
    }

    fn summary(&self, kind: AlertKind, a: &About<'_>) -> (String, String) {
        let (id, item, r) = (a.client_id, a.item, a.reading);
        let pct = format!("{:.0}%", r.ratio * 100.0);
        let summary = match kind {
            AlertKind::OutOfContractProduct => format!(
                "{id} is using product \"{item}\", outside its contract ({pct} of recent calls)"
            ),
            AlertKind::OutOfContractEndpoint => format!(
                "{id} is calling endpoint \"{item}\", outside its contract ({pct} of recent calls)"
            ),
            _ => format!(
                "{id} has traffic from {item}, outside its contracted origins ({pct} of recent calls)"
            ),
        };
        (duration_label(r.window), summary)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Detectors;
    use super::*;

    /// The verdict of the default `[detect.scope]` on one violation.
    fn verdict(part: f64, count: f64, total: f64, long_share: f64, clean: u32) -> Verdict {
        let p = Detectors::default().scope;
        let v = Violation {
            part,
            total,
            count,
            recent: long_share * total * LONG_HALF_LIVES,
            long_total: total * LONG_HALF_LIVES,
            ran_at: long_share,
            fired_lately: false,
            clean,
            item: 1,
        };
        count_share(&v, p.min_events, p.min_share, p.half_life)
    }

    #[test]
    fn scope_share_has_a_hysteresis_band() {
        assert!(matches!(
            verdict(20.0, 40.0, 200.0, 0.1, 0),
            Verdict::Fire(_)
        ));
        assert!(matches!(
            verdict(7.0, 40.0, 200.0, 0.1, 3),
            Verdict::Hold(_)
        ));
        assert!(matches!(
            verdict(20.0, 40.0, 10_000.0, 0.002, 0),
            Verdict::Clear(_)
        ));
    }

    #[test]
    fn a_violation_ends_after_a_run_of_clean_calls_its_share_would_hardly_leave() {
        // at 15% of the calls, 43 clean calls in a row happen with chance 1e-3
        assert!((clean_run_needed(0.15) - 42.5).abs() < 0.1);
        // a small client's quiet hour empties the recent share, not the violation
        assert!(matches!(verdict(0.0, 8.0, 2.0, 0.15, 20), Verdict::Hold(_)));
        assert!(matches!(
            verdict(0.0, 8.0, 2.0, 0.15, 43),
            Verdict::Clear(_)
        ));
        // a violation at most of the calls is over after a few clean ones
        assert!(matches!(
            verdict(0.0, 30.0, 40.0, 0.9, 5),
            Verdict::Clear(_)
        ));
        // one that went on at a trickle, under half the threshold over the long span, is over
        assert!(matches!(
            verdict(1.0, 40.0, 200.0, 0.02, 0),
            Verdict::Clear(_)
        ));
        // but a busy client's clean minutes do not end it while its recent share is still up
        assert!(matches!(
            verdict(7.0, 40.0, 200.0, 0.15, 500),
            Verdict::Hold(_)
        ));
    }

    #[test]
    fn a_slow_client_reaches_the_count_of_its_violation() {
        // a few calls an hour: under one violating call with the short half-life, a dozen
        // since the violation began; a quarter of its calls
        assert!(matches!(verdict(0.8, 12.0, 3.2, 0.25, 0), Verdict::Fire(_)));
        // the same share with too few violating calls yet only holds
        assert!(matches!(verdict(0.8, 4.0, 3.2, 0.25, 0), Verdict::Hold(_)));
    }

    #[test]
    fn a_trickle_resolves_only_once_the_long_share_is_clearly_under_and_the_alert_quiet() {
        let p = Detectors::default().scope;
        // 2% over the long span, no violating call in the recent one
        let v = |long_total: f64, fired_lately: bool| Violation {
            part: 0.0,
            total: 10.0,
            count: 40.0,
            recent: 0.02 * long_total,
            long_total,
            ran_at: 0.05,
            fired_lately,
            clean: 3,
            item: 1,
        };
        let verdict = |v: &Violation| count_share(v, p.min_events, p.min_share, p.half_life);
        // on 5,000 calls 2% is clearly under 5%...
        assert!(matches!(verdict(&v(5000.0, false)), Verdict::Clear(_)));
        // ...on 100 it is two calls where five were expected: a lull, not the end
        assert!(matches!(verdict(&v(100.0, false)), Verdict::Hold(_)));
        // nor while the alert was over its thresholds within the long half-life: the long
        // share may still be rising from the calls before the violation began
        assert!(matches!(verdict(&v(5000.0, true)), Verdict::Hold(_)));
    }

    #[test]
    fn counters_gone_non_finite_clear_rather_than_hold_forever() {
        assert!(matches!(
            verdict(f64::NAN, f64::NAN, f64::NAN, f64::NAN, 0),
            Verdict::Clear(_)
        ));
        assert!(matches!(
            verdict(1.0, 40.0, f64::INFINITY, f64::NAN, 0),
            Verdict::Clear(_)
        ));
    }

    #[test]
    fn a_scope_share_left_by_a_silent_client_fades_to_weak() {
        // a quarter of the calls out of scope, nothing seen for many long half-lives: too
        // little to tell
        assert!(matches!(
            verdict(0.001, 0.1, 0.004, 0.25, 0),
            Verdict::Weak(_)
        ));
        // however many calls its violation made: they are counted for good, the silence too
        let p = Detectors::default().scope;
        let v = Violation {
            part: 0.001,
            total: 0.004,
            count: 40.0,
            recent: 0.1,
            long_total: 0.4,
            ran_at: 0.25,
            fired_lately: true,
            clean: 0,
            item: 1,
        };
        assert!(matches!(
            count_share(&v, p.min_events, p.min_share, p.half_life),
            Verdict::Weak(_)
        ));
    }
}
