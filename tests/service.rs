//! `overage run` against a real Kafka-protocol broker (tansu): events in through a consumer
//! group, alerts out on the alerts topic, metrics and API over HTTP, offsets committed on
//! SIGTERM, and a start before the broker exists.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;
use util::{
    drain, events, eventually, free_port, unique, Alertmanager, Broker, Overage, TestConfig,
    CONTRACTS,
};

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    topic: String,
    alerts: String,
    dead: String,
    group: String,
}

fn setup(brokers: &str, change: impl FnOnce(TestConfig) -> TestConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (alerts, dead) = (unique("alerts"), unique("dead"));
    let c = change(
        TestConfig::new(brokers)
            .contracts(CONTRACTS, dir.path())
            .alerts_topic(&alerts)
            .dead_letter_topic(&dead)
            .commit_every_second()
            .quick_reconnect()
            .past_events(),
    );
    Setup {
        config: c.write(dir.path()),
        topic: c.events_topic().to_owned(),
        group: c.group_id().to_owned(),
        dir,
        alerts,
        dead,
    }
}

fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| e.offset().to_raw().unwrap_or(0).max(0))
        .sum()
}

fn alerts_of(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("alerts topic carries alert JSON"))
        .collect()
}

#[test]
fn consumes_alerts_exposes_metrics_and_drains_on_sigterm() {
    let broker = Broker::start();
    let am = Alertmanager::start();
    // alerts go to the real Alertmanager too
    let s = setup(&broker.bootstrap(), |c| c.alertmanager(&am.url()));
    broker.create_topic(&s.topic, 2);
    broker.create_topic(&s.alerts, 1);
    broker.create_topic(&s.dead, 1);
    let events = events();
    broker.produce(&s.topic, &events);

    let mut overage = Overage::start(&s.config, &[]);
    let accepted = "overage_events_total{outcome=\"accepted\"}";
    eventually(Duration::from_secs(60), "all events consumed", || {
        (overage.metric(accepted)? == 6000.0).then_some(())
    });
    assert_eq!(
        overage.metric("overage_events_total{outcome=\"malformed\"}"),
        Some(1.0)
    );
    assert_eq!(
        overage.metric("overage_events_total{outcome=\"missing_client_id\"}"),
        Some(1.0)
    );
    assert_eq!(overage.metric("overage_clients_tracked"), Some(2.0));
    // lag per partition, from librdkafka's statistics (every 5 s): both partitions drained
    eventually(
        Duration::from_secs(30),
        "consumer lag of both partitions at 0",
        || {
            let (_, text) = overage.get("/metrics")?;
            let lags: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("overage_consumer_lag{"))
                .collect();
            (lags.len() == 2 && lags.iter().all(|l| l.ends_with(" 0"))).then_some(())
        },
    );

    // alerts topic: the jump fires and resolves, nothing else fires
    let reader = broker.consumer(&s.alerts);
    let mut seen = vec![];
    let alerts = eventually(
        Duration::from_secs(60),
        "over_contract on the alerts topic",
        || {
            seen.extend(drain(&reader, Duration::from_millis(500)));
            let a = alerts_of(&seen);
            let states: Vec<_> = a
                .iter()
                .filter(|x| x["client_id"] == "jumper" && x["alert"] == "over_contract")
                .map(|x| x["state"].as_str().unwrap_or_default().to_owned())
                .collect();
            (states.contains(&"resolved".to_string())).then_some(a)
        },
    );
    assert!(
        alerts.iter().all(|a| a["client_id"] == "jumper"),
        "{alerts:#?}"
    );
    assert!(alerts
        .iter()
        .any(|a| a["state"] == "firing" && a["labels"]["plan"] == "enterprise"));

    // and Alertmanager has it, with the labels routing relies on
    let in_am = eventually(Duration::from_secs(30), "the alert in Alertmanager", || {
        am.alerts()
            .into_iter()
            .find(|a| a["labels"]["client_id"] == "jumper")
    });
    assert_eq!(in_am["labels"]["alertname"], "OverageOverContract");
    assert_eq!(in_am["labels"]["alert"], "over_contract");
    assert_eq!(in_am["labels"]["severity"], "warning");
    assert_eq!(in_am["labels"]["plan"], "enterprise");
    assert!(in_am["annotations"]["summary"]
        .as_str()
        .is_some_and(|s| s.contains("jumper consumed")));
    assert_eq!(am.alerts().len(), 1, "only the firing alert is active");

    // the three rejected messages went to the dead-letter topic
    let dead = broker.consumer(&s.dead);
    let mut dead_seen = vec![];
    eventually(Duration::from_secs(30), "dead letters", || {
        dead_seen.extend(drain(&dead, Duration::from_millis(300)));
        (dead_seen.len() == 3).then_some(())
    });

    // the API
    let (status, body) = overage.get("/api/v1/clients/jumper").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["client_id"], "jumper");
    assert_eq!(v["usage"]["total_events"], 3000);
    let (status, body) = overage.get("/api/v1/clients?sort=ratio&limit=5").unwrap();
    assert_eq!(status, 200);
    let top: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(top.as_array().map(|a| a.len()), Some(2));
    assert_eq!(overage.get("/api/v1/clients/nobody").unwrap().0, 404);
    assert_eq!(overage.get("/healthz").unwrap().0, 200);
    eventually(Duration::from_secs(30), "ready", || {
        (overage.get("/readyz")?.0 == 200).then_some(())
    });

    // SIGTERM: exit 0, offsets of everything consumed committed
    assert_eq!(overage.terminate(Duration::from_secs(30)), Some(0));
    assert_eq!(
        committed(&broker.bootstrap(), &s.group, &s.topic, 2),
        events.len() as i64
    );
    drop(s.dir);
}

#[test]
fn starts_before_the_broker_and_catches_up() {
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let s = setup(&brokers, |c| c);
    let mut overage = Overage::start(&s.config, &[]);
    let (status, body) = eventually(Duration::from_secs(20), "http up", || {
        overage.get("/readyz")
    });
    assert_eq!(status, 503, "not ready without a broker: {body}");
    assert_eq!(overage.get("/healthz").map(|r| r.0), Some(200));

    let broker = Broker::start_on(port);
    broker.create_topic(&s.topic, 1);
    broker.create_topic(&s.alerts, 1);
    broker.create_topic(&s.dead, 1);
    let events = events();
    broker.produce(&s.topic, &events[..1000]);
    eventually(
        Duration::from_secs(90),
        "events consumed after the broker came up",
        || (overage.metric("overage_events_total{outcome=\"accepted\"}")? == 1000.0).then_some(()),
    );
    eventually(Duration::from_secs(30), "ready", || {
        (overage.get("/readyz")?.0 == 200).then_some(())
    });
    assert_eq!(overage.terminate(Duration::from_secs(30)), Some(0));
    let _ = Path::new(&s.config);
}

#[test]
fn sigterm_exits_within_the_bound_even_when_the_broker_is_gone() {
    let broker = Broker::start();
    let s = setup(&broker.bootstrap(), |c| c);
    broker.create_topic(&s.topic, 1);
    broker.create_topic(&s.alerts, 1);
    broker.create_topic(&s.dead, 1);
    broker.produce(&s.topic, &events()[..500]);
    let mut overage = Overage::start(&s.config, &[]);
    eventually(Duration::from_secs(60), "events consumed", || {
        (overage.metric("overage_events_total{outcome=\"accepted\"}")? == 500.0).then_some(())
    });
    drop(broker);
    // within the 30 s drain bound + 5 s runtime shutdown, with margin: the final commit
    // cannot reach the broker, so the bound ends the drain and the exit says so (1, "shutdown
    // did not finish within 30s"), not a panic (101) and not a hang
    let code = overage.terminate(Duration::from_secs(50));
    assert_eq!(
        code,
        Some(1),
        "overage did not exit by its drain bound after SIGTERM without a broker"
    );
}

/// Eight contracted clients, their events and the last event time.
struct Fleet {
    contracts: String,
    /// Messages keyed by client.
    events: Vec<(String, Vec<u8>)>,
    end: i64,
}

/// Eight contracted clients at their contract's rate for five hours (one call every 6 s),
/// each at 3x for 90 minutes starting at its own time, so partitions fire and resolve at
/// different moments.
fn fleet() -> Fleet {
    let start = 1_787_529_600_000i64; // 2026-08-24T00:00:00Z
    let clients: Vec<String> = (0..8).map(|i| format!("client-{i}")).collect();
    let contracts = clients
        .iter()
        .map(|c| format!("[[contract]]\nclient_id = \"{c}\"\nbaseline = {{ units = 6000, per = \"1h\" }}\n\n"))
        .collect();
    let mut out = vec![];
    for i in 0..3000i64 {
        let ts = start + i * 6_000;
        for (n, c) in clients.iter().enumerate() {
            let from = 300 + 200 * n as i64;
            let units = if (from..from + 900).contains(&i) {
                30
            } else {
                10
            };
            out.push((
                c.clone(),
                format!(r#"{{"ts":{ts},"client_id":"{c}","event_id":"{c}-{i}","units":{units}}}"#)
                    .into_bytes(),
            ));
        }
    }
    Fleet {
        contracts,
        events: out,
        end: start + 2999 * 6_000,
    }
}

/// What one `overage run` made of a topic: the alert transitions that the events alone decide
/// (canonical JSON, sorted), each client's total events, and partitions per worker.
struct Outcome {
    alerts: Vec<String>,
    totals: Vec<i64>,
    loads: Vec<f64>,
}

fn consume_with_threads(
    broker: &Broker,
    dir: &Path,
    topic: &str,
    fleet: &Fleet,
    threads: u16,
) -> Outcome {
    let alerts = unique("alerts");
    broker.create_topic(&alerts, 1);
    let config = TestConfig::new(&broker.bootstrap())
        .contracts(&fleet.contracts, dir)
        .topic(topic)
        .alerts_topic(&alerts)
        .past_events()
        .with(|c| c.kafka.threads = Some(threads))
        .write_to(&dir.join(format!("overage-{threads}.toml")));
    let mut overage = Overage::start(&config, &[]);
    eventually(Duration::from_secs(90), "all events consumed", || {
        let accepted = overage.metric("overage_events_total{outcome=\"accepted\"}")?;
        (accepted == fleet.events.len() as f64).then_some(())
    });
    let loads = (0..threads)
        .map(|w| {
            overage
                .metric(&format!("overage_worker_partitions{{worker=\"{w}\"}}"))
                .expect("a gauge per worker")
        })
        .collect();
    let totals = (0..8)
        .map(|i| {
            let (status, body) = overage.get(&format!("/api/v1/clients/client-{i}")).unwrap();
            assert_eq!(status, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v["usage"]["total_events"].as_i64().expect("total_events")
        })
        .collect();
    // SIGTERM drains the sinks: everything sent is on the topic once it has exited
    assert_eq!(overage.terminate(Duration::from_secs(30)), Some(0));
    let reader = broker.consumer(&alerts);
    let (_, high) = reader
        .fetch_watermarks(&alerts, 0, Duration::from_secs(10))
        .unwrap();
    let mut seen = vec![];
    eventually(Duration::from_secs(30), "the whole alerts topic", || {
        seen.extend(drain(&reader, Duration::from_millis(300)));
        (seen.len() as i64 >= high).then_some(())
    });
    // Transitions after the last watermark come from idle partitions moving on with the wall
    // clock, so how many there are depends on when the test stopped the service.
    let decided = overage::time::format_rfc3339(fleet.end - 2 * 60_000);
    let mut alerts: Vec<String> = alerts_of(&seen)
        .into_iter()
        .filter(|a| a["at"].as_str().is_some_and(|at| *at <= *decided))
        .map(|a| a.to_string())
        .collect();
    alerts.sort();
    Outcome {
        alerts,
        totals,
        loads,
    }
}

#[test]
fn partitions_applied_in_parallel_give_the_alerts_and_totals_of_one_thread() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet();
    let topic = unique("events");
    broker.create_topic(&topic, 4);
    broker.produce(&topic, &fleet.events);

    let one = consume_with_threads(&broker, dir.path(), &topic, &fleet, 1);
    let three = consume_with_threads(&broker, dir.path(), &topic, &fleet, 3);
    assert_eq!(one.loads, [4.0]);
    let mut loads = three.loads.clone();
    loads.sort_by(f64::total_cmp);
    assert_eq!(
        loads,
        [1.0, 1.0, 2.0],
        "the four partitions spread over three workers"
    );
    assert_eq!(one.totals, [3000; 8]);
    assert_eq!(three.totals, one.totals);
    let fired = |o: &Outcome| {
        o.alerts
            .iter()
            .filter(|a| a.contains(r#""state":"firing""#))
            .count()
    };
    assert!(
        fired(&one) >= 8,
        "every client's overage fires: {:#?}",
        one.alerts
    );
    assert_eq!(three.alerts, one.alerts);
}
