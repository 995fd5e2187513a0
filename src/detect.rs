//! Detectors: pure functions from a client's state at a minute boundary to verdicts.
//!
//! Each detector answers, for one alert kind and severity, "over the firing threshold, in the
//! hysteresis band, or clear?" ([`Verdict`]); the alert lifecycle lives in [`crate::alert`] and
//! the scheduling in [`crate::engine`]. Nothing here reads a clock: `t` is the event-time
//! boundary being evaluated, and everything summed is strictly before it.
//!
//! Volume detectors (`over_contract`, `baseline_jump`) follow multi-window burn-rate alerting: a
//! pair of windows must both be over the threshold, the long one (at least the contract's hour)
//! so that a short burst or an hourly batch job within its contract cannot fire, the short one
//! so that only an excess still happening fires. The point estimate must reach the threshold and
//! the excess must be statistically significant against the expectation (compound Poisson, see
//! [`significant`]), so that a handful of events never pages while a clear 1.6x on a large
//! client is not made to wait hours to prove it is above 1.5x.
//!
//! One overage is one alert: once firing, an alert holds while the first pair's long window is
//! in the hysteresis band, for up to four hours while that window has too few calls to show it
//! is clearly below the band (a small client's night proves nothing), and, for `over_contract` once two days have
//! taught the client's daily shape, while the client is still well above its usual rate for
//! the hour, so an overage that dips under the contract at night does not resolve and page
//! again in the morning.

use statrs::distribution::{DiscreteCDF, Poisson};

use crate::alert::{Reading, Verdict};
use crate::baseline::{BaselineParams, Seasonal};
use crate::client::{Client, Dispersion, Scope};
use crate::config::{ms, Config};
use crate::time::{month_of, month_start, Millis};
use crate::window::Windows;

/// Hysteresis of count-based detectors: they clear below half their thresholds.
const COUNT_CLEAR_FRACTION: f64 = 0.5;
/// A long count below this (half a call) means the violation has stopped being seen at all.
const SILENT_COUNT: f64 = 0.5;

/// A firing `over_contract` holds while the last hour is at least this multiple of the
/// client's learned rate for it (the night of an overage that is over the contract by day).
const SEASONAL_HOLD: f64 = 1.5;

/// Detector parameters, in the units the hot path wants (milliseconds, plain numbers).
#[derive(Debug, Clone)]
pub struct Params {
    pub alert_at: f64,
    pub page_at: f64,
    pub alpha: f64,
    pub resolve_ratio: f64,
    /// Minutes of excess a long window (up to 1h) ignores: bursts this short never fire.
    pub burst_minutes: usize,
    /// Evaluations (minutes) a condition must hold to fire / be clear to resolve.
    pub fire_after: u16,
    pub resolve_after: u16,

    pub over_contract: bool,
    pub oc_pairs: Vec<(Millis, Millis)>,
    pub oc_min_events: f64,

    pub baseline_jump: bool,
    pub bj_contracted: bool,
    pub bj_alert_at: f64,
    pub bj_page_at: f64,
    pub bj_pairs: Vec<(Millis, Millis)>,
    pub bj_min_events: f64,
    pub baseline: BaselineParams,

    pub cap: bool,
    pub cap_forecast_at: f64,
    pub cap_pace: Millis,
    pub cap_min_history: Millis,

    pub scope: bool,
    pub half_life: Millis,
    pub scope_min_events: f64,
    pub scope_min_share: f64,

    pub new_origin: bool,
    pub no_min_share: f64,
    pub no_min_events: f64,
    pub no_learn_after: Millis,
}

impl Params {
    pub fn from_config(c: &Config) -> Params {
        let d = &c.detect;
        let pairs = |ps: &[crate::config::WindowPair]| -> Vec<(Millis, Millis)> {
            ps.iter().map(|p| (ms(p.short), ms(p.long))).collect()
        };
        let evals = |dur: std::time::Duration| (dur.as_secs() / 60).min(u16::MAX as u64) as u16;
        Params {
            alert_at: d.alert_at,
            page_at: d.page_at,
            alpha: d.significance,
            resolve_ratio: d.resolve_ratio,
            burst_minutes: (d.burst_tolerance.as_secs() / 60) as usize,
            fire_after: evals(d.fire_after).max(1),
            resolve_after: evals(d.resolve_after).max(1),
            over_contract: d.over_contract.enabled,
            oc_pairs: pairs(&d.over_contract.windows),
            oc_min_events: d.over_contract.min_events,
            baseline_jump: d.baseline_jump.enabled,
            bj_contracted: d.baseline_jump.contracted,
            bj_alert_at: d.baseline_jump.alert_at,
            bj_page_at: d.baseline_jump.page_at,
            bj_pairs: pairs(&d.baseline_jump.windows),
            bj_min_events: d.baseline_jump.min_events,
            baseline: d.baseline.params(),
            cap: d.cap.enabled,
            cap_forecast_at: d.cap.forecast_at,
            cap_pace: ms(d.cap.pace_window),
            cap_min_history: ms(d.cap.min_history),
            scope: d.scope.enabled,
            half_life: ms(d.scope.half_life),
            scope_min_events: d.scope.min_events,
            scope_min_share: d.scope.min_share,
            new_origin: d.new_origin.enabled,
            no_min_share: d.new_origin.min_share,
            no_min_events: d.new_origin.min_events,
            no_learn_after: ms(d.new_origin.learn_after),
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Params::from_config(&Config::default())
    }
}

/// Is `observed` units significantly above `null_mean` units? One-sided Poisson test on
/// effective counts: unit sums are scaled by the dispersion factor `E[u²]/E[u]` so that calls
/// returning many records are not mistaken for many independent calls.
pub fn significant(observed: f64, null_mean: f64, d: f64, alpha: f64) -> bool {
    let k = (observed / d).floor();
    let lambda = null_mean / d;
    if k < 1.0 {
        return false;
    }
    if lambda <= 0.0 {
        return true;
    }
    match Poisson::new(lambda) {
        // P(X >= k) = P(X > k - 1)
        Ok(p) => p.sf(k as u64 - 1) < alpha,
        Err(_) => false,
    }
}

/// Is `observed` units clearly *below* `null_mean`? The mirror of [`significant`], used to
/// resolve: a window with too few calls to tell (a small client's night) does not resolve an
/// alert, it keeps it as it is.
pub fn clearly_below(observed: f64, null_mean: f64, d: f64, alpha: f64) -> bool {
    let k = (observed / d).floor();
    let lambda = null_mean / d;
    if lambda <= 0.0 {
        return false;
    }
    match Poisson::new(lambda) {
        Ok(p) => p.cdf(k.max(0.0) as u64) < alpha,
        Err(_) => false,
    }
}

/// One-sided level of [`clearly_below`] when resolving volume alerts.
const CLEAR_ALPHA: f64 = 0.05;

/// One window pair's numbers at a boundary.
struct PairSums {
    /// Short window ratio, long window ratio without its most intense minutes.
    short_ratio: f64,
    trim_ratio: f64,
    trimmed: f64,
    trimmed_expected: f64,
    calls: f64,
    reading: Reading,
}

/// Shared logic of the windowed volume detectors, for a warning and a critical threshold at
/// once (the sums are the same). `expected(t, duration)` gives the expected units over
/// `[t - duration, t)`; the excess is tested against `null(threshold) ×` that; `hold` keeps a
/// firing alert firing whatever the windows say.
#[allow(clippy::too_many_arguments)]
fn windowed(
    w: &Windows,
    units: &Dispersion,
    t: Millis,
    pairs: &[(Millis, Millis)],
    thresholds: [f64; 2],
    p: &Params,
    min_events: f64,
    expected: impl Fn(Millis, Millis) -> f64,
    null: impl Fn(f64) -> f64,
    hold: bool,
) -> [Verdict; 2] {
    let sums: Vec<PairSums> = pairs
        .iter()
        .filter_map(|&(short, long)| {
            let (s_obs, s_dur) = w.sum(t, short);
            let (l_obs, l_dur) = w.sum(t, long);
            // "Sustained": the long window is judged without its most intense minutes.
            let (l_trim, l_trim_dur) = w.sum_trimmed(t, long, p.burst_minutes);
            let (s_exp, l_exp) = (expected(t, s_dur), expected(t, l_dur));
            // The trimmed minutes' expectation is scaled out by duration (a close
            // approximation: the expectation varies little within an hour).
            let l_trim_exp = l_exp * l_trim_dur as f64 / l_dur.max(1) as f64;
            (s_exp > 0.0 && l_trim_exp > 0.0).then(|| PairSums {
                short_ratio: s_obs / s_exp,
                trim_ratio: l_trim / l_trim_exp,
                trimmed: l_trim,
                trimmed_expected: l_trim_exp,
                calls: w.calls(t, long),
                reading: Reading {
                    observed: l_obs,
                    expected: l_exp,
                    ratio: l_obs / l_exp,
                    window: long,
                    item: None,
                },
            })
        })
        .collect();
    // Both severities hold while the overage itself lasts (the warning's band): a page that
    // escalated stays open until the episode is over, not until the excess dips under 3x.
    let hold_at = thresholds[0] * p.resolve_ratio;
    thresholds.map(|threshold| {
        judge(
            &sums,
            threshold,
            units,
            p,
            min_events,
            pairs,
            null(threshold),
            hold_at,
            hold,
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn judge(
    sums: &[PairSums],
    threshold: f64,
    units: &Dispersion,
    p: &Params,
    min_events: f64,
    pairs: &[(Millis, Millis)],
    null_ratio: f64,
    hold_at: f64,
    hold: bool,
) -> Verdict {
    for s in sums {
        let level = s.short_ratio.min(s.trim_ratio);
        if level >= threshold
            && s.calls >= min_events
            && significant(
                s.trimmed,
                null_ratio * s.trimmed_expected,
                units.factor(),
                p.alpha,
            )
        {
            return Verdict::Fire(s.reading);
        }
    }
    // Resolving is decided on the first pair's long window (the contract's hour), and that is
    // the reading a transition carries, so a resolve never quotes numbers it did not use.
    // In the band by units and by calls at the mean units per call: a heavy-tailed client's
    // units alone swing into the band by chance, hour after hour, long after its overage ended.
    // (Minute call counts saturate at 255; a client near that is far too busy for chance swings,
    // and its units alone decide.)
    let in_band = |s: &PairSums| {
        let r = &s.reading;
        let minutes = (r.window / crate::time::MINUTE_MS).max(1) as f64;
        let by_calls = if s.calls >= 200.0 * minutes {
            r.ratio
        } else {
            s.calls * units.mean() / r.expected.max(f64::MIN_POSITIVE)
        };
        r.ratio.min(by_calls) >= hold_at
    };
    match sums.first() {
        Some(s) if hold || in_band(s) => Verdict::Hold(s.reading),
        Some(s)
            if !clearly_below(
                s.reading.observed,
                hold_at * s.reading.expected,
                units.factor(),
                CLEAR_ALPHA,
            ) =>
        {
            Verdict::Weak(s.reading)
        }
        Some(s) => Verdict::Clear(s.reading),
        None => Verdict::Clear(Reading {
            observed: 0.0,
            expected: 0.0,
            ratio: 0.0,
            window: pairs.first().map_or(0, |p| p.1),
            item: None,
        }),
    }
}

/// `over_contract` at the warning and critical thresholds: consumption against the
/// contracted rate (units per ms).
pub fn over_contract(
    c: &Client,
    t: Millis,
    rate_per_ms: f64,
    thresholds: [f64; 2],
    p: &Params,
) -> [Verdict; 2] {
    // Judged in calls (the baseline's own measure): a heavy-tailed client's units swing past
    // 1.5x its usual hour by chance, and would hold an alert long after its overage ended.
    let hold = c.baseline.has_shape() && {
        let hour = crate::time::HOUR_MS;
        let usual_calls = c.baseline.expected(t, hour, &p.baseline) / c.units.mean().max(1e-9);
        usual_calls > 0.0 && c.windows.calls(t, hour) >= SEASONAL_HOLD * usual_calls
    };
    windowed(
        &c.windows,
        &c.units,
        t,
        &p.oc_pairs,
        thresholds,
        p,
        p.oc_min_events,
        |_, dur| rate_per_ms * dur as f64,
        // the contract is exact: any significant excess over it, once at the threshold
        |_| 1.0,
        hold,
    )
}

/// `baseline_jump` at the warning and critical thresholds: consumption against the client's
/// own learned seasonal baseline. `None` while the baseline is still warming up.
pub fn baseline_jump(c: &Client, t: Millis, p: &Params) -> Option<[Verdict; 2]> {
    if !c.baseline.is_warm(&p.baseline) {
        return None;
    }
    let b: &Seasonal = &c.baseline;
    Some(windowed(
        &c.windows,
        &c.units,
        t,
        &p.bj_pairs,
        [p.bj_alert_at, p.bj_page_at],
        p,
        p.bj_min_events,
        |end, dur| b.expected(end, dur, &p.baseline),
        // a learned baseline is itself uncertain (and a small client's is noisy): the excess
        // must be significant against the threshold itself, not against the baseline
        |threshold| threshold,
        false,
    ))
}

/// Units `c` consumed in `month` before `t`. Usage totals already hold events up to the allowed
/// lateness ahead of `t` (they arrived before `t` was evaluated); those are all still in the
/// minute ring and are taken out, so the result does not depend on arrival order.
fn used_before(c: &Client, month: i32, t: Millis) -> f64 {
    let b = t.div_euclid(crate::time::MINUTE_MS);
    let month_end = month_start(month + 1).div_euclid(crate::time::MINUTE_MS);
    let ahead = c.windows.minutes.sum(b, month_end);
    (c.usage.in_month(month) - ahead).max(0.0)
}

/// `cap_exceeded`: this month's units against the cap. `window` is the month's start.
pub fn cap_exceeded(c: &Client, t: Millis, cap: f64) -> Verdict {
    let month = month_of(t - 1);
    let used = used_before(c, month, t);
    let r = Reading {
        observed: used,
        expected: cap,
        ratio: used / cap,
        window: month_start(month),
        item: None,
    };
    if used > cap {
        Verdict::Fire(r)
    } else {
        Verdict::Clear(r)
    }
}

/// `cap_forecast`: month to date plus the recent pace until month end, against the cap. `None`
/// while the client is too new for a pace.
pub fn cap_forecast(c: &Client, t: Millis, cap: f64, p: &Params) -> Option<Verdict> {
    let history = t - c.first_seen;
    if history < p.cap_min_history {
        return None;
    }
    let month = month_of(t - 1);
    let used = used_before(c, month, t);
    let (recent, covered) = c.windows.sum(t, p.cap_pace);
    let span = covered.min(history).max(1);
    let remaining = (month_start(month + 1) - t).max(0);
    let mut pace = recent / span as f64;
    // A pace change shows in a week's average only after days; the last day against the
    // learned baseline for it shows it within hours, without mistaking a busy weekday or the
    // afternoon peak for a new pace (the baseline knows those). Only a day significantly
    // above the usual counts (3σ, compound Poisson), so a heavy-tailed day is not a new pace.
    if c.baseline.is_warm(&p.baseline) {
        let day = crate::time::DAY_MS;
        let usual = c.baseline.expected(t, day, &p.baseline);
        let observed = c.windows.sum(t, day).0;
        if usual > 0.0 && observed - usual > 3.0 * (usual * c.units.factor()).sqrt() {
            let level = c.baseline.level() as f64 / crate::time::MINUTE_MS as f64;
            pace = pace.max(observed / usual * level);
        }
    }
    let projected = used + pace * remaining as f64;
    let r = Reading {
        observed: projected,
        expected: cap,
        ratio: projected / cap,
        window: month_start(month),
        item: None,
    };
    Some(if r.ratio >= p.cap_forecast_at {
        Verdict::Fire(r)
    } else if r.ratio >= p.cap_forecast_at * p.resolve_ratio {
        Verdict::Hold(r)
    } else {
        Verdict::Clear(r)
    })
}

/// Sustained share of calls breaking a scope rule (decayed counts, already anchored at `t`):
/// `bad` and `total` with the half-life, `bad_long` forgetting more slowly (it says whether
/// enough calls broke the contract, however slowly the client calls).
pub fn scope_share(bad: f32, bad_long: f32, total: f32, item: u32, p: &Params) -> Verdict {
    count_share(
        bad as f64,
        bad_long as f64,
        total as f64,
        item,
        p.scope_min_events,
        p.scope_min_share,
        p.half_life,
    )
}

/// `share` is `part / total`; `count` (of the same calls, over a longer span) must reach
/// `min_events` to fire.
fn count_share(
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

/// `new_origin`: the largest share of recent calls from an origin (a country, or a network) that
/// is not established (first seen after the client's own learning period, and less than
/// `learn_after` ago), with at least `min_events` calls since it was first seen.
pub fn new_origin(c: &Client, t: Millis, p: &Params) -> Verdict {
    let s: &Scope = &c.scope;
    let settled_by = c.first_seen + p.no_learn_after;
    let newest = s
        .origins
        .iter()
        .filter(|&(_, first, _)| first >= settled_by && t - first < p.no_learn_after)
        .max_by(|a, b| a.2.total_cmp(&b.2));
    match newest {
        Some((id, _, calls)) => count_share(
            calls as f64,
            s.origins.count(id).unwrap_or(0) as f64,
            s.total as f64,
            id,
            p.no_min_events,
            p.no_min_share,
            p.half_life,
        ),
        None => Verdict::Clear(Reading {
            observed: 0.0,
            expected: s.total as f64,
            ratio: 0.0,
            window: p.half_life,
            item: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{HOUR_MS, MINUTE_MS};
    use std::sync::Arc;

    const T0: Millis = 1_789_050_000_000 - 1_789_050_000_000 % HOUR_MS;

    /// A client with `per_minute` events of 10 units each minute over `[from, to)` minutes
    /// relative to T0.
    fn client_with(rates: &[(i64, i64, u32)]) -> Client {
        let mut c = Client::new(Arc::from("c"), Some(0), T0 - 7 * 24 * HOUR_MS);
        for &(from, to, per_minute) in rates {
            for m in from..to {
                for k in 0..per_minute {
                    let ts = T0 + m * MINUTE_MS + k as i64 * (MINUTE_MS / per_minute as i64);
                    c.windows.add(ts, 10.0);
                    c.units.add(ts, 10.0);
                    c.units.fold_complete(ts);
                }
            }
        }
        c
    }

    fn rate(units_per_minute: f64) -> f64 {
        units_per_minute / MINUTE_MS as f64
    }

    #[test]
    fn steady_at_contract_is_clear() {
        let c = client_with(&[(-400, 0, 10)]);
        let [v, _] = over_contract(&c, T0, rate(100.0), [1.5, 3.0], &Params::default());
        assert!(
            matches!(v, Verdict::Clear(r) if (r.ratio - 1.0).abs() < 0.01),
            "{v:?}"
        );
    }

    #[test]
    fn sustained_triple_fires_once_the_contract_hour_is_over() {
        let p = Params::default();
        let mut fired_at = None;
        for m in 1..=40 {
            let c = client_with(&[(-400, 0, 10), (0, m, 30)]);
            if let [Verdict::Fire(r), _] =
                over_contract(&c, T0 + m * MINUTE_MS, rate(100.0), [1.5, 3.0], &p)
            {
                assert_eq!(r.window, HOUR_MS);
                fired_at = Some(m);
                break;
            }
        }
        // the hour reaches 1.5x at minute 15 (18 without the 3 most intense minutes)
        let m = fired_at.expect("never fired");
        assert!((15..=20).contains(&m), "fired after {m} minutes");
    }

    #[test]
    fn an_hourly_batch_within_the_contract_never_fires() {
        let p = Params::default();
        // each hour's 600 units (the contract's 100/min) in its first 6 minutes
        let mut rates = Vec::new();
        for h in -7..1 {
            rates.push((h * 60, h * 60 + 6, 10));
        }
        let c = client_with(&rates);
        for m in 0..60 {
            let [v, _] = over_contract(&c, T0 + m * MINUTE_MS, rate(100.0), [1.5, 3.0], &p);
            assert!(!matches!(v, Verdict::Fire(_)), "minute {m}: {v:?}");
        }
    }

    #[test]
    fn short_burst_does_not_fire() {
        let p = Params::default();
        // three minutes at 10x, then back to normal: trimmed away, however intense
        for m in 1..=40 {
            let c = client_with(&[(-400, 0, 10), (0, 3, 100), (3, 40, 10)]);
            let [v, _] = over_contract(&c, T0 + m * MINUTE_MS, rate(100.0), [1.5, 3.0], &p);
            assert!(!matches!(v, Verdict::Fire(_)), "minute {m}: {v:?}");
        }
    }

    #[test]
    fn few_events_are_not_significant() {
        let p = Params::default();
        // contract of 1 unit/min; the client makes 2 calls of 10 units in the last 15 minutes:
        // 20x the contract by the numbers, but two calls prove nothing
        let c = client_with(&[(-12, -11, 1), (-2, -1, 1)]);
        let [v, _] = over_contract(&c, T0, rate(1.0), [1.5, 3.0], &p);
        assert!(!matches!(v, Verdict::Fire(_)), "{v:?}");
    }

    #[test]
    fn clearly_below_needs_enough_calls_to_tell() {
        // 50 units against a band of 135 is clearly below on unit calls...
        assert!(clearly_below(50.0, 135.0, 1.0, 0.05));
        // ...not on a handful of 30-unit calls, nor with nothing expected
        assert!(!clearly_below(50.0, 135.0, 30.0, 0.05));
        assert!(!clearly_below(0.0, 0.0, 1.0, 0.05));
    }

    #[test]
    fn significance_uses_dispersion() {
        // 1300 units against a null of 1000: clear with unit calls, noise with 100-unit calls
        assert!(significant(1300.0, 1000.0, 1.0, 1e-3));
        assert!(!significant(1300.0, 1000.0, 100.0, 1e-3));
        assert!(!significant(0.0, 10.0, 1.0, 1e-3));
    }

    #[test]
    fn cap_forecast_projects_pace_to_month_end() {
        let p = Params::default();
        // 10 calls of 10 units a minute for two days: 144,000 units a day
        let mut c = client_with(&[(-48 * 60, 0, 10)]);
        c.first_seen = T0 - 48 * HOUR_MS;
        c.usage.add(T0 - 1, 144_000.0);
        let month = month_of(T0 - 1);
        let days_left = (month_start(month + 1) - T0) as f64 / (24 * HOUR_MS) as f64;
        let projected = 144_000.0 + 144_000.0 * days_left;
        let v = cap_forecast(&c, T0, projected * 0.95, &p).unwrap();
        assert!(
            matches!(v, Verdict::Fire(r) if (r.observed - projected).abs() / projected < 0.01),
            "{v:?}"
        );
        let v = cap_forecast(&c, T0, projected * 1.5, &p).unwrap();
        assert!(matches!(v, Verdict::Clear(_)), "{v:?}");
        c.first_seen = T0 - HOUR_MS;
        assert!(
            cap_forecast(&c, T0, 1.0, &p).is_none(),
            "too new for a pace"
        );
    }

    #[test]
    fn scope_share_has_a_hysteresis_band() {
        let p = Params::default();
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
        let p = Params::default();
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
    fn new_origin_ignores_established_origins() {
        let p = Params::default();
        let mut c = Client::new(Arc::from("c"), None, T0 - 10 * 24 * HOUR_MS);
        // an origin from the first day is the client's own, however big its share
        c.scope.origins.add(1, T0 - 10 * 24 * HOUR_MS, 100.0);
        c.scope.total = 130.0;
        assert!(matches!(new_origin(&c, T0, &p), Verdict::Clear(_)));
        // one first seen an hour ago with 30 of 130 calls is new
        for _ in 0..30 {
            c.scope.origins.add(2, T0 - HOUR_MS, 1.0);
        }
        assert!(matches!(new_origin(&c, T0, &p), Verdict::Fire(r) if r.item == Some(2)));
        // and a day later it is established
        assert!(matches!(
            new_origin(&c, T0 + 24 * HOUR_MS, &p),
            Verdict::Clear(_)
        ));
    }

    #[test]
    fn a_scope_share_left_by_a_silent_client_fades_to_weak() {
        let p = Params::from_config(&Config::default());
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
