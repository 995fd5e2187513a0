//! `overage report` against ground truth: a labelled scenario (`overage simulate`, with
//! duplicates, disorder and garbage) replayed with a short allowed lateness so that many events
//! arrive late; every client × day × product number in the JSON and CSV reports must equal the
//! truth exactly, and the units over contract must be the hourly excess of those numbers. Then
//! `--url` against a running service on a real broker must give the same report as `--events`
//! over the same events; the contract is compared over the hours the data covers, not the whole
//! period asked for; and progress shows on a large input.

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use overage::report::Report;
use overage::simulate::{Truth, UsageTruth};
use util::{eventually, unique, Broker, Overage, TestConfig};

fn overage(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_overage"))
        .args(args)
        .output()
        .expect("run overage");
    assert!(
        out.status.success(),
        "overage {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Scenario {
    dir: tempfile::TempDir,
    truth: Truth,
}

impl Scenario {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// Three days of the standard scenario (32 clients), and a config whose allowed lateness (1 s)
/// is far below the stream's disorder (20 s), so that thousands of events are late.
fn scenario(days: &str, seed: &str) -> Scenario {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    overage(&["simulate", "--out", &out, "--days", days, "--seed", seed]);
    std::fs::write(
        dir.path().join("overage.toml"),
        "contracts = \"contracts.toml\"\n[input]\nallowed_lateness = \"1s\"\n",
    )
    .unwrap();
    let truth = Truth::load(&dir.path().join("truth.json")).unwrap();
    Scenario { dir, truth }
}

type Cells = BTreeMap<(String, String, String), (f64, u64)>;

fn truth_cells(t: &Truth) -> Cells {
    let mut m = Cells::new();
    for (client, days) in &t.faults.applied_by_day_product {
        for (day, products) in days {
            for (product, &UsageTruth { units, events }) in products {
                m.insert(
                    (client.clone(), day.clone(), product.clone()),
                    (units, events),
                );
            }
        }
    }
    m
}

fn report_cells(r: &Report) -> Cells {
    let mut m = Cells::new();
    for c in &r.clients {
        for d in &c.days {
            let old = m.insert(
                (c.client_id.clone(), d.day.clone(), d.product.clone()),
                (d.units, d.events),
            );
            assert!(old.is_none(), "one row per client, day and product");
        }
    }
    m
}

/// Units over contract: per hour of the report's hourly series, the units above the contract's
/// hourly rate, summed per day and over the period (an hour under the rate offsets nothing).
fn assert_excess(c: &overage::report::ClientReport) {
    let Some(k) = &c.contract else {
        assert!(c.against_contract.is_none(), "{}", c.client_id);
        return;
    };
    let a = c.against_contract.as_ref().expect("a contracted client");
    let per_hour = k.units * 3_600_000.0 / k.per_ms as f64;
    assert_eq!(a.allowance_per_hour, per_hour);
    let mut days: BTreeMap<String, f64> = BTreeMap::new();
    let mut got: BTreeMap<String, f64> = a
        .days
        .iter()
        .map(|d| (d.day.clone(), d.over_contract))
        .collect();
    for p in &c.hours {
        let day = overage::time::format_rfc3339(p.t)[..10].to_owned();
        if p.hours > 1 {
            // a day past the engine's hourly span brings its own figure (checked against the
            // hourly one in `days_past_the_hourly_span_keep_their_usage_and_excess`)
            let x = got.remove(&day).expect("a day's excess");
            *days.entry(day).or_default() += x;
            continue;
        }
        *days.entry(day.clone()).or_default() += (p.units - per_hour).max(0.0);
        got.entry(day).or_insert(0.0);
    }
    for (day, x) in &days {
        got.entry(day.clone()).or_insert(*x);
    }
    assert_eq!(got.len(), days.len(), "{}", c.client_id);
    for (day, x) in &days {
        assert!(
            (got[day] - x).abs() < 1e-6,
            "{} {day}: {} vs {x}",
            c.client_id,
            got[day]
        );
    }
    let total: f64 = days.values().sum();
    assert!((a.over_contract - total).abs() < 1e-6, "{}", c.client_id);
}

fn assert_same(got: &Cells, want: &Cells, what: &str) {
    assert!(!want.is_empty());
    for (k, v) in want {
        assert_eq!(got.get(k), Some(v), "{what}: {k:?}");
    }
    for k in got.keys() {
        assert!(want.contains_key(k), "{what}: unexpected row {k:?}");
    }
}

#[test]
fn report_equals_the_ground_truth_exactly() {
    let s = scenario("3", "42");
    assert!(s.truth.faults.duplicates > 100, "the input has duplicates");
    let json = s.path("report.json");
    let base = [
        "report",
        "--config",
        &s.arg("overage.toml"),
        "--events",
        &s.arg("events.jsonl"),
    ];
    let mut args = base.to_vec();
    let json_arg = json.display().to_string();
    args.extend(["--format", "json", "--output", &json_arg]);
    overage(&args);
    // Clients split between threads give the same report, byte for byte.
    for threads in ["1", "3"] {
        let other = s.path(&format!("report-{threads}.json"));
        let other_arg = other.display().to_string();
        let mut args = base.to_vec();
        args.extend([
            "--format",
            "json",
            "--threads",
            threads,
            "--output",
            &other_arg,
        ]);
        overage(&args);
        assert!(
            std::fs::read(&other).unwrap() == std::fs::read(&json).unwrap(),
            "--threads {threads} reports differently: {}",
            other.display()
        );
    }
    let r: Report = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        r.input["late"] > 1000,
        "late events in the input: {:?}",
        r.input
    );
    assert!(r.input["duplicate"] > 100, "{:?}", r.input);
    assert_eq!(r.input["duplicate"], s.truth.faults.duplicates);

    let want = truth_cells(&s.truth);
    assert_same(&report_cells(&r), &want, "json");
    // per client: totals, events, and the per-product totals
    assert_eq!(r.clients.len(), s.truth.usage.len());
    for c in &r.clients {
        assert_eq!(c.units, s.truth.usage[&c.client_id], "{}", c.client_id);
        let events = s
            .truth
            .clients
            .iter()
            .find(|t| t.client_id == c.client_id)
            .unwrap()
            .events;
        assert_eq!(c.events, events, "{}", c.client_id);
        for p in &c.by_product {
            let (u, e) = want
                .iter()
                .filter(|((id, _, prod), _)| *id == c.client_id && *prod == p.key)
                .fold((0.0, 0), |(u, e), (_, v)| (u + v.0, e + v.1));
            assert_eq!((p.units, p.events), (u, e), "{} {}", c.client_id, p.key);
        }
        let origins: f64 = c.by_origin.iter().map(|o| o.units).sum();
        assert_eq!(origins, c.units, "origins add up for {}", c.client_id);
        assert_excess(c);
        // per day, against the older per-day truth too
        for (day, units) in &s.truth.usage_by_day[&c.client_id] {
            let got: f64 = c
                .days
                .iter()
                .filter(|d| d.day == *day)
                .map(|d| d.units)
                .sum();
            assert_eq!(got, *units, "{} {day}", c.client_id);
        }
    }

    // CSV: the same numbers, parsed back with a CSV reader
    let mut args = base.to_vec();
    args.extend(["--format", "csv"]);
    let out = overage(&args);
    let mut rd = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(
        rd.headers().unwrap(),
        vec![
            "client_id",
            "day",
            "product",
            "units",
            "events",
            "over_contract"
        ]
    );
    let mut got = Cells::new();
    let mut csv_excess: BTreeMap<String, f64> = BTreeMap::new();
    for rec in rd.records() {
        let rec = rec.unwrap();
        got.insert(
            (rec[0].to_owned(), rec[1].to_owned(), rec[2].to_owned()),
            (rec[3].parse().unwrap(), rec[4].parse().unwrap()),
        );
        if !rec[5].is_empty() {
            *csv_excess.entry(rec[0].to_owned()).or_default() += rec[5].parse::<f64>().unwrap();
        }
    }
    assert_same(&got, &want, "csv");
    // the excess column sums to each contracted client's total (once per day, not per product)
    for c in &r.clients {
        let want = c.against_contract.as_ref().map(|a| a.over_contract);
        assert_eq!(
            csv_excess.get(&c.client_id).copied(),
            want,
            "{}",
            c.client_id
        );
    }

    let over: Vec<&str> = r
        .clients
        .iter()
        .filter(|c| {
            c.against_contract
                .as_ref()
                .is_some_and(|a| a.over_contract > 0.0)
        })
        .map(|c| c.client_id.as_str())
        .collect();
    assert!(
        !over.is_empty(),
        "the scenario's incidents go over contract"
    );

    // one client, one day (a bare-date --to includes the day)
    let (client, day) = want
        .keys()
        .map(|(c, d, _)| (c.clone(), d.clone()))
        .nth(want.len() / 2)
        .unwrap();
    let mut args = base.to_vec();
    args.extend([
        "--client", &client, "--from", &day, "--to", &day, "--format", "json",
    ]);
    let r: Report = serde_json::from_slice(&overage(&args).stdout).unwrap();
    assert_eq!(r.clients.len(), 1);
    let one: Cells = want
        .iter()
        .filter(|((c, d, _), _)| *c == client && *d == day)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_same(&report_cells(&r), &one, "one client, one day");

    // and the HTML page of the whole scenario renders (the browser test looks at it closely)
    let html = s.path("report.html");
    let mut args = base.to_vec();
    let html_arg = html.display().to_string();
    args.extend(["--output", &html_arg]);
    overage(&args);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("svg class=\"chart usage\""));
}

/// Past the engine's hourly span (the last seven UTC days) usage is kept per day: over ten days
/// the report's days and products still equal the ground truth exactly, and each of the first
/// days has the units over contract it had while its hours were kept (a report over those days'
/// events alone).
#[test]
fn days_past_the_hourly_span_keep_their_usage_and_excess() {
    let s = scenario("10", "7");
    let report = |events: &Path, name: &str| -> Report {
        let out = s.path(name);
        overage(&[
            "report",
            "--config",
            &s.arg("overage.toml"),
            "--events",
            &events.display().to_string(),
            "--format",
            "json",
            "--output",
            &out.display().to_string(),
        ]);
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
    };
    let all = report(&s.path("events.jsonl"), "all.json");
    assert_same(&report_cells(&all), &truth_cells(&s.truth), "ten days");
    let folded = |r: &Report| -> usize {
        r.clients
            .iter()
            .map(|c| c.hours.iter().filter(|p| p.hours == 24).count())
            .sum()
    };
    assert!(folded(&all) > 0, "no day past the hourly span");

    // the first four days' events alone: every hour kept
    let text = std::fs::read_to_string(s.path("events.jsonl")).unwrap();
    let ts = |line: &str| -> Option<i64> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let ts = v.get("ts")?;
        ts.as_i64()
            .or_else(|| overage::time::parse_rfc3339(ts.as_str()?))
    };
    let first = text.lines().filter_map(ts).min().unwrap();
    let cutoff = (overage::time::day_of(first) + 4) * overage::time::DAY_MS;
    let early: String = text
        .lines()
        .filter(|l| ts(l).is_some_and(|t| t < cutoff))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(s.path("early.jsonl"), early).unwrap();
    let hourly = report(&s.path("early.jsonl"), "early.json");
    assert_eq!(folded(&hourly), 0);
    let mut compared = 0;
    for c in &hourly.clients {
        let Some(want) = &c.against_contract else {
            continue;
        };
        let other = all.clients.iter().find(|o| o.client_id == c.client_id);
        let got = other.and_then(|o| o.against_contract.as_ref()).unwrap();
        for d in &want.days {
            let g = got.days.iter().find(|g| g.day == d.day).unwrap();
            assert_eq!(g.units, d.units, "{} {}", c.client_id, d.day);
            assert!(
                (g.over_contract - d.over_contract).abs() < 1e-6,
                "{} {}: {} kept as a day, {} by the hour",
                c.client_id,
                d.day,
                g.over_contract,
                d.over_contract
            );
            compared += usize::from(d.over_contract > 0.0);
        }
    }
    assert!(compared > 0, "no day over contract to compare");
}

#[test]
fn bad_periods_and_unknown_clients_are_precise_errors() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("e.jsonl");
    std::fs::write(
        &events,
        "{\"ts\":\"2026-09-10T10:00:00Z\",\"client_id\":\"a\"}\n",
    )
    .unwrap();
    let e = events.display().to_string();
    for (args, needle) in [
        (vec!["--month", "2026-9x"], "--month `2026-9x`"),
        (vec!["--from", "tomorrow"], "--from `tomorrow`"),
        (vec!["--from", "2026-09-10", "--to", "2026-09-01"], "empty"),
        (vec!["--client", "nobody"], "client `nobody` has no events"),
    ] {
        let mut all = vec!["report", "--events", &e];
        all.extend(args);
        let out = Command::new(env!("CARGO_BIN_EXE_overage"))
            .args(&all)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{all:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{all:?}: {err}");
    }
    let help = overage(&["report", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in ["--events", "--url", "--month", "Examples:", "--format"] {
        assert!(help.contains(needle), "{needle} in {help}");
    }
}

/// The events of a scenario file as Kafka messages keyed by client (garbage dropped: a report
/// compares usage, and garbage has no client to key it by).
fn keyed(path: &Path) -> (Vec<(String, Vec<u8>)>, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut msgs = vec![];
    let mut kept = String::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(id) = v.get("client_id").and_then(|c| c.as_str()) else {
            continue;
        };
        if overage::time::parse_rfc3339(v["ts"].as_str().unwrap_or("")).is_none()
            && !v["ts"].is_i64()
        {
            continue;
        }
        msgs.push((id.to_owned(), line.as_bytes().to_vec()));
        kept += line;
        kept.push('\n');
    }
    (msgs, kept)
}

#[test]
fn url_mode_gives_the_same_report_as_events() {
    let s = scenario("1", "7");
    let (msgs, kept) = keyed(&s.path("events.jsonl"));
    std::fs::write(s.path("kept.jsonl"), kept).unwrap();
    let broker = Broker::start();
    let topic = unique("events");
    broker.create_topic(&topic, 2);
    broker.produce(&topic, &msgs);
    let token = "report-test-token-0123456789abcdef";
    std::fs::write(s.path("token"), token).unwrap();
    let config = TestConfig::new(&broker.bootstrap())
        .topic(&topic)
        .contracts_file(&s.path("contracts.toml"))
        .with(|c| c.http.api_token_file = Some(s.path("token")))
        .write_to(&s.path("service.toml"));

    // the reference: the same events through --events, all of them applied
    let r_events: Report = serde_json::from_slice(
        &overage(&[
            "report",
            "--contracts",
            &s.arg("contracts.toml"),
            "--events",
            &s.arg("kept.jsonl"),
            "--format",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    let applied = r_events.input["accepted"] + r_events.input["late"];
    assert!(applied > 10_000);

    let service = Overage::start(&config, &[]);
    eventually(Duration::from_secs(120), "every event applied", || {
        let (_, text) = service.get("/metrics")?;
        let count = |o: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("overage_events_total{{outcome=\"{o}\"}}"))
                        .and_then(|r| r.trim().parse::<u64>().ok())
                })
                .unwrap_or(0)
        };
        (count("accepted") + count("late") == applied).then_some(())
    });
    let url = format!("http://127.0.0.1:{}", service.http);
    let run = |token: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_overage"));
        c.args(["report", "--url", &url, "--format", "json"])
            .env_remove("OVERAGE_API_TOKEN");
        if let Some(t) = token {
            c.env("OVERAGE_API_TOKEN", t);
        }
        c.output().unwrap()
    };
    let denied = run(None);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    let out = run(Some(token));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r_url: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r_url.clients.len(), r_events.clients.len());
    assert_same(
        &report_cells(&r_url),
        &report_cells(&r_events),
        "url vs events",
    );
    assert_same(
        &report_cells(&r_url),
        &truth_cells(&s.truth),
        "url vs truth",
    );
    for (a, b) in r_url.clients.iter().zip(&r_events.clients) {
        assert_eq!(a.client_id, b.client_id);
        assert_eq!((a.units, a.events), (b.units, b.events), "{}", a.client_id);
        assert_eq!(a.by_product, b.by_product, "{}", a.client_id);
        assert_eq!(a.by_origin, b.by_origin, "{}", a.client_id);
        assert_eq!(a.hours, b.hours, "{}", a.client_id);
        assert_eq!(a.contract, b.contract, "{}", a.client_id);
        assert_eq!(a.covered, b.covered, "{}", a.client_id);
        assert_eq!(a.against_contract, b.against_contract, "{}", a.client_id);
        // the service's data ends at its watermark, the file's at its last event: the same
        // burn-down up to the earlier of the two (the forecasts, made at those two minutes, are
        // compared with the detector's in the report's and the service's unit tests)
        if let (Some(x), Some(y)) = (&a.cap, &b.cap) {
            assert_eq!((&x.month, x.cap), (&y.month, y.cap), "{}", a.client_id);
            let n = x.remaining.len().min(y.remaining.len()) - 1;
            assert_eq!(x.remaining[..n], y.remaining[..n], "{}", a.client_id);
        } else {
            assert_eq!(a.cap, b.cap, "{}", a.client_id);
        }
    }
    assert!(
        r_url.clients.iter().any(|c| c
            .against_contract
            .as_ref()
            .is_some_and(|a| a.over_contract > 0.0)),
        "some client is over contract, so the comparison compares something"
    );
}

/// A client whose data starts on the 20th, reported for the whole month: 53 hours of data
/// (2026-09-20T10:00 to 2026-09-22T15:00), 50 units an hour against 100 contracted, but 250 in
/// three hours of the 21st and two products at 60 in one hour of the 22nd.
#[test]
fn the_contract_is_compared_over_the_hours_the_data_covers() {
    let dir = tempfile::tempdir().unwrap();
    let start = overage::time::parse_rfc3339("2026-09-20T10:00:00Z").unwrap();
    let mut events = String::new();
    let mut n = 0;
    let mut event = |h: i64, units: u32, product: &str| {
        n += 1;
        events += &format!(
            "{{\"ts\":{},\"client_id\":\"mid\",\"event_id\":\"e{n}\",\"units\":{units},\"product\":\"{product}\"}}\n",
            start + h * 3_600_000 + 300_000
        );
    };
    for h in 0..53 {
        match h {
            20..=22 => event(h, 250, "a"),
            40 => {
                event(h, 60, "a");
                event(h, 60, "b");
            }
            _ => event(h, 50, "a"),
        }
    }
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("e.jsonl"), events).unwrap();
    std::fs::write(
        path("contracts.toml"),
        "[[contract]]\nclient_id = \"mid\"\nbaseline = { units = 100, per = \"1h\" }\n",
    )
    .unwrap();
    let (e, k) = (path("e.jsonl"), path("contracts.toml"));
    let base = [
        "report",
        "--events",
        &e,
        "--contracts",
        &k,
        "--month",
        "2026-09",
    ];
    let run = |format: &str| {
        let mut args = base.to_vec();
        args.extend(["--format", format]);
        overage(&args).stdout
    };
    let r: Report = serde_json::from_slice(&run("json")).unwrap();
    let c = &r.clients[0];
    assert_eq!(r.from.as_deref(), Some("2026-09-01T00:00:00Z"));
    let cov = c.covered.as_ref().unwrap();
    assert_eq!(
        (cov.from.as_str(), cov.to.as_str(), cov.hours),
        ("2026-09-20T10:00:00Z", "2026-09-22T15:00:00Z", 53)
    );
    let units = 50.0 * 49.0 + 3.0 * 250.0 + 120.0;
    assert_eq!(c.units, units);
    let a = c.against_contract.as_ref().unwrap();
    assert_eq!(a.contracted, 5300.0);
    assert!((a.used_pct - 100.0 * units / 5300.0).abs() < 1e-9, "{a:?}");
    let days: Vec<(&str, f64)> = a
        .days
        .iter()
        .map(|d| (d.day.as_str(), d.over_contract))
        .collect();
    assert_eq!(
        days,
        [
            ("2026-09-20", 0.0),
            ("2026-09-21", 450.0),
            ("2026-09-22", 20.0)
        ]
    );
    assert_eq!(a.over_contract, 470.0);

    let html = String::from_utf8(run("html")).unwrap();
    assert!(html.contains("over the 53 h the data covers"), "{html}");
    assert!(
        html.contains(&format!(">{:.0}%</b>", 100.0 * units / 5300.0)),
        "{html}"
    );
    assert!(html.contains(">470</b>"), "{html}");

    let csv = run("csv");
    let mut rd = csv::Reader::from_reader(csv.as_slice());
    let excess: Vec<String> = rd.records().map(|r| r.unwrap()[5].to_owned()).collect();
    // the 22nd has two products: its 20 once
    assert_eq!(excess, ["0", "450", "20", ""]);
}

#[test]
fn progress_lines_show_on_a_large_input() {
    let s = scenario("1", "3");
    let out = Command::new(env!("CARGO_BIN_EXE_overage"))
        .args([
            "report",
            "--contracts",
            &s.arg("contracts.toml"),
            "--events",
            &s.arg("events.jsonl"),
            "--progress",
            "always",
            "--format",
            "csv",
            "--output",
            &s.arg("r.csv"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!(lines.len() >= 3, "progress lines on stderr: {err}");
    assert!(lines.last().unwrap().contains("(100%)"), "{err}");
    // and none unless asked (stderr is not a terminal here)
    let out = overage(&[
        "report",
        "--contracts",
        &s.arg("contracts.toml"),
        "--events",
        &s.arg("events.jsonl"),
        "--format",
        "csv",
    ]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("progress: "));
}
