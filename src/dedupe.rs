//! Duplicate suppression for at-least-once delivery.
//!
//! Kafka producers and consumers redeliver: the same `event_id` can arrive twice after a
//! producer retry or a consumer restart. A redelivered event carries the same timestamp as the
//! original, so ids of events that arrive on time are kept in one set per event-time minute,
//! and a lookup touches only the set of the event's own minute. Sets older than the horizon
//! behind the watermark are dropped whole, which keeps the cost O(1) per event and the memory
//! proportional to the event rate times the horizon.
//!
//! Late events need a second clock. A gateway's backlog can arrive hours after its events
//! happened, with producer retries among it: by event time those ids are long beyond the
//! horizon, yet the retry follows the original within seconds. So ids of late events (older
//! than the watermark) are also kept by *arrival*: one set per watermark minute at which they
//! came, dropped once the watermark has moved a horizon past. Usage totals count late events,
//! so without this a redelivered late event was billed twice.
//!
//! A hard cap on stored ids (both clocks together) drops the oldest minutes early (counted) so
//! that a burst cannot exhaust memory.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasherDefault;

use nohash_hasher::NoHashHasher;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::time::{minute_of, Millis, MINUTE_MS};

type IdSet = HashSet<u64, BuildHasherDefault<NoHashHasher<u64>>>;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Dedupe {
    horizon_minutes: i64,
    max_entries: usize,
    /// Ids of events that arrived on time, by the event's minute.
    by_event_time: Ring,
    /// Ids of late events, by the watermark's minute when they arrived.
    by_arrival: Arrivals,
    /// Ids dropped before their horizon because of `max_entries`.
    evicted_early: u64,
}

/// Id sets for consecutive minutes.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Ring {
    /// Minute index of `buckets[0]`; `buckets[i]` holds ids of minute `first + i`.
    first: i64,
    buckets: VecDeque<IdSet>,
    entries: usize,
}

impl Ring {
    fn contains(&self, minute: i64, key: u64) -> bool {
        minute >= self.first
            && self
                .buckets
                .get((minute - self.first) as usize)
                .is_some_and(|b| b.contains(&key))
    }

    /// Insert `key` under `minute`; false if it was there already. A minute older than the
    /// first kept one is beyond the horizon: not remembered.
    fn insert(&mut self, minute: i64, key: u64, horizon_minutes: i64) -> bool {
        if self.buckets.is_empty() {
            self.first = minute;
            self.buckets.push_back(IdSet::default());
        }
        if minute < self.first {
            return true;
        }
        let idx = (minute - self.first) as usize;
        if idx >= self.buckets.len() {
            // Bounded: a far-future timestamp must not allocate millions of buckets.
            let gap = idx + 1 - self.buckets.len();
            if gap > (horizon_minutes as usize + 1) * 4 {
                self.entries = 0;
                self.buckets.clear();
                self.first = minute;
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
        let idx = (minute - self.first) as usize;
        let fresh = self.buckets[idx].insert(key);
        self.entries += usize::from(fresh);
        fresh
    }

    /// Drop the oldest minute; the number of ids it held.
    fn drop_front(&mut self) -> usize {
        let n = self.buckets.pop_front().map_or(0, |b| b.len());
        self.entries -= n;
        self.first += 1;
        n
    }

    fn expire(&mut self, oldest_kept: i64) {
        while !self.buckets.is_empty() && self.first < oldest_kept {
            self.drop_front();
        }
    }
}

/// Ids in one set, expired in order of arrival: a retry of a late event is looked up with one
/// probe, whichever minute the original came in.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Arrivals {
    ids: IdSet,
    /// (watermark minute at arrival, id), oldest first.
    order: VecDeque<(i64, u64)>,
}

impl Arrivals {
    /// Insert `key`; false if it was there already.
    fn insert(&mut self, minute: i64, key: u64) -> bool {
        let fresh = self.ids.insert(key);
        if fresh {
            self.order.push_back((minute, key));
        }
        fresh
    }

    fn drop_front(&mut self) -> usize {
        match self.order.pop_front() {
            Some((_, key)) => usize::from(self.ids.remove(&key)),
            None => 0,
        }
    }

    fn expire(&mut self, oldest_kept: i64) {
        while self.order.front().is_some_and(|&(m, _)| m < oldest_kept) {
            self.drop_front();
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Key of an event for duplicate detection: its client and id, hashed (XXH3 of the client id,
/// a 0xff byte and the event id; checkpoints keep these keys, so the function is fixed).
pub fn key(client_id: &str, event_id: &str) -> u64 {
    let (c, e) = (client_id.as_bytes(), event_id.as_bytes());
    // The one-shot hash of the bytes laid end to end is the streaming digest, at a fraction
    // of its cost on ids this short (the streaming state was a twentieth of a replay).
    let mut buf = [0u8; KEY_BUFFER];
    let len = c.len() + 1 + e.len();
    if len <= KEY_BUFFER {
        buf[..c.len()].copy_from_slice(c);
        buf[c.len()] = 0xff;
        buf[c.len() + 1..len].copy_from_slice(e);
        return xxh3_64(&buf[..len]);
    }
    let mut h = Xxh3::new();
    h.update(c);
    h.update(&[0xff]);
    h.update(e);
    h.digest()
}

/// Client and event ids up to this together are hashed in one call.
const KEY_BUFFER: usize = 128;

impl Dedupe {
    pub fn new(horizon: Millis, max_entries: usize) -> Self {
        Dedupe {
            horizon_minutes: (horizon + MINUTE_MS - 1) / MINUTE_MS,
            max_entries,
            by_event_time: Ring::default(),
            by_arrival: Arrivals::default(),
            evicted_early: 0,
        }
    }

    /// Record `key` for an event at `ts` arriving when the event-time watermark is
    /// `watermark`; true if it was seen before (a duplicate).
    pub fn check_and_insert(&mut self, ts: Millis, key: u64, watermark: Millis) -> bool {
        let m = minute_of(ts);
        let fresh = if ts < watermark {
            // Late. Its original may have come on time (then it is in the event-time sets, if
            // still within the horizon) or late as well (then by arrival).
            !self.by_event_time.contains(m, key)
                && self.by_arrival.insert(minute_of(watermark), key)
        } else {
            self.by_event_time.insert(m, key, self.horizon_minutes)
        };
        if fresh {
            self.enforce_cap();
        }
        !fresh
    }

    /// Forget ids of minutes (event time, or arrival for late events) entirely older than
    /// `watermark - horizon`.
    pub fn expire(&mut self, watermark: Millis) {
        let oldest_kept = minute_of(watermark) - self.horizon_minutes;
        self.by_event_time.expire(oldest_kept);
        self.by_arrival.expire(oldest_kept);
    }

    /// Drop the oldest ids, late ones first (they are the rarer redeliveries), keeping at
    /// least the newest minute of on-time ids.
    fn enforce_cap(&mut self) {
        while self.len() > self.max_entries {
            let dropped = if self.by_arrival.len() > 0 {
                self.by_arrival.drop_front()
            } else if self.by_event_time.buckets.len() > 1 {
                self.by_event_time.drop_front()
            } else {
                break;
            };
            self.evicted_early += dropped as u64;
        }
    }

    /// Apply the configured limits to a dedupe restored from a checkpoint (they may have
    /// changed since it was written).
    pub fn with_limits(mut self, horizon: Millis, max_entries: usize) -> Self {
        self.horizon_minutes = (horizon + MINUTE_MS - 1) / MINUTE_MS;
        self.max_entries = max_entries;
        self.enforce_cap();
        self
    }

    pub fn len(&self) -> usize {
        self.by_event_time.entries + self.by_arrival.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The one-shot key is the streaming digest, for ids short and long.
        #[test]
        fn key_is_the_streaming_digest(client in ".{0,80}", event in ".{0,120}") {
            let mut h = Xxh3::new();
            h.update(client.as_bytes());
            h.update(&[0xff]);
            h.update(event.as_bytes());
            prop_assert_eq!(key(&client, &event), h.digest());
        }
    }

    const T0: Millis = 1_789_050_000_000;
    /// A watermark before every event of these tests: all of them arrive on time.
    const NOW: Millis = T0 - MINUTE_MS;

    #[test]
    fn repeats_within_horizon_are_duplicates() {
        let mut d = Dedupe::new(10 * MINUTE_MS, 1_000);
        let k = key("a", "e1");
        assert!(!d.check_and_insert(T0, k, NOW));
        assert!(d.check_and_insert(T0, k, NOW));
        // Same id from another client is a different event.
        assert!(!d.check_and_insert(T0, key("b", "e1"), NOW));
        d.expire(T0 + 5 * MINUTE_MS);
        assert!(d.check_and_insert(T0, k, NOW));
        d.expire(T0 + 12 * MINUTE_MS);
        assert!(
            !d.check_and_insert(T0, k, NOW),
            "beyond the horizon it is forgotten"
        );
        // only the id inserted again after the horizon is remembered
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn memory_is_capped() {
        let mut d = Dedupe::new(10 * MINUTE_MS, 100);
        for i in 0..1_000u64 {
            d.check_and_insert(T0 + (i as i64) * 1_000, i, NOW);
        }
        assert!(d.len() <= 100);
        assert!(d.evicted_early() >= 900);
    }

    #[test]
    fn far_future_timestamp_does_not_allocate_a_bucket_per_minute() {
        let mut d = Dedupe::new(10 * MINUTE_MS, 100);
        d.check_and_insert(T0, 1, NOW);
        d.check_and_insert(T0 + 365 * 24 * 60 * MINUTE_MS, 2, NOW);
        assert!(d.by_event_time.buckets.len() < 100);
    }

    #[test]
    fn redelivered_late_events_are_duplicates() {
        // a gateway's backlog three hours late, with producer retries among it
        let mut d = Dedupe::new(10 * MINUTE_MS, 1_000);
        let wm = T0 + 3 * 60 * MINUTE_MS;
        for i in 0..100u64 {
            let ts = T0 + (i as i64) * 1_000;
            assert!(!d.check_and_insert(ts, i, wm), "first delivery of {i}");
            if i % 10 == 0 {
                assert!(d.check_and_insert(ts, i, wm + MINUTE_MS), "retry of {i}");
            }
        }
        // remembered for a horizon of arrival (watermark) time, then forgotten
        d.expire(wm + 9 * MINUTE_MS);
        assert!(d.check_and_insert(T0, 0, wm + 9 * MINUTE_MS));
        d.expire(wm + 12 * MINUTE_MS);
        assert!(!d.check_and_insert(T0 + 1_000, 1, wm + 12 * MINUTE_MS));
    }

    #[test]
    fn an_on_time_original_is_found_when_its_redelivery_is_late() {
        let mut d = Dedupe::new(10 * MINUTE_MS, 1_000);
        assert!(!d.check_and_insert(T0, 7, NOW));
        // the watermark passed the event: the retry is late, the original still within horizon
        assert!(d.check_and_insert(T0, 7, T0 + 5 * MINUTE_MS));
        assert_eq!(d.len(), 1, "a recognised duplicate is not stored again");
    }

    #[test]
    fn the_cap_covers_late_ids_too() {
        let mut d = Dedupe::new(10 * MINUTE_MS, 100);
        for i in 0..1_000u64 {
            let wm = T0 + (i as i64 / 10) * MINUTE_MS;
            d.check_and_insert(T0 - 60 * MINUTE_MS, i, wm);
        }
        assert!(d.len() <= 100);
        assert!(d.evicted_early() >= 890);
    }

    proptest! {
        /// Redeliveries of late and on-time events alike, arriving within the horizon: every
        /// repeat and only repeats are reported.
        #[test]
        fn matches_a_plain_set_with_late_events(
            arrivals in proptest::collection::vec((0u64..60, 0i64..5), 1..300),
        ) {
            let mut d = Dedupe::new(10 * MINUTE_MS, 1_000_000);
            let mut seen = std::collections::HashSet::new();
            let mut wm = T0;
            for (id, step) in arrivals {
                // odd ids happened hours ago (a backlog); even ids in the first minute, so
                // on time at first and late once the watermark has passed them
                let ts = T0 + (id as i64) * 1_000 - (id as i64 % 2) * 180 * MINUTE_MS;
                wm = (wm + step * 1_000).min(T0 + 5 * MINUTE_MS);
                d.expire(wm);
                let dup = d.check_and_insert(ts, id, wm);
                prop_assert_eq!(dup, !seen.insert(id));
            }
        }

        /// Against a brute-force set: within the horizon, every repeat and only repeats are
        /// reported, whatever the order of arrival.
        #[test]
        fn matches_a_plain_set(ids in proptest::collection::vec(0u64..50, 1..300)) {
            let mut d = Dedupe::new(10 * MINUTE_MS, 1_000_000);
            let mut seen = std::collections::HashSet::new();
            for id in ids {
                // The same id always has the same timestamp, as a redelivery does.
                let ts = T0 + (id as i64) * 1_000;
                let dup = d.check_and_insert(ts, id, NOW);
                prop_assert_eq!(dup, !seen.insert(id));
            }
        }
    }
}
