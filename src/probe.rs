//! Probing a running service from the outside, over HTTP only: the operator GETs of
//! `/ops/*` on its ops listener (with `OPS_TOKEN` as a bearer token) and the synthetic
//! inbound SMS — a webhook signed as Twilio signs it, from a test number, posted to its
//! public listener and followed at `/ops/leads/{phone}/messages` until the reply to that
//! very message is sent.
//! `lead-agent verify` (its end-to-end step) and `lead-agent watch` (its end-to-end check)
//! both go through here.
//!
//! Owns: the synthetic mark. Every probe SMS carries the form parameter
//! [`SYNTHETIC_PARAM`]` = 1`, which the signature covers: a real Twilio request never
//! carries it and a forger would need the auth token, so the webhook can trust it and store
//! the lead as synthetic (reports, followups and SLAs leave such leads out).
//! Must not: read the store or the queue, or any secret but the two tokens it is handed.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::channels::twilio::compute_signature;
use crate::channels::twilio::new_message_sid;

/// The form parameter that marks a webhook as a probe (value `1`).
pub const SYNTHETIC_PARAM: &str = "LeadAgentSynthetic";

/// A request error in words: what failed and why (the causes reqwest's own message
/// leaves out, e.g. "Connection refused"), without the URL, which may carry a credential
/// (a Discord webhook's token).
pub fn describe_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// GETs `base` + `path` as JSON, with `token` as a bearer token when given. The error says
/// what went wrong in words an operator can act on.
pub async fn get_json(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
) -> Result<Value, String> {
    let mut request = http.get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("GET {path} failed: {}", describe_error(e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {path} answered {status}"));
    }
    response
        .json()
        .await
        .map_err(|e| format!("GET {path} is not JSON: {e}"))
}

/// The ops listener of the service at `url` when nobody said where it is: the same scheme
/// and host on `port` (`OPS_PORT`). Right for a local `serve`, or both ports forwarded
/// with `kubectl port-forward`; a deployed service's ops listener is not public, so
/// `--ops-url` names it there. `url` itself when it does not parse.
pub fn ops_url_for(url: &str, port: u16) -> String {
    let url = url.trim_end_matches('/');
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return url.to_string();
    };
    if u.set_port(Some(port)).is_err() {
        return url.to_string();
    }
    u.set_path("");
    u.as_str().trim_end_matches('/').to_string()
}

/// One synthetic SMS and how long to wait for its reply.
#[derive(Debug, Clone)]
pub struct SyntheticSms<'a> {
    /// The service's public base URL, where the webhook is posted.
    pub url: &'a str,
    /// Its ops listener, where the conversation is read.
    pub ops_url: &'a str,
    /// The URL Twilio calls, which the signature covers (`PUBLIC_BASE_URL`).
    pub public_url: &'a str,
    /// Signs the webhook; without it the service accepts loopback peers only.
    pub twilio_auth_token: Option<&'a str>,
    pub ops_token: Option<&'a str>,
    /// The test number the SMS comes from (its reply really goes out with Twilio
    /// configured: a phone the team owns).
    pub from: &'a str,
    /// Our number (Twilio's `To`).
    pub to: &'a str,
    pub text: &'a str,
    pub wait: Duration,
}

#[derive(Deserialize)]
struct Message {
    id: i64,
    state: String,
    message_sid: Option<String>,
    reply_id: Option<i64>,
    provider: Option<String>,
}

/// The form of the synthetic webhook, with a fresh `MessageSid` and the synthetic mark.
pub fn synthetic_form(sid: &str, from: &str, to: &str, text: &str) -> Vec<(String, String)> {
    [
        ("MessageSid", sid),
        ("SmsMessageSid", sid),
        ("AccountSid", "ACverify000000000000000000000000000"),
        ("From", from),
        ("To", to),
        ("Body", text),
        ("NumMedia", "0"),
        (SYNTHETIC_PARAM, "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Posts the synthetic SMS and follows the conversation until its reply is sent: `Ok` with
/// how long it took and which model answered, `Err` with why not (refused, not stored,
/// opted out, not sent, or no reply within `wait`, with the last state seen).
pub async fn send_and_await_reply(
    http: &reqwest::Client,
    sms: &SyntheticSms<'_>,
) -> Result<String, String> {
    let sid = new_message_sid();
    let params = synthetic_form(&sid, sms.from, sms.to, sms.text);
    let mut request = http.post(format!("{}/twilio/sms", sms.url)).form(&params);
    if let Some(token) = sms.twilio_auth_token {
        let signed = format!("{}/twilio/sms", sms.public_url.trim_end_matches('/'));
        request = request.header(
            "X-Twilio-Signature",
            compute_signature(token, &signed, &params),
        );
    }
    match request.send().await {
        Err(e) => return Err(format!("POST /twilio/sms failed: {}", describe_error(e))),
        Ok(r) if !r.status().is_success() => {
            return Err(format!("POST /twilio/sms answered {}", r.status()));
        }
        Ok(_) => {}
    }
    let Ok(mut url) = reqwest::Url::parse(&format!("{}/ops/leads", sms.ops_url)) else {
        return Err(format!("{} is not a URL", sms.ops_url));
    };
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.push(sms.from).push("messages");
    }
    let path = url.path().to_string();
    let started = tokio::time::Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < sms.wait {
        match get_json(http, sms.ops_url, &path, sms.ops_token).await {
            Err(e) => last = e,
            Ok(v) => {
                let messages: Vec<Message> = serde_json::from_value(v).unwrap_or_default();
                match settled(&messages, &sid, sms.from) {
                    Settled::Sent(provider) => {
                        return Ok(format!(
                            "reply sent in {:.1} s by {provider}",
                            started.elapsed().as_secs_f64()
                        ));
                    }
                    Settled::Failed(why) => return Err(why),
                    Settled::Waiting(state) => last = state,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!(
        "no reply sent within {} s ({last})",
        sms.wait.as_secs()
    ))
}

enum Settled {
    Sent(String),
    Failed(String),
    Waiting(String),
}

/// Where the message `sid` stands in the conversation.
fn settled(messages: &[Message], sid: &str, from: &str) -> Settled {
    let inbound = messages
        .iter()
        .find(|m| m.message_sid.as_deref() == Some(sid));
    match inbound.map(|m| (m.state.as_str(), m.reply_id)) {
        None => Settled::Waiting("the webhook was accepted but the message is not stored".into()),
        Some(("no_reply", _)) => Settled::Failed(format!(
            "{from} has opted out (STOP): text START from it, or use another test phone"
        )),
        Some(("answered", Some(reply_id))) => match messages.iter().find(|m| m.id == reply_id) {
            Some(reply) => match reply.state.as_str() {
                "sent" => Settled::Sent(reply.provider.clone().unwrap_or_else(|| "?".into())),
                "queued" | "sending" => Settled::Waiting(format!("reply {}", reply.state)),
                other => Settled::Failed(format!("the reply was not sent: {other}")),
            },
            None => Settled::Waiting("reply not visible yet".into()),
        },
        Some((state, _)) => Settled::Waiting(format!("message {state}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: i64, state: &str, sid: Option<&str>, reply: Option<i64>) -> Message {
        Message {
            id,
            state: state.into(),
            message_sid: sid.map(str::to_string),
            reply_id: reply,
            provider: Some("rules".into()),
        }
    }

    #[test]
    fn the_form_carries_the_synthetic_mark_and_the_signature_covers_it() {
        let form = synthetic_form("SM1", "+13125550199", "+13125550000", "hi");
        assert!(form.contains(&(SYNTHETIC_PARAM.to_string(), "1".to_string())));
        let url = "https://leads.example.com/twilio/sms";
        let signed = compute_signature("tok", url, &form);
        let without: Vec<_> = form
            .iter()
            .filter(|(k, _)| k != SYNTHETIC_PARAM)
            .cloned()
            .collect();
        assert!(crate::channels::twilio::verify_signature(
            "tok", url, &form, &signed
        ));
        assert!(
            !crate::channels::twilio::verify_signature("tok", url, &without, &signed),
            "dropping (or adding) the mark breaks the signature"
        );
    }

    #[test]
    fn the_ops_url_is_the_same_host_on_the_ops_port() {
        assert_eq!(
            ops_url_for("http://127.0.0.1:5012/", 5013),
            "http://127.0.0.1:5013"
        );
        assert_eq!(
            ops_url_for("https://leads.example.com", 5013),
            "https://leads.example.com:5013"
        );
        assert_eq!(ops_url_for("http://[::1]:1/x", 7), "http://[::1]:7");
        assert_eq!(ops_url_for("not a url", 7), "not a url");
    }

    #[test]
    fn only_a_sent_reply_to_that_very_message_settles_it() {
        let sid = "SMx";
        assert!(matches!(settled(&[], sid, "+1"), Settled::Waiting(_)));
        let queued = [
            m(1, "answered", Some(sid), Some(2)),
            m(2, "queued", None, None),
        ];
        assert!(matches!(settled(&queued, sid, "+1"), Settled::Waiting(_)));
        let sent = [
            m(1, "answered", Some(sid), Some(2)),
            m(2, "sent", None, None),
        ];
        assert!(matches!(settled(&sent, sid, "+1"), Settled::Sent(p) if p == "rules"));
        let other = [
            m(1, "answered", Some("SMother"), Some(2)),
            m(2, "sent", None, None),
        ];
        assert!(matches!(settled(&other, sid, "+1"), Settled::Waiting(_)));
        let failed = [
            m(1, "answered", Some(sid), Some(2)),
            m(2, "failed", None, None),
        ];
        assert!(matches!(settled(&failed, sid, "+1"), Settled::Failed(w) if w.contains("failed")));
        let stop = [m(1, "no_reply", Some(sid), None)];
        assert!(matches!(settled(&stop, sid, "+1"), Settled::Failed(w) if w.contains("opted out")));
    }
}
