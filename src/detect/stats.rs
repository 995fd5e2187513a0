//! The significance tests the detectors share: is an excess real, or is a lull clearly one?
//!
//! Both are one-sided Poisson tests on effective counts: unit sums are scaled by the client's
//! dispersion factor `E[u²]/E[u]` (compound Poisson), so that calls returning many records are
//! not mistaken for many independent calls.

use statrs::distribution::{DiscreteCDF, Poisson};

/// Is `observed` units significantly above `null_mean` units? One-sided Poisson test on
/// effective counts: unit sums are scaled by the dispersion factor `E[u²]/E[u]` so that calls
/// returning many records are not mistaken for many independent calls.
pub fn significant(observed: f64, null_mean: f64, d: f64, alpha: f64) -> bool {
    excess_chance(observed, null_mean, d) < alpha
}

/// The chance [`significant`] tests: of `observed` units or more against `null_mean`, on
/// effective counts (1 where nothing is observed, 0 where nothing is expected).
pub fn excess_chance(observed: f64, null_mean: f64, d: f64) -> f64 {
    let k = (observed / d).floor();
    let lambda = null_mean / d;
    if k < 1.0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    // P(X >= k) = P(X > k - 1)
    Poisson::new(lambda).map_or(1.0, |p| p.sf(k as u64 - 1))
}

/// Is `observed` units clearly *below* `null_mean`? The mirror of [`significant`], used to
/// resolve: a window with too few calls to tell (a small client's night) does not resolve an
/// alert, it keeps it as it is.
pub fn clearly_below(observed: f64, null_mean: f64, d: f64, alpha: f64) -> bool {
    let k = (observed / d).floor();
    let lambda = null_mean / d;
    if lambda <= 0.0 {
        return false;
    }
    match Poisson::new(lambda) {
        Ok(p) => p.cdf(k.max(0.0) as u64) < alpha,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearly_below_needs_enough_calls_to_tell() {
        // 50 units against a band of 135 is clearly below on unit calls...
        assert!(clearly_below(50.0, 135.0, 1.0, 0.05));
        // ...not on a handful of 30-unit calls, nor with nothing expected
        assert!(!clearly_below(50.0, 135.0, 30.0, 0.05));
        assert!(!clearly_below(0.0, 0.0, 1.0, 0.05));
    }

    #[test]
    fn significance_uses_dispersion() {
        // 1300 units against a null of 1000: clear with unit calls, noise with 100-unit calls
        assert!(significant(1300.0, 1000.0, 1.0, 1e-3));
        assert!(!significant(1300.0, 1000.0, 100.0, 1e-3));
        assert!(!significant(0.0, 10.0, 1.0, 1e-3));
    }
}
