//! The embedded defaults of `lead-agent serve`: no keys, no services — and restart safety.

use std::process::Command;

use actors::ports::{Claim, LeadId, Store};
use lead_agent::store::{InboundKind, NewInbound, SqlStore, fresh_test_database_url};

use crate::helpers::*;

fn embedded() -> TestOptions {
    TestOptions {
        embedded_defaults: true,
        ..TestOptions::default()
    }
}

#[tokio::test]
async fn with_no_keys_a_local_webhook_is_answered_by_the_rules_responder_in_dry_run() {
    let app = spawn_app_with(embedded()).await;
    let lead = "+13125550901";
    // Unsigned: without TWILIO_AUTH_TOKEN only loopback peers are accepted, and we are one.
    let params = sms_params(
        "SM0000000000000000000000000000e001",
        lead,
        "Hi, is the 2BR still available?",
    );
    let (status, _) = app
        .post_form(
            &encode_form(&params),
            None,
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(status, 200);
    app.wait_settled(lead).await;
    let conv = app.conversation(lead).await;
    assert_eq!(conv[1].provider.as_deref(), Some("rules"));
    assert_eq!(conv[1].state, "sent");
    assert!(
        conv[1]
            .message_sid
            .as_deref()
            .unwrap()
            .starts_with("DRYRUN")
    );
    assert!(app.twilio.sent().is_empty(), "nothing reaches any carrier");
}

#[tokio::test]
async fn the_dev_helper_prints_the_reply_that_went_out() {
    let app = spawn_app_with(embedded()).await;
    let url = app.base_url.clone();
    let ops_url = app.ops_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_lead-agent"))
            .args([
                "sms",
                "--from",
                "+13125550902",
                "--url",
                &url,
                "--ops-url",
                &ops_url,
                "Hi, is the 2BR still available?",
            ])
            .env_remove("TWILIO_AUTH_TOKEN")
            .env_remove("OPS_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("< [rules] "), "{stdout}");
}

/// The previous process stored two messages, committed a reply to the first and was
/// killed after claiming it for sending; the second was never processed.
async fn crashed_database(lead: &LeadId) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_test_database_url(dir.path()).await;
    let store = SqlStore::connect(&db).await.unwrap();
    for (sid, body) in [
        ("SM0000000000000000000000000000c001", "first"),
        ("SM0000000000000000000000000000c002", "second"),
    ] {
        store
            .accept_inbound(
                NewInbound {
                    message_sid: sid,
                    from: lead,
                    body,
                    synthetic: false,
                },
                InboundKind::Conversation,
            )
            .await
            .unwrap();
    }
    let first = store.lead_work(lead).await.unwrap().pending[0].id;
    let reply = store
        .commit_reply(lead, &[first], "reply to first", "anthropic")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.claim_send(reply).await.unwrap(), Claim::Send);
    (db, dir)
}

/// The restarted app, on the crashed database, with the in-doubt policy in seconds.
fn restarted_on(db: String) -> TestOptions {
    TestOptions {
        database: Some(db),
        env: vec![
            ("OUTBOX_SWEEP_SECS", "0.2".into()),
            ("OUTBOX_IN_DOUBT_WAIT_SECS", "1".into()),
            ("OUTBOX_RECHECK_SECS", "0.5".into()),
        ],
        ..TestOptions::default()
    }
}

#[tokio::test]
async fn after_a_crash_unanswered_messages_are_answered_and_an_unsent_reply_goes_out_once() {
    let lead = LeadId::new("+13125551001");
    let (db, _dir) = crashed_database(&lead).await;
    let app = spawn_app_with(restarted_on(db)).await;
    // The second message is answered at once; the interrupted reply is in doubt until two
    // checks spaced apart find nothing at Twilio, then it goes out, once.
    let mut sent = app.wait_for_sms(lead.as_str(), 2).await;
    sent.sort();
    assert_eq!(sent, vec!["Reply to: second", "reply to first"]);
    app.wait_settled(lead.as_str()).await;
    assert_eq!(app.twilio.sent_to(lead.as_str()).len(), 2);
    assert!(
        app.alert_events()
            .await
            .contains(&"in_doubt_resent".to_string())
    );
}

#[tokio::test]
async fn after_a_crash_a_reply_twilio_already_has_is_recorded_sent_and_not_resent() {
    let lead = LeadId::new("+13125551002");
    let (db, _dir) = crashed_database(&lead).await;
    let app =
        spawn_app_with_twilio_history(restarted_on(db), &[(lead.as_str(), "reply to first")]).await;
    let sent = app.wait_for_sms(lead.as_str(), 2).await;
    assert_eq!(
        sent,
        vec!["reply to first", "Reply to: second"],
        "the first only once: from before the crash"
    );
    wait_until(20, "the interrupted reply to be found sent", || async {
        let conv = app.conversation(lead.as_str()).await;
        conv.iter()
            .any(|m| m.body == "reply to first" && m.state == "sent")
    })
    .await;
    assert!(
        app.alert_events()
            .await
            .contains(&"in_doubt_resolved".to_string())
    );
    assert_eq!(app.twilio.sent_to(lead.as_str()).len(), 2);
}
