//! Sliding windows in event time, built from fixed time buckets.
//!
//! Each client keeps three rings of bucket totals: minutes, hours and days. Adding an event is
//! O(1) (one add per ring); the sum over any window ending on a minute boundary `t` is composed
//! from whole days, then whole hours, then whole minutes before `t`, so it never includes events
//! at or after `t`. That matters: events up to the allowed lateness ahead of the watermark are
//! already in the rings when `t` is evaluated, and excluding them makes every evaluation depend
//! only on the events before `t`, whatever order they arrived in.
//!
//! Buckets hold `f32`: window sums are for detection, where 24 bits of precision are ample and
//! the bytes matter (millions of clients). Exact usage totals are kept elsewhere in `f64`.

use serde::{Deserialize, Serialize};

use crate::time::{Millis, DAY_MS, HOUR_MS, MINUTE_MS};

/// Minutes kept: the longest minute-granularity window (60) plus the largest allowed lateness
/// (30), plus slack.
pub const MINUTE_SLOTS: usize = 96;
/// Hours kept: one day of whole hours plus the current one, plus slack for lateness.
pub const HOUR_SLOTS: usize = 32;
/// Days kept: one week of whole days plus the current one.
pub const DAY_SLOTS: usize = 8;

/// The largest allowed lateness the rings can absorb.
pub const MAX_LATENESS: Millis = 30 * MINUTE_MS;
/// Most minutes [`Windows::sum_trimmed`] can drop.
pub const MAX_TRIM: usize = 10;
/// The longest window that can be asked for.
pub const MAX_WINDOW: Millis = 7 * DAY_MS;

/// What a ring bucket holds: unit sums (`f32`), saturating call counts (`u8`, `u16`), or
/// nothing (`()`: a ring without a count column costs no bytes for it).
pub trait Bucket:
    Copy + Default + PartialEq + std::fmt::Debug + Serialize + for<'de> Deserialize<'de>
{
    fn add(&mut self, v: Self);
    fn value(self) -> f64;
}

impl Bucket for f32 {
    #[inline]
    fn add(&mut self, v: f32) {
        *self += v;
    }
    #[inline]
    fn value(self) -> f64 {
        self as f64
    }
}

impl Bucket for u8 {
    #[inline]
    fn add(&mut self, v: u8) {
        *self = self.saturating_add(v);
    }
    #[inline]
    fn value(self) -> f64 {
        self as f64
    }
}

impl Bucket for u16 {
    #[inline]
    fn add(&mut self, v: u16) {
        *self = self.saturating_add(v);
    }
    #[inline]
    fn value(self) -> f64 {
        self as f64
    }
}

impl Bucket for () {
    #[inline]
    fn add(&mut self, _: ()) {}
    #[inline]
    fn value(self) -> f64 {
        0.0
    }
}

/// Totals for the last `N` periods (of whatever length the owner uses), and optionally a
/// count column `C` beside them. Both columns share one head: they always advance together,
/// and a head per column cost 8 bytes of every client's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Ring<const N: usize, T: Bucket = f32, C: Bucket = ()> {
    /// Newest period written; `i64::MIN` while empty.
    head: i64,
    vals: [T; N],
    counts: [C; N],
}

impl<const N: usize, T: Bucket, C: Bucket> Default for Ring<N, T, C> {
    fn default() -> Self {
        Ring {
            head: i64::MIN,
            vals: [T::default(); N],
            counts: [C::default(); N],
        }
    }
}

/// Serialized as `(head, values, counts)`: serde derives arrays only up to 32 elements.
impl<const N: usize, T: Bucket, C: Bucket> Serialize for Ring<N, T, C> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.head, &self.vals[..], &self.counts[..]).serialize(s)
    }
}

impl<'de, const N: usize, T: Bucket, C: Bucket> Deserialize<'de> for Ring<N, T, C> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn exactly<E: serde::de::Error, X, const N: usize>(v: Vec<X>) -> Result<[X; N], E> {
            v.try_into()
                .map_err(|v: Vec<X>| E::invalid_length(v.len(), &format!("{N} buckets").as_str()))
        }
        let (head, vals, counts): (i64, Vec<T>, Vec<C>) = Deserialize::deserialize(d)?;
        Ok(Ring {
            head,
            vals: exactly(vals)?,
            counts: exactly(counts)?,
        })
    }
}

impl<const N: usize, T: Bucket, C: Bucket> Ring<N, T, C> {
    #[inline]
    fn slot(period: i64) -> usize {
        period.rem_euclid(N as i64) as usize
    }

    /// Add `v` and `count` to `period`. Returns false (and drops them) if the period fell out
    /// of the ring.
    #[inline]
    pub fn add_counted(&mut self, period: i64, v: T, count: C) -> bool {
        if period > self.head {
            if self.head == i64::MIN || period - self.head >= N as i64 {
                self.vals = [T::default(); N];
                self.counts = [C::default(); N];
            } else {
                for p in self.head + 1..=period {
                    self.vals[Self::slot(p)] = T::default();
                    self.counts[Self::slot(p)] = C::default();
                }
            }
            self.head = period;
        } else if period <= self.head - N as i64 {
            return false;
        }
        self.vals[Self::slot(period)].add(v);
        self.counts[Self::slot(period)].add(count);
        true
    }

    /// Periods in `[from, to)` that the ring holds.
    #[inline]
    fn held(&self, from: i64, to: i64) -> std::ops::Range<i64> {
        if self.head == i64::MIN {
            return 0..0;
        }
        from.max(self.head - N as i64 + 1)..to.min(self.head + 1)
    }

    /// Sum of `column` over periods in `[from, to)`, counting periods outside the ring as zero.
    #[inline]
    fn column_sum<B: Bucket>(&self, column: &[B; N], from: i64, to: i64) -> f64 {
        // (a float sum starts at -0.0, which an empty window would print as "-0.0x")
        self.held(from, to)
            .map(|p| column[Self::slot(p)].value())
            .sum::<f64>()
            + 0.0
    }

    /// Sum over periods in `[from, to)`, counting periods outside the ring as zero.
    #[inline]
    pub fn sum(&self, from: i64, to: i64) -> f64 {
        self.column_sum(&self.vals, from, to)
    }

    /// Sum of the count column over periods in `[from, to)`.
    #[inline]
    pub fn count_sum(&self, from: i64, to: i64) -> f64 {
        self.column_sum(&self.counts, from, to)
    }

    /// Value and count of one period (zero if outside the ring).
    pub fn get_counted(&self, period: i64) -> (T, C) {
        if self.head == i64::MIN || period > self.head || period <= self.head - N as i64 {
            (T::default(), C::default())
        } else {
            (
                self.vals[Self::slot(period)],
                self.counts[Self::slot(period)],
            )
        }
    }

    /// Value of one period (zero if outside the ring).
    pub fn get(&self, period: i64) -> T {
        self.get_counted(period).0
    }
}

impl<const N: usize, T: Bucket> Ring<N, T> {
    /// Add `v` to `period`. Returns false (and drops it) if the period fell out of the ring.
    #[inline]
    pub fn add(&mut self, period: i64, v: T) -> bool {
        self.add_counted(period, v, ())
    }
}

/// A client's recent consumption at three granularities, and its call counts (saturating:
/// they only need to say "at least so many calls") at two.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    /// Units and calls per minute, and per hour.
    pub minutes: Ring<MINUTE_SLOTS, f32, u8>,
    pub hours: Ring<HOUR_SLOTS, f32, u16>,
    pub days: Ring<DAY_SLOTS>,
}

impl Windows {
    /// Record one call of `units` at `ts`. `ts` must not be older than the watermark (late
    /// events are not windowed), so it always lands inside the rings.
    #[inline]
    pub fn add(&mut self, ts: Millis, units: f32) {
        let (m, h) = (ts.div_euclid(MINUTE_MS), ts.div_euclid(HOUR_MS));
        self.minutes.add_counted(m, units, 1);
        self.hours.add_counted(h, units, 1);
        self.days.add(ts.div_euclid(DAY_MS), units);
    }

    /// Calls in hour `h`, unless the count saturated (a client of more than 65,535 calls an
    /// hour, whose hourly units are then a precise enough measure on their own).
    /// Forget the minute buckets if none of them can be read or written again: every read
    /// and write from `now` on is at a minute after `now − MINUTE_SLOTS` (windows of the
    /// minute rings look back at most an hour, and later events write at or after `now`), so
    /// a ring whose newest minute is older than that holds nothing anyone will see, and
    /// emptying it changes no sum. What makes a quiet client pack small
    /// ([`crate::packed`]).
    pub fn forget_minutes_before(&mut self, now: Millis) {
        if self.minutes.head < now.div_euclid(MINUTE_MS) - MINUTE_SLOTS as i64 {
            self.minutes = Ring::default();
        }
    }

    /// The hour in progress up to `t`, minute by minute: `(Σ units, Σ units² as if each
    /// minute's calls were of equal size, the largest such call)`. The squares and the largest
    /// call are exact for minutes of one call (a bulk export stands alone) and lower bounds
    /// otherwise; nothing at or after `t` counts, so the result does not depend on what has
    /// arrived ahead of `t`.
    pub fn hour_so_far(&self, t: Millis) -> (f64, f64, f64) {
        let b = t.div_euclid(MINUTE_MS);
        let from = t.div_euclid(HOUR_MS) * HOUR_MS / MINUTE_MS;
        (from..b).fold((0.0, 0.0, 0.0), |(s1, s2, top), m| {
            let (v, c) = self.minutes.get_counted(m);
            let (v, c) = (v as f64, c as f64);
            if c > 0.0 {
                (s1 + v, s2 + v * v / c, top.max(v / c))
            } else {
                (s1, s2, top)
            }
        })
    }

    pub fn hour_calls(&self, h: i64) -> Option<f64> {
        let n = self.hours.get_counted(h).1;
        (n < u16::MAX).then_some(n as f64)
    }

    /// Calls in the window ending at `t` (as [`Windows::sum`] composes it; windows longer than
    /// a day count their last day only, a lower bound). Saturates at 255 a minute.
    pub fn calls(&self, t: Millis, window: Millis) -> f64 {
        let b = t.div_euclid(MINUTE_MS);
        if window <= HOUR_MS {
            return self.minutes.count_sum(b - window / MINUTE_MS, b);
        }
        let h = t.div_euclid(HOUR_MS);
        let k = window.min(DAY_MS) / HOUR_MS;
        self.hours.count_sum(h - (k - 1), h) + self.minutes.count_sum(h * HOUR_MS / MINUTE_MS, b)
    }

    /// Sum over the window of length `window` ending at the minute boundary `t`, and the
    /// duration it actually covers. Windows up to an hour are exact to the minute; longer ones
    /// are whole hours (up to a day) or whole days, where the oldest period is the one `t` is in,
    /// so "1h…1d" covers the last `k - 1` whole hours plus the current partial hour.
    pub fn sum(&self, t: Millis, window: Millis) -> (f64, Millis) {
        let b = t.div_euclid(MINUTE_MS);
        if window <= HOUR_MS {
            let w = window / MINUTE_MS;
            return (self.minutes.sum(b - w, b), window);
        }
        let h = t.div_euclid(HOUR_MS);
        let h_start = h * HOUR_MS;
        let partial_hour = self.minutes.sum(h_start / MINUTE_MS, b);
        if window <= DAY_MS {
            let k = window / HOUR_MS;
            let whole = self.hours.sum(h - (k - 1), h);
            return (whole + partial_hour, (k - 1) * HOUR_MS + (t - h_start));
        }
        let d = t.div_euclid(DAY_MS);
        let d_start = d * DAY_MS;
        let partial_day = self.hours.sum(d_start / HOUR_MS, h) + partial_hour;
        let k = window / DAY_MS;
        let whole = self.days.sum(d - (k - 1), d);
        (whole + partial_day, (k - 1) * DAY_MS + (t - d_start))
    }

    /// Like [`Windows::sum`], less the `k` largest minutes, for windows of at most an hour (longer
    /// windows are returned whole): a burst of at most `k` minutes adds nothing, however intense.
    /// Returns the trimmed sum and the duration it covers.
    pub fn sum_trimmed(&self, t: Millis, window: Millis, k: usize) -> (f64, Millis) {
        let w = window / MINUTE_MS;
        if window > HOUR_MS || k == 0 || k as i64 >= w {
            return self.sum(t, window);
        }
        let b = t.div_euclid(MINUTE_MS);
        let mut top = [0.0f32; MAX_TRIM];
        let k = k.min(MAX_TRIM);
        let mut total = 0.0f64;
        for m in b - w..b {
            let v = self.minutes.get(m);
            total += v as f64;
            // insert into the k largest, kept sorted descending
            if v > top[k - 1] {
                let mut i = k - 1;
                while i > 0 && top[i - 1] < v {
                    top[i] = top[i - 1];
                    i -= 1;
                }
                top[i] = v;
            }
        }
        let trimmed: f64 = top[..k].iter().map(|&x| x as f64).sum();
        (total - trimmed, window - k as Millis * MINUTE_MS)
    }
}

/// Is `window` a length [`Windows::sum`] can serve exactly? Minutes up to an hour, whole hours
/// up to a day, whole days up to a week.
pub fn is_supported_window(window: Millis) -> bool {
    (window > 0 && window <= HOUR_MS && window % MINUTE_MS == 0)
        || (window > HOUR_MS && window <= DAY_MS && window % HOUR_MS == 0)
        || (window > DAY_MS && window <= MAX_WINDOW && window % DAY_MS == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Millis = 1_789_000_000_000 - 1_789_000_000_000 % DAY_MS;

    #[test]
    fn ring_clears_skipped_periods() {
        let mut r: Ring<4> = Ring::default();
        r.add(10, 1.0);
        r.add(11, 2.0);
        r.add(13, 3.0);
        assert_eq!(r.sum(10, 14), 6.0);
        r.add(16, 5.0);
        assert_eq!(r.sum(0, 100), 8.0, "periods 10 and 11 fell out");
        assert!(!r.add(12, 1.0), "too old for the ring");
        r.add(100, 1.0);
        assert_eq!(r.sum(0, 200), 1.0);
        assert_eq!(r.get(100), 1.0);
        assert_eq!(r.get(99), 0.0);
        // an empty span is +0 (alerts quoted "-0.0x" for a client with nothing in the window)
        assert!(r.sum(50, 60).is_sign_positive());
    }

    #[test]
    fn windows_compose_across_granularities() {
        let mut w = Windows::default();
        // one unit per minute for two days
        for m in 0..(2 * 24 * 60) {
            w.add(T0 + m * MINUTE_MS, 1.0);
        }
        let t = T0 + 2 * DAY_MS - 30 * MINUTE_MS; // 23:30 on day 2
        assert_eq!(w.sum(t, 5 * MINUTE_MS), (5.0, 5 * MINUTE_MS));
        let (s, d) = w.sum(t, 6 * HOUR_MS);
        assert_eq!(d, 5 * HOUR_MS + 30 * MINUTE_MS);
        assert_eq!(s, (d / MINUTE_MS) as f64);
        let (s, d) = w.sum(t, DAY_MS);
        assert_eq!(s, (d / MINUTE_MS) as f64);
        let (s, d) = w.sum(t, 2 * DAY_MS);
        assert_eq!(d, DAY_MS + 23 * HOUR_MS + 30 * MINUTE_MS);
        assert_eq!(s, (d / MINUTE_MS) as f64);
    }

    #[test]
    fn events_at_or_after_t_are_excluded() {
        let mut w = Windows::default();
        w.add(T0 + HOUR_MS - 1, 1.0); // in the minute before t
        w.add(T0 + HOUR_MS, 100.0); // at t: a later evaluation's business
        w.add(T0 + HOUR_MS + 30 * 1000, 100.0);
        let t = T0 + HOUR_MS;
        assert_eq!(w.sum(t, 5 * MINUTE_MS).0, 1.0);
        assert_eq!(w.sum(t, 6 * HOUR_MS).0, 1.0);
        assert_eq!(w.sum(t, 2 * DAY_MS).0, 1.0);
    }

    #[test]
    fn calls_are_counted_like_units() {
        let mut w = Windows::default();
        for m in 0..(3 * 60) {
            w.add(T0 + m * MINUTE_MS, 7.0);
            w.add(T0 + m * MINUTE_MS + 1, 7.0);
        }
        let t = T0 + 3 * HOUR_MS - 30 * MINUTE_MS;
        assert_eq!(w.calls(t, 15 * MINUTE_MS), 30.0);
        let (units, dur) = w.sum(t, 2 * HOUR_MS);
        assert_eq!(w.calls(t, 2 * HOUR_MS), units / 7.0);
        assert_eq!(dur, HOUR_MS + 30 * MINUTE_MS);
        // saturation only ever undercounts
        let mut w = Windows::default();
        for _ in 0..1000 {
            w.add(T0, 1.0);
        }
        assert_eq!(w.calls(T0 + MINUTE_MS, MINUTE_MS), 255.0);
    }

    #[test]
    fn the_hour_so_far_counts_calls_before_t_only() {
        let mut w = Windows::default();
        w.add(T0 - MINUTE_MS, 99.0); // the hour before: folded elsewhere
        w.add(T0 + MINUTE_MS, 30.0); // one call: its square exactly
        w.add(T0 + 2 * MINUTE_MS, 4.0); // two calls of a minute: as if equal
        w.add(T0 + 2 * MINUTE_MS + 1, 6.0);
        w.add(T0 + 10 * MINUTE_MS, 500.0); // at t: a later evaluation's business
        assert_eq!(
            w.hour_so_far(T0 + 10 * MINUTE_MS),
            (40.0, 900.0 + 50.0, 30.0)
        );
        assert_eq!(w.hour_so_far(T0), (0.0, 0.0, 0.0));
    }

    #[test]
    fn trimming_removes_the_most_intense_minutes() {
        let mut w = Windows::default();
        for m in 0..15 {
            let units = if (5..8).contains(&m) { 100.0 } else { 10.0 };
            w.add(T0 + m * MINUTE_MS, units);
        }
        let t = T0 + 15 * MINUTE_MS;
        assert_eq!(w.sum(t, 15 * MINUTE_MS).0, 420.0);
        assert_eq!(w.sum_trimmed(t, 15 * MINUTE_MS, 3), (120.0, 12 * MINUTE_MS));
        assert_eq!(w.sum_trimmed(t, 15 * MINUTE_MS, 0).0, 420.0);
        assert_eq!(w.sum_trimmed(t, 6 * HOUR_MS, 3), w.sum(t, 6 * HOUR_MS));
    }

    #[test]
    fn supported_windows() {
        assert!(is_supported_window(5 * MINUTE_MS));
        assert!(is_supported_window(6 * HOUR_MS));
        assert!(is_supported_window(7 * DAY_MS));
        assert!(!is_supported_window(90 * MINUTE_MS));
        assert!(!is_supported_window(8 * DAY_MS));
        assert!(!is_supported_window(30 * 1000));
    }

    proptest! {
        /// Window sums equal the brute-force sum of the events before `t` in the covered span,
        /// for any arrival order of events no older than the lateness allows.
        #[test]
        fn sums_match_brute_force(
            mut events in proptest::collection::vec((0i64..(3 * DAY_MS / 1000), 1u32..1000), 1..400),
            window_idx in 0usize..8,
            shuffle_seed in any::<u64>(),
        ) {
            let windows = [MINUTE_MS, 5 * MINUTE_MS, 30 * MINUTE_MS, HOUR_MS, 6 * HOUR_MS, DAY_MS, 2 * DAY_MS, 7 * DAY_MS];
            let window = windows[window_idx];
            events.sort();
            let last = events.last().unwrap().0 * 1000;
            let t = T0 + (last / MINUTE_MS) * MINUTE_MS;
            // shuffle within a small span so every event is still within the rings
            let mut order: Vec<_> = events.iter().map(|&(s, u)| (T0 + s * 1000, u)).collect();
            let mut x = shuffle_seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                let j = (x % (i as u64 + 1)) as usize;
                if (order[i].0 - order[j].0).abs() < 10 * MINUTE_MS { order.swap(i, j); }
            }
            let mut w = Windows::default();
            for &(ts, u) in &order { w.add(ts, u as f32); }
            let (sum, covered) = w.sum(t, window);
            let brute: f64 = order.iter().filter(|&&(ts, _)| ts >= t - covered && ts < t).map(|&(_, u)| u as f64).sum();
            prop_assert!((sum - brute).abs() < 1e-6 * brute.max(1.0), "sum {} brute {}", sum, brute);
            prop_assert!(covered <= window);
        }
    }
}
