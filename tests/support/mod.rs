//! Test support shared by the test binaries (`tests/api`, `tests/faults`): the service's
//! roles as real processes (`processes`), the bounded poll every wait goes through,
//! Twilio's webhook form and the settings that point the service at the fakes. The fakes
//! themselves (Twilio, Anthropic, Discord, the partition proxy) are the workspace's one
//! copy in `testkit/`, re-exported here under their old paths.
//!
//! Each binary includes this module (`#[path = "../support/mod.rs"]`) rather than keeping
//! its own copies. Must not: configure the application (each binary
//! has its own harness for that) or talk to anything off loopback.

// Each binary uses a part of this module; the rest is dead code there, not a mistake.
#![allow(dead_code, unused_imports)]

pub mod processes;

pub use testkit::{AUTH_TOKEN, OUR_NUMBER, PUBLIC_URL};
pub use testkit::{fake_anthropic, fake_discord, fake_twilio, proxy};

use std::time::Duration;

/// Polls `cond` every 20 ms for up to `secs` seconds (never less than 15: CI shares two
/// cores with whatever else runs, and a bound is a failure detector, not a timing
/// assertion); panics with `what` if it never holds.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !poll_until(secs, cond).await {
        panic!("timed out after {} s waiting for: {what}", secs.max(15));
    }
}

/// [`wait_until`]'s poll, answering whether `cond` held in time instead of panicking: for
/// a wait that says what it saw last when it gives up.
pub async fn poll_until<F, Fut>(secs: u64, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs.max(15));
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A form as Twilio sends it for an inbound SMS.
pub fn sms_params(sid: &str, from: &str, body: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("MessageSid", sid),
        ("AccountSid", "ACtest"),
        ("From", from),
        ("To", OUR_NUMBER),
        ("Body", body),
        ("NumSegments", "1"),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The settings that point the service at the fake Twilio and Anthropic, with webhook
/// signatures checked against [`PUBLIC_URL`].
pub fn fake_vendor_env(
    twilio: &fake_twilio::FakeTwilio,
    llm: &fake_anthropic::FakeAnthropic,
) -> [(&'static str, String); 7] {
    [
        ("PUBLIC_BASE_URL", PUBLIC_URL.to_string()),
        ("TWILIO_ACCOUNT_SID", "ACtest".to_string()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_string()),
        ("TWILIO_FROM_NUMBER", OUR_NUMBER.to_string()),
        ("TWILIO_API_BASE", twilio.url.clone()),
        ("ANTHROPIC_API_KEY", "test-anthropic-key".to_string()),
        ("ANTHROPIC_BASE_URL", llm.url.clone()),
    ]
}

pub fn encode_form(params: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The value of one Prometheus series (`name{labels}` exactly as rendered, or a bare name)
/// in the `/metrics` of the server at `base_url`; 0 when the series is absent.
pub async fn scrape_metric(http: &reqwest::Client, base_url: &str, series: &str) -> f64 {
    let text = http
        .get(format!("{base_url}/metrics"))
        .send()
        .await
        .expect("the server answers /metrics")
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}
