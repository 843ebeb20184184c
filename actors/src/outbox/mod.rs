//! Outbox recovery: replies whose send outcome is unknown.
//!
//! Owns: finding replies whose sender died between claiming them (`sending`) and recording
//! the outcome, and the policy that resolves every `in_doubt` reply with the provider's
//! list of messages — never twice, never silently:
//!
//! 1. **Wait.** A reply is left alone until it has been in doubt for `wait`: a send that
//!    timed out may still be in the provider's hands, and its list may lag behind.
//! 2. **Check** (then again at most every `recheck`, each check's time stored): list the
//!    outbound messages to the lead created since the reply was (minus [`CLOCK_SLACK`]),
//!    leave out those our outbox already accounts for (their sids are recorded on other
//!    replies), and compare bodies after folding what smart encoding rewrites
//!    ([`body_match`]).
//!    - *Found*, in a status that means it is or will be sent (accepted, scheduled, queued,
//!      sending, sent, delivered, read, partially delivered): recorded `sent` with its sid,
//!      alerted `in_doubt_resolved`, not resent.
//!    - *Found, but it failed there* (failed, undelivered, canceled): the provider has it,
//!      so it is not "absent" — recorded `failed`, alerted `in_doubt_failed` for a person
//!      to decide; never resent automatically.
//!    - *Ambiguous*: an outbound message to that number we cannot account for is in the
//!      window (sent by someone else, or ours rewritten past recognition), or ours is in a
//!      status we do not know. Left in doubt, alerted `in_doubt_ambiguous` once, checked
//!      again (it resolves when the stranger turns out to be another reply of ours).
//!    - *Unreachable*: the list cannot be read. Left in doubt, alerted
//!      `in_doubt_unresolved` once, checked again.
//!    - *Absent*: nothing outbound to the lead in the window.
//! 3. **Resend** only when absent at [`ABSENT_CHECKS_TO_RESEND`] consecutive checks, each at
//!    least `recheck` after the one before: back to `queued` (the caller wakes the lead),
//!    alerted `in_doubt_resent`. An ambiguous check in between starts the count again.
//!
//! The checks live in the store ([`InDoubtLedger`]), each write compared against the
//! version read, so a restarted sweeper neither forgets an absent check nor repeats one
//! early, and two sweepers never both count one.
//! Must not: resend anything the provider might have — "absent twice, spaced apart" is the
//! only licence to send again — or flag claims younger than a whole turn's budget (a live
//! sender may hold them).

pub mod body_match;

use std::sync::Arc;
use std::time::Duration;

use crate::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use crate::ports::{
    CheckResult, Clock, InDoubtChecks, InDoubtLedger, InDoubtReply, LeadId, ListedMessage,
    ProviderStatus, SendOutcome, SmsSender, Store, StoreError,
};

/// Slack for the clocks of us and the provider: the window opens this long before the
/// reply was committed.
pub const CLOCK_SLACK: chrono::Duration = chrono::Duration::minutes(1);

/// Consecutive absent checks before an in-doubt reply is sent again.
pub const ABSENT_CHECKS_TO_RESEND: u32 = 2;

/// How long to leave an in-doubt reply alone, and how far apart its checks are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InDoubtPolicy {
    /// In doubt at least this long before the first check (`OUTBOX_IN_DOUBT_WAIT_SECS`).
    pub wait: Duration,
    /// At least this long between two checks of one reply (`OUTBOX_RECHECK_SECS`).
    pub recheck: Duration,
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Claims found orphaned and flagged in doubt.
    pub flagged: usize,
    /// In-doubt replies not checked this time: too fresh, or checked less than `recheck` ago.
    pub waiting: usize,
    /// In-doubt replies the provider had: now `sent`.
    pub confirmed_sent: usize,
    /// In-doubt replies the provider had as failed: now `failed`, for a person.
    pub failed_at_provider: usize,
    /// Found absent once more, but not yet often enough to resend.
    pub absent: usize,
    /// Leads whose in-doubt reply the provider never got: queued again; wake these leads.
    pub requeued: Vec<LeadId>,
    /// Left in doubt: the provider could not be asked, or its answer was ambiguous.
    pub unresolved: usize,
}

/// What one check of one reply found.
#[derive(Debug)]
enum Finding {
    Sent(ListedMessage),
    FailedThere(ListedMessage),
    Ambiguous(String),
    Unreachable(String),
    Absent,
}

pub struct OutboxSweep {
    store: Arc<dyn Store>,
    ledger: Arc<dyn InDoubtLedger>,
    sms: Arc<dyn SmsSender>,
    alerts: AlertHandle,
    clock: Arc<dyn Clock>,
    /// A `sending` claim older than this has no live sender (the turn budget).
    stale_after: Duration,
    policy: InDoubtPolicy,
}

impl OutboxSweep {
    pub fn new(
        store: Arc<dyn Store>,
        ledger: Arc<dyn InDoubtLedger>,
        sms: Arc<dyn SmsSender>,
        alerts: AlertHandle,
        clock: Arc<dyn Clock>,
        stale_after: Duration,
        policy: InDoubtPolicy,
    ) -> Self {
        Self {
            store,
            ledger,
            sms,
            alerts,
            clock,
            stale_after,
            policy,
        }
    }

    /// Flags orphaned claims older than `stale_after` (`Duration::ZERO`: every claim, for a
    /// process that has just started and was the only sender), then checks every in-doubt
    /// reply that is due.
    pub async fn sweep_with(&self, stale_after: Duration) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        let cutoff = self.clock.now() - chrono_duration(stale_after);
        for r in self.store.flag_stale_sends(cutoff).await? {
            report.flagged += 1;
            tracing::warn!(reply = r.id, lead = %r.lead.log(), "send interrupted; in doubt until checked with the provider");
        }
        for r in self.ledger.in_doubt_replies().await? {
            if !self.is_due(&r) {
                report.waiting += 1;
                continue;
            }
            let finding = self.check(&r).await?;
            self.act(&r, finding, &mut report).await?;
        }
        Ok(report)
    }

    /// The periodic sweep: only claims older than a whole turn's budget are orphaned.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        self.sweep_with(self.stale_after).await
    }

    fn is_due(&self, r: &InDoubtReply) -> bool {
        let now = self.clock.now();
        if now < r.in_doubt_since + chrono_duration(self.policy.wait) {
            return false;
        }
        r.checks
            .last_checked_at
            .is_none_or(|last| now >= last + chrono_duration(self.policy.recheck))
    }

    /// Asks the provider and classifies its answer; only a store failure is an error.
    async fn check(&self, r: &InDoubtReply) -> Result<Finding, StoreError> {
        let since = r.created_at - CLOCK_SLACK;
        let listed = match self.sms.find_sent(&r.lead, since).await {
            Ok(listed) => listed,
            Err(e) => return Ok(Finding::Unreachable(e.to_string())),
        };
        let known = self.ledger.recorded_provider_sids(&r.lead).await?;
        let candidates: Vec<ListedMessage> = listed
            .into_iter()
            .filter(|m| m.created_at.is_none_or(|t| t >= since))
            .filter(|m| !known.contains(&m.provider_sid))
            .collect();
        Ok(classify(&r.body, candidates))
    }

    async fn act(
        &self,
        r: &InDoubtReply,
        finding: Finding,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        match finding {
            Finding::Sent(m) => {
                let outcome = SendOutcome::Sent {
                    provider_sid: m.provider_sid.clone(),
                };
                if self.ledger.settle_in_doubt(r, &outcome).await? {
                    report.confirmed_sent += 1;
                    self.alerts.raise(
                        Alert::new(
                            AlertKind::Error,
                            Severity::Info,
                            "in_doubt_resolved",
                            format!(
                                "Reply {} to {} was in doubt; Twilio has it ({}, {}): recorded \
                                 sent, not resent",
                                r.id,
                                r.lead,
                                m.provider_sid,
                                m.status.as_str()
                            ),
                        )
                        .for_lead(&r.lead),
                    );
                }
            }
            Finding::FailedThere(m) => {
                let reason = format!(
                    "was in doubt; Twilio has it as {} ({}); not resent",
                    m.status.as_str(),
                    m.provider_sid
                );
                if self
                    .ledger
                    .settle_in_doubt(r, &SendOutcome::Failed { reason })
                    .await?
                {
                    report.failed_at_provider += 1;
                    self.alerts.raise(
                        Alert::error(
                            "in_doubt_failed",
                            format!(
                                "Reply {} to {} was in doubt; Twilio has it as {} ({}). Recorded \
                                 failed and NOT resent: a person should decide whether to text \
                                 the lead again. The reply was: {}",
                                r.id,
                                r.lead,
                                m.status.as_str(),
                                m.provider_sid,
                                r.body
                            ),
                        )
                        .for_lead(&r.lead),
                    );
                }
            }
            Finding::Absent if r.checks.absent + 1 >= ABSENT_CHECKS_TO_RESEND => {
                let reason = format!(
                    "in doubt; Twilio had no such message at {} checks at least {:?} apart: \
                     sent again",
                    r.checks.absent + 1,
                    self.policy.recheck
                );
                if self
                    .ledger
                    .settle_in_doubt(r, &SendOutcome::Requeued { reason })
                    .await?
                {
                    report.requeued.push(r.lead.clone());
                    self.alerts.raise(
                        Alert::new(
                            AlertKind::Error,
                            Severity::Warning,
                            "in_doubt_resent",
                            format!(
                                "Reply {} to {} was in doubt and Twilio never got it ({} checks \
                                 at least {:?} apart found no message): sending it again",
                                r.id,
                                r.lead,
                                r.checks.absent + 1,
                                self.policy.recheck
                            ),
                        )
                        .for_lead(&r.lead),
                    );
                }
            }
            Finding::Absent => {
                let checks = InDoubtChecks {
                    made: r.checks.made + 1,
                    absent: r.checks.absent + 1,
                    last_checked_at: Some(now),
                    last_result: Some(CheckResult::Absent),
                    ..r.checks.clone()
                };
                if self.ledger.record_in_doubt_check(r, &checks).await? {
                    report.absent += 1;
                    tracing::info!(reply = r.id, lead = %r.lead.log(), absent = checks.absent, "in-doubt reply not at Twilio; checking again before resending");
                }
            }
            Finding::Ambiguous(why) => {
                let checks = InDoubtChecks {
                    made: r.checks.made + 1,
                    absent: 0,
                    last_checked_at: Some(now),
                    last_result: Some(CheckResult::Ambiguous),
                    alerted_ambiguous: true,
                    ..r.checks.clone()
                };
                if self.ledger.record_in_doubt_check(r, &checks).await? {
                    report.unresolved += 1;
                    if !r.checks.alerted_ambiguous {
                        self.alerts.raise(
                            Alert::error(
                                "in_doubt_ambiguous",
                                format!(
                                    "Reply {} to {} is in doubt and Twilio's list cannot settle \
                                     it ({why}); it is not resent. A person should compare the \
                                     conversation with Twilio's log. The reply was: {}",
                                    r.id, r.lead, r.body
                                ),
                            )
                            .for_lead(&r.lead),
                        );
                    }
                }
            }
            Finding::Unreachable(e) => {
                // An outage between two clean checks does not make them less clean: the
                // absent count stands.
                let checks = InDoubtChecks {
                    made: r.checks.made + 1,
                    last_checked_at: Some(now),
                    last_result: Some(CheckResult::Unreachable),
                    alerted_unreachable: true,
                    ..r.checks.clone()
                };
                if self.ledger.record_in_doubt_check(r, &checks).await? {
                    report.unresolved += 1;
                    if !r.checks.alerted_unreachable {
                        self.alerts.raise(
                            Alert::error(
                                "in_doubt_unresolved",
                                format!(
                                    "Reply {} to {} may or may not have gone out and Twilio \
                                     cannot be asked ({e}); it is not resent, and is checked \
                                     again every {:?}",
                                    r.id, r.lead, self.policy.recheck
                                ),
                            )
                            .for_lead(&r.lead),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// The policy on what the provider lists, given the messages in the window that no other
/// reply of ours accounts for.
fn classify(body: &str, candidates: Vec<ListedMessage>) -> Finding {
    if candidates.is_empty() {
        return Finding::Absent;
    }
    let (ours, strangers): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|m| body_match::same_body(body, &m.body));
    // Sent anywhere wins: one copy out there is the reply delivered.
    if let Some(m) = ours.iter().find(|m| counts_as_sent(&m.status)) {
        return Finding::Sent(m.clone());
    }
    if let Some(m) = ours.iter().find(|m| failed_there(&m.status)) {
        return Finding::FailedThere(m.clone());
    }
    if let Some(m) = ours.first() {
        return Finding::Ambiguous(format!(
            "it is listed as {} ({}), a status this version does not know",
            m.status.as_str(),
            m.provider_sid
        ));
    }
    let sids: Vec<&str> = strangers.iter().map(|m| m.provider_sid.as_str()).collect();
    Finding::Ambiguous(format!(
        "{} outbound message(s) to that number match no reply of ours: {}",
        sids.len(),
        sids.join(", ")
    ))
}

/// Statuses of a message that has gone out or will without us: resending would text the
/// lead twice. `scheduled` is one (we never schedule, but a scheduled message goes out by
/// itself); `read` and `partially_delivered` come after sending.
fn counts_as_sent(status: &ProviderStatus) -> bool {
    matches!(
        status,
        ProviderStatus::Accepted
            | ProviderStatus::Scheduled
            | ProviderStatus::Queued
            | ProviderStatus::Sending
            | ProviderStatus::Sent
            | ProviderStatus::Delivered
            | ProviderStatus::Read
            | ProviderStatus::PartiallyDelivered
    )
}

/// Statuses of a message the provider has but did not deliver: not "absent" (the send did
/// happen, and a carrier may have delivered part of it, or filtered it for a reason a resend
/// would repeat), so a person decides. `canceled` only happens to a scheduled message,
/// which someone cancelled on purpose.
fn failed_there(status: &ProviderStatus) -> bool {
    matches!(
        status,
        ProviderStatus::Failed | ProviderStatus::Undelivered | ProviderStatus::Canceled
    )
}

/// Settings are validated positive; only an absurd one (past chrono's range) is capped, at
/// a century, so that adding it to a time cannot overflow.
fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(36_500))
}

#[cfg(test)]
mod tests;
