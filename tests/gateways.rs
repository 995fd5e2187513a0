//! Golden fixtures: gateway logs as the gateways' own documentation and source show them
//! (`tests/fixtures/gateways/*.json`, provenance beside each in `*.source.md`), decoded field
//! by field, with the configuration a user would write for them.

use overage::config::Config;
use overage::decode::{Event, Reject};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/gateways/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decode `input` with the `[input]` section `toml` (validated as `overage check` would).
fn decode_with(toml: &str, input: &str) -> Vec<Result<Event<'static>, Reject>> {
    let cfg = Config::parse(toml, std::path::Path::new("overage.toml")).expect("valid config");
    let decoder = cfg.input.decoder();
    let input: &'static str = Box::leak(input.to_owned().into_boxed_str());
    let mut out = vec![];
    decoder.decode(input.as_bytes(), |r| out.push(r));
    out
}

fn one(toml: &str, input: &str) -> Event<'static> {
    let mut all = decode_with(toml, input);
    assert_eq!(all.len(), 1, "one event expected: {all:?}");
    all.remove(0).expect("decodes")
}

#[derive(Debug, PartialEq)]
struct Want {
    client_id: &'static str,
    ts: &'static str,
    event_id: Option<&'static str>,
    units: f64,
    product: Option<&'static str>,
    endpoint: Option<&'static str>,
    status: Option<u16>,
    bytes: Option<u64>,
    origin_ip: Option<&'static str>,
}

fn check(e: &Event<'_>, want: &Want) {
    let got = Want {
        client_id: Box::leak(e.client_id.to_string().into_boxed_str()),
        ts: Box::leak(overage::time::format_rfc3339(e.ts).into_boxed_str()),
        event_id: e
            .event_id
            .as_ref()
            .map(|s| &*Box::leak(s.to_string().into_boxed_str())),
        units: e.units,
        product: e
            .product
            .as_ref()
            .map(|s| &*Box::leak(s.to_string().into_boxed_str())),
        endpoint: e
            .endpoint
            .as_ref()
            .map(|s| &*Box::leak(s.to_string().into_boxed_str())),
        status: e.status,
        bytes: e.bytes,
        origin_ip: e
            .origin_ip
            .as_ref()
            .map(|s| &*Box::leak(s.to_string().into_boxed_str())),
    };
    assert_eq!(&got, want);
}

const KONG: &str = "[input]\nformat = \"kong\"\n";

#[test]
fn kong_0x_api_entity_and_string_sizes() {
    // 0.x: `api` instead of route and service; sizes as strings ("434")
    let e = one(KONG, &fixture("kong-0.x.json"));
    check(
        &e,
        &Want {
            client_id: "demo",
            ts: "2015-06-02T01:50:22.425Z",
            event_id: None,
            units: 1.0,
            product: Some("example-api"),
            endpoint: Some("/get"),
            status: Some(200),
            bytes: Some(434),
            origin_ip: Some("127.0.0.1"),
        },
    );
    // without a consumer object, the consumer id of the authenticated entity
    let mut v: serde_json::Value = serde_json::from_str(&fixture("kong-0.x.json")).unwrap();
    v.as_object_mut().unwrap().remove("consumer");
    let e = one(KONG, &v.to_string());
    assert_eq!(e.client_id, "80f74eef-31b8-45d5-c525-ae532297ea8e");
}

#[test]
fn kong_1x_route_with_null_hosts_and_string_sizes() {
    let e = one(KONG, &fixture("kong-1.x.json"));
    check(
        &e,
        &Want {
            client_id: "demo",
            ts: "2015-06-02T01:50:22.425Z",
            event_id: None,
            units: 1.0,
            product: Some("myservice"),
            endpoint: Some("/example-path"),
            status: Some(200),
            bytes: Some(434),
            origin_ip: Some("127.0.0.1"),
        },
    );
}

#[test]
fn kong_2x_service_without_name_falls_back_to_its_host() {
    let e = one(KONG, &fixture("kong-2.x.json"));
    check(
        &e,
        &Want {
            client_id: "foo",
            ts: "2021-02-25T05:57:48.342Z",
            event_id: None,
            units: 1.0,
            product: Some("httpbin.org"),
            endpoint: Some("/log"),
            status: Some(200),
            bytes: Some(827),
            origin_ip: Some("192.168.144.1"),
        },
    );
    // configurable: the service id instead
    let e = one(
        &format!("{KONG}[input.mapping]\nproduct = [\"service.name\", \"service.id\"]\n"),
        &fixture("kong-2.x.json"),
    );
    assert_eq!(
        e.product.as_deref(),
        Some("167290ee-c682-4ebf-bdea-e49a3ac5e260")
    );
}

#[test]
fn kong_3x_request_id_route_name_and_units_from_a_header() {
    let e = one(KONG, &fixture("kong-3.x.json"));
    check(
        &e,
        &Want {
            client_id: "foo",
            ts: "2024-09-19T22:10:39.538Z",
            event_id: Some("2f6946328ffc4946b8c9120704a4a155"),
            units: 1.0,
            product: Some("example_service"),
            endpoint: Some("/example-route"),
            status: Some(200),
            bytes: Some(9982),
            origin_ip: Some("192.168.65.1"),
        },
    );
    // bytes-billed: units are the response size
    let e = one(
        &format!("{KONG}[input.mapping]\nunits = \"response.size\"\n"),
        &fixture("kong-3.x.json"),
    );
    assert_eq!(e.units, 9982.0);
    // the consumer-id order of [input.kong] still applies
    let e = one(
        &format!("{KONG}[input.kong]\nclient_id_from = [\"consumer_id\"]\n"),
        &fixture("kong-3.x.json"),
    );
    assert_eq!(e.client_id, "ae974d6c-0f8a-4dc5-b701-fa0aa38592bd");
}

#[test]
fn kong_batches_and_broken_payloads() {
    let batch = format!(
        "[{},{},{}]",
        fixture("kong-0.x.json"),
        fixture("kong-3.x.json"),
        "{\"started_at\": 1}"
    );
    let out = decode_with(KONG, &batch);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].as_ref().unwrap().client_id, "demo");
    assert_eq!(out[1].as_ref().unwrap().client_id, "foo");
    assert_eq!(out[2].as_ref().err(), Some(&Reject::MissingClientId));
    let truncated = &fixture("kong-3.x.json")[..200];
    assert_eq!(
        decode_with(KONG, truncated)[0].as_ref().err(),
        Some(&Reject::Malformed)
    );
    let bad_size = fixture("kong-3.x.json").replace("\"size\": 9982", "\"size\": \"lots\"");
    assert_ne!(bad_size, fixture("kong-3.x.json"));
    assert_eq!(
        decode_with(KONG, &bad_size)[0].as_ref().err(),
        Some(&Reject::Malformed)
    );
}

const APISIX: &str = "[input]\nformat = \"apisix\"\n";

#[test]
fn apisix_kafka_logger_entry_and_batch() {
    let e = one(APISIX, &fixture("apisix-kafka-logger.json"));
    check(
        &e,
        &Want {
            client_id: "jack",
            ts: "2023-11-10T06:02:44.550Z",
            event_id: None,
            units: 1.0,
            // service_id is "" (no service): the route
            product: Some("kafka-logger-route"),
            endpoint: Some("/get"),
            status: Some(200),
            bytes: Some(475),
            origin_ip: Some("127.0.0.1"),
        },
    );
    let out = decode_with(APISIX, &fixture("apisix-batch.json"));
    assert_eq!(out.len(), 2);
    let second = out[1].as_ref().unwrap();
    assert_eq!(second.client_id, "rose");
    assert_eq!(
        second.endpoint.as_deref(),
        Some("/get"),
        "query string stripped"
    );
    assert_eq!(second.bytes, Some(513));
    assert_eq!(
        overage::time::format_rfc3339(second.ts),
        "2023-11-10T06:02:46.423Z"
    );
}

#[test]
fn apisix_anonymous_calls_use_the_configured_fallback() {
    let mut v: serde_json::Value =
        serde_json::from_str(&fixture("apisix-kafka-logger.json")).unwrap();
    v.as_object_mut().unwrap().remove("consumer");
    let anon = v.to_string();
    assert_eq!(
        decode_with(APISIX, &anon)[0].as_ref().err(),
        Some(&Reject::MissingClientId)
    );
    let cfg = format!(
        "{APISIX}[input.mapping]\nclient_id = [\"consumer.username\", \"request.headers.apikey\", \"route_id\"]\n"
    );
    assert_eq!(one(&cfg, &anon).client_id, "kafka-logger-route");
}

#[test]
fn tyk_kafka_pump_record() {
    let e = one(
        "[input]\nformat = \"tyk\"\n",
        &fixture("tyk-kafka-pump.json"),
    );
    check(
        &e,
        &Want {
            client_id: "portal-developer@example.com",
            ts: "2024-06-13T15:06:31.508Z",
            event_id: None,
            units: 1.0,
            product: Some("httpbin"),
            endpoint: Some("/get"),
            status: Some(200),
            bytes: None,
            origin_ip: Some("192.168.65.1"),
        },
    );
    // a key without an alias is billed by its (hashed) key; oauth_id "" counts as absent
    let mut v: serde_json::Value = serde_json::from_str(&fixture("tyk-kafka-pump.json")).unwrap();
    v["alias"] = "".into();
    let e = one("[input]\nformat = \"tyk\"\n", &v.to_string());
    assert_eq!(
        e.client_id,
        "5e9d9544a1dcd60001d0ed20a4d2b4c1f0e84e7b9d2d4a3a8c6f7e1b"
    );
}

/// The worked example of the README: Envoy's JSON access log, with the API key from a header a
/// Lua filter or `%REQ(x-api-key)%` adds to the format.
pub const ENVOY_CONFIG: &str = r#"
[input]
format = "mapping"

[input.mapping]
client_id = ["x_api_key", "x_forwarded_for"]
ts = "start_time"
ts_format = "rfc3339"
event_id = "request_id"
product = "authority"
endpoint = "path"
status = "response_code"
bytes = "bytes_sent"
origin_ip = ["x_forwarded_for", "downstream_remote_address"]
"#;

#[test]
fn envoy_access_log_through_a_mapping() {
    let mut v: serde_json::Value =
        serde_json::from_str(&fixture("envoy-json-access-log.json")).unwrap();
    v["x_api_key"] = "partner-7".into();
    let e = one(ENVOY_CONFIG, &v.to_string());
    check(
        &e,
        &Want {
            client_id: "partner-7",
            ts: "2016-04-15T20:17:00.310Z",
            event_id: Some("cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2"),
            units: 1.0,
            product: Some("locations"),
            endpoint: Some("/api/v1/locations"),
            status: Some(204),
            bytes: Some(0),
            origin_ip: Some("10.0.35.28"),
        },
    );
}

#[test]
fn mapping_config_errors_are_precise() {
    let e = Config::parse(
        "[input]\nformat = \"mapping\"\n\n[input.mapping]\nclient_id = \"consumer..name\"\nts = \"t\"\n",
        std::path::Path::new("overage.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("overage.toml:5:"), "{e}");
    assert!(e.contains("`consumer..name` is not a field path"), "{e}");

    let e = Config::parse(
        "[input]\nformat = \"mapping\"\n[input.mapping]\nts = \"t\"\n",
        std::path::Path::new("overage.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("input.mapping.client_id") && e.contains("required"),
        "{e}"
    );

    let e = Config::parse(
        "[input.mapping]\nunits = \"x\"\n",
        std::path::Path::new("overage.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("input.mapping") && e.contains("not to format = \"json\""),
        "{e}"
    );
}
