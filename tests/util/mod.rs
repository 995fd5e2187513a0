//! Test harness for the real parts: a tansu Kafka-protocol broker on a free loopback port,
//! random topic and group names per test, and helpers that poll with deadlines (no sleeps
//! hoping something happened).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;

/// A free TCP port on loopback (bound and released; fine for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    format!("{prefix}-{:08x}", rand::thread_rng().gen::<u32>())
}

/// Poll `f` until it returns `Some`, or panic after `timeout` with `what`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tansu_binary() -> PathBuf {
    if let Ok(p) = std::env::var("OVERAGE_TANSU") {
        return p.into();
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let p = home.join("bin/tansu");
    assert!(
        p.exists(),
        "tansu not found at {}: `scripts/test` installs it (cargo install tansu --locked --version 0.6.0 --features dynostore,libsql)",
        p.display()
    );
    p
}

/// A tansu broker, killed on drop.
pub struct Broker {
    pub port: u16,
    child: Child,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Broker {
        Broker::spawn(port, "memory://tansu/", None)
    }

    /// A broker keeping its log in a SQLite file under `dir`: it can be stopped and started
    /// again (same port, same dir) with its topics, messages and group offsets.
    pub fn start_persistent(port: u16, dir: &std::path::Path) -> Broker {
        Broker::spawn(port, "sqlite://tansu.db", Some(dir))
    }

    fn spawn(port: u16, storage: &str, dir: Option<&std::path::Path>) -> Broker {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(tansu_binary());
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let child = cmd
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", storage])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let b = Broker { port, child };
        eventually(Duration::from_secs(20), "tansu to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("admin client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let res = rt
            .block_on(admin.create_topics([&topic], &AdminOptions::new()))
            .expect("create topics");
        for r in res {
            r.expect("topic created");
        }
    }

    /// Produce `(key, value)` messages and wait until all are acknowledged.
    pub fn produce(&self, topic: &str, messages: &[(String, Vec<u8>)]) {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        for (k, v) in messages {
            let mut record = BaseRecord::to(topic).key(k.as_str()).payload(v.as_slice());
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

    /// Everything on `topic` so far, read from the start by a fresh group.
    pub fn consumer(&self, topic: &str) -> BaseConsumer {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", unique("reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        c.subscribe(&[topic]).expect("subscribe");
        c
    }
}

/// Read what arrives on `c` for up to `wait`, as strings.
pub fn drain(c: &BaseConsumer, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut out = vec![];
    while Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `overage` with a config, killed on drop unless it exited.
pub struct Overage {
    pub child: Child,
    pub http: u16,
}

impl Overage {
    pub fn start(config: &std::path::Path, extra: &[&str]) -> Overage {
        let text = std::fs::read_to_string(config).unwrap();
        let http = text
            .lines()
            .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
            .and_then(|r| r.trim_end_matches('"').parse().ok())
            .expect("config has [http] listen = \"127.0.0.1:PORT\"");
        let child = Command::new(env!("CARGO_BIN_EXE_overage"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(extra)
            .env("RUST_LOG", "overage=info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start overage");
        Overage { child, http }
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http, path)
    }

    /// SIGTERM, then wait (bounded) for the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// A counter or gauge value from `/metrics` (exact series, e.g. `overage_events_total{outcome="accepted"}`).
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric(self.http, series)
    }
}

/// [`Overage::metric`] by HTTP port (for threads that do not own the process).
pub fn metric(port: u16, series: &str) -> Option<f64> {
    let (_, text) = http_get(port, "/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.trim().parse().ok()))
}

impl Drop for Overage {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Minimal HTTP/1.1 GET on loopback: status and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    // chunked bodies: good enough to strip the chunk sizes for assertions on content
    Some((status, body))
}

/// A real Alertmanager (Debian's `prometheus-alertmanager`) on a free loopback port, killed on
/// drop.
pub struct Alertmanager {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    pub fn start() -> Alertmanager {
        Alertmanager::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Alertmanager {
        let bin = std::env::var("OVERAGE_ALERTMANAGER")
            .unwrap_or_else(|_| "/usr/bin/prometheus-alertmanager".into());
        assert!(
            std::path::Path::new(&bin).exists(),
            "Alertmanager not found at {bin}: `scripts/test` installs it"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: null-receiver\n  group_wait: 1s\nreceivers:\n  - name: null-receiver\n",
        )
        .unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg("--cluster.listen-address=")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager {
            port,
            child,
            _dir: dir,
        };
        eventually(Duration::from_secs(20), "alertmanager ready", || {
            (http_get(port, "/-/ready")?.0 == 200).then_some(())
        });
        am
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Active alerts, as JSON.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        http_get(self.port, "/api/v2/alerts")
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Contracts of the small scenario [`events`] plays.
pub const CONTRACTS: &str = r#"
[[contract]]
client_id = "jumper"
plan = "enterprise"
baseline = { units = 6000, per = "1h" }

[[contract]]
client_id = "steady"
baseline = { units = 6000, per = "1h" }
"#;

/// Five hours of two clients at their contract's rate, one call every 6 s; `jumper` goes to 3x
/// from hour two to hour four, and again in the last hour (so it ends firing). Plus three
/// messages that are not events.
pub fn events() -> Vec<(String, Vec<u8>)> {
    let start = 1_787_529_600_000i64; // 2026-08-24T00:00:00Z
    let mut out = vec![];
    for i in 0..3000i64 {
        let ts = start + i * 6_000;
        for client in ["jumper", "steady"] {
            let units = if client == "jumper" && ((600..1200).contains(&i) || i >= 2400) {
                30
            } else {
                10
            };
            out.push((
                client.to_string(),
                format!(r#"{{"ts":{ts},"client_id":"{client}","event_id":"{client}-{i}","units":{units}}}"#)
                    .into_bytes(),
            ));
        }
    }
    for garbage in [
        "not json",
        r#"{"ts":1}"#,
        r#"{"ts":"soon","client_id":"x"}"#,
    ] {
        out.push(("junk".to_string(), garbage.as_bytes().to_vec()));
    }
    out
}

impl Overage {
    /// The process id of the `overage` child (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size of the child in bytes (`VmRSS` in `/proc/<pid>/status`; Linux).
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_bytes(self.pid())
    }
}

/// `VmRSS` of a process, in bytes (Linux).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
