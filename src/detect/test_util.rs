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
