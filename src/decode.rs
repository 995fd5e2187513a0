//! Decoding: bytes off the wire (a Kafka message value, a line of a file) into [`Event`]s.
//!
//! This is the only place that trusts nothing. Every way an input can be wrong maps to one
//! [`Reject`] reason from a small fixed set, so that the service can count rejections in a
//! bounded metric label and carry on; nothing here panics or allocates per field unless a JSON
//! string had escapes.
//!
//! Formats: overage's canonical event JSON (a single-pass [`fast`] path for events as producers
//! write them, the serde decoder below for everything else), and gateway logs as
//! they are written, each a built-in [`mapping::Mapping`] of event fields to paths in the log:
//! Kong ([`kong`]), Apache APISIX ([`apisix`]) and Tyk ([`tyk`]); `[input.mapping]` overrides
//! any of their fields or, with `format = "mapping"`, describes any other JSON log. Adding a
//! gateway is one file with its mapping and one line in [`Format`] and [`Format::mapping`].

pub mod apisix;
mod fast;
pub mod kong;
pub mod mapping;
pub mod tyk;

use std::sync::Arc;

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::time::{parse_rfc3339, Millis};

/// Longest accepted `client_id`, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 256;

/// Earliest and latest accepted event times: what RFC 3339 can write (years 0000 to 9999).
/// Epoch milliseconds beyond are no instant a gateway logged, and event-time arithmetic on them
/// (minute boundaries, watermarks) would overflow, so they are `bad_timestamp`.
pub const MIN_TS: Millis = -62_167_219_200_000; // 0000-01-01T00:00:00Z
pub const MAX_TS: Millis = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

/// Largest `units` one call may carry. No API returns a trillion records in one response; a
/// larger value is a corrupt or hostile message, and accepting it would saturate the f32
/// windows (to infinity, and from there NaN ratios) for that client, so it is `bad_units`.
pub const MAX_UNITS: f64 = 1e12;

/// Whether `u` is a number of units one call can carry: finite, `0..=MAX_UNITS`.
pub fn units_ok(u: f64) -> bool {
    (0.0..=MAX_UNITS).contains(&u)
}

/// One API call, as the detectors see it. Strings borrow from the input buffer when they can.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub ts: Millis,
    pub client_id: Cow<'a, str>,
    pub event_id: Option<Cow<'a, str>>,
    pub units: f64,
    pub product: Option<Cow<'a, str>>,
    pub endpoint: Option<Cow<'a, str>>,
    pub status: Option<u16>,
    pub bytes: Option<u64>,
    pub origin_ip: Option<Cow<'a, str>>,
    pub origin_country: Option<Cow<'a, str>>,
    pub origin_asn: Option<u32>,
}

/// Why an input was not turned into an event. The set is closed so metric labels stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    /// Not JSON, not the expected shape, or a field of the wrong type.
    Malformed,
    MissingClientId,
    /// `client_id` longer than [`MAX_CLIENT_ID_BYTES`].
    BadClientId,
    /// `ts` missing, unparseable or of the wrong type.
    BadTimestamp,
    /// `ts` further in the future than the configured skew allows.
    FutureTimestamp,
    /// `units` negative, above [`MAX_UNITS`], not finite or not a number.
    BadUnits,
    /// The message is larger than `max_event_bytes`.
    TooLarge,
}

impl Reject {
    pub const ALL: [Reject; 7] = [
        Reject::Malformed,
        Reject::MissingClientId,
        Reject::BadClientId,
        Reject::BadTimestamp,
        Reject::FutureTimestamp,
        Reject::BadUnits,
        Reject::TooLarge,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::MissingClientId => "missing_client_id",
            Reject::BadClientId => "bad_client_id",
            Reject::BadTimestamp => "bad_timestamp",
            Reject::FutureTimestamp => "future_timestamp",
            Reject::BadUnits => "bad_units",
            Reject::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Input formats overage understands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// overage's canonical access-event JSON, one object per message.
    #[default]
    Json,
    /// Kong Gateway kafka-log / http-log JSON (0.x to 3.x), one object or a batch array.
    Kong,
    /// Apache APISIX kafka-logger JSON (default `meta_format`), one object or a batch array.
    Apisix,
    /// Tyk analytics records as Tyk Pump's Kafka pump writes them.
    Tyk,
    /// Any JSON log, by the paths in `[input.mapping]`.
    Mapping,
}

impl Format {
    /// The built-in mapping of a gateway format (`None` for canonical events), before
    /// `[input.mapping]` overrides.
    pub fn mapping(self, kong: &kong::KongOptions) -> Option<mapping::Mapping> {
        match self {
            Format::Json => None,
            Format::Kong => Some(kong::mapping(kong)),
            Format::Apisix => Some(apisix::mapping()),
            Format::Tyk => Some(tyk::mapping()),
            Format::Mapping => Some(mapping::Mapping::default()),
        }
    }
}

/// Decodes raw messages into events. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    pub format: Format,
    pub max_event_bytes: usize,
    /// The compiled paths of a gateway format.
    mapping: Option<Arc<mapping::Compiled>>,
}

impl Decoder {
    /// A decoder for `format`; `overrides` (`[input.mapping]`) replace fields of a gateway
    /// format's built-in mapping.
    pub fn new(
        format: Format,
        max_event_bytes: usize,
        kong: &kong::KongOptions,
        overrides: &mapping::Mapping,
    ) -> Self {
        Decoder {
            format,
            max_event_bytes,
            mapping: format
                .mapping(kong)
                .map(|base| Arc::new(overrides.over(base).compile())),
        }
    }

    /// Canonical events only.
    pub fn canonical(max_event_bytes: usize) -> Self {
        Decoder {
            format: Format::Json,
            max_event_bytes,
            mapping: None,
        }
    }

    /// Decode one message, calling `sink` once per event or rejection it contains (a Kong batch
    /// array yields several).
    pub fn decode<'a>(&self, bytes: &'a [u8], mut sink: impl FnMut(Result<Event<'a>, Reject>)) {
        if self.max_event_bytes > 0 && bytes.len() > self.max_event_bytes {
            sink(Err(Reject::TooLarge));
            return;
        }
        match &self.mapping {
            None => sink(decode_canonical(bytes)),
            Some(m) => mapping::decode(m, bytes, sink),
        }
    }
}

/// Decode one canonical event: by the [`fast`] path where it can tell, else by serde.
pub fn decode_canonical(bytes: &[u8]) -> Result<Event<'_>, Reject> {
    match fast::raw(bytes) {
        Some(raw) => raw.validate(),
        None => decode_canonical_serde(bytes),
    }
}

/// One canonical event by the serde decoder alone (public for the bench that compares the two
/// paths).
#[doc(hidden)]
pub fn decode_canonical_serde(bytes: &[u8]) -> Result<Event<'_>, Reject> {
    let raw: RawEvent<'_> = serde_json::from_slice(bytes).map_err(|_| Reject::Malformed)?;
    raw.validate()
}

/// Fields as they came, before validation, so each problem can be named precisely.
#[derive(Default)]
struct RawEvent<'a> {
    ts: RawTs,
    client_id: Option<Cow<'a, str>>,
    event_id: Option<Cow<'a, str>>,
    units: RawUnits,
    product: Option<Cow<'a, str>>,
    endpoint: Option<Cow<'a, str>>,
    status: Option<u16>,
    bytes: Option<u64>,
    origin_ip: Option<Cow<'a, str>>,
    origin_country: Option<Cow<'a, str>>,
    origin_asn: Option<u32>,
}

impl<'a> RawEvent<'a> {
    fn validate(self) -> Result<Event<'a>, Reject> {
        let client_id = match self.client_id {
            None => return Err(Reject::MissingClientId),
            Some(c) if c.is_empty() => return Err(Reject::MissingClientId),
            Some(c) if c.len() > MAX_CLIENT_ID_BYTES => return Err(Reject::BadClientId),
            Some(c) => c,
        };
        let ts = match self.ts {
            RawTs::Ok(ts) => ts,
            RawTs::Missing | RawTs::Invalid => return Err(Reject::BadTimestamp),
        };
        let units = match self.units {
            RawUnits::Missing => 1.0,
            RawUnits::Ok(u) if units_ok(u) => u,
            RawUnits::Ok(_) | RawUnits::Invalid => return Err(Reject::BadUnits),
        };
        Ok(Event {
            ts,
            client_id,
            event_id: self.event_id,
            units,
            product: self.product,
            endpoint: self.endpoint,
            status: self.status,
            bytes: self.bytes,
            origin_ip: self.origin_ip,
            origin_country: self.origin_country,
            origin_asn: self.origin_asn,
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawEvent<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RawEventVisitor(std::marker::PhantomData))
    }
}

struct RawEventVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for RawEventVisitor<'a> {
    type Value = RawEvent<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an access event object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut ev = RawEvent::default();
        while let Some(key) = map.next_key::<CowStr<'_>>()? {
            match key.0.as_ref() {
                "ts" => ev.ts = map.next_value()?,
                "client_id" => ev.client_id = map.next_value::<Option<CowStr>>()?.map(|c| c.0),
                "event_id" => ev.event_id = map.next_value::<Option<CowStr>>()?.map(|c| c.0),
                "units" => ev.units = map.next_value()?,
                "product" => ev.product = map.next_value::<Option<CowStr>>()?.map(|c| c.0),
                "endpoint" => ev.endpoint = map.next_value::<Option<CowStr>>()?.map(|c| c.0),
                "status" => ev.status = map.next_value()?,
                "bytes" => ev.bytes = map.next_value()?,
                "origin_ip" => ev.origin_ip = map.next_value::<Option<CowStr>>()?.map(|c| c.0),
                "origin_country" => {
                    ev.origin_country = map.next_value::<Option<CowStr>>()?.map(|c| c.0)
                }
                "origin_asn" => ev.origin_asn = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(ev)
    }
}

/// A string that borrows from the input when it has no escapes. (serde's own `Cow<str>` impl
/// always allocates.)
pub(crate) struct CowStr<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// `ts` as found: a valid instant, or a reason it is not one. Wrong types are a timestamp
/// problem (`bad_timestamp`), not a malformed message.
#[derive(Default)]
enum RawTs {
    #[default]
    Missing,
    Invalid,
    Ok(Millis),
}

impl RawTs {
    /// A timestamp given as text (RFC 3339).
    fn parse(text: &str) -> RawTs {
        parse_rfc3339(text).map_or(RawTs::Invalid, RawTs::checked)
    }

    fn checked(ms: Millis) -> RawTs {
        if (MIN_TS..=MAX_TS).contains(&ms) {
            RawTs::Ok(ms)
        } else {
            RawTs::Invalid
        }
    }
}

impl<'de> Deserialize<'de> for RawTs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 string or epoch milliseconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTs, E> {
                Ok(RawTs::parse(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawTs, E> {
                Ok(i64::try_from(v).map_or(RawTs::Invalid, RawTs::checked))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawTs, E> {
                Ok(RawTs::checked(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawTs, E> {
                if v.is_finite() && v.abs() < 9.0e15 {
                    Ok(RawTs::checked(v as i64))
                } else {
                    Ok(RawTs::Invalid)
                }
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawTs, E> {
                Ok(RawTs::Invalid)
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawTs, E> {
                Ok(RawTs::Missing)
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<RawTs, M::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawTs::Invalid)
            }
            fn visit_seq<S: de::SeqAccess<'de>>(self, mut s: S) -> Result<RawTs, S::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawTs::Invalid)
            }
        }
        d.deserialize_any(V)
    }
}

/// `units` as found. Anything that is not a number is `bad_units`.
#[derive(Default)]
enum RawUnits {
    #[default]
    Missing,
    Invalid,
    Ok(f64),
}

impl<'de> Deserialize<'de> for RawUnits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawUnits;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawUnits, E> {
                Ok(RawUnits::Ok(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawUnits, E> {
                Ok(RawUnits::Ok(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawUnits, E> {
                Ok(RawUnits::Ok(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawUnits, E> {
                Ok(RawUnits::Missing)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawUnits, E> {
                Ok(RawUnits::Invalid)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawUnits, E> {
                Ok(RawUnits::Invalid)
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<RawUnits, M::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawUnits::Invalid)
            }
            fn visit_seq<S: de::SeqAccess<'de>>(self, mut s: S) -> Result<RawUnits, S::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawUnits::Invalid)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<Event<'_>, Reject> {
        decode_canonical(s.as_bytes())
    }

    #[test]
    fn full_event_borrows_strings() {
        let e = dec(
            r#"{"ts":"2026-09-10T14:20:00Z","client_id":"msft-bing","event_id":"e1",
            "units":250,"product":"search","endpoint":"/2/tweets/search/recent","status":200,
            "bytes":1234,"origin_ip":"10.0.0.1","origin_country":"US","origin_asn":8075,
            "extra":{"nested":[1,2,3]}}"#,
        )
        .unwrap();
        assert_eq!(e.ts, 1_789_050_000_000);
        assert!(matches!(e.client_id, Cow::Borrowed("msft-bing")));
        assert_eq!(e.units, 250.0);
        assert_eq!(e.status, Some(200));
        assert_eq!(e.origin_asn, Some(8075));
        assert_eq!(e.origin_country.as_deref(), Some("US"));
    }

    #[test]
    fn defaults_and_epoch_millis() {
        let e = dec(r#"{"ts":1789050000000,"client_id":"a"}"#).unwrap();
        assert_eq!(e.ts, 1_789_050_000_000);
        assert_eq!(e.units, 1.0);
        assert!(e.product.is_none());
        let e = dec(r#"{"ts":1789050000000,"client_id":"a\u00e9","units":null}"#).unwrap();
        assert_eq!(e.client_id, "aé");
        assert_eq!(e.units, 1.0);
    }

    #[test]
    fn each_problem_has_its_reason() {
        let cases = [
            ("not json", Reject::Malformed),
            (r#"{"ts":1,"client_id":"a""#, Reject::Malformed),
            ("[1,2]", Reject::Malformed),
            ("42", Reject::Malformed),
            (
                r#"{"ts":1,"client_id":"a","status":"abc"}"#,
                Reject::Malformed,
            ),
            (r#"{"ts":1,"client_id":7}"#, Reject::Malformed),
            (r#"{"ts":1}"#, Reject::MissingClientId),
            (r#"{"ts":1,"client_id":""}"#, Reject::MissingClientId),
            (r#"{"client_id":"a"}"#, Reject::BadTimestamp),
            (
                r#"{"ts":"yesterday","client_id":"a"}"#,
                Reject::BadTimestamp,
            ),
            (r#"{"ts":true,"client_id":"a"}"#, Reject::BadTimestamp),
            (r#"{"ts":{"a":1},"client_id":"a"}"#, Reject::BadTimestamp),
            (r#"{"ts":1,"client_id":"a","units":-1}"#, Reject::BadUnits),
            (
                r#"{"ts":1,"client_id":"a","units":2.5e44}"#,
                Reject::BadUnits,
            ),
            (
                r#"{"ts":1,"client_id":"a","units":1000000000001}"#,
                Reject::BadUnits,
            ),
            (r#"{"ts":1,"client_id":"a","units":"5"}"#, Reject::BadUnits),
            (r#"{"ts":1,"client_id":"a","units":[5]}"#, Reject::BadUnits),
        ];
        for (input, want) in cases {
            assert_eq!(dec(input).err(), Some(want), "{input}");
        }
        let long = format!(r#"{{"ts":1,"client_id":"{}"}}"#, "x".repeat(257));
        assert_eq!(dec(&long).err(), Some(Reject::BadClientId));
        let ok = format!(r#"{{"ts":1,"client_id":"{}"}}"#, "x".repeat(256));
        assert!(dec(&ok).is_ok());
    }

    #[test]
    fn timestamps_beyond_rfc3339_years_are_bad() {
        // i64::MAX ms used to be accepted, and the engine's minute arithmetic on it overflowed
        // (a panic with overflow checks, a wrapped watermark without)
        for ts in [
            "9223372036854775807",
            "-9223372036854775808",
            "253402300800000",
            "-62167219200001",
            "8.9e15",
            "\"+10000-01-01T00:00:00Z\"",
        ] {
            let line = format!(r#"{{"ts":{ts},"client_id":"a"}}"#);
            assert_eq!(dec(&line).err(), Some(Reject::BadTimestamp), "{ts}");
        }
        for (ts, want) in [
            ("253402300799999", MAX_TS),
            ("-62167219200000", MIN_TS),
            ("\"9999-12-31T23:59:59.999Z\"", MAX_TS),
            ("\"0000-01-01T00:00:00Z\"", MIN_TS),
        ] {
            let line = format!(r#"{{"ts":{ts},"client_id":"a"}}"#);
            assert_eq!(dec(&line).map(|e| e.ts), Ok(want), "{ts}");
        }
    }

    #[test]
    fn size_limit_applies_before_parsing() {
        let d = Decoder::canonical(16);
        let mut got = vec![];
        d.decode(br#"{"ts":1,"client_id":"abc"}"#, |r| got.push(r.err()));
        assert_eq!(got, vec![Some(Reject::TooLarge)]);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_canonical(&bytes);
        }

        #[test]
        fn valid_events_round_trip(client in "[a-zA-Z0-9_.-]{1,64}", ts in 0i64..4_000_000_000_000, units in 0u32..1_000_000) {
            let line = serde_json::json!({"ts": ts, "client_id": client, "units": units}).to_string();
            let e = decode_canonical(line.as_bytes()).unwrap();
            proptest::prop_assert_eq!(e.ts, ts);
            proptest::prop_assert_eq!(e.client_id.as_ref(), client.as_str());
            proptest::prop_assert_eq!(e.units, units as f64);
        }
    }
}
