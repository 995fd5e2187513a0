//! Clients with a given traffic, for the detectors' unit tests.

use std::sync::Arc;

use crate::client::Client;
use crate::time::{Millis, HOUR_MS, MINUTE_MS};

pub const T0: Millis = 1_789_050_000_000 - 1_789_050_000_000 % HOUR_MS;

/// A client with `per_minute` events of 10 units each minute over `[from, to)` minutes
/// relative to T0.
pub fn client_with(rates: &[(i64, i64, u32)]) -> Client {
    let mut c = Client::new(Arc::from("c"), Some(0), T0 - 7 * 24 * HOUR_MS);
    for &(from, to, per_minute) in rates {
        for m in from..to {
            for k in 0..per_minute {
                let ts = T0 + m * MINUTE_MS + k as i64 * (MINUTE_MS / per_minute as i64);
                c.windows.add(ts, 10.0);
                c.units.add(ts, 10.0);
                c.units.fold_complete(ts);
            }
        }
    }
    c
}

/// Units per minute as units per millisecond.
pub fn rate(units_per_minute: f64) -> f64 {
    units_per_minute / MINUTE_MS as f64
}

/// A week of a heavy-tailed client: eight calls an hour whose sizes run through the
/// quantiles of a lognormal (median 2 units, σ 1.45: mean about 5.7, a call of 100 in a
/// few hundred) until `until` minutes from T0, then `k` times as many calls.
pub fn heavy_tailed(until: i64, k: i64) -> Client {
    use statrs::distribution::{ContinuousCDF, Normal};
    let n = Normal::standard();
    let sizes: Vec<f64> = (0..64)
        .map(|i| {
            (2f64.ln() + 1.45 * n.inverse_cdf((i as f64 + 0.5) / 64.0))
                .exp()
                .round()
        })
        .collect();
    let mut c = client_with(&[]);
    let mut i = 0;
    let gap = 7 * MINUTE_MS + MINUTE_MS / 2;
    let mut ts = T0 - 7 * 24 * HOUR_MS;
    while ts < T0 {
        let size = sizes[(i * 37) % sizes.len()];
        c.windows.add(ts, size as f32);
        c.units.add(ts, size);
        c.units.fold_complete(ts);
        i += 1;
        ts += if ts >= T0 + until * MINUTE_MS {
            gap / k
        } else {
            gap
        };
    }
    c
}
