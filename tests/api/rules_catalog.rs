//! The keyless brain answers from the catalog (issue 19): on `serve`'s embedded defaults
//! (no model key, the bundled sample catalog) the rules responder answers availability and
//! pets with the catalog's facts, offers the matches (BUILDING_OPTIONS), offers tour slots
//! inside the building's hours and books one through the brain's `schedule_tour`.

use actors::brain::context::LeadContextStore;
use actors::brain::tour_hours::TourHours;
use actors::ports::LeadId;
use chrono::NaiveDateTime;

use crate::helpers::*;
use lead_agent::channels::twilio::new_message_sid;

fn keyless() -> TestOptions {
    TestOptions {
        embedded_defaults: true,
        ..TestOptions::default()
    }
}

/// Posts `text` from `lead` (unsigned: keyless, loopback) and returns the reply sent.
async fn say(app: &TestApp, lead: &str, text: &str) -> String {
    let before = app.conversation(lead).await.len();
    let params = sms_params(&new_message_sid(), lead, text);
    let (status, _) = app
        .post_form(
            &encode_form(&params),
            None,
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(status, 200);
    let appeared = poll_until(15, || async {
        app.conversation(lead).await.len() >= before + 2
    })
    .await;
    assert!(appeared, "no reply to {text:?}");
    app.wait_settled(lead).await;
    let conv = app.conversation(lead).await;
    let reply = conv[before..]
        .iter()
        .find(|m| m.direction == "outbound")
        .expect("a reply");
    assert_eq!(reply.provider.as_deref(), Some("rules"));
    assert!(reply.body.chars().count() <= 320, "{}", reply.body);
    reply.body.clone()
}

#[tokio::test]
async fn the_issues_two_conversations_get_the_catalogs_answers_on_a_keyless_app() {
    let app = spawn_app_with(keyless()).await;
    let lead = "+13125550931";
    let first = say(&app, lead, "Hi, is the 2BR still available?").await;
    assert!(
        first.contains("Maple Court has a 2BR at $1,600/mo (available now)"),
        "{first}"
    );
    assert!(!first.contains("checking with the team"), "{first}");
    let pets = say(&app, lead, "Do you allow dogs? I have a 60 lb lab").await;
    assert!(
        pets.contains("Lakeview Lofts takes cats and dogs under 40 lb ($35/mo pet rent)")
            && pets.contains("a 60 lb dog would not fit there"),
        "{pets}"
    );
    assert!(!pets.contains("checking with the team"), "{pets}");
    // The needs went through the brain's record_requirements: the matches were offered.
    let offered = poll_until(10, || async {
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "building_options")
    })
    .await;
    assert!(offered, "{:?}", app.alert_events().await);
    let saved = app.store.load_context(&LeadId::new(lead)).await.unwrap();
    assert_eq!(saved.requirements.bedrooms, Some(2));
}

#[tokio::test]
async fn a_question_the_catalog_cannot_answer_is_still_held_for_the_team() {
    let app = spawn_app_with(keyless()).await;
    let reply = say(&app, "+13125550932", "Is there parking at Maple Court?").await;
    assert!(reply.contains("checking with the team"), "{reply}");
    assert!(!reply.contains('$'), "{reply}");
}

#[tokio::test]
async fn a_tour_is_offered_in_the_buildings_hours_and_booked_through_schedule_tour() {
    let app = spawn_app_with(keyless()).await;
    let lead = "+13125550933";
    let offer = say(&app, lead, "Can I come see the 2BR?").await;
    assert!(
        offer.contains("at Maple Court - which works for you?"),
        "{offer}"
    );
    let confirmed = say(&app, lead, "the first one works").await;
    assert!(confirmed.starts_with("You're set for "), "{confirmed}");
    assert!(
        confirmed.contains("at Maple Court"),
        "{offer} -> {confirmed}"
    );
    let tour = app
        .store
        .load_context(&LeadId::new(lead))
        .await
        .unwrap()
        .tour
        .expect("the tour is on the lead's record");
    assert_eq!(tour.building, "maple-court");
    let at = NaiveDateTime::parse_from_str(&tour.when, "%Y-%m-%dT%H:%M").unwrap();
    let hours = TourHours::parse("Mon-Fri 11am-5pm").unwrap();
    assert!(
        hours.contains(at),
        "{at} is outside Maple Court's tour hours"
    );
    let alerted = poll_until(10, || async {
        app.alert_events().await.iter().any(|e| e == "tour_request")
    })
    .await;
    assert!(alerted, "{:?}", app.alert_events().await);
}
