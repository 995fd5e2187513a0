//! Ground truth: what a scenario contains by construction, in the form the scorer reads.
//!
//! These types are the contract between the simulator and [`crate::score`] (and `truth.json`
//! on disk), so they live apart from the code that fills them: the scorer depends on this
//! file, not on how traffic is planned or generated.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::params::{SimError, SimParams};

/// An alert still firing this long after its anomaly ended (or after it fired, if false) is
/// stuck; [`Anomaly::calls_after_end`] counts the client's calls over the same span.
pub const STUCK_AFTER_MS: i64 = 6 * crate::time::HOUR_MS;

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
    /// from noise at the exact rates; for a violation, the end of the minute of its tenth call
    /// out of scope in the stream); delays are measured from here. `start_ms` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detectable_ms: Option<i64>,
    /// What the excess of a volume incident comes from (`product:firehose`, `country:NG`,
    /// `asn:AS24940`, `endpoint:/2/bulk`), when one label carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// For a scope or new-origin incident: the client's calls in the [`STUCK_AFTER_MS`] after
    /// it ended, as the stream holds them. A violation's end shows only in the client's clean
    /// calls, so these say whether an alert still firing then could have known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_after_end: Option<u32>,
    /// Where the client is over nothing inside the incident, `[start_ms, end_ms)`: its
    /// legitimate drops (a public holiday at a tenth of its traffic) and, for a contract's
    /// incident, a day or more within the contract (a creep's quiet weekend). An alert that
    /// resolves in one, or in the day before it, and fires again after it is a new alert, not
    /// a re-fire (`overage score`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pauses: Vec<[i64; 2]>,
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
    /// The run's last month (`YYYY-MM`) if the run ends before it does and the month's units so
    /// far plus the client's expected units for the rest of it (its rate model, no incidents
    /// past the run) cross the cap: a forecast that says so is right, though the events stop
    /// short of the crossing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_crossed_after_run: Option<String>,
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

    /// What the fleet planted for `client_id`, if it is one of the run's clients.
    pub fn client(&self, client_id: &str) -> Option<&ClientTruth> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }
}
