//! `overage demo`: the whole system on an embedded default, in one command.
//!
//! librdkafka's in-process mock cluster stands in for Kafka, unless `brokers` names a real
//! Kafka-protocol broker (e.g. tansu; `scripts/local-stack`), where the demo creates its topics
//! if missing and runs the same traffic and service against it. A producer thread writes a dozen
//! clients' traffic, with daily seasonality, in compressed time (by default one event-time
//! minute per wall-clock second), keyed by client; after an hour of event time (a minute of
//! wall time) one partner starts consuming 4x its contract. The real service consumes it as a
//! consumer-group member, serves `/metrics` and the API on localhost, and prints alerts as they
//! fire. Ctrl-C drains and stops it.

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

/// The partner that overruns, and when (event time after the start).
pub const OVERRUNNER: &str = "acme-analytics";
pub const OVERRUN_AFTER: Millis = HOUR_MS;

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
                "[[contract]]\nclient_id = \"{}\"\nplan = \"partner\"\nbaseline = {{ units = {per_hour}, per = \"1h\" }}\n\n",
                c.id
            );
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
            let mut rate = c.calls_per_minute * diurnal;
            if c.id == OVERRUNNER && t - self.start >= OVERRUN_AFTER {
                // 4x the contract: the contract allows 40 calls/min of 25 units
                rate = 4.0 * c.contract_per_hour.unwrap_or(0.0) / 60.0 / c.units_per_call;
            }
            let n = Poisson::new(rate.max(0.01))
                .map(|p| p.sample(&mut self.rng) as u64)
                .unwrap_or(0);
            for _ in 0..n {
                let ts = t + self.rng.gen_range(0..MINUTE_MS);
                let units = (c.units_per_call * self.rng.gen_range(0.5..1.5)).round();
                self.next_id += 1;
                let line = format!(
                    r#"{{"ts":"{}","client_id":"{}","event_id":"demo-{}","units":{units},"product":"{}","origin_country":"{}"}}"#,
                    format_rfc3339(ts),
                    c.id,
                    self.next_id,
                    c.product,
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
    config.http.listen = opts.http;
    config.alerts.log = false;

    let start = (crate::time::wall_now() / DAY_MS - 1) * DAY_MS + 6 * HOUR_MS;
    println!(
        "overage demo: {} ({brokers}), {} clients, {} contracted;\n\
         {OVERRUNNER} goes to 4x its contract after {} of event time, at {} event-time minutes per second.\n\
         metrics and API: http://{}/metrics, http://{}/api/v1/alerts, http://{}/api/v1/clients?sort=ratio\n\
         Ctrl-C to stop.\n",
        if cluster.is_some() {
            "an in-process Kafka cluster"
        } else {
            "the Kafka broker"
        },
        clients().len(),
        contracts().len(),
        crate::time::duration_label(OVERRUN_AFTER),
        opts.speed,
        opts.http,
        opts.http,
        opts.http,
    );

    // The traffic generator: a producer thread pacing minutes of events.
    let producer: BaseProducer = client_config(&brokers, &config)
        .set("linger.ms", "5")
        .create()?;
    let stop = shutdown.clone();
    let tick = Duration::from_secs_f64(1.0 / opts.speed.max(0.01));
    let duration = opts.duration;
    let generator = std::thread::spawn(move || {
        let mut traffic = Traffic::new(start, 7);
        let mut next = std::time::Instant::now();
        while !stop.is_cancelled() {
            for (client, line) in traffic.next_minute() {
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
                // give the consumer a moment of wall time to catch up, then stop
                std::thread::sleep(Duration::from_secs(2));
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

    #[test]
    fn the_overrunning_partner_is_caught_and_nobody_else() {
        let alerts = run_engine_only(6 * HOUR_MS);
        let firing: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.state == crate::alert::State::Firing)
            .collect();
        assert!(!firing.is_empty());
        assert!(
            firing.iter().all(|a| a.client_id == OVERRUNNER),
            "only the overrunner fires: {firing:#?}"
        );
        let first = firing
            .iter()
            .find(|a| a.alert == crate::alert::AlertKind::OverContract)
            .expect("over_contract");
        let delay =
            crate::time::parse_rfc3339(&first.at).unwrap_or(0) - 1_787_551_200_000 - OVERRUN_AFTER;
        // the contract is per hour: 4x is 1.5x over the hour (and significant) some 20 minutes in
        assert!(
            delay > 0 && delay <= 25 * MINUTE_MS,
            "caught after {delay} ms"
        );
    }
}
