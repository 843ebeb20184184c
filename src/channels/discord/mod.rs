//! Discord: how an alert looks in a channel (embeds within Discord's documented limits, the
//! HITL buttons) and the paths that get it there: the spooling sink and the sender
//! ([`sender`]), the direct queue for when the store is down ([`direct`]), the channel lease
//! that keeps one poster per channel across processes ([`lease`]) and the rate-limited REST
//! client they share ([`rest`]).
//!
//! Owns: the message body we post (`POST /channels/{id}/messages`) and the limits it must
//! respect (REFERENCE.md: content 2,000; ≤ 10 embeds; title 256, description 4,096, ≤ 25
//! fields of name 256 / value 1,024, footer 2,048, all embeds together 6,000), the
//! `custom_id`s of the HITL, doc review and takeover buttons and their parsing.
//! Must not: decide which alerts exist or how long their text is (the alert router cuts
//! text to 1,950 characters first); this module only makes sure whatever it builds is a
//! body Discord accepts, because a rejected alert is a lost alert.

pub mod direct;
pub mod lease;
pub mod rest;
pub mod sender;

use actors::alert_router::{Alert, Severity, TakeoverButtons, truncate_alert_text};
use serde_json::{Value, json};

pub const MAX_CONTENT: usize = 2000;
pub const MAX_EMBED_TITLE: usize = 256;
pub const MAX_EMBED_DESCRIPTION: usize = 4096;
pub const MAX_EMBED_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_FOOTER: usize = 2048;
pub const MAX_EMBEDS_TOTAL: usize = 6000;

/// Discord's `custom_id` prefix for our HITL buttons and modal.
const HITL_PREFIX: &str = "hitl";
/// The prefix of the doc review buttons.
const DOCS_PREFIX: &str = "docs";
/// The prefix of the takeover buttons and the operator's reply modal.
const TAKEOVER_PREFIX: &str = "takeover";

/// Colours by severity (decimal RGB as Discord wants it).
pub fn severity_colour(severity: Severity) -> u32 {
    match severity {
        Severity::Info => 0x3498DB,
        Severity::Warning => 0xE67E22,
        Severity::Critical => 0xE74C3C,
    }
}

/// Cuts to `max` characters (not bytes: Discord counts characters), on a char boundary.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// The message body for one alert: one embed (title `KIND · event`, the text as its
/// description, the severity as its colour, the lead — phone, name, client id — and a
/// reason as fields, the time as its timestamp) and, for a held reply, the approve / edit / reject buttons.
pub fn alert_message(alert: &Alert) -> Value {
    let mut fields = Vec::new();
    if let Some(lead) = &alert.lead {
        fields.push(json!({"name": "Lead (phone)", "value": lead.as_str(), "inline": true}));
    }
    // The typed event's other context, each where known (the seed's `client_id`, name, and
    // a dead lead's reason).
    for (label, value) in [
        ("Name", &alert.name),
        ("Client", &alert.client_id),
        ("Reason", &alert.reason),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            fields.push(json!({"name": label, "value": v, "inline": true}));
        }
    }
    if let Some(hold) = alert.reply_hold {
        fields.push(json!({"name": "Reply", "value": format!("#{hold}"), "inline": true}));
    }
    let mut embed = json!({
        "title": format!("{} · {}", alert.kind.key(), alert.event),
        // The router already cut the text; cut again so that a caller bypassing it still
        // yields a body Discord accepts.
        "description": truncate_alert_text(&alert.text),
        "color": severity_colour(alert.severity),
        "fields": fields,
        "footer": {"text": format!("lead-agent · {:?}", alert.severity).to_lowercase()},
    });
    if alert.raised_at.timestamp() > 0 {
        embed["timestamp"] = json!(alert.raised_at.to_rfc3339());
    }
    let mut message = json!({
        "embeds": [embed],
        // Alert text is operator-facing data, never a ping: no @everyone from a lead's SMS.
        "allowed_mentions": {"parse": []},
    });
    let mut rows: Vec<Value> = Vec::new();
    if let Some(hold) = alert.reply_hold {
        rows.extend(hitl_buttons(hold).as_array().cloned().unwrap_or_default());
    } else if alert.doc_review
        && let Some(lead) = &alert.lead
    {
        rows.extend(
            doc_review_buttons(lead.as_str())
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    // The takeover row comes last: on a held reply, the decision buttons stay first.
    if let (Some(buttons), Some(lead)) = (alert.takeover, &alert.lead) {
        rows.push(takeover_row(buttons, lead.as_str()));
    }
    if !rows.is_empty() {
        message["components"] = Value::Array(rows);
    }
    enforce_limits(&mut message);
    message
}

/// One action row: approve (green), edit (grey), reject (red), each `custom_id` carrying
/// the hold's id.
pub fn hitl_buttons(hold_id: i64) -> Value {
    json!([{
        "type": 1,
        "components": [
            {"type": 2, "style": 3, "label": "Approve", "custom_id": HitlAction::Approve.custom_id(hold_id)},
            {"type": 2, "style": 2, "label": "Edit", "custom_id": HitlAction::Edit.custom_id(hold_id)},
            {"type": 2, "style": 4, "label": "Reject", "custom_id": HitlAction::Reject.custom_id(hold_id)},
        ]
    }])
}

/// One action row on a documents-arrived alert: complete (green), incomplete (red), each
/// `custom_id` carrying the lead's phone (E.164: at most 16 characters, far within
/// Discord's 100).
pub fn doc_review_buttons(lead: &str) -> Value {
    json!([{
        "type": 1,
        "components": [
            {"type": 2, "style": 3, "label": "Documents complete", "custom_id": DocReviewAction { complete: true }.custom_id(lead)},
            {"type": 2, "style": 4, "label": "Incomplete", "custom_id": DocReviewAction { complete: false }.custom_id(lead)},
        ]
    }])
}

/// A doc review button: the documents are complete (the application decision opens) or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocReviewAction {
    pub complete: bool,
}

impl DocReviewAction {
    pub fn custom_id(self, lead: &str) -> String {
        let verdict = if self.complete {
            "complete"
        } else {
            "incomplete"
        };
        format!("{DOCS_PREFIX}:{verdict}:{lead}")
    }

    /// Parses a doc review `custom_id` of ours into the verdict and the lead's phone as
    /// written (the caller validates it as a lead); `None` for anything else.
    pub fn parse(custom_id: &str) -> Option<(DocReviewAction, String)> {
        let mut parts = custom_id.split(':');
        if parts.next()? != DOCS_PREFIX {
            return None;
        }
        let complete = match parts.next()? {
            "complete" => true,
            "incomplete" => false,
            _ => return None,
        };
        let lead = parts.next()?.to_string();
        (parts.next().is_none() && !lead.is_empty()).then_some((DocReviewAction { complete }, lead))
    }
}

/// One action row of takeover buttons: "Take over" (blue), or "Reply" (blue, opens the
/// reply box) and "Release" (grey); each `custom_id` carries the lead's phone.
pub fn takeover_row(buttons: TakeoverButtons, lead: &str) -> Value {
    let button = |style: u8, label: &str, action: TakeoverAction| json!({"type": 2, "style": style, "label": label, "custom_id": action.custom_id(lead)});
    let components = match buttons {
        TakeoverButtons::Offer => vec![button(1, "Take over", TakeoverAction::Take)],
        TakeoverButtons::Taken => vec![
            button(1, "Reply", TakeoverAction::Reply),
            button(2, "Release", TakeoverAction::Release),
        ],
    };
    json!({"type": 1, "components": components})
}

/// What a takeover button or the reply modal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TakeoverAction {
    /// Take the lead over (the same as `POST /ops/leads/{phone}/takeover`).
    Take,
    /// Open the reply box (a modal).
    Reply,
    /// The reply box was submitted: send its text as the operator's SMS.
    ReplySubmit,
    /// Hand the lead back to the AI.
    Release,
}

impl TakeoverAction {
    fn name(self) -> &'static str {
        match self {
            TakeoverAction::Take => "take",
            TakeoverAction::Reply => "reply",
            TakeoverAction::ReplySubmit => "reply_submit",
            TakeoverAction::Release => "release",
        }
    }

    /// `takeover:<action>:<phone>`: an E.164 phone is at most 16 characters, far within
    /// Discord's 100.
    pub fn custom_id(self, lead: &str) -> String {
        format!("{TAKEOVER_PREFIX}:{}:{lead}", self.name())
    }

    /// Parses a takeover `custom_id` of ours into the action and the lead's phone as written
    /// (the caller validates it as a lead); `None` for anything else.
    pub fn parse(custom_id: &str) -> Option<(TakeoverAction, String)> {
        let mut parts = custom_id.split(':');
        if parts.next()? != TAKEOVER_PREFIX {
            return None;
        }
        let name = parts.next()?;
        let action = [
            TakeoverAction::Take,
            TakeoverAction::Reply,
            TakeoverAction::ReplySubmit,
            TakeoverAction::Release,
        ]
        .into_iter()
        .find(|a| a.name() == name)?;
        let lead = parts.next()?.to_string();
        (parts.next().is_none() && !lead.is_empty()).then_some((action, lead))
    }
}

/// What a HITL button or modal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HitlAction {
    Approve,
    /// Open the edit modal.
    Edit,
    /// The edit modal was submitted.
    EditSubmit,
    Reject,
}

impl HitlAction {
    fn name(self) -> &'static str {
        match self {
            HitlAction::Approve => "approve",
            HitlAction::Edit => "edit",
            HitlAction::EditSubmit => "edit_submit",
            HitlAction::Reject => "reject",
        }
    }

    pub fn custom_id(self, hold_id: i64) -> String {
        format!("{HITL_PREFIX}:{}:{hold_id}", self.name())
    }

    /// Parses a `custom_id` of ours; `None` for anything else.
    pub fn parse(custom_id: &str) -> Option<(HitlAction, i64)> {
        let mut parts = custom_id.split(':');
        if parts.next()? != HITL_PREFIX {
            return None;
        }
        let action = match parts.next()? {
            "approve" => HitlAction::Approve,
            "edit" => HitlAction::Edit,
            "edit_submit" => HitlAction::EditSubmit,
            "reject" => HitlAction::Reject,
            _ => return None,
        };
        let id = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some((action, id))
    }
}

fn chars_of(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn cut_in_place(v: &mut Value, max: usize) {
    if let Some(s) = v.as_str()
        && s.chars().count() > max
    {
        *v = Value::String(cut(s, max));
    }
}

/// Makes any message body fit Discord's documented limits: content, at most 10 embeds,
/// each part of an embed, and the 6,000-character total of all embeds (descriptions are
/// shortened last-embed-first until it fits).
pub fn enforce_limits(message: &mut Value) {
    if let Some(content) = message.get_mut("content") {
        cut_in_place(content, MAX_CONTENT);
    }
    let Some(embeds) = message.get_mut("embeds").and_then(Value::as_array_mut) else {
        return;
    };
    embeds.truncate(10);
    for embed in embeds.iter_mut() {
        if let Some(t) = embed.get_mut("title") {
            cut_in_place(t, MAX_EMBED_TITLE);
        }
        if let Some(d) = embed.get_mut("description") {
            cut_in_place(d, MAX_EMBED_DESCRIPTION);
        }
        if let Some(f) = embed.pointer_mut("/footer/text") {
            cut_in_place(f, MAX_FOOTER);
        }
        if let Some(fields) = embed.get_mut("fields").and_then(Value::as_array_mut) {
            fields.truncate(MAX_EMBED_FIELDS);
            for field in fields.iter_mut() {
                if let Some(n) = field.get_mut("name") {
                    cut_in_place(n, MAX_FIELD_NAME);
                }
                if let Some(v) = field.get_mut("value") {
                    cut_in_place(v, MAX_FIELD_VALUE);
                }
            }
        }
    }
    // Over the 6,000 total: give up text in order of least value — descriptions of the last
    // embeds first, then their fields, then footers, then whole embeds after the first.
    while embeds_total_chars(embeds) > MAX_EMBEDS_TOTAL {
        let excess = embeds_total_chars(embeds) - MAX_EMBEDS_TOTAL;
        if let Some(e) = embeds
            .iter_mut()
            .rev()
            .find(|e| chars_of(&e["description"]) > 1)
        {
            let keep = chars_of(&e["description"]).saturating_sub(excess).max(1);
            let text = cut(e["description"].as_str().unwrap_or(""), keep);
            e["description"] = Value::String(text);
        } else if let Some(fields) = embeds
            .iter_mut()
            .rev()
            .filter_map(|e| e.get_mut("fields").and_then(Value::as_array_mut))
            .find(|f| !f.is_empty())
        {
            fields.pop();
        } else if let Some(e) = embeds
            .iter_mut()
            .rev()
            .find(|e| chars_of(&e["footer"]["text"]) > 1)
        {
            let keep = chars_of(&e["footer"]["text"]).saturating_sub(excess).max(1);
            let text = cut(e["footer"]["text"].as_str().unwrap_or(""), keep);
            e["footer"]["text"] = Value::String(text);
        } else if embeds.len() > 1 {
            embeds.pop();
        } else {
            // One embed with a title and one-character texts is far below 6,000.
            break;
        }
    }
}

/// What Discord counts towards the 6,000: title, description, field names and values,
/// footer text and author name.
pub fn embeds_total_chars(embeds: &[Value]) -> usize {
    embeds
        .iter()
        .map(|e| {
            chars_of(&e["title"])
                + chars_of(&e["description"])
                + chars_of(&e["footer"]["text"])
                + chars_of(&e["author"]["name"])
                + e["fields"].as_array().map_or(0, |fs| {
                    fs.iter()
                        .map(|f| chars_of(&f["name"]) + chars_of(&f["value"]))
                        .sum()
                })
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use actors::alert_router::{AlertKind, MAX_ALERT_CHARS, TRUNCATION_SUFFIX};
    use actors::ports::LeadId;

    use super::*;

    fn assert_within_limits(m: &Value) {
        assert!(chars_of(&m["content"]) <= MAX_CONTENT);
        let embeds = m["embeds"].as_array().cloned().unwrap_or_default();
        assert!(embeds.len() <= 10);
        for e in &embeds {
            assert!(chars_of(&e["title"]) <= MAX_EMBED_TITLE);
            assert!(chars_of(&e["description"]) <= MAX_EMBED_DESCRIPTION);
            assert!(chars_of(&e["footer"]["text"]) <= MAX_FOOTER);
            let fields = e["fields"].as_array().cloned().unwrap_or_default();
            assert!(fields.len() <= MAX_EMBED_FIELDS);
            for f in fields {
                assert!(chars_of(&f["name"]) <= MAX_FIELD_NAME);
                assert!(chars_of(&f["value"]) <= MAX_FIELD_VALUE);
            }
        }
        assert!(embeds_total_chars(&embeds) <= MAX_EMBEDS_TOTAL);
    }

    #[test]
    fn an_alert_becomes_one_embed_coloured_by_severity_with_the_lead() {
        let alert = Alert::error("sms_rejected", "Reply not delivered")
            .for_lead(&LeadId::new("+13125550100"));
        let m = alert_message(&alert);
        let e = &m["embeds"][0];
        assert_eq!(e["title"], "ERROR · sms_rejected");
        assert_eq!(e["description"], "Reply not delivered");
        assert_eq!(e["color"], 0xE74C3C);
        assert_eq!(e["fields"][0]["value"], "+13125550100");
        assert!(m.get("components").is_none());
        assert_eq!(m["allowed_mentions"]["parse"], json!([]));
        assert_within_limits(&m);
    }

    #[test]
    fn a_typed_event_shows_the_leads_name_client_id_and_reason_after_the_phone() {
        let alert = Alert::new(AlertKind::DeadLead, Severity::Info, "dead_lead", "closed")
            .for_lead(&LeadId::new("+13125550100"))
            .with_identity(Some("42".into()), Some("Dana Reyes".into()))
            .with_reason("found a place");
        let m = alert_message(&alert);
        let fields: Vec<(String, String)> = m["embeds"][0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_string(),
                    f["value"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let expect = [
            ("Lead (phone)", "+13125550100"),
            ("Name", "Dana Reyes"),
            ("Client", "42"),
            ("Reason", "found a place"),
        ];
        assert_eq!(
            fields,
            expect.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
        let bare = alert_message(&Alert::event("x", "y").for_lead(&LeadId::new("+13125550100")));
        assert_eq!(bare["embeds"][0]["fields"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_long_alert_is_cut_to_the_routers_limit_with_its_suffix() {
        let alert = Alert::event("x", "y".repeat(5000));
        let m = alert_message(&alert);
        let d = m["embeds"][0]["description"].as_str().unwrap();
        assert_eq!(d.chars().count(), MAX_ALERT_CHARS);
        assert!(d.ends_with(TRUNCATION_SUFFIX));
        assert_within_limits(&m);
    }

    #[test]
    fn any_body_is_brought_within_every_documented_limit() {
        let big = |n: usize| "é".repeat(n);
        let field = json!({"name": big(400), "value": big(3000)});
        let embed = json!({
            "title": big(1000),
            "description": big(9000),
            "footer": {"text": big(5000)},
            "fields": vec![field; 40],
        });
        let mut m = json!({"content": big(2500), "embeds": vec![embed; 12]});
        enforce_limits(&mut m);
        assert_within_limits(&m);
        assert!(!m["embeds"].as_array().unwrap().is_empty());
    }

    #[test]
    fn a_held_reply_carries_three_buttons_whose_ids_name_the_hold() {
        let mut alert = Alert::new(
            AlertKind::HitlFeedback,
            Severity::Warning,
            "reply_held",
            "t",
        );
        alert.reply_hold = Some(42);
        let m = alert_message(&alert);
        let buttons = m["components"][0]["components"].as_array().unwrap();
        let ids: Vec<_> = buttons
            .iter()
            .map(|b| HitlAction::parse(b["custom_id"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(
            ids,
            vec![
                (HitlAction::Approve, 42),
                (HitlAction::Edit, 42),
                (HitlAction::Reject, 42)
            ]
        );
        for b in buttons {
            assert!(b["custom_id"].as_str().unwrap().len() <= 100);
        }
    }

    #[test]
    fn doc_review_buttons_name_the_lead_and_parse_back_and_others_do_not() {
        let alert = {
            let mut a = Alert::new(
                AlertKind::RequirementsNote,
                Severity::Info,
                "documents_arrived",
                "pay stubs",
            )
            .for_lead(&LeadId::new("+13125550100"));
            a.doc_review = true;
            a
        };
        let m = alert_message(&alert);
        let ids: Vec<&str> = m["components"][0]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["custom_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["docs:complete:+13125550100", "docs:incomplete:+13125550100"]
        );
        assert_eq!(
            DocReviewAction::parse(ids[1]),
            Some((DocReviewAction { complete: false }, "+13125550100".into()))
        );
        for id in [
            "docs:complete:",
            "docs:maybe:+1312",
            "docs:complete:+1:x",
            "hitl:approve:7",
        ] {
            assert_eq!(DocReviewAction::parse(id), None, "{id}");
        }
        let no_lead = Alert {
            lead: None,
            ..alert.clone()
        };
        assert!(alert_message(&no_lead).get("components").is_none());
    }

    #[test]
    fn takeover_buttons_name_the_lead_follow_the_hold_buttons_and_parse_back() {
        let lead = LeadId::new("+13125550100");
        let held = actors::hitl::held_reply_alert(&lead, 7, &["hi"], "draft");
        let m = alert_message(&held);
        let rows = m["components"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{m}");
        assert_eq!(rows[0]["components"][0]["custom_id"], "hitl:approve:7");
        assert_eq!(
            rows[1]["components"][0]["custom_id"],
            "takeover:take:+13125550100"
        );
        let forwarded = actors::takeover::forwarded_alert(&lead, "ana", &["hi"]);
        let ids: Vec<String> = alert_message(&forwarded)["components"][0]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["custom_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "takeover:reply:+13125550100",
                "takeover:release:+13125550100"
            ]
        );
        for (id, want) in [
            (
                "takeover:take:+1312",
                Some((TakeoverAction::Take, "+1312".into())),
            ),
            (
                "takeover:reply_submit:+1312",
                Some((TakeoverAction::ReplySubmit, "+1312".into())),
            ),
            ("takeover:take:", None),
            ("takeover:grab:+1312", None),
            ("takeover:take:+1:x", None),
            ("docs:complete:+1312", None),
        ] {
            assert_eq!(TakeoverAction::parse(id), want, "{id}");
        }
        let no_lead = Alert {
            lead: None,
            ..forwarded
        };
        assert!(alert_message(&no_lead).get("components").is_none());
    }

    #[test]
    fn foreign_or_malformed_custom_ids_are_not_ours() {
        for id in [
            "",
            "hitl",
            "hitl:approve",
            "hitl:approve:x",
            "hitl:nuke:1",
            "other:approve:1",
            "hitl:approve:1:2",
        ] {
            assert_eq!(HitlAction::parse(id), None, "{id}");
        }
        assert_eq!(
            HitlAction::parse("hitl:edit_submit:7"),
            Some((HitlAction::EditSubmit, 7))
        );
    }
}
