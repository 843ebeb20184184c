//! The building service (`BUILDING_SERVICE_API`) against the fake: the catalog it serves is
//! the one in the brain's prompt, a refresh swaps it in while the app runs, a failing
//! service keeps the last good copy and alerts, and a service down at start falls back to
//! the bundled sample with an alert.

use testkit::fake_buildings::FakeBuildings;

use crate::helpers::{TestApp, TestOptions, spawn_app_with, wait_until};
use crate::llm_fakes::*;

const LEAD: &str = "+13125550181";

const HARBOR: &str = r#"{"buildings":[{"id":"harbor-view","name":"Harbor View Towers","address":"9 Pier St","units":[{"bedrooms":2,"rent":1850}]}]}"#;
const MAPLE_YAML: &str = "buildings:\n  - id: maple-court\n    name: Maple Court\n    address: 4 Elm Ave\n    units:\n      - bedrooms: 1\n        rent: 1200\n";

async fn app_with(fake: &FakeBuildings, anthropic: &FakeProvider) -> TestApp {
    spawn_app_with(TestOptions {
        env: vec![
            ("USE_AGENT_CORE", "true".to_string()),
            ("ANTHROPIC_BASE_URL", anthropic.url.clone()),
            ("BUILDING_SERVICE_API", fake.url.clone()),
            ("BUILDING_SERVICE_REFRESH_SECS", "0.1".to_string()),
        ],
        ..TestOptions::default()
    })
    .await
}

/// The system prompt of the model's last request.
fn last_system(anthropic: &FakeProvider) -> String {
    anthropic.requests().last().unwrap().body["system"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wait_alert(app: &TestApp, event: &str) {
    wait_until(10, event, || async {
        app.alert_events().await.iter().any(|e| e == event)
    })
    .await;
}

#[tokio::test]
async fn the_catalog_the_service_serves_is_what_the_brain_sees_and_a_refresh_swaps_it() {
    let fake = FakeBuildings::start(HARBOR).await;
    let anthropic = FakeProvider::anthropic().await;
    let app = app_with(&fake, &anthropic).await;
    app.post_sms(LEAD, "Any 2 bedrooms?").await;
    app.wait_for_sms(LEAD, 1).await;
    let system = last_system(&anthropic);
    assert!(system.contains("Harbor View Towers"), "{system}");
    assert!(
        !system.contains("Lakeview Lofts"),
        "not the sample: {system}"
    );

    fake.serve_catalog("application/yaml", MAPLE_YAML);
    let seen = fake.requests();
    wait_until(10, "two refreshes", || async {
        fake.requests() >= seen + 2
    })
    .await;
    app.post_sms(LEAD, "What about a 1 bedroom?").await;
    app.wait_for_sms(LEAD, 2).await;
    let system = last_system(&anthropic);
    assert!(system.contains("Maple Court"), "{system}");
    assert!(!system.contains("Harbor View Towers"), "{system}");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_service_keeps_the_last_good_catalog_and_alerts() {
    let fake = FakeBuildings::start(HARBOR).await;
    let anthropic = FakeProvider::anthropic().await;
    let app = app_with(&fake, &anthropic).await;
    fake.fail(Some(503));
    let seen = fake.requests();
    wait_until(10, "failed refreshes", || async {
        fake.requests() >= seen + 3
    })
    .await;
    wait_alert(&app, "building_service_failed").await;
    let failures = app
        .alert_events()
        .await
        .iter()
        .filter(|e| *e == "building_service_failed")
        .count();
    assert_eq!(failures, 1, "paced: one alert for the streak");
    app.post_sms(LEAD, "Any 2 bedrooms?").await;
    app.wait_for_sms(LEAD, 1).await;
    assert!(last_system(&anthropic).contains("Harbor View Towers"));

    fake.fail(None);
    wait_alert(&app, "building_service_recovered").await;
    app.stop().await;
}

#[tokio::test]
async fn a_service_down_at_start_falls_back_to_the_sample_with_an_alert() {
    let fake = FakeBuildings::start(HARBOR).await;
    fake.fail(Some(500));
    let anthropic = FakeProvider::anthropic().await;
    let app = app_with(&fake, &anthropic).await;
    wait_alert(&app, "building_service_failed").await;
    app.post_sms(LEAD, "Any 2 bedrooms?").await;
    app.wait_for_sms(LEAD, 1).await;
    assert!(
        last_system(&anthropic).contains("Lakeview Lofts"),
        "the sample"
    );

    fake.fail(None);
    wait_alert(&app, "building_service_recovered").await;
    app.post_sms(LEAD, "And parking?").await;
    app.wait_for_sms(LEAD, 2).await;
    assert!(last_system(&anthropic).contains("Harbor View Towers"));
    app.stop().await;
}
