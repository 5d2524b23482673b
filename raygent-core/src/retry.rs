//! Retry and failure policies.

use std::time::Duration;

/// How often and how patiently a failed chunk is retried.
///
/// The delay before retry `n` (from 1) is `initial_backoff * multiplier^(n-1)`,
/// capped at `max_backoff`; with jitter on, a uniformly random delay in
/// `[d/2, d]` is used instead so that many failing chunks do not retry in
/// lock step.
///
/// ```
/// use std::time::Duration;
/// use raygent_core::RetryPolicy;
/// let p = RetryPolicy::new(5)
///     .with_initial_backoff(Duration::from_millis(10))
///     .with_max_backoff(Duration::from_millis(50))
///     .with_jitter(false);
/// assert_eq!(p.backoff(1), Duration::from_millis(10));
/// assert_eq!(p.backoff(3), Duration::from_millis(40));
/// assert_eq!(p.backoff(4), Duration::from_millis(50));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: f64,
    jitter: bool,
}

impl Default for RetryPolicy {
    /// 3 retries, from 10 ms doubling up to 5 s, with jitter.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The default policy with `max_retries` retries (so `max_retries + 1` attempts).
    pub fn new(max_retries: u32) -> Self {
        RetryPolicy {
            max_retries,
            ..Self::default()
        }
    }

    /// No retries at all: the first failure is final.
    pub fn none() -> Self {
        Self::new(0)
    }

    /// Sets the number of retries after the first attempt.
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the delay before the first retry.
    pub fn with_initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// Sets the longest delay between two attempts.
    pub fn with_max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// Sets the factor by which the delay grows (values below 1 count as 1).
    pub fn with_multiplier(mut self, m: f64) -> Self {
        self.multiplier = if m.is_finite() && m >= 1.0 { m } else { 1.0 };
        self
    }

    /// Turns jitter on or off.
    pub fn with_jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// Retries after the first attempt.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Total attempts a chunk gets.
    pub fn max_attempts(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }

    /// The delay before retry number `retry` (1 is the first retry), before jitter.
    pub fn base_backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(64) as i32;
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exp);
        let capped = secs.min(self.max_backoff.as_secs_f64());
        Duration::try_from_secs_f64(capped).unwrap_or(self.max_backoff)
    }

    /// The delay to wait before retry number `retry`, jitter applied.
    pub fn backoff(&self, retry: u32) -> Duration {
        let d = self.base_backoff(retry);
        if self.jitter && !d.is_zero() {
            let f: f64 = rand::random_range(0.5..=1.0);
            d.mul_f64(f)
        } else {
            d
        }
    }

    /// The shortest delay [`backoff`](RetryPolicy::backoff) can return for `retry`.
    pub fn min_backoff(&self, retry: u32) -> Duration {
        let d = self.base_backoff(retry);
        if self.jitter { d / 2 } else { d }
    }
}

/// What to do with a chunk that failed on every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Stop the job with [`Error::ChunkFailed`](crate::Error::ChunkFailed) (default).
    #[default]
    Abort,
    /// Record the chunk in the report and go on; its items have no results.
    Skip,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jittered_backoff_stays_in_bounds() {
        let p = RetryPolicy::default()
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(1));
        for retry in 1..10 {
            for _ in 0..50 {
                let d = p.backoff(retry);
                assert!(d >= p.min_backoff(retry) && d <= p.base_backoff(retry));
            }
        }
        assert_eq!(p.base_backoff(20), Duration::from_secs(1));
    }

    #[test]
    fn attempts_count_the_first_try() {
        assert_eq!(RetryPolicy::new(3).max_attempts(), 4);
        assert_eq!(RetryPolicy::none().max_attempts(), 1);
    }
}
