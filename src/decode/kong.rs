//! Kong Gateway's log JSON (kafka-log / http-log plugins) as access events.
//!
//! Providers that front their API with Kong already publish one JSON document per request, so
//! overage reads it as is rather than asking for a translation job. The billed client is the
//! Kong consumer (its `custom_id`, `username` or `id`, in a configurable order), falling back to
//! a request header such as the API key when no consumer was authenticated. The service name is
//! the product, the route's first path the endpoint. With batching enabled Kong sends a JSON
//! array of such documents in one message.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{CowStr, Event, RawTs, Reject, MAX_CLIENT_ID_BYTES};

/// Where the billed client id comes from, tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    ConsumerCustomId,
    ConsumerUsername,
    ConsumerId,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KongOptions {
    /// Consumer fields tried in order for the client id.
    pub client_id_from: Vec<ClientSource>,
    /// Request header used when no consumer field is set (e.g. `apikey`). Lower-case, as Kong
    /// logs header names.
    pub client_id_header: Option<String>,
}

impl Default for KongOptions {
    fn default() -> Self {
        KongOptions {
            client_id_from: vec![
                ClientSource::ConsumerCustomId,
                ClientSource::ConsumerUsername,
                ClientSource::ConsumerId,
            ],
            client_id_header: None,
        }
    }
}

#[derive(Deserialize)]
struct KongLog<'a> {
    #[serde(borrow, default)]
    consumer: Option<Consumer<'a>>,
    #[serde(borrow, default)]
    request: Option<Request<'a>>,
    #[serde(default)]
    response: Option<Response>,
    #[serde(borrow, default)]
    route: Option<Route<'a>>,
    #[serde(borrow, default)]
    service: Option<Service<'a>>,
    #[serde(borrow, default)]
    client_ip: Option<CowStr<'a>>,
    #[serde(default)]
    started_at: RawTs,
}

#[derive(Deserialize)]
struct Consumer<'a> {
    #[serde(borrow, default)]
    id: Option<CowStr<'a>>,
    #[serde(borrow, default)]
    username: Option<CowStr<'a>>,
    #[serde(borrow, default)]
    custom_id: Option<CowStr<'a>>,
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, default)]
    id: Option<CowStr<'a>>,
    #[serde(borrow, default)]
    uri: Option<CowStr<'a>>,
    /// Parsed only when a header fallback is configured.
    #[serde(borrow, default)]
    headers: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct Route<'a> {
    #[serde(borrow, default)]
    name: Option<CowStr<'a>>,
    #[serde(borrow, default)]
    paths: Option<Vec<CowStr<'a>>>,
}

#[derive(Deserialize)]
struct Service<'a> {
    #[serde(borrow, default)]
    name: Option<CowStr<'a>>,
}

pub(super) fn decode<'a>(
    opts: &KongOptions,
    bytes: &'a [u8],
    mut sink: impl FnMut(Result<Event<'a>, Reject>),
) {
    // A message is one log object or, with batching, an array of them. (Dispatch on the first
    // byte: serde would also read an array positionally into the struct.)
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') => sink(
            serde_json::from_slice::<KongLog<'a>>(bytes)
                .map_err(|_| Reject::Malformed)
                .and_then(|log| to_event(opts, log)),
        ),
        Some(b'[') => match serde_json::from_slice::<Vec<&'a RawValue>>(bytes) {
            // An empty batch holds no event, but the message must still end in an outcome
            // (counted, dead-lettered), not vanish.
            Ok(items) if items.is_empty() => sink(Err(Reject::Malformed)),
            Ok(items) => {
                for item in items {
                    let r = match item.get().as_bytes().first() {
                        Some(b'{') => serde_json::from_str::<KongLog<'a>>(item.get())
                            .map_err(|_| Reject::Malformed)
                            .and_then(|log| to_event(opts, log)),
                        _ => Err(Reject::Malformed),
                    };
                    sink(r);
                }
            }
            Err(_) => sink(Err(Reject::Malformed)),
        },
        _ => sink(Err(Reject::Malformed)),
    }
}

fn to_event<'a>(opts: &KongOptions, log: KongLog<'a>) -> Result<Event<'a>, Reject> {
    let client_id = client_id(opts, &log)?;
    if client_id.len() > MAX_CLIENT_ID_BYTES {
        return Err(Reject::BadClientId);
    }
    let ts = match log.started_at {
        RawTs::Ok(ts) => ts,
        RawTs::Missing | RawTs::Invalid => return Err(Reject::BadTimestamp),
    };
    let endpoint = log
        .route
        .as_ref()
        .and_then(|r| {
            r.paths
                .as_ref()
                .and_then(|p| p.first())
                .map(|p| p.0.clone())
        })
        .or_else(|| {
            log.route
                .as_ref()
                .and_then(|r| r.name.as_ref().map(|n| n.0.clone()))
        })
        .or_else(|| {
            let uri = log.request.as_ref()?.uri.as_ref()?;
            Some(match &uri.0 {
                Cow::Borrowed(s) => Cow::Borrowed(s.split('?').next().unwrap_or(s)),
                Cow::Owned(s) => Cow::Owned(s.split('?').next().unwrap_or(s).to_owned()),
            })
        });
    let (status, bytes) = log.response.map_or((None, None), |r| (r.status, r.size));
    Ok(Event {
        ts,
        client_id,
        event_id: log.request.and_then(|r| r.id).map(|c| c.0),
        units: 1.0,
        product: log.service.and_then(|s| s.name).map(|c| c.0),
        endpoint,
        status,
        bytes,
        origin_ip: log.client_ip.map(|c| c.0),
        origin_country: None,
        origin_asn: None,
    })
}

fn client_id<'a>(opts: &KongOptions, log: &KongLog<'a>) -> Result<Cow<'a, str>, Reject> {
    if let Some(c) = &log.consumer {
        for source in &opts.client_id_from {
            let field = match source {
                ClientSource::ConsumerCustomId => &c.custom_id,
                ClientSource::ConsumerUsername => &c.username,
                ClientSource::ConsumerId => &c.id,
            };
            if let Some(v) = field.as_ref().filter(|v| !v.0.is_empty()) {
                return Ok(v.0.clone());
            }
        }
    }
    if let (Some(header), Some(raw)) = (
        &opts.client_id_header,
        log.request.as_ref().and_then(|r| r.headers),
    ) {
        let headers: HashMap<Cow<'a, str>, serde_json::Value> =
            serde_json::from_str(raw.get()).map_err(|_| Reject::Malformed)?;
        // Kong logs repeated headers as arrays; the first value is the one the gateway used.
        let value = headers.get(header.as_str()).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(a) => a.first().and_then(|f| f.as_str()).map(str::to_owned),
            _ => None,
        });
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            return Ok(Cow::Owned(v));
        }
    }
    Err(Reject::MissingClientId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, Format};

    const LOG: &str = r#"{
      "request": {"id": "req-1", "method": "GET", "uri": "/2/tweets/search/recent?q=x",
                  "headers": {"apikey": "key-123", "host": "api"}, "size": 120},
      "response": {"status": 200, "size": 4096, "headers": {}},
      "route": {"id": "r1", "name": "search-recent", "paths": ["/2/tweets/search/recent"]},
      "service": {"id": "s1", "name": "search"},
      "consumer": {"id": "c0ffee", "username": "msft-bing"},
      "client_ip": "203.0.113.9",
      "started_at": 1789050000000,
      "latencies": {"proxy": 12, "kong": 1, "request": 13}
    }"#;

    fn decode_all(opts: KongOptions, input: &str) -> Vec<Result<Event<'_>, Reject>> {
        let d = Decoder::new(Format::Kong, 0, opts);
        let mut out = vec![];
        d.decode(input.as_bytes(), |r| out.push(r));
        out
    }

    #[test]
    fn maps_kong_fields() {
        let out = decode_all(KongOptions::default(), LOG);
        let e = out[0].as_ref().unwrap();
        assert_eq!(e.client_id, "msft-bing");
        assert_eq!(e.ts, 1_789_050_000_000);
        assert_eq!(e.product.as_deref(), Some("search"));
        assert_eq!(e.endpoint.as_deref(), Some("/2/tweets/search/recent"));
        assert_eq!(e.event_id.as_deref(), Some("req-1"));
        assert_eq!(e.status, Some(200));
        assert_eq!(e.bytes, Some(4096));
        assert_eq!(e.origin_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(e.units, 1.0);
    }

    #[test]
    fn client_source_order_and_header_fallback() {
        let opts = KongOptions {
            client_id_from: vec![ClientSource::ConsumerId],
            client_id_header: None,
        };
        assert_eq!(
            decode_all(opts, LOG)[0].as_ref().unwrap().client_id,
            "c0ffee"
        );

        let anon = LOG.replace(
            r#""consumer": {"id": "c0ffee", "username": "msft-bing"},"#,
            "",
        );
        assert_eq!(
            decode_all(KongOptions::default(), &anon)[0].as_ref().err(),
            Some(&Reject::MissingClientId)
        );
        let opts = KongOptions {
            client_id_header: Some("apikey".into()),
            ..Default::default()
        };
        assert_eq!(
            decode_all(opts, &anon)[0].as_ref().unwrap().client_id,
            "key-123"
        );
    }

    #[test]
    fn batch_arrays_yield_each_entry() {
        let batch = format!("[{LOG}, 17, {LOG}]");
        let out = decode_all(KongOptions::default(), &batch);
        assert_eq!(out.len(), 3);
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().err(), Some(&Reject::Malformed));
        assert!(out[2].is_ok());
    }

    #[test]
    fn empty_batch_is_rejected_not_dropped() {
        // `[]` used to yield no result at all, so the message was neither counted nor
        // dead-lettered
        for input in ["[]", " [ ] ", "[\n]"] {
            let out = decode_all(KongOptions::default(), input);
            assert_eq!(out.len(), 1, "{input:?}");
            assert_eq!(out[0].as_ref().err(), Some(&Reject::Malformed), "{input:?}");
        }
    }

    #[test]
    fn bad_inputs_are_rejected_not_fatal() {
        let out = decode_all(KongOptions::default(), "{\"started_at\":");
        assert_eq!(out[0].as_ref().err(), Some(&Reject::Malformed));
        let no_time = LOG.replace("\"started_at\": 1789050000000,", "");
        assert_eq!(
            decode_all(KongOptions::default(), &no_time)[0]
                .as_ref()
                .err(),
            Some(&Reject::BadTimestamp)
        );
    }
}
