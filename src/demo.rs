//! `overage demo`: the whole system on an embedded default, in one command.
//!
//! librdkafka's in-process mock cluster stands in for Kafka, unless `brokers` names a real
//! Kafka-protocol broker (e.g. tansu; `scripts/local-stack`), where the demo creates its topics
//! if missing and runs the same traffic and service against it. A producer thread writes a dozen
//! clients' traffic, with daily seasonality, in compressed time (by default one event-time
//! minute per wall-clock second), keyed by client; after an hour of event time (a minute of
//! wall time) one partner consumes 4x its contract for 40 minutes and then goes back to normal.
//! The real service consumes it as a consumer-group member, serves `/metrics` and the API, and
//! prints alerts as they change. The story is sized so that one run shows all of an incident in
//! about three minutes at the default speed: the warning, the escalation to a page and both
//! resolving (the page needs some 40 minutes at 4x before the contract's hour is at 2.5x, and
//! resolving needs that hour back under the band and then the `resolve_after` quiet, about an
//! hour after the overrun ends; [`STORY_ENDS_BY`]). Ctrl-C drains and stops it.
//!
//! The API is protected by `OVERAGE_API_TOKEN` as `overage run` protects it: `--http
//! 0.0.0.0:...` must not open the status page and the API to the network just because this is
//! the demo.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};

use crate::alert::Alert;
use crate::config::Config;
use crate::contract::Contracts;
use crate::decode::Decoder;
use crate::engine::Engine;
use crate::time::{format_rfc3339, Millis, DAY_MS, HOUR_MS, MINUTE_MS};

/// One demo client.
#[derive(Debug, Clone)]
pub struct DemoClient {
    pub id: &'static str,
    /// Contracted units per hour, if contracted.
    pub contract_per_hour: Option<f64>,
    /// Mean calls per minute and units per call.
    pub calls_per_minute: f64,
    pub units_per_call: f64,
    pub product: &'static str,
    pub country: &'static str,
}

/// The partner that overruns, when (event time after the start), and for how long.
pub const OVERRUNNER: &str = "acme-analytics";
pub const OVERRUN_AFTER: Millis = HOUR_MS;
/// Long enough for the contract's hour to reach [`OVERRUNNER_PAGE_AT`] at 4x (about 38
/// minutes, sustained), then back to normal, so that one run shows the page and its resolve.
pub const OVERRUN_FOR: Millis = 40 * MINUTE_MS;
/// The overrunner's contract thresholds: the default warning, and a page at 2.5x instead of
/// the default 3x, so that the demo reaches the page some 8 minutes sooner (at 4x an hour
/// window needs ~45 minutes to reach 3x) and can end its story in about three minutes.
pub const OVERRUNNER_ALERT_AT: f64 = 1.5;
pub const OVERRUNNER_PAGE_AT: f64 = 2.5;
/// Event time (after the start) by which both of the overrunner's alerts have resolved: a
/// firing alert holds for an hour after its excess was last seen (a few minutes after the
/// overrun ends), then `detect.resolve_after` (10 minutes) of quiet.
pub const STORY_ENDS_BY: Millis = OVERRUN_AFTER + OVERRUN_FOR + 80 * MINUTE_MS;
// At the default speed (a minute a second) the story, with start-up, fits in about three
// minutes.
const _: () = assert!(STORY_ENDS_BY <= 185 * MINUTE_MS);
/// The overrunner's rate while overrunning, as a multiple of its contract.
pub const OVERRUN_FACTOR: f64 = 4.0;
/// The product its calls beyond the usual are for: one it never used before.
pub const OVERRUN_PRODUCT: &str = "firehose";

pub fn clients() -> Vec<DemoClient> {
    let c = |id, contract, calls, units, product, country| DemoClient {
        id,
        contract_per_hour: contract,
        calls_per_minute: calls,
        units_per_call: units,
        product,
        country,
    };
    vec![
        c(OVERRUNNER, Some(60_000.0), 20.0, 25.0, "search", "US"),
        c("msft-bing", Some(240_000.0), 40.0, 50.0, "search", "US"),
        c("news-corp", Some(30_000.0), 10.0, 20.0, "timeline", "GB"),
        c("civic-lab", Some(6_000.0), 4.0, 10.0, "search", "DE"),
        c("adtech-one", Some(90_000.0), 25.0, 30.0, "timeline", "IE"),
        c("brand-watch", Some(45_000.0), 15.0, 25.0, "search", "US"),
        c("uni-research", None, 6.0, 40.0, "search", "NL"),
        c("weather-bot", None, 12.0, 5.0, "timeline", "JP"),
        c("hobby-app", None, 2.0, 10.0, "search", "BR"),
        c("ml-startup", None, 8.0, 60.0, "search", "US"),
        c("gov-alerts", None, 5.0, 15.0, "timeline", "FR"),
        c("media-monitor", None, 10.0, 35.0, "search", "CA"),
    ]
}

/// Contracts for the contracted demo clients: peak traffic sits well under them.
pub fn contracts() -> Arc<Contracts> {
    let mut text = String::new();
    for c in clients() {
        if let Some(per_hour) = c.contract_per_hour {
            text += &format!(
                "[[contract]]\nclient_id = \"{}\"\nplan = \"partner\"\nbaseline = {{ units = {per_hour}, per = \"1h\" }}\n",
                c.id
            );
            if c.id == OVERRUNNER {
                text +=
                    &format!("alert_at = {OVERRUNNER_ALERT_AT}\npage_at = {OVERRUNNER_PAGE_AT}\n");
            }
            text += "\n";
        }
    }
    Arc::new(
        Contracts::parse(&text, std::path::Path::new("demo-contracts.toml")).unwrap_or_default(),
    )
}

/// Generates a minute of traffic at a time, as event JSON lines.
pub struct Traffic {
    rng: SmallRng,
    clients: Vec<DemoClient>,
    pub start: Millis,
    minute: i64,
    next_id: u64,
}

impl Traffic {
    pub fn new(start: Millis, seed: u64) -> Self {
        Traffic {
            rng: SmallRng::seed_from_u64(seed),
            clients: clients(),
            start,
            minute: 0,
            next_id: 0,
        }
    }

    /// Event time of the next minute to generate.
    pub fn now(&self) -> Millis {
        self.start + self.minute * MINUTE_MS
    }

    /// The next minute of events, in time order: `(client_id, line)`.
    pub fn next_minute(&mut self) -> Vec<(&'static str, Vec<u8>)> {
        let t = self.now();
        let hour_of_day = (t.rem_euclid(DAY_MS) / HOUR_MS) as f64;
        // business-hours peak around 15:00 UTC, night at ~40%
        let diurnal = 0.7 + 0.3 * ((hour_of_day - 9.0) / 24.0 * std::f64::consts::TAU).sin();
        let mut out = vec![];
        for c in &self.clients {
            let usual = c.calls_per_minute * diurnal;
            let mut rate = usual;
            let since = t - self.start;
            if c.id == OVERRUNNER && (OVERRUN_AFTER..OVERRUN_AFTER + OVERRUN_FOR).contains(&since) {
                // the contract allows 40 calls/min of 25 units
                rate =
                    OVERRUN_FACTOR * c.contract_per_hour.unwrap_or(0.0) / 60.0 / c.units_per_call;
            }
            // what the client does beyond its usual calls is a product it never used before,
            // so the alert's drivers have something to name
            let extra_share = (1.0 - usual / rate.max(1e-9)).max(0.0);
            let n = Poisson::new(rate.max(0.01))
                .map(|p| p.sample(&mut self.rng) as u64)
                .unwrap_or(0);
            for _ in 0..n {
                let ts = t + self.rng.gen_range(0..MINUTE_MS);
                let units = (c.units_per_call * self.rng.gen_range(0.5..1.5)).round();
                let product = if self.rng.gen_bool(extra_share.min(1.0)) {
                    OVERRUN_PRODUCT
                } else {
                    c.product
                };
                self.next_id += 1;
                let line = format!(
                    r#"{{"ts":"{}","client_id":"{}","event_id":"demo-{}","units":{units},"product":"{}","origin_country":"{}"}}"#,
                    format_rfc3339(ts),
                    c.id,
                    self.next_id,
                    product,
                    c.country
                );
                out.push((ts, c.id, line.into_bytes()));
            }
        }
        self.minute += 1;
        out.sort_by_key(|(ts, _, _)| *ts);
        out.into_iter().map(|(_, id, l)| (id, l)).collect()
    }
}

/// Options of the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Event-time minutes per wall-clock second.
    pub speed: f64,
    /// Stop after this much event time (None: until Ctrl-C).
    pub duration: Option<Millis>,
    /// Where the service's HTTP server listens.
    pub http: std::net::SocketAddr,
    /// An external Kafka-protocol broker to use instead of the in-process cluster.
    pub brokers: Option<String>,
    /// The service's config (e.g. with Alertmanager URLs); the demo sets its brokers, topics,
    /// group, HTTP address and input skew. Default: the built-in defaults.
    pub config: Option<Config>,
    /// Events topic (default: the config's first topic if a config is given, else
    /// [`EVENTS_TOPIC`]).
    pub topic: Option<String>,
    /// Alerts topic (default: the config's if it names one, else [`ALERTS_TOPIC`]).
    pub alerts_topic: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("Kafka")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("creating topic {0}: {1}")]
    CreateTopic(String, rdkafka::types::RDKafkaErrorCode),
    #[error(transparent)]
    Service(#[from] crate::service::ServiceError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Topics of the demo's in-process cluster.
pub const EVENTS_TOPIC: &str = "api-events";
pub const ALERTS_TOPIC: &str = "overage-alerts";

/// Librdkafka settings for the demo's own clients (producer, admin): the brokers and the
/// config's `kafka.options` (TLS, SASL).
fn client_config(brokers: &str, config: &Config) -> rdkafka::config::ClientConfig {
    let mut c = rdkafka::config::ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in &config.kafka.options {
        c.set(k, v);
    }
    c
}

/// Create the demo's topics on an external broker unless they exist.
async fn create_topics(
    brokers: &str,
    config: &Config,
    topics: &[(&str, i32)],
) -> Result<(), DemoError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::types::RDKafkaErrorCode;
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        client_config(brokers, config).create()?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let timeout = Some(Duration::from_secs(15));
    let options = AdminOptions::new()
        .request_timeout(timeout)
        .operation_timeout(timeout);
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(DemoError::CreateTopic(topic, code)),
        }
    }
    Ok(())
}

/// Run the demo through an in-process Kafka cluster (or `opts.brokers`) and the real service
/// until `shutdown` (or `duration` of event time).
pub async fn run(
    opts: DemoOptions,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), DemoError> {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let given = opts.config.is_some();
    let mut config = opts.config.unwrap_or_default();
    let topic = opts
        .topic
        .or_else(|| config.kafka.topics.first().filter(|_| given).cloned())
        .unwrap_or_else(|| EVENTS_TOPIC.into());
    let alerts_topic = opts
        .alerts_topic
        .or_else(|| config.kafka.alerts_topic.clone())
        .unwrap_or_else(|| ALERTS_TOPIC.into());
    let (cluster, brokers) = match opts.brokers {
        None => {
            let cluster = rdkafka::mocking::MockCluster::new(1)?;
            cluster.create_topic(&topic, 4, 1)?;
            cluster.create_topic(&alerts_topic, 1, 1)?;
            let brokers = cluster.bootstrap_servers();
            (Some(cluster), brokers)
        }
        Some(brokers) => {
            create_topics(&brokers, &config, &[(&topic, 4), (&alerts_topic, 1)]).await?;
            (None, brokers)
        }
    };

    config.input.max_future_skew = Duration::ZERO;
    config.kafka.brokers = brokers.clone();
    config.kafka.topics = vec![topic.clone()];
    config.kafka.group_id = "overage-demo".into();
    config.kafka.alerts_topic = Some(alerts_topic);
    // Bound before the banner, so that it shows the real address (`--http 127.0.0.1:0`).
    let listener = crate::service::http::listen(opts.http)?;
    let http = listener.local_addr().unwrap_or(opts.http);
    config.http.listen = http;
    config.alerts.log = false;
    // A given config was loaded with its token (`Config::load` reads the environment too).
    if !given {
        config.http.load_token(
            std::env::var(crate::config::API_TOKEN_ENV).ok(),
            std::path::Path::new("demo"),
        )?;
    }

    let start = (crate::time::wall_now() / DAY_MS - 1) * DAY_MS + 6 * HOUR_MS;
    let speed = opts.speed.max(0.01);
    let wall = |t: Millis| format!("{:.0} s", t as f64 / MINUTE_MS as f64 / speed);
    let label = crate::time::duration_label;
    println!(
        "overage demo: {} ({brokers}), {} clients, {} contracted; event time from {} at speed {} (event-time minutes per second).\n\
         {OVERRUNNER} goes to {OVERRUN_FACTOR}x its contract after {} of event time (~{} from now) for {}, then back to normal:\n\
         expect over_contract FIRING [warning] (its contract warns at {OVERRUNNER_ALERT_AT}x over the last hour) some 20 minutes in,\n\
         FIRING [critical] (it pages at {OVERRUNNER_PAGE_AT}x) some 40 minutes in, and both RESOLVED by {} of event time (~{} from now).\n\
         metrics and API: http://{http}/metrics, http://{http}/api/v1/alerts, http://{http}/api/v1/clients?sort=ratio, status page http://{http}/\n\
         {}\n\
         Ctrl-C to stop.\n",
        if cluster.is_some() {
            "an in-process Kafka cluster"
        } else {
            "the Kafka broker"
        },
        clients().len(),
        contracts().len(),
        format_rfc3339(start),
        opts.speed,
        label(OVERRUN_AFTER),
        wall(OVERRUN_AFTER),
        label(OVERRUN_FOR),
        label(STORY_ENDS_BY),
        wall(STORY_ENDS_BY),
        if config.http.is_protected() {
            format!("the API and status page require the token from {}", crate::config::API_TOKEN_ENV)
        } else {
            format!("no API token ({} unset): the API and status page are open", crate::config::API_TOKEN_ENV)
        },
    );
    if let Some(warning) = config.http.exposure_warning() {
        println!("WARNING: {warning}\n");
    }

    // The traffic generator: a producer thread pacing minutes of events.
    let producer: BaseProducer = client_config(&brokers, &config)
        .set("linger.ms", "5")
        .create()?;
    let stop = shutdown.clone();
    let tick = Duration::from_secs_f64(1.0 / speed);
    let duration = opts.duration;
    let generator = std::thread::spawn(move || {
        let mut traffic = Traffic::new(start, 7);
        let mut next = std::time::Instant::now();
        let mut produced = 0u64;
        while !stop.is_cancelled() {
            for (client, line) in traffic.next_minute() {
                produced += 1;
                let mut record = BaseRecord::to(&topic).key(client).payload(&line);
                while let Err((_, r)) = producer.send(record) {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                }
            }
            producer.poll(Duration::ZERO);
            let elapsed = traffic.now() - start;
            if elapsed % HOUR_MS == 0 {
                println!("-- event time {}", format_rfc3339(traffic.now()));
            }
            if duration.is_some_and(|d| elapsed >= d) {
                let _ = producer.flush(Duration::from_secs(5));
                // stop once the service has counted everything produced, so that the story's
                // last transitions are printed
                wait_until_counted(http, produced, &stop);
                stop.cancel();
                break;
            }
            next += tick;
            std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
        }
    });

    let served = crate::service::run(
        config,
        (*contracts()).clone(),
        crate::service::Options {
            contracts_path: None,
            console: true,
            listener: Some(listener),
        },
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    let _ = tokio::task::spawn_blocking(move || generator.join()).await;
    drop(cluster);
    println!("demo stopped");
    Ok(served?)
}

/// Bound on [`wait_until_counted`]: a service that cannot catch up must not keep the demo from
/// stopping.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// Wait until the service at `http` has counted (`overage_events_total`, every outcome) at
/// least `produced` events, or `stop` is cancelled, or [`CATCH_UP_TIMEOUT`] passes.
fn wait_until_counted(
    http: std::net::SocketAddr,
    produced: u64,
    stop: &tokio_util::sync::CancellationToken,
) {
    let deadline = std::time::Instant::now() + CATCH_UP_TIMEOUT;
    while !stop.is_cancelled() && std::time::Instant::now() < deadline {
        if counted_events(http).is_some_and(|n| n >= produced) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The sum of `overage_events_total` on the service's `/metrics` (always open, no token).
fn counted_events(http: std::net::SocketAddr) -> Option<u64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&http, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let sum: f64 = text
        .lines()
        .filter(|l| l.starts_with("overage_events_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum();
    Some(sum as u64)
}

/// The demo's traffic straight into an engine, without Kafka: what the demo should show, for
/// tests.
pub fn run_engine_only(duration: Millis) -> Vec<Alert> {
    let mut config = Config::default();
    config.input.max_future_skew = Duration::ZERO;
    let mut engine = Engine::new(&config, contracts());
    let decoder = Decoder::canonical(64 * 1024);
    let start = 1_787_551_200_000; // 2026-08-24T06:00:00Z
    let mut traffic = Traffic::new(start, 7);
    let mut out: Vec<Alert> = Vec::new();
    while traffic.now() - start < duration {
        for (_, line) in traffic.next_minute() {
            engine.ingest(&decoder, &line, None, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertKind, Severity, State};

    const START: Millis = 1_787_551_200_000; // run_engine_only's start

    #[test]
    fn the_partner_is_warned_paged_and_resolved_in_order_and_nobody_else_fires() {
        let alerts = run_engine_only(STORY_ENDS_BY + HOUR_MS);
        assert!(
            alerts.iter().all(|a| a.client_id == OVERRUNNER),
            "only the overrunner has transitions: {alerts:#?}"
        );
        let story: Vec<(Millis, State, Severity)> = alerts
            .iter()
            .filter(|a| a.alert == AlertKind::OverContract)
            .map(|a| {
                let at = a.at - START;
                (at, a.state, a.severity)
            })
            .collect();
        let kinds: Vec<(State, Severity)> = story.iter().map(|&(_, s, v)| (s, v)).collect();
        assert_eq!(
            kinds,
            [
                (State::Firing, Severity::Warning),
                (State::Firing, Severity::Critical),
                (State::Resolved, Severity::Warning),
                (State::Resolved, Severity::Critical),
            ],
            "{story:?}"
        );
        assert_eq!(alerts.len(), 4, "nothing but over_contract: {alerts:#?}");
        // the hour window reaches 1.5x some 20 minutes into 4x (the banner says so), 2.5x
        // some 40 minutes in, while the overrun still lasts
        let (warned, paged, resolved) = (story[0].0, story[1].0, story[3].0);
        let into = |t: Millis| (t - OVERRUN_AFTER) / MINUTE_MS;
        assert!((15..=25).contains(&into(warned)), "warned {story:?}");
        assert!((30..=45).contains(&into(paged)), "paged {story:?}");
        assert!(paged < OVERRUN_AFTER + OVERRUN_FOR, "{story:?}");
        // resolved after the return to normal, by the time the banner announces
        assert!(resolved > OVERRUN_AFTER + OVERRUN_FOR, "{story:?}");
        assert!(resolved <= STORY_ENDS_BY, "{story:?}");
        // the page says what drove it and how much is over
        for a in alerts.iter().filter(|a| a.state == State::Firing) {
            let top = &a.drivers[0];
            assert_eq!(
                (top.dimension.as_str(), top.name.as_str()),
                ("product", OVERRUN_PRODUCT)
            );
            assert!(top.excess_share > 0.8 && top.usual_share < 0.05, "{a:?}");
        }
        let excess = |i: usize| alerts[i].excess_units.unwrap_or(0.0);
        assert!(excess(1) > excess(0) && excess(0) > 0.0, "{alerts:#?}");
        // the warning's episode: every hour from the one it fired in, 4x against the contract's
        // 60000 for 40 minutes, at most 40 min x 3 x 1000 units over
        assert!(
            excess(2) > 60_000.0 && excess(2) <= 120_000.0,
            "{alerts:#?}"
        );
    }
}
