//! The `overage` binary, black box: arguments in, exit codes and output out.

mod util;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn overage() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_overage"));
    c.env_remove("OVERAGE_CONFIG");
    c
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const CONTRACTS: &str = r#"[[contract]]
client_id = "msft-bing"
plan = "enterprise"
baseline = { units = 6000, per = "1h" }
products = ["search"]
"#;

/// Five hours of one call every 6 s at the contract's rate, with hour 2 to 3 at 3x.
fn events() -> String {
    let start = 1_787_529_600_000i64; // 2026-08-24T00:00:00Z
    let mut s = String::new();
    for i in 0..3000i64 {
        let ts = start + i * 6_000;
        let units = if (1200..1800).contains(&i) { 30 } else { 10 };
        s += &format!(
            "{{\"ts\":{ts},\"client_id\":\"msft-bing\",\"event_id\":\"e{i}\",\"units\":{units},\"product\":\"search\"}}\n"
        );
    }
    s += "this line is not json\n";
    s
}

fn stdout_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect()
}

#[test]
fn replay_prints_alert_json_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let contracts = write(dir.path(), "contracts.toml", CONTRACTS);
    let input = write(dir.path(), "events.jsonl", &events());
    let summary = dir.path().join("summary.json");
    let o = overage()
        .arg("replay")
        .arg("--contracts")
        .arg(&contracts)
        .arg("--summary-json")
        .arg(&summary)
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let alerts = stdout_lines(&o);
    let states: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| (a["alert"].as_str().unwrap(), a["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        vec![("over_contract", "firing"), ("over_contract", "resolved")]
    );
    assert_eq!(alerts[0]["client_id"], "msft-bing");
    assert_eq!(alerts[0]["labels"]["plan"], "enterprise");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("malformed 1"), "{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
    assert_eq!(s["events"]["accepted"], 3000);
    assert_eq!(s["events"]["malformed"], 1);
    assert_eq!(s["usage"]["msft-bing"], 2400.0 * 10.0 + 600.0 * 30.0);
}

#[test]
fn replay_reads_gzip_and_stdin_alike() {
    let dir = tempfile::tempdir().unwrap();
    let contracts = write(dir.path(), "contracts.toml", CONTRACTS);
    let gz = dir.path().join("events.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(events().as_bytes()).unwrap();
    enc.finish().unwrap();
    let from_gz = overage()
        .args(["replay", "--contracts"])
        .arg(&contracts)
        .arg(&gz)
        .output()
        .unwrap();
    assert!(from_gz.status.success());

    let mut child = overage()
        .args(["replay", "--contracts"])
        .arg(&contracts)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(events().as_bytes())
        .unwrap();
    let from_stdin = child.wait_with_output().unwrap();
    assert!(from_stdin.status.success());
    assert_eq!(stdout_lines(&from_gz).len(), 2);
    assert_eq!(from_gz.stdout, from_stdin.stdout);
}

#[test]
fn check_accepts_good_files_and_prints_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let contracts = write(dir.path(), "contracts.toml", CONTRACTS);
    let config = write(
        dir.path(),
        "overage.toml",
        "contracts = \"contracts.toml\"\n[detect]\nalert_at = 1.4\n",
    );
    let o = overage()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("1 contracts"), "{out}");
    assert!(
        out.contains("msft-bing") && out.contains("warn at 1.4x"),
        "{out}"
    );
    assert!(out.contains("alert_at = 1.4"), "{out}");
    let _ = contracts;
}

#[test]
fn check_rejects_a_broken_contract_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let broken = CONTRACTS.replace("units = 6000", "units = -5");
    let contracts = write(dir.path(), "contracts.toml", &broken);
    let o = overage()
        .args(["check", "--contracts"])
        .arg(&contracts)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("contracts.toml:4:"), "{err}");
    assert!(err.contains("baseline.units"), "{err}");
}

#[test]
fn check_rejects_an_unknown_config_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "overage.toml", "[input]\nlateness = \"1m\"\n");
    let o = overage()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("overage.toml:2:") && err.contains("lateness"),
        "{err}"
    );
}

#[test]
fn replay_fails_clearly_on_a_missing_input() {
    let o = overage()
        .args(["replay", "/nonexistent/events.jsonl"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/events.jsonl"), "{err}");
    // and says why once, not once per layer of the error
    assert_eq!(err.matches("no such file").count(), 1, "{err}");
    let o = overage()
        .args(["replay", "--contracts", "/nonexistent/c.toml", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.trim_end(),
        "error: /nonexistent/c.toml: cannot read: No such file or directory (os error 2)"
    );
}

#[test]
fn demo_runs_kafka_to_alert_and_stops_cleanly() {
    // Through the in-process Kafka cluster and the real service, time compressed.
    let out = run_demo(&[]);
    assert!(out.contains("an in-process Kafka cluster"), "{out}");
}

/// Event-time minutes per second the demo tests run at: the story (some 160 minutes of event
/// time) in about 20 s.
const DEMO_SPEED: f64 = 8.0;

/// Run the demo at [`DEMO_SPEED`] for 10 minutes of event time past the end of its story, with
/// `extra` arguments, and check what it must show: the overrunning partner warned, then paged,
/// then both resolved, in that order, by the event time the banner announces and within that
/// much wall time at this speed (plus start-up); nobody else firing; a clean stop. Returns its
/// stdout.
fn run_demo(extra: &[&str]) -> String {
    use overage::demo::{OVERRUNNER, STORY_ENDS_BY};
    use overage::time::{parse_rfc3339, MINUTE_MS};
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    let duration = format!("{}m", STORY_ENDS_BY / MINUTE_MS + 10);
    let speed = DEMO_SPEED.to_string();
    let began = Instant::now();
    let mut child = overage()
        .env_remove("OVERAGE_API_TOKEN")
        .arg("demo")
        .args(extra)
        .args(["--speed", &speed, "--duration", &duration])
        .args(["--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    // each line with when it was printed
    let lines: Vec<(Duration, String)> = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .map(|l| (began.elapsed(), l))
        .collect();
    let status = child.wait().unwrap();
    let out: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let err = stderr.join().unwrap();
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("demo stopped"), "{out}");
    // the banner says what will happen, and when event time starts
    assert!(
        out.contains(&format!("{OVERRUNNER} goes to 4x its contract")),
        "{out}"
    );
    assert!(out.contains("both RESOLVED by"), "{out}");
    let start = out
        .split_once("event time from ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(parse_rfc3339)
        .expect("the banner gives the event-time start");

    // alert lines start with their event time (the banner's lines do not)
    let is_alert = |l: &str| {
        l.split_whitespace()
            .next()
            .and_then(parse_rfc3339)
            .is_some()
    };
    let firing: Vec<&str> = out
        .lines()
        .filter(|l| is_alert(l) && l.contains(" FIRING "))
        .collect();
    assert!(!firing.is_empty(), "{out}");
    assert!(firing.iter().all(|l| l.contains(OVERRUNNER)), "{out}");
    // each page says what drove it and how much is over
    for l in &firing {
        assert!(
            l.contains("units over contract since")
                && l.contains("of the excess is product \"firehose\""),
            "{l}"
        );
    }
    let story: Vec<(&Duration, &str)> = lines
        .iter()
        .filter(|(_, l)| is_alert(l) && l.contains(&format!("over_contract {OVERRUNNER}")))
        .map(|(t, l)| (t, l.as_str()))
        .collect();
    let shape: Vec<&str> = story
        .iter()
        .map(|(_, l)| {
            let state = if l.contains("FIRING") {
                "FIRING"
            } else {
                "RESOLVED"
            };
            let severity = if l.contains("[critical]") {
                "critical"
            } else {
                "warning"
            };
            match (state, severity) {
                ("FIRING", "warning") => "warning fires",
                ("FIRING", _) => "critical fires",
                (_, "warning") => "warning resolves",
                _ => "critical resolves",
            }
        })
        .collect();
    assert_eq!(
        &shape[..2],
        ["warning fires", "critical fires"],
        "escalation first: {out}"
    );
    let mut resolved = shape[2..].to_vec();
    resolved.sort();
    assert_eq!(resolved, ["critical resolves", "warning resolves"], "{out}");
    for (wall, line) in &story {
        let at = line
            .split_whitespace()
            .next()
            .and_then(parse_rfc3339)
            .expect("an alert line starts with its event time");
        assert!(
            at - start <= STORY_ENDS_BY,
            "later than announced: {line}\n{out}"
        );
        // a minute of event time is 1/DEMO_SPEED s of wall time; 15 s for start-up and lag
        let budget =
            Duration::from_secs_f64((at - start) as f64 / MINUTE_MS as f64 / DEMO_SPEED + 15.0);
        assert!(
            **wall <= budget,
            "{line} printed after {wall:?}, budget {budget:?}\n{out}"
        );
    }
    out
}

#[test]
fn the_demo_api_requires_the_token_when_one_is_set() {
    use std::time::Duration;
    let token = "demo-test-token-0123456789abcdef";
    let mut child = overage()
        .env("OVERAGE_API_TOKEN", token)
        .args(["demo", "--speed", "10", "--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // the banner says where the server listens (the system chose the port)
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut banner = String::new();
    let port: u16 = loop {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("no address in the demo's banner: {banner}");
        };
        banner += &line;
        banner.push('\n');
        let port = line
            .split_once("metrics and API: http://")
            .and_then(|(_, r)| r.split_once("/metrics"))
            .and_then(|(addr, _)| addr.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.port());
        if let Some(port) = port {
            break port;
        }
    };
    // the server listens once the banner is out; whatever happens, stop the demo before
    // asserting
    let answers = util::eventually(Duration::from_secs(30), "the demo's HTTP server", || {
        let anonymous = http_get(port, "/api/v1/alerts", None)?;
        Some((
            anonymous,
            http_get(
                port,
                "/api/v1/alerts",
                Some("Bearer wrong-token-0123456789abcdef"),
            ),
            http_get(port, "/api/v1/alerts", Some(&format!("Bearer {token}"))),
            http_get(port, "/", None),
        ))
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    banner.extend(lines.try_iter().map(|l| l + "\n"));
    let (anonymous, wrong, right, status_page) = answers;
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    assert!(wrong.unwrap_or_default().starts_with("HTTP/1.1 401"));
    assert!(status_page.unwrap_or_default().starts_with("HTTP/1.1 401"));
    let right = right.unwrap_or_default();
    assert!(right.starts_with("HTTP/1.1 200"), "{right}");
    assert!(
        banner.contains("require the token from OVERAGE_API_TOKEN"),
        "{banner}"
    );
    assert!(
        !banner.contains(token),
        "the token is never printed: {banner}"
    );
}

#[test]
fn help_describes_every_command() {
    let o = overage().arg("--help").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in ["run", "replay", "check", "simulate", "score", "demo"] {
        assert!(out.contains(cmd), "{out}");
    }
}

#[test]
fn the_shipped_examples_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = overage()
        .args(["check", "--config"])
        .arg(root.join("deploy/overage.example.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("2 contracts"), "{out}");
    // it listens on 0.0.0.0 with the token commented out: check says so, loudly
    assert!(
        out.contains("WARNING: http.listen 0.0.0.0:9464 is not a loopback"),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("no API token is set"));

    // Its commented-out TLS, SASL/SCRAM and API token settings parse too, with the password
    // from the environment under the shell-friendly name; secrets are not printed.
    let dir = tempfile::tempdir().unwrap();
    let token_file = write(dir.path(), "api-token", "tok-3b1f0c9e5d7a2468ace\n");
    std::fs::copy(
        root.join("deploy/contracts.example.toml"),
        dir.path().join("contracts.example.toml"),
    )
    .unwrap();
    let example = std::fs::read_to_string(root.join("deploy/overage.example.toml")).unwrap();
    let mut uncommented = 0;
    let secured: String = example
        .lines()
        .map(|l| {
            let setting = l.strip_prefix("# ").filter(|r| {
                ["\"security.", "\"sasl.", "\"ssl.", "api_token_file"]
                    .iter()
                    .any(|k| r.starts_with(k))
            });
            match setting {
                Some(r) if r.starts_with("api_token_file") => {
                    uncommented += 1;
                    format!("api_token_file = {:?}\n", token_file.display().to_string())
                }
                Some(r) => {
                    uncommented += 1;
                    format!("{r}\n")
                }
                None => format!("{l}\n"),
            }
        })
        .collect();
    assert_eq!(uncommented, 5, "{secured}");
    let config = write(dir.path(), "overage.toml", &secured);
    let o = overage()
        .args(["check", "--config"])
        .arg(&config)
        .env("OVERAGE_KAFKA__OPTIONS__SASL__PASSWORD", "pw-6c0ffee-scram")
        .env_remove("OVERAGE_API_TOKEN")
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    for expected in [
        "\"security.protocol\" = \"SASL_SSL\"",
        "\"sasl.mechanism\" = \"SCRAM-SHA-512\"",
        "\"sasl.username\" = \"overage\"",
        "\"ssl.ca.location\" = \"/etc/overage/kafka-ca.pem\"",
        "\"sasl.password\" = \"<redacted>\"",
        "require the API token",
    ] {
        assert!(out.contains(expected), "{expected} missing:\n{out}");
    }
    assert!(!out.contains("WARNING"), "{out}");
    for secret in ["pw-6c0ffee-scram", "tok-3b1f0c9e5d7a2468ace"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret}:\n{out}\n{err}"
        );
    }
}

/// Recognisable secret values that must never reach stdout or stderr.
const SECRETS: [&str; 8] = [
    "kafka-pw-7f3a91",
    "key-pw-c4d2e8",
    "am-pw-19b7f0",
    "api-token-5e8c2a4b6d",
    "presented-9a1b3c5d7e",
    "hook-pw-3d5f7a",
    "hook-hmac-8e6c4a",
    "hook-bearer-2b4d6f",
];

fn secret_config(dir: &Path, brokers: &str, am: u16) -> PathBuf {
    write(
        dir,
        "overage.toml",
        &format!(
            r#"[kafka]
brokers = "{brokers}"

[kafka.options]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "overage"
"sasl.password" = "{}"
"ssl.key.password" = "{}"
"reconnect.backoff.max.ms" = "500"

[alerts.alertmanager]
urls = ["http://ops:{}@127.0.0.1:{am}"]

[alerts.webhook]
url = "http://hook:{}@127.0.0.1:{am}/hook"
secret = "{}"
headers = {{ "Authorization" = "Bearer {}" }}

[http]
listen = "127.0.0.1:0"
"#,
            SECRETS[0], SECRETS[1], SECRETS[2], SECRETS[5], SECRETS[6], SECRETS[7]
        ),
    )
}

fn assert_no_secrets(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
    }
}

#[test]
fn secrets_never_reach_the_output() {
    let dir = tempfile::tempdir().unwrap();
    // a port nothing listens on, for the broker and Alertmanager that are not there
    let dead = util::free_port();
    let config = secret_config(dir.path(), &format!("127.0.0.1:{dead}"), dead);
    let token = format!("{}-0123456789", SECRETS[3]);

    let o = overage()
        .args(["check", "--config"])
        .arg(&config)
        .env("OVERAGE_API_TOKEN", &token)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("\"sasl.password\" = \"<redacted>\""), "{out}");
    assert!(out.contains("ops:<redacted>@127.0.0.1"), "{out}");
    assert!(out.contains("hook:<redacted>@127.0.0.1"), "{out}");
    assert_no_secrets("check's stdout", &out);
    assert_no_secrets("check's stderr", &String::from_utf8_lossy(&o.stderr));

    // `run` against a broker that is not there, logging at debug: startup, the Kafka errors,
    // the HTTP server refusing a wrong token, and shutdown.
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let addr_file = dir.path().join("http-addr");
    let mut child = overage()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--http-addr-file")
        .arg(&addr_file)
        .env("OVERAGE_API_TOKEN", &token)
        .env("RUST_LOG", "debug")
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    util::eventually(
        std::time::Duration::from_secs(30),
        "startup and a Kafka error logged",
        || {
            let l = log();
            // (field values are ANSI-coloured)
            (l.contains("api_protected") && l.contains("kafka:")).then_some(())
        },
    );
    let http = util::eventually(std::time::Duration::from_secs(10), "http address", || {
        let text = std::fs::read_to_string(&addr_file).ok()?;
        text.trim()
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| a.port())
    });
    let wrong = util::eventually(std::time::Duration::from_secs(10), "http up", || {
        http_get(
            http,
            "/api/v1/alerts",
            Some(&format!("Bearer {}", SECRETS[4])),
        )
    });
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let right = http_get(http, "/api/v1/alerts", Some(&format!("Bearer {token}"))).unwrap();
    assert!(right.starts_with("HTTP/1.1 200"), "{right}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exited = util::eventually(std::time::Duration::from_secs(45), "exit", || {
        child.try_wait().ok().flatten()
    });
    // a clean stop, even without the broker (not a panic's 101, not a kill)
    assert_eq!(exited.code(), Some(0), "{}", log());
    let log = log();
    assert!(log.contains("<redacted>"), "{log}");
    assert_no_secrets("run's stderr", &log);
    assert_no_secrets("run's stdout", &std::fs::read_to_string(&stdout).unwrap());
}

/// GET, with an `Authorization` header if given; the raw response.
fn http_get(port: u16, path: &str, authorization: Option<&str>) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf)
}

#[test]
fn demo_runs_against_an_external_broker() {
    // scripts/local-stack drives this mode; check the script too (shellcheck when installed).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("scripts/local-stack");
    let o = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if let Ok(o) = Command::new("shellcheck").arg(&script).output() {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    }

    let broker = util::Broker::start();

    // The demo creates its topics there, produces its traffic and consumes it.
    let out = run_demo(&["--brokers", &broker.bootstrap()]);
    assert!(out.contains("the Kafka broker (127.0.0.1:"), "{out}");
}

#[test]
fn run_says_which_address_it_cannot_listen_on() {
    // the binary binds `http.listen` itself before the service starts: a taken port is still
    // reported with its address, and nothing else starts
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "overage.toml",
        &format!("[http]\nlisten = \"{addr}\"\n"),
    );
    let addr_file = dir.path().join("http-addr");
    let o = overage()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--http-addr-file")
        .arg(&addr_file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(
        !addr_file.exists(),
        "no address written for a server that is not up"
    );
    drop(taken);

    let help = overage().args(["run", "--help"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("--http-addr-file"),
        "{}",
        String::from_utf8_lossy(&help.stdout)
    );
}

#[test]
fn score_compare_sets_two_scores_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = overage().args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    let d = |name: &str| dir.path().join(name).display().to_string();
    run(&["simulate", "--out", &d("")]);
    let alerts = run(&[
        "replay",
        "--contracts",
        &d("contracts.toml"),
        &d("events.jsonl"),
    ]);
    std::fs::write(d("alerts.jsonl"), &alerts).unwrap();
    let score = run(&[
        "score",
        "--json",
        "--truth",
        &d("truth.json"),
        &d("alerts.jsonl"),
    ]);
    std::fs::write(d("a.json"), &score).unwrap();
    // the same score twice: nothing moved
    let same = String::from_utf8(run(&["score", "--compare", &d("a.json"), &d("a.json")])).unwrap();
    assert!(
        same.contains("0 episodes moved") && !same.contains('*'),
        "{same}"
    );
    // without its alerts, every detected episode is missed
    std::fs::write(d("none.jsonl"), "").unwrap();
    let none = run(&[
        "score",
        "--json",
        "--truth",
        &d("truth.json"),
        &d("none.jsonl"),
    ]);
    std::fs::write(d("b.json"), &none).unwrap();
    let moved =
        String::from_utf8(run(&["score", "--compare", &d("a.json"), &d("b.json")])).unwrap();
    assert!(
        moved.contains("0 sooner") && moved.contains("-> missed"),
        "{moved}"
    );
    // a file that is not a score is a precise error
    let o = overage()
        .args(["score", "--compare", &d("a.json"), &d("alerts.jsonl")])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("alerts.jsonl: no report"), "{err}");
}
