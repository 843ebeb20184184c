//! Capped exponential backoff: the one delay calculator behind every retry loop (the
//! RabbitMQ links' reconnects, the Discord sender's retries, the lead actor's SMS retries).
//!
//! Owns: the arithmetic — the first delay, doubling per attempt, the cap, and a downward
//! jitter. Must not: sleep, read a clock or draw randomness: the caller sleeps (on its own
//! lease, select or clock) and passes the random draw in, so every delay is testable.
//!
//! Hand-written rather than `backon`: backon drives the retried future and its sleeps
//! itself, while these loops sleep under their own conditions (a shutdown select, a held
//! lease), and its jitter adds up to a whole extra delay where the RabbitMQ links take off
//! up to a quarter — the delays must stay what they were.

use std::time::Duration;

/// A backoff policy: attempt `n` (1-based) waits `first × 2^(n−1)`, capped at `max`, less
/// up to `jitter` of itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// No jitter: every attempt's delay is exact.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            jitter: 0.0,
        }
    }

    /// Takes up to `fraction` (0.0–1.0) off each delay, so that a fleet cut off together
    /// does not retry in lockstep.
    pub const fn with_jitter(self, fraction: f64) -> Self {
        Self {
            jitter: fraction,
            ..self
        }
    }

    /// The delay before attempt `attempt` (1-based; 0 counts as 1), without jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }

    /// The delay before attempt `attempt` with jitter, `unit` being a random draw in [0, 1).
    pub fn jittered(&self, attempt: u32, unit: f64) -> Duration {
        self.delay(attempt)
            .mul_f64(1.0 - unit.clamp(0.0, 1.0) * self.jitter)
    }
}

/// A running count of consecutive failures under one [`Backoff`], for loops that retry
/// until they succeed and then start over.
#[derive(Clone, Debug)]
pub struct Retries {
    policy: Backoff,
    failures: u32,
}

impl Retries {
    pub const fn new(policy: Backoff) -> Self {
        Self {
            policy,
            failures: 0,
        }
    }

    /// The wait before the next attempt (`unit`: a random draw in [0, 1)); each call is one
    /// more failure.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.policy.jittered(self.failures, unit)
    }

    /// A success: the next failure waits the first delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn delays_double_from_the_first_up_to_the_cap() {
        let b = Backoff::new(MS(250), Duration::from_secs(60));
        let got: Vec<Duration> = [0, 1, 2, 3, 8, 9, 30, u32::MAX]
            .iter()
            .map(|&n| b.delay(n))
            .collect();
        assert_eq!(
            got,
            [
                MS(250),
                MS(250),
                MS(500),
                MS(1000),
                MS(32_000),
                Duration::from_secs(60),
                Duration::from_secs(60),
                Duration::from_secs(60)
            ]
        );
    }

    #[test]
    fn an_uncapped_backoff_keeps_doubling() {
        let b = Backoff::new(MS(200), Duration::MAX);
        let got: Vec<u128> = (1..=5).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(got, [200, 400, 800, 1600, 3200]);
    }

    #[test]
    fn jitter_takes_off_at_most_its_fraction() {
        let b = Backoff::new(MS(1000), Duration::from_secs(30)).with_jitter(0.25);
        assert_eq!(b.jittered(1, 0.0), MS(1000));
        assert_eq!(b.jittered(1, 0.5), MS(875));
        assert_eq!(b.jittered(1, 1.0), MS(750));
        assert_eq!(
            b.jittered(1, 7.0),
            MS(750),
            "a draw out of range is clamped"
        );
        assert_eq!(Backoff::new(MS(1000), MS(1000)).jittered(1, 0.9), MS(1000));
    }

    #[test]
    fn retries_double_up_to_the_cap_and_start_over_after_a_reset() {
        let mut r = Retries::new(Backoff::new(MS(500), Duration::from_secs(30)).with_jitter(0.25));
        let got: Vec<u128> = (0..8).map(|_| r.next_delay(0.0).as_millis()).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
        r.reset();
        assert_eq!(r.next_delay(0.0), MS(500));
        assert_eq!(r.next_delay(1.0), MS(750));
    }
}
