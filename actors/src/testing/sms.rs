//! An SMS sender in memory ([`FakeSms`]): records every send, can be told to fail, and
//! lists what it holds the way a provider does, for the outbox's in-doubt checks.
//!
//! Must not: be used on a production path (the crate's `testing` feature).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::Utc;

use crate::ports::*;

/// Records every SMS; can be told to fail. Like a provider, it also keeps a list of the
/// messages it holds (every accepted send, `delivered`, and whatever a test put there with
/// [`FakeSms::provider_has`]), which `find_sent` reads.
#[derive(Default)]
pub struct FakeSms {
    sent: Mutex<Vec<(LeadId, String)>>,
    listed: Mutex<Vec<(LeadId, ListedMessage)>>,
    next_errors: Mutex<Vec<SmsError>>,
    lookups_fail: AtomicBool,
}

impl FakeSms {
    pub fn sent(&self) -> Vec<(LeadId, String)> {
        self.sent.lock().unwrap().clone()
    }
    pub fn sent_to(&self, lead: &LeadId) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|(l, _)| l == lead)
            .map(|(_, b)| b)
            .collect()
    }
    pub fn fail_next(&self, e: SmsError) {
        self.next_errors.lock().unwrap().push(e);
    }
    /// Makes `find_sent` fail (the provider's history cannot be read).
    pub fn fail_lookups(&self, v: bool) {
        self.lookups_fail.store(v, Ordering::SeqCst);
    }
    /// Puts a message in the provider's list without sending it through us (a send whose
    /// answer was lost, a body the provider rewrote, someone else's text): its sid.
    pub fn provider_has(&self, to: &LeadId, body: &str, status: ProviderStatus) -> String {
        self.list(to, body, status)
    }
    fn list(&self, to: &LeadId, body: &str, status: ProviderStatus) -> String {
        let mut listed = self.listed.lock().unwrap();
        let provider_sid = format!("SMFAKE{:028}", listed.len() + 1);
        listed.push((
            to.clone(),
            ListedMessage {
                provider_sid: provider_sid.clone(),
                body: body.to_string(),
                status,
                created_at: Some(Utc::now()),
            },
        ));
        provider_sid
    }
}

#[async_trait]
impl SmsSender for FakeSms {
    async fn send_sms(&self, to: &LeadId, body: &str) -> Result<SentSms, SmsError> {
        if let Some(e) = self.next_errors.lock().unwrap().pop() {
            return Err(e);
        }
        self.sent
            .lock()
            .unwrap()
            .push((to.clone(), body.to_string()));
        Ok(SentSms {
            provider_sid: self.list(to, body, ProviderStatus::Delivered),
        })
    }

    async fn find_sent(
        &self,
        to: &LeadId,
        since: chrono::DateTime<Utc>,
    ) -> Result<Vec<ListedMessage>, SmsError> {
        if self.lookups_fail.load(Ordering::SeqCst) {
            return Err(SmsError::Retryable("history unavailable (test)".into()));
        }
        Ok(self
            .listed
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|(l, m)| l == to && m.created_at.is_none_or(|t| t >= since))
            .map(|(_, m)| m.clone())
            .collect())
    }
}
