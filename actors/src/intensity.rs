//! RestartIntensity: OTP's restart intensity, shared by the lead supervisor (per lead) and
//! the root supervisor (per process) — at most `max` restarts within a sliding `window`;
//! one more means what is being restarted is not getting better, and the caller escalates
//! (parks the lead, or gives the process up) instead of looping.
//!
//! Owns: the window of restart times. Must not: read a clock (the caller passes `now`, so
//! tests drive it with a manual clock) or decide what escalation means.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct RestartIntensity {
    max: u32,
    window: chrono::Duration,
    times: VecDeque<DateTime<Utc>>,
}

impl RestartIntensity {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            times: VecDeque::new(),
        }
    }

    /// Records a restart at `now`; true when it is one more than `max` within the window.
    pub fn record(&mut self, now: DateTime<Utc>) -> bool {
        self.times.push_back(now);
        while self.times.front().is_some_and(|t| now - *t > self.window) {
            self.times.pop_front();
        }
        self.times.len() as u32 > self.max
    }

    /// Restarts within the window as of the last [`record`](Self::record), that one included.
    pub fn recent(&self) -> u32 {
        self.times.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_max_within_the_window_is_over_and_old_restarts_age_out() {
        let t0 = Utc::now();
        let s = chrono::Duration::seconds;
        let mut limit = RestartIntensity::new(2, Duration::from_secs(60));
        assert!(!limit.record(t0));
        assert!(!limit.record(t0 + s(10)));
        assert!(
            limit.record(t0 + s(20)),
            "a third restart within 60 s is over"
        );

        let mut limit = RestartIntensity::new(2, Duration::from_secs(60));
        assert!(!limit.record(t0));
        assert!(!limit.record(t0 + s(10)));
        // The first has left the window: two within it again.
        assert!(!limit.record(t0 + s(61)));
        assert_eq!(limit.recent(), 2);
    }
}
