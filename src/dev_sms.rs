//! The dev helper behind `lead-agent sms`: plays Twilio against a running server — signs
//! and posts an inbound webhook to its public listener, then follows the conversation at
//! /ops on its ops listener until the reply to that message has gone out, and prints it.
//!
//! Must not: be needed in production; it uses only the public HTTP interface.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::channels::twilio::compute_signature;
use crate::cli::SmsArgs;
use crate::config::read_var;
use crate::store::MessageView;

// Its home is the Twilio channel (nothing else depends on this dev helper for it); still
// named here for callers written against this path.
pub use crate::channels::twilio::new_message_sid;

pub async fn run(args: SmsArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let base = args.url.trim_end_matches('/');
    let sid = new_message_sid();
    let params: Vec<(String, String)> = [
        ("MessageSid", sid.as_str()),
        ("AccountSid", "ACdevhelper000000000000000000000000"),
        ("From", args.from.as_str()),
        ("To", args.to.as_str()),
        ("Body", args.text.as_str()),
        ("NumMedia", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    let mut request = http.post(format!("{base}/twilio/sms")).form(&params);
    if let Some(token) = read_var("TWILIO_AUTH_TOKEN") {
        let public = args
            .public_url
            .clone()
            .or_else(|| read_var("PUBLIC_BASE_URL"))
            .unwrap_or_else(|| base.to_string());
        let url = format!("{}/twilio/sms", public.trim_end_matches('/'));
        request = request.header(
            "X-Twilio-Signature",
            compute_signature(&token, &url, &params),
        );
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("Failed to reach {base} — is `lead-agent serve` running?"))?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "webhook rejected: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }
    println!("> {} ({sid}): {}", args.from, args.text);

    let ops = match &args.ops_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => crate::probe::ops_url_for(base, crate::config::local_ops_port()),
    };
    let mut url = reqwest::Url::parse(&format!("{ops}/ops/leads"))?;
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--ops-url cannot be a base URL"))?
        .push(&args.from)
        .push("messages");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait_secs);
    loop {
        let mut req = http.get(url.clone());
        if let Some(token) = read_var("OPS_TOKEN") {
            req = req.bearer_auth(token);
        }
        let messages: Vec<MessageView> = req
            .send()
            .await
            .with_context(|| {
                format!("Failed to read the conversation at {ops} (the ops listener; --ops-url)")
            })?
            .error_for_status()
            .context("Failed to read the conversation")?
            .json()
            .await?;
        if let Some(outcome) = reply_to(&messages, &sid) {
            // The reply is the model's text: escaped, so it cannot drive the terminal.
            println!("{}", crate::telemetry::escape(&outcome.to_string()));
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no reply within {} s", args.wait_secs);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What became of the message `sid`, once settled: the reply that went out, or why none.
fn reply_to(messages: &[MessageView], sid: &str) -> Option<String> {
    let inbound = messages
        .iter()
        .find(|m| m.message_sid.as_deref() == Some(sid))?;
    match inbound.state.as_str() {
        "no_reply" => Some("(no reply: carrier keyword or opted-out lead)".into()),
        "answered" => {
            let reply = messages.iter().find(|m| Some(m.id) == inbound.reply_id)?;
            match reply.state.as_str() {
                "sent" => Some(format!(
                    "< [{}] {}",
                    reply.provider.as_deref().unwrap_or("?"),
                    reply.body
                )),
                "queued" | "sending" => None,
                other => Some(format!("(reply not sent: {other}) {}", reply.body)),
            }
        }
        _ => None,
    }
}
