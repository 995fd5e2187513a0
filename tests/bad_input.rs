//! Bad input on a real Kafka-protocol broker (tansu): garbage, truncated JSON, oversized
//! messages, wrong-typed fields, empty and null payloads, invalid UTF-8 and batches mixing good
//! and bad events, interleaved with several hundred good events. The service must stay up,
//! count every bad message under its exact reason, copy exactly the rejected messages to the
//! dead-letter topic with their reason, and apply every good event (usage totals exact).
//!
//! (`tests/service.rs` checks the happy path with three junk messages; this is the thorough
//! one for input that is wrong.)

mod util;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use overage::decode::Format;
use rdkafka::config::ClientConfig;
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;
use util::{eventually, unique, Broker, Overage, TestConfig};

/// `input.max_event_bytes` in the test config (small, so the oversized message stays small).
const MAX_EVENT_BYTES: usize = 4096;

const CLIENTS: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];

/// One Kafka message and what must become of it: the outcome of each event it holds, in order
/// ("accepted" or a rejection reason), and the good events' (client, units).
struct Msg {
    key: String,
    payload: Option<Vec<u8>>,
    outcomes: Vec<&'static str>,
    good: Vec<(&'static str, f64)>,
}

impl Msg {
    fn good(client: &'static str, units: f64, payload: String) -> Msg {
        Msg {
            key: client.to_string(),
            payload: Some(payload.into_bytes()),
            outcomes: vec!["accepted"],
            good: vec![(client, units)],
        }
    }

    fn bad(key: String, payload: Option<Vec<u8>>, reason: &'static str) -> Msg {
        Msg {
            key,
            payload,
            outcomes: vec![reason],
            good: vec![],
        }
    }

    /// The reason the service puts in the dead letter's header: the first rejection.
    fn dead_letter_reason(&self) -> Option<&'static str> {
        self.outcomes.iter().copied().find(|o| *o != "accepted")
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a valid instant")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A canonical event padded with an unknown field to exactly `size` bytes.
fn padded_event(ts: i64, client: &str, units: u32, size: usize) -> Vec<u8> {
    let head = format!(r#"{{"ts":{ts},"client_id":"{client}","units":{units},"pad":""#);
    let tail = "\"}";
    let fill = size - head.len() - tail.len();
    let out = format!("{head}{}{tail}", "x".repeat(fill));
    assert_eq!(out.len(), size);
    out.into_bytes()
}

/// Every bad canonical message this test knows, with its exact reason. `ts` is a valid event
/// time (the bad ones must fail for their own reason only).
fn bad_canonical(ts: i64) -> Vec<(Option<Vec<u8>>, &'static str)> {
    let good_line = format!(r#"{{"ts":{ts},"client_id":"alpha","event_id":"x","units":5}}"#);
    let s = |t: &str| Some(t.as_bytes().to_vec());
    vec![
        (s("not json at all"), "malformed"),
        (
            Some(vec![0x00, 0x9f, 0x92, 0x96, 0x7b, 0x0a, 0x7d, 0xc0]),
            "malformed",
        ),
        (s(&good_line[..good_line.len() / 2]), "malformed"),
        (s(&good_line[..good_line.len() - 1]), "malformed"),
        // a perfectly good event, one byte over the limit
        (
            Some(padded_event(ts, "alpha", 5, MAX_EVENT_BYTES + 1)),
            "too_large",
        ),
        (
            s(&format!(r#"{{"ts":{ts},"client_id":"alpha","units":"5"}}"#)),
            "bad_units",
        ),
        (
            s(r#"{"ts":true,"client_id":"alpha","units":5}"#),
            "bad_timestamp",
        ),
        (s(&format!(r#"{{"ts":{ts},"client_id":42}}"#)), "malformed"),
        (Some(vec![]), "malformed"),
        (None, "malformed"), // a tombstone (null value)
        (s(" \n\t "), "malformed"),
        // invalid UTF-8 inside a string, then as the whole message
        (
            Some(
                [
                    format!(r#"{{"ts":{ts},"client_id":"al"#).as_bytes(),
                    &[0xff, 0xfe],
                    br#"pha"}"#,
                ]
                .concat(),
            ),
            "malformed",
        ),
        (Some(vec![0xff, 0xfe, 0xfd]), "malformed"),
        // canonical messages are one object each: an array is malformed as a whole, its
        // good events are not applied
        (
            s(&format!(r#"[{good_line},{{"ts":true}},{good_line}]"#,)),
            "malformed",
        ),
        (s("null"), "malformed"),
        (s(&"[".repeat(1000)), "malformed"),
        (
            s(&format!(
                r#"{{"ts":{ts},"client_id":"alpha","status":"abc"}}"#
            )),
            "malformed",
        ),
        (
            s(&format!(r#"{{"ts":{ts},"units":5}}"#)),
            "missing_client_id",
        ),
        (
            s(&format!(r#"{{"ts":{ts},"client_id":""}}"#)),
            "missing_client_id",
        ),
        (
            s(&format!(
                r#"{{"ts":{ts},"client_id":"{}"}}"#,
                "c".repeat(257)
            )),
            "bad_client_id",
        ),
        (s(r#"{"client_id":"alpha","units":5}"#), "bad_timestamp"),
        (
            s(r#"{"ts":"yesterday","client_id":"alpha"}"#),
            "bad_timestamp",
        ),
        (
            s(&format!(
                r#"{{"ts":{},"client_id":"alpha"}}"#,
                now_ms() + 86_400_000
            )),
            "future_timestamp",
        ),
        (
            s(&format!(r#"{{"ts":{ts},"client_id":"alpha","units":-5}}"#)),
            "bad_units",
        ),
        (
            s(&format!(
                r#"{{"ts":{ts},"client_id":"alpha","units":{{"n":5}}}}"#
            )),
            "bad_units",
        ),
    ]
}

/// Produce messages in order, null values included, and wait until all are acknowledged.
fn produce(broker: &Broker, topic: &str, messages: &[Msg]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for m in messages {
        let mut record = BaseRecord::<str, [u8]>::to(topic).key(m.key.as_str());
        if let Some(v) = &m.payload {
            record = record.payload(v.as_slice());
        }
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    topic: String,
    dead: String,
}

fn setup(brokers: &str, format: Format) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let dead = unique("dead");
    let c = TestConfig::new(brokers)
        .alerts_topic(&unique("alerts"))
        .dead_letter_topic(&dead)
        .commit_every_second()
        .quick_reconnect()
        .with(|c| {
            c.input.format = format;
            c.input.max_event_bytes = MAX_EVENT_BYTES;
            c.input.max_future_skew = Duration::from_secs(300);
        });
    Setup {
        config: c.write(dir.path()),
        topic: c.events_topic().to_owned(),
        _dir: dir,
        dead,
    }
}

/// Runs `messages` through a real broker and service and checks everything the brief of bad
/// input promises: alive, exact counts per outcome, exact dead letters, exact usage.
fn run_and_check(format: Format, messages: Vec<Msg>) {
    let broker = Broker::start();
    let s = setup(&broker.bootstrap(), format);
    broker.create_topic(&s.topic, 2);
    broker.create_topic(&s.dead, 1);
    produce(&broker, &s.topic, &messages);

    // what must come of it
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut truth: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
    for m in &messages {
        for o in &m.outcomes {
            *outcomes.entry(o).or_default() += 1;
        }
        for (client, units) in &m.good {
            let t = truth.entry(client).or_default();
            t.0 += units;
            t.1 += 1;
        }
    }
    let total: u64 = outcomes.values().sum();
    let mut dead_expected: Vec<(String, Vec<u8>, String)> = messages
        .iter()
        .filter_map(|m| {
            let reason = m.dead_letter_reason()?;
            Some((
                m.key.clone(),
                m.payload.clone().unwrap_or_default(),
                reason.to_string(),
            ))
        })
        .collect();
    dead_expected.sort();

    let mut overage = Overage::start(&s.config, &[]);
    let series = |label: &str| format!("overage_events_total{{outcome=\"{label}\"}}");
    // every event of every message has an outcome (the metric lists every label, zeros too)
    let got = eventually(
        Duration::from_secs(90),
        "every message consumed and counted",
        || {
            let (_, text) = overage.get("/metrics")?;
            let counts: BTreeMap<String, u64> = text
                .lines()
                .filter_map(|l| l.strip_prefix("overage_events_total{outcome=\""))
                .filter_map(|l| {
                    let (label, value) = l.split_once("\"} ")?;
                    Some((label.to_string(), value.trim().parse::<f64>().ok()? as u64))
                })
                .collect();
            (counts.values().sum::<u64>() >= total).then_some(counts)
        },
    );
    assert_eq!(
        got.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut labels = overage::engine::Outcome::LABELS.to_vec();
            labels.sort();
            labels
        },
        "every outcome label is exported, zeros included"
    );
    for (label, n) in &got {
        let want = outcomes.get(label.as_str()).copied().unwrap_or(0);
        assert_eq!(*n, want, "{} (all: {got:?})", series(label));
    }

    // still alive and healthy after all of it
    assert!(
        matches!(overage.child.try_wait(), Ok(None)),
        "overage exited on bad input"
    );
    assert_eq!(overage.get("/healthz").map(|r| r.0), Some(200));

    // the dead-letter topic holds exactly the rejected messages, each with its reason
    let n_dead = dead_expected.len() as f64;
    eventually(
        Duration::from_secs(30),
        "every rejected message dead-lettered",
        || (overage.metric("overage_dead_letters_total")? == n_dead).then_some(()),
    );
    assert_eq!(
        overage.metric("overage_kafka_errors_total{kind=\"dead_letter\"}"),
        Some(0.0)
    );
    let reader = broker.consumer(&s.dead);
    let mut dead: Vec<(String, Vec<u8>, String)> = vec![];
    let read = |dead: &mut Vec<(String, Vec<u8>, String)>, wait: Duration| {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let reasons: Vec<String> = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .filter(|h| h.key == "overage-reject")
                            .map(|h| String::from_utf8_lossy(h.value.unwrap_or_default()).into())
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(reasons.len(), 1, "one overage-reject header on {key}");
                dead.push((
                    key,
                    m.payload().unwrap_or_default().to_vec(),
                    reasons[0].clone(),
                ));
            }
        }
    };
    eventually(
        Duration::from_secs(60),
        "the dead letters on the topic",
        || {
            read(&mut dead, Duration::from_millis(300));
            (dead.len() >= dead_expected.len()).then_some(())
        },
    );
    // the service has sent all it will (its counter says so): anything more would be a bug
    read(&mut dead, Duration::from_secs(1));
    dead.sort();
    assert_eq!(dead.len(), dead_expected.len(), "dead letters: {dead:?}");
    for (got, want) in dead.iter().zip(&dead_expected) {
        assert_eq!(got, want);
    }

    // every good event applied, exactly
    for (client, (units, events)) in &truth {
        let (status, body) = overage
            .get(&format!("/api/v1/clients/{client}"))
            .expect("api answers");
        assert_eq!(status, 200, "{client}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("client JSON");
        assert_eq!(
            v["usage"]["total_events"].as_u64(),
            Some(*events),
            "{client} events: {body}"
        );
        assert_eq!(
            v["usage"]["total_units"].as_f64(),
            Some(*units),
            "{client} units: {body}"
        );
    }
    // and nothing was made up from the bad ones
    let (_, body) = overage
        .get("/api/v1/clients?sort=ratio&limit=100")
        .expect("api answers");
    let listed: serde_json::Value = serde_json::from_str(&body).expect("clients JSON");
    let mut ids: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["client_id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, truth.keys().copied().collect::<Vec<_>>(), "{body}");

    assert_eq!(overage.terminate(Duration::from_secs(30)), Some(0));
}

#[test]
fn canonical_bad_input_is_counted_dead_lettered_and_never_hides_good_events() {
    // 480 good events over the last ~80 minutes, in time order, four clients
    let start = now_ms() - 3 * 3_600_000;
    let mut good = vec![];
    for i in 0..480i64 {
        let client = CLIENTS[i as usize % CLIENTS.len()];
        let ts = start + i * 10_000;
        let units = (i % 7) as f64; // zero units are valid
        let line = match i % 5 {
            // epoch ms, RFC 3339, default units, unknown fields, escaped strings
            0 => {
                format!(r#"{{"ts":{ts},"client_id":"{client}","event_id":"e{i}","units":{units}}}"#)
            }
            1 => format!(
                r#"{{"ts":"{}","client_id":"{client}","event_id":"e{i}","units":{units},"product":"search","endpoint":"\/2\/tweets"}}"#,
                rfc3339(ts)
            ),
            2 => {
                good.push(Msg::good(
                    client,
                    1.0,
                    format!(r#"{{"ts":{ts},"client_id":"{client}","event_id":"e{i}"}}"#),
                ));
                continue;
            }
            3 => format!(
                r#"{{"event_id":"e{i}","extra":{{"a":[1,{{"b":null}}]}},"units":{units}.0,"client_id":"{client}","ts":{ts},"status":200,"origin_country":"US","origin_asn":8075}}"#
            ),
            _ => format!(
                r#"  {{ "ts" : {ts} , "client_id" : "{client}" , "event_id" : "e{i}" , "units" : {units} }}  "#
            ),
        };
        good.push(Msg::good(client, units, line));
    }
    // a good event exactly at the size limit is accepted
    let last_ts = start + 480 * 10_000;
    good.push(Msg {
        key: "delta".into(),
        payload: Some(padded_event(last_ts, "delta", 3, MAX_EVENT_BYTES)),
        outcomes: vec!["accepted"],
        good: vec![("delta", 3.0)],
    });

    // every bad case twice, spread between the good events
    let mut bad = vec![];
    for round in 0..2 {
        for (n, (payload, reason)) in bad_canonical(start).into_iter().enumerate() {
            bad.push(Msg::bad(format!("bad-{round}-{n:02}"), payload, reason));
        }
    }
    let every = good.len() / bad.len();
    let mut messages = vec![];
    let mut bad = bad.into_iter();
    for (i, g) in good.into_iter().enumerate() {
        messages.push(g);
        if i % every == every - 1 {
            messages.extend(bad.next());
        }
    }
    messages.extend(bad);
    assert!(messages.iter().filter(|m| m.good.is_empty()).count() >= 40);
    run_and_check(Format::Json, messages);
}

/// A Kong log for `client` (consumer username) at `ts`.
fn kong_log(client: &str, ts: i64, id: &str) -> String {
    format!(
        r#"{{"request":{{"id":"{id}","method":"GET","uri":"/2/tweets/search/recent?q=x","headers":{{"host":"api"}},"size":120}},"response":{{"status":200,"size":4096}},"route":{{"name":"search-recent","paths":["/2/tweets/search/recent"]}},"service":{{"name":"search"}},"consumer":{{"id":"c-{client}","username":"{client}"}},"client_ip":"203.0.113.9","started_at":{ts},"latencies":{{"proxy":12}}}}"#
    )
}

#[test]
fn kong_batches_mixing_good_and_bad_entries_apply_the_good_ones() {
    let start = now_ms() - 2 * 3_600_000;
    // the i-th good log, in time order; its client is the message key (one partition each)
    let good =
        |i: i64, client: &'static str| kong_log(client, start + i * 10_000, &format!("r{i}"));
    let mut messages = vec![];
    let mut i = 0i64;
    for n in 0..300usize {
        let client = CLIENTS[n % CLIENTS.len()];
        messages.push(Msg::good(client, 1.0, good(i, client)));
        i += 1;
        if n % 30 != 29 {
            continue;
        }
        // a batch: good, not an object, no consumer, good, unparseable time
        let anonymous = kong_log("x", start + i * 10_000, "anon")
            .replace(r#""consumer":{"id":"c-x","username":"x"},"#, "");
        let bad_time =
            kong_log(client, 0, "t").replace(r#""started_at":0"#, r#""started_at":"soon""#);
        messages.push(Msg {
            key: client.to_string(),
            payload: Some(
                format!(
                    "[{},17,{anonymous},{},{bad_time}]",
                    good(i, client),
                    good(i + 1, client)
                )
                .into_bytes(),
            ),
            outcomes: vec![
                "accepted",
                "malformed",
                "missing_client_id",
                "accepted",
                "bad_timestamp",
            ],
            good: vec![(client, 1.0), (client, 1.0)],
        });
        i += 2;
    }
    // a batch of good ones only: applied, nothing dead-lettered
    messages.push(Msg {
        key: "alpha".into(),
        payload: Some(format!("[{},\n{}]", good(i, "alpha"), good(i + 1, "alpha")).into_bytes()),
        outcomes: vec!["accepted", "accepted"],
        good: vec![("alpha", 1.0), ("alpha", 1.0)],
    });
    // a batch whose first problem is a future time, then a too long client id
    let future = kong_log("bravo", now_ms() + 86_400_000, "f");
    let long = kong_log(&"c".repeat(300), start, "l");
    messages.push(Msg::bad(
        "future-first".into(),
        Some(format!("[{future},{long}]").into_bytes()),
        "future_timestamp",
    ));
    if let Some(last) = messages.last_mut() {
        last.outcomes.push("bad_client_id");
    }
    let whole = kong_log("alpha", start, "w");
    let mut big = vec![whole.clone()];
    while big.join(",").len() <= MAX_EVENT_BYTES {
        big.push(whole.clone());
    }
    let bad: Vec<(Option<Vec<u8>>, &str)> = vec![
        (Some(b"[]".to_vec()), "malformed"), // an empty batch is counted, not dropped
        (Some(b" [ ] ".to_vec()), "malformed"),
        (Some(b"garbage".to_vec()), "malformed"),
        (
            Some(whole.as_bytes()[..whole.len() / 2].to_vec()),
            "malformed",
        ),
        (Some(vec![]), "malformed"),
        (None, "malformed"),
        (Some(vec![b'{', 0xff, 0xfe, b'}']), "malformed"),
        (
            Some(format!("[{}]", big.join(",")).into_bytes()),
            "too_large",
        ),
        (
            Some(
                // a consumer name that is no value (a number would be a numeric id)
                whole
                    .replace(r#""username":"alpha""#, r#""username":{"first":"al"}"#)
                    .into_bytes(),
            ),
            "malformed",
        ),
    ];
    for (n, (payload, reason)) in bad.into_iter().enumerate() {
        messages.insert(20 + n * 25, Msg::bad(format!("bad-{n}"), payload, reason));
    }
    run_and_check(Format::Kong, messages);
}
