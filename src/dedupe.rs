//! Duplicate suppression for at-least-once delivery.
//!
//! Kafka producers and consumers redeliver: the same `event_id` can arrive twice after a
//! producer retry or a consumer restart. A redelivered event carries the same timestamp as the
//! original, so ids are kept in one set per event-time minute, and a lookup touches only the set
//! of the event's own minute. Sets older than the horizon behind the watermark are dropped
//! whole, which keeps the cost O(1) per event and the memory proportional to the event rate
//! times the horizon. A hard cap on stored ids drops the oldest minutes early (counted) so that
//! a burst cannot exhaust memory.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasherDefault;

use nohash_hasher::NoHashHasher;
use xxhash_rust::xxh3::Xxh3;

use crate::time::{minute_of, Millis, MINUTE_MS};

type IdSet = HashSet<u64, BuildHasherDefault<NoHashHasher<u64>>>;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Dedupe {
    horizon_minutes: i64,
    max_entries: usize,
    /// Minute index of `buckets[0]`; `buckets[i]` holds ids of events in minute `first + i`.
    first: i64,
    buckets: VecDeque<IdSet>,
    entries: usize,
    /// Ids dropped before their horizon because of `max_entries`.
    evicted_early: u64,
}

/// Key of an event for duplicate detection: its client and id, hashed.
pub fn key(client_id: &str, event_id: &str) -> u64 {
    let mut h = Xxh3::new();
    h.update(client_id.as_bytes());
    h.update(&[0xff]);
    h.update(event_id.as_bytes());
    h.digest()
}

impl Dedupe {
    pub fn new(horizon: Millis, max_entries: usize) -> Self {
        Dedupe {
            horizon_minutes: (horizon + MINUTE_MS - 1) / MINUTE_MS,
            max_entries,
            first: i64::MIN,
            buckets: VecDeque::new(),
            entries: 0,
            evicted_early: 0,
        }
    }

    /// Record `key` for an event at `ts`; true if it was seen before (a duplicate).
    pub fn check_and_insert(&mut self, ts: Millis, key: u64) -> bool {
        let m = minute_of(ts);
        if self.buckets.is_empty() {
            self.first = m;
            self.buckets.push_back(IdSet::default());
        }
        if m < self.first {
            // Older than anything still remembered: beyond the horizon, so it cannot be
            // recognised; the caller has already classed it as late.
            return false;
        }
        let idx = (m - self.first) as usize;
        if idx >= self.buckets.len() {
            // Bounded: a far-future timestamp must not allocate millions of buckets.
            let gap = idx + 1 - self.buckets.len();
            if gap > (self.horizon_minutes as usize + 1) * 4 {
                self.entries = 0;
                self.buckets.clear();
                self.first = m;
                self.buckets.push_back(IdSet::default());
            } else {
                // Size new minutes like the newest one: growing a set by rehashing on the hot
                // path costs more than the memory.
                let hint = self.buckets.back().map_or(0, |b| b.len());
                self.buckets.extend(
                    (0..gap).map(|_| IdSet::with_capacity_and_hasher(hint, Default::default())),
                );
            }
        }
        let idx = (m - self.first) as usize;
        let fresh = self.buckets[idx].insert(key);
        if fresh {
            self.entries += 1;
            while self.entries > self.max_entries && self.buckets.len() > 1 {
                self.drop_front(true);
            }
        }
        !fresh
    }

    /// Forget ids of minutes entirely older than `watermark - horizon`.
    pub fn expire(&mut self, watermark: Millis) {
        let oldest_kept = minute_of(watermark) - self.horizon_minutes;
        while !self.buckets.is_empty() && self.first < oldest_kept {
            self.drop_front(false);
        }
    }

    fn drop_front(&mut self, early: bool) {
        if let Some(b) = self.buckets.pop_front() {
            self.entries -= b.len();
            if early {
                self.evicted_early += b.len() as u64;
            }
            self.first += 1;
        }
    }

    /// Apply the configured limits to a dedupe restored from a checkpoint (they may have
    /// changed since it was written).
    pub fn with_limits(mut self, horizon: Millis, max_entries: usize) -> Self {
        self.horizon_minutes = (horizon + MINUTE_MS - 1) / MINUTE_MS;
        self.max_entries = max_entries;
        while self.entries > self.max_entries && self.buckets.len() > 1 {
            self.drop_front(true);
        }
        self
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: Millis = 1_789_050_000_000;

    #[test]
    fn repeats_within_horizon_are_duplicates() {
        let mut d = Dedupe::new(10 * MINUTE_MS, 1_000);
        let k = key("a", "e1");
        assert!(!d.check_and_insert(T0, k));
        assert!(d.check_and_insert(T0, k));
        // Same id from another client is a different event.
        assert!(!d.check_and_insert(T0, key("b", "e1")));
        d.expire(T0 + 5 * MINUTE_MS);
        assert!(d.check_and_insert(T0, k));
        d.expire(T0 + 12 * MINUTE_MS);
        assert!(
            !d.check_and_insert(T0, k),
            "beyond the horizon it is forgotten"
        );
        assert!(d.len() <= 1);
    }

    #[test]
    fn memory_is_capped() {
        let mut d = Dedupe::new(10 * MINUTE_MS, 100);
        for i in 0..1_000u64 {
            d.check_and_insert(T0 + (i as i64) * 1_000, i);
        }
        assert!(d.len() <= 100);
        assert!(d.evicted_early() >= 900);
    }

    #[test]
    fn far_future_timestamp_does_not_allocate_a_bucket_per_minute() {
        let mut d = Dedupe::new(10 * MINUTE_MS, 100);
        d.check_and_insert(T0, 1);
        d.check_and_insert(T0 + 365 * 24 * 60 * MINUTE_MS, 2);
        assert!(d.buckets.len() < 100);
    }

    proptest! {
        /// Against a brute-force set: within the horizon, every repeat and only repeats are
        /// reported, whatever the order of arrival.
        #[test]
        fn matches_a_plain_set(ids in proptest::collection::vec(0u64..50, 1..300)) {
            let mut d = Dedupe::new(10 * MINUTE_MS, 1_000_000);
            let mut seen = std::collections::HashSet::new();
            for id in ids {
                // The same id always has the same timestamp, as a redelivery does.
                let ts = T0 + (id as i64) * 1_000;
                let dup = d.check_and_insert(ts, id);
                prop_assert_eq!(dup, !seen.insert(id));
            }
        }
    }
}
