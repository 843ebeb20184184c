//! `GET /ops/conversations/{phone}`: one lead's conversation as an operator reads it — the
//! messages in order, each with its state and, for a reply, the turn that produced it
//! (worker, provider, latency: matched by time, as the store keeps turns apart from
//! messages), the held drafts, the SLAs, the consent ledger, who owns it — and the actions
//! that fit its state: approve / edit / reject a held reply, take over, reply as the
//! operator, release, unpark, resolve an SLA.
//!
//! Owns: gathering that from the store into strings for `templates/ops/conversation.html`.
//! Must not: act. Each button names the `/ops` endpoint its action is (the same handler a
//! script calls), and `/ops/console.js` posts to it after the operator confirms.

use actors::park::ParkStore;
use actors::ports::LeadId;
use actors::sla::SlaView;
use askama::Template;
use chrono::{DateTime, Utc};

use super::inbox::{age, span, state_label};
use crate::http::AppState;
use crate::store::{MessageView, TurnView};

/// How many of the lead's newest messages the view shows.
const MESSAGES: i64 = 200;

#[derive(Template)]
#[template(path = "ops/conversation.html")]
pub struct Conversation {
    pub csrf: String,
    /// `GET /ops/changes`'s stamp at render time (set by the handler).
    pub stamp: String,
    pub now: String,
    /// As `LOG_PHONE` renders it.
    pub phone: String,
    /// `/ops/leads/%2B1…`: the base of every action's endpoint.
    pub api: String,
    pub name: String,
    pub client_id: String,
    pub stage: String,
    pub opted_out: bool,
    pub owner: Option<Owner>,
    pub park: Option<String>,
    pub items: Vec<Item>,
    pub slas: Vec<SlaRow>,
    pub consent: Vec<ConsentRow>,
    /// The store's answer when it did not give the whole view.
    pub error: Option<String>,
}

pub struct Owner {
    pub operator: String,
    pub via: String,
    pub since: String,
}

/// One line of the timeline: a message, or a draft held for a person.
pub struct Item {
    pub id: String,
    pub at: String,
    pub age: String,
    /// `in`, `out` or `held`.
    pub kind: &'static str,
    pub body: String,
    pub state: String,
    /// The CSS class of the state (`warn` for what needs a look).
    pub class: &'static str,
    /// For a reply: provider, worker and latency of the turn that produced it.
    pub origin: String,
    /// For a draft still held: its id (the actions' endpoint is `/ops/holds/{id}/decide`).
    pub hold: Option<i64>,
}

pub struct SlaRow {
    pub kind: String,
    pub started: String,
    pub due: String,
    pub state: String,
    pub overdue: bool,
    pub open: bool,
}

pub struct ConsentRow {
    pub at: String,
    pub method: String,
    pub grants: bool,
    pub words: String,
}

fn fmt(t: DateTime<Utc>) -> String {
    t.format("%m-%d %H:%M:%S").to_string()
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The turn that wrote a reply at `at`: the latest turn that started before it and had not
/// finished (or finished at or after it).
fn turn_of(turns: &[TurnView], at: DateTime<Utc>) -> Option<&TurnView> {
    turns.iter().rev().find(|t| {
        parse(&t.started_at).is_some_and(|s| s <= at)
            && t.finished_at
                .as_deref()
                .and_then(parse)
                .is_none_or(|f| f >= at)
    })
}

fn message_item(m: &MessageView, turns: &[TurnView], now: DateTime<Utc>) -> Item {
    let at = parse(&m.created_at).unwrap_or(now);
    let inbound = m.direction == "inbound";
    let origin = if inbound {
        String::new()
    } else {
        let provider = m.provider.clone().unwrap_or_else(|| "—".into());
        match turn_of(turns, at) {
            Some(t) => {
                let latency = t
                    .finished_at
                    .as_deref()
                    .and_then(parse)
                    .zip(parse(&t.started_at))
                    .map(|(f, s)| format!(", {} ms", (f - s).num_milliseconds()))
                    .unwrap_or_default();
                format!("{provider} · turn {} on {}{latency}", t.id, t.worker)
            }
            None => provider,
        }
    };
    Item {
        id: format!("m{}", m.id),
        at: fmt(at),
        age: age(now, at),
        kind: if inbound { "in" } else { "out" },
        body: m.body.clone(),
        state: state_label(&m.direction, &m.state),
        class: match m.state.as_str() {
            "pending" | "failed" | "in_doubt" | "suppressed" => "warn",
            _ => "",
        },
        origin,
        hold: None,
    }
}

/// The conversation of `lead` as of now.
pub async fn gather(state: &AppState, lead: &LeadId, csrf: String) -> Conversation {
    let now = Utc::now();
    let mut view = Conversation {
        csrf,
        stamp: String::new(),
        now: now.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        phone: actors::log_phone::render(&state.settings.log_phone, lead.as_str()),
        api: format!("/ops/leads/{}", lead.as_str().replace('+', "%2B")),
        name: String::new(),
        client_id: String::new(),
        stage: String::new(),
        opted_out: false,
        owner: None,
        park: None,
        items: Vec::new(),
        slas: Vec::new(),
        consent: Vec::new(),
        error: None,
    };
    if let Err(e) = fill(state, lead, now, &mut view).await {
        view.error = Some(e.to_string());
    }
    view
}

async fn fill(
    state: &AppState,
    lead: &LeadId,
    now: DateTime<Utc>,
    view: &mut Conversation,
) -> Result<(), actors::ports::StoreError> {
    let store = &state.store;
    let identity = store.lead_identity(lead).await?;
    view.name = identity.name.unwrap_or_default();
    view.client_id = identity.client_id.unwrap_or_default();
    if let Some(row) = store.inbox_leads(std::slice::from_ref(lead)).await?.pop() {
        view.stage = if row.dead {
            "dead".into()
        } else {
            row.stage.unwrap_or_else(|| "—".into())
        };
    }
    view.opted_out = store
        .consent_status(lead)
        .await?
        .is_some_and(|c| c.opted_out);
    view.owner = store.takeover_of(lead).await?.map(|t| Owner {
        operator: t.operator,
        via: t.via,
        since: fmt(t.taken_at),
    });
    view.park = store
        .parked(now)
        .await?
        .into_iter()
        .find(|p| &p.lead == lead)
        .map(|p| format!("{} until {}", p.reason.label(), fmt(p.expires_at)));

    let turns = store.turns(lead).await?;
    let mut items: Vec<(DateTime<Utc>, Item)> = store
        .conversation(lead, MESSAGES)
        .await?
        .iter()
        .map(|m| {
            (
                parse(&m.created_at).unwrap_or(now),
                message_item(m, &turns, now),
            )
        })
        .collect();
    for h in store.holds_of(lead).await? {
        // An approved hold is its outbound message already; show the draft only while it
        // waits, or to say it was rejected.
        if h.state == "approved" {
            continue;
        }
        let held = h.state == "held";
        items.push((
            h.created_at,
            Item {
                id: format!("h{}", h.id),
                at: fmt(h.created_at),
                age: age(now, h.created_at),
                kind: "held",
                body: h.body,
                state: if held {
                    format!(
                        "held for a person{}",
                        if h.escalated { " (escalated)" } else { "" }
                    )
                } else {
                    h.state.clone()
                },
                class: if held { "warn" } else { "" },
                origin: String::new(),
                hold: held.then_some(h.id),
            },
        ));
    }
    items.sort_by_key(|(at, _)| *at);
    view.items = items.into_iter().map(|(_, i)| i).collect();

    view.slas = store
        .slas_of(std::slice::from_ref(lead))
        .await?
        .into_iter()
        .map(|s| {
            let v = SlaView::at(s, now);
            let open = v.state.resolved_at.is_none();
            SlaRow {
                kind: v.state.kind.as_str().to_string(),
                started: fmt(v.state.started_at),
                due: fmt(v.due_at),
                state: match v.state.resolved_at {
                    Some(r) => format!("resolved {}", fmt(r)),
                    None if v.overdue => {
                        format!("overdue by {}", span((now - v.due_at).num_seconds()))
                    }
                    None => format!("open, due in {}", span((v.due_at - now).num_seconds())),
                },
                overdue: v.overdue,
                open,
            }
        })
        .collect();
    view.consent = store
        .consent_events(lead)
        .await?
        .into_iter()
        .map(|c| ConsentRow {
            at: fmt(c.at),
            method: c.method.as_str().to_string(),
            grants: c.grants,
            words: c.words,
        })
        .collect();
    Ok(())
}
