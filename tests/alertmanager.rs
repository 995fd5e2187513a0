//! The Alertmanager sink against a real Alertmanager (Debian's `prometheus-alertmanager`,
//! 0.25): what a mock would accept is not what matters, what Alertmanager stores and shows to
//! on-call routing is. Each test starts its own Alertmanager on a free loopback port, so tests
//! run in parallel; everything waits by polling with a deadline.

mod util;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use overage::alert::{Alert, State};
use overage::sink::alertmanager::{AlertmanagerConfig, AlertmanagerHandle, AlertmanagerSink};
use overage::time::{parse_rfc3339, wall_now};
use prometheus::proto::MetricType;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(20);

fn binary() -> PathBuf {
    let p = PathBuf::from(
        std::env::var("OVERAGE_ALERTMANAGER")
            .unwrap_or_else(|_| "/usr/bin/prometheus-alertmanager".into()),
    );
    assert!(
        p.exists(),
        "Alertmanager not found at {}: `scripts/test` installs it \
         (apt-get install prometheus-alertmanager), or set OVERAGE_ALERTMANAGER",
        p.display()
    );
    p
}

/// A running Alertmanager; killed on drop.
struct Alertmanager {
    child: Child,
    dir: tempfile::TempDir,
    base: String,
}

impl Alertmanager {
    /// On a port of its own: a free one, another if something took it in between.
    async fn start() -> Alertmanager {
        let mut why = vec![];
        for _ in 0..5 {
            let port = util::free_port();
            match Alertmanager::try_start_on(port).await {
                Ok(am) => return am,
                Err(e) => why.push(e),
            }
        }
        panic!("alertmanager did not start: {why:#?}")
    }

    /// On `port`, chosen beforehand.
    async fn start_on(port: u16) -> Alertmanager {
        Alertmanager::try_start_on(port)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `Err` with its log if it exited (the port was taken) before listening and ready.
    async fn try_start_on(port: u16) -> Result<Alertmanager, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: null-receiver\n  group_wait: 1s\n\
             receivers:\n  - name: null-receiver\n",
        )
        .expect("write config");
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("log file");
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg("--cluster.listen-address=")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start alertmanager");
        let mut am = Alertmanager {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let ready = format!("{}/-/ready", am.base);
        let deadline = Instant::now() + DEADLINE;
        loop {
            // ready, and it is ours that answers (not another test's on a reused port)
            if util::listens(am.child.id(), port) {
                if let Ok(r) = client.get(&ready).send().await {
                    if r.status().is_success() {
                        return Ok(am);
                    }
                }
            }
            if let Ok(Some(status)) = am.child.try_wait() {
                return Err(format!(
                    "alertmanager on port {port} exited with {status}:\n{}",
                    am.log()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager not ready after {DEADLINE:?}:\n{}",
                am.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A counter of Alertmanager's own `/metrics`, summed over the series whose labels
    /// include `labels` (e.g. `status="resolved"`).
    async fn received(&self, labels: &str) -> f64 {
        let url = format!("{}/metrics", self.base);
        let text = reqwest::get(&url)
            .await
            .expect("GET metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| l.starts_with("alertmanager_alerts_received_total{") && l.contains(labels))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    /// `GET /api/v2/alerts` with a query string.
    async fn alerts(&self, query: &str) -> Vec<Value> {
        let url = format!("{}/api/v2/alerts{query}", self.base);
        let r = reqwest::get(&url).await.expect("GET alerts");
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        r.json().await.expect("alerts JSON")
    }

    /// The alert for `client` in `GET /api/v2/alerts{query}`, if listed.
    async fn find(&self, query: &str, client: &str) -> Option<Value> {
        self.alerts(query)
            .await
            .into_iter()
            .find(|a| a["labels"]["client_id"] == client)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `f` until it returns `Some`, or panic after [`DEADLINE`] with `what`.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn transition(state: State, client: &str, at: i64, since: i64) -> Alert {
    Alert::example(state, client, at, since)
}

fn config(urls: Vec<String>) -> AlertmanagerConfig {
    AlertmanagerConfig {
        urls,
        timeout: Duration::from_secs(2),
        ..AlertmanagerConfig::default()
    }
}

struct Sink {
    handle: AlertmanagerHandle,
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
    registry: prometheus::Registry,
}

impl Sink {
    fn start(cfg: AlertmanagerConfig) -> Sink {
        let registry = prometheus::Registry::new();
        let stop = CancellationToken::new();
        let (handle, task) =
            AlertmanagerSink::spawn(cfg, &registry, stop.clone()).expect("sink starts");
        Sink {
            handle,
            task,
            stop,
            registry,
        }
    }

    async fn send(&self, a: Alert) {
        self.handle.send(a).await.expect("queued");
    }

    /// Value of `name{label=value}` (the sink label is implied).
    fn metric(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        for family in self.registry.gather() {
            if family.name() != name {
                continue;
            }
            for m in family.get_metric() {
                let matches = label.is_none_or(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == k && l.value() == v)
                });
                if matches {
                    return match family.get_field_type() {
                        MetricType::COUNTER => m.get_counter().get_value(),
                        _ => m.get_gauge().get_value(),
                    };
                }
            }
        }
        panic!("no metric {name} {label:?}");
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("sink stops within its flush timeout")
            .expect("sink task ends cleanly");
    }
}

fn ms(v: &Value) -> i64 {
    v.as_str()
        .and_then(parse_rfc3339)
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_then_resolved_round_trip() {
    let am = Alertmanager::start().await;
    let mut cfg = config(vec![am.base.clone()]);
    cfg.generator_url = Some("https://status.example/clients/{client_id}".into());
    let sink = Sink::start(cfg);
    let now = wall_now();
    let since = now - 120_000;
    sink.send(transition(State::Firing, "msft-bing", since, since))
        .await;

    let a = eventually("the firing alert in alertmanager", || {
        am.find("", "msft-bing")
    })
    .await;
    assert_eq!(a["labels"]["alertname"], "OverageOverContract");
    assert_eq!(a["labels"]["alert"], "over_contract");
    assert_eq!(a["labels"]["client_id"], "msft-bing");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["plan"], "enterprise");
    assert_eq!(
        a["annotations"]["summary"],
        "msft-bing consumed 3.0x its contracted 120000 units/h over the last 1h"
    );
    assert_eq!(
        a["annotations"]["runbook_url"],
        "https://overage.example/runbooks/over_contract"
    );
    assert!(a["annotations"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("362000")));
    assert_eq!(
        a["generatorURL"],
        "https://status.example/clients/msft-bing"
    );
    assert_eq!(a["status"]["state"], "active");
    assert_eq!(ms(&a["startsAt"]), since);
    // endsAt ≈ now + 4 × resend_interval (1m)
    let ends = ms(&a["endsAt"]);
    assert!(
        (now + 200_000..now + 260_000).contains(&ends),
        "endsAt {} not about 4m ahead",
        a["endsAt"]
    );

    let resolved_at = wall_now() - 1_000;
    sink.send(transition(State::Resolved, "msft-bing", resolved_at, since))
        .await;
    // Alertmanager 0.25 lists no resolved alerts at all: once endsAt is past, the alert
    // disappears from every GET /api/v2/alerts query, active or not.
    eventually("the resolved alert to leave the active list", || async {
        am.find("?active=true&silenced=false&inhibited=false", "msft-bing")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(am.find("", "msft-bing").await.is_none());
    assert!(am.find("?active=false", "msft-bing").await.is_none());

    eventually("nothing pending", || async {
        (sink.metric("overage_alerts_pending_delivery", None) == 0.0).then_some(())
    })
    .await;
    assert!(sink.metric("overage_alert_deliveries_total", Some(("result", "ok"))) >= 2.0);
    assert_eq!(
        sink.metric("overage_alert_deliveries_total", Some(("result", "error"))),
        0.0
    );
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_sent_while_alertmanager_is_down_arrive_once_it_is_up() {
    // down until later: a port chosen now, Alertmanager started on it then
    let port = util::free_port();
    let sink = Sink::start(config(vec![format!("http://127.0.0.1:{port}")]));
    let now = wall_now();
    sink.send(transition(
        State::Firing,
        "early",
        now - 60_000,
        now - 60_000,
    ))
    .await;
    // an episode that fired and resolved during the outage: owed as a resolve only
    sink.send(transition(
        State::Firing,
        "brief",
        now - 50_000,
        now - 50_000,
    ))
    .await;
    sink.send(transition(
        State::Resolved,
        "brief",
        now - 10_000,
        now - 50_000,
    ))
    .await;
    eventually("a refused connection to be counted", || async {
        (sink.metric(
            "overage_alert_delivery_failures_total",
            Some(("reason", "connect")),
        ) >= 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(sink.metric("overage_alerts_pending_delivery", None), 2.0);

    let am = Alertmanager::start_on(port).await;
    let a = eventually("the alert sent during the outage", || am.find("", "early")).await;
    assert_eq!(a["status"]["state"], "active");
    assert_eq!(ms(&a["startsAt"]), now - 60_000);
    eventually("everything owed to be delivered", || async {
        (sink.metric("overage_alerts_pending_delivery", None) == 0.0).then_some(())
    })
    .await;
    // "brief" was owed as a resolve only: Alertmanager received it (it lists no resolved
    // alerts, its counter of received ones shows it), and never a firing one
    assert!(am.find("", "brief").await.is_none());
    assert_eq!(am.received("status=\"resolved\"").await, 1.0);
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_alerts_are_re_sent_and_stay_alive() {
    let am = Alertmanager::start().await;
    let mut cfg = config(vec![am.base.clone()]);
    cfg.resend_interval = Duration::from_secs(1);
    let sink = Sink::start(cfg);
    let now = wall_now();
    sink.send(transition(State::Firing, "steady", now, now))
        .await;

    let first = eventually("the firing alert", || am.find("", "steady")).await;
    let first_end = ms(&first["endsAt"]);
    // endsAt ≈ now + 4 × 1s
    assert!(first_end <= wall_now() + 5_000, "{}", first["endsAt"]);
    let later = eventually("endsAt to move forward with re-sends", || async {
        am.find("", "steady")
            .await
            .filter(|a| ms(&a["endsAt"]) >= first_end + 2_000)
    })
    .await;
    assert_eq!(later["status"]["state"], "active");
    // re-sends keep the original start
    assert_eq!(ms(&later["startsAt"]), now);
    // well past the first endsAt, the alert is still active only because it is re-sent
    let alive_at = first_end + 2_000;
    eventually("the first endsAt to pass", || async {
        (wall_now() > alive_at).then_some(())
    })
    .await;
    let a = am.find("", "steady").await.expect("still listed");
    assert_eq!(a["status"]["state"], "active");
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_alertmanager_times_out_and_the_resolve_arrives_after_it_thaws() {
    let am = Alertmanager::start().await;
    let mut cfg = config(vec![am.base.clone()]);
    cfg.timeout = Duration::from_millis(500);
    let sink = Sink::start(cfg);
    let now = wall_now();
    sink.send(transition(
        State::Firing,
        "frozen",
        now - 60_000,
        now - 60_000,
    ))
    .await;
    eventually("the firing alert", || am.find("", "frozen")).await;

    // SIGSTOP: the kernel still accepts connections, nothing answers (a hung receiver).
    let pid = am.child.id().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    // `kill` returns once the signal is sent, not once every thread has stopped: on a loaded
    // machine Alertmanager answered the next request, and no timeout ever came
    eventually("every thread of alertmanager stopped", || async {
        let stopped = |stat: String| {
            // the state follows the parenthesised command name
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state == "T" || state == "t")
        };
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
            .all(stopped)
            .then_some(())
    })
    .await;
    sink.send(transition(
        State::Resolved,
        "frozen",
        now - 1_000,
        now - 60_000,
    ))
    .await;
    let thawed = async {
        eventually("a timeout to be counted", || async {
            (sink.metric(
                "overage_alert_delivery_failures_total",
                Some(("reason", "timeout")),
            ) >= 1.0)
                .then_some(())
        })
        .await;
        signal("-CONT");
    };
    thawed.await;
    eventually("the resolve delivered after the thaw", || async {
        am.find("", "frozen").await.is_none().then_some(())
    })
    .await;
    eventually("nothing pending", || async {
        (sink.metric("overage_alerts_pending_delivery", None) == 0.0).then_some(())
    })
    .await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_batch_is_counted_and_not_retried_forever() {
    let am = Alertmanager::start().await;
    // a wrong path prefix: Alertmanager answers 404 to every request
    let sink = Sink::start(config(vec![format!("{}/wrong-prefix", am.base)]));
    let now = wall_now();
    sink.send(transition(State::Resolved, "rejected", now, now - 60_000))
        .await;
    eventually("a 4xx to be counted", || async {
        (sink.metric(
            "overage_alert_delivery_failures_total",
            Some(("reason", "http_4xx")),
        ) >= 1.0)
            .then_some(())
    })
    .await;
    eventually("the rejected batch to be given up", || async {
        (sink.metric("overage_alerts_pending_delivery", None) == 0.0).then_some(())
    })
    .await;
    // not retried: the count stays at one
    let settled = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settled {
        assert_eq!(
            sink.metric(
                "overage_alert_delivery_failures_total",
                Some(("reason", "http_4xx"))
            ),
            1.0
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_what_is_queued() {
    let am = Alertmanager::start().await;
    let sink = Sink::start(config(vec![am.base.clone()]));
    let now = wall_now();
    for i in 0..50 {
        sink.send(transition(
            State::Firing,
            &format!("flush-{i}"),
            now - 60_000,
            now - 60_000,
        ))
        .await;
    }
    let handle = sink.handle.clone();
    sink.stop().await;
    assert!(handle
        .send(transition(State::Firing, "late", now, now))
        .await
        .is_err());
    let listed = am.alerts("").await;
    let flushed = listed
        .iter()
        .filter(|a| {
            a["labels"]["client_id"]
                .as_str()
                .is_some_and(|c| c.starts_with("flush-"))
        })
        .count();
    assert_eq!(flushed, 50);
}

#[tokio::test]
async fn the_health_check_asks_every_alertmanager_and_names_the_dead_one_redacted() {
    use overage::sink::AlertSink;
    let am = Alertmanager::start().await;
    let up = AlertmanagerSink::start(config(vec![am.base.clone()]), &prometheus::Registry::new())
        .expect("starts");
    up.health()
        .await
        .expect("a running Alertmanager is healthy");
    let dead = format!("http://ops:hunter2-secret@127.0.0.1:{}", util::free_port());
    let half = AlertmanagerSink::start(
        config(vec![am.base.clone(), dead]),
        &prometheus::Registry::new(),
    )
    .expect("starts");
    let e = half.health().await.expect_err("one URL is dead");
    assert!(
        e.contains("127.0.0.1") && !e.contains(&am.base) && !e.contains("hunter2"),
        "{e}"
    );
    for sink in [up, half] {
        Box::new(sink)
            .flush(tokio::time::Instant::now() + Duration::from_secs(5))
            .await;
    }
}
