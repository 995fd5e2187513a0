//! Event generation: the [`Generator`] draws each minute's events from the plan's rate model,
//! delivers them as a gateway pipeline would (duplicates, bounded disorder, a late backlog,
//! garbage lines) and keeps the exact accounts the [`Truth`] is made of.
//!
//! It is an iterator so that the live demo can feed a broker at wall-clock pace while
//! [`super::write_scenario`] drains it into a file. Traffic and faults draw from separate
//! random streams ([`super::params`]), so the fault rates never change the traffic.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, LogNormal, Poisson};

use super::fleet::CLEAR_CALLS;
use super::format::{push_hex, push_rfc3339, push_u64};
use super::params::{splitmix, stream_seed};
use super::plan::{Backlog, Planned, Scenario, REPORT_GRACE_MS};
use super::spec::{CallUnits, ClientSpec, TsStyle, OK_SHARE};
use super::truth::{kind, reason, Anomaly, ClientTruth, Faults, Truth, UsageTruth, STUCK_AFTER_MS};
use crate::time::{format_rfc3339, month_of, month_start, DAY_MS, MINUTE_MS};

/// Most records one call can return (the largest page size).
const MAX_PAGE: f64 = 500.0;

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
    /// The client's planned scope and new-origin incidents, counted as drawn.
    violations: Vec<Violations>,
}

/// A planned incident of calls out of scope (or from a new origin): its calls as the stream
/// holds them. Its truth is clearly detectable once it has made [`CLEAR_CALLS`] of them; the
/// plan's mark is when it is expected to, and a client making a few calls a day makes its
/// tenth a day sooner or later than expected.
#[derive(Debug, Clone)]
struct Violations {
    /// Index in the plan.
    planned: usize,
    /// An origin (else a call: product or endpoint) breaks the rule.
    origin: bool,
    calls: u32,
    /// The end of the minute of the [`CLEAR_CALLS`]-th call.
    clear_ms: Option<i64>,
    /// The client's calls in the [`STUCK_AFTER_MS`] after the incident's end.
    after: u32,
}

/// [`ClientTruth::cap_crossed_after_run`]: the last month's units plus `c`'s expected units from
/// the run's end to the month's, against its cap.
fn cap_crossed_after_run(sc: &Scenario, c: &ClientSpec, a: &Account) -> Option<String> {
    let cap = c.contract.as_ref()?.monthly_cap?;
    let month = month_of(sc.end_ms - 1);
    if a.events == 0 || a.month != month || a.month_units > cap {
        return None;
    }
    let rest = c.expected_units(sc.end_ms, month_start(month + 1));
    (a.month_units + rest > cap).then(|| crate::time::month_label(month))
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

/// Where an incident's client is over nothing, so that its alert may resolve and fire again
/// after as a new alert: its holidays, and for a contract's incident the stretches of a day or
/// more within the contract.
fn pauses(c: &ClientSpec, a: &Planned) -> Vec<[i64; 2]> {
    let mut out = c.drops_within(a.start_ms, a.end_ms);
    if a.expect == kind::OVER_CONTRACT {
        out.extend(c.within_contract(a.start_ms, a.end_ms));
        out.sort_unstable();
    }
    out
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
                    let violations =
                        sc.planned
                            .iter()
                            .enumerate()
                            .filter(|(_, a)| a.client == ci && a.detectable_ms.is_some())
                            .filter_map(|(planned, a)| {
                                let origin = match a.expect {
                                    kind::OUT_OF_CONTRACT_PRODUCT
                                    | kind::OUT_OF_CONTRACT_ENDPOINT => false,
                                    kind::OUT_OF_CONTRACT_ORIGIN | kind::NEW_ORIGIN => true,
                                    _ => return None,
                                };
                                Some(Violations {
                                    planned,
                                    origin,
                                    calls: 0,
                                    clear_ms: None,
                                    after: 0,
                                })
                            })
                            .collect();
                    Account {
                        by_minute: if scored {
                            vec![0.0; minutes]
                        } else {
                            Vec::new()
                        },
                        violations,
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
            .enumerate()
            .map(|(i, a)| {
                let drawn = self.accounts[a.client]
                    .violations
                    .iter()
                    .find(|v| v.planned == i);
                Anomaly {
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
                    detectable_ms: drawn.and_then(|v| v.clear_ms).or(a.detectable_ms),
                    driver: a.driver.clone(),
                    calls_after_end: drawn.map(|v| v.after),
                    pauses: pauses(&sc.clients[a.client], a),
                }
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
                    calls_after_end: None,
                    pauses: Vec::new(),
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
                cap_crossed_after_run: cap_crossed_after_run(sc, c, a),
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
        let c = &self.sc.clients[ci];
        let cap = c.contract.as_ref().and_then(|k| k.monthly_cap);
        let a = &mut self.accounts[ci];
        for v in &mut a.violations {
            let p = &self.sc.planned[v.planned];
            v.after += u32::from((p.end_ms..p.end_ms + STUCK_AFTER_MS).contains(&e.ts));
            let drawn = if v.origin { e.origin } else { e.call };
            if (p.start_ms..p.end_ms).contains(&e.ts)
                && c.share_at(e.ts, v.origin)
                    .is_some_and(|(i, _)| i == drawn as usize)
            {
                v.calls += 1;
                if v.calls == CLEAR_CALLS as u32 {
                    v.clear_ms = Some((e.ts.div_euclid(MINUTE_MS) + 1) * MINUTE_MS);
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::super::{small, SimParams};
    use super::*;
    use crate::decode::{decode_canonical, Reject};

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

    /// A run that ends inside a month: a cap its events stop short of counts as crossed when
    /// the client's expected rest of the month takes it over, and not when it stays far above.
    #[test]
    fn a_month_the_run_ends_in_is_judged_with_its_expected_rest() {
        let p = SimParams {
            days: 3,
            scale: 0.3,
            ..SimParams::default()
        };
        let mut sc = Scenario::standard(&p).unwrap();
        assert_eq!(month_of(sc.start_ms), month_of(sc.end_ms - 1));
        let usage = sc.generator().finish().usage;
        let i = (0..sc.clients.len())
            .find(|&i| sc.clients[i].contract.is_some() && usage[&*sc.clients[i].id] > 1000.0)
            .unwrap();
        let crossed = |sc: &mut Scenario, cap: f64| {
            sc.clients[i].contract.as_mut().unwrap().monthly_cap = Some(cap);
            let t = sc.clone().generator().finish();
            let c = t
                .clients
                .into_iter()
                .find(|c| c.client_id == *sc.clients[i].id);
            let c = c.unwrap();
            assert!(c.cap_crossings.is_empty(), "{:?}", c.cap_crossings);
            c.cap_crossed_after_run
        };
        let units = usage[&*sc.clients[i].id];
        let month = crate::time::month_label(month_of(sc.end_ms - 1));
        assert_eq!(crossed(&mut sc, units * 1.01), Some(month));
        assert_eq!(crossed(&mut sc, units * 100.0), None);
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
}
