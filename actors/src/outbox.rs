//! Outbox recovery: replies whose send outcome is unknown.
//!
//! Owns: finding replies whose sender died between claiming them (`sending`) and recording
//! the outcome, and resolving every `in_doubt` reply by asking the provider whether it went
//! out — found: recorded `sent`; certainly not found: back to `queued` for the lead's actor
//! to send; the provider cannot tell: left in doubt and alerted once.
//! Must not: resend anything the provider might have — "not found" is the only licence to
//! send again, and only for claims older than a whole turn's budget (no live sender holds
//! them).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use crate::ports::{Clock, LeadId, SendOutcome, SmsSender, Store, StoreError};

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Claims found orphaned and flagged in doubt.
    pub flagged: usize,
    /// In-doubt replies the provider had: now `sent`.
    pub confirmed_sent: usize,
    /// Leads whose in-doubt reply the provider never got: queued again; wake these leads.
    pub requeued: Vec<LeadId>,
    /// In-doubt replies the provider could not be asked about.
    pub unresolved: usize,
}

pub struct OutboxSweep {
    store: Arc<dyn Store>,
    sms: Arc<dyn SmsSender>,
    alerts: AlertHandle,
    clock: Arc<dyn Clock>,
    /// A `sending` claim older than this has no live sender (the turn budget).
    stale_after: Duration,
    /// Replies already alerted as unresolvable, so a long provider outage alerts once each.
    alerted: Mutex<HashSet<i64>>,
}

impl OutboxSweep {
    pub fn new(
        store: Arc<dyn Store>,
        sms: Arc<dyn SmsSender>,
        alerts: AlertHandle,
        clock: Arc<dyn Clock>,
        stale_after: Duration,
    ) -> Self {
        Self {
            store,
            sms,
            alerts,
            clock,
            stale_after,
            alerted: Mutex::new(HashSet::new()),
        }
    }

    /// Flags orphaned claims older than `stale_after` (`Duration::ZERO`: every claim, for a
    /// process that has just started and was the only sender), then resolves every in-doubt
    /// reply.
    pub async fn sweep_with(&self, stale_after: Duration) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        let cutoff = self.clock.now()
            - chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::zero());
        for r in self.store.flag_stale_sends(cutoff).await? {
            report.flagged += 1;
            tracing::warn!(reply = r.id, lead = %r.lead, "send interrupted; asking the provider");
        }
        for r in self.store.in_doubt_replies().await? {
            // A minute of slack for clock skew between us and the provider.
            let since = r.created_at - chrono::Duration::minutes(1);
            match self.sms.find_sent(&r.lead, &r.body, since).await {
                Ok(Some(sent)) => {
                    self.store
                        .record_send(
                            r.id,
                            &SendOutcome::Sent {
                                provider_sid: sent.provider_sid.clone(),
                            },
                        )
                        .await?;
                    report.confirmed_sent += 1;
                    self.alerts.raise(
                        Alert::new(
                            AlertKind::Error,
                            Severity::Info,
                            "in_doubt_resolved",
                            format!(
                                "Reply {} to {} had gone out ({}); recorded, not resent",
                                r.id, r.lead, sent.provider_sid
                            ),
                        )
                        .for_lead(&r.lead),
                    );
                }
                Ok(None) => {
                    self.store
                        .record_send(
                            r.id,
                            &SendOutcome::Requeued {
                                reason: "in doubt; the provider never received it".into(),
                            },
                        )
                        .await?;
                    report.requeued.push(r.lead.clone());
                }
                Err(e) => {
                    report.unresolved += 1;
                    let first = self
                        .alerted
                        .lock()
                        .map(|mut a| a.insert(r.id))
                        .unwrap_or(true);
                    if first {
                        self.alerts.raise(
                            Alert::error(
                                "sms_in_doubt",
                                format!(
                                    "Reply {} to {} may or may not have gone out and the provider \
                                     cannot be asked ({e}); it is not resent",
                                    r.id, r.lead
                                ),
                            )
                            .for_lead(&r.lead),
                        );
                    }
                }
            }
        }
        Ok(report)
    }

    /// The periodic sweep: only claims older than a whole turn's budget are orphaned.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        self.sweep_with(self.stale_after).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{Claim, LeadId, ManualClock};
    use crate::testing::{FakeSms, MemStore, test_alerts};

    async fn setup() -> (OutboxSweep, Arc<MemStore>, Arc<FakeSms>, i64) {
        let (alerts, _sink) = test_alerts().await;
        let store = Arc::new(MemStore::default());
        let sms = Arc::new(FakeSms::default());
        let lead = LeadId::new("+13125550100");
        store.insert_inbound(&lead, "SM1", "Hi");
        let reply = store
            .commit_reply(&lead, &[1], "Hello", "rules")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.claim_send(reply).await.unwrap(), Claim::Send);
        let clock = ManualClock::new(chrono::Utc::now());
        clock.advance(Duration::from_secs(1));
        let sweep = OutboxSweep::new(
            store.clone(),
            sms.clone(),
            alerts,
            Arc::new(clock),
            Duration::from_secs(90),
        );
        (sweep, store, sms, reply)
    }

    #[tokio::test]
    async fn a_fresh_claim_is_left_to_its_live_sender() {
        let (sweep, store, _sms, _) = setup().await;
        assert_eq!(sweep.sweep().await.unwrap(), SweepReport::default());
        assert_eq!(store.outbound(&LeadId::new("+13125550100"))[0].1, "sending");
    }

    #[tokio::test]
    async fn an_orphaned_reply_the_provider_never_got_is_queued_again() {
        let (sweep, store, _sms, _) = setup().await;
        let report = sweep.sweep_with(Duration::ZERO).await.unwrap();
        assert_eq!(report.flagged, 1);
        assert_eq!(report.requeued, vec![LeadId::new("+13125550100")]);
        assert_eq!(store.outbound(&LeadId::new("+13125550100"))[0].1, "queued");
    }

    #[tokio::test]
    async fn an_orphaned_reply_the_provider_has_is_recorded_sent_not_resent() {
        let (sweep, store, sms, _) = setup().await;
        sms.send_sms(&LeadId::new("+13125550100"), "Hello")
            .await
            .unwrap();
        let report = sweep.sweep_with(Duration::ZERO).await.unwrap();
        assert_eq!(report.confirmed_sent, 1);
        assert!(report.requeued.is_empty());
        assert_eq!(store.outbound(&LeadId::new("+13125550100"))[0].1, "sent");
        assert_eq!(sms.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_provider_that_cannot_answer_leaves_the_reply_in_doubt() {
        let (sweep, store, sms, _) = setup().await;
        sms.fail_lookups(true);
        let report = sweep.sweep_with(Duration::ZERO).await.unwrap();
        assert_eq!(report.unresolved, 1);
        assert_eq!(
            store.outbound(&LeadId::new("+13125550100"))[0].1,
            "in_doubt"
        );
    }
}
