//! `POST /twilio/sms`: Twilio's inbound-SMS webhook.
//!
//! Owns: the checks in order — body size (413), content type (415), strict form decoding
//! (400), signature or, with no auth token configured, a loopback peer (403), required
//! fields (400), then the input rules of `crate::inbound::rules` on the verified values:
//! `From`/`To` in E.164 (400, counted as `phone`), control characters removed from the
//! body, a body over `INBOUND_BODY_MAX_CHARS` cut with a marker — then the hand-over of the verified message to the durable intake
//! (`crate::inbound`: the store, else a fallback that keeps it until the store answers)
//! and an empty TwiML answer. A rejected request stores nothing and is counted and, for a
//! refused signature, alerted with its likely cause (`rejections.rs`); an accepted one is
//! durable before we answer 200; only when no durable path takes it do we answer 503.
//! Must not: call the model or send SMS (the lead actor does), answer 200 for a message
//! that is not durable, or accept a request because the signature matches some URL other
//! than `PUBLIC_BASE_URL` + path (that only feeds the diagnosis).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::rejections::{Cause, Reason, diagnose_signature};
use super::{ApiError, AppState, is_local};
use crate::channels::twilio::verify_signature;
use crate::inbound::VerifiedInbound;
use crate::inbound::rules;
use crate::probe::SYNTHETIC_PARAM;

/// The empty TwiML reply: "nothing to say now" (an empty body has caused Twilio 11200s).
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

#[tracing::instrument(name = "twilio_sms", skip_all, fields(sid, lead))]
pub async fn receive_sms(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let watch = &state.webhooks;
    let signed = headers.contains_key("x-twilio-signature");
    let refuse_with = |reason: Reason, cause: Cause, detail: &str, error: ApiError| {
        watch.rejected(reason, cause, signed, detail);
        Err(error)
    };
    let refuse = |reason: Reason, detail: &str, error: ApiError| {
        refuse_with(reason, Cause::Other, detail, error)
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                Reason::Size,
                "body over the limit",
                ApiError::PayloadTooLarge(format!(
                    "the body is over {} bytes",
                    super::MAX_WEBHOOK_BYTES
                )),
            );
        }
        Err(rejection) => {
            let reason = rejection.body_text();
            return refuse(Reason::Form, &reason, ApiError::BadRequest(reason.clone()));
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return refuse(
            Reason::Type,
            content_type,
            ApiError::UnsupportedMediaType("expected application/x-www-form-urlencoded".into()),
        );
    }
    let params = match parse_form(&body) {
        Ok(p) => p,
        Err(e) => return refuse(Reason::Form, &e, ApiError::BadRequest(e.clone())),
    };

    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    match &state.settings.twilio_auth_token {
        Some(token) => {
            let signature = headers
                .get("x-twilio-signature")
                .and_then(|v| v.to_str().ok());
            let url = format!("{}{}", state.settings.public_base_url, path);
            let valid =
                signature.is_some_and(|sig| verify_signature(token.expose(), &url, &params, sig));
            if !valid {
                let (cause, diagnosis) =
                    diagnose_signature(token.expose(), &url, &headers, path, &params, signature);
                tracing::warn!(%peer, %diagnosis, "webhook refused: signature");
                let reason = if signature.is_some() {
                    "invalid X-Twilio-Signature"
                } else {
                    "missing X-Twilio-Signature"
                };
                return refuse_with(
                    Reason::Signature,
                    cause,
                    &format!("From {peer}: {diagnosis}"),
                    ApiError::Forbidden(reason.into()),
                );
            }
        }
        None if is_local(&peer) => {}
        None => {
            return refuse_with(
                Reason::LoopbackOnly,
                Cause::NoToken,
                &format!(
                    "TWILIO_AUTH_TOKEN is not set, so webhooks are accepted from this machine only, \
                     and {peer} is not: set TWILIO_AUTH_TOKEN for a service Twilio reaches."
                ),
                ApiError::Forbidden(
                    "TWILIO_AUTH_TOKEN is not set: webhooks are accepted from loopback only".into(),
                ),
            );
        }
    }

    // After the signature (which covers the values exactly as Twilio sent them), before
    // the intake: every durable path — the store, RabbitMQ's `.inbound` queue, the journal —
    // gets the cleaned message.
    let msg = match verified_message(&params, state.settings.inbound_body_max_chars) {
        Ok(m) => m,
        Err((reason, e)) => return refuse(reason, &e, ApiError::BadRequest(e.clone())),
    };
    tracing::Span::current()
        .record("sid", msg.message_sid.as_str())
        .record(
            "lead",
            tracing::field::display(actors::log_phone::LogPhone(&msg.from)),
        );

    match state.intake.accept(&msg).await {
        Ok(outcome) => {
            watch.accepted();
            tracing::debug!(?outcome, "webhook accepted");
            Ok(([(header::CONTENT_TYPE, "text/xml")], EMPTY_TWIML).into_response())
        }
        Err(e) => {
            watch.unavailable(&e.to_string());
            Err(ApiError::Unavailable(e.to_string()))
        }
    }
}

/// The required fields of Twilio's form, checked, and the input rules applied: the message
/// as it will be stored, or why not (the reason it is counted under, and the answer).
fn verified_message(
    params: &[(String, String)],
    body_max_chars: usize,
) -> Result<VerifiedInbound, (Reason, String)> {
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let required =
        |name: &'static str| field(name).ok_or((Reason::Form, format!("missing {name}")));
    let sid = required("MessageSid")?;
    if !is_message_sid(sid) {
        return Err((Reason::Form, "malformed MessageSid".into()));
    }
    let from = required("From")?;
    let to = required("To")?;
    for (name, value) in [("From", from), ("To", to)] {
        rules::check_phone(name, value).map_err(|e| (Reason::Phone, e))?;
    }
    let body = required("Body")?;
    let body = rules::cap_body(&rules::clean_body(body), body_max_chars);
    Ok(VerifiedInbound {
        message_sid: sid.to_string(),
        from: from.to_string(),
        body,
        received_at: chrono::Utc::now(),
        // Our own probes (`watch`, `verify`) mark their leads; the signature covers the
        // parameter, so a forger would need the auth token.
        synthetic: field(SYNTHETIC_PARAM) == Some("1"),
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
