//! The loops a role runs beside its listeners: the start-up re-drive of stored work and the
//! periodic outbox sweep (the roles that own the clock), the HITL escalation, and the
//! heartbeat (every role but web); and the CRM texting log's drain the scheduler runs.
//!
//! Must not: stop the process on a failed pass — each logs and tries again next period.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actors::outbox::{OutboxSweep, SweepReport};
use actors::ports::WakeLead;
use anyhow::Context;

use crate::http::AppState;
use crate::role::Role;

/// Embedded mode keeps the queue in memory, so a crash loses queued wake-ups; the store does
/// not. At start, replies interrupted mid-send are flagged in doubt (and those in doubt long
/// enough are checked with the provider: `actors::outbox` — found: sent; absent at two
/// checks spaced apart: queued again; unclear: in doubt, alerted), and every lead with
/// stored work is woken again. In `all` every `sending` claim is orphaned (this process
/// was its only sender); a separate scheduler only takes claims older than a whole turn's
/// budget, since a live worker may own the newer ones. RabbitMQ keeps its tasks, so there
/// the re-drive mostly adds duplicate wake-ups (harmless); it stays because it also wakes a
/// lead whose wake-up was dead-lettered, once per start.
pub async fn redrive_pending(state: &AppState, sweep: &OutboxSweep) -> anyhow::Result<()> {
    let stale_after = match state.role {
        Role::All => Duration::ZERO,
        _ => state.settings.lead_turn_timeout,
    };
    let report = sweep
        .sweep_with(stale_after)
        .await
        .context("Failed to resolve interrupted sends")?;
    if report != SweepReport::default() {
        tracing::info!(?report, "outbox recovered");
    }
    let leads = state
        .store
        .leads_with_pending_work()
        .await
        .context("Failed to list leads with pending work")?;
    if !leads.is_empty() {
        tracing::info!(count = leads.len(), "re-driving leads with stored work");
    }
    for lead in leads {
        state.queue.publish(WakeLead { lead }).await?;
    }
    Ok(())
}

/// Escalates HITL holds nobody decided on (see [`crate::hitl::escalate_expired_holds`]).
/// A failed pass is logged and tried again next period.
pub(super) fn spawn_hitl_escalation(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::hitl::escalation_period(&state.settings.hitl));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if !state.accepting.load(Ordering::SeqCst) {
                return; // shutting down
            }
            if let Err(e) = crate::hitl::escalate_expired_holds(
                &state.store,
                &state.alerts,
                state.queue.as_ref(),
                &state.settings.hitl,
                chrono::Utc::now(),
            )
            .await
            {
                tracing::warn!(error = %e, "HITL escalation pass failed; the next one retries");
            }
        }
    })
}

/// Writes this process's heartbeat every `HEARTBEAT_SECS`. A worker writes it only while its
/// consumer is up (the queue is ready), so a heartbeat means "consuming", not just "alive".
pub(super) fn spawn_heartbeat(state: AppState, instance: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = chrono::Utc::now();
        let mut tick = tokio::time::interval(state.settings.scheduler.heartbeat_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            // A consumer that is still connecting (RabbitMQ connects in the background) is
            // re-checked every second, so the first heartbeat lands as soon as it consumes
            // rather than a whole period later — `verify` right after a rollout relies on it.
            while state.role.runs_actors() && !state.queue.is_ready().await {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if let Err(e) = state
                .store
                .heartbeat(&instance, state.role.name(), started)
                .await
            {
                tracing::warn!(error = %e, "heartbeat not written");
            }
        }
    })
}

/// The periodic sweep of the roles that own the clock: resolve in-doubt replies and wake
/// leads whose stored work has outlived its wake-up. A failed sweep is logged and tried
/// again next period; it never stops the loop.
pub(super) fn spawn_outbox_sweeps(
    state: AppState,
    sweep: Arc<OutboxSweep>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.settings.outbox_sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tick.tick().await; // the first tick is immediate; start-up already swept
        loop {
            tick.tick().await;
            let mut wake = match sweep.sweep().await {
                Ok(report) => report.requeued,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox sweep failed");
                    Vec::new()
                }
            };
            // Work older than a whole turn's budget has lost its wake-up (dead-lettered, or
            // dropped with a crashed process): wake it again. Duplicates are harmless.
            let cutoff = chrono::Utc::now()
                - chrono::Duration::from_std(state.settings.lead_turn_timeout)
                    .unwrap_or(chrono::Duration::zero());
            match state.store.leads_with_stale_work(cutoff).await {
                Ok(stale) => wake.extend(stale),
                Err(e) => tracing::warn!(error = %e, "stale-work query failed"),
            }
            wake.sort();
            wake.dedup();
            for lead in wake {
                if let Err(e) = state.queue.publish(WakeLead { lead }).await {
                    tracing::warn!(error = %e, "could not wake a lead; the next sweep will try again");
                }
            }
        }
    })
}

/// The CRM texting log's drain for the scheduler's `crm_text_log` job, or `None` (one log
/// line) without `FUB_API`. Our side of each text is the number replies go out from; with a
/// messaging service there is no single number, so its SID stands in.
pub(super) fn crm_text_log(
    settings: &crate::config::Settings,
    alerts: &actors::alert_router::AlertHandle,
) -> anyhow::Result<Option<Arc<crate::crm_text_log::CrmTextLog>>> {
    use crate::config::TwilioSender;
    let Some(key) = &settings.brain.fub_api else {
        tracing::info!(
            "CRM texting log off: set FUB_API to record every SMS on the lead's Follow Up Boss timeline"
        );
        return Ok(None);
    };
    let fub = crate::channels::fub_texts::FubTexts::new(
        &settings.brain.fub_api_base,
        settings.brain.fub_texting_service.as_deref(),
        key.clone(),
        settings.brain.fub_system.clone(),
        settings.brain.fub_system_key.clone(),
        Duration::from_secs(10),
    )
    .context("Failed to build the Follow Up Boss texting client")?;
    if settings.brain.fub_system_key.is_none() {
        tracing::warn!(
            "FUB_SYSTEM_KEY is not set: Follow Up Boss accepts /v1/textMessages from registered systems only"
        );
    }
    let our_number = match settings.twilio.as_ref().map(|t| &t.sender) {
        Some(TwilioSender::From(n)) => n.clone(),
        Some(TwilioSender::MessagingService(sid)) => sid.clone(),
        None => String::new(),
    };
    tracing::info!("CRM texting log on: inbound and sent SMS go to the Follow Up Boss timeline");
    Ok(Some(Arc::new(crate::crm_text_log::CrmTextLog::new(
        fub,
        our_number,
        alerts.clone(),
    ))))
}

/// The mailbox document intake for the scheduler's `doc_intake` job, or `None` (one log
/// line) without `GMAIL_SERVICE_ACCOUNT_JSON`; its Drive step off (one log line: files are
/// named, not stored) without `GDRIVE_SERVICE_ACCOUNT_JSON` and `YGL_DRIVE_PARENT_FOLDER_ID`.
/// A key that is set but unreadable fails the start, naming the variable.
pub(super) fn doc_intake(
    settings: &crate::config::Settings,
    alerts: &actors::alert_router::AlertHandle,
) -> anyhow::Result<Option<Arc<crate::doc_intake::DocIntake>>> {
    use crate::channels::google::auth::TokenSource;
    use crate::channels::google::{drive, gmail};
    use crate::config::doc_intake::load_key;
    use crate::doc_intake::{DocIntake, FileStore};
    let s = &settings.doc_intake;
    let account = match &s.gmail_key {
        Some(key) => load_key("GMAIL_SERVICE_ACCOUNT_JSON", key)?,
        None => None,
    };
    let Some(account) = account else {
        tracing::info!(
            "Document intake off: set GMAIL_SERVICE_ACCOUNT_JSON (with BLUELAKE_STAFF_EMAIL) to take leads' documents from the staff mailbox"
        );
        return Ok(None);
    };
    // Attachments reach 25 MB: a minute per request.
    let http = crate::channels::http_client(Duration::from_secs(60))
        .context("Failed to build the Google client")?;
    let gmail = gmail::Gmail::new(
        http.clone(),
        &s.gmail_api_base,
        TokenSource::new(http.clone(), account, gmail::SCOPE, s.staff_email.clone()),
    );
    let drive_account = match (&s.drive_key, &s.drive_parent) {
        (Some(key), Some(_)) => load_key("GDRIVE_SERVICE_ACCOUNT_JSON", key)?,
        _ => None,
    };
    let files = match (drive_account, &s.drive_parent) {
        (Some(account), Some(parent)) => FileStore::Drive(
            Box::new(drive::Drive::new(
                http.clone(),
                &s.drive_api_base,
                TokenSource::new(http, account, drive::SCOPE, None),
            )),
            parent.clone(),
        ),
        (_, None) => FileStore::Off("YGL_DRIVE_PARENT_FOLDER_ID is not set".into()),
        (None, Some(_)) => {
            FileStore::Off("GDRIVE_SERVICE_ACCOUNT_JSON is not set, or names no file".into())
        }
    };
    match &files {
        FileStore::Off(why) => tracing::info!(
            "Document intake on, Drive step off ({why}): attachments are named in the doc review, not stored"
        ),
        FileStore::Drive(..) => tracing::info!(
            "Document intake on: leads' mailed documents go to their Drive folders and open doc_review"
        ),
    }
    Ok(Some(Arc::new(DocIntake::new(gmail, files, alerts.clone()))))
}
