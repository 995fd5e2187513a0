//! Detection quality end to end, in process: a scenario's events through overage's engine and
//! through the peer rules ([`crate::peers`]), each scored against the truth ([`crate::score`]).
//!
//! `overage score --fleet N --seeds ...` and the fleet quality test both run this, so the
//! figures in the README come from the same code the test enforces, without writing the
//! (large) event files.

use std::sync::Arc;

use crate::alert::Alert;
use crate::config::Config;
use crate::contract::{ContractError, Contracts};
use crate::decode::Decoder;
use crate::engine::Engine;
use crate::peers::Series;
use crate::score::{score, AlertRecord, Report};
use crate::simulate::{Scenario, SimError, SimParams, Truth};

#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error("the scenario's own contracts do not parse: {0}")]
    Contracts(#[from] ContractError),
}

/// One scenario scored three ways.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub truth: Truth,
    /// Every alert transition overage raised, in the order it raised them.
    pub alerts: Vec<AlertRecord>,
    pub overage: Report,
    pub static_rule: Report,
    pub zscore_rule: Report,
    /// Lines the scenario produced (events, redeliveries, garbage).
    pub lines: u64,
}

/// Run `p`'s scenario through overage (configured by `cfg`) and the peer rules.
pub fn compare(p: &SimParams, cfg: &Config) -> Result<Comparison, QualityError> {
    let sc = Scenario::new(p)?;
    let contracts = Arc::new(Contracts::parse(
        &sc.contracts_toml(),
        std::path::Path::new("contracts.toml"),
    )?);
    let mut engine = Engine::new(cfg, contracts.clone());
    let decoder = Decoder::canonical(cfg.input.max_event_bytes);
    let mut series = Series::new(sc.start_ms, sc.end_ms);
    let mut gen = sc.generator();
    let mut line = Vec::with_capacity(512);
    let mut out: Vec<Alert> = Vec::new();
    let mut alerts = Vec::new();
    let mut lines = 0u64;
    while gen.next_line(&mut line).is_some() {
        lines += 1;
        decoder.decode(&line, |r| {
            if let Ok(ev) = r {
                series.add(ev.ts, &ev.client_id, ev.units);
            }
        });
        engine.ingest(&decoder, &line, None, &mut out);
        alerts.extend(out.drain(..).map(|a| record(&a)));
    }
    engine.flush(&mut out);
    alerts.extend(out.drain(..).map(|a| record(&a)));
    let truth = gen.finish();
    Ok(Comparison {
        overage: score(&truth, &alerts),
        static_rule: score(&truth, &series.static_rule(&contracts)),
        zscore_rule: score(&truth, &series.zscore_rule(&contracts)),
        truth,
        alerts,
        lines,
    })
}

fn record(a: &Alert) -> AlertRecord {
    let mut r = AlertRecord::new(
        a.alert.as_str(),
        a.state == crate::alert::State::Firing,
        &a.client_id,
        a.at,
        a.severity.as_str(),
    );
    r.fingerprint.clone_from(&a.fingerprint);
    r.top_driver = a
        .drivers
        .first()
        .map(|d| format!("{}:{}", d.dimension, d.name));
    r.excess_units = a.excess_units;
    r.since_ms = Some(a.since);
    r
}

/// One row of the side-by-side table: a detector's figures on one or more scenarios.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Row {
    pub detector: String,
    pub anomalies: usize,
    pub detected: usize,
    pub false_firings: usize,
    pub false_pages: usize,
    pub client_days: f64,
    pub refires: usize,
    pub stuck: usize,
    /// Of them, scope and new-origin alerts on too few calls after their violation ended to
    /// tell it had ([`crate::score::Stuck::untold`]).
    pub stuck_untold: usize,
    /// Median and largest delay (seconds) from "clearly detectable".
    pub median_delay_s: Option<f64>,
    pub max_delay_s: Option<f64>,
}

impl Row {
    pub fn add(&mut self, r: &Report) {
        self.anomalies += r.anomalies;
        self.detected += r.detected;
        self.false_firings += r.false_firings;
        self.false_pages += r.false_pages;
        self.client_days += r.client_days;
        self.refires += r.refires;
        self.stuck += r.stuck.len();
        self.stuck_untold += r.stuck_untold();
    }

    pub fn delays(&mut self, reports: &[&Report]) {
        let mut d: Vec<f64> = reports
            .iter()
            .flat_map(|r| r.results.iter().filter_map(|x| x.delay_s))
            .collect();
        d.sort_by(f64::total_cmp);
        self.median_delay_s = d.get(d.len() / 2).copied();
        self.max_delay_s = d.last().copied();
    }

    pub fn recall(&self) -> f64 {
        if self.anomalies == 0 {
            1.0
        } else {
            self.detected as f64 / self.anomalies as f64
        }
    }

    pub fn false_per_1000_client_days(&self) -> f64 {
        if self.client_days > 0.0 {
            self.false_firings as f64 * 1000.0 / self.client_days
        } else {
            0.0
        }
    }
}

/// Rows for overage and both peers over several comparisons.
pub fn rows(cs: &[Comparison]) -> [Row; 3] {
    let mut rows = [
        Row {
            detector: "overage".into(),
            ..Row::default()
        },
        Row {
            detector: "static: increase[1h] > 1.5x contract, for 5m".into(),
            ..Row::default()
        },
        Row {
            detector: "z-score of increase[1h] over 1w > 3, for 5m".into(),
            ..Row::default()
        },
    ];
    fn pick(c: &Comparison, i: usize) -> &Report {
        match i {
            0 => &c.overage,
            1 => &c.static_rule,
            _ => &c.zscore_rule,
        }
    }
    for (i, row) in rows.iter_mut().enumerate() {
        let reports: Vec<&Report> = cs.iter().map(|c| pick(c, i)).collect();
        for r in &reports {
            row.add(r);
        }
        row.delays(&reports);
    }
    rows
}

/// The side-by-side table, as the README shows it.
pub fn table(rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| detector | recall | false firings (per 1,000 client-days) | of them pages | re-fires in an episode | stuck | median delay | max delay |\n|---|---|---|---|---|---|---|---|"
    );
    let d = |x: Option<f64>| x.map_or("-".to_owned(), |s| format!("{:.0} min", s / 60.0));
    let stuck = |r: &Row| match r.stuck_untold {
        0 => r.stuck.to_string(),
        n => format!("{} ({n} untold)", r.stuck),
    };
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {:.2} ({}/{}) | {} ({:.2}) | {} | {} | {} | {} | {} |",
            r.detector,
            r.recall(),
            r.detected,
            r.anomalies,
            r.false_firings,
            r.false_per_1000_client_days(),
            r.false_pages,
            r.refires,
            stuck(r),
            d(r.median_delay_s),
            d(r.max_delay_s)
        );
    }
    if rows.iter().any(|r| r.stuck_untold > 0) {
        let _ = writeln!(
            s,
            "\nuntold: stuck scope and new-origin alerts whose client made fewer calls in the \
             {} after its violation ended than the clean run that tells it had.",
            crate::time::duration_label(crate::score::STUCK_AFTER_MS)
        );
    }
    s
}
