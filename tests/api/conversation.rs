//! Conversations: bursts, ordering, the LLM cap, long histories.

use std::time::Duration;

use actors::ports::{ChatLine, LeadId, Role};

use crate::helpers::*;

#[tokio::test]
async fn three_quick_messages_are_answered_in_order_and_coalesced_without_overlap() {
    let app = spawn_app_with(TestOptions {
        llm_latency: Duration::from_millis(400),
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125550201";
    app.post_sms(lead, "Hi").await;
    // The first turn is running when the next two arrive.
    wait_until(5, "the first model call", || async {
        !app.llm.requests().is_empty()
    })
    .await;
    app.post_sms(lead, "is the 2BR free?").await;
    app.post_sms(lead, "price?").await;
    app.wait_settled(lead).await;

    let conv = app.conversation(lead).await;
    let inbound: Vec<_> = conv.iter().filter(|m| m.direction == "inbound").collect();
    assert_eq!(inbound.len(), 3);
    assert!(inbound.iter().all(|m| m.state == "answered"));
    let replies = app.twilio.sent_to(lead);
    assert_eq!(
        replies.len(),
        2,
        "one reply to the first, one to the burst: {replies:?}"
    );
    // The burst's reply answered both later messages, which reached the model in order.
    assert_eq!(replies[1], "Reply to: is the 2BR free?\nprice?");
    assert_eq!(inbound[1].reply_id, inbound[2].reply_id);
    assert!(
        !app.llm.saw_same_lead_overlap(),
        "never two model calls for one lead at once"
    );

    // The store's record of turns agrees: no two turns of the lead overlapped.
    let turns = app.store.turns(&LeadId::new(lead)).await.unwrap();
    for pair in turns.windows(2) {
        let first_end = pair[0].finished_at.clone().expect("finished");
        assert!(first_end <= pair[1].started_at, "{turns:?}");
    }
}

#[tokio::test]
async fn fifty_leads_at_once_never_exceed_the_llm_cap() {
    let app = spawn_app_with(TestOptions {
        llm_latency: Duration::from_millis(100),
        env: vec![("LLM_CONCURRENCY", "4".into())],
        ..TestOptions::default()
    })
    .await;
    let leads: Vec<String> = (0..50)
        .map(|i| format!("+1312555{:04}", 3000 + i))
        .collect();
    let posts = leads.iter().map(|l| app.post_sms(l, "Hi there"));
    for (status, _) in futures::future::join_all(posts).await {
        assert_eq!(status, 200);
    }
    wait_until(30, "all 50 leads answered", || async {
        app.twilio.sent().len() >= 50
    })
    .await;
    for lead in &leads {
        assert_eq!(app.twilio.sent_to(lead).len(), 1, "{lead}");
    }
    assert!(
        app.llm.max_in_flight() <= 4,
        "saw {}",
        app.llm.max_in_flight()
    );
    assert_eq!(
        app.llm.max_in_flight(),
        4,
        "the cap is used, not just respected"
    );
}

#[tokio::test]
async fn a_lead_with_ten_thousand_stored_messages_gets_a_prompt_within_the_window() {
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("CHAT_WINDOW_MESSAGES", "20".into()),
            ("CHAT_WINDOW_BYTES", "2048".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125550301";
    let history: Vec<ChatLine> = (0..10_000u32)
        .map(|i| ChatLine {
            role: if i.is_multiple_of(2) {
                Role::Lead
            } else {
                Role::Agent
            },
            text: format!("history line {i} with some words to take up space"),
        })
        .collect();
    app.store
        .import_history(&LeadId::new(lead), &history)
        .await
        .unwrap();
    app.post_sms(lead, "Still available?").await;
    app.wait_for_sms(lead, 1).await;

    let request = &app.llm.requests()[0];
    let messages = request["messages"].as_array().unwrap();
    let lines: Vec<&str> = messages
        .iter()
        .flat_map(|m| m["content"].as_str().unwrap().split('\n'))
        // The client's marker for a window that opens on our own line is not history.
        .filter(|l| *l != "(earlier conversation omitted)")
        .collect();
    assert!(lines.len() <= 20, "{} lines", lines.len());
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    assert!(bytes <= 2048, "{bytes} bytes");
    assert_eq!(*lines.last().unwrap(), "Still available?");
    assert!(lines.contains(&"history line 9999 with some words to take up space"));
}
