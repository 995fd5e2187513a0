//! Usage history: what a client used, of which product, from which origin, and when.
//!
//! Windows and baselines answer "is this client overrunning now"; the history answers the
//! account team's question afterwards: how much, of what, when. They are billing numbers, so
//! they are exact: every applied event counts once (duplicates were dropped before), late events
//! count too, and units are summed in `f64`.
//!
//! A client's history is rows `(period, dimension, label) → (units, events)`, one product row
//! and one origin row per period and label, kept at two resolutions:
//!
//! - **hours** for the current UTC day and the [`HOURLY_DAYS`]` - 1` before it;
//! - **days** beyond, back to the start of the previous calendar month (older rows are dropped).
//!   A day also keeps its units over the contract's hourly rate, summed hour by hour when its
//!   hours were folded (an hour under the rate does not offset one over it), so the units over
//!   contract of a month stay the invoice's figure after its hours are gone.
//!
//! Where the rows live: the newest two hours (where nearly every event lands, the allowed
//! lateness being under an hour) as plain [`Row`]s; everything older sealed in a compact
//! byte encoding (see [`codec`]), about 6 bytes a row instead of 24. An event for a sealed
//! period (a backlog hours late) waits among the plain rows and is merged at the next seal. So
//! an always-active client costs about 14 bytes an hour for a week and about 20 a day before
//! it (`BENCHMARKS.md`), where plain hourly rows for two months cost 70 KB.
//!
//! Alert transitions are kept beside the rows (the last [`ALERT_HISTORY`]) so a report can
//! show them.

use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

use crate::alert::{AlertKind, Severity, State};
use crate::time::{hour_of, month_of, month_start, Millis, HOUR_MS};

/// Label id of an event that had no product (or no origin).
pub const NONE: u32 = u32::MAX - 1;
/// Alert transitions remembered per client.
pub const ALERT_HISTORY: usize = 32;
/// UTC days whose usage stays hourly: the current one and the six before it. Older days are
/// kept as one row per day and label.
pub const HOURLY_DAYS: i32 = 7;

/// Which breakdown a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dim {
    Product,
    Origin,
}

/// Usage of one label in one period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Start of its period, hours since the epoch.
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
    /// Rows of the newest two hours, and late rows for sealed periods, in hour order.
    open: Vec<Row>,
    /// Older periods, encoded ([`codec`]), in time order.
    sealed: ThinVec<u8>,
    /// The hour after the last sealed period (the base of the next one's offset).
    sealed_end: i32,
    alerts: ThinVec<AlertRecord>,
    /// Label ids of the last product and country seen (a lookup cache for the engine).
    pub last_labels: [u32; 2],
}

impl Default for Rollup {
    fn default() -> Self {
        Rollup {
            open: Vec::new(),
            sealed: ThinVec::new(),
            sealed_end: 0,
            alerts: ThinVec::new(),
            last_labels: [NONE; 2],
        }
    }
}

/// A period of sealed usage: an hour, or a UTC day with its units over contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Hours since the epoch.
    pub start: i32,
    pub day: bool,
    /// Days only: the units above the contract's hourly rate, hour by hour, when the day's
    /// hours were folded (0 for a client without a contract then).
    pub excess: f64,
    /// Its rows, each with `hour == start`.
    pub rows: Vec<Row>,
}

impl Block {
    pub fn hours(&self) -> i32 {
        if self.day {
            24
        } else {
            1
        }
    }

    fn end(&self) -> i32 {
        self.start + self.hours()
    }

    /// The units of the period (every event has exactly one product row).
    pub fn total(&self) -> f64 {
        self.rows
            .iter()
            .filter(|r| r.dim == Dim::Product)
            .map(|r| r.units)
            .sum()
    }

    fn add(&mut self, dim: Dim, label: u32, units: f64, events: u32) {
        match self
            .rows
            .iter_mut()
            .find(|r| r.dim == dim && r.label == label)
        {
            Some(r) => {
                r.units += units;
                r.events += events;
            }
            None => self.rows.push(Row {
                hour: self.start,
                dim,
                label,
                units,
                events,
            }),
        }
    }
}

fn day_start(hour: i32) -> i32 {
    hour.div_euclid(24) * 24
}

impl Rollup {
    /// Count one event at `ts` of `product` from `origin` (label ids or [`NONE`]).
    /// `allowance` is the client's contracted units per hour, if it has a contract: what the
    /// hours of a day exceed when they are folded into the day.
    #[inline]
    pub fn add(
        &mut self,
        ts: Millis,
        product: u32,
        origin: u32,
        units: f64,
        allowance: Option<f64>,
    ) {
        let hour = hour_of(ts) as i32;
        let newest = self.open.last().is_none_or(|r| r.hour < hour);
        if newest && self.open.first().is_some_and(|r| r.hour < hour - 1) {
            self.seal(hour - 1, allowance);
        }
        self.add_row(hour, Dim::Product, product, units);
        self.add_row(hour, Dim::Origin, origin, units);
    }

    #[inline]
    fn add_row(&mut self, hour: i32, dim: Dim, label: u32, units: f64) {
        // Rows are in hour order, and almost every event is in the newest hour: search from
        // the end, and stop at the first older hour.
        let mut insert_at = self.open.len();
        for (i, r) in self.open.iter_mut().enumerate().rev() {
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
        self.open.insert(
            insert_at,
            Row {
                hour,
                dim,
                label,
                units,
                events: 1,
            },
        );
    }

    /// Seal the open rows of hours before `keep_from`. A new day among the sealed hours folds
    /// the hours that left the hourly span into days and drops what is past keeping.
    fn seal(&mut self, keep_from: i32, allowance: Option<f64>) {
        let n = self.open.partition_point(|r| r.hour < keep_from);
        if n == 0 {
            return;
        }
        let newest = self.open[n - 1].hour;
        let late = self.open[0].hour < self.sealed_end;
        let new_day = self.sealed.is_empty() || day_start(newest) >= self.sealed_end;
        let rows: Vec<Row> = self.open.drain(..n).collect();
        if late || new_day {
            let mut blocks: Vec<Block> = codec::Blocks::new(&self.sealed).collect();
            merge(&mut blocks, &rows);
            fold(&mut blocks, keep_from + 1, allowance);
            self.rewrite(&blocks);
        } else {
            // the common case: whole new hours after the last sealed one
            let mut bytes = Vec::with_capacity(16 * rows.len());
            for hour in rows.chunk_by(|a, b| a.hour == b.hour) {
                let block = Block {
                    start: hour[0].hour,
                    day: false,
                    excess: 0.0,
                    rows: hour.to_vec(),
                };
                codec::put_block(&mut bytes, self.sealed_end, &block);
                self.sealed_end = block.end();
            }
            // grown by a quarter at a time: an hour's bytes at a time would copy the whole
            // history every hour, doubling would leave up to half of it unused
            let free = self.sealed.capacity() - self.sealed.len();
            if free < bytes.len() {
                self.sealed
                    .reserve_exact(bytes.len().max(self.sealed.len() / 4));
            }
            self.sealed.extend_from_slice(&bytes);
        }
    }

    fn rewrite(&mut self, blocks: &[Block]) {
        let mut buf = Vec::new();
        let mut end = 0;
        for b in blocks {
            codec::put_block(&mut buf, end, b);
            end = b.end();
        }
        self.sealed = ThinVec::from(buf);
        self.sealed_end = end;
    }

    /// Every period of usage, oldest first, open rows merged into their periods.
    pub fn blocks(&self) -> Vec<Block> {
        let mut all: Vec<Block> = codec::Blocks::new(&self.sealed).collect();
        // as the next seal will merge them
        merge(&mut all, &self.open);
        all
    }

    /// Bytes this history holds on the heap (rows and encoding, not alert records).
    pub fn heap_bytes(&self) -> usize {
        self.open.capacity() * std::mem::size_of::<Row>()
            + if self.sealed.capacity() > 0 {
                self.sealed.capacity() + 16
            } else {
                0
            }
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

/// Add late `rows` (in hour order) to the sealed `blocks`: into the hour or day that holds them,
/// else as new hours. A day's units over contract stay as they were when it was folded: its
/// hours are gone, so what a late hour exceeds is unknown.
fn merge(blocks: &mut Vec<Block>, rows: &[Row]) {
    for r in rows {
        let i = blocks.partition_point(|b| b.end() <= r.hour);
        match blocks.get_mut(i).filter(|b| b.start <= r.hour) {
            Some(b) => b.add(r.dim, r.label, r.units, r.events),
            None => blocks.insert(
                i,
                Block {
                    start: r.hour,
                    day: false,
                    excess: 0.0,
                    rows: vec![*r],
                },
            ),
        }
    }
}

/// Fold the hours of days before the hourly span (as of hour `now`) into days, and drop periods
/// before the start of the previous calendar month.
fn fold(blocks: &mut Vec<Block>, now: i32, allowance: Option<f64>) {
    let hourly_from = day_start(now) - 24 * (HOURLY_DAYS - 1);
    let keep_from = hour_of(month_start(month_of(now as Millis * HOUR_MS) - 1)) as i32;
    let mut out: Vec<Block> = Vec::with_capacity(blocks.len());
    for b in blocks.drain(..) {
        if b.start < keep_from {
            continue;
        }
        if b.day || b.start >= hourly_from {
            out.push(b);
            continue;
        }
        let excess = allowance.map_or(0.0, |a| (b.total() - a).max(0.0));
        let start = day_start(b.start);
        let day = match out.last_mut().filter(|d| d.day && d.start == start) {
            Some(d) => d,
            None => {
                out.push(Block {
                    start,
                    day: true,
                    excess: 0.0,
                    rows: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        day.excess += excess;
        for r in &b.rows {
            day.add(r.dim, r.label, r.units, r.events);
        }
    }
    *blocks = out;
}

/// How usage is broken down in a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// Per period and product.
    Product,
    /// Per period and origin (country or `AS<n>`).
    Origin,
    /// Per period, all products together.
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

pub(crate) fn one_hour(h: &u32) -> bool {
    *h == 1
}

pub(crate) fn default_hours() -> u32 {
    1
}

/// Usage in one period (and of one product or origin, unless by hour): an hour, or a UTC day
/// beyond the hourly span ([`HOURLY_DAYS`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// Start of the period, epoch milliseconds.
    pub hour: Millis,
    /// Hours the row covers: 1, or 24 for a day.
    #[serde(default = "default_hours", skip_serializing_if = "one_hour")]
    pub hours: u32,
    /// Product or origin name; `None` for by-hour rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub units: f64,
    pub events: u64,
    /// A day's units above the contract's hourly rate, hour by hour (`None` for an hour, whose
    /// excess its units give). A product's or origin's row carries its share of its day's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_contract: Option<f64>,
}

impl UsageRow {
    /// An hour's row.
    pub fn hourly(hour: Millis, key: Option<String>, units: f64, events: u64) -> Self {
        UsageRow {
            hour,
            hours: 1,
            key,
            units,
            events,
            over_contract: None,
        }
    }
}

impl Rollup {
    /// Usage in `[from, to)` (a period counts if it starts in the range), by `by`, sorted by
    /// period then key. `name` turns a label id into its name.
    pub fn query(
        &self,
        from: Millis,
        to: Millis,
        by: By,
        name: impl Fn(u32) -> String,
    ) -> Vec<UsageRow> {
        let dim = match by {
            By::Origin => Dim::Origin,
            // every event has exactly one product row, so product rows also sum to the period
            By::Product | By::Hour => Dim::Product,
        };
        let mut out: Vec<UsageRow> = Vec::new();
        for b in self.blocks() {
            let start = b.start as Millis * HOUR_MS;
            if start < from || start >= to {
                continue;
            }
            let total = b.total();
            let first = out.len();
            for r in b.rows.iter().filter(|r| r.dim == dim) {
                let key = (by != By::Hour).then(|| name(r.label));
                let share = if total > 0.0 { r.units / total } else { 0.0 };
                match out[first..].iter_mut().find(|u| u.key == key) {
                    Some(u) => {
                        u.units += r.units;
                        u.events += r.events as u64;
                        if let Some(x) = &mut u.over_contract {
                            *x += b.excess * share;
                        }
                    }
                    None => out.push(UsageRow {
                        hour: start,
                        hours: b.hours() as u32,
                        key,
                        units: r.units,
                        events: r.events as u64,
                        over_contract: b.day.then_some(b.excess * share),
                    }),
                }
            }
            if by == By::Hour {
                if let Some(u) = out.get_mut(first).filter(|u| u.over_contract.is_some()) {
                    // exactly the day's, not a sum of shares
                    u.over_contract = Some(b.excess);
                }
            }
            out[first..].sort_by(|a, b| a.key.cmp(&b.key));
        }
        out
    }

    /// Units in each hour of `[from, to)` (hours starting in the range) that is still kept
    /// hourly, in hour order.
    pub fn hour_totals(&self, from: Millis, to: Millis) -> Vec<(i32, f64)> {
        let (from_h, to_h) = hour_bounds(from, to);
        self.blocks()
            .iter()
            .filter(|b| !b.day && (from_h..to_h).contains(&(b.start as i64)))
            .map(|b| (b.start, b.total()))
            .collect()
    }

    /// Units above `allowance` (per hour since the epoch) in `[from, to)`, hour by hour (see
    /// [`excess_over`]); a day kept as a day adds what its hours exceeded when they were folded.
    pub fn excess(&self, from: Millis, to: Millis, allowance: impl Fn(i32) -> f64) -> f64 {
        let (from_h, to_h) = hour_bounds(from, to);
        let blocks = self.blocks();
        let blocks = blocks
            .iter()
            .filter(|b| (from_h..to_h).contains(&(b.start as i64)));
        let days: f64 = blocks.clone().filter(|b| b.day).map(|b| b.excess).sum();
        days + excess_over(
            blocks.filter(|b| !b.day).map(|b| (b.start, b.total())),
            allowance,
        )
    }
}

/// The hours starting in `[from, to)`, as hours since the epoch.
fn hour_bounds(from: Millis, to: Millis) -> (i64, i64) {
    (
        from.div_euclid(HOUR_MS) + i64::from(from.rem_euclid(HOUR_MS) != 0),
        to.div_euclid(HOUR_MS) + i64::from(to.rem_euclid(HOUR_MS) != 0),
    )
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

/// The sealed periods' byte encoding: a block per period, in time order.
///
/// ```text
/// block  := offset [excess] count row*
/// offset := varint(zigzag(start − previous block's end) << 1 | is_day)
/// excess := number                        (days only)
/// count  := varint                        (rows)
/// row    := varint(label' << 1 | dim) number varint(events)
///           label' = 0 for NONE, else label + 1
/// number := varint(v << 1)                when v is a whole number below 2^52
///         | varint(1) f64 (8 bytes, LE)   otherwise
/// ```
///
/// Units are sums of whole numbers almost always, so a row is about 6 bytes; nothing is
/// rounded.
pub mod codec {
    use super::{Block, Dim, Row, NONE};

    const WHOLE_BELOW: f64 = (1u64 << 52) as f64;

    pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn put_number(out: &mut Vec<u8>, v: f64) {
        if (0.0..WHOLE_BELOW).contains(&v) && v.fract() == 0.0 {
            put_varint(out, (v as u64) << 1);
        } else {
            put_varint(out, 1);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Append `b`, the previous block having ended at `prev_end` (hours since the epoch).
    pub fn put_block(out: &mut Vec<u8>, prev_end: i32, b: &Block) {
        let delta = i64::from(b.start) - i64::from(prev_end);
        let zigzag = ((delta << 1) ^ (delta >> 63)) as u64;
        put_varint(out, zigzag << 1 | u64::from(b.day));
        if b.day {
            put_number(out, b.excess);
        }
        put_varint(out, b.rows.len() as u64);
        for r in &b.rows {
            let label = if r.label == NONE {
                0
            } else {
                u64::from(r.label) + 1
            };
            put_varint(out, label << 1 | u64::from(r.dim == Dim::Origin));
            put_number(out, r.units);
            put_varint(out, u64::from(r.events));
        }
    }

    /// The blocks of an encoding, oldest first. It only reads what [`put_block`] wrote; a
    /// truncated encoding ends the iteration.
    pub struct Blocks<'a> {
        buf: &'a [u8],
        end: i32,
    }

    impl<'a> Blocks<'a> {
        pub fn new(buf: &'a [u8]) -> Self {
            Blocks { buf, end: 0 }
        }

        fn varint(&mut self) -> Option<u64> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let (&byte, rest) = self.buf.split_first()?;
                self.buf = rest;
                v |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return Some(v);
                }
            }
            None
        }

        fn number(&mut self) -> Option<f64> {
            let v = self.varint()?;
            if v & 1 == 0 {
                return Some((v >> 1) as f64);
            }
            let (bytes, rest) = self.buf.split_first_chunk::<8>()?;
            self.buf = rest;
            Some(f64::from_le_bytes(*bytes))
        }

        fn block(&mut self) -> Option<Block> {
            let head = self.varint()?;
            let zigzag = head >> 1;
            let delta = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
            let start = i32::try_from(i64::from(self.end) + delta).ok()?;
            let day = head & 1 == 1;
            let excess = if day { self.number()? } else { 0.0 };
            let n = self.varint()?;
            let mut rows = Vec::with_capacity(n.min(64) as usize);
            for _ in 0..n {
                let code = self.varint()?;
                let label = match code >> 1 {
                    0 => NONE,
                    l => u32::try_from(l - 1).ok()?,
                };
                rows.push(Row {
                    hour: start,
                    dim: if code & 1 == 1 {
                        Dim::Origin
                    } else {
                        Dim::Product
                    },
                    label,
                    units: self.number()?,
                    events: u32::try_from(self.varint()?).ok()?,
                });
            }
            let b = Block {
                start,
                day,
                excess,
                rows,
            };
            self.end = b.end();
            Some(b)
        }
    }

    impl Iterator for Blocks<'_> {
        type Item = Block;
        fn next(&mut self) -> Option<Block> {
            if self.buf.is_empty() {
                return None;
            }
            let b = self.block();
            if b.is_none() {
                debug_assert!(false, "a truncated usage encoding");
                self.buf = &[];
            }
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{day_of, parse_rfc3339, DAY_MS};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

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
            (t + 5 * HOUR_MS, 2, 8, 0.5),
        ];
        for &(ts, p, o, u) in &events {
            a.add(ts, p, o, u, None);
        }
        for &(ts, p, o, u) in events.iter().rev() {
            b.add(ts, p, o, u, None);
        }
        for by in [By::Product, By::Origin, By::Hour] {
            assert_eq!(
                a.query(0, i64::MAX, by, name),
                b.query(0, i64::MAX, by, name)
            );
        }
        let by_hour = a.query(0, i64::MAX, By::Hour, name);
        let units: Vec<f64> = by_hour.iter().map(|r| r.units).collect();
        assert_eq!(units, vec![8.0, 3.0, 4.0, 0.5]);
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
        assert_eq!(origins.iter().map(|r| r.units).sum::<f64>(), 15.5);
    }

    #[test]
    fn keeps_the_current_and_previous_month_only() {
        let jul = parse_rfc3339("2026-07-31T23:00:00Z").unwrap();
        let aug = parse_rfc3339("2026-08-01T00:00:00Z").unwrap();
        let sep = parse_rfc3339("2026-09-15T00:00:00Z").unwrap();
        let mut r = Rollup::default();
        r.add(jul, 1, 1, 1.0, None);
        r.add(aug, 1, 1, 2.0, None);
        r.add(sep, 1, 1, 4.0, None);
        let left = r.query(0, i64::MAX, By::Hour, name);
        assert_eq!(
            left.iter().map(|u| (u.hour, u.hours)).collect::<Vec<_>>(),
            vec![(aug, 24), (sep, 1)]
        );
        // a late event for August still counts, in its day
        r.add(aug + 5 * HOUR_MS, 1, 1, 8.0, None);
        assert_eq!(r.query(aug, sep, By::Hour, name)[0].units, 10.0);
        r.add(sep + 3 * HOUR_MS, 1, 1, 1.0, None);
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
        r.add(t + 5, 1, 7, 30.0, None);
        r.add(t + 10, 2, 8, 30.0, None); // hour 10: 60
        r.add(t + HOUR_MS, 1, 7, 20.0, None); // hour 11: 20, under: offsets nothing
        r.add(t + 3 * HOUR_MS, 1, 7, 100.0, None); // hour 13: 100
        let h = (t / HOUR_MS) as i32;
        assert_eq!(
            r.hour_totals(t, t + 4 * HOUR_MS),
            vec![(h, 60.0), (h + 1, 20.0), (h + 3, 100.0)]
        );
        assert_eq!(r.excess(t, t + 4 * HOUR_MS, |_| 50.0), 10.0 + 50.0);
        // an hour counts when it starts in the range
        assert_eq!(r.excess(t + 1, t + 4 * HOUR_MS, |_| 50.0), 50.0);
        assert_eq!(r.excess(t, t + HOUR_MS, |_| 50.0), 10.0);
        assert_eq!(
            r.excess(t, t + 4 * HOUR_MS, |hh| if hh == h { 0.0 } else { 1e9 }),
            60.0
        );
    }

    #[test]
    fn the_encoding_gives_back_what_it_was_given() {
        let blocks = vec![
            Block {
                start: -30,
                day: true,
                excess: 12.25,
                rows: vec![Row {
                    hour: -30,
                    dim: Dim::Origin,
                    label: NONE,
                    units: 0.1 + 0.2,
                    events: u32::MAX,
                }],
            },
            Block {
                start: 493_000,
                day: false,
                excess: 0.0,
                rows: vec![
                    Row {
                        hour: 493_000,
                        dim: Dim::Product,
                        label: 0,
                        units: 4_503_599_627_370_495.0,
                        events: 1,
                    },
                    Row {
                        hour: 493_000,
                        dim: Dim::Origin,
                        label: NONE - 1,
                        units: 1e300,
                        events: 0,
                    },
                ],
            },
        ];
        let mut buf = Vec::new();
        let mut end = 0;
        for b in &blocks {
            codec::put_block(&mut buf, end, b);
            end = b.end();
        }
        assert_eq!(codec::Blocks::new(&buf).collect::<Vec<_>>(), blocks);
    }

    /// An always-active client's sums by day and label, and by hour in the hourly span, are
    /// those of every event (whole units: exact whatever the order of addition), and its units
    /// over contract those of every hour, with events up to a few hours late.
    fn matches_a_plain_sum(events: &[(i64, u32, u32, u32)], allowance: f64) {
        let t0 = parse_rfc3339("2026-08-03T00:00:00Z").unwrap();
        let mut r = Rollup::default();
        let mut hours: BTreeMap<i64, f64> = BTreeMap::new();
        let mut days: BTreeMap<(i64, u32), (f64, u64)> = BTreeMap::new();
        let mut newest = 0;
        for &(minute, product, origin, units) in events {
            let ts = t0 + minute * 60_000;
            r.add(ts, product, origin, units as f64, Some(allowance));
            *hours.entry(ts.div_euclid(HOUR_MS)).or_default() += units as f64;
            let d = days.entry((day_of(ts), product)).or_default();
            d.0 += units as f64;
            d.1 += 1;
            newest = newest.max(ts);
        }
        let hourly_from = (day_of(newest) - i64::from(HOURLY_DAYS) + 1) * DAY_MS;
        let by_product = r.query(t0, i64::MAX, By::Product, |l| l.to_string());
        let mut got: BTreeMap<(i64, u32), (f64, u64)> = BTreeMap::new();
        for u in &by_product {
            // days leave the hourly span when an hour of a later day is sealed
            if u.hour >= hourly_from {
                assert_eq!(u.hours, 1, "{u:?}");
            } else if u.hour < hourly_from - DAY_MS {
                assert_eq!(u.hours, 24, "{u:?}");
            }
            let g = got
                .entry((day_of(u.hour), u.key.as_ref().unwrap().parse().unwrap()))
                .or_default();
            g.0 += u.units;
            g.1 += u.events;
        }
        assert_eq!(got, days);
        let hourly: Vec<(i32, f64)> = hours
            .range(hourly_from / HOUR_MS..)
            .map(|(&h, &u)| (h as i32, u))
            .collect();
        assert_eq!(r.hour_totals(hourly_from, i64::MAX), hourly);
        let want = excess_over(hours.iter().map(|(&h, &u)| (h as i32, u)), |_| allowance);
        let got = r.excess(t0, i64::MAX, |_| allowance);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        let by_day: f64 = r
            .query(t0, i64::MAX, By::Hour, |l| l.to_string())
            .iter()
            .map(|u| {
                u.over_contract
                    .unwrap_or_else(|| (u.units - allowance).max(0.0))
            })
            .sum();
        assert!((by_day - want).abs() < 1e-6, "{by_day} vs {want}");
    }

    proptest! {
        #[test]
        fn days_and_hours_hold_every_event(
            // (minute, a few products and origins, whole units), up to 3 hours out of order
            steps in prop::collection::vec((0i64..150, 0u32..3, 0u32..3, 0u32..50, 0i64..180), 1..400),
            allowance in 0.0f64..300.0,
        ) {
            // up to 41 days, from one month into the next, each event up to 3 h behind the newest
            let mut minute = 0i64;
            let events: Vec<_> = steps
                .iter()
                .map(|&(step, p, o, u, back)| {
                    minute += step;
                    ((minute - back).max(0), p, o, u)
                })
                .collect();
            matches_a_plain_sum(&events, allowance);
        }
    }
}
