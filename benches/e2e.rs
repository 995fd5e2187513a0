//! End-to-end consumption throughput of `overage run` against a bare librdkafka consumer,
//! both reading the same preloaded topic in one run, and the processing latency at half the
//! sustainable rate.
//!
//! Two brokers: tansu, the real Kafka-protocol broker, and librdkafka's in-process mock
//! cluster, which serves a preloaded topic faster than tansu (about 100k msgs/s here) so that
//! overage's own ceiling shows. On the mock cluster the bare consumer and overage at 1 and 2
//! worker threads (`kafka.threads`) run in alternation, several rounds, each timed from its
//! first message to its last.
//!
//! Issue targets: overage's throughput at least 0.9x the bare consumer's, and 1.8x from one
//! worker thread to two; p99 processing latency (message consumed to alert emitted) under 1 s at
//! half the sustainable rate; checkpointing costs at most 10% of the throughput: a run on tansu
//! reads the same topic with `[state.checkpoint] store = <tempdir>, interval = "1s"` (far more
//! often than production's default, to bound the cost from above).
//!
//! Latency as users feel it: from the produce of the event that closes a minute to the alerts
//! that minute's evaluation raised, read back from the alerts topic (tansu), for contracted
//! clients that overrun one after another, their calls stamped with the wall clock.
//!
//! `cargo bench --bench e2e [-- MESSAGES]` (default 400,000 on tansu; 300,000 on the mock
//! cluster, which keeps at most 5 MB per partition).
//! Needs tansu (scripts/test installs it). Under `cargo test` it runs a small smoke version.

#[path = "../tests/util/mod.rs"]
mod util;

mod common;

use std::time::{Duration, Instant};

use overage::decode::decode_canonical;
use overage::time::wall_now;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::Message;
use util::{eventually, free_port, unique, Broker, Overage, TestConfig};

const PARTITIONS: i32 = 4;

/// `(client id, line)`: messages keyed by client, as producers do.
fn keyed(lines: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap_or_default();
            (v["client_id"].as_str().unwrap_or("").to_owned(), l.clone())
        })
        .collect()
}

fn preload(broker: &Broker, topic: &str, lines: &[Vec<u8>]) {
    broker.create_topic(topic, PARTITIONS);
    broker.produce(topic, &keyed(lines));
}

/// A mock cluster holding `lines` on a topic of `partitions` partitions; the cluster and topic.
fn mock_preloaded(
    lines: &[Vec<u8>],
    partitions: i32,
) -> (MockCluster<'static, DefaultProducerContext>, String) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let topic = unique("preloaded");
    cluster
        .create_topic(&topic, partitions, 1)
        .expect("mock topic");
    util::produce(&cluster.bootstrap_servers(), &topic, &keyed(lines));
    // The mock cluster keeps at most 5 MB or 100,000 messages per partition and drops the
    // oldest beyond that: check that every message is still there.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .expect("consumer");
    let kept: i64 = (0..partitions)
        .map(|i| {
            let (low, high) = c
                .fetch_watermarks(&topic, i, Duration::from_secs(10))
                .expect("watermarks");
            high - low
        })
        .sum();
    assert_eq!(
        kept,
        lines.len() as i64,
        "the mock cluster dropped messages: use more partitions"
    );
    (cluster, topic)
}

/// Seconds from the first to the last of `n` messages read by a plain consumer that decodes
/// each into the event struct (what any consumer of these events must do at least).
fn bare(brokers: &str, topic: &str, n: usize) -> f64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("bare"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut seen = 0;
    let mut first = None;
    let mut decoded = 0usize;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < n {
        assert!(
            Instant::now() < deadline,
            "the bare consumer read {seen} of {n}"
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            decoded += m
                .payload()
                .map_or(0, |p| usize::from(decode_canonical(p).is_ok()));
            let _ = c.store_offset_from_message(&m);
            seen += 1;
        }
    }
    assert_eq!(decoded, n, "every preloaded message is an event");
    first.map_or(0.0, |f| f.elapsed().as_secs_f64())
}

/// How an `overage run` of the bench is set up.
#[derive(Clone, Copy, Default)]
struct Run {
    /// Snapshots every second into a temporary directory.
    checkpoints: bool,
    /// `kafka.threads` (default: one per core).
    threads: Option<u16>,
}

/// `overage run`'s config; with `checkpoints`, snapshots every second into that directory.
fn config(
    dir: &std::path::Path,
    brokers: &str,
    topic: &str,
    checkpoints: Option<&std::path::Path>,
    threads: Option<u16>,
) -> std::path::PathBuf {
    let path = dir.join("overage.toml");
    let threads = threads.map_or(String::new(), |t| format!("threads = {t}\n"));
    let mut text = format!(
        "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{}\"\n{threads}\n\
         [input]\nmax_future_skew = \"0s\"\n\n[alerts]\nlog = false\n\n\
         [http]\nlisten = \"127.0.0.1:{}\"\n",
        unique("overage"),
        free_port()
    );
    if let Some(store) = checkpoints {
        text += &format!(
            "\n[state.checkpoint]\nstore = \"{}\"\ninterval = \"1s\"\n",
            store.display()
        );
    }
    std::fs::write(&path, text).expect("config");
    path
}

fn accepted(o: &Overage) -> Option<f64> {
    o.metric("overage_events_total{outcome=\"accepted\"}")
}

/// Events in any outcome (replayed lines come back as duplicates or late).
fn handled(o: &Overage) -> Option<f64> {
    let (_, text) = o.get("/metrics")?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("overage_events_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// What the checkpointing run did: snapshots written, their last size, the longest stall.
struct Checkpoints {
    written: f64,
    last_bytes: f64,
    max_stall: Option<f64>,
}

/// Seconds from the first to the last of `n` events applied by `overage run`; with
/// checkpoints, what they cost.
fn overage(brokers: &str, topic: &str, n: usize, run: Run) -> (f64, Option<Checkpoints>) {
    let checkpoints = run.checkpoints;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("checkpoints");
    let store = checkpoints.then_some(store.as_path());
    let o = Overage::start(&config(dir.path(), brokers, topic, store, run.threads), &[]);
    // Asked every 10 ms (not `eventually`'s 100 ms): a run of a million events on the mock
    // cluster takes a few seconds.
    let watch = |what: &str, timeout: Duration, done: &dyn Fn(f64) -> bool| {
        let deadline = Instant::now() + timeout;
        while !accepted(&o).is_some_and(done) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Instant::now()
    };
    let first = watch("the first event", Duration::from_secs(60), &|a| a > 0.0);
    let last = watch("all events", Duration::from_secs(600), &|a| a >= n as f64);
    let seconds = (last - first).as_secs_f64();
    let ck = checkpoints.then(|| Checkpoints {
        written: o
            .metric("overage_checkpoint_writes_total{result=\"ok\"}")
            .unwrap_or(0.0),
        last_bytes: o.metric("overage_checkpoint_last_bytes").unwrap_or(0.0),
        max_stall: quantile(&o, "overage_checkpoint_stall_seconds", 1.0),
    });
    (seconds, ck)
}

/// p99 of `overage_processing_seconds` from its buckets (upper bound of the bucket).
fn p99(o: &Overage) -> Option<f64> {
    quantile(o, "overage_processing_seconds", 0.99)
}

/// Quantile `q` of histogram `name` from its buckets (upper bound of the bucket).
fn quantile(o: &Overage, name: &str, q: f64) -> Option<f64> {
    let (_, text) = o.get("/metrics")?;
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|r| {
            let (le, rest) = r.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, rest.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    buckets
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map(|(le, _)| *le)
}

/// A producer that sends within a millisecond (latency runs).
fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "1")
        .create()
        .expect("producer")
}

/// Produce at `rate` events/s for `seconds` while overage consumes; p99 processing latency.
fn latency_at(broker: &Broker, rate: f64, seconds: f64, lines: &[Vec<u8>]) -> Option<f64> {
    let topic = unique("latency");
    broker.create_topic(&topic, PARTITIONS);
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Overage::start(
        &config(dir.path(), &broker.bootstrap(), &topic, None, None),
        &[],
    );
    eventually(Duration::from_secs(30), "ready", || {
        (o.get("/readyz")?.0 == 200).then_some(())
    });
    let p = producer(&broker.bootstrap());
    let start = Instant::now();
    let total = (rate * seconds) as usize;
    for (i, l) in lines.iter().cycle().take(total).enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut r = BaseRecord::<(), [u8]>::to(&topic).payload(l.as_slice());
        while let Err((_, back)) = p.send(r) {
            r = back;
            p.poll(Duration::from_millis(1));
        }
        p.poll(Duration::ZERO);
    }
    let _ = p.flush(Duration::from_secs(10));
    eventually(Duration::from_secs(60), "latency run consumed", || {
        (handled(&o)? >= total as f64).then_some(())
    });
    p99(&o)
}

/// Clients overrunning their contracts one after another for `seconds`, calls stamped with the
/// wall clock (shifted back so that a minute of event time ends 3 s in); for every alert read
/// back from the alerts topic, the time from the produce of the first event at or after its
/// minute boundary plus the allowed lateness (the event that lets the minute be evaluated) to
/// its arrival. Returns the latencies in ms, sorted. Both consumers ask the broker to answer a
/// fetch within 10 ms (`fetch.wait.max.ms`; librdkafka's default of 500 ms made the figure
/// 680 ms in a smoke run, against 74 ms with it).
fn alert_latency(broker: &Broker, clients: usize, seconds: f64) -> Vec<f64> {
    const LATENESS_MS: i64 = 1_000;
    let (topic, alerts) = (unique("calls"), unique("alerts"));
    broker.create_topic(&topic, PARTITIONS);
    broker.create_topic(&alerts, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let contracts: String = (0..clients)
        .map(|k| format!("[[contract]]\nclient_id = \"c{k}\"\nbaseline = {{ units = 600, per = \"1h\" }}\n\n"))
        .collect();
    let mut cfg = TestConfig::new(&broker.bootstrap())
        .topic(&topic)
        .alerts_topic(&alerts)
        .contracts(&contracts, dir.path())
        .option("fetch.wait.max.ms", "10");
    cfg.config.input.allowed_lateness = Duration::from_millis(LATENESS_MS as u64);
    cfg.config.alerts.log = false;
    // the pipeline's latency, not the detection delay: no minutes of excess forgiven as a burst
    cfg.config.detect.burst_tolerance = Duration::ZERO;
    let o = Overage::start(&cfg.write(dir.path()), &[]);
    eventually(Duration::from_secs(30), "ready", || {
        (o.get("/readyz")?.0 == 200).then_some(())
    });
    // read on a thread of its own, so that each alert is stamped as it arrives
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let c = broker.consumer_with(&alerts, &[("fetch.wait.max.ms", "10")]);
        let done = done.clone();
        std::thread::spawn(move || {
            let mut got: Vec<(i64, String)> = vec![];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                    let text = String::from_utf8_lossy(m.payload().unwrap_or_default());
                    got.push((wall_now(), text.into_owned()));
                }
            }
            got
        })
    };
    let shift = (wall_now() % 60_000 - 57_000).rem_euclid(60_000);
    let p = producer(&broker.bootstrap());
    let start = Instant::now();
    let every = Duration::from_millis(50);
    let mut tick = 0u32;
    while start.elapsed().as_secs_f64() < seconds {
        std::thread::sleep((start + every * tick).saturating_duration_since(Instant::now()));
        tick += 1;
        let elapsed = start.elapsed().as_secs_f64();
        // client k calls 5 times a second, 100 units a call, from its start: its first minute
        // is over its hourly contract (600) within two seconds
        let started = ((elapsed / (seconds - 5.0).max(1.0)) * clients as f64).ceil() as usize;
        let ts = wall_now() - shift;
        for k in (0..started.min(clients)).filter(|k| (tick as usize + k) % 4 == 0) {
            let line = format!(r#"{{"ts":{ts},"client_id":"c{k}","units":100}}"#);
            let key = format!("c{k}");
            let mut r = BaseRecord::to(&topic)
                .key(key.as_str())
                .payload(line.as_bytes());
            while let Err((_, back)) = p.send(r) {
                r = back;
                p.poll(Duration::from_millis(1));
            }
        }
        p.poll(Duration::ZERO);
    }
    let _ = p.flush(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let received = reader.join().expect("alerts reader");
    let mut latencies: Vec<f64> = received
        .iter()
        .filter_map(|(arrived, text)| {
            let a: overage::alert::Alert = serde_json::from_str(text).ok()?;
            Some((arrived - shift - (a.at + LATENESS_MS)) as f64)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// The mock cluster: the bare consumer and overage at 1 and 2 worker threads in alternation,
/// `rounds` times, on `n` events in 32 partitions (the mock cluster keeps at most 5 MB per
/// partition); every run and the medians.
fn mock_cluster(n: usize, rounds: usize) {
    let lines = common::lines(n, 20_000, 24 * 3600 * 1000, 4);
    let t = Instant::now();
    let (cluster, topic) = mock_preloaded(&lines, 32);
    println!(
        "mock cluster: preloaded {n} events into 32 partitions in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let brokers = cluster.bootstrap_servers();
    let threads = |t| Run {
        threads: Some(t),
        ..Run::default()
    };
    let (mut b, mut one, mut two) = (vec![], vec![], vec![]);
    for round in 1..=rounds {
        b.push(n as f64 / bare(&brokers, &topic, n));
        one.push(n as f64 / overage(&brokers, &topic, n, threads(1)).0);
        two.push(n as f64 / overage(&brokers, &topic, n, threads(2)).0);
        println!(
            "round {round}: bare {:.0}, overage 1 thread {:.0}, 2 threads {:.0} msgs/s",
            b[round - 1],
            one[round - 1],
            two[round - 1]
        );
    }
    let (b, one, two) = (median(b), median(one), median(two));
    println!("mock cluster, medians of {rounds} rounds:");
    println!("bare librdkafka consumer: {b:>10.0} msgs/s");
    println!(
        "overage run, 1 thread:    {one:>10.0} msgs/s ({:.2}x bare)",
        one / b
    );
    println!(
        "overage run, 2 threads:   {two:>10.0} msgs/s ({:.2}x bare, {:.2}x 1 thread; targets 0.9x and 1.8x)",
        two / b,
        two / one
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if benching { 400_000 } else { 20_000 });
    let broker = Broker::start();
    let topic = unique("preloaded");
    // a day of event time, so evaluation and housekeeping run as in production
    let lines = common::lines(n, 20_000, 24 * 3600 * 1000, 3);
    let t = Instant::now();
    preload(&broker, &topic, &lines);
    println!(
        "preloaded {n} events into {PARTITIONS} partitions in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let bare_s = bare(&broker.bootstrap(), &topic, n);
    let (overage_s, _) = overage(&broker.bootstrap(), &topic, n, Run::default());
    let with_checkpoints = Run {
        checkpoints: true,
        ..Run::default()
    };
    let (ckpt_s, ck) = overage(&broker.bootstrap(), &topic, n, with_checkpoints);
    let (bare_rate, overage_rate) = (n as f64 / bare_s, n as f64 / overage_s);
    let ckpt_rate = n as f64 / ckpt_s;
    println!("tansu, {PARTITIONS} partitions:");
    println!("bare librdkafka consumer: {bare_rate:>10.0} msgs/s ({bare_s:.2}s)");
    println!("overage run:              {overage_rate:>10.0} msgs/s ({overage_s:.2}s)");
    println!(
        "ratio:                    {:>10.2} (target >= 0.90)",
        overage_rate / bare_rate
    );
    println!("overage run, checkpoints: {ckpt_rate:>10.0} msgs/s ({ckpt_s:.2}s)");
    println!(
        "ratio to without:         {:>10.2} (target >= 0.90)",
        ckpt_rate / overage_rate
    );
    if let Some(ck) = ck {
        println!(
            "snapshots written:        {:>10.0} (interval 1s, {PARTITIONS} partitions; last {:.0} kB; longest stall <= {})",
            ck.written,
            ck.last_bytes / 1e3,
            ck.max_stall
                .map_or("not measured".into(), |s| format!("{:.1} ms", s * 1e3))
        );
    }
    mock_cluster(
        if benching { 300_000 } else { n },
        if benching { 3 } else { 1 },
    );

    let half = overage_rate / 2.0;
    let seconds = if benching { 10.0 } else { 2.0 };
    match latency_at(&broker, half, seconds, &lines) {
        Some(p) => println!(
            "p99 processing latency at {half:.0} msgs/s (half the sustainable rate): <= {:.0} µs (target < 1 s)",
            p * 1e6
        ),
        None => println!("p99 processing latency: not measured"),
    }
    let (clients, seconds) = if benching { (120, 130.0) } else { (10, 8.0) };
    let ms = alert_latency(&broker, clients, seconds);
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len().saturating_sub(1))];
    if ms.is_empty() {
        println!("produce to alert: no alert read back");
    } else {
        println!(
            "produce to alert on the alerts topic ({} alerts of {clients} clients): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            ms.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    if benching && overage_rate < 0.9 * bare_rate {
        eprintln!("below the throughput target");
        std::process::exit(1);
    }
    if benching && ckpt_rate < 0.9 * overage_rate {
        eprintln!("checkpoints cost more than the target");
        std::process::exit(1);
    }
}
