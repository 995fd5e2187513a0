//! Tyk analytics records, as Tyk Pump's Kafka pump writes them, as access events.
//!
//! The pump (`pumps/kafka.go`) sends one JSON message per request, never a batch. The billed
//! client is the key's alias, else the OAuth client, else the (hashed) API key; the product is
//! the API's name (else its id), the endpoint the request path, the origin the caller's IP. The
//! time is RFC 3339 with nanoseconds, in the gateway host's zone. The Kafka pump drops Tyk's
//! GeoIP data and has no response size.

use super::mapping::{Mapping, Paths, TimeFormat, Units};

pub fn mapping() -> Mapping {
    Mapping {
        client_id: Some(Paths::of(&["alias", "oauth_id", "api_key"])),
        ts: Some(Paths::of(&["timestamp"])),
        ts_format: Some(TimeFormat::Rfc3339),
        event_id: None,
        units: Some(Units::Constant(1.0)),
        product: Some(Paths::of(&["api_name", "api_id"])),
        endpoint: Some(Paths::of(&["path", "raw_path"])),
        status: Some(Paths::of(&["response_code"])),
        bytes: None,
        origin_ip: Some(Paths::of(&["ip_address"])),
        origin_country: None,
        origin_asn: None,
    }
}
