//! Inbound SMS as Twilio delivers them: each message a signed webhook to the service's
//! public URL (behind a TLS load balancer: `Host` and `X-Forwarded-Proto`/`-Host` name the
//! URL Twilio signed), on a fresh connection, with Twilio's default delivery policy:
//! connect timeout 5 s, read timeout 15 s, and one retry of the same MessageSid only when
//! the connection failed (`rc=1`, `rp=ct`). Any other failure (a 5xx, a 4xx, a read
//! timeout) is not retried: Twilio logs error 11200 and the message is gone unless the
//! service kept it. Bursts are spread over time as tasks, so a slow answer never delays the
//! next SMS.
//!
//! Must not: retry what Twilio would not (that would hide a lost message), or judge.

use std::time::{Duration, Instant};

use lead_agent::channels::twilio::compute_signature;
use lead_agent::channels::twilio::new_message_sid;
use tokio::task::JoinHandle;

use crate::support::{AUTH_TOKEN, PUBLIC_URL, encode_form, sms_params};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Twilio's retry after a failed connection comes at once; a short pause keeps the two
/// attempts distinct in the logs.
const RETRY_AFTER: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct Sms {
    pub sid: String,
    pub lead: String,
    pub body: String,
}

/// `n` messages from `n` distinct leads (`+1415` and seven digits from `first`).
pub fn burst(n: usize, first: u64) -> Vec<Sms> {
    (0..n)
        .map(|i| Sms {
            sid: new_message_sid(),
            lead: format!("+1415{:07}", first + i as u64),
            body: format!("Hi, is the 2BR still available? ({i})"),
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Status(u16),
    /// No HTTP answer: the connection failed, or the read timed out.
    None {
        connect_failed: bool,
        error: String,
    },
}

impl Answer {
    pub fn is_accepted(&self) -> bool {
        *self == Answer::Status(200)
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Status(s) => write!(f, "{s}"),
            Answer::None {
                connect_failed: true,
                ..
            } => write!(f, "connection failed"),
            Answer::None { .. } => write!(f, "no answer in {} s", READ_TIMEOUT.as_secs()),
        }
    }
}

/// One message's delivery: every attempt Twilio made, in order.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub sms: Sms,
    pub attempts: Vec<(Instant, Answer)>,
}

impl Delivery {
    pub fn last(&self) -> &Answer {
        &self.attempts.last().expect("at least one attempt").1
    }

    pub fn accepted(&self) -> bool {
        self.attempts.iter().any(|(_, a)| a.is_accepted())
    }
}

#[derive(Clone)]
pub struct Twilio {
    http: reqwest::Client,
    web_url: String,
}

impl Twilio {
    pub fn new(web_url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(READ_TIMEOUT)
                // Each webhook on a connection of its own, as Twilio's are: a pooled
                // connection to a killed process would fail in a way Twilio never sees.
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            web_url: web_url.to_string(),
        }
    }

    /// Delivers `sms` by Twilio's default policy.
    pub async fn deliver(&self, sms: Sms) -> Delivery {
        let mut attempts = vec![(Instant::now(), self.post(&sms).await)];
        if matches!(
            attempts[0].1,
            Answer::None {
                connect_failed: true,
                ..
            }
        ) {
            tokio::time::sleep(RETRY_AFTER).await;
            attempts.push((Instant::now(), self.post(&sms).await));
        }
        Delivery { sms, attempts }
    }

    /// Delivers each message at its moment, evenly spread over `over`, as tasks.
    pub fn spread(&self, messages: &[Sms], over: Duration) -> Vec<JoinHandle<Delivery>> {
        let n = messages.len().max(1) as u32;
        let start = tokio::time::Instant::now();
        messages
            .iter()
            .enumerate()
            .map(|(i, sms)| {
                let (twilio, sms) = (self.clone(), sms.clone());
                let at = start + over * i as u32 / n;
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    twilio.deliver(sms).await
                })
            })
            .collect()
    }

    async fn post(&self, sms: &Sms) -> Answer {
        let params = sms_params(&sms.sid, &sms.lead, &sms.body);
        let public = url::Url::parse(PUBLIC_URL).unwrap();
        let signature = compute_signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/sms"), &params);
        let sent = self
            .http
            .post(format!("{}/twilio/sms", self.web_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .header(reqwest::header::HOST, public.host_str().unwrap())
            .header("X-Forwarded-Proto", public.scheme())
            .header("X-Forwarded-Host", public.host_str().unwrap())
            .body(encode_form(&params))
            .send()
            .await;
        match sent {
            Ok(r) => Answer::Status(r.status().as_u16()),
            Err(e) => Answer::None {
                connect_failed: e.is_connect(),
                error: e.to_string(),
            },
        }
    }
}

/// Waits for every delivery task.
pub async fn all(tasks: Vec<JoinHandle<Delivery>>) -> Vec<Delivery> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("a delivery task panicked"));
    }
    out
}
