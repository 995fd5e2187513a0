//! `/readyz` names the real cause when `overage run` cannot consume, against a real
//! Kafka-protocol broker (tansu): a topic that does not exist (a typo in `kafka.topics`) is
//! named, not blamed on the brokers, and clears once the topic exists; brokers that nothing
//! answers for are called unreachable, not a missing topic.

mod util;

use std::path::PathBuf;
use std::time::Duration;

use util::{eventually, free_port, unique, Broker, Overage, CONTRACTS};

/// A config consuming `topic` from `brokers`, with `options` added to `[kafka.options]`.
fn config(dir: &tempfile::TempDir, brokers: &str, topic: &str, options: &str) -> PathBuf {
    std::fs::write(dir.path().join("contracts.toml"), CONTRACTS).unwrap();
    let path = dir.path().join("overage.toml");
    std::fs::write(
        &path,
        format!(
            r#"contracts = "contracts.toml"

[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"

[kafka.options]
"topic.metadata.refresh.interval.ms" = "1000"
"reconnect.backoff.max.ms" = "1000"
{options}
[http]
listen = "127.0.0.1:{port}"
"#,
            group = unique("group"),
            port = free_port()
        ),
    )
    .unwrap();
    path
}

/// `/readyz` as (status, reasons) once the service answers.
fn readyz(overage: &Overage) -> Option<(u16, Vec<String>)> {
    let (status, body) = overage.get("/readyz")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let reasons = v["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Some((status, reasons))
}

/// Reasons that blame the link to the brokers rather than a topic.
const LINK_REASONS: [&str; 4] = [
    "connecting to the Kafka brokers",
    "Kafka brokers unreachable",
    "Kafka authentication failed",
    "Kafka TLS handshake failed",
];

#[test]
fn a_missing_topic_is_named_and_clears_once_created() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("evnets"); // the typo a new user makes
    let cfg = config(&dir, &broker.bootstrap(), &topic, "");
    let overage = Overage::start(&cfg, &[]);

    let missing = format!("Kafka topic \"{topic}\" does not exist");
    let (status, reasons) = eventually(
        Duration::from_secs(90),
        "readiness naming the missing topic",
        || readyz(&overage).filter(|(_, r)| r.contains(&missing)),
    );
    assert_eq!(status, 503);
    for r in LINK_REASONS {
        assert!(
            !reasons.iter().any(|x| x == r),
            "the broker is up, yet: {reasons:?}"
        );
    }

    // the operator creates it: the reason goes, and the service becomes ready
    broker.create_topic(&topic, 1);
    eventually(
        Duration::from_secs(90),
        "ready once the topic exists",
        || readyz(&overage).filter(|(status, _)| *status == 200),
    );
}

#[test]
fn brokers_nothing_answers_for_are_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let brokers = format!("127.0.0.1:{}", free_port());
    let topic = unique("events");
    let cfg = config(&dir, &brokers, &topic, "");
    let overage = Overage::start(&cfg, &[]);

    let (status, reasons) = eventually(
        Duration::from_secs(60),
        "readiness saying the brokers are unreachable",
        || readyz(&overage).filter(|(_, r)| r.iter().any(|x| x == "Kafka brokers unreachable")),
    );
    assert_eq!(status, 503);
    assert!(
        !reasons.iter().any(|r| r.contains("does not exist")),
        "no broker answered, so no topic can be called missing: {reasons:?}"
    );
}
