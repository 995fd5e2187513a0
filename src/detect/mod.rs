//! Detectors: pure functions from a client's state at a minute boundary to verdicts.
//!
//! Each detector answers, for its alert kinds and severities, "over the firing threshold, in the
//! hysteresis band, or clear?" ([`Verdict`]); the alert lifecycle lives in [`crate::alert`] and
//! the scheduling in [`crate::engine`]. Nothing here reads a clock: `t` is the event-time
//! boundary being evaluated, and everything summed is strictly before it.
//!
//! # Layout
//!
//! One file per detector, each owning its `[detect.<name>]` config section (defaults and
//! validation), its parameters in hot-path units, its verdicts and the summary line of its
//! alerts: [`over_contract`], [`baseline_jump`], [`cap`] (`cap_exceeded` and `cap_forecast`),
//! [`scope`] (the three `out_of_contract_*` kinds) and [`new_origin`]. What they share is here
//! (the [`Detector`] trait, the [`Context`] of one evaluation, the [`Shared`] top of `[detect]`)
//! and in [`stats`] (significance tests) and [`volume`] (the windowed judge of the volume
//! detectors). The per-client state they read stays in [`crate::client`], so the client's
//! memory layout and the checkpoint format do not depend on how detectors are organised.
//!
//! Adding a detector is one new file implementing [`Detector`] and one line in the
//! `detectors!` list below (plus its alert kind in [`crate::alert`] and its section in
//! [`crate::config::DetectConfig`]).
//!
//! # Volume detectors
//!
//! Volume detectors (`over_contract`, `baseline_jump`) follow multi-window burn-rate alerting: a
//! pair of windows must both be over the threshold, the long one (at least the contract's hour)
//! so that a short burst or an hourly batch job within its contract cannot fire, the short one
//! so that only an excess still happening fires. The long window is read without its busiest
//! minutes (`burst_tolerance`), so a burst cannot fire; `over_contract`'s warning reads it whole
//! once the trimmed window is most of the way there (a steady stream's busiest minutes hold
//! more than their share, and trimmed, a sustained overage read under its level). The point
//! estimate must reach the threshold and the excess must be statistically significant against
//! the expectation (compound Poisson, see [`significant`]), so that a handful of events never
//! pages while a clear 1.6x on a large client is not made to wait hours to prove it is above
//! 1.5x.
//!
//! One overage is one alert, judged on what came after its excess was last seen (not on the
//! windows that still hold the episode itself, which kept alerts firing for hours after their
//! client was back to normal): once firing, an alert holds for an hour after it was last over
//! its threshold (a gateway's gap is not the end of an overage), then while that span is in the
//! hysteresis band and significantly above the expected, and, for `over_contract` once two days
//! have taught the client's daily shape, while the client is still so far above its usual rate
//! for the hour that its busiest hour ahead would be over the contract, so an overage that dips
//! under the contract at night does not resolve and page again in the morning. It resolves once
//! that span is clearly below all of these, and after four hours in which too few calls could
//! tell either way (a small client's night proves nothing; hours still over the band by the
//! numbers do not count).
//!
//! Count detectors (`out_of_contract_*`, `new_origin`) end a violation in the client's own
//! calls: a run of clean calls that the violation's long-run share would hardly leave, not
//! a quiet hour that empties a decayed share (see [`scope`]).

pub mod baseline_jump;
pub mod cap;
pub mod new_origin;
pub mod over_contract;
pub mod scope;
pub mod stats;
#[cfg(test)]
mod test_util;
pub mod volume;

pub use stats::{clearly_below, significant};

use crate::alert::{AlertKind, Reading, Severity, Verdict};
use crate::baseline::BaselineParams;
use crate::client::Client;
use crate::config::DetectConfig;
use crate::contract::Contract;
use crate::time::Millis;

/// A `[detect]` setting that breaks a rule; `field` is its full path (`detect.cap.pace_window`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct InvalidSetting {
    pub field: String,
    pub message: String,
}

impl InvalidSetting {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> InvalidSetting {
        InvalidSetting {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The verdicts of one evaluation, in registry order (the order transitions are emitted in).
pub type Verdicts = Vec<(AlertKind, Severity, Verdict)>;

/// The settings at the top of `[detect]`, shared by several detectors and by the alert
/// lifecycle, in the units the hot path wants (plain numbers, evaluation counts).
#[derive(Debug, Clone)]
pub struct Shared {
    /// Default warning and critical ratios to the contracted rate (contracts may override).
    pub alert_at: f64,
    pub page_at: f64,
    /// One-sided level of the significance tests.
    pub alpha: f64,
    pub resolve_ratio: f64,
    /// Minutes of excess a long window (up to 1h) ignores: bursts this short never fire.
    pub burst_minutes: usize,
    /// Evaluations (minutes) a condition must hold to fire / be clear to resolve.
    pub fire_after: u16,
    pub resolve_after: u16,
}

impl Shared {
    pub fn from_config(d: &DetectConfig) -> Shared {
        let evals = |dur: std::time::Duration| (dur.as_secs() / 60).min(u16::MAX as u64) as u16;
        Shared {
            alert_at: d.alert_at,
            page_at: d.page_at,
            alpha: d.significance,
            resolve_ratio: d.resolve_ratio,
            burst_minutes: (d.burst_tolerance.as_secs() / 60) as usize,
            fire_after: evals(d.fire_after).max(1),
            resolve_after: evals(d.resolve_after).max(1),
        }
    }
}

/// A contract's scope lists as interned label ids (compiled by the engine at each contract
/// reload, so an event is checked by comparing ids, not names). `None`: no such restriction.
#[derive(Debug, Clone)]
pub struct CompiledScope {
    pub products: Option<Vec<u32>>,
    pub countries: Option<Vec<u32>>,
    /// The contract's endpoint list, numbered so that contracts with the same list share the
    /// number (and the engine's cache of which endpoints a list allows).
    pub endpoints: Option<u32>,
}

/// Everything one evaluation of one client may look at.
pub struct Context<'a> {
    pub client: &'a Client,
    /// The minute boundary evaluated: everything summed is strictly before it.
    pub t: Millis,
    pub contract: Option<&'a Contract>,
    /// The contract's scope lists, compiled; `Some` exactly when `contract` is.
    pub scope: Option<&'a CompiledScope>,
    pub shared: &'a Shared,
    pub baseline: &'a BaselineParams,
}

/// What an alert's summary line may name.
pub struct About<'a> {
    pub client_id: &'a str,
    /// The last reading of the alert.
    pub reading: &'a Reading,
    /// The name of the reading's item (product, endpoint, origin), empty without one.
    pub item: &'a str,
    pub contract: Option<&'a Contract>,
}

/// Usage an alert's excess is measured against, per hour (`hour` since the epoch).
pub struct Allowance<'a> {
    pub per_hour: Box<dyn Fn(i32) -> f64 + 'a>,
    /// Also report the excess since the start of the month.
    pub month: bool,
}

/// One detector: its parameters built once from `[detect]`, its verdicts per evaluation, the
/// words of its alerts.
pub trait Detector: std::fmt::Debug {
    fn new(d: &DetectConfig) -> Self
    where
        Self: Sized;

    /// The alert kinds it raises (each kind has exactly one detector).
    fn kinds(&self) -> &'static [AlertKind];

    /// Append this detector's verdicts on `cx.client` at `cx.t`; none where it does not apply
    /// (disabled, no contract, still learning), which resolves an alert it had raised.
    fn evaluate(&self, cx: &Context<'_>, out: &mut Verdicts);

    /// The alert's window label and the summary line an on-call engineer reads, for one of
    /// [`Detector::kinds`].
    fn summary(&self, kind: AlertKind, a: &About<'_>) -> (String, String);

    /// What the excess units of a volume alert are counted against; `None` for alerts that
    /// have no excess in units.
    fn allowance<'a>(
        &self,
        _kind: AlertKind,
        _c: &'a Client,
        _contract: Option<&'a Contract>,
        _baseline: &'a BaselineParams,
    ) -> Option<Allowance<'a>> {
        None
    }
}

/// The registry: declares [`Detectors`] with one field per detector, evaluated in this order
/// (which is the order of the transitions one evaluation emits).
macro_rules! detectors {
    ($($(#[$doc:meta])* $field:ident: $ty:ty,)+) => {
        /// Every detector with its parameters, plus what they share: built once from `[detect]`.
        #[derive(Debug, Clone)]
        pub struct Detectors {
            pub shared: Shared,
            /// `[detect.baseline]`: read by the volume and cap detectors and by learning.
            pub baseline: BaselineParams,
            $($(#[$doc])* pub $field: $ty,)+
        }

        impl Detectors {
            pub fn from_config(d: &DetectConfig) -> Detectors {
                Detectors {
                    shared: Shared::from_config(d),
                    baseline: d.baseline.params(),
                    $($field: <$ty as Detector>::new(d),)+
                }
            }

            /// Every detector, in evaluation order.
            pub fn all(&self) -> impl Iterator<Item = &dyn Detector> + '_ {
                [$(&self.$field as &dyn Detector),+].into_iter()
            }
        }
    };
}

detectors! {
    over_contract: over_contract::OverContract,
    cap: cap::Cap,
    baseline_jump: baseline_jump::BaselineJump,
    scope: scope::OutOfContract,
    new_origin: new_origin::NewOrigin,
}

impl Default for Detectors {
    fn default() -> Self {
        Detectors::from_config(&DetectConfig::default())
    }
}

impl Detectors {
    /// Every detector's verdicts on one client at one boundary, appended to `out`.
    pub fn evaluate(&self, cx: &Context<'_>, out: &mut Verdicts) {
        for d in self.all() {
            d.evaluate(cx, out);
        }
    }

    /// The detector that raises `kind`.
    pub fn owner(&self, kind: AlertKind) -> Option<&dyn Detector> {
        self.all().find(|d| d.kinds().contains(&kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_kind_has_exactly_one_detector() {
        let d = Detectors::default();
        for kind in AlertKind::ALL {
            let owners = d.all().filter(|x| x.kinds().contains(&kind)).count();
            assert_eq!(owners, 1, "{kind:?}");
        }
        let raised: usize = d.all().map(|x| x.kinds().len()).sum();
        assert_eq!(raised, AlertKind::ALL.len());
    }

    /// The alert prose is part of the interface (pages, Alertmanager, reports): each kind's
    /// summary, word for word.
    #[test]
    fn every_kind_keeps_its_summary_word_for_word() {
        use crate::time::{month_of, HOUR_MS};
        let d = Detectors::default();
        let contract = Contract {
            client_id: "acme".into(),
            plan: None,
            baseline_units: 120_000.0,
            per: HOUR_MS,
            monthly_cap: Some(2_000_000.0),
            products: None,
            endpoints: None,
            origin_countries: None,
            alert_at: None,
            page_at: None,
            labels: Default::default(),
            line: 1,
        };
        // 2026-09-10T14:00Z
        let t: Millis = 1_789_048_800_000;
        let hour = Reading {
            observed: 370_000.0,
            expected: 120_000.0,
            ratio: 3.08,
            window: HOUR_MS,
            item: Some(7),
        };
        let month = Reading {
            observed: 2_345_678.0,
            expected: 2_000_000.0,
            ratio: 1.1728,
            window: crate::time::month_start(month_of(t)),
            item: None,
        };
        let share = Reading {
            observed: 12.0,
            expected: 40.0,
            ratio: 0.3,
            window: 30 * crate::time::MINUTE_MS,
            item: Some(7),
        };
        let cases = [
            (
                AlertKind::OverContract,
                hour,
                "1h",
                "acme consumed 3.1x its contracted 120000 units/1h over the last 1h",
            ),
            (
                AlertKind::BaselineJump,
                hour,
                "1h",
                "acme consumed 3.1x its usual 120000 units for this hour and weekday over the last 1h",
            ),
            (
                AlertKind::CapForecast,
                month,
                "2026-09",
                "acme is on pace for 2.35M units in 2026-09, 117% of its monthly cap of 2.00M",
            ),
            (
                AlertKind::CapExceeded,
                month,
                "2026-09",
                "acme has used 2.35M units in 2026-09, over its monthly cap of 2.00M",
            ),
            (
                AlertKind::OutOfContractProduct,
                share,
                "30m",
                "acme is using product \"eu\", outside its contract (30% of recent calls)",
            ),
            (
                AlertKind::OutOfContractEndpoint,
                share,
                "30m",
                "acme is calling endpoint \"eu\", outside its contract (30% of recent calls)",
            ),
            (
                AlertKind::OutOfContractOrigin,
                share,
                "30m",
                "acme has traffic from eu, outside its contracted origins (30% of recent calls)",
            ),
            (
                AlertKind::NewOrigin,
                share,
                "30m",
                "acme has 30% of recent calls from eu, an origin not seen for it before",
            ),
        ];
        for (kind, reading, window, summary) in cases {
            let about = About {
                client_id: "acme",
                reading: &reading,
                item: "eu",
                contract: Some(&contract),
            };
            let owner = d.owner(kind).expect("registered");
            assert_eq!(
                owner.summary(kind, &about),
                (window.to_owned(), summary.to_owned()),
                "{kind:?}"
            );
        }
    }
}
