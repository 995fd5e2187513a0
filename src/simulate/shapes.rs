//! The simulated stream as gateways write it: every canonical line re-rendered as a Kong or
//! APISIX log, so the scenario tests can show that a gateway's own log detects exactly what
//! canonical events do.
//!
//! What the gateways do not log natively is carried the way a provider would add it: units as a
//! response header (`x-records-returned`, a string as headers are), country and ASN as custom
//! top-level fields (Kong's `custom_fields_by_lua`, an APISIX `log_format`). [`Shape::input_toml`]
//! is the `[input]` section that reads them back. Half of the Kong logs carry their route (the
//! endpoint from `route.paths`), the other half only the request URI with a query string; Kong
//! sizes alternate between strings (0.x-2.1) and numbers. APISIX entries are batched in arrays of
//! up to [`APISIX_BATCH`], as kafka-logger sends them. Garbage lines become truncated logs
//! (`malformed`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::decode::{decode_canonical, Event};

/// Entries per APISIX message.
pub const APISIX_BATCH: usize = 4;

/// The format `overage simulate` writes its events in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Canonical access events.
    #[default]
    Json,
    /// Kong Gateway http-log / kafka-log JSON.
    Kong,
    /// Apache APISIX kafka-logger JSON, batched.
    Apisix,
}

impl Shape {
    /// The config that reads this shape back into the canonical events (`None` for JSON).
    pub fn input_toml(self) -> Option<&'static str> {
        match self {
            Shape::Json => None,
            Shape::Kong => Some(
                "# Reads the simulated Kong logs (overage simulate --format kong).\n\
                 [input]\nformat = \"kong\"\nmax_future_skew = \"0s\"\n\n\
                 [input.mapping]\nunits = \"response.headers.x-records-returned\"\n\
                 origin_country = \"country\"\norigin_asn = \"asn\"\n",
            ),
            Shape::Apisix => Some(
                "# Reads the simulated APISIX logs (overage simulate --format apisix).\n\
                 [input]\nformat = \"apisix\"\nmax_future_skew = \"0s\"\n\n\
                 [input.mapping]\nunits = \"request.headers.x-records-returned\"\n\
                 product = \"service_id\"\norigin_country = \"country\"\norigin_asn = \"asn\"\n",
            ),
        }
    }
}

/// Turns canonical lines into messages of a shape.
#[derive(Debug, Default)]
pub struct Writer {
    shape: Shape,
    batch: Vec<Value>,
    n: u64,
}

impl Writer {
    pub fn new(shape: Shape) -> Writer {
        Writer {
            shape,
            ..Writer::default()
        }
    }

    /// Feed one canonical line; complete messages are passed to `emit`.
    pub fn line(&mut self, line: &[u8], emit: &mut impl FnMut(&[u8])) {
        if self.shape == Shape::Json {
            return emit(line);
        }
        self.n += 1;
        let Ok(e) = decode_canonical(line) else {
            // garbage stays garbage, alone in its message
            self.flush(emit);
            return emit(br#"{"consumer":{"username":"#);
        };
        match self.shape {
            Shape::Json => unreachable!("handled above"),
            Shape::Kong => emit(kong(&e, self.n).to_string().as_bytes()),
            Shape::Apisix => {
                self.batch.push(apisix(&e));
                if self.batch.len() >= APISIX_BATCH {
                    self.flush(emit);
                }
            }
        }
    }

    /// Emit a partial batch (at the end, or before garbage).
    pub fn flush(&mut self, emit: &mut impl FnMut(&[u8])) {
        if !self.batch.is_empty() {
            let batch = Value::Array(std::mem::take(&mut self.batch));
            emit(batch.to_string().as_bytes());
        }
    }
}

fn with_query(endpoint: &str, n: u64) -> String {
    format!("{endpoint}?max_results={}", 10 + n % 90)
}

/// What both gateways log alike: status and size when known, the caller, the custom fields.
fn common(e: &Event<'_>, log: &mut Map<String, Value>, ip_key: &str) {
    if let Some(ip) = &e.origin_ip {
        log.insert(ip_key.into(), json!(ip));
    }
    if let Some(c) = &e.origin_country {
        log.insert("country".into(), json!(c));
    }
    if let Some(a) = e.origin_asn {
        log.insert("asn".into(), json!(a));
    }
}

fn response(e: &Event<'_>, size: Option<Value>, headers: Option<Map<String, Value>>) -> Value {
    let mut r = Map::new();
    if let Some(s) = e.status {
        r.insert("status".into(), json!(s));
    }
    if let Some(s) = size {
        r.insert("size".into(), s);
    }
    if let Some(h) = headers {
        r.insert("headers".into(), Value::Object(h));
    }
    Value::Object(r)
}

fn units_header(e: &Event<'_>, headers: &mut Map<String, Value>) {
    if e.units != 1.0 {
        headers.insert("x-records-returned".into(), json!(e.units.to_string()));
    }
}

fn kong(e: &Event<'_>, n: u64) -> Value {
    let mut log = Map::new();
    log.insert("started_at".into(), json!(e.ts));
    log.insert("consumer".into(), json!({"username": e.client_id}));
    let mut request = Map::new();
    request.insert("id".into(), json!(e.event_id));
    request.insert("method".into(), json!("GET"));
    request.insert("headers".into(), json!({"host": "api.example.com"}));
    if let Some(ep) = &e.endpoint {
        request.insert("uri".into(), json!(with_query(ep, n)));
        if n % 2 == 0 {
            log.insert(
                "route".into(),
                json!({"paths": [ep], "hosts": null, "id": "r-1"}),
            );
        }
    }
    log.insert("request".into(), Value::Object(request));
    let size = e.bytes.map(|v| {
        if n % 2 == 0 {
            json!(v.to_string())
        } else {
            json!(v)
        }
    });
    let mut headers = Map::new();
    units_header(e, &mut headers);
    log.insert("response".into(), response(e, size, Some(headers)));
    if let Some(p) = &e.product {
        log.insert(
            "service".into(),
            json!({"name": p, "host": "upstream.internal"}),
        );
    }
    common(e, &mut log, "client_ip");
    Value::Object(log)
}

fn apisix(e: &Event<'_>) -> Value {
    let mut headers = Map::new();
    headers.insert("host".into(), json!("api.example.com"));
    if let Some(id) = &e.event_id {
        headers.insert("x-request-id".into(), json!(id));
    }
    units_header(e, &mut headers);
    let mut request = Map::new();
    request.insert("method".into(), json!("GET"));
    request.insert("headers".into(), Value::Object(headers));
    if let Some(ep) = &e.endpoint {
        request.insert("uri".into(), json!(with_query(ep, e.ts as u64)));
    }
    let mut log = Map::new();
    log.insert("start_time".into(), json!(e.ts));
    log.insert("consumer".into(), json!({"username": e.client_id}));
    log.insert("request".into(), Value::Object(request));
    log.insert(
        "response".into(),
        response(e, e.bytes.map(|b| json!(b)), None),
    );
    log.insert("route_id".into(), json!("r-1"));
    log.insert(
        "service_id".into(),
        json!(e.product.as_deref().unwrap_or("")),
    );
    common(e, &mut log, "client_ip");
    Value::Object(log)
}
