//! More agents on one runtime (issue 14 item 6): two apps of the one binary side by side,
//! `AGENT_PROFILE=landlord_rep` and `AGENT_PROFILE=locator`, each on its own database (and,
//! in the suite's RabbitMQ pass, on the same broker with its profile's queue), texted by the
//! same phone. Each answers from its own profile and keeps only its own conversation; the
//! Locator's turn events reach the LOCATOR channel, the landlord's rep's their usual ones.

use lead_agent::config::Settings;

use crate::helpers::{TestOptions, spawn_app_with, wait_until};
use crate::llm_fakes::*;

const LEAD: &str = "+13125550177";
const LANDLORD_REPLY: &str = "Maple Court has a 2BR open now. When would you like to move in?";
const LOCATOR_REPLY: &str = "I can search every building we work with. Which area do you like?";
const EVENT: &str = "5101";
const AGENT_RESPONSE: &str = "5102";
const LOCATOR: &str = "5103";

/// The queue a profile consumes when AMQP_QUEUE is not set.
fn profile_queue(profile: &str) -> String {
    let map = std::collections::HashMap::from([
        ("AGENT_PROFILE", profile),
        ("AMQP_URL", "amqp://u:p@rabbit:5672/%2f"),
    ]);
    Settings::from_map(&map).unwrap().amqp.unwrap().queue
}

#[tokio::test]
async fn two_agents_side_by_side_answer_from_their_own_profiles_and_never_see_each_others_leads() {
    let discord = crate::fake_discord::FakeDiscord::start().await;
    let (landlord_queue, locator_queue) = (profile_queue("landlord_rep"), profile_queue("locator"));
    assert_eq!(
        landlord_queue, "lead-agent.wake",
        "today's queue, unchanged"
    );
    assert_ne!(
        landlord_queue, locator_queue,
        "the profiles separate the queues"
    );

    // On the suite's broker both apps share it; a run prefix keeps this run's queues apart
    // from other runs, and the profile's own queue name is what keeps the two apart.
    let run = crate::rabbitmq::unique_queue("profiles");
    let mut cleanups = Vec::new();
    let mut apps = Vec::new();
    for (profile, queue, reply) in [
        ("landlord_rep", &landlord_queue, LANDLORD_REPLY),
        ("locator", &locator_queue, LOCATOR_REPLY),
    ] {
        let anthropic = FakeProvider::anthropic().await;
        anthropic.script(vec![Canned::ok(anthropic_text(reply))]);
        let mut env = discord.env();
        env.extend([
            ("AGENT_PROFILE", profile.to_string()),
            ("SCHEDULE_HEARTBEAT", "off".to_string()),
            ("ANTHROPIC_BASE_URL", anthropic.url.clone()),
            ("ANTHROPIC_MODEL", "claude-test".to_string()),
            ("DISCORD_CHANNEL_EVENT", EVENT.to_string()),
            ("DISCORD_CHANNEL_AGENT_RESPONSE", AGENT_RESPONSE.to_string()),
            ("DISCORD_CHANNEL_LOCATOR", LOCATOR.to_string()),
        ]);
        if std::env::var("TEST_AMQP_URL").is_ok() {
            let queue = format!("{run}.{queue}");
            env.push(("AMQP_QUEUE", queue.clone()));
            cleanups.push(crate::rabbitmq::Cleanup(queue));
        }
        let app = spawn_app_with(TestOptions {
            env,
            ..TestOptions::default()
        })
        .await;
        apps.push((app, anthropic, reply));
    }
    assert_ne!(apps[0].0.database_url, apps[1].0.database_url);

    for (app, _, _) in &apps {
        let (status, _) = app.post_sms(LEAD, "Hi, I need a 2 bedroom").await;
        assert_eq!(status, 200);
    }
    for (app, _, reply) in &apps {
        assert_eq!(app.wait_for_sms(LEAD, 1).await, vec![reply.to_string()]);
    }

    // Each app's conversation is its own: the one inbound and its own reply.
    for (app, _, reply) in &apps {
        wait_until(15, "the reply recorded sent", || async {
            app.conversation(LEAD).await.len() == 2
        })
        .await;
        let bodies: Vec<String> = app
            .conversation(LEAD)
            .await
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(
            bodies,
            vec!["Hi, I need a 2 bedroom".to_string(), reply.to_string()]
        );
    }

    // Each model was told who it is: the Locator's prompt reached its model only.
    let system = |i: usize| -> String {
        let seen = apps[i].1.requests();
        assert_eq!(seen.len(), 1, "one model call per app");
        seen[0].body["system"].as_str().unwrap().to_string()
    };
    let (landlord_system, locator_system) = (system(0), system(1));
    assert!(
        landlord_system.starts_with("You are the leasing agent for the leasing office"),
        "{landlord_system}"
    );
    assert!(
        !landlord_system.contains("apartment locator"),
        "{landlord_system}"
    );
    assert!(
        locator_system.starts_with("You are the leasing agent for the apartment locator")
            && locator_system.contains("among every building we work with")
            && locator_system.contains("Tone: friendly and efficient"),
        "{locator_system}"
    );

    // The Locator's turn events and sent replies go to LOCATOR; the landlord's rep's to
    // EVENT and AGENT_RESPONSE. Both the `ai_response` event and `agent_response` name the
    // reply, so each reply marks whose alert it is.
    let holds = |channel: &str, text: &str| {
        discord
            .texts_in(channel)
            .iter()
            .filter(|t| t.contains(text))
            .count()
    };
    wait_until(
        15,
        "the alerts of both turns at the fake Discord",
        || async {
            holds(LOCATOR, LOCATOR_REPLY) >= 2
                && holds(EVENT, LANDLORD_REPLY) >= 1
                && holds(AGENT_RESPONSE, LANDLORD_REPLY) >= 1
        },
    )
    .await;
    assert!(
        discord
            .texts_in(LOCATOR)
            .iter()
            .any(|t| t.contains("Hi, I need a 2 bedroom")),
        "the Locator's message_received: {:?}",
        discord.texts_in(LOCATOR)
    );
    assert_eq!(
        holds(LOCATOR, LANDLORD_REPLY),
        0,
        "{:?}",
        discord.texts_in(LOCATOR)
    );
    for channel in [EVENT, AGENT_RESPONSE] {
        assert_eq!(
            holds(channel, LOCATOR_REPLY),
            0,
            "{channel}: {:?}",
            discord.texts_in(channel)
        );
    }

    for (app, _, _) in apps {
        app.stop().await;
    }
    drop(cleanups);
}
