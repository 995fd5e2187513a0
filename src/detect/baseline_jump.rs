//! `baseline_jump`: consumption against the client's own learned seasonal baseline, at the
//! warning and critical thresholds of `[detect.baseline_jump]`. Watches clients without a
//! contract (and contracted ones with `contracted = true`); silent while the baseline warms up,
//! and until its longest window is clear of the first week (fitted to it, the factors would
//! judge that week's own hours).
//!
//! A volume detector (see [`super::volume`]): a learned baseline is itself uncertain, so the
//! excess must be significant against most of the threshold ([`NULL_SHARE`]), not against
//! the baseline, and on a steep daily ramp windows of an hour or more expect the unfinished
//! hour to hold what it holds, up to its usual total (the baseline knows hourly totals, not
//! how an hour is spent); in windows of hours, the hour in progress counts at most at the
//! ratio of the whole hours or of the last 60 minutes, so that an hourly batch job's
//! front-loaded hour is not one batch more than the window expects
//! (`cap_hour_in_progress`). The baseline is learned as calls × mean units, so a jump is also
//! proved by the calls alone, at a stricter level ([`CALLS_ALPHA_SHARE`]): a heavy-tailed
//! client's units hide a tripling of its calls for hours.
//!
//! Client state read: the windows and units dispersion, the learned baseline
//! ([`crate::baseline::Seasonal`]); the hourly rollups for the excess.

use serde::{Deserialize, Serialize};

use super::volume::{pairs_ms, windowed, Judge, WindowPair};
use super::{About, Allowance, Context, Detector, InvalidSetting, Shared, Verdicts};
use crate::alert::{fmt_units, AlertKind, Severity, Verdict};
use crate::baseline::{BaselineParams, Seasonal};
use crate::client::Client;
use crate::config::DetectConfig;
use crate::contract::Contract;
use crate::time::{duration_label, Millis, HOUR_MS, MINUTE_MS};

/// `[detect.baseline_jump]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineJumpConfig {
    pub enabled: bool,
    /// Also watch contracted clients against their learned baseline.
    pub contracted: bool,
    /// Ratio to the learned baseline that raises a warning.
    pub alert_at: f64,
    /// Ratio that raises a critical alert.
    pub page_at: f64,
    pub windows: Vec<WindowPair>,
    /// Fewer calls than this in the long window never fire at the threshold (an excess of k
    /// times it needs 1/k of them: [`super::volume`]).
    pub min_events: f64,
}

impl Default for BaselineJumpConfig {
    fn default() -> Self {
        BaselineJumpConfig {
            enabled: true,
            contracted: false,
            alert_at: 1.8,
            page_at: 4.0,
            // (the 30 min window catches a jump of a busy client in half the time the hour
            // takes; the 2 h and 3 h windows prove a jump of a few hours on a client of a few
            // calls an hour, where six hours hold as much of the usual as of the jump)
            windows: vec![
                WindowPair::mins(5, 30),
                WindowPair::mins(5, 60),
                WindowPair::mins(60, 120),
                WindowPair::mins(60, 180),
                WindowPair::mins(60, 360),
            ],
            min_events: 30.0,
        }
    }
}

impl BaselineJumpConfig {
    /// The thresholds (its windows are checked with the other volume detectors':
    /// [`super::volume::check_windows`]).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(self.alert_at > 1.0 && self.page_at > self.alert_at) {
            return Err(InvalidSetting::new(
                "detect.baseline_jump.alert_at",
                format!(
                    "need 1 < alert_at < page_at, got {} and {}",
                    self.alert_at, self.page_at
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct BaselineJump {
    pub enabled: bool,
    pub contracted: bool,
    pub alert_at: f64,
    pub page_at: f64,
    /// Window pairs, `(short, long)` in milliseconds.
    pub pairs: Vec<(Millis, Millis)>,
    pub min_events: f64,
}

impl BaselineJump {
    /// Verdicts at the warning and critical thresholds; `None` while the baseline is still
    /// warming up, and until its longest window is clear of the first week: the weekday
    /// factors are fitted to that week's days, so a window holding them judges the data
    /// against itself (a weekend factor learned from a Sunday whose morning was a holiday
    /// made the same Sunday's ordinary evening a jump, in the very hour the week closed).
    pub fn verdicts(
        &self,
        c: &Client,
        t: Millis,
        shared: &Shared,
        baseline: &BaselineParams,
    ) -> Option<[Verdict; 2]> {
        let longest = self.pairs.iter().map(|p| p.1).max().unwrap_or(0);
        let clear_of_first_week = i64::from(c.baseline.hours_since_first_week()) * HOUR_MS;
        if !c.baseline.is_warm(baseline) || clear_of_first_week < longest {
            return None;
        }
        let b: &Seasonal = &c.baseline;
        let baseline = &floored(c, c.last_fire(AlertKind::BaselineJump).is_some(), baseline);
        let judge = Judge {
            pairs: &self.pairs,
            thresholds: [self.alert_at, self.page_at],
            min_events: self.min_events,
            calls_alpha: Some(CALLS_ALPHA_SHARE * shared.alpha),
            seen_in_calls: false,
            cap_hour_in_progress: true,
            // (a learned baseline is uncertain itself: read trimmed at the threshold, a warning
            // at 80% of the way took three false warnings more on the fleets)
            sustained_share: None,
            front: c.baseline.front(),
            incident_ended: c.baseline.incident_ended(t),
            shared,
        };
        Some(windowed(
            &c.windows,
            &c.units,
            t,
            &judge,
            |end, dur| hour_aligned_expectation(c, b, baseline, end, dur),
            // a learned baseline is itself uncertain (and a small client's is noisy): the excess
            // must be significant against most of the threshold, not just the baseline
            |threshold| NULL_SHARE * threshold,
            c.last_fire(AlertKind::BaselineJump),
            // the baseline is the client's own day already
            None,
        ))
    }
}

/// The share of the threshold an excess must be significantly above (its point estimate must
/// still reach the whole threshold). Against the whole threshold, a 2.5x jump on a client of a
/// few calls an hour needed most of a day of evidence; against the baseline itself, its learning
/// error alone would fire.
const NULL_SHARE: f64 = 0.8;

/// The baseline's parameters with the floor under its expectation that this detector reads.
///
/// The floor (`[detect.baseline] min_expected_fraction`, a quarter of the client's level) is
/// for a small client's quiet hours, learned from a few calls each, where a couple of calls
/// more would read as a jump. A busy client's quiet hours hold dozens of calls and are learned
/// well; floored at a quarter of the level, a strongly diurnal client's nights were expected at
/// more than it makes, and its 2x night jump read under the threshold (seed 1's `fleet-0280`
/// and `fleet-0098` fired 34 and 297 minutes after it was clear; now 7 and 113). So the floor
/// stands for at most [`FLOOR_CALLS`] calls an hour, and is never under [`LEAST_FLOOR`] of the
/// level. While the alert fires it is at that least: a jump of days is a jump at night too,
/// and with its nights expected high it resolved there and fired again the next day (seed 1's
/// `fleet-0194`, seed 2's `fleet-0181` twice, seed 3's `fleet-0229`). On three fleets: those 4
/// re-fires gone, 3 jumps caught sooner, no false firing, miss or stuck alert more.
fn floored(c: &Client, firing: bool, p: &BaselineParams) -> BaselineParams {
    let level_calls = f64::from(c.baseline.level()) * 60.0 / c.units.mean().max(f64::MIN_POSITIVE);
    let fraction = if firing {
        LEAST_FLOOR
    } else {
        ((FLOOR_CALLS / level_calls) as f32).max(LEAST_FLOOR)
    };
    BaselineParams {
        min_expected_fraction: fraction.min(p.min_expected_fraction),
        ..p.clone()
    }
}

/// The most calls an hour the baseline's floor stands for (at 2, the fleet scores are the same).
const FLOOR_CALLS: f64 = 5.0;

/// The least floor under the expectation, as a fraction of the level. At a tenth everywhere,
/// clients of about one call an hour fired on a few calls in a quiet hour (2 false
/// warnings, one of them escalating to a page, on three fleets).
const LEAST_FLOOR: f32 = 0.1;

/// The calls' own test is at this share of `detect.significance`: a client's calls swing by
/// more than Poisson's from day to day, and a window is tested every minute. Measured on the
/// fleets, a tenth gave two false warnings more for two jumps more; a hundredth none. Only
/// windows of an hour or more are judged on calls alone (a half hour of a client whose calls
/// swing hour to hour was 3x its usual, at 2e-5 for Poisson calls).
const CALLS_ALPHA_SHARE: f64 = 0.01;

/// Expected units over `[end - dur, end)`, where the baseline only knows hourly totals. Pro
/// rata is wrong for a client whose hourly batch job front-loads each hour where the daily
/// shape climbs steeply: at 22:08 its whole 22:00 hour is in, against 8 minutes' share of it,
/// and every evening looked like a jump. So where the unfinished hour is expected to hold at
/// least [`RAMP`] times the hour before, its part of the window is expected to hold whatever it
/// holds, up to its whole usual total. Elsewhere pro rata stands (it errs by less than the
/// thresholds allow), so a jump that starts near an hour boundary is not made to wait.
///
/// A window shorter than an hour sees how the hour is spent, so it expects the most of three
/// readings of the baseline: pro rata; the client's learned front-loading
/// ([`Seasonal::expected_in_hours`]: a 30 min window of an hourly batch job holds a whole
/// batch or none); and the rate moving smoothly between hours ([`Seasonal::expected_smooth`]:
/// the first half hour of a steep ramp down still runs near the previous hour's rate).
/// Pro rata alone, a (5 min, 30 min) pair fired 513 times on batch clients and 16 on ramps
/// across three fleets.
fn hour_aligned_expectation(
    c: &Client,
    b: &Seasonal,
    p: &BaselineParams,
    end: Millis,
    dur: Millis,
) -> f64 {
    let expected = b.expected(end, dur, p);
    if dur < HOUR_MS {
        let shaped = b.expected_in_hours(end, dur, p, |from| c.windows.sum(end, end - from).0);
        return expected.max(shaped).max(b.expected_smooth(end, dur, p));
    }
    let into_hour = end.rem_euclid(HOUR_MS);
    if into_hour == 0 {
        return expected;
    }
    let hour_start = end - into_hour;
    // units per minute of this hour and of the one before
    let (now, before) = (b.rate_at(hour_start, p), b.rate_at(hour_start - HOUR_MS, p));
    if now < RAMP * before {
        return expected;
    }
    let pro_rata = now * (into_hour / MINUTE_MS) as f64;
    let (seen, _) = c.windows.sum(end, into_hour);
    expected - pro_rata + seen.clamp(pro_rata, now * 60.0)
}

/// How much more than the hour before an hour must be expected to hold for the hour-aligned
/// expectation to apply.
const RAMP: f64 = 2.0;

impl Detector for BaselineJump {
    fn new(d: &DetectConfig) -> Self {
        let j = &d.baseline_jump;
        BaselineJump {
            enabled: j.enabled,
            contracted: j.contracted,
            alert_at: j.alert_at,
            page_at: j.page_at,
            pairs: pairs_ms(&j.windows),
            min_events: j.min_events,
        }
    }

    fn kinds(&self) -> &'static [AlertKind] {
        &[AlertKind::BaselineJump]
    }

    fn evaluate(&self, cx: &Context<'_>, out: &mut Verdicts) {
        if !self.enabled || (cx.contract.is_some() && !self.contracted) {
            return;
        }
        if let Some([w, c]) = self.verdicts(cx.client, cx.t, cx.shared, cx.baseline) {
            out.push((AlertKind::BaselineJump, Severity::Warning, w));
            out.push((AlertKind::BaselineJump, Severity::Critical, c));
        }
    }

    fn summary(&self, _kind: AlertKind, a: &About<'_>) -> (String, String) {
        let r = a.reading;
        (
            duration_label(r.window),
            format!(
                "{} consumed {:.1}x its usual {} units for this hour and weekday over the last {}",
                a.client_id,
                r.ratio,
                fmt_units(r.expected),
                duration_label(r.window)
            ),
        )
    }

    fn allowance<'a>(
        &self,
        _kind: AlertKind,
        c: &'a Client,
        _contract: Option<&'a Contract>,
        baseline: &'a BaselineParams,
    ) -> Option<Allowance<'a>> {
        // (an excess is counted while its alert fires, against what the detector then expects)
        let baseline = floored(c, true, baseline);
        Some(Allowance {
            per_hour: Box::new(move |h: i32| {
                c.baseline.rate_at(h as Millis * HOUR_MS, &baseline) * 60.0
            }),
            month: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{heavy_tailed, T0};
    use super::super::Detectors;
    use super::*;
    use crate::time::hour_of_day;

    /// `heavy_tailed(until, k)` with a baseline learned from its usual eight calls an hour.
    fn with_baseline(until: i64, k: i64, d: &Detectors) -> Client {
        let h0 = T0 / HOUR_MS;
        learned(heavy_tailed(until, k), h0 - 8 * 24..h0, d)
    }

    /// `c` with a flat baseline learned over `hours`.
    fn learned(mut c: Client, hours: std::ops::Range<i64>, d: &Detectors) -> Client {
        let mean = c.units.mean();
        c.baseline.start(hours.start);
        for h in hours {
            c.baseline
                .learn_hour(h, 8.0 * mean, mean, false, &d.baseline);
        }
        c
    }

    #[test]
    fn a_jump_in_calls_fires_where_a_heavy_tail_hides_it_in_units() {
        // Three times the usual calls for the last four hours: six hours at 2.3x the usual,
        // which its units, against a spread of several times the mean call, do not yet show
        // to be over the threshold; its calls do
        let d = Detectors::default();
        let c = with_baseline(-240, 3, &d);
        let v = verdict(&c, 0, &d);
        assert!(matches!(v, Verdict::Fire(r) if r.ratio > 2.0), "{v:?}");
        // at the usual calls, nothing
        let c = with_baseline(0, 1, &d);
        let v = verdict(&c, 0, &d);
        assert!(matches!(v, Verdict::Clear(_)), "{v:?}");
    }

    /// Eight days of `calls(hour, minute)` calls of 10 units each minute up to T0 +
    /// `minutes`, evaluated (and so learned) at every minute boundary as the engine would.
    fn lived(minutes: i64, calls: impl Fn(i64, i64) -> u32, d: &Detectors) -> Client {
        let start = T0 - 8 * 24 * HOUR_MS;
        let mut c = Client::new(std::sync::Arc::from("c"), None, start);
        for m in start / MINUTE_MS..T0 / MINUTE_MS + minutes {
            c.prepare(m, d);
            for k in 0..calls(m / 60, m % 60) {
                let ts = m * MINUTE_MS + k as i64;
                c.windows.add(ts, 10.0);
                c.units.add(ts, 10.0);
            }
        }
        c.prepare(T0 / MINUTE_MS + minutes, d);
        c
    }

    fn verdict(c: &Client, minutes: i64, d: &Detectors) -> Verdict {
        let t = T0 + minutes * MINUTE_MS;
        d.baseline_jump
            .verdicts(c, t, &d.shared, &d.baseline)
            .unwrap()[0]
    }

    #[test]
    fn a_busy_clients_jump_fires_on_its_half_hour() {
        // four calls a minute, then sixteen for the last fourteen minutes: the half hour at 2x
        // its usual, the hour at 1.7x (under the threshold: the hour window alone waited)
        let d = Detectors::default();
        let now = T0 / MINUTE_MS;
        let c = lived(0, |h, m| if h * 60 + m >= now - 14 { 16 } else { 4 }, &d);
        let v = verdict(&c, 0, &d);
        assert!(
            matches!(v, Verdict::Fire(r) if r.window == 30 * MINUTE_MS && r.ratio >= 1.8),
            "{v:?}"
        );
    }

    #[test]
    fn a_busy_clients_night_is_expected_at_what_it_makes() {
        // twenty calls a minute from 08:00 to 20:00 UTC and one at night (60 an hour, a tenth
        // of the client's level, where the floor's quarter of it is 157), then three a minute
        // from 23:00 on: at 02:00 its night is three times its usual, which a night expected
        // at the floor read as 1.15x
        let d = Detectors::default();
        assert_eq!(hour_of_day(T0 / HOUR_MS), 14);
        let jump = T0 / HOUR_MS + 9;
        let night = |jumped: bool| {
            move |h: i64, _| match (hour_of_day(h), jumped && h >= jump) {
                (8..=19, _) => 20,
                (_, false) => 1,
                (_, true) => 3,
            }
        };
        let v = verdict(&lived(12 * 60, night(true), &d), 12 * 60, &d);
        assert!(matches!(v, Verdict::Fire(r) if r.ratio > 2.2), "{v:?}");
        let v = verdict(&lived(12 * 60, night(false), &d), 12 * 60, &d);
        assert!(matches!(v, Verdict::Clear(_)), "{v:?}");
    }

    #[test]
    fn a_half_hour_expects_an_hourly_batch_whole_and_sees_a_bigger_one() {
        // an hourly job: six calls a minute for the first twenty minutes of every hour, so that
        // at 20 past the half hour holds the whole batch, twice its pro rata share (and more
        // than the threshold without its three busiest minutes); the baseline has learned that
        // the hours are spent in their first minutes
        let d = Detectors::default();
        let now = T0 / HOUR_MS;
        let batch = |size: u32| {
            move |h: i64, m: i64| match (m < 20, h == now) {
                (false, _) => 0,
                (true, false) => 6,
                (true, true) => size,
            }
        };
        let v = verdict(&lived(20, batch(6), &d), 20, &d);
        assert!(matches!(v, Verdict::Clear(_)), "{v:?}");
        // a batch four times the usual is a jump at once
        let v = verdict(&lived(20, batch(24), &d), 20, &d);
        assert!(matches!(v, Verdict::Fire(r) if r.ratio > 3.0), "{v:?}");
    }

    #[test]
    fn a_half_hours_calls_alone_prove_nothing() {
        // seven times the usual calls of a heavy-tailed client for half an hour: 28 calls where
        // 4 are usual is far beyond Poisson's chance, but such a client's calls swing hour to
        // hour, and its units do not show the excess; the hour's calls (32 against 8) prove it
        let d = Detectors::default();
        let c = with_baseline(-30, 7, &d);
        let v = verdict(&c, 0, &d);
        assert!(
            matches!(v, Verdict::Fire(r) if r.window >= HOUR_MS),
            "{v:?}"
        );
    }

    #[test]
    fn silent_until_the_longest_window_is_clear_of_the_first_week() {
        let d = Detectors::default();
        let jump = || heavy_tailed(-240, 3);
        // a first week from a midnight, and the weekday factors it set two hours ago: the
        // six-hour window holds four hours of the week they were fitted to
        let midnight = (T0 / HOUR_MS).div_euclid(24) * 24 - 7 * 24;
        let c = learned(jump(), midnight..midnight + 7 * 24 + 2, &d);
        assert!(c.baseline.is_warm(&d.baseline));
        let v = d.baseline_jump.verdicts(&c, T0, &d.shared, &d.baseline);
        assert!(v.is_none(), "{v:?}");
        // six hours after, it judges
        let c = learned(jump(), midnight..midnight + 7 * 24 + 6, &d);
        let v = d.baseline_jump.verdicts(&c, T0, &d.shared, &d.baseline);
        assert!(matches!(v, Some([Verdict::Fire(_), _])), "{v:?}");
    }
}
