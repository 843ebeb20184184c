//! The dry-run SMS sender: the embedded default when Twilio is not configured.
//!
//! Owns: "sending" by logging — the reply is already stored in the outbox by the lead actor,
//! so recording it `sent` with a `DRYRUN…` id is the whole job. Must not: reach any network.

use actors::ports::{LeadId, ListedMessage, SentSms, SmsError, SmsSender};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[derive(Default)]
pub struct DryRunSms;

/// `DRYRUN` + 28 random hex digits: 34 characters like a Twilio sid, and unique across
/// processes (the outbox's `message_sid` column is unique; a per-process counter collided
/// as soon as two workers ran).
pub fn new_dry_run_sid() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let hex: String = (0..28)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!("DRYRUN{hex}")
}

#[async_trait]
impl SmsSender for DryRunSms {
    async fn send_sms(&self, to: &LeadId, body: &str) -> Result<SentSms, SmsError> {
        let provider_sid = new_dry_run_sid();
        tracing::info!(to = %to.log(), sid = %provider_sid, body, "dry-run SMS (not sent to any carrier)");
        Ok(SentSms { provider_sid })
    }

    /// Nothing ever reaches a carrier in a dry run, so the carrier has nothing: an
    /// in-doubt reply (only a crash mid-"send" makes one here) is safe to log again.
    async fn find_sent(
        &self,
        _to: &LeadId,
        _since: DateTime<Utc>,
    ) -> Result<Vec<ListedMessage>, SmsError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_sids_look_like_twilio_sids_and_do_not_repeat() {
        let a = new_dry_run_sid();
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("DRYRUN"));
        let many: std::collections::HashSet<_> = (0..1000).map(|_| new_dry_run_sid()).collect();
        assert_eq!(many.len(), 1000);
    }
}
