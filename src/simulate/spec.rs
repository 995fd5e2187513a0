//! Client specifications: everything that determines one client's traffic, and the catalogue
//! (call mixes, origins, weekly shapes) that scenarios build clients from.
//!
//! A [`ClientSpec`] is the whole rate model of a client ([`ClientSpec::rate_at`]), shared by
//! planning (which sizes contracts and caps from it), fleet sampling (which measures when an
//! incident becomes detectable on it) and generation (which draws events from it), so it lives
//! on its own rather than with any one of them.

use std::sync::Arc;

use super::truth::Role;
use crate::time::{DAY_MS, HOUR_MS, MINUTE_MS};

/// Share of calls answered 200; the others (429, 4xx, 5xx) return no records.
pub(super) const OK_SHARE: f64 = 0.965;

/// How many records a call returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CallUnits {
    /// The client's own record-count distribution (search pages, timelines).
    Records,
    /// Exactly one (a lookup); half of such events omit `units`, relying on the default of 1.
    One,
}

/// One kind of call a client makes, with its share of the client's calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Call {
    pub product: &'static str,
    pub endpoint: &'static str,
    pub weight: f64,
    pub units: CallUnits,
}

/// Where calls come from: a country, its network, and a /16 to draw addresses from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Origin {
    pub country: &'static str,
    pub asn: u32,
    pub net: [u8; 2],
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContractSpec {
    pub plan: &'static str,
    pub units_per_hour: f64,
    pub monthly_cap: Option<f64>,
    pub products: Option<Vec<&'static str>>,
    pub endpoints: Option<Vec<&'static str>>,
    pub origin_countries: Option<Vec<&'static str>>,
}

/// Daily shape in the client's local time, peaking at 1.0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Diurnal {
    /// Smooth day/night cycle, lowest at 02:00 and highest at 14:00.
    Smooth { floor: f64 },
    /// Business-hours integration: a quick ramp at 08:00, flat until 17:00, then down.
    Office { floor: f64 },
}

impl Diurnal {
    fn at(self, local_hour: f64) -> f64 {
        match self {
            Diurnal::Smooth { floor } => {
                let x = (1.0 - ((local_hour - 2.0) / 24.0 * std::f64::consts::TAU).cos()) / 2.0;
                floor + (1.0 - floor) * x
            }
            Diurnal::Office { floor } => {
                let up = ((local_hour - 7.75) / 0.5).clamp(0.0, 1.0);
                let down = ((18.0 - local_hour) / 1.0).clamp(0.0, 1.0);
                floor + (1.0 - floor) * up.min(down)
            }
        }
    }
}

/// How a client's gateway writes `ts`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TsStyle {
    EpochMillis,
    Utc,
    /// RFC 3339 in a fixed local offset (minutes east of UTC).
    Offset(i32),
}

/// What changes, when, for a planted incident.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Consumption at `factor ×` the contracted rate, replacing the usual pattern.
    ContractMultiple { factor: f64 },
    /// The usual pattern times `factor`.
    Multiply { factor: f64 },
    /// The usual pattern times a multiplier growing linearly from `from` to `to` over
    /// `over_ms` (relative to contract: the client's usual level is `from`).
    Creep { from: f64, to: f64, over_ms: i64 },
    /// `share` of calls become call `index` of [`ClientSpec::calls`].
    CallShare { index: usize, share: f64 },
    /// `share` of calls come from origin `index` of [`ClientSpec::origins`].
    OriginShare { index: usize, share: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    pub start_ms: i64,
    pub end_ms: i64,
    pub effect: Effect,
}

/// A short legitimate burst (a backfill, a retry storm that clears).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    pub start_ms: i64,
    pub end_ms: i64,
    pub factor: f64,
}

/// Everything that determines one client's traffic.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub id: Arc<str>,
    pub role: Role,
    pub contract: Option<ContractSpec>,
    /// Events per minute at the top of the daily and weekly cycle (scale applied).
    pub peak_per_min: f64,
    pub units_mean: f64,
    pub units_cv: f64,
    /// Heavy-tailed units: lognormal with this σ (and mean `units_mean`) instead of a gamma
    /// with `units_cv`.
    pub units_sigma: Option<f64>,
    /// An hourly batch job: all of an hour's calls in its first this many minutes (0: spread).
    pub batch_minutes: u32,
    /// Legitimate behaviours, for the truth (see [`ClientTruth::traits`]).
    pub traits: Vec<&'static str>,
    /// Offset of the client's local time from UTC, minutes.
    pub tz_minutes: i32,
    pub diurnal: Diurnal,
    /// By UTC weekday, Monday first. (UTC rather than local so the pattern is exactly
    /// multiplicative on the UTC hour × weekday grid that a seasonal baseline learns.)
    pub weekly: [f64; 7],
    /// Per-hour lognormal noise on the rate.
    pub noise_sigma: f64,
    pub calls: Vec<Call>,
    pub origins: Vec<Origin>,
    pub ts_style: TsStyle,
    /// No traffic before this; then a linear ramp from 10% to 100% over `ramp_ms`.
    pub active_from_ms: i64,
    pub ramp_ms: i64,
    pub episodes: Vec<Episode>,
    pub bursts: Vec<Burst>,
    /// Per-hour noise multipliers from the run's first hour.
    pub(super) hourly_noise: Vec<f32>,
    pub(super) first_hour: i64,
}

impl ClientSpec {
    /// The noise-free weekly peak as a multiple of the contracted rate, for a contracted client.
    pub fn contract_peak(&self) -> Option<f64> {
        self.contract.as_ref().map(|k| {
            let max_week = self.weekly.iter().cloned().fold(0.0, f64::max);
            self.peak_per_min * max_week * 60.0 * self.mean_units_per_event() / k.units_per_hour
        })
    }

    /// The client's own drops (holidays: its pattern times less than 1) within `[from, to)`,
    /// clipped to it.
    pub fn drops_within(&self, from: i64, to: i64) -> Vec<[i64; 2]> {
        self.episodes
            .iter()
            .filter(|e| matches!(e.effect, Effect::Multiply { factor } if factor < 1.0))
            .filter(|e| e.start_ms < to && e.end_ms > from)
            .map(|e| [e.start_ms.max(from), e.end_ms.min(to)])
            .collect()
    }

    /// Stretches of a day or more within `[from, to)` in which every clock hour of the client
    /// (its incidents included) stays within its contract: an overage that pauses that long,
    /// a creep's quiet weekend, is over nothing there (`overage score` counts an alert that
    /// resolves in one and fires again after it as a new alert, as across a holiday). Empty
    /// for a client without a contract.
    pub fn within_contract(&self, from: i64, to: i64) -> Vec<[i64; 2]> {
        let Some(k) = &self.contract else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut run: Option<i64> = None;
        let (first, last) = (from.div_euclid(HOUR_MS), (to - 1).div_euclid(HOUR_MS));
        for h in first..=last + 1 {
            let within = h <= last && self.units_in_hour(h) <= k.units_per_hour;
            match (within, run) {
                (true, None) => run = Some(h),
                (false, Some(start)) => {
                    if h - start >= 24 {
                        out.push([(start * HOUR_MS).max(from), (h * HOUR_MS).min(to)]);
                    }
                    run = None;
                }
                _ => {}
            }
        }
        out
    }

    /// Units the client sends in clock hour `h` (hours since the epoch), at its exact rate.
    pub fn units_in_hour(&self, h: i64) -> f64 {
        let calls: f64 = (0..60)
            .map(|m| self.rate_at(h * HOUR_MS + m * MINUTE_MS))
            .sum();
        calls * self.mean_units_per_event()
    }

    /// Mean billable units per event (error responses carry none).
    pub fn mean_units_per_event(&self) -> f64 {
        let total: f64 = self.calls.iter().map(|c| c.weight).sum();
        if total <= 0.0 {
            return 0.0;
        }
        let per_call: f64 = self
            .calls
            .iter()
            .map(|c| {
                c.weight
                    * match c.units {
                        CallUnits::Records => self.units_mean,
                        CallUnits::One => 1.0,
                    }
            })
            .sum::<f64>()
            / total;
        OK_SHARE * per_call
    }

    /// Units per effective Poisson call, `E[u²]/E[u]`: how much noisier a sum of this
    /// client's units is than a count of its calls.
    pub fn units_dispersion(&self) -> f64 {
        let (mut e1, mut e2) = (0.0, 0.0);
        for c in &self.calls {
            let (m1, m2) = match c.units {
                CallUnits::One => (1.0, 1.0),
                CallUnits::Records => {
                    let m = self.units_mean;
                    match self.units_sigma {
                        Some(s) => (m, m * m * (s * s).exp()),
                        None => (m, m * m * (1.0 + self.units_cv * self.units_cv)),
                    }
                }
            };
            e1 += c.weight * m1;
            e2 += c.weight * m2;
        }
        if e1 > 0.0 {
            e2 / e1
        } else {
            1.0
        }
    }

    /// The contracted rate in events per minute, if contracted.
    pub fn contract_events_per_min(&self) -> Option<f64> {
        let c = self.contract.as_ref()?;
        let u = self.mean_units_per_event();
        (u > 0.0).then(|| c.units_per_hour / 60.0 / u)
    }

    pub(super) fn seasonal(&self, t: i64) -> f64 {
        let local = t + self.tz_minutes as i64 * MINUTE_MS;
        let local_hour = local.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64;
        let weekday = (t.div_euclid(DAY_MS) + 3).rem_euclid(7) as usize;
        self.peak_per_min * self.diurnal.at(local_hour) * self.weekly[weekday]
    }

    /// Expected units over `[from, to)`, minute by minute of [`ClientSpec::rate_at`] (incidents
    /// included).
    pub fn expected_units(&self, from: i64, to: i64) -> f64 {
        let u = self.mean_units_per_event();
        (from..to)
            .step_by(MINUTE_MS as usize)
            .map(|t| self.rate_at(t) * u)
            .sum()
    }

    /// Expected events in the minute starting at `t`: the client's whole rate model (season,
    /// noise, ramp, incidents, bursts). Deterministic for a built scenario.
    pub fn rate_at(&self, t: i64) -> f64 {
        if t < self.active_from_ms {
            return 0.0;
        }
        let mut rate = self.seasonal(t);
        if self.batch_minutes > 0 {
            let minute = t.rem_euclid(HOUR_MS) / MINUTE_MS;
            rate = if minute < self.batch_minutes as i64 {
                rate * 60.0 / self.batch_minutes as f64
            } else {
                0.0
            };
        }
        let h = (t.div_euclid(HOUR_MS) - self.first_hour) as usize;
        if let Some(&n) = self.hourly_noise.get(h) {
            rate *= n as f64;
        }
        if self.ramp_ms > 0 && t < self.active_from_ms + self.ramp_ms {
            let f = (t - self.active_from_ms) as f64 / self.ramp_ms as f64;
            rate *= 0.1 + 0.9 * f;
        }
        for e in &self.episodes {
            if t < e.start_ms || t >= e.end_ms {
                continue;
            }
            match e.effect {
                Effect::ContractMultiple { factor } => {
                    if let Some(c) = self.contract_events_per_min() {
                        rate = factor * c;
                    }
                }
                Effect::Multiply { factor } => rate *= factor,
                Effect::Creep { from, to, over_ms } => {
                    let f = (t - e.start_ms) as f64 / over_ms.max(1) as f64;
                    rate *= (from + (to - from) * f) / from;
                }
                Effect::CallShare { .. } | Effect::OriginShare { .. } => {}
            }
        }
        let i = self.bursts.partition_point(|b| b.end_ms <= t);
        if let Some(b) = self.bursts.get(i) {
            if b.start_ms <= t {
                rate *= b.factor;
            }
        }
        rate
    }

    pub(super) fn share_at(&self, ts: i64, origin: bool) -> Option<(usize, f64)> {
        self.episodes.iter().find_map(|e| {
            if ts < e.start_ms || ts >= e.end_ms {
                return None;
            }
            match (e.effect, origin) {
                (Effect::CallShare { index, share }, false) => Some((index, share)),
                (Effect::OriginShare { index, share }, true) => Some((index, share)),
                _ => None,
            }
        })
    }
}

// Call mixes. The weights of calls a client only makes during an incident are zero.
pub(super) const fn call(
    product: &'static str,
    endpoint: &'static str,
    weight: f64,
    units: CallUnits,
) -> Call {
    Call {
        product,
        endpoint,
        weight,
        units,
    }
}
pub(super) const SEARCH_RECENT: Call =
    call("search", "/2/tweets/search/recent", 0.0, CallUnits::Records);
pub(super) const SEARCH_ALL: Call = call("search", "/2/tweets/search/all", 0.0, CallUnits::Records);
pub(super) const USER_TWEETS: Call =
    call("timeline", "/2/users/:id/tweets", 0.0, CallUnits::Records);
pub(super) const USER_MENTIONS: Call =
    call("timeline", "/2/users/:id/mentions", 0.0, CallUnits::Records);
pub(super) const TWEET_LOOKUP: Call = call("lookup", "/2/tweets", 0.0, CallUnits::Records);
pub(super) const USER_LOOKUP: Call = call("lookup", "/2/users/by/username", 0.0, CallUnits::One);
pub(super) const COUNTS: Call = call("counts", "/2/tweets/counts/recent", 0.0, CallUnits::One);
pub(super) const FIREHOSE: Call = call(
    "firehose",
    "/2/tweets/sample/stream",
    0.0,
    CallUnits::Records,
);

pub(super) fn w(c: Call, weight: f64) -> Call {
    Call { weight, ..c }
}

pub(super) fn mix_search_timeline() -> Vec<Call> {
    vec![
        w(SEARCH_RECENT, 0.45),
        w(SEARCH_ALL, 0.15),
        w(USER_TWEETS, 0.25),
        w(USER_MENTIONS, 0.15),
    ]
}
pub(super) fn mix_search_only() -> Vec<Call> {
    vec![w(SEARCH_RECENT, 0.7), w(SEARCH_ALL, 0.3)]
}
pub(super) fn mix_broad() -> Vec<Call> {
    vec![
        w(SEARCH_RECENT, 0.35),
        w(SEARCH_ALL, 0.1),
        w(USER_TWEETS, 0.2),
        w(TWEET_LOOKUP, 0.15),
        w(USER_LOOKUP, 0.1),
        w(COUNTS, 0.1),
    ]
}
pub(super) fn mix_timeline() -> Vec<Call> {
    vec![
        w(USER_TWEETS, 0.6),
        w(USER_MENTIONS, 0.3),
        w(USER_LOOKUP, 0.1),
    ]
}

pub(super) const fn origin(country: &'static str, asn: u32, a: u8, b: u8) -> Origin {
    Origin {
        country,
        asn,
        net: [a, b],
        weight: 0.0,
    }
}
pub(super) const US_AWS: Origin = origin("US", 16509, 3, 80);
pub(super) const US_GCP: Origin = origin("US", 15169, 34, 72);
pub(super) const US_AZURE: Origin = origin("US", 8075, 20, 42);
pub(super) const GB: Origin = origin("GB", 16509, 18, 130);
pub(super) const IE: Origin = origin("IE", 16509, 34, 240);
pub(super) const NL: Origin = origin("NL", 14061, 188, 166);
pub(super) const DE: Origin = origin("DE", 24940, 95, 217);
pub(super) const FR: Origin = origin("FR", 16276, 51, 75);
pub(super) const JP: Origin = origin("JP", 2516, 106, 128);
pub(super) const CA: Origin = origin("CA", 577, 142, 112);
pub(super) const IN: Origin = origin("IN", 55836, 49, 36);
pub(super) const SG: Origin = origin("SG", 45102, 47, 74);
pub(super) const AU: Origin = origin("AU", 1221, 101, 160);
pub(super) const BR: Origin = origin("BR", 28573, 177, 32);
pub(super) const NG: Origin = origin("NG", 29465, 102, 88);

pub(super) fn ow(o: Origin, weight: f64) -> Origin {
    Origin { weight, ..o }
}

pub(super) const WEEK_STD: [f64; 7] = [1.1, 1.0, 1.0, 1.0, 0.95, 0.5, 0.5];
pub(super) const WEEK_FLAT: [f64; 7] = [1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.9];
pub(super) const WEEK_PEAKY: [f64; 7] = [1.5, 1.0, 1.0, 1.0, 1.0, 0.4, 0.4];
/// Partners whose traffic follows their own customers' working week.
pub(super) const WEEK_B2B: [f64; 7] = [1.1, 1.0, 1.0, 1.0, 0.95, 0.4, 0.4];
pub(super) const WEEK_OFFICE: [f64; 7] = [1.1, 1.0, 1.0, 1.0, 1.0, 0.15, 0.15];
