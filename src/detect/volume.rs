//! The windowed judge shared by the volume detectors (`over_contract`, `baseline_jump`):
//! window pairs, the burst trim, significance, the hysteresis band and the hold.
//!
//! Reads the client's minute/hour/day rings ([`crate::window::Windows`]) and its units
//! dispersion ([`crate::client::Dispersion`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::stats::{clearly_below, significant};
use super::{InvalidSetting, Shared};
use crate::alert::{Reading, Verdict};
use crate::client::Dispersion;
use crate::config::ms;
use crate::time::Millis;
use crate::window::{is_supported_window, Windows};

/// A short and a long window that must both be over the threshold (multi-window alerting: the
/// long one proves the excess is material, the short one that it is still happening).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WindowPair {
    #[serde(with = "humantime_serde")]
    pub short: Duration,
    #[serde(with = "humantime_serde")]
    pub long: Duration,
}

impl WindowPair {
    pub(crate) fn mins(short: u64, long: u64) -> Self {
        WindowPair {
            short: Duration::from_secs(short * 60),
            long: Duration::from_secs(long * 60),
        }
    }
}

/// Window pairs in milliseconds, `(short, long)`.
pub(crate) fn pairs_ms(ps: &[WindowPair]) -> Vec<(Millis, Millis)> {
    ps.iter().map(|p| (ms(p.short), ms(p.long))).collect()
}

/// Every pair of `pairs` is made of supported windows, the short one shorter.
fn check_pairs(field: &str, pairs: &[WindowPair]) -> Result<(), InvalidSetting> {
    for (n, p) in pairs.iter().enumerate() {
        let (s, l) = (ms(p.short), ms(p.long));
        let bad = |msg: &str| InvalidSetting::new(format!("{field}[{n}]"), msg);
        if !is_supported_window(s) || !is_supported_window(l) {
            return Err(bad(
                "windows are whole minutes up to 1h, whole hours up to 1d, or whole days up to 7d",
            ));
        }
        if s >= l {
            return Err(bad("`short` must be shorter than `long`"));
        }
    }
    Ok(())
}

/// The volume detectors' windows, then `detect.burst_tolerance` against them: whole minutes,
/// no more than the rings can trim, and at most half the shortest long window (else nothing
/// sustained is left). `sections` are (field, pairs) of each volume detector.
pub(crate) fn check_windows(
    burst: Duration,
    sections: &[(&str, &[WindowPair])],
) -> Result<(), InvalidSetting> {
    for (field, pairs) in sections {
        check_pairs(field, pairs)?;
    }
    let burst = burst.as_secs();
    let shortest_long = sections
        .iter()
        .flat_map(|(_, ps)| ps.iter())
        .map(|p| p.long.as_secs())
        .min()
        .unwrap_or(u64::MAX);
    if burst % 60 != 0 || burst / 60 > crate::window::MAX_TRIM as u64 || burst * 2 > shortest_long {
        return Err(InvalidSetting::new(
            "detect.burst_tolerance",
            format!(
                "whole minutes, at most {}m and at most half the shortest long window",
                crate::window::MAX_TRIM
            ),
        ));
    }
    Ok(())
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

/// What a volume detector judges its windows by.
pub(crate) struct Judge<'a> {
    pub pairs: &'a [(Millis, Millis)],
    /// Warning and critical thresholds.
    pub thresholds: [f64; 2],
    /// Fewer calls than this in the long window never fire.
    pub min_events: f64,
    pub shared: &'a Shared,
}

/// Shared logic of the windowed volume detectors, for a warning and a critical threshold at
/// once (the sums are the same). `expected(t, duration)` gives the expected units over
/// `[t - duration, t)`; the excess is tested against `null(threshold) ×` that; `hold` keeps a
/// firing alert firing whatever the windows say.
pub(crate) fn windowed(
    w: &Windows,
    units: &Dispersion,
    t: Millis,
    j: &Judge<'_>,
    expected: impl Fn(Millis, Millis) -> f64,
    null: impl Fn(f64) -> f64,
    hold: bool,
) -> [Verdict; 2] {
    let p = j.shared;
    let sums: Vec<PairSums> = j
        .pairs
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
    let hold_at = j.thresholds[0] * p.resolve_ratio;
    j.thresholds
        .map(|threshold| judge(&sums, threshold, units, j, null(threshold), hold_at, hold))
}

fn judge(
    sums: &[PairSums],
    threshold: f64,
    units: &Dispersion,
    j: &Judge<'_>,
    null_ratio: f64,
    hold_at: f64,
    hold: bool,
) -> Verdict {
    for s in sums {
        let level = s.short_ratio.min(s.trim_ratio);
        if level >= threshold
            && s.calls >= j.min_events
            && significant(
                s.trimmed,
                null_ratio * s.trimmed_expected,
                units.factor(),
                j.shared.alpha,
            )
        {
            return Verdict::Fire(s.reading);
        }
    }
    // A firing alert holds while any pair's long window is still in the band (a night dip
    // empties the contract's hour, not the last six), and only resolves once every long window
    // is clearly below it. Each verdict carries the reading of the window that decided it, so a
    // hold or a resolve never quotes numbers it did not use.
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
    let below = |s: &PairSums| {
        clearly_below(
            s.reading.observed,
            hold_at * s.reading.expected,
            units.factor(),
            CLEAR_ALPHA,
        )
    };
    let Some(first) = sums.first() else {
        return Verdict::Clear(Reading {
            observed: 0.0,
            expected: 0.0,
            ratio: 0.0,
            window: j.pairs.first().map_or(0, |p| p.1),
            item: None,
        });
    };
    if hold {
        return Verdict::Hold(first.reading);
    }
    if let Some(s) = sums.iter().find(|s| in_band(s)) {
        return Verdict::Hold(s.reading);
    }
    // (Only now the significance tests, and only until one window cannot tell.)
    match sums.iter().find(|s| !below(s)) {
        Some(s) => Verdict::Weak(s.reading),
        None => Verdict::Clear(first.reading),
    }
}
