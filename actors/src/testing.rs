//! In-memory implementations of the ports, for this crate's tests and for the binary's
//! harness: a store, an SMS sink, scriptable models, a recording alert sink, an acker, and a
//! bounded `wait_for`.
//!
//! Must not: be used on a production path. They keep everything in memory and hold locks
//! across nothing but plain data.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use crate::alert_router::{Alert, AlertError, AlertHandle, AlertRouter, AlertSink};
use crate::park::{Park, ParkState, ParkStore};
use crate::ports::*;

/// Polls `cond` every 10 ms for at most 10 s; panics with a clear message if it never holds.
/// Tests wait on effects with this, never with a bare sleep.
pub async fn wait_for(mut cond: impl FnMut() -> bool) {
    wait_for_within(Duration::from_secs(10), &mut cond).await
}

pub async fn wait_for_within(limit: Duration, cond: &mut impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() > limit {
            panic!("condition not met within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Default)]
pub struct RecordingAlertSink {
    alerts: Mutex<Vec<Alert>>,
    failures_left: AtomicUsize,
}

impl RecordingAlertSink {
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.lock().unwrap().clone()
    }
    pub fn events(&self) -> Vec<String> {
        self.alerts().into_iter().map(|a| a.event).collect()
    }
    /// The next `n` deliveries fail.
    pub fn fail_next(&self, n: usize) {
        self.failures_left.store(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl AlertSink for RecordingAlertSink {
    async fn deliver(&self, alert: &Alert) -> Result<(), AlertError> {
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(AlertError("sink told to fail".into()));
        }
        self.alerts.lock().unwrap().push(alert.clone());
        Ok(())
    }
}

pub async fn test_alerts() -> (AlertHandle, Arc<RecordingAlertSink>) {
    let sink = Arc::new(RecordingAlertSink::default());
    let (handle, _join) = AlertRouter::start(sink.clone(), Arc::new(SystemClock))
        .await
        .expect("alert router starts");
    (handle, sink)
}

enum Behaviour {
    Answer(String),
    Hang,
    Fail(ModelError),
    /// Panics when a new message contains the text; answers otherwise.
    PanicOn(String, String),
    /// Like `PanicOn`, but only the first time.
    PanicOnce(String, String, AtomicBool),
    /// Plays the scripted outcomes in order, then answers the text.
    Script(
        Mutex<std::collections::VecDeque<Result<String, ModelError>>>,
        String,
    ),
}

/// A scriptable model that records every prompt and how many calls ran at once, overall
/// and per lead.
pub struct FakeModel {
    behaviour: Behaviour,
    latency: Duration,
    in_flight: AtomicUsize,
    max_concurrent: AtomicUsize,
    calls: AtomicUsize,
    prompts: Mutex<Vec<Prompt>>,
    per_lead: Mutex<HashMap<LeadId, usize>>,
    overlap_seen: AtomicBool,
}

impl FakeModel {
    fn with(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            latency: Duration::ZERO,
            in_flight: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            prompts: Mutex::new(Vec::new()),
            per_lead: Mutex::new(HashMap::new()),
            overlap_seen: AtomicBool::new(false),
        }
    }
    pub fn answering(text: &str) -> Self {
        Self::with(Behaviour::Answer(text.to_string()))
    }
    pub fn hanging() -> Self {
        Self::with(Behaviour::Hang)
    }
    pub fn failing(e: ModelError) -> Self {
        Self::with(Behaviour::Fail(e))
    }
    pub fn panicking_on(trigger: &str, otherwise: &str) -> Self {
        Self::with(Behaviour::PanicOn(
            trigger.to_string(),
            otherwise.to_string(),
        ))
    }
    pub fn panicking_once_on(trigger: &str, otherwise: &str) -> Self {
        Self::with(Behaviour::PanicOnce(
            trigger.to_string(),
            otherwise.to_string(),
            AtomicBool::new(false),
        ))
    }
    /// Plays `script` call by call (an `Err` fails that call), then answers `then`.
    pub fn scripted(script: Vec<Result<&str, ModelError>>, then: &str) -> Self {
        Self::with(Behaviour::Script(
            Mutex::new(script.into_iter().map(|r| r.map(str::to_string)).collect()),
            then.to_string(),
        ))
    }
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent.load(Ordering::SeqCst)
    }
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn prompts(&self) -> Vec<Prompt> {
        self.prompts.lock().unwrap().clone()
    }
    /// True if two calls for the same lead ever ran at once.
    pub fn saw_same_lead_overlap(&self) -> bool {
        self.overlap_seen.load(Ordering::SeqCst)
    }
}

struct CallGuard<'a> {
    model: &'a FakeModel,
    lead: LeadId,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.model.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut m) = self.model.per_lead.lock()
            && let Some(n) = m.get_mut(&self.lead)
        {
            *n -= 1;
        }
    }
}

#[async_trait]
impl ChatModel for FakeModel {
    fn name(&self) -> &str {
        "fake"
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, ModelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.prompts.lock().unwrap().push(prompt.clone());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_concurrent.fetch_max(now, Ordering::SeqCst);
        {
            let mut m = self.per_lead.lock().unwrap();
            let n = m.entry(prompt.lead.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                self.overlap_seen.store(true, Ordering::SeqCst);
            }
        }
        let _guard = CallGuard {
            model: self,
            lead: prompt.lead.clone(),
        };
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let text = match &self.behaviour {
            Behaviour::Answer(t) => t.clone(),
            Behaviour::Hang => {
                std::future::pending::<()>().await;
                unreachable!("pending never resolves")
            }
            Behaviour::Fail(e) => return Err(e.clone()),
            Behaviour::PanicOn(trigger, otherwise) => {
                let new = &prompt.lines[prompt.lines.len() - prompt.new_messages..];
                if new.iter().any(|l| l.text.contains(trigger.as_str())) {
                    panic!("fake model told to panic on {trigger:?}");
                }
                otherwise.clone()
            }
            Behaviour::PanicOnce(trigger, otherwise, done) => {
                let new = &prompt.lines[prompt.lines.len() - prompt.new_messages..];
                if new.iter().any(|l| l.text.contains(trigger.as_str()))
                    && !done.swap(true, Ordering::SeqCst)
                {
                    panic!("fake model told to panic once on {trigger:?}");
                }
                otherwise.clone()
            }
            Behaviour::Script(script, then) => {
                let next = script.lock().unwrap().pop_front();
                match next {
                    Some(Ok(t)) => t,
                    Some(Err(e)) => return Err(e),
                    None => then.clone(),
                }
            }
        };
        Ok(Completion {
            text,
            provider: "fake".into(),
            input_tokens: 0,
            output_tokens: 0,
        })
    }
}

/// Records every SMS; can be told to fail. Like a provider, it also keeps a list of the
/// messages it holds (every accepted send, `delivered`, and whatever a test put there with
/// [`FakeSms::provider_has`]), which `find_sent` reads.
#[derive(Default)]
pub struct FakeSms {
    sent: Mutex<Vec<(LeadId, String)>>,
    listed: Mutex<Vec<(LeadId, ListedMessage)>>,
    next_errors: Mutex<Vec<SmsError>>,
    lookups_fail: AtomicBool,
}

impl FakeSms {
    pub fn sent(&self) -> Vec<(LeadId, String)> {
        self.sent.lock().unwrap().clone()
    }
    pub fn sent_to(&self, lead: &LeadId) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|(l, _)| l == lead)
            .map(|(_, b)| b)
            .collect()
    }
    pub fn fail_next(&self, e: SmsError) {
        self.next_errors.lock().unwrap().push(e);
    }
    /// Makes `find_sent` fail (the provider's history cannot be read).
    pub fn fail_lookups(&self, v: bool) {
        self.lookups_fail.store(v, Ordering::SeqCst);
    }
    /// Puts a message in the provider's list without sending it through us (a send whose
    /// answer was lost, a body the provider rewrote, someone else's text): its sid.
    pub fn provider_has(&self, to: &LeadId, body: &str, status: ProviderStatus) -> String {
        self.list(to, body, status)
    }
    fn list(&self, to: &LeadId, body: &str, status: ProviderStatus) -> String {
        let mut listed = self.listed.lock().unwrap();
        let provider_sid = format!("SMFAKE{:028}", listed.len() + 1);
        listed.push((
            to.clone(),
            ListedMessage {
                provider_sid: provider_sid.clone(),
                body: body.to_string(),
                status,
                created_at: Some(Utc::now()),
            },
        ));
        provider_sid
    }
}

#[async_trait]
impl SmsSender for FakeSms {
    async fn send_sms(&self, to: &LeadId, body: &str) -> Result<SentSms, SmsError> {
        if let Some(e) = self.next_errors.lock().unwrap().pop() {
            return Err(e);
        }
        self.sent
            .lock()
            .unwrap()
            .push((to.clone(), body.to_string()));
        Ok(SentSms {
            provider_sid: self.list(to, body, ProviderStatus::Delivered),
        })
    }

    async fn find_sent(
        &self,
        to: &LeadId,
        since: chrono::DateTime<Utc>,
    ) -> Result<Vec<ListedMessage>, SmsError> {
        if self.lookups_fail.load(Ordering::SeqCst) {
            return Err(SmsError::Retryable("history unavailable (test)".into()));
        }
        Ok(self
            .listed
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|(l, m)| l == to && m.created_at.is_none_or(|t| t >= since))
            .map(|(_, m)| m.clone())
            .collect())
    }
}

#[derive(Clone, Debug)]
struct MemMessage {
    id: i64,
    lead: LeadId,
    role: Role,
    body: String,
    sid: String,
    /// inbound: pending | answered | no_reply; outbound: queued | sending | sent | …
    state: String,
    created_at: chrono::DateTime<Utc>,
    claimed_at: Option<chrono::DateTime<Utc>>,
    /// outbound: the provider's id once sent.
    provider_sid: Option<String>,
    /// outbound: when it last went `in_doubt` (the SQL store reads `updated_at`).
    in_doubt_at: Option<chrono::DateTime<Utc>>,
}

#[derive(Default)]
struct MemInner {
    locked: std::collections::HashSet<LeadId>,
    messages: Vec<MemMessage>,
    opted_out: HashMap<LeadId, bool>,
    turns: Vec<(i64, LeadId, String, Option<String>)>,
    next_id: i64,
    /// HITL holds: (id, lead, body, state).
    holds: Vec<(i64, LeadId, String, String)>,
    /// The outbox sweep's checks of in-doubt replies: reply id → (episode, checks).
    in_doubt_checks: HashMap<i64, (chrono::DateTime<Utc>, InDoubtChecks)>,
    /// Each lead's last park and when it was unparked, as the `lead_parks` table.
    parks: HashMap<LeadId, (Park, Option<chrono::DateTime<Utc>>)>,
    /// Leads marked synthetic (our own probes' numbers).
    synthetic: std::collections::HashSet<LeadId>,
}

impl MemInner {
    /// Marks `answered` as answered when every one of them is still pending (all or
    /// nothing, as the SQL store's commit and hold do); false when any is not.
    fn mark_answered(&mut self, answered: &[i64]) -> bool {
        let all_pending = answered.iter().all(|id| {
            self.messages
                .iter()
                .any(|m| m.id == *id && m.state == "pending")
        });
        if all_pending {
            for m in self.messages.iter_mut() {
                if answered.contains(&m.id) {
                    m.state = "answered".into();
                }
            }
        }
        all_pending
    }
}

/// An in-memory [`Store`] with the same transactional promises as the SQL one (one mutex,
/// so every method is atomic).
#[derive(Default)]
pub struct MemStore {
    inner: Arc<Mutex<MemInner>>,
    fail: AtomicBool,
}

impl MemStore {
    /// Stores an inbound message as the webhook would; false if the sid was already there.
    pub fn insert_inbound(&self, lead: &LeadId, sid: &str, body: &str) -> bool {
        let mut g = self.inner.lock().unwrap();
        if g.messages.iter().any(|m| m.sid == sid) {
            return false;
        }
        g.next_id += 1;
        let id = g.next_id;
        g.messages.push(MemMessage {
            id,
            lead: lead.clone(),
            role: Role::Lead,
            body: body.to_string(),
            sid: sid.to_string(),
            state: "pending".into(),
            created_at: Utc::now(),
            claimed_at: None,
            provider_sid: None,
            in_doubt_at: None,
        });
        true
    }
    pub fn set_opted_out(&self, lead: &LeadId, v: bool) {
        self.inner.lock().unwrap().opted_out.insert(lead.clone(), v);
    }
    /// Every outbound message body with its state, for assertions.
    pub fn outbound(&self, lead: &LeadId) -> Vec<(String, String)> {
        self.inner
            .lock()
            .unwrap()
            .messages
            .iter()
            .filter(|m| &m.lead == lead && m.role == Role::Agent)
            .map(|m| (m.body.clone(), m.state.clone()))
            .collect()
    }
    pub fn inbound_states(&self, lead: &LeadId) -> Vec<String> {
        self.inner
            .lock()
            .unwrap()
            .messages
            .iter()
            .filter(|m| &m.lead == lead && m.role == Role::Lead)
            .map(|m| m.state.clone())
            .collect()
    }
    /// Held replies (HITL) of the lead: (hold id, body, state).
    pub fn holds(&self, lead: &LeadId) -> Vec<(i64, String, String)> {
        self.inner
            .lock()
            .unwrap()
            .holds
            .iter()
            .filter(|h| &h.1 == lead)
            .map(|h| (h.0, h.2.clone(), h.3.clone()))
            .collect()
    }
    /// What the SQL store does when a person approves a hold: the reply becomes a `queued`
    /// outbound message. Returns false if the hold was not open.
    pub fn approve_hold(&self, hold_id: i64) -> bool {
        let mut g = self.inner.lock().unwrap();
        let Some(h) = g.holds.iter_mut().find(|h| h.0 == hold_id && h.3 == "held") else {
            return false;
        };
        h.3 = "approved".into();
        let (lead, body) = (h.1.clone(), h.2.clone());
        g.next_id += 1;
        let id = g.next_id;
        g.messages.push(MemMessage {
            id,
            lead,
            role: Role::Agent,
            body,
            sid: format!("out-{id}"),
            state: "queued".into(),
            created_at: Utc::now(),
            claimed_at: None,
            provider_sid: None,
            in_doubt_at: None,
        });
        true
    }
    /// Marks the lead synthetic, as the webhook does for `watch`/`verify`'s signed probe.
    pub fn set_synthetic(&self, lead: &LeadId) {
        self.inner.lock().unwrap().synthetic.insert(lead.clone());
    }
    /// A sent reply to `lead` committed at `at` (the reply caps' tests, on a manual clock).
    pub fn add_reply_at(&self, lead: &LeadId, at: chrono::DateTime<Utc>) {
        let mut g = self.inner.lock().unwrap();
        g.next_id += 1;
        let id = g.next_id;
        g.messages.push(MemMessage {
            id,
            lead: lead.clone(),
            role: Role::Agent,
            body: format!("reply {id}"),
            sid: format!("out-{id}"),
            state: "sent".into(),
            created_at: at,
            claimed_at: None,
            provider_sid: None,
            in_doubt_at: None,
        });
    }
    /// Makes every call fail until told otherwise (a store outage).
    pub fn set_failing(&self, v: bool) {
        self.fail.store(v, Ordering::SeqCst);
    }
    fn guard(&self) -> Result<std::sync::MutexGuard<'_, MemInner>, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError("store unavailable (test)".into()));
        }
        Ok(self.inner.lock().unwrap())
    }
}

#[async_trait]
impl Store for MemStore {
    async fn load_history(
        &self,
        lead: &LeadId,
        max_messages: usize,
    ) -> Result<Vec<ChatLine>, StoreError> {
        let g = self.guard()?;
        let mut lines: Vec<ChatLine> = g
            .messages
            .iter()
            .rev()
            .filter(|m| &m.lead == lead && m.state != "pending")
            .take(max_messages)
            .map(|m| ChatLine {
                role: m.role,
                text: m.body.clone(),
            })
            .collect();
        lines.reverse();
        Ok(lines)
    }

    async fn lead_work(&self, lead: &LeadId) -> Result<LeadWork, StoreError> {
        let g = self.guard()?;
        let mine = || g.messages.iter().filter(|m| &m.lead == lead);
        Ok(LeadWork {
            unsent: mine()
                .filter(|m| m.role == Role::Agent && m.state == "queued")
                .map(|m| OutboxReply {
                    id: m.id,
                    lead: m.lead.clone(),
                    body: m.body.clone(),
                })
                .collect(),
            pending: mine()
                .filter(|m| m.role == Role::Lead && m.state == "pending")
                .map(|m| PendingInbound {
                    id: m.id,
                    message_sid: m.sid.clone(),
                    body: m.body.clone(),
                    received_at: Utc::now(),
                })
                .collect(),
            opted_out: *g.opted_out.get(lead).unwrap_or(&false),
        })
    }

    async fn is_opted_out(&self, lead: &LeadId) -> Result<bool, StoreError> {
        Ok(*self.guard()?.opted_out.get(lead).unwrap_or(&false))
    }

    async fn commit_reply(
        &self,
        lead: &LeadId,
        answered: &[i64],
        body: &str,
        _provider: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut g = self.guard()?;
        if !g.mark_answered(answered) {
            return Ok(None);
        }
        g.next_id += 1;
        let id = g.next_id;
        g.messages.push(MemMessage {
            id,
            lead: lead.clone(),
            role: Role::Agent,
            body: body.to_string(),
            sid: format!("out-{id}"),
            state: "queued".into(),
            created_at: Utc::now(),
            claimed_at: None,
            provider_sid: None,
            in_doubt_at: None,
        });
        Ok(Some(id))
    }

    async fn mark_no_reply(&self, answered: &[i64], _reason: &str) -> Result<(), StoreError> {
        let mut g = self.guard()?;
        for m in g.messages.iter_mut() {
            if answered.contains(&m.id) && m.state == "pending" {
                m.state = "no_reply".into();
            }
        }
        Ok(())
    }

    async fn claim_send(&self, reply_id: i64) -> Result<Claim, StoreError> {
        let mut g = self.guard()?;
        let Some(lead) = g
            .messages
            .iter()
            .find(|m| m.id == reply_id && m.state == "queued")
            .map(|m| m.lead.clone())
        else {
            return Ok(Claim::NotQueued);
        };
        let opted_out = *g.opted_out.get(&lead).unwrap_or(&false);
        let m = g
            .messages
            .iter_mut()
            .find(|m| m.id == reply_id)
            .expect("found above, under the same lock");
        if opted_out {
            m.state = "suppressed".into();
            Ok(Claim::Suppressed)
        } else {
            m.state = "sending".into();
            m.claimed_at = Some(Utc::now());
            Ok(Claim::Send)
        }
    }

    async fn record_send(&self, reply_id: i64, outcome: &SendOutcome) -> Result<(), StoreError> {
        let mut g = self.guard()?;
        if let Some(m) = g.messages.iter_mut().find(|m| m.id == reply_id) {
            m.set_outcome(outcome);
        }
        Ok(())
    }

    async fn flag_stale_sends(
        &self,
        cutoff: chrono::DateTime<Utc>,
    ) -> Result<Vec<OutboxReply>, StoreError> {
        let mut g = self.guard()?;
        let mut out = Vec::new();
        for m in g.messages.iter_mut() {
            if m.state == "sending" && m.claimed_at.is_some_and(|t| t < cutoff) {
                m.state = "in_doubt".into();
                m.in_doubt_at = Some(Utc::now());
                out.push(OutboxReply {
                    id: m.id,
                    lead: m.lead.clone(),
                    body: m.body.clone(),
                });
            }
        }
        Ok(out)
    }

    async fn try_lock_lead(&self, lead: &LeadId) -> Result<Option<Box<dyn LeadLock>>, StoreError> {
        let mut g = self.guard()?;
        if !g.locked.insert(lead.clone()) {
            return Ok(None);
        }
        Ok(Some(Box::new(MemLock {
            store: self.inner.clone(),
            lead: lead.clone(),
        })))
    }

    async fn begin_turn(&self, lead: &LeadId, worker: &str) -> Result<i64, StoreError> {
        let mut g = self.guard()?;
        let id = g.turns.len() as i64 + 1;
        g.turns.push((id, lead.clone(), worker.to_string(), None));
        Ok(id)
    }

    async fn finish_turn(&self, turn_id: i64, outcome: &str) -> Result<(), StoreError> {
        let mut g = self.guard()?;
        if let Some(t) = g.turns.iter_mut().find(|t| t.0 == turn_id) {
            t.3 = Some(outcome.to_string());
        }
        Ok(())
    }
}

impl MemMessage {
    fn set_outcome(&mut self, outcome: &SendOutcome) {
        self.state = outcome.state().into();
        match outcome {
            SendOutcome::Sent { provider_sid } => self.provider_sid = Some(provider_sid.clone()),
            SendOutcome::InDoubt { .. } => self.in_doubt_at = Some(Utc::now()),
            _ => {}
        }
    }
}

impl MemInner {
    /// The reply, if it is still in doubt in `reply`'s episode and nobody recorded a check
    /// since `reply` was read: the compare of the SQL store's compare-and-set.
    fn unchanged(&self, reply: &InDoubtReply) -> bool {
        let in_episode = self.messages.iter().any(|m| {
            m.id == reply.id
                && m.state == "in_doubt"
                && m.in_doubt_at.unwrap_or(m.created_at) == reply.in_doubt_since
        });
        let stored = match self.in_doubt_checks.get(&reply.id) {
            Some((since, checks)) if *since == reply.in_doubt_since => checks.clone(),
            _ => InDoubtChecks::default(),
        };
        in_episode && stored.made == reply.checks.made
    }
}

#[async_trait]
impl InDoubtLedger for MemStore {
    async fn in_doubt_replies(&self) -> Result<Vec<InDoubtReply>, StoreError> {
        let g = self.guard()?;
        Ok(g.messages
            .iter()
            .filter(|m| m.state == "in_doubt")
            .map(|m| {
                let since = m.in_doubt_at.unwrap_or(m.created_at);
                InDoubtReply {
                    id: m.id,
                    lead: m.lead.clone(),
                    body: m.body.clone(),
                    created_at: m.created_at,
                    in_doubt_since: since,
                    checks: match g.in_doubt_checks.get(&m.id) {
                        Some((s, c)) if *s == since => c.clone(),
                        _ => InDoubtChecks::default(),
                    },
                }
            })
            .collect())
    }

    async fn record_in_doubt_check(
        &self,
        reply: &InDoubtReply,
        checks: &InDoubtChecks,
    ) -> Result<bool, StoreError> {
        let mut g = self.guard()?;
        if !g.unchanged(reply) {
            return Ok(false);
        }
        g.in_doubt_checks
            .insert(reply.id, (reply.in_doubt_since, checks.clone()));
        Ok(true)
    }

    async fn settle_in_doubt(
        &self,
        reply: &InDoubtReply,
        outcome: &SendOutcome,
    ) -> Result<bool, StoreError> {
        let mut g = self.guard()?;
        if !g.unchanged(reply) {
            return Ok(false);
        }
        g.in_doubt_checks.remove(&reply.id);
        if let Some(m) = g.messages.iter_mut().find(|m| m.id == reply.id) {
            m.set_outcome(outcome);
        }
        Ok(true)
    }

    async fn recorded_provider_sids(
        &self,
        lead: &LeadId,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        Ok(self
            .guard()?
            .messages
            .iter()
            .filter(|m| &m.lead == lead)
            .filter_map(|m| m.provider_sid.clone())
            .collect())
    }
}

/// [`MemStore`]'s lead lock: released explicitly or, like a dead session's advisory lock,
/// when dropped.
struct MemLock {
    store: Arc<Mutex<MemInner>>,
    lead: LeadId,
}

impl Drop for MemLock {
    fn drop(&mut self) {
        if let Ok(mut g) = self.store.lock() {
            g.locked.remove(&self.lead);
        }
    }
}

#[async_trait]
impl LeadLock for MemLock {
    async fn release(self: Box<Self>) {}
}

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

#[async_trait]
impl crate::hitl::ReplyHolds for MemStore {
    async fn hold_reply(
        &self,
        lead: &LeadId,
        answered: &[i64],
        body: &str,
        _provider: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut g = self.guard()?;
        if !g.mark_answered(answered) {
            return Ok(None);
        }
        let id = g.holds.len() as i64 + 1;
        g.holds
            .push((id, lead.clone(), body.to_string(), "held".into()));
        Ok(Some(id))
    }
}

/// The brain's context store in memory; counts `mark_dead` calls.
#[derive(Default)]
pub struct MemLeadContexts {
    contexts: Mutex<HashMap<LeadId, crate::brain::context::LeadContext>>,
    dead: Mutex<Vec<(LeadId, String)>>,
}

impl MemLeadContexts {
    pub fn get(&self, lead: &LeadId) -> Option<crate::brain::context::LeadContext> {
        self.contexts.lock().unwrap().get(lead).cloned()
    }
    pub fn dead(&self) -> Vec<(LeadId, String)> {
        self.dead.lock().unwrap().clone()
    }
}

#[async_trait]
impl crate::brain::context::LeadContextStore for MemLeadContexts {
    async fn load_context(
        &self,
        lead: &LeadId,
    ) -> Result<crate::brain::context::LeadContext, StoreError> {
        Ok(self.get(lead).unwrap_or_default())
    }
    async fn save_context(
        &self,
        lead: &LeadId,
        context: &crate::brain::context::LeadContext,
    ) -> Result<(), StoreError> {
        self.contexts
            .lock()
            .unwrap()
            .insert(lead.clone(), context.clone());
        Ok(())
    }
    async fn mark_dead(&self, lead: &LeadId, reason: &str) -> Result<(), StoreError> {
        self.dead
            .lock()
            .unwrap()
            .push((lead.clone(), reason.to_string()));
        Ok(())
    }
}

/// Records CRM notes instead of posting them.
#[derive(Default)]
pub struct RecordingCrm {
    notes: Mutex<Vec<(LeadId, String, String)>>,
}

impl RecordingCrm {
    pub fn notes(&self) -> Vec<(LeadId, String, String)> {
        self.notes.lock().unwrap().clone()
    }
}

#[async_trait]
impl crate::brain::context::CrmNotes for RecordingCrm {
    fn name(&self) -> &str {
        "recording"
    }
    async fn add_note(
        &self,
        lead: &LeadId,
        subject: &str,
        body: &str,
    ) -> Result<(), crate::brain::context::CrmError> {
        self.notes
            .lock()
            .unwrap()
            .push((lead.clone(), subject.to_string(), body.to_string()));
        Ok(())
    }
}

/// Parks as the SQL store keeps them: one row per lead, replaced by a new park, ended by an
/// unpark or by its expiry.
#[async_trait]
impl ParkStore for MemStore {
    async fn park(&self, park: &Park) -> Result<(), StoreError> {
        self.guard()?
            .parks
            .insert(park.lead.clone(), (park.clone(), None));
        Ok(())
    }

    async fn park_state(
        &self,
        lead: &LeadId,
        now: chrono::DateTime<Utc>,
    ) -> Result<ParkState, StoreError> {
        let g = self.guard()?;
        let exempt = g.synthetic.contains(lead);
        Ok(match g.parks.get(lead) {
            None => ParkState {
                exempt,
                ..ParkState::default()
            },
            Some((park, Some(unparked))) => ParkState {
                active: None,
                released_at: Some((*unparked).min(park.expires_at)),
                exempt,
            },
            Some((park, None)) if park.expires_at <= now => ParkState {
                active: None,
                released_at: Some(park.expires_at),
                exempt,
            },
            Some((park, None)) => ParkState {
                active: Some(park.clone()),
                released_at: None,
                exempt,
            },
        })
    }

    async fn unpark(
        &self,
        lead: &LeadId,
        now: chrono::DateTime<Utc>,
    ) -> Result<Option<Park>, StoreError> {
        let mut g = self.guard()?;
        Ok(match g.parks.get_mut(lead) {
            Some((park, unparked @ None)) if park.expires_at > now => {
                *unparked = Some(now);
                Some(park.clone())
            }
            _ => None,
        })
    }

    async fn parked(&self, now: chrono::DateTime<Utc>) -> Result<Vec<Park>, StoreError> {
        let g = self.guard()?;
        let mut out: Vec<Park> = g
            .parks
            .values()
            .filter(|(p, unparked)| unparked.is_none() && p.expires_at > now)
            .map(|(p, _)| p.clone())
            .collect();
        out.sort_by_key(|p| (p.parked_at, p.lead.clone()));
        Ok(out)
    }

    async fn replies_since(
        &self,
        lead: &LeadId,
        since: chrono::DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let g = self.guard()?;
        Ok(g.messages
            .iter()
            .filter(|m| {
                &m.lead == lead
                    && m.role == Role::Agent
                    && m.created_at >= since
                    && matches!(m.state.as_str(), "queued" | "sending" | "sent" | "in_doubt")
            })
            .count() as u32)
    }
}
