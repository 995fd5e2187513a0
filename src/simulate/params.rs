//! What a run is a function of: its parameters, and the random streams derived from its seed.
//!
//! Kept apart from everything that consumes them so that the one rule the whole simulator
//! relies on stays visible: each purpose (a client's traffic, its noise, the faults, a fleet's
//! sampling) draws from a stream of its own, so changing one never shifts another.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::time::MINUTE_MS;

/// 2026-08-24T00:00:00Z, a Monday a week before a month boundary.
pub const DEFAULT_START_MS: i64 = 1_787_529_600_000;

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
    pub(super) fn validate(&self) -> Result<(), SimError> {
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

/// One SplitMix64 step: a bijection under which nearby inputs give unrelated outputs.
pub(super) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The seed of the random stream of `client` (or `usize::MAX` for none) for `purpose`.
pub(super) fn stream_seed(seed: u64, client: usize, purpose: u64) -> u64 {
    splitmix(splitmix(seed ^ purpose.wrapping_mul(0x2545_f491_4f6c_dd1d)) ^ client as u64)
}
