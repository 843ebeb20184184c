//! The send path of a lead's turn: one committed reply to Twilio at most once — the
//! last-moment claim (opt-out, takeover), temporary failures retried with a backoff, an
//! unknown outcome recorded in doubt and alerted, never resent blindly — in a span of its own.
//!
//! Owns: [`send_reply`] and the SMS length rule ([`clamp_sms`]). Must not: commit replies or
//! decide what to say (the turn in `mod.rs` does), or send anything not in the outbox.

use std::time::Duration;

use tracing::Instrument;

use crate::alert_router::{Alert, AlertKind, Severity};
use crate::ports::{Claim, OutboxReply, SendOutcome, SmsError};

use super::{LeadDeps, TurnError};

/// A temporary SMS failure is retried after 200 ms, doubling per attempt (`sms_attempts`
/// bounds how many).
const SMS_RETRY_BACKOFF: crate::backoff::Backoff =
    crate::backoff::Backoff::new(Duration::from_millis(200), Duration::MAX);

/// Twilio rejects bodies over 1,600 characters (error 21617); a reply is cut to fit.
pub const MAX_SMS_CHARS: usize = 1600;

/// Sends one committed reply at most once, in a span of its own (`sms.send`: the masked
/// lead, the reply's id and length, the attempts and how it ended; never the text).
pub(super) async fn send_reply(deps: &LeadDeps, reply: &OutboxReply) -> Result<(), TurnError> {
    let span = tracing::info_span!(
        "sms_send",
        otel.name = "sms.send",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        lead = %reply.lead.log(),
        reply_id = reply.id,
        chars = reply.body.chars().count(),
        attempts = tracing::field::Empty,
        outcome = tracing::field::Empty,
        langsmith.span.kind = "tool",
    );
    let mut attempts = 0;
    let result = deliver_reply(deps, reply, &mut attempts)
        .instrument(span.clone())
        .await;
    span.record("attempts", attempts);
    match &result {
        Ok(outcome) => {
            span.record("outcome", *outcome);
        }
        Err(_) => {
            span.record("outcome", "failed");
            span.record("otel.status_code", "ERROR");
        }
    }
    result.map(|_| ())
}

/// The send itself; returns how it ended. The `claim_send` claim is the line between
/// "safe to send" and "may have been sent": past it, an unknown outcome is recorded as
/// in-doubt and alerted, never resent blindly.
async fn deliver_reply(
    deps: &LeadDeps,
    reply: &OutboxReply,
    attempt: &mut u32,
) -> Result<&'static str, TurnError> {
    let store = &deps.store;
    // The opt-out is checked in the claim itself, at the last moment: a STOP that arrived
    // during the turn wins.
    match store.claim_send(reply.id).await? {
        Claim::Send => {}
        Claim::NotQueued => return Ok("not_queued"),
        Claim::Suppressed => {
            deps.alerts.raise(
                Alert::event(
                    "sms_suppressed",
                    format!(
                        "{}: reply {} not sent: the lead opted out, or an operator has taken it over",
                        reply.lead, reply.id
                    ),
                )
                .for_lead(&reply.lead),
            );
            return Ok("suppressed");
        }
    }
    loop {
        *attempt += 1;
        let attempt = *attempt;
        match deps.sms.send_sms(&reply.lead, &reply.body).await {
            Ok(sent) => {
                store
                    .record_send(
                        reply.id,
                        &SendOutcome::Sent {
                            provider_sid: sent.provider_sid.clone(),
                        },
                    )
                    .await?;
                metrics::counter!("lead_agent_replies_sent_total").increment(1);
                deps.alerts.raise(
                    Alert::event(
                        "sms_sent",
                        format!("{} ({})", reply.lead, sent.provider_sid),
                    )
                    .for_lead(&reply.lead),
                );
                // The seed's "all agents" stream: every reply that went out, in full.
                deps.alerts.raise(
                    Alert::new(
                        AlertKind::AgentResponse,
                        Severity::Info,
                        "agent_response",
                        format!("{} ← {}", reply.lead, reply.body),
                    )
                    .for_lead(&reply.lead),
                );
                return Ok("sent");
            }
            Err(e @ SmsError::Retryable(_)) if attempt < deps.sms_attempts => {
                tracing::warn!(lead = %reply.lead.log(), attempt, error = %crate::log_phone::scrub(&e.to_string()), "SMS send failed; retrying");
                tokio::time::sleep(SMS_RETRY_BACKOFF.delay(attempt)).await;
            }
            Err(e @ SmsError::Retryable(_)) => {
                store
                    .record_send(
                        reply.id,
                        &SendOutcome::Requeued {
                            reason: e.to_string(),
                        },
                    )
                    .await?;
                return Err(TurnError::SmsTemporary(e));
            }
            Err(SmsError::Permanent { code, message }) => {
                let reason = format!("rejected ({code:?}): {message}");
                store
                    .record_send(
                        reply.id,
                        &SendOutcome::Failed {
                            reason: reason.clone(),
                        },
                    )
                    .await?;
                deps.alerts.raise(
                    Alert::error(
                        "sms_rejected",
                        format!("Reply to {} not delivered: {reason}", reply.lead),
                    )
                    .for_lead(&reply.lead),
                );
                return Ok("rejected");
            }
            Err(SmsError::Unknown(reason)) => {
                store
                    .record_send(
                        reply.id,
                        &SendOutcome::InDoubt {
                            reason: reason.clone(),
                        },
                    )
                    .await?;
                deps.alerts.raise(
                    Alert::new(
                        AlertKind::Error,
                        Severity::Critical,
                        "sms_in_doubt",
                        format!(
                            "Reply {} to {} may or may not have been sent ({reason}); not resent until \
                             Twilio's list settles it",
                            reply.id, reply.lead
                        ),
                    )
                    .for_lead(&reply.lead),
                );
                return Ok("in_doubt");
            }
        }
    }
}

/// Cuts a reply to the SMS limit on a character boundary.
pub fn clamp_sms(text: &str) -> String {
    if text.chars().count() <= MAX_SMS_CHARS {
        text.to_string()
    } else {
        text.chars().take(MAX_SMS_CHARS).collect()
    }
}
