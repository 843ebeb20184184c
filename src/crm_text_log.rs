//! The CRM texting log (issue 14, the seed's `FUB_TEXTING_SERVICE`): every inbound SMS and
//! every reply sent is recorded on the lead's Follow Up Boss timeline, once.
//!
//! Owns: the drain the scheduler's `crm_text_log` job runs — up to [`BATCH`] messages not yet
//! settled (`crm_text_log` table), each claimed in the store before it is posted (so two
//! schedulers, or a run overlapping a lapsed one, never post the same message twice; a
//! process that dies between the post and the record posts it again after the claim lapses:
//! at least once), a retryable failure tried again after the project's one backoff
//! ([`actors::backoff::Backoff`], 1 s doubling to 5 min) up to [`MAX_ATTEMPTS`], a
//! refused or exhausted one marked `failed` and alerted (ERROR `crm_text_log_failed`, at
//! most one alert per [`ALERT_EVERY`], with the count since the last). A lead FUB does not
//! know is `no_person`: logged, not alerted (leads reach FUB through the office's lead
//! sources, not through us).
//! The people search also gives who the lead is (FUB's person id and name): recorded on
//! the lead (`SqlStore::record_lead_identity`) for the typed events' `client_id` and name.
//! Runs off the reply path: the webhook's 200 and the lead's reply never wait for it.
//! Must not: call FUB itself (`crate::channels::fub_texts` does) or create FUB people.

use std::collections::HashMap;
use std::time::Duration;

use actors::alert_router::{Alert, AlertHandle};
use actors::backoff::Backoff;
use chrono::{DateTime, Utc};

use actors::ports::LeadId;

use crate::channels::fub_texts::{FubPerson, FubTextError, FubTexts, TextEntry};
use crate::paced_failures::PacedFailures;
use crate::store::{LeadIdentity, SqlStore, TextLogOutcome};

/// Most messages one run posts.
pub const BATCH: i64 = 50;
/// Attempts before a retryable failure is given up (1 s … 5 min: about 25 minutes).
pub const MAX_ATTEMPTS: u32 = 12;
/// How far back a run looks for messages never tried: the first run after `FUB_API` is set
/// logs the last week, and a scheduler down for less than that loses nothing.
pub const LOOK_BACK: chrono::Duration = chrono::Duration::days(7);
/// How long a claim holds before another run may take the message.
const CLAIM_FOR: chrono::Duration = chrono::Duration::seconds(60);
/// Persistent failures are alerted at most this often.
pub const ALERT_EVERY: Duration = Duration::from_secs(600);
const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

/// The drain, with its client, our number and the alert pacing.
pub struct CrmTextLog {
    fub: FubTexts,
    /// Our side of each text: `fromNumber` of a reply, `toNumber` of an inbound SMS.
    our_number: String,
    alerts: AlertHandle,
    failures: PacedFailures,
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TextLogReport {
    pub logged: usize,
    pub no_person: usize,
    pub retried: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl TextLogReport {
    pub fn summary(&self) -> String {
        format!(
            "{} texts logged to Follow Up Boss, {} retried later, {} failed, {} without a FUB person, {} taken by another run",
            self.logged, self.retried, self.failed, self.no_person, self.skipped
        )
    }
}

impl CrmTextLog {
    pub fn new(fub: FubTexts, our_number: String, alerts: AlertHandle) -> Self {
        Self {
            fub,
            our_number,
            alerts,
            failures: PacedFailures::new(ALERT_EVERY),
        }
    }

    /// One run of the drain at `now`.
    pub async fn run(&self, store: &SqlStore, now: DateTime<Utc>) -> anyhow::Result<TextLogReport> {
        let mut report = TextLogReport::default();
        let pending = store.pending_text_logs(now - LOOK_BACK, now, BATCH).await?;
        // One people search per lead per run: a conversation's texts share it.
        let mut people: HashMap<String, Result<i64, FubTextError>> = HashMap::new();
        for text in pending {
            if !store
                .claim_text_log(text.message_id, now, now + CLAIM_FOR)
                .await?
            {
                report.skipped += 1;
                continue;
            }
            let person = match people.get(text.lead.as_str()) {
                Some(p) => p.clone(),
                None => {
                    let found = self.fub.person(text.lead.as_str()).await;
                    if let Ok(person) = &found {
                        self.record_identity(store, &text.lead, person).await;
                    }
                    let p = found.map(|person| person.id);
                    people.insert(text.lead.as_str().to_string(), p.clone());
                    p
                }
            };
            let result = match person {
                Ok(id) => {
                    let (to, from) = if text.inbound {
                        (self.our_number.as_str(), text.lead.as_str())
                    } else {
                        (text.lead.as_str(), self.our_number.as_str())
                    };
                    self.fub
                        .log_text(
                            id,
                            &TextEntry {
                                message: &text.body,
                                to_number: to,
                                from_number: from,
                                is_incoming: text.inbound,
                            },
                        )
                        .await
                }
                Err(e) => Err(e),
            };
            let attempts = text.attempts.saturating_add(1);
            let outcome = match result {
                Ok(()) => {
                    report.logged += 1;
                    TextLogOutcome::Logged
                }
                Err(FubTextError::NoPerson) => {
                    report.no_person += 1;
                    tracing::info!(lead = %text.lead.log(), "CRM text log: no Follow Up Boss person with this phone; not logged");
                    TextLogOutcome::NoPerson
                }
                Err(e) if e.is_retryable() && attempts < MAX_ATTEMPTS => {
                    report.retried += 1;
                    let wait =
                        chrono::Duration::from_std(BACKOFF.delay(attempts)).unwrap_or(CLAIM_FOR);
                    TextLogOutcome::Retry {
                        at: now + wait,
                        detail: e.to_string(),
                    }
                }
                Err(e) => {
                    report.failed += 1;
                    let detail = if e.is_retryable() {
                        format!("{e} (gave up after {attempts} attempts)")
                    } else {
                        e.to_string()
                    };
                    self.note_failure(&detail);
                    TextLogOutcome::Failed { detail }
                }
            };
            store
                .finish_text_log(text.message_id, attempts, &outcome, now)
                .await?;
        }
        self.maybe_alert(now);
        Ok(report)
    }

    /// Keeps who FUB says the lead is, for the typed events' `client_id` and name. A store
    /// error here only costs the identity (the texts are still logged): a log line.
    async fn record_identity(&self, store: &SqlStore, lead: &LeadId, person: &FubPerson) {
        let identity = LeadIdentity {
            client_id: Some(person.id.to_string()),
            name: person.name.clone(),
        };
        match store.record_lead_identity(lead, &identity).await {
            Ok(true) => {
                tracing::info!(lead = %lead.log(), client_id = person.id, "lead identified in Follow Up Boss")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(lead = %lead.log(), error = %e, "lead identity not recorded"),
        }
    }

    fn note_failure(&self, detail: &str) {
        self.failures.note(detail);
    }

    /// One alert for the failures since the last one, unless one went out within
    /// [`ALERT_EVERY`] (the rest wait for the next run past it).
    fn maybe_alert(&self, now: DateTime<Utc>) {
        if let Some((count, last)) = self.failures.due(now) {
            self.alerts.raise(Alert::error(
                "crm_text_log_failed",
                format!(
                    "{} SMS could not be logged to the Follow Up Boss timeline (they stay out of the CRM); last error: {}",
                    count, last
                ),
            ));
        }
    }
}
