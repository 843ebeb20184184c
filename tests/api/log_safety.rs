//! Logs safe to ship (issue 12, item 4), through the real binary and its terminal format:
//! an SMS whose body carries a newline and a fake `ERROR` line, from a known number. Its
//! text reaches the log the way the issue found it — quoted by an alert, here the HITL
//! hold's expiry (a critical alert, so the log sink writes it beside Discord), whose held
//! reply is the fake model's "Reply to: <body>" — and its number reaches the spans of the
//! webhook and the turn and the dry-run sender's line. The captured output must hold no
//! forged line start and no raw number, and the masked form must be there.

use std::time::Duration;

use crate::fake_discord::{FakeDiscord, InteractionSigner};
use crate::support::fake_anthropic::FakeAnthropic;
use crate::support::processes::Processes;
use crate::support::{encode_form, sms_params, wait_until};

const LEAD: &str = "+13125550142";
const FORGED_START: &str = "1999-01-01T00:00:00.000000Z";

/// The log without ANSI colour codes (the pretty format colours a terminal's output).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[tokio::test]
async fn a_forged_log_line_in_an_sms_is_escaped_and_the_number_is_masked_in_the_pretty_log() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeAnthropic::start(Duration::ZERO).await;
    let discord = FakeDiscord::start().await;
    let signer = InteractionSigner::generate();
    let mut env: Vec<(&str, String)> = vec![
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("lead-agent.db").display()),
        ),
        (
            "INBOUND_JOURNAL_PATH",
            dir.path().join("inbound.jsonl").display().to_string(),
        ),
        ("LOG_FORMAT", "pretty".into()),
        ("RUST_LOG", "info,lead_agent=debug,actors=debug".into()),
        ("ANTHROPIC_API_KEY", "test-key".into()),
        ("ANTHROPIC_BASE_URL", llm.url.clone()),
        ("HITL_ENABLED", "true".into()),
        ("HITL_HOLD_TIMEOUT_SECS", "1".into()),
        ("DISCORD_PUBLIC_KEY", signer.public_key_hex()),
        ("DISCORD_CHANNEL_HITL_FEEDBACK", "555".into()),
    ];
    env.extend(discord.env());
    let mut processes = Processes::new(env!("CARGO_BIN_EXE_lead-agent"));
    let url = processes
        .start_ready(
            "serve",
            &["serve"],
            env.iter().map(|(k, v)| (*k, v.as_str())),
        )
        .await;

    let body = format!("hi\n{FORGED_START} ERROR lead_agent: forged by the lead\r\u{1b}[2Jgone");
    let params = sms_params("SM0123456789abcdef0123456789abcd42", LEAD, &body);
    let status = reqwest::Client::new()
        .post(format!("{url}/twilio/sms"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(&params))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    let log_path = processes.log_path("serve");
    let read = || plain(&std::fs::read_to_string(&log_path).unwrap_or_default());
    wait_until(60, "the expired hold's alert in the log", || async {
        read().contains("hitl_hold_expired")
    })
    .await;
    processes.signal("serve", "-TERM");
    let log = read();

    let forged: Vec<&str> = log
        .lines()
        .filter(|l| l.trim_start().starts_with(FORGED_START))
        .collect();
    assert!(forged.is_empty(), "forged lines: {forged:?}\n{log}");
    assert!(!log.contains('\r') && !log.contains("\u{1b}[2J"), "{log}");
    assert!(
        log.contains(&format!("\\n{FORGED_START} ERROR lead_agent: forged")),
        "the body was logged, escaped:\n{log}"
    );

    assert!(
        !log.contains("3125550142"),
        "a raw number in the log:\n{log}"
    );
    assert!(log.contains("+1******0142"), "the masked number:\n{log}");
}
