//! Kong Gateway's log JSON (kafka-log / http-log / file-log plugins) as access events.
//!
//! Providers that front their API with Kong already publish one JSON document per request, so
//! overage reads it as is rather than asking for a translation job. The billed client is the
//! Kong consumer (its `custom_id`, `username` or `id`, in a configurable order; 0.x logged only
//! `authenticated_entity.consumer_id`), falling back to a request header such as the API key
//! when no consumer was authenticated. The product is the service's name (else its host or id;
//! 0.x: the API's name), the endpoint the route's first path (else its name, 0.x the API's first
//! URI, else the request path). Kong 0.x wrote sizes as strings, later versions as numbers; both
//! are read. With batching enabled Kong sends a JSON array of such documents in one message.
//!
//! This is a built-in [`Mapping`]: `[input.mapping]` overrides any field of it, e.g. `units`
//! from a response header.

use serde::Deserialize;

use super::mapping::{Mapping, Paths, TimeFormat, Units};

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

/// The paths Kong's log has, for these options.
pub fn mapping(opts: &KongOptions) -> Mapping {
    let mut client: Vec<String> = opts
        .client_id_from
        .iter()
        .map(|s| {
            match s {
                ClientSource::ConsumerCustomId => "consumer.custom_id",
                ClientSource::ConsumerUsername => "consumer.username",
                ClientSource::ConsumerId => "consumer.id",
            }
            .to_owned()
        })
        .collect();
    if opts.client_id_from.contains(&ClientSource::ConsumerId) {
        // 0.x: the consumer's id, as a string; 1.x+: the credential, naming its consumer
        client.push("authenticated_entity.consumer_id.id".into());
        client.push("authenticated_entity.consumer_id".into());
    }
    if let Some(h) = &opts.client_id_header {
        client.push(format!("request.headers.{h}"));
    }
    let client: Vec<&str> = client.iter().map(String::as_str).collect();
    Mapping {
        client_id: Some(Paths::of(&client)),
        ts: Some(Paths::of(&["started_at"])),
        ts_format: Some(TimeFormat::Auto),
        event_id: Some(Paths::of(&["request.id"])),
        units: Some(Units::Constant(1.0)),
        product: Some(Paths::of(&[
            "service.name",
            "service.host",
            "service.id",
            "api.name",
        ])),
        endpoint: Some(Paths::of(&[
            "route.paths",
            "route.name",
            "api.uris",
            "request.uri",
        ])),
        status: Some(Paths::of(&["response.status"])),
        bytes: Some(Paths::of(&["response.size"])),
        origin_ip: Some(Paths::of(&["client_ip"])),
        origin_country: None,
        origin_asn: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, Event, Format, Reject};

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
        let d = Decoder::new(Format::Kong, 0, &opts, &Mapping::default());
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
