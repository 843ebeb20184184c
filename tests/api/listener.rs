//! The listener's limits (`src/http/server`) through real sockets: a half-sent head, a body
//! trickled a byte at a time and an idle kept-alive connection are each cut by their
//! timeout; past the in-flight cap a request gets 503 at once and is counted while a signed
//! webhook is still taken; past the connection cap a slow client is evicted so `/health`
//! gets in, and when every connection is busy the newcomer is answered 503 and closed; and
//! the real binary, SIGTERMed with a half-open and a trickling connection held open, exits
//! within its drain and grace with its ordered stop run. Timeouts are set small by
//! environment so each test takes seconds; every wait is bounded.

use std::time::Duration;

use lead_agent::channels::twilio::compute_signature;
use lead_agent::channels::twilio::new_message_sid;
use lead_agent::store::SqlStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::support::processes::Processes;

/// Longest any wait here lasts before the test fails: a failure detector, not a timing
/// assertion (the machine is shared).
const BOUND: Duration = Duration::from_secs(20);

fn addr_of(base_url: &str) -> String {
    base_url.trim_start_matches("http://").to_string()
}

async fn connect(base_url: &str) -> TcpStream {
    TcpStream::connect(addr_of(base_url)).await.unwrap()
}

/// Reads until the server closes the connection (or `BOUND` passes): what it sent, and
/// whether it closed.
async fn read_to_close(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> (String, bool) {
    let mut got = Vec::new();
    let closed = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// Reads until `needle` has arrived; panics if the connection closes or `BOUND` passes.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(needle) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => panic!(
                    "closed before {needle:?}: {:?}",
                    String::from_utf8_lossy(&got)
                ),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} within {BOUND:?}"));
    String::from_utf8_lossy(&got).into_owned()
}

/// A signed webhook's head (with `extra` header lines) and its body, for a raw socket.
fn signed_webhook(from: &str, extra: &str) -> (String, String) {
    let params = sms_params(&new_message_sid(), from, "Hi, is the 2BR still available?");
    let signature = compute_signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/sms"), &params);
    let body = encode_form(&params);
    let head = format!(
        "POST /twilio/sms HTTP/1.1\r\nhost: leads.example.com\r\n\
         content-type: application/x-www-form-urlencoded\r\nx-twilio-signature: {signature}\r\n\
         content-length: {}\r\n{extra}\r\n",
        body.len()
    );
    (head, body)
}

/// A webhook whose head is complete and whose body has not come: the handler is waiting
/// for it (the `100 Continue` says so), so the request is in progress.
async fn webhook_in_progress(base_url: &str, from: &str) -> (TcpStream, String) {
    let mut s = connect(base_url).await;
    let (head, body) = signed_webhook(from, "expect: 100-continue\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    read_until(&mut s, "100 Continue").await;
    (s, body)
}

fn timeouts(kind: &str) -> String {
    format!(r#"lead_agent_http_timeouts_total{{kind="{kind}"}}"#)
}

fn shed(reason: &str) -> String {
    format!(r#"lead_agent_http_shed_total{{reason="{reason}"}}"#)
}

async fn spawn_with(env: &[(&'static str, &str)]) -> TestApp {
    spawn_app_with(TestOptions {
        env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        ..TestOptions::default()
    })
    .await
}

#[tokio::test]
async fn a_connection_that_sends_half_a_request_head_is_closed_after_the_header_timeout() {
    let app = spawn_with(&[("HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    let before = app.metric(&timeouts("header")).await;
    let mut s = connect(&app.base_url).await;
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    let (answer, closed) = read_to_close(&mut s).await;
    assert!(closed, "a half-sent head still holds its connection");
    assert_eq!(answer, "", "closed without an answer");
    assert!(app.metric(&timeouts("header")).await > before);
    // A client that sends its head at once is not affected.
    assert_eq!(app.get_json("/health").await["status"], "ok");
}

#[tokio::test]
async fn a_webhook_body_trickled_byte_by_byte_is_cut_with_408_and_nothing_is_stored() {
    let app = spawn_with(&[("HTTP_BODY_TIMEOUT_SECS", "1")]).await;
    let before = app.metric(&timeouts("body")).await;
    let lead = "+13125550177";
    let mut s = connect(&app.base_url).await;
    let (head, body) = signed_webhook(lead, "");
    s.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = s.into_split();
    // A byte every 100 ms: each arrives well within any per-read timeout; the whole body
    // would take half a minute.
    let trickle = tokio::spawn(async move {
        for byte in body.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return true; // cut
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    let (answer, closed) = read_to_close(&mut reader).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a trickled body is answered 408: {answer:?}"
    );
    assert!(closed, "and its connection is closed");
    trickle.abort();
    assert!(app.metric(&timeouts("body")).await > before);
    assert!(
        app.conversation(lead).await.is_empty(),
        "a cut webhook stores nothing"
    );
    // The same webhook sent at once is taken.
    assert_eq!(
        app.post_sms(lead, "Hi, is the 2BR still available?")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_kept_alive_connection_with_no_next_request_is_closed_after_the_idle_timeout() {
    // The header timeout (hyper's backstop is their sum) is far longer than the idle one.
    let app = spawn_with(&[
        ("HTTP_IDLE_TIMEOUT_SECS", "1"),
        ("HTTP_HEADER_TIMEOUT_SECS", "30"),
    ])
    .await;
    let before = app.metric(&timeouts("idle")).await;
    let mut s = connect(&app.base_url).await;
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_until(&mut s, "\"status\":\"ok\"").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let (more, closed) = read_to_close(&mut s).await;
    assert!(closed, "an idle kept-alive connection is held open");
    assert_eq!(more, "");
    assert!(app.metric(&timeouts("idle")).await > before);
}

#[tokio::test]
async fn past_the_in_flight_cap_a_request_gets_503_at_once_and_is_counted_while_a_signed_webhook_is_taken()
 {
    let app = spawn_with(&[
        ("HTTP_MAX_IN_FLIGHT", "2"),
        ("HTTP_BODY_TIMEOUT_SECS", "30"),
        ("HTTP_REQUEST_TIMEOUT_SECS", "30"),
    ])
    .await;
    let before = app.metric(&shed("in_flight")).await;
    // Two requests in progress: Discord interactions whose bodies have not come.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect(&app.base_url).await;
        s.write_all(
            b"POST /discord/interactions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 100\r\nexpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
        read_until(&mut s, "100 Continue").await;
        held.push(s);
    }
    // Shedding happens before routing: any path but the few never shed.
    let shed_answer = app
        .http
        .get(format!("{}/ops/status", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(shed_answer.status(), 503);
    assert_eq!(
        shed_answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Never for a webhook within its limit, nor for the probes.
    let lead = "+13125550178";
    assert_eq!(app.post_sms(lead, "Still there?").await.0, 200);
    assert!(!app.conversation(lead).await.is_empty());
    let health = app
        .http
        .get(format!("{}/health", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    drop(held);
    // Once they have: routed again (/ops is not on the public listener: 404, not 503).
    wait_until(15, "the held requests to end", || async {
        app.http
            .get(format!("{}/ops/status", app.base_url))
            .send()
            .await
            .is_ok_and(|r| r.status() == 404)
    })
    .await;
    assert!(app.metric(&shed("in_flight")).await > before);
}

#[tokio::test]
async fn past_the_connection_cap_a_slow_client_is_evicted_for_health_and_when_all_are_busy_the_newcomer_is_answered_503_at_once()
 {
    let app = spawn_with(&[
        ("HTTP_MAX_CONNECTIONS", "4"),
        ("HTTP_HEADER_TIMEOUT_SECS", "30"),
        ("HTTP_BODY_TIMEOUT_SECS", "30"),
        ("HTTP_REQUEST_TIMEOUT_SECS", "30"),
    ])
    .await;
    let evicted_before = app.metric("lead_agent_http_evicted_total").await;
    let shed_before = app.metric(&shed("connections")).await;
    // The cap taken by slow-loris connections, none of which the header timeout cuts yet.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut s = connect(&app.base_url).await;
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = fresh
        .get(format!("{}/health", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "a probe gets in past slow clients");
    let (_, closed) = read_to_close(&mut slow[0]).await;
    assert!(closed, "the longest-waiting slow client made room");
    drop(slow);

    // Every connection with a request in progress: webhooks whose bodies are coming.
    let mut busy = Vec::new();
    for i in 0..4 {
        busy.push(webhook_in_progress(&app.base_url, &format!("+1312555019{i}")).await);
    }
    let mut newcomer = connect(&app.base_url).await;
    let (answer, closed) = read_to_close(&mut newcomer).await;
    assert!(
        answer.starts_with("HTTP/1.1 503") && closed,
        "answered 503 and closed at once: {answer:?}"
    );
    // The requests in progress were not cut for it: the first one, finished now, is taken.
    let (mut first, body) = busy.remove(0);
    first.write_all(body.as_bytes()).await.unwrap();
    let taken = read_until(&mut first, "</Response>").await;
    assert!(taken.contains("200 OK"), "{taken}");
    drop(busy);
    wait_until(15, "/health to answer once the busy ones end", || async {
        fresh
            .get(format!("{}/health", app.base_url))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(app.metric("lead_agent_http_evicted_total").await > evicted_before);
    assert!(app.metric(&shed("connections")).await > shed_before);
    assert!(!app.conversation("+13125550190").await.is_empty());
    for i in 1..4 {
        assert!(
            app.conversation(&format!("+1312555019{i}"))
                .await
                .is_empty(),
            "an unfinished webhook stores nothing"
        );
    }
}

#[tokio::test]
async fn sigterm_with_a_half_open_and_a_trickling_connection_exits_within_the_drain_and_runs_the_ordered_stop()
 {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("lead-agent.db").display());
    let journal = dir.path().join("inbound.jsonl").display().to_string();
    let mut processes = Processes::new(env!("CARGO_BIN_EXE_lead-agent"));
    let env = [
        ("BIND_ADDRESS", "127.0.0.1"),
        ("DATABASE_URL", database.as_str()),
        ("INBOUND_JOURNAL_PATH", journal.as_str()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("PUBLIC_BASE_URL", PUBLIC_URL),
        ("HTTP_SHUTDOWN_SECS", "2"),
        ("HTTP_HEADER_TIMEOUT_SECS", "50"),
        ("HTTP_BODY_TIMEOUT_SECS", "50"),
        ("HTTP_REQUEST_TIMEOUT_SECS", "50"),
        ("SHUTDOWN_GRACE_SECS", "2"),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ];
    let url = processes.start_ready("serve", &["serve"], env).await;
    let store = SqlStore::connect(&database).await.unwrap();
    wait_until(15, "the scheduler to take its lease", || async {
        store
            .lease_holder(lead_agent::scheduler::LEASE)
            .await
            .unwrap()
            .is_some()
    })
    .await;

    let mut half_open = connect(&url).await;
    half_open
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let (mut reader, mut writer) = webhook_in_progress(&url, "+13125550166")
        .await
        .0
        .into_split();
    let trickle = tokio::spawn(async move {
        while writer.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let pid = processes.pid("serve").unwrap();
    let signalled = tokio::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // HTTP_SHUTDOWN_SECS + SHUTDOWN_GRACE_SECS (no turn runs, so that part is short), with
    // room for a loaded machine; before the listener had deadlines it never exited.
    let bound = Duration::from_secs(2 + 2 + 15);
    let exit = loop {
        if let Some(status) = processes.exit_status("serve") {
            break status;
        }
        if signalled.elapsed() > bound {
            panic!(
                "still running {bound:?} after SIGTERM\n{}",
                processes.log_tail("serve", 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("exited {:?} after SIGTERM", signalled.elapsed());
    trickle.abort();
    assert!(
        exit.success(),
        "{exit}\n{}",
        processes.log_tail("serve", 20)
    );
    let log = std::fs::read_to_string(processes.log_path("serve")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        log.contains("HTTP_SHUTDOWN_SECS passed with requests in progress"),
        "the trickling request was dropped at the deadline:\n{}",
        processes.log_tail("serve", 20)
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("stopped in order")),
        "the ordered stop ran to its end:\n{}",
        processes.log_tail("serve", 20)
    );
    assert_eq!(
        store
            .lease_holder(lead_agent::scheduler::LEASE)
            .await
            .unwrap(),
        None,
        "the scheduler handed its lease over"
    );
    let (_, closed) = read_to_close(&mut half_open).await;
    assert!(closed);
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(BOUND, reader.read_to_end(&mut rest)).await;
    assert!(
        store
            .conversation(&actors::ports::LeadId::new("+13125550166"), 10)
            .await
            .unwrap()
            .is_empty(),
        "the unfinished webhook stored nothing"
    );
}

#[tokio::test]
async fn a_connection_cap_set_above_the_file_descriptor_limit_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("lead-agent.db").display());
    let journal = dir.path().join("inbound.jsonl").display().to_string();
    let mut processes = Processes::new(env!("CARGO_BIN_EXE_lead-agent"));
    // Far above any hard RLIMIT_NOFILE a machine gives a process.
    let env = [
        ("BIND_ADDRESS", "127.0.0.1"),
        ("DATABASE_URL", database.as_str()),
        ("INBOUND_JOURNAL_PATH", journal.as_str()),
        ("HTTP_MAX_CONNECTIONS", "1000000000"),
    ];
    processes.start("serve", &["serve"], env);
    let started = tokio::time::Instant::now();
    let exit = loop {
        if let Some(status) = processes.exit_status("serve") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still running with a cap that cannot fit\n{}",
            processes.log_tail("serve", 20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!exit.success());
    let log = std::fs::read_to_string(processes.log_path("serve")).unwrap();
    assert!(
        log.contains("HTTP_MAX_CONNECTIONS=1000000000 does not fit")
            && log.contains("file-descriptor limit"),
        "{log}"
    );
}
