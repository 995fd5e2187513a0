//! Clients that have made only a few calls, kept as those calls rather than as full windows.
//!
//! Most clients of a million-client fleet make a few calls a day. A [`Client`] is a fixed
//! ~1.7 KB of rings, baseline and tables from its first call on, and zeroing fresh pages for
//! them dominated a replay of one call per client. A [`Sparse`] client is its id, contract,
//! schedule and calls (~50 bytes each); it becomes a full client when it makes more than
//! `state.sparse_calls` calls (default 4) or an evaluation gives it an alert. Each evaluation
//! of a sparse client rebuilds it, so the threshold trades memory for time: 8 made a replay
//! of clients of 1-20 calls 20-35% slower, 4 costs about nothing (BENCHMARKS.md).
//!
//! Alerts are identical to those of full clients by construction: a sparse client is evaluated
//! on the full client its calls make ([`Sparse::materialize`]), rebuilt by the same operations
//! in the same order: each call is applied after exactly the evaluations that preceded its
//! arrival, and an evaluation's effect on the state (hours folded into the unit moments and the
//! learned baseline, scope counters decayed) is repeated at the same boundary. Detectors do not
//! change a client, so their past verdicts need not be recomputed: none had an effect, or the
//! client would be full.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::client::{Breach, Client, Schedule};
use crate::detect::Detectors;
use crate::packed::Packed;
use crate::time::{minute_of, Millis};

/// One call of a client, as the engine resolved it at arrival.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub ts: Millis,
    pub units: f64,
    /// Interned product, or [`crate::rollup::NONE`].
    pub product: u32,
    endpoint: u32,
    country: u32,
    asn: u32,
    /// The scope rule it broke, under the contract in force when it arrived.
    pub breach: Option<Breach>,
    flags: u8,
    /// Evaluations of the client before this call arrived (sparse clients only).
    evals_before: u8,
}

const HAS_ENDPOINT: u8 = 1;
const HAS_COUNTRY: u8 = 2;
const HAS_ASN: u8 = 4;
const LATE: u8 = 8;

impl Call {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ts: Millis,
        units: f64,
        product: u32,
        endpoint: Option<u32>,
        country: Option<u32>,
        asn: Option<u32>,
        breach: Option<Breach>,
        late: bool,
    ) -> Call {
        let flag = |present: bool, f: u8| if present { f } else { 0 };
        Call {
            ts,
            units,
            product,
            endpoint: endpoint.unwrap_or(0),
            country: country.unwrap_or(0),
            asn: asn.unwrap_or(0),
            breach,
            flags: flag(endpoint.is_some(), HAS_ENDPOINT)
                | flag(country.is_some(), HAS_COUNTRY)
                | flag(asn.is_some(), HAS_ASN)
                | flag(late, LATE),
            evals_before: 0,
        }
    }

    fn get(&self, flag: u8, v: u32) -> Option<u32> {
        (self.flags & flag != 0).then_some(v)
    }

    pub fn endpoint(&self) -> Option<u32> {
        self.get(HAS_ENDPOINT, self.endpoint)
    }

    pub fn country(&self) -> Option<u32> {
        self.get(HAS_COUNTRY, self.country)
    }

    pub fn asn(&self) -> Option<u32> {
        self.get(HAS_ASN, self.asn)
    }

    /// Older than the watermark when it arrived: it counts in usage only.
    pub fn late(&self) -> bool {
        self.flags & LATE != 0
    }

    /// The minute boundary after which the call is evaluated.
    pub fn boundary(&self) -> i64 {
        minute_of(self.ts) + 1
    }
}

/// A client of a few calls and no alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sparse {
    pub id: Arc<str>,
    pub contract: Option<u32>,
    pub sched: Schedule,
    /// Evaluations so far.
    evals: u8,
    /// In arrival order; most sparse clients have made one call, kept inline.
    calls: SmallVec<[Call; 1]>,
}

impl Sparse {
    pub fn new(id: Arc<str>, contract: Option<u32>) -> Sparse {
        Sparse {
            id,
            contract,
            sched: Schedule::default(),
            evals: 0,
            calls: SmallVec::new(),
        }
    }

    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    pub fn last_seen(&self) -> Millis {
        self.calls.iter().map(|c| c.ts).max().unwrap_or(Millis::MIN)
    }

    /// No call of it (late ones aside) falls in the minutes of `[from, to)`: a window sum over
    /// that span is zero without rebuilding it.
    pub fn quiet(&self, from: Millis, to: Millis) -> bool {
        let (from, to) = (minute_of(from), minute_of(to));
        self.calls
            .iter()
            .all(|c| c.late() || !(from..to).contains(&minute_of(c.ts)))
    }

    /// Record a call; true if the end of its minute must be added to the engine's schedule.
    pub fn push(&mut self, mut call: Call) -> bool {
        call.evals_before = self.evals;
        // exactly: a vector's first growth would make room for four calls
        self.calls.reserve_exact(1);
        self.calls.push(call);
        !call.late() && self.sched.schedule(call.boundary())
    }

    /// An evaluation at `boundary` took place (and gave no alert).
    pub fn evaluated(&mut self, sched: Schedule) {
        self.sched = sched;
        self.evals = self.evals.saturating_add(1);
    }

    /// The full client these calls and evaluations make (`allowance`: see [`Client::apply`]).
    pub fn materialize(&self, p: &Detectors, allowance: Option<f64>) -> Client {
        let first = self.calls.first().map_or(0, |c| c.ts);
        let mut c = Client::new(self.id.clone(), self.contract, first);
        // Evaluated boundaries come in order, and each is one of the calls' (a call arriving
        // after an evaluation at `b` is at or after `b`, or it is late and schedules nothing).
        // (on the stack: this runs at every evaluation of a sparse client)
        let mut boundaries: SmallVec<[i64; 8]> = self
            .calls
            .iter()
            .filter(|c| !c.late())
            .map(Call::boundary)
            .collect();
        boundaries.sort_unstable();
        boundaries.dedup();
        boundaries.truncate(self.evals as usize);
        let mut done = 0;
        for call in &self.calls {
            while done < call.evals_before as usize {
                c.prepare(boundaries[done], p);
                done += 1;
            }
            c.apply(call, p, allowance);
        }
        for &b in &boundaries[done..] {
            c.prepare(b, p);
        }
        debug_assert_eq!(c.sched, self.sched);
        c
    }
}

/// A tracked client, in whichever form it is kept: its few calls, full, or packed while quiet
/// ([`crate::packed`]). Variants are appended only: their order is the checkpoint format.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Tracked {
    Sparse(Arc<Sparse>),
    Full(Arc<Client>),
    Packed(Arc<Packed>),
}

impl Tracked {
    pub fn id(&self) -> &Arc<str> {
        match self {
            Tracked::Sparse(s) => &s.id,
            Tracked::Full(c) => &c.id,
            Tracked::Packed(p) => &p.id,
        }
    }

    pub fn contract(&self) -> Option<u32> {
        match self {
            Tracked::Sparse(s) => s.contract,
            Tracked::Full(c) => c.contract,
            Tracked::Packed(p) => p.contract,
        }
    }

    pub fn set_contract(&mut self, contract: Option<u32>) {
        match self {
            Tracked::Sparse(s) => Arc::make_mut(s).contract = contract,
            Tracked::Full(c) => Arc::make_mut(c).contract = contract,
            Tracked::Packed(p) => Arc::make_mut(p).contract = contract,
        }
    }

    pub fn last_seen(&self) -> Millis {
        match self {
            Tracked::Sparse(s) => s.last_seen(),
            Tracked::Full(c) => c.last_seen,
            Tracked::Packed(p) => p.last_seen,
        }
    }

    /// Units since it was first tracked, as [`crate::client::Usage`] sums them.
    pub fn total_units(&self) -> f64 {
        match self {
            Tracked::Sparse(s) => s.calls.iter().fold(0.0, |sum, c| sum + c.units),
            Tracked::Full(c) => c.usage.total_units,
            Tracked::Packed(p) => p.total_units,
        }
    }

    /// May it be forgotten to make room? (A sparse or packed client has no alert.)
    pub fn evictable(&self) -> bool {
        match self {
            Tracked::Sparse(s) => s.contract.is_none(),
            Tracked::Packed(p) => p.contract.is_none(),
            Tracked::Full(c) => c.evictable(),
        }
    }

    pub fn full(&self) -> Option<&Client> {
        match self {
            Tracked::Sparse(_) | Tracked::Packed(_) => None,
            Tracked::Full(c) => Some(c),
        }
    }

    pub fn is_sparse(&self) -> bool {
        matches!(self, Tracked::Sparse(_))
    }

    pub fn is_packed(&self) -> bool {
        matches!(self, Tracked::Packed(_))
    }
}
