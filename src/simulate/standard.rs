//! The standard scenario: about thirty clients written one by one, each a story (a partner
//! jumping to 3x its contract, a slow creep, a monthly cap running out, ...).
//!
//! Where the fleet ([`super::fleet`]) measures quality over a sampled population, this
//! scenario is the readable one: every incident is placed by hand where it tests something
//! specific (a creep crossing the threshold on a Monday morning, a cap crossed mid-month), and
//! its truth can be checked by reading this file.

use std::sync::Arc;

use super::params::{SimError, SimParams};
use super::plan::{nice_up, Builder, Planned, Scenario, REPORT_GRACE_MS};
use super::spec::*;
use super::truth::{kind, Role};
use crate::time::{month_of, month_start, DAY_MS, HOUR_MS, MINUTE_MS};

/// Compact constructor arguments for one client (everything else has a default).
struct Proto {
    id: &'static str,
    role: Role,
    peak: f64,
    units: (f64, f64),
    tz_h: f64,
    diurnal: Diurnal,
    weekly: [f64; 7],
    calls: Vec<Call>,
    origins: Vec<Origin>,
    ts: TsStyle,
}

impl Scenario {
    /// The standard scenario: ~30 clients over `p.days` from `p.start_ms`.
    pub fn standard(p: &SimParams) -> Result<Scenario, SimError> {
        p.validate()?;
        let mut b = Builder::new(p);
        b.build();
        let cap_clients = b
            .clients
            .iter()
            .position(|c| c.role == Role::CapExhaustion)
            .and_then(|i| {
                let a = b.planned.iter().find(|a| a.client == i)?;
                Some((i, a.start_ms))
            })
            .into_iter()
            .collect();
        Ok(b.finish(cap_clients, false))
    }
}

impl Builder {
    fn add(&mut self, pr: Proto) -> usize {
        let scale = self.p.scale;
        self.clients.push(ClientSpec {
            id: Arc::from(pr.id),
            role: pr.role,
            contract: None,
            peak_per_min: pr.peak * scale,
            units_mean: pr.units.0,
            units_cv: pr.units.1,
            tz_minutes: (pr.tz_h * 60.0) as i32,
            diurnal: pr.diurnal,
            weekly: pr.weekly,
            noise_sigma: 0.06,
            calls: pr.calls,
            origins: pr.origins,
            ts_style: pr.ts,
            active_from_ms: i64::MIN,
            ramp_ms: 0,
            episodes: Vec::new(),
            bursts: Vec::new(),
            hourly_noise: Vec::new(),
            first_hour: 0,
            units_sigma: None,
            batch_minutes: 0,
            traits: Vec::new(),
        });
        self.clients.len() - 1
    }

    fn expected_units(&self, i: usize, from: i64, to: i64) -> f64 {
        self.clients[i].expected_units(from, to)
    }

    /// A monthly cap of `times ×` the client's expected consumption in a 31-day month.
    fn generous_cap(&mut self, i: usize, times: f64) {
        let month = self.expected_units(i, self.start, self.start + 7 * DAY_MS) * 31.0 / 7.0;
        if let Some(k) = self.clients[i].contract.as_mut() {
            k.monthly_cap = Some(nice_up(month * times));
        }
    }

    /// `d` days after the start's UTC midnight, moved to the next weekday if it is a weekend
    /// (the incidents happen in business hours), at `hh:mm` UTC.
    fn weekday_at(&self, d: i64, hh: i64, mm: i64) -> i64 {
        let mut day = self.day(d);
        while (day.div_euclid(DAY_MS) + 3).rem_euclid(7) >= 5 {
            day += DAY_MS;
        }
        day + hh * HOUR_MS + mm * MINUTE_MS
    }

    fn build(&mut self) {
        use Diurnal::{Office, Smooth};
        use Role::*;
        use TsStyle::*;
        let sm = |f| Smooth { floor: f };

        // --- well-behaved, contracted: peak at 55-95% of contract, everything in scope
        let i = self.add(Proto {
            id: "acme-analytics",
            role: WellBehavedContracted,
            peak: 7.0,
            units: (120.0, 0.5),
            tz_h: -5.0,
            diurnal: sm(0.25),
            weekly: WEEK_STD,
            calls: mix_search_timeline(),
            origins: vec![ow(US_AWS, 0.8), ow(US_GCP, 0.2)],
            ts: Utc,
        });
        let k = self.contract(i, "enterprise", 0.8);
        k.products = Some(vec!["search", "timeline"]);
        k.origin_countries = Some(vec!["US"]);
        self.generous_cap(i, 1.8);

        let i = self.add(Proto {
            id: "globex-media",
            role: WellBehavedContracted,
            peak: 4.0,
            units: (60.0, 0.4),
            tz_h: 1.0,
            diurnal: sm(0.3),
            weekly: WEEK_STD,
            calls: mix_broad(),
            origins: vec![ow(DE, 0.6), ow(NL, 0.4)],
            ts: EpochMillis,
        });
        self.contract(i, "pro", 0.6);

        let i = self.add(Proto {
            id: "initech-research",
            role: WellBehavedContracted,
            peak: 2.5,
            units: (200.0, 0.6),
            tz_h: -8.0,
            diurnal: sm(0.2),
            weekly: WEEK_STD,
            calls: mix_search_only(),
            origins: vec![ow(US_AZURE, 0.7), ow(CA, 0.3)],
            ts: Offset(-7 * 60),
        });
        let k = self.contract(i, "academic", 0.9);
        k.products = Some(vec!["search"]);
        k.endpoints = Some(vec!["/2/tweets/search/*"]);
        k.origin_countries = Some(vec!["US", "CA"]);

        let i = self.add(Proto {
            id: "umbrella-risk",
            role: WellBehavedContracted,
            peak: 8.0,
            units: (40.0, 0.3),
            tz_h: 0.0,
            diurnal: sm(0.3),
            weekly: WEEK_STD,
            calls: mix_search_timeline(),
            origins: vec![ow(GB, 0.6), ow(IE, 0.3), ow(NL, 0.1)],
            ts: Offset(60),
        });
        let k = self.contract(i, "enterprise", 0.95);
        k.origin_countries = Some(vec!["GB", "IE", "NL"]);
        self.generous_cap(i, 1.6);

        let i = self.add(Proto {
            id: "hooli-ads",
            role: WellBehavedContracted,
            peak: 5.0,
            units: (90.0, 0.5),
            tz_h: -8.0,
            diurnal: sm(0.3),
            weekly: WEEK_STD,
            calls: mix_broad(),
            origins: vec![ow(US_GCP, 1.0)],
            ts: Utc,
        });
        let k = self.contract(i, "pro", 0.7);
        k.products = Some(vec!["search", "timeline", "lookup", "counts"]);

        let i = self.add(Proto {
            id: "stark-signals",
            role: WellBehavedContracted,
            peak: 2.0,
            units: (150.0, 0.4),
            tz_h: 9.0,
            diurnal: sm(0.8),
            weekly: WEEK_FLAT,
            calls: mix_search_only(),
            origins: vec![ow(JP, 0.9), ow(US_AWS, 0.1)],
            ts: Offset(9 * 60),
        });
        self.contract(i, "enterprise", 0.85);
        self.generous_cap(i, 2.0);

        let i = self.add(Proto {
            id: "spacely-sprockets",
            role: WellBehavedContracted,
            peak: 1.5,
            units: (30.0, 0.5),
            tz_h: -6.0,
            diurnal: sm(0.2),
            weekly: WEEK_STD,
            calls: mix_timeline(),
            origins: vec![ow(US_AWS, 1.0)],
            ts: EpochMillis,
        });
        self.contract(i, "basic", 0.5);

        // --- well-behaved, uncontracted
        for (id, peak, units, tz_h, floor, calls, origins, ts) in [
            (
                "wayne-newsroom",
                4.0,
                (50.0, 0.5),
                -5.0,
                0.3,
                mix_broad(),
                vec![ow(US_AWS, 0.9), ow(US_GCP, 0.1)],
                Utc,
            ),
            (
                "tyrell-labs",
                3.5,
                (80.0, 0.5),
                1.0,
                0.25,
                mix_search_timeline(),
                vec![ow(DE, 0.7), ow(FR, 0.3)],
                EpochMillis,
            ),
            (
                "vandelay-import",
                2.5,
                (60.0, 0.4),
                8.0,
                0.25,
                mix_search_timeline(),
                vec![ow(SG, 0.7), ow(AU, 0.3)],
                Offset(8 * 60),
            ),
            (
                "pied-piper",
                5.0,
                (35.0, 0.6),
                -8.0,
                0.2,
                mix_timeline(),
                vec![ow(US_AWS, 0.5), ow(US_GCP, 0.5)],
                EpochMillis,
            ),
            (
                "wonka-sweets",
                1.5,
                (20.0, 0.5),
                1.0,
                0.2,
                mix_broad(),
                vec![ow(FR, 1.0)],
                Utc,
            ),
            (
                "cogswell-cogs",
                2.0,
                (50.0, 0.5),
                5.5,
                0.25,
                mix_search_only(),
                vec![ow(IN, 1.0)],
                Offset(330),
            ),
        ] {
            self.add(Proto {
                id,
                role: WellBehavedUncontracted,
                peak,
                units,
                tz_h,
                diurnal: sm(floor),
                weekly: WEEK_STD,
                calls,
                origins,
                ts,
            });
        }
        // machine-to-machine integrations: flat, around the clock
        for (id, peak, units, origins) in [
            ("gringotts-bi", 2.5, (100.0, 0.3), vec![ow(GB, 1.0)]),
            (
                "nostromo-ops",
                1.2,
                (80.0, 0.4),
                vec![ow(IE, 0.6), ow(US_AWS, 0.4)],
            ),
        ] {
            self.add(Proto {
                id,
                role: WellBehavedUncontracted,
                peak,
                units,
                tz_h: 0.0,
                diurnal: sm(0.75),
                weekly: WEEK_FLAT,
                calls: mix_search_only(),
                origins,
                ts: EpochMillis,
            });
        }
        // a hobbyist: a call every few minutes, wildly varying sizes
        self.add(Proto {
            id: "oscorp-dev",
            role: WellBehavedUncontracted,
            peak: 0.3,
            units: (25.0, 1.5),
            tz_h: -5.0,
            diurnal: sm(0.15),
            weekly: WEEK_STD,
            calls: mix_broad(),
            origins: vec![ow(US_GCP, 1.0)],
            ts: Utc,
        });
        self.add(Proto {
            id: "cyberdyne-app",
            role: WeeklyPeak,
            peak: 5.0,
            units: (70.0, 0.4),
            tz_h: -5.0,
            diurnal: sm(0.3),
            weekly: WEEK_PEAKY,
            calls: mix_search_only(),
            origins: vec![ow(US_AZURE, 1.0)],
            ts: Utc,
        });
        let i = self.add(Proto {
            id: "soylent-shop",
            role: NewClientRamp,
            peak: 5.0,
            units: (45.0, 0.5),
            tz_h: -5.0,
            diurnal: sm(0.3),
            weekly: WEEK_STD,
            calls: mix_broad(),
            origins: vec![ow(US_AWS, 0.8), ow(CA, 0.2)],
            ts: EpochMillis,
        });
        let from = self.day(9) + 14 * HOUR_MS;
        let c = &mut self.clients[i];
        c.active_from_ms = if from < self.end { from } else { self.start };
        c.ramp_ms = if from < self.end { 2 * DAY_MS } else { 0 };

        // --- sudden jump to 3x contract, business hours, after day 3
        let jumps = [
            (
                "massive-dynamic",
                30.0,
                (100.0, 0.3),
                -5.0,
                vec![ow(US_AWS, 0.7), ow(US_AZURE, 0.3)],
                Utc,
                4,
                (19, 0),
                180,
            ),
            (
                "nakatomi-trading",
                28.0,
                (80.0, 0.3),
                9.0,
                vec![ow(JP, 1.0)],
                Offset(9 * 60),
                11,
                (5, 0),
                150,
            ),
            (
                "blue-sun-corp",
                26.0,
                (60.0, 0.3),
                1.0,
                vec![ow(DE, 0.5), ow(FR, 0.5)],
                EpochMillis,
                17,
                (13, 20),
                240,
            ),
        ];
        for (n, (id, peak, units, tz_h, origins, ts, day, (hh, mm), minutes)) in
            jumps.into_iter().enumerate()
        {
            let i = self.add(Proto {
                id,
                role: SuddenJumpContracted,
                peak,
                units,
                tz_h,
                diurnal: sm(0.1),
                weekly: WEEK_B2B,
                calls: mix_search_timeline(),
                origins,
                ts,
            });
            self.clients[i].noise_sigma = 0.04;
            let k = self.contract(i, "enterprise", 1.0);
            k.products = Some(vec!["search", "timeline"]);
            let mut allow = vec![kind::BASELINE_JUMP];
            if n == 0 {
                self.generous_cap(i, 2.0);
                allow.push(kind::CAP_FORECAST);
            }
            let s = self.weekday_at(day, hh, mm);
            self.plan(
                i,
                kind::OVER_CONTRACT,
                allow,
                s,
                s + minutes * MINUTE_MS,
                Some(Effect::ContractMultiple { factor: 3.0 }),
                format!("consumption at 3x the contracted rate for {minutes} minutes"),
            );
        }

        // --- slow creep: 0.7x -> 2.5x of contract over 7 days, office hours
        let i = self.add(Proto {
            id: "weyland-data",
            role: SlowCreepContracted,
            peak: 0.0,
            units: (70.0, 0.4),
            tz_h: -5.0,
            diurnal: Office { floor: 0.08 },
            weekly: WEEK_OFFICE,
            calls: mix_search_only(),
            origins: vec![ow(US_AWS, 1.0)],
            ts: Utc,
        });
        {
            // The contract is 12 calls a minute: with the Monday factor (1.1) as the weekly
            // peak, a peak ratio of 1.1 makes it exactly that. The usual level is then 0.7x
            // of it. No hourly noise, so the truth start below is exact.
            let scale = self.p.scale;
            let c = &mut self.clients[i];
            c.noise_sigma = 0.0;
            c.peak_per_min = 12.0 * scale;
            let k = self.contract(i, "enterprise", 1.1);
            k.products = Some(vec!["search"]);
            let contract_rate = self.clients[i].contract_events_per_min().unwrap_or(0.0);
            self.clients[i].peak_per_min = 0.7 * contract_rate;
        }
        self.plan_creep(i);

        // --- sudden jump to 3x its own usual rate, no contract, after day 10
        let bj = [
            (
                "prestige-worldwide",
                30.0,
                (60.0, 0.3),
                -5.0,
                vec![ow(US_AWS, 1.0)],
                Utc,
                15,
                (18, 40),
                180,
            ),
            (
                "dunder-paper",
                26.0,
                (50.0, 0.3),
                0.0,
                vec![ow(GB, 0.8), ow(IE, 0.2)],
                Offset(60),
                18,
                (14, 10),
                120,
            ),
            (
                "bluth-holdings",
                24.0,
                (70.0, 0.3),
                -8.0,
                vec![ow(US_GCP, 1.0)],
                EpochMillis,
                22,
                (22, 30),
                210,
            ),
        ];
        for (id, peak, units, tz_h, origins, ts, day, (hh, mm), minutes) in bj {
            let i = self.add(Proto {
                id,
                role: SuddenJumpUncontracted,
                peak,
                units,
                tz_h,
                diurnal: sm(0.1),
                weekly: WEEK_B2B,
                calls: mix_search_timeline(),
                origins,
                ts,
            });
            self.clients[i].noise_sigma = 0.04;
            let s = self.weekday_at(day, hh, mm);
            self.plan(
                i,
                kind::BASELINE_JUMP,
                vec![],
                s,
                s + minutes * MINUTE_MS,
                Some(Effect::Multiply { factor: 3.0 }),
                format!("consumption at 3x its usual rate for {minutes} minutes"),
            );
        }

        // --- out-of-contract product: 20% firehose for 6 hours
        for (id, peak, units, tz_h, origins, day, hh) in [
            (
                "sterling-cooper",
                10.0,
                (80.0, 0.5),
                -5.0,
                vec![ow(US_AWS, 1.0)],
                16,
                14,
            ),
            (
                "kramerica-industries",
                10.0,
                (50.0, 0.5),
                1.0,
                vec![ow(FR, 0.6), ow(DE, 0.4)],
                21,
                8,
            ),
        ] {
            let mut calls = mix_search_timeline();
            calls.push(FIREHOSE);
            let i = self.add(Proto {
                id,
                role: OutOfContractProduct,
                peak,
                units,
                tz_h,
                diurnal: sm(0.25),
                weekly: WEEK_STD,
                calls,
                origins,
                ts: Utc,
            });
            let k = self.contract(i, "pro", 0.7);
            k.products = Some(vec!["search", "timeline"]);
            let s = self.weekday_at(day, hh, 0);
            let index = self.clients[i].calls.len() - 1;
            self.plan(
                i,
                kind::OUT_OF_CONTRACT_PRODUCT,
                vec![],
                s,
                s + 6 * HOUR_MS,
                Some(Effect::CallShare { index, share: 0.2 }),
                "20% of calls to product firehose, outside the contract".into(),
            );
        }

        // --- out-of-contract endpoint: 20% user lookups for 6 hours
        let mut calls = mix_search_only();
        calls.push(USER_LOOKUP);
        let i = self.add(Proto {
            id: "gekko-capital",
            role: OutOfContractEndpoint,
            peak: 9.0,
            units: (120.0, 0.5),
            tz_h: -5.0,
            diurnal: sm(0.25),
            weekly: WEEK_STD,
            calls,
            origins: vec![ow(US_AZURE, 1.0)],
            ts: EpochMillis,
        });
        let k = self.contract(i, "enterprise", 0.75);
        k.endpoints = Some(vec!["/2/tweets/search/*"]);
        let s = self.weekday_at(10, 14, 0);
        let index = self.clients[i].calls.len() - 1;
        self.plan(
            i,
            kind::OUT_OF_CONTRACT_ENDPOINT,
            vec![],
            s,
            s + 6 * HOUR_MS,
            Some(Effect::CallShare { index, share: 0.2 }),
            "20% of calls to /2/users/by/username, outside the contracted endpoints".into(),
        );

        // --- out-of-contract origin: 30% from Singapore for 6 hours
        let i = self.add(Proto {
            id: "krusty-events",
            role: OutOfContractOrigin,
            peak: 9.0,
            units: (60.0, 0.5),
            tz_h: 0.0,
            diurnal: sm(0.25),
            weekly: WEEK_STD,
            calls: mix_search_timeline(),
            origins: vec![ow(US_AWS, 0.5), ow(IE, 0.5), SG],
            ts: Offset(60),
        });
        let k = self.contract(i, "pro", 0.7);
        k.origin_countries = Some(vec!["US", "IE"]);
        let s = self.weekday_at(23, 9, 0);
        self.plan(
            i,
            kind::OUT_OF_CONTRACT_ORIGIN,
            vec![],
            s,
            s + 6 * HOUR_MS,
            Some(Effect::OriginShare {
                index: 2,
                share: 0.3,
            }),
            "30% of calls from SG (AS45102), outside the contracted countries".into(),
        );

        // --- new origin: 30% from a country never seen for the client, 6 hours, after day 8
        for (id, peak, units, tz_h, origins, day, hh, cc) in [
            (
                "monsters-inc",
                7.0,
                (40.0, 0.5),
                -5.0,
                vec![ow(US_AWS, 0.7), ow(GB, 0.3), BR],
                15,
                14,
                "BR",
            ),
            (
                "los-pollos-hermanos",
                7.0,
                (55.0, 0.5),
                -6.0,
                vec![ow(US_GCP, 0.8), ow(GB, 0.2), NG],
                24,
                15,
                "NG",
            ),
        ] {
            let i = self.add(Proto {
                id,
                role: NewOrigin,
                peak,
                units,
                tz_h,
                diurnal: sm(0.25),
                weekly: WEEK_STD,
                calls: mix_broad(),
                origins,
                ts: Utc,
            });
            let s = self.weekday_at(day, hh, 0);
            self.plan(
                i,
                kind::NEW_ORIGIN,
                vec![],
                s,
                s + 6 * HOUR_MS,
                Some(Effect::OriginShare {
                    index: 2,
                    share: 0.3,
                }),
                format!("30% of calls from {cc}, a country never seen for this client"),
            );
        }

        // --- monthly cap running out: pace doubles at the month boundary
        let i = self.add(Proto {
            id: "zorg-industries",
            role: CapExhaustion,
            peak: 6.0,
            units: (90.0, 0.4),
            tz_h: 1.0,
            diurnal: sm(0.25),
            weekly: WEEK_STD,
            calls: mix_search_timeline(),
            origins: vec![ow(FR, 1.0)],
            ts: EpochMillis,
        });
        self.contract(i, "enterprise", 0.5);
        self.plan_cap(i);
    }

    /// The creep crosses into "clearly over" on a Monday morning: the weekend keeps the
    /// client quiet while the multiplier passes the alert threshold, so that on Monday the
    /// office ramp carries it from well under to well over the contract within minutes.
    fn plan_creep(&mut self, i: usize) {
        let tz = self.clients[i].tz_minutes as i64 * MINUTE_MS;
        // the first Monday at least 12 days in
        let mut monday = self.day(12);
        while (monday.div_euclid(DAY_MS) + 3).rem_euclid(7) != 0 {
            monday += DAY_MS;
        }
        let start = monday - 5 * DAY_MS + 14 * HOUR_MS - tz; // Wednesday 14:00 local
        let end = monday + 16 * HOUR_MS - tz; // Monday 16:00 local: the client rolls back
        if !self.fits(start, end) {
            return;
        }
        let (from, to) = (0.7, 2.5);
        self.clients[i].episodes.push(Episode {
            start_ms: start,
            end_ms: end,
            effect: Effect::Creep {
                from,
                to,
                over_ms: 7 * DAY_MS,
            },
        });
        // truth: the first minute boundary where the noise-free 30-minute average reaches 1.6x
        let c = &self.clients[i];
        let Some(contract) = c.contract_events_per_min() else {
            return;
        };
        let mut window = std::collections::VecDeque::with_capacity(30);
        let mut sum = 0.0;
        let mut t = start - 30 * MINUTE_MS;
        let mut crossed = None;
        while t < end {
            let r = c.rate_at(t);
            window.push_back(r);
            sum += r;
            if window.len() > 30 {
                sum -= window.pop_front().unwrap_or(0.0);
            }
            if window.len() == 30 && t >= start && sum / 30.0 >= 1.6 * contract {
                crossed = Some(t + MINUTE_MS);
                break;
            }
            t += MINUTE_MS;
        }
        if let Some(s) = crossed {
            self.planned.push(Planned {
                client: i,
                expect: kind::OVER_CONTRACT,
                allow: vec![kind::BASELINE_JUMP],
                start_ms: s,
                end_ms: end,
                description: format!(
                    "consumption creeping from {from}x to {to}x of contract over 7 days; \
                     starts when the 30-minute average reaches 1.6x"
                ),
                magnitude: None,
                detectable_ms: None,
                driver: None,
            });
        }
    }

    /// From the first month boundary at least 3 days in, the pace doubles; the cap is set so
    /// that the month-to-date total passes it about mid-month.
    fn plan_cap(&mut self, i: usize) {
        let first = month_start(month_of(self.start + 3 * DAY_MS) + 1);
        if !self.fits(first, first + DAY_MS) {
            self.generous_cap(i, 2.0);
            return;
        }
        let month_end = month_start(month_of(first) + 1);
        self.clients[i].episodes.push(Episode {
            start_ms: first,
            end_ms: month_end,
            effect: Effect::Multiply { factor: 2.0 },
        });
        // cap reached about 14.5 days into the month at the doubled pace
        let cap = nice_up(self.expected_units(i, first, first + 29 * DAY_MS / 2));
        if let Some(k) = self.clients[i].contract.as_mut() {
            k.monthly_cap = Some(cap);
        }
        let end = self.end - REPORT_GRACE_MS;
        self.planned.push(Planned {
            client: i,
            expect: kind::CAP_FORECAST,
            allow: vec![kind::BASELINE_JUMP],
            start_ms: first,
            end_ms: end.min(month_end),
            description: "pace doubled at the month boundary: on course to exceed the monthly cap"
                .into(),
            magnitude: None,
            detectable_ms: None,
            driver: None,
        });
        // the cap_exceeded incident is added once generation knows the crossing event
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;
    use crate::time::format_rfc3339;

    #[test]
    fn standard_scenario_is_what_the_brief_says() {
        let p = SimParams::default();
        let sc = Scenario::standard(&p).unwrap();
        assert!(
            (30..=40).contains(&sc.clients.len()),
            "{}",
            sc.clients.len()
        );
        let ids: HashSet<&str> = sc.clients.iter().map(|c| &*c.id).collect();
        assert_eq!(ids.len(), sc.clients.len(), "client ids are unique");
        let planned = |role: Role| {
            sc.planned
                .iter()
                .filter(|a| sc.clients[a.client].role == role)
                .collect::<Vec<_>>()
        };
        assert_eq!(planned(Role::SuddenJumpContracted).len(), 3);
        assert_eq!(planned(Role::SuddenJumpUncontracted).len(), 3);
        assert_eq!(planned(Role::SlowCreepContracted).len(), 1);
        assert_eq!(
            planned(Role::CapExhaustion).len(),
            1,
            "cap_exceeded is added after generation"
        );
        for a in planned(Role::SuddenJumpUncontracted) {
            assert!(a.start_ms >= sc.start_ms + 10 * DAY_MS);
        }
        for a in &sc.planned {
            assert!(a.end_ms + REPORT_GRACE_MS <= sc.end_ms);
            assert!(a.start_ms < a.end_ms);
        }
        // the creep crosses 1.6x on a Monday morning, its start computed from the rate model
        let creep = planned(Role::SlowCreepContracted)[0];
        assert_eq!(
            format_rfc3339(creep.start_ms)[..10].to_owned(),
            "2026-09-07"
        );
        // well-behaved contracted clients peak at no more than 1.1x contract (noise-free),
        // and their caps are at least 1.6x the expected month
        for c in sc
            .clients
            .iter()
            .filter(|c| c.role == Role::WellBehavedContracted)
        {
            let contract = c.contract_events_per_min().unwrap();
            let peak = (0..7 * 24 * 60)
                .map(|m| c.seasonal(sc.start_ms + m * MINUTE_MS))
                .fold(0.0, f64::max);
            assert!(peak <= 1.1 * contract, "{}: {peak} vs {contract}", c.id);
            if let Some(cap) = c.contract.as_ref().unwrap().monthly_cap {
                let week: f64 = (0..7 * 24 * 60)
                    .map(|m| c.seasonal(sc.start_ms + m * MINUTE_MS) * c.mean_units_per_event())
                    .sum();
                assert!(cap >= 1.6 * week * 31.0 / 7.0 * 0.98, "{}", c.id);
            }
        }
        // bursts stay short and clear of the incidents
        for (i, c) in sc.clients.iter().enumerate() {
            for b in &c.bursts {
                assert!(b.end_ms - b.start_ms <= 3 * MINUTE_MS);
                assert!(b.factor <= if c.contract.is_some() { 4.0 } else { 3.0 });
                for a in sc.planned.iter().filter(|a| a.client == i) {
                    assert!(b.end_ms <= a.start_ms - HOUR_MS || b.start_ms >= a.end_ms + HOUR_MS);
                }
            }
        }
        let toml = sc.contracts_toml();
        let contracts =
            crate::contract::Contracts::parse(&toml, Path::new("contracts.toml")).unwrap();
        assert_eq!(
            contracts.len(),
            sc.clients.iter().filter(|c| c.contract.is_some()).count()
        );
    }

    #[test]
    fn short_runs_plant_only_what_fits() {
        let p = SimParams {
            days: 6,
            scale: 0.1,
            ..SimParams::default()
        };
        let t = Scenario::standard(&p).unwrap().generator().finish();
        assert!(t
            .anomalies
            .iter()
            .all(|a| a.end_ms + REPORT_GRACE_MS <= t.end_ms));
        assert_eq!(t.anomalies.len(), 1, "{:?}", t.anomalies);
        assert_eq!(t.anomalies[0].client_id, "massive-dynamic");
        for c in &t.clients {
            let has = t.anomalies.iter().any(|a| a.client_id == c.client_id);
            assert_eq!(t.is_well_behaved(&c.client_id), !has);
        }
        assert!(SimParams {
            days: 0,
            ..p.clone()
        }
        .validate()
        .is_err());
        assert!(SimParams {
            scale: f64::NAN,
            ..p
        }
        .validate()
        .is_err());
    }
}
