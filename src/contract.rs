//! Contracts: what each client bought.
//!
//! The contracts file is edited by account teams, often by hand, and a mistake in it either
//! pages someone at night or hides a real overrun. So it is validated field by field before it
//! replaces the contracts in force, and every error names the file, the line and the field.
//! See the interface spec, section 2, for the format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ahash::AHashMap;
use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use toml::Spanned;

use crate::time::Millis;

/// A validation or parse error, pointing at the offending place.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// One validated contract.
#[derive(Debug, Clone)]
pub struct Contract {
    pub client_id: String,
    pub plan: Option<String>,
    /// Contracted units per `per`.
    pub baseline_units: f64,
    pub per: Millis,
    pub monthly_cap: Option<f64>,
    pub products: Option<Vec<String>>,
    pub endpoints: Option<Vec<EndpointGlob>>,
    pub origin_countries: Option<Vec<String>>,
    pub alert_at: Option<f64>,
    pub page_at: Option<f64>,
    /// Extra labels copied onto this client's alerts (with `plan`).
    pub labels: BTreeMap<String, String>,
    /// Where it was defined, for messages.
    pub line: usize,
}

impl Contract {
    /// Contracted units per millisecond.
    pub fn rate_per_ms(&self) -> f64 {
        self.baseline_units / self.per as f64
    }
}

#[derive(Debug, Clone)]
pub struct EndpointGlob {
    pub pattern: String,
    matcher: GlobMatcher,
}

impl EndpointGlob {
    pub fn is_match(&self, endpoint: &str) -> bool {
        self.matcher.is_match(endpoint)
    }
}

/// All contracts in force, by client id.
#[derive(Debug, Clone, Default)]
pub struct Contracts {
    pub source: Option<PathBuf>,
    list: Vec<Contract>,
    by_client: AHashMap<String, usize>,
}

impl Contracts {
    pub fn get(&self, client_id: &str) -> Option<(usize, &Contract)> {
        let &i = self.by_client.get(client_id)?;
        Some((i, &self.list[i]))
    }

    pub fn by_index(&self, i: usize) -> &Contract {
        &self.list[i]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Contract> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn load(path: &Path) -> Result<Contracts, ContractError> {
        let text = std::fs::read_to_string(path).map_err(|source| ContractError::Io {
            path: path.to_owned(),
            source,
        })?;
        Contracts::parse(&text, path)
    }

    /// Parse and validate contracts text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Contracts, ContractError> {
        let at = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            ContractError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().trim().to_owned())
        })?;
        let mut contracts = Contracts {
            source: Some(path.to_owned()),
            ..Default::default()
        };
        for raw in file.contract {
            let mut c = raw.validate(&at)?;
            c.line = line_col(text, raw.client_id.span().start).0;
            if let Some(&prev) = contracts.by_client.get(&c.client_id) {
                return Err(at(
                    raw.client_id.span().start,
                    format!(
                        "field `client_id`: duplicate contract for \"{}\" (first defined at line {})",
                        c.client_id, contracts.list[prev].line
                    ),
                ));
            }
            contracts
                .by_client
                .insert(c.client_id.clone(), contracts.list.len());
            contracts.list.push(c);
        }
        Ok(contracts)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    contract: Vec<RawContract>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContract {
    client_id: Spanned<String>,
    #[serde(default)]
    plan: Option<String>,
    baseline: Spanned<RawBaseline>,
    #[serde(default)]
    monthly_cap: Option<Spanned<f64>>,
    #[serde(default)]
    products: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    origin_countries: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    alert_at: Option<Spanned<f64>>,
    #[serde(default)]
    page_at: Option<Spanned<f64>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBaseline {
    units: Spanned<f64>,
    per: Spanned<String>,
}

impl RawContract {
    fn validate(
        &self,
        at: &impl Fn(usize, String) -> ContractError,
    ) -> Result<Contract, ContractError> {
        let id = self.client_id.get_ref();
        let who = format!("contract for \"{id}\"");
        let bad = |offset: usize, field: &str, msg: String| {
            at(offset, format!("{who}: field `{field}`: {msg}"))
        };
        if id.is_empty() || id.len() > crate::decode::MAX_CLIENT_ID_BYTES {
            return Err(at(
                self.client_id.span().start,
                "field `client_id`: must be 1 to 256 bytes".into(),
            ));
        }
        let b = self.baseline.get_ref();
        let units = *b.units.get_ref();
        if !(units.is_finite() && units > 0.0) {
            return Err(bad(
                b.units.span().start,
                "baseline.units",
                format!("must be a positive number, got {units}"),
            ));
        }
        let per = humantime::parse_duration(b.per.get_ref())
            .ok()
            .and_then(|d| Millis::try_from(d.as_millis()).ok())
            .filter(|&ms| ms > 0)
            .ok_or_else(|| {
                bad(
                    b.per.span().start,
                    "baseline.per",
                    format!(
                        "must be a duration such as \"1h\" or \"30d\", got {:?}",
                        b.per.get_ref()
                    ),
                )
            })?;
        let monthly_cap = match &self.monthly_cap {
            Some(c) if !(c.get_ref().is_finite() && *c.get_ref() > 0.0) => {
                return Err(bad(
                    c.span().start,
                    "monthly_cap",
                    format!("must be a positive number, got {}", c.get_ref()),
                ))
            }
            Some(c) => Some(*c.get_ref()),
            None => None,
        };
        let alert_at = self.alert_at.as_ref().map(|a| *a.get_ref());
        if let Some(a) = &self.alert_at {
            if !(a.get_ref().is_finite() && *a.get_ref() > 1.0) {
                return Err(bad(
                    a.span().start,
                    "alert_at",
                    format!(
                        "must be a ratio above 1.0 (1.5 = 50% over the baseline), got {}",
                        a.get_ref()
                    ),
                ));
            }
        }
        let page_at = self.page_at.as_ref().map(|a| *a.get_ref());
        if let Some(p) = &self.page_at {
            let floor = alert_at.unwrap_or(1.0);
            if !(p.get_ref().is_finite() && *p.get_ref() > floor) {
                return Err(bad(
                    p.span().start,
                    "page_at",
                    format!("must be above alert_at ({floor}), got {}", p.get_ref()),
                ));
            }
        }
        let products = match &self.products {
            Some(p) if p.get_ref().is_empty() || p.get_ref().iter().any(|s| s.is_empty()) => {
                return Err(bad(
                    p.span().start,
                    "products",
                    "must list at least one non-empty product name (omit the field to allow all)"
                        .into(),
                ))
            }
            Some(p) => Some(p.get_ref().clone()),
            None => None,
        };
        let endpoints = match &self.endpoints {
            Some(list) => {
                if list.get_ref().is_empty() {
                    return Err(bad(
                        list.span().start,
                        "endpoints",
                        "must list at least one glob (omit the field to allow all)".into(),
                    ));
                }
                let mut globs = Vec::new();
                for e in list.get_ref() {
                    let glob = Glob::new(e.get_ref()).map_err(|err| {
                        bad(e.span().start, "endpoints", format!("bad glob: {err}"))
                    })?;
                    globs.push(EndpointGlob {
                        pattern: e.get_ref().clone(),
                        matcher: glob.compile_matcher(),
                    });
                }
                Some(globs)
            }
            None => None,
        };
        let origin_countries = match &self.origin_countries {
            Some(list) => {
                for c in list.get_ref() {
                    let s = c.get_ref();
                    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_uppercase()) {
                        return Err(bad(
                            c.span().start,
                            "origin_countries",
                            format!("{s:?} is not an ISO 3166 alpha-2 code such as \"US\""),
                        ));
                    }
                }
                Some(list.get_ref().iter().map(|c| c.get_ref().clone()).collect())
            }
            None => None,
        };
        Ok(Contract {
            client_id: id.clone(),
            plan: self.plan.clone(),
            baseline_units: units,
            per,
            monthly_cap,
            products,
            endpoints,
            origin_countries,
            alert_at,
            page_at,
            labels: self.labels.clone(),
            line: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[contract]]
client_id = "msft-bing"
plan = "enterprise"
baseline = { units = 120000, per = "1h" }
monthly_cap = 50000000
products = ["search", "timeline"]
endpoints = ["/2/tweets/search/*"]
origin_countries = ["US", "IE"]
alert_at = 1.5
page_at = 3.0

[[contract]]
client_id = "small"
baseline = { units = 100, per = "1m" }
"#;

    fn err(text: &str) -> String {
        Contracts::parse(text, Path::new("contracts.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_the_spec_example() {
        let c = Contracts::parse(GOOD, Path::new("c.toml")).unwrap();
        assert_eq!(c.len(), 2);
        let (_, bing) = c.get("msft-bing").unwrap();
        assert_eq!(bing.per, 3_600_000);
        assert!((bing.rate_per_ms() - 120000.0 / 3_600_000.0).abs() < 1e-12);
        assert!(bing.endpoints.as_ref().unwrap()[0].is_match("/2/tweets/search/recent"));
        assert!(!bing.endpoints.as_ref().unwrap()[0].is_match("/2/users/by/username"));
        assert_eq!(c.get("small").unwrap().1.per, 60_000);
        assert!(c.get("nobody").is_none());
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = err(&GOOD.replace("alert_at = 1.5", "alert_at = 0.8"));
        assert!(e.starts_with("contracts.toml:10:"), "{e}");
        assert!(
            e.contains("field `alert_at`") && e.contains("msft-bing"),
            "{e}"
        );

        let e = err(&GOOD.replace("per = \"1m\"", "per = \"fortnightly\""));
        assert!(e.starts_with("contracts.toml:15:"), "{e}");
        assert!(e.contains("baseline.per"), "{e}");

        let e = err(&GOOD.replace("\"IE\"", "\"Ireland\""));
        assert!(e.starts_with("contracts.toml:9:"), "{e}");

        let e = err(&GOOD.replace("plan = ", "plane = "));
        assert!(e.starts_with("contracts.toml:4:"), "{e}");
        assert!(e.contains("plane"), "{e}");

        let e = err(&GOOD.replace("units = 100,", "units = \"many\","));
        assert!(e.starts_with("contracts.toml:15:"), "{e}");

        let e = err(&GOOD.replace("\"small\"", "\"msft-bing\""));
        assert!(
            e.starts_with("contracts.toml:14:") && e.contains("line 3"),
            "{e}"
        );

        let e = err(&GOOD.replace("page_at = 3.0", "page_at = 1.2"));
        assert!(e.contains("page_at") && e.contains("above alert_at"), "{e}");

        let e = err(&GOOD.replace("monthly_cap = 50000000", "monthly_cap = -5"));
        assert!(e.contains("monthly_cap"), "{e}");

        let e = err("[[contract]]\nclient_id = \"x\"\n");
        assert!(e.contains("baseline"), "{e}");
    }
}
