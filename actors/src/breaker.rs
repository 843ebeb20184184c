//! CircuitBreaker: one per provider in the model chain, so a provider that keeps failing
//! stops costing every lead a soft budget before the fallback answers.
//!
//! Owns: the closed → open → half-open → closed cycle. Closed counts consecutive failures;
//! at the threshold it opens and every call is refused without reaching the provider;
//! after the open period one call (the probe) is let through: success closes it, failure
//! opens it again. A provider that says "come back at T" (retry-after past the pool's cap)
//! is held open until T.
//! Must not: sleep, do I/O or read the system clock: time comes from a [`Clock`], so the
//! whole cycle is unit-tested with a `ManualClock`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::Clock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before a probe is allowed.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// What the breaker says about one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Closed: call normally.
    Call,
    /// Half-open: this call is the probe; its outcome decides.
    Probe,
    /// Open (or a probe is already out): do not call the provider.
    Refuse,
}

#[derive(Debug)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: DateTime<Utc>,
    },
    /// A probe is out since `since`. A probe whose call was cancelled without reporting
    /// (the chain's hard budget dropped it) must not hold the breaker half-open forever, so
    /// after another open period a new probe is allowed.
    HalfOpen {
        since: DateTime<Utc>,
    },
}

pub struct CircuitBreaker {
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            clock,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn open_for(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.open_for).unwrap_or(chrono::Duration::seconds(30))
    }

    pub fn state(&self) -> BreakerState {
        let now = self.clock.now();
        match &*self.inner.lock().unwrap() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now < *until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks whether a call may go out now.
    pub fn admit(&self) -> Admission {
        let now = self.clock.now();
        let mut inner = self.inner.lock().unwrap();
        match &*inner {
            Inner::Closed { .. } => Admission::Call,
            Inner::Open { until } if now < *until => Admission::Refuse,
            Inner::Open { .. } => {
                *inner = Inner::HalfOpen { since: now };
                Admission::Probe
            }
            Inner::HalfOpen { since } if now - *since >= self.open_for() => {
                *inner = Inner::HalfOpen { since: now };
                Admission::Probe
            }
            Inner::HalfOpen { .. } => Admission::Refuse,
        }
    }

    pub fn on_success(&self) {
        *self.inner.lock().unwrap() = Inner::Closed { failures: 0 };
    }

    /// Returns true when this failure opened the breaker (for a log line and an alert).
    pub fn on_failure(&self) -> bool {
        let now = self.clock.now();
        let mut inner = self.inner.lock().unwrap();
        let open_until = now + self.open_for();
        match &mut *inner {
            Inner::Closed { failures } => {
                *failures += 1;
                if *failures >= self.config.failure_threshold.max(1) {
                    *inner = Inner::Open { until: open_until };
                    true
                } else {
                    false
                }
            }
            Inner::HalfOpen { .. } => {
                *inner = Inner::Open { until: open_until };
                true
            }
            // A call admitted before the breaker opened (calls run side by side): already open.
            Inner::Open { .. } => false,
        }
    }

    /// The provider asked not to be called before `until` (a retry-after longer than the
    /// pool waits): hold the breaker open until then, whatever the failure count.
    pub fn hold_until(&self, until: DateTime<Utc>) {
        let mut inner = self.inner.lock().unwrap();
        let later = match &*inner {
            Inner::Open { until: current } => until.max(*current),
            _ => until,
        };
        *inner = Inner::Open { until: later };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ManualClock;

    fn breaker(threshold: u32) -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::new(Utc::now());
        let b = CircuitBreaker::new(
            BreakerConfig {
                failure_threshold: threshold,
                open_for: Duration::from_secs(30),
            },
            Arc::new(clock.clone()),
        );
        (b, clock)
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures_and_refuses_while_open() {
        let (b, clock) = breaker(3);
        for _ in 0..2 {
            assert_eq!(b.admit(), Admission::Call);
            assert!(!b.on_failure());
        }
        assert_eq!(b.admit(), Admission::Call);
        assert!(b.on_failure(), "the third failure opens it");
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(), Admission::Refuse);
        clock.advance(Duration::from_secs(29));
        assert_eq!(b.admit(), Admission::Refuse);
    }

    #[test]
    fn a_success_resets_the_count() {
        let (b, _clock) = breaker(3);
        b.on_failure();
        b.on_failure();
        b.on_success();
        b.on_failure();
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn after_the_open_period_one_probe_goes_out_and_its_success_closes_it() {
        let (b, clock) = breaker(1);
        b.on_failure();
        clock.advance(Duration::from_secs(30));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(), Admission::Probe);
        assert_eq!(b.admit(), Admission::Refuse, "only one probe at a time");
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(), Admission::Call);
    }

    #[test]
    fn a_failed_probe_opens_it_for_another_period() {
        let (b, clock) = breaker(1);
        b.on_failure();
        clock.advance(Duration::from_secs(30));
        assert_eq!(b.admit(), Admission::Probe);
        assert!(b.on_failure());
        assert_eq!(b.admit(), Admission::Refuse);
        clock.advance(Duration::from_secs(30));
        assert_eq!(b.admit(), Admission::Probe);
    }

    #[test]
    fn a_probe_that_never_reported_does_not_wedge_it_half_open() {
        let (b, clock) = breaker(1);
        b.on_failure();
        clock.advance(Duration::from_secs(30));
        assert_eq!(b.admit(), Admission::Probe);
        // The probe's future was dropped by the hard budget: no outcome is ever reported.
        clock.advance(Duration::from_secs(30));
        assert_eq!(b.admit(), Admission::Probe);
    }

    #[test]
    fn hold_until_keeps_it_open_until_the_provider_said() {
        let (b, clock) = breaker(5);
        b.hold_until(clock.now() + chrono::Duration::seconds(90));
        clock.advance(Duration::from_secs(60));
        assert_eq!(b.admit(), Admission::Refuse);
        clock.advance(Duration::from_secs(30));
        assert_eq!(b.admit(), Admission::Probe);
    }
}
