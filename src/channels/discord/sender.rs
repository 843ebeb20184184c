//! The Discord alert path: a sink that spools each alert to the store (or, when the store is
//! down, queues it for posting directly), and a sender — in every process holding the bot
//! token — that posts the spool, one poster per channel across processes, and the direct
//! queue of its own process.
//!
//! Owns: the choice of channel per alert kind (own channel, else the default, else the
//! log); each alert's nonce, chosen once when the sink gets it and kept on every path
//! ([`new_nonce`]; rows from before migration 0072 keep their derived one, [`nonce_for`]);
//! the durable spool write and the fallback to the direct queue (`direct.rs`) when it fails,
//! with the order per channel kept across the switch; the "store is down" state (set by a
//! failed spool write or read, cleared by a probe every second) that sends alerts straight
//! to the direct queue instead of each waiting out the store's timeout; and delivery of the
//! spool: a dispatcher that runs one worker per channel that owes something, each worker
//! under the channel's lease (`lease.rs`), posting the oldest row first and deleting it only
//! after Discord's 2xx, through the shared rate-limited client (`rest.rs`).
//! Must not: block or fail the raiser (the sink writes a row or queues in memory), raise an
//! alert about its own failures (they are logged: alerting about alerts is a loop), or post
//! one spooled row twice on purpose (a row is deleted only once Discord has it, and only the
//! lease holder posts a channel).

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::alert_router::{Alert, AlertError, AlertSink, Severity};
use actors::ports::{Clock, SystemClock};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;

use crate::channels::log_alerts::LogAlertSink;
use crate::config::{DiscordSettings, Secret};
use crate::store::{NewSpooledAlert, SpooledAlert, SqlStore};

use super::alert_message;
use super::direct::{DirectItem, DirectQueue, direct_worker};
use super::lease::{ChannelLease, request_timeout};
use super::rest::{DiscordRest, PostOutcome};

/// How often the sender looks at the spool without being woken (rows written by other
/// processes, a worker that exited just as a row arrived), and how often a process that
/// found the store down asks it again.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// What the sink hands the sender of its process: doorbells and the direct queue.
pub struct DiscordInbox {
    /// Rung when a row is spooled.
    pub(super) spooled: Notify,
    /// Rung when an alert is queued for posting directly.
    pub(super) direct_bell: Notify,
    /// Rung (to every sleeper) when the store answers again.
    pub(super) store_back: Notify,
    pub(super) direct: DirectQueue,
    store_down: AtomicBool,
}

impl DiscordInbox {
    /// `direct_max`: `DISCORD_DIRECT_QUEUE_MAX`.
    pub fn new(direct_max: usize) -> Self {
        Self {
            spooled: Notify::new(),
            direct_bell: Notify::new(),
            store_back: Notify::new(),
            direct: DirectQueue::new(direct_max),
            store_down: AtomicBool::new(false),
        }
    }

    pub(crate) fn store_down(&self) -> bool {
        self.store_down.load(Ordering::SeqCst)
    }

    pub(super) fn mark_store_down(&self, why: &str) {
        if !self.store_down.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                error = why,
                "alert spool unwritable: alerts go to Discord directly from this process until the store answers"
            );
        }
    }

    fn mark_store_up(&self) {
        if self.store_down.swap(false, Ordering::SeqCst) {
            tracing::info!(
                waiting = self.direct.len(),
                "the store answers again: alerts are spooled, and the ones waiting to go directly are handed to the spool"
            );
            self.store_back.notify_waiters();
            self.direct_bell.notify_one();
        }
    }
}

/// A fresh nonce for an alert raised at `raised_at`: the raise time and 64 random bits, so
/// distinct across alerts, processes and databases; ≤ 25 characters as Discord wants.
pub fn new_nonce(raised_at: DateTime<Utc>) -> String {
    format!(
        "lb{}-{}",
        base36(raised_at.timestamp_millis().max(0) as u64),
        base36(rand::random::<u64>())
    )
}

/// The nonce of a spooled row: the one chosen at raise, or — for a row spooled before
/// migration 0072 — the one it has always been posted with (`la<id>-<created ms>`).
pub fn nonce_for(row: &SpooledAlert) -> String {
    row.nonce.clone().unwrap_or_else(|| {
        format!(
            "la{}-{}",
            base36(row.id.max(0) as u64),
            base36(row.created_at.timestamp_millis().max(0) as u64)
        )
    })
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// The sink the alert router delivers to when Discord is configured: a kind with a channel
/// is spooled (and the sender woken) — or, while the store is down, queued for posting
/// directly; a kind without one goes to the log.
pub struct DiscordSpoolSink {
    store: SqlStore,
    channels: DiscordSettings,
    inbox: Arc<DiscordInbox>,
}

impl DiscordSpoolSink {
    pub fn new(store: SqlStore, channels: DiscordSettings, inbox: Arc<DiscordInbox>) -> Self {
        Self {
            store,
            channels,
            inbox,
        }
    }
}

#[async_trait]
impl AlertSink for DiscordSpoolSink {
    async fn deliver(&self, alert: &Alert) -> Result<(), AlertError> {
        let Some(channel) = self.channels.channel_for(alert.kind) else {
            return LogAlertSink.deliver(alert).await;
        };
        if alert.severity == Severity::Critical {
            // Critical alerts also reach the log: if Discord is refusing us (a revoked
            // token halts the sender) the log is where an operator still sees them.
            let _ = LogAlertSink.deliver(alert).await;
        }
        let raised_at = if alert.raised_at.timestamp() > 0 {
            alert.raised_at
        } else {
            Utc::now()
        };
        let item = DirectItem {
            channel: channel.to_string(),
            kind: alert.kind,
            severity: alert.severity,
            event: alert.event.clone(),
            payload: alert_message(alert).to_string(),
            nonce: new_nonce(raised_at),
            raised_at,
        };
        // Behind alerts of this channel still waiting to go directly, so its order holds;
        // and without waiting out the store's timeout once it is known to be down.
        if !self.inbox.store_down() && !self.inbox.direct.holds(channel) {
            let spooled = self
                .store
                .spool_alert(NewSpooledAlert {
                    channel_id: channel,
                    kind: alert.kind.key(),
                    payload: &item.payload,
                    nonce: &item.nonce,
                    created_at: raised_at,
                })
                .await;
            match spooled {
                Ok(_) => {
                    self.inbox.spooled.notify_one();
                    return Ok(());
                }
                Err(e) => self.inbox.mark_store_down(&e.to_string()),
            }
        }
        // In memory only until the store or Discord takes it: the log keeps it too.
        if alert.severity != Severity::Critical {
            let _ = LogAlertSink.deliver(alert).await;
        }
        self.inbox.direct.push(item);
        self.inbox.direct_bell.notify_one();
        Ok(())
    }
}

/// What the sender is doing, for /ops and tests.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SenderStatus {
    /// Whether this process posts alerts to Discord (it does whenever it has the bot token).
    pub posts: bool,
    /// This process's name in the channel leases.
    pub holder: Option<String>,
    /// Channels whose lease this process holds now: it is their one poster.
    pub leases: Vec<String>,
    /// Set when a 401 stopped the sender: the token must be fixed (and the process
    /// restarted); the spool keeps everything meanwhile.
    pub halted: Option<String>,
    /// Channels stopped by a 403/404 (missing access, unknown channel), with the reason.
    pub halted_channels: std::collections::HashMap<String, String>,
    /// Whether this process found the store down: its alerts go to Discord directly.
    pub store_down: bool,
    /// Alerts waiting in this process's direct queue.
    pub direct_queued: usize,
    /// Alerts this process posted directly.
    pub direct_delivered: u64,
    /// Alerts shed from the direct queue (it was full), or refused for good on it.
    pub direct_shed: u64,
    /// Alerts still owed, as of the sender's last look at the spool.
    pub spooled: i64,
    /// Posts Discord accepted (from the spool and directly).
    pub delivered: u64,
    /// HTTP requests made (accepted or not).
    pub requests: u64,
    /// Times the sender has looked at the spool.
    pub passes: u64,
}

/// What the sender's tasks share.
pub(super) struct Shared {
    pub(super) store: SqlStore,
    pub(super) rest: DiscordRest,
    pub(super) inbox: Arc<DiscordInbox>,
    holder: String,
    lease_length: Duration,
    clock: Arc<dyn Clock>,
    /// Channels with a spool worker in this process.
    active: Mutex<HashSet<String>>,
    /// Channels with a direct worker in this process.
    active_direct: Mutex<HashSet<String>>,
    /// Channels whose lease a spool worker of this process holds.
    leased: Mutex<BTreeSet<String>>,
    /// Rows Discord has but whose delete failed (the store went away): deleted, never
    /// posted again, when the store answers.
    undeleted: Mutex<HashSet<i64>>,
    spooled: AtomicU64,
    delivered: AtomicU64,
    direct_delivered: AtomicU64,
    passes: AtomicU64,
}

impl Shared {
    pub(super) fn note_direct_delivered(&self) {
        self.delivered.fetch_add(1, Ordering::SeqCst);
        self.direct_delivered.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn direct_worker_done(&self, channel: &str) {
        self.active_direct.lock().unwrap().remove(channel);
        // An alert queued between the worker's last look and the removal above would wait
        // for the next poll; ringing the dispatcher makes it look now.
        self.inbox.direct_bell.notify_one();
    }
}

/// A handle on the running sender.
#[derive(Clone)]
pub struct DiscordSender {
    shared: Arc<Shared>,
}

impl DiscordSender {
    /// Starts the sender: the spool's dispatcher (channel workers under leases named for
    /// `holder`), the direct queue's, and the store probe.
    pub fn start(
        store: SqlStore,
        settings: &DiscordSettings,
        token: Secret,
        inbox: Arc<DiscordInbox>,
        holder: &str,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let rest = DiscordRest::new(
            &settings.api_base,
            token,
            settings.retry_max,
            request_timeout(settings.lease),
        )?;
        let shared = Arc::new(Shared {
            store,
            rest,
            inbox,
            holder: holder.to_string(),
            lease_length: settings.lease,
            clock: Arc::new(SystemClock),
            active: Mutex::default(),
            active_direct: Mutex::default(),
            leased: Mutex::default(),
            undeleted: Mutex::default(),
            spooled: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            direct_delivered: AtomicU64::new(0),
            passes: AtomicU64::new(0),
        });
        tokio::spawn(dispatch_direct(shared.clone()));
        tokio::spawn(probe_store(shared.clone()));
        let join = tokio::spawn(dispatch(shared.clone()));
        Ok((Self { shared }, join))
    }

    pub fn status(&self) -> SenderStatus {
        let s = &self.shared;
        SenderStatus {
            posts: true,
            holder: Some(s.holder.clone()),
            leases: s.leased.lock().unwrap().iter().cloned().collect(),
            halted: s.rest.halted(),
            halted_channels: s.rest.halted_channels(),
            store_down: s.inbox.store_down(),
            direct_queued: s.inbox.direct.len(),
            direct_delivered: s.direct_delivered.load(Ordering::SeqCst),
            direct_shed: s.inbox.direct.shed(),
            spooled: s.spooled.load(Ordering::SeqCst) as i64,
            delivered: s.delivered.load(Ordering::SeqCst),
            requests: s.rest.requests(),
            passes: s.passes.load(Ordering::SeqCst),
        }
    }
}

/// Looks at the spool whenever woken (or every second) and makes sure each channel that is
/// owed something has a worker here — which then competes for the channel's lease. While
/// the store is known to be down it only counts passes: the probe says when to look again.
async fn dispatch(shared: Arc<Shared>) {
    loop {
        if !shared.inbox.store_down() {
            retry_deletes(&shared).await;
            match shared.store.spooled_channels().await {
                Ok(channels) => {
                    for channel in channels {
                        if shared.rest.stopped(&channel) {
                            continue;
                        }
                        if shared.active.lock().unwrap().insert(channel.clone()) {
                            tokio::spawn(spool_worker(shared.clone(), channel));
                        }
                    }
                }
                Err(e) => shared.inbox.mark_store_down(&e.to_string()),
            }
            if let Ok(n) = shared.store.spooled_count().await {
                shared.spooled.store(n.max(0) as u64, Ordering::SeqCst);
                metrics::gauge!("lead_agent_alerts_spooled").set(n as f64);
            }
        }
        shared.passes.fetch_add(1, Ordering::SeqCst);
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = shared.inbox.spooled.notified() => {}
            _ = shared.inbox.store_back.notified() => {}
        }
    }
}

/// Deletes rows Discord already has whose delete failed; they are never posted again.
async fn retry_deletes(shared: &Shared) {
    let ids: Vec<i64> = shared.undeleted.lock().unwrap().iter().copied().collect();
    for id in ids {
        if shared.store.spooled_delivered(id).await.is_ok() {
            shared.undeleted.lock().unwrap().remove(&id);
        }
    }
}

/// Makes sure each channel with direct alerts has a worker here.
async fn dispatch_direct(shared: Arc<Shared>) {
    loop {
        for channel in shared.inbox.direct.channels() {
            if shared.active_direct.lock().unwrap().insert(channel.clone()) {
                tokio::spawn(direct_worker(shared.clone(), channel));
            }
        }
        metrics::gauge!("lead_agent_alerts_direct_queued").set(shared.inbox.direct.len() as f64);
        let _ = tokio::time::timeout(POLL_EVERY, shared.inbox.direct_bell.notified()).await;
    }
}

/// While the store is down, asks it every second whether it answers again.
async fn probe_store(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(POLL_EVERY).await;
        if shared.inbox.store_down() && shared.store.ping().await.is_ok() {
            shared.inbox.mark_store_up();
        }
    }
}

/// Posts one channel's spool, oldest first, while this process holds the channel's lease,
/// until it is empty or the channel (or the whole sender) is stopped. The lease makes it the
/// only poster of its channel across processes, so order holds.
async fn spool_worker(shared: Arc<Shared>, channel: String) {
    let mut lease = ChannelLease::new(
        shared.store.clone(),
        &channel,
        &shared.holder,
        shared.lease_length,
        shared.clock.clone(),
    );
    let mut failures: u32 = 0;
    loop {
        if shared.rest.stopped(&channel) {
            break;
        }
        match lease.hold().await {
            Ok(true) => {
                shared.leased.lock().unwrap().insert(channel.clone());
            }
            Ok(false) => break, // another process posts this channel
            Err(e) => {
                shared.inbox.mark_store_down(&e.to_string());
                break;
            }
        }
        let row = match shared.store.next_spooled(&channel).await {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                shared.inbox.mark_store_down(&e.to_string());
                break;
            }
        };
        if shared.undeleted.lock().unwrap().contains(&row.id) {
            // Discord has it already; only its delete was lost.
            if shared.store.spooled_delivered(row.id).await.is_ok() {
                shared.undeleted.lock().unwrap().remove(&row.id);
                continue;
            }
            break;
        }
        shared.rest.wait_for_capacity(&channel).await;
        // Renewed right before the post, which times out within half the lease: the post
        // ends while this process still holds the channel.
        if !matches!(lease.hold().await, Ok(true)) {
            break;
        }
        match shared
            .rest
            .post(&channel, &row.payload, &nonce_for(&row))
            .await
        {
            PostOutcome::Delivered => {
                failures = 0;
                shared.delivered.fetch_add(1, Ordering::SeqCst);
                if let Err(e) = shared.store.spooled_delivered(row.id).await {
                    // Remembered so it is deleted, not posted, when the store answers; if
                    // this process dies first, the next holder reposts it with the same
                    // nonce and Discord answers with the message it already has.
                    tracing::warn!(channel, id = row.id, error = %e, "delivered alert not removed from the spool");
                    shared.undeleted.lock().unwrap().insert(row.id);
                    shared.inbox.mark_store_down(&e.to_string());
                    break;
                }
            }
            PostOutcome::RateLimited { .. } => {}
            PostOutcome::Unauthorized(_) | PostOutcome::ChannelBlocked(_) => break,
            PostOutcome::Refused(reason) => {
                tracing::error!(
                    channel,
                    id = row.id,
                    reason,
                    "Discord refused an alert for good; kept in the spool as failed"
                );
                let _ = shared.store.spooled_refused(row.id, &reason).await;
            }
            PostOutcome::Transient(reason) => {
                failures += 1;
                let _ = shared.store.spooled_attempt_failed(row.id, &reason).await;
                let delay = shared.rest.backoff(failures);
                tracing::warn!(
                    channel,
                    id = row.id,
                    attempt = failures,
                    ?delay,
                    reason,
                    "Discord post failed; the alert stays spooled and is retried"
                );
                if !lease.sleep_holding(delay).await {
                    break;
                }
            }
        }
    }
    lease.release().await;
    shared.leased.lock().unwrap().remove(&channel);
    shared.active.lock().unwrap().remove(&channel);
    // A row spooled between our last read and the removal above would wait for the next
    // poll; ringing the dispatcher makes it look now.
    shared.inbox.spooled.notify_one();
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn row(id: i64, nonce: Option<&str>) -> SpooledAlert {
        SpooledAlert {
            id,
            channel_id: "1".into(),
            kind: "ERROR".into(),
            payload: "{}".into(),
            attempts: 0,
            created_at: Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap(),
            nonce: nonce.map(str::to_string),
        }
    }

    #[test]
    fn a_legacy_rows_nonce_is_stable_per_row_distinct_between_rows_and_short_enough() {
        assert_eq!(nonce_for(&row(7, None)), nonce_for(&row(7, None)));
        assert_ne!(nonce_for(&row(7, None)), nonce_for(&row(8, None)));
        assert!(nonce_for(&row(i64::MAX, None)).len() <= 25);
    }

    #[test]
    fn a_nonce_chosen_at_raise_is_kept_by_the_spool_distinct_per_alert_and_short_enough() {
        let at = Utc.with_ymd_and_hms(2099, 12, 31, 23, 59, 59).unwrap();
        let nonces: HashSet<String> = (0..1000).map(|_| new_nonce(at)).collect();
        assert_eq!(nonces.len(), 1000);
        assert!(nonces.iter().all(|n| n.len() <= 25), "{nonces:?}");
        let n = new_nonce(at);
        assert_eq!(nonce_for(&row(7, Some(&n))), n);
    }
}
