//! The monitoring files under deploy/ (Prometheus rules and their unit tests, the
//! PrometheusRule, the Alertmanager example, the runbooks) checked against the real tools and
//! against the service's own metric names and alert labels, so that neither can drift.
//!
//! Needs `promtool` (Debian package `prometheus`) and `amtool` (`prometheus-alertmanager`);
//! scripts/test installs both.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use overage::alert::AlertKind;
use overage::sink::alertmanager::{alertname, AlertmanagerConfig};

const RUNBOOK_BASE: &str = "https://overage.example/runbooks/";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(rel: &str) -> PathBuf {
    root().join("deploy").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Run a tool to completion; a missing binary fails with how to get it, a non-zero exit with
/// the tool's output. Returns stdout.
fn run(tool: &str, package: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{tool}` ({e}): install the Debian package `{package}`, \
                 or run scripts/test, which installs it"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{tool} {}` failed ({}):\n{stdout}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn promtool(args: &[&str], dir: &Path) -> String {
    run("promtool", "prometheus", args, dir)
}

fn amtool(args: &[&str]) -> String {
    run(
        "amtool",
        "prometheus-alertmanager",
        args,
        &deploy("alertmanager"),
    )
}

/// One rule of the plain rules file: its name and its lines (the `- alert:`/`- record:` line
/// up to the next rule or group). Line-based, which is enough for a file written in one style
/// (and keeps serde_yaml out of the dependencies).
struct Rule {
    alert: bool,
    name: String,
    lines: Vec<String>,
}

fn rules(text: &str) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let t = line.trim_start();
        let start = t
            .strip_prefix("- alert:")
            .map(|n| (true, n))
            .or_else(|| t.strip_prefix("- record:").map(|n| (false, n)));
        if let Some((alert, name)) = start {
            out.push(Rule {
                alert,
                name: name.trim().to_owned(),
                lines: Vec::new(),
            });
            open = true;
        } else if t.starts_with("- name:") {
            open = false;
        } else if open && !t.starts_with('#') {
            if let Some(r) = out.last_mut() {
                r.lines.push(t.to_owned());
            }
        }
    }
    out
}

fn plain_rules() -> String {
    read(&deploy("prometheus/overage-rules.yml"))
}

fn alert_names() -> Vec<String> {
    let names: Vec<String> = rules(&plain_rules())
        .into_iter()
        .filter(|r| r.alert)
        .map(|r| r.name)
        .collect();
    assert!(names.len() >= 9, "too few alerts parsed: {names:?}");
    names
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let dir = deploy("prometheus");
    promtool(&["check", "rules", "overage-rules.yml"], &dir);
    let out = promtool(&["test", "rules", "overage-rules.test.yml"], &dir);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// promtool passes a test that names no alert, or expects nothing from an alert that never
/// fires; so every alert must have at least one case where it fires and one where it must not.
#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let tests = read(&deploy("prometheus/overage-rules.test.yml"));
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for name in alert_names() {
        // block style `- alertname: X` followed by `eval_time` and `exp_alerts:`
        let fires = lines
            .windows(3)
            .any(|w| w[0] == format!("- alertname: {name}") && w[2] == "exp_alerts:");
        // flow style `- {alertname: X, eval_time: T}`: no alert expected
        let silent = lines
            .iter()
            .any(|l| l.starts_with(&format!("- {{alertname: {name}, eval_time:")));
        assert!(fires, "{name}: no unit test where it fires");
        assert!(silent, "{name}: no unit test where it stays silent");
    }
}

#[test]
fn every_alert_has_severity_annotations_and_an_existing_runbook() {
    for r in rules(&plain_rules()).into_iter().filter(|r| r.alert) {
        let has = |prefix: &str| r.lines.iter().any(|l| l.starts_with(prefix));
        assert!(
            has("severity: critical") || has("severity: warning"),
            "{}: labels.severity must be warning or critical",
            r.name
        );
        assert!(has("summary: "), "{}: no summary", r.name);
        assert!(has("description: "), "{}: no description", r.name);
        let url = format!("{RUNBOOK_BASE}{}", r.name);
        assert!(
            has(&format!("runbook_url: \"{url}\"")),
            "{}: runbook_url must be {url}",
            r.name
        );
        let page = deploy(&format!("runbooks/{}.md", r.name));
        assert!(page.is_file(), "{}: no runbook {}", r.name, page.display());
    }
}

/// The service's own alerts carry `runbook_url` from its config (default `{alert}` = kind):
/// each kind needs its page, and the page must be about that alertname.
#[test]
fn every_alert_kind_has_a_runbook_at_the_default_runbook_url() {
    let template = AlertmanagerConfig::default().runbook_url;
    assert!(template.starts_with(RUNBOOK_BASE), "{template}");
    let index = read(&deploy("runbooks/README.md"));
    for kind in AlertKind::ALL {
        let url = template.replace("{alert}", kind.as_str());
        let name = url.rsplit('/').next().unwrap_or_default();
        let page = deploy(&format!("runbooks/{name}.md"));
        assert!(page.is_file(), "{kind}: no runbook {}", page.display());
        let text = read(&page);
        assert!(
            text.contains(&alertname(kind)),
            "{}: does not mention {}",
            page.display(),
            alertname(kind)
        );
        assert!(
            text.contains("amtool silence add"),
            "{}: no silence example",
            page.display()
        );
        assert!(
            index.contains(&format!("({name}.md)")),
            "index lacks {name}"
        );
    }
    for name in alert_names() {
        assert!(
            index.contains(&format!("({name}.md)")),
            "index lacks {name}"
        );
    }
}

/// The PrometheusRule's spec must be the plain file indented by two spaces, comments aside;
/// promtool must also accept the extracted spec on its own.
#[test]
fn prometheusrule_has_the_same_rules_as_the_plain_file() {
    let crd = read(&deploy("prometheus/prometheusrule.yaml"));
    assert!(
        crd.lines()
            .any(|l| l == "apiVersion: monitoring.coreos.com/v1"),
        "apiVersion"
    );
    assert!(crd.lines().any(|l| l == "kind: PrometheusRule"), "kind");
    let spec: Vec<&str> = crd.lines().skip_while(|l| *l != "spec:").skip(1).collect();
    assert!(!spec.is_empty(), "no `spec:` in the PrometheusRule");
    let dedented: Vec<String> = spec
        .iter()
        .map(|l| {
            l.strip_prefix("  ")
                .or(if l.trim().is_empty() { Some("") } else { None })
                .unwrap_or_else(|| panic!("spec line not indented by two spaces: {l:?}"))
                .to_owned()
        })
        .collect();
    let meaningful = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .collect()
    };
    let ours = meaningful(dedented.clone());
    let plain = meaningful(plain_rules().lines().map(str::to_owned).collect());
    if ours != plain {
        let at = ours
            .iter()
            .zip(&plain)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(plain.len()));
        panic!(
            "deploy/prometheus/prometheusrule.yaml differs from overage-rules.yml at rule line \
             {at}:\n  PrometheusRule: {:?}\n  plain file:     {:?}\nregenerate it with the \
             command in its header",
            ours.get(at),
            plain.get(at)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yml"), dedented.join("\n") + "\n").unwrap();
    promtool(&["check", "rules", "spec.yml"], dir.path());
}

#[test]
fn alertmanager_config_is_valid_and_routes_by_severity() {
    amtool(&["check-config", "alertmanager.yml"]);
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "alertname=OverageOverContract",
                "alert=over_contract",
                "client_id=msft-bing",
                "severity=critical",
                "plan=enterprise",
            ],
            "pager",
        ),
        (
            &[
                "alertname=OverageOverContract",
                "alert=over_contract",
                "client_id=msft-bing",
                "severity=warning",
                "plan=enterprise",
            ],
            "tickets",
        ),
        (
            &[
                "alertname=OverageCapExceeded",
                "alert=cap_exceeded",
                "client_id=civic-lab",
                "severity=critical",
            ],
            "pager",
        ),
        (
            &[
                "alertname=OverageNotConsuming",
                "severity=critical",
                "job=overage",
            ],
            "pager",
        ),
        (
            &[
                "alertname=OverageHighRejectRate",
                "severity=warning",
                "job=overage",
            ],
            "tickets",
        ),
    ];
    for (labels, receiver) in cases {
        let verify = format!("--verify.receivers={receiver}");
        let mut args = vec![
            "config",
            "routes",
            "test",
            "--config.file=alertmanager.yml",
            verify.as_str(),
        ];
        args.extend_from_slice(labels);
        let out = amtool(&args);
        assert_eq!(out.trim(), receiver, "{labels:?}");
    }
}

/// Kills the Alertmanager started by a test, whatever happens to the test.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// amtool cannot evaluate inhibit rules offline, so run the real Alertmanager with the example
/// config: a client's critical alert suppresses its own warning of the same kind, not another
/// client's, and overage's health alerts (no `alert`, no `client_id`) do not inhibit each other.
#[test]
fn alertmanager_inhibits_a_clients_warning_while_its_critical_fires() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let storage = tempfile::tempdir().unwrap();
    let _am = Child(
        Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                deploy("alertmanager/alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", storage.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=") // no gossip: a lone, isolated instance
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `prometheus-alertmanager` ({e}): install the Debian package \
                     `prometheus-alertmanager`, or run scripts/test, which installs it"
                )
            }),
    );
    let url = format!("--alertmanager.url=http://127.0.0.1:{port}");
    let try_amtool = |args: &[&str]| {
        Command::new("amtool")
            .arg(&url)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while try_amtool(&["alert", "query"]).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "Alertmanager did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let alerts: [&[&str]; 5] = [
        &[
            "alertname=OverageOverContract",
            "alert=over_contract",
            "client_id=msft-bing",
            "severity=critical",
        ],
        &[
            "alertname=OverageOverContract",
            "alert=over_contract",
            "client_id=msft-bing",
            "severity=warning",
        ],
        &[
            "alertname=OverageOverContract",
            "alert=over_contract",
            "client_id=civic-lab",
            "severity=warning",
        ],
        &[
            "alertname=OverageTargetDown",
            "job=overage",
            "severity=critical",
        ],
        &[
            "alertname=OverageHighRejectRate",
            "job=overage",
            "severity=warning",
        ],
    ];
    for labels in alerts {
        let mut args = vec!["alert", "add"];
        args.extend_from_slice(labels);
        assert!(try_amtool(&args).is_some(), "amtool alert add {labels:?}");
    }
    // (alertname, client_id, severity) of the suppressed alerts, once all five are in
    let suppressed = loop {
        let out = try_amtool(&["alert", "query", "--active", "--inhibited", "-o", "json"]);
        let all: Vec<serde_json::Value> = out
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or_default();
        if all.len() == alerts.len() {
            let label = |a: &serde_json::Value, k: &str| {
                a["labels"][k].as_str().unwrap_or_default().to_owned()
            };
            break all
                .iter()
                .filter(|a| a["status"]["state"] == "suppressed")
                .map(|a| {
                    (
                        label(a, "alertname"),
                        label(a, "client_id"),
                        label(a, "severity"),
                    )
                })
                .collect::<Vec<_>>();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {} alerts, got {all:?}",
            alerts.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        suppressed,
        [(
            "OverageOverContract".to_owned(),
            "msft-bing".to_owned(),
            "warning".to_owned()
        )]
    );
}

/// Every `overage_*` name in the rules and their tests is one the service exports: names are
/// taken from the string literals of the files that register metrics; a histogram also
/// has its `_bucket`, `_sum` and `_count` series.
#[test]
fn rules_use_only_metrics_the_service_exports() {
    let mut exported = BTreeSet::new();
    for file in [
        "src/service/metrics.rs",
        "src/service/checkpointer.rs",
        "src/sink/metrics.rs",
    ] {
        let src = read(&root().join(file));
        for name in overage_names(&src, true) {
            exported.insert(name);
        }
        // checkpointer.rs registers its histograms through a helper, `hist("overage_…", …)`
        for call in ["HistogramOpts::new(", "hist("] {
            let mut rest = src.as_str();
            while let Some(i) = rest.find(call) {
                rest = &rest[i..];
                let name = overage_names(rest, true).into_iter().next();
                let name = name.unwrap_or_else(|| panic!("{file}: histogram without a name"));
                for suffix in ["_bucket", "_sum", "_count"] {
                    exported.insert(format!("{name}{suffix}"));
                }
                rest = &rest[1..];
            }
        }
    }
    for must in [
        "overage_events_total",
        "overage_processing_seconds_bucket",
        "overage_alerts_pending_delivery",
        "overage_checkpoint_last_success_timestamp_seconds",
        "overage_checkpoint_write_seconds_bucket",
        "overage_checkpoint_stall_seconds_bucket",
        "overage_checkpoint_restore_seconds_bucket",
    ] {
        assert!(exported.contains(must), "{must} not found in the sources");
    }
    for file in ["overage-rules.yml", "overage-rules.test.yml"] {
        let text = read(&deploy(&format!("prometheus/{file}")));
        let used = overage_names(&text, false);
        assert!(!used.is_empty(), "{file}: no metric found");
        for name in used {
            assert!(
                exported.contains(&name),
                "{file} uses {name}, which the service does not export: {exported:?}"
            );
        }
    }
}

/// `overage_…` identifiers in `text`, not preceded by an identifier character or `:` (so the
/// recorded `overage:…` names are left out). With `quoted`, only ones opening a string literal.
fn overage_names(text: &str, quoted: bool) -> Vec<String> {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("overage_").map(|i| i + from) {
        let before = if i == 0 { b' ' } else { b[i - 1] };
        let end = i + b[i..].iter().take_while(|&&c| ident(c)).count();
        let ok = if quoted {
            before == b'"' && b.get(end) == Some(&b'"')
        } else {
            !ident(before) && before != b':'
        };
        if ok {
            out.push(text[i..end].to_owned());
        }
        from = end.max(i + 1);
    }
    out
}
