//! In-memory SLA ports for tests: a [`MemSlaStore`] with the SQL store's promises (one
//! mutex, so each method is atomic; version-checked writes) and a [`FakeTickets`] that
//! records comments and can be told to fail.
//!
//! Must not: be used on a production path.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{NewTask, Opened, SlaKind, SlaState, SlaStore, TicketError, TicketSystem};
use crate::ports::{LeadId, StoreError};

#[derive(Default)]
pub struct MemSlaStore {
    rows: Mutex<BTreeMap<(LeadId, SlaKind), SlaState>>,
    /// Update SMS queued in the "outbox": (lead, body).
    queued: Mutex<Vec<(LeadId, String)>>,
    zones: Mutex<BTreeMap<LeadId, String>>,
    move_ins: Mutex<BTreeMap<LeadId, String>>,
    synthetic: Mutex<std::collections::BTreeSet<LeadId>>,
}

impl MemSlaStore {
    /// Marks `lead` synthetic (a probe number).
    pub fn set_synthetic(&self, lead: &LeadId) {
        self.synthetic.lock().unwrap().insert(lead.clone());
    }

    pub fn get(&self, lead: &LeadId, kind: SlaKind) -> Option<SlaState> {
        self.rows
            .lock()
            .unwrap()
            .get(&(lead.clone(), kind))
            .cloned()
    }
    pub fn queued_sms(&self) -> Vec<(LeadId, String)> {
        self.queued.lock().unwrap().clone()
    }
    pub fn set_time_zone(&self, lead: &LeadId, tz: &str) {
        self.zones
            .lock()
            .unwrap()
            .insert(lead.clone(), tz.to_string());
    }
    /// Records a lead's move-in as the brain's requirements would.
    pub fn set_move_in(&self, lead: &LeadId, move_in: &str) {
        self.move_ins
            .lock()
            .unwrap()
            .insert(lead.clone(), move_in.to_string());
    }
    /// Overwrites a row as if an earlier process had left it so (restart tests).
    pub fn put(&self, state: SlaState) {
        self.rows
            .lock()
            .unwrap()
            .insert((state.lead.clone(), state.kind), state);
    }

    fn write(&self, next: &SlaState) -> bool {
        let mut rows = self.rows.lock().unwrap();
        match rows.get_mut(&(next.lead.clone(), next.kind)) {
            Some(row) if row.version == next.version => {
                *row = next.clone();
                row.version += 1;
                true
            }
            _ => false,
        }
    }
}

#[async_trait]
impl SlaStore for MemSlaStore {
    async fn open_sla(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        ticket_id: &str,
        started_at: DateTime<Utc>,
    ) -> Result<Opened, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        let key = (lead.clone(), kind);
        if let Some(row) = rows.get(&key)
            && row.resolved_at.is_none()
        {
            return Ok(Opened::AlreadyOpen(row.clone()));
        }
        let version = rows.get(&key).map_or(0, |r| r.version + 1);
        let mut fresh = SlaState::new(lead.clone(), kind, ticket_id, started_at);
        fresh.version = version;
        rows.insert(key, fresh.clone());
        Ok(Opened::Created(fresh))
    }

    async fn resolve_sla(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        at: DateTime<Utc>,
    ) -> Result<Option<SlaState>, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        Ok(rows.get_mut(&(lead.clone(), kind)).map(|row| {
            if row.resolved_at.is_none() {
                row.resolved_at = Some(at);
                row.version += 1;
            }
            row.clone()
        }))
    }

    async fn set_due(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        due: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        Ok(match rows.get_mut(&(lead.clone(), kind)) {
            Some(row) if row.resolved_at.is_none() => {
                row.due = Some(due);
                row.version += 1;
                true
            }
            _ => false,
        })
    }

    async fn open_slas(&self) -> Result<Vec<SlaState>, StoreError> {
        Ok(self
            .rows
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.resolved_at.is_none())
            .cloned()
            .collect())
    }

    async fn breaches_since(&self, since: DateTime<Utc>) -> Result<Vec<SlaState>, StoreError> {
        let mut out: Vec<SlaState> = self
            .rows
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.breached_at.is_some_and(|b| b >= since))
            .cloned()
            .collect();
        out.sort_by_key(|r| r.breached_at);
        Ok(out)
    }

    async fn lead_time_zone(&self, lead: &LeadId) -> Result<Option<String>, StoreError> {
        Ok(self.zones.lock().unwrap().get(lead).cloned())
    }

    async fn is_synthetic(&self, lead: &LeadId) -> Result<bool, StoreError> {
        Ok(self.synthetic.lock().unwrap().contains(lead))
    }

    async fn save_sla(&self, next: &SlaState) -> Result<bool, StoreError> {
        Ok(self.write(next))
    }

    async fn save_with_lead_sms(
        &self,
        next: &SlaState,
        body: &str,
    ) -> Result<Option<i64>, StoreError> {
        if !self.write(next) {
            return Ok(None);
        }
        let mut q = self.queued.lock().unwrap();
        q.push((next.lead.clone(), body.to_string()));
        Ok(Some(q.len() as i64))
    }

    async fn attach_ticket(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        ticket_id: &str,
    ) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        Ok(match rows.get_mut(&(lead.clone(), kind)) {
            Some(row) if row.resolved_at.is_none() && row.ticket_id.is_empty() => {
                row.ticket_id = ticket_id.to_string();
                true
            }
            _ => false,
        })
    }

    async fn move_ins_without_invoice(&self) -> Result<Vec<(LeadId, String)>, StoreError> {
        let rows = self.rows.lock().unwrap();
        Ok(self
            .move_ins
            .lock()
            .unwrap()
            .iter()
            .filter(|(lead, _)| !rows.contains_key(&((*lead).clone(), SlaKind::Invoice)))
            .map(|(l, m)| (l.clone(), m.clone()))
            .collect())
    }
}

/// Records every comment and task (tasks get ids `7000`, `7001`, …); `fail_with` makes
/// the following calls fail.
#[derive(Default)]
pub struct FakeTickets {
    comments: Mutex<Vec<(String, String)>>,
    tasks: Mutex<Vec<NewTask>>,
    failure: Mutex<Option<TicketError>>,
}

impl FakeTickets {
    pub fn comments(&self) -> Vec<(String, String)> {
        self.comments.lock().unwrap().clone()
    }
    pub fn tasks(&self) -> Vec<NewTask> {
        self.tasks.lock().unwrap().clone()
    }
    /// `Some`: every call fails with it until set back to `None`.
    pub fn fail_with(&self, e: Option<TicketError>) {
        *self.failure.lock().unwrap() = e;
    }
}

#[async_trait]
impl TicketSystem for FakeTickets {
    fn name(&self) -> &str {
        "fake"
    }
    async fn add_comment(&self, ticket_id: &str, text: &str) -> Result<(), TicketError> {
        if let Some(e) = self.failure.lock().unwrap().clone() {
            return Err(e);
        }
        self.comments
            .lock()
            .unwrap()
            .push((ticket_id.to_string(), text.to_string()));
        Ok(())
    }
    async fn create_task(&self, task: &NewTask) -> Result<String, TicketError> {
        if let Some(e) = self.failure.lock().unwrap().clone() {
            return Err(e);
        }
        let mut tasks = self.tasks.lock().unwrap();
        tasks.push(task.clone());
        Ok(format!("{}", 7000 + tasks.len() - 1))
    }
}
