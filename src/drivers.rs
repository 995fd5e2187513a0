//! Drivers: which product, endpoint or origin an excess comes from.
//!
//! When a client pages, the first question is "what changed". Each client keeps a small mix
//! table per dimension (product, endpoint, country, network): for the few labels carrying most
//! of its units, a *recent* amount (half-life half an hour, what it does now) and a *usual* amount
//! (half-life a week, not learned while a volume alert fires, so an episode does not become
//! its own norm). At an alert, the excess `observed − expected` is split by label:
//! `share_now × observed − usual_share × expected`. A label that was 0% of the usual mix and is
//! 75% now carries the excess; a client that grew evenly has its usual mix in the excess too,
//! and no label stands out. Drivers are ranked by how far their share moved from the usual.
//!
//! Memory is fixed: [`SLOTS`] labels per dimension (about 200 bytes a client), the least-used
//! replaced by a newcomer.

use serde::{Deserialize, Serialize};

use crate::time::{Millis, HOUR_MS};

/// Labels remembered per dimension.
pub const SLOTS: usize = 4;

/// What an excess can be attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    Product,
    Endpoint,
    Country,
    Asn,
}

impl Dim {
    pub const ALL: [Dim; 4] = [Dim::Product, Dim::Endpoint, Dim::Country, Dim::Asn];

    pub const fn as_str(self) -> &'static str {
        match self {
            Dim::Product => "product",
            Dim::Endpoint => "endpoint",
            Dim::Country => "country",
            Dim::Asn => "asn",
        }
    }
}

const RECENT_HALF_LIFE: Millis = HOUR_MS / 2;
const USUAL_HALF_LIFE: Millis = 7 * 24 * HOUR_MS;
/// Volume, against the usual, beyond which the usual mix learns as if at this volume.
const SURGE: f32 = 2.0;
/// Drivers carrying less of the excess than this are not named.
pub const MIN_EXCESS_SHARE: f64 = 0.1;
/// How much more an endpoint's (a network's) share must move than its product's (country's)
/// to be named before it: only a tie goes to the coarser label (a new product on a new
/// endpoint moves both alike; a new endpoint of a known product moves the product less, by
/// the product's usual share).
const FINER_MARGIN: f64 = 0.01;
/// Drivers named per alert.
pub const MAX_DRIVERS: usize = 3;

/// Recent and usual units per label, per dimension, decayed relative to one anchor so that
/// adding is a multiply-add and the result barely depends on arrival order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mix {
    anchor: Millis,
    /// All units (recent, usual), including those of labels not in the table.
    total: [f32; 2],
    len: [u8; 4],
    ids: [[u32; SLOTS]; 4],
    recent: [[f32; SLOTS]; 4],
    /// Of `recent`, the part inherited from the label a newcomer replaced (an upper bound on
    /// how much `recent` overstates it).
    inherited: [[f32; SLOTS]; 4],
    usual: [[f32; SLOTS]; 4],
}

/// One label's part in an excess.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Driver {
    pub dim: Dim,
    pub label: u32,
    /// Of the excess, the part this label carries (0..=1).
    pub excess_share: f64,
    /// Of the recent units, this label's share.
    pub share: f64,
    /// Of the usual units, this label's share.
    pub usual_share: f64,
}

impl Driver {
    /// How far its share moved: a label new to the client moves by its whole share, one that
    /// only carries the newcomer's calls along (the network a new country's calls arrive on)
    /// by less, and labels of a client that grew evenly not at all.
    pub fn lift(&self) -> f64 {
        self.share - self.usual_share
    }
}

impl Mix {
    /// Labels in the table for `dim` (a lookup cache for the caller's interning).
    pub fn labels(&self, dim: Dim) -> &[u32] {
        let d = dim as usize;
        &self.ids[d][..self.len[d] as usize]
    }

    /// Count `units` at `ts` for one label per dimension (`None`: the event did not say).
    /// `learn_usual` is false while a volume alert fires.
    pub fn add(&mut self, ts: Millis, units: f32, labels: [Option<u32>; 4], learn_usual: bool) {
        if self.anchor == 0 || (ts - self.anchor).abs() > 4 * RECENT_HALF_LIFE {
            self.decay_to(ts);
        }
        let dt = (ts - self.anchor) as f64;
        let (gr, gu) = (
            (dt / RECENT_HALF_LIFE as f64).exp2() as f32,
            (dt / USUAL_HALF_LIFE as f64).exp2() as f32,
        );
        let wr = units * gr;
        // Units per ms now and usually: an hour at many times the usual volume (a surge not yet
        // alerted on, a young client overrunning in its first hours) teaches the usual mix no
        // more than an hour at SURGE times the usual would, so the mix of an excess does not
        // become the norm before the alert that names it. (The damping reads the totals so far,
        // so shares depend slightly on arrival order within the allowed lateness.)
        let now = self.total[0] / gr / RECENT_HALF_LIFE as f32;
        let usual = self.total[1] / gu / USUAL_HALF_LIFE as f32;
        let damp = if usual > 0.0 && now > SURGE * usual {
            SURGE * usual / now
        } else {
            1.0
        };
        let wu = if learn_usual { units * gu * damp } else { 0.0 };
        self.total[0] += wr;
        self.total[1] += wu;
        for (d, label) in labels.into_iter().enumerate() {
            let Some(label) = label else { continue };
            let n = self.len[d] as usize;
            let i = match self.ids[d][..n].iter().position(|&x| x == label) {
                Some(i) => i,
                None if n < SLOTS => {
                    self.len[d] += 1;
                    self.ids[d][n] = label;
                    self.recent[d][n] = 0.0;
                    self.inherited[d][n] = 0.0;
                    self.usual[d][n] = 0.0;
                    n
                }
                None => {
                    // The label least used now or usually gives way, and the newcomer inherits
                    // its recent amount, as in Space-Saving: with more labels than slots, a
                    // newcomer that started from nothing would be the least used at the next
                    // untracked call and never stay, however much of the excess it carries.
                    // What it inherited is kept apart, and shares are read without it.
                    let score = |i: usize| {
                        self.recent[d][i] / self.total[0].max(f32::MIN_POSITIVE)
                            + self.usual[d][i] / self.total[1].max(f32::MIN_POSITIVE)
                    };
                    let i = (0..SLOTS)
                        .min_by(|&a, &b| score(a).total_cmp(&score(b)))
                        .unwrap_or(0);
                    self.ids[d][i] = label;
                    self.inherited[d][i] = self.recent[d][i];
                    self.usual[d][i] = 0.0;
                    i
                }
            };
            self.recent[d][i] += wr;
            self.usual[d][i] += wu;
        }
    }

    /// Move the anchor to `t`, scaling every amount.
    fn decay_to(&mut self, t: Millis) {
        let (fr, fu) = if self.anchor == 0 {
            (0.0, 0.0)
        } else {
            let dt = -((t - self.anchor) as f64);
            (
                (dt / RECENT_HALF_LIFE as f64).exp2() as f32,
                (dt / USUAL_HALF_LIFE as f64).exp2() as f32,
            )
        };
        self.total[0] *= fr;
        self.total[1] *= fu;
        for d in 0..4 {
            self.recent[d].iter_mut().for_each(|x| *x *= fr);
            self.inherited[d].iter_mut().for_each(|x| *x *= fr);
            self.usual[d].iter_mut().for_each(|x| *x *= fu);
        }
        self.anchor = t;
    }

    /// The labels behind an excess of `observed` over `expected` (units over the same span),
    /// most unusual first: at most [`MAX_DRIVERS`], each carrying at least
    /// [`MIN_EXCESS_SHARE`] of it. Empty when there is no excess or nothing to go by.
    pub fn drivers(&self, observed: f64, expected: f64) -> Vec<Driver> {
        let excess = observed - expected;
        let (rt, ut) = (self.total[0] as f64, self.total[1] as f64);
        if !(excess > 0.0 && rt > 0.0) {
            return Vec::new();
        }
        let mut out: Vec<Driver> = Vec::new();
        for dim in Dim::ALL {
            let d = dim as usize;
            for i in 0..self.len[d] as usize {
                let share = (self.recent[d][i] - self.inherited[d][i]).max(0.0) as f64 / rt;
                let usual_share = if ut > 0.0 {
                    self.usual[d][i] as f64 / ut
                } else {
                    0.0
                };
                let part = share * observed - usual_share * expected;
                let excess_share = (part / excess).min(1.0);
                if excess_share >= MIN_EXCESS_SHARE {
                    out.push(Driver {
                        dim,
                        label: self.ids[d][i],
                        excess_share,
                        share,
                        usual_share,
                    });
                }
            }
        }
        // A finer label (an endpoint of a product, a network of a country) is named first only
        // if it moved more than the coarser one: a new product arriving on its own new endpoint,
        // or a new country on a new network, is the product or the country.
        let rank = |d: &Driver| match d.dim {
            Dim::Endpoint | Dim::Asn => d.lift() - FINER_MARGIN,
            Dim::Product | Dim::Country => d.lift(),
        };
        out.sort_by(|a, b| {
            rank(b)
                .total_cmp(&rank(a))
                .then(b.excess_share.total_cmp(&a.excess_share))
        });
        out.truncate(MAX_DRIVERS);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_789_050_000_000;
    const MIN: Millis = 60_000;

    /// A week of product 1 from country 10, then an hour in which product 2 from country 11
    /// triples the volume.
    fn episode(extra_product: u32, extra_country: u32) -> Mix {
        let mut m = Mix::default();
        for k in 0..7 * 24 * 60 {
            m.add(
                T0 + k * MIN,
                10.0,
                [Some(1), Some(100), Some(10), None],
                true,
            );
        }
        let t = T0 + 7 * 24 * 60 * MIN;
        for k in 0..60 {
            let ts = t + k * MIN;
            m.add(ts, 10.0, [Some(1), Some(100), Some(10), None], false);
            m.add(
                ts,
                20.0,
                [Some(extra_product), Some(100), Some(extra_country), None],
                false,
            );
        }
        m
    }

    #[test]
    fn a_new_product_carries_the_excess_it_brings() {
        let m = episode(2, 10);
        // an hour at 30 units a minute against an expected 10
        let d = m.drivers(1800.0, 600.0);
        let top = d[0];
        assert_eq!((top.dim, top.label), (Dim::Product, 2), "{d:?}");
        assert!(top.usual_share < 0.01, "{top:?}");
        assert!(top.excess_share > 0.8, "{top:?}");
        assert!((top.share - 0.6).abs() < 0.15, "{top:?}");
        // the endpoint and country did not change: they carry the excess at their usual share
        assert!(
            d.iter().all(|x| x.dim == Dim::Product || x.lift() < 0.1),
            "{d:?}"
        );
    }

    #[test]
    fn a_new_country_is_named_and_an_even_rise_names_nothing_unusual() {
        let m = episode(1, 11);
        let d = m.drivers(1800.0, 600.0);
        assert_eq!((d[0].dim, d[0].label), (Dim::Country, 11), "{d:?}");

        let even = episode(1, 10);
        let d = even.drivers(1800.0, 600.0);
        assert!(d.iter().all(|x| x.lift().abs() < 0.1), "{d:?}");
        assert!(Mix::default().drivers(10.0, 5.0).is_empty() && even.drivers(5.0, 10.0).is_empty());
    }

    #[test]
    fn a_newcomer_outranks_the_network_that_carries_it() {
        // usually GB (10) on AS1 and DE (11) on AS2; now the excess comes from US (12) on AS1
        let mut m = Mix::default();
        for k in 0..7 * 24 * 60 {
            let (c, a) = if k % 3 == 0 { (10, 1) } else { (11, 2) };
            m.add(T0 + k * MIN, 10.0, [None, None, Some(c), Some(a)], true);
        }
        let t = T0 + 7 * 24 * 60 * MIN;
        for k in 0..20 {
            let ts = t + k * MIN;
            m.add(ts, 10.0, [None, None, Some(11), Some(2)], false);
            m.add(ts, 30.0, [None, None, Some(12), Some(1)], false);
        }
        let d = m.drivers(800.0, 200.0);
        assert_eq!((d[0].dim, d[0].label), (Dim::Country, 12), "{d:?}");
        assert!(d.iter().any(|x| (x.dim, x.label) == (Dim::Asn, 1)), "{d:?}");
    }

    #[test]
    fn the_table_is_bounded_and_takes_in_a_heavy_newcomer() {
        let mut m = Mix::default();
        for k in 0..1000 {
            // many one-off endpoints, and one steady product
            m.add(
                T0 + k * MIN,
                1.0,
                [Some(1), Some(k as u32), None, None],
                true,
            );
        }
        assert_eq!(m.labels(Dim::Endpoint).len(), SLOTS);
        for k in 0..120 {
            m.add(
                T0 + (1000 + k) * MIN,
                5.0,
                [Some(1), Some(7777), None, None],
                false,
            );
        }
        assert!(m.labels(Dim::Endpoint).contains(&7777));
        let d = m.drivers(720.0, 120.0);
        assert!(
            d.iter().any(|x| x.label == 7777 && x.dim == Dim::Endpoint),
            "{d:?}"
        );
    }

    #[test]
    fn arrival_order_barely_changes_the_shares() {
        // a day in order, then an hour of three products that arrives in order or backwards
        let mut a = Mix::default();
        for k in 0..24 * 60 {
            a.add(
                T0 + k * MIN,
                2.0,
                [Some(k as u32 % 3), None, None, None],
                true,
            );
        }
        let mut b = a.clone();
        let t = T0 + 24 * 60 * MIN;
        let events: Vec<(Millis, u32)> =
            (0..500).map(|k| (t + k * 7_000, (k % 3) as u32)).collect();
        for &(ts, p) in &events {
            a.add(ts, 2.0, [Some(p), None, None, None], true);
        }
        for &(ts, p) in events.iter().rev() {
            b.add(ts, 2.0, [Some(p), None, None, None], true);
        }
        let (da, db) = (a.drivers(100.0, 50.0), b.drivers(100.0, 50.0));
        assert_eq!(da.len(), db.len());
        for (x, y) in da.iter().zip(&db) {
            assert_eq!(x.label, y.label);
            assert!((x.share - y.share).abs() < 1e-3, "{x:?} {y:?}");
            assert!((x.usual_share - y.usual_share).abs() < 1e-2, "{x:?} {y:?}");
        }
    }
}
