//! Any JSON access log as events, by configuration: for each event field, the paths in the log
//! that hold it, tried in order.
//!
//! Gateways disagree on where they put the caller, the time or the route, and versions of one
//! gateway disagree with each other (Kong logged sizes as strings in 0.x, numbers later). Rather
//! than code per shape, a [`Mapping`] names the paths (`consumer.username`,
//! `request.headers.x-api-key`, `route.paths`), and Kong, APISIX and Tyk are built-in mappings
//! that `[input.mapping]` can override field by field.
//!
//! Decoding is one pass over the document with no tree built: the paths are compiled into a
//! trie, the deserializer descends only into keys on it and skips the rest, and strings are
//! borrowed from the input unless they hold escapes. Arrays are transparent (a path through
//! one continues into its first element, as Kong's repeated headers and route paths need) unless
//! a numeric segment picks an element (`tags.1`). Values are read leniently, as gateways write
//! them: numbers in strings (`"size": "434"`), ASNs as `AS8075`, `""`, `"-"` and `null` as
//! absent. A field whose value is there but unusable gets the same bounded reason as in
//! canonical events.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::{units_ok, CowStr, Event, Reject, MAX_CLIENT_ID_BYTES, MAX_TS, MAX_UNITS, MIN_TS};
use crate::time::{parse_rfc3339, Millis};

/// Most distinct paths one mapping may read (they are slots filled per event).
pub const MAX_PATHS: usize = 64;
const MAX_SEGMENTS: usize = 16;

/// A dotted path into a JSON document, checked when the config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(Vec<Box<str>>);

impl FieldPath {
    pub fn parse(s: &str) -> Result<FieldPath, String> {
        let segments: Vec<Box<str>> = s.split('.').map(Box::from).collect();
        if s.is_empty() || segments.iter().any(|seg| seg.is_empty()) {
            return Err(format!(
                "`{s}` is not a field path: write it as dot-separated keys, e.g. `consumer.username`"
            ));
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(format!(
                "`{s}` is not a field path: more than {MAX_SEGMENTS} segments"
            ));
        }
        Ok(FieldPath(segments))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// One path or several, tried in order: `"a.b"` or `["a.b", "c"]` in TOML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths(pub Vec<FieldPath>);

impl Paths {
    /// Built-in paths; they are known to be valid.
    pub fn of(paths: &[&str]) -> Paths {
        Paths(
            paths
                .iter()
                .filter_map(|p| FieldPath::parse(p).ok())
                .collect(),
        )
    }
}

impl Serialize for Paths {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|p| p.to_string()))
    }
}

struct PathsVisitor;

impl<'de> Visitor<'de> for PathsVisitor {
    type Value = Paths;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field path such as \"consumer.username\", or a list of them")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Paths, E> {
        FieldPath::parse(v)
            .map(|p| Paths(vec![p]))
            .map_err(E::custom)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Paths, A::Error> {
        let mut paths = vec![];
        while let Some(s) = seq.next_element::<String>()? {
            paths.push(FieldPath::parse(&s).map_err(de::Error::custom)?);
        }
        if paths.is_empty() {
            return Err(de::Error::custom("list at least one field path"));
        }
        Ok(Paths(paths))
    }
}

impl<'de> Deserialize<'de> for Paths {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Paths, D::Error> {
        d.deserialize_any(PathsVisitor)
    }
}

/// Billable units of a call: a constant (`units = 1`) or read from the log
/// (`units = "response.headers.x-records-returned"`). A log without any of the paths counts 1.
#[derive(Debug, Clone, PartialEq)]
pub enum Units {
    Constant(f64),
    From(Paths),
}

impl Serialize for Units {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Units::Constant(c) => s.serialize_f64(*c),
            Units::From(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Units {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Units, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Units;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of units per call, or the field path(s) holding it")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Units, E> {
                if units_ok(v) {
                    Ok(Units::Constant(v))
                } else {
                    Err(E::custom(format_args!(
                        "units per call must be a number from 0 to {MAX_UNITS:e}"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Units, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Units, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Units, E> {
                PathsVisitor.visit_str(v).map(Units::From)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Units, A::Error> {
                PathsVisitor.visit_seq(seq).map(Units::From)
            }
        }
        d.deserialize_any(V)
    }
}

/// How the time field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// RFC 3339 strings, numbers as epoch milliseconds (as canonical events).
    #[default]
    Auto,
    Rfc3339,
    EpochS,
    EpochMs,
    EpochUs,
    EpochNs,
}

/// Where each event field is found. Unset fields are absent from events (or, over a built-in
/// gateway format, keep that format's paths).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mapping {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Paths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<Paths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts_format: Option<TimeFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Paths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<Units>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<Paths>,
    /// Query strings are stripped (`/search?q=x` is `/search`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Paths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Paths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Paths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_ip: Option<Paths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_country: Option<Paths>,
    /// `8075` or `"AS8075"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_asn: Option<Paths>,
}

impl Mapping {
    /// This mapping's fields where set, `base`'s elsewhere.
    pub fn over(&self, base: Mapping) -> Mapping {
        let or = |a: &Option<Paths>, b: Option<Paths>| a.clone().or(b);
        Mapping {
            client_id: or(&self.client_id, base.client_id),
            ts: or(&self.ts, base.ts),
            ts_format: self.ts_format.or(base.ts_format),
            event_id: or(&self.event_id, base.event_id),
            units: self.units.clone().or(base.units),
            product: or(&self.product, base.product),
            endpoint: or(&self.endpoint, base.endpoint),
            status: or(&self.status, base.status),
            bytes: or(&self.bytes, base.bytes),
            origin_ip: or(&self.origin_ip, base.origin_ip),
            origin_country: or(&self.origin_country, base.origin_country),
            origin_asn: or(&self.origin_asn, base.origin_asn),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Mapping::default()
    }

    /// Every path it reads, with the field that reads it (for validation messages).
    fn paths(&self) -> impl Iterator<Item = (Field, &FieldPath)> {
        let units = match &self.units {
            Some(Units::From(p)) => Some(p),
            _ => None,
        };
        [
            (Field::ClientId, self.client_id.as_ref()),
            (Field::Ts, self.ts.as_ref()),
            (Field::EventId, self.event_id.as_ref()),
            (Field::Units, units),
            (Field::Product, self.product.as_ref()),
            (Field::Endpoint, self.endpoint.as_ref()),
            (Field::Status, self.status.as_ref()),
            (Field::Bytes, self.bytes.as_ref()),
            (Field::OriginIp, self.origin_ip.as_ref()),
            (Field::OriginCountry, self.origin_country.as_ref()),
            (Field::OriginAsn, self.origin_asn.as_ref()),
        ]
        .into_iter()
        .flat_map(|(f, p)| {
            p.into_iter()
                .flat_map(move |p| p.0.iter().map(move |p| (f, p)))
        })
    }

    /// Cross-field rules; the error names the `[input.mapping]` key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.client_id.is_none() {
            return Err((
                "client_id",
                "required: the path(s) of the billed client".into(),
            ));
        }
        if self.ts.is_none() {
            return Err(("ts", "required: the path(s) of the request time".into()));
        }
        let mut distinct: Vec<&FieldPath> = vec![];
        for (field, p) in self.paths() {
            if !distinct.contains(&p) {
                distinct.push(p);
            }
            if distinct.len() > MAX_PATHS {
                return Err((
                    field.name(),
                    format!("more than {MAX_PATHS} distinct paths"),
                ));
            }
        }
        Ok(())
    }

    pub fn compile(&self) -> Compiled {
        let mut c = Compiled {
            root: Node::default(),
            slots: 0,
            fields: Default::default(),
            units: match self.units {
                Some(Units::Constant(u)) => Some(u),
                _ => None,
            },
            ts_format: self.ts_format.unwrap_or_default(),
        };
        let mut seen: Vec<FieldPath> = vec![];
        for (field, path) in self.paths() {
            let slot = match seen.iter().position(|p| p == path) {
                Some(i) => i,
                None => {
                    seen.push(path.clone());
                    c.root.insert(&path.0, seen.len() - 1);
                    seen.len() - 1
                }
            };
            c.fields[field as usize].push(slot);
        }
        c.slots = seen.len();
        c
    }
}

/// Event fields a mapping fills; the discriminant indexes [`Compiled::fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ClientId,
    Ts,
    EventId,
    Units,
    Product,
    Endpoint,
    Status,
    Bytes,
    OriginIp,
    OriginCountry,
    OriginAsn,
}
const FIELDS: usize = 11;

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::ClientId => "client_id",
            Field::Ts => "ts",
            Field::EventId => "event_id",
            Field::Units => "units",
            Field::Product => "product",
            Field::Endpoint => "endpoint",
            Field::Status => "status",
            Field::Bytes => "bytes",
            Field::OriginIp => "origin_ip",
            Field::OriginCountry => "origin_country",
            Field::OriginAsn => "origin_asn",
        }
    }
}

/// A mapping ready to decode with: the paths as a trie of slots.
#[derive(Debug, Clone)]
pub struct Compiled {
    root: Node,
    slots: usize,
    /// Per field, its paths' slots in fallback order.
    fields: [Vec<usize>; FIELDS],
    /// Constant units per call, when not read from the log.
    units: Option<f64>,
    ts_format: TimeFormat,
}

#[derive(Debug, Clone, Default)]
struct Node {
    slot: Option<usize>,
    keys: Vec<(Box<str>, Node)>,
    /// Children by array index (numeric segments).
    index: Vec<(usize, Node)>,
}

impl Node {
    fn insert(&mut self, path: &[Box<str>], slot: usize) {
        let Some((first, rest)) = path.split_first() else {
            self.slot = Some(slot);
            return;
        };
        let child = match self.keys.iter().position(|(k, _)| k == first) {
            Some(i) => &mut self.keys[i].1,
            None => {
                self.keys.push((first.clone(), Node::default()));
                &mut self.keys.last_mut().expect("just pushed").1
            }
        };
        child.insert(rest, slot);
        // A numeric segment also selects an array element.
        if let Ok(i) = first.parse::<usize>() {
            let child = match self.index.iter().position(|(k, _)| *k == i) {
                Some(p) => &mut self.index[p].1,
                None => {
                    self.index.push((i, Node::default()));
                    &mut self.index.last_mut().expect("just pushed").1
                }
            };
            child.insert(rest, slot);
        }
    }

    fn key(&self, k: &str) -> Option<&Node> {
        self.keys
            .iter()
            .find(|(key, _)| &**key == k)
            .map(|(_, n)| n)
    }
}

/// A value found at a path.
#[derive(Debug, Clone)]
enum Val<'a> {
    Str(Cow<'a, str>),
    U(u64),
    I(i64),
    F(f64),
    /// A boolean, or an object where a value was expected: present but unusable.
    Other,
}

/// Walks one document along the trie, filling slots.
struct Walk<'n, 's, 'a> {
    node: &'n Node,
    slots: &'s mut [Option<Val<'a>>],
}

impl<'n, 's, 'a> Walk<'n, 's, 'a> {
    fn set(self, v: Val<'a>) {
        if let Some(s) = self.node.slot {
            self.slots[s] = Some(v);
        }
    }
}

impl<'de: 'a, 'n, 's, 'a> DeserializeSeed<'de> for Walk<'n, 's, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'n, 's, 'a> Visitor<'de> for Walk<'n, 's, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            match self.node.key(&key.0) {
                Some(child) => map.next_value_seed(Walk {
                    node: child,
                    slots: &mut *self.slots,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if self.node.keys.is_empty() {
            self.set(Val::Other);
        }
        Ok(())
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        let mut i = 0usize;
        loop {
            let node = match self.node.index.iter().find(|(k, _)| *k == i) {
                Some((_, n)) => Some(n),
                // a path through an array continues into its first element
                None if i == 0 => Some(self.node),
                None => None,
            };
            let more = match node {
                Some(node) => seq
                    .next_element_seed(Walk {
                        node,
                        slots: &mut *self.slots,
                    })?
                    .is_some(),
                None => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.set(Val::Str(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.set(Val::Str(Cow::Owned(v.to_owned())));
        Ok(())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.set(Val::Str(Cow::Owned(v)));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.set(Val::U(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.set(Val::I(v));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.set(Val::F(v));
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        let _ = v;
        self.set(Val::Other);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Decode one message: a log object or, as gateways batch, an array of them.
pub fn decode<'a>(m: &Compiled, bytes: &'a [u8], mut sink: impl FnMut(Result<Event<'a>, Reject>)) {
    // Dispatch on the first byte: the walk would read an array as its first element.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => sink(decode_object(m, bytes)),
        Some(b'[') => match serde_json::from_slice::<Vec<&'a RawValue>>(bytes) {
            // An empty batch holds no event, but the message must still end in an outcome
            // (counted, dead-lettered), not vanish.
            Ok(items) if items.is_empty() => sink(Err(Reject::Malformed)),
            Ok(items) => {
                for item in items {
                    let item = item.get().as_bytes();
                    sink(match item.first() {
                        Some(b'{') => decode_object(m, item),
                        _ => Err(Reject::Malformed),
                    });
                }
            }
            Err(_) => sink(Err(Reject::Malformed)),
        },
        _ => sink(Err(Reject::Malformed)),
    }
}

fn decode_object<'a>(m: &Compiled, bytes: &'a [u8]) -> Result<Event<'a>, Reject> {
    let mut slots: Vec<Option<Val<'a>>> = vec![None; m.slots];
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Walk {
        node: &m.root,
        slots: &mut slots,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|_| Reject::Malformed)?;
    Found { m, slots }.event()
}

/// The values of one document, resolved field by field.
struct Found<'c, 'a> {
    m: &'c Compiled,
    slots: Vec<Option<Val<'a>>>,
}

impl<'a> Found<'_, 'a> {
    /// The first present value among the field's paths.
    fn take(&mut self, f: Field) -> Option<Val<'a>> {
        self.m.fields[f as usize]
            .iter()
            .find_map(|&s| match &self.slots[s] {
                Some(Val::Str(v)) if v.is_empty() || v.as_ref() == "-" => None,
                Some(_) => self.slots[s].clone(),
                None => None,
            })
    }

    /// A text field; numbers are written as text (numeric ids), objects and booleans are not
    /// text: `malformed`, never a silent fall-back to the next path.
    fn text(&mut self, f: Field) -> Result<Option<Cow<'a, str>>, Reject> {
        Ok(match self.take(f) {
            None => None,
            Some(Val::Str(s)) => Some(s),
            Some(Val::U(n)) => Some(Cow::Owned(n.to_string())),
            Some(Val::I(n)) => Some(Cow::Owned(n.to_string())),
            Some(Val::F(n)) => Some(Cow::Owned(n.to_string())),
            Some(Val::Other) => return Err(Reject::Malformed),
        })
    }

    /// An optional integer field: absent is fine, present but not an integer in range is not.
    fn integer<T: TryFrom<u64>>(&mut self, f: Field) -> Result<Option<T>, Reject> {
        let Some(v) = self.take(f) else {
            return Ok(None);
        };
        let n = match v {
            Val::U(n) => Some(n),
            Val::I(n) => u64::try_from(n).ok(),
            Val::F(x) if x.fract() == 0.0 && (0.0..1.8e19).contains(&x) => Some(x as u64),
            Val::Str(s) => {
                let s = s.trim();
                let s = if f == Field::OriginAsn {
                    s.strip_prefix("AS")
                        .or_else(|| s.strip_prefix("as"))
                        .unwrap_or(s)
                } else {
                    s
                };
                s.parse::<u64>().ok()
            }
            _ => None,
        };
        n.and_then(|n| T::try_from(n).ok())
            .map(Some)
            .ok_or(Reject::Malformed)
    }

    fn ts(&mut self) -> Result<Millis, Reject> {
        let v = self.take(Field::Ts).ok_or(Reject::BadTimestamp)?;
        let number = |v: &Val| match v {
            Val::U(n) => Some(*n as f64),
            Val::I(n) => Some(*n as f64),
            Val::F(x) => Some(*x),
            Val::Str(s) => s.trim().parse::<f64>().ok(),
            Val::Other => None,
        };
        let epoch = |scale: f64| {
            number(&v)
                .map(|n| n * scale)
                .filter(|ms| ms.is_finite() && ms.abs() < 9.0e15)
                .map(|ms| ms.floor() as Millis)
        };
        let ms = match self.m.ts_format {
            TimeFormat::Auto => match &v {
                Val::Str(s) => parse_rfc3339(s).or_else(|| epoch(1.0)),
                _ => epoch(1.0),
            },
            TimeFormat::Rfc3339 => match &v {
                Val::Str(s) => parse_rfc3339(s),
                _ => None,
            },
            TimeFormat::EpochS => epoch(1e3),
            TimeFormat::EpochMs => epoch(1.0),
            TimeFormat::EpochUs => epoch(1e-3),
            TimeFormat::EpochNs => epoch(1e-6),
        };
        ms.filter(|ms| (MIN_TS..=MAX_TS).contains(ms))
            .ok_or(Reject::BadTimestamp)
    }

    fn units(&mut self) -> Result<f64, Reject> {
        if let Some(u) = self.m.units {
            return Ok(u);
        }
        let u = match self.take(Field::Units) {
            None => return Ok(1.0),
            Some(Val::U(n)) => n as f64,
            Some(Val::I(n)) => n as f64,
            Some(Val::F(x)) => x,
            Some(Val::Str(s)) => s.trim().parse::<f64>().map_err(|_| Reject::BadUnits)?,
            Some(Val::Other) => return Err(Reject::BadUnits),
        };
        if units_ok(u) {
            Ok(u)
        } else {
            Err(Reject::BadUnits)
        }
    }

    fn event(mut self) -> Result<Event<'a>, Reject> {
        let client_id = self.text(Field::ClientId)?.ok_or(Reject::MissingClientId)?;
        if client_id.len() > MAX_CLIENT_ID_BYTES {
            return Err(Reject::BadClientId);
        }
        let ts = self.ts()?;
        let units = self.units()?;
        let endpoint = self.text(Field::Endpoint)?.map(|e| match e {
            Cow::Borrowed(s) => Cow::Borrowed(s.split('?').next().unwrap_or(s)),
            Cow::Owned(s) => match s.split_once('?') {
                Some((path, _)) => Cow::Owned(path.to_owned()),
                None => Cow::Owned(s),
            },
        });
        Ok(Event {
            ts,
            client_id,
            event_id: self.text(Field::EventId)?,
            units,
            product: self.text(Field::Product)?,
            endpoint,
            status: self.integer(Field::Status)?,
            bytes: self.integer(Field::Bytes)?,
            origin_ip: self.text(Field::OriginIp)?,
            origin_country: self.text(Field::OriginCountry)?,
            origin_asn: self.integer(Field::OriginAsn)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(toml: &str) -> Mapping {
        toml::from_str(toml).unwrap()
    }

    fn decode_all<'a>(m: &Mapping, input: &'a str) -> Vec<Result<Event<'a>, Reject>> {
        let c = m.compile();
        let mut out = vec![];
        decode(&c, input.as_bytes(), |r| out.push(r));
        out
    }

    fn one<'a>(m: &Mapping, input: &'a str) -> Result<Event<'a>, Reject> {
        let mut all = decode_all(m, input);
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    const ENVOY: &str = r#"
        client_id = ["consumer", "request_headers.x-api-key"]
        ts = "start_time"
        event_id = "request_id"
        units = "response_headers.x-records-returned"
        endpoint = "path"
        status = "response_code"
        bytes = "bytes_sent"
        origin_ip = "downstream_remote_address"
    "#;

    #[test]
    fn paths_fallbacks_and_lenient_values() {
        let m = mapping(ENVOY);
        let e = one(
            &m,
            r#"{"start_time":"2026-09-10T14:20:00.250Z","request_id":"r-1",
                "request_headers":{"x-api-key":"key-9"},"consumer":null,
                "response_headers":{"x-records-returned":"42"},
                "path":"/2/tweets/search/recent?query=x","response_code":"200",
                "bytes_sent":1234,"downstream_remote_address":"203.0.113.9:5555",
                "extra":{"deep":[1,{"a":2}]}}"#,
        )
        .unwrap();
        assert_eq!(
            e.client_id, "key-9",
            "null consumer falls back to the header"
        );
        assert!(matches!(e.client_id, Cow::Borrowed(_)));
        assert_eq!(e.ts, 1_789_050_000_250);
        assert_eq!(e.event_id.as_deref(), Some("r-1"));
        assert_eq!(e.units, 42.0);
        assert_eq!(e.endpoint.as_deref(), Some("/2/tweets/search/recent"));
        assert_eq!(e.status, Some(200));
        assert_eq!(e.bytes, Some(1234));
        assert_eq!(e.origin_ip.as_deref(), Some("203.0.113.9:5555"));
        assert_eq!(e.product, None);
    }

    #[test]
    fn arrays_give_their_first_element_unless_indexed() {
        let m = mapping(
            r#"client_id = "who.name"
               ts = "t"
               endpoint = "route.paths"
               product = "tags.1"
               origin_asn = "net""#,
        );
        let e = one(
            &m,
            r#"{"who":[{"name":"a"},{"name":"b"}],"t":5,"route":{"paths":["/x","/y"]},
                "tags":["p0","p1"],"net":"AS8075"}"#,
        )
        .unwrap();
        assert_eq!(e.client_id, "a");
        assert_eq!(e.endpoint.as_deref(), Some("/x"));
        assert_eq!(e.product.as_deref(), Some("p1"));
        assert_eq!(e.origin_asn, Some(8075));
        assert_eq!(e.units, 1.0);
    }

    #[test]
    fn time_formats() {
        for (format, value, want) in [
            ("auto", "1789050000000", 1_789_050_000_000),
            ("auto", "\"2026-09-10T14:20:00Z\"", 1_789_050_000_000),
            ("auto", "\"1789050000000\"", 1_789_050_000_000),
            (
                "rfc3339",
                "\"2026-09-10T16:20:00.123456789+02:00\"",
                1_789_050_000_123,
            ),
            ("epoch_s", "1789050000.5", 1_789_050_000_500),
            ("epoch_s", "\"1789050000\"", 1_789_050_000_000),
            ("epoch_ms", "1789050000000", 1_789_050_000_000),
            ("epoch_us", "1789050000000123", 1_789_050_000_000),
            ("epoch_ns", "1789050000000123456", 1_789_050_000_000),
        ] {
            let m = mapping(&format!(
                "client_id = \"c\"\nts = \"t\"\nts_format = \"{format}\""
            ));
            let doc = format!(r#"{{"c":"x","t":{value}}}"#);
            assert_eq!(one(&m, &doc).map(|e| e.ts), Ok(want), "{format} {value}");
        }
        let m = mapping("client_id = \"c\"\nts = \"t\"\nts_format = \"rfc3339\"");
        for bad in ["1789050000000", "\"yesterday\"", "true", "{}", "null"] {
            let doc = format!(r#"{{"c":"x","t":{bad}}}"#);
            assert_eq!(one(&m, &doc).err(), Some(Reject::BadTimestamp), "{bad}");
        }
        let m = mapping("client_id = \"c\"\nts = \"t\"\nts_format = \"epoch_s\"");
        assert_eq!(
            one(&m, r#"{"c":"x","t":1e300}"#).err(),
            Some(Reject::BadTimestamp),
            "beyond year 9999"
        );
    }

    #[test]
    fn units_constant_field_and_bad_values() {
        let mut m = mapping(ENVOY);
        let base = r#"{"consumer":"c","start_time":1789050000000"#;
        let doc = |extra: &str| format!("{base}{extra}}}");
        assert_eq!(
            one(&m, &doc("")).unwrap().units,
            1.0,
            "absent counts one call"
        );
        let d = doc(r#","response_headers":{"x-records-returned":[7,9]}"#);
        assert_eq!(one(&m, &d).unwrap().units, 7.0);
        for bad in [r#""many""#, "-3", "true", "1e13", r#""2e40""#] {
            let d = doc(&format!(
                r#","response_headers":{{"x-records-returned":{bad}}}"#
            ));
            assert_eq!(one(&m, &d).err(), Some(Reject::BadUnits), "{bad}");
        }
        m.units = Some(Units::Constant(2.5));
        let d = doc(r#","response_headers":{"x-records-returned":"bad"}"#);
        assert_eq!(one(&m, &d).unwrap().units, 2.5);
    }

    #[test]
    fn broken_payloads_get_bounded_reasons() {
        let m = mapping(ENVOY);
        assert_eq!(one(&m, "{\"consumer\":").err(), Some(Reject::Malformed));
        assert_eq!(one(&m, "{} trailing").err(), Some(Reject::Malformed));
        assert_eq!(one(&m, "\"str\"").err(), Some(Reject::Malformed));
        assert_eq!(
            one(&m, r#"{"start_time":1}"#).err(),
            Some(Reject::MissingClientId)
        );
        assert_eq!(
            one(&m, r#"{"consumer":"","start_time":1}"#).err(),
            Some(Reject::MissingClientId)
        );
        let long = format!(r#"{{"consumer":"{}","start_time":1}}"#, "x".repeat(257));
        assert_eq!(one(&m, &long).err(), Some(Reject::BadClientId));
        assert_eq!(
            one(
                &m,
                r#"{"consumer":"c","start_time":1,"response_code":"abc"}"#
            )
            .err(),
            Some(Reject::Malformed)
        );
        assert_eq!(
            one(
                &m,
                r#"{"consumer":"c","start_time":1,"response_code":70000}"#
            )
            .err(),
            Some(Reject::Malformed)
        );
        // present but not a value: malformed, not a silent fall-back to the next path
        for bad in [r#"{"a":1}"#, "true", r#"[{"a":1}]"#] {
            let doc = format!(
                r#"{{"consumer":{bad},"request_headers":{{"x-api-key":"k"}},"start_time":1}}"#
            );
            assert_eq!(one(&m, &doc).err(), Some(Reject::Malformed), "{bad}");
        }
        // numeric ids are ids
        let e = one(&m, r#"{"consumer":7,"start_time":1}"#).unwrap();
        assert_eq!(e.client_id, "7");
        // "-" is how many gateways write an empty value: absent, not an error
        let e = one(&m, r#"{"consumer":"c","start_time":1,"response_code":"-"}"#).unwrap();
        assert_eq!(e.status, None);
        let out = decode_all(
            &m,
            r#"[{"consumer":"c","start_time":1}, 3, {"start_time":1}]"#,
        );
        assert_eq!(out.len(), 3);
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().err(), Some(&Reject::Malformed));
        assert_eq!(out[2].as_ref().err(), Some(&Reject::MissingClientId));
        assert_eq!(
            decode_all(&m, "[]").len(),
            1,
            "an empty batch is one rejection"
        );
    }

    #[test]
    fn config_errors_name_the_path() {
        for (toml, want) in [
            ("client_id = \"a..b\"", "`a..b` is not a field path"),
            ("client_id = \"\"", "is not a field path"),
            ("client_id = []", "at least one"),
            ("units = -1", "from 0 to"),
            ("units = \"x.\"", "`x.` is not a field path"),
            ("ts_format = \"epoch_days\"", "epoch_days"),
            ("clientid = \"a\"", "clientid"),
        ] {
            let e = toml::from_str::<Mapping>(toml).unwrap_err().to_string();
            assert!(e.contains(want), "{toml}: {e}");
        }
        assert_eq!(Mapping::default().validate().unwrap_err().0, "client_id");
        assert_eq!(mapping("client_id = \"a\"").validate().unwrap_err().0, "ts");
        let many: Vec<String> = (0..70).map(|i| format!("\"p{i}\"")).collect();
        let m = mapping(&format!("client_id = [{}]\nts = \"t\"", many.join(",")));
        assert_eq!(m.validate().unwrap_err().0, "client_id");
        assert!(mapping(ENVOY).validate().is_ok());
    }

    #[test]
    fn overrides_replace_only_the_fields_they_set() {
        let base = mapping(ENVOY);
        let m = mapping("units = 3\nproduct = [\"svc\", \"route\"]").over(base.clone());
        assert_eq!(m.client_id, base.client_id);
        assert_eq!(m.units, Some(Units::Constant(3.0)));
        assert_eq!(m.product, Some(Paths::of(&["svc", "route"])));
        let round: Mapping = toml::from_str(&toml::to_string(&m).unwrap()).unwrap();
        assert_eq!(round, m);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let c = mapping(ENVOY).compile();
            let mut n = 0;
            decode(&c, &bytes, |_| n += 1);
            proptest::prop_assert!(n >= 1);
        }
    }
}
