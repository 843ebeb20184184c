//! The actor crate's view of the outside world: the traits an adapter in `src/` implements
//! (store, SMS sender, chat model, alert sink, clock) and the plain data that crosses them.
//!
//! Owns: the shapes of messages, prompts, replies and deliveries, and the error enums whose
//! `is_retryable()` lets an actor decide without matching strings.
//! Must not: name a database, a broker or an HTTP library. Anything that does belongs in
//! `src/`, behind one of these traits.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A lead is known by the phone number it texts from (E.164 as Twilio sends it). One number,
/// one conversation: that is how a leasing office sees it too.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeadId(pub String);

impl LeadId {
    pub fn new(phone: impl Into<String>) -> Self {
        Self(phone.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The id as a log line or span field may show it (`LOG_PHONE`): `lead = %lead.log()`.
    /// `Display` stays the full number, for the store and the sender.
    pub fn log(&self) -> crate::log_phone::LogPhone<'_> {
        crate::log_phone::LogPhone(&self.0)
    }
}

impl fmt::Display for LeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who said a line of the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The lead (an inbound SMS).
    Lead,
    /// Us (an outbound SMS).
    Agent,
}

/// One line of the conversation as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    pub role: Role,
    pub text: String,
}

/// An inbound message that has been stored but not yet answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingInbound {
    /// The store's id; increases with arrival order for one lead.
    pub id: i64,
    pub message_sid: String,
    pub body: String,
    pub received_at: DateTime<Utc>,
}

/// A reply committed to the outbox and not yet known to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxReply {
    pub id: i64,
    pub lead: LeadId,
    pub body: String,
}

/// What the model is asked: the lead's recent history (oldest first, already bounded by the
/// window) ending with the messages this turn answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub lead: LeadId,
    pub lines: Vec<ChatLine>,
    /// How many of the last `lines` are the new, unanswered messages.
    pub new_messages: usize,
    /// The instant the turn started; a responder that offers tour times counts from it.
    pub now: DateTime<Utc>,
}

impl Prompt {
    /// Bytes of conversation text in the prompt: what the window bounds.
    pub fn text_bytes(&self) -> usize {
        self.lines.iter().map(|l| l.text.len()).sum()
    }
}

/// A model's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    /// Which provider produced it (`anthropic`, `rules`, …).
    pub provider: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Why a model call failed, by class: the pool's retry and fallback policy reads the class.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ModelError {
    #[error("model call timed out")]
    Timeout,
    #[error("rate limited (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    #[error("provider overloaded")]
    Overloaded,
    #[error("provider server error {status}")]
    Server { status: u16 },
    #[error("request rejected by provider ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("transport error: {0}")]
    Transport(String),
    #[error("unusable response: {0}")]
    BadResponse(String),
}

impl ModelError {
    /// True when another attempt (here or at the next provider) may succeed. A rejected
    /// request (400/401/403/413) will be rejected again: never retried.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ModelError::Rejected { .. })
    }
}

#[async_trait]
pub trait ChatModel: Send + Sync + 'static {
    /// Short provider name for logs, metrics and the `provider` column.
    fn name(&self) -> &str;

    /// The model asked (`gen_ai.request.model` on the call's span): the provider's model id
    /// where it has one, else its name.
    fn model(&self) -> &str {
        self.name()
    }
    async fn complete(&self, prompt: &Prompt) -> Result<Completion, ModelError>;

    /// One step of a tool-using conversation. A model without tools (the rules responder,
    /// test fakes) answers the plain prompt in text, which ends the brain's tool loop: so
    /// the chain's last link works for both kinds of call.
    async fn converse(
        &self,
        request: &crate::conversation::AgentRequest,
    ) -> Result<crate::conversation::AgentReply, ModelError> {
        let c = self.complete(&request.prompt).await?;
        Ok(crate::conversation::AgentReply {
            blocks: vec![crate::conversation::Block::Text(c.text)],
            provider: c.provider,
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
        })
    }
}

/// An SMS accepted by the carrier API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentSms {
    /// The provider's id for the message (Twilio `SM…`; `DRYRUN…` for the dry-run sink).
    pub provider_sid: String,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SmsError {
    /// Never processed by the provider (429, connect failure, 5xx): safe to try again.
    #[error("temporary SMS failure: {0}")]
    Retryable(String),
    /// The provider refused the message for good (opted out 21610, invalid number 21211…).
    #[error("SMS rejected ({code:?}): {message}")]
    Permanent { code: Option<i64>, message: String },
    /// The request may have reached the provider and we do not know the outcome: resending
    /// could text the lead twice, so the reply is flagged in-doubt instead.
    #[error("SMS outcome unknown: {0}")]
    Unknown(String),
}

impl SmsError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SmsError::Retryable(_))
    }
}

#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    async fn send_sms(&self, to: &LeadId, body: &str) -> Result<SentSms, SmsError>;

    /// Every outbound message the provider holds to `to` created at or after `since`, in
    /// any status (queued and failed ones too), newest first: what an in-doubt reply is
    /// resolved from without texting the lead twice (`outbox.rs` decides). An empty list
    /// must mean "the provider has no such message", never "cannot tell": a list that
    /// cannot be read back to `since` (a page fails, too much history) is an error.
    async fn find_sent(
        &self,
        to: &LeadId,
        since: DateTime<Utc>,
    ) -> Result<Vec<ListedMessage>, SmsError>;
}

/// One outbound message as the provider lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedMessage {
    pub provider_sid: String,
    /// The body as the provider stored it: possibly rewritten (Twilio's smart encoding).
    pub body: String,
    pub status: ProviderStatus,
    /// The provider's creation time (Twilio `date_created`); `None` when it gave none that
    /// could be read, which a caller must treat as "inside any window".
    pub created_at: Option<DateTime<Utc>>,
}

/// A message's status at the provider (Twilio's names). What each means for an in-doubt
/// reply is the outbox's policy ([`crate::outbox`]), not the adapter's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderStatus {
    Accepted,
    Scheduled,
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    PartiallyDelivered,
    Undelivered,
    Failed,
    Canceled,
    /// A status this version does not know.
    Other(String),
}

impl ProviderStatus {
    /// Twilio's lowercase name (`queued`, `partially_delivered`, …).
    pub fn parse(status: &str) -> Self {
        match status {
            "accepted" => Self::Accepted,
            "scheduled" => Self::Scheduled,
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "partially_delivered" => Self::PartiallyDelivered,
            "undelivered" => Self::Undelivered,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Accepted => "accepted",
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::PartiallyDelivered => "partially_delivered",
            Self::Undelivered => "undelivered",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Other(s) => s,
        }
    }
}

/// Store failures are all "try again later" from the actor's point of view: the turn is
/// handed back unacked and the store's transaction guarantees nothing half-written.
///
/// The message is what operators read (it names the operation and, for a driver error,
/// says the driver's words too); the driver's error itself is kept as the `source`, so a
/// caller that needs it (`anyhow`'s chain, a downcast to `sqlx::Error`) still has it.
/// Cloneable — one failed group commit answers every webhook in the group — hence the
/// `Arc`.
#[derive(Clone, Debug)]
pub struct StoreError {
    message: String,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store error: {}", self.message)
    }
}

// By hand, not thiserror's `#[source]`: that would hand out the `Arc` itself, and a
// downcast to the driver's error type would then fail.
impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl StoreError {
    /// A failure the store itself found (no driver error behind it).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A failure caused by `source` (the driver's error, a decoder's), which is kept.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(std::sync::Arc::new(source)),
        }
    }

    /// What went wrong, without the `store error:` prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// How a reply's send attempt ended, as recorded in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Sent {
        provider_sid: String,
    },
    /// Not sent and never will be (permanent rejection); `reason` says why.
    Failed {
        reason: String,
    },
    /// Not sent because the lead opted out after the reply was written.
    Suppressed,
    /// Unknown whether it went out: not resent automatically.
    InDoubt {
        reason: String,
    },
    /// A temporary failure outlasted the retries: back to `queued`, sent by a later turn.
    Requeued {
        reason: String,
    },
}

impl SendOutcome {
    /// The outbox state this outcome leaves the reply in.
    pub fn state(&self) -> &'static str {
        match self {
            SendOutcome::Sent { .. } => "sent",
            SendOutcome::Failed { .. } => "failed",
            SendOutcome::Suppressed => "suppressed",
            SendOutcome::InDoubt { .. } => "in_doubt",
            SendOutcome::Requeued { .. } => "queued",
        }
    }
}

/// What [`Store::lead_work`] returns: everything a turn needs to decide what to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeadWork {
    /// Committed replies not yet claimed for sending, oldest first.
    pub unsent: Vec<OutboxReply>,
    /// Unanswered inbound messages, in arrival order.
    pub pending: Vec<PendingInbound>,
    pub opted_out: bool,
    /// The operator who has taken the lead over (issue 15 item 6), if a takeover is in
    /// force: the turn then stores and forwards the pending messages instead of drafting.
    pub taken_by: Option<String>,
}

impl LeadWork {
    pub fn is_empty(&self) -> bool {
        self.unsent.is_empty() && self.pending.is_empty()
    }
}

/// The outcome of [`Store::claim_send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Claimed (`sending`): the caller sends it now.
    Send,
    /// The lead had opted out: recorded `suppressed`, not to be sent.
    Suppressed,
    /// Not `queued` any more (another turn claimed it, or it was settled): hands off.
    NotQueued,
}

/// Exclusive right to run turns for one lead, across every process sharing the store.
/// Released by [`LeadLock::release`]; an implementation must also free it if the holder
/// dies without releasing (a PostgreSQL advisory lock dies with its session).
#[async_trait]
pub trait LeadLock: Send {
    async fn release(self: Box<Self>);
}

/// The lock of a store that only one process can use (SQLite, the in-memory store): the
/// lead registry already serialises a lead within a process, so there is nothing to hold.
pub struct ProcessLocalLock;

#[async_trait]
impl LeadLock for ProcessLocalLock {
    async fn release(self: Box<Self>) {}
}

/// A reply whose send outcome is unknown, with the checks made of it so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InDoubtReply {
    pub id: i64,
    pub lead: LeadId,
    pub body: String,
    /// When the reply was committed: the provider is asked about messages since then.
    pub created_at: DateTime<Utc>,
    /// When it went in doubt (this episode: a reply resent and in doubt again starts a new
    /// one). The wait before the first check counts from here, and the ledger's writes name
    /// it, so a check made in an earlier episode never counts for this one.
    pub in_doubt_since: DateTime<Utc>,
    pub checks: InDoubtChecks,
}

/// The provider checks of one in-doubt episode that left the reply in doubt, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InDoubtChecks {
    /// Checks recorded so far; also the version a write compares against.
    pub made: u32,
    /// Consecutive checks that found it certainly absent.
    pub absent: u32,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_result: Option<CheckResult>,
    /// Already alerted as ambiguous / as uncheckable in this episode: each alerts once.
    pub alerted_ambiguous: bool,
    pub alerted_unreachable: bool,
}

/// What a check that settles nothing found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// The provider has no outbound message to the lead in the window.
    Absent,
    /// It has one we cannot account for, or ours in a status we do not know.
    Ambiguous,
    /// It could not be asked (or its list could not be read to the end of the window).
    Unreachable,
}

impl CheckResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Ambiguous => "ambiguous",
            Self::Unreachable => "unreachable",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Absent, Self::Ambiguous, Self::Unreachable]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Where the outbox sweep keeps in-doubt replies and the checks it made of them, so that a
/// restarted sweeper neither forgets a check nor repeats one early, and two sweepers never
/// both count one. Each method is one transaction.
#[async_trait]
pub trait InDoubtLedger: Send + Sync + 'static {
    /// Every reply currently `in_doubt`, oldest first, with this episode's checks.
    async fn in_doubt_replies(&self) -> Result<Vec<InDoubtReply>, StoreError>;

    /// Replaces `reply.checks` (as read) with `checks`. False, writing nothing, when the
    /// reply is no longer in doubt in `reply`'s episode or another sweeper recorded a check
    /// since it was read.
    async fn record_in_doubt_check(
        &self,
        reply: &InDoubtReply,
        checks: &InDoubtChecks,
    ) -> Result<bool, StoreError>;

    /// Records `outcome` (sent, failed, or queued again) and forgets the checks, together.
    /// False, writing nothing, under the same conditions as `record_in_doubt_check`.
    async fn settle_in_doubt(
        &self,
        reply: &InDoubtReply,
        outcome: &SendOutcome,
    ) -> Result<bool, StoreError>;

    /// The provider ids recorded on the lead's replies: a listed message with one of these
    /// is accounted for, so it neither matches an in-doubt reply nor makes it ambiguous.
    async fn recorded_provider_sids(
        &self,
        lead: &LeadId,
    ) -> Result<std::collections::HashSet<String>, StoreError>;
}

/// Everything the lead actors need from durable storage. Each method is one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The newest `max_messages` lines of the lead's conversation, oldest first, excluding
    /// unanswered inbound messages (those come from `lead_work`).
    async fn load_history(
        &self,
        lead: &LeadId,
        max_messages: usize,
    ) -> Result<Vec<ChatLine>, StoreError>;

    /// What a turn starts from, in one read: the replies committed but not yet claimed for
    /// sending (a crash between commit and send, an approved HITL reply, an SLA update),
    /// the inbound messages still waiting for a reply, and the lead's opt-out. One round
    /// trip, at the start of every turn and for the check after it (BENCHMARKS.md, the
    /// batch drop on PostgreSQL + RabbitMQ).
    async fn lead_work(&self, lead: &LeadId) -> Result<LeadWork, StoreError>;

    async fn is_opted_out(&self, lead: &LeadId) -> Result<bool, StoreError>;

    /// Atomically: write `body` to the outbox as the reply to `answered` and mark each of
    /// them answered. Returns `None` (and writes nothing) when any of them was no longer
    /// pending — someone else answered it, so this turn must not.
    async fn commit_reply(
        &self,
        lead: &LeadId,
        answered: &[i64],
        body: &str,
        provider: &str,
    ) -> Result<Option<i64>, StoreError>;

    /// Marks inbound messages handled without a reply (lead opted out).
    async fn mark_no_reply(&self, answered: &[i64], reason: &str) -> Result<(), StoreError>;

    /// Claims a `queued` reply for sending, checking the lead's opt-out in the same
    /// statement: `Send` (now `sending`, the caller sends it), `Suppressed` (the lead opted
    /// out: now `suppressed`, never sent) or `NotQueued` (already claimed, sent or settled:
    /// the caller must not send it). The opt-out check and the claim are one atomic step, so
    /// no STOP committed before the claim can be missed by it.
    async fn claim_send(&self, reply_id: i64) -> Result<Claim, StoreError>;

    async fn record_send(&self, reply_id: i64, outcome: &SendOutcome) -> Result<(), StoreError>;

    /// Takes the lead's lock if no other process holds it; `None` means another worker is
    /// running a turn for this lead right now.
    async fn try_lock_lead(&self, lead: &LeadId) -> Result<Option<Box<dyn LeadLock>>, StoreError>;

    /// Replies claimed for sending before `cutoff` and never recorded: their sender died
    /// mid-send. Marks them `in_doubt` and returns them.
    async fn flag_stale_sends(&self, cutoff: DateTime<Utc>)
    -> Result<Vec<OutboxReply>, StoreError>;

    /// Opens a turn record (who processed which lead when); returns its id.
    async fn begin_turn(&self, lead: &LeadId, worker: &str) -> Result<i64, StoreError>;

    async fn finish_turn(&self, turn_id: i64, outcome: &str) -> Result<(), StoreError>;
}

/// Wall-clock time for everything that is not a tokio timeout: idle deactivation, restart
/// windows, timestamps. Tests drive a [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            millis: Arc::new(AtomicI64::new(start.timestamp_millis())),
        }
    }
    pub fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.millis.load(Ordering::SeqCst)).unwrap_or_else(Utc::now)
    }
}

/// The wake-up a webhook publishes: "lead X has stored work". It carries no message text, so
/// a duplicate or a redelivery is harmless — the actor reads what is pending from the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeLead {
    pub lead: LeadId,
}

/// Settles a delivery with its queue. Implemented by each queue adapter.
pub trait Acker: Send + Sync + 'static {
    fn ack(&self);
    /// Hands the task back; the queue delivers it again.
    fn requeue(&self);
}

/// One task taken from the work queue. It must be acked or handed back; if it is dropped
/// unsettled (the actor holding it crashed or was killed) it is handed back, so a crash
/// never loses a task.
pub struct Delivery {
    pub task: WakeLead,
    acker: Option<Box<dyn Acker>>,
}

impl Delivery {
    pub fn new(task: WakeLead, acker: Box<dyn Acker>) -> Self {
        Self {
            task,
            acker: Some(acker),
        }
    }

    pub fn ack(mut self) {
        if let Some(a) = self.acker.take() {
            a.ack();
        }
    }

    pub fn requeue(mut self) {
        if let Some(a) = self.acker.take() {
            a.requeue();
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(a) = self.acker.take() {
            a.requeue();
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("task", &self.task)
            .field("settled", &self.acker.is_none())
            .finish()
    }
}
