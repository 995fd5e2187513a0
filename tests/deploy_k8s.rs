//! The deployment assets in deploy/kubernetes, deploy/grafana: they must keep working as the
//! service changes, which no other test would notice.
//!
//! - every `overage_*` name a Grafana dashboard or alert rule queries is a metric the service
//!   registers (histograms also expose `_bucket`, `_sum`, `_count`);
//! - dashboards are valid JSON with unique uids and titles, and the links between them and
//!   from the alert rules point at dashboards and datasources that exist;
//! - the config the Kubernetes base ships passes `overage check`;
//! - `scripts/validate-deploy` passes: kustomize renders the base and overlays, the objects
//!   validate against the Kubernetes schemas, and selectors, ports and pod hardening agree.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Files under `dir` (relative to the crate root) ending in one of `exts`, sorted.
fn files(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    fn walk(d: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, exts, out);
            } else if exts.iter().any(|x| p.to_string_lossy().ends_with(x)) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join(dir), exts, &mut out);
    out.sort();
    out
}

/// Identifiers starting with `overage_` (a whole word: not preceded by a word character).
fn overage_identifiers(text: &str) -> BTreeSet<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("overage_") {
        if text[..i].chars().next_back().is_some_and(word) {
            continue;
        }
        let name: String = text[i..].chars().take_while(|&c| word(c)).collect();
        found.insert(name);
    }
    found
}

/// The metric names the service registers: the string literals of the modules that register
/// metrics that are exactly an `overage_…` identifier (so not the unit tests' expected lines,
/// such as `"overage_events_total{outcome=…} 0"`).
fn registered_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for src in [
        "src/service/metrics.rs",
        "src/service/checkpointer.rs",
        "src/sink/metrics.rs",
    ] {
        let text = read(src);
        for (i, _) in text.match_indices("\"overage_") {
            let rest = &text[i + 1..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if rest[name.len()..].starts_with('"') {
                names.insert(name);
            }
        }
    }
    names
}

#[test]
fn grafana_queries_only_use_metrics_the_service_exports() {
    let known = registered_metrics();
    // guards the scan itself: a refactor that moves the names elsewhere must fail loudly here,
    // not make every name below look unknown (or, worse, nothing get checked)
    for m in [
        "overage_events_total",
        "overage_processing_seconds",
        "overage_client_contract_ratio",
        "overage_alert_queue_depth",
        "overage_checkpoint_writes_total",
    ] {
        assert!(
            known.contains(m),
            "{m} not found in the metrics sources: {known:?}"
        );
    }
    let is_known = |name: &str| {
        known.contains(name)
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s).is_some_and(|b| known.contains(b)))
    };
    let mut used = 0;
    let mut unknown = Vec::new();
    for f in files("deploy/grafana", &[".json", ".yaml", ".yml"]) {
        for name in overage_identifiers(&std::fs::read_to_string(&f).unwrap()) {
            used += 1;
            if !is_known(&name) {
                unknown.push(format!("{}: {name}", f.display()));
            }
        }
    }
    assert!(
        used >= 10,
        "only {used} metric names found in deploy/grafana"
    );
    assert!(
        unknown.is_empty(),
        "metrics the service does not export:\n{}\nknown: {known:?}",
        unknown.join("\n")
    );
}

#[test]
fn dashboards_are_valid_json_with_uids_titles_and_working_links() {
    let dashboards = files("deploy/grafana/dashboards", &[".json"]);
    assert!(dashboards.len() >= 2, "{dashboards:?}");
    let mut uids = HashSet::new();
    let mut titles = HashSet::new();
    let mut texts = String::new();
    for f in &dashboards {
        let text = std::fs::read_to_string(f).unwrap();
        let d: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", f.display()));
        let uid = d["uid"].as_str().unwrap_or_default();
        let title = d["title"].as_str().unwrap_or_default();
        // Grafana rejects uids over 40 characters
        assert!(
            !uid.is_empty() && uid.len() <= 40,
            "{}: uid {uid:?}",
            f.display()
        );
        assert!(!title.is_empty(), "{}: no title", f.display());
        assert!(uids.insert(uid.to_string()), "duplicate uid {uid}");
        assert!(titles.insert(title.to_string()), "duplicate title {title}");
        let panels = d["panels"].as_array().expect("panels");
        let mut ids = HashSet::new();
        for p in panels {
            assert!(
                ids.insert(p["id"].as_u64().expect("panel id")),
                "{}: duplicate panel id",
                f.display()
            );
            let kind = p["type"].as_str().unwrap_or_default();
            if kind == "row" || kind == "text" {
                continue;
            }
            // queries go to the dashboard's datasource variable, so it works on any Prometheus
            assert_eq!(
                p["datasource"]["uid"],
                "${datasource}",
                "{}: {}",
                f.display(),
                p["title"]
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(
                !targets.is_empty()
                    && targets
                        .iter()
                        .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())),
                "{}: panel {} has no query",
                f.display(),
                p["title"]
            );
        }
        texts.push_str(&text);
    }
    // the drill-down: chosen by client_id among the clients that have a ratio series
    let client: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/overage-client.json")).unwrap();
    let vars = client["templating"]["list"].as_array().unwrap();
    let v = vars
        .iter()
        .find(|v| v["name"] == "client_id")
        .expect("client_id variable");
    assert!(
        v["definition"]
            .as_str()
            .unwrap()
            .starts_with("label_values(overage_client_contract_ratio"),
        "{v}"
    );
    // links into dashboards (fleet table -> drill-down; alert rules -> dashboards)
    let alerts = read("deploy/grafana/alerting/overage-alerts.yaml");
    let mut linked: Vec<String> = texts
        .split("/d/")
        .skip(1)
        .map(|s| s.split('/').next().unwrap().to_string())
        .collect();
    linked.extend(
        alerts
            .lines()
            .filter_map(|l| l.trim().strip_prefix("__dashboardUid__:"))
            .map(|u| u.trim().to_string()),
    );
    assert!(!linked.is_empty());
    for u in linked {
        assert!(uids.contains(&u), "link to unknown dashboard uid {u}");
    }
    // alert rules query a provisioned datasource (or Grafana's expression engine)
    let datasources = read("deploy/grafana/provisioning/datasources/prometheus.yaml");
    let ds_uids: HashSet<&str> = datasources
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uid:"))
        .map(str::trim)
        .collect();
    for l in alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("datasourceUid:"))
    {
        let u = l.trim();
        assert!(
            u == "__expr__" || ds_uids.contains(u),
            "alert rule datasource {u} is not provisioned"
        );
    }
}

#[test]
fn kubernetes_config_passes_overage_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_overage"))
        .args(["check", "--config"])
        .arg(root().join("deploy/kubernetes/base/overage.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "overage check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // probes and Prometheus reach the pod from outside: the loopback default would not do
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("listen = \"0.0.0.0:9464\""), "{stdout}");
}

#[test]
fn manifests_validate() {
    let out = Command::new("bash")
        .arg(root().join("scripts/validate-deploy"))
        .current_dir(root())
        .output()
        .expect("running scripts/validate-deploy");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "scripts/validate-deploy failed:\n{text}"
    );
    assert!(text.contains("deploy manifests OK"), "{text}");
}

/// Every runbook link anywhere under `deploy/` (rules, Grafana alerts, config) names a page that
/// exists in `deploy/runbooks/`.
#[test]
fn every_runbook_link_has_a_page() {
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut all = vec![];
    files(&deploy, &mut all);
    let mut links = 0;
    for f in all {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for (i, _) in text.match_indices("/runbooks/") {
            let name: String = text[i + "/runbooks/".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty() {
                continue; // a template such as {alert}
            }
            links += 1;
            assert!(
                deploy.join("runbooks").join(format!("{name}.md")).exists(),
                "{} links to a missing runbook `{name}`",
                f.display()
            );
        }
    }
    assert!(links > 10, "found only {links} runbook links");
}
