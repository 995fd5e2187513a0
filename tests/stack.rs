//! The monitoring stack as shipped, end to end on loopback: a real Prometheus scrapes
//! `overage run` with `deploy/prometheus/overage-rules.yml` loaded and alerting to a real
//! Alertmanager; the rules evaluate, overage's own alert reaches Alertmanager, and every query
//! of the shipped Grafana dashboards runs against that Prometheus and returns data.

mod util;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use util::{
    events, eventually, spawn_on_free_port, unique, Alertmanager, Broker, Overage, TestConfig,
    CONTRACTS,
};

struct Prometheus {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus(scrape_port: u16, alertmanager: &str) -> Prometheus {
    let bin = std::env::var("OVERAGE_PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    assert!(
        Path::new(&bin).exists(),
        "Prometheus not found at {bin}: `scripts/test` installs it"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am}']\n\
             scrape_configs:\n  - job_name: overage\n    static_configs:\n      - targets: ['127.0.0.1:{scrape_port}']\n",
            rules = root.join("deploy/prometheus/overage-rules.yml").display(),
            am = alertmanager.trim_start_matches("http://"),
        ),
    )
    .unwrap();
    let (port, child) = spawn_on_free_port("prometheus", |port| {
        Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus")
    });
    let p = Prometheus {
        port,
        child,
        _dir: dir,
    };
    eventually(Duration::from_secs(30), "prometheus ready", || {
        get(&format!("http://127.0.0.1:{port}/-/ready")).map(|_| ())
    });
    p
}

/// GET a URL and parse JSON (or return the body as a JSON string).
fn get(url: &str) -> Option<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let r = reqwest::get(url).await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        let text = r.text().await.ok()?;
        Some(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    })
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Run an instant query: `Err` with Prometheus's error, `Ok(result vector)` otherwise.
fn query(p: &Prometheus, q: &str) -> Result<Vec<Value>, String> {
    let url = format!(
        "http://127.0.0.1:{}/api/v1/query?query={}",
        p.port,
        encode(q)
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let v: Value = rt.block_on(async {
        let r = reqwest::get(&url).await.map_err(|e| e.to_string())?;
        r.json::<Value>().await.map_err(|e| e.to_string())
    })?;
    if v["status"] != "success" {
        return Err(format!("{q}: {}", v["error"]));
    }
    let result = &v["data"]["result"];
    Ok(match result {
        Value::Array(a) => a.clone(),
        // scalar results
        other => vec![other.clone()],
    })
}

fn dashboard_queries() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards");
    let mut out = vec![];
    for f in std::fs::read_dir(root).unwrap().flatten() {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap();
        fn walk(p: &Value, title: &str, out: &mut Vec<(String, String)>) {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((format!("{title} / {}", p["title"]), e.to_owned()));
                }
            }
            for q in p["panels"].as_array().into_iter().flatten() {
                walk(q, title, out);
            }
        }
        let title = d["title"].as_str().unwrap_or_default().to_owned();
        walk(&d, &title, &mut out);
    }
    out
}

/// Grafana's variables, as they resolve on one machine without Kubernetes labels.
fn resolve(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("${namespace}", ".*")
        .replace("$namespace", ".*")
        .replace("${client_id}", "jumper")
        .replace("$client_id", "jumper")
}

#[test]
fn prometheus_scrapes_rules_evaluate_alerts_page_and_dashboards_have_data() {
    let broker = Broker::start();
    let am = Alertmanager::start();
    let topic = unique("events");
    broker.create_topic(&topic, 2);
    broker.produce(&topic, &events());

    let dir = tempfile::tempdir().unwrap();
    let config = TestConfig::new(&broker.bootstrap())
        .topic(&topic)
        .contracts(CONTRACTS, dir.path())
        .past_events()
        .alertmanager(&am.url())
        .with(|c| {
            c.state.checkpoint.store = Some(overage::config::StoreLocation::Dir(
                dir.path().join("checkpoints"),
            ));
            c.state.checkpoint.interval = Duration::from_secs(1);
        })
        .write(dir.path());
    let overage = Overage::start(&config, &[]);
    let prom = prometheus(overage.http, &am.url());

    // scraped: Prometheus sees every event (as of `scraped`, its clock, in ms)
    let scraped = eventually(
        Duration::from_secs(60),
        "prometheus to see all events",
        || {
            let r = query(&prom, "sum(overage_events_total{outcome=\"accepted\"})").ok()?;
            let v: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
            let at = r.first()?["value"][0].as_f64()?;
            (v == 6000.0).then_some((at * 1000.0) as i64)
        },
    );

    // the shipped rules are loaded and evaluate without errors
    let rules = eventually(Duration::from_secs(30), "rules evaluated", || {
        let v = get(&format!("http://127.0.0.1:{}/api/v1/rules", prom.port))?;
        let rules: Vec<Value> = v["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        // evaluated since the service was scraped: before, `absent(up)` held and a rule may
        // still be pending from then
        let evaluated = rules.iter().all(|r| {
            r["health"] == "ok"
                && r["lastEvaluation"]
                    .as_str()
                    .and_then(overage::time::parse_rfc3339)
                    .is_some_and(|t| t >= scraped)
        });
        (!rules.is_empty() && evaluated).then_some(rules)
    });
    assert!(rules.len() >= 10, "{} rules", rules.len());
    // a healthy service raises none of its own health alerts: seconds after the start, rules
    // with `for:` could only be pending, so pending counts as raised
    let raised: Vec<&Value> = rules
        .iter()
        .filter(|r| r["type"] == "alerting" && (r["state"] == "pending" || r["state"] == "firing"))
        .collect();
    assert!(
        raised.is_empty(),
        "health alerts pending or firing: {raised:#?}"
    );
    eventually(
        Duration::from_secs(30),
        "a recording rule with data",
        || (!query(&prom, "overage:events:rate5m").ok()?.is_empty()).then_some(()),
    );

    // overage's own alert pages through the real Alertmanager
    let paged = eventually(
        Duration::from_secs(30),
        "the over_contract alert in Alertmanager",
        || {
            am.alerts()
                .into_iter()
                .find(|a| a["labels"]["client_id"] == "jumper")
        },
    );
    assert_eq!(paged["labels"]["alertname"], "OverageOverContract");

    // every dashboard query runs, and returns data (let rates see a few scrapes first)
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{} dashboard queries", queries.len());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut empty = vec![];
        for (panel, expr) in &queries {
            match query(&prom, &resolve(expr)) {
                Ok(r) if r.is_empty() => empty.push(format!("{panel}: {expr}")),
                Ok(_) => {}
                Err(e) => panic!("{panel}: query failed: {e}"),
            }
        }
        if empty.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dashboard queries without data:\n{}",
            empty.join("\n")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(overage);
}
