//! What a lead's new messages ask for besides an answer — a tour, a phone call — read on
//! every turn whichever model answers, and acted on: a tour request opens the showing SLA,
//! a call request hands the lead to the dialer.
//!
//! Owns: the [`MessageReader`] port (the rules responder's readers implement it, in
//! `src/channels/llm/rules/`, with their word lists) and [`Listening`], the [`Responder`]
//! that reads the new messages, acts, then asks the responder it wraps (or the plain
//! chain). Both actions are idempotent (one open SLA per lead and kind; one hand-off per
//! lead per day), so a retried turn acts once.
//! Must not: change the reply, or wait on a ticket system or the dialer (both act in the
//! background once their record is stored).

use std::sync::Arc;

use async_trait::async_trait;

use crate::brain::Responder;
use crate::dialer::{DialReason, DialerHandoff};
use crate::llm_pool::LlmPool;
use crate::ports::{Completion, Prompt, Role};
use crate::sla::SlaEvents;
use crate::turn_error::TurnError;

/// What one message asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    pub tour_request: bool,
    pub call_request: bool,
}

/// Reads a lead's message for what it asks (pure, cheap: word lists).
pub trait MessageReader: Send + Sync + 'static {
    fn read(&self, text: &str) -> Signals;
}

/// A [`Responder`] that acts on the new messages' signals before answering.
pub struct Listening {
    /// `None`: the plain chain answers (`USE_AGENT_CORE=false`), exactly as without this.
    pub inner: Option<Arc<dyn Responder>>,
    pub pool: LlmPool,
    pub reader: Arc<dyn MessageReader>,
    pub sla: Option<SlaEvents>,
    pub dialer: Option<Arc<DialerHandoff>>,
}

#[async_trait]
impl Responder for Listening {
    async fn respond(&self, prompt: &Prompt) -> Result<Completion, TurnError> {
        let start = prompt.lines.len().saturating_sub(prompt.new_messages);
        let new: Vec<&str> = prompt.lines[start..]
            .iter()
            .filter(|l| l.role == Role::Lead)
            .map(|l| l.text.as_str())
            .collect();
        let mut tour = None;
        let mut call = None;
        for text in &new {
            let s = self.reader.read(text);
            if s.tour_request && tour.is_none() {
                tour = Some(*text);
            }
            if s.call_request && call.is_none() {
                call = Some(*text);
            }
        }
        if let (Some(said), Some(sla)) = (tour, &self.sla) {
            sla.tour_requested(&prompt.lead, prompt.now, said).await?;
        }
        if let (Some(said), Some(dialer)) = (call, &self.dialer) {
            dialer
                .hand_off(
                    &prompt.lead,
                    DialReason::AskedForCall,
                    &format!("Asked to be called: \"{}\"", new.join(" / ")),
                )
                .await?;
            tracing::info!(lead = %prompt.lead.log(), "call requested: {}", crate::log_phone::scrub(said));
        }
        match &self.inner {
            Some(r) => r.respond(prompt).await,
            None => Ok(self.pool.complete(prompt).await?),
        }
    }
}
