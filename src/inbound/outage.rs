//! Outage alerts that name their cause: the store refusing the webhook's write
//! (`store_unavailable`) and the work queue refusing wake-ups (`queue_unavailable`), each
//! with one `…_recovered` when it works again.
//!
//! Why: a database or broker outage is survived (fallbacks, deferred wake-ups), and a
//! survived outage is still one an operator must hear about — with its cause, not only as
//! stale heartbeats seen by the watchdog. Owns: the pacing (the first failure at once, then
//! at most one reminder with the count per `WEBHOOK_ALERT_SECS`; one recovery per
//! incident). Must not: block the caller (raising is fire-and-forget) or alert per failure.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actors::alert_router::{Alert, AlertHandle, AlertKind, Severity};

#[derive(Default)]
struct State {
    /// An incident is open: at least one failure since the last success.
    open: bool,
    last_alert: Option<Instant>,
    /// Failures since the last alert.
    pending: u64,
}

/// One dependency's outage, as alerts.
pub struct OutageAlert {
    alerts: AlertHandle,
    every: Duration,
    /// `store` or `queue`: the events are `<what>_unavailable` and `<what>_recovered`.
    what: &'static str,
    state: Mutex<State>,
}

impl OutageAlert {
    pub fn new(alerts: AlertHandle, every: Duration, what: &'static str) -> Self {
        Self {
            alerts,
            every,
            what,
            state: Mutex::new(State::default()),
        }
    }

    /// A failure; `detail` says what it was and what was done instead.
    pub fn failed(&self, detail: &str) {
        if let Some(alert) = self.failed_at(Instant::now(), detail) {
            self.alerts.raise(alert);
        }
    }

    /// A success: closes an open incident with one recovery alert.
    pub fn worked(&self) {
        if let Some(alert) = self.worked_at() {
            self.alerts.raise(alert);
        }
    }

    fn failed_at(&self, now: Instant, detail: &str) -> Option<Alert> {
        let mut s = self.state.lock().ok()?;
        s.open = true;
        s.pending += 1;
        if s.last_alert
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            return None;
        }
        let count = std::mem::take(&mut s.pending);
        let first = s.last_alert.is_none();
        s.last_alert = Some(now);
        let text = if first {
            detail.to_string()
        } else {
            format!(
                "Still failing: {count} times in the last {} s. {detail}",
                self.every.as_secs()
            )
        };
        Some(Alert::error(&format!("{}_unavailable", self.what), text))
    }

    fn worked_at(&self) -> Option<Alert> {
        let mut s = self.state.lock().ok()?;
        if !s.open {
            return None;
        }
        *s = State::default();
        Some(Alert::new(
            AlertKind::Error,
            Severity::Info,
            &format!("{}_recovered", self.what),
            format!("The {} answers again.", self.what),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actors::ports::SystemClock;
    use actors::testing::RecordingAlertSink;

    use super::*;

    #[tokio::test]
    async fn an_outage_is_alerted_at_once_reminded_per_period_and_recovered_once() {
        let sink = Arc::new(RecordingAlertSink::default());
        let (alerts, _join) = actors::alert_router::AlertRouter::start(sink, Arc::new(SystemClock))
            .await
            .unwrap();
        let o = OutageAlert::new(alerts, Duration::from_secs(300), "store");
        assert!(o.worked_at().is_none(), "no incident, no recovery");
        let t0 = Instant::now();
        let first = o.failed_at(t0, "refused: connection refused").unwrap();
        assert_eq!(first.event, "store_unavailable");
        assert_eq!(first.text, "refused: connection refused");
        for i in 1..10 {
            assert!(o.failed_at(t0 + Duration::from_secs(i), "x").is_none());
        }
        let reminder = o.failed_at(t0 + Duration::from_secs(300), "y").unwrap();
        assert!(
            reminder.text.starts_with("Still failing: 10 times"),
            "{}",
            reminder.text
        );
        assert_eq!(o.worked_at().unwrap().event, "store_recovered");
        assert!(o.worked_at().is_none(), "once per incident");
        assert_eq!(
            o.failed_at(t0 + Duration::from_secs(301), "z")
                .unwrap()
                .text,
            "z",
            "a new incident starts with a first alert"
        );
    }
}
