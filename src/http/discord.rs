//! `POST /discord/interactions`: Discord's callbacks for the HITL buttons, the edit modal,
//! the doc review buttons and the takeover buttons and reply modal; `GET /ops/discord`:
//! this process's alert sender.
//!
//! Owns: the Ed25519 check of every interaction (`X-Signature-Ed25519` over
//! `X-Signature-Timestamp` + the raw body, with `DISCORD_PUBLIC_KEY`) — a missing or bad
//! signature is answered 401 before the body is even parsed, so it can store or send
//! nothing — PING, and the mapping of buttons and modal submits onto [`crate::hitl`], the doc
//! review (`super::documents::review`) and the takeover ([`crate::takeover`]: take, reply
//! box → the operator's SMS through the outbox, release).
//! Must not: wait for an SMS to go out: Discord wants an answer within 3 s, so a decision
//! is recorded (a fast store write) and the send happens in the background.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::channels::discord::sender::SenderStatus;
use crate::channels::discord::{DocReviewAction, HitlAction, TakeoverAction};
use crate::hitl::{Decision, decide};
use crate::store::HoldDecision;

/// Interactions signed longer ago than this are refused: a captured request cannot be
/// replayed later.
const MAX_SIGNATURE_AGE_SECS: i64 = 300;

/// Interaction types (Discord's numbering).
const PING: u64 = 1;
const MESSAGE_COMPONENT: u64 = 3;
const MODAL_SUBMIT: u64 = 5;
/// Response types.
const PONG: u64 = 1;
const CHANNEL_MESSAGE: u64 = 4;
const UPDATE_MESSAGE: u64 = 7;
const MODAL: u64 = 9;
const EPHEMERAL: u64 = 1 << 6;
/// The text input's `custom_id` in the edit modal.
const EDIT_FIELD: &str = "reply";

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// True when `signature_hex` is `key`'s Ed25519 signature of `timestamp` + `body`.
pub fn verify_signature(key: &[u8; 32], signature_hex: &str, timestamp: &str, body: &[u8]) -> bool {
    let (Ok(key), Some(sig)) = (
        VerifyingKey::from_bytes(key),
        decode_hex::<64>(signature_hex),
    ) else {
        return false;
    };
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.extend_from_slice(body);
    key.verify_strict(&message, &Signature::from_bytes(&sig))
        .is_ok()
}

fn check_signature(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let Some(key) = state.settings.discord.public_key else {
        return Err(ApiError::Unauthorized(
            "DISCORD_PUBLIC_KEY is not configured: interactions cannot be verified".into(),
        ));
    };
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(signature), Some(timestamp)) =
        (get("x-signature-ed25519"), get("x-signature-timestamp"))
    else {
        return Err(ApiError::Unauthorized(
            "missing interaction signature".into(),
        ));
    };
    if !verify_signature(&key, signature, timestamp, body) {
        return Err(ApiError::Unauthorized(
            "invalid interaction signature".into(),
        ));
    }
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= MAX_SIGNATURE_AGE_SECS);
    if !fresh {
        return Err(ApiError::Unauthorized(
            "interaction signature is stale".into(),
        ));
    }
    Ok(())
}

fn ephemeral(text: String) -> Response {
    Json(json!({"type": CHANNEL_MESSAGE, "data": {"content": text, "flags": EPHEMERAL, "allowed_mentions": {"parse": []}}}))
        .into_response()
}

/// Replaces the held-reply message's text and removes its buttons.
fn settled(text: String) -> Response {
    Json(json!({"type": UPDATE_MESSAGE, "data": {"content": text, "components": [], "allowed_mentions": {"parse": []}}}))
        .into_response()
}

fn who(interaction: &Value) -> String {
    interaction["member"]["user"]["username"]
        .as_str()
        .or(interaction["user"]["username"].as_str())
        .unwrap_or("someone")
        .chars()
        .take(64)
        .collect()
}

/// The edited text of a modal submit: the value of our text input, wherever it sits.
fn modal_text(interaction: &Value) -> Option<String> {
    let rows = interaction["data"]["components"].as_array()?;
    rows.iter()
        .flat_map(|row| {
            row["components"]
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![row["component"].clone()])
        })
        .find(|c| c["custom_id"] == EDIT_FIELD)
        .and_then(|c| c["value"].as_str().map(str::to_string))
}

/// What an interaction asks, once its body is read: the whole of the body's parsing, a
/// pure function (fuzzed: `fuzz/fuzz_targets/discord_interaction.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    Ping,
    /// A button on a held reply (approve, edit, reject), pressed by `by`.
    Button {
        action: HitlAction,
        hold_id: i64,
        by: String,
    },
    /// The edit modal submitted with `text` (`None`: our text input is not in it).
    EditSubmit {
        hold_id: i64,
        text: Option<String>,
        by: String,
    },
    /// A doc review button: the lead's documents are `complete` or not. `lead` as the
    /// `custom_id` wrote it (validated as a phone by the handler).
    DocReview {
        complete: bool,
        lead: String,
        by: String,
    },
    /// A takeover button (take, reply, release) on a lead's alert. `lead` as written.
    Takeover {
        action: TakeoverAction,
        lead: String,
        by: String,
    },
    /// The takeover reply box submitted with `text` (`None`: our text input is not in it).
    TakeoverReply {
        lead: String,
        text: Option<String>,
        by: String,
    },
}

/// Reads a (verified) interaction body; the error is the 400's reason.
pub fn parse_interaction(body: &[u8]) -> Result<Interaction, String> {
    let interaction: Value =
        serde_json::from_slice(body).map_err(|e| format!("interaction is not JSON: {e}"))?;
    let kind = interaction["type"].as_u64().unwrap_or(0);
    if kind == PING {
        return Ok(Interaction::Ping);
    }
    if kind != MESSAGE_COMPONENT && kind != MODAL_SUBMIT {
        return Err(format!("unsupported interaction type {kind}"));
    }
    let custom_id = interaction["data"]["custom_id"].as_str().unwrap_or("");
    if let Some((review, lead)) = DocReviewAction::parse(custom_id) {
        if kind != MESSAGE_COMPONENT {
            return Err(format!(
                "custom_id {custom_id:?} does not fit interaction type {kind}"
            ));
        }
        return Ok(Interaction::DocReview {
            complete: review.complete,
            lead,
            by: who(&interaction),
        });
    }
    if let Some((action, lead)) = TakeoverAction::parse(custom_id) {
        let by = who(&interaction);
        return match (kind, action) {
            (MODAL_SUBMIT, TakeoverAction::ReplySubmit) => Ok(Interaction::TakeoverReply {
                lead,
                text: modal_text(&interaction),
                by,
            }),
            (
                MESSAGE_COMPONENT,
                TakeoverAction::Take | TakeoverAction::Reply | TakeoverAction::Release,
            ) => Ok(Interaction::Takeover { action, lead, by }),
            _ => Err(format!(
                "custom_id {custom_id:?} does not fit interaction type {kind}"
            )),
        };
    }
    let Some((action, hold_id)) = HitlAction::parse(custom_id) else {
        return Err(format!("unknown custom_id {custom_id:?}"));
    };
    let by = who(&interaction);
    match (kind, action) {
        (MESSAGE_COMPONENT, HitlAction::Approve | HitlAction::Reject | HitlAction::Edit) => {
            Ok(Interaction::Button {
                action,
                hold_id,
                by,
            })
        }
        (MODAL_SUBMIT, HitlAction::EditSubmit) => Ok(Interaction::EditSubmit {
            hold_id,
            text: modal_text(&interaction),
            by,
        }),
        _ => Err(format!(
            "custom_id {custom_id:?} does not fit interaction type {kind}"
        )),
    }
}

pub async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_signature(&state, &headers, &body)?;
    let (action, hold_id, by, text) =
        match parse_interaction(&body).map_err(ApiError::BadRequest)? {
            Interaction::Ping => return Ok(Json(json!({"type": PONG})).into_response()),
            Interaction::Button {
                action,
                hold_id,
                by,
            } => (action, hold_id, by, None),
            Interaction::EditSubmit { hold_id, text, by } => (
                HitlAction::EditSubmit,
                hold_id,
                by,
                Some(text.unwrap_or_default()),
            ),
            Interaction::DocReview { complete, lead, by } => {
                return doc_review(&state, &lead, complete, &by).await;
            }
            Interaction::Takeover { action, lead, by } => {
                return takeover_button(&state, &lead, action, &by).await;
            }
            Interaction::TakeoverReply { lead, text, by } => {
                return takeover_reply(&state, &lead, text.as_deref().unwrap_or(""), &by).await;
            }
        };
    let unavailable = |e: actors::ports::StoreError| ApiError::Unavailable(e.to_string());
    let decision = match action {
        HitlAction::Approve => Decision::Approve,
        HitlAction::Reject => Decision::Reject,
        HitlAction::Edit => {
            let hold = state.store.hold(hold_id).await.map_err(unavailable)?;
            return Ok(match hold {
                Some(h) if h.state == "held" => Json(json!({
                    "type": MODAL,
                    "data": {
                        "custom_id": HitlAction::EditSubmit.custom_id(hold_id),
                        "title": format!("Edit reply #{hold_id}").chars().take(45).collect::<String>(),
                        "components": [{"type": 1, "components": [{
                            "type": 4, "custom_id": EDIT_FIELD, "label": "Reply to the lead",
                            "style": 2, "min_length": 1,
                            "max_length": actors::lead::MAX_SMS_CHARS,
                            "required": true, "value": h.body,
                        }]}],
                    }
                }))
                .into_response(),
                Some(h) => ephemeral(format!("Reply #{hold_id} was already {}; nothing changed.", h.state)),
                None => ephemeral(format!("Reply #{hold_id} does not exist.")),
            });
        }
        HitlAction::EditSubmit => {
            let text = text.unwrap_or_default();
            if text.trim().is_empty() {
                return Ok(ephemeral(
                    "The edited reply is empty; nothing was sent.".into(),
                ));
            }
            Decision::Edit(text)
        }
    };
    let outcome = decide(
        &state.store,
        &state.alerts,
        state.queue.clone(),
        hold_id,
        decision.clone(),
        &by,
    )
    .await
    .map_err(unavailable)?;
    Ok(match outcome {
        HoldDecision::Approved { lead, .. } => {
            let verb = match decision {
                Decision::Edit(_) => "edited and approved",
                _ => "approved",
            };
            settled(format!(
                "✅ Reply #{hold_id} to {lead} {verb} by {by}: sending."
            ))
        }
        HoldDecision::Rejected { lead, .. } => settled(format!(
            "❌ Reply #{hold_id} to {lead} rejected by {by}: not sent."
        )),
        HoldDecision::AlreadyDecided { state } => ephemeral(format!(
            "Reply #{hold_id} was already {state}; nothing changed."
        )),
        HoldDecision::NotFound => ephemeral(format!("Reply #{hold_id} does not exist.")),
    })
}

/// A doc review button pressed: the same review as `POST /ops/leads/{phone}/documents/review`.
async fn doc_review(
    state: &AppState,
    phone: &str,
    complete: bool,
    by: &str,
) -> Result<Response, ApiError> {
    let lead = super::sla::lead_from(phone)?;
    let who = format!("{by} (Discord)");
    Ok(
        match super::documents::review(state, &lead, chrono::Utc::now(), complete, &who).await? {
            None => ephemeral(format!("{lead} has no doc review; nothing changed.")),
            Some((_, Some(_))) => settled(format!(
                "✅ Documents of {lead} reviewed as complete by {by}: the application decision is open."
            )),
            Some((_, None)) => settled(format!(
                "📝 Documents of {lead} reviewed as incomplete by {by}: the doc review is resolved."
            )),
        },
    )
}

/// A message in the channel for everyone (not ephemeral): who took, answered or released a
/// lead is the team's business.
fn announce(text: String) -> Response {
    Json(json!({"type": CHANNEL_MESSAGE, "data": {"content": text, "allowed_mentions": {"parse": []}}}))
        .into_response()
}

/// A takeover button pressed: take (as `POST /ops/leads/{phone}/takeover`), open the reply
/// box (only while the lead is taken over), or release.
async fn takeover_button(
    state: &AppState,
    phone: &str,
    action: TakeoverAction,
    by: &str,
) -> Result<Response, ApiError> {
    use crate::store::TakeOutcome;
    use crate::takeover::TakeoverError;
    let lead = super::sla::lead_from(phone)?;
    let unavailable = |e: actors::ports::StoreError| ApiError::Unavailable(e.to_string());
    let refused = |e: TakeoverError| match e {
        TakeoverError::Store(e) => Err(unavailable(e)),
        other => Ok(ephemeral(format!("{other}; nothing changed."))),
    };
    match action {
        TakeoverAction::Take => {
            let taken = crate::takeover::take(
                &state.store,
                &state.alerts,
                &lead,
                by,
                "discord",
                state.settings.takeover_idle,
            )
            .await;
            Ok(match taken {
                Ok(TakeOutcome::Taken(_)) => announce(format!(
                    "🙋 {by} took over {lead}: the AI stops replying and following up. Its messages come to the HITL channel with a Reply button."
                )),
                Ok(TakeOutcome::AlreadyTaken(t)) => ephemeral(format!(
                    "{lead} is already taken over by {} (since {}); nothing changed.",
                    t.operator,
                    t.taken_at.format("%H:%M UTC")
                )),
                Ok(TakeOutcome::UnknownLead) => {
                    ephemeral(format!("{lead} has never texted us; nothing changed."))
                }
                Err(e) => return refused(e),
            })
        }
        TakeoverAction::Reply => {
            let taken = state.store.takeover_of(&lead).await.map_err(unavailable)?;
            Ok(match taken {
                Some(t) => Json(json!({
                    "type": MODAL,
                    "data": {
                        "custom_id": TakeoverAction::ReplySubmit.custom_id(lead.as_str()),
                        "title": format!("Reply to {lead}").chars().take(45).collect::<String>(),
                        "components": [{"type": 1, "components": [{
                            "type": 4, "custom_id": EDIT_FIELD,
                            "label": format!("SMS from you (taken by {})", t.operator).chars().take(45).collect::<String>(),
                            "style": 2, "min_length": 1,
                            "max_length": actors::lead::MAX_SMS_CHARS,
                            "required": true,
                        }]}],
                    }
                }))
                .into_response(),
                None => ephemeral(format!(
                    "{lead} is not taken over: press Take over first (the AI answers it meanwhile)."
                )),
            })
        }
        TakeoverAction::Release => {
            match crate::takeover::release(&state.store, &state.alerts, &lead, by).await {
                Ok(_) => Ok(announce(format!(
                    "🔓 {by} released {lead}: the AI answers its next message (not those that came during the takeover)."
                ))),
                Err(e) => refused(e),
            }
        }
        // A button never carries the submit's id (parse_interaction refuses it).
        TakeoverAction::ReplySubmit => Err(ApiError::BadRequest(
            "a reply submit is not a button".into(),
        )),
    }
}

/// The takeover reply box submitted: the text goes to the lead as the operator's SMS
/// through the outbox (queued now, sent by the lead's actor in the background).
async fn takeover_reply(
    state: &AppState,
    phone: &str,
    text: &str,
    by: &str,
) -> Result<Response, ApiError> {
    use crate::takeover::TakeoverError;
    let lead = super::sla::lead_from(phone)?;
    match crate::takeover::reply(
        &state.store,
        &state.alerts,
        state.queue.clone(),
        &lead,
        by,
        text,
    )
    .await
    {
        Ok(reply_id) => Ok(announce(format!(
            "📤 {by} → {lead} (outbox {reply_id}): {}",
            text.trim()
        ))),
        Err(TakeoverError::Store(e)) => Err(ApiError::Unavailable(e.to_string())),
        Err(e) => Ok(ephemeral(format!("{e}; nothing was sent."))),
    }
}

/// The Discord sender's state from memory — whether this process posts (`posts`), which
/// channels it holds (`leases`), what waits in its direct queue — so it answers while the
/// store is down; plus the spool's size and oldest entry read from the store now
/// (`spool_error` when it cannot be read within a second): any role's answer shows
/// whether alerts are getting out.
pub async fn status(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    super::ops::authorize(&state, &peer, &headers)?;
    let sender: Option<SenderStatus> = state.discord.as_ref().map(|d| d.status());
    let mut body = match serde_json::to_value(sender.clone().unwrap_or_default()) {
        Ok(Value::Object(fields)) => Value::Object(fields),
        _ => json!({}),
    };
    body["sender"] = json!(sender.is_some());
    match tokio::time::timeout(Duration::from_secs(1), state.store.spool_summary()).await {
        Ok(Ok((spooled, oldest))) => {
            body["spooled"] = json!(spooled);
            body["oldest_spooled_at"] = json!(oldest.map(|t| t.to_rfc3339()));
        }
        Ok(Err(e)) => body["spool_error"] = json!(e.to_string()),
        Err(_) => body["spool_error"] = json!("the store did not answer within 1 s"),
    }
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_signature_over_timestamp_and_body_verifies_and_any_change_fails() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = key.verifying_key().to_bytes();
        let sig = hex(&key.sign(b"1700000000{\"type\":1}").to_bytes());
        assert!(verify_signature(
            &public,
            &sig,
            "1700000000",
            b"{\"type\":1}"
        ));
        assert!(!verify_signature(
            &public,
            &sig,
            "1700000001",
            b"{\"type\":1}"
        ));
        assert!(!verify_signature(
            &public,
            &sig,
            "1700000000",
            b"{\"type\":2}"
        ));
        assert!(!verify_signature(
            &public,
            "00",
            "1700000000",
            b"{\"type\":1}"
        ));
        assert!(!verify_signature(
            &public,
            &"zz".repeat(64),
            "1700000000",
            b"{\"type\":1}"
        ));
        let other = SigningKey::from_bytes(&[8u8; 32])
            .verifying_key()
            .to_bytes();
        assert!(!verify_signature(
            &other,
            &sig,
            "1700000000",
            b"{\"type\":1}"
        ));
    }

    #[test]
    fn an_interaction_body_is_read_into_what_it_asks_or_a_reason() {
        assert_eq!(parse_interaction(br#"{"type":1}"#), Ok(Interaction::Ping));
        let button = format!(
            r#"{{"type":3,"data":{{"custom_id":"{}"}},"member":{{"user":{{"username":"ana"}}}}}}"#,
            HitlAction::Approve.custom_id(7)
        );
        assert_eq!(
            parse_interaction(button.as_bytes()),
            Ok(Interaction::Button {
                action: HitlAction::Approve,
                hold_id: 7,
                by: "ana".into()
            })
        );
        // A button's id in a modal submit (and the reverse) is refused, not guessed at.
        let crossed = button.replace(r#""type":3"#, r#""type":5"#);
        assert!(parse_interaction(crossed.as_bytes()).is_err());
        assert!(parse_interaction(b"not json").is_err());
        assert!(parse_interaction(br#"{"type":2}"#).is_err());
        assert!(parse_interaction(br#"{"type":3,"data":{"custom_id":"x:approve:1"}}"#).is_err());
    }

    #[test]
    fn the_modal_text_is_found_in_its_action_row() {
        let submit = json!({"data": {"components": [{"type": 1, "components": [
            {"type": 4, "custom_id": "reply", "value": "edited"}]}]}});
        assert_eq!(modal_text(&submit).as_deref(), Some("edited"));
        assert_eq!(modal_text(&json!({"data": {}})), None);
    }
}
