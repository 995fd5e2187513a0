//! State shared between the consumer thread, the alert router and the HTTP server.
//!
//! Each partition's engine sits behind a lock of its own ([`Shard`]): the consumer's worker that
//! owns the partition holds it for one run of that partition's messages, and readers (the API,
//! `/metrics`) take one engine's lock at a time to build small views, so a reader never stops
//! every partition at once. What would need a walk of every client (the top clients) is read
//! from what each engine publishes ([`crate::board`]), without its lock. Health is plain atomics so probes never wait on the hot path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::{Deserialize, Serialize};

use crate::alert::Alert;
pub use crate::board::ClientSummary;
use crate::board::Published;
use crate::config::Config;
use crate::contract::Contracts;
use crate::engine::{Engine, Stats};
use crate::time::{
    duration_label, format_rfc3339, month_of, month_start, Millis, HOUR_MS, MINUTE_MS,
};

/// A topic partition: the unit of state ownership.
pub type Partition = (String, i32);

/// One partition's engine, shared between the worker applying its messages and the readers.
pub type Shard = Arc<Mutex<Engine>>;

/// A shard's engine, locked. A poisoned lock means a panic on the hot path: the data is still
/// the best there is, so keep serving it.
pub fn lock(shard: &Shard) -> MutexGuard<'_, Engine> {
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Shared {
    pub config: Config,
    /// Each partition's engine, and the read model it publishes (read without its lock).
    shards: Mutex<BTreeMap<Partition, (Shard, Published)>>,
    /// Counters of engines dropped on revoke, so totals never go backwards.
    retired: Mutex<Stats>,
    contracts: RwLock<Arc<Contracts>>,
    /// Bumped on every contracts reload; the consumer applies the new ones when it changes.
    pub contracts_generation: AtomicU64,
    /// Firing alerts by fingerprint (maintained by the router).
    pub active: RwLock<BTreeMap<String, Alert>>,
    pub health: Health,
    /// Consumer lag per partition, from librdkafka statistics.
    pub lag: Mutex<BTreeMap<Partition, i64>>,
}

/// Clients with state in memory, over all engines.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tracked {
    pub clients: usize,
    /// Of them, kept as their few calls (see [`crate::sparse`]).
    pub sparse: usize,
    /// Of them, packed while quiet (see [`crate::packed`]).
    pub packed: usize,
}

#[derive(Default)]
pub struct Health {
    /// A partition assignment has been received (possibly empty: more instances than partitions).
    pub assigned_once: AtomicBool,
    pub assigned: AtomicUsize,
    /// What the consumer last learned about its brokers (a [`Link`]): one fixed reason per
    /// cause, so that `/readyz` names the cause instead of guessing.
    link: AtomicU8,
    /// Subscribed topics that the brokers say cannot be read, and why. Only the consumer's
    /// metadata checks touch it, never the message path.
    topics: Mutex<BTreeMap<String, TopicProblem>>,
    pub total_lag: AtomicI64,
    pub shutting_down: AtomicBool,
    /// Assigned partitions' state is being loaded from checkpoints.
    pub restoring: AtomicBool,
}

/// The consumer's link to its brokers, from the latest evidence: a message, an assignment or a
/// broker `UP` in librdkafka's statistics says `Up`; librdkafka's errors say which trouble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Link {
    /// No broker has answered yet (start-up).
    Connecting = 0,
    Up = 1,
    /// librdkafka reports every broker down: nothing listens at `kafka.brokers`, or the
    /// network drops the connections.
    Unreachable = 2,
    /// A broker rejected the client's credentials (SASL).
    AuthenticationFailed = 3,
    /// The TLS handshake failed (certificates, or TLS against a plaintext listener).
    TlsFailed = 4,
}

impl Link {
    const ALL: [Link; 5] = [
        Link::Connecting,
        Link::Up,
        Link::Unreachable,
        Link::AuthenticationFailed,
        Link::TlsFailed,
    ];

    /// Why readiness fails because of the link, if it does.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Link::Up => None,
            Link::Connecting => Some("connecting to the Kafka brokers"),
            Link::Unreachable => Some("Kafka brokers unreachable"),
            Link::AuthenticationFailed => Some("Kafka authentication failed"),
            Link::TlsFailed => Some("Kafka TLS handshake failed"),
        }
    }
}

/// Why a subscribed topic cannot be consumed, from its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicProblem {
    /// Not on the brokers (a typo in `kafka.topics`, or not created yet).
    Missing,
    /// The brokers' ACLs deny this client the topic.
    NotAuthorized,
}

impl TopicProblem {
    pub fn reason(self, topic: &str) -> String {
        match self {
            TopicProblem::Missing => format!("Kafka topic {topic:?} does not exist"),
            TopicProblem::NotAuthorized => format!("not authorized to read Kafka topic {topic:?}"),
        }
    }
}

impl Health {
    pub fn link(&self) -> Link {
        let v = self.link.load(Ordering::Relaxed);
        Link::ALL
            .into_iter()
            .find(|l| *l as u8 == v)
            .unwrap_or(Link::Connecting)
    }

    /// Record what the consumer learned. All brokers down after an authentication or TLS
    /// failure keeps that failure: it is why they are down.
    pub fn set_link(&self, link: Link) {
        if link == Link::Unreachable {
            let _ = self
                .link
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    let failed = [Link::AuthenticationFailed, Link::TlsFailed];
                    (!failed.iter().any(|f| *f as u8 == v)).then_some(Link::Unreachable as u8)
                });
        } else {
            self.link.store(link as u8, Ordering::Relaxed);
        }
    }

    /// Record what `topic`'s metadata says (`None`: it can be consumed).
    pub fn set_topic_problem(&self, topic: &str, problem: Option<TopicProblem>) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        match problem {
            Some(p) => {
                topics.insert(topic.to_owned(), p);
            }
            None => {
                topics.remove(topic);
            }
        }
    }

    pub fn has_topic_problems(&self) -> bool {
        !self
            .topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    pub fn topic_problems(&self) -> Vec<(String, TopicProblem)> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.iter().map(|(t, p)| (t.clone(), *p)).collect()
    }
}

/// Why the service is not ready, if it is not.
pub fn readiness(shared: &Shared) -> Result<(), Vec<String>> {
    let h = &shared.health;
    let mut why = vec![];
    if h.shutting_down.load(Ordering::Relaxed) {
        why.push("shutting down".to_owned());
    }
    if !h.assigned_once.load(Ordering::Relaxed) {
        why.push("no partition assignment yet".to_owned());
    }
    if h.restoring.load(Ordering::Relaxed) {
        why.push("restoring partition state from checkpoints".to_owned());
    }
    if let Some(r) = h.link().reason() {
        why.push(r.to_owned());
    }
    for (topic, problem) in h.topic_problems() {
        why.push(problem.reason(&topic));
    }
    let lag = h.total_lag.load(Ordering::Relaxed);
    if lag > shared.config.kafka.max_ready_lag {
        why.push(format!(
            "consumer lag {lag} above {}",
            shared.config.kafka.max_ready_lag
        ));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why)
    }
}

impl Shared {
    pub fn new(config: Config, contracts: Arc<Contracts>) -> Arc<Shared> {
        Arc::new(Shared {
            config,
            shards: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(Stats::default()),
            contracts: RwLock::new(contracts),
            contracts_generation: AtomicU64::new(0),
            active: RwLock::new(BTreeMap::new()),
            health: Health::default(),
            lag: Mutex::new(BTreeMap::new()),
        })
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<Partition, (Shard, Published)>> {
        self.shards.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every partition's shard, in partition order. The map's lock is held only for the copy, so
    /// the caller locks one engine at a time.
    pub fn shards(&self) -> Vec<(Partition, Shard)> {
        self.map()
            .iter()
            .map(|(p, (s, _))| (p.clone(), s.clone()))
            .collect()
    }

    pub fn shard(&self, p: &Partition) -> Option<Shard> {
        self.map().get(p).map(|(s, _)| s.clone())
    }

    /// `p`'s shard, made with `new` if the partition has none yet.
    pub fn shard_or_insert(&self, p: &Partition, new: impl FnOnce() -> Engine) -> Shard {
        let mut map = self.map();
        if let Some((s, _)) = map.get(p) {
            return s.clone();
        }
        let entry = Self::entry(new());
        map.insert(p.clone(), entry.clone());
        entry.0
    }

    /// Make `engine` `p`'s state (a restored checkpoint), replacing any it had.
    pub fn insert(&self, p: Partition, engine: Engine) {
        // seeding the board walks every client: not while holding the map that readers and
        // the other partitions' workers need
        let entry = Self::entry(engine);
        self.map().insert(p, entry);
    }

    fn entry(mut engine: Engine) -> (Shard, Published) {
        let board = engine.publish_board();
        (Arc::new(Mutex::new(engine)), board)
    }

    pub fn remove(&self, p: &Partition) {
        self.map().remove(p);
    }

    pub fn contracts(&self) -> Arc<Contracts> {
        self.contracts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_contracts(&self, c: Arc<Contracts>) {
        *self.contracts.write().unwrap_or_else(|e| e.into_inner()) = c;
        self.contracts_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Drop the engines of revoked partitions, keeping their counters.
    pub fn retire(&self, partitions: &[Partition]) {
        let mut map = self.map();
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        for p in partitions {
            if let Some((s, _)) = map.remove(p) {
                retired.add(lock(&s).stats());
            }
        }
    }

    /// Counters over all engines, current and retired, and the clients tracked now.
    pub fn stats(&self) -> (Stats, Tracked) {
        let mut total = self
            .retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut tracked = Tracked::default();
        for (_, s) in self.shards() {
            let e = lock(&s);
            total.add(e.stats());
            tracked.clients += e.client_count();
            tracked.sparse += e.sparse_count();
            tracked.packed += e.packed_count();
        }
        (total, tracked)
    }

    /// Run `f` on the engine that holds `id`'s state (reports from live state).
    pub fn with_client<R>(&self, id: &str, f: impl FnOnce(&Engine) -> R) -> Option<R> {
        for (_, s) in self.shards() {
            let e = lock(&s);
            if e.contains(id) {
                return Some(f(&e));
            }
        }
        None
    }

    /// A client's usage in `[from, to)` (see [`Engine::usage`]) and the time its data is
    /// complete to (the watermark, to the minute).
    pub fn usage(
        &self,
        id: &str,
        from: Millis,
        to: Millis,
        by: crate::rollup::By,
    ) -> Option<(Vec<crate::rollup::UsageRow>, Millis)> {
        self.with_client(id, |e| {
            e.usage(id, from, to, by).map(|rows| (rows, eval_time(e)))
        })
        .flatten()
    }

    /// Events read so far, every outcome, over all engines (the status page's rate).
    pub fn events_seen(&self) -> u64 {
        self.stats().0.events()
    }

    pub fn client_view(&self, id: &str) -> Option<ClientView> {
        self.shards().iter().find_map(|(_, s)| view(&lock(s), id))
    }

    /// Clients with the highest ratio of recent use to what they are measured against
    /// (contract, else learned baseline).
    /// From what each engine published at its last evaluated minute (see [`crate::board`]):
    /// no engine's lock is taken.
    pub fn top_clients(&self, limit: usize) -> Vec<ClientSummary> {
        let boards: Vec<Published> = self.map().values().map(|(_, b)| b.clone()).collect();
        let mut all: Vec<ClientSummary> = vec![];
        for b in boards {
            let list = b.read().unwrap_or_else(|e| e.into_inner()).clone();
            all.extend(list.iter().take(limit).cloned());
        }
        all.sort_by(ClientSummary::rank);
        all.truncate(limit);
        all
    }

    /// `(client, ratio to contract over the last hour)` for contracted clients.
    pub fn contract_ratios(&self) -> Vec<(String, f64)> {
        let mut out = vec![];
        for (_, s) in self.shards() {
            let e = lock(&s);
            let t = eval_time(&e);
            // Found through the contracts (thousands), not by walking every client (millions)
            // while the consumer waits for the lock.
            for contract in e.contracts().iter() {
                if let Some(c) = e.client(&contract.client_id) {
                    let (used, dur) = c.windows.sum(t, HOUR_MS);
                    let expected = contract.rate_per_ms() * dur as f64;
                    if expected > 0.0 {
                        out.push((c.id.to_string(), used / expected));
                    }
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowView {
    pub window: String,
    pub observed: f64,
    pub expected: Option<f64>,
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub contract: Option<ContractView>,
    /// Windows ending at the last evaluated minute (the watermark).
    pub as_of: String,
    pub windows: Vec<WindowView>,
    pub baseline: BaselineView,
    pub usage: UsageView,
    pub alerts: Vec<AlertState>,
    pub first_seen: String,
    pub last_seen: String,
    /// Recent alert transitions, oldest first (at most `rollup::ALERT_HISTORY`).
    pub alert_history: Vec<crate::rollup::AlertRecord>,
    /// The month against the contract's monthly cap, as `cap_forecast` sees it (clients with a
    /// cap): what `report --url` draws, so it equals `report --events` under the same settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<CapView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapView {
    /// `detect.cap.pace_window`.
    pub pace_window: String,
    /// `None` while the client is too new for a pace (`detect.cap.min_history`).
    pub projection: Option<crate::detect::cap::Projection>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContractView {
    pub plan: Option<String>,
    pub units: f64,
    pub per: String,
    pub monthly_cap: Option<f64>,
    pub products: Option<Vec<String>>,
    pub origin_countries: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineView {
    pub warm: bool,
    pub learned_hours: u32,
    /// Expected units over the last hour according to the learned baseline.
    pub expected_last_hour: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageView {
    pub month_units: f64,
    pub previous_month_units: f64,
    pub total_units: f64,
    pub total_events: u64,
    /// Units above the contract this month, hour by hour (contracted clients).
    pub over_contract_month: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertState {
    pub alert: String,
    pub severity: String,
    pub firing_since: Option<String>,
    pub ratio: f64,
}

const VIEW_WINDOWS: [Millis; 5] = [
    5 * MINUTE_MS,
    15 * MINUTE_MS,
    HOUR_MS,
    6 * HOUR_MS,
    24 * HOUR_MS,
];

/// The time the engine's windows are complete to: its watermark, to the minute.
pub(crate) fn eval_time(e: &Engine) -> Millis {
    e.watermark().unwrap_or(0).div_euclid(MINUTE_MS) * MINUTE_MS
}

fn view(e: &Engine, id: &str) -> Option<ClientView> {
    let c = e.client(id)?;
    let t = eval_time(e);
    let p = e.detectors();
    let contract = c.contract.map(|k| e.contracts().by_index(k as usize));
    let windows = VIEW_WINDOWS
        .iter()
        .map(|&w| {
            let (observed, dur) = c.windows.sum(t, w);
            let expected = contract.map(|k| k.rate_per_ms() * dur as f64);
            WindowView {
                window: duration_label(w),
                observed,
                expected,
                ratio: expected.filter(|x| *x > 0.0).map(|x| observed / x),
            }
        })
        .collect();
    Some(ClientView {
        client_id: c.id.to_string(),
        contract: contract.map(|k| ContractView {
            plan: k.plan.clone(),
            units: k.baseline_units,
            per: duration_label(k.per),
            monthly_cap: k.monthly_cap,
            products: k.products.clone(),
            origin_countries: k.origin_countries.clone(),
        }),
        as_of: format_rfc3339(t),
        windows,
        baseline: BaselineView {
            warm: c.baseline.is_warm(&p.baseline),
            learned_hours: c.baseline.learned_hours(),
            expected_last_hour: c.baseline.expected(t, HOUR_MS, &p.baseline),
        },
        usage: UsageView {
            month_units: c.usage.month_units,
            previous_month_units: c.usage.prev_month_units,
            total_units: c.usage.total_units,
            total_events: c.usage.total_events,
            over_contract_month: e
                .units_over_contract(id, month_start(month_of(t)), t)
                .map(crate::alert::round2),
        },
        alerts: c
            .alerts
            .iter()
            .map(|s| AlertState {
                alert: s.kind.to_string(),
                severity: s.severity.as_str().to_owned(),
                firing_since: s.firing_since.map(format_rfc3339),
                ratio: crate::alert::round2(s.last.ratio),
            })
            .collect(),
        first_seen: format_rfc3339(c.first_seen),
        last_seen: format_rfc3339(c.last_seen),
        alert_history: e.alert_history(id).unwrap_or_default(),
        cap: contract.and_then(|k| k.monthly_cap).map(|_| CapView {
            pace_window: duration_label(p.cap.pace),
            projection: e.cap_projection(id, t),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client view carries the cap detector's own pace window and projection, so
    /// `report --url` draws what `cap_forecast` fires on, whatever `detect.cap` says.
    #[test]
    fn the_client_view_carries_the_cap_projection_under_the_configured_pace() {
        let mut cfg = Config::default();
        cfg.detect.cap.pace_window = std::time::Duration::from_secs(2 * 24 * 3600);
        let contracts = Contracts::parse(
            "[[contract]]\nclient_id = \"acme\"\nbaseline = { units = 600, per = \"1h\" }\n\
             monthly_cap = 1000000\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        let mut e = Engine::new(&cfg, Arc::new(contracts));
        let decoder = cfg.input.decoder();
        let start = crate::time::parse_rfc3339("2026-09-01T00:00:00Z").unwrap();
        let mut out = Vec::new();
        // a day at one 10-unit call a minute, then two days at four
        for m in 0..(3 * 24 * 60) {
            for k in 0..if m < 24 * 60 { 1 } else { 4 } {
                let ts = start + m * MINUTE_MS + k * 1000;
                let line = format!(r#"{{"ts":{ts},"client_id":"acme","units":10}}"#);
                e.ingest(&decoder, line.as_bytes(), None, &mut out);
            }
        }
        e.flush(&mut out);
        let v = view(&e, "acme").unwrap();
        let cap = v.cap.clone().expect("a client with a monthly cap");
        assert_eq!(cap.pace_window, "2d");
        let p = cap.projection.expect("three days are history enough");
        assert_eq!(Some(p), e.cap_projection("acme", eval_time(&e)));
        // the two-day pace (40 units a minute), not the three days' average (30)
        assert!(
            (p.pace_per_ms * MINUTE_MS as f64 - 40.0).abs() < 0.5,
            "{p:?}"
        );
        // and it reaches a report through the API's JSON as it is
        let json = serde_json::to_value(&v).unwrap();
        let back: CapView = serde_json::from_value(json["cap"].clone()).unwrap();
        assert_eq!(back.projection, Some(p));
    }

    /// What the boards publish is the exact top at the last evaluated minute, for an engine
    /// that had its clients when it was assigned (its board seeded by a walk, quiet sparse
    /// clients without rebuilding them) and one that got them after.
    #[test]
    fn top_clients_are_the_top_at_the_last_evaluated_minute() {
        let shared = Shared::new(Config::default(), Arc::new(Contracts::default()));
        let cfg = Config::default();
        let decoder = cfg.input.decoder();
        let start = crate::time::parse_rfc3339("2026-09-01T00:00:00Z").unwrap();
        // most clients contracted, at baselines that give them different ratios
        let text: String = (0..2)
            .flat_map(|p| (0..10).map(move |k| (p, k)))
            .map(|(p, k)| {
                format!(
                    "[[contract]]\nclient_id = \"c{p}-{k}\"\nbaseline = {{ units = {}, per = \"1h\" }}\n\n",
                    10 + 3 * k
                )
            })
            .collect();
        let contracts = Arc::new(Contracts::parse(&text, std::path::Path::new("c.toml")).unwrap());
        // three hours: 13 clients in turn, and a few calling only in the first hour
        let feed = |e: &mut Engine, p: i32| {
            let mut out = vec![];
            for k in 0..180 {
                let ts = start + k * MINUTE_MS;
                let client = match k {
                    1 | 3 | 5 => format!("q{p}-{k}"),
                    _ => format!("c{p}-{}", k % 13),
                };
                let line = format!(r#"{{"ts":{ts},"client_id":"{client}","units":{}}}"#, k % 7);
                e.ingest(&decoder, line.as_bytes(), None, &mut out);
            }
        };
        let mut assigned_with_clients = Engine::new(&cfg, contracts.clone());
        feed(&mut assigned_with_clients, 0);
        let t = eval_time(&assigned_with_clients);
        let quiet = assigned_with_clients
            .client_ids()
            .filter(|id| {
                assigned_with_clients
                    .quiet_sparse(id, t - HOUR_MS, t)
                    .is_some()
            })
            .count();
        assert_eq!(quiet, 3);
        shared.insert(("t".into(), 0), assigned_with_clients);
        let s = shared.shard_or_insert(&("t".into(), 1), || Engine::new(&cfg, contracts.clone()));
        feed(&mut lock(&s), 1);
        // what the partition's worker does after each run
        lock(&s).refresh_board(0);

        let mut exact: Vec<ClientSummary> = vec![];
        for (_, s) in shared.shards() {
            let e = lock(&s);
            let t = eval_time(&e);
            for id in e.client_ids() {
                let c = e.client(id).unwrap();
                let contract = c.contract.map(|k| e.contracts().by_index(k as usize));
                exact.push(ClientSummary::of(&c, t, contract, &e.detectors().baseline));
            }
        }
        exact.sort_by(ClientSummary::rank);
        assert_eq!(exact.len(), 32);
        let ratios: std::collections::BTreeSet<String> =
            exact.iter().map(|c| c.ratio.to_string()).collect();
        assert!(ratios.len() > 5, "{ratios:?}");
        let key = |v: &[ClientSummary]| format!("{v:?}");
        for limit in [1, 4, 10, 40] {
            let top = shared.top_clients(limit);
            assert_eq!(key(&top), key(&exact[..limit.min(exact.len())]), "{limit}");
        }
    }

    /// Each cause gives its own fixed reason; a failed login stays the reason when librdkafka
    /// then reports every broker down (which is what a failed login leads to).
    #[test]
    fn readiness_names_the_cause() {
        let shared = Shared::new(Config::default(), Arc::new(Contracts::default()));
        let h = &shared.health;
        h.assigned_once.store(true, Ordering::Relaxed);
        let why = |s: &Shared| readiness(s).err().unwrap_or_default();
        assert_eq!(why(&shared), ["connecting to the Kafka brokers"]);
        h.set_link(Link::Up);
        assert_eq!(readiness(&shared), Ok(()));
        h.set_link(Link::Unreachable);
        assert_eq!(why(&shared), ["Kafka brokers unreachable"]);
        h.set_link(Link::AuthenticationFailed);
        h.set_link(Link::Unreachable);
        assert_eq!(why(&shared), ["Kafka authentication failed"]);
        h.set_link(Link::TlsFailed);
        h.set_link(Link::Unreachable);
        assert_eq!(why(&shared), ["Kafka TLS handshake failed"]);
        h.set_link(Link::Up);
        h.set_topic_problem("evnets", Some(TopicProblem::Missing));
        h.set_topic_problem("audit", Some(TopicProblem::NotAuthorized));
        assert_eq!(
            why(&shared),
            [
                "not authorized to read Kafka topic \"audit\"",
                "Kafka topic \"evnets\" does not exist",
            ]
        );
        h.set_topic_problem("audit", None);
        h.set_topic_problem("evnets", None);
        assert_eq!(readiness(&shared), Ok(()));
        let reasons: std::collections::HashSet<_> =
            Link::ALL.iter().filter_map(|l| l.reason()).collect();
        assert_eq!(reasons.len(), Link::ALL.len() - 1, "one reason per trouble");
        for l in Link::ALL {
            h.set_link(l);
            assert_eq!(h.link(), l);
        }
    }

    #[test]
    fn contract_ratios_are_the_contracted_clients_last_hour_against_their_contract() {
        let cfg = Config::default();
        let contracts = Arc::new(
            Contracts::parse(
                "[[contract]]\nclient_id = \"acme\"\nbaseline = { units = 600, per = \"1h\" }\n\
                 [[contract]]\nclient_id = \"absent\"\nbaseline = { units = 60, per = \"1h\" }\n",
                std::path::Path::new("c.toml"),
            )
            .unwrap(),
        );
        let shared = Shared::new(cfg.clone(), contracts.clone());
        let mut e = Engine::new(&cfg, contracts);
        let decoder = cfg.input.decoder();
        let start = crate::time::parse_rfc3339("2026-09-01T00:00:00Z").unwrap();
        let mut out = Vec::new();
        // two hours: acme at 20 units a minute (2x its contract), an uncontracted client too
        for m in 0..120 {
            for id in ["acme", "walk-in"] {
                let ts = start + m * MINUTE_MS;
                let line = format!(r#"{{"ts":{ts},"client_id":"{id}","units":20}}"#);
                e.ingest(&decoder, line.as_bytes(), None, &mut out);
            }
        }
        e.flush(&mut out);
        shared.insert(("events".into(), 0), e);
        let ratios = shared.contract_ratios();
        assert_eq!(ratios.len(), 1, "{ratios:?}");
        assert_eq!(ratios[0].0, "acme");
        assert!((ratios[0].1 - 2.0).abs() < 1e-9, "{ratios:?}");
    }
}
