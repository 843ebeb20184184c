//! `POST /twilio/sms`: Twilio's inbound-SMS webhook.
//!
//! Owns: the checks in order — content type (415), strict form decoding (400), signature
//! or, with no auth token configured, a loopback peer (403), required fields (400) — then
//! one idempotent store write keyed by `MessageSid`, a wake-up for the lead, and an empty
//! TwiML answer. A rejected request stores nothing; an accepted one is durable before we
//! answer 200; if the store or queue is down we answer 503 so Twilio retries.
//! Must not: call the model or send SMS (the lead actor does), or answer 200 for a message
//! that is not stored.

use std::net::SocketAddr;

use actors::keywords::{self, Keyword};
use actors::ports::{LeadId, Store, WakeLead};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, OriginalUri, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, is_local};
use crate::channels::twilio::verify_signature;
use crate::probe::SYNTHETIC_PARAM;
use crate::store::{Accepted, InboundKind, NewInbound};

/// The empty TwiML reply: "nothing to say now" (an empty body has caused Twilio 11200s).
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

#[tracing::instrument(name = "twilio_sms", skip_all, fields(sid, lead))]
pub async fn receive_sms(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(ApiError::UnsupportedMediaType(
            "expected application/x-www-form-urlencoded".into(),
        ));
    }
    let params = parse_form(&body).map_err(ApiError::BadRequest)?;

    match &state.settings.twilio_auth_token {
        Some(token) => {
            let signature = headers
                .get("x-twilio-signature")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| ApiError::Forbidden("missing X-Twilio-Signature".into()))?;
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let url = format!("{}{}", state.settings.public_base_url, path);
            if !verify_signature(token.expose(), &url, &params, signature) {
                tracing::warn!(%peer, "webhook with a bad signature rejected");
                return Err(ApiError::Forbidden("invalid X-Twilio-Signature".into()));
            }
        }
        None if is_local(&peer) => {}
        None => {
            return Err(ApiError::Forbidden(
                "TWILIO_AUTH_TOKEN is not set: webhooks are accepted from loopback only".into(),
            ));
        }
    }

    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let sid =
        field("MessageSid").ok_or_else(|| ApiError::BadRequest("missing MessageSid".into()))?;
    if !is_message_sid(sid) {
        return Err(ApiError::BadRequest("malformed MessageSid".into()));
    }
    let from = field("From").ok_or_else(|| ApiError::BadRequest("missing From".into()))?;
    if from.trim().is_empty() || from.len() > 64 || from.chars().any(char::is_control) {
        return Err(ApiError::BadRequest("malformed From".into()));
    }
    let text = field("Body").ok_or_else(|| ApiError::BadRequest("missing Body".into()))?;
    let lead = LeadId::new(from.trim());
    tracing::Span::current()
        .record("sid", sid)
        .record("lead", lead.as_str());

    let kind = inbound_kind(&state, &lead, text).await?;
    let accepted = state
        .store
        .accept_inbound(
            NewInbound {
                message_sid: sid,
                from: &lead,
                body: text,
                synthetic: field(SYNTHETIC_PARAM) == Some("1"),
            },
            kind,
        )
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;

    let publish = match accepted {
        Accepted::New { needs_turn } => needs_turn,
        // A retry of a message whose wake-up may have been lost with the first attempt's
        // 503: publish again (wake-ups are idempotent).
        Accepted::Duplicate { still_pending } => still_pending,
    };
    if publish {
        state
            .queue
            .publish(WakeLead { lead: lead.clone() })
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    }
    tracing::debug!(?accepted, ?kind, "webhook accepted");
    Ok(([(header::CONTENT_TYPE, "text/xml")], EMPTY_TWIML).into_response())
}

/// Carrier keywords are handled here, before any turn: an opt-out must take effect even if
/// the lead's actor is busy. START/YES opt back in only for a lead that had opted out —
/// for anyone else "yes" is an answer to our question.
async fn inbound_kind(
    state: &AppState,
    lead: &LeadId,
    text: &str,
) -> Result<InboundKind, ApiError> {
    Ok(match keywords::classify(text) {
        Some(Keyword::OptOut) => InboundKind::OptOut,
        Some(Keyword::Help) => InboundKind::CarrierHelp,
        Some(Keyword::OptIn) => {
            let opted_out = state
                .store
                .is_opted_out(lead)
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            if opted_out {
                InboundKind::OptIn
            } else {
                InboundKind::Conversation
            }
        }
        None => InboundKind::Conversation,
    })
}

/// `SM`/`MM` + 32 alphanumerics: Twilio's 34-character message id.
pub fn is_message_sid(s: &str) -> bool {
    s.len() == 34
        && (s.starts_with("SM") || s.starts_with("MM"))
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Decodes `application/x-www-form-urlencoded` strictly: a malformed percent escape or
/// invalid UTF-8 is an error, not silently replaced (the signature covers exact values).
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "form body is not UTF-8".to_string())?;
    let mut out = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((decode_component(k)?, decode_component(v)?));
    }
    Ok(out)
}

fn decode_component(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("malformed percent escape in {s:?}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "form value is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_decodes_plus_and_percent_escapes() {
        let p = parse_form(b"Body=Hi+there%21+%F0%9F%98%80&From=%2B1312").unwrap();
        assert_eq!(p[0], ("Body".into(), "Hi there! 😀".into()));
        assert_eq!(p[1], ("From".into(), "+1312".into()));
    }

    #[test]
    fn a_malformed_form_is_an_error() {
        assert!(parse_form(b"Body=%ZZ").is_err());
        assert!(parse_form(b"Body=%F0%9F").is_err(), "truncated UTF-8");
        assert!(parse_form(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn message_sids_have_twilios_shape() {
        assert!(is_message_sid("SM0123456789abcdef0123456789abcdef"));
        assert!(is_message_sid("MM0123456789abcdef0123456789abcdef"));
        assert!(!is_message_sid("XX0123456789abcdef0123456789abcdef"));
        assert!(!is_message_sid("SM123"));
        assert!(!is_message_sid("SM0123456789abcdef0123456789abcde!"));
    }
}
