//! The fast path for canonical events as overage and most producers write them: one flat
//! object, keys and strings without escapes, whole numbers. Parsing is most of what replay
//! spends per event, and serde's general machinery (a visitor call per key, per value and per
//! `Option`) is most of parsing; a single pass over such a line is about twice as fast
//! (`pipeline/parse` against `pipeline/parse_serde` in `benches/replay.rs`). Within that pass,
//! the key a producer writes next is tried first as bytes (a line's keys come in one order),
//! and strings are scanned eight bytes at a time.
//!
//! It fills the same [`RawEvent`] the serde decoder does, and `decode_canonical` validates
//! both the same way. Anything it does not take exactly as serde would (an escape, a fraction
//! or exponent, a nested value, a syntax error, bytes that are not UTF-8) returns `None`, and
//! the serde decoder decides: the two paths agree on every input (property-tested below
//! against serde alone).

use std::borrow::Cow;

use super::{RawEvent, RawTs, RawUnits};

/// `bytes` as a [`RawEvent`], or `None` where only the serde decoder can say.
pub(super) fn raw(bytes: &[u8]) -> Option<RawEvent<'_>> {
    // One check of the whole line, not one per string (most of them a few bytes long).
    let text = std::str::from_utf8(bytes).ok()?;
    let mut s = Scan { text, i: 0 };
    let mut ev = RawEvent::default();
    s.ws();
    s.expect(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        // a producer writes its keys in one order: the next one is tried first, as bytes
        let mut next = 0;
        loop {
            let field = match FIELDS.get(next) {
                Some(quoted) if s.rest().starts_with(quoted) => {
                    s.i += quoted.len();
                    Some(next)
                }
                _ => {
                    let key = s.string()?.as_bytes();
                    s.ws();
                    s.expect(b':')?;
                    FIELDS.iter().position(|q| &q[1..q.len() - 2] == key)
                }
            };
            next = field.map_or(next, |f| f + 1);
            s.ws();
            match field {
                Some(TS) => {
                    ev.ts = match s.scalar()? {
                        Scalar::Str(v) => RawTs::parse(v),
                        Scalar::Int(v) => RawTs::checked(v),
                        Scalar::Null => RawTs::Missing,
                        Scalar::Bool => RawTs::Invalid,
                    }
                }
                Some(CLIENT_ID) => ev.client_id = s.text()?,
                Some(EVENT_ID) => ev.event_id = s.text()?,
                Some(UNITS) => {
                    ev.units = match s.scalar()? {
                        Scalar::Int(v) => RawUnits::Ok(v as f64),
                        Scalar::Null => RawUnits::Missing,
                        Scalar::Str(_) | Scalar::Bool => RawUnits::Invalid,
                    }
                }
                Some(PRODUCT) => ev.product = s.text()?,
                Some(ENDPOINT) => ev.endpoint = s.text()?,
                Some(STATUS) => ev.status = s.whole()?,
                Some(BYTES) => ev.bytes = s.whole()?,
                Some(ORIGIN_IP) => ev.origin_ip = s.text()?,
                Some(ORIGIN_COUNTRY) => ev.origin_country = s.text()?,
                Some(ORIGIN_ASN) => ev.origin_asn = s.whole()?,
                _ => {
                    s.scalar()?;
                }
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == bytes.len()).then_some(ev)
}

/// The first byte from `i` that ends a string on this path: its closing quote, an escape or a
/// control character. Eight bytes at a time (the strings of an event are too short for
/// memchr's set-up to pay, and a byte at a time was a fifth of parsing).
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    // Bytes that are zero (`x - 1` borrows into the high bit only there, or above a byte
    // that did; the lowest flagged byte is exact) or, with `n`, less than `n`.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().ok()?);
        let stops = below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
            | below(x, 0x20);
        if stops != 0 {
            return Some(i + (stops.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let tail = b.get(i..)?;
    let len = tail
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    Some(i + len)
}

/// The keys of an event, quoted and with their colon, in the order overage and most producers
/// write them.
const FIELDS: [&[u8]; 11] = [
    b"\"ts\":",
    b"\"client_id\":",
    b"\"event_id\":",
    b"\"units\":",
    b"\"product\":",
    b"\"endpoint\":",
    b"\"status\":",
    b"\"bytes\":",
    b"\"origin_ip\":",
    b"\"origin_country\":",
    b"\"origin_asn\":",
];
const TS: usize = 0;
const CLIENT_ID: usize = 1;
const EVENT_ID: usize = 2;
const UNITS: usize = 3;
const PRODUCT: usize = 4;
const ENDPOINT: usize = 5;
const STATUS: usize = 6;
const BYTES: usize = 7;
const ORIGIN_IP: usize = 8;
const ORIGIN_COUNTRY: usize = 9;
const ORIGIN_ASN: usize = 10;

/// A JSON scalar this path takes as serde would.
enum Scalar<'a> {
    Str(&'a str),
    /// A whole number within `i64` (serde visits it as `u64` or `i64`; every field reading one
    /// treats the two alike).
    Int(i64),
    Null,
    Bool,
}

struct Scan<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn b(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn rest(&self) -> &'a [u8] {
        &self.b()[self.i..]
    }

    fn peek(&self) -> Option<u8> {
        self.b().get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// JSON's whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.i;
        let end = string_end(self.b(), start)?;
        if self.b()[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        // (quotes are ASCII, so both ends are character boundaries)
        self.text.get(start..end)
    }

    /// `-?(0|[1-9][0-9]*)` within `i64`, not followed by a fraction or an exponent.
    fn int(&mut self) -> Option<i64> {
        let negative = self.peek()? == b'-';
        if negative {
            self.i += 1;
        }
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            let d = (c - b'0') as i64;
            v = v.checked_mul(10).and_then(|v| {
                if negative {
                    v.checked_sub(d)
                } else {
                    v.checked_add(d)
                }
            })?;
            self.i += 1;
        }
        let digits = self.i - start;
        // (serde reads `-0` as the float -0.0, which no whole-number field takes)
        if digits == 0 || (digits > 1 && self.b()[start] == b'0') || (negative && v == 0) {
            return None;
        }
        match self.peek() {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(v),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b().get(self.i..end)? == word).then(|| self.i = end)
    }

    fn scalar(&mut self) -> Option<Scalar<'a>> {
        Some(match self.peek()? {
            b'"' => Scalar::Str(self.string()?),
            b'-' | b'0'..=b'9' => Scalar::Int(self.int()?),
            b'n' => self.literal(b"null").map(|_| Scalar::Null)?,
            b't' => self.literal(b"true").map(|_| Scalar::Bool)?,
            b'f' => self.literal(b"false").map(|_| Scalar::Bool)?,
            _ => return None,
        })
    }

    /// An optional string field: a string or `null` (anything else is serde's to reject).
    fn text(&mut self) -> Option<Option<Cow<'a, str>>> {
        match self.peek()? {
            b'"' => Some(Some(Cow::Borrowed(self.string()?))),
            b'n' => self.literal(b"null").map(|_| None),
            _ => None,
        }
    }

    /// An optional whole-number field: a number that fits `T`, or `null`.
    fn whole<T: TryFrom<i64>>(&mut self) -> Option<Option<T>> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => T::try_from(self.int()?).ok().map(Some),
            b'n' => self.literal(b"null").map(|_| None),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{decode_canonical_serde as serde, Event, RawEvent, Reject};
    use super::raw;

    fn fast(bytes: &[u8]) -> Option<Result<Event<'_>, Reject>> {
        raw(bytes).map(RawEvent::validate)
    }

    /// Values a field may hold: the usual, and every kind this path must leave to serde.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (0i64..4_000_000_000_000).prop_map(|v| v.to_string()),
            1 => any::<i64>().prop_map(|v| v.to_string()),
            1 => "(-?[0-9]{1,25})(\\.[0-9]{0,3})?([eE][-+]?[0-9]{1,3})?",
            2 => prop_oneof![
                Just("0"), Just("-0"), Just("-1"), Just("65535"), Just("65536"),
                Just("4294967295"), Just("4294967296"), Just("9223372036854775807"),
                Just("9223372036854775808"), Just("-9223372036854775808"),
                Just("-9223372036854775809"), Just("18446744073709551616"),
            ].prop_map(String::from),
            4 => "\"[a-zA-Z0-9 /:._-]{0,24}\"",
            1 => "\"[^\"]{0,8}\"",
            1 => "\"(\\\\[\"\\\\/bfnrtu]|[a-z]){0,6}\"",
            1 => Just("\"2026-09-10T14:20:00.123Z\"".to_string()),
            1 => Just("\"2026-09-10T14:20:00+02:00\"".to_string()),
            1 => prop_oneof![Just("null"), Just("true"), Just("false"), Just("nul"), Just("[1,2]"), Just("{\"a\":1}")].prop_map(String::from),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => prop_oneof![
                Just("ts"), Just("client_id"), Just("event_id"), Just("units"),
                Just("product"), Just("endpoint"), Just("status"), Just("bytes"),
                Just("origin_ip"), Just("origin_country"), Just("origin_asn"),
            ].prop_map(String::from),
            1 => "[a-z_]{1,8}",
            1 => Just("client\\u005fid".to_string()),
        ]
    }

    /// A field as producers write it, or any key with any value.
    fn field() -> impl Strategy<Value = (String, String)> {
        let text = "\"[a-zA-Z0-9 /:._-]{0,24}\"";
        let typed = prop_oneof![
            Just("client_id"),
            Just("event_id"),
            Just("product"),
            Just("endpoint"),
            Just("origin_ip"),
            Just("origin_country"),
        ]
        .prop_flat_map(move |k| (Just(k.to_string()), text));
        let whole = prop_oneof![
            Just("units"),
            Just("status"),
            Just("bytes"),
            Just("origin_asn"),
            Just("ts")
        ]
        .prop_flat_map(|k| {
            (
                Just(k.to_string()),
                (0i64..100_000).prop_map(|v| v.to_string()),
            )
        });
        prop_oneof![3 => typed, 3 => whole, 2 => (key(), value())]
    }

    /// Objects of such fields, with JSON's whitespace and, now and then, one byte broken.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::option::weighted(0.7, (0i64..4_000_000_000_000, "[a-z0-9-]{1,12}")),
            proptest::collection::vec(field(), 0..10),
            prop_oneof![Just(""), Just(" "), Just("\n\t "), Just("\r")],
            proptest::option::weighted(0.2, (any::<prop::sample::Index>(), any::<u8>())),
        )
            .prop_map(|(head, mut fields, ws, flip)| {
                if let Some((ts, client)) = head {
                    fields.insert(0, ("ts".into(), ts.to_string()));
                    fields.insert(1, ("client_id".into(), format!("\"{client}\"")));
                }
                let body: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"))
                    .collect();
                let mut b = format!("{ws}{{{}}}{ws}", body.join(",")).into_bytes();
                if let Some((at, byte)) = flip {
                    let at = at.index(b.len());
                    b[at] = byte;
                }
                b
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn agrees_with_serde_wherever_it_decides(bytes in line()) {
            if let Some(got) = fast(&bytes) {
                prop_assert_eq!(got, serde(&bytes), "{}", String::from_utf8_lossy(&bytes));
            }
        }

        #[test]
        fn agrees_with_serde_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(got) = fast(&bytes) {
                prop_assert_eq!(got, serde(&bytes));
            }
        }
    }

    /// The property above is only as good as its inputs: they must reach both paths, and
    /// among the lines the fast path takes, valid events and each kind of rejection.
    #[test]
    fn the_generated_lines_reach_both_paths() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut taken, mut ok, mut rejected) = (0, 0, 0);
        let n = 4096;
        for _ in 0..n {
            let bytes = line().new_tree(&mut runner).unwrap().current();
            match fast(&bytes) {
                Some(Ok(_)) => (taken, ok) = (taken + 1, ok + 1),
                Some(Err(_)) => (taken, rejected) = (taken + 1, rejected + 1),
                None => {}
            }
        }
        assert!(taken > n / 5 && taken < n * 4 / 5, "{taken} of {n} taken");
        assert!(
            ok > n / 10 && rejected > n / 10,
            "{ok} valid, {rejected} rejected"
        );
    }

    proptest! {
        /// Eight bytes at a time finds what a byte at a time finds, wherever it is.
        #[test]
        fn string_end_is_the_first_stop_byte(
            bytes in proptest::collection::vec(
                // mostly bytes a string goes on over, so that stops fall in every chunk
                prop_oneof![15 => (0x20u8..=0xff).prop_filter("", |&c| c != b'"' && c != b'\\'), 1 => any::<u8>()],
                0..40,
            ),
            from in 0usize..40,
        ) {
            let from = from.min(bytes.len());
            let expected = bytes[from..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .map(|p| from + p);
            prop_assert_eq!(super::string_end(&bytes, from), expected);
        }
    }

    #[test]
    fn takes_events_as_producers_write_them() {
        for line in [
            r#"{"ts":1789050000000,"client_id":"a","event_id":"e1","units":250,"product":"search","endpoint":"/2/tweets/search/recent","status":200,"bytes":1234,"origin_ip":"10.0.0.1","origin_country":"US","origin_asn":8075}"#,
            r#"{ "ts": "2026-09-10T14:20:00Z", "client_id": "a", "extra": true, "units": null }"#,
            r#"{"ts":"yesterday","client_id":"a"}"#,
            r#"{"ts":-5,"client_id":"a","units":-1,"status":null}"#,
            "{}",
        ] {
            let got = fast(line.as_bytes());
            assert!(got.is_some(), "{line}");
            assert_eq!(got.unwrap(), serde(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        for line in [
            r#"{"ts":1,"client_id":"a\u00e9"}"#,
            r#"{"ts":1,"client_id":"a","units":2.5}"#,
            r#"{"ts":1,"client_id":"a","product":true}"#,
            r#"{"ts":1,"client_id":"a","product":nul}"#,
            r#"{"ts":1,"client_id":"a","status":"200"}"#,
            r#"{"ts":1,"client_id":"a","bytes":false}"#,
            r#"{"ts":1,"client_id":"a","units":1e3}"#,
            r#"{"ts":01,"client_id":"a"}"#,
            r#"{"ts":1,"client_id":"a","status":-0}"#,
            r#"{"ts":1,"client_id":"a","extra":{"nested":[1]}}"#,
            r#"{"ts":1,"client_id":"a","status":70000}"#,
            r#"{"ts":99999999999999999999,"client_id":"a"}"#,
            r#"{"ts":1,"client_id":"a"} x"#,
            r#"{"ts":1,"client_id":"a",}"#,
            "[1]",
            "not json",
        ] {
            assert!(fast(line.as_bytes()).is_none(), "{line}");
        }
    }
}
