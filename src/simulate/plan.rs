//! Scenario planning: the [`Scenario`] (client specs, planted incidents, the outage backlog)
//! and the builder that the standard scenario and the fleet both plan with.
//!
//! Planning decides *what* happens and when; generation ([`super::generate`]) only draws events
//! from the plan. The two scenarios differ in how they pick clients (written one by one in
//! [`super::standard`], sampled in [`super::fleet`]), not in how a contract is sized, a cap is
//! set or an incident is planted, so those live here once.

use std::fmt::Write as _;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::generate::Generator;
use super::params::{stream_seed, SimError, SimParams};
use super::spec::{Burst, ClientSpec, ContractSpec, Effect, Episode};
use super::truth::Role;
use crate::time::{DAY_MS, HOUR_MS, MINUTE_MS};

/// Grace after an anomaly's end during which a detector may still report it (mirrors the
/// scorer's detection window), so anomalies are only planted where that grace fits in the run.
pub(super) const REPORT_GRACE_MS: i64 = 2 * HOUR_MS;

/// A planned incident, before generation (the cap crossing time is only known after).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub client: usize,
    pub expect: &'static str,
    pub allow: Vec<&'static str>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub description: String,
    pub magnitude: Option<f64>,
    pub detectable_ms: Option<i64>,
    pub driver: Option<String>,
}

/// Client specifications and planned incidents of a run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub params: SimParams,
    pub start_ms: i64,
    pub end_ms: i64,
    pub clients: Vec<ClientSpec>,
    pub planned: Vec<Planned>,
    /// The clients whose monthly cap runs out, with when their pace changed (the truth's
    /// `cap_exceeded` incident is their first crossing after it).
    pub cap_clients: Vec<(usize, i64)>,
    /// A gateway outage whose events arrive late, with producer retries among them.
    pub backlog: Option<Backlog>,
}

/// A well-behaved client's gateway is down for `[start_ms, end_ms)`; it delivers that backlog
/// `delay_ms` after the outage ends (20x faster than real time), and retries
/// [`Backlog::RETRY_RATE`] of it. Far beyond the allowed lateness and the event-time dedupe
/// horizon, so usage stays exact only if late redeliveries are still recognised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backlog {
    pub client: usize,
    pub start_ms: i64,
    pub end_ms: i64,
    pub delay_ms: i64,
}

impl Backlog {
    pub const RETRY_RATE: f64 = 0.05;

    pub(super) fn holds(&self, client: usize, ts: i64) -> bool {
        client == self.client && (self.start_ms..self.end_ms).contains(&ts)
    }

    /// When an event of the outage is delivered.
    pub(super) fn delivery(&self, ts: i64) -> i64 {
        self.end_ms + self.delay_ms + (ts - self.start_ms) / 20
    }
}

impl Scenario {
    /// The scenario `p` asks for: a fleet of `p.fleet` sampled clients, or the standard one.
    pub fn new(p: &SimParams) -> Result<Scenario, SimError> {
        match p.fleet {
            Some(n) => Scenario::fleet(p, n as usize),
            None => Scenario::standard(p),
        }
    }

    /// Three hours of the first well-behaved contracted client on the third day (09:00-12:00
    /// UTC), delivered 90 minutes late; none in runs shorter than four days.
    fn plan_backlog(&self) -> Option<Backlog> {
        if self.params.days < 4 {
            return None;
        }
        let client = self
            .clients
            .iter()
            .position(|c| c.role == Role::WellBehavedContracted)?;
        let day = self.start_ms - self.start_ms.rem_euclid(DAY_MS) + 2 * DAY_MS;
        Some(Backlog {
            client,
            start_ms: day + 9 * HOUR_MS,
            end_ms: day + 12 * HOUR_MS,
            delay_ms: 90 * MINUTE_MS,
        })
    }

    /// Hourly noise and bursts, drawn after the incidents are placed so bursts can keep clear
    /// of them (a burst next to an incident would blur its ground truth).
    fn finish_clients(&mut self) {
        let hours = ((self.end_ms - self.start_ms) / HOUR_MS + 2) as usize;
        let first_hour = self.start_ms.div_euclid(HOUR_MS);
        let days = self.params.days as f64;
        for (i, c) in self.clients.iter_mut().enumerate() {
            let mut rng = SmallRng::seed_from_u64(stream_seed(self.params.seed, i, 1));
            c.first_hour = first_hour;
            c.hourly_noise = match Normal::new(0.0, c.noise_sigma) {
                Ok(n) if c.noise_sigma > 0.0 => {
                    let lim = 2.0 * c.noise_sigma;
                    (0..hours)
                        .map(|_| n.sample(&mut rng).clamp(-lim, lim).exp() as f32)
                        .collect()
                }
                _ => vec![1.0; hours],
            };
            if c.role == Role::SlowCreepContracted {
                continue;
            }
            let keep_clear: Vec<(i64, i64)> = self
                .planned
                .iter()
                .filter(|a| a.client == i)
                .map(|a| (a.start_ms - 6 * HOUR_MS, a.end_ms + 6 * HOUR_MS))
                .chain(
                    c.episodes
                        .iter()
                        .map(|e| (e.start_ms - 6 * HOUR_MS, e.end_ms + 6 * HOUR_MS)),
                )
                .collect();
            let max_factor = if c.contract.is_some() { 4.0 } else { 3.0 };
            // about one burst every day and a half
            let n = (days / 1.5).round() as usize;
            let mut bursts: Vec<Burst> = Vec::new();
            for _ in 0..n * 3 {
                if bursts.len() >= n {
                    break;
                }
                let s = self.start_ms
                    + rng.gen_range(0..(self.end_ms - self.start_ms) / MINUTE_MS) * MINUTE_MS;
                let len = rng.gen_range(1..=3) * MINUTE_MS;
                let clear = keep_clear.iter().all(|&(a, z)| s + len <= a || s >= z)
                    && bursts.iter().all(|b| (s - b.start_ms).abs() >= 6 * HOUR_MS)
                    && s >= c.active_from_ms + c.ramp_ms;
                if clear {
                    bursts.push(Burst {
                        start_ms: s,
                        end_ms: s + len,
                        factor: rng.gen_range(2.0..=max_factor),
                    });
                }
            }
            bursts.sort_by_key(|b| b.start_ms);
            c.bursts = bursts;
        }
    }

    /// The contracts file for this scenario.
    pub fn contracts_toml(&self) -> String {
        let mut s = String::from(
            "# Contracts of the simulated scenario (overage simulate).\n\
             # baseline: contracted units per hour; monthly_cap: units per calendar month (UTC).\n",
        );
        let list = |xs: &[&str]| {
            let q: Vec<String> = xs.iter().map(|x| format!("\"{x}\"")).collect();
            format!("[{}]", q.join(", "))
        };
        for c in &self.clients {
            let Some(k) = &c.contract else { continue };
            let _ = write!(
                s,
                "\n[[contract]]\nclient_id = \"{}\"\nplan = \"{}\"\nbaseline = {{ units = {}, per = \"1h\" }}\n",
                c.id, k.plan, k.units_per_hour
            );
            if let Some(cap) = k.monthly_cap {
                let _ = writeln!(s, "monthly_cap = {cap}");
            }
            if let Some(p) = &k.products {
                let _ = writeln!(s, "products = {}", list(p));
            }
            if let Some(e) = &k.endpoints {
                let _ = writeln!(s, "endpoints = {}", list(e));
            }
            if let Some(o) = &k.origin_countries {
                let _ = writeln!(s, "origin_countries = {}", list(o));
            }
        }
        s
    }

    pub fn generator(&self) -> Generator {
        Generator::new(self)
    }
}

/// A scenario being planned: its run, and the clients and incidents so far.
pub(super) struct Builder {
    pub(super) p: SimParams,
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) clients: Vec<ClientSpec>,
    pub(super) planned: Vec<Planned>,
}

impl Builder {
    /// An empty plan of the run `p` describes (its start floored to the minute).
    pub(super) fn new(p: &SimParams) -> Builder {
        let start = p.start_ms - p.start_ms.rem_euclid(MINUTE_MS);
        Builder {
            p: p.clone(),
            start,
            end: start + p.days as i64 * DAY_MS,
            clients: Vec::new(),
            planned: Vec::new(),
        }
    }

    /// The scenario planned so far, with `cap_clients` (see [`Scenario::cap_clients`]): noise
    /// and bursts drawn, each incident's detectability marked (with `drop_undetectable`, the
    /// ones never clearly detectable are dropped), the outage backlog placed.
    pub(super) fn finish(
        self,
        cap_clients: Vec<(usize, i64)>,
        drop_undetectable: bool,
    ) -> Scenario {
        let mut sc = Scenario {
            params: self.p,
            start_ms: self.start,
            end_ms: self.end,
            clients: self.clients,
            planned: self.planned,
            cap_clients,
            backlog: None,
        };
        sc.finish_clients();
        sc.mark_detectable(drop_undetectable);
        sc.backlog = sc.plan_backlog();
        sc
    }

    /// Give the client a contract under which its noise-free weekly peak is `peak_ratio ×` the
    /// contracted rate (at most; the contract is rounded up to a number people write).
    pub(super) fn contract(
        &mut self,
        i: usize,
        plan: &'static str,
        peak_ratio: f64,
    ) -> &mut ContractSpec {
        let c = &mut self.clients[i];
        let max_week = c.weekly.iter().cloned().fold(0.0, f64::max);
        let peak_units_h = c.peak_per_min * max_week * 60.0 * c.mean_units_per_event();
        c.contract.insert(ContractSpec {
            plan,
            units_per_hour: nice_up(peak_units_h / peak_ratio),
            monthly_cap: None,
            products: None,
            endpoints: None,
            origin_countries: None,
        })
    }

    /// A monthly cap of `times ×` the client's usual month: its pattern alone, without the
    /// ramp, holidays or incidents of the run (a cap measured on an onboarding week would be
    /// blown by the client's ordinary traffic).
    pub(super) fn usual_cap(&mut self, i: usize, times: f64) {
        let c = &self.clients[i];
        let u = c.mean_units_per_event();
        let week: f64 = (0..7 * 24 * 60)
            .map(|m| c.seasonal(self.start + m * MINUTE_MS) * u)
            .sum();
        if let Some(k) = self.clients[i].contract.as_mut() {
            k.monthly_cap = Some(nice_up(week * 31.0 / 7.0 * times));
        }
    }

    pub(super) fn day(&self, d: i64) -> i64 {
        self.start - self.start.rem_euclid(DAY_MS) + d * DAY_MS
    }

    pub(super) fn fits(&self, start: i64, end: i64) -> bool {
        start >= self.start && end + REPORT_GRACE_MS <= self.end
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn plan(
        &mut self,
        i: usize,
        expect: &'static str,
        allow: Vec<&'static str>,
        start: i64,
        end: i64,
        effect: Option<Effect>,
        description: String,
    ) {
        if !self.fits(start, end) {
            return;
        }
        if let Some(effect) = effect {
            self.clients[i].episodes.push(Episode {
                start_ms: start,
                end_ms: end,
                effect,
            });
        }
        self.planned.push(Planned {
            client: i,
            expect,
            allow,
            start_ms: start,
            end_ms: end,
            description,
            magnitude: None,
            detectable_ms: None,
            driver: None,
        });
    }
}

/// Round up to two significant digits, as account teams write contract numbers.
pub(super) fn nice_up(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(x.log10().floor() - 1.0).max(1.0);
    (x / mag).ceil() * mag
}
