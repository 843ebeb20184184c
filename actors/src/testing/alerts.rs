//! A recording alert sink and an alert router built on it, for tests that assert on the
//! alerts a component raised.
//!
//! Must not: be used on a production path (the crate's `testing` feature).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::alert_router::{Alert, AlertError, AlertHandle, AlertRouter, AlertSink};
use crate::ports::*;

#[derive(Default)]
pub struct RecordingAlertSink {
    alerts: Mutex<Vec<Alert>>,
    failures_left: AtomicUsize,
}

impl RecordingAlertSink {
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.lock().unwrap().clone()
    }
    pub fn events(&self) -> Vec<String> {
        self.alerts().into_iter().map(|a| a.event).collect()
    }
    /// The next `n` deliveries fail.
    pub fn fail_next(&self, n: usize) {
        self.failures_left.store(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl AlertSink for RecordingAlertSink {
    async fn deliver(&self, alert: &Alert) -> Result<(), AlertError> {
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(AlertError("sink told to fail".into()));
        }
        self.alerts.lock().unwrap().push(alert.clone());
        Ok(())
    }
}

pub async fn test_alerts() -> (AlertHandle, Arc<RecordingAlertSink>) {
    let sink = Arc::new(RecordingAlertSink::default());
    let (handle, _join) = AlertRouter::start(sink.clone(), Arc::new(SystemClock))
        .await
        .expect("alert router starts");
    (handle, sink)
}
