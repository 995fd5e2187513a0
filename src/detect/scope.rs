//! `out_of_contract_product`, `_endpoint` and `_origin`: a sustained share of a contracted
//! client's calls breaking its contract's product, endpoint or origin list (each kind only for
//! contracts that have the list).
//!
//! Count detectors: decayed counts of violating calls, firing on enough of them making enough
//! of the client's traffic, holding while the share stays at least half that (see
//! [`count_share`], shared with [`super::new_origin`]).
//!
//! Client state read: the decayed scope counters ([`crate::client::Scope`]: `bad_*`, `bad_long`,
//! `total`, the last violating item of each kind), which the engine keeps with this section's
//! `half_life`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{About, Context, Detector, InvalidSetting, Verdicts};
use crate::alert::{AlertKind, Reading, Severity, Verdict};
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
    /// Sustained use: at least this many (decayed) calls...
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

impl OutOfContract {
    /// Sustained share of calls breaking a scope rule (decayed counts, already anchored at `t`):
    /// `bad` and `total` with the half-life, `bad_long` forgetting more slowly (it says whether
    /// enough calls broke the contract, however slowly the client calls).
    pub fn share(&self, bad: f32, bad_long: f32, total: f32, item: u32) -> Verdict {
        count_share(
            bad as f64,
            bad_long as f64,
            total as f64,
            item,
            self.min_events,
            self.min_share,
            self.half_life,
        )
    }
}

/// `share` is `part / total`; `count` (of the same calls, over a longer span) must reach
/// `min_events` to fire.
pub(super) fn count_share(
    part: f64,
    count: f64,
    total: f64,
    item: u32,
    min_events: f64,
    min_share: f64,
    window: Millis,
) -> Verdict {
    let share = if total > 0.0 { part / total } else { 0.0 };
    let r = Reading {
        observed: count,
        expected: total,
        ratio: share,
        window,
        item: Some(item),
    };
    if count >= min_events && share >= min_share {
        Verdict::Fire(r)
    } else if share >= min_share * COUNT_CLEAR_FRACTION && count >= SILENT_COUNT {
        // No count condition: counts decay in time, the share does not, so a violation that
        // goes quiet at night is still the same violation in the morning. It clears when the
        // client's own calls dilute it.
        Verdict::Hold(r)
    } else if share >= min_share * COUNT_CLEAR_FRACTION {
        // A client that went silent keeps its last share forever: once even the long count
        // has decayed to nothing, there is nothing left to tell, and the alert resolves after
        // the weak span instead of holding (and being evaluated every minute) for good.
        Verdict::Weak(r)
    } else {
        Verdict::Clear(r)
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
        if cx.scope.is_some_and(|k| k.products.is_some()) {
            out.push((
                AlertKind::OutOfContractProduct,
                Severity::Warning,
                self.share(s.bad_product, s.bad_long[0], s.total, s.last_product),
            ));
        }
        if cx.contract.is_some_and(|k| k.endpoints.is_some()) {
            out.push((
                AlertKind::OutOfContractEndpoint,
                Severity::Warning,
                self.share(s.bad_endpoint, s.bad_long[1], s.total, s.last_endpoint),
            ));
        }
        if cx.scope.is_some_and(|k| k.countries.is_some()) {
            out.push((
                AlertKind::OutOfContractOrigin,
                Severity::Warning,
                self.share(s.bad_origin, s.bad_long[2], s.total, s.last_origin),
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

    fn scope_share(bad: f32, bad_long: f32, total: f32, item: u32, p: &Detectors) -> Verdict {
        p.scope.share(bad, bad_long, total, item)
    }

    #[test]
    fn scope_share_has_a_hysteresis_band() {
        let p = Detectors::default();
        assert!(matches!(
            scope_share(20.0, 40.0, 200.0, 1, &p),
            Verdict::Fire(_)
        ));
        assert!(matches!(
            scope_share(7.0, 40.0, 200.0, 1, &p),
            Verdict::Hold(_)
        ));
        assert!(matches!(
            scope_share(3.0, 40.0, 200.0, 1, &p),
            Verdict::Clear(_)
        ));
        assert!(matches!(
            scope_share(20.0, 40.0, 10_000.0, 1, &p),
            Verdict::Clear(_)
        ));
    }

    #[test]
    fn a_slow_client_reaches_the_count_on_the_long_counters() {
        let p = Detectors::default();
        // a few calls an hour: under one violating call with the short half-life, a dozen with
        // the long one; a quarter of its calls
        assert!(matches!(
            scope_share(0.8, 12.0, 3.2, 1, &p),
            Verdict::Fire(_)
        ));
        // the same share with too few violating calls yet only holds
        assert!(matches!(
            scope_share(0.8, 4.0, 3.2, 1, &p),
            Verdict::Hold(_)
        ));
    }

    #[test]
    fn a_scope_share_left_by_a_silent_client_fades_to_weak() {
        let p = Detectors::from_config(&DetectConfig::default());
        // a quarter of the calls out of scope, the violation still being seen: held
        assert!(matches!(
            scope_share(1.0, 4.0, 4.0, 1, &p),
            Verdict::Hold(_) | Verdict::Fire(_)
        ));
        // the same share, nothing seen for many long half-lives: too little to tell
        assert!(matches!(
            scope_share(0.001, 0.1, 0.004, 1, &p),
            Verdict::Weak(_)
        ));
    }
}
