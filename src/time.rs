//! Event time: the one clock every detector runs on.
//!
//! overage never reads the wall clock inside its detection logic. Every timestamp is epoch
//! milliseconds taken from the events themselves, and every window, baseline and alert is a
//! function of those, so `replay` over a file and the live service compute the same results.
//! This module holds the small arithmetic every other module shares (minute and hour indices,
//! calendar months, RFC 3339 in and out, compact duration labels).

use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Utc};

/// Epoch milliseconds, UTC.
pub type Millis = i64;

pub const SECOND_MS: Millis = 1_000;
pub const MINUTE_MS: Millis = 60 * SECOND_MS;
pub const HOUR_MS: Millis = 60 * MINUTE_MS;
pub const DAY_MS: Millis = 24 * HOUR_MS;

/// Index of the minute containing `ts` (minutes since the epoch).
#[inline]
pub fn minute_of(ts: Millis) -> i64 {
    ts.div_euclid(MINUTE_MS)
}

/// Index of the hour containing `ts` (hours since the epoch).
#[inline]
pub fn hour_of(ts: Millis) -> i64 {
    ts.div_euclid(HOUR_MS)
}

/// Index of the UTC day containing `ts` (days since the epoch).
#[inline]
pub fn day_of(ts: Millis) -> i64 {
    ts.div_euclid(DAY_MS)
}

/// Hour of day (0..24) of an hour index.
#[inline]
pub fn hour_of_day(hour: i64) -> usize {
    hour.rem_euclid(24) as usize
}

/// Day of week (0 = Monday .. 6 = Sunday) of an hour index. The epoch was a Thursday.
#[inline]
pub fn day_of_week(hour: i64) -> usize {
    (hour.div_euclid(24) + 3).rem_euclid(7) as usize
}

/// Calendar month (UTC) as `year * 12 + month0`, so consecutive months are consecutive integers.
pub fn month_of(ts: Millis) -> i32 {
    let dt = to_datetime(ts);
    dt.year() * 12 + dt.month0() as i32
}

/// First millisecond of a month index produced by [`month_of`].
pub fn month_start(month: i32) -> Millis {
    let year = month.div_euclid(12);
    let month0 = month.rem_euclid(12) as u32;
    Utc.with_ymd_and_hms(year, month0 + 1, 1, 0, 0, 0)
        .single()
        .map_or(0, |d| d.timestamp_millis())
}

/// `YYYY-MM` label of a month index.
pub fn month_label(month: i32) -> String {
    format!(
        "{:04}-{:02}",
        month.div_euclid(12),
        month.rem_euclid(12) + 1
    )
}

fn to_datetime(ts: Millis) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ts).unwrap_or_default()
}

/// Parse an RFC 3339 timestamp (any offset) to epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    rfc3339_as_written(s.as_bytes()).or_else(|| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_millis())
    })
}

/// RFC 3339 as gateways write it (`2026-09-10T14:07:00.123Z`, `...+02:00`), read without
/// chrono's general parser, which took a twelfth of a replay of string timestamps. `None`
/// for anything else (lower-case or space separators, a leap second, a year before 1000, a
/// fraction of more than nine digits, an invalid date): chrono decides those, and where this
/// decides it agrees with chrono (property-tested).
fn rfc3339_as_written(b: &[u8]) -> Option<Millis> {
    let digits = |at: usize, n: usize| -> Option<i64> {
        b.get(at..at + n)?.iter().try_fold(0i64, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + i64::from(c - b'0'))
        })
    };
    let sep = |at: usize, c: u8| (b.get(at) == Some(&c)).then_some(());
    let year = digits(0, 4).filter(|&y| y >= 1000)?;
    sep(4, b'-')?;
    let month = digits(5, 2).filter(|m| (1..=12).contains(m))?;
    sep(7, b'-')?;
    let day = digits(8, 2).filter(|&d| d >= 1 && d <= days_in_month(year, month))?;
    sep(10, b'T')?;
    let hour = digits(11, 2).filter(|&h| h < 24)?;
    sep(13, b':')?;
    let minute = digits(14, 2).filter(|&m| m < 60)?;
    sep(16, b':')?;
    let second = digits(17, 2).filter(|&s| s < 60)?;
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return None;
        }
        // milliseconds are the first three digits (chrono truncates, too)
        let first = digits(i + 1, n.min(3))?;
        millis = first * 10i64.pow(3 - n.min(3) as u32);
        i += 1 + n;
    }
    let offset_minutes = match *b.get(i)? {
        b'Z' if b.len() == i + 1 => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 => {
            let h = digits(i + 1, 2).filter(|&h| h < 24)?;
            sep(i + 3, b':')?;
            let m = digits(i + 4, 2).filter(|&m| m < 60)?;
            if sign == b'-' {
                -(h * 60 + m)
            } else {
                h * 60 + m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(
        ((days * 24 + hour) * 60 + minute - offset_minutes) * MINUTE_MS
            + second * SECOND_MS
            + millis,
    )
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Format epoch milliseconds as RFC 3339 UTC with a `Z` suffix and no needless fraction.
/// Serde for event times kept as [`Millis`] and written as RFC 3339 (`2026-09-10T14:07:00Z`),
/// as the alert JSON spells them: `#[serde(with = "crate::time::rfc3339")]`.
pub mod rfc3339 {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &super::Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<super::Millis, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        super::parse_rfc3339(&s)
            .ok_or_else(|| D::Error::custom(format!("`{s}` is not an RFC 3339 time")))
    }
}

pub fn format_rfc3339(ts: Millis) -> String {
    let dt = to_datetime(ts);
    let fmt = if ts.rem_euclid(SECOND_MS) == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    dt.to_rfc3339_opts(fmt, true)
}

/// Compact label for a duration, as operators write it: `5m`, `1h`, `1d`, `90s`.
pub fn duration_label(ms: Millis) -> String {
    if ms > 0 && ms % DAY_MS == 0 {
        format!("{}d", ms / DAY_MS)
    } else if ms > 0 && ms % HOUR_MS == 0 {
        format!("{}h", ms / HOUR_MS)
    } else if ms > 0 && ms % MINUTE_MS == 0 {
        format!("{}m", ms / MINUTE_MS)
    } else {
        format!("{}s", ms / SECOND_MS)
    }
}

/// Wall-clock now, for the few places that legitimately need it (future-skew checks, progress).
pub fn wall_now() -> Millis {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn chrono_rfc3339(s: &str) -> Option<Millis> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_millis())
    }

    /// Timestamps as gateways write them, with every field now and then out of its range, a
    /// fraction of any length, other separators and offsets.
    fn timestamp() -> impl Strategy<Value = String> {
        (
            prop_oneof![4 => 1900i64..2200, 1 => 0i64..10_000],
            prop_oneof![4 => 1i64..=12, 1 => 0i64..100],
            prop_oneof![4 => 1i64..=28, 2 => 29i64..=31, 1 => 0i64..100],
            prop_oneof![4 => 0i64..24, 1 => 0i64..100],
            prop_oneof![4 => 0i64..60, 1 => 0i64..100],
            prop_oneof![4 => 0i64..60, 1 => 0i64..100],
            "(\\.[0-9]{0,12})?",
            prop_oneof![6 => Just("T"), 1 => Just("t"), 1 => Just(" ")],
            prop_oneof![
                4 => Just("Z".to_string()),
                1 => Just("z".to_string()),
                3 => "[+-][0-2][0-9]:[0-5][0-9]",
                1 => "[+-][0-9]{2}:?[0-9]{2}",
            ],
        )
            .prop_map(|(y, mo, d, h, mi, s, frac, t, tz)| {
                format!("{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{frac}{tz}")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8192))]
        #[test]
        fn rfc3339_as_written_agrees_with_chrono_wherever_it_decides(s in timestamp()) {
            if let Some(ms) = rfc3339_as_written(s.as_bytes()) {
                prop_assert_eq!(Some(ms), chrono_rfc3339(&s), "{}", s);
            }
        }

        #[test]
        fn rfc3339_as_written_agrees_on_arbitrary_text(s in "[0-9T:.Z+-]{0,32}") {
            if let Some(ms) = rfc3339_as_written(s.as_bytes()) {
                prop_assert_eq!(Some(ms), chrono_rfc3339(&s), "{}", s);
            }
        }
    }

    /// The property above is only as good as its inputs: most of them are decided here, and
    /// of the rest, chrono takes some.
    #[test]
    fn rfc3339_timestamps_as_written_are_read_without_chrono() {
        for (s, ms) in [
            ("2026-09-10T14:20:00Z", 1_789_050_000_000),
            ("2026-09-10T14:20:00.5Z", 1_789_050_000_500),
            ("2026-09-10T14:20:00.123456789Z", 1_789_050_000_123),
            ("2026-09-10T16:20:00+02:00", 1_789_050_000_000),
            ("2026-09-10T11:20:00.000-03:00", 1_789_050_000_000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
            ("1969-12-31T23:59:59.999Z", -1),
        ] {
            assert_eq!(rfc3339_as_written(s.as_bytes()), Some(ms), "{s}");
            assert_eq!(chrono_rfc3339(s), Some(ms), "{s}");
        }
        for s in [
            "2026-09-10t14:20:00Z",
            "2026-09-10 14:20:00Z",
            "2026-09-10T14:20:00z",
            "2026-06-30T23:59:60Z",
            "2026-09-10T14:20:00.1234567891Z",
            "2026-09-10T14:20:00",
        ] {
            assert_eq!(rfc3339_as_written(s.as_bytes()), None, "{s}");
            assert_eq!(parse_rfc3339(s), chrono_rfc3339(s), "{s}");
        }
        for s in [
            "2025-02-29T00:00:00Z",
            "2026-09-31T00:00:00Z",
            "2026-09-10T24:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (n, mut decided, mut chrono_only) = (4096, 0, 0);
        for _ in 0..n {
            let s = timestamp().new_tree(&mut runner).unwrap().current();
            match (rfc3339_as_written(s.as_bytes()), chrono_rfc3339(&s)) {
                (Some(_), _) => decided += 1,
                (None, Some(_)) => chrono_only += 1,
                (None, None) => {}
            }
        }
        assert!(
            decided > n / 5 && chrono_only > n / 20,
            "{decided} decided, {chrono_only} left to chrono of {n}"
        );
    }

    #[test]
    fn calendar_helpers_agree_with_chrono() {
        let ts = parse_rfc3339("2026-09-10T14:20:00Z").unwrap();
        assert_eq!(format_rfc3339(ts), "2026-09-10T14:20:00Z");
        assert_eq!(format_rfc3339(ts + 5), "2026-09-10T14:20:00.005Z");
        // 2026-09-10 is a Thursday.
        assert_eq!(day_of_week(hour_of(ts)), 3);
        assert_eq!(hour_of_day(hour_of(ts)), 14);
        let m = month_of(ts);
        assert_eq!(month_label(m), "2026-09");
        assert_eq!(format_rfc3339(month_start(m)), "2026-09-01T00:00:00Z");
        assert_eq!(format_rfc3339(month_start(m + 4)), "2027-01-01T00:00:00Z");
        assert_eq!(month_of(month_start(m) - 1), m - 1);
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let a = parse_rfc3339("2026-09-10T16:20:00+02:00").unwrap();
        let b = parse_rfc3339("2026-09-10T14:20:00Z").unwrap();
        assert_eq!(a, b);
        assert!(parse_rfc3339("2026-09-10 14:20").is_none());
    }

    #[test]
    fn duration_labels() {
        assert_eq!(duration_label(5 * MINUTE_MS), "5m");
        assert_eq!(duration_label(HOUR_MS), "1h");
        assert_eq!(duration_label(DAY_MS), "1d");
        assert_eq!(duration_label(90 * SECOND_MS), "90s");
    }
}
