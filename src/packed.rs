//! Quiet clients, packed into a few hundred bytes until they call again.
//!
//! A full [`Client`] is a fixed ~1.7 KB of rings, baseline and tables whether it calls every
//! second or once a day; in a million-client fleet most clients are quiet most of the time.
//! The engine's hourly sweep packs a full client that has had no call for `state.pack_after`
//! and has no alert pending, firing or scheduled: its state is encoded (postcard) and
//! compressed (LZ4: a quiet client's minute rings are empty and its hour rings mostly so).
//! Its next call, or anyone reading it, unpacks it into the same full client.
//!
//! Alerts are identical to those of a client never packed, by construction: the encoding is
//! the checkpoint's, which round-trips a client exactly, and the one thing changed before
//! encoding is a minute ring nothing can read any more ([`Windows::forget_minutes_before`]).
//!
//! [`Windows::forget_minutes_before`]: crate::window::Windows::forget_minutes_before

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::time::Millis;

/// A full client without alerts, encoded while it is quiet. What the engine asks of every
/// client without unpacking it (id, contract, when it was last seen, its total) is kept beside
/// the bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Packed {
    pub id: Arc<str>,
    /// Kept here, not in the bytes, so that a contracts reload need not unpack the client.
    pub contract: Option<u32>,
    pub last_seen: Millis,
    pub total_units: f64,
    bytes: Box<[u8]>,
}

impl Packed {
    /// Pack `c` as of the watermark `now`: no evaluation of it may be pending (none of `c`'s
    /// windows is read before `now` again), nor any alert.
    pub fn pack(mut c: Client, now: Millis) -> Packed {
        debug_assert!(c.alerts.is_empty() && !c.sched.pending());
        c.windows.forget_minutes_before(now);
        // Encoding into memory can fail only on a type serde cannot express, which a client
        // is not (checkpoints encode the same struct).
        let raw = postcard::to_allocvec(&c).unwrap_or_default();
        Packed {
            id: c.id.clone(),
            contract: c.contract,
            last_seen: c.last_seen,
            total_units: c.usage.total_units,
            bytes: lz4_flex::compress_prepend_size(&raw).into_boxed_slice(),
        }
    }

    /// The full client it was packed from. The bytes are this build's own (checkpoints that
    /// carry them are checksummed and versioned), so a failure is a bug: it is logged and the
    /// client starts afresh rather than stopping the engine.
    pub fn unpack(&self) -> Client {
        let decoded = lz4_flex::decompress_size_prepended(&self.bytes)
            .map_err(|e| e.to_string())
            .and_then(|raw| postcard::from_bytes::<Client>(&raw).map_err(|e| e.to_string()));
        match decoded {
            Ok(mut c) => {
                c.contract = self.contract;
                c
            }
            Err(e) => {
                tracing::error!(client = %self.id, error = %e, "a packed client does not decode; it starts afresh");
                Client::new(self.id.clone(), self.contract, self.last_seen)
            }
        }
    }

    /// Bytes it holds on the heap (for the memory figures).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::detect::Detectors;
    use crate::sparse::Call;
    use crate::time::{parse_rfc3339, DAY_MS, MINUTE_MS};

    fn busy_morning() -> (Client, Millis) {
        let p = Detectors::from_config(&Config::default().detect);
        let t0 = parse_rfc3339("2026-09-01T08:00:00Z").unwrap();
        let mut c = Client::new("acme".into(), Some(3), t0);
        let mut last = t0;
        for i in 0..240 {
            last = t0 + i * 30_000;
            let call = Call::new(last, (i % 7) as f64, 1, Some(2), Some(3), None, None, false);
            c.apply(&call, &p, Some(100.0));
        }
        // evaluated up to its last call's minute: nothing left to evaluate
        c.prepare(last / MINUTE_MS + 1, &p);
        assert!(!c.sched.pending());
        (c, t0 + DAY_MS)
    }

    #[test]
    fn a_quiet_client_packs_small_and_unpacks_to_itself() {
        let (c, now) = busy_morning();
        let packed = Packed::pack(c.clone(), now);
        assert!(
            packed.heap_bytes() * 3 < std::mem::size_of::<Client>(),
            "{} bytes",
            packed.heap_bytes()
        );
        let mut expected = c;
        expected.windows.forget_minutes_before(now);
        assert_eq!(format!("{expected:?}"), format!("{:?}", packed.unpack()));
    }

    #[test]
    fn the_contract_is_the_packed_ones_and_bad_bytes_start_afresh() {
        let (c, now) = busy_morning();
        let mut packed = Packed::pack(c, now);
        // a contracts reload changes it without unpacking
        packed.contract = Some(9);
        assert_eq!(packed.unpack().contract, Some(9));
        packed.bytes = vec![1, 2, 3].into_boxed_slice();
        let fresh = packed.unpack();
        assert_eq!((&*fresh.id, fresh.contract), ("acme", Some(9)));
        assert_eq!(fresh.usage.total_units, 0.0);
    }
}
