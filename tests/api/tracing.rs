//! Tracing as production runs it: the real binary (`serve`, role all, one process), its
//! exporters configured by environment only, an SMS through the real webhook, and the fake
//! OTLP receiver (`testkit::fake_otlp`) decoding what arrives. A process of its own because
//! the subscriber and the tracer provider are process-wide: the in-process apps of the
//! other tests never install an exporter, so nothing here clashes with them.
//!
//! `RUST_LOG=warn` throughout: the export has its own filter, so a quiet log does not
//! blind the traces.

use std::time::Duration;

use lead_agent::channels::twilio::{compute_signature, new_message_sid};
use lead_agent::store::fresh_test_database_url;
use testkit::fake_otlp::{FakeOtlp, ReceivedSpan};

use crate::helpers::*;
use crate::support::processes::Processes;

const MODEL: &str = "claude-trace-test";

struct Traced {
    processes: Processes,
    url: String,
    twilio: FakeTwilio,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Traced {
    /// The service with the fakes and `extra` variables, ready.
    async fn start(extra: &[(&'static str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = fresh_test_database_url(dir.path()).await;
        let twilio = FakeTwilio::start().await;
        let llm = FakeAnthropic::start(Duration::from_millis(20)).await;
        let journal = dir.path().join("inbound.jsonl").display().to_string();
        let mut env: Vec<(&'static str, String)> = vec![
            ("BIND_ADDRESS", "127.0.0.1".into()),
            ("DATABASE_URL", database),
            ("INBOUND_JOURNAL_PATH", journal),
            ("ANTHROPIC_MODEL", MODEL.into()),
            // A scheduler job every second: its runs are traced too.
            ("SCHEDULE_HEARTBEAT", "* * * * * *".into()),
            ("LOG_FORMAT", "json".into()),
            ("RUST_LOG", "warn".into()),
        ];
        env.extend(fake_vendor_env(&twilio, &llm));
        env.extend(extra.iter().cloned());
        let mut processes = Processes::new(env!("CARGO_BIN_EXE_lead-agent"));
        let url = processes
            .start_ready(
                "traced",
                &["serve"],
                env.iter().map(|(k, v)| (*k, v.as_str())),
            )
            .await;
        Self {
            processes,
            url,
            twilio,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn post_sms(&self, from: &str, body: &str) {
        let params = sms_params(&new_message_sid(), from, body);
        let signature = compute_signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/sms"), &params);
        let status = self
            .http
            .post(format!("{}/twilio/sms", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .body(encode_form(&params))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.processes.log_path("traced")).unwrap_or_default()
    }
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// The turn that replied to `lead`'s message, with its model call and its send, when all
/// three have arrived.
fn replied_trace(spans: &[ReceivedSpan]) -> Option<(ReceivedSpan, ReceivedSpan, ReceivedSpan)> {
    let turn = named(spans, "lead.turn")
        .into_iter()
        .find(|s| s.attr("outcome") == Some("replied"))?;
    let in_turn = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name && s.trace_id == turn.trace_id)
            .cloned()
    };
    Some((
        turn.clone(),
        in_turn(&format!("chat {MODEL}"))?,
        in_turn("sms.send")?,
    ))
}

#[tokio::test]
async fn a_turn_is_one_trace_of_its_model_call_and_its_send_and_no_span_carries_the_number() {
    let otlp = FakeOtlp::start().await;
    let app = Traced::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20collector-token".into(),
        ),
        ("OTEL_SERVICE_NAME", "lead-agent-trace-test".into()),
    ])
    .await;
    let lead = "+13125550177";
    app.post_sms(lead, "Hi, is the 2BR on Elm still available?")
        .await;
    wait_until(30, "the reply at Twilio", || async {
        !app.twilio.sent_to(lead).is_empty()
    })
    .await;
    wait_until(
        30,
        "the turn, its model call and its send at the collector",
        || async { replied_trace(&otlp.spans()).is_some() },
    )
    .await;
    let spans = otlp.spans();
    let (turn, call, send) = replied_trace(&spans).unwrap();

    // One trace, the turn its root, the call and the send its children.
    assert!(turn.parent_span_id.is_empty(), "{turn:?}");
    assert_eq!(call.parent_span_id, turn.span_id);
    assert_eq!(send.parent_span_id, turn.span_id);
    assert_eq!(
        turn.attr("lead"),
        Some("+1******0177"),
        "masked as in the log"
    );

    // The model call in GenAI semantic conventions.
    assert_eq!(call.attr("gen_ai.system"), Some("anthropic"));
    assert_eq!(call.attr("gen_ai.request.model"), Some(MODEL));
    assert_eq!(call.attr("gen_ai.operation.name"), Some("chat"));
    assert_eq!(call.attr("gen_ai.usage.input_tokens"), Some("10"));
    assert_eq!(call.attr("gen_ai.usage.output_tokens"), Some("5"));
    assert_eq!(call.attr("outcome"), Some("ok"));
    assert!(call.attr("latency_ms").is_some(), "{call:?}");
    assert_eq!(call.kind, 3, "a client span");

    assert_eq!(send.attr("outcome"), Some("sent"));
    assert_eq!(send.attr("attempts"), Some("1"));
    assert_eq!(
        turn.resource.get("service.name").map(String::as_str),
        Some("lead-agent-trace-test")
    );

    // A scheduler job run is a trace of its own.
    wait_until(30, "a heartbeat job span", || async {
        named(&otlp.spans(), "scheduler.job heartbeat")
            .iter()
            .any(|s| s.attr("outcome") == Some("ran"))
    })
    .await;

    // No raw number anywhere: no attribute, event or resource value of any span.
    for span in otlp.spans() {
        for text in span.all_text() {
            assert!(
                !text.contains("3125550177"),
                "a raw phone number in span {}: {text:?}",
                span.name
            );
        }
    }
    // The collector's own headers, on its path; protobuf.
    let requests = otlp.requests();
    assert!(
        requests.iter().all(|r| r.path == "/v1/traces"),
        "{requests:?}"
    );
    assert!(requests.iter().all(|r| {
        r.headers.get("authorization").map(String::as_str) == Some("Bearer collector-token")
            && r.headers.get("content-type").map(String::as_str) == Some("application/x-protobuf")
    }));
}

#[tokio::test]
async fn langsmith_mode_sends_to_its_otel_path_with_its_key_and_project_and_nothing_else() {
    let collector = FakeOtlp::start().await;
    let langsmith = FakeOtlp::start().await;
    let app = Traced::start(&[
        // Both at once: each gets its own headers only.
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.clone()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=collector-only".into(),
        ),
        ("LANGSMITH_TRACING", "true".into()),
        ("LANGSMITH_ENDPOINT", langsmith.url.clone()),
        ("LANGSMITH_API_KEY", "lsv2_test_key".into()),
        ("LANGSMITH_PROJECT", "landlord-rep".into()),
    ])
    .await;
    app.post_sms("+13125550178", "Can I see it Saturday?").await;
    wait_until(
        30,
        "the turn's trace at LangSmith and at the collector",
        || async {
            replied_trace(&langsmith.spans()).is_some()
                && replied_trace(&collector.spans()).is_some()
        },
    )
    .await;
    let requests = langsmith.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.path, "/otel/v1/traces");
        assert_eq!(
            r.headers.get("x-api-key").map(String::as_str),
            Some("lsv2_test_key")
        );
        assert_eq!(
            r.headers.get("langsmith-project").map(String::as_str),
            Some("landlord-rep")
        );
        assert!(
            !r.headers.contains_key("authorization"),
            "the collector's token reached LangSmith: {r:?}"
        );
    }
    for r in collector.requests() {
        assert!(
            !r.headers.contains_key("x-api-key"),
            "LangSmith's key reached the collector"
        );
    }
    let (_, call, _) = replied_trace(&langsmith.spans()).unwrap();
    assert_eq!(call.attr("langsmith.span.kind"), Some("llm"));
}

#[tokio::test]
async fn a_collector_that_keeps_failing_costs_no_reply_and_raises_one_alert() {
    let otlp = FakeOtlp::start().await;
    otlp.down(503);
    let mut app = Traced::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone()),
        ("TRACE_EXPORT_ALERT_SECS", "1".into()),
    ])
    .await;
    let lead = "+13125550179";
    let started = std::time::Instant::now();
    app.post_sms(lead, "Hello?").await;
    wait_until(15, "the reply, while the collector is down", || async {
        !app.twilio.sent_to(lead).is_empty()
    })
    .await;
    let replied_in = started.elapsed();
    wait_until(30, "the trace_export_failing alert in the log", || async {
        app.log().contains("trace_export_failing")
    })
    .await;
    let ops = app.processes.ops_url("traced");
    let failed = scrape_metric(
        &app.http,
        &ops,
        r#"lead_agent_trace_exports_total{exporter="otlp",outcome="failed"}"#,
    )
    .await;
    assert!(failed >= 1.0, "failed exports are counted");
    // A few more failed exports: still one alert for the streak.
    // The watch looks every 200 ms (a fifth of TRACE_EXPORT_ALERT_SECS); these exports take
    // far longer than that, so a second alert would be in the log by now.
    wait_until(30, "more failed exports", || async {
        otlp.requests().len() >= 4
    })
    .await;
    assert_eq!(
        app.log()
            .matches("\"event\":\"trace_export_failing\"")
            .count(),
        1,
        "one alert per failing streak"
    );
    assert!(
        replied_in < Duration::from_secs(10),
        "the reply waited for the exporter: {replied_in:?}"
    );
}

#[tokio::test]
async fn spans_still_queued_at_sigterm_are_flushed_by_the_ordered_stop() {
    let otlp = FakeOtlp::start().await;
    let mut app = Traced::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.clone()),
        ("SCHEDULE_HEARTBEAT", "off".into()),
    ])
    .await;
    let lead = "+13125550180";
    app.post_sms(lead, "Is parking included?").await;
    wait_until(15, "the reply", || async {
        !app.twilio.sent_to(lead).is_empty()
    })
    .await;
    // At once: the batch goes out every 2 s, so the turn's spans are most likely still
    // queued; the stop waits for the turn, then flushes. Not `Processes::signal`, which
    // blocks this thread in `wait` — and this thread serves the fake receiver.
    let pid = app.processes.pid("traced").unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_until(30, "the service to stop in order", || {
        let exited = app.processes.exit_status("traced").is_some();
        async move { exited }
    })
    .await;
    assert!(
        replied_trace(&otlp.spans()).is_some(),
        "the turn's trace was not flushed at shutdown: {:?}\n{}",
        otlp.spans().iter().map(|s| &s.name).collect::<Vec<_>>(),
        app.processes.log_tail("traced", 20)
    );
}
