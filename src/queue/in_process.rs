//! The embedded work queue: an in-memory channel with prefetch permits and redelivery.
//!
//! Owns: delivery order (FIFO), the prefetch bound (a permit per unsettled delivery) and
//! redelivery of tasks handed back. Must not: be mistaken for durable. It is not: a process
//! crash loses the tasks in it, and that is safe only because start-up re-drives every lead
//! with stored work (`startup::redrive_pending`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actors::ports::{Acker, Delivery, WakeLead};
use async_trait::async_trait;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};

use super::{DeliveryHandler, QueueError, WorkQueue};

pub struct InProcessQueue {
    tx: mpsc::UnboundedSender<WakeLead>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<WakeLead>>>,
    depth: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    stop: Arc<Notify>,
}

impl Default for InProcessQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            depth: Arc::new(AtomicUsize::new(0)),
            stopping: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(Notify::new()),
        }
    }
}

/// Settles one delivery: releases its prefetch permit, and on requeue puts the task back.
struct InProcessAcker {
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    task: WakeLead,
    tx: mpsc::UnboundedSender<WakeLead>,
    depth: Arc<AtomicUsize>,
}

impl InProcessAcker {
    fn release(&self) {
        if let Ok(mut p) = self.permit.lock() {
            p.take();
        }
    }
}

impl Acker for InProcessAcker {
    fn ack(&self) {
        self.release();
    }

    fn requeue(&self) {
        self.depth.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(self.task.clone()).is_err() {
            // Only at shutdown; the store's re-drive at the next start covers it.
            self.depth.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(lead = %self.task.lead.log(), "queue closed; task left to the start-up re-drive");
        }
        self.release();
    }
}

#[async_trait]
impl WorkQueue for InProcessQueue {
    async fn publish(&self, task: WakeLead) -> Result<(), QueueError> {
        self.depth.fetch_add(1, Ordering::SeqCst);
        self.tx.send(task).map_err(|_| {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            QueueError::Unavailable("in-process queue closed".into())
        })
    }

    async fn start_consumer(
        &self,
        prefetch: usize,
        handler: DeliveryHandler,
    ) -> Result<tokio::task::JoinHandle<()>, QueueError> {
        let mut rx = self
            .rx
            .lock()
            .map_err(|_| QueueError::Unavailable("queue lock poisoned".into()))?
            .take()
            .ok_or_else(|| QueueError::Unavailable("a consumer is already running".into()))?;
        let permits = Arc::new(Semaphore::new(prefetch.max(1)));
        let tx = self.tx.clone();
        let depth = self.depth.clone();
        let stopping = self.stopping.clone();
        let stop = self.stop.clone();
        Ok(tokio::spawn(async move {
            loop {
                // The permit is taken before the task so that a task stays queued (visible
                // in depth) rather than held by a busy consumer.
                let permit = tokio::select! {
                    p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                    _ = stop.notified() => break,
                };
                let task = tokio::select! {
                    t = rx.recv() => match t { Some(t) => t, None => break },
                    _ = stop.notified() => break,
                };
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                depth.fetch_sub(1, Ordering::SeqCst);
                let acker = InProcessAcker {
                    permit: Mutex::new(Some(permit)),
                    task: task.clone(),
                    tx: tx.clone(),
                    depth: depth.clone(),
                };
                handler(Delivery::new(task, Box::new(acker)));
            }
        }))
    }

    fn stop_consuming(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
    }

    async fn is_ready(&self) -> bool {
        !self.tx.is_closed() && !self.stopping.load(Ordering::SeqCst)
    }

    fn depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actors::ports::LeadId;
    use actors::testing::wait_for;

    use super::*;

    fn wake(n: u32) -> WakeLead {
        WakeLead {
            lead: LeadId::new(format!("+1{n}")),
        }
    }

    #[tokio::test]
    async fn unsettled_deliveries_never_exceed_the_prefetch() {
        let q = InProcessQueue::default();
        let held = Arc::new(Mutex::new(Vec::new()));
        let h = held.clone();
        q.start_consumer(2, Arc::new(move |d| h.lock().unwrap().push(d)))
            .await
            .unwrap();
        for i in 0..5 {
            q.publish(wake(i)).await.unwrap();
        }
        wait_for(|| held.lock().unwrap().len() == 2).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            held.lock().unwrap().len(),
            2,
            "no third delivery while two are unsettled"
        );
        assert_eq!(q.depth(), 3);
        let d = held.lock().unwrap().remove(0);
        d.ack();
        wait_for(|| held.lock().unwrap().len() == 2).await;
        assert_eq!(q.depth(), 2);
    }

    #[tokio::test]
    async fn a_dropped_delivery_comes_back() {
        let q = InProcessQueue::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        q.start_consumer(
            1,
            Arc::new(move |d: Delivery| {
                let mut seen = s.lock().unwrap();
                seen.push(d.task.lead.clone());
                if seen.len() == 1 {
                    drop(d); // as if the actor holding it crashed
                } else {
                    d.ack();
                }
            }),
        )
        .await
        .unwrap();
        q.publish(wake(7)).await.unwrap();
        wait_for(|| seen.lock().unwrap().len() == 2).await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], seen[1]);
        assert_eq!(q.depth(), 0);
    }
}
