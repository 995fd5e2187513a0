//! Configuration: one TOML file, every field optional with a documented default.
//!
//! Parsing is strict (`deny_unknown_fields`: a misspelt key is an error, not a silently ignored
//! setting) and [`Config::validate`] runs before anything starts, so a bad deploy fails at once
//! with the field's path instead of misbehaving an hour later. `overage check` prints the
//! effective configuration, defaults included.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::baseline::BaselineConfig;
use crate::decode::{kong::KongOptions, mapping::Mapping, Format};
use crate::time::Millis;
use crate::window::MAX_LATENESS;

pub use crate::detect::baseline_jump::BaselineJumpConfig;
pub use crate::detect::cap::CapConfig;
pub use crate::detect::new_origin::NewOriginConfig;
pub use crate::detect::over_contract::OverContractConfig;
pub use crate::detect::scope::ScopeConfig;
pub use crate::detect::volume::WindowPair;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Contracts file (TOML). Without it every client is watched against its learned baseline.
    pub contracts: Option<PathBuf>,
    pub input: InputConfig,
    pub state: StateConfig,
    pub detect: DetectConfig,
    pub kafka: KafkaConfig,
    pub http: HttpConfig,
    pub alerts: AlertsConfig,
    pub metrics: MetricsConfig,
}

/// The Kafka consumer (`overage run`). Partitions are the unit of parallelism and of state
/// ownership: run more instances in the same group to scale out.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Topics of access events (producers key messages by client id).
    pub topics: Vec<String>,
    pub group_id: String,
    /// Static group membership (`group.instance.id`): a name of this instance that survives
    /// its restarts and is unique in the group, such as a StatefulSet's pod name. A restarted
    /// instance then gets its own partitions back at once instead of after the session timeout
    /// and a rebalance; an instance gone for good holds its partitions until that timeout.
    pub group_instance_id: Option<String>,
    pub client_id: String,
    /// How often stored offsets are committed (also on revoke and shutdown).
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Publish alert transitions (spec JSON, keyed by client id) to this topic.
    pub alerts_topic: Option<String>,
    /// Copy rejected messages here, with the reason in the `overage-reject` header.
    pub dead_letter_topic: Option<String>,
    /// `/readyz` fails while the total consumer lag is above this many messages.
    pub max_ready_lag: i64,
    /// Threads applying messages, each assigned partition on one of them (its messages stay in
    /// order); more than the assigned partitions leaves some idle. Default: one per core.
    pub threads: Option<u16>,
    /// librdkafka properties applied last, for TLS, SASL and tuning (values are never logged).
    pub options: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topics: vec!["api-events".into()],
            group_id: "overage".into(),
            group_instance_id: None,
            client_id: "overage".into(),
            commit_interval: Duration::from_secs(5),
            alerts_topic: None,
            dead_letter_topic: None,
            max_ready_lag: 100_000,
            threads: None,
            options: Default::default(),
        }
    }
}

impl KafkaConfig {
    /// Worker threads for the assigned partitions (`threads`, else one per core).
    pub fn worker_threads(&self) -> usize {
        self.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `/metrics`, health and the API. Loopback unless deliberately opened.
    pub listen: std::net::SocketAddr,
    /// File holding the bearer token that `/api/` and the status page require (its content,
    /// trimmed; Kubernetes mounts a Secret as such a file). Relative to the config file.
    /// `OVERAGE_API_TOKEN`, when set, is the token instead (the environment wins). Neither:
    /// the API is open (fine on the default loopback address). `/metrics`, `/healthz` and
    /// `/readyz` are always open.
    pub api_token_file: Option<PathBuf>,
    /// The token itself, read by [`Config::load`] from `OVERAGE_API_TOKEN` or
    /// `api_token_file`; never serialized, never printed.
    #[serde(skip)]
    pub api_token: Option<ApiToken>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9464)),
            api_token_file: None,
            api_token: None,
        }
    }
}

/// Environment variable holding the API token directly (wins over `http.api_token_file`).
pub const API_TOKEN_ENV: &str = "OVERAGE_API_TOKEN";

/// Shortest accepted API token, in bytes.
pub const MIN_API_TOKEN_LEN: usize = 16;

/// A secret whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// A token from text (trimmed): at least [`MIN_API_TOKEN_LEN`] bytes of visible ASCII, so
    /// it fits in a header unchanged.
    pub fn new(text: &str) -> Result<ApiToken, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("is empty".into());
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be visible ASCII without spaces".into());
        }
        if t.len() < MIN_API_TOKEN_LEN {
            return Err(format!(
                "is shorter than {MIN_API_TOKEN_LEN} characters (use e.g. `openssl rand -hex 32`)"
            ));
        }
        Ok(ApiToken(t.to_owned()))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiToken({REDACTED})")
    }
}

impl HttpConfig {
    /// Whether `/api/` and the status page require the token.
    pub fn is_protected(&self) -> bool {
        self.api_token.is_some()
    }

    /// A warning when the API is open to anyone who can reach a non-loopback address.
    pub fn exposure_warning(&self) -> Option<String> {
        (!self.listen.ip().is_loopback() && !self.is_protected()).then(|| {
            format!(
                "http.listen {} is not a loopback address and no API token is set: /api/ and \
                 the status page are open to anyone who can reach it (set \
                 http.api_token_file or {API_TOKEN_ENV})",
                self.listen
            )
        })
    }

    /// Read the token: `env_token` (the value of `OVERAGE_API_TOKEN`) if set, else the file.
    /// `config_path` anchors a relative file.
    pub fn load_token(
        &mut self,
        env_token: Option<String>,
        config_path: &Path,
    ) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: config_path.to_owned(),
            field: field.to_owned(),
            message,
        };
        self.api_token = if let Some(t) = env_token {
            Some(
                ApiToken::new(&t)
                    .map_err(|m| invalid(&format!("environment {API_TOKEN_ENV}"), m))?,
            )
        } else if let Some(file) = &self.api_token_file {
            let file = match config_path.parent() {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file.clone(),
            };
            let text = std::fs::read_to_string(&file).map_err(|e| {
                invalid(
                    "http.api_token_file",
                    format!("{}: cannot read: {e}", file.display()),
                )
            })?;
            let token = ApiToken::new(&text).map_err(|m| {
                invalid(
                    "http.api_token_file",
                    format!("{}: the token {m}", file.display()),
                )
            })?;
            self.api_token_file = Some(file);
            Some(token)
        } else {
            None
        };
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Log every transition (structured, at info).
    pub log: bool,
    /// Transitions waiting for the sinks; the consumer waits when it is full (nothing dropped).
    pub queue_capacity: usize,
    /// Alertmanager v2 API (disabled while `urls` is empty).
    pub alertmanager: crate::sink::alertmanager::AlertmanagerConfig,
    /// A generic webhook (disabled while `url` is empty).
    pub webhook: crate::sink::webhook::WebhookConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            log: true,
            queue_capacity: 10_000,
            alertmanager: Default::default(),
            webhook: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Export `overage_client_contract_ratio{client_id}` for at most this many contracted
    /// clients (the highest ratios); 0 turns per-client series off.
    pub max_client_series: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            max_client_series: 500,
        }
    }
}

/// Environment variables that override config keys: `OVERAGE_KAFKA__BROKERS=a:9092` sets
/// `kafka.brokers`. Values are TOML when they parse as a TOML value, else strings.
pub const ENV_PREFIX: &str = "OVERAGE_";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// `json` (canonical events), `kong`, `apisix`, `tyk`, or `mapping` (any JSON log, by
    /// the paths in `[input.mapping]`).
    pub format: Format,
    /// Larger messages are rejected as `too_large` before parsing.
    pub max_event_bytes: usize,
    /// How far behind the newest event an event may arrive and still be windowed.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Events further than this ahead of the wall clock are rejected (`future_timestamp`);
    /// 0 disables the check (as `replay` of synthetic data may need).
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// Repeated `event_id`s within this much event time are counted once.
    #[serde(with = "humantime_serde")]
    pub dedupe_horizon: Duration,
    /// Upper bound on remembered event ids (memory: about 16 bytes each).
    pub dedupe_max_ids: usize,
    pub kong: KongOptions,
    /// Where event fields are in the log: all of them with `format = "mapping"`, or overrides
    /// of a gateway format's built-in paths.
    pub mapping: Mapping,
}

impl InputConfig {
    pub fn decoder(&self) -> crate::decode::Decoder {
        crate::decode::Decoder::new(self.format, self.max_event_bytes, &self.kong, &self.mapping)
    }
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            format: Format::Json,
            max_event_bytes: 64 * 1024,
            allowed_lateness: Duration::from_secs(60),
            max_future_skew: Duration::from_secs(300),
            dedupe_horizon: Duration::from_secs(600),
            dedupe_max_ids: 4_000_000,
            kong: KongOptions::default(),
            mapping: Mapping::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Most clients tracked at once; beyond it idle uncontracted clients are evicted first.
    pub max_clients: usize,
    /// Clients without traffic for this long are forgotten (never contracted ones, nor ones with
    /// an alert firing); sparse and packed ones up to an eighth of it (at most a day) later.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most distinct product / endpoint / origin names remembered.
    pub max_labels: usize,
    /// Calls a client makes before it gets full windows: until then it is kept as its calls
    /// (~50 bytes each instead of ~1.7 KB), with the same alerts. 0 gives every client full
    /// windows from its first call.
    pub sparse_calls: usize,
    /// Full clients without a call for this long (and no alert) are packed: compressed to a
    /// few hundred bytes until their next call, with the same alerts. 0 never packs.
    #[serde(with = "humantime_serde")]
    pub pack_after: Duration,
    /// Durable per-partition snapshots of this state (off unless `store` is set).
    pub checkpoint: CheckpointConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Where snapshots live: a directory (`/var/lib/overage/checkpoints` or
    /// `file:///var/lib/overage/checkpoints`) for one machine, `s3://bucket/prefix` (any
    /// S3-compatible store; credentials from the usual `AWS_*` variables or `options`) for a
    /// cluster whose pods must load each other's partitions, `memory://` for tests. Unset:
    /// state is not durable and is rebuilt from the stream after a restart.
    pub store: Option<StoreLocation>,
    /// Time between snapshots of each partition.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// What a partition starts from when it has no readable snapshot (none yet, corrupt, or
    /// written by an incompatible version): `committed` (empty state, from the group's
    /// committed offset) or `replay` (empty state, rebuilt from the last `replay_history` of
    /// the topic; alerts already delivered are not sent again).
    pub fallback: Fallback,
    #[serde(with = "humantime_serde")]
    pub replay_history: Duration,
    /// Object-store settings (e.g. `aws_region`, `aws_endpoint`, `aws_allow_http`), applied to
    /// the store named by `store`. Values are never logged.
    pub options: std::collections::BTreeMap<String, String>,
}

/// Where checkpoints live (`state.checkpoint.store`), parsed when the config is read, so a typo
/// is a config error with its line rather than a failure at the first snapshot.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum StoreLocation {
    Dir(PathBuf),
    /// `memory://`: nothing survives the process (tests).
    Memory,
    /// Any other URL `object_store` understands (`s3://bucket/prefix`).
    Url(url::Url),
}

impl std::str::FromStr for StoreLocation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty; set a directory or an s3:// URL, or remove the key".into());
        }
        if s == "memory://" || s == "memory:///" {
            return Ok(StoreLocation::Memory);
        }
        if let Some(dir) = s.strip_prefix("file://") {
            return Ok(StoreLocation::Dir(PathBuf::from(dir)));
        }
        if !s.contains("://") {
            return Ok(StoreLocation::Dir(PathBuf::from(s)));
        }
        let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        match url.scheme() {
            "s3" | "s3a" if url.host_str().is_none_or(str::is_empty) => {
                Err(format!("`{s}`: name a bucket (s3://bucket/prefix)"))
            }
            "s3" | "s3a" => Ok(StoreLocation::Url(url)),
            other => Err(format!(
                "unsupported scheme `{other}`: use a directory, file://, s3:// or memory://"
            )),
        }
    }
}

impl TryFrom<String> for StoreLocation {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Dir(d) => write!(f, "{}", d.display()),
            StoreLocation::Memory => f.write_str("memory://"),
            StoreLocation::Url(u) => f.write_str(u.as_str()),
        }
    }
}

impl From<StoreLocation> for String {
    fn from(l: StoreLocation) -> String {
        l.to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    Committed,
    Replay,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            store: None,
            interval: Duration::from_secs(60),
            fallback: Fallback::Committed,
            replay_history: Duration::from_secs(6 * 3600),
            options: Default::default(),
        }
    }
}

/// Shortest `state.pack_after` but 0.
pub const MIN_PACK_AFTER: Duration = Duration::from_secs(3 * 3600);

/// Most calls `state.sparse_calls` may keep per client.
pub const MAX_SPARSE_CALLS: usize = 64;

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            max_clients: 2_000_000,
            idle_timeout: Duration::from_secs(8 * 24 * 3600),
            max_labels: 100_000,
            sparse_calls: 4,
            pack_after: Duration::from_secs(6 * 3600),
            checkpoint: CheckpointConfig::default(),
        }
    }
}

/// `[detect]`: the settings every detector shares, then one section per detector (each section's
/// type, defaults and rules live with its detector in [`crate::detect`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Default ratio to the contracted baseline that raises a warning (contracts may override).
    pub alert_at: f64,
    /// Default ratio that raises a critical alert (a page).
    pub page_at: f64,
    /// One-sided p-value below which an excess over the threshold counts as real, not chance.
    pub significance: f64,
    /// Hysteresis: a firing alert resolves only once its ratio is below `threshold ×` this...
    pub resolve_ratio: f64,
    /// Sustained, not a burst: volume windows of up to an hour are judged without their this
    /// many most intense minutes, so an excess lasting no longer never fires.
    #[serde(with = "humantime_serde")]
    pub burst_tolerance: Duration,
    /// ...for this long.
    #[serde(with = "humantime_serde")]
    pub resolve_after: Duration,
    /// A condition must hold this long before it fires (0: at the first evaluation).
    #[serde(with = "humantime_serde")]
    pub fire_after: Duration,
    pub over_contract: OverContractConfig,
    pub baseline_jump: BaselineJumpConfig,
    pub baseline: BaselineConfig,
    pub cap: CapConfig,
    pub scope: ScopeConfig,
    pub new_origin: NewOriginConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            alert_at: 1.5,
            page_at: 3.0,
            significance: 0.01,
            resolve_ratio: 0.9,
            burst_tolerance: Duration::from_secs(180),
            resolve_after: Duration::from_secs(600),
            fire_after: Duration::ZERO,
            over_contract: OverContractConfig::default(),
            baseline_jump: BaselineJumpConfig::default(),
            baseline: BaselineConfig::default(),
            cap: CapConfig::default(),
            scope: ScopeConfig::default(),
            new_origin: NewOriginConfig::default(),
        }
    }
}

impl DetectConfig {
    /// The shared settings' rules, then each section's, in the order of the file.
    pub fn validate(&self) -> Result<(), crate::detect::InvalidSetting> {
        use crate::detect::InvalidSetting;
        if !(self.alert_at > 1.0 && self.page_at > self.alert_at) {
            return Err(InvalidSetting::new(
                "detect.alert_at",
                format!(
                    "need 1 < alert_at < page_at, got {} and {}",
                    self.alert_at, self.page_at
                ),
            ));
        }
        if !(self.significance > 0.0 && self.significance < 0.5) {
            return Err(InvalidSetting::new(
                "detect.significance",
                "must be in (0, 0.5)",
            ));
        }
        if !(self.resolve_ratio > 0.0 && self.resolve_ratio <= 1.0) {
            return Err(InvalidSetting::new(
                "detect.resolve_ratio",
                "must be in (0, 1]",
            ));
        }
        crate::detect::volume::check_windows(
            self.burst_tolerance,
            &[
                ("detect.over_contract.windows", &self.over_contract.windows),
                ("detect.baseline_jump.windows", &self.baseline_jump.windows),
            ],
        )?;
        self.baseline_jump.validate()?;
        self.baseline.validate()?;
        self.cap.validate()?;
        self.scope.validate()?;
        self.new_origin.validate()
    }
}

pub use crate::redact::REDACTED;

impl Config {
    /// A copy safe to print or log: values of secret-looking `kafka.options` keys and
    /// passwords in Alertmanager URLs are replaced by `<redacted>` (the API token is never
    /// serialized and its `Debug` hides it).
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        for (k, v) in c.kafka.options.iter_mut() {
            if crate::redact::is_secret(k) {
                *v = REDACTED.to_owned();
            }
        }
        c.alerts.redact_sinks();
        for (k, v) in c.state.checkpoint.options.iter_mut() {
            if crate::redact::is_secret(k) {
                *v = REDACTED.to_owned();
            }
        }
        c
    }
}

/// Milliseconds of a duration (saturating).
pub fn ms(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

impl Config {
    /// Read, parse and validate a config file. Relative paths inside it are resolved against
    /// the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Config::parse(&text, path)?;
        cfg = cfg.with_env(std::env::vars(), path)?;
        if let (Some(c), Some(dir)) = (&cfg.contracts, path.parent()) {
            if c.is_relative() {
                cfg.contracts = Some(dir.join(c));
            }
        }
        cfg.http
            .load_token(std::env::var(API_TOKEN_ENV).ok(), path)?;
        Ok(cfg)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start).min(text.len());
            let before = text.get(..offset).unwrap_or_default();
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let line_text = text[line_start..].lines().next().unwrap_or_default();
            // "invalid type: integer `12345`, expected a string" would print a password given
            // unquoted: not on a line that looks secret
            let mut message = e.message().trim().to_owned();
            if message.starts_with("invalid") && crate::redact::is_secret(line_text) {
                message = format!("invalid value (not shown: {REDACTED}); secrets are strings");
            }
            ConfigError::Parse {
                path: path.to_owned(),
                line: before.matches('\n').count() + 1,
                column: before.len() - line_start + 1,
                message,
            }
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Apply `OVERAGE_SECTION__KEY` overrides from `vars`, then validate again.
    pub fn with_env(
        self,
        vars: impl Iterator<Item = (String, String)>,
        path: &Path,
    ) -> Result<Config, ConfigError> {
        let overrides: Vec<(String, String)> = vars
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
            .collect();
        if overrides.is_empty() {
            return Ok(self);
        }
        let invalid = |field: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            message,
        };
        let mut table =
            toml::Table::try_from(&self).map_err(|e| invalid("(config)".into(), e.to_string()))?;
        for (key, value) in &overrides {
            let mut parts: Vec<String> = key[ENV_PREFIX.len()..]
                .split("__")
                .map(str::to_ascii_lowercase)
                .collect();
            // librdkafka keys are dotted, and shells cannot export a name with a dot:
            // `OVERAGE_KAFKA__OPTIONS__SASL__PASSWORD` is `sasl.password` too.
            if parts.len() > 3 && parts[..2] == ["kafka", "options"] {
                let option = parts.split_off(2).join(".");
                parts.push(option);
            }
            let mut at = &mut table;
            for part in &parts[..parts.len() - 1] {
                at = at
                    .entry(part.clone())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .ok_or_else(|| invalid(key.clone(), format!("`{part}` is not a section")))?;
            }
            let last = parts[parts.len() - 1].clone();
            // Strings stay strings (a password of `12345` or `true` must not become a number
            // or a bool); other keys take TOML, so numbers, booleans and lists work.
            let is_string = matches!(at.get(&last), Some(toml::Value::String(_)))
                || parts.starts_with(&["kafka".to_string(), "options".to_string()]);
            let value = if is_string {
                toml::Value::String(value.clone())
            } else {
                toml::from_str::<toml::Table>(&format!("v = {value}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or_else(|| toml::Value::String(value.clone()))
            };
            at.insert(last, value);
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                let names: Vec<&str> = overrides.iter().map(|(k, _)| k.as_str()).collect();
                invalid(
                    format!("environment {}", names.join(", ")),
                    e.message().trim().to_owned(),
                )
            })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Check every cross-field rule; the error names the field.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let fail = |field: &str, message: String| {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                field: field.to_owned(),
                message,
            })
        };
        let i = &self.input;
        if ms(i.allowed_lateness) > MAX_LATENESS {
            return fail(
                "input.allowed_lateness",
                format!(
                    "at most {} (the minute buckets cover no more)",
                    humantime::format_duration(Duration::from_millis(MAX_LATENESS as u64))
                ),
            );
        }
        if i.dedupe_horizon.is_zero() || i.dedupe_max_ids == 0 {
            return fail(
                "input.dedupe_horizon",
                "horizon and dedupe_max_ids must be positive".into(),
            );
        }
        match i.format.mapping(&i.kong) {
            None if !i.mapping.is_empty() => {
                return fail(
                    "input.mapping",
                    "applies to gateway formats (kong, apisix, tyk, mapping), not to format = \"json\""
                        .into(),
                );
            }
            None => {}
            Some(base) => {
                if let Err((key, message)) = i.mapping.over(base).validate() {
                    return fail(&format!("input.mapping.{key}"), message);
                }
            }
        }
        if self.kafka.topics.is_empty() || self.kafka.topics.iter().any(String::is_empty) {
            return fail("kafka.topics", "list at least one topic".into());
        }
        if self.kafka.brokers.trim().is_empty() || self.kafka.group_id.is_empty() {
            return fail("kafka.brokers", "brokers and group_id must be set".into());
        }
        if self
            .kafka
            .group_instance_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return fail(
                "kafka.group_instance_id",
                "is empty (leave it out for dynamic membership)".into(),
            );
        }
        if self.kafka.threads == Some(0) {
            return fail(
                "kafka.threads",
                "must be at least 1 (leave it out for one per core)".into(),
            );
        }
        if self.alerts.queue_capacity == 0 {
            return fail("alerts.queue_capacity", "must be positive".into());
        }
        if let Err(e) = self.alerts.validate_sinks() {
            return fail(&format!("alerts.{}", e.field), e.message);
        }
        if self.state.sparse_calls > MAX_SPARSE_CALLS {
            return fail(
                "state.sparse_calls",
                format!(
                    "must be at most {MAX_SPARSE_CALLS} (a sparse client is rebuilt from its calls \
                     at each evaluation)"
                ),
            );
        }
        if !self.state.pack_after.is_zero() && self.state.pack_after < MIN_PACK_AFTER {
            return fail(
                "state.pack_after",
                "must be 0 (never pack) or at least 3h (longer than the minute windows and the \
                 allowed lateness, which a packed client no longer keeps)"
                    .into(),
            );
        }
        if self.state.max_clients == 0 {
            return fail("state.max_clients", "must be positive".into());
        }
        let ck = &self.state.checkpoint;
        if ck.store.is_some() {
            if ck.interval < Duration::from_secs(1) {
                return fail("state.checkpoint.interval", "at least 1s".into());
            }
            if ck.fallback == Fallback::Replay && ck.replay_history.is_zero() {
                return fail(
                    "state.checkpoint.replay_history",
                    "must be positive with fallback = \"replay\"".into(),
                );
            }
        }
        if self
            .http
            .api_token_file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            return fail(
                "http.api_token_file",
                "is empty (leave it out for an open API)".into(),
            );
        }
        if let Err(e) = self.detect.validate() {
            return fail(&e.field, e.message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::parse("", Path::new("o.toml")).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = toml::to_string(&Config::default()).unwrap();
        assert_eq!(
            Config::parse(&text, Path::new("o.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn environment_overrides_keys() {
        let vars = [
            ("OVERAGE_KAFKA__BROKERS", "10.0.0.1:9092,10.0.0.2:9092"),
            ("OVERAGE_DETECT__ALERT_AT", "1.8"),
            ("OVERAGE_KAFKA__OPTIONS__SASL.PASSWORD", "12345"),
            ("OVERAGE_KAFKA__GROUP_ID", "true"),
            ("OVERAGE_CONFIG", "ignored.toml"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = Config::default()
            .with_env(vars.into_iter(), Path::new("o.toml"))
            .unwrap();
        assert_eq!(c.kafka.brokers, "10.0.0.1:9092,10.0.0.2:9092");
        assert_eq!(c.detect.alert_at, 1.8);
        // strings stay strings, even when they look like TOML numbers or booleans
        assert_eq!(c.kafka.options["sasl.password"], "12345");
        assert_eq!(c.kafka.group_id, "true");

        let bad = [("OVERAGE_DETECT__ALERT_AT".to_string(), "high".to_string())];
        let e = Config::default()
            .with_env(bad.into_iter(), Path::new("o.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("OVERAGE_DETECT__ALERT_AT"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_precise() {
        let e = Config::parse("[detect]\nalert_at = 1.5\nalrt = 2\n", Path::new("o.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("o.toml:3:"), "{e}");
        assert!(e.contains("alrt"), "{e}");

        let e = Config::parse(
            "[detect.over_contract]\nwindows = [{ short = \"30m\", long = \"5m\" }]\n",
            Path::new("o.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("detect.over_contract.windows[0]"), "{e}");

        let e = Config::parse("[input]\nallowed_lateness = \"2h\"\n", Path::new("o.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("input.allowed_lateness"), "{e}");

        let e = Config::parse("[kafka]\nthreads = 0\n", Path::new("o.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("field `kafka.threads`: must be at least 1"),
            "{e}"
        );
        let e = Config::parse("[kafka]\ngroup_instance_id = \" \"\n", Path::new("o.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("field `kafka.group_instance_id`: is empty"),
            "{e}"
        );
        let c = Config::parse("[kafka]\nthreads = 3\n", Path::new("o.toml")).unwrap();
        assert_eq!(c.kafka.worker_threads(), 3);
        let e = Config::parse("[state]\nsparse_calls = 65\n", Path::new("o.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("field `state.sparse_calls`: must be at most 64"),
            "{e}"
        );
        let e = Config::parse("[state]\npack_after = \"1h\"\n", Path::new("o.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("field `state.pack_after`: must be 0 (never pack) or at least 3h"),
            "{e}"
        );
        for ok in ["0s", "3h"] {
            let text = format!("[state]\npack_after = \"{ok}\"\n");
            Config::parse(&text, Path::new("o.toml")).unwrap();
        }

        let e = Config::parse(
            "[input]\nallowed_lateness = \"soon\"\n",
            Path::new("o.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("o.toml:2:"), "{e}");
    }

    #[test]
    fn dotted_librdkafka_keys_work_from_the_environment_either_way() {
        let vars = [
            ("OVERAGE_KAFKA__OPTIONS__SASL__PASSWORD", "from-shell"),
            ("OVERAGE_KAFKA__OPTIONS__SSL.KEY.PASSWORD", "from-k8s"),
            ("OVERAGE_KAFKA__OPTIONS__SECURITY__PROTOCOL", "SASL_SSL"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = Config::default()
            .with_env(vars.into_iter(), Path::new("o.toml"))
            .unwrap();
        assert_eq!(c.kafka.options["sasl.password"], "from-shell");
        assert_eq!(c.kafka.options["ssl.key.password"], "from-k8s");
        assert_eq!(c.kafka.options["security.protocol"], "SASL_SSL");
        assert_eq!(c.kafka.options.len(), 3);
    }

    #[test]
    fn the_api_token_comes_from_the_environment_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("o.toml");
        std::fs::write(dir.path().join("token"), "  file-token-0123456789\n").unwrap();
        let mut h = HttpConfig {
            api_token_file: Some("token".into()),
            ..Default::default()
        };
        // relative to the config file; the content trimmed
        h.load_token(None, &config_path).unwrap();
        assert_eq!(
            h.api_token.as_ref().unwrap().expose(),
            b"file-token-0123456789"
        );
        assert_eq!(h.api_token_file, Some(dir.path().join("token")));
        assert!(h.is_protected());
        // the environment wins
        h.load_token(Some("env-token-0123456789".into()), &config_path)
            .unwrap();
        assert_eq!(
            h.api_token.as_ref().unwrap().expose(),
            b"env-token-0123456789"
        );
        assert!(!format!("{h:?}").contains("env-token"), "{h:?}");
        // never serialized
        let text = toml::to_string(&h).unwrap();
        assert!(
            !text.contains("env-token") && !text.contains("api_token ="),
            "{text}"
        );

        let err = |h: &mut HttpConfig, env: Option<&str>| {
            h.load_token(env.map(str::to_owned), &config_path)
                .unwrap_err()
                .to_string()
        };
        let e = err(&mut h, Some("short"));
        assert!(
            e.contains("OVERAGE_API_TOKEN") && e.contains("shorter than 16"),
            "{e}"
        );
        assert!(!e.contains("short\""), "{e}");
        let e = err(&mut h, Some("   "));
        assert!(e.contains("is empty"), "{e}");
        let mut missing = HttpConfig {
            api_token_file: Some("/nonexistent/token".into()),
            ..Default::default()
        };
        let e = err(&mut missing, None);
        assert!(
            e.contains("http.api_token_file") && e.contains("/nonexistent/token: cannot read"),
            "{e}"
        );
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let mut empty = HttpConfig {
            api_token_file: Some(dir.path().join("empty")),
            ..Default::default()
        };
        let e = err(&mut empty, None);
        assert!(
            e.contains("http.api_token_file") && e.contains("is empty"),
            "{e}"
        );

        let e = Config::parse("[http]\napi_token_file = \"\"\n", Path::new("o.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.api_token_file"), "{e}");
    }

    #[test]
    fn an_open_api_on_a_public_address_is_warned_about() {
        let mut h = HttpConfig::default();
        assert_eq!(h.exposure_warning(), None);
        h.listen = "0.0.0.0:9464".parse().unwrap();
        let w = h.exposure_warning().unwrap();
        assert!(
            w.contains("0.0.0.0:9464") && w.contains("no API token"),
            "{w}"
        );
        h.api_token = Some(ApiToken::new("0123456789abcdef").unwrap());
        assert_eq!(h.exposure_warning(), None);
    }

    #[test]
    fn store_locations_parse_or_say_why_not() {
        let parse = |s: &str| s.parse::<StoreLocation>();
        assert_eq!(
            parse("/var/lib/x"),
            Ok(StoreLocation::Dir("/var/lib/x".into()))
        );
        assert_eq!(
            parse("file:///tmp/c"),
            Ok(StoreLocation::Dir("/tmp/c".into()))
        );
        assert_eq!(parse("memory://"), Ok(StoreLocation::Memory));
        assert!(matches!(
            parse("s3://bucket/prefix"),
            Ok(StoreLocation::Url(_))
        ));
        assert!(parse("gopher://x")
            .unwrap_err()
            .contains("unsupported scheme"));
        assert!(parse("s3:///nobucket").unwrap_err().contains("bucket"));
        assert!(parse("  ").is_err());
        // in a file, the error says where
        let err = Config::parse(
            "[state.checkpoint]\nstore = \"gopher://x\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("c.toml:2:") && err.contains("unsupported scheme `gopher`"),
            "{err}"
        );
    }

    #[test]
    fn redacted_hides_secrets_and_parse_errors_do_not_echo_them() {
        let text = r#"
[kafka.options]
"sasl.username" = "overage"
"sasl.password" = "hunter2-kafka"
"ssl.key.password" = "hunter2-key"
[state.checkpoint.options]
aws_secret_access_key = "hunter2-s3"
[alerts.alertmanager]
urls = ["http://ops:hunter2-am@am:9093"]
"#;
        let c = Config::parse(text, Path::new("o.toml")).unwrap();
        let shown = toml::to_string(&c.redacted()).unwrap() + &format!("{:?}", c.redacted());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("overage") && shown.contains("am:9093"),
            "{shown}"
        );
        assert_eq!(c.kafka.options["sasl.password"], "hunter2-kafka"); // the original is intact

        let e = Config::parse(
            "[kafka.options]\n\"sasl.password\" = 918273645\n",
            Path::new("o.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("o.toml:2:") && !e.contains("918273645"),
            "{e}"
        );
        // other type errors still say what was wrong
        let e = Config::parse("[detect]\nalert_at = \"high\"\n", Path::new("o.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("high"), "{e}");
    }
}
