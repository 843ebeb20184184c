//! Failures of a periodic drain, alerted at a pace: the count since the last alert and the
//! last reason, at most once per period (the CRM text log, the document intake). A drain
//! that fails every run must be heard, but once per period, not once per run or item.
//!
//! Owns: the count, the last reason and when an alert is due. Must not: word or raise the
//! alert (each drain says what its failures mean) or decide what counts as a failure.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Default)]
struct Pacing {
    last_alert: Option<DateTime<Utc>>,
    /// Failures not yet alerted, and the last one's reason.
    unreported: usize,
    last_error: String,
}

pub struct PacedFailures {
    every: Duration,
    pacing: Mutex<Pacing>,
}

impl PacedFailures {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            pacing: Mutex::new(Pacing::default()),
        }
    }

    pub fn note(&self, detail: &str) {
        let mut p = self.pacing.lock().unwrap_or_else(|e| e.into_inner());
        p.unreported += 1;
        p.last_error = detail.to_string();
    }

    /// The failures since the last alert and the last reason, when an alert is due at
    /// `now` (some unreported, none alerted within the period); the count starts over.
    /// `None`: nothing to say yet — the rest wait for the next call past the period.
    pub fn due(&self, now: DateTime<Utc>) -> Option<(usize, String)> {
        let mut p = self.pacing.lock().unwrap_or_else(|e| e.into_inner());
        let due = p.unreported > 0
            && p.last_alert
                .is_none_or(|at| (now - at).to_std().unwrap_or_default() >= self.every);
        if !due {
            return None;
        }
        p.last_alert = Some(now);
        Some((std::mem::take(&mut p.unreported), p.last_error.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_once_per_period_with_their_count_and_last_reason() {
        let f = PacedFailures::new(Duration::from_secs(600));
        let t0 = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(1);
        assert_eq!(f.due(t0), None, "nothing failed");
        f.note("a");
        assert_eq!(f.due(t0), Some((1, "a".into())));
        f.note("b");
        f.note("c");
        assert_eq!(
            f.due(t0 + chrono::Duration::minutes(5)),
            None,
            "within the period"
        );
        assert_eq!(
            f.due(t0 + chrono::Duration::minutes(10)),
            Some((2, "c".into()))
        );
        assert_eq!(
            f.due(t0 + chrono::Duration::minutes(30)),
            None,
            "told already"
        );
    }
}
