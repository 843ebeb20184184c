//! The dry-run SMS sender: the embedded default when Twilio is not configured.
//!
//! Owns: "sending" by logging — the reply is already stored in the outbox by the lead actor,
//! so recording it `sent` with a `DRYRUN…` id is the whole job. Must not: reach any network.

use std::sync::atomic::{AtomicU64, Ordering};

use actors::ports::{LeadId, SentSms, SmsError, SmsSender};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

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

    /// Nothing ever reaches a carrier in a dry run, so nothing was "sent" in the sense that
    /// matters: an in-doubt reply is safe to log again.
    async fn find_sent(
        &self,
        _to: &LeadId,
        _body: &str,
        _since: DateTime<Utc>,
    ) -> Result<Option<SentSms>, SmsError> {
        Ok(None)
    }
}
