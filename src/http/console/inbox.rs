//! The inbox at the top of `/ops`: the leads that need a person first (a held reply, an
//! overdue SLA, messages waiting, parked, taken over), then every other lead by its newest
//! message, fifty a page; or, with `?q=`, the leads whose number or name matches.
//!
//! Owns: turning the store's rows (`crate::store::inbox`) into the strings the template
//! shows — the phone as `LOG_PHONE` renders it, the last message cut to a line, its age,
//! who owns the conversation, the open SLAs — and the paging links (`?before=` a message
//! id for the recent list, `?q=…&after=` a phone for a search: keyset, never an offset).
//! Must not: write anything, or show a lead's full number where `LOG_PHONE` masks it (the
//! conversation's link carries it: the operator behind the ops session may act on it).

use std::collections::{HashMap, HashSet};

use actors::ports::LeadId;
use actors::sla::SlaView;
use chrono::{DateTime, Utc};

use crate::http::AppState;
use crate::store::{Attention, InboxLead};

/// Rows per page.
pub const PAGE: usize = 50;
/// The attention list shows at most this many leads (and says when there are more).
pub const ATTENTION_MAX: usize = 200;

pub struct Inbox {
    /// The search as typed (the template escapes it into the box).
    pub q: String,
    /// Leads needing a person (first page of the recent list only).
    pub attention: Vec<InboxRow>,
    pub attention_more: bool,
    pub rows: Vec<InboxRow>,
    /// The next page's link, when there is one.
    pub next: Option<String>,
    /// A later page: a link back to the first.
    pub paged: bool,
    /// `Err`: the store's answer, shown instead of the lists.
    pub error: Option<String>,
}

pub struct InboxRow {
    pub href: String,
    pub name: String,
    pub phone: String,
    pub stage: String,
    /// `in` or `out`.
    pub direction: &'static str,
    pub last: String,
    pub last_state: String,
    pub age: String,
    pub owner: String,
    pub slas: Vec<SlaCell>,
    pub reasons: Vec<&'static str>,
    pub synthetic: bool,
}

pub struct SlaCell {
    pub text: String,
    pub overdue: bool,
}

/// `5 s`, `12 min`, `3 h`, `4 d`: how long ago `at` was.
pub fn age(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    span((now - at).num_seconds())
}

/// `secs` (0 when negative) in the largest unit that keeps it whole.
pub fn span(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

/// The first line of `text`, at most `max` characters (an ellipsis when cut).
pub fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > max || text.trim().lines().count() > 1 {
        let cut: String = line.chars().take(max).collect();
        format!("{}…", cut.trim_end())
    } else {
        line.to_string()
    }
}

/// The href of a lead's conversation (`+` is `%2B`, so the path stays one segment and
/// unambiguous).
pub fn conversation_href(lead: &LeadId) -> String {
    format!("/ops/conversations/{}", lead.as_str().replace('+', "%2B"))
}

/// What the message's state means to an operator.
pub fn state_label(direction: &str, state: &str) -> String {
    match (direction, state) {
        ("inbound", "pending") => "received, not answered yet",
        ("inbound", "answered") => "answered",
        ("inbound", "no_reply") => "no reply needed",
        ("outbound", "queued") => "queued",
        ("outbound", "sending") => "sending",
        ("outbound", "sent") => "sent",
        ("outbound", "failed") => "failed",
        ("outbound", "suppressed") => "suppressed",
        ("outbound", "in_doubt") => "in doubt",
        (_, other) => other,
    }
    .to_string()
}

struct Context {
    now: DateTime<Utc>,
    owners: HashMap<String, String>,
    slas: HashMap<String, Vec<SlaCell>>,
    reasons: HashMap<String, Vec<Attention>>,
}

fn row(state: &AppState, cx: &Context, lead: &InboxLead) -> InboxRow {
    let phone = lead.lead.as_str();
    let (direction, last, last_state, age_text) = match &lead.last {
        Some(m) => (
            if m.direction == "inbound" {
                "in"
            } else {
                "out"
            },
            one_line(&m.body, 80),
            state_label(&m.direction, &m.state),
            age(cx.now, m.at),
        ),
        None => ("", String::new(), String::new(), String::new()),
    };
    InboxRow {
        href: conversation_href(&lead.lead),
        name: lead.name.clone().unwrap_or_default(),
        phone: actors::log_phone::render(&state.settings.log_phone, phone),
        stage: if lead.dead {
            "dead".into()
        } else {
            lead.stage.clone().unwrap_or_else(|| "—".into())
        },
        direction,
        last,
        last_state,
        age: age_text,
        owner: cx
            .owners
            .get(phone)
            .map_or_else(|| "AI".into(), |op| format!("operator {op}")),
        slas: cx
            .slas
            .get(phone)
            .map(|v| {
                v.iter()
                    .map(|c| SlaCell {
                        text: c.text.clone(),
                        overdue: c.overdue,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        reasons: cx
            .reasons
            .get(phone)
            .map(|r| r.iter().map(|a| a.label()).collect())
            .unwrap_or_default(),
        synthetic: lead.synthetic,
    }
}

/// The rows of `order`, in that order, with their owners and open SLAs.
async fn rows_of(
    state: &AppState,
    now: DateTime<Utc>,
    order: &[LeadId],
    reasons: &HashMap<String, Vec<Attention>>,
    owners: &HashMap<String, String>,
) -> Result<Vec<InboxRow>, String> {
    let store = &state.store;
    let leads = store.inbox_leads(order).await.map_err(|e| e.to_string())?;
    let mut slas: HashMap<String, Vec<SlaCell>> = HashMap::new();
    for s in store.slas_of(order).await.map_err(|e| e.to_string())? {
        if s.resolved_at.is_some() {
            continue;
        }
        let view = SlaView::at(s, now);
        // Past its deadline, or marked breached by the sweep (what the attention list reads).
        let overdue = view.overdue || view.state.breached_at.is_some();
        let text = if overdue {
            format!("{} overdue", view.state.kind.as_str())
        } else {
            format!(
                "{} due in {}",
                view.state.kind.as_str(),
                span((view.due_at - now).num_seconds())
            )
        };
        slas.entry(view.state.lead.as_str().to_string())
            .or_default()
            .push(SlaCell { text, overdue });
    }
    let cx = Context {
        now,
        owners: owners.clone(),
        slas,
        reasons: reasons.clone(),
    };
    let by_phone: HashMap<&str, &InboxLead> = leads.iter().map(|l| (l.lead.as_str(), l)).collect();
    Ok(order
        .iter()
        .filter_map(|l| by_phone.get(l.as_str()))
        .map(|l| row(state, &cx, l))
        .collect())
}

fn link(params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    format!("/ops?{}", query.join("&"))
}

/// The inbox for `query` (`q`, `before`, `after`) as of now.
pub async fn gather(state: &AppState, query: &HashMap<String, String>) -> Inbox {
    let now = Utc::now();
    let q = query
        .get("q")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mut inbox = Inbox {
        q: q.clone(),
        attention: Vec::new(),
        attention_more: false,
        rows: Vec::new(),
        next: None,
        paged: false,
        error: None,
    };
    if let Err(e) = fill(state, now, query, &q, &mut inbox).await {
        inbox.error = Some(e);
    }
    inbox
}

async fn fill(
    state: &AppState,
    now: DateTime<Utc>,
    query: &HashMap<String, String>,
    q: &str,
    inbox: &mut Inbox,
) -> Result<(), String> {
    let store = &state.store;
    let (attention, more) = store
        .inbox_attention(now, ATTENTION_MAX)
        .await
        .map_err(|e| e.to_string())?;
    let reasons: HashMap<String, Vec<Attention>> = attention
        .iter()
        .map(|(l, why)| (l.as_str().to_string(), why.clone()))
        .collect();
    let owners: HashMap<String, String> = store
        .takeovers()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|t| (t.lead.as_str().to_string(), t.operator))
        .collect();

    if !q.is_empty() {
        let after = query.get("after").map(String::as_str);
        inbox.paged = after.is_some();
        let mut found = store
            .inbox_search(q, after, PAGE + 1)
            .await
            .map_err(|e| e.to_string())?;
        if found.len() > PAGE {
            found.truncate(PAGE);
            let last = found
                .last()
                .map(|l| l.as_str().to_string())
                .unwrap_or_default();
            inbox.next = Some(link(&[("q", q), ("after", &last)]));
        }
        inbox.rows = rows_of(state, now, &found, &reasons, &owners).await?;
        return Ok(());
    }

    let before: Option<i64> = query.get("before").and_then(|b| b.parse().ok());
    inbox.paged = before.is_some();
    if before.is_none() {
        let leads: Vec<LeadId> = attention.iter().map(|(l, _)| l.clone()).collect();
        inbox.attention = rows_of(state, now, &leads, &reasons, &owners).await?;
        inbox.attention_more = more;
    }
    // The recent list leaves out the leads listed above: fetch as many more rows as it
    // could drop, so a page is full whenever the store has enough.
    let shown: HashSet<&str> = attention.iter().map(|(l, _)| l.as_str()).collect();
    let recent = store
        .inbox_recent(before, PAGE + 1 + shown.len())
        .await
        .map_err(|e| e.to_string())?;
    let mut page: Vec<(LeadId, i64)> = recent
        .into_iter()
        .filter(|(l, _)| !shown.contains(l.as_str()))
        .collect();
    if page.len() > PAGE {
        page.truncate(PAGE);
        if let Some((_, id)) = page.last() {
            inbox.next = Some(link(&[("before", &id.to_string())]));
        }
    }
    let leads: Vec<LeadId> = page.into_iter().map(|(l, _)| l).collect();
    inbox.rows = rows_of(state, now, &leads, &reasons, &owners).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ages_and_lines_read_as_an_operator_would() {
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 12, 0, 0).unwrap();
        assert_eq!(age(now, now - chrono::Duration::seconds(9)), "9 s");
        assert_eq!(age(now, now - chrono::Duration::minutes(12)), "12 min");
        assert_eq!(age(now, now - chrono::Duration::hours(3)), "3 h");
        assert_eq!(age(now, now - chrono::Duration::days(4)), "4 d");
        assert_eq!(age(now, now + chrono::Duration::seconds(5)), "0 s");
        assert_eq!(one_line("hello", 80), "hello");
        assert_eq!(one_line("first\nsecond", 80), "first…");
        assert_eq!(
            one_line(&"x".repeat(100), 10),
            format!("{}…", "x".repeat(10))
        );
        assert_eq!(
            conversation_href(&LeadId::new("+13125550123")),
            "/ops/conversations/%2B13125550123"
        );
    }
}
