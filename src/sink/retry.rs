//! Backoff and log throttling shared by the sinks' delivery tasks, so that every sink retries
//! a dead receiver the same way and none floods the log at its retry rate.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// At most one failure log line per receiver per this interval.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

/// Exponential backoff: `start`, doubling, capped at `cap`, so a dead receiver is probed
/// rarely while a brief blip is retried almost at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub start: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// Base retry delay after one more failure (`prev` zero: the first failure).
    pub fn next(&self, prev: Duration) -> Duration {
        if prev.is_zero() {
            self.start
        } else {
            (prev * 2).min(self.cap)
        }
    }
}

/// "Equal jitter" (half fixed, half random), so that several overage instances whose
/// receiver comes back do not all retry in lockstep.
pub fn jittered(base: Duration) -> Duration {
    base / 2 + base.mul_f64(rand::thread_rng().gen_range(0.0..0.5))
}

/// Lets one log line through per interval and counts what it held back.
#[derive(Debug, Default)]
pub struct LogGate {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogGate {
    /// `Some(lines held back since the last one)` when a line may be logged now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(l) if now.duration_since(l) < LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_bounded_jitter() {
        let policy = Backoff {
            start: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        };
        let mut b = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..10 {
            b = policy.next(b);
            seen.push(b.as_millis());
        }
        assert_eq!(
            seen,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
        );
        for _ in 0..100 {
            let j = jittered(policy.cap);
            assert!(j >= policy.cap / 2 && j <= policy.cap, "{j:?}");
        }
    }

    #[test]
    fn log_gate_lets_one_line_through_per_interval() {
        let mut g = LogGate::default();
        let t = Instant::now();
        assert_eq!(g.allow(t), Some(0));
        assert_eq!(g.allow(t + Duration::from_secs(1)), None);
        assert_eq!(g.allow(t + Duration::from_secs(2)), None);
        assert_eq!(g.allow(t + LOG_EVERY + Duration::from_secs(1)), Some(2));
    }
}
