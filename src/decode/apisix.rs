//! Apache APISIX's `kafka-logger` JSON (default `meta_format`) as access events.
//!
//! APISIX batches by default (`batch_max_size` 1000): each Kafka message is a JSON array of
//! entries, even of one; with `batch_max_size = 1` a bare object. The billed client is the authenticated consumer (`consumer.username`); overrides in
//! `[input.mapping]` add fallbacks such as a key header (`request.headers.apikey`) or the route
//! (`route_id`). The product is the service (else the route: `service_id` is `""` for routes
//! without one), the endpoint the request path
//! with its query string stripped, the origin the client IP.

use super::mapping::{Mapping, Paths, TimeFormat, Units};

pub fn mapping() -> Mapping {
    Mapping {
        client_id: Some(Paths::of(&["consumer.username"])),
        ts: Some(Paths::of(&["start_time"])),
        ts_format: Some(TimeFormat::EpochMs),
        event_id: Some(Paths::of(&["request.headers.x-request-id"])),
        units: Some(Units::Constant(1.0)),
        product: Some(Paths::of(&["service_id", "route_id"])),
        endpoint: Some(Paths::of(&["request.uri"])),
        status: Some(Paths::of(&["response.status"])),
        bytes: Some(Paths::of(&["response.size"])),
        origin_ip: Some(Paths::of(&["client_ip"])),
        origin_country: None,
        origin_asn: None,
    }
}
