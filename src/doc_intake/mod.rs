//! The mailbox document intake (issue 14 item 3; the seed's Gmail/Drive intake): leads mail
//! their documents to the staff mailbox, and each such mail, once, opens the lead's
//! `doc_review` SLA with the files stored in the lead's Drive folder.
//!
//! Owns: the drain the scheduler's `doc_intake` job runs — the mailbox's messages with
//! attachments of the last [`LOOK_BACK`] (Gmail's search, [`QUERY`]), up to [`BATCH`] not yet
//! settled in the `doc_intake` table a run, oldest first, each claimed in the store before it
//! is read (two schedulers, or a run overlapping a lapsed one, never take the same message);
//! matching a mail to a known lead by the phone numbers in it ([`matching`]: the store keeps
//! no lead emails); for a matched one, every attachment uploaded into the lead's folder
//! under `YGL_DRIVE_PARENT_FOLDER_ID` (or, with Drive off, named only), then
//! [`actors::sla::SlaEvents::documents_arrived`] — what `POST /ops/leads/{phone}/documents`
//! calls — with a note naming the files; that raises REQUIREMENTS_NOTE `documents_arrived`
//! (with the review buttons) for a new review, and for one already open this raises
//! REQUIREMENTS_NOTE `documents_received`, so each mail is told once. A mail matching no
//! lead is recorded `unmatched` and never retried. A failure is retried after the project's
//! one backoff ([`actors::backoff::Backoff`], 1 s doubling to 5 min) up to [`MAX_ATTEMPTS`];
//! a refused or exhausted one is `failed`. A mailbox that cannot be read (the token, the
//! list) records nothing, so every message is there for the next run. Either is alerted as
//! ERROR `doc_intake_failed`, at most once per [`ALERT_EVERY`] with the count since the last.
//! At least once, not exactly once: a run that dies after opening the SLA and before
//! recording it is retried when its claim lapses; its uploads are found again by their
//! marks (`channels::google::drive`), the SLA is already open, and `documents_received`
//! tells of the same files again.
//! Must not: call Google itself (`crate::channels::google`), change the mailbox, or decide
//! what a doc review opens (`actors::sla::events`).

pub mod matching;

use std::collections::HashMap;
use std::time::Duration;

use actors::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use actors::backoff::Backoff;
use actors::ports::{LeadId, StoreError};
use actors::sla::{Opened, SlaEvents};
use chrono::{DateTime, Utc};

use crate::channels::google::GoogleError;
use crate::channels::google::drive::{Drive, folder_link};
use crate::channels::google::gmail::{Gmail, Mail};
use crate::paced_failures::PacedFailures;
use crate::store::{IntakeOutcome, SqlStore};

/// Gmail's search: mail with attachments of the last week, not sent by the mailbox itself.
pub const QUERY: &str = "has:attachment newer_than:7d -from:me";
/// The window [`QUERY`] covers (and the rows a run reads back).
pub const LOOK_BACK: chrono::Duration = chrono::Duration::days(7);
/// Most message ids one run lists (newest first, settled ones included): a mailbox with more
/// mail with attachments than this in a week would have its oldest never seen.
pub const MAX_LISTED: usize = 500;
/// Most messages one run takes.
pub const BATCH: usize = 20;
/// Attempts before a retryable failure is given up (1 s … 5 min: about 25 minutes).
pub const MAX_ATTEMPTS: u32 = 12;
/// How long a claim holds before another run may take the message: long enough for a
/// mail's attachments (25 MB at most) to go through.
const CLAIM_FOR: chrono::Duration = chrono::Duration::minutes(10);
/// Persistent failures are alerted at most this often.
pub const ALERT_EVERY: Duration = Duration::from_secs(600);
/// The longest note the SLA's task gets (what `/ops` accepts is 2,000).
const MAX_NOTE_CHARS: usize = 1500;
const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

/// Where a matched mail's files go.
pub enum FileStore {
    /// The Drive client (boxed: it holds a token source) and the parent folder's id.
    Drive(Box<Drive>, String),
    /// Drive is off; why, for the note ("GDRIVE_SERVICE_ACCOUNT_JSON is not set").
    Off(String),
}

pub struct DocIntake {
    gmail: Gmail,
    files: FileStore,
    alerts: AlertHandle,
    failures: PacedFailures,
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IntakeReport {
    pub processed: usize,
    pub unmatched: usize,
    pub no_documents: usize,
    pub retried: usize,
    pub failed: usize,
    pub skipped: usize,
    /// The mailbox could not be read: nothing was taken.
    pub mailbox_error: Option<String>,
}

impl IntakeReport {
    pub fn summary(&self) -> String {
        if let Some(e) = &self.mailbox_error {
            return format!("mailbox not read: {e}");
        }
        format!(
            "{} mails with documents taken, {} from no known lead, {} without files, {} retried later, {} failed, {} taken by another run",
            self.processed,
            self.unmatched,
            self.no_documents,
            self.retried,
            self.failed,
            self.skipped
        )
    }
}

/// Why one message could not be taken this time.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Google(#[from] GoogleError),
    #[error("the store: {0}")]
    Store(#[from] StoreError),
}

impl StepError {
    fn is_retryable(&self) -> bool {
        match self {
            StepError::Google(e) => e.is_retryable(),
            StepError::Store(_) => true,
        }
    }
}

impl DocIntake {
    pub fn new(gmail: Gmail, files: FileStore, alerts: AlertHandle) -> Self {
        Self {
            gmail,
            files,
            alerts,
            failures: PacedFailures::new(ALERT_EVERY),
        }
    }

    /// One run of the drain at `now`.
    pub async fn run(
        &self,
        store: &SqlStore,
        events: &SlaEvents,
        now: DateTime<Utc>,
    ) -> anyhow::Result<IntakeReport> {
        let mut report = IntakeReport::default();
        let ids = match self.gmail.list(QUERY, MAX_LISTED).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "document intake: the mailbox could not be read");
                self.note_failure(&format!("the staff mailbox could not be read: {e}"));
                self.maybe_alert(now);
                report.mailbox_error = Some(e.to_string());
                return Ok(report);
            }
        };
        // A day of slack: Gmail's "7d" and our clock need not agree to the second.
        let rows = store
            .doc_intake_since(now - LOOK_BACK - chrono::Duration::days(1))
            .await?;
        let mut folders: HashMap<String, String> = HashMap::new();
        let mut taken = 0;
        for id in ids.iter().rev() {
            let row = rows.get(id);
            if row.is_some_and(|r| r.is_resting(now)) {
                continue;
            }
            if taken == BATCH {
                break;
            }
            taken += 1;
            if !store.claim_doc_intake(id, now, now + CLAIM_FOR).await? {
                report.skipped += 1;
                continue;
            }
            let attempts = row.map_or(0, |r| r.attempts).saturating_add(1);
            let outcome = match self.take(store, events, id, now, &mut folders).await {
                Ok(o) => o,
                Err(e) if e.is_retryable() && attempts < MAX_ATTEMPTS => {
                    tracing::info!(message = %id, attempts, error = %e, "document intake: retried later");
                    let wait =
                        chrono::Duration::from_std(BACKOFF.delay(attempts)).unwrap_or(CLAIM_FOR);
                    IntakeOutcome::Retry {
                        at: now + wait,
                        detail: e.to_string(),
                    }
                }
                Err(e) => {
                    let detail = if e.is_retryable() {
                        format!("{e} (gave up after {attempts} attempts)")
                    } else {
                        e.to_string()
                    };
                    tracing::warn!(message = %id, error = %detail, "document intake: message failed");
                    self.note_failure(&format!("mail {id}: {detail}"));
                    IntakeOutcome::Failed { detail }
                }
            };
            match &outcome {
                IntakeOutcome::Processed { .. } => report.processed += 1,
                IntakeOutcome::Unmatched => report.unmatched += 1,
                IntakeOutcome::NoDocuments { .. } => report.no_documents += 1,
                IntakeOutcome::Retry { .. } => report.retried += 1,
                IntakeOutcome::Failed { .. } => report.failed += 1,
            }
            store.finish_doc_intake(id, attempts, &outcome, now).await?;
        }
        self.maybe_alert(now);
        Ok(report)
    }

    /// The known lead whose number the mail names first (From, then Subject, then text).
    async fn lead_of(&self, store: &SqlStore, mail: &Mail) -> Result<Option<LeadId>, StoreError> {
        let text = format!("{}\n{}\n{}", mail.from, mail.subject, mail.text);
        for phone in matching::phone_candidates(&text) {
            if store.is_known_lead(&phone).await? {
                return Ok(Some(LeadId::new(phone)));
            }
        }
        Ok(None)
    }

    /// One message: read, matched, stored, recorded on the lead.
    async fn take(
        &self,
        store: &SqlStore,
        events: &SlaEvents,
        id: &str,
        now: DateTime<Utc>,
        folders: &mut HashMap<String, String>,
    ) -> Result<IntakeOutcome, StepError> {
        let mail = self.gmail.get(id).await?;
        let Some(lead) = self.lead_of(store, &mail).await? else {
            tracing::info!(message = %id, "document intake: no known lead's number in the mail; left alone");
            return Ok(IntakeOutcome::Unmatched);
        };
        let files: Vec<_> = mail
            .attachments
            .iter()
            .filter(|a| !a.filename.trim().is_empty())
            .collect();
        if files.is_empty() {
            return Ok(IntakeOutcome::NoDocuments { lead });
        }
        let stored = match &self.files {
            FileStore::Drive(drive, parent) => {
                let folder = match folders.get(lead.as_str()) {
                    Some(f) => f.clone(),
                    None => {
                        let f = drive.folder(parent, lead.as_str()).await?;
                        folders.insert(lead.as_str().to_string(), f.clone());
                        f
                    }
                };
                let done = drive.uploaded_parts(&folder, id).await?;
                for a in &files {
                    if done.contains(&a.part_id) {
                        continue;
                    }
                    let content = match (&a.inline, &a.attachment_id) {
                        (Some(bytes), _) => bytes.clone(),
                        (None, Some(aid)) => self.gmail.attachment(id, aid).await?,
                        (None, None) => {
                            return Err(GoogleError::Decode(format!(
                                "attachment {} has neither data nor an id",
                                a.part_id
                            ))
                            .into());
                        }
                    };
                    drive
                        .upload(
                            &folder,
                            &a.filename,
                            &a.mime_type,
                            content,
                            (id, &a.part_id),
                        )
                        .await?;
                }
                format!("stored in Drive: {}", folder_link(&folder))
            }
            FileStore::Off(why) => format!("not stored in Drive: {why}"),
        };
        let names: Vec<&str> = files.iter().map(|a| a.filename.as_str()).collect();
        let mut note = format!(
            "by email from {}, subject \"{}\": {} ({stored})",
            mail.from,
            mail.subject,
            names.join(", ")
        );
        if note.chars().count() > MAX_NOTE_CHARS {
            note = note.chars().take(MAX_NOTE_CHARS).collect::<String>() + "…";
        }
        // A new review is announced by `documents_arrived` itself (REQUIREMENTS_NOTE
        // `documents_arrived`, with the review buttons; its text is the note). More files
        // for a review already open are told here, or nobody would look at them.
        let opened = events.documents_arrived(&lead, now, &note).await?;
        tracing::info!(lead = %lead.log(), message = %id, files = names.len(), new_review = matches!(opened, Opened::Created(_)), "document intake: documents arrived");
        if let Opened::AlreadyOpen(_) = opened {
            self.alerts.raise(
                Alert::new(
                    AlertKind::RequirementsNote,
                    Severity::Info,
                    "documents_received",
                    format!(
                        "More documents arrived by email from {lead} for the open doc review: {}; {stored}.",
                        names.join(", ")
                    ),
                )
                .for_lead(&lead),
            );
        }
        Ok(IntakeOutcome::Processed {
            lead,
            files: names.join("\n"),
        })
    }

    fn note_failure(&self, detail: &str) {
        self.failures.note(detail);
    }

    /// One alert for the failures since the last one, unless one went out within
    /// [`ALERT_EVERY`] (the rest wait for the next run past it).
    fn maybe_alert(&self, now: DateTime<Utc>) {
        if let Some((count, last)) = self.failures.due(now) {
            self.alerts.raise(Alert::error(
                "doc_intake_failed",
                format!(
                    "{} document intake failures (a mailbox that cannot be read is tried again every run; a mail that failed is left for a person, its doc_intake row says why); last: {}",
                    count, last
                ),
            ));
        }
    }
}
