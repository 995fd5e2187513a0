//! The HTML report and the live status pages in a real browser (headless Chromium, Debian's
//! `chromium`; `scripts/test` installs it): screenshots into `target/screenshots/`, the rendered
//! DOM checked for the charts' data marks (the report's charts, the status and client pages'
//! sparklines), the tables' rows and the alert list, and no console errors (a negative control
//! page with a deliberate script error proves the check can fail).

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{events, eventually, unique, Broker, Overage, TestConfig, CONTRACTS};

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!(
        "headless Chromium is needed for this test and was not found on PATH: \
         install Debian's `chromium` package (scripts/test does: need_deb chromium chromium)"
    );
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run headless Chromium on `url` with `extra` flags; (stdout, stderr). Killed after 90 s.
fn chrome(url: &str, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    // read both pipes on threads so a chatty browser cannot block on a full pipe
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut so, &mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut se, &mut s);
        s
    });
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish on {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (t_out.join().unwrap(), t_err.join().unwrap())
}

/// Console messages Chromium logged (`...:CONSOLE(line)] "message", source: ...`).
fn console_messages(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// The rendered DOM, asserting the page logged nothing to the console.
fn dom(url: &str) -> String {
    let (out, err) = chrome(url, &["--dump-dom", "--virtual-time-budget=2000"]);
    let console = console_messages(&err);
    assert!(
        console.is_empty(),
        "console messages on {url}: {console:#?}"
    );
    assert!(out.contains("</html>"), "no DOM for {url}: {err}");
    out
}

fn screenshot(url: &str, name: &str, height: u32) -> PathBuf {
    let path = screenshots().join(name);
    let _ = std::fs::remove_file(&path);
    let (_, err) = chrome(
        url,
        &[
            &format!("--screenshot={}", path.display()),
            &format!("--window-size=1280,{height}"),
        ],
    );
    let png = std::fs::read(&path).unwrap_or_else(|_| panic!("no screenshot of {url}: {err}"));
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    assert!(
        png.len() > 20_000,
        "{name} has content ({} bytes)",
        png.len()
    );
    path
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// The `<svg class="spark...">` elements of a rendered DOM, whole.
fn sparklines(dom: &str) -> Vec<&str> {
    dom.match_indices("<svg class=\"spark")
        .map(|(at, _)| &dom[at..at + dom[at..].find("</svg>").map_or(0, |e| e + 6)])
        .collect()
}

/// Point counts of the `<polyline class="{class}">` elements in `svg`.
fn polyline_points(svg: &str, class: &str) -> Vec<usize> {
    svg.match_indices(&format!("<polyline class=\"{class}\""))
        .map(|(at, _)| {
            let rest = &svg[at..svg[at..].find('>').map_or(svg.len(), |e| at + e)];
            rest.split_once("points=\"")
                .and_then(|(_, p)| p.split_once('"'))
                .map_or(0, |(p, _)| p.split_whitespace().count())
        })
        .collect()
}

/// Asserts a sparkline's usage and contract lines are drawn, each with at least two points,
/// and it says what it shows.
fn assert_drawn(svg: &str) {
    let usage = polyline_points(svg, "usage");
    let reference = polyline_points(svg, "reference");
    assert!(usage.len() == 1 && usage[0] >= 2, "usage line: {svg}");
    assert!(
        reference.len() == 1 && reference[0] >= 2,
        "contract line: {svg}"
    );
    assert!(svg.contains("<title>"), "accessible summary: {svg}");
}

fn events_file(dir: &Path) -> PathBuf {
    let path = dir.join("events.jsonl");
    let mut text = String::new();
    for (_, v) in events() {
        text += &String::from_utf8_lossy(&v);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// The test contracts, with a monthly cap for `jumper` that its pace will run through.
fn contracts(dir: &Path) -> PathBuf {
    let path = dir.join("contracts.toml");
    let text = CONTRACTS.replacen(
        "plan = \"enterprise\"",
        "plan = \"enterprise\"\nmonthly_cap = 1000000",
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_console_check_catches_a_script_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><body><p>control</p><script>definitelyNotDefined();</script></body></html>",
    )
    .unwrap();
    let (out, err) = chrome(
        &format!("file://{}", bad.display()),
        &["--dump-dom", "--virtual-time-budget=2000"],
    );
    assert!(out.contains("control"), "{out}");
    let console = console_messages(&err);
    assert!(
        console.iter().any(|l| l.contains("definitelyNotDefined")),
        "the deliberate error must show: {err}"
    );
}

#[test]
fn the_html_report_renders_its_charts_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let events = events_file(dir.path());
    let contracts = contracts(dir.path());
    // five hours of data: let the cap forecast start after one (the default waits a day)
    let config = dir.path().join("overage.toml");
    std::fs::write(&config, "[detect.cap]\nmin_history = \"1h\"\n").unwrap();
    let html = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_overage"))
        .args(["report", "--events"])
        .arg(&events)
        .arg("--contracts")
        .arg(&contracts)
        .arg("--config")
        .arg(&config)
        .args(["--client", "jumper", "--client", "steady", "--output"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("file://{}", html.display());
    let d = dom(&url);
    // usage charts (one per client): bars with data, and the contract line
    assert_eq!(count(&d, "<svg class=\"chart usage\""), 2, "{d}");
    assert!(count(&d, "<rect class=\"bar\"") >= 10, "{d}");
    assert!(count(&d, "<line class=\"contract\"") >= 2, "{d}");
    // by product and origin
    assert_eq!(count(&d, "<svg class=\"chart totals\""), 4, "{d}");
    // jumper's cap burn-down with its forecast
    assert_eq!(count(&d, "<svg class=\"chart burn\""), 1, "{d}");
    assert!(d.contains("<polyline class=\"remaining\""), "{d}");
    assert!(d.contains("<line class=\"forecast\""), "{d}");
    // the alert list and the per-day table
    assert!(
        count(&d, "<li class=\"alert\"") >= 2,
        "jumper fired and resolved: {d}"
    );
    assert!(d.contains("over_contract"), "{d}");
    assert!(count(&d, "<table class=\"days\"") == 2, "{d}");
    assert!(d.contains("<td>2026-08-24</td>"), "{d}");
    assert!(d.contains("<table class=\"clients\""), "{d}");
    // self-contained: nothing to fetch
    assert!(!d.contains("<link") && !d.contains("<script"), "{d}");
    screenshot(&url, "report.png", 2600);
}

#[test]
fn the_live_status_page_and_client_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    let contracts = contracts(dir.path());
    let broker = Broker::start();
    let topic = unique("events");
    broker.create_topic(&topic, 2);
    broker.produce(&topic, &events());
    let config = TestConfig::new(&broker.bootstrap())
        .topic(&topic)
        .contracts_file(&contracts)
        .past_events()
        .write(dir.path());
    let service = Overage::start(&config, &[]);
    eventually(Duration::from_secs(90), "jumper's alert firing", || {
        let (s, body) = service.get("/api/v1/alerts")?;
        (s == 200 && body.contains("jumper")).then_some(())
    });
    // lag comes from librdkafka's statistics, every 5 s
    eventually(
        Duration::from_secs(30),
        "lag per partition on the page",
        || {
            let (_, body) = service.get("/")?;
            body.contains("<table class=\"lag\"").then_some(())
        },
    );
    let base = format!("http://127.0.0.1:{}", service.http);

    // two views, so the second shows a consumption rate
    let _ = dom(&format!("{base}/"));
    let d = dom(&format!("{base}/"));
    assert!(d.contains("http-equiv=\"refresh\""), "{d}");
    assert!(d.contains("id=\"ready\""), "{d}");
    assert!(d.contains("events/s"), "{d}");
    assert!(
        d.contains("over the last"),
        "a rate on the second view: {d}"
    );
    assert!(d.contains("<table class=\"alerts\""), "{d}");
    assert!(d.contains("href=\"/clients/jumper\""), "{d}");
    assert!(d.contains("<table class=\"top\""), "{d}");
    assert!(
        count(&d, "<tr>") >= 4,
        "alert, top-client and lag rows: {d}"
    );
    assert!(d.contains("<table class=\"lag\""), "{d}");
    // a sparkline per top client (both contracted), five hours of usage against the contract
    let sparks = sparklines(&d);
    assert_eq!(sparks.len(), 2, "{d}");
    for svg in &sparks {
        assert_drawn(svg);
        assert!(svg.contains("by its contract"), "{svg}");
    }
    screenshot(&format!("{base}/"), "status.png", 1100);

    let d = dom(&format!("{base}/clients/jumper"));
    assert!(d.contains("<table class=\"windows\""), "{d}");
    assert!(d.contains("/clients/jumper/report?month=2026-08"), "{d}");
    assert!(d.contains("<table class=\"history\""), "{d}");
    // the larger chart of the same: a dot with its value per hour of data
    let sparks = sparklines(&d);
    assert_eq!(sparks.len(), 1, "{d}");
    assert!(sparks[0].starts_with("<svg class=\"spark large\""), "{d}");
    assert_drawn(sparks[0]);
    assert!(count(sparks[0], "<circle class=\"point\"") >= 2, "{d}");
    screenshot(&format!("{base}/clients/jumper"), "client.png", 1300);

    let url = format!("{base}/clients/jumper/report?month=2026-08");
    let d = dom(&url);
    assert!(count(&d, "<rect class=\"bar\"") >= 5, "{d}");
    assert!(d.contains("<svg class=\"chart burn\""), "{d}");
    assert!(count(&d, "<li class=\"alert\"") >= 1, "{d}");
    screenshot(&url, "client-report.png", 2000);
}
