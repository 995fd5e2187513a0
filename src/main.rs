//! The `overage` command: a thin layer of argument parsing and output over the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use overage::config::{ms, Config};
use overage::contract::Contracts;
use overage::decode::Format;
use overage::engine::Engine;
use overage::replay::{self, Input};
use overage::time::{duration_label, wall_now};

#[derive(Parser)]
#[command(
    name = "overage",
    version,
    about = "Watch API consumption per client and alert when a client overruns its contract",
    long_about = "overage reads API access events, keeps sliding-window statistics per client in \
event time, and raises alerts when a client's consumption is well above its contracted baseline \
or its own learned baseline, will exceed its monthly cap, or leaves the contract's scope."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The long-running service: a Kafka consumer-group member with metrics, API and alerts.
    Run(RunArgs),
    /// Run the detectors over recorded events; alert transitions as JSON lines on stdout.
    Replay(ReplayArgs),
    /// Validate the config and contracts and print what overage would do.
    Check(CheckArgs),
    /// Write a labelled multi-week scenario: events.jsonl, contracts.toml and truth.json.
    Simulate(SimulateArgs),
    /// Measure detection quality: an alerts file (from `replay`) against a scenario's truth,
    /// sampled fleets beside the rules users would write, or two scores side by side.
    Score(ScoreArgs),
    /// Usage report per client (by product, origin, hour and day; against contract and cap)
    /// as CSV, JSON or a self-contained HTML page with charts.
    #[command(after_long_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Show the whole system on embedded traffic: a dozen clients, one overrunning partner,
    /// alerts printed as they fire. Ctrl-C stops it.
    Demo(DemoArgs),
}

#[derive(Args)]
struct SimulateArgs {
    /// Directory to write into (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 28)]
    days: u32,
    /// Multiplies every client's traffic (and contracts and caps with it).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Instead of the standard 32-client scenario, a fleet of N clients sampled from
    /// distributions (rates, units, timezones, holidays, ramps, growth, batch jobs), a third
    /// of them with an incident swept by magnitude, duration and time of day.
    #[arg(long, value_name = "N")]
    fleet: Option<u32>,
    /// Write the events as a gateway logs them (beside them, `overage.toml` reads them back:
    /// `overage replay --config DIR/overage.toml ...`).
    #[arg(long, value_enum, default_value_t = overage::simulate::shapes::Shape::Json)]
    format: overage::simulate::shapes::Shape,
}

#[derive(Args)]
struct ScoreArgs {
    /// truth.json written by `overage simulate`.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["fleet", "compare"])]
    truth: Option<PathBuf>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Instead of files: for each of --seeds, simulate a fleet of N clients in process, run
    /// overage (as --config sets it) and the Prometheus rules users would write instead
    /// (static and z-score) on the same events, and print them side by side.
    #[arg(long, value_name = "N", conflicts_with_all = ["truth", "alerts"])]
    fleet: Option<u32>,
    /// Seeds of the fleets (comma separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,3",
        requires = "fleet"
    )]
    seeds: Vec<u64>,
    /// Days each fleet runs.
    #[arg(long, default_value_t = 28, requires = "fleet")]
    days: u32,
    /// overage's configuration for --fleet (default: the built-in defaults).
    #[arg(long, value_name = "FILE", requires = "fleet")]
    config: Option<PathBuf>,
    /// Alert transitions, one JSON object per line (the stdout of `overage replay`).
    #[arg(value_name = "ALERTS", required_unless_present_any = ["fleet", "compare"])]
    alerts: Option<PathBuf>,
    /// Instead of scoring: set two outputs of `score --json` (of the same scenarios, e.g.
    /// before and after a change to `[detect]`) side by side, episode by episode: delays that
    /// moved, alerts that fired more or less often, stuck alerts and false firings that came
    /// or went.
    #[arg(
        long,
        num_args = 2,
        value_names = ["BEFORE", "AFTER"],
        conflicts_with_all = ["truth", "alerts", "fleet", "json"]
    )]
    compare: Option<Vec<PathBuf>>,
}

#[derive(Args)]
struct DemoArgs {
    /// Event-time minutes per wall-clock second (1: the partner overruns after a minute, is
    /// warned about some 25 s later and paged some 40 s later, and both resolve by about 2 min
    /// 40 s).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Stop after this much event time (e.g. `6h`) instead of at Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<std::time::Duration>,
    /// Address of the HTTP server (`/metrics`, `/readyz`, `/api/v1/...`) [default: the config's
    /// `http.listen` if --config is given, else 127.0.0.1:9464].
    #[arg(long)]
    http: Option<std::net::SocketAddr>,
    /// An external Kafka-protocol broker (e.g. tansu) instead of the in-process cluster; the
    /// demo creates its topics there if missing.
    #[arg(long, value_name = "HOST:PORT")]
    brokers: Option<String>,
    /// Events topic [default: the config's first topic if --config is given, else api-events].
    #[arg(long, value_name = "T")]
    topic: Option<String>,
    /// Alerts topic [default: the config's, else overage-alerts].
    #[arg(long, value_name = "T")]
    alerts_topic: Option<String>,
    /// Config for the service part (e.g. `[alerts.alertmanager] urls`); the flags above
    /// override its brokers, topics and HTTP address. The demo always uses its own contracts.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct Files {
    /// Config file (TOML). Defaults apply to everything it leaves out.
    #[arg(long, short, value_name = "FILE", env = "OVERAGE_CONFIG")]
    config: Option<PathBuf>,
    /// Contracts file (TOML); overrides `contracts` in the config.
    #[arg(long, value_name = "FILE")]
    contracts: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    files: Files,
    /// Input format; overrides `input.format` in the config.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Also write the summary (events by outcome, clients, alerts, per-client usage) as JSON.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    no_progress: bool,
    /// Threads, each with the clients whose id hashes to it; the output is the same for any
    /// number. Limits that count clients (`state.max_clients`, ...) apply to each thread.
    /// [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// JSONL files of events, plain or gzip, read in the order given; `-` is stdin.
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<String>,
}

const REPORT_EXAMPLES: &str = "\
Examples:
  # September for one client, from recorded events, as an HTML page with charts
  overage report --events events.jsonl.gz --contracts contracts.toml \\
      --client msft-bing --month 2026-09 --format html --output bing-2026-09.html

  # every client, one week, CSV (client_id,day,product,units,events,over_contract) on stdout
  overage report --events events.jsonl --from 2026-09-01 --to 2026-09-07 --format csv

  # from a running service's API (token from OVERAGE_API_TOKEN), JSON
  overage report --url http://127.0.0.1:9464 --client msft-bing --month 2026-09 --format json

Periods are whole UTC hours: an hour counts when it starts in [from, to). A bare date for --to
includes that day. Units are exact: each distinct event once (duplicates dropped), late events
included. A service keeps the current and previous month.";

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    Csv,
    Json,
    Html,
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    files: Files,
    /// Recorded events (JSONL, plain or gzip; `-` is stdin), replayed as `overage replay` does.
    #[arg(long, value_name = "FILE", num_args = 1.., required_unless_present = "url", conflicts_with = "url")]
    events: Vec<String>,
    /// A running service instead of events, e.g. http://127.0.0.1:9464.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// API token for --url, sent as `Authorization: Bearer`.
    #[arg(
        long,
        env = "OVERAGE_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Only this client (repeatable); default: every client with usage in the period.
    #[arg(long = "client", value_name = "ID")]
    clients: Vec<String>,
    /// Start of the period: RFC 3339, a date (midnight UTC) or epoch ms [default: start of data].
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End of the period (exclusive; a bare date includes that day) [default: end of data].
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// A calendar month (UTC), e.g. 2026-09, instead of --from/--to.
    #[arg(long, value_name = "YYYY-MM")]
    month: Option<String>,
    /// Output format [default: from --output's extension, else json].
    #[arg(long, value_enum)]
    format: Option<ReportFormat>,
    /// Input event format for --events; overrides `input.format` in the config.
    #[arg(long, value_enum, value_name = "FORMAT")]
    input_format: Option<Format>,
    /// Write here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Progress while reading --events: auto (a bar on a terminal), always (also plain lines
    /// when stderr is not a terminal), never.
    #[arg(long, value_enum, default_value = "auto")]
    progress: replay::ProgressMode,
    /// Threads replaying --events, as `overage replay --threads`. [default: the number of
    /// cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    files: Files,
    /// Once the HTTP server listens, write its address (`HOST:PORT`, one line) to FILE, created
    /// whole (written aside, then renamed). With `http.listen` on port 0 this is how a script
    /// or test learns the port the system chose.
    #[arg(long, value_name = "FILE")]
    http_addr_file: Option<PathBuf>,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    files: Files,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "overage=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => cmd_run(a),
        Command::Replay(a) => cmd_replay(a),
        Command::Check(a) => cmd_check(a),
        Command::Demo(a) => cmd_demo(a),
        Command::Simulate(a) => cmd_simulate(a),
        Command::Score(a) => cmd_score(a),
        Command::Report(a) => cmd_report(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, as `{:#}` prints them, less the causes a message has
/// already said (the library's errors name their source in their own message).
fn chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            if !line.is_empty() {
                line += ": ";
            }
            line += &text;
        }
    }
    line
}

/// Config and contracts as the flags and the config file say.
fn load(files: &Files) -> Result<(Config, Contracts)> {
    let config = match &files.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let contracts = match files.contracts.as_ref().or(config.contracts.as_ref()) {
        Some(p) => Contracts::load(p)?,
        None => Contracts::default(),
    };
    Ok((config, contracts))
}

/// Recorded events through fresh engines (one per thread, each with its share of the
/// clients), as `replay` and `report --events` both do: the config's decoding and
/// future-timestamp check, progress on stderr, the summary at the end.
fn run_replay(
    files: &Files,
    format: Option<Format>,
    inputs: &[String],
    threads: Option<u16>,
    progress: replay::ProgressMode,
    alerts: &mut dyn std::io::Write,
) -> Result<(Vec<Engine>, replay::Summary)> {
    let (mut config, contracts) = load(files)?;
    if let Some(f) = format {
        config.input.format = f;
    }
    let inputs: Vec<Input> = inputs.iter().map(|s| Input::parse(s)).collect();
    replay::check_inputs(&inputs)?;
    let decoder = config.input.decoder();
    let threads = threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let contracts = Arc::new(contracts);
    let mut engines: Vec<Engine> = (0..threads)
        .map(|_| Engine::new(&config, contracts.clone()))
        .collect();
    let skew = ms(config.input.max_future_skew);
    let future_limit = (skew > 0).then(|| wall_now() + skew);
    let display = replay::ProgressDisplay::new(&inputs, progress);
    let update = |n: u64| display.update(n);
    let summary = replay::replay(
        &mut engines,
        &decoder,
        &inputs,
        future_limit,
        alerts,
        display.active().then_some(&update as replay::Progress),
    )?;
    display.finish();
    eprintln!("{}", summary.human());
    Ok((engines, summary))
}

fn cmd_replay(a: ReplayArgs) -> Result<()> {
    let mode = if a.no_progress {
        replay::ProgressMode::Never
    } else {
        replay::ProgressMode::Auto
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let (engines, summary) = run_replay(&a.files, a.format, &a.inputs, a.threads, mode, &mut out)?;
    // The process is about to exit: freeing a million clients one by one took longer than
    // replaying them.
    std::mem::forget(engines);
    if let Some(path) = &a.summary_json {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        serde_json::to_writer_pretty(std::io::BufWriter::new(f), &summary)?;
    }
    Ok(())
}

fn cmd_report(a: ReportArgs) -> Result<()> {
    use overage::report::{self, Period};
    let period = Period::from_args(a.month.as_deref(), a.from.as_deref(), a.to.as_deref())?;
    let format = a.format.unwrap_or_else(|| {
        match a
            .output
            .as_ref()
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
        {
            Some("html" | "htm") => ReportFormat::Html,
            Some("csv") => ReportFormat::Csv,
            _ => ReportFormat::Json,
        }
    });
    let (source, input, data) = match &a.url {
        Some(url) => {
            let api = report::api::Api::new(url, a.token.clone())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let data = runtime.block_on(async {
                let ids = if a.clients.is_empty() {
                    api.clients().await?
                } else {
                    a.clients.clone()
                };
                let mut data = Vec::with_capacity(ids.len());
                for id in &ids {
                    data.push(api.client(id, &period).await?);
                }
                Ok::<_, report::api::ApiError>(data)
            })?;
            (format!("url: {url}"), Default::default(), data)
        }
        None => {
            let (engines, summary) = run_replay(
                &a.files,
                a.input_format,
                &a.events,
                a.threads,
                a.progress,
                &mut std::io::sink(),
            )?;
            let ids = if a.clients.is_empty() {
                let mut ids: Vec<String> =
                    engines.iter().flat_map(report::engine_clients).collect();
                ids.sort();
                ids
            } else {
                a.clients.clone()
            };
            let mut data = Vec::with_capacity(ids.len());
            for id in &ids {
                let engine = &engines[replay::shard_of(id, engines.len())];
                match report::from_engine(engine, id, &period) {
                    Some(d) => data.push(d),
                    None => anyhow::bail!("client `{id}` has no events in the input"),
                }
            }
            let input = summary
                .events
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect();
            (format!("events: {}", a.events.join(", ")), input, data)
        }
    };
    let explicit = !a.clients.is_empty();
    let clients: Vec<report::ClientReport> = data
        .iter()
        .map(|d| report::build(d, &period))
        .filter(|c| explicit || c.events > 0)
        .collect();
    let r = report::report(&period, source, input, clients);
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    match format {
        ReportFormat::Csv => report::csv::write(&r, &mut out)?,
        ReportFormat::Json => report::to_json(&r, &mut out)?,
        ReportFormat::Html => report::html::write(&r, &mut out)?,
    }
    out.flush()?;
    if let Some(p) = &a.output {
        eprintln!(
            "report: {} clients, {} to {}, written to {}",
            r.clients.len(),
            r.from.as_deref().unwrap_or("-"),
            r.to.as_deref().unwrap_or("-"),
            p.display()
        );
    }
    Ok(())
}

fn cmd_run(a: RunArgs) -> Result<()> {
    let (config, contracts) = load(&a.files)?;
    let contracts_path = a.files.contracts.clone().or(config.contracts.clone());
    let options: Vec<String> = config
        .kafka
        .options
        .iter()
        .map(|(k, v)| {
            let shown = if overage::redact::is_secret(k) {
                overage::redact::REDACTED
            } else {
                v
            };
            format!("{k}={shown}")
        })
        .collect();
    tracing::info!(
        brokers = %config.kafka.brokers,
        topics = ?config.kafka.topics,
        group = %config.kafka.group_id,
        options = ?options,
        api_protected = config.http.is_protected(),
        contracts = contracts.len(),
        "starting"
    );
    // Bound here, not in the service: the address is known (port 0 resolved) before it starts.
    let listener = overage::service::http::listen(config.http.listen)?;
    if let Some(file) = &a.http_addr_file {
        write_addr_file(file, listener.local_addr()?)?;
    }
    until_signal(|shutdown| async move {
        overage::service::run(
            config,
            contracts,
            overage::service::Options {
                contracts_path,
                console: false,
                listener: Some(listener),
            },
            shutdown,
        )
        .await
    })
}

/// `--http-addr-file`: whoever polls for the file never reads half an address.
fn write_addr_file(file: &Path, addr: std::net::SocketAddr) -> Result<()> {
    let mut aside = file.as_os_str().to_owned();
    aside.push(".tmp");
    let aside = PathBuf::from(aside);
    std::fs::write(&aside, format!("{addr}\n"))
        .with_context(|| format!("{}: cannot write", aside.display()))?;
    std::fs::rename(&aside, file).with_context(|| format!("{}: cannot write", file.display()))?;
    Ok(())
}

/// Run `f` on a small runtime with SIGTERM/SIGINT wired to its cancellation token.
fn until_signal<F, E>(f: impl FnOnce(tokio_util::sync::CancellationToken) -> F) -> Result<()>
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        f(shutdown).await
    });
    // The drain is bounded inside; a consumer thread stuck in librdkafka (a final commit to a
    // broker that vanished) must not keep the process alive past that bound.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result?;
    Ok(())
}

/// SIGTERM (Kubernetes) and SIGINT (Ctrl-C) both start a graceful shutdown.
async fn cancel_on_signal(token: tokio_util::sync::CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("signal received: draining");
    token.cancel();
}

fn cmd_simulate(a: SimulateArgs) -> Result<()> {
    let params = overage::simulate::SimParams {
        seed: a.seed,
        days: a.days,
        scale: a.scale,
        fleet: a.fleet,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let truth = overage::simulate::write_scenario_as(&params, &a.out, a.format)?;
    eprintln!(
        "wrote {} events ({} lines) for {} clients, {} planted anomalies, to {} in {:.1}s",
        truth.faults.events,
        truth.faults.lines,
        truth.clients.len(),
        truth.anomalies.len(),
        a.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn cmd_score(a: ScoreArgs) -> Result<()> {
    if let Some([before, after]) = a.compare.as_deref() {
        use overage::score::compare::{compare, read_reports, Text};
        let (b, x) = (read_reports(before)?, read_reports(after)?);
        if b.len() != x.len() {
            anyhow::bail!(
                "{} holds {} reports and {} holds {}: not the same scenarios",
                before.display(),
                b.len(),
                after.display(),
                x.len()
            );
        }
        return out(&Text(&compare(&b, &x)).to_string());
    }
    if let Some(n) = a.fleet {
        return score_fleet(&a, n);
    }
    let (Some(truth), Some(alerts)) = (&a.truth, &a.alerts) else {
        anyhow::bail!("--truth and ALERTS are required without --fleet");
    };
    let report = overage::score::score_files(truth, alerts)?;
    if a.json {
        out(&serde_json::to_string_pretty(&report)?)?;
    } else {
        out(&report.to_string())?;
    }
    Ok(())
}

/// One block of output on stdout. A reader that went away (`| head`) ends the output quietly
/// instead of panicking as `println!` does on a closed pipe.
fn out(text: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    match writeln!(o, "{text}").and_then(|()| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn score_fleet(a: &ScoreArgs, n: u32) -> Result<()> {
    let cfg = a
        .config
        .as_deref()
        .map(Config::load)
        .transpose()?
        .unwrap_or_default();
    let mut runs = Vec::new();
    for &seed in &a.seeds {
        let started = std::time::Instant::now();
        let p = overage::simulate::SimParams {
            seed,
            days: a.days,
            fleet: Some(n),
            ..Default::default()
        };
        let c = overage::quality::compare(&p, &cfg)?;
        eprintln!(
            "seed {seed}: {} clients, {} anomalies, {} lines in {:.1}s",
            c.truth.clients.len(),
            c.truth.anomalies.len(),
            c.lines,
            started.elapsed().as_secs_f64()
        );
        if a.json {
            out(&serde_json::to_string(&c.overage)?)?;
        } else {
            out(&format!("## seed {seed}: overage\n\n{}", c.overage))?;
        }
        runs.push(c);
    }
    let rows = overage::quality::rows(&runs);
    if a.json {
        out(&serde_json::to_string(&rows)?)?;
    } else {
        out(&format!(
            "## {} seeds x {n} clients x {} days\n\n{}",
            a.seeds.len(),
            a.days,
            overage::quality::table(&rows)
        ))?;
    }
    Ok(())
}

fn cmd_demo(a: DemoArgs) -> Result<()> {
    let config = a.config.as_deref().map(Config::load).transpose()?;
    let http = a
        .http
        .or(config.as_ref().map(|c| c.http.listen))
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 9464)));
    until_signal(|shutdown| {
        overage::demo::run(
            overage::demo::DemoOptions {
                speed: a.speed,
                duration: a.duration.map(ms),
                http,
                brokers: a.brokers,
                config,
                topic: a.topic,
                alerts_topic: a.alerts_topic,
            },
            shutdown,
        )
    })
}

fn cmd_check(a: CheckArgs) -> Result<()> {
    let (config, contracts) = load(&a.files)?;
    let mut o = std::io::stdout().lock();
    match &a.files.config {
        Some(p) => writeln!(o, "config {}: OK", p.display())?,
        None => writeln!(o, "config: none given, using defaults")?,
    }
    match &contracts.source {
        Some(p) => writeln!(
            o,
            "contracts {}: OK, {} contracts",
            p.display(),
            contracts.len()
        )?,
        None => writeln!(
            o,
            "contracts: none; every client is watched against its learned baseline"
        )?,
    }
    for c in contracts.iter() {
        let mut scope = vec![];
        if let Some(p) = &c.products {
            scope.push(format!("products {}", p.join(",")));
        }
        if let Some(e) = &c.endpoints {
            let globs: Vec<&str> = e.iter().map(|g| g.pattern.as_str()).collect();
            scope.push(format!("endpoints {}", globs.join(",")));
        }
        if let Some(o) = &c.origin_countries {
            scope.push(format!("countries {}", o.join(",")));
        }
        writeln!(
            o,
            "  {:<24} {:<12} {} units/{}, warn at {}x, page at {}x{}{}",
            c.client_id,
            c.plan.as_deref().unwrap_or("-"),
            c.baseline_units,
            duration_label(c.per),
            c.alert_at.unwrap_or(config.detect.alert_at),
            c.page_at.unwrap_or(config.detect.page_at),
            c.monthly_cap
                .map(|m| format!(", cap {m}/month"))
                .unwrap_or_default(),
            if scope.is_empty() {
                String::new()
            } else {
                format!(", {}", scope.join("; "))
            }
        )?;
    }
    let http = &config.http;
    let token_source = if std::env::var_os(overage::config::API_TOKEN_ENV).is_some() {
        overage::config::API_TOKEN_ENV.to_owned()
    } else {
        http.api_token_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    match http.is_protected() {
        true => writeln!(
            o,
            "http {}: /api/ and the status page require the API token (from {token_source})",
            http.listen
        )?,
        false => writeln!(
            o,
            "http {}: no API token; /api/ and the status page are open",
            http.listen
        )?,
    }
    if let Some(warning) = http.exposure_warning() {
        writeln!(o, "WARNING: {warning}")?;
        eprintln!("warning: {warning}");
    }
    // secrets (librdkafka passwords, credentials in URLs) are shown as <redacted>
    writeln!(o, "\neffective configuration:\n")?;
    write!(o, "{}", toml::to_string_pretty(&config.redacted())?)?;
    Ok(())
}
