//! The brain's tools: their declarations (name, purpose, JSON Schema of the input) and
//! what running one does — update the lead's context in the store, raise the matching
//! alert, post a CRM note — and the result the model reads back.
//!
//! Owns: the tool list and each tool's effects. A malformed input (unknown building, a
//! budget that is not a number) is answered to the model as an error result so it can
//! correct itself; only a store failure fails the turn.
//! Must not: send SMS (the reply is the model's final text) or wait on the CRM: notes are
//! posted in the background, so a slow CRM never eats the turn's model budget.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::catalog::SharedCatalog;
use super::context::{CrmNotes, LeadContext, LeadContextStore, Requirements, TourRequest};
use crate::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use crate::conversation::{ToolCall, ToolResult, ToolSpec};
use crate::dialer::{DialReason, DialerHandoff};
use crate::ports::{Clock, LeadId, StoreError};
use crate::sla::SlaEvents;

pub const RECORD_REQUIREMENTS: &str = "record_requirements";
pub const SCHEDULE_TOUR: &str = "schedule_tour";
pub const MARK_DEAD_LEAD: &str = "mark_dead_lead";
pub const ESCALATE_TO_HUMAN: &str = "escalate_to_human";
pub const SUGGEST_CRM_STAGE: &str = "suggest_crm_stage";
pub const MARK_HOT_LEAD: &str = "mark_hot_lead";
pub const RECORD_OPT_OUT: &str = "record_opt_out";

/// The stages the brain may suggest (the office maps them onto its CRM's own).
pub const CRM_STAGES: [&str; 7] = [
    "new",
    "contacted",
    "qualified",
    "tour_scheduled",
    "applied",
    "nurture",
    "dead",
];

/// How long a background CRM note may take before it is given up (and logged).
const CRM_NOTE_TIMEOUT: Duration = Duration::from_secs(15);

pub fn tool_specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: RECORD_REQUIREMENTS,
            description: "Save what the lead told us about their needs. Call it whenever the lead states or changes a requirement; pass only the fields they gave. Returns the saved requirements, what is still unknown and the buildings that match.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "move_in_date": {"type": "string", "description": "When they want to move in: an ISO date (YYYY-MM-DD) when you can resolve it, else their words."},
                    "budget": {"type": "integer", "description": "Highest monthly rent in US dollars."},
                    "bedrooms": {"type": "integer", "description": "Bedrooms wanted; 0 for a studio."},
                    "voucher": {"type": "string", "description": "Housing voucher program and size (e.g. 'Section 8, 2BR'), or 'none'."},
                    "pets": {"type": "string", "description": "Their pets (e.g. 'one cat'), or 'none'."},
                    "notes": {"type": "string", "description": "Anything else that matters for the search."}
                }
            }),
        },
        ToolSpec {
            name: SCHEDULE_TOUR,
            description: "Request a tour for the lead at one building of the catalog at the time they agreed to. The team confirms it; tell the lead it is requested, not confirmed.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "building": {"type": "string", "description": "The building id in square brackets in the catalog."},
                    "when": {"type": "string", "description": "The agreed date and time, ISO 8601 local time (YYYY-MM-DDTHH:MM) when possible."},
                    "notes": {"type": "string", "description": "Anything the touring agent should know."}
                },
                "required": ["building", "when"]
            }),
        },
        ToolSpec {
            name: MARK_DEAD_LEAD,
            description: "Mark the lead as dead: they said they are no longer looking, found a place, or asked us to stop. No follow-ups are sent after this.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "Why, in a few words."}
                },
                "required": ["reason"]
            }),
        },
        ToolSpec {
            name: ESCALATE_TO_HUMAN,
            description: "Hand the conversation to a person: a question you cannot answer from the catalog (fees, legal, maintenance, complaints), an upset lead, or a request to speak to someone.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "What the person needs to handle."},
                    "urgent": {"type": "boolean", "description": "True when the lead is waiting on it now."}
                },
                "required": ["reason"]
            }),
        },
        ToolSpec {
            name: SUGGEST_CRM_STAGE,
            description: "Suggest the lead's stage in the CRM when the conversation moves it (qualified, tour scheduled...). A person reviews the suggestion.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "stage": {"type": "string", "enum": CRM_STAGES, "description": "The stage."},
                    "reason": {"type": "string", "description": "Why, in a few words."}
                },
                "required": ["stage", "reason"]
            }),
        },
        ToolSpec {
            name: MARK_HOT_LEAD,
            description: "Mark the lead hot: ready to rent now (qualified, wants to move soon, asking to apply) or asking to talk on the phone. A person calls them today; tell the lead to expect a call.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "Why they are hot, in a few words, for the caller."}
                },
                "required": ["reason"]
            }),
        },
        ToolSpec {
            name: RECORD_OPT_OUT,
            description: "The lead does not want any more texts from us, in whatever words (\"I'd rather not hear from you again\", \"quit messaging\"). Call it at once, without arguing or asking why: the lead is opted out and gets one confirmation from us; your reply will not be sent. Not for a lead who only declines a unit or a time.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "words": {"type": "string", "description": "The lead's words that say so, quoted."}
                },
                "required": ["words"]
            }),
        },
    ]
}

/// Where a revocation the model judged is recorded (one the deterministic phrase set,
/// `crate::revocation`, did not see; never the only check): the same effect as STOP —
/// opted out, a ledger event, followups cancelled, one confirmation queued.
#[async_trait::async_trait]
pub trait JudgedRevocations: Send + Sync + 'static {
    /// True: the lead is opted out now; false: it already was.
    async fn revoke(&self, lead: &LeadId, words: &str) -> Result<bool, StoreError>;
}

/// The event a judged revocation raises, from the brain's tool or the plain chain's
/// answer: `by` names the provider when known.
pub fn judged_opt_out_alert(lead: &LeadId, by: Option<&str>, words: &str, newly: bool) -> Alert {
    Alert::event(
        "opted_out",
        format!(
            "{lead} opted out in words the phrase set missed, by the model's judgement{}: \"{words}\"{}",
            by.map(|p| format!(" [{p}]")).unwrap_or_default(),
            if newly { "" } else { " (already out)" }
        ),
    )
    .for_lead(lead)
    .with_reason("revocation judged by the model")
}

#[derive(Deserialize)]
struct OptOutInput {
    words: String,
}

/// A number a model may send as 1500, 1500.0 or "$1,500".
fn lenient_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => {
            let lower = s.to_lowercase();
            if lower.contains("studio") {
                Some(0.0)
            } else {
                let digits: String = s
                    .chars()
                    .filter(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                match digits.parse::<f64>() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        return Err(serde::de::Error::custom(format!("`{s}` is not a number")));
                    }
                }
            }
        }
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "`{other}` is not a number"
            )));
        }
    })
}

#[derive(Deserialize)]
struct RequirementsInput {
    #[serde(default)]
    move_in_date: Option<String>,
    #[serde(default, deserialize_with = "lenient_number")]
    budget: Option<f64>,
    #[serde(default, deserialize_with = "lenient_number")]
    bedrooms: Option<f64>,
    #[serde(default)]
    voucher: Option<String>,
    #[serde(default)]
    pets: Option<String>,
    #[serde(default)]
    notes: Option<String>,
}

#[derive(Deserialize)]
struct TourInput {
    building: String,
    when: String,
    #[serde(default)]
    notes: Option<String>,
}

#[derive(Deserialize)]
struct ReasonInput {
    reason: String,
    #[serde(default)]
    urgent: bool,
}

#[derive(Deserialize)]
struct StageInput {
    stage: String,
    #[serde(default)]
    reason: String,
}

/// Everything a tool may touch.
#[derive(Clone)]
pub struct ToolBox {
    pub catalog: SharedCatalog,
    pub contexts: Arc<dyn LeadContextStore>,
    pub crm: Arc<dyn CrmNotes>,
    pub alerts: AlertHandle,
    pub clock: Arc<dyn Clock>,
    /// Resolves the showing SLA when a tour is booked; `None`: no SLA engine here.
    pub sla: Option<SlaEvents>,
    /// Where `mark_hot_lead` hands the lead; `None`: the tool only records and alerts.
    pub dialer: Option<Arc<DialerHandoff>>,
    /// Where `record_opt_out` opts the lead out; `None`: the tool is refused.
    pub revocations: Option<Arc<dyn JudgedRevocations>>,
}

/// What one tool run produced.
pub struct ToolOutcome {
    pub result: ToolResult,
    /// A one-line account for the reasoning channel ("schedule_tour lakeview 2026-12-05T11:00").
    pub summary: String,
}

fn ok(call: &ToolCall, content: Value, summary: String) -> ToolOutcome {
    ToolOutcome {
        result: ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            content: content.to_string(),
            is_error: false,
        },
        summary,
    }
}

fn refuse(call: &ToolCall, why: String) -> ToolOutcome {
    ToolOutcome {
        summary: format!("{} refused: {why}", call.name),
        result: ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            content: json!({"error": why}).to_string(),
            is_error: true,
        },
    }
}

fn parse<T: for<'de> Deserialize<'de>>(call: &ToolCall) -> Result<T, String> {
    serde_json::from_value(call.input.clone()).map_err(|e| format!("invalid input: {e}"))
}

impl ToolBox {
    /// Runs one call. `live` false (shadow mode) computes the same result without touching
    /// the store, alerts or CRM: a shadow brain must not act.
    pub async fn run(
        &self,
        lead: &LeadId,
        call: &ToolCall,
        ctx: &mut LeadContext,
        live: bool,
    ) -> Result<ToolOutcome, StoreError> {
        let outcome = match call.name.as_str() {
            RECORD_REQUIREMENTS => self.record_requirements(lead, call, ctx, live).await?,
            SCHEDULE_TOUR => self.schedule_tour(lead, call, ctx, live).await?,
            MARK_DEAD_LEAD => self.mark_dead(lead, call, ctx, live).await?,
            ESCALATE_TO_HUMAN => self.escalate(lead, call, ctx, live).await?,
            SUGGEST_CRM_STAGE => self.suggest_stage(lead, call, ctx, live).await?,
            MARK_HOT_LEAD => self.mark_hot(lead, call, ctx, live).await?,
            RECORD_OPT_OUT => self.record_opt_out(lead, call, live).await?,
            other => refuse(call, format!("there is no tool named `{other}`")),
        };
        metrics::counter!("lead_agent_brain_tool_calls_total", "tool" => call.name.clone(), "outcome" => if outcome.result.is_error { "refused" } else { "ok" }).increment(1);
        Ok(outcome)
    }

    async fn record_requirements(
        &self,
        lead: &LeadId,
        call: &ToolCall,
        ctx: &mut LeadContext,
        live: bool,
    ) -> Result<ToolOutcome, StoreError> {
        let input: RequirementsInput = match parse(call) {
            Ok(i) => i,
            Err(e) => return Ok(refuse(call, e)),
        };
        if input
            .budget
            .is_some_and(|b| !(0.0..=1_000_000.0).contains(&b))
            || input.bedrooms.is_some_and(|b| !(0.0..=20.0).contains(&b))
        {
            return Ok(refuse(call, "budget or bedrooms out of range".into()));
        }
        let update = Requirements {
            move_in: input.move_in_date.filter(|s| !s.trim().is_empty()),
            budget: input.budget.map(|b| b.round() as u32),
            bedrooms: input.bedrooms.map(|b| b.round() as u8),
            voucher: input.voucher.filter(|s| !s.trim().is_empty()),
            pets: input.pets.filter(|s| !s.trim().is_empty()),
            notes: input.notes.filter(|s| !s.trim().is_empty()),
        };
        let changed = ctx.requirements.merge(update);
        let catalog = self.catalog.current();
        let buildings = catalog.matching(&ctx.requirements);
        let matching: Vec<String> = buildings
            .iter()
            .map(|b| format!("{} [{}]", b.name, b.id))
            .collect();
        let offered: Vec<String> = buildings.iter().map(|b| b.id.clone()).collect();
        // Options are "generated" when the matching set is new to the lead: the same set
        // again (the model re-saving one field) is not news for the channel.
        let new_options = !offered.is_empty() && offered != ctx.offered;
        let summary = ctx.requirements.summary();
        if live && (changed || new_options) {
            if new_options {
                ctx.offered = offered;
            }
            self.contexts.save_context(lead, ctx).await?;
        }
        if live && new_options {
            self.alerts.raise(
                Alert::new(
                    AlertKind::BuildingOptions,
                    Severity::Info,
                    "building_options",
                    format!("{lead}: {} matching {summary}", matching.join(", ")),
                )
                .for_lead(lead),
            );
        }
        if live && changed {
            let missing = ctx.requirements.missing();
            self.alerts.raise(
                Alert::new(
                    AlertKind::RequirementsCheck,
                    Severity::Info,
                    "requirements_check",
                    format!(
                        "{lead}: {summary}. Matching: {}. Still unknown: {}",
                        if matching.is_empty() {
                            "none".to_string()
                        } else {
                            matching.join(", ")
                        },
                        if missing.is_empty() {
                            "nothing".to_string()
                        } else {
                            missing.join(", ")
                        }
                    ),
                )
                .for_lead(lead),
            );
            self.note(
                lead,
                AlertKind::RequirementsNote,
                "Requirements",
                summary.clone(),
            );
        }
        Ok(ok(
            call,
            json!({
                "saved": ctx.requirements,
                "still_unknown": ctx.requirements.missing(),
                "matching_buildings": matching,
            }),
            format!("{RECORD_REQUIREMENTS}: {summary}"),
        ))
    }

    async fn schedule_tour(
        &self,
        lead: &LeadId,
        call: &ToolCall,
        ctx: &mut LeadContext,
        live: bool,
    ) -> Result<ToolOutcome, StoreError> {
        let input: TourInput = match parse(call) {
            Ok(i) => i,
            Err(e) => return Ok(refuse(call, e)),
        };
        let catalog = self.catalog.current();
        let Some(building) = catalog.find(&input.building) else {
            let ids: Vec<&str> = catalog.buildings.iter().map(|b| b.id.as_str()).collect();
            return Ok(refuse(
                call,
                format!(
                    "unknown building `{}`; use one of: {}",
                    input.building,
                    ids.join(", ")
                ),
            ));
        };
        if input.when.trim().is_empty() {
            return Ok(refuse(call, "`when` is empty".into()));
        }
        let when = input.when.trim().to_string();
        // A retried turn replays its tool calls: the same request again is not a new tour.
        let repeat = ctx
            .tour
            .as_ref()
            .is_some_and(|t| t.building == building.id && t.when == when);
        ctx.tour = Some(TourRequest {
            building: building.id.clone(),
            when: when.clone(),
            notes: input.notes.clone(),
            requested_at: self.clock.now(),
        });
        let summary = format!("{SCHEDULE_TOUR}: {} at {when}", building.id);
        if live && !repeat {
            self.contexts.save_context(lead, ctx).await?;
            let text = format!(
                "Tour requested by {lead}: {} ({}) at {when}. Lead: {}.{}",
                building.name,
                building.address,
                ctx.requirements.summary(),
                input
                    .notes
                    .as_deref()
                    .map(|n| format!(" Notes: {n}"))
                    .unwrap_or_default()
            );
            self.alerts.raise(
                Alert::new(
                    AlertKind::TourRequest,
                    Severity::Warning,
                    "tour_request",
                    text.clone(),
                )
                .for_lead(lead),
            );
            self.note(lead, AlertKind::TourRequest, "Tour requested", text);
        }
        if live && let Some(sla) = &self.sla {
            // Booked: the showing the lead asked for has its time (resolving is
            // idempotent, so a replayed call changes nothing).
            sla.tour_booked(lead, self.clock.now()).await?;
        }
        Ok(ok(
            call,
            json!({
                "status": "requested",
                "building": building.name,
                "when": when,
                "next": "The team will confirm the time with the lead.",
            }),
            summary,
        ))
    }

    async fn mark_dead(
        &self,
        lead: &LeadId,
        call: &ToolCall,
        ctx: &mut LeadContext,
        live: bool,
    ) -> Result<ToolOutcome, StoreError> {
        let input: ReasonInput = match parse(call) {
            Ok(i) => i,
            Err(e) => return Ok(refuse(call, e)),
        };
        let reason = input.reason.trim().to_string();
        let repeat = ctx.dead_reason.as_deref() == Some(reason.as_str());
        ctx.dead_reason = Some(reason.clone());
        if live && !repeat {
            self.contexts.save_context(lead, ctx).await?;
            self.contexts.mark_dead(lead, &reason).await?;
            self.alerts.raise(
                Alert::new(
                    AlertKind::DeadLead,
                    Severity::Info,
                    "dead_lead",
                    format!("{lead} marked dead: {reason}"),
                )
                .for_lead(lead)
                .with_reason(reason.clone()),
            );
            self.note(lead, AlertKind::DeadLead, "Lead closed", reason.clone());
        }
        Ok(ok(
            call,
            json!({"status": "marked dead", "follow_ups": "none will be sent"}),
            format!("{MARK_DEAD_LEAD}: {reason}"),
        ))
    }

    async fn escalate(
        &self,
        lead: &LeadId,
        call: &ToolCall,
        ctx: &mut LeadContext,
        live: bool,
    ) -> Result<ToolOutcome, StoreError> {
        let input: ReasonInput = match parse(call) {
            Ok(i) => i,
            Err(e) => return Ok(refuse(call, e)),
        };
        let reason = input.reason.trim().to_string();
        ctx.escalation = Some(reason.clone());
        if live {
            self.contexts.save_context(lead, ctx).await?;
            let severity = if input.urgent {
                Severity::Critical
            } else {
                Severity::Warning
            };
            self.alerts.raise(
                Alert::new(
                    AlertKind::General,
                    severity,
                    "escalation",
                    format!("{lead} needs a person: {reason}"),
                )
                .for_lead(lead),
            );
            self.note(lead, AlertKind::General, "Needs a person", reason.clone());
        }
        Ok(ok(
            call,
            json!({"status": "a team member has been notified"}),
            format!("{ESCALATE_TO_HUMAN}: {reason}"),
        ))
    }

    async fn suggest_stage(
        &self,
        lead: &LeadId,
        call: &ToolCall,
        ctx: &mut LeadContext,
        live: bool,
    ) -> Result<ToolOutcome, StoreError> {
        let input: StageInput = match parse(call) {
            Ok(i) => i,
            Err(e) => return Ok(refuse(call, e)),
        };
        let stage = input.stage.trim().to_lowercase().replace([' ', '-'], "_");
        if !CRM_STAGES.contains(&stage.as_str()) {
            return Ok(refuse(
                call,
                format!(
                    "unknown stage `{}`; use one of: {}",
                    input.stage,
                    CRM_STAGES.join(", ")
                ),
            ));
        }
        let repeat = ctx.stage.as_deref() == Some(stage.as_str());
        ctx.stage = Some(stage.clone());
        if live && !repeat {
            self.contexts.save_context(lead, ctx).await?;
            let text = format!("{lead}: suggest stage `{stage}` ({})", input.reason);
            self.alerts.raise(
                Alert::new(
                    AlertKind::StageSuggestion,
                    Severity::Info,
                    "stage_suggestion",
                    text.clone(),
                )
                .for_lead(lead),
            );
            self.note(lead, AlertKind::StageSuggestion, "Stage suggestion", text);
        }
        Ok(ok(
            call,
            json!({"status": "suggested", "stage": stage}),
            format!("{SUGGEST_CRM_STAGE}: {stage}"),
        ))
    }

    async fn mark_hot(
        &self,
        lead: &LeadId,
        call: &ToolCall,
        ctx: &mut LeadContext,
        live: bool,
    ) -> Result<ToolOutcome, StoreError> {
        let input: ReasonInput = match parse(call) {
            Ok(i) => i,
            Err(e) => return Ok(refuse(call, e)),
        };
        let reason = input.reason.trim().to_string();
        let mut status = "noted";
        if live {
            let summary = format!("Hot lead: {reason}. Known: {}.", ctx.requirements.summary());
            if let Some(dialer) = &self.dialer {
                status = if dialer.hand_off(lead, DialReason::Hot, &summary).await? {
                    "a person will call them today"
                } else {
                    "already queued for a call today"
                };
            }
            self.note(lead, AlertKind::General, "Hot lead", summary);
        }
        Ok(ok(
            call,
            json!({"status": status}),
            format!("{MARK_HOT_LEAD}: {reason}"),
        ))
    }

    async fn record_opt_out(
        &self,
        lead: &LeadId,
        call: &ToolCall,
        live: bool,
    ) -> Result<ToolOutcome, StoreError> {
        let input: OptOutInput = match parse(call) {
            Ok(i) => i,
            Err(e) => return Ok(refuse(call, e)),
        };
        let words = input.words.trim().to_string();
        let Some(revocations) = &self.revocations else {
            return Ok(refuse(call, "opt-outs are not recorded here".into()));
        };
        if live {
            let newly = revocations.revoke(lead, &words).await?;
            self.alerts
                .raise(judged_opt_out_alert(lead, None, &words, newly));
        }
        Ok(ok(
            call,
            json!({"status": "opted out; your reply will not be sent, the lead gets one confirmation"}),
            format!("{RECORD_OPT_OUT}: {words}"),
        ))
    }

    /// Posts a CRM note in the background. The note's text also goes to the requirement-notes
    /// channel when it is about requirements, so operators see it even if the CRM is down.
    fn note(&self, lead: &LeadId, kind: AlertKind, subject: &str, body: String) {
        if kind == AlertKind::RequirementsNote {
            self.alerts.raise(
                Alert::new(
                    AlertKind::RequirementsNote,
                    Severity::Info,
                    "crm_requirements_note",
                    format!("{lead}: {body}"),
                )
                .for_lead(lead),
            );
        }
        let crm = self.crm.clone();
        let contexts = self.contexts.clone();
        let lead = lead.clone();
        let subject = format!("Leasing agent: {subject}");
        tokio::spawn(async move {
            // A probe number's conversation is not a person's: nothing in the CRM. Unknown
            // (store error): the note is skipped too, as a failed note would be.
            match contexts.is_synthetic(&lead).await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(lead = %lead.log(), "synthetic lead: no CRM note");
                    return;
                }
                Err(e) => {
                    tracing::warn!(lead = %lead.log(), error = %e, "CRM note skipped: the store did not say whether the lead is synthetic");
                    return;
                }
            }
            match tokio::time::timeout(CRM_NOTE_TIMEOUT, crm.add_note(&lead, &subject, &body)).await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(crm = crm.name(), lead = %lead.log(), error = %e, "CRM note failed")
                }
                Err(_) => {
                    tracing::warn!(crm = crm.name(), lead = %lead.log(), "CRM note timed out")
                }
            }
        });
    }
}
