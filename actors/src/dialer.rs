//! Handing a lead to the operator's dialer (voice): a lead who asks to be called, or whom
//! the brain marks hot, is posted to the dialer so a person (or the voice agent) calls
//! them — at most once per lead per day.
//!
//! Owns: the [`Dialer`] port (the HTTP adapter and its dry run are in `src/channels/`),
//! the [`DialLedger`] port (the once-a-day claim, in the store), and [`DialerHandoff`]:
//! claim first, then the post in the background with retries of temporary failures, the
//! outcome recorded, an alert on success (operators see who is being called) and on
//! failure.
//! Must not: block a lead's turn on the dialer (the post runs in its own task), post twice
//! for one lead on one day (the claim is durable before the post), or know the dialer's
//! URL or key.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;

use crate::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use crate::ports::{Clock, LeadId, StoreError};

/// Why a lead is handed to the dialer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialReason {
    /// The lead asked to be called ("call me").
    AskedForCall,
    /// The brain judged the lead hot (`mark_hot_lead`).
    Hot,
}

impl DialReason {
    /// The `reason` field of the dialer's JSON, and the ledger's.
    pub fn as_str(self) -> &'static str {
        match self {
            DialReason::AskedForCall => "asked_for_call",
            DialReason::Hot => "hot_lead",
        }
    }
}

/// One hand-off, as the dialer receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialRequest {
    pub lead: LeadId,
    /// Known once the CRM has named the lead (`leads.name`); an SMS carries none.
    pub name: Option<String>,
    /// A short account for the caller: what the lead said or why the brain thinks it hot.
    pub summary: String,
    pub reason: DialReason,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DialError {
    /// Timeouts, 429, 5xx: tried again.
    #[error("dialer temporarily unavailable: {0}")]
    Retryable(String),
    /// The dialer refused (bad key, bad request): trying again will not help.
    #[error("dialer refused ({status}): {message}")]
    Permanent { status: u16, message: String },
}

impl DialError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, DialError::Retryable(_))
    }
}

/// Where hand-offs go: the operator's dialer, or the log (dry run).
#[async_trait]
pub trait Dialer: Send + Sync + 'static {
    /// `dialer`, `dry-run`: logs and the ledger's outcome.
    fn name(&self) -> &str;
    fn is_dry_run(&self) -> bool;
    async fn hand_off(&self, request: &DialRequest) -> Result<(), DialError>;
}

/// The once-a-day record of hand-offs. Each method is one transaction.
#[async_trait]
pub trait DialLedger: Send + Sync + 'static {
    /// Claims the lead's hand-off for `day`. False: already handed off that day.
    async fn claim_dial(
        &self,
        lead: &LeadId,
        day: NaiveDate,
        reason: &str,
        summary: &str,
    ) -> Result<bool, StoreError>;
    /// Records how the claimed hand-off ended (`sent`, `dry_run`, `failed`).
    async fn finish_dial(
        &self,
        lead: &LeadId,
        day: NaiveDate,
        outcome: &str,
    ) -> Result<(), StoreError>;
    /// Whether the lead is synthetic (the watchdog's or verify's probe number): never
    /// handed to the dialer, whose calls reach a person.
    async fn is_synthetic(&self, lead: &LeadId) -> Result<bool, StoreError>;
    /// The lead's name when known (from the CRM), for the caller.
    async fn lead_name(&self, lead: &LeadId) -> Result<Option<String>, StoreError>;
    /// Whether the lead has opted out (STOP, a revocation, an operator's revoke): a
    /// dialer's call is as proactive as a followup, so it is not handed off.
    async fn is_opted_out(&self, lead: &LeadId) -> Result<bool, StoreError>;
}

/// Longest summary sent; SMS threads can be long and the caller needs the gist.
pub const MAX_SUMMARY_CHARS: usize = 500;

pub struct DialerHandoff {
    ledger: Arc<dyn DialLedger>,
    dialer: Arc<dyn Dialer>,
    alerts: AlertHandle,
    clock: Arc<dyn Clock>,
    attempts: u32,
    retry_delay: Duration,
}

impl DialerHandoff {
    pub fn new(
        ledger: Arc<dyn DialLedger>,
        dialer: Arc<dyn Dialer>,
        alerts: AlertHandle,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            ledger,
            dialer,
            alerts,
            clock,
            attempts: 3,
            retry_delay: Duration::from_millis(500),
        }
    }

    /// Tries of a temporary failure, and the first delay between them (doubled each time).
    pub fn with_retries(mut self, attempts: u32, delay: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.retry_delay = delay;
        self
    }

    /// Hands the lead to the dialer unless it was handed off today (UTC). The claim is
    /// stored before this returns; the post runs in the background. True: claimed now.
    pub async fn hand_off(
        &self,
        lead: &LeadId,
        reason: DialReason,
        summary: &str,
    ) -> Result<bool, StoreError> {
        if self.ledger.is_synthetic(lead).await? {
            tracing::info!(lead = %lead.log(), reason = reason.as_str(), "synthetic lead: not handed to the dialer");
            return Ok(false);
        }
        // Checked here, at the hand-off, as `claim_send` checks a reply: an opt-out
        // committed after the turn began (an operator's revoke) still stops the call.
        if self.ledger.is_opted_out(lead).await? {
            tracing::info!(lead = %lead.log(), reason = reason.as_str(), "opted-out lead: not handed to the dialer");
            return Ok(false);
        }
        let day = self.clock.now().date_naive();
        let summary: String = summary.trim().chars().take(MAX_SUMMARY_CHARS).collect();
        if !self
            .ledger
            .claim_dial(lead, day, reason.as_str(), &summary)
            .await?
        {
            tracing::info!(lead = %lead.log(), reason = reason.as_str(), "already handed to the dialer today");
            return Ok(false);
        }
        // Best effort: a store error costs the caller the name, not the hand-off.
        let name = self.ledger.lead_name(lead).await.unwrap_or_else(|e| {
            tracing::warn!(lead = %lead.log(), error = %e, "lead name unknown for the dialer");
            None
        });
        let request = DialRequest {
            lead: lead.clone(),
            name,
            summary,
            reason,
        };
        let (ledger, dialer, alerts) = (
            self.ledger.clone(),
            self.dialer.clone(),
            self.alerts.clone(),
        );
        let (attempts, mut delay) = (self.attempts, self.retry_delay);
        tokio::spawn(async move {
            let mut attempt = 1;
            let outcome = loop {
                match dialer.hand_off(&request).await {
                    Err(e) if e.is_retryable() && attempt < attempts => {
                        tracing::warn!(lead = %request.lead.log(), attempt, error = %e, "dialer hand-off failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                        attempt += 1;
                    }
                    other => break other,
                }
            };
            let lead = &request.lead;
            let recorded = match outcome {
                Ok(()) => {
                    let dry = dialer.is_dry_run();
                    metrics::counter!("lead_agent_dialer_handoffs_total", "outcome" => if dry { "dry_run" } else { "sent" }).increment(1);
                    alerts.raise(
                        Alert::new(
                            AlertKind::General,
                            Severity::Info,
                            "dialer_handoff",
                            format!(
                                "{lead} handed to the dialer{} ({}): {}",
                                if dry {
                                    " (dry run: HOMEEASY_DIALER_URL is not set)"
                                } else {
                                    ""
                                },
                                request.reason.as_str(),
                                request.summary
                            ),
                        )
                        .for_lead(lead),
                    );
                    if dry { "dry_run" } else { "sent" }
                }
                Err(e) => {
                    metrics::counter!("lead_agent_dialer_handoffs_total", "outcome" => "failed")
                        .increment(1);
                    alerts.raise(
                        Alert::error(
                            "dialer_handoff_failed",
                            format!(
                                "Could not hand {lead} to the dialer after {attempt} tries ({e}); call them: {}",
                                request.summary
                            ),
                        )
                        .for_lead(lead),
                    );
                    "failed"
                }
            };
            if let Err(e) = ledger.finish_dial(lead, day, recorded).await {
                tracing::warn!(lead = %lead.log(), error = %e, "could not record the dialer outcome");
            }
        });
        Ok(true)
    }
}
