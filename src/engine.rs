//! The engine: events in, alert transitions out, for one shard of clients.
//!
//! One `Engine` owns the state of the clients whose events it sees (in the service, one Kafka
//! partition; in `replay`, every client, or with `--threads` a hash share of them). It is
//! synchronous, single-threaded and clock-free: the only notion of time is the event-time
//! watermark, `newest event − allowed lateness`, moved by every event ([`Engine::observe`]).
//!
//! - [`Engine::apply`] does O(1) work per event: dedupe, usage totals, window buckets, scope
//!   counters, and scheduling the client's evaluation at the end of the event's minute.
//! - When the watermark passes a minute boundary, every client scheduled there is evaluated
//!   once (detectors → alert lifecycle). A client stays scheduled only while it has traffic or an
//!   alert pending or firing, so idle clients cost nothing.
//! - Events older than the watermark are `late`: they count in usage totals but not in windows,
//!   so reordering within the allowed lateness never changes a result.
//! - Memory is bounded: idle uncontracted clients are evicted after `idle_timeout`, and at
//!   `max_clients` the least recently seen evictable client makes room (sampled, as Redis does).
//!   Clients of a few calls are kept as those calls ([`crate::sparse`]), and full clients quiet
//!   for `pack_after` are packed ([`crate::packed`]), both with the alerts of full clients.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use ahash::AHashMap;
use serde::{Deserialize, Serialize};

use crate::alert::{
    round2, Alert, AlertKind, DriverInfo, Reading, Severity, Slot, State, Step, Verdict,
    WEAK_RESOLVE_EVALS,
};
use crate::board::{self, Board, ClientSummary, Published};
use crate::client::{Breach, Client};
use crate::config::{ms, Config};
use crate::contract::Contracts;
use crate::decode::{Event, Reject};
use crate::dedupe::{self, Dedupe};
use crate::detect::{About, CompiledScope, Context, Detectors, Verdicts};
use crate::intern::Interner;
use crate::packed::Packed;
use crate::rollup::{self, AlertRecord, By, UsageRow};
use crate::sparse::{Call, Sparse, Tracked};
use crate::time::{duration_label, minute_of, month_of, month_start, Millis, HOUR_MS, MINUTE_MS};

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied to windows, detectors and totals.
    Accepted,
    /// Older than the watermark: added to usage totals only.
    Late,
    /// A repeated `event_id` within the dedupe horizon: ignored.
    Duplicate,
    /// The client table is full of clients that may not be evicted: not tracked.
    Overflow,
    Rejected(Reject),
}

impl Outcome {
    /// Every outcome label, in a fixed order (metrics and summaries use these strings): the
    /// four outcomes, then the rejections in `Reject` declaration order (see `index`).
    pub const LABELS: [&'static str; 11] = [
        "accepted",
        "late",
        "duplicate",
        "overflow",
        "malformed",
        "missing_client_id",
        "bad_client_id",
        "bad_timestamp",
        "future_timestamp",
        "bad_units",
        "too_large",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Late => "late",
            Outcome::Duplicate => "duplicate",
            Outcome::Overflow => "overflow",
            Outcome::Rejected(r) => r.as_str(),
        }
    }

    /// Position in [`Outcome::LABELS`].
    fn index(self) -> usize {
        match self {
            Outcome::Accepted => 0,
            Outcome::Late => 1,
            Outcome::Duplicate => 2,
            Outcome::Overflow => 3,
            Outcome::Rejected(r) => 4 + r as usize,
        }
    }
}

/// Counters an operator wants; all bounded in cardinality.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    outcomes: [u64; Outcome::LABELS.len()],
    pub fired: BTreeMap<AlertKind, u64>,
    pub resolved: BTreeMap<AlertKind, u64>,
    pub evicted_idle: u64,
    pub evicted_capacity: u64,
    pub evaluations: u64,
}

impl Stats {
    /// Add another engine's counters (an engine retired on revoke keeps counting in totals).
    pub fn add(&mut self, other: &Stats) {
        for (a, b) in self.outcomes.iter_mut().zip(other.outcomes.iter()) {
            *a += b;
        }
        for (k, v) in &other.fired {
            *self.fired.entry(*k).or_default() += v;
        }
        for (k, v) in &other.resolved {
            *self.resolved.entry(*k).or_default() += v;
        }
        self.evicted_idle += other.evicted_idle;
        self.evicted_capacity += other.evicted_capacity;
        self.evaluations += other.evaluations;
    }

    pub fn count(&self, label: &str) -> u64 {
        Outcome::LABELS
            .iter()
            .position(|l| *l == label)
            .map_or(0, |i| self.outcomes[i])
    }

    pub fn outcomes(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Outcome::LABELS
            .iter()
            .zip(self.outcomes.iter())
            .map(|(l, n)| (*l, *n))
    }

    pub fn events(&self) -> u64 {
        self.outcomes.iter().sum()
    }
}

pub struct Engine {
    /// Everything a checkpoint keeps; the rest is rebuilt from config, contracts and `state`.
    state: EngineState,
    p: Detectors,
    lateness: Millis,
    idle_timeout: Millis,
    max_clients: usize,
    /// Calls a client may make before it gets full windows (0: from its first call).
    sparse_calls: usize,
    /// Clients kept sparse now (a gauge for operators sizing memory).
    sparse: usize,
    /// Full clients quiet for this long are packed (0: never).
    pack_after: Millis,
    /// Clients kept packed now.
    packed: usize,
    contracts: Arc<Contracts>,
    compiled: Vec<CompiledScope>,
    /// Whether an endpoint list ([`CompiledScope::endpoints`]) allows an endpoint (label id).
    endpoint_ok: AHashMap<(u32, u32), bool>,
    /// Client id → slot in `state.clients`.
    index: AHashMap<Arc<str>, u32>,
    stats: Stats,
    verdicts: Verdicts,
    /// The read model, kept only once a reader asked for it ([`Engine::publish_board`]).
    board: Option<Board>,
}

/// What an engine must remember across a restart: its clients, label table, schedule, event
/// time and dedupe ids. Configuration, contracts and counters are not part of it; they come
/// from the process that restores it. The engine owns one and checkpoints serialize it as it
/// is (borrowed, or cloned to be written while the engine goes on). Field order is the
/// checkpoint format, pinned by a committed fixture: see [`crate::checkpoint`] before changing
/// anything here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineState {
    labels: Interner,
    /// Shared with the snapshots being written (copy on write: a snapshot costs a reference
    /// per client, and a client is copied only if it changes while one is being written).
    clients: Vec<Option<Tracked>>,
    free: Vec<u32>,
    /// Slots of evicted clients with the last boundary their schedule may still hold them at:
    /// reused only once it is evaluated, so that a new client is never evaluated at its
    /// predecessor's boundaries (a sparse client's rebuild replays its own only).
    quarantine: VecDeque<(i64, u32)>,
    /// Minute boundary → clients to evaluate there.
    due: BTreeMap<i64, Vec<u32>>,
    max_ts: Millis,
    watermark: Millis,
    housekeeping_at: i64,
    sweep_cursor: usize,
    dedupe: Dedupe,
}

impl EngineState {
    pub fn client_count(&self) -> usize {
        self.clients.len() - self.free.len()
    }
}

/// Bound on the endpoint-glob cache (entries), after which it is cleared.
const ENDPOINT_CACHE_MAX: usize = 1 << 20;
/// Clients sampled to find one to evict when the table is full.
const EVICTION_SAMPLE: usize = 32;
/// Origins given as an ASN are kept apart from country ids by this bit.
const ASN_FLAG: u32 = 1 << 31;

impl Engine {
    pub fn new(cfg: &Config, contracts: Arc<Contracts>) -> Engine {
        let mut e = Engine {
            state: EngineState {
                labels: Interner::new(cfg.state.max_labels),
                clients: Vec::new(),
                free: Vec::new(),
                quarantine: VecDeque::new(),
                due: BTreeMap::new(),
                max_ts: Millis::MIN,
                watermark: Millis::MIN,
                housekeeping_at: i64::MIN,
                sweep_cursor: 0,
                dedupe: Dedupe::new(ms(cfg.input.dedupe_horizon), cfg.input.dedupe_max_ids),
            },
            p: Detectors::from_config(&cfg.detect),
            lateness: ms(cfg.input.allowed_lateness),
            idle_timeout: ms(cfg.state.idle_timeout),
            max_clients: cfg.state.max_clients,
            sparse_calls: cfg.state.sparse_calls,
            sparse: 0,
            pack_after: ms(cfg.state.pack_after),
            packed: 0,
            contracts: Arc::new(Contracts::default()),
            compiled: Vec::new(),
            endpoint_ok: AHashMap::new(),
            index: AHashMap::new(),
            stats: Stats::default(),
            verdicts: Vec::with_capacity(16),
            board: None,
        };
        e.set_contracts(contracts);
        e
    }

    /// The state to checkpoint while this engine goes on (see [`EngineState`]): its clients
    /// shared, copied only as they change while the snapshot lives.
    pub fn snapshot(&self) -> EngineState {
        self.state.clone()
    }

    /// The state to checkpoint, borrowed (when the consumer can wait for the write: on revoke
    /// and at shutdown).
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// An engine that carries on from a checkpoint, under the current config and contracts.
    pub fn restore(cfg: &Config, contracts: Arc<Contracts>, mut state: EngineState) -> Engine {
        let mut e = Engine::new(cfg, Arc::new(Contracts::default()));
        state.labels = state.labels.with_cap(cfg.state.max_labels);
        state.dedupe = state
            .dedupe
            .with_limits(ms(cfg.input.dedupe_horizon), cfg.input.dedupe_max_ids);
        e.index = state
            .clients
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (c.id().clone(), i as u32)))
            .collect();
        e.state = state;
        let forms = e.state.clients.iter().flatten();
        e.sparse = forms.clone().filter(|c| c.is_sparse()).count();
        e.packed = forms.filter(|c| c.is_packed()).count();
        e.set_contracts(contracts);
        e
    }

    /// Firing alerts as of now, to announce again after a restore (sinks that keep alert state,
    /// like Alertmanager, are idempotent).
    pub fn firing(&self) -> Vec<Alert> {
        let mut out = Vec::new();
        for c in self
            .state
            .clients
            .iter()
            .flatten()
            .filter_map(Tracked::full)
        {
            for slot in c.alerts.iter().filter(|s| s.is_firing()) {
                let at = slot.firing_since.unwrap_or(self.state.watermark);
                out.push(self.describe(c, slot, State::Firing, at));
            }
        }
        out
    }

    /// Replace the contracts in force (on reload). Clients are re-linked to their contract.
    pub fn set_contracts(&mut self, contracts: Arc<Contracts>) {
        // (contracts of a plan share their lists: a cache keyed by contract held thousands of
        // copies of the same answers, and matched each one's globs anew)
        let mut lists: AHashMap<Vec<&str>, u32> = AHashMap::new();
        self.compiled = contracts
            .iter()
            .map(|c| CompiledScope {
                endpoints: c.endpoints.as_ref().map(|globs| {
                    let next = lists.len() as u32;
                    *lists
                        .entry(globs.iter().map(|g| g.pattern.as_str()).collect())
                        .or_insert(next)
                }),
                products: c
                    .products
                    .as_ref()
                    .map(|ps| ps.iter().map(|p| self.state.labels.intern(p)).collect()),
                countries: c
                    .origin_countries
                    .as_ref()
                    .map(|cs| cs.iter().map(|c| self.state.labels.intern(c)).collect()),
            })
            .collect();
        self.endpoint_ok.clear();
        for c in self.state.clients.iter_mut().flatten() {
            let contract = contracts.get(c.id()).map(|(i, _)| i as u32);
            if c.contract() != contract {
                c.set_contract(contract);
            }
        }
        self.contracts = contracts;
    }

    pub fn contracts(&self) -> &Arc<Contracts> {
        &self.contracts
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The detectors and their parameters, as configured.
    pub fn detectors(&self) -> &Detectors {
        &self.p
    }

    pub fn watermark(&self) -> Option<Millis> {
        (self.state.watermark != Millis::MIN).then_some(self.state.watermark)
    }

    pub fn max_event_time(&self) -> Option<Millis> {
        (self.state.max_ts != Millis::MIN).then_some(self.state.max_ts)
    }

    pub fn client_count(&self) -> usize {
        self.index.len()
    }

    /// A client's state; a sparse client's is rebuilt from its calls.
    pub fn client(&self, id: &str) -> Option<Cow<'_, Client>> {
        let &i = self.index.get(id)?;
        Some(self.view(self.state.clients[i as usize].as_ref()?))
    }

    /// Every client's state (sparse clients rebuilt one at a time).
    pub fn clients(&self) -> impl Iterator<Item = Cow<'_, Client>> {
        self.state.clients.iter().flatten().map(|c| self.view(c))
    }

    pub fn client_ids(&self) -> impl Iterator<Item = &Arc<str>> {
        self.state.clients.iter().flatten().map(Tracked::id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// Every client's units since it was first tracked (without rebuilding sparse clients).
    pub fn total_units(&self) -> impl Iterator<Item = (&Arc<str>, f64)> {
        self.state
            .clients
            .iter()
            .flatten()
            .map(|c| (c.id(), c.total_units()))
    }

    /// If `id` is a sparse client none of whose calls (late ones aside) falls in the minutes of
    /// `[from, to)`, its contract: a caller summing that span knows the sum is zero without
    /// rebuilding the client. `None` for any other client.
    pub fn quiet_sparse(&self, id: &str, from: Millis, to: Millis) -> Option<Option<u32>> {
        let &i = self.index.get(id)?;
        let Some(Tracked::Sparse(s)) = &self.state.clients[i as usize] else {
            return None;
        };
        s.quiet(from, to).then_some(s.contract)
    }

    /// Keep the read model (see [`crate::board`]) from now on, seeded with the clients there
    /// are (one walk, when a partition is assigned), and hand out what it publishes (see
    /// [`Engine::refresh_board`]).
    pub fn publish_board(&mut self) -> Published {
        if let Some(b) = &self.board {
            return b.published();
        }
        let mut b = Board::default();
        let t = self.evaluated_minute();
        for (slot, c) in self.state.clients.iter().enumerate() {
            let ratio = match c {
                Some(Tracked::Full(c)) => self.standing(c, t),
                // nothing in the last hour: a ratio of 0 without rebuilding it
                Some(Tracked::Sparse(s)) if s.quiet(t - HOUR_MS, t) => 0.0,
                Some(Tracked::Packed(_)) => 0.0,
                Some(Tracked::Sparse(s)) => self.standing(&self.materialize(s), t),
                None => continue,
            };
            b.offer(slot as u32, ratio);
        }
        let published = b.published();
        self.board = Some(b);
        self.publish(t, i64::MIN);
        published
    }

    /// Publish the read model if event time has reached a new minute boundary since it was
    /// last published and a second has passed on `wall_ms`, the caller's clock (the engine
    /// keeps none: a backlog is replayed many minutes a second, and re-scoring the candidates
    /// at each would cost more than the replay).
    pub fn refresh_board(&mut self, wall_ms: i64) {
        let t = self.evaluated_minute();
        if self.board.as_ref().is_some_and(|b| b.due(t, wall_ms)) {
            self.publish(t, wall_ms);
        }
    }

    /// The last minute boundary event time has passed (what the board is scored at).
    fn evaluated_minute(&self) -> Millis {
        self.state
            .watermark
            .div_euclid(MINUTE_MS)
            .saturating_mul(MINUTE_MS)
    }

    fn standing(&self, c: &Client, t: Millis) -> f64 {
        let contract = c.contract.map(|i| self.contracts.by_index(i as usize));
        board::standing(c, t, contract, &self.p.baseline).0
    }

    /// Re-score the board's candidates at the minute boundary `t` and publish them.
    fn publish(&mut self, t: Millis, wall_ms: i64) {
        let Some(slots) = self.board.as_ref().map(Board::slots) else {
            return;
        };
        let scored = slots
            .into_iter()
            .filter_map(|slot| {
                let c = self.view(self.state.clients.get(slot as usize)?.as_ref()?);
                let contract = c.contract.map(|i| self.contracts.by_index(i as usize));
                Some((slot, ClientSummary::of(&c, t, contract, &self.p.baseline)))
            })
            .collect();
        if let Some(b) = &mut self.board {
            b.publish(scored, t, wall_ms);
        }
    }

    /// How many clients are kept sparse (see [`crate::sparse`]).
    pub fn sparse_count(&self) -> usize {
        self.sparse
    }

    pub fn is_sparse(&self, id: &str) -> bool {
        self.tracked(id).is_some_and(Tracked::is_sparse)
    }

    /// How many clients are kept packed (see [`crate::packed`]).
    pub fn packed_count(&self) -> usize {
        self.packed
    }

    pub fn is_packed(&self, id: &str) -> bool {
        self.tracked(id).is_some_and(Tracked::is_packed)
    }

    fn tracked(&self, id: &str) -> Option<&Tracked> {
        self.state.clients[*self.index.get(id)? as usize].as_ref()
    }

    fn view<'a>(&self, c: &'a Tracked) -> Cow<'a, Client> {
        match c {
            Tracked::Full(c) => Cow::Borrowed(&**c),
            Tracked::Sparse(s) => Cow::Owned(self.materialize(s)),
            Tracked::Packed(p) => Cow::Owned(p.unpack()),
        }
    }

    fn materialize(&self, s: &Sparse) -> Client {
        s.materialize(&self.p, hourly_allowance(&self.contracts, s.contract))
    }

    /// A client's usage in `[from, to)` by hour, product or origin (see [`rollup::Rollup::query`]).
    pub fn usage(&self, id: &str, from: Millis, to: Millis, by: By) -> Option<Vec<UsageRow>> {
        let c = self.client(id)?;
        Some(c.rollup.query(from, to, by, |l| self.label_name(l)))
    }

    /// Units `id` consumed above its contract, hour by hour, from `from` to `t` (the hour in
    /// progress up to `t`); `None` without a contract.
    pub fn units_over_contract(&self, id: &str, from: Millis, t: Millis) -> Option<f64> {
        let c = self.client(id)?;
        let per_hour = hourly_allowance(&self.contracts, c.contract)?;
        Some(excess_until(&c, from, t, &|_| per_hour))
    }

    /// Where a client's month is heading at `t` (an evaluated minute boundary), as
    /// `cap_forecast` sees it: the projection usage reports draw.
    pub fn cap_projection(&self, id: &str, t: Millis) -> Option<crate::detect::cap::Projection> {
        self.p.cap.project(&*self.client(id)?, t, &self.p.baseline)
    }

    /// A client's recent alert transitions, oldest first.
    pub fn alert_history(&self, id: &str) -> Option<Vec<AlertRecord>> {
        Some(self.client(id)?.rollup.alerts().to_vec())
    }

    /// Name of an interned product / endpoint / origin.
    pub fn label_name(&self, id: u32) -> String {
        if id == rollup::NONE {
            "(none)".to_owned()
        } else if id != crate::intern::OVERFLOW && id & ASN_FLAG != 0 {
            format!("AS{}", id & !ASN_FLAG)
        } else {
            self.state.labels.name(id).to_owned()
        }
    }

    /// Decode one message and apply what it contains: the one path from bytes to state that
    /// both `replay` and the service use. `future_limit` is the latest acceptable event time
    /// (wall clock + skew), if checked. Returns the first rejection reason, if any part of the
    /// message was rejected (for dead-lettering).
    pub fn ingest(
        &mut self,
        decoder: &crate::decode::Decoder,
        bytes: &[u8],
        future_limit: Option<Millis>,
        out: &mut Vec<Alert>,
    ) -> Option<Reject> {
        let mut first = None;
        decoder.decode(bytes, |r| {
            let rejected = match r {
                Ok(ev) if future_limit.is_some_and(|limit| ev.ts > limit) => {
                    Some(Reject::FutureTimestamp)
                }
                Ok(ev) => {
                    self.apply(&ev, out);
                    None
                }
                Err(reject) => Some(reject),
            };
            if let Some(r) = rejected {
                self.reject(r);
                first.get_or_insert(r);
            }
        });
        first
    }

    /// Count an input that never became an event.
    pub fn reject(&mut self, r: Reject) {
        self.stats.outcomes[Outcome::Rejected(r).index()] += 1;
    }

    /// Apply one decoded event; alert transitions it causes are appended to `out`.
    pub fn apply(&mut self, ev: &Event<'_>, out: &mut Vec<Alert>) -> Outcome {
        let outcome = self.apply_inner(ev);
        self.stats.outcomes[outcome.index()] += 1;
        self.observe(ev.ts, out);
        outcome
    }

    /// Event time has reached `ts`: the newest event moves the watermark, whoever's it is (a
    /// duplicate or a client that did not fit still happened at that time). A `replay` shard
    /// sees the other shards' events only through this, so every shard evaluates the same
    /// minutes at the same point of the input as one engine would.
    pub fn observe(&mut self, ts: Millis, out: &mut Vec<Alert>) {
        if ts > self.state.max_ts {
            self.state.max_ts = ts;
            let wm = ts.saturating_sub(self.lateness);
            if wm > self.state.watermark {
                self.state.watermark = wm;
                self.advance(out);
            }
        }
    }

    fn apply_inner(&mut self, ev: &Event<'_>) -> Outcome {
        if let Some(eid) = &ev.event_id {
            if self.state.dedupe.check_and_insert(
                ev.ts,
                dedupe::key(&ev.client_id, eid),
                self.state.watermark,
            ) {
                return Outcome::Duplicate;
            }
        }
        let Some(idx) = self.client_index(&ev.client_id, ev.ts) else {
            return Outcome::Overflow;
        };
        self.unpack(idx);
        let late = ev.ts < self.state.watermark;
        // A client mostly repeats its product, country and endpoints: checking the last ones
        // (and the endpoints in its mix) against the label table costs a compare instead of a
        // hash lookup.
        let mut last_endpoints = [u32::MAX; crate::drivers::SLOTS];
        let [last_product, last_country] = match &self.state.clients[idx as usize] {
            Some(Tracked::Full(c)) => {
                let known = c.mix.labels(crate::drivers::Dim::Endpoint);
                last_endpoints[..known.len()].copy_from_slice(known);
                c.rollup.last_labels
            }
            Some(Tracked::Sparse(s)) => match s.calls().last() {
                Some(call) => {
                    last_endpoints[0] = call.endpoint().unwrap_or(u32::MAX);
                    [call.product, call.country().unwrap_or(u32::MAX)]
                }
                None => [u32::MAX; 2],
            },
            // (unpacked above)
            Some(Tracked::Packed(_)) | None => return Outcome::Overflow,
        };
        let labels = &mut self.state.labels;
        let mut intern = |known: &[u32], s: &str| {
            known
                .iter()
                .copied()
                .find(|&id| (id as usize) < labels.len() && labels.name(id) == s)
                .unwrap_or_else(|| labels.intern(s))
        };
        let country = ev
            .origin_country
            .as_ref()
            .map(|c| intern(&[last_country], c));
        let product = ev
            .product
            .as_ref()
            .map_or(rollup::NONE, |p| intern(&[last_product], p));
        let endpoint = ev.endpoint.as_ref().map(|e| intern(&last_endpoints, e));
        let asn = ev.origin_asn.map(|asn| ASN_FLAG | (asn & !ASN_FLAG));
        let breach = if late {
            None
        } else {
            self.breach(idx, ev, product, country, endpoint)
        };
        let call = Call::new(
            ev.ts, ev.units, product, endpoint, country, asn, breach, late,
        );
        let slot = &mut self.state.clients[idx as usize];
        let due = match slot {
            Some(Tracked::Sparse(s)) if s.calls().len() < self.sparse_calls => {
                Arc::make_mut(s).push(call)
            }
            Some(Tracked::Sparse(s)) => {
                let allowance = hourly_allowance(&self.contracts, s.contract);
                let mut c = s.materialize(&self.p, allowance);
                let due = c.apply(&call, &self.p, allowance);
                *slot = Some(Tracked::Full(Arc::new(c)));
                self.sparse -= 1;
                due
            }
            Some(Tracked::Full(c)) => {
                let allowance = hourly_allowance(&self.contracts, c.contract);
                Arc::make_mut(c).apply(&call, &self.p, allowance)
            }
            Some(Tracked::Packed(_)) | None => return Outcome::Overflow,
        };
        if due {
            self.state.due.entry(call.boundary()).or_default().push(idx);
        }
        if late {
            Outcome::Late
        } else {
            Outcome::Accepted
        }
    }

    /// The input has ended: evaluate everything up to the end of the newest event's minute, as
    /// if the allowed lateness had passed. Clients are not evaluated beyond the data.
    pub fn flush(&mut self, out: &mut Vec<Alert>) {
        if self.state.max_ts == Millis::MIN {
            return;
        }
        self.state.watermark = (minute_of(self.state.max_ts) + 1) * MINUTE_MS;
        self.advance(out);
    }

    /// Move event time forward without an event (an idle input in the live service, whose
    /// caller knows no earlier event can still arrive).
    pub fn advance_to(&mut self, watermark: Millis, out: &mut Vec<Alert>) {
        if watermark > self.state.watermark {
            self.state.watermark = watermark;
            self.advance(out);
        }
    }

    fn client_index(&mut self, id: &str, ts: Millis) -> Option<u32> {
        if let Some(&i) = self.index.get(id) {
            // Idle past the timeout is forgotten whether or not the sweep has come by yet, so
            // what a returning client starts from does not depend on where the sweep is (nor
            // on how clients are split between engines).
            if !self.evict_if_idle(i as usize) {
                return Some(i);
            }
        }
        if self.index.len() >= self.max_clients && !self.evict_one() {
            return None;
        }
        let id: Arc<str> = Arc::from(id);
        let contract = self.contracts.get(&id).map(|(i, _)| i as u32);
        let client = if self.sparse_calls > 0 {
            self.sparse += 1;
            Tracked::Sparse(Arc::new(Sparse::new(id.clone(), contract)))
        } else {
            Tracked::Full(Arc::new(Client::new(id.clone(), contract, ts)))
        };
        let idx = match self.state.free.pop() {
            Some(i) => {
                self.state.clients[i as usize] = Some(client);
                i
            }
            None => {
                self.state.clients.push(Some(client));
                (self.state.clients.len() - 1) as u32
            }
        };
        self.index.insert(id, idx);
        Some(idx)
    }

    /// Make room by evicting the least recently seen evictable client among a sample.
    fn evict_one(&mut self) -> bool {
        let n = self.state.clients.len();
        let mut best: Option<(usize, Millis)> = None;
        for k in 0..EVICTION_SAMPLE.min(n) {
            let i = (self.state.sweep_cursor + k * 7919) % n;
            if let Some(c) = &self.state.clients[i] {
                if c.evictable() && best.is_none_or(|(_, seen)| c.last_seen() < seen) {
                    best = Some((i, c.last_seen()));
                }
            }
        }
        self.state.sweep_cursor = (self.state.sweep_cursor + 1) % n.max(1);
        match best {
            Some((i, _)) => {
                self.remove(i);
                self.stats.evicted_capacity += 1;
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, i: usize) {
        if let Some(c) = self.state.clients[i].take() {
            self.index.remove(c.id());
            match c {
                Tracked::Sparse(_) => self.sparse -= 1,
                Tracked::Packed(_) => self.packed -= 1,
                Tracked::Full(_) => {}
            }
            // its boundaries are those of calls up to the newest event, or the one after
            let last_due = self.state.max_ts.div_euclid(MINUTE_MS) + 1;
            self.state.quarantine.push_back((last_due, i as u32));
        }
    }

    fn breach(
        &mut self,
        idx: u32,
        ev: &Event<'_>,
        product: u32,
        country: Option<u32>,
        endpoint: Option<u32>,
    ) -> Option<Breach> {
        let ci = self.state.clients[idx as usize].as_ref()?.contract()?;
        let compiled = &self.compiled[ci as usize];
        if let (Some(allowed), true) = (&compiled.products, product != rollup::NONE) {
            if !allowed.contains(&product) {
                return Some(Breach::Product(product));
            }
        }
        if let (Some(id), Some(allowed)) = (country, &compiled.countries) {
            if !allowed.contains(&id) {
                return Some(Breach::Origin(id));
            }
        }
        if let (Some(endpoint), Some(eid), Some(list)) =
            (&ev.endpoint, endpoint, compiled.endpoints)
        {
            let ok = match self.endpoint_ok.get(&(list, eid)) {
                Some(&ok) => ok,
                None => {
                    // (`list` is numbered exactly for contracts that have one)
                    let globs = self.contracts.by_index(ci as usize).endpoints.as_deref();
                    let ok = globs
                        .unwrap_or_default()
                        .iter()
                        .any(|g| g.is_match(endpoint));
                    if self.endpoint_ok.len() >= ENDPOINT_CACHE_MAX {
                        self.endpoint_ok.clear();
                    }
                    self.endpoint_ok.insert((list, eid), ok);
                    ok
                }
            };
            if !ok {
                return Some(Breach::Endpoint(eid));
            }
        }
        None
    }

    /// Evaluate every boundary the watermark has passed.
    fn advance(&mut self, out: &mut Vec<Alert>) {
        let target = self.state.watermark.div_euclid(MINUTE_MS);
        while let Some(entry) = self.state.due.first_entry() {
            let boundary = *entry.key();
            if boundary > target {
                break;
            }
            let list = entry.remove();
            for idx in list {
                self.evaluate(idx, boundary, out);
            }
        }
        while let Some(&(last_due, i)) = self.state.quarantine.front() {
            if last_due > target {
                break;
            }
            self.state.quarantine.pop_front();
            self.state.free.push(i);
        }
        if target > self.state.housekeeping_at {
            let minutes = if self.state.housekeeping_at == i64::MIN {
                1
            } else {
                (target - self.state.housekeeping_at) as usize
            };
            self.state.housekeeping_at = target;
            self.housekeeping(minutes);
        }
    }

    /// Expire dedupe ids and sweep a slice of the table for idle clients (evicted) and quiet
    /// ones (packed), so that the whole table is swept about once an hour of event time.
    ///
    /// Only full clients can be packed; sparse and packed ones are swept for eviction alone,
    /// which can wait: they are looked at in one hour of every [`Self::eviction_hours`], so an
    /// idle one goes at most an eighth of `idle_timeout` late. Looking at each of a million
    /// sparse clients every hour cost a cache miss each, 12% of ingesting them.
    fn housekeeping(&mut self, minutes: usize) {
        self.state.dedupe.expire(self.state.watermark);
        let n = self.state.clients.len();
        if n == 0 {
            return;
        }
        let hour = self.state.watermark.div_euclid(HOUR_MS);
        let all = hour.rem_euclid(self.eviction_hours()) == 0;
        let batch = (n * minutes / 60 + 1).min(n);
        for _ in 0..batch {
            let i = self.state.sweep_cursor % n;
            self.state.sweep_cursor = (i + 1) % n;
            if !all && !matches!(self.state.clients[i], Some(Tracked::Full(_))) {
                continue;
            }
            if !self.evict_if_idle(i) {
                self.pack_if_quiet(i);
            }
        }
    }

    /// Hours between the sweeps that look at sparse and packed clients: an eighth of
    /// `idle_timeout`, at least one and at most a day.
    fn eviction_hours(&self) -> i64 {
        (self.idle_timeout / HOUR_MS / 8).clamp(1, 24)
    }

    /// Pack slot `i` if it is a full client quiet for `pack_after`, with no alert and no
    /// evaluation to come (see [`crate::packed`]).
    fn pack_if_quiet(&mut self, i: usize) {
        let (wm, after) = (self.state.watermark, self.pack_after);
        if after == 0 {
            return;
        }
        let slot = &mut self.state.clients[i];
        let quiet = matches!(slot, Some(Tracked::Full(c))
            if c.alerts.is_empty() && !c.sched.pending() && c.last_seen < wm - after);
        if !quiet {
            return;
        }
        if let Some(Tracked::Full(c)) = slot.take() {
            *slot = Some(Tracked::Packed(Arc::new(Packed::pack(
                Arc::unwrap_or_clone(c),
                wm,
            ))));
            self.packed += 1;
        }
    }

    /// Slot `idx` as a full client again if it is packed: its next call, or an evaluation
    /// (only a call schedules one, and a call unpacks it first; that one is defensive).
    fn unpack(&mut self, idx: u32) {
        let slot = &mut self.state.clients[idx as usize];
        if let Some(Tracked::Packed(p)) = slot {
            *slot = Some(Tracked::Full(Arc::new(p.unpack())));
            self.packed -= 1;
        }
    }

    /// Forget slot `i` if its client may be evicted and has been idle past `idle_timeout`.
    fn evict_if_idle(&mut self, i: usize) -> bool {
        let cutoff = self.state.watermark.saturating_sub(self.idle_timeout);
        let idle = self.state.clients[i]
            .as_ref()
            .is_some_and(|c| c.evictable() && c.last_seen() < cutoff);
        if idle {
            self.remove(i);
            self.stats.evicted_idle += 1;
        }
        idle
    }

    fn evaluate(&mut self, idx: u32, boundary: i64, out: &mut Vec<Alert>) {
        let t = boundary * MINUTE_MS;
        let mut verdicts = std::mem::take(&mut self.verdicts);
        verdicts.clear();
        self.unpack(idx);
        let slot = &mut self.state.clients[idx as usize];
        // A sparse client is evaluated on the full client its calls make; it is kept full only
        // if the evaluation gives it an alert.
        let mut rebuilt = None;
        let c = match slot {
            Some(Tracked::Full(c)) => Arc::make_mut(c),
            Some(Tracked::Sparse(s)) => rebuilt
                .insert(s.materialize(&self.p, hourly_allowance(&self.contracts, s.contract))),
            // (unpacked above)
            Some(Tracked::Packed(_)) | None => {
                self.verdicts = verdicts;
                return;
            }
        };
        if !c.prepare(boundary, &self.p) {
            self.verdicts = verdicts;
            return;
        }
        self.stats.evaluations += 1;
        let cx = Context {
            client: c,
            t,
            contract: c.contract.map(|i| self.contracts.by_index(i as usize)),
            scope: c.contract.map(|i| &self.compiled[i as usize]),
            shared: &self.p.shared,
            baseline: &self.p.baseline,
        };
        self.p.evaluate(&cx, &mut verdicts);
        if let Some(b) = &mut self.board {
            b.offer(idx, board::standing(c, t, cx.contract, &self.p.baseline).0);
        }
        let sched = c.sched;
        if let Some(rebuilt) = rebuilt {
            // Without an alert slot, only a firing verdict changes anything.
            if verdicts
                .iter()
                .any(|(_, _, v)| matches!(v, Verdict::Fire(_)))
            {
                *slot = Some(Tracked::Full(Arc::new(rebuilt)));
                self.sparse -= 1;
            } else {
                if let Some(Tracked::Sparse(s)) = slot {
                    Arc::make_mut(s).evaluated(sched);
                }
                self.verdicts = verdicts;
                return;
            }
        }
        self.apply_verdicts(idx, t, &verdicts, out);
        self.verdicts = verdicts;
        let Some(c) = self.full_mut(idx) else {
            return;
        };
        // Keep evaluating while anything is pending or firing, so alerts resolve even if the
        // client falls silent.
        if !c.alerts.is_empty() && c.sched.schedule(boundary + 1) {
            self.state.due.entry(boundary + 1).or_default().push(idx);
        }
    }

    fn full_mut(&mut self, idx: u32) -> Option<&mut Client> {
        match self.state.clients[idx as usize].as_mut()? {
            Tracked::Full(c) => Some(Arc::make_mut(c)),
            Tracked::Sparse(_) | Tracked::Packed(_) => None,
        }
    }

    fn apply_verdicts(
        &mut self,
        idx: u32,
        t: Millis,
        verdicts: &[(AlertKind, Severity, Verdict)],
        out: &mut Vec<Alert>,
    ) {
        let (fire_after, resolve_after) = (self.p.shared.fire_after, self.p.shared.resolve_after);
        let mut transitions: Vec<(State, Slot)> = Vec::new();
        {
            let Some(c) = self.full_mut(idx) else {
                return;
            };
            for &(kind, severity, v) in verdicts {
                let pos = c
                    .alerts
                    .iter()
                    .position(|s| s.kind == kind && s.severity == severity);
                let pos = match (pos, v) {
                    (Some(p), _) => p,
                    (None, Verdict::Fire(r)) => {
                        c.alerts.push(Slot::new(kind, severity, r));
                        c.alerts.len() - 1
                    }
                    (None, _) => continue,
                };
                match c.alerts[pos].step(v, t, fire_after, resolve_after) {
                    Step::Fired => transitions.push((State::Firing, c.alerts[pos].clone())),
                    Step::Resolved => {
                        transitions.push((State::Resolved, c.resolve(pos, t)));
                    }
                    Step::Dropped => {
                        c.alerts.remove(pos);
                    }
                    Step::Nothing => {}
                }
            }
            // A detector that no longer applies (contract removed, cap dropped) gives no
            // verdict: its firing alert is treated as clear, so it resolves rather than fires
            // forever.
            let mut i = 0;
            while i < c.alerts.len() {
                let s = &c.alerts[i];
                if verdicts
                    .iter()
                    .any(|(k, sev, _)| *k == s.kind && *sev == s.severity)
                {
                    i += 1;
                    continue;
                }
                let clear = Verdict::Clear(Reading {
                    ratio: 0.0,
                    ..s.last
                });
                match c.alerts[i].step(clear, t, fire_after, resolve_after) {
                    Step::Resolved => transitions.push((State::Resolved, c.resolve(i, t))),
                    Step::Dropped => {
                        c.alerts.remove(i);
                    }
                    _ => i += 1,
                }
            }
        }
        let Some(Tracked::Full(c)) = self.state.clients[idx as usize].as_ref() else {
            return;
        };
        let mut records = Vec::with_capacity(transitions.len());
        for (state, slot) in transitions {
            let alert = self.describe(c, &slot, state, t);
            records.push(AlertRecord {
                kind: slot.kind,
                severity: slot.severity,
                state,
                at: t,
                ratio: alert.ratio,
                summary: alert.details().into(),
            });
            match state {
                State::Firing => *self.stats.fired.entry(slot.kind).or_default() += 1,
                State::Resolved => *self.stats.resolved.entry(slot.kind).or_default() += 1,
            }
            out.push(alert);
        }
        if let Some(c) = self.full_mut(idx) {
            for r in records {
                c.rollup.record_alert(r);
            }
        }
    }

    /// Build the alert JSON, with a summary an on-call engineer can act on.
    fn describe(&self, c: &Client, slot: &Slot, state: State, t: Millis) -> Alert {
        let contract = c.contract.map(|i| self.contracts.by_index(i as usize));
        let mut labels = contract.map(|k| k.labels.clone()).unwrap_or_default();
        if let Some(plan) = contract.and_then(|k| k.plan.clone()) {
            labels.insert("plan".into(), plan);
        }
        let r = &slot.last;
        let id = &c.id;
        let item = r.item.map(|i| self.label_name(i)).unwrap_or_default();
        let owner = self.p.owner(slot.kind);
        let (window, summary) = match owner {
            Some(d) => d.summary(
                slot.kind,
                &About {
                    client_id: id,
                    reading: r,
                    item: &item,
                    contract,
                },
            ),
            // every kind has its detector (a unit test in `detect` checks it)
            None => (duration_label(r.window), String::new()),
        };
        // A resolve for want of calls quotes a span that decided nothing, possibly still in the
        // band: say what decided.
        let summary = if state == State::Resolved && slot.expired() {
            format!(
                "{summary} (too few calls to tell for {}: resolved)",
                duration_label(WEAK_RESOLVE_EVALS as Millis * MINUTE_MS)
            )
        } else {
            summary
        };
        let mut alert = Alert::new(state, id, slot, t, window, summary, labels);
        let allowance = owner.and_then(|d| d.allowance(slot.kind, c, contract, &self.p.baseline));
        if let Some(allowance) = allowance {
            let since = slot.firing_since.unwrap_or(t);
            alert.excess_units = Some(round2(excess_until(c, since, t, &*allowance.per_hour)));
            if allowance.month {
                let month = month_start(month_of(t));
                alert.excess_units_month =
                    Some(round2(excess_until(c, month, t, &*allowance.per_hour)));
            }
            if state == State::Firing {
                alert.drivers = c
                    .mix
                    .drivers(r.observed, r.expected)
                    .into_iter()
                    .map(|d| DriverInfo {
                        dimension: d.dim.as_str().to_owned(),
                        name: self.label_name(d.label),
                        excess_share: round2(d.excess_share),
                        share: round2(d.share),
                        usual_share: round2(d.usual_share),
                    })
                    .collect();
            }
        }
        alert
    }
}

/// Units above `allowance` (per hour since the epoch), hour by hour, from the start of the hour
/// of `from` to `t`: whole hours (and days) from the usage history, the hour in progress from
/// the minute ring up to `t` (so the figure depends only on events before `t`).
fn excess_until(c: &Client, from: Millis, t: Millis, allowance: &dyn Fn(i32) -> f64) -> f64 {
    let from = from.div_euclid(HOUR_MS) * HOUR_MS;
    let hour = t.div_euclid(HOUR_MS) * HOUR_MS;
    let in_progress = (hour >= from && t > hour).then(|| {
        let units = c
            .windows
            .minutes
            .sum(hour.div_euclid(MINUTE_MS), t.div_euclid(MINUTE_MS));
        ((hour / HOUR_MS) as i32, units)
    });
    c.rollup.excess(from, hour, allowance) + rollup::excess_over(in_progress, allowance)
}

/// A contract's units per hour: what the usage history's days count their excess over.
fn hourly_allowance(contracts: &Contracts, contract: Option<u32>) -> Option<f64> {
    contract.map(|k| contracts.by_index(k as usize).rate_per_ms() * HOUR_MS as f64)
}
