//! Hourly usage rollups: what a client used, of which product, from which origin, in which hour.
//!
//! Windows and baselines answer "is this client overrunning now"; the rollups answer the
//! account team's question afterwards: how much, of what, when. They are billing numbers, so
//! they are exact: every applied event counts once (duplicates were dropped before), late events
//! count too, and units are summed in `f64`.
//!
//! A client's rollup is a list of rows `(hour, dimension, label) → (units, events)`, appended in
//! hour order, with one product row and one origin row per active hour and label. Rows older
//! than the start of the previous calendar month are dropped, so a client costs about 48 bytes
//! per active hour (one product and one origin) and at most two months of them. Alert
//! transitions are kept beside the rows (the last [`ALERT_HISTORY`]) so a report can show them.

use serde::{Deserialize, Serialize};

use crate::alert::{AlertKind, Severity, State};
use crate::time::{hour_of, month_of, month_start, Millis, HOUR_MS};

/// Label id of an event that had no product (or no origin).
pub const NONE: u32 = u32::MAX - 1;
/// Alert transitions remembered per client.
pub const ALERT_HISTORY: usize = 32;

/// Which breakdown a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dim {
    Product,
    Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Hours since the epoch.
    pub hour: i32,
    pub dim: Dim,
    /// Interned label ([`NONE`] when the event did not say).
    pub label: u32,
    pub units: f64,
    pub events: u32,
}

/// One alert transition, as a report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub kind: AlertKind,
    pub severity: Severity,
    pub state: State,
    pub at: Millis,
    pub ratio: f64,
    pub summary: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    rows: Vec<Row>,
    alerts: Vec<AlertRecord>,
    /// Label ids of the last product and country seen (a lookup cache for the engine).
    pub last_labels: [u32; 2],
}

fn no_labels() -> [u32; 2] {
    [NONE; 2]
}

impl Default for Rollup {
    fn default() -> Self {
        Rollup {
            rows: Vec::new(),
            alerts: Vec::new(),
            last_labels: no_labels(),
        }
    }
}

impl Rollup {
    /// Count one event at `ts` of `product` from `origin` (label ids or [`NONE`]).
    #[inline]
    pub fn add(&mut self, ts: Millis, product: u32, origin: u32, units: f64) {
        let hour = hour_of(ts) as i32;
        self.add_row(hour, Dim::Product, product, units);
        self.add_row(hour, Dim::Origin, origin, units);
    }

    #[inline]
    fn add_row(&mut self, hour: i32, dim: Dim, label: u32, units: f64) {
        // Rows are in hour order, and almost every event is in the newest hour: search from
        // the end, and stop at the first older hour.
        let mut insert_at = self.rows.len();
        for (i, r) in self.rows.iter_mut().enumerate().rev() {
            if r.hour < hour {
                break;
            }
            if r.hour == hour && r.dim == dim && r.label == label {
                r.units += units;
                r.events += 1;
                return;
            }
            if r.hour > hour {
                insert_at = i;
            }
        }
        let row = Row {
            hour,
            dim,
            label,
            units,
            events: 1,
        };
        if insert_at == self.rows.len() {
            if self.rows.last().is_none_or(|r| r.hour < hour) {
                self.expire(hour);
            }
            self.rows.push(row);
        } else {
            self.rows.insert(insert_at, row);
        }
    }

    /// Drop rows before the start of the month preceding `hour`'s month.
    fn expire(&mut self, hour: i32) {
        let Some(first) = self.rows.first() else {
            return;
        };
        let keep_from = hour_of(month_start(month_of(hour as Millis * HOUR_MS) - 1)) as i32;
        if first.hour >= keep_from {
            return;
        }
        let n = self.rows.partition_point(|r| r.hour < keep_from);
        self.rows.drain(..n);
        if self.rows.capacity() > 4 * self.rows.len().max(8) {
            self.rows.shrink_to_fit();
        }
    }

    /// Rows in hour order.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Remember an alert transition, forgetting the oldest beyond [`ALERT_HISTORY`].
    pub fn record_alert(&mut self, record: AlertRecord) {
        if self.alerts.len() >= ALERT_HISTORY {
            self.alerts.remove(0);
        }
        self.alerts.push(record);
    }

    /// Alert transitions, oldest first.
    pub fn alerts(&self) -> &[AlertRecord] {
        &self.alerts
    }
}

/// How usage is broken down in a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// Per hour and product.
    Product,
    /// Per hour and origin (country or `AS<n>`).
    Origin,
    /// Per hour, all products together.
    Hour,
}

impl std::str::FromStr for By {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "product" => Ok(By::Product),
            "origin" => Ok(By::Origin),
            "hour" => Ok(By::Hour),
            other => Err(format!(
                "`by` must be product, origin or hour, not `{other}`"
            )),
        }
    }
}

/// Usage in one hour (and of one product or origin, unless by hour).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// Start of the hour, epoch milliseconds.
    pub hour: Millis,
    /// Product or origin name; `None` for by-hour rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub units: f64,
    pub events: u64,
}

impl Rollup {
    /// Usage in `[from, to)` (whole hours: an hour counts if it starts in the range), by `by`,
    /// sorted by hour then key. `name` turns a label id into its name.
    pub fn query(
        &self,
        from: Millis,
        to: Millis,
        by: By,
        name: impl Fn(u32) -> String,
    ) -> Vec<UsageRow> {
        let dim = match by {
            By::Origin => Dim::Origin,
            // every event has exactly one product row, so product rows also sum to the hour
            By::Product | By::Hour => Dim::Product,
        };
        let mut out: Vec<UsageRow> = Vec::new();
        for r in &self.rows {
            let hour = r.hour as Millis * HOUR_MS;
            if r.dim != dim || hour < from || hour >= to {
                continue;
            }
            let key = (by != By::Hour).then(|| name(r.label));
            match out
                .iter_mut()
                .rev()
                .find(|u| u.hour == hour && u.key == key)
            {
                Some(u) => {
                    u.units += r.units;
                    u.events += r.events as u64;
                }
                None => out.push(UsageRow {
                    hour,
                    key,
                    units: r.units,
                    events: r.events as u64,
                }),
            }
        }
        out.sort_by(|a, b| a.hour.cmp(&b.hour).then_with(|| a.key.cmp(&b.key)));
        out
    }
}

impl Rollup {
    /// Units in each hour of `[from, to)` (hours starting in the range), in hour order: every
    /// event has exactly one product row, so the product rows of an hour sum to its total.
    pub fn hour_totals(&self, from: Millis, to: Millis) -> impl Iterator<Item = (i32, f64)> + '_ {
        let (from_h, to_h) = (
            from.div_euclid(HOUR_MS) + i64::from(from.rem_euclid(HOUR_MS) != 0),
            to.div_euclid(HOUR_MS) + i64::from(to.rem_euclid(HOUR_MS) != 0),
        );
        let lo = self.rows.partition_point(|r| (r.hour as i64) < from_h);
        let hi = self.rows.partition_point(|r| (r.hour as i64) < to_h);
        let rows = &self.rows[lo..hi];
        let mut i = 0;
        std::iter::from_fn(move || {
            let hour = rows.get(i)?.hour;
            let mut units = 0.0;
            while let Some(r) = rows.get(i).filter(|r| r.hour == hour) {
                if r.dim == Dim::Product {
                    units += r.units;
                }
                i += 1;
            }
            Some((hour, units))
        })
    }

    /// Excess units in `[from, to)` (see [`excess_over`]).
    pub fn excess(&self, from: Millis, to: Millis, allowance: impl Fn(i32) -> f64) -> f64 {
        excess_over(self.hour_totals(from, to), allowance)
    }
}

/// The sum over `(hour, units)` of the units above that hour's allowance (`allowance(hour)`,
/// hours since the epoch). This is what an overage invoice counts: an hour under its allowance
/// does not offset an hour over it.
pub fn excess_over(
    hours: impl IntoIterator<Item = (i32, f64)>,
    allowance: impl Fn(i32) -> f64,
) -> f64 {
    hours
        .into_iter()
        .map(|(h, units)| (units - allowance(h)).max(0.0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn name(id: u32) -> String {
        format!("p{id}")
    }

    #[test]
    fn sums_per_hour_and_label_in_any_order() {
        let t = parse_rfc3339("2026-09-10T10:00:00Z").unwrap();
        let mut a = Rollup::default();
        let mut b = Rollup::default();
        let events = [
            (t + 5, 1, 7, 2.0),
            (t + HOUR_MS + 1, 1, 7, 3.0),
            (t + 10, 2, 7, 5.0),
            (t + 20, 1, 8, 1.0),
            (t + 2 * HOUR_MS, 2, 8, 4.0),
        ];
        for &(ts, p, o, u) in &events {
            a.add(ts, p, o, u);
        }
        for &(ts, p, o, u) in events.iter().rev() {
            b.add(ts, p, o, u);
        }
        for by in [By::Product, By::Origin, By::Hour] {
            assert_eq!(
                a.query(0, i64::MAX, by, name),
                b.query(0, i64::MAX, by, name)
            );
        }
        let by_hour = a.query(0, i64::MAX, By::Hour, name);
        let units: Vec<f64> = by_hour.iter().map(|r| r.units).collect();
        assert_eq!(units, vec![8.0, 3.0, 4.0]);
        assert_eq!(by_hour[0].events, 3);
        let products = a.query(t, t + HOUR_MS, By::Product, name);
        assert_eq!(
            products
                .iter()
                .map(|r| (r.key.clone().unwrap(), r.units))
                .collect::<Vec<_>>(),
            vec![("p1".to_owned(), 3.0), ("p2".to_owned(), 5.0)]
        );
        let origins = a.query(0, i64::MAX, By::Origin, name);
        assert_eq!(origins.iter().map(|r| r.units).sum::<f64>(), 15.0);
    }

    #[test]
    fn keeps_the_current_and_previous_month_only() {
        let jul = parse_rfc3339("2026-07-31T23:00:00Z").unwrap();
        let aug = parse_rfc3339("2026-08-01T00:00:00Z").unwrap();
        let sep = parse_rfc3339("2026-09-15T00:00:00Z").unwrap();
        let mut r = Rollup::default();
        r.add(jul, 1, 1, 1.0);
        r.add(aug, 1, 1, 2.0);
        r.add(sep, 1, 1, 4.0);
        let left = r.query(0, i64::MAX, By::Hour, name);
        assert_eq!(
            left.iter().map(|u| u.hour).collect::<Vec<_>>(),
            vec![aug, sep]
        );
        // a late event for August still counts
        r.add(aug + 5, 1, 1, 8.0);
        assert_eq!(r.query(aug, sep, By::Hour, name)[0].units, 10.0);
    }

    #[test]
    fn alert_history_is_bounded() {
        let mut r = Rollup::default();
        for i in 0..(ALERT_HISTORY as i64 + 5) {
            r.record_alert(AlertRecord {
                kind: AlertKind::OverContract,
                severity: Severity::Warning,
                state: State::Firing,
                at: i,
                ratio: 2.0,
                summary: "x".into(),
            });
        }
        assert_eq!(r.alerts().len(), ALERT_HISTORY);
        assert_eq!(r.alerts()[0].at, 5);
    }

    #[test]
    fn by_parses_and_says_what_is_allowed() {
        assert_eq!("origin".parse::<By>(), Ok(By::Origin));
        assert!("day"
            .parse::<By>()
            .unwrap_err()
            .contains("product, origin or hour"));
    }

    #[test]
    fn excess_counts_each_hour_over_its_allowance() {
        let t = parse_rfc3339("2026-09-10T10:00:00Z").unwrap();
        let mut r = Rollup::default();
        r.add(t + 5, 1, 7, 30.0);
        r.add(t + 10, 2, 8, 30.0); // hour 10: 60
        r.add(t + HOUR_MS, 1, 7, 20.0); // hour 11: 20, under: offsets nothing
        r.add(t + 3 * HOUR_MS, 1, 7, 100.0); // hour 13: 100
        let totals: Vec<(i32, f64)> = r.hour_totals(t, t + 4 * HOUR_MS).collect();
        let h = (t / HOUR_MS) as i32;
        assert_eq!(totals, vec![(h, 60.0), (h + 1, 20.0), (h + 3, 100.0)]);
        assert_eq!(r.excess(t, t + 4 * HOUR_MS, |_| 50.0), 10.0 + 50.0);
        // an hour counts when it starts in the range
        assert_eq!(r.excess(t + 1, t + 4 * HOUR_MS, |_| 50.0), 50.0);
        assert_eq!(r.excess(t, t + HOUR_MS, |_| 50.0), 10.0);
        assert_eq!(
            r.excess(t, t + 4 * HOUR_MS, |hh| if hh == h { 0.0 } else { 1e9 }),
            60.0
        );
    }
}
