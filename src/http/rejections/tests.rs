//! The diagnosis of a bad signature and the pacing of the refusal alerts, each on its own.

use std::sync::Arc;

use actors::ports::SystemClock;
use actors::testing::RecordingAlertSink;
use axum::http::HeaderValue;

use super::*;
use crate::channels::twilio::compute_signature;

fn params() -> Vec<(String, String)> {
    vec![
        ("Body".into(), "Hi".into()),
        ("From".into(), "+13125550100".into()),
    ]
}

#[test]
fn a_signature_made_for_the_url_the_request_names_is_diagnosed_not_accepted() {
    let token = "tok";
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("leads.example.com"));
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    let signed = compute_signature(token, "https://leads.example.com/twilio/sms", &params());
    let configured = "https://leads.exmaple.com/twilio/sms";
    assert!(!verify_signature(token, configured, &params(), &signed));
    let (cause, d) = diagnose_signature(
        token,
        configured,
        &headers,
        "/twilio/sms",
        &params(),
        Some(&signed),
    );
    assert!(
        d.starts_with(
            "Twilio signs https://leads.example.com/twilio/sms; PUBLIC_BASE_URL is https://leads.exmaple.com."
        ),
        "{d}"
    );
    assert_eq!(cause, Cause::WrongUrl);
}

#[test]
fn http_behind_a_tls_terminating_balancer_is_diagnosed_as_https() {
    let token = "tok";
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("leads.example.com"));
    let signed = compute_signature(token, "https://leads.example.com/twilio/sms", &params());
    let (_, d) = diagnose_signature(
        token,
        "http://leads.example.com/twilio/sms",
        &headers,
        "/twilio/sms",
        &params(),
        Some(&signed),
    );
    assert!(
        d.starts_with("Twilio signs https://leads.example.com/twilio/sms;"),
        "{d}"
    );
}

#[test]
fn a_signature_matching_nothing_points_at_the_token_and_a_missing_one_says_so() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:5012"));
    let (cause, d) = diagnose_signature(
        "tok",
        "https://a.example/twilio/sms",
        &headers,
        "/twilio/sms",
        &params(),
        Some("bogus"),
    );
    assert_eq!(cause, Cause::NoMatch);
    assert!(
        d.contains("wrong TWILIO_AUTH_TOKEN") && d.contains("http://127.0.0.1:5012/twilio/sms"),
        "{d}"
    );
    let (cause, d) = diagnose_signature(
        "tok",
        "https://a.example/twilio/sms",
        &headers,
        "/twilio/sms",
        &params(),
        None,
    );
    assert_eq!(cause, Cause::Missing);
    assert!(d.contains("no X-Twilio-Signature"), "{d}");
}

#[test]
fn the_claimed_url_takes_forwarded_headers_and_a_non_default_port() {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("10.0.0.7:5012"));
    assert_eq!(
        claimed_url(&h, "/twilio/sms").unwrap(),
        "http://10.0.0.7:5012/twilio/sms"
    );
    h.insert(
        "x-forwarded-host",
        HeaderValue::from_static("leads.example.com"),
    );
    h.insert("x-forwarded-proto", HeaderValue::from_static("https, http"));
    h.insert("x-forwarded-port", HeaderValue::from_static("8443"));
    assert_eq!(
        claimed_url(&h, "/twilio/sms?x=1").unwrap(),
        "https://leads.example.com:8443/twilio/sms?x=1"
    );
    h.insert("x-forwarded-port", HeaderValue::from_static("443"));
    assert_eq!(
        claimed_url(&h, "/p").unwrap(),
        "https://leads.example.com/p"
    );
}

async fn watch(every: u64, down: u64) -> (WebhookWatch, Arc<RecordingAlertSink>) {
    let sink = Arc::new(RecordingAlertSink::default());
    let (alerts, _join) =
        actors::alert_router::AlertRouter::start(sink.clone(), Arc::new(SystemClock))
            .await
            .unwrap();
    (
        WebhookWatch::new(
            alerts,
            Duration::from_secs(every),
            Duration::from_secs(down),
        ),
        sink,
    )
}

#[tokio::test]
async fn signature_refusals_alert_at_once_then_one_summary_per_period_with_the_count() {
    let (w, _sink) = watch(300, 180).await;
    let t0 = Instant::now();
    let first = w.rejected_at(t0, Reason::Signature, Cause::NoMatch, true, "cause A");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].kind, AlertKind::Unauthorized);
    for i in 1..20 {
        let at = t0 + Duration::from_secs(i);
        assert!(
            w.rejected_at(at, Reason::Signature, Cause::NoMatch, true, "cause B")
                .is_empty()
        );
    }
    assert!(
        w.tick_at(t0 + Duration::from_secs(299))
            .iter()
            .all(|a| a.kind != AlertKind::Unauthorized)
    );
    let due = w.tick_at(t0 + Duration::from_secs(300));
    let summary: Vec<_> = due
        .iter()
        .filter(|a| a.kind == AlertKind::Unauthorized)
        .collect();
    assert_eq!(summary.len(), 1);
    assert!(
        summary[0].text.starts_with("19 more webhooks refused"),
        "{}",
        summary[0].text
    );
    assert!(summary[0].text.contains("cause B"));
    assert!(
        w.tick_at(t0 + Duration::from_secs(900))
            .iter()
            .all(|a| a.kind != AlertKind::Unauthorized),
        "nothing pending, nothing said"
    );
    // Form errors are counted, not alerted.
    assert!(
        w.rejected_at(
            t0 + Duration::from_secs(901),
            Reason::Form,
            Cause::Other,
            false,
            "x"
        )
        .is_empty()
    );
}

#[tokio::test]
async fn each_cause_has_its_own_first_alert() {
    // A probe posting without forwarded headers is refused first (no match); Twilio's
    // own requests refused for a wrong URL must still be alerted at once.
    let (w, _sink) = watch(300, 180).await;
    let t0 = Instant::now();
    assert_eq!(
        w.rejected_at(t0, Reason::Signature, Cause::NoMatch, true, "probe")
            .len(),
        1
    );
    let wrong_url = w.rejected_at(
        t0 + Duration::from_secs(1),
        Reason::Signature,
        Cause::WrongUrl,
        true,
        "Twilio signs X; PUBLIC_BASE_URL is Y",
    );
    assert_eq!(wrong_url.len(), 1);
    assert!(wrong_url[0].text.contains("Twilio signs X"));
    assert!(
        w.rejected_at(
            t0 + Duration::from_secs(2),
            Reason::Signature,
            Cause::WrongUrl,
            true,
            "again"
        )
        .is_empty(),
        "the same cause waits for its summary"
    );
    let due = w.tick_at(t0 + Duration::from_secs(301));
    assert_eq!(
        due.iter()
            .filter(|a| a.kind == AlertKind::Unauthorized)
            .count(),
        1
    );
}

#[tokio::test]
async fn refused_with_none_accepted_for_the_period_is_inbound_down_once_then_recovered() {
    let (w, _sink) = watch(300, 180).await;
    let t0 = Instant::now();
    w.rejected_at(
        t0,
        Reason::Signature,
        Cause::NoMatch,
        true,
        "Twilio signs X; PUBLIC_BASE_URL is Y",
    );
    w.unavailable_at(t0 + Duration::from_secs(60), "store down, no fallback");
    assert!(
        !w.tick_at(t0 + Duration::from_secs(179))
            .iter()
            .any(|a| a.event == "inbound_down")
    );
    let down: Vec<_> = w
        .tick_at(t0 + Duration::from_secs(180))
        .into_iter()
        .filter(|a| a.event == "inbound_down")
        .collect();
    assert_eq!(down.len(), 1);
    assert!(
        down[0].text.contains("2 signed webhooks refused"),
        "{}",
        down[0].text
    );
    assert!(
        !w.tick_at(t0 + Duration::from_secs(400))
            .iter()
            .any(|a| a.event == "inbound_down"),
        "once per incident"
    );
    let back = w.accepted_at(t0 + Duration::from_secs(401));
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].event, "inbound_recovered");
    // An accepted webhook in time means it was never down.
    w.rejected_at(
        t0 + Duration::from_secs(500),
        Reason::Signature,
        Cause::NoMatch,
        true,
        "x",
    );
    w.accepted_at(t0 + Duration::from_secs(501));
    assert!(
        !w.tick_at(t0 + Duration::from_secs(900))
            .iter()
            .any(|a| a.event == "inbound_down")
    );
    // Unsigned junk never declares inbound down.
    w.rejected_at(
        t0 + Duration::from_secs(1000),
        Reason::Signature,
        Cause::NoMatch,
        false,
        "no signature",
    );
    assert!(
        !w.tick_at(t0 + Duration::from_secs(2000))
            .iter()
            .any(|a| a.event == "inbound_down")
    );
}
