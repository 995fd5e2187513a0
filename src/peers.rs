//! The rules users would write instead of running overage, run on the same events, so that
//! detection quality is always shown side by side with the alternative.
//!
//! A platform team with a `units_total` counter per client in Prometheus writes one of two
//! rules (evaluated every minute, `for: 5m`), and this module replays both:
//!
//! - **static**: `increase(units_total[1h]) > 1.5 × contract` (warning) and `> 3 ×` (critical),
//!   for contracted clients;
//! - **z-score**: `(increase[1h] − avg_over_time(increase[1h][1w])) /
//!   stddev_over_time(increase[1h][1w]) > 3` (warning), for every client with a day of
//!   history; reported as `over_contract` for contracted clients and `baseline_jump` for the
//!   others, so it is scored against the incidents it could catch.
//!
//! Events are counted in event time (a gift to the peers: a real counter counts on arrival),
//! redeliveries included (as a counter fed from gateway logs counts them).

use std::collections::HashMap;

use crate::contract::Contracts;
use crate::score::AlertRecord;
use crate::simulate::kind;
use crate::time::{Millis, HOUR_MS, MINUTE_MS};

/// Evaluations a condition must hold before it fires (`for: 5m`).
const FOR_EVALS: u32 = 5;
/// The z-score rule's look-back (`[1w]`), and the history it needs before it may fire.
const ZSCORE_WINDOW_MIN: usize = 7 * 24 * 60;
const ZSCORE_MIN_HISTORY_MIN: usize = 24 * 60;

/// Per-client units per minute over a run, in event time.
pub struct Series {
    start: Millis,
    minutes: usize,
    clients: HashMap<String, Vec<f32>>,
}

impl Series {
    pub fn new(start: Millis, end: Millis) -> Series {
        Series {
            start,
            minutes: ((end - start) / MINUTE_MS).max(0) as usize,
            clients: HashMap::new(),
        }
    }

    pub fn add(&mut self, ts: Millis, client: &str, units: f64) {
        let m = (ts - self.start).div_euclid(MINUTE_MS);
        if m < 0 || m as usize >= self.minutes {
            return;
        }
        let minutes = self.minutes;
        let v = match self.clients.get_mut(client) {
            Some(v) => v,
            None => self
                .clients
                .entry(client.to_owned())
                .or_insert_with(|| vec![0.0; minutes]),
        };
        v[m as usize] += units as f32;
    }

    /// Alert transitions of the static rule.
    pub fn static_rule(&self, contracts: &Contracts) -> Vec<AlertRecord> {
        let mut out = Vec::new();
        for (id, v) in self.sorted() {
            let Some((_, k)) = contracts.get(id) else {
                continue;
            };
            let per_hour = k.rate_per_ms() * HOUR_MS as f64;
            for (severity, times) in [("warning", 1.5), ("critical", 3.0)] {
                let mut rule = Rule::new(id, kind::OVER_CONTRACT, severity);
                self.each_hour_sum(v, |m, h| {
                    rule.step(self.at(m), h > times * per_hour, &mut out)
                });
            }
        }
        out
    }

    /// Alert transitions of the z-score rule.
    pub fn zscore_rule(&self, contracts: &Contracts) -> Vec<AlertRecord> {
        let mut out = Vec::new();
        for (id, v) in self.sorted() {
            let alert = if contracts.get(id).is_some() {
                kind::OVER_CONTRACT
            } else {
                kind::BASELINE_JUMP
            };
            let mut rule = Rule::new(id, alert, "warning");
            let mut hist: Vec<f64> = Vec::with_capacity(self.minutes);
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            self.each_hour_sum(v, |m, h| {
                let n = hist.len().min(ZSCORE_WINDOW_MIN);
                let cond = n >= ZSCORE_MIN_HISTORY_MIN && {
                    let mean = s1 / n as f64;
                    let var = (s2 / n as f64 - mean * mean).max(0.0);
                    var > 0.0 && (h - mean) / var.sqrt() > 3.0
                };
                rule.step(self.at(m), cond, &mut out);
                hist.push(h);
                s1 += h;
                s2 += h * h;
                if hist.len() > ZSCORE_WINDOW_MIN {
                    let old = hist[hist.len() - 1 - ZSCORE_WINDOW_MIN];
                    s1 -= old;
                    s2 -= old * old;
                }
            });
        }
        out
    }

    fn sorted(&self) -> Vec<(&str, &Vec<f32>)> {
        let mut v: Vec<(&str, &Vec<f32>)> =
            self.clients.iter().map(|(k, v)| (k.as_str(), v)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    fn at(&self, minute: usize) -> Millis {
        self.start + minute as i64 * MINUTE_MS
    }

    /// `f(m, units in [m − 60, m))` at every minute boundary `m` (an hour in).
    fn each_hour_sum(&self, v: &[f32], mut f: impl FnMut(usize, f64)) {
        let mut sum = 0.0f64;
        for m in 1..=v.len() {
            sum += v[m - 1] as f64;
            if m > 60 {
                sum -= v[m - 61] as f64;
            }
            if m >= 60 {
                f(m, sum.max(0.0));
            }
        }
    }
}

/// One Prometheus alerting rule on one series: pending for `FOR_EVALS`, then firing until the
/// condition is false.
struct Rule<'a> {
    client: &'a str,
    alert: &'static str,
    severity: &'static str,
    pending: u32,
    firing: bool,
}

impl<'a> Rule<'a> {
    fn new(client: &'a str, alert: &'static str, severity: &'static str) -> Self {
        Rule {
            client,
            alert,
            severity,
            pending: 0,
            firing: false,
        }
    }

    fn step(&mut self, at: Millis, cond: bool, out: &mut Vec<AlertRecord>) {
        self.pending = if cond {
            self.pending.saturating_add(1)
        } else {
            0
        };
        let firing = self.pending >= FOR_EVALS;
        if firing != self.firing {
            self.firing = firing;
            out.push(AlertRecord::new(
                self.alert,
                firing,
                self.client,
                at,
                self.severity,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const T0: Millis = 1_789_048_800_000; // 2026-09-10T14:00:00Z

    fn contracts() -> Contracts {
        Contracts::parse(
            "[[contract]]\nclient_id = \"a\"\nbaseline = { units = 600, per = \"1h\" }\n",
            Path::new("c.toml"),
        )
        .unwrap()
    }

    #[test]
    fn static_rule_fires_after_five_minutes_over_and_resolves() {
        let mut s = Series::new(T0, T0 + 6 * HOUR_MS);
        // 10 units a minute (the contract) for 2h, then 20 (2x) for 1h, then 10 again
        for m in 0..6 * 60 {
            let u = if (120..180).contains(&m) { 20.0 } else { 10.0 };
            s.add(T0 + m * MINUTE_MS, "a", u);
        }
        let alerts = s.static_rule(&contracts());
        let warn: Vec<&AlertRecord> = alerts.iter().filter(|a| a.severity == "warning").collect();
        assert_eq!(warn.len(), 2, "{alerts:?}");
        // the hour sum passes 900 once 31 minutes of the excess are in (900 + 10·k > 900 at
        // k = 31 → minute 151), then needs 5 evaluations
        assert!(warn[0].is_firing());
        assert_eq!(warn[0].at_ms, T0 + 155 * MINUTE_MS);
        assert!(!warn[1].is_firing());
        assert!(alerts.iter().all(|a| a.severity != "critical"));
    }

    #[test]
    fn zscore_rule_needs_history_and_fires_on_a_jump() {
        let mut s = Series::new(T0, T0 + 3 * 24 * HOUR_MS);
        for m in 0..3 * 24 * 60 {
            // a little variation, then 5x for the last two hours
            let base = 10.0 + (m % 7) as f64;
            let u = if m >= 3 * 24 * 60 - 120 {
                5.0 * base
            } else {
                base
            };
            s.add(T0 + m * MINUTE_MS, "b", u);
        }
        let alerts = s.zscore_rule(&contracts());
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].alert, kind::BASELINE_JUMP);
        assert!(alerts[0].at_ms > T0 + (3 * 24 * 60 - 120) * MINUTE_MS);
    }
}
