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

/// A TCP port on loopback that was free a moment ago (bound and released). Only for a port
/// that must be chosen before anything listens on it (a broker started later on the address a
/// config already names, an Alertmanager that is down until the end of a test): another
/// process may take it in between, so whatever starts there checks that it did
/// ([`wait_listening`]). Everything else starts with [`spawn_on_free_port`], and `overage`
/// itself listens on port 0 and says where ([`Overage::start`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Inodes of the sockets listening on TCP `port` (any address), from `/proc/net/tcp{,6}`.
fn listening_inodes(port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    let mut out = vec![];
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some((_, p)) = f.get(1).and_then(|a| a.rsplit_once(':')) else {
                continue;
            };
            if u16::from_str_radix(p, 16) == Ok(port) && f.get(3) == Some(&LISTEN) {
                out.extend(f.get(9).map(|i| i.to_string()));
            }
        }
    }
    out
}

/// Whether process `pid` holds a socket listening on `port` (Linux: its open files against
/// the kernel's socket table). A port that answers may be somebody else's; this one is ours.
pub fn listens(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|l| {
            let l = l.to_string_lossy();
            inodes.iter().any(|i| l == format!("socket:[{i}]"))
        })
    })
}

/// Wait until `child` listens on `port`; `Err` if it exits first (the port was taken) or
/// `timeout` passes.
pub fn wait_listening(child: &mut Child, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if listens(child.id(), port) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}"));
        }
        if Instant::now() >= deadline {
            return Err(format!("not listening after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start a server that must be told its port up front (tansu, Alertmanager, Prometheus):
/// `start(port)` on a free port, again on another one if the child did not come up listening
/// there (another process took the port in between).
pub fn spawn_on_free_port(what: &str, mut start: impl FnMut(u16) -> Child) -> (u16, Child) {
    const ATTEMPTS: usize = 5;
    let mut why = vec![];
    for _ in 0..ATTEMPTS {
        let port = free_port();
        let mut child = start(port);
        match wait_listening(&mut child, port, Duration::from_secs(30)) {
            Ok(()) => return (port, child),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                why.push(format!("port {port}: {e}"));
            }
        }
    }
    panic!("{what} did not start in {ATTEMPTS} attempts: {why:?}")
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
    /// An in-memory broker on a port of its own.
    pub fn start() -> Broker {
        let (port, child) =
            spawn_on_free_port("tansu", |port| Broker::spawn(port, "memory://tansu/", None));
        Broker { port, child }
    }

    /// An in-memory broker on `port`, chosen beforehand ([`free_port`]).
    pub fn start_on(port: u16) -> Broker {
        Broker::wait(port, Broker::spawn(port, "memory://tansu/", None))
    }

    /// A broker keeping its log in a SQLite file under `dir`: it can be stopped and started
    /// again (same port, same dir) with its topics, messages and group offsets.
    pub fn start_persistent(port: u16, dir: &std::path::Path) -> Broker {
        Broker::wait(port, Broker::spawn(port, "sqlite://tansu.db", Some(dir)))
    }

    fn wait(port: u16, mut child: Child) -> Broker {
        if let Err(e) = wait_listening(&mut child, port, Duration::from_secs(30)) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tansu on the chosen port {port}: {e}");
        }
        Broker { port, child }
    }

    fn spawn(port: u16, storage: &str, dir: Option<&std::path::Path>) -> Child {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(tansu_binary());
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        cmd.args([
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
        .expect("start tansu")
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
        produce(&self.bootstrap(), topic, messages)
    }

    /// Everything on `topic` so far, read from the start by a fresh group.
    pub fn consumer(&self, topic: &str) -> BaseConsumer {
        self.consumer_with(topic, &[])
    }

    /// [`Broker::consumer`] with librdkafka properties of its own.
    pub fn consumer_with(&self, topic: &str, options: &[(&str, &str)]) -> BaseConsumer {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", unique("reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false");
        for (k, v) in options {
            config.set(*k, *v);
        }
        let c: BaseConsumer = config.create().expect("consumer");
        c.subscribe(&[topic]).expect("subscribe");
        c
    }
}

/// Produce `(key, value)` messages to any Kafka-protocol broker (tansu, the mock cluster) and
/// wait until all are acknowledged.
pub fn produce(brokers: &str, topic: &str, messages: &[(String, Vec<u8>)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
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

/// `overage run` with a config, killed on drop unless it exited.
pub struct Overage {
    pub child: Child,
    /// The port its HTTP server listens on (the config says port 0; the process tells).
    pub http: u16,
    _dir: tempfile::TempDir,
}

impl Overage {
    /// Start `overage run --config CONFIG EXTRA...` and wait until its HTTP server listens.
    /// The config's `http.listen` is normally port 0 ([`TestConfig`]): the port comes from
    /// `--http-addr-file`, so tests running side by side never race for one.
    pub fn start(config: &std::path::Path, extra: &[&str]) -> Overage {
        let dir = tempfile::tempdir().unwrap();
        let addr_file = dir.path().join("http-addr");
        let mut child = Command::new(env!("CARGO_BIN_EXE_overage"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--http-addr-file")
            .arg(&addr_file)
            .args(extra)
            .env("RUST_LOG", "overage=info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start overage");
        let addr: std::net::SocketAddr =
            eventually(Duration::from_secs(30), "overage's HTTP address", || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("overage exited with {status} before listening");
                }
                std::fs::read_to_string(&addr_file)
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            });
        Overage {
            child,
            http: addr.port(),
            _dir: dir,
        }
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
    /// An Alertmanager on a port of its own.
    pub fn start() -> Alertmanager {
        let dir = Alertmanager::dir();
        let (port, child) =
            spawn_on_free_port("alertmanager", |port| Alertmanager::spawn(port, &dir));
        Alertmanager::ready(port, child, dir)
    }

    /// An Alertmanager on `port`, chosen beforehand ([`free_port`]).
    pub fn start_on(port: u16) -> Alertmanager {
        let dir = Alertmanager::dir();
        let mut child = Alertmanager::spawn(port, &dir);
        if let Err(e) = wait_listening(&mut child, port, Duration::from_secs(30)) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("alertmanager on the chosen port {port}: {e}");
        }
        Alertmanager::ready(port, child, dir)
    }

    fn dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("alertmanager.yml"),
            "route:\n  receiver: null-receiver\n  group_wait: 1s\nreceivers:\n  - name: null-receiver\n",
        )
        .unwrap();
        dir
    }

    fn spawn(port: u16, dir: &tempfile::TempDir) -> Child {
        let bin = std::env::var("OVERAGE_ALERTMANAGER")
            .unwrap_or_else(|_| "/usr/bin/prometheus-alertmanager".into());
        assert!(
            std::path::Path::new(&bin).exists(),
            "Alertmanager not found at {bin}: `scripts/test` installs it"
        );
        Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg("--cluster.listen-address=")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager")
    }

    fn ready(port: u16, child: Child, dir: tempfile::TempDir) -> Alertmanager {
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

/// The config of an `overage run` under test: the crate's own [`Config`] with its defaults,
/// plus what the test changes, serialized to TOML for the process. One place that knows the
/// format, so a renamed field breaks the build here instead of making eight hand-written
/// skeletons fail at run time. (Tests of config parsing itself keep their literal TOML.)
///
/// ```ignore
/// let path = TestConfig::new(&broker.bootstrap())
///     .contracts(CONTRACTS, dir.path())
///     .past_events()
///     .with(|c| c.state.max_clients = 10_000)
///     .write(dir.path());
/// ```
///
/// [`Config`]: overage::config::Config
#[derive(Debug, Clone)]
pub struct TestConfig {
    pub config: overage::config::Config,
}

impl TestConfig {
    /// Defaults, with `brokers`, a topic and group of its own ([`unique`]), and the HTTP
    /// server on a port the system chooses ([`Overage::start`] learns it).
    pub fn new(brokers: &str) -> TestConfig {
        let mut config = overage::config::Config::default();
        config.kafka.brokers = brokers.to_owned();
        config.kafka.topics = vec![unique("events")];
        config.kafka.group_id = unique("group");
        config.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        TestConfig { config }
    }

    pub fn topic(mut self, topic: &str) -> Self {
        self.config.kafka.topics = vec![topic.to_owned()];
        self
    }

    pub fn group(mut self, group: &str) -> Self {
        self.config.kafka.group_id = group.to_owned();
        self
    }

    pub fn alerts_topic(mut self, topic: &str) -> Self {
        self.config.kafka.alerts_topic = Some(topic.to_owned());
        self
    }

    pub fn dead_letter_topic(mut self, topic: &str) -> Self {
        self.config.kafka.dead_letter_topic = Some(topic.to_owned());
        self
    }

    /// Offsets committed every second (tests check what was committed).
    pub fn commit_every_second(mut self) -> Self {
        self.config.kafka.commit_interval = Duration::from_secs(1);
        self
    }

    /// A librdkafka property (`kafka.options`).
    pub fn option(mut self, key: &str, value: &str) -> Self {
        self.config
            .kafka
            .options
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// New topics and a broker that comes back are noticed within a second.
    pub fn quick_reconnect(self) -> Self {
        self.option("topic.metadata.refresh.interval.ms", "1000")
            .option("reconnect.backoff.max.ms", "1000")
    }

    /// Write `text` as `contracts.toml` in `dir` and use it.
    pub fn contracts(mut self, text: &str, dir: &std::path::Path) -> Self {
        let path = dir.join("contracts.toml");
        std::fs::write(&path, text).unwrap();
        self.config.contracts = Some(path);
        self
    }

    /// Use the contracts file at `path`.
    pub fn contracts_file(mut self, path: &std::path::Path) -> Self {
        self.config.contracts = Some(path.to_owned());
        self
    }

    /// The events are recorded ones (dated 2026): no check against the wall clock.
    pub fn past_events(mut self) -> Self {
        self.config.input.max_future_skew = Duration::ZERO;
        self
    }

    /// Alerts to these Alertmanager URLs too.
    pub fn alertmanager(mut self, url: &str) -> Self {
        self.config.alerts.alertmanager.urls = vec![url.to_owned()];
        self
    }

    /// Any other change.
    pub fn with(mut self, f: impl FnOnce(&mut overage::config::Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// The first (only) events topic.
    pub fn events_topic(&self) -> &str {
        &self.config.kafka.topics[0]
    }

    pub fn group_id(&self) -> &str {
        &self.config.kafka.group_id
    }

    /// Write `dir/overage.toml`; its path.
    pub fn write(&self, dir: &std::path::Path) -> PathBuf {
        self.write_to(&dir.join("overage.toml"))
    }

    /// Write the config to `path`, checked to load back as the same config.
    pub fn write_to(&self, path: &std::path::Path) -> PathBuf {
        let text = toml::to_string(&self.config).expect("the config serializes to TOML");
        let back = overage::config::Config::parse(&text, path)
            .unwrap_or_else(|e| panic!("the written config does not load: {e}\n{text}"));
        assert_eq!(back, self.config, "the config round-trips through TOML");
        std::fs::write(path, text).unwrap();
        path.to_owned()
    }
}
