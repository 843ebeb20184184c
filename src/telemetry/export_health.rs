//! Whether each trace exporter's exports get through, and the one alert when they stop.
//!
//! Owns: the per-exporter failure streak (recorded on the batch thread after every export),
//! the metrics (`lead_agent_trace_exports_total{exporter,outcome}`), one warning log line when
//! a streak starts and one info line when it ends, and the pacing of the alert: one
//! `trace_export_failing` (kind ERROR, warning) per streak once it has lasted
//! `TRACE_EXPORT_ALERT_SECS`, and none again until an export has succeeded.
//! Must not: block or fail the caller — a span's end never waits for any of this, and a
//! lost alert costs a lost alert, not a turn.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actors::alert_router::{Alert, AlertHandle, AlertKind, Severity};

#[derive(Debug, Clone, Default)]
struct Streak {
    name: &'static str,
    /// Set at the first failure after a success (or at start).
    failing_since: Option<Instant>,
    failures: u64,
    last_error: String,
    alerted: bool,
}

/// A streak that has lasted long enough to alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAlert {
    pub exporter: &'static str,
    pub failures: u64,
    pub failing_for: Duration,
    pub last_error: String,
}

/// Every exporter's streak. One per process ([`HEALTH`]): the exporters are the process's.
#[derive(Debug, Default)]
pub struct ExportHealth {
    streaks: Mutex<Vec<Streak>>,
}

pub(super) static HEALTH: ExportHealth = ExportHealth::new();

impl ExportHealth {
    pub const fn new() -> Self {
        Self {
            streaks: Mutex::new(Vec::new()),
        }
    }

    fn with_streak<T>(&self, name: &'static str, f: impl FnOnce(&mut Streak) -> T) -> T {
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        let idx = match streaks.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                streaks.push(Streak {
                    name,
                    ..Streak::default()
                });
                streaks.len() - 1
            }
        };
        f(&mut streaks[idx])
    }

    /// Notes one export's outcome.
    pub fn record(&self, name: &'static str, outcome: Result<(), String>, now: Instant) {
        let label = if outcome.is_ok() { "ok" } else { "failed" };
        metrics::counter!("lead_agent_trace_exports_total", "exporter" => name, "outcome" => label)
            .increment(1);
        self.with_streak(name, |s| match outcome {
            Ok(()) => {
                if s.failing_since.take().is_some() {
                    tracing::info!(
                        exporter = name,
                        failures = s.failures,
                        "trace export recovered"
                    );
                }
                s.failures = 0;
                s.alerted = false;
            }
            Err(error) => {
                if s.failing_since.is_none() {
                    s.failing_since = Some(now);
                    tracing::warn!(
                        exporter = name,
                        error = %error,
                        "trace export failed: its spans are dropped until it recovers (turns do not wait for it)"
                    );
                }
                s.failures += 1;
                s.last_error = error;
            }
        })
    }

    /// The streaks that have lasted `after` and were not alerted yet; marks them alerted.
    pub fn take_due(&self, now: Instant, after: Duration) -> Vec<DueAlert> {
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        streaks
            .iter_mut()
            .filter_map(|s| {
                let since = s.failing_since?;
                let failing_for = now.saturating_duration_since(since);
                if s.alerted || failing_for < after {
                    return None;
                }
                s.alerted = true;
                Some(DueAlert {
                    exporter: s.name,
                    failures: s.failures,
                    failing_for,
                    last_error: s.last_error.clone(),
                })
            })
            .collect()
    }
}

impl DueAlert {
    pub fn alert(&self) -> Alert {
        Alert::new(
            AlertKind::Error,
            Severity::Warning,
            "trace_export_failing",
            format!(
                "Trace export to {} has failed for {} s ({} exports in a row; last: {}). Its spans \
                 are being dropped; replies are not affected.",
                self.exporter,
                self.failing_for.as_secs(),
                self.failures,
                self.last_error
            ),
        )
    }
}

/// Checks the streaks every few seconds and raises each due alert. Started by the
/// application when tracing exports anywhere.
pub fn spawn_export_alerts(alerts: AlertHandle, after: Duration) -> tokio::task::JoinHandle<()> {
    let period = (after / 5).clamp(Duration::from_millis(200), Duration::from_secs(30));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            for due in HEALTH.take_due(Instant::now(), after) {
                alerts.raise(due.alert());
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_streak_alerts_once_after_its_time_and_again_only_after_a_recovery() {
        let health = ExportHealth::new();
        let t0 = Instant::now();
        let after = Duration::from_secs(300);
        health.record("otlp", Err("503".into()), t0);
        health.record("otlp", Err("503".into()), t0 + Duration::from_secs(100));
        assert!(
            health
                .take_due(t0 + Duration::from_secs(200), after)
                .is_empty()
        );
        let due = health.take_due(t0 + Duration::from_secs(301), after);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].exporter, "otlp");
        assert_eq!(due[0].failures, 2);
        assert!(due[0].alert().text.contains("replies are not affected"));
        // Still failing: no second alert for the same streak.
        health.record("otlp", Err("503".into()), t0 + Duration::from_secs(400));
        assert!(
            health
                .take_due(t0 + Duration::from_secs(900), after)
                .is_empty()
        );
        // A success ends the streak; a new one alerts after its own time.
        health.record("otlp", Ok(()), t0 + Duration::from_secs(901));
        health.record("otlp", Err("refused".into()), t0 + Duration::from_secs(902));
        assert!(
            health
                .take_due(t0 + Duration::from_secs(1000), after)
                .is_empty()
        );
        let due = health.take_due(t0 + Duration::from_secs(1203), after);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].last_error, "refused");
    }

    #[test]
    fn exporters_are_watched_apart() {
        let health = ExportHealth::new();
        let t0 = Instant::now();
        health.record("otlp", Ok(()), t0);
        health.record("langsmith", Err("401".into()), t0);
        let due = health.take_due(t0 + Duration::from_secs(10), Duration::from_secs(5));
        assert_eq!(
            due.iter().map(|d| d.exporter).collect::<Vec<_>>(),
            ["langsmith"]
        );
    }
}
