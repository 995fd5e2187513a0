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
//!
//! The pieces, in the order a run uses them: [`SimParams`] (what to simulate), the client
//! catalogue (`spec`: rate model, call mixes, origins), planning (`plan`: the [`Scenario`] and
//! the builder shared by `standard` and [`fleet`]), generation (`generate`: the [`Generator`]
//! with its faults and garbage, rendered by `format`'s byte writers), the ground truth it
//! accounts (`truth`), and `write` to put a run on disk.

pub mod fleet;
mod format;
mod generate;
mod params;
mod plan;
pub mod shapes;
mod spec;
mod standard;
mod truth;
mod write;

pub use generate::{Generator, SimLine};
pub use params::{SimError, SimParams, DEFAULT_START_MS};
pub use plan::{Backlog, Planned, Scenario};
pub use spec::{
    Burst, Call, CallUnits, ClientSpec, ContractSpec, Diurnal, Effect, Episode, Origin, TsStyle,
};
pub use truth::{
    kind, reason, Anomaly, ClientTruth, Faults, Role, Truth, UsageTruth, STUCK_AFTER_MS,
};
pub use write::{write_scenario, write_scenario_as};

/// A two-day run at a fifth of the traffic: every fault shows up, and it generates quickly.
#[cfg(test)]
fn small(seed: u64) -> SimParams {
    SimParams {
        seed,
        days: 2,
        scale: 0.2,
        ..SimParams::default()
    }
}
