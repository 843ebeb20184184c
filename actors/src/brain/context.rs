//! What the brain knows about a lead beyond the conversation: the requirements the lead
//! told us, the tour asked for, the CRM stage suggested, an escalation, a dead-lead mark —
//! and the two ports it is kept and reported through.
//!
//! Owns: [`LeadContext`] (stored as one JSON document per lead, so a new field needs no
//! migration), the [`LeadContextStore`] port and the [`CrmNotes`] port.
//! Must not: name a database or a CRM. `src/store/lead_context.rs` and
//! `src/channels/crm.rs` implement the ports; `testing.rs` has in-memory fakes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ports::{LeadId, StoreError};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirements {
    /// As the lead put it, or an ISO date when the model could resolve one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_in: Option<String>,
    /// Highest monthly rent in dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u32>,
    /// 0 = studio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrooms: Option<u8>,
    /// The voucher program and size ("Section 8, 2BR"), or "none".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voucher: Option<String>,
    /// The pets, or "none".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pets: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

fn is_none_word(s: &str) -> bool {
    matches!(
        s.trim().to_lowercase().as_str(),
        "" | "none" | "no" | "n/a" | "na" | "no pets" | "no voucher" | "false"
    )
}

impl Requirements {
    pub fn has_voucher(&self) -> bool {
        self.voucher.as_deref().is_some_and(|v| !is_none_word(v))
    }
    pub fn has_pets(&self) -> bool {
        self.pets.as_deref().is_some_and(|p| !is_none_word(p))
    }

    /// Copies in every field `update` knows; fields it leaves unknown keep their value.
    /// Returns true when anything changed.
    pub fn merge(&mut self, update: Requirements) -> bool {
        let before = self.clone();
        macro_rules! take {
            ($f:ident) => {
                if update.$f.is_some() {
                    self.$f = update.$f;
                }
            };
        }
        take!(move_in);
        take!(budget);
        take!(bedrooms);
        take!(voucher);
        take!(pets);
        take!(notes);
        *self != before
    }

    /// What is still unknown, in the order a leasing agent asks.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.bedrooms.is_none() {
            m.push("bedrooms");
        }
        if self.move_in.is_none() {
            m.push("move-in date");
        }
        if self.budget.is_none() {
            m.push("budget");
        }
        if self.voucher.is_none() {
            m.push("voucher");
        }
        if self.pets.is_none() {
            m.push("pets");
        }
        m
    }

    /// One line for alerts, CRM notes and the prompt.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = self.bedrooms {
            parts.push(if b == 0 {
                "studio".to_string()
            } else {
                format!("{b} bedroom(s)")
            });
        }
        if let Some(m) = &self.move_in {
            parts.push(format!("move-in {m}"));
        }
        if let Some(b) = self.budget {
            parts.push(format!("budget ${b}/mo"));
        }
        if let Some(v) = &self.voucher {
            parts.push(format!("voucher: {v}"));
        }
        if let Some(p) = &self.pets {
            parts.push(format!("pets: {p}"));
        }
        if let Some(n) = &self.notes {
            parts.push(format!("notes: {n}"));
        }
        if parts.is_empty() {
            "nothing yet".into()
        } else {
            parts.join("; ")
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TourRequest {
    /// Catalog id of the building.
    pub building: String,
    /// The time the lead asked for, as the model resolved it.
    pub when: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub requested_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadContext {
    #[serde(default)]
    pub requirements: Requirements,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tour: Option<TourRequest>,
    /// The CRM stage last suggested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Why a person was asked to take over, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
    /// Why the lead was marked dead, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_reason: Option<String>,
    /// The building ids last offered to the lead as matching their needs: a
    /// `BUILDING_OPTIONS` alert is raised when this set changes, not on every repeat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offered: Vec<String>,
}

/// Durable per-lead context. Each method is one transaction.
#[async_trait]
pub trait LeadContextStore: Send + Sync + 'static {
    /// The lead's context; a lead never seen by the brain gets the empty default.
    async fn load_context(&self, lead: &LeadId) -> Result<LeadContext, StoreError>;
    async fn save_context(&self, lead: &LeadId, context: &LeadContext) -> Result<(), StoreError>;
    /// Ends the lead's lifecycle (no more follow-ups) besides recording the reason in its
    /// context.
    async fn mark_dead(&self, lead: &LeadId, reason: &str) -> Result<(), StoreError>;
    /// Whether the lead is synthetic (the watchdog's or verify's probe number): the brain
    /// writes no CRM note about it.
    async fn is_synthetic(&self, lead: &LeadId) -> Result<bool, StoreError>;
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("CRM note not posted: {0}")]
pub struct CrmError(pub String);

/// Where the brain's notes about a lead go (Follow Up Boss, or the log).
#[async_trait]
pub trait CrmNotes: Send + Sync + 'static {
    fn name(&self) -> &str;
    async fn add_note(&self, lead: &LeadId, subject: &str, body: &str) -> Result<(), CrmError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_the_update_does_not_know() {
        let mut r = Requirements {
            bedrooms: Some(2),
            budget: Some(1500),
            ..Default::default()
        };
        assert!(r.merge(Requirements {
            budget: Some(1700),
            pets: Some("a cat".into()),
            ..Default::default()
        }));
        assert_eq!(r.bedrooms, Some(2));
        assert_eq!(r.budget, Some(1700));
        assert!(r.has_pets());
        assert!(
            !r.merge(Requirements::default()),
            "nothing new, nothing changed"
        );
        assert_eq!(r.missing(), vec!["move-in date", "voucher"]);
    }

    #[test]
    fn the_context_round_trips_through_json_and_old_documents_still_read() {
        let ctx = LeadContext {
            stage: Some("qualified".into()),
            ..Default::default()
        };
        let json = serde_json::to_string(&ctx).unwrap();
        assert_eq!(serde_json::from_str::<LeadContext>(&json).unwrap(), ctx);
        assert_eq!(
            serde_json::from_str::<LeadContext>("{}").unwrap(),
            LeadContext::default()
        );
    }
}
