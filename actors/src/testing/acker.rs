//! A queue acker ([`TestAcker`]) that records what happened to each delivery and can hand
//! requeued tasks back like a real queue.
//!
//! Must not: be used on a production path (the crate's `testing` feature).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ports::*;

/// An acker that records what happened to each delivery and, when built with
/// [`TestAcker::redelivering`], hands requeued tasks back like a real queue would.
#[derive(Clone, Default)]
pub struct TestAcker {
    pub acks: Arc<AtomicUsize>,
    pub requeues: Arc<AtomicUsize>,
    redeliver: Option<tokio::sync::mpsc::UnboundedSender<LeadId>>,
    lead: Option<LeadId>,
}

impl TestAcker {
    /// Requeued tasks come back through `dispatch`, like a queue's redelivery.
    pub fn redelivering(dispatch: impl Fn(Delivery) + Send + 'static) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<LeadId>();
        let mut acker = Self {
            redeliver: Some(tx),
            ..Self::default()
        };
        let template = acker.clone();
        tokio::spawn(async move {
            while let Some(lead) = rx.recv().await {
                dispatch(template.delivery(&lead));
            }
        });
        acker.lead = None;
        acker
    }
    pub fn delivery(&self, lead: &LeadId) -> Delivery {
        let mut acker = self.clone();
        acker.lead = Some(lead.clone());
        Delivery::new(WakeLead { lead: lead.clone() }, Box::new(acker))
    }
    pub fn acks(&self) -> usize {
        self.acks.load(Ordering::SeqCst)
    }
    pub fn requeues(&self) -> usize {
        self.requeues.load(Ordering::SeqCst)
    }
}

impl Acker for TestAcker {
    fn ack(&self) {
        self.acks.fetch_add(1, Ordering::SeqCst);
    }
    fn requeue(&self) {
        self.requeues.fetch_add(1, Ordering::SeqCst);
        if let (Some(tx), Some(lead)) = (&self.redeliver, &self.lead) {
            let _ = tx.send(lead.clone());
        }
    }
}
