//! Byte formatting for the generator's hot path: integers, hex and RFC 3339 timestamps
//! written straight into a line buffer.
//!
//! The generator renders every line of a run; going through `format!` for each field would
//! allocate per field, so these write digits straight into the buffer. The tests parse the
//! timestamps back with [`crate::time`]'s parser.

use crate::time::{DAY_MS, HOUR_MS, MINUTE_MS};

pub(super) fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_digits(buf: &mut Vec<u8>, v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut v = v;
    for i in (0..width).rev() {
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    buf.extend_from_slice(&tmp[..width]);
}

pub(super) fn push_hex(buf: &mut Vec<u8>, v: u64, width: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..width).rev() {
        buf.push(HEX[((v >> (4 * i)) & 0xf) as usize]);
    }
}

/// Civil date from days since the epoch (H. Hinnant's algorithm), for fast timestamps.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// RFC 3339 with milliseconds (or microseconds), in UTC (`Z`) or a fixed offset.
pub(super) fn push_rfc3339(buf: &mut Vec<u8>, ts: i64, offset_min: i32, micros: Option<u16>) {
    let local = ts + offset_min as i64 * MINUTE_MS;
    let (y, m, d) = civil_from_days(local.div_euclid(DAY_MS));
    let rem = local.rem_euclid(DAY_MS);
    push_digits(buf, y.max(0) as u64, 4);
    buf.push(b'-');
    push_digits(buf, m as u64, 2);
    buf.push(b'-');
    push_digits(buf, d as u64, 2);
    buf.push(b'T');
    push_digits(buf, (rem / HOUR_MS) as u64, 2);
    buf.push(b':');
    push_digits(buf, (rem / MINUTE_MS % 60) as u64, 2);
    buf.push(b':');
    push_digits(buf, (rem / 1000 % 60) as u64, 2);
    buf.push(b'.');
    push_digits(buf, (rem % 1000) as u64, 3);
    if let Some(us) = micros {
        push_digits(buf, us as u64, 3);
    }
    if offset_min == 0 {
        buf.push(b'Z');
    } else {
        buf.push(if offset_min < 0 { b'-' } else { b'+' });
        let a = offset_min.unsigned_abs() as u64;
        push_digits(buf, a / 60, 2);
        buf.push(b':');
        push_digits(buf, a % 60, 2);
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn timestamps_parse_back() {
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..2000 {
            let ts = rng.gen_range(0..4_000_000_000_000i64);
            for off in [0, 60, -300, 330, 540] {
                let mut buf = Vec::new();
                push_rfc3339(&mut buf, ts, off, None);
                let s = std::str::from_utf8(&buf).unwrap();
                assert_eq!(crate::time::parse_rfc3339(s), Some(ts), "{s}");
                buf.clear();
                push_rfc3339(&mut buf, ts, off, Some(999));
                let s = std::str::from_utf8(&buf).unwrap();
                assert_eq!(crate::time::parse_rfc3339(s), Some(ts), "{s}");
            }
        }
        let mut buf = Vec::new();
        push_rfc3339(&mut buf, 1_789_050_000_005, 120, None);
        assert_eq!(buf, b"2026-09-10T16:20:00.005+02:00");
    }
}
