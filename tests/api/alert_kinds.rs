//! Every alert kind has something that raises it (a kind with no trigger is a Discord
//! channel an operator watches in vain), and the triggers of this issue work through the
//! real path: the per-reply sanity check, the AGENT_RESPONSE stream of sent replies, and
//! CHAT_HISTORY_NOT_FOUND for a lead with no stored conversation, BUILDING_OPTIONS when the
//! brain's requirements match buildings.

use std::collections::BTreeSet;
use std::path::Path;

use actors::alert_router::AlertKind;

use crate::helpers::{TestOptions, spawn_app_with, wait_until};
use crate::llm_fakes::*;

/// Kinds nothing raises yet, each with the reason; the scan below fails when this list
/// is not exactly the kinds without a trigger (so a new trigger shrinks it, and a lost one
/// is caught). README's alert table says the same. Empty since the Locator agent (issue 14
/// item 6): its profile routes its turn events to the LOCATOR channel.
const NOT_RAISED_YET: [(AlertKind, &str); 0] = [];

/// Production source of both crates: every `.rs` under `src/` and `actors/src/`, with
/// test modules (from the first `#[cfg(test)]`), `tests.rs` files and `testing/` left out,
/// and the files that only name kinds (their definition, the channel settings).
fn production_sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if name != "testing" {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = match text.find("#[cfg(test)]") {
                    Some(at) => text[..at].to_string(),
                    None => text,
                };
                out.push((path.display().to_string(), code));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    walk(&root.join("src"), &mut out);
    walk(&root.join("actors/src"), &mut out);
    out.retain(|(path, _)| {
        !path.ends_with("actors/src/alert_router.rs") && !path.contains("/src/config/")
    });
    out
}

#[test]
fn every_alert_kind_is_raised_somewhere_but_the_ones_listed_as_not_yet() {
    let sources = production_sources();
    assert!(sources.len() > 50, "the scan found the source tree");
    let mut unraised = BTreeSet::new();
    for kind in AlertKind::ALL {
        let mut needles = vec![format!("AlertKind::{kind:?}")];
        match kind {
            AlertKind::Error => needles.push("Alert::error(".into()),
            AlertKind::Event => needles.push("Alert::event(".into()),
            _ => {}
        }
        // A channel only an agent profile fills (LOCATOR: the Locator's EVENT and
        // AGENT_RESPONSE alerts) is reached too; the profiles live in src/config/, which
        // the scan leaves out, so they are asked.
        let raised = sources
            .iter()
            .any(|(_, code)| needles.iter().any(|n| code.contains(n.as_str())))
            || lead_agent::config::profile::routed_channel_kinds().contains(&kind);
        if !raised {
            unraised.insert(kind.key());
        }
    }
    let expected: BTreeSet<&str> = NOT_RAISED_YET.iter().map(|(k, _)| k.key()).collect();
    assert_eq!(
        unraised, expected,
        "kinds without a trigger in production code (left) must be exactly the ones \
         NOT_RAISED_YET lists (right): a new trigger takes its kind off that list"
    );
}

const LEAD: &str = "+13125550161";

async fn app_answering(texts: &[&str]) -> (crate::helpers::TestApp, FakeProvider) {
    let anthropic = FakeProvider::anthropic().await;
    anthropic.script(
        texts
            .iter()
            .map(|t| Canned::ok(anthropic_text(t)))
            .collect(),
    );
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("ANTHROPIC_BASE_URL", anthropic.url.clone()),
            ("ANTHROPIC_MODEL", "claude-test".to_string()),
        ],
        ..TestOptions::default()
    })
    .await;
    (app, anthropic)
}

async fn alert_with(app: &crate::helpers::TestApp, event: &str) -> serde_json::Value {
    wait_until(15, event, || async {
        app.alert_events().await.iter().any(|e| e == event)
    })
    .await;
    app.alerts()
        .await
        .into_iter()
        .find(|a| a["event"] == event)
        .unwrap()
}

#[tokio::test]
async fn a_templated_reply_is_not_sent_and_raises_sanity_check_a_good_one_goes_out_with_agent_response()
 {
    let (app, _anthropic) = app_answering(&[
        "Hi {{first_name}}, thanks for reaching out!",
        "Yes, the 2BR at Maple Court is available now. When would you like to move in?",
    ])
    .await;

    let (status, _) = app.post_sms(LEAD, "Is the 2BR still available?").await;
    assert_eq!(status, 200);
    // First contact: the store has no conversation with this lead.
    let history = alert_with(&app, "chat_history_not_found").await;
    assert_eq!(history["kind"], "chat_history_not_found");
    let sanity = alert_with(&app, "reply_placeholder").await;
    assert_eq!(sanity["kind"], "sanity_check");
    assert_eq!(sanity["severity"], "critical");
    assert!(
        sanity["text"].as_str().unwrap().contains("not sent"),
        "{sanity}"
    );
    // Refused: the templated text never reaches Twilio. The message stays pending, so a
    // later turn answers it (the lead writing again, or the outbox sweep waking the lead
    // whose stored work outlived its wake-up, whichever comes first).
    app.post_sms(LEAD, "Hello?").await;
    let sent = app.wait_for_sms(LEAD, 1).await;
    assert!(sent[0].starts_with("Yes, the 2BR"), "{sent:?}");
    assert!(
        app.twilio.sent_to(LEAD).iter().all(|b| !b.contains("{{")),
        "the refused reply was sent: {:?}",
        app.twilio.sent_to(LEAD)
    );
    let response = alert_with(&app, "agent_response").await;
    assert_eq!(response["kind"], "agent_response");
    assert!(
        response["text"]
            .as_str()
            .unwrap()
            .contains("Yes, the 2BR at Maple Court"),
        "{response}"
    );
    app.stop().await;
}

#[tokio::test]
async fn matching_buildings_from_a_real_turn_reach_the_building_options_channel_once() {
    let discord = crate::fake_discord::FakeDiscord::start().await;
    let anthropic = FakeProvider::anthropic().await;
    anthropic.script(vec![
        Canned::ok(anthropic_tool_use(
            "toolu_01B",
            "record_requirements",
            serde_json::json!({"bedrooms": 2}),
        )),
        Canned::ok(anthropic_text("Maple Court has a 2BR. When do you move?")),
        Canned::ok(anthropic_tool_use(
            "toolu_01C",
            "record_requirements",
            serde_json::json!({"notes": "near the Red Line"}),
        )),
        Canned::ok(anthropic_text("Noted. Want a tour?")),
    ]);
    let mut env = discord.env();
    env.extend([
        ("SCHEDULE_HEARTBEAT", "off".to_string()),
        ("USE_AGENT_CORE", "true".to_string()),
        ("ANTHROPIC_BASE_URL", anthropic.url.clone()),
        ("ANTHROPIC_MODEL", "claude-test".to_string()),
        ("DISCORD_CHANNEL_BUILDING_OPTIONS", "4242".to_string()),
    ]);
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;
    app.post_sms(LEAD, "Any 2 bedrooms?").await;
    app.wait_for_sms(LEAD, 1).await;
    wait_until(15, "building options at the fake Discord", || async {
        !discord.texts_in("4242").is_empty()
    })
    .await;
    let posted = discord.texts_in("4242");
    assert!(posted[0].contains("Maple Court"), "{posted:?}");

    // The same matching set again (a note): the channel hears nothing new.
    app.post_sms(LEAD, "Near the Red Line please").await;
    app.wait_for_sms(LEAD, 2).await;
    wait_until(15, "the second requirements check", || async {
        app.alert_events()
            .await
            .iter()
            .filter(|e| *e == "requirements_check")
            .count()
            == 2
    })
    .await;
    assert_eq!(
        discord.texts_in("4242").len(),
        1,
        "{:?}",
        discord.texts_in("4242")
    );
}
