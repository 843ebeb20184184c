//! The brain's ports in memory: a lead-context store ([`MemLeadContexts`]) and a CRM that
//! records notes ([`RecordingCrm`]).
//!
//! Must not: be used on a production path (the crate's `testing` feature).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::*;

/// The brain's context store in memory; counts `mark_dead` calls.
#[derive(Default)]
pub struct MemLeadContexts {
    contexts: Mutex<HashMap<LeadId, crate::brain::context::LeadContext>>,
    dead: Mutex<Vec<(LeadId, String)>>,
    synthetic: Mutex<std::collections::HashSet<LeadId>>,
}

impl MemLeadContexts {
    /// Marks `lead` synthetic (a probe number), as the webhook's signed flag does.
    pub fn set_synthetic(&self, lead: &LeadId) {
        self.synthetic.lock().unwrap().insert(lead.clone());
    }
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
    async fn is_synthetic(&self, lead: &LeadId) -> Result<bool, StoreError> {
        Ok(self.synthetic.lock().unwrap().contains(lead))
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
