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
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
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
    use super::*;

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
