//! Deferred wake-ups: leads whose message is stored but whose wake-up the work queue could
//! not take (RabbitMQ down or reconnecting).
//!
//! Owns: the set of such leads in this process and the loop that publishes them once the
//! queue takes work again. Must not: hold message data (a wake-up carries none) or be the
//! only safety net — a process that dies with leads in this set loses only the wake-ups;
//! the stale-work sweep of the scheduler role wakes every lead whose stored work has
//! outlived a turn's budget.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::ports::{LeadId, WakeLead};
use tokio::sync::Notify;

use super::outage::OutageAlert;
use crate::queue::WorkQueue;

/// How often the loop tries again while the queue refuses.
const RETRY_EVERY: Duration = Duration::from_millis(500);

pub struct DeferredWakes {
    queue: Arc<dyn WorkQueue>,
    /// Told when a flush gets wake-ups out again (the recovery alert).
    outage: Arc<OutageAlert>,
    leads: Mutex<BTreeSet<LeadId>>,
    wake: Notify,
}

impl DeferredWakes {
    pub fn new(queue: Arc<dyn WorkQueue>, outage: Arc<OutageAlert>) -> Self {
        Self {
            queue,
            outage,
            leads: Mutex::new(BTreeSet::new()),
            wake: Notify::new(),
        }
    }

    pub fn defer(&self, lead: LeadId) {
        if let Ok(mut leads) = self.leads.lock() {
            leads.insert(lead);
        }
        metrics::counter!("lead_agent_wake_deferred_total").increment(1);
        self.wake.notify_one();
    }

    pub fn len(&self) -> usize {
        self.leads.lock().map(|l| l.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Publishes every deferred lead, keeping those the queue still refuses; returns how
    /// many went out.
    pub async fn flush(&self) -> usize {
        let pending: Vec<LeadId> = match self.leads.lock() {
            Ok(mut leads) => std::mem::take(&mut *leads).into_iter().collect(),
            Err(_) => return 0,
        };
        let mut sent = 0;
        let mut refused = Vec::new();
        for lead in pending {
            // Once one is refused the rest would be too: keep them for the next round.
            if !refused.is_empty() {
                refused.push(lead);
                continue;
            }
            match self.queue.publish(WakeLead { lead: lead.clone() }).await {
                Ok(()) => sent += 1,
                Err(_) => refused.push(lead),
            }
        }
        if !refused.is_empty()
            && let Ok(mut leads) = self.leads.lock()
        {
            leads.extend(refused);
        } else if sent > 0 {
            self.outage.worked();
        }
        sent
    }

    pub fn spawn_retry(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if self.is_empty() {
                    self.wake.notified().await;
                }
                tokio::time::sleep(RETRY_EVERY).await;
                let sent = self.flush().await;
                if sent > 0 {
                    tracing::info!(sent, left = self.len(), "deferred wake-ups published");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::queue::{DeliveryHandler, QueueError};

    /// A queue that refuses while `down`, recording what it took.
    #[derive(Default)]
    struct FlakyQueue {
        down: AtomicBool,
        taken: Mutex<Vec<LeadId>>,
    }

    #[async_trait]
    impl WorkQueue for FlakyQueue {
        async fn publish(&self, task: WakeLead) -> Result<(), QueueError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(QueueError::Unavailable("down".into()));
            }
            self.taken.lock().unwrap().push(task.lead);
            Ok(())
        }
        async fn start_consumer(
            &self,
            _prefetch: usize,
            _handler: DeliveryHandler,
        ) -> Result<tokio::task::JoinHandle<()>, QueueError> {
            unreachable!("not consumed in these tests")
        }
        fn stop_consuming(&self) {}
        async fn is_ready(&self) -> bool {
            !self.down.load(Ordering::SeqCst)
        }
        fn depth(&self) -> usize {
            0
        }
    }

    #[tokio::test]
    async fn deferred_wakes_wait_for_the_queue_and_go_out_once_each() {
        let queue = Arc::new(FlakyQueue::default());
        queue.down.store(true, Ordering::SeqCst);
        let sink = Arc::new(actors::testing::RecordingAlertSink::default());
        let (alerts, _join) =
            actors::alert_router::AlertRouter::start(sink, Arc::new(actors::ports::SystemClock))
                .await
                .unwrap();
        let outage = Arc::new(OutageAlert::new(alerts, Duration::from_secs(300), "queue"));
        let wakes = DeferredWakes::new(queue.clone(), outage);
        wakes.defer(LeadId::new("+13125550101"));
        wakes.defer(LeadId::new("+13125550102"));
        wakes.defer(LeadId::new("+13125550101"));
        assert_eq!(wakes.flush().await, 0);
        assert_eq!(wakes.len(), 2, "kept while refused, one per lead");
        queue.down.store(false, Ordering::SeqCst);
        assert_eq!(wakes.flush().await, 2);
        assert!(wakes.is_empty());
        assert_eq!(queue.taken.lock().unwrap().len(), 2);
    }
}
