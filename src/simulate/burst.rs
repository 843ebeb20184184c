//! The load generator: signed webhooks prepared before the clock starts, keep-alive
//! clients warmed up, the burst fired (closed loop or paced), and the endpoint that does
//! nothing, which measures the generator's own ceiling.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::channels::twilio::compute_signature;
use crate::dev_sms::new_message_sid;

use super::report::{Burst, Latency};

/// The lead numbers of a run: distinct, valid-looking, stable.
pub fn lead_number(i: usize) -> String {
    format!("+1555{i:07}")
}

/// One prepared webhook: its form body and signature, computed before the clock starts so
/// that the load generator only sends.
pub(super) struct Webhook {
    pub(super) body: String,
    pub(super) signature: Option<String>,
}

pub(super) fn prepare_webhooks(leads: usize, signing: Option<&(String, String)>) -> Vec<Webhook> {
    (0..leads)
        .map(|i| {
            let sid = new_message_sid();
            let from = lead_number(i);
            let params: Vec<(String, String)> = [
                ("ToCountry", "US"),
                ("SmsMessageSid", sid.as_str()),
                ("NumMedia", "0"),
                ("MessageSid", sid.as_str()),
                ("AccountSid", "ACsimulator0000000000000000000000"),
                ("From", from.as_str()),
                ("To", "+13125550000"),
                ("Body", "Hi, is the 2BR still available? When can I tour?"),
                ("NumSegments", "1"),
                ("ApiVersion", "2010-04-01"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let signature = signing.map(|(token, url)| compute_signature(token, url, &params));
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &params {
                form.append_pair(k, v);
            }
            Webhook {
                body: form.finish(),
                signature,
            }
        })
        .collect()
}

/// Opens `concurrency` keep-alive connections to `base` before a burst, so the burst
/// measures requests and not TCP handshakes.
pub(super) async fn warm_up(http: &reqwest::Client, base: &str, concurrency: usize) {
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url) = (http.clone(), format!("{base}/health"));
        tasks.push(tokio::spawn(async move {
            let _ = http.get(url).send().await.map(|r| r.bytes());
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Posts every webhook to `base`/twilio/sms with `concurrency` requests in flight. Returns
/// the burst summary and, per webhook, when it was sent.
pub(super) async fn fire(
    http: &reqwest::Client,
    base: &str,
    webhooks: Arc<Vec<Webhook>>,
    concurrency: usize,
    rate: Option<f64>,
    accepted_counter: Arc<AtomicUsize>,
) -> (Burst, Vec<Instant>) {
    let url = Arc::new(format!("{base}/twilio/sms"));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.min(webhooks.len()) {
        let (http, url, next, webhooks, accepted) = (
            http.clone(),
            url.clone(),
            next.clone(),
            webhooks.clone(),
            accepted_counter.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(w) = webhooks.get(i) else {
                    return results;
                };
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let mut request = http
                    .post(url.as_str())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(w.body.clone());
                if let Some(sig) = &w.signature {
                    request = request.header("X-Twilio-Signature", sig);
                }
                let sent = Instant::now();
                let ok = match request.send().await {
                    // The body is read so the connection goes back to the pool.
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let took = sent.elapsed();
                if ok {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                results.push((i, sent, took, ok));
            }
        }));
    }
    let mut sent_at = vec![started; webhooks.len()];
    let mut acks = Vec::with_capacity(webhooks.len());
    let mut accepted = 0;
    for t in tasks {
        for (i, sent, took, ok) in t.await.unwrap_or_default() {
            sent_at[i] = sent;
            if ok {
                accepted += 1;
                acks.push(took);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let burst = Burst {
        requests: webhooks.len(),
        accepted,
        rejected: webhooks.len() - accepted,
        elapsed_secs: elapsed,
        webhooks_per_sec: accepted as f64 / elapsed.max(1e-9),
        ack: Latency::of(&mut acks),
    };
    (burst, sent_at)
}

pub(super) fn load_client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .http1_only()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// A webhook endpoint that does nothing: the same requests against it show what the load
/// generator (and loopback HTTP) can do by itself.
pub(super) async fn start_trivial_endpoint() -> anyhow::Result<String> {
    use axum::http::header;
    let router = axum::Router::new().route(
        "/twilio/sms",
        axum::routing::post(|| async {
            (
                [(header::CONTENT_TYPE, "text/xml")],
                crate::http::twilio::EMPTY_TWIML,
            )
        }),
    );
    let bound = testkit::serve_on(SocketAddr::from(([127, 0, 0, 1], 0)), router).await?;
    Ok(format!("http://{bound}"))
}
