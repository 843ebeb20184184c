//! An in-memory [`Store`](crate::ports::Store) ([`MemStore`]) with the SQL store's
//! transactional promises (one mutex, so every method is atomic): messages and the
//! outbox, the in-doubt ledger, the lead lock, held replies and parks.
//!
//! Must not: be used on a production path (the crate's `testing` feature).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;

use crate::park::{Park, ParkState, ParkStore};
use crate::ports::*;

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
            return Err(StoreError::new("store unavailable (test)"));
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
            // Takeovers live in the SQL store only (`src/store/takeovers.rs`); their turn is
            // tested through the HTTP path (`tests/api/takeover.rs`).
            taken_by: None,
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
