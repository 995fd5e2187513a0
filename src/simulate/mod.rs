//! Labelled traffic scenarios: realistic access events whose anomalies are known by
//! construction, so that detection quality can be measured rather than argued about.
//!
//! A detector tuned by eye on live traffic tends to be tuned to whatever happened last week.
//! This module produces a month of traffic for ~30 clients, with the seasonality, noise, bursts
//! and delivery faults of a real gateway, plus a handful of planted incidents (a partner jumping
//! to 3x its contract, a slow creep, out-of-contract products, a new country, a monthly cap
//! running out). [`Truth`] records what is anomalous *by construction*, when it starts and ends,
//! and the exact accounting (units per client and day, duplicates, rejects by reason) so that
//! [`crate::score`] can grade a replay's alerts and its summary without trusting the detector.
//!
//! The event stream is a plain iterator ([`Generator`]) so the live demo can feed it into a
//! broker at wall-clock pace; [`write_scenario`] drains it into `events.jsonl` next to
//! `contracts.toml` and `truth.json`.
//!
//! [`shapes`] renders the same stream as Kong or APISIX logs.
//!
//! Everything is a deterministic function of [`SimParams`]: traffic and faults use separate
//! random streams, so changing the fault rates does not change the traffic.

pub mod fleet;
pub mod shapes;

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, LogNormal, Normal, Poisson};
use serde::{Deserialize, Serialize};

use crate::time::{format_rfc3339, month_of, month_start, DAY_MS, HOUR_MS, MINUTE_MS};

/// 2026-08-24T00:00:00Z, a Monday a week before a month boundary.
pub const DEFAULT_START_MS: i64 = 1_787_529_600_000;

/// Grace after an anomaly's end during which a detector may still report it (mirrors the
/// scorer's detection window), so anomalies are only planted where that grace fits in the run.
const REPORT_GRACE_MS: i64 = 2 * HOUR_MS;

/// Most records one call can return (the largest page size).
const MAX_PAGE: f64 = 500.0;

/// Share of calls answered 200; the others (429, 4xx, 5xx) return no records.
const OK_SHARE: f64 = 0.965;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulation parameter: {0}")]
    Params(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// What to simulate. Rates are per client; `scale` multiplies every client's traffic (and the
/// contracts and caps with it, so the planted incidents keep their shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimParams {
    pub seed: u64,
    /// First event time (floored to the minute).
    pub start_ms: i64,
    pub days: u32,
    pub scale: f64,
    /// Share of events delivered twice (same line, same `event_id`), a few seconds apart.
    pub duplicate_rate: f64,
    /// Largest event-time inversion in the stream: an event never appears after one that is
    /// more than this much newer.
    pub max_disorder_ms: i64,
    /// Garbage lines per event (spread over the decoder's rejection reasons).
    pub malformed_rate: f64,
    /// A fleet of this many sampled clients ([`fleet`]) instead of the standard scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<u32>,
}

impl Default for SimParams {
    fn default() -> Self {
        SimParams {
            seed: 42,
            start_ms: DEFAULT_START_MS,
            days: 28,
            scale: 1.0,
            duplicate_rate: 0.005,
            max_disorder_ms: 20_000,
            malformed_rate: 0.0005,
            fleet: None,
        }
    }
}

impl SimParams {
    fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Params(m));
        if self.days == 0 || self.days > 366 {
            return bad(format!("days must be 1..=366, got {}", self.days));
        }
        if !(self.scale.is_finite() && self.scale > 0.0 && self.scale <= 1000.0) {
            return bad(format!("scale must be in (0, 1000], got {}", self.scale));
        }
        for (name, v) in [
            ("duplicate_rate", self.duplicate_rate),
            ("malformed_rate", self.malformed_rate),
        ] {
            if !(0.0..=0.5).contains(&v) {
                return bad(format!("{name} must be in [0, 0.5], got {v}"));
            }
        }
        if !(0..=10 * MINUTE_MS).contains(&self.max_disorder_ms) {
            return bad(format!(
                "max_disorder_ms must be in [0, 600000], got {}",
                self.max_disorder_ms
            ));
        }
        if self.start_ms < 0 {
            return bad(format!("start_ms must be >= 0, got {}", self.start_ms));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Ground truth
// ---------------------------------------------------------------------------------------------

/// Alert kind names, as in the alert JSON.
pub mod kind {
    use crate::alert::AlertKind;
    pub const OVER_CONTRACT: &str = AlertKind::OverContract.as_str();
    pub const BASELINE_JUMP: &str = AlertKind::BaselineJump.as_str();
    pub const CAP_FORECAST: &str = AlertKind::CapForecast.as_str();
    pub const CAP_EXCEEDED: &str = AlertKind::CapExceeded.as_str();
    pub const OUT_OF_CONTRACT_PRODUCT: &str = AlertKind::OutOfContractProduct.as_str();
    pub const OUT_OF_CONTRACT_ENDPOINT: &str = AlertKind::OutOfContractEndpoint.as_str();
    pub const OUT_OF_CONTRACT_ORIGIN: &str = AlertKind::OutOfContractOrigin.as_str();
    pub const NEW_ORIGIN: &str = AlertKind::NewOrigin.as_str();
    /// In the order reports list them.
    pub const ALL: [&str; 8] = [
        OVER_CONTRACT,
        BASELINE_JUMP,
        CAP_FORECAST,
        CAP_EXCEEDED,
        OUT_OF_CONTRACT_PRODUCT,
        OUT_OF_CONTRACT_ENDPOINT,
        OUT_OF_CONTRACT_ORIGIN,
        NEW_ORIGIN,
    ];
}

/// Decoder rejection reasons the generator injects, as the summary names them.
pub mod reason {
    use crate::decode::Reject;
    pub const MALFORMED: &str = Reject::Malformed.as_str();
    pub const MISSING_CLIENT_ID: &str = Reject::MissingClientId.as_str();
    pub const BAD_CLIENT_ID: &str = Reject::BadClientId.as_str();
    pub const BAD_TIMESTAMP: &str = Reject::BadTimestamp.as_str();
    pub const BAD_UNITS: &str = Reject::BadUnits.as_str();
    pub const ALL: [&str; 5] = [
        MALFORMED,
        MISSING_CLIENT_ID,
        BAD_CLIENT_ID,
        BAD_TIMESTAMP,
        BAD_UNITS,
    ];
}

/// What a client is in the scenario. The anomalous roles carry their incident; a client whose
/// incident did not fit in a short run behaves normally and is listed as well-behaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    WellBehavedContracted,
    WellBehavedUncontracted,
    WeeklyPeak,
    NewClientRamp,
    SuddenJumpContracted,
    SlowCreepContracted,
    SuddenJumpUncontracted,
    OutOfContractProduct,
    OutOfContractEndpoint,
    OutOfContractOrigin,
    NewOrigin,
    CapExhaustion,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::WellBehavedContracted => "well_behaved_contracted",
            Role::WellBehavedUncontracted => "well_behaved_uncontracted",
            Role::WeeklyPeak => "weekly_peak",
            Role::NewClientRamp => "new_client_ramp",
            Role::SuddenJumpContracted => "sudden_jump_contracted",
            Role::SlowCreepContracted => "slow_creep_contracted",
            Role::SuddenJumpUncontracted => "sudden_jump_uncontracted",
            Role::OutOfContractProduct => "out_of_contract_product",
            Role::OutOfContractEndpoint => "out_of_contract_endpoint",
            Role::OutOfContractOrigin => "out_of_contract_origin",
            Role::NewOrigin => "new_origin",
            Role::CapExhaustion => "cap_exhaustion",
        }
    }
}

/// One planted incident and what a correct detector says about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub client_id: String,
    /// Scenario name ([`Role::as_str`]).
    pub scenario: String,
    /// Alert kinds that must fire for it.
    pub expect: Vec<String>,
    /// Alert kinds that may also legitimately fire during it.
    #[serde(default)]
    pub allow: Vec<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// `start_ms` / `end_ms` in RFC 3339, for people reading truth.json.
    #[serde(default)]
    pub start: String,
    #[serde(default)]
    pub end: String,
    #[serde(default)]
    pub description: String,
    /// How far over: the multiple of the contract (or of the client's usual rate) for volume
    /// incidents, the share of calls for scope and origin incidents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magnitude: Option<f64>,
    /// When the incident becomes clearly detectable (enough calls at the new level to tell it
    /// from noise); delays are measured from here. `start_ms` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detectable_ms: Option<i64>,
    /// What the excess of a volume incident comes from (`product:firehose`, `country:NG`,
    /// `asn:AS24940`, `endpoint:/2/bulk`), when one label carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

impl Anomaly {
    /// Where delays are measured from.
    pub fn detectable(&self) -> i64 {
        self.detectable_ms.unwrap_or(self.start_ms)
    }
}

/// Per-client facts, for reports and debugging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientTruth {
    pub client_id: String,
    pub role: Role,
    pub contracted: bool,
    /// Contracted units per hour, if contracted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_units_per_hour: Option<f64>,
    /// Distinct valid events.
    pub events: u64,
    /// First month-to-date cap crossing per month (`YYYY-MM` → event time), if any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cap_crossings: BTreeMap<String, i64>,
    /// Legitimate behaviours the fleet sampled for it (`holiday`, `ramp`, `growth`, `batch`,
    /// `heavy_tail`, ...), to tell which kind of client a false alert came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<String>,
}

/// Delivery faults injected into the stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Lines in the stream: events, their duplicates and garbage.
    pub lines: u64,
    /// Distinct valid events.
    pub events: u64,
    /// Re-deliveries of an event (identical line, same `event_id`).
    pub duplicates: u64,
    /// Events of the gateway-outage backlog (delivered late), and how many of the duplicates
    /// are their retries.
    #[serde(default)]
    pub backlog_events: u64,
    #[serde(default)]
    pub backlog_duplicates: u64,
    /// Garbage lines by the rejection reason the decoder reports for them.
    pub rejected: BTreeMap<String, u64>,
    /// The configured bound, and the largest inversion actually produced (the backlog aside).
    pub max_disorder_ms: i64,
    pub observed_max_disorder_ms: i64,
    /// What must be applied despite these faults, per client, UTC day (`YYYY-MM-DD`) and
    /// product (`(none)` when the event names none): what `overage report` must show.
    /// Re-deliveries and garbage excluded; events that arrive late are included (the engine
    /// counts them in usage).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied_by_day_product: BTreeMap<String, BTreeMap<String, BTreeMap<String, UsageTruth>>>,
}

/// Ground truth of a scenario, written as `truth.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub params: SimParams,
    pub start_ms: i64,
    pub end_ms: i64,
    pub anomalies: Vec<Anomaly>,
    /// Clients that must raise no alert at all.
    pub well_behaved: Vec<String>,
    pub clients: Vec<ClientTruth>,
    /// Units per client over the run: duplicates and garbage excluded, exact (integer sums).
    pub usage: BTreeMap<String, f64>,
    /// Units per client per UTC day (`YYYY-MM-DD`).
    pub usage_by_day: BTreeMap<String, BTreeMap<String, f64>>,
    pub faults: Faults,
    /// Units per minute of the run (duplicates excluded) of clients with an `over_contract`
    /// incident, so scoring can check the excess units alerts report. In memory only: too
    /// large for `truth.json`.
    #[serde(skip)]
    pub minute_units: BTreeMap<String, Vec<f64>>,
}

/// Exact usage of one client, day and product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTruth {
    pub units: f64,
    pub events: u64,
}

impl Truth {
    pub fn load(path: &Path) -> Result<Truth, SimError> {
        let file = File::open(path).map_err(|source| SimError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_reader(std::io::BufReader::new(file)).map_err(|source| SimError::Json {
            path: path.to_owned(),
            source,
        })
    }

    pub fn is_well_behaved(&self, client_id: &str) -> bool {
        self.well_behaved.iter().any(|c| c == client_id)
    }
}

// ---------------------------------------------------------------------------------------------
// Client specifications
// ---------------------------------------------------------------------------------------------

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
    hourly_noise: Vec<f32>,
    first_hour: i64,
}

impl ClientSpec {
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

    fn seasonal(&self, t: i64) -> f64 {
        let local = t + self.tz_minutes as i64 * MINUTE_MS;
        let local_hour = local.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64;
        let weekday = (t.div_euclid(DAY_MS) + 3).rem_euclid(7) as usize;
        self.peak_per_min * self.diurnal.at(local_hour) * self.weekly[weekday]
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

    fn share_at(&self, ts: i64, origin: bool) -> Option<(usize, f64)> {
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
const fn call(
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
const SEARCH_RECENT: Call = call("search", "/2/tweets/search/recent", 0.0, CallUnits::Records);
const SEARCH_ALL: Call = call("search", "/2/tweets/search/all", 0.0, CallUnits::Records);
const USER_TWEETS: Call = call("timeline", "/2/users/:id/tweets", 0.0, CallUnits::Records);
const USER_MENTIONS: Call = call("timeline", "/2/users/:id/mentions", 0.0, CallUnits::Records);
const TWEET_LOOKUP: Call = call("lookup", "/2/tweets", 0.0, CallUnits::Records);
const USER_LOOKUP: Call = call("lookup", "/2/users/by/username", 0.0, CallUnits::One);
const COUNTS: Call = call("counts", "/2/tweets/counts/recent", 0.0, CallUnits::One);
const FIREHOSE: Call = call(
    "firehose",
    "/2/tweets/sample/stream",
    0.0,
    CallUnits::Records,
);

fn w(c: Call, weight: f64) -> Call {
    Call { weight, ..c }
}

fn mix_search_timeline() -> Vec<Call> {
    vec![
        w(SEARCH_RECENT, 0.45),
        w(SEARCH_ALL, 0.15),
        w(USER_TWEETS, 0.25),
        w(USER_MENTIONS, 0.15),
    ]
}
fn mix_search_only() -> Vec<Call> {
    vec![w(SEARCH_RECENT, 0.7), w(SEARCH_ALL, 0.3)]
}
fn mix_broad() -> Vec<Call> {
    vec![
        w(SEARCH_RECENT, 0.35),
        w(SEARCH_ALL, 0.1),
        w(USER_TWEETS, 0.2),
        w(TWEET_LOOKUP, 0.15),
        w(USER_LOOKUP, 0.1),
        w(COUNTS, 0.1),
    ]
}
fn mix_timeline() -> Vec<Call> {
    vec![
        w(USER_TWEETS, 0.6),
        w(USER_MENTIONS, 0.3),
        w(USER_LOOKUP, 0.1),
    ]
}

const fn origin(country: &'static str, asn: u32, a: u8, b: u8) -> Origin {
    Origin {
        country,
        asn,
        net: [a, b],
        weight: 0.0,
    }
}
const US_AWS: Origin = origin("US", 16509, 3, 80);
const US_GCP: Origin = origin("US", 15169, 34, 72);
const US_AZURE: Origin = origin("US", 8075, 20, 42);
const GB: Origin = origin("GB", 16509, 18, 130);
const IE: Origin = origin("IE", 16509, 34, 240);
const NL: Origin = origin("NL", 14061, 188, 166);
const DE: Origin = origin("DE", 24940, 95, 217);
const FR: Origin = origin("FR", 16276, 51, 75);
const JP: Origin = origin("JP", 2516, 106, 128);
const CA: Origin = origin("CA", 577, 142, 112);
const IN: Origin = origin("IN", 55836, 49, 36);
const SG: Origin = origin("SG", 45102, 47, 74);
const AU: Origin = origin("AU", 1221, 101, 160);
const BR: Origin = origin("BR", 28573, 177, 32);
const NG: Origin = origin("NG", 29465, 102, 88);

fn ow(o: Origin, weight: f64) -> Origin {
    Origin { weight, ..o }
}

const WEEK_STD: [f64; 7] = [1.1, 1.0, 1.0, 1.0, 0.95, 0.5, 0.5];
const WEEK_FLAT: [f64; 7] = [1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.9];
const WEEK_PEAKY: [f64; 7] = [1.5, 1.0, 1.0, 1.0, 1.0, 0.4, 0.4];
/// Partners whose traffic follows their own customers' working week.
const WEEK_B2B: [f64; 7] = [1.1, 1.0, 1.0, 1.0, 0.95, 0.4, 0.4];
const WEEK_OFFICE: [f64; 7] = [1.1, 1.0, 1.0, 1.0, 1.0, 0.15, 0.15];

/// Round up to two significant digits, as account teams write contract numbers.
fn nice_up(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(x.log10().floor() - 1.0).max(1.0);
    (x / mag).ceil() * mag
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn stream_seed(seed: u64, client: usize, purpose: u64) -> u64 {
    splitmix(splitmix(seed ^ purpose.wrapping_mul(0x2545_f491_4f6c_dd1d)) ^ client as u64)
}

// ---------------------------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------------------------

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

    fn holds(&self, client: usize, ts: i64) -> bool {
        client == self.client && (self.start_ms..self.end_ms).contains(&ts)
    }

    /// When an event of the outage is delivered.
    fn delivery(&self, ts: i64) -> i64 {
        self.end_ms + self.delay_ms + (ts - self.start_ms) / 20
    }
}

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
    /// The scenario `p` asks for: a fleet of `p.fleet` sampled clients, or the standard one.
    pub fn new(p: &SimParams) -> Result<Scenario, SimError> {
        match p.fleet {
            Some(n) => Scenario::fleet(p, n as usize),
            None => Scenario::standard(p),
        }
    }

    /// The standard scenario: ~30 clients over `p.days` from `p.start_ms`.
    pub fn standard(p: &SimParams) -> Result<Scenario, SimError> {
        p.validate()?;
        let start = p.start_ms - p.start_ms.rem_euclid(MINUTE_MS);
        let end = start + p.days as i64 * DAY_MS;
        let mut b = Builder {
            p: p.clone(),
            start,
            end,
            clients: Vec::new(),
            planned: Vec::new(),
        };
        b.build();
        let mut sc = Scenario {
            params: p.clone(),
            start_ms: start,
            end_ms: end,
            clients: b.clients,
            planned: b.planned,
            cap_clients: Vec::new(),
            backlog: None,
        };
        sc.cap_clients = sc
            .clients
            .iter()
            .position(|c| c.role == Role::CapExhaustion)
            .and_then(|i| {
                let a = sc.planned.iter().find(|a| a.client == i)?;
                Some((i, a.start_ms))
            })
            .into_iter()
            .collect();
        sc.finish_clients();
        sc.mark_detectable(false);
        sc.backlog = sc.plan_backlog();
        Ok(sc)
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

struct Builder {
    p: SimParams,
    start: i64,
    end: i64,
    clients: Vec<ClientSpec>,
    planned: Vec<Planned>,
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

    /// Give the client a contract under which its noise-free weekly peak is `peak_ratio ×` the
    /// contracted rate (at most; the contract is rounded up to a number people write).
    fn contract(&mut self, i: usize, plan: &'static str, peak_ratio: f64) -> &mut ContractSpec {
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

    /// Expected units of client `i` over `[from, to)` (noise-free season, incidents included).
    fn expected_units(&self, i: usize, from: i64, to: i64) -> f64 {
        let c = &self.clients[i];
        let u = c.mean_units_per_event();
        let mut t = from;
        let mut total = 0.0;
        while t < to {
            total += c.rate_at(t) * u;
            t += MINUTE_MS;
        }
        total
    }

    /// A monthly cap of `times ×` the client's expected consumption in a 31-day month.
    fn generous_cap(&mut self, i: usize, times: f64) {
        let month = self.expected_units(i, self.start, self.start + 7 * DAY_MS) * 31.0 / 7.0;
        if let Some(k) = self.clients[i].contract.as_mut() {
            k.monthly_cap = Some(nice_up(month * times));
        }
    }

    /// A monthly cap of `times ×` the client's usual month: its pattern alone, without the
    /// ramp, holidays or incidents of the run (a cap measured on an onboarding week would be
    /// blown by the client's ordinary traffic).
    fn usual_cap(&mut self, i: usize, times: f64) {
        let c = &self.clients[i];
        let u = c.mean_units_per_event();
        let week: f64 = (0..7 * 24 * 60)
            .map(|m| c.seasonal(self.start + m * MINUTE_MS) * u)
            .sum();
        if let Some(k) = self.clients[i].contract.as_mut() {
            k.monthly_cap = Some(nice_up(week * 31.0 / 7.0 * times));
        }
    }

    fn day(&self, d: i64) -> i64 {
        self.start - self.start.rem_euclid(DAY_MS) + d * DAY_MS
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

    fn fits(&self, start: i64, end: i64) -> bool {
        start >= self.start && end + REPORT_GRACE_MS <= self.end
    }

    #[allow(clippy::too_many_arguments)]
    fn plan(
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

// ---------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------

/// One event, compact, so the reordering heap stays small and the line is rendered only when
/// it is emitted (a duplicate renders to the identical line).
#[derive(Debug, Clone, Copy)]
struct EventRec {
    ts: i64,
    id: u64,
    bytes: u32,
    units: u32,
    status: u16,
    ip: u16,
    sub_ms: u16,
    client: u16,
    call: u8,
    origin: u8,
    flags: u8,
}

const F_STYLE_MASK: u8 = 0b11;
const F_MILLIS: u8 = 0;
const F_UTC: u8 = 1;
const F_OFFSET: u8 = 2;
const F_MICROS: u8 = 1 << 2;
const F_NO_UNITS: u8 = 1 << 3;
const F_NO_ASN: u8 = 1 << 4;
/// Delivered late, in the backlog of a gateway outage.
const F_BACKLOG: u8 = 1 << 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Garbage {
    NotJson,
    Truncated,
    Array,
    Number,
    WrongType,
    NoClientId,
    EmptyClientId,
    LongClientId,
    NoTs,
    UnparseableTs,
    BoolTs,
    NegativeUnits,
    StringUnits,
}

impl Garbage {
    fn reason(self) -> &'static str {
        use Garbage::*;
        match self {
            NotJson | Truncated | Array | Number | WrongType => reason::MALFORMED,
            NoClientId | EmptyClientId => reason::MISSING_CLIENT_ID,
            LongClientId => reason::BAD_CLIENT_ID,
            NoTs | UnparseableTs | BoolTs => reason::BAD_TIMESTAMP,
            NegativeUnits | StringUnits => reason::BAD_UNITS,
        }
    }

    const ALL: [Garbage; 13] = [
        Garbage::NotJson,
        Garbage::Truncated,
        Garbage::Array,
        Garbage::Number,
        Garbage::WrongType,
        Garbage::NoClientId,
        Garbage::EmptyClientId,
        Garbage::LongClientId,
        Garbage::NoTs,
        Garbage::UnparseableTs,
        Garbage::BoolTs,
        Garbage::NegativeUnits,
        Garbage::StringUnits,
    ];
}

#[derive(Debug, Clone, Copy)]
struct GarbageRec {
    base: EventRec,
    kind: Garbage,
    seed: u64,
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Event(EventRec),
    Garbage(GarbageRec),
}

/// A line waiting in the reordering heap, ordered by when it is emitted.
#[derive(Debug, Clone, Copy)]
struct Pending {
    key: i64,
    seq: u64,
    item: Item,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.key, self.seq) == (o.key, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.key, self.seq).cmp(&(o.key, o.seq))
    }
}

/// Per-client running accounts.
#[derive(Debug, Clone, Default)]
struct Account {
    events: u64,
    units: f64,
    /// By UTC day index (days since the epoch).
    by_day: BTreeMap<i64, f64>,
    /// By UTC day and call index (a call names its product).
    by_day_call: BTreeMap<(i64, u8), UsageTruth>,
    month: i32,
    month_units: f64,
    cap_crossings: BTreeMap<String, i64>,
    /// Units per minute from the run's start, for clients whose excess is scored (else empty).
    by_minute: Vec<f64>,
}

/// An item of the stream: event time, the client it belongs to (the Kafka key a producer
/// should use; `None` for garbage, which must be sent without a key so that the key cannot
/// stand in for a missing `client_id`), and the line without its newline.
pub type SimLine = (i64, Option<Arc<str>>, Vec<u8>);

/// Iterator over a scenario's lines in stream order: approximately event-time order, with
/// duplicates, bounded disorder and garbage. Owns its data, so it can move to another thread.
pub struct Generator {
    sc: Scenario,
    rngs: Vec<SmallRng>,
    units: Vec<UnitSampler>,
    call_cum: Vec<Vec<f64>>,
    origin_cum: Vec<Vec<f64>>,
    fault_rng: SmallRng,
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    next_id: u64,
    id_salt: u64,
    /// Start of the next minute to generate; everything before it is in the heap or out.
    next_minute: i64,
    accounts: Vec<Account>,
    faults: Faults,
    max_emitted_ts: i64,
    scratch: Vec<EventRec>,
}

/// Records per call: a gamma (pages of search results), or a lognormal for heavy-tailed
/// clients (mostly small pages, now and then a bulk export).
enum UnitSampler {
    Gamma(Gamma<f64>),
    LogNormal(LogNormal<f64>),
    Constant,
}

/// Largest call of a heavy-tailed client (a bulk export), far beyond a page.
const MAX_BULK: f64 = 50_000.0;

impl UnitSampler {
    fn new(c: &ClientSpec) -> UnitSampler {
        if let Some(sigma) = c.units_sigma {
            let mu = c.units_mean.max(1e-6).ln() - sigma * sigma / 2.0;
            return LogNormal::new(mu, sigma).map_or(UnitSampler::Constant, UnitSampler::LogNormal);
        }
        let shape = 1.0 / (c.units_cv * c.units_cv).max(1e-6);
        Gamma::new(shape, c.units_mean / shape).map_or(UnitSampler::Constant, UnitSampler::Gamma)
    }

    fn sample(&self, rng: &mut SmallRng, mean: f64) -> u32 {
        match self {
            UnitSampler::Gamma(g) => g.sample(rng).round().clamp(0.0, MAX_PAGE) as u32,
            UnitSampler::LogNormal(l) => l.sample(rng).round().clamp(0.0, MAX_BULK) as u32,
            UnitSampler::Constant => mean.round() as u32,
        }
    }
}

fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .map(|w| {
            acc += w.max(0.0);
            acc
        })
        .collect()
}

fn pick(cum: &[f64], rng: &mut SmallRng) -> usize {
    let total = cum.last().copied().unwrap_or(0.0);
    if total <= 0.0 {
        return 0;
    }
    let x = rng.gen::<f64>() * total;
    cum.partition_point(|&c| c <= x).min(cum.len() - 1)
}

impl Generator {
    pub fn new(sc: &Scenario) -> Generator {
        let seed = sc.params.seed;
        let n = sc.clients.len();
        let mut faults = Faults {
            max_disorder_ms: sc.params.max_disorder_ms,
            ..Faults::default()
        };
        for r in reason::ALL {
            faults.rejected.insert(r.to_owned(), 0);
        }
        Generator {
            rngs: (0..n)
                .map(|i| SmallRng::seed_from_u64(stream_seed(seed, i, 2)))
                .collect(),
            units: sc.clients.iter().map(UnitSampler::new).collect(),
            call_cum: sc
                .clients
                .iter()
                .map(|c| cumulative(c.calls.iter().map(|x| x.weight)))
                .collect(),
            origin_cum: sc
                .clients
                .iter()
                .map(|c| cumulative(c.origins.iter().map(|x| x.weight)))
                .collect(),
            fault_rng: SmallRng::seed_from_u64(stream_seed(seed, usize::MAX, 3)),
            heap: BinaryHeap::new(),
            seq: 0,
            next_id: 0,
            id_salt: splitmix(seed ^ 0x001d_5a17),
            next_minute: sc.start_ms,
            accounts: (0..n)
                .map(|ci| {
                    let scored = sc
                        .planned
                        .iter()
                        .any(|a| a.client == ci && a.expect == kind::OVER_CONTRACT);
                    let minutes = ((sc.end_ms - sc.start_ms) / MINUTE_MS + 1) as usize;
                    Account {
                        by_minute: if scored {
                            vec![0.0; minutes]
                        } else {
                            Vec::new()
                        },
                        ..Account::default()
                    }
                })
                .collect(),
            faults,
            max_emitted_ts: i64::MIN,
            scratch: Vec::new(),
            sc: sc.clone(),
        }
    }

    pub fn scenario(&self) -> &Scenario {
        &self.sc
    }

    /// Write the next line into `buf` (cleared first). Returns its event time and client, or
    /// `None` at the end of the run. Allocation-free in the steady state.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> Option<(i64, Option<usize>)> {
        loop {
            let ready = match self.heap.peek() {
                Some(Reverse(p)) => p.key < self.next_minute || self.next_minute >= self.sc.end_ms,
                None if self.next_minute >= self.sc.end_ms => return None,
                None => false,
            };
            if ready {
                let Reverse(p) = self.heap.pop()?;
                buf.clear();
                self.faults.lines += 1;
                return Some(match p.item {
                    Item::Event(e) => {
                        if self.max_emitted_ts > e.ts && e.flags & F_BACKLOG == 0 {
                            let d = self.max_emitted_ts - e.ts;
                            self.faults.observed_max_disorder_ms =
                                self.faults.observed_max_disorder_ms.max(d);
                        }
                        self.max_emitted_ts = self.max_emitted_ts.max(e.ts);
                        self.render_event(&e, buf);
                        (e.ts, Some(e.client as usize))
                    }
                    Item::Garbage(g) => {
                        self.render_garbage(&g, buf);
                        (g.base.ts, None)
                    }
                });
            }
            self.generate_minute();
        }
    }

    /// The ground truth of the whole run. Lines not yet pulled are generated (and dropped) first,
    /// so the truth always describes the complete stream.
    pub fn finish(mut self) -> Truth {
        let mut buf = Vec::new();
        while self.next_line(&mut buf).is_some() {}
        self.truth()
    }

    fn truth(&self) -> Truth {
        let sc = &self.sc;
        let mut anomalies: Vec<Anomaly> = sc
            .planned
            .iter()
            .map(|a| Anomaly {
                client_id: sc.clients[a.client].id.to_string(),
                scenario: sc.clients[a.client].role.as_str().to_owned(),
                expect: vec![a.expect.to_owned()],
                allow: a.allow.iter().map(|s| s.to_string()).collect(),
                start_ms: a.start_ms,
                end_ms: a.end_ms,
                start: format_rfc3339(a.start_ms),
                end: format_rfc3339(a.end_ms),
                description: a.description.clone(),
                magnitude: a.magnitude,
                detectable_ms: a.detectable_ms,
                driver: a.driver.clone(),
            })
            .collect();
        for &(ci, first) in &sc.cap_clients {
            let c = &sc.clients[ci];
            let crossing = self.accounts[ci]
                .cap_crossings
                .values()
                .copied()
                .find(|&t| t >= first);
            if let Some(t) = crossing {
                let end = (sc.end_ms - REPORT_GRACE_MS).max(t);
                anomalies.push(Anomaly {
                    client_id: c.id.to_string(),
                    scenario: c.role.as_str().to_owned(),
                    expect: vec![kind::CAP_EXCEEDED.to_owned()],
                    allow: vec![
                        kind::CAP_FORECAST.to_owned(),
                        kind::BASELINE_JUMP.to_owned(),
                    ],
                    start_ms: t,
                    end_ms: end,
                    start: format_rfc3339(t),
                    end: format_rfc3339(end),
                    description: "month-to-date units exceed the monthly cap (start: the event \
                                  that crossed it)"
                        .into(),
                    magnitude: None,
                    detectable_ms: None,
                    driver: None,
                });
            }
        }
        anomalies.sort_by(|a, b| (a.start_ms, &a.client_id).cmp(&(b.start_ms, &b.client_id)));
        let mut usage = BTreeMap::new();
        let mut usage_by_day = BTreeMap::new();
        let mut usage_by_day_product = BTreeMap::new();
        let mut clients = Vec::new();
        for (c, a) in sc.clients.iter().zip(&self.accounts) {
            if a.events > 0 {
                let mut days: BTreeMap<String, BTreeMap<String, UsageTruth>> = BTreeMap::new();
                for (&(d, call), u) in &a.by_day_call {
                    let product = c.calls.get(call as usize).map_or("(none)", |k| k.product);
                    let t = days
                        .entry(format_rfc3339(d * DAY_MS)[..10].to_owned())
                        .or_default()
                        .entry(product.to_owned())
                        .or_default();
                    t.units += u.units;
                    t.events += u.events;
                }
                usage_by_day_product.insert(c.id.to_string(), days);
                usage.insert(c.id.to_string(), a.units);
                usage_by_day.insert(
                    c.id.to_string(),
                    a.by_day
                        .iter()
                        .map(|(&d, &u)| (format_rfc3339(d * DAY_MS)[..10].to_owned(), u))
                        .collect(),
                );
            }
            clients.push(ClientTruth {
                client_id: c.id.to_string(),
                role: c.role,
                contracted: c.contract.is_some(),
                contract_units_per_hour: c.contract.as_ref().map(|k| k.units_per_hour),
                events: a.events,
                cap_crossings: a.cap_crossings.clone(),
                traits: c.traits.iter().map(|t| t.to_string()).collect(),
            });
        }
        let well_behaved = sc
            .clients
            .iter()
            .filter(|c| !anomalies.iter().any(|a| a.client_id == *c.id))
            .map(|c| c.id.to_string())
            .collect();
        let mut faults = self.faults.clone();
        faults.events = self.accounts.iter().map(|a| a.events).sum();
        faults.applied_by_day_product = usage_by_day_product;
        Truth {
            params: sc.params.clone(),
            start_ms: sc.start_ms,
            end_ms: sc.end_ms,
            anomalies,
            well_behaved,
            clients,
            usage,
            usage_by_day,
            faults,
            minute_units: sc
                .clients
                .iter()
                .zip(&self.accounts)
                .filter(|(_, a)| !a.by_minute.is_empty())
                .map(|(c, a)| (c.id.to_string(), a.by_minute.clone()))
                .collect(),
        }
    }

    fn generate_minute(&mut self) {
        let t0 = self.next_minute;
        self.next_minute += MINUTE_MS;
        let mut scratch = std::mem::take(&mut self.scratch);
        for ci in 0..self.sc.clients.len() {
            let lambda = self.sc.clients[ci].rate_at(t0);
            // (also skips a NaN rate)
            if lambda.partial_cmp(&0.0) != Some(Ordering::Greater) {
                continue;
            }
            let n = match Poisson::new(lambda) {
                Ok(p) => p.sample(&mut self.rngs[ci]) as u32,
                Err(_) => 0,
            };
            scratch.clear();
            for _ in 0..n {
                let e = self.make_event(ci, t0);
                scratch.push(e);
            }
            // cap crossings are defined in event-time order
            scratch.sort_by_key(|e| e.ts);
            for e in &scratch {
                self.account(ci, e);
                self.enqueue(*e);
            }
        }
        self.scratch = scratch;
    }

    fn make_event(&mut self, ci: usize, t0: i64) -> EventRec {
        let c = &self.sc.clients[ci];
        let rng = &mut self.rngs[ci];
        let ts = t0 + rng.gen_range(0..MINUTE_MS);
        let call = match c.share_at(ts, false) {
            Some((i, share)) if rng.gen::<f64>() < share => i,
            _ => pick(&self.call_cum[ci], rng),
        };
        let origin = match c.share_at(ts, true) {
            Some((i, share)) if rng.gen::<f64>() < share => i,
            _ => pick(&self.origin_cum[ci], rng),
        };
        let x: f64 = rng.gen();
        let status: u16 = if x < OK_SHARE {
            200
        } else if x < OK_SHARE + 0.015 {
            429
        } else if x < OK_SHARE + 0.023 {
            400
        } else if x < OK_SHARE + 0.028 {
            404
        } else if x < OK_SHARE + 0.032 {
            500
        } else {
            503
        };
        let mut flags = match c.ts_style {
            TsStyle::EpochMillis => F_MILLIS,
            TsStyle::Utc => F_UTC,
            TsStyle::Offset(_) => F_OFFSET,
        };
        // a second gateway writing the other common format
        if rng.gen::<f64>() < 0.1 {
            flags = if flags == F_MILLIS { F_UTC } else { F_MILLIS };
        }
        let mut sub_ms = 0;
        if flags != F_MILLIS && rng.gen::<f64>() < 0.05 {
            flags |= F_MICROS;
            sub_ms = rng.gen_range(0..1000);
        }
        let units = if status != 200 {
            0
        } else {
            match c.calls.get(call).map(|k| k.units) {
                Some(CallUnits::One) => {
                    if rng.gen::<bool>() {
                        flags |= F_NO_UNITS;
                    }
                    1
                }
                _ => self.units[ci].sample(rng, c.units_mean),
            }
        };
        if rng.gen::<f64>() < 0.02 {
            flags |= F_NO_ASN;
        }
        let bytes = if status == 200 {
            320 + units * rng.gen_range(450..900)
        } else {
            rng.gen_range(80..400)
        };
        let ip = rng.gen_range(0..=255u16) << 8 | rng.gen_range(1..=254u16);
        let id = self.next_id;
        self.next_id += 1;
        EventRec {
            ts,
            id,
            bytes,
            units,
            status,
            ip,
            sub_ms,
            client: ci as u16,
            call: call as u8,
            origin: origin as u8,
            flags,
        }
    }

    fn account(&mut self, ci: usize, e: &EventRec) {
        let cap = self.sc.clients[ci]
            .contract
            .as_ref()
            .and_then(|k| k.monthly_cap);
        let a = &mut self.accounts[ci];
        let u = e.units as f64;
        a.events += 1;
        a.units += u;
        let minute = (e.ts - self.sc.start_ms).div_euclid(MINUTE_MS);
        if let Some(m) = usize::try_from(minute)
            .ok()
            .and_then(|i| a.by_minute.get_mut(i))
        {
            *m += u;
        }
        *a.by_day.entry(e.ts.div_euclid(DAY_MS)).or_insert(0.0) += u;
        let dc = a
            .by_day_call
            .entry((e.ts.div_euclid(DAY_MS), e.call))
            .or_default();
        dc.units += u;
        dc.events += 1;
        let month = month_of(e.ts);
        if a.events == 1 || month != a.month {
            a.month = month;
            a.month_units = 0.0;
        }
        let before = a.month_units;
        a.month_units += u;
        if let Some(cap) = cap {
            if before <= cap && a.month_units > cap {
                a.cap_crossings
                    .insert(crate::time::month_label(month), e.ts);
            }
        }
    }

    fn push(&mut self, key: i64, item: Item) {
        self.seq += 1;
        self.heap.push(Reverse(Pending {
            key,
            seq: self.seq,
            item,
        }));
    }

    fn enqueue(&mut self, e: EventRec) {
        let p = &self.sc.params;
        let (max_dis, dup_rate, bad_rate) = (p.max_disorder_ms, p.duplicate_rate, p.malformed_rate);
        let rng = &mut self.fault_rng;
        let mut e = e;
        let backlog = self.sc.backlog.filter(|b| b.holds(e.client as usize, e.ts));
        // the same draws either way, so the rest of the stream does not depend on the backlog
        let jitter = rng.gen_range(0..=max_dis);
        let retry = rng.gen::<f64>();
        let retry_delay = rng.gen_range(500..5000);
        let (key, dup) = match backlog {
            Some(b) => {
                e.flags |= F_BACKLOG;
                self.faults.backlog_events += 1;
                let key = b.delivery(e.ts) + jitter;
                let dup = (retry < Backlog::RETRY_RATE).then_some(key + retry_delay);
                self.faults.backlog_duplicates += u64::from(dup.is_some());
                (key, dup)
            }
            None => {
                let key = e.ts + jitter;
                let dup =
                    (retry < dup_rate).then(|| (key + retry_delay).min(e.ts + max_dis).max(key));
                (key, dup)
            }
        };
        let garbage = (rng.gen::<f64>() < bad_rate).then(|| GarbageRec {
            base: e,
            kind: Garbage::ALL[rng.gen_range(0..Garbage::ALL.len())],
            seed: rng.gen(),
        });
        self.push(key, Item::Event(e));
        if let Some(k) = dup {
            self.faults.duplicates += 1;
            self.push(k, Item::Event(e));
        }
        if let Some(g) = garbage {
            *self
                .faults
                .rejected
                .entry(g.kind.reason().to_owned())
                .or_insert(0) += 1;
            // its own id, so it can never be mistaken for a re-delivery
            let mut g = g;
            g.base.id = self.next_id;
            self.next_id += 1;
            self.push(key, Item::Garbage(g));
        }
    }

    fn render_event(&self, e: &EventRec, buf: &mut Vec<u8>) {
        let c = &self.sc.clients[e.client as usize];
        buf.extend_from_slice(b"{\"ts\":");
        self.push_ts(e, c, buf);
        buf.extend_from_slice(b",\"client_id\":\"");
        buf.extend_from_slice(c.id.as_bytes());
        buf.extend_from_slice(b"\",\"event_id\":\"");
        self.push_event_id(e.id, buf);
        buf.push(b'"');
        if e.flags & F_NO_UNITS == 0 {
            buf.extend_from_slice(b",\"units\":");
            push_u64(buf, e.units as u64);
        }
        if let Some(k) = c.calls.get(e.call as usize) {
            buf.extend_from_slice(b",\"product\":\"");
            buf.extend_from_slice(k.product.as_bytes());
            buf.extend_from_slice(b"\",\"endpoint\":\"");
            buf.extend_from_slice(k.endpoint.as_bytes());
            buf.push(b'"');
        }
        buf.extend_from_slice(b",\"status\":");
        push_u64(buf, e.status as u64);
        buf.extend_from_slice(b",\"bytes\":");
        push_u64(buf, e.bytes as u64);
        if let Some(o) = c.origins.get(e.origin as usize) {
            buf.extend_from_slice(b",\"origin_ip\":\"");
            push_u64(buf, o.net[0] as u64);
            buf.push(b'.');
            push_u64(buf, o.net[1] as u64);
            buf.push(b'.');
            push_u64(buf, (e.ip >> 8) as u64);
            buf.push(b'.');
            push_u64(buf, (e.ip & 0xff) as u64);
            buf.extend_from_slice(b"\",\"origin_country\":\"");
            buf.extend_from_slice(o.country.as_bytes());
            buf.push(b'"');
            if e.flags & F_NO_ASN == 0 {
                buf.extend_from_slice(b",\"origin_asn\":");
                push_u64(buf, o.asn as u64);
            }
        }
        buf.push(b'}');
    }

    fn push_ts(&self, e: &EventRec, c: &ClientSpec, buf: &mut Vec<u8>) {
        let sub = (e.flags & F_MICROS != 0).then_some(e.sub_ms);
        match e.flags & F_STYLE_MASK {
            F_MILLIS => push_u64(buf, e.ts.max(0) as u64),
            F_OFFSET => {
                let off = match c.ts_style {
                    TsStyle::Offset(m) => m,
                    _ => 0,
                };
                buf.push(b'"');
                push_rfc3339(buf, e.ts, off, sub);
                buf.push(b'"');
            }
            _ => {
                buf.push(b'"');
                push_rfc3339(buf, e.ts, 0, sub);
                buf.push(b'"');
            }
        }
    }

    /// UUID-shaped and unique: the last 64 bits are a bijection of the event's sequence number.
    fn push_event_id(&self, id: u64, buf: &mut Vec<u8>) {
        let lo = splitmix(id ^ self.id_salt);
        let hi = splitmix(lo ^ self.id_salt.rotate_left(17));
        let hi = (hi & !0xf000) | 0x4000; // version 4 nibble, for looks
        push_hex(buf, hi >> 32, 8);
        buf.push(b'-');
        push_hex(buf, (hi >> 16) & 0xffff, 4);
        buf.push(b'-');
        push_hex(buf, hi & 0xffff, 4);
        buf.push(b'-');
        push_hex(buf, lo >> 48, 4);
        buf.push(b'-');
        push_hex(buf, lo & 0xffff_ffff_ffff, 12);
    }

    /// Garbage is rare, so it is built as text; each variant is checked against the decoder in
    /// the tests.
    fn render_garbage(&self, g: &GarbageRec, buf: &mut Vec<u8>) {
        let mut rng = SmallRng::seed_from_u64(g.seed);
        let mut valid = Vec::with_capacity(256);
        self.render_event(&g.base, &mut valid);
        let valid = String::from_utf8_lossy(&valid).into_owned();
        let c = &self.sc.clients[g.base.client as usize];
        let id = &*c.id;
        let field = |k: &str| format!("\"{k}\":");
        // replace the value of `key` in the rendered event (or drop the field with `None`)
        // (every rendered event has all the fields used here; `None` would be a bug, caught by
        // the tests that decode every garbage line)
        let replace = |key: &str, value: Option<&str>| -> Option<String> {
            let f = field(key);
            let at = valid.find(&f)?;
            let vstart = at + f.len();
            let rest = &valid[vstart..];
            let vlen = if let Some(quoted) = rest.strip_prefix('"') {
                quoted.find('"').map_or(rest.len(), |i| i + 2)
            } else {
                rest.find([',', '}']).unwrap_or(rest.len())
            };
            Some(match value {
                Some(v) => format!("{}{v}{}", &valid[..vstart], &valid[vstart + vlen..]),
                None => {
                    // drop `"key":value` and one adjacent comma
                    let (mut a, mut z) = (at, vstart + vlen);
                    if valid[z..].starts_with(',') {
                        z += 1;
                    } else if valid[..a].ends_with(',') {
                        a -= 1;
                    }
                    format!("{}{}", &valid[..a], &valid[z..])
                }
            })
        };
        let line = match g.kind {
            Garbage::NotJson => {
                let texts = [
                    "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
                    "GET /2/tweets/search/recent?query=overage HTTP/1.1",
                    "upstream connect error or disconnect/reset before headers. reset reason: overflow",
                ];
                let t = texts[rng.gen_range(0..texts.len())];
                Some(if rng.gen::<bool>() {
                    t.to_owned()
                } else {
                    format!("ts={} client_id={id} units={}", g.base.ts, g.base.units)
                })
            }
            Garbage::Truncated => {
                let cut = rng
                    .gen_range(12..valid.len().max(13) - 1)
                    .min(valid.len() - 1);
                Some(valid[..cut].to_owned())
            }
            Garbage::Array => Some(format!("[{valid}]")),
            Garbage::Number => Some(if rng.gen::<bool>() {
                g.base.ts.to_string()
            } else {
                "42".to_owned()
            }),
            Garbage::WrongType => match rng.gen_range(0..4) {
                0 => replace("status", Some("\"abc\"")),
                1 => replace("bytes", Some("\"12kB\"")),
                2 => replace("product", Some("7")),
                _ => replace("status", Some("[200]")),
            },
            Garbage::NoClientId => replace("client_id", None),
            Garbage::EmptyClientId => replace("client_id", Some("\"\"")),
            Garbage::LongClientId => {
                let n = rng.gen_range(257..400);
                // an API key pasted where the client id goes
                let long: String = std::iter::once("sk-live-")
                    .chain(std::iter::repeat("a1b2c3d4"))
                    .flat_map(str::chars)
                    .take(n)
                    .collect();
                replace("client_id", Some(&format!("\"{long}\"")))
            }
            Garbage::NoTs => replace("ts", None),
            Garbage::UnparseableTs => {
                let bad = [
                    "\"yesterday\"",
                    "\"2026-02-30T10:00:00Z\"",
                    "\"2026-09-10T14:20:00\"",
                    "\"10/09/2026 14:20\"",
                    "\"1789050000000\"",
                ];
                replace("ts", Some(bad[rng.gen_range(0..bad.len())]))
            }
            Garbage::BoolTs => replace("ts", Some("true")),
            Garbage::NegativeUnits => {
                let v = format!("-{}", rng.gen_range(1..500));
                Some(with_units(&valid, &v))
            }
            Garbage::StringUnits => {
                let v = format!("\"{}\"", rng.gen_range(1..500));
                Some(with_units(&valid, &v))
            }
        };
        let line = line.unwrap_or_else(|| format!("<unrenderable {:?}>", g.kind));
        buf.extend_from_slice(line.as_bytes());
    }
}

/// `line` with its `units` set to the raw JSON `value` (added if the event had none).
fn with_units(line: &str, value: &str) -> String {
    let key = "\"units\":";
    if let Some(at) = line.find(key) {
        let vstart = at + key.len();
        let vlen = line[vstart..]
            .find([',', '}'])
            .unwrap_or(line.len() - vstart);
        format!("{}{value}{}", &line[..vstart], &line[vstart + vlen..])
    } else {
        let body = line.strip_suffix('}').unwrap_or(line);
        format!("{body},{key}{value}}}")
    }
}

impl Iterator for Generator {
    type Item = SimLine;

    fn next(&mut self) -> Option<SimLine> {
        let mut buf = Vec::with_capacity(320);
        let (ts, client) = self.next_line(&mut buf)?;
        let client = client.map(|i| self.sc.clients[i].id.clone());
        Some((ts, client, buf))
    }
}

fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_digits(buf: &mut Vec<u8>, v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut v = v;
    for i in (0..width).rev() {
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    buf.extend_from_slice(&tmp[..width]);
}

fn push_hex(buf: &mut Vec<u8>, v: u64, width: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..width).rev() {
        buf.push(HEX[((v >> (4 * i)) & 0xf) as usize]);
    }
}

/// Civil date from days since the epoch (H. Hinnant's algorithm), for fast timestamps.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// RFC 3339 with milliseconds (or microseconds), in UTC (`Z`) or a fixed offset.
fn push_rfc3339(buf: &mut Vec<u8>, ts: i64, offset_min: i32, micros: Option<u16>) {
    let local = ts + offset_min as i64 * MINUTE_MS;
    let (y, m, d) = civil_from_days(local.div_euclid(DAY_MS));
    let rem = local.rem_euclid(DAY_MS);
    push_digits(buf, y.max(0) as u64, 4);
    buf.push(b'-');
    push_digits(buf, m as u64, 2);
    buf.push(b'-');
    push_digits(buf, d as u64, 2);
    buf.push(b'T');
    push_digits(buf, (rem / HOUR_MS) as u64, 2);
    buf.push(b':');
    push_digits(buf, (rem / MINUTE_MS % 60) as u64, 2);
    buf.push(b':');
    push_digits(buf, (rem / 1000 % 60) as u64, 2);
    buf.push(b'.');
    push_digits(buf, (rem % 1000) as u64, 3);
    if let Some(us) = micros {
        push_digits(buf, us as u64, 3);
    }
    if offset_min == 0 {
        buf.push(b'Z');
    } else {
        buf.push(if offset_min < 0 { b'-' } else { b'+' });
        let a = offset_min.unsigned_abs() as u64;
        push_digits(buf, a / 60, 2);
        buf.push(b':');
        push_digits(buf, a % 60, 2);
    }
}

/// Generate the scenario into `dir`: `events.jsonl`, `contracts.toml` and `truth.json`.
pub fn write_scenario(p: &SimParams, dir: &Path) -> Result<Truth, SimError> {
    write_scenario_as(p, dir, shapes::Shape::Json)
}

/// [`write_scenario`] with the events in a gateway's shape, and beside them `overage.toml`,
/// the `[input]` section that reads them.
pub fn write_scenario_as(
    p: &SimParams,
    dir: &Path,
    shape: shapes::Shape,
) -> Result<Truth, SimError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SimError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let sc = Scenario::new(p)?;

    let contracts = dir.join("contracts.toml");
    std::fs::write(&contracts, sc.contracts_toml()).map_err(io(&contracts))?;
    if let Some(toml) = shape.input_toml() {
        let config = dir.join("overage.toml");
        std::fs::write(&config, toml).map_err(io(&config))?;
    }

    let events = dir.join("events.jsonl");
    let file = File::create(&events).map_err(io(&events))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut gen = sc.generator();
    let mut line = Vec::with_capacity(512);
    let mut shaped = shapes::Writer::new(shape);
    let mut result = Ok(());
    let mut emit = |msg: &[u8]| {
        if result.is_ok() {
            result = out.write_all(msg).and_then(|()| out.write_all(b"\n"));
        }
    };
    while gen.next_line(&mut line).is_some() {
        shaped.line(&line, &mut emit);
    }
    shaped.flush(&mut emit);
    result.map_err(io(&events))?;
    out.flush().map_err(io(&events))?;
    let truth = gen.finish();

    let truth_path = dir.join("truth.json");
    let file = File::create(&truth_path).map_err(io(&truth_path))?;
    let mut w = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut w, &truth).map_err(|source| SimError::Json {
        path: truth_path.clone(),
        source,
    })?;
    w.write_all(b"\n")
        .and_then(|_| w.flush())
        .map_err(io(&truth_path))?;
    Ok(truth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode_canonical, Reject};
    use std::collections::{HashMap, HashSet};

    fn small(seed: u64) -> SimParams {
        SimParams {
            seed,
            days: 2,
            scale: 0.2,
            ..SimParams::default()
        }
    }

    fn all_lines(p: &SimParams) -> Vec<Vec<u8>> {
        Scenario::standard(p)
            .unwrap()
            .generator()
            .map(|(_, _, l)| l)
            .collect()
    }

    #[test]
    fn deterministic_for_a_seed() {
        let a = all_lines(&small(7));
        assert!(a.len() > 10_000, "{}", a.len());
        assert_eq!(a, all_lines(&small(7)));
        assert_ne!(a, all_lines(&small(8)));
    }

    #[test]
    fn fault_rates_do_not_change_the_traffic() {
        let p = small(7);
        let quiet = SimParams {
            duplicate_rate: 0.0,
            malformed_rate: 0.0,
            max_disorder_ms: 0,
            ..p.clone()
        };
        let a = Scenario::standard(&p).unwrap().generator().finish();
        let b = Scenario::standard(&quiet).unwrap().generator().finish();
        assert_eq!(a.usage, b.usage);
        assert_eq!(b.faults.duplicates, 0);
        assert_eq!(b.faults.observed_max_disorder_ms, 0);
        assert_eq!(b.faults.lines, b.faults.events);
    }

    /// Decode every line with the real decoder and recount everything the truth claims.
    #[test]
    fn truth_matches_the_stream() {
        let p = SimParams {
            days: 3,
            scale: 0.3,
            duplicate_rate: 0.02,
            malformed_rate: 0.01,
            ..SimParams::default()
        };
        let sc = Scenario::standard(&p).unwrap();
        let mut gen = sc.generator();
        let mut buf = Vec::new();
        let mut seen: HashMap<(String, String), Vec<u8>> = HashMap::new();
        let mut usage: BTreeMap<String, f64> = BTreeMap::new();
        let mut by_day: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
        let (mut lines, mut dups, mut max_ts, mut disorder) = (0u64, 0u64, i64::MIN, 0i64);
        let mut formats = HashSet::new();
        while let Some((ts, client)) = gen.next_line(&mut buf) {
            lines += 1;
            assert!(!buf.contains(&b'\n'));
            match decode_canonical(&buf) {
                Ok(e) => {
                    assert_eq!(e.ts, ts);
                    assert_eq!(
                        Some(e.client_id.as_ref()),
                        client.map(|i| &*sc.clients[i].id)
                    );
                    disorder = disorder.max(max_ts.saturating_sub(e.ts));
                    max_ts = max_ts.max(e.ts);
                    formats.insert(buf[6]); // first byte of the ts value: '"' or a digit
                    let key = (
                        e.client_id.to_string(),
                        e.event_id.as_deref().unwrap().to_owned(),
                    );
                    if let Some(first) = seen.get(&key) {
                        assert_eq!(first, &buf, "a duplicate is the identical line");
                        dups += 1;
                        continue;
                    }
                    seen.insert(key, buf.clone());
                    *usage.entry(e.client_id.to_string()).or_default() += e.units;
                    let day = format_rfc3339(e.ts)[..10].to_owned();
                    *by_day.entry((e.client_id.to_string(), day)).or_default() += e.units;
                }
                Err(r) => {
                    assert!(client.is_none(), "garbage has no key");
                    assert!(
                        !matches!(r, Reject::TooLarge | Reject::FutureTimestamp),
                        "{r}: {}",
                        String::from_utf8_lossy(&buf)
                    );
                    *rejected.entry(r.as_str().to_owned()).or_default() += 1;
                }
            }
        }
        let t = gen.finish();
        assert_eq!(t.faults.lines, lines);
        assert_eq!(t.faults.duplicates, dups);
        assert!(dups > 100, "{dups}");
        assert_eq!(t.faults.events, seen.len() as u64);
        for r in reason::ALL {
            assert_eq!(
                t.faults.rejected[r],
                rejected.get(r).copied().unwrap_or(0),
                "{r}"
            );
            assert!(t.faults.rejected[r] > 0, "{r} never injected");
        }
        assert_eq!(t.usage, usage);
        for ((client, day), units) in &by_day {
            assert_eq!(t.usage_by_day[client][day], *units, "{client} {day}");
        }
        assert!(disorder <= p.max_disorder_ms, "{disorder}");
        assert!(
            disorder > p.max_disorder_ms / 2,
            "jitter too small: {disorder}"
        );
        assert_eq!(t.faults.observed_max_disorder_ms, disorder);
        assert!(formats.contains(&b'"') && formats.iter().any(u8::is_ascii_digit));
    }

    #[test]
    fn every_garbage_kind_gets_its_rejection_reason() {
        let sc = Scenario::standard(&small(1)).unwrap();
        let gen = sc.generator();
        let mut buf = Vec::new();
        for (ci, c) in sc.clients.iter().enumerate() {
            for kind in Garbage::ALL {
                for seed in 0..20u64 {
                    let base = EventRec {
                        ts: sc.start_ms + seed as i64 * 61_001,
                        id: 1_000_000 + seed,
                        bytes: 1234,
                        units: if seed % 3 == 0 { 0 } else { 17 },
                        status: 200,
                        ip: 0x0a0b,
                        sub_ms: 0,
                        client: ci as u16,
                        call: (seed as usize % c.calls.len()) as u8,
                        origin: 0,
                        flags: (seed % 3) as u8 | if seed % 2 == 0 { F_NO_UNITS } else { 0 },
                    };
                    buf.clear();
                    gen.render_garbage(&GarbageRec { base, kind, seed }, &mut buf);
                    let line = String::from_utf8(buf.clone()).unwrap();
                    assert!(!line.trim().is_empty());
                    let got = decode_canonical(&buf).err().map(|r| r.as_str());
                    assert_eq!(got, Some(kind.reason()), "{kind:?}: {line}");
                }
            }
        }
    }

    #[test]
    fn timestamps_parse_back() {
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..2000 {
            let ts = rng.gen_range(0..4_000_000_000_000i64);
            for off in [0, 60, -300, 330, 540] {
                let mut buf = Vec::new();
                push_rfc3339(&mut buf, ts, off, None);
                let s = std::str::from_utf8(&buf).unwrap();
                assert_eq!(crate::time::parse_rfc3339(s), Some(ts), "{s}");
                buf.clear();
                push_rfc3339(&mut buf, ts, off, Some(999));
                let s = std::str::from_utf8(&buf).unwrap();
                assert_eq!(crate::time::parse_rfc3339(s), Some(ts), "{s}");
            }
        }
        let mut buf = Vec::new();
        push_rfc3339(&mut buf, 1_789_050_000_005, 120, None);
        assert_eq!(buf, b"2026-09-10T16:20:00.005+02:00");
    }

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

    #[test]
    fn write_scenario_writes_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let t = write_scenario(&small(5), dir.path()).unwrap();
        let events = std::fs::read(dir.path().join("events.jsonl")).unwrap();
        assert_eq!(
            events.iter().filter(|&&b| b == b'\n').count() as u64,
            t.faults.lines
        );
        let back = Truth::load(&dir.path().join("truth.json")).unwrap();
        assert_eq!(back, t);
        // the per-product split adds up to the per-day truth
        for (client, days) in &t.usage_by_day {
            for (day, units) in days {
                let split = &t.faults.applied_by_day_product[client][day];
                assert_eq!(split.values().map(|u| u.units).sum::<f64>(), *units);
            }
        }
        assert!(std::fs::read_to_string(dir.path().join("contracts.toml"))
            .unwrap()
            .contains("[[contract]]"));
    }
}
