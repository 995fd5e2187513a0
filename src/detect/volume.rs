//! The windowed judge shared by the volume detectors (`over_contract`, `baseline_jump`):
//! window pairs, the burst trim, significance, the hysteresis band and the hold.
//!
//! Reads the client's minute/hour/day rings ([`crate::window::Windows`]) and its units
//! dispersion ([`crate::client::Dispersion`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::stats::{clearly_below, excess_chance, significant};
use super::{InvalidSetting, Shared};
use crate::alert::{Reading, Verdict};
use crate::baseline::FRONT_MINUTES;
use crate::client::Dispersion;
use crate::config::ms;
use crate::time::{Millis, DAY_MS, HOUR_MS, MINUTE_MS};
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

/// A firing volume alert holds for at least this long after its excess was last seen.
const MIN_AFTER: Millis = HOUR_MS;

/// A client whose usual peak ahead is over its contract is still near that usual, going on
/// with its overage, down to this share of it...
const NEAR_USUAL: f64 = 0.8;
/// ...where its usual calls over the span tell that usual from the share that takes its peak to
/// the contract at this level (a small client's usual, learned from a few calls, peaks over its
/// contract by chance, or from the overage it learned before it fired, and a wait on it kept
/// alerts firing for hours after their jump).
const TELL_ALPHA: f64 = 1e-3;

/// A firing alert's last hour shows its excess still going on ([`Verdict::Seen`]) only with at
/// least this share of the calls the firing test's floor asks at its level ([`Judge::min_events`],
/// scaled down by the excess). The test runs each minute over a sliding hour, so a small client's
/// two or three calls in an hour where it usually makes less than one are in the band, and
/// significant at [`CLEAR_ALPHA`], every few hours by chance; each moved the span after the
/// excess and held the alert (seed 3's `fleet-0019`, a 4x jump of about a call an hour,
/// resolved 14.5 hours after its end; seed 4's `fleet-0042` resolved inside its jump on a span
/// so moved, and fired again). At the whole floor, or 0.7 of it, busier small clients' last
/// hours of their jumps no longer moved the span, which then held those hours for longer
/// (seed 1's `fleet-0289`, seed 6's `fleet-0092`).
const SEEN_FLOOR_SHARE: f64 = 0.5;

/// One window pair's numbers at a boundary.
struct PairSums {
    /// Short window units and expectation; the long window's ratio without its most intense
    /// minutes, and with them (the hour in progress capped in both).
    short: (f64, f64),
    trim_ratio: f64,
    untrimmed_ratio: f64,
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
    /// Fewer calls than this in the long window never fire at the threshold; an excess of k
    /// times the threshold, in units and in calls at the mean units per call, needs 1/k of
    /// them.
    pub min_events: f64,
    /// With `Some(alpha)`, the long window's calls alone, significant at `alpha` against the
    /// null at the client's mean units per call, also prove the excess. For a baseline learned
    /// as calls × mean units, whose jumps are jumps in calls: a heavy tail's units hide them
    /// for hours (`None`: units alone, as a contract in units wants).
    pub calls_alpha: Option<f64>,
    /// Once firing, the last hour's calls, in the band and significantly above the expected
    /// calls at the mean units per call, show the excess still going on, as its units do
    /// ([`Verdict::Seen`]). For an exact expectation (a contract): a heavy tail's units hide
    /// a small client's excess from the units test, and the span after it then reached back
    /// to its last firing, holding its episode's calls for hours after it ended (seed 5's
    /// `fleet-0148`, a 4x jump of 16 calls a day, resolved 9 hours after it ended, now 5).
    /// A learned usual's calls swing more than chance: `false` (it held five `baseline_jump`
    /// alerts hours longer).
    pub seen_in_calls: bool,
    /// The hour in progress adds to a window of hours at most at the ratio of its whole hours
    /// or of the last 60 minutes (see [`windowed`]).
    pub cap_hour_in_progress: bool,
    /// With `Some(share)`, the warning reads the long window whole, bursts included, once
    /// without its most intense minutes it is at least `share` of the way from 1 to the
    /// threshold (a steady stream's busiest minutes hold more than their share, so its trimmed
    /// window reads under its level). `None`: the trimmed window must reach the threshold, as
    /// the page's always must.
    pub sustained_share: Option<f64>,
    /// The share of the client's hours usually in their first [`FRONT_MINUTES`] minutes
    /// ([`crate::baseline::Seasonal::front`]): how much of a whole hour its busiest minutes
    /// usually hold, which the burst trim takes out ([`busiest_share`]).
    pub front: f64,
    /// The hour after the one the client's last volume incident resolved in, if within the
    /// day ([`crate::baseline::Seasonal::incident_ended`]): a window reaching back before the
    /// hour it resolved in does not fire a new alert.
    pub incident_ended: Option<Millis>,
    pub shared: &'a Shared,
}

impl Judge<'_> {
    /// The calls a window must hold to fire at `threshold` on an excess read at `level` (the
    /// lower of its units' and its calls' ratio): [`Judge::min_events`], scaled down by the
    /// excess.
    fn calls_needed(&self, threshold: f64, level: f64) -> f64 {
        self.min_events * (threshold / level).min(1.0)
    }
}

/// The share of a window's expectation that its `trimmed` busiest minutes usually hold. A
/// client whose units are even over the hour: their share of the duration (the expectation
/// varies little within an hour). A whole hour of a client that spends `front` of its hours in
/// their first [`FRONT_MINUTES`] minutes: at least that share of them, as if spread evenly
/// there. An hourly batch job's busiest three minutes hold 15-60% of its hour, not 5%, and
/// trimmed as 5% its hour at 1.6x its contract read 1.3x for two hours (seed 5's `fleet-0295`;
/// seed 4's creep `fleet-0150` read under its threshold for five days).
fn busiest_share(window: Millis, trimmed: Millis, front: f64) -> f64 {
    let even = trimmed as f64 / window.max(1) as f64;
    if window != HOUR_MS || trimmed > FRONT_MINUTES * MINUTE_MS {
        return even;
    }
    even.max(front * trimmed as f64 / (FRONT_MINUTES * MINUTE_MS) as f64)
}

/// Shared logic of the windowed volume detectors, for a warning and a critical threshold at
/// once (the sums are the same). `expected(t, duration)` gives the expected units over
/// `[t - duration, t)`; the excess is tested against `null(threshold) ×` that;
/// `last_fire` is where a firing alert of the kind last saw its excess (`None` when none is
/// firing); `shape` is the client's learned day, for a threshold that is not seasonal.
#[allow(clippy::too_many_arguments)]
pub(crate) fn windowed(
    w: &Windows,
    units: &Dispersion,
    t: Millis,
    j: &Judge<'_>,
    expected: impl Fn(Millis, Millis) -> f64,
    null: impl Fn(f64) -> f64,
    last_fire: Option<Millis>,
    shape: Option<Shape<'_>>,
) -> [Verdict; 2] {
    let p = j.shared;
    // A window of hours is whole hours and the hour in progress, so an hourly batch job that
    // front-loads its hours puts one batch more in it than its duration expects: early in each
    // hour, a 3 h window held three batches against two hours' expectation. The hour in
    // progress counts at most at the ratio of the whole hours or of the last 60 minutes (or
    // 1): an excess that lasts is in one of them. Its sum and the last 60 minutes' ratio are
    // the same for every pair.
    let into_hour = t.rem_euclid(HOUR_MS);
    let hour_in_progress = (j.cap_hour_in_progress
        && into_hour > 0
        && j.pairs.iter().any(|&(_, long)| long > HOUR_MS))
    .then(|| {
        let last_hour = w.sum(t, HOUR_MS).0 / expected(t, HOUR_MS).max(f64::MIN_POSITIVE);
        (w.sum(t, into_hour).0, last_hour)
    });
    // A window that reaches back before the client's last volume incident ended holds that
    // incident's excess for hours after its alert resolved: with a chance hour at the
    // threshold in the short window, it fired the same alert again (seed 6's `fleet-0280`, two
    // hours after its 4x jump resolved, on 6 hours at 2.5x its usual of which the jump made
    // most). Until it is clear of it, a window does not fire a new alert. (From the hour it
    // resolved in, not the hour after: a new jump in the next hour waited for that hour to
    // pass.)
    let resolved_in = j
        .incident_ended
        .filter(|_| last_fire.is_none())
        .map(|after| after - HOUR_MS);
    let sums: Vec<PairSums> = j
        .pairs
        .iter()
        .filter_map(|&(short, long)| {
            if resolved_in.is_some_and(|hour| t - long < hour) {
                return None;
            }
            let (s_obs, s_dur) = w.sum(t, short);
            let (l_obs, l_dur) = w.sum(t, long);
            // "Sustained": the long window is judged without its most intense minutes.
            let (mut l_trim, l_trim_dur) = w.sum_trimmed(t, long, p.burst_minutes);
            let (s_exp, l_exp) = (expected(t, s_dur), expected(t, l_dur));
            let mut l_untrimmed = l_obs;
            if let Some((part, last_hour)) = hour_in_progress.filter(|_| long > HOUR_MS) {
                let whole_expected = expected(t - into_hour, l_dur - into_hour);
                let whole_ratio = (l_trim - part) / whole_expected.max(f64::MIN_POSITIVE);
                let at_most = (l_exp - whole_expected) * whole_ratio.max(last_hour).max(1.0);
                let over_cap = (part - at_most).max(0.0);
                l_trim -= over_cap;
                l_untrimmed -= over_cap;
            }
            let l_trim_exp = l_exp * (1.0 - busiest_share(l_dur, l_dur - l_trim_dur, j.front));
            (s_exp > 0.0 && l_trim_exp > 0.0).then(|| PairSums {
                short: (s_obs, s_exp),
                trim_ratio: l_trim / l_trim_exp,
                untrimmed_ratio: l_untrimmed / l_exp,
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
    let longest = j.pairs.iter().map(|p| p.1).max().unwrap_or(0);
    // (a window's reading, and the duration the rings summed)
    let read = |window: Millis| {
        let (observed, dur) = w.sum(t, window);
        let expected = expected(t, dur);
        let ratio = observed / expected.max(f64::MIN_POSITIVE);
        let reading = Reading {
            observed,
            expected,
            ratio,
            window,
            item: None,
        };
        (reading, dur)
    };
    let after = last_fire.map(|since| {
        let window = since_window(t - since, longest);
        let (reading, dur) = read(window);
        let seasonal = shape.as_ref().filter(|_| dur > 0).map(|s| {
            // (the multiple of the usual at which a rate of `peak` would be in the band)
            let need =
                |peak: f64| hold_at * reading.expected / dur as f64 / peak.max(f64::MIN_POSITIVE);
            Usual {
                calls: (s.usual)(t, dur) / units.mean().max(1e-9),
                need: need(s.peak_per_ms),
                need_later: need(s.later_peak_per_ms),
                as_yesterday: s.recurring && t - since < DAY_MS && as_yesterday(w, s, t, since),
            }
        });
        Tail {
            last_hour: (read(HOUR_MS).0, w.calls(t, HOUR_MS)),
            calls: w.calls(t, window),
            seasonal,
            reading,
        }
    });
    let band = Band {
        at: hold_at,
        units,
        factor: units.factor_with(w.hour_so_far(t)),
    };
    // (the sustained read is the warning's only)
    let levels = [
        (j.thresholds[0], j.sustained_share),
        (j.thresholds[1], None),
    ];
    let [warning, critical] = levels.map(|(threshold, sustained_share)| {
        judge(
            &sums,
            threshold,
            sustained_share,
            j,
            null(threshold),
            &band,
            after.as_ref(),
            (w, t),
        )
    });
    // A page is not over while the warning's excess still is.
    match (warning, critical) {
        (Verdict::Fire(r), Verdict::Clear(_) | Verdict::Weak(_) | Verdict::Unsure(_))
            if after.is_some() =>
        {
            [warning, Verdict::Hold(r)]
        }
        _ => [warning, critical],
    }
}

/// The longest window ending at `t` that starts no earlier than `elapsed` ago and that the
/// rings can sum: whole minutes up to an hour, whole hours beyond, at most `longest`.
pub(crate) fn since_window(elapsed: Millis, longest: Millis) -> Millis {
    let w = elapsed.min(longest);
    if w <= HOUR_MS {
        w / MINUTE_MS * MINUTE_MS
    } else {
        w / HOUR_MS * HOUR_MS
    }
}

/// A client's learned day, for a threshold that is flat (the contract's) when the client's
/// traffic is not: what it usually consumes over a window, and its busiest rate ahead.
pub(crate) struct Shape<'a> {
    /// Usual units over `[t - duration, t)`.
    pub usual: &'a dyn Fn(Millis, Millis) -> f64,
    /// Usual units per millisecond in the busiest hour of the day ahead.
    pub peak_per_ms: f64,
    /// The same in the next [`LATER_DAYS`] days: beyond a quiet day ahead (a weekend, a
    /// holiday) to the busy one after it.
    pub later_peak_per_ms: f64,
    /// This firing began within a day of the end of the client's last volume episode: an
    /// overage that recurs day after day (a creep, an overage of the day's peak).
    pub recurring: bool,
    /// The share of the hour holding `t` that the client usually spends by `t`, its rate
    /// moving smoothly between hour middles ([`crate::baseline::Seasonal::expected_smooth`]).
    pub hour_share: &'a dyn Fn(Millis) -> f64,
}

/// The most recent hours [`as_yesterday`] compares with the day before: the hour ring holds a
/// day and [`crate::window::HOUR_SLOTS`] − 24 hours more, and an episode that ended shows
/// within them.
const YESTERDAY_HOURS: i64 = 6;

/// How far under the day before's multiple of its usual a recurring overage's client may be
/// and still be going on as it did. Measured on the fleets: at 0.9 (the resolve ratio) a
/// creep's night a fifth quieter than the night before resolved it, to fire again at dawn
/// (seed 4's `fleet-0181`); at 0.6 episodes that ended resolved up to 5.2 hours later,
/// near the 6 hours after which an alert counts as stuck (at 0.75, 4.2).
const YESTERDAY_SHARE: f64 = 0.75;

/// Is a recurring overage's client not clearly below [`YESTERDAY_SHARE`] of the multiple of its
/// usual it was at a day before, in the hours since it was last seen (at most the last
/// [`YESTERDAY_HOURS`])? In calls, and in whole hours from the one it was last seen in: a day
/// ago is in whole hours, and the edge of a client's busy day comes at a different minute each
/// day. The hour in progress counts as far as it has gone, a day ago's by the share of that
/// hour the client usually spends by then ([`Shape::hour_share`]).
fn as_yesterday(w: &Windows, s: &Shape<'_>, t: Millis, since: Millis) -> bool {
    let now = t.div_euclid(HOUR_MS);
    let first = since.div_euclid(HOUR_MS).max(now - (YESTERDAY_HOURS - 1));
    let span = t - first * HOUR_MS;
    // (a day ago's hour in progress as far as the client usually spends it by then: pro rata,
    // the first minutes of a busy hour after a quiet one were expected to hold a fifth of the
    // day before's, and seed 4's creep `fleet-0181` resolved at its day's first busy hour, to
    // fire again an hour later)
    let into_hour = (s.hour_share)(t - DAY_MS);
    // (the whole hours and the hour in progress, as a window of hours counts them)
    let calls = w.calls(t, (now - first + 1) * HOUR_MS);
    let before =
        w.hours.count_sum(first - 24, now - 24) + w.hours.count_sum(now - 24, now - 23) * into_hour;
    // (the usual in units, whose mean per call cancels out of the ratio)
    let (usual, usual_before) = ((s.usual)(t, span), (s.usual)(t - DAY_MS, span));
    usual_before > 0.0
        && !clearly_below(
            calls,
            YESTERDAY_SHARE * before * usual / usual_before,
            1.0,
            CLEAR_ALPHA,
        )
}

/// The days ahead whose busiest hour [`Shape::later_peak_per_ms`] is.
pub(crate) const LATER_DAYS: i64 = 3;

/// The usual over the span after a firing alert's excess, for a threshold that is flat.
#[derive(Clone, Copy)]
struct Usual {
    /// The client's usual calls over the span.
    calls: f64,
    /// The multiple of them at which its busiest hour of the day ahead would be in the band,
    /// and its busiest hour of the next [`LATER_DAYS`].
    need: f64,
    need_later: f64,
    /// A recurring overage (see [`Shape::recurring`]) seen within the last day, whose client is
    /// not clearly below where it was the day before ([`as_yesterday`]).
    as_yesterday: bool,
}

/// The consumption since a firing alert's excess was last seen.
struct Tail {
    /// The last hour's reading and calls: whether the excess is still seen.
    last_hour: (Reading, f64),
    calls: f64,
    /// With a [`Shape`]: the usual over the same window.
    seasonal: Option<Usual>,
    reading: Reading,
}

/// The hysteresis band a firing alert holds in, and the client's dispersion as of `t` (the
/// hour in progress included).
struct Band<'a> {
    at: f64,
    units: &'a Dispersion,
    factor: f64,
}

impl Band<'_> {
    /// The ratio `r`'s `calls` show at the mean units per call. (Minute call counts saturate
    /// at 255; a client near that is far too busy for chance swings, and its units alone
    /// decide.)
    fn by_calls(&self, r: &Reading, calls: f64) -> f64 {
        let minutes = (r.window / crate::time::MINUTE_MS).max(1) as f64;
        if calls >= 200.0 * minutes {
            r.ratio
        } else {
            calls * self.units.mean() / r.expected.max(f64::MIN_POSITIVE)
        }
    }

    /// In the band by units and by calls: a heavy-tailed client's units alone swing into the
    /// band by chance, hour after hour, long after its overage ended.
    fn holds(&self, r: &Reading, calls: f64) -> bool {
        r.ratio.min(self.by_calls(r, calls)) >= self.at
    }

    fn clearly_below(&self, r: &Reading) -> bool {
        clearly_below(r.observed, self.at * r.expected, self.factor, CLEAR_ALPHA)
    }
}

/// Could a single call explain the excess? A heavy tail's sums are made by their largest
/// call: the chance that a window holds `x` units more than expected is about the chance that
/// one of its calls alone is of `x` units (a sum of subexponential calls exceeds a level
/// mostly through its maximum), far above what the compound Poisson test gives it. And a
/// window tested every minute meets every large call the client makes, so what matters is how
/// often such a call comes, not its chance in one window. An excess of a size the client makes
/// in one call at least once in [`ONE_CALL_DAYS`] days of its usual calls does not fire where
/// neither its calls nor its units without its busiest minute (or, beyond an hour, the clock
/// hour before's largest call) are significantly above the null: a bulk export is one call in
/// one minute. What is left without that call is a heavy tail's sum too, and is judged as one
/// ([`significant_heavy`]).
fn one_call_explains(
    s: &PairSums,
    (w, t): (&Windows, Millis),
    null_ratio: f64,
    band: &Band<'_>,
    alpha: f64,
) -> bool {
    let null = null_ratio * s.trimmed_expected;
    let calls = null / band.units.mean().max(1e-9);
    let per_day = calls * (DAY_MS as f64 / s.reading.window.max(1) as f64);
    // (scanned only where the rest holds; a window of up to an hour is trimmed of its busiest
    // minutes already. Beyond an hour, the busiest minute of the last hour or the largest call
    // of the clock hour before, which a window of hours holds whole: a call out of the minute
    // ring still made the excess of seed 6's `fleet-0157`, whose two hours fired on it)
    let busiest = || {
        if s.reading.window > HOUR_MS {
            let minute = w.sum(t, HOUR_MS).0 - w.sum_trimmed(t, HOUR_MS, 1).0;
            minute.max(band.units.largest_in_hour(t.div_euclid(HOUR_MS) - 1))
        } else {
            0.0
        }
    };
    per_day * ONE_CALL_DAYS * band.units.tail(s.trimmed - null, band.factor) >= 1.0
        && !significant(s.calls, calls, 1.0, alpha)
        && !significant_heavy(s.trimmed - busiest(), (null, calls), band, alpha)
}

/// Is a heavy-tailed client's `observed` units significantly above `null` units (`null_calls`
/// calls at its mean units per call)? The compound Poisson chance plus the chance that one of
/// the null's calls alone makes the excess: a sum of lognormal calls passes a level mostly
/// through its largest call, which the compound Poisson test alone makes far too rare. Seed
/// 5's `fleet-0224` (fitted σ 1.29, 15 calls in six hours at its contract) paged on three
/// calls of 74 to 89 units in six hours: 302 units against 106, without the busiest, is a
/// chance of 0.0055 by the compound Poisson test, 0.013 by simulation of its fitted
/// lognormal, 0.015 with the one-call term.
fn significant_heavy(
    observed: f64,
    (null, null_calls): (f64, f64),
    band: &Band<'_>,
    alpha: f64,
) -> bool {
    excess_chance(observed, null, band.factor)
        + null_calls * band.units.tail(observed - null, band.factor)
        < alpha
}

/// A size of call the client makes at least once in this many days (at the rate of its usual
/// calls) explains an excess by itself: at most a false alert in about three years a client.
const ONE_CALL_DAYS: f64 = 1000.0;

#[allow(clippy::too_many_arguments)]
fn judge(
    sums: &[PairSums],
    threshold: f64,
    sustained_share: Option<f64>,
    j: &Judge<'_>,
    null_ratio: f64,
    band: &Band<'_>,
    after: Option<&Tail>,
    window_at: (&Windows, Millis),
) -> Verdict {
    for s in sums {
        let short = s.short.0 / s.short.1;
        let level = short.min(s.trim_ratio);
        let over = match sustained_share {
            Some(share) => {
                short.min(s.untrimmed_ratio) >= threshold
                    && s.trim_ratio >= 1.0 + (threshold - 1.0) * share
            }
            None => level >= threshold,
        };
        // The call floor scales down with the excess, as far as calls at the mean units per
        // call show it too: a slow client at 10x its usual needed 30 calls, four hours of its
        // overage, while one bulk call of a heavy-tailed client shows no excess in calls.
        let by_calls = band.by_calls(&s.reading, s.calls);
        // (calls alone prove nothing in a window shorter than an hour: a client whose calls
        // swing hour to hour ran 3x its usual for half an hour, chance 2e-5 for Poisson calls)
        let calls_can_prove = s.reading.window >= HOUR_MS;
        if over
            && s.calls >= j.calls_needed(threshold, level.min(by_calls))
            && (significant(
                s.trimmed,
                null_ratio * s.trimmed_expected,
                band.factor,
                j.shared.alpha,
            ) || j.calls_alpha.filter(|_| calls_can_prove).is_some_and(|alpha| {
                let null_calls = null_ratio * s.reading.expected / band.units.mean().max(1e-9);
                significant(s.calls, null_calls, 1.0, alpha)
            }))
            && !one_call_explains(s, window_at, null_ratio, band, j.shared.alpha)
            // Once firing, the long window still holds the episode for hours after it ended,
            // and a small client's short window reaches the threshold by chance: the excess
            // counts as still seen only where the short window alone shows it.
            && (after.is_none()
                || significant(
                    s.short.0,
                    band.at * s.short.1,
                    band.factor,
                    CLEAR_ALPHA,
                ))
        {
            return Verdict::Fire(s.reading);
        }
    }
    let Some(first) = sums.first() else {
        return Verdict::Clear(Reading {
            observed: 0.0,
            expected: 0.0,
            ratio: 0.0,
            window: j.pairs.first().map_or(0, |p| p.1),
            item: None,
        });
    };
    // A firing alert is judged on what came after its excess was last seen: the windows above
    // still hold the episode for hours after it ended (a 10x hour keeps six hours 2.5x), and
    // an alert held by them stayed firing most of a night after its client was back to normal.
    // It holds while that span is still in the band and significantly above the expected (a
    // small client's two calls in a quiet hour prove nothing), or, against a flat contract,
    // while the client is still far enough above its usual for the hour that its busiest hour
    // ahead would be in the band (the night of an overage that is over the contract by day).
    // It resolves once the span is clearly below both, and otherwise waits, for a bounded
    // time, for the calls that can tell; minutes whose span is still in the band by the
    // numbers do not count toward that time (a small client three days into a 6x jump is at
    // 3x over a quiet night, and resolved after four such hours to page again every morning),
    // nor do those of a client whose usual day peaks in the band, close enough to its usual
    // that its busiest hour ahead would be.
    // The span is at least [`MIN_AFTER`]: minutes without traffic are as likely a gateway's
    // gap as the end of an overage. Past that, while the last hour alone is in the band,
    // significantly (in units, or in calls where [`Judge::seen_in_calls`]), on calls enough
    // ([`SEEN_FLOOR_SHARE`]), the excess counts as still seen ([`Verdict::Seen`]), and the
    // span starts again from there: a heavy-tailed client's overage passes the firing test
    // only now and then, and a span from its last firing took in hours of the episode, which
    // held the alert for hours after the episode ended. Each verdict carries the reading of
    // the window that decided it, so a hold or a resolve never quotes numbers it did not use.
    let Some(tail) = after else {
        return Verdict::Clear(first.reading);
    };
    let r = &tail.reading;
    let d = band.factor;
    // (in the band by the numbers; held only where that is significant, else unsure)
    let by_numbers = band.holds(r, tail.calls);
    let in_band = by_numbers && significant(r.observed, r.expected, d, CLEAR_ALPHA);
    // (in calls, the baseline's own measure: a heavy-tailed client's units swing past its
    // usual by chance; significantly above the usual, or, where the usual alone would take the
    // busiest hour ahead into the band, above that share of it: a creep's baseline follows the
    // creep, and its alert resolved every night at the usual and re-fired every morning)
    // Or significantly above both its usual and the multiple of it that takes the busiest hour
    // of the next days into the band: a weekend inside a weekday overage is under the contract
    // at any multiple it shows, and resolved the alert to fire again on Monday. Above the
    // usual too: where the next days' peak takes the usual itself into the band, clients back
    // at their usual after an episode held for it.
    let over_usual_by_numbers = tail.seasonal.filter(|u| tail.calls >= u.need * u.calls);
    let over_usual = over_usual_by_numbers
        .is_some_and(|u| significant(tail.calls, u.need.min(1.0) * u.calls, 1.0, CLEAR_ALPHA))
        || tail.seasonal.is_some_and(|u| {
            significant(
                tail.calls,
                u.need_later.max(1.0) * u.calls,
                1.0,
                CLEAR_ALPHA,
            )
        });
    let below_usual = tail
        .seasonal
        .is_none_or(|u| clearly_below(tail.calls, u.need * u.calls, 1.0, CLEAR_ALPHA));
    // (where the client's usual day itself peaks in the band, today's or one of the next
    // days', calls not clearly below the multiple of its usual that takes that peak into the
    // band are that overage going on, if too few to prove it: a creep's baseline follows the
    // creep, and its alert resolved in its quiet hours, for want of calls even on a hundred an
    // hour a few percent under the multiple, or on its weekend at its usual, and re-fired at
    // the next peak. Seed 6's `fleet-0026` fired three times in one creep, now once)
    let in_band_ahead = |u: &Usual, need: f64| {
        need < 1.0 && !clearly_below(tail.calls, need * u.calls, 1.0, CLEAR_ALPHA)
    };
    // (and where that peak is over the contract itself, `need / band.at` the multiple of the
    // usual that takes it there, a client still near its usual will be over its contract at
    // its next peak, on calls enough to tell: a creep's usual that peaks between the contract
    // and the band resolved it on the days its peak stayed under the band, to fire again when
    // it reached it; seed 2's `fleet-0015` and `fleet-0233`, seed 4's `fleet-0150` and
    // `fleet-0168`, seed 6's `fleet-0271`)
    let over_contract_ahead = |u: &Usual, need: f64| {
        let to_contract = need / band.at;
        to_contract < 1.0
            && clearly_below(to_contract * u.calls, u.calls, 1.0, TELL_ALPHA)
            && !clearly_below(
                tail.calls,
                to_contract.max(NEAR_USUAL) * u.calls,
                1.0,
                CLEAR_ALPHA,
            )
    };
    let going_on_at_usual = tail.calls > 0.0
        && tail.seasonal.is_some_and(|u| {
            [u.need, u.need_later]
                .into_iter()
                .any(|need| in_band_ahead(&u, need) || over_contract_ahead(&u, need))
        });
    // (a recurring overage, seen within the day, waits for its next peak while the client is
    // not clearly below the multiple of its usual it was at in the same hours the day before:
    // a creep's baseline, frozen while it fires, is days behind it, so each evening the creep
    // read as back at its usual and resolved, to fire again at the next peak)
    let as_yesterday = tail.seasonal.is_some_and(|u| u.as_yesterday);
    let (hour, hour_calls) = &tail.last_hour;
    let hour_level = hour.ratio.min(band.by_calls(hour, *hour_calls));
    let hour_calls_over = || {
        let expected_calls = hour.expected / band.units.mean().max(1e-9);
        j.seen_in_calls && significant(*hour_calls, expected_calls, 1.0, CLEAR_ALPHA)
    };
    // (once an hour at most: the span since must be the minimum again before it moves)
    if r.window >= MIN_AFTER
        && band.holds(hour, *hour_calls)
        && *hour_calls >= SEEN_FLOOR_SHARE * j.calls_needed(j.thresholds[0], hour_level)
        && (significant(hour.observed, hour.expected, d, CLEAR_ALPHA) || hour_calls_over())
    {
        Verdict::Seen(*hour)
    } else if r.window < MIN_AFTER || in_band || over_usual {
        Verdict::Hold(*r)
    } else if band.clearly_below(r) && below_usual && !as_yesterday && !going_on_at_usual {
        Verdict::Clear(*r)
    } else if by_numbers || going_on_at_usual || as_yesterday {
        Verdict::Unsure(*r)
    } else {
        Verdict::Weak(*r)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{client_with, rate, T0};
    use super::super::Detectors;
    use super::*;
    use crate::client::Client;
    use crate::time::MINUTE_MS;

    /// The warning verdict of `judge` against a flat 100 units a minute.
    fn against_flat_100(c: &Client, t: Millis, judge: &Judge<'_>) -> Verdict {
        let per_ms = rate(100.0);
        let [w, _] = windowed(
            &c.windows,
            &c.units,
            t,
            judge,
            |_, dur| per_ms * dur as f64,
            |_| 1.0,
            None,
            None,
        );
        w
    }

    /// A judge of one (1 h, 3 h) pair at 1.5x and 3x on 10 calls, which each test varies.
    fn judge(d: &Detectors) -> Judge<'_> {
        Judge {
            pairs: &[(HOUR_MS, 3 * HOUR_MS)],
            thresholds: [1.5, 3.0],
            min_events: 10.0,
            calls_alpha: None,
            seen_in_calls: false,
            cap_hour_in_progress: false,
            sustained_share: None,
            front: 1.0 / 6.0,
            incident_ended: None,
            shared: &d.shared,
        }
    }

    /// The warning verdict of one (1 h, 3 h) pair at threshold 1.5, against a flat 100 units a
    /// minute, with or without the cap on the hour in progress.
    fn warning(c: &Client, t: Millis, cap_hour_in_progress: bool) -> Verdict {
        let d = Detectors::default();
        let judge = Judge {
            cap_hour_in_progress,
            ..judge(&d)
        };
        against_flat_100(c, t, &judge)
    }

    #[test]
    fn an_hourly_batch_jobs_hour_is_trimmed_of_the_busiest_minutes_it_usually_has() {
        // Each hour's units in its first 10 minutes, 1.7x the contract's 100 a minute. At the
        // end of a batch, the hour without its 3 busiest minutes holds 0.7 of it, 1.19x the
        // contract: under the 1.4x that reads the whole hour, if those minutes usually held
        // their 5% of the hour, as an even client's do; at 1.7x the 70% a batch job's do.
        let rates: Vec<_> = (-3..1).map(|h| (h * 60, h * 60 + 10, 102)).collect();
        let batch = client_with(&rates);
        let d = Detectors::default();
        let verdict = |front: f64| {
            let judge = Judge {
                pairs: &[(5 * MINUTE_MS, HOUR_MS)],
                cap_hour_in_progress: true,
                sustained_share: Some(0.8),
                front,
                ..judge(&d)
            };
            against_flat_100(&batch, T0 + 10 * MINUTE_MS, &judge)
        };
        let v = verdict(1.0);
        assert!(matches!(v, Verdict::Fire(_)), "{v:?}");
        let v = verdict(1.0 / 6.0);
        assert!(matches!(v, Verdict::Clear(_)), "{v:?}");
    }

    /// A small client's few calls in an hour are in the band, and significant, by chance every
    /// few hours: they hold a firing alert but are not its excess seen again (which would move
    /// the span after it), as an hour with the calls to show an excess is.
    #[test]
    fn a_few_calls_over_a_small_usual_are_not_the_excess_seen_again() {
        let d = Detectors::default();
        let judge = Judge {
            thresholds: [1.8, 4.0],
            min_events: 30.0,
            ..judge(&d)
        };
        // 10-unit calls against 7 units an hour (0.7 calls), the excess last seen 90 minutes ago
        let verdict = |minutes: &[i64]| {
            let c = client_with(&minutes.iter().map(|&m| (m, m + 1, 1)).collect::<Vec<_>>());
            let expected = |_, dur: Millis| rate(7.0 / 60.0) * dur as f64;
            let since = Some(T0 - 90 * MINUTE_MS);
            let [w, _] = windowed(
                &c.windows,
                &c.units,
                T0,
                &judge,
                expected,
                |_| 1.0,
                since,
                None,
            );
            w
        };
        // three calls in the last hour: 4.3x, P ≈ 0.03, but under half the 13 calls the firing
        // test asks at 4.3x
        let v = verdict(&[-50, -30, -10]);
        assert!(matches!(v, Verdict::Hold(r) if r.ratio > 4.0), "{v:?}");
        // eight: the excess is seen
        let v = verdict(&[-55, -48, -41, -34, -27, -20, -13, -6]);
        assert!(matches!(v, Verdict::Seen(r) if r.ratio > 11.0), "{v:?}");
    }

    #[test]
    fn a_window_holding_an_incident_that_ended_does_not_fire_again() {
        // 2 h at 3x, then an hour at 1.6x: the 3 h window is 2.5x, the hour over 1.5x
        let c = client_with(&[(-180, -60, 30), (-60, 0, 16)]);
        let d = Detectors::default();
        let verdict = |incident_ended: Option<Millis>| {
            let judge = Judge {
                incident_ended,
                ..judge(&d)
            };
            against_flat_100(&c, T0, &judge)
        };
        assert!(matches!(verdict(None), Verdict::Fire(_)));
        // its alert resolved 90 minutes ago (the hour after that hour began 30 minutes ago):
        // the 3 h window still holds the incident
        let v = verdict(Some(T0 - 30 * MINUTE_MS));
        assert!(matches!(v, Verdict::Clear(_)), "{v:?}");
        // an incident that ended before the window does not hold it back
        assert!(matches!(verdict(Some(T0 - 2 * HOUR_MS)), Verdict::Fire(_)));
    }

    #[test]
    fn a_window_of_hours_counts_a_front_loaded_batch_once() {
        // Each hour's units in its first 6 minutes, at the expected 100 a minute, then one
        // hour's batch at 2x. Early in that hour a 3 h window is two whole hours and 7
        // minutes, which hold three batches: 1.9x its duration's expectation, over the
        // threshold, with the 1 h window too.
        let mut rates: Vec<_> = (-7..0).map(|h| (h * 60, h * 60 + 6, 100)).collect();
        rates.push((0, 6, 200));
        let batch = client_with(&rates);
        let t = T0 + 7 * MINUTE_MS;
        assert!(matches!(warning(&batch, t, false), Verdict::Fire(_)));
        let v = warning(&batch, t, true);
        assert!(matches!(v, Verdict::Clear(_)), "{v:?}");
        // a steady 2x over the same hours fires with the cap too
        let steady = client_with(&[(-400, -180, 10), (-180, 7, 20)]);
        let v = warning(&steady, t, true);
        assert!(matches!(v, Verdict::Fire(_)), "{v:?}");
    }
}
