//! The read model: each engine's clients most worth showing, published once per evaluated
//! minute, so that readers (the status page, `/api/v1/clients?sort=ratio`) never walk a
//! million clients under the lock the engine's worker needs.
//!
//! An engine offers every client it evaluates (a client is evaluated at the end of each minute
//! it calls in, and while an alert of its is pending or firing) to its [`Board`], with the
//! ratio the evaluation saw; the board keeps the best [`CANDIDATES`] by that ratio. Once event
//! time has passed a new minute boundary, and at most once a second of the caller's clock (a
//! backlog replays many minutes a second), the engine re-scores every candidate at the last
//! boundary and publishes them, sorted. A client that has not been evaluated for a while only loses
//! ratio as its calls leave the hour (against a contract; a learned baseline also moves with
//! the hour of day), so the candidates re-scored each minute are the clients to show.

use std::sync::{Arc, RwLock};

use ahash::AHashMap;
use serde::Serialize;

use crate::baseline::BaselineParams;
use crate::client::Client;
use crate::contract::Contract;
use crate::time::{Millis, HOUR_MS};

/// Clients a board keeps per engine: twice the most `/api/v1/clients` returns.
pub const CANDIDATES: usize = 2_000;

#[derive(Debug, Clone, Serialize)]
pub struct ClientSummary {
    pub client_id: String,
    pub contracted: bool,
    /// Last hour against the contract, or against the learned baseline once warm.
    pub ratio: f64,
    pub last_hour_units: f64,
    pub alerts_firing: usize,
}

impl ClientSummary {
    /// `c` at the minute boundary `t`.
    pub fn of(c: &Client, t: Millis, contract: Option<&Contract>, p: &BaselineParams) -> Self {
        let (ratio, used) = standing(c, t, contract, p);
        ClientSummary {
            client_id: c.id.to_string(),
            contracted: contract.is_some(),
            ratio,
            last_hour_units: used,
            alerts_firing: c.alerts.iter().filter(|s| s.is_firing()).count(),
        }
    }

    /// Highest ratio first; ties by client id.
    pub fn rank(a: &ClientSummary, b: &ClientSummary) -> std::cmp::Ordering {
        b.ratio
            .total_cmp(&a.ratio)
            .then_with(|| a.client_id.cmp(&b.client_id))
    }
}

/// The ratio of the last hour's units to what the client is measured against (its contract,
/// else its learned baseline once warm; 0 without either), and those units.
pub fn standing(
    c: &Client,
    t: Millis,
    contract: Option<&Contract>,
    p: &BaselineParams,
) -> (f64, f64) {
    let (used, dur) = c.windows.sum(t, HOUR_MS);
    let expected = match contract {
        Some(k) => k.rate_per_ms() * dur as f64,
        None if c.baseline.is_warm(p) => c.baseline.expected(t, dur, p),
        None => 0.0,
    };
    let ratio = if expected > 0.0 {
        crate::alert::round2(used / expected)
    } else {
        0.0
    };
    (ratio, used)
}

/// What an engine publishes: its candidates as of a minute boundary, best first.
pub type Published = Arc<RwLock<Arc<Vec<ClientSummary>>>>;

#[derive(Debug, Default)]
pub struct Board {
    /// Client-table slot → ratio when last scored.
    candidates: AHashMap<u32, f64>,
    /// The lowest ratio among the candidates once full (`None`: to be found again).
    floor: Option<(u32, f64)>,
    published: Published,
    /// The minute boundary and the caller's clock (ms) of the last publication.
    at: Option<(Millis, i64)>,
}

/// Least time between two publications, on the caller's clock.
pub const REFRESH_MS: i64 = 1_000;

impl Board {
    /// The handle readers keep.
    pub fn published(&self) -> Published {
        self.published.clone()
    }

    /// A client in `slot` was evaluated and stood at `ratio`.
    pub fn offer(&mut self, slot: u32, ratio: f64) {
        if let Some(r) = self.candidates.get_mut(&slot) {
            *r = ratio;
            if self.floor.is_some_and(|(s, _)| s == slot) {
                self.floor = None;
            }
            return;
        }
        if self.candidates.len() < CANDIDATES {
            self.candidates.insert(slot, ratio);
            return;
        }
        let (lowest, at) = match self.floor {
            Some(f) => f,
            None => {
                let f = self
                    .candidates
                    .iter()
                    .map(|(&s, &r)| (s, r))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap_or((slot, f64::INFINITY));
                self.floor = Some(f);
                f
            }
        };
        if ratio > at {
            self.candidates.remove(&lowest);
            self.candidates.insert(slot, ratio);
            self.floor = None;
        }
    }

    /// Is a publication at boundary `t` due, at `wall_ms` on the caller's clock?
    pub fn due(&self, t: Millis, wall_ms: i64) -> bool {
        self.at
            .is_none_or(|(last, at)| t > last && wall_ms.saturating_sub(at) >= REFRESH_MS)
    }

    /// The candidates' slots, to be re-scored by [`Board::publish`].
    pub fn slots(&self) -> Vec<u32> {
        self.candidates.keys().copied().collect()
    }

    /// Publish the candidates as re-scored (`(slot, summary)`; a slot left out has no client
    /// any more).
    pub fn publish(&mut self, scored: Vec<(u32, ClientSummary)>, t: Millis, wall_ms: i64) {
        self.at = Some((t, wall_ms));
        self.candidates.clear();
        self.floor = None;
        let mut list = Vec::with_capacity(scored.len());
        for (slot, s) in scored {
            self.candidates.insert(slot, s.ratio);
            list.push(s);
        }
        list.sort_by(ClientSummary::rank);
        let mut p = self.published.write().unwrap_or_else(|e| e.into_inner());
        *p = Arc::new(list);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_board_keeps_the_highest_ratios() {
        let mut b = Board::default();
        for slot in 0..(3 * CANDIDATES as u32) {
            // ratios rise and fall with the slot, so later offers both beat and miss the floor
            b.offer(slot, ((slot * 7919) % 10_007) as f64);
        }
        assert_eq!(b.candidates.len(), CANDIDATES);
        let mut all: Vec<f64> = (0..(3 * CANDIDATES as u32))
            .map(|s| ((s * 7919) % 10_007) as f64)
            .collect();
        all.sort_by(|a, b| b.total_cmp(a));
        let mut kept: Vec<f64> = b.candidates.values().copied().collect();
        kept.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(kept, all[..CANDIDATES]);
        // a candidate offered again is updated, not added
        let slot = *b.candidates.keys().next().unwrap();
        b.offer(slot, 1e9);
        assert_eq!(b.candidates.len(), CANDIDATES);
        assert_eq!(b.candidates[&slot], 1e9);
    }
}
