//! Rate-limited logging: a broker outage or a stream of garbage must not flood the log.
//!
//! Each key logs at most once per interval; the next line says how many were suppressed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LogLimiter {
    interval: Duration,
    state: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed since the last allowed line)` if a line for `key` may be logged now.
    pub fn allow(&self, key: &'static str) -> Option<u64> {
        self.allow_at(key, Instant::now())
    }

    /// [`LogLimiter::allow`] at a given instant (the clock is a parameter so that tests need
    /// not sleep through an interval).
    fn allow_at(&self, key: &'static str, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.get_mut(key) {
            Some((last, suppressed)) if now.duration_since(*last) < self.interval => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                let n = *suppressed;
                *last = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                state.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_per_key_counting_the_rest() {
        let interval = Duration::from_secs(10);
        let l = LogLimiter::new(interval);
        let t0 = Instant::now();
        assert_eq!(l.allow_at("a", t0), Some(0));
        assert_eq!(l.allow_at("a", t0), None);
        assert_eq!(l.allow_at("a", t0 + interval / 2), None);
        assert_eq!(l.allow_at("b", t0 + interval / 2), Some(0));
        // still inside the interval a moment before its end
        let almost = t0 + interval - Duration::from_nanos(1);
        assert_eq!(l.allow_at("a", almost), None);
        // one line once it has passed, saying how many were held back; the count starts over
        assert_eq!(l.allow_at("a", t0 + interval), Some(3));
        assert_eq!(l.allow_at("a", t0 + interval), None);
        assert_eq!(l.allow_at("a", t0 + interval * 2), Some(1));
        // "b" has its own interval
        assert_eq!(l.allow_at("b", t0 + interval), None);
    }
}
