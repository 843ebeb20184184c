//! The operator's surfaces: the `/ops` HTML page rendered by Debian's headless Chromium
//! (a screenshot is saved and its path printed), its token handling, and `/metrics`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use lead_agent::verify::{Report, Status, StepResult, VerifyOptions, post_record};
use serde_json::Value;

use crate::helpers::*;

const TOKEN: &str = "ops-page-test-token";
use crate::browser::CHROMIUM;

/// Loads `url` in headless Chromium with a fresh profile; returns the DOM after load and
/// writes a screenshot to `screenshot`. Asynchronous: the app under test serves from this
/// test's runtime, so a blocking wait here would leave the page unserved.
async fn chromium(url: &str, screenshot: &Path) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)"
    );
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(CHROMIUM)
        .args(crate::browser::HEADLESS_FLAGS)
        .arg("--window-size=1280,1600")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--dump-dom")
        .arg(url)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("chromium finishes within 90 s")
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn screenshot_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lead-agent-{name}-{}.png", std::process::id()))
}

/// The text of the element carrying `data-metric="id"` (the first text node after it).
fn metric(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!("data-metric=\"{id}\""))?;
    let rest = &dom[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(rest[start..end].trim().to_string())
}

async fn app_with_token() -> TestApp {
    spawn_app_with(TestOptions {
        env: vec![("OPS_TOKEN", TOKEN.to_string())],
        ..TestOptions::default()
    })
    .await
}

async fn status(app: &TestApp) -> Value {
    app.http
        .get(format!("{}/ops/status", app.ops_url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_ops_page_renders_live_numbers_in_headless_chromium() {
    let app = app_with_token().await;
    let lead = "+13125550161";
    assert_eq!(
        app.post_sms(lead, "Hi, is the 2BR still available?")
            .await
            .0,
        200
    );
    app.wait_for_sms(lead, 1).await;
    app.wait_settled(lead).await;
    let mut options = VerifyOptions::for_url(&app.base_url);
    options.ops_url = app.ops_url.clone();
    options.ops_token = Some(TOKEN.into());
    let report = Report::new(
        &app.base_url,
        Utc::now(),
        vec![StepResult {
            step: "health".into(),
            status: Status::Pass,
            detail: "200, commit test".into(),
        }],
    );
    post_record(&options, &report)
        .await
        .expect("the service stores the verification");
    let live = status(&app).await;

    let shot = screenshot_path("ops-page");
    let dom = chromium(&format!("{}/ops?token={TOKEN}", app.ops_url), &shot).await;
    println!("/ops screenshot: {}", shot.display());
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG: {}", shot.display());

    assert!(dom.contains("<h1>lead-agent ops</h1>"), "{dom}");
    assert_eq!(
        metric(&dom, "active-leads").as_deref(),
        Some(live["worker"]["active_leads"].to_string().as_str())
    );
    assert_eq!(metric(&dom, "active-leads").as_deref(), Some("1"));
    assert_eq!(
        metric(&dom, "queue-depth").as_deref(),
        Some(live["queue_depth"].to_string().as_str())
    );
    assert_eq!(
        metric(&dom, "llm-calls").as_deref(),
        Some(live["worker"]["llm"]["calls"].to_string().as_str())
    );
    assert_ne!(metric(&dom, "llm-calls").as_deref(), Some("0"));
    assert!(
        metric(&dom, "llm-chain").unwrap().contains("anthropic"),
        "{dom}"
    );
    assert!(
        dom.contains("sms_sent") && dom.contains(lead),
        "the recent alerts show the reply: {dom}"
    );
    assert_eq!(metric(&dom, "last-verification").as_deref(), Some("PASS"));
    let jobs: Value = app
        .http
        .get(format!("{}/ops/scheduled", app.ops_url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jobs = jobs.as_array().unwrap();
    assert!(!jobs.is_empty());
    assert_eq!(
        metric(&dom, "scheduled-jobs"),
        Some(jobs.len().to_string()),
        "{dom}"
    );
    for job in jobs {
        assert!(dom.contains(job["name"].as_str().unwrap()), "{dom}");
    }
    assert!(metric(&dom, "sla-breaches").is_some(), "{dom}");
    // The token traded for a cookie: it is not in the page the browser ended on.
    assert!(!dom.contains(TOKEN));
    app.stop().await;
}

#[tokio::test]
async fn the_ops_page_refuses_a_missing_or_wrong_token() {
    let app = app_with_token().await;
    let shot = screenshot_path("ops-refused");
    let dom = chromium(&format!("{}/ops", app.ops_url), &shot).await;
    println!("/ops without a token, screenshot: {}", shot.display());
    assert!(dom.contains("id=\"refused\""), "{dom}");
    assert!(metric(&dom, "active-leads").is_none() && metric(&dom, "queue-depth").is_none());

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = format!("{}/ops", app.ops_url);
    // Loopback is not enough once OPS_TOKEN is set.
    let r = http.get(&page).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.text().await.unwrap().contains("data-metric"));
    let r = http
        .get(format!("{page}?token=wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{page}?token=not-{TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The right token: 303 with an HttpOnly cookie that is not the token, which then works.
    let r = http
        .get(format!("{page}?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && !cookie.contains(TOKEN),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let r = http
        .get(&page)
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let tampered = format!("{}0", pair);
    assert_eq!(
        http.get(&page)
            .header("cookie", tampered)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // And the bearer header, as for /ops/*.
    assert_eq!(
        http.get(&page)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Recording a verification needs the token too.
    let r = http
        .post(format!("{}/ops/verifications", app.ops_url))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/ops/verifications", app.ops_url))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"not": "a report"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(app.store.last_verification().await.unwrap().is_none());
    app.stop().await;
}

#[tokio::test]
async fn without_ops_token_the_page_answers_loopback_and_says_what_it_cannot_show() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}/ops", app.ops_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert_eq!(metric(&html, "active-leads").as_deref(), Some("0"));
    assert!(
        metric(&html, "last-verification")
            .unwrap()
            .contains("never verified"),
        "{html}"
    );
    assert!(metric(&html, "alerts").is_some());
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_behind_the_ops_token() {
    let app = app_with_token().await;
    let lead = "+13125550162";
    assert_eq!(app.post_sms(lead, "Hello").await.0, 200);
    app.wait_for_sms(lead, 1).await;
    let url = format!("{}/metrics", app.ops_url);
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 401);
    let scrape = || async {
        let r = app.http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        r.text().await.unwrap()
    };
    let value_in = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    // The counter follows the provider's answer by a statement: poll, bounded.
    wait_until(10, "lead_agent_replies_sent_total >= 1", || async {
        value_in(&scrape().await, "lead_agent_replies_sent_total").is_some_and(|v| v >= 1.0)
    })
    .await;
    let text = scrape().await;
    let value = |name: &str| -> f64 {
        value_in(&text, name).unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    // Counters are per process and the suite's apps share it: at least this app's reply.
    assert!(value("lead_agent_replies_sent_total") >= 1.0);
    assert!(value("lead_agent_active_leads") >= 1.0);
    assert!(value("lead_agent_queue_depth") >= 0.0);
    assert!(value("lead_agent_llm_in_flight") >= 0.0);
    assert!(
        text.contains("# TYPE lead_agent_actor_restarts_total counter"),
        "{text}"
    );
    app.stop().await;
}

/// The takeover section of `/ops` (issue 15 item 6): the takeovers in force with a Release
/// button, and the Take over form. No Chromium is needed for what this checks: the page's
/// markup, and that the request its script sends — a same-origin JSON POST carrying the
/// page's session cookie and CSRF token, as a browser sends it — passes the ops guard and
/// authorization (`console::*` drives the console itself in Chromium).
#[tokio::test]
async fn the_ops_page_shows_takeovers_and_its_buttons_request_passes_the_guard() {
    use lead_agent::http::ops_page::{COOKIE, session_cookie};
    let app = app_with_token().await;
    let lead = "+13125550163";
    app.post_sms(lead, "Hi there").await;
    app.wait_for_sms(lead, 1).await;
    let page = |cookie: String| {
        let http = app.http.clone();
        let url = format!("{}/ops", app.ops_url);
        async move {
            http.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let cookie = format!("{COOKIE}={}", session_cookie(TOKEN, Utc::now().timestamp()));
    let html = page(cookie.clone()).await;
    assert!(
        html.contains("data-takeover-form"),
        "the Take over form: {html}"
    );
    assert_eq!(metric(&html, "takeovers").as_deref(), Some("none"));

    // As the console's script posts it: same origin, JSON, the cookie and the page's CSRF
    // token (no bearer header).
    let marker = "name=\"csrf-token\" content=\"";
    let at = html.find(marker).unwrap() + marker.len();
    let csrf = html[at..at + html[at..].find('"').unwrap()].to_string();
    let browser_post = |action: &'static str, body: &'static str| {
        let http = app.http.clone();
        let origin = app.ops_url.clone();
        let url = format!("{}/ops/leads/%2B13125550163/{action}", app.ops_url);
        let cookie = cookie.clone();
        let csrf = csrf.clone();
        async move {
            http.post(url)
                .header("content-type", "application/json")
                .header("origin", origin)
                .header("sec-fetch-site", "same-origin")
                .header("cookie", cookie)
                .header("x-csrf-token", csrf)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Without a session there is no token to match: refused before authorization.
    let no_session = app
        .http
        .post(format!("{}/ops/leads/%2B13125550163/takeover", app.ops_url))
        .header("content-type", "application/json")
        .header("origin", app.ops_url.clone())
        .header("sec-fetch-site", "same-origin")
        .header("x-csrf-token", csrf.clone())
        .body(r#"{"operator":"ana"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_session.status().as_u16(),
        403,
        "no cookie, no valid token"
    );
    assert_eq!(browser_post("takeover", r#"{"operator":"ana"}"#).await, 200);
    let html = page(cookie.clone()).await;
    assert!(
        html.contains(&format!("data-takeover-release=\"{lead}\"")),
        "a Release button for the lead: {html}"
    );
    assert!(html.contains("<td>ana</td>"), "{html}");
    assert_eq!(browser_post("release", r#"{"operator":"ana"}"#).await, 200);
    let html = page(cookie).await;
    assert_eq!(metric(&html, "takeovers").as_deref(), Some("none"));
    app.stop().await;
}
