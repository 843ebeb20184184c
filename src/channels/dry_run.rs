//! The dry-run SMS sender: the embedded default when Twilio is not configured.
//!
//! Owns: "sending" by logging — the reply is already stored in the outbox by the lead actor,
//! so recording it `sent` with a `DRYRUN…` id is the whole job. Must not: reach any network.

use std::sync::atomic::{AtomicU64, Ordering};

use actors::ports::{LeadId, SentSms, SmsError, SmsSender};
use async_trait::async_trait;

#[derive(Default)]
pub struct DryRunSms {
    next: AtomicU64,
}

#[async_trait]
impl SmsSender for DryRunSms {
    async fn send_sms(&self, to: &LeadId, body: &str) -> Result<SentSms, SmsError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let provider_sid = format!("DRYRUN{:028}", n);
        tracing::info!(to = %to, sid = %provider_sid, body, "dry-run SMS (not sent to any carrier)");
        Ok(SentSms { provider_sid })
    }
}
