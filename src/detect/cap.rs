//! `cap_exceeded` and `cap_forecast`: a contracted client's month against its `monthly_cap`.
//!
//! `cap_exceeded` (critical) compares the month's units so far with the cap; `cap_forecast`
//! (warning) adds the pace until month end: the `pace_window` average while the client is new (no
//! more than its learned level, once it has one, while no volume alert fires), then the learned
//! baseline's usual pace, or, when the last day (or, in calls too, the last 6 hours) is
//! significantly above its usual, that pace, so a pace change shows within hours, not days (once
//! the forecast fires, while above its usual at all), and an overage that ended leaves the forecast
//! within a day, not a week; within hours where a volume alert resolved on it (the day is then the
//! hours since, a new pace once there are six). The usual of a span is as the client spends its
//! hours (an hourly batch job's in their first minutes), and the last 6 hours' is that of the five
//! whole hours and the hour in progress their window holds (a firing forecast's day's too: 23 whole
//! hours and the hour in progress). A new pace is no larger than the window's calls show, the day's
//! where units are heavy-tailed (a few large calls are no pace). A forecast fires only if the month
//! reaches the cap at two standard errors under its pace, usual or new, and at the usual pace it
//! clears two usual days under the cap.
//!
//! Client state read: the monthly usage totals ([`crate::client::Usage`]), the minute ring (to
//! take out events ahead of `t`), the windows, `first_seen` and the learned baseline.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{About, Context, Detector, InvalidSetting, Shared, Verdicts};
use crate::alert::{fmt_units, AlertKind, Reading, Severity, Verdict};
use crate::baseline::BaselineParams;
use crate::client::Client;
use crate::config::{ms, DetectConfig};
use crate::time::{month_label, month_of, month_start, Millis, DAY_MS, HOUR_MS};
use crate::window::is_supported_window;

/// `[detect.cap]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapConfig {
    pub enabled: bool,
    /// Raise `cap_forecast` when the month's projected total reaches `forecast_at ×` the cap.
    pub forecast_at: f64,
    /// Until the client's baseline is warm, the pace is the average rate over this window
    /// (whole days, up to 7d; no higher than the level learned so far while no volume alert
    /// fires); then the baseline's usual pace, or the last day's when it is significantly
    /// above its usual.
    #[serde(with = "humantime_serde")]
    pub pace_window: Duration,
    /// No forecast for clients seen for less than this.
    #[serde(with = "humantime_serde")]
    pub min_history: Duration,
}

impl Default for CapConfig {
    fn default() -> Self {
        CapConfig {
            enabled: true,
            forecast_at: 1.0,
            pace_window: Duration::from_secs(7 * 24 * 3600),
            min_history: Duration::from_secs(24 * 3600),
        }
    }
}

impl CapConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let pace = ms(self.pace_window);
        if !(is_supported_window(pace) && pace % crate::time::DAY_MS == 0) {
            return Err(InvalidSetting::new(
                "detect.cap.pace_window",
                "must be whole days, 1d to 7d",
            ));
        }
        Ok(())
    }
}

/// In the hours since a volume episode ended, a new pace is at least this many times their
/// usual, as well as 3σ over it: an hour 22% over its usual right after a 3x day is 3σ on a busy
/// client, and forecast its month over the cap again 20 minutes after the forecast resolved.
/// (Asked of the last day too, it put cap exhaustions 1-13 h later: a 2.5x pace fills its day
/// to 1.5x the usual only in the day's later hours.)
const NEW_PACE_RATIO: f64 = 1.5;

/// The last hours a new pace is also read from: they show a pace change hours before the day
/// does (the day's window is mostly the old pace for hours, and the level learns part of the
/// new one): a 3x pace on a heavy-tailed client took 12 h to be 3σ over its day.
const RECENT_SPAN: Millis = 6 * HOUR_MS;
/// Those hours' excess must show in calls too, significant at this level (one-sided Poisson)
/// as well as [`NEW_PACE_RATIO`]x their usual calls: a few heavy-tailed calls swing six hours
/// far more than the compound Poisson σ tells, and without the calls 92 false forecasts
/// fired on three fleets of 300 clients.
const RECENT_CALLS_ALPHA: f64 = 0.001;

/// A forecast at the usual pace clears this many usual days under the cap.
const USUAL_DAYS_MARGIN: f64 = 2.0;

/// A forecast at the usual pace fires only if the month still reaches the cap at the usual
/// pace less this many standard errors of it. The usual pace is the learned level, a moving
/// average over about two days: on a client of a dozen calls a day that is ±12%, and a
/// month heading for 83% of its cap was forecast at 105% after two busy days.
const USUAL_PACE_SIGMAS: f64 = 2.0;

/// The same for a new pace (a day's or the last hours', in units and, for the hours and a
/// heavy-tailed client's day, in calls too): being significantly above the usual does not make
/// it known to within what blows the cap. Seed 6's `fleet-0176`, about 550 units a day against
/// a cap of 30,000 a month, made 1,300 in a day of 24 calls, and was forecast at that pace.
const NEW_PACE_SIGMAS: f64 = 2.0;

#[derive(Debug, Clone)]
pub struct Cap {
    pub enabled: bool,
    pub forecast_at: f64,
    /// The pace window, in milliseconds.
    pub pace: Millis,
    pub min_history: Millis,
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

impl Cap {
    /// `cap_exceeded`: this month's units against the cap. `window` is the month's start.
    pub fn exceeded(&self, c: &Client, t: Millis, cap: f64) -> Verdict {
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

    /// Where `c`'s month is heading as of `t`: the one projection `cap_forecast` fires on and
    /// usage reports draw (`report --events` through the engine, `report --url` through the
    /// service's client view), so a report never disagrees with the alert. `None` while the
    /// client is too new for a pace.
    pub fn project(&self, c: &Client, t: Millis, baseline: &BaselineParams) -> Option<Projection> {
        self.project_firmly(c, t, baseline).map(|(p, _)| p)
    }

    /// [`Cap::project`], and the pace less its uncertainty that a forecast fires on (see
    /// [`USUAL_PACE_SIGMAS`] and [`NEW_PACE_SIGMAS`]).
    fn project_firmly(
        &self,
        c: &Client,
        t: Millis,
        baseline: &BaselineParams,
    ) -> Option<(Projection, f64)> {
        let history = t - c.first_seen;
        if history < self.min_history {
            return None;
        }
        let month = month_of(t - 1);
        let used = used_before(c, month, t);
        let month_end = month_start(month + 1);
        // Once the baseline is warm, the month goes on at the client's usual pace: a window's
        // average holds an overage for as long as the window (a 72h jump kept a week's pace,
        // and its forecast, high for days after it ended), and the baseline learns no
        // incident. A pace change shows in the last day against the baseline's usual for it
        // within hours, without mistaking a busy weekday or the afternoon peak for a new pace
        // (the baseline knows those). Only a day significantly above the usual counts (3σ,
        // compound Poisson), so a heavy-tailed day is not a new pace.
        // (and the pace less its uncertainty, that a forecast fires on)
        // (the learned level, per millisecond)
        let level = c.baseline.level() as f64 / crate::time::MINUTE_MS as f64;
        let (pace, firm_pace, at_usual_pace) = if c.baseline.is_warm(baseline) {
            // (the last day, or, where a volume episode ended within it and none is going on,
            // the span since: the day's window holds an ended overage for a day, and kept its
            // forecast firing that long)
            let span = match c.baseline.incident_ended(t) {
                Some(ended) if !c.volume_alert_firing() => {
                    super::volume::since_window(t - ended, DAY_MS)
                }
                _ => DAY_MS,
            };
            let firing = c.last_fire(AlertKind::CapForecast).is_some();
            // Once the forecast fires, a day still above its usual keeps its pace: the 3σ gate
            // alone let a forecast near the cap switch between the two paces as the day's
            // significance crossed it, resolving and firing again within the hour. The hours
            // since an episode must also be a new pace's size: a few hours are noisier than a
            // day, beyond what the compound Poisson σ tells.
            let (sigmas, ratio) = if firing {
                (0.0, 1.0)
            } else if span < DAY_MS {
                (3.0, NEW_PACE_RATIO)
            } else {
                (3.0, 1.0)
            };
            let factor = c.units.factor();
            // (the usual as the client spends its hours: pro rata, the first minutes of an hour
            // of an hourly batch job hold its whole batch against a tenth of it)
            let usual_over = |dur: Millis| {
                c.baseline
                    .expected_in_hours(t, dur, baseline, |from| c.windows.sum(t, t - from).0)
            };
            // A window's `observed` units over `usual`, their usual over the `usual_span` before
            // `t`, if a new pace; and the same [`NEW_PACE_SIGMAS`] standard errors under it
            // (compound Poisson).
            let new_pace = |observed: f64, (usual, usual_span): (f64, Millis), sigmas, ratio| {
                // (and above the average day: a weekday whose factor a holiday taught low took
                // a normal day for a new pace of 2.4x, and forecast the month at that)
                (usual_span >= HOUR_MS
                    && usual > 0.0
                    && observed - usual > sigmas * (usual * factor).sqrt()
                    && observed > ratio * usual
                    && observed > level * usual_span as f64)
                    .then(|| {
                        let low = observed - NEW_PACE_SIGMAS * (observed * factor).sqrt();
                        (observed / usual, low.max(0.0) / usual)
                    })
            };
            // A new pace, and its low, no larger than the window's calls show against their
            // usual (Poisson): a few large calls swing a window's units far more than the
            // compound Poisson σ tells. Seed 5's `fleet-0224`, a heavy-tailed client at about
            // 70% of its cap, made 494 units in a day of 25 calls against 146 usual units (21
            // calls), and was forecast at 202% of its cap.
            let as_calls_show = |(units, low): (f64, f64), calls: f64, usual_calls: f64| {
                let calls_low = calls - NEW_PACE_SIGMAS * calls.sqrt();
                (
                    units.min(calls / usual_calls),
                    low.min(calls_low.max(0.0) / usual_calls),
                )
            };
            // (a day's window is 23 whole hours and the hour in progress. A firing forecast
            // reads it against the usual of what it covers, as the recent hours are: against a
            // whole day's, an hour's share low as each hour began, a forecast near the usual
            // fell back to the usual pace and resolved, to fire again within the hour. A new
            // one still reads it against a whole day's: so judged, on the held-out fleets, a
            // false forecast fewer)
            let (day_units, covered) = c.windows.sum(t, span);
            let day_span = if firing { covered } else { span };
            let day_usual = usual_over(day_span);
            // (the day's, for heavy-tailed units: light ones tell a day's pace by themselves)
            // (the hours since an episode are a new pace to fire on once there are as many as
            // the recent hours': the usual of a few hours is known less well than a day's, and
            // two night hours at 2.2x a usual learned low forecast seed 4's `fleet-0078` at
            // 193% of its cap three hours after its overage ended)
            let too_short = !firing && span < RECENT_SPAN;
            let day = new_pace(day_units, (day_usual, day_span), sigmas, ratio)
                .filter(|_| !too_short)
                .map(|pace| {
                    if c.units.heavy(factor) {
                        let calls = c.windows.calls(t, span);
                        as_calls_show(pace, calls, day_usual / c.units.mean().max(1e-9))
                    } else {
                        pace
                    }
                });
            // The recent hours, as a new pace no larger than their calls show. Not where an
            // episode ended within the day (the hours since are the span then), nor to fire
            // while a volume alert is firing: its episode pages already, and an overage under
            // the contract at night forecast its month again on its last morning. Once the
            // forecast fires, they keep its pace while above their usual at all, as the day
            // does (the day's pace alone resolved it within minutes of firing on them).
            let recent = if span == DAY_MS && (firing || !c.volume_alert_firing()) {
                // (against the usual of what the window covers, five whole hours and the hour in
                // progress: against six hours' usual it read a sixth low as each hour began, and
                // a firing forecast on them resolved and fired again, hour after hour)
                let (recent_units, covered) = c.windows.sum(t, RECENT_SPAN);
                let usual = usual_over(covered);
                let usual_calls = usual / c.units.mean().max(1e-9);
                let calls = c.windows.calls(t, RECENT_SPAN);
                let (sigmas, ratio) = if firing {
                    (0.0, 1.0)
                } else {
                    (3.0, NEW_PACE_RATIO)
                };
                new_pace(recent_units, (usual, covered), sigmas, ratio)
                    .filter(|_| {
                        calls > ratio * usual_calls
                            && (firing
                                || super::stats::significant(
                                    calls,
                                    usual_calls,
                                    1.0,
                                    RECENT_CALLS_ALPHA,
                                ))
                    })
                    .map(|pace| as_calls_show(pace, calls, usual_calls))
            } else {
                None
            };
            match (day, recent) {
                (None, None) => {
                    let se = Self::usual_pace_se(c, level, baseline);
                    (level, level - se * USUAL_PACE_SIGMAS, true)
                }
                (day, recent) => {
                    let (pace, low) = day.unwrap_or_default();
                    let (r_pace, r_low) = recent.unwrap_or_default();
                    (pace.max(r_pace) * level, low.max(r_low) * level, false)
                }
            }
        } else {
            let (recent, covered) = c.windows.sum(t, self.pace);
            let mut pace = recent / covered.min(history).max(1) as f64;
            // (no more than the level the baseline has learned, once it has one, while no
            // volume alert fires: the window's average holds an ended overage for as long as
            // the window, and learning stops while it fires. Seed 6's `fleet-0279`, not yet warm
            // after a 3-day 4x overage, was forecast at 150% of its cap on the first of the
            // month, 19 hours after the overage ended, until the baseline warmed a day later)
            if c.baseline.has_shape() && !c.volume_alert_firing() {
                pace = pace.min(level);
            }
            (pace, pace, false)
        };
        let mut projection = Projection {
            at: t,
            month_end,
            used,
            pace_per_ms: pace,
            at_usual_pace,
            projected: 0.0,
        };
        projection.projected = projection.projected_at(pace);
        Some((projection, firm_pace))
    }

    /// `cap_forecast`: month to date plus the recent pace until month end ([`Cap::project`]),
    /// against the cap. `None` while the client is too new for a pace.
    pub fn forecast(
        &self,
        c: &Client,
        t: Millis,
        cap: f64,
        shared: &Shared,
        baseline: &BaselineParams,
    ) -> Option<Verdict> {
        let (projection, firm_pace) = self.project_firmly(c, t, baseline)?;
        let firm = projection.projected_at(firm_pace);
        let r = Reading {
            observed: projection.projected,
            expected: cap,
            ratio: projection.projected / cap,
            window: month_start(month_of(t - 1)),
            item: None,
        };
        // At the usual pace the projection moves only as days differ from the average day (a
        // week of busy weekdays moves it by about a day's units), so two usual days under the
        // cap is margin enough against flapping. The volume alerts' 90% hold band kept a month
        // heading for 93% of its cap, ten days before its end, firing until the month ended.
        let well_under = projection.at_usual_pace
            && projection.projected + USUAL_DAYS_MARGIN * projection.pace_per_ms * (DAY_MS as f64)
                < self.forecast_at * cap;
        Some(if firm >= self.forecast_at * cap {
            Verdict::Fire(r)
        } else if r.ratio >= self.forecast_at * shared.resolve_ratio && !well_under {
            Verdict::Hold(r)
        } else {
            Verdict::Clear(r)
        })
    }

    /// Standard error of a usual pace (per millisecond): the level is an exponentially weighted
    /// average of hourly readings (weight `alpha_level`), each a compound Poisson count, so its
    /// variance is about `α/(2-α)` of an hour's (units per hour times units per effective
    /// event). Quiet hours are weighted less, which makes this an overestimate there.
    fn usual_pace_se(c: &Client, pace_per_ms: f64, baseline: &BaselineParams) -> f64 {
        let a = baseline.alpha_level as f64;
        let per_hour = pace_per_ms * HOUR_MS as f64;
        (a / (2.0 - a) * per_hour * c.units.factor()).sqrt() / HOUR_MS as f64
    }
}

/// A client's month as [`Cap::project`] sees it at one evaluated minute.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// The evaluated minute boundary it was made at, and the end of its month.
    pub at: Millis,
    pub month_end: Millis,
    /// Units used in the month before `at`.
    pub used: f64,
    /// The pace the rest of the month is projected at (units per millisecond).
    pub pace_per_ms: f64,
    /// The pace is the client's learned usual, not a new one (nor, while the client is new, a
    /// window's average).
    #[serde(default)]
    pub at_usual_pace: bool,
    /// The month's total at that pace.
    pub projected: f64,
}

impl Projection {
    /// The month's total at a pace (per millisecond, floored at zero).
    fn projected_at(&self, pace_per_ms: f64) -> f64 {
        self.used + pace_per_ms.max(0.0) * (self.month_end - self.at).max(0) as f64
    }

    /// When `cap` runs out at this pace, if it does before the month ends (to the minute).
    pub fn exhausted_at(&self, cap: f64) -> Option<Millis> {
        if self.used >= cap || self.pace_per_ms <= 0.0 || self.projected <= cap {
            return None;
        }
        let t = self.at + ((cap - self.used) / self.pace_per_ms) as Millis;
        Some(t.div_euclid(crate::time::MINUTE_MS) * crate::time::MINUTE_MS)
    }
}

impl Detector for Cap {
    fn new(d: &DetectConfig) -> Self {
        Cap {
            enabled: d.cap.enabled,
            forecast_at: d.cap.forecast_at,
            pace: ms(d.cap.pace_window),
            min_history: ms(d.cap.min_history),
        }
    }

    fn kinds(&self) -> &'static [AlertKind] {
        &[AlertKind::CapExceeded, AlertKind::CapForecast]
    }

    fn evaluate(&self, cx: &Context<'_>, out: &mut Verdicts) {
        let Some(cap) = cx.contract.and_then(|k| k.monthly_cap) else {
            return;
        };
        if !self.enabled {
            return;
        }
        let (c, t) = (cx.client, cx.t);
        out.push((
            AlertKind::CapExceeded,
            Severity::Critical,
            self.exceeded(c, t, cap),
        ));
        if let Some(v) = self.forecast(c, t, cap, cx.shared, cx.baseline) {
            out.push((AlertKind::CapForecast, Severity::Warning, v));
        }
    }

    fn summary(&self, kind: AlertKind, a: &About<'_>) -> (String, String) {
        let r = a.reading;
        let month = month_label(month_of(r.window));
        let summary = if kind == AlertKind::CapExceeded {
            format!(
                "{} has used {} units in {month}, over its monthly cap of {}",
                a.client_id,
                fmt_units(r.observed),
                fmt_units(r.expected)
            )
        } else {
            format!(
                "{} is on pace for {} units in {month}, {:.0}% of its monthly cap of {}",
                a.client_id,
                fmt_units(r.observed),
                r.ratio * 100.0,
                fmt_units(r.expected)
            )
        };
        (month, summary)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{client_with, T0};
    use super::super::Detectors;
    use super::*;
    use crate::time::{DAY_MS, HOUR_MS, MINUTE_MS};

    #[test]
    fn cap_forecast_projects_pace_to_month_end() {
        let p = Detectors::default();
        let cap_forecast = |c: &Client, t, cap| p.cap.forecast(c, t, cap, &p.shared, &p.baseline);
        // 10 calls of 10 units a minute for two days: 144,000 units a day
        let mut c = client_with(&[(-48 * 60, 0, 10)]);
        c.first_seen = T0 - 48 * HOUR_MS;
        c.usage.add(T0 - 1, 144_000.0);
        let month = month_of(T0 - 1);
        let days_left = (month_start(month + 1) - T0) as f64 / (24 * HOUR_MS) as f64;
        let projected = 144_000.0 + 144_000.0 * days_left;
        let v = cap_forecast(&c, T0, projected * 0.95).unwrap();
        assert!(
            matches!(v, Verdict::Fire(r) if (r.observed - projected).abs() / projected < 0.01),
            "{v:?}"
        );
        let v = cap_forecast(&c, T0, projected * 1.5).unwrap();
        assert!(matches!(v, Verdict::Clear(_)), "{v:?}");
        c.first_seen = T0 - HOUR_MS;
        assert!(cap_forecast(&c, T0, 1.0).is_none(), "too new for a pace");
    }

    /// Two weeks of a call of 10 units a minute, learned as the service would, with `units(ts)`
    /// (no call where it is 0).
    fn learned(p: &Detectors, units: impl Fn(Millis) -> f64) -> Client {
        learned_until(p, T0, units)
    }

    /// [`learned`], the two weeks ending at `end`.
    fn learned_until(p: &Detectors, end: Millis, units: impl Fn(Millis) -> f64) -> Client {
        learned_calls(p, end, |ts| {
            let u = units(ts);
            (u32::from(u > 0.0), u)
        })
    }

    /// Two weeks ending at `end` of `calls(ts)`: so many calls a minute, of so many units each.
    fn learned_calls(p: &Detectors, end: Millis, calls: impl Fn(Millis) -> (u32, f64)) -> Client {
        let start = end - 15 * DAY_MS;
        let mut c = Client::new(std::sync::Arc::from("c"), Some(0), start);
        for m in 0..15 * 24 * 60 {
            let ts = start + m * MINUTE_MS;
            let (n, u) = calls(ts);
            feed_minute(&mut c, ts, n, u, p);
        }
        assert!(c.baseline.is_warm(&p.baseline));
        c
    }

    /// `n` calls of `u` units in the minute starting at `ts`, and that minute evaluated's
    /// preparation (the baseline learns each hour as it completes), as the service does.
    fn feed_minute(c: &mut Client, ts: Millis, n: u32, u: f64, p: &Detectors) {
        for _ in 0..n {
            c.windows.add(ts, u as f32);
            c.units.add(ts, u);
            c.usage.add(ts, u);
        }
        let boundary = ts / MINUTE_MS + 1;
        c.sched.schedule(boundary);
        c.prepare(boundary, p);
    }

    /// A warning of `kind` firing since `since`.
    fn firing(kind: AlertKind, since: Millis) -> crate::alert::Slot {
        let r = Reading {
            observed: 0.0,
            expected: 0.0,
            ratio: 0.0,
            window: 0,
            item: None,
        };
        let mut s = crate::alert::Slot::new(kind, Severity::Warning, r);
        s.firing_since = Some(since);
        s
    }

    #[test]
    fn an_overage_that_ended_leaves_the_pace_at_the_usual_not_the_weeks_average() {
        // six hours at 10x, over 30 hours before T0: still in the week, no longer in the day
        let p = Detectors::default();
        let burst = T0 - 36 * HOUR_MS..T0 - 30 * HOUR_MS;
        let c = learned(&p, |ts| if burst.contains(&ts) { 100.0 } else { 10.0 });
        let pace = p.cap.project(&c, T0, &p.baseline).unwrap().pace_per_ms * MINUTE_MS as f64;
        // the week's average is 13.2 units a minute; the usual, 10 and what the baseline
        // learned of the burst, clipped at twice the usual (in the service, nothing: learning
        // stops while a volume alert fires)
        assert!((10.0..12.0).contains(&pace), "{pace}");
    }

    #[test]
    fn a_new_clients_overage_that_ended_leaves_its_pace_at_the_level_learned_outside_it() {
        // four days of a 10-unit call a minute, the second at five calls a minute with an
        // `over_contract` firing (learning stops): too new for a warm baseline, old enough for
        // a level
        let p = Detectors::default();
        let start = T0 - 4 * DAY_MS;
        let episode = start + DAY_MS..start + 2 * DAY_MS;
        let client = |ended: bool| {
            let mut c = Client::new(std::sync::Arc::from("c"), Some(0), start);
            for m in 0..4 * 24 * 60 {
                let ts = start + m * MINUTE_MS;
                if ts == episode.start {
                    c.alerts.push(firing(AlertKind::OverContract, ts));
                }
                if ended && ts == episode.end {
                    c.resolve(0, ts);
                }
                let n = if episode.contains(&ts) { 5 } else { 1 };
                feed_minute(&mut c, ts, n, 10.0, &p);
            }
            c
        };
        let pace = |c: &Client| {
            let pr = p.cap.project(c, T0, &p.baseline).unwrap();
            (pr.pace_per_ms * MINUTE_MS as f64, pr.at_usual_pace)
        };
        let c = client(true);
        assert!(!c.baseline.is_warm(&p.baseline) && c.baseline.has_shape());
        // the window's average is 20 units a minute: it forecast the month at twice the pace
        // for a week after the overage ended
        let (after, usual) = pace(&c);
        assert!((9.0..11.0).contains(&after) && !usual, "{after}");
        // while it still fires, the window's average it is
        let (during, _) = pace(&client(false));
        assert!((19.0..21.0).contains(&during), "{during}");
    }

    #[test]
    fn a_volume_episode_that_resolved_is_not_read_as_the_days_pace() {
        // six hours at 10x, ended three hours before T0
        let p = Detectors::default();
        let burst = T0 - 9 * HOUR_MS..T0 - 3 * HOUR_MS;
        let mut c = learned(&p, |ts| if burst.contains(&ts) { 100.0 } else { 10.0 });
        let pace =
            |c: &Client| p.cap.project(c, T0, &p.baseline).unwrap().pace_per_ms * MINUTE_MS as f64;
        // nothing alerted on it: a new pace, as far as anyone knows (the day's 32.5 units a
        // minute)
        let day = pace(&c);
        assert!(day > 25.0, "{day}");
        // an `over_contract` alert on it resolved at its end: the hours since are the client's
        // pace, its usual. (Its alert was last over its threshold in the burst's first hour and
        // held in its band since: where it was last over is not where the burst ended.)
        let mut s = firing(AlertKind::OverContract, burst.start);
        s.last_fire = burst.start + HOUR_MS;
        c.alerts.push(s);
        c.resolve(0, burst.end);
        // (to the hour after it)
        assert_eq!(c.baseline.incident_ended(T0), Some(burst.end + HOUR_MS));
        assert_eq!(
            c.baseline.incident_ended(T0 + DAY_MS),
            None,
            "a day later, the day's window is clean"
        );
        let after = pace(&c);
        assert!((10.0..12.5).contains(&after), "{after}");
    }

    #[test]
    fn the_hours_after_an_episode_are_a_new_pace_only_at_a_new_paces_size() {
        // a day at 2x, ended `ago` before T0, its `over_contract` resolved
        let p = Detectors::default();
        let pace = |c: &Client| p.cap.project(c, T0, &p.baseline).unwrap();
        let client = |after: f64, ago: Millis| {
            let episode = T0 - ago - DAY_MS..T0 - ago;
            let mut c = learned(&p, |ts| {
                if episode.contains(&ts) {
                    20.0
                } else if ts >= episode.end {
                    after
                } else {
                    10.0
                }
            });
            c.alerts
                .push(firing(AlertKind::OverContract, episode.start));
            c.resolve(0, episode.end - MINUTE_MS);
            c
        };
        // 43% over the usual in the six hours since: over it by 3σ, but no new pace (one such
        // hour after a 3x day forecast the month over its cap again, 20 minutes after it had
        // resolved)
        let c = client(15.5, RECENT_SPAN);
        assert_eq!(c.baseline.incident_ended(T0), Some(T0 - RECENT_SPAN));
        let usual = c.baseline.expected(T0, RECENT_SPAN, &p.baseline);
        let observed = c.windows.sum(T0, RECENT_SPAN).0;
        assert!(
            observed - usual > 3.0 * (usual * c.units.factor()).sqrt() && observed < 1.5 * usual,
            "{observed} against {usual}, {} a call",
            c.units.factor()
        );
        assert!(pace(&c).at_usual_pace, "{:?}", pace(&c));
        // twice the usual since: a new pace
        let c = client(20.0, RECENT_SPAN);
        assert!(
            !pace(&c).at_usual_pace && pace(&c).pace_per_ms * MINUTE_MS as f64 > 15.0,
            "{:?}",
            pace(&c)
        );
        // but not in the first hours since: too few to tell a pace
        let c = client(20.0, 2 * HOUR_MS);
        assert!(pace(&c).at_usual_pace, "{:?}", pace(&c));
    }

    #[test]
    fn a_day_under_the_average_day_is_no_new_pace() {
        // Weekends at 0.35 of the weekdays' calls; then the last day, a Sunday, holds 0.75 of
        // a weekday's units: over twice its usual, but under the average day. A weekday factor
        // a holiday taught low looks the same: a normal day read as a new pace of 2.4x, and
        // the month forecast at that.
        let p = Detectors::default();
        let weekday = |ts: Millis| crate::time::day_of_week(ts.div_euclid(HOUR_MS));
        // the last midnight before T0 that ends a Sunday
        let mut end = T0 - T0 % DAY_MS;
        while weekday(end - 1) != 6 {
            end -= DAY_MS;
        }
        let mut c = learned_until(&p, end, |ts| {
            let share = if weekday(ts) >= 5 { 7 } else { 20 };
            if ts / MINUTE_MS % 20 < share {
                10.0
            } else {
                0.0
            }
        });
        let usual = c.baseline.expected(end, DAY_MS, &p.baseline);
        let level = c.baseline.level() as f64;
        // (units a minute)
        let pace = |c: &Client, t| {
            p.cap.project(c, t, &p.baseline).unwrap().pace_per_ms * MINUTE_MS as f64
        };
        // the Sunday's units raised from 0.35 to 0.75 of a weekday's, in its afternoon
        for m in 0..(0.4 * 14_400.0 / 10.0) as i64 {
            c.windows.add(end - 12 * HOUR_MS + m * MINUTE_MS / 2, 10.0);
        }
        let observed = c.windows.sum(end, DAY_MS).0;
        assert!(
            observed > 2.0 * usual,
            "{observed} against its usual {usual}"
        );
        assert!(
            observed < level * 1440.0,
            "{observed} against {level} a minute"
        );
        assert!(
            pace(&c, end) < 1.05 * level,
            "{} against the usual {level}",
            pace(&c, end)
        );
        // a day over the average day, as far over its usual: a new pace
        for m in 0..(0.5 * 14_400.0 / 10.0) as i64 {
            c.windows.add(end - 6 * HOUR_MS + m * MINUTE_MS / 4, 10.0);
        }
        assert!(
            pace(&c, end) > 2.0 * level,
            "{} against the usual {level}",
            pace(&c, end)
        );
    }

    #[test]
    fn a_forecast_at_the_usual_pace_clears_a_few_usual_days_under_the_cap() {
        let p = Detectors::default();
        let verdict = |c: &Client, share_of_cap: f64| {
            let projected = p.cap.project(c, T0, &p.baseline).unwrap().projected;
            p.cap
                .forecast(c, T0, projected / share_of_cap, &p.shared, &p.baseline)
                .unwrap()
        };
        let c = learned(&p, |_| 10.0);
        assert!(p.cap.project(&c, T0, &p.baseline).unwrap().at_usual_pace);
        // 92% of the cap, 20 days before the month ends (2.2 usual days under it): over; the
        // hold band of the volume alerts (90%) kept it firing until the month ended
        assert!(matches!(verdict(&c, 0.92), Verdict::Clear(_)));
        // within two usual days of the cap: held
        let day = 10.0 * 1440.0;
        let cap = p.cap.project(&c, T0, &p.baseline).unwrap().projected + 1.5 * day;
        assert!(matches!(
            p.cap.forecast(&c, T0, cap, &p.shared, &p.baseline),
            Some(Verdict::Hold(_))
        ));
        // and at a new pace (the last day at 3x), 92% is held as before
        let c = learned(&p, |ts| if ts >= T0 - DAY_MS { 30.0 } else { 10.0 });
        assert!(!p.cap.project(&c, T0, &p.baseline).unwrap().at_usual_pace);
        assert!(matches!(verdict(&c, 0.92), Verdict::Hold(_)));
    }

    #[test]
    fn a_forecast_at_the_usual_pace_fires_only_where_the_pace_is_known_well_enough() {
        let p = Detectors::default();
        let verdict = |c: &Client, share_of_cap: f64| {
            let projection = p.cap.project(c, T0, &p.baseline).unwrap();
            assert!(projection.at_usual_pace);
            p.cap
                .forecast(
                    c,
                    T0,
                    projection.projected / share_of_cap,
                    &p.shared,
                    &p.baseline,
                )
                .unwrap()
        };
        // a call a minute of 10 units: its usual pace is known to about 1%, and a month
        // heading for 105% of the cap is forecast over it
        let busy = learned(&p, |_| 10.0);
        assert!(matches!(verdict(&busy, 1.05), Verdict::Fire(_)));
        // a call of one unit every two hours: its usual pace, a two-day average of a dozen
        // calls a day, is known to about 14%; 105% is held (were it firing), not fired
        let sparse = learned(&p, |ts| {
            if (ts / MINUTE_MS) % 120 == 0 {
                1.0
            } else {
                0.0
            }
        });
        assert!(matches!(verdict(&sparse, 1.05), Verdict::Hold(_)));
        // and well over the cap, it fires
        assert!(matches!(verdict(&sparse, 1.6), Verdict::Fire(_)));
    }

    #[test]
    fn a_new_pace_fires_only_where_it_is_known_well_enough() {
        let p = Detectors::default();
        // 10-unit calls every 30 minutes for two weeks, then a day of one every 10: a new
        // pace, significantly (144 calls against 48), but a day's 144 calls tell it to about
        // 8%, so a month that pace takes to 105% of the cap may well stay under it
        let c = learned_calls(&p, T0, |ts| {
            let every = if ts >= T0 - DAY_MS { 10 } else { 30 };
            (u32::from((ts / MINUTE_MS) % every == 0), 10.0)
        });
        let projection = p.cap.project(&c, T0, &p.baseline).unwrap();
        assert!(!projection.at_usual_pace, "{projection:?}");
        let verdict = |share_of_cap: f64| {
            let cap = projection.projected / share_of_cap;
            p.cap.forecast(&c, T0, cap, &p.shared, &p.baseline).unwrap()
        };
        assert!(
            matches!(verdict(1.05), Verdict::Hold(_)),
            "{:?}",
            verdict(1.05)
        );
        assert!(
            matches!(verdict(1.6), Verdict::Fire(_)),
            "{:?}",
            verdict(1.6)
        );
    }

    #[test]
    fn a_new_pace_shows_in_the_recent_hours_where_their_calls_show_it_too() {
        let p = Detectors::default();
        // (against the 10 units a minute before the change: the level has learned part of it)
        let pace = |c: &Client| {
            let projection = p.cap.project(c, T0, &p.baseline).unwrap();
            projection.pace_per_ms * MINUTE_MS as f64 / 10.0
        };
        let lately = |ts: Millis| ts >= T0 - 3 * HOUR_MS;
        // three calls of 10 units a minute for the last three hours, where one was usual: the
        // day reads 1.25x the old pace, the last six hours 2x (a little less of each against
        // a baseline that has learned part of the change)
        let c = learned_calls(&p, T0, |ts| (if lately(ts) { 3 } else { 1 }, 10.0));
        assert!(pace(&c) > 1.6, "{}", pace(&c));
        // the same units in as many calls as ever (30 units a call): a heavy tail's swing as
        // far as the calls tell, so only the day's pace
        let c = learned_calls(&p, T0, |ts| (1, if lately(ts) { 30.0 } else { 10.0 }));
        assert!(pace(&c) < 1.3, "{}", pace(&c));
        // and while a volume alert is firing, the recent hours do not make a new forecast
        let mut c = learned_calls(&p, T0, |ts| (if lately(ts) { 3 } else { 1 }, 10.0));
        c.alerts
            .push(firing(AlertKind::OverContract, T0 - 3 * HOUR_MS));
        assert!(pace(&c) < 1.3, "{}", pace(&c));
    }

    #[test]
    fn a_heavy_tailed_day_is_a_new_pace_only_as_far_as_its_calls_show() {
        let p = Detectors::default();
        // (the pace against the units a minute before the day)
        let pace = |c: &Client, usual: f64| {
            let projection = p.cap.project(c, T0, &p.baseline).unwrap();
            projection.pace_per_ms * MINUTE_MS as f64 / usual
        };
        let today = |ts: Millis| ts >= T0 - DAY_MS;
        // a call a minute of 1 to 40 units (a heavy tail: the mean is 9.8), then a day of
        // calls three times that size: significantly over the usual by the compound Poisson
        // test, but what a heavy tail's few large calls do to a day's units, in as many calls
        // as ever (the usual pace then, which has learned a little of that day)
        let sizes = [1.0, 2.0, 3.0, 5.0, 8.0, 40.0];
        let size = |ts: Millis| sizes[(ts / MINUTE_MS % 6) as usize];
        let c = learned_calls(&p, T0, |ts| {
            (1, size(ts) * if today(ts) { 3.0 } else { 1.0 })
        });
        assert!(c.units.heavy(c.units.factor()));
        assert!(pace(&c, 9.83) < 1.3, "{}", pace(&c, 9.83));
        // the same day in three times the calls: that pace
        let c = learned_calls(&p, T0, |ts| (if today(ts) { 3 } else { 1 }, size(ts)));
        assert!(pace(&c, 9.83) > 2.5, "{}", pace(&c, 9.83));
        // light units tell a day's pace by themselves: every call 10 units, then 30
        let c = learned_calls(&p, T0, |ts| (1, if today(ts) { 30.0 } else { 10.0 }));
        assert!(pace(&c, 10.0) > 2.5, "{}", pace(&c, 10.0));
    }

    /// Two minutes into an hour, the recent hours' window is five whole hours and those two
    /// minutes. Read against six hours' usual, a pace 14% over the usual for the last five
    /// hours read 4% under it, so a forecast firing on that pace resolved as each hour began
    /// and fired again within it (seed 4's `fleet-0262` four times in eight hours).
    #[test]
    fn a_firing_forecast_on_the_recent_hours_keeps_their_pace_as_an_hour_begins() {
        let p = Detectors::default();
        let t = T0 + 2 * MINUTE_MS;
        // a call of 10 units a minute, and one more every seventh minute of the last 5 hours
        let mut c = learned_calls(&p, t, |ts| {
            let extra = ts >= T0 - 5 * HOUR_MS && (ts / MINUTE_MS) % 7 == 0;
            (1 + u32::from(extra), 10.0)
        });
        c.alerts.push(firing(AlertKind::CapForecast, T0 - HOUR_MS));
        let projection = p.cap.project(&c, t, &p.baseline).unwrap();
        assert!(!projection.at_usual_pace, "{projection:?}");
        let pace = projection.pace_per_ms * MINUTE_MS as f64 / 10.0;
        assert!(pace > 1.1, "{pace}");
    }

    /// The day's window, two minutes into an hour, is 23 whole hours and those two minutes. A
    /// day 3% over its usual (all of it before the last 6 hours, which are at their usual)
    /// read 1% under a whole day's usual, so a forecast firing on the day's pace fell back to
    /// the usual pace as each hour began and resolved, to fire again within the hour (seed 5's
    /// `fleet-0125` five times in two days). A firing forecast reads it against the usual of
    /// what it covers; a new one still against a whole day's.
    #[test]
    fn a_firing_forecast_on_the_days_pace_keeps_it_as_an_hour_begins() {
        let p = Detectors::default();
        let t = T0 + 2 * MINUTE_MS;
        // a call of 10 units a minute, and one more every 25th minute from a day to 6 hours ago
        let mut c = learned_calls(&p, t, |ts| {
            let busier = (T0 - DAY_MS..T0 - 6 * HOUR_MS).contains(&ts);
            (1 + u32::from(busier && (ts / MINUTE_MS) % 25 == 0), 10.0)
        });
        assert!(p.cap.project(&c, t, &p.baseline).unwrap().at_usual_pace);
        c.alerts.push(firing(AlertKind::CapForecast, T0 - HOUR_MS));
        let projection = p.cap.project(&c, t, &p.baseline).unwrap();
        assert!(!projection.at_usual_pace, "{projection:?}");
    }

    /// The same window on an hourly batch job (each hour's 60 calls in its first five
    /// minutes): five minutes into an hour it holds six batches, which pro rata are 1.18x
    /// their usual; as the client spends its hours, they are its usual (seed 3's
    /// `fleet-0212`, whose batches take 5-20 minutes, forecast its cap falsely at 17:05 on
    /// three days with the window read pro rata).
    #[test]
    fn a_batch_jobs_hour_just_begun_is_no_new_pace() {
        let p = Detectors::default();
        let t = T0 + 5 * MINUTE_MS;
        let mut c = learned_calls(&p, t, |ts| {
            (if (ts / MINUTE_MS) % 60 < 5 { 12 } else { 0 }, 10.0)
        });
        c.alerts.push(firing(AlertKind::CapForecast, T0 - HOUR_MS));
        let projection = p.cap.project(&c, t, &p.baseline).unwrap();
        let pace = projection.pace_per_ms * MINUTE_MS as f64 / 10.0;
        assert!(pace < 1.02, "{pace}");
    }

    #[test]
    fn a_firing_forecast_keeps_the_last_days_pace_while_the_day_is_over_its_usual() {
        // a last day 8% busier: above its usual, but not by 3σ
        let p = Detectors::default();
        let mut c = learned(&p, |ts| if ts >= T0 - DAY_MS { 10.8 } else { 10.0 });
        let pace =
            |c: &Client| p.cap.project(c, T0, &p.baseline).unwrap().pace_per_ms * MINUTE_MS as f64;
        let usual = pace(&c);
        // the usual, learning the busier day at the level's slow rate
        assert!((10.0..10.5).contains(&usual), "{usual}");
        c.alerts.push(firing(AlertKind::CapForecast, T0 - HOUR_MS));
        let day = pace(&c);
        assert!(day > 1.02 * usual, "{day} against {usual}");
    }
}
