//! Per-client state: everything overage remembers about one client, updated in O(1) per event.
//!
//! Millions of clients must fit in memory, so the state is a flat struct of fixed size (about
//! 1 KiB, see `BENCHMARKS.md`): bucket rings instead of event lists, interned ids instead of
//! strings, decayed counters instead of per-item histories, bounded tables where a set is
//! needed. Nothing here reads a clock or does I/O.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

use crate::alert::Slot;
use crate::baseline::{BaselineParams, Seasonal};
use crate::detect::Detectors;
use crate::drivers::Mix;
use crate::rollup::Rollup;
use crate::sparse::Call;
use crate::time::{hour_of, month_of, month_start, Millis, HOUR_MS, MINUTE_MS};
use crate::window::Windows;

/// How many distinct origins a client's table remembers.
pub const ORIGIN_SLOTS: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    pub id: Arc<str>,
    /// Index of its contract in the engine's contracts, if it has one.
    pub contract: Option<u32>,
    /// Earliest event time seen (not the first to arrive: input may be out of order).
    pub first_seen: Millis,
    pub last_seen: Millis,
    /// Which minute boundaries it is due to be evaluated at, and was last evaluated at.
    pub sched: Schedule,
    pub windows: Windows,
    pub usage: Usage,
    pub units: Dispersion,
    pub baseline: Seasonal,
    pub scope: Scope,
    /// Recent and usual units by product, endpoint and origin, to name an excess's drivers.
    pub mix: Mix,
    /// Alerts pending or firing; empty for almost every client (so a thin vector: one pointer
    /// instead of three words, in every client).
    pub alerts: ThinVec<Slot>,
    /// Hourly usage by product and origin, and recent alert transitions, for reports.
    pub rollup: Rollup,
}

pub const NOT_SCHEDULED: i64 = i64::MIN;

/// How long after an hour ends its minutes are surely still in the minute ring, whatever has
/// arrived ahead of the evaluation (up to the largest allowed lateness): past this, the hour
/// teaches the baseline no within-hour shape, so what it learns does not depend on arrival
/// order.
const FRONT_HELD_MS: Millis =
    (crate::window::MINUTE_SLOTS as i64 - 60 - 1) * MINUTE_MS - crate::window::MAX_LATENESS;

/// When a client is due for evaluation, kept per client so that the engine's schedule holds
/// each client once per boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Evaluations pending in the engine's schedule: bit `k` is boundary `base + 1 + k`.
    /// Boundaries are at most the allowed lateness (≤ 30 min) apart, so 64 bits suffice.
    base: i64,
    mask: u64,
    /// Last minute boundary it was evaluated at (an evaluation happens at most once per boundary).
    pub last_eval: i64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            base: 0,
            mask: 0,
            last_eval: NOT_SCHEDULED,
        }
    }
}

impl Schedule {
    /// Note that boundary `b` needs an evaluation. Returns true if the caller must add it to the
    /// schedule (it was not pending already).
    pub fn schedule(&mut self, b: i64) -> bool {
        if b <= self.last_eval {
            return false;
        }
        if self.mask == 0 {
            self.base = b - 1;
        }
        let mut k = b - self.base - 1;
        if k < 0 {
            let shift = (-k) as u32;
            if self.mask.leading_zeros() < shift {
                return true; // cannot be represented: schedule anyway (evaluation dedupes)
            }
            self.mask <<= shift;
            self.base = b - 1;
            k = 0;
        }
        if k >= 64 {
            return true;
        }
        let bit = 1u64 << k;
        let fresh = self.mask & bit == 0;
        self.mask |= bit;
        fresh
    }

    /// Is an evaluation scheduled and not yet begun?
    pub fn pending(&self) -> bool {
        self.mask != 0
    }

    /// Record an evaluation at boundary `b`; false if it was already evaluated there.
    pub fn begin(&mut self, b: i64) -> bool {
        if b <= self.last_eval {
            return false;
        }
        self.last_eval = b;
        if b > self.base {
            let k = b - self.base;
            self.mask = if k >= 64 { 0 } else { self.mask >> k };
            self.base = b;
        }
        true
    }
}

impl Client {
    pub fn new(id: Arc<str>, contract: Option<u32>, ts: Millis) -> Self {
        Client {
            id,
            contract,
            first_seen: ts,
            last_seen: ts,
            sched: Schedule::default(),
            windows: Windows::default(),
            usage: Usage::default(),
            units: Dispersion::default(),
            baseline: Seasonal::default(),
            scope: Scope::default(),
            mix: Mix::default(),
            alerts: ThinVec::new(),
            rollup: Rollup::default(),
        }
    }

    /// Apply one call the engine has resolved (labels interned, scope checked); true if the
    /// end of its minute must be added to the engine's evaluation schedule. `allowance` is the
    /// contract's units per hour, for the usage history's days ([`Rollup::add`]).
    pub fn apply(&mut self, call: &Call, p: &Detectors, allowance: Option<f64>) -> bool {
        let (ts, half_life) = (call.ts, p.scope.half_life);
        self.usage.add(ts, call.units);
        let country = call.country();
        self.rollup.add(
            ts,
            call.product,
            country.or(call.asn()).unwrap_or(crate::rollup::NONE),
            call.units,
            allowance,
        );
        self.rollup.last_labels = [call.product, country.unwrap_or(crate::rollup::NONE)];
        self.last_seen = self.last_seen.max(ts);
        self.first_seen = self.first_seen.min(ts);
        if call.late() {
            return false;
        }
        self.windows.add(ts, call.units as f32);
        self.units.add(ts, call.units);
        let learn_usual = !self.volume_alert_firing();
        self.mix.add(
            ts,
            call.units as f32,
            [
                (call.product != crate::rollup::NONE).then_some(call.product),
                call.endpoint(),
                country,
                call.asn(),
            ],
            learn_usual,
        );
        let w = self.scope.weights(ts, half_life);
        self.scope.add(w, call.breach);
        // `new_origin` tracks a country and a network each on its own, so a new network in a
        // known country is as new as a new country.
        if p.new_origin.enabled {
            for o in [country, call.asn()].into_iter().flatten() {
                self.scope.origins.add(o, ts, w[0]);
            }
        }
        self.sched.schedule(call.boundary())
    }

    /// What an evaluation at `boundary` changes in a client besides its alerts: the schedule, the
    /// hours folded into the unit moments and the learned baseline, the scope counters' decay.
    /// False if it was evaluated there already.
    pub fn prepare(&mut self, boundary: i64, p: &Detectors) -> bool {
        if !self.sched.begin(boundary) {
            return false;
        }
        let t = boundary * MINUTE_MS;
        self.units.fold_complete(t);
        self.learn_baseline(t, &p.baseline);
        self.scope.decay_to(t, p.scope.half_life);
        true
    }

    /// Learn every hour the client has completed since it last learned.
    fn learn_baseline(&mut self, t: Millis, p: &BaselineParams) {
        // Started at the first evaluation, when every event before it has arrived, so the start
        // does not depend on arrival order.
        self.baseline.start(hour_of(self.first_seen));
        let Some(mut h) = self.baseline.next_hour() else {
            return;
        };
        let current = hour_of(t - 1);
        // Hours older than the hour ring hold nothing it can tell; a run of them longer than the
        // relearn-after-silence span is that silence, so the baseline starts afresh where the ring
        // begins rather than learning years of empty hours one by one (an ancient late event can
        // set `first_seen` that far back, and an engine must not stall on it).
        let oldest = current - crate::window::HOUR_SLOTS as i64 + 1;
        if h < oldest - p.reset_after_hours as i64 {
            self.baseline = crate::baseline::Seasonal::default();
            self.baseline.start(oldest);
            h = oldest;
        }
        let frozen = self.volume_alert_firing();
        // An hour is complete once t has passed its end.
        // The usual rate is learned as calls × mean units per call: call counts are Poisson, while
        // the units of a heavy-tailed client swing by whole multiples hour to hour, and clipping
        // those swings would bias its baseline low (and every ordinary hour would look like a jump).
        let mean_units = self.units.mean();
        while h < current || (h == current && t % crate::time::HOUR_MS == 0) {
            let units = match self.windows.hour_calls(h) {
                Some(calls) => calls * mean_units,
                None => self.windows.hours.get(h) as f64,
            };
            self.baseline.learn_hour(h, units, mean_units, frozen, p);
            if !frozen && t - (h + 1) * HOUR_MS <= FRONT_HELD_MS {
                let m = h * HOUR_MS / MINUTE_MS;
                let minutes = &self.windows.minutes;
                let early = minutes.sum(m, m + crate::baseline::FRONT_MINUTES);
                self.baseline.learn_front(early, minutes.sum(m, m + 60), p);
            }
            h += 1;
        }
    }

    /// The last evaluation at which a firing alert of `kind` (either severity) was over its
    /// threshold; `None` unless one is firing.
    pub fn last_fire(&self, kind: crate::alert::AlertKind) -> Option<Millis> {
        self.alerts
            .iter()
            .filter(|s| s.kind == kind && s.is_firing())
            .map(|s| s.last_fire)
            .max()
    }

    /// Take out an alert that resolved at `at`; a volume alert's episode is an incident the
    /// baseline remembers the end of ([`Seasonal::incident_ended`]).
    pub fn resolve(&mut self, i: usize, at: Millis) -> Slot {
        let s = self.alerts.remove(i);
        if s.kind.is_volume() {
            self.baseline.end_incident(at);
        }
        s
    }

    /// Is any alert on this client's volume firing? (Then its baseline must not learn.)
    pub fn volume_alert_firing(&self) -> bool {
        self.alerts
            .iter()
            .any(|s| s.is_firing() && s.kind.is_volume())
    }

    /// May this client be forgotten to make room? Contracted clients and clients with alerts
    /// never are.
    pub fn evictable(&self) -> bool {
        self.contract.is_none() && self.alerts.is_empty()
    }
}

/// Exact consumption totals (f64: these are billing numbers), including late events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Bounds of the month of `month_units` in hours since the epoch (months begin on whole
    /// hours; i32 holds every hour of years 0 to 9999), cached so that an event needs no
    /// calendar arithmetic; `[0, 0]` before the first event.
    month_hours: [i32; 2],
    pub month_units: f64,
    pub prev_month_units: f64,
    /// Since the client was first tracked.
    pub total_units: f64,
    pub total_events: u64,
}

impl Usage {
    pub fn add(&mut self, ts: Millis, units: f64) {
        self.total_units += units;
        self.total_events += 1;
        let [from, to] = self.month_hours;
        let h = ts.div_euclid(HOUR_MS);
        if h >= from as i64 && h < to as i64 {
            self.month_units += units;
            return;
        }
        let (m, month) = (month_of(ts), self.month());
        if to == 0 || m > month {
            self.prev_month_units = if m == month + 1 {
                self.month_units
            } else {
                0.0
            };
            let hour = |m| (month_start(m) / HOUR_MS) as i32;
            self.month_hours = [hour(m), hour(m + 1)];
            self.month_units = units;
        } else if m == month - 1 {
            self.prev_month_units += units;
        }
    }

    /// Month (see [`month_of`]) of `month_units`.
    fn month(&self) -> i32 {
        month_of(self.month_hours[0] as Millis * HOUR_MS)
    }

    /// Units consumed in `month` as far as this state knows (current or previous month).
    pub fn in_month(&self, month: i32) -> f64 {
        let current = self.month();
        if self.month_hours[1] == 0 {
            0.0
        } else if month == current {
            self.month_units
        } else if month == current - 1 {
            self.prev_month_units
        } else {
            0.0
        }
    }
}

/// Moments of units per event, for significance tests on unit sums: a sum of `n` events of
/// random size behaves like a Poisson count scaled by `E[u²]/E[u]` (compound Poisson).
///
/// Events are summed per hour in two slots; completed hours are folded into a long-run estimate
/// that forgets with a half-life of about a week, so one odd hour (a single huge call on a tiny
/// client) neither hides nor fakes an excess. Hours are folded in order, at the first
/// evaluation after they complete (or when their slot is needed), and the hour in progress is
/// added by the judge from the minute rings up to the evaluated minute
/// ([`Dispersion::factor_with`]), so the value read at an evaluation depends only on events
/// before it, not on arrival order.
///
/// A heavy tail (a client whose calls are mostly small pages and now and then a bulk export)
/// has a second moment that a week of a small client's calls does not show: the sample `E[u²]`
/// is dominated by calls that have not happened yet. Its log-moments are estimable from a few
/// dozen calls, so the factor is also taken from a lognormal fit of the nonzero units, weighted
/// in as the log-variance says the tail is heavy, and never above the largest call seen: `E[u²]/
/// E[u]` cannot exceed it, and a client mixing one-unit lookups with 500-record pages (an API's
/// page limit) has a log-variance whose lognormal tail runs to thousands of units per call, so
/// that an overage of 3.5x on hundreds of calls read as one "effective" call (see
/// [`Dispersion::factor`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Dispersion {
    hour: [i32; 2],
    s1: [f32; 2],
    s2: [f32; 2],
    n: [u32; 2],
    /// Σ ln u, Σ (ln u)², count, over calls with units > 0.
    l1: [f32; 2],
    l2: [f32; 2],
    nz: [u32; 2],
    /// The largest call of each hour slot, and of every hour folded.
    top: [f32; 2],
    folded: [bool; 2],
    /// The largest call of the hour two before the newest one, log-coded ([`top_code`]), kept
    /// when the newest hour took its slot (0 if it had none): an event of the next hour,
    /// arriving within the lateness before the last minutes of an hour are evaluated, takes
    /// the slot of the hour before, which they read ([`Dispersion::largest_in_hour`]). (In the
    /// struct's padding.)
    evicted_top: u16,
    long_s1: f32,
    long_s2: f32,
    long_n: f32,
    long_l1: f32,
    long_l2: f32,
    long_nz: f32,
    long_top: f32,
    long_hour: i32,
}

/// Log-variance from which units count as heavy-tailed (a lognormal σ of 1), and the further
/// log-variance over which the lognormal fit takes over entirely (σ ≈ 1.6).
const HEAVY_LOG_VAR: f32 = 1.0;
const HEAVY_LOG_VAR_SPAN: f32 = 1.5;

/// Weight kept per hour by the long-run estimate (half-life ≈ a week: heavy-tailed units need
/// many calls before their second moment shows, and a day of a small client's calls is few).
const FORGET_PER_HOUR: f32 = 0.996;

impl Dispersion {
    #[inline]
    pub fn add(&mut self, ts: Millis, units: f64) {
        let h = ts.div_euclid(crate::time::HOUR_MS) as i32;
        let i = (h & 1) as usize;
        if self.hour[i] != h {
            if h < self.hour[i] {
                return;
            }
            if !self.folded[i] && self.n[i] > 0 {
                self.fold(i);
            }
            if h > self.hour[1 - i] {
                self.evicted_top = if self.hour[i] == h - 2 && self.n[i] > 0 {
                    top_code(self.top[i])
                } else {
                    0
                };
            }
            self.hour[i] = h;
            self.s1[i] = 0.0;
            self.s2[i] = 0.0;
            self.n[i] = 0;
            self.l1[i] = 0.0;
            self.l2[i] = 0.0;
            self.nz[i] = 0;
            self.top[i] = 0.0;
            self.folded[i] = false;
        }
        let u = units as f32;
        self.top[i] = self.top[i].max(u);
        self.s1[i] += u;
        self.s2[i] += u * u;
        self.n[i] += 1;
        if u > 0.0 {
            let l = u.ln();
            self.l1[i] += l;
            self.l2[i] += l * l;
            self.nz[i] += 1;
        }
    }

    fn fold(&mut self, i: usize) {
        let gap = (self.hour[i] - self.long_hour).clamp(0, 24 * 30);
        let keep = if self.long_n > 0.0 {
            FORGET_PER_HOUR.powi(gap)
        } else {
            0.0
        };
        self.long_s1 = self.long_s1 * keep + self.s1[i];
        self.long_s2 = self.long_s2 * keep + self.s2[i];
        self.long_n = self.long_n * keep + self.n[i] as f32;
        self.long_l1 = self.long_l1 * keep + self.l1[i];
        self.long_l2 = self.long_l2 * keep + self.l2[i];
        self.long_nz = self.long_nz * keep + self.nz[i] as f32;
        self.long_top = self.long_top.max(self.top[i]);
        self.long_hour = self.hour[i];
        self.folded[i] = true;
    }

    /// Fold the hours completed before boundary `t`, oldest first.
    pub fn fold_complete(&mut self, t: Millis) {
        let current = t.div_euclid(crate::time::HOUR_MS) as i32;
        let mut order = [0usize, 1];
        order.sort_by_key(|&i| self.hour[i]);
        for i in order {
            if !self.folded[i] && self.n[i] > 0 && self.hour[i] < current {
                self.fold(i);
            }
        }
    }

    /// `(Σu, Σu², n)` to estimate from: the long run once there is one, else (in a client's
    /// first hour) what there is so far.
    fn moments(&self) -> (f32, f32, f32) {
        if self.long_n > 0.0 {
            (self.long_s1, self.long_s2, self.long_n)
        } else {
            let n: u32 = self.n.iter().sum();
            (self.s1.iter().sum(), self.s2.iter().sum(), n as f32)
        }
    }

    /// Mean units per event.
    pub fn mean(&self) -> f64 {
        let (s1, _, n) = self.moments();
        if n > 0.0 {
            (s1 / n) as f64
        } else {
            1.0
        }
    }

    /// `(Σ ln u, Σ (ln u)², n)` over nonzero units, and the largest call, from the same span
    /// as [`Self::moments`].
    fn log_moments(&self) -> (f32, f32, f32, f32) {
        if self.long_n > 0.0 {
            (self.long_l1, self.long_l2, self.long_nz, self.long_top)
        } else {
            let n: u32 = self.nz.iter().sum();
            let top = self.top[0].max(self.top[1]);
            (self.l1.iter().sum(), self.l2.iter().sum(), n as f32, top)
        }
    }

    /// Units per "effective Poisson event": `E[u²]/E[u]`, from the sample moments, or from a
    /// lognormal fit (`exp(μ + 1.5σ²)` over nonzero units, which zero-unit calls do not change)
    /// when that is larger and the log-variance says the tail is heavy.
    pub fn factor(&self) -> f64 {
        self.factor_with((0.0, 0.0, 0.0))
    }

    /// [`Self::factor`] with `(Σu, Σu², largest call)` of calls not folded in yet (the hour in
    /// progress, [`crate::window::Windows::hour_so_far`]): a call being judged counts in the
    /// spread it is judged against, so a bulk export many times any call before it is its own
    /// evidence of a heavy tail, not of an overage.
    pub fn factor_with(&self, (e1, e2, e_top): (f64, f64, f64)) -> f64 {
        let (s1, s2, _) = self.moments();
        let (s1, s2) = (s1 + e1 as f32, s2 + e2 as f32);
        let moment = if s1 > 0.0 { (s2 / s1).max(1e-3) } else { 1.0 };
        let (l1, l2, nz, top) = self.log_moments();
        if nz < 2.0 {
            return moment as f64;
        }
        let mu = l1 / nz;
        let var = (l2 / nz - mu * mu).max(0.0);
        let weight = ((var - HEAVY_LOG_VAR) / HEAVY_LOG_VAR_SPAN).clamp(0.0, 1.0);
        let fitted = (mu + 1.5 * var).exp().min(top.max(e_top as f32));
        (moment.max(weight * fitted)) as f64
    }

    /// The chance that one call is of more than `x` units, from the lognormal with the mean
    /// and the `E[u²]/E[u]` (`factor`) the test uses. Fitted by those moments, not by the
    /// log-moments: a client mixing one-unit lookups with pages has a log-variance that makes
    /// its largest calls tens to hundreds of times rarer than they are, where its second moment
    /// does not. Zero where the units are not heavy-tailed (`factor` under e times the mean:
    /// every gamma of the fleet, constant units), as a light tail's largest call explains no
    /// excess.
    pub fn tail(&self, x: f64, factor: f64) -> f64 {
        use statrs::distribution::{ContinuousCDF, Normal};
        match self.heavy_log_var(factor) {
            Some((mean, var)) if x > 0.0 => {
                let mu = mean.ln() - var / 2.0;
                Normal::standard().sf((x.ln() - mu) / var.sqrt())
            }
            _ => 0.0,
        }
    }

    /// The largest call of clock hour `hour` (hours since the epoch) while it is one of the
    /// last three the client made calls in, to [`top_code`]'s precision (else 0). Read in the
    /// hour after `hour`, it depends only on the calls before the minute read, whatever their
    /// arrival order within the lateness.
    pub fn largest_in_hour(&self, hour: i64) -> f64 {
        let code = (0..2)
            .find(|&i| self.hour[i] as i64 == hour && self.n[i] > 0)
            .map(|i| top_code(self.top[i]))
            .or_else(|| {
                (self.hour[0].max(self.hour[1]) as i64 == hour + 2).then_some(self.evicted_top)
            })
            .unwrap_or(0);
        (code as f64 / TOP_STEPS).exp_m1()
    }

    /// Are the units heavy-tailed, by `factor` (at least e times the mean: a lognormal σ of at
    /// least 1)? Where a window's units are made by its few largest calls.
    pub fn heavy(&self, factor: f64) -> bool {
        self.heavy_log_var(factor).is_some()
    }

    /// The mean and the log-variance of the lognormal fitted by the mean and `factor`, where
    /// the units are heavy-tailed.
    fn heavy_log_var(&self, factor: f64) -> Option<(f64, f64)> {
        let mean = self.mean();
        let var = (factor / mean).ln();
        (mean > 0.0 && var >= HEAVY_LOG_VAR as f64).then_some((mean, var))
    }
}

/// Steps of [`top_code`] per unit of `ln(1 + units)`: the largest `f32` fits in 16 bits.
const TOP_STEPS: f64 = 736.0;

/// A call's units in 16 bits, log-coded in steps of about 0.14%, rounded down: never above
/// the call.
fn top_code(units: f32) -> u16 {
    ((units.max(0.0) as f64).ln_1p() * TOP_STEPS)
        .floor()
        .min(u16::MAX as f64) as u16
}

/// Exponentially decayed call counters for scope checks, all relative to one anchor time, so
/// that adding is a multiply-add and the result does not depend on arrival order.
///
/// Shares use the configured half-life (30 minutes: they follow what the client does now).
/// Whether enough calls broke the contract to be sure uses counters that forget
/// [`LONG_HALF_LIVES`] times slower, so a client making a few calls an hour can still reach
/// `min_events` violating calls (with the short half-life it never could: its decayed count
/// stays below one call). How many calls the violation under way made is counted exactly, from
/// its first call: a client making a call every few hours needs days for ten violating calls,
/// which even the long counters forget faster than it makes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    anchor: Millis,
    pub total: f32,
    pub bad_product: f32,
    pub bad_endpoint: f32,
    pub bad_origin: f32,
    /// The same violations with the long half-life: product, endpoint, origin.
    pub bad_long: [f32; 3],
    /// Every call with the long half-life (the long share's denominator).
    pub total_long: f32,
    /// Violating calls of each kind since the violation under way began (saturating): its
    /// first call after a run of clean calls that ended the one before
    /// ([`crate::detect::scope::clean_run_needed`]).
    pub run: [u16; 3],
    /// The long share of each kind as of its last violating call: the share the violation ran
    /// at, which the clean calls since do not dilute.
    pub ran_at: [f32; 3],
    /// The client's calls since the last violating call of each kind (saturating): how many
    /// of its own calls have been clean since, whatever the hour.
    pub since_bad: [u16; 3],
    /// Most recent out-of-contract product / endpoint / origin (interned ids).
    pub last_product: u32,
    pub last_endpoint: u32,
    pub last_origin: u32,
    /// Where the client's calls come from, for `new_origin`.
    pub origins: Origins,
}

/// How many times longer the half-life of [`Scope::bad_long`] is.
pub const LONG_HALF_LIVES: f64 = 16.0;

/// Which scope rule an event broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Breach {
    Product(u32),
    Endpoint(u32),
    Origin(u32),
}

impl Scope {
    /// Weights of an event at `ts` relative to the anchor, with the short and long half-lives.
    #[inline]
    pub fn weights(&mut self, ts: Millis, half_life: Millis) -> [f32; 2] {
        // Re-anchor when the event is far from the anchor, so weights stay in f32 range.
        if self.anchor == 0 || (ts - self.anchor).abs() > 4 * half_life {
            self.decay_to(ts, half_life);
        }
        let x = (ts - self.anchor) as f64 / half_life as f64;
        [x.exp2() as f32, (x / LONG_HALF_LIVES).exp2() as f32]
    }

    /// Move the anchor to `t`, scaling every counter.
    pub fn decay_to(&mut self, t: Millis, half_life: Millis) -> f32 {
        let (f, f_long) = if self.anchor == 0 {
            (0.0, 0.0)
        } else {
            let x = -((t - self.anchor) as f64) / half_life as f64;
            (x.exp2() as f32, (x / LONG_HALF_LIVES).exp2() as f32)
        };
        self.total *= f;
        self.bad_product *= f;
        self.bad_endpoint *= f;
        self.bad_origin *= f;
        self.bad_long.iter_mut().for_each(|b| *b *= f_long);
        self.total_long *= f_long;
        self.origins.scale(f);
        self.anchor = t;
        f
    }

    /// Count one call of [`Scope::weights`] `[w, w_long]`, and the scope rule it broke if any.
    #[inline]
    pub fn add(&mut self, [w, w_long]: [f32; 2], breach: Option<Breach>) {
        self.total += w;
        self.total_long += w_long;
        for n in &mut self.since_bad {
            *n = n.saturating_add(1);
        }
        self.origins.count_call();
        let kind = match breach {
            Some(Breach::Product(id)) => {
                self.bad_product += w;
                self.last_product = id;
                0
            }
            Some(Breach::Endpoint(id)) => {
                self.bad_endpoint += w;
                self.last_endpoint = id;
                1
            }
            Some(Breach::Origin(id)) => {
                self.bad_origin += w;
                self.last_origin = id;
                2
            }
            None => return,
        };
        self.bad_long[kind] += w_long;
        let clean = self.since_bad[kind] - 1;
        let over = self.run[kind] == 0
            || clean as f64 >= crate::detect::scope::clean_run_needed(self.ran_at[kind] as f64);
        self.run[kind] = if over {
            1
        } else {
            self.run[kind].saturating_add(1)
        };
        self.ran_at[kind] = self.bad_long[kind] / self.total_long;
        self.since_bad[kind] = 0;
    }

    /// Of the scope rule `kind` (product, endpoint, origin): the long share as of the last call
    /// that broke it, and the client's calls since.
    pub fn last_violation(&self, kind: usize) -> (f64, u32) {
        (self.ran_at[kind] as f64, self.since_bad[kind] as u32)
    }
}

/// The origins a client's traffic comes from: a small table of (origin, first seen, decayed
/// calls, calls since first seen), decayed with the [`Scope`] it belongs to. When full, the
/// least used entry is replaced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Origins {
    len: u8,
    ids: [u32; ORIGIN_SLOTS],
    first_seen: [i32; ORIGIN_SLOTS],
    calls: [f32; ORIGIN_SLOTS],
    count: [u16; ORIGIN_SLOTS],
    /// The client's calls since the entry's first and its last call (saturating: an origin
    /// 65,535 of the client's calls old is long past being new).
    since_first: [u16; ORIGIN_SLOTS],
    since_last: [u16; ORIGIN_SLOTS],
}

impl Origins {
    /// Count one of the client's calls, before [`Origins::add`] records where it came from.
    #[inline]
    pub fn count_call(&mut self) {
        let n = self.len as usize;
        for c in self.since_first[..n]
            .iter_mut()
            .chain(&mut self.since_last[..n])
        {
            *c = c.saturating_add(1);
        }
    }

    #[inline]
    pub fn add(&mut self, id: u32, ts: Millis, w: f32) {
        let n = self.len as usize;
        if let Some(i) = self.ids[..n].iter().position(|&x| x == id) {
            self.calls[i] += w;
            self.count[i] = self.count[i].saturating_add(1);
            self.since_last[i] = 0;
            return;
        }
        let minute = (ts / crate::time::MINUTE_MS) as i32;
        let i = if n < ORIGIN_SLOTS {
            self.len += 1;
            n
        } else {
            (0..ORIGIN_SLOTS)
                .min_by(|&a, &b| self.calls[a].total_cmp(&self.calls[b]))
                .unwrap_or(0)
        };
        self.ids[i] = id;
        self.first_seen[i] = minute;
        self.calls[i] = w;
        self.count[i] = 1;
        self.since_first[i] = 0;
        self.since_last[i] = 0;
    }

    /// Scale counts (on re-anchoring the scope).
    pub fn scale(&mut self, f: f32) {
        self.calls.iter_mut().for_each(|c| *c *= f);
    }

    /// `(origin, first seen (ms), decayed calls)` of each entry.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Millis, f32)> + '_ {
        (0..self.len as usize).map(|i| {
            (
                self.ids[i],
                self.first_seen[i] as Millis * crate::time::MINUTE_MS,
                self.calls[i],
            )
        })
    }

    /// The client's calls since origin `id` was first seen, that one included; infinite if it
    /// is not in the table.
    pub fn calls_since(&self, id: u32) -> f64 {
        let n = self.len as usize;
        match self.ids[..n].iter().position(|&x| x == id) {
            Some(i) => self.since_first[i] as f64 + 1.0,
            None => f64::INFINITY,
        }
    }

    /// The calls before origin `id` was first seen, as far as the table tells, and from when:
    /// its oldest entry's calls since, less this one's (at least that many where they
    /// saturate), counted from that entry's first call; `None` if `id` is not in the table.
    pub fn calls_before(&self, id: u32) -> Option<(f64, Millis)> {
        let n = self.len as usize;
        let oldest = (0..n).max_by_key(|&i| self.since_first[i])?;
        let i = self.ids[..n].iter().position(|&x| x == id)?;
        let calls = self.since_first[oldest] - self.since_first[i];
        let from = self.first_seen[oldest] as Millis * crate::time::MINUTE_MS;
        Some((f64::from(calls), from))
    }

    /// Of origin `id`, if it is in the table: its calls since it was first seen (saturating),
    /// the client's calls since, the origin's share of them as of its last call, and the
    /// client's calls since its last one.
    pub fn since(&self, id: u32) -> Option<(u16, f64, f64, u32)> {
        let n = self.len as usize;
        let i = self.ids[..n].iter().position(|&x| x == id)?;
        let (first, last) = (self.since_first[i], self.since_last[i]);
        let count = self.count[i] as f64;
        Some((
            self.count[i],
            first as f64 + 1.0,
            (count / (first.saturating_sub(last) as f64 + 1.0)).min(1.0),
            last as u32,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    #[test]
    fn every_boundary_is_scheduled_once_in_any_order() {
        let mut c = Schedule::default();
        assert!(c.schedule(10));
        assert!(!c.schedule(10));
        assert!(c.schedule(12));
        assert!(c.schedule(9), "an earlier boundary after a later one");
        assert!(!c.schedule(12));
        assert!(c.begin(9));
        assert!(!c.begin(9));
        assert!(!c.schedule(9), "already evaluated");
        assert!(c.begin(10));
        assert!(!c.schedule(12), "still pending");
        assert!(c.schedule(11));
        assert!(c.begin(11));
        assert!(c.begin(12));
        assert!(c.schedule(13));
        assert!(c.schedule(1_000), "far ahead is scheduled anyway");
    }

    #[test]
    fn usage_rolls_months_and_keeps_late_previous_month() {
        let aug = parse_rfc3339("2026-08-31T23:59:00Z").unwrap();
        let sep = parse_rfc3339("2026-09-01T00:01:00Z").unwrap();
        let mut u = Usage::default();
        u.add(aug, 10.0);
        u.add(sep, 5.0);
        u.add(aug + 30_000, 1.0); // late, still August
        assert_eq!(u.in_month(month_of(sep)), 5.0);
        assert_eq!(u.in_month(month_of(aug)), 11.0);
        assert_eq!(u.total_units, 16.0);
        assert_eq!(u.total_events, 3);
        u.add(sep + 40 * 24 * HOUR_MS, 2.0); // October: September becomes previous
        assert_eq!(u.in_month(month_of(sep)), 5.0);
        assert_eq!(u.in_month(month_of(aug)), 0.0);
    }

    #[test]
    fn dispersion_is_long_run_and_order_free() {
        let t = 1_789_050_000_000 - 1_789_050_000_000 % HOUR_MS;
        let mut d = Dispersion::default();
        for i in 0..100 {
            d.add(t + i * 1000, 50.0);
        }
        // within the first hour: the partial hour is all there is
        assert!((d.factor() - 50.0).abs() < 1e-3);
        for i in 0..100 {
            d.add(t + HOUR_MS + i * 1000, if i % 2 == 0 { 10.0 } else { 30.0 });
        }
        // the second hour is not complete: it does not count yet
        d.fold_complete(t + HOUR_MS + 30 * 60_000);
        assert!((d.factor() - 50.0).abs() < 1e-3);
        d.fold_complete(t + 2 * HOUR_MS);
        // both hours, the first slightly forgotten:
        // (0.996·250000 + 50000) / (0.996·5000 + 2000) = 42.84
        let f = d.factor();
        assert!((f - 42.84).abs() < 0.05, "{f}");
        assert!((d.mean() - 35.0).abs() < 1.0, "{}", d.mean());

        // a slot needed for a new hour is folded first, as the evaluation would have
        let mut e = Dispersion::default();
        for i in 0..100 {
            e.add(t + i * 1000, 50.0);
        }
        for i in 0..100 {
            e.add(t + HOUR_MS + i * 1000, if i % 2 == 0 { 10.0 } else { 30.0 });
        }
        e.add(t + 2 * HOUR_MS, 1.0); // recycles hour 0's slot: folds it
        e.fold_complete(t + 2 * HOUR_MS);
        d.add(t + 2 * HOUR_MS, 1.0);
        d.fold_complete(t + 2 * HOUR_MS);
        assert_eq!(d.factor(), e.factor());
        // calls not folded yet are added as given: (Σu, Σu²) of one 1,000-unit call
        let before = d.factor();
        let with = d.factor_with((1000.0, 1e6, 1000.0));
        assert!(with > 3.0 * before, "{with} vs {before}");
        assert_eq!(d.factor_with((0.0, 0.0, 0.0)), before);
    }

    /// A lognormal of the given mean.
    fn lognormal(mean: f64, sigma: f64) -> rand_distr::LogNormal<f64> {
        rand_distr::LogNormal::new(mean.ln() - sigma * sigma / 2.0, sigma).unwrap()
    }

    #[test]
    fn the_hour_befores_largest_call_does_not_depend_on_what_came_after_it() {
        // calls in hour 10 (the largest 350 units) and hour 11; read in hour 11, before and
        // after a call of hour 12 arrives (within the lateness) and takes hour 10's slot
        let at = |h: i64, m: i64| h * HOUR_MS + m * MINUTE_MS;
        let mut d = Dispersion::default();
        for (ts, u) in [(at(10, 5), 3.0), (at(10, 20), 350.0), (at(11, 2), 4.0)] {
            d.add(ts, u);
        }
        let before = d.largest_in_hour(10);
        assert!((349.0..=350.0).contains(&before), "{before}");
        d.add(at(12, 0), 5.0);
        assert_eq!(d.largest_in_hour(10), before);
        assert_eq!(d.largest_in_hour(9), 0.0);
        // an hour without calls has none, whichever slot took over
        let mut e = Dispersion::default();
        e.add(at(8, 1), 900.0);
        e.add(at(11, 1), 1.0);
        e.add(at(12, 1), 1.0);
        assert_eq!(e.largest_in_hour(10), 0.0);
    }

    #[test]
    fn heavy_tails_get_their_dispersion_from_a_lognormal_fit() {
        use rand::SeedableRng;
        use rand_distr::Distribution;
        let t = 1_789_050_000_000 - 1_789_050_000_000 % HOUR_MS;
        // two calls an hour for four days, lognormal σ = 1.6 with mean 20: the true E[u²]/E[u]
        // is 20·e^(σ²) ≈ 258, which ~200 calls rarely show in their sample moments
        let sigma: f64 = 1.6;
        let ln = lognormal(20.0, sigma);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut d = Dispersion::default();
        for h in 0..96 {
            for k in 0..2 {
                d.add(
                    t + h * HOUR_MS + k * 1000,
                    ln.sample(&mut rng).round().max(1.0),
                );
            }
        }
        d.fold_complete(t + 96 * HOUR_MS);
        let truth = 20.0 * (sigma * sigma).exp();
        assert!(
            d.factor() > 0.5 * truth && d.factor() < 3.0 * truth,
            "{} vs {truth}",
            d.factor()
        );
        // never above the largest call: half one-unit lookups, half pages of 15 to 500 records
        // have a log-variance whose lognormal tail reads about 200,000 units per call
        let mut m = Dispersion::default();
        for i in 0..400 {
            m.add(
                t + i * 1000,
                if i % 2 == 0 {
                    1.0
                } else {
                    15.0 + (i % 486) as f64
                },
            );
        }
        m.fold_complete(t + HOUR_MS);
        assert!(m.factor() > 300.0 && m.factor() <= 500.0, "{}", m.factor());
        // the hour in progress raises the cap with its own largest call
        let f = m.factor_with((3000.0, 9e6, 3000.0));
        assert!(f > 500.0 && f <= 3000.0, "{f}");
        // light tails keep their sample moments (10s and 30s: 25, as computed)
        let mut e = Dispersion::default();
        for i in 0..100 {
            e.add(t + i * 1000, if i % 2 == 0 { 10.0 } else { 30.0 });
        }
        assert!((e.factor() - 25.0).abs() < 1e-3, "{}", e.factor());
    }

    #[test]
    fn the_tail_of_lookups_mixed_with_pages_is_read_from_the_moments() {
        use rand::SeedableRng;
        use rand_distr::Distribution;
        let t = 1_789_050_000_000 - 1_789_050_000_000 % HOUR_MS;
        // half one-unit lookups, half pages (lognormal σ 1.5, mean 8), as the fleet's heavy
        // tails: a lognormal fitted to the log-moments of the mix (σ ≈ 1.05) puts a call of
        // 100 fifty times rarer than it is, and one of 300 five hundred times
        let ln = lognormal(8.0, 1.5);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        let mut d = Dispersion::default();
        let mut sizes = Vec::new();
        for i in 0..20_000 {
            let u = if i % 2 == 0 {
                1.0
            } else {
                ln.sample(&mut rng).round()
            };
            d.add(t + i * 10_000, u);
            sizes.push(u);
        }
        d.fold_complete(t + 20_000 * 10_000);
        for x in [50.0, 100.0, 300.0] {
            let seen = sizes.iter().filter(|&&u| u > x).count() as f64 / sizes.len() as f64;
            let read = d.tail(x, d.factor());
            assert!(
                read > seen / 2.5 && read < seen * 2.5,
                "{x}: {read} vs {seen}"
            );
        }
        // light tails have none to explain an excess with
        let mut e = Dispersion::default();
        for i in 0..100 {
            e.add(t + i * 1000, if i % 2 == 0 { 10.0 } else { 30.0 });
        }
        assert_eq!(e.tail(50.0, e.factor()), 0.0);
    }

    #[test]
    fn decayed_counts_halve_per_half_life_whatever_the_order() {
        let hl = 15 * 60_000;
        let t0 = 1_789_050_000_000;
        let mut a = Scope::default();
        let mut b = Scope::default();
        let times = [t0, t0 + 10_000, t0 + 50_000, t0 + 20_000];
        for &t in &times {
            let w = a.weights(t, hl);
            a.add(w, Some(Breach::Product(1)));
        }
        for &t in times.iter().rev() {
            let w = b.weights(t, hl);
            b.add(w, None);
        }
        a.decay_to(t0 + hl, hl);
        b.decay_to(t0 + hl, hl);
        assert!((a.total - b.total).abs() < 1e-4);
        assert!(a.total > 2.0 && a.total < 2.2, "{}", a.total);
        assert_eq!(a.bad_product, a.total);
        assert_eq!(a.last_product, 1);
        // every call broke the rule, over the long span too, and none has been clean since
        assert_eq!(
            (a.bad_long[0], a.last_violation(0)),
            (a.total_long, (1.0, 0))
        );
        assert_eq!((b.bad_long[0], b.last_violation(0)), (0.0, (0.0, 4)));
        // four violating calls in a row make one violation
        assert_eq!(a.run[0], 4);
    }

    #[test]
    fn origin_table_is_bounded_and_replaces_the_least_used() {
        let mut o = Origins::default();
        for id in 0..ORIGIN_SLOTS as u32 {
            o.count_call();
            o.add(id, 0, 10.0 + id as f32);
        }
        o.count_call();
        o.add(99, 60_000, 1.0);
        (0..4).for_each(|_| o.count_call());
        let ids: Vec<u32> = o.iter().map(|(id, _, _)| id).collect();
        assert_eq!(ids.len(), ORIGIN_SLOTS);
        assert!(ids.contains(&99) && !ids.contains(&0));
        let (_, first, calls) = o.iter().find(|e| e.0 == 99).unwrap();
        assert_eq!((first, calls), (60_000, 1.0));
        // its one call, the client's 5 calls since it appeared (all of them its own as of that
        // call), and 4 more since
        assert_eq!(o.since(99), Some((1, 5.0, 1.0, 4)));
    }
}
