//! The consent ledger through the real HTTP path (issue 15, item 3): a lead's first
//! message, STOP, a revocation in plain words and START are each one event with their
//! MessageSid (a Twilio retry adds none); an operator's revoke (behind the ops guard) opts
//! the lead out so a due followup is not sent; `lead-agent consent export` prints the rows
//! as quoted CSV; a bad phone is 400 and an unknown lead 404.

use actors::ports::LeadId;
use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A MessageSid of the shape Twilio sends (`SM` + 32 hex), distinct per `n`.
fn sid(n: u32) -> String {
    format!("SM{n:032x}")
}

async fn consent(app: &TestApp, lead: &str) -> (StatusCode, String) {
    let r = app
        .http
        .get(format!("{}/ops/leads/{lead}/consent", app.ops_url))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn ledger(app: &TestApp, lead: &str) -> Value {
    let (status, body) = consent(app, lead).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// `(method, grants, message_sid, words)` of each event, newest first.
fn events(ledger: &Value) -> Vec<(String, bool, Value, String)> {
    ledger["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_string(),
                e["grants"].as_bool().unwrap(),
                e["message_sid"].clone(),
                e["words"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ev(method: &str, grants: bool, sid: Option<&str>, words: &str) -> (String, bool, Value, String) {
    (method.into(), grants, json!(sid), words.into())
}

async fn act(app: &TestApp, lead: &str, body: Value) -> (StatusCode, String) {
    let r = app
        .http
        .post(format!("{}/ops/leads/{lead}/consent", app.ops_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn first_message_stop_and_start_are_one_event_each_and_a_retry_adds_none() {
    let app = spawn_app().await;
    let lead = "+13125550811";
    let (first, stop, start) = (sid(8111), sid(8112), sid(8113));
    app.post_sms_with_sid(&first, lead, "Hi, any 2BR?").await;
    app.wait_for_sms(lead, 1).await;
    // Twilio's retry of the first message.
    assert_eq!(
        app.post_sms_with_sid(&first, lead, "Hi, any 2BR?").await.0,
        200
    );
    let l = ledger(&app, lead).await;
    assert_eq!(
        events(&l),
        vec![ev("first_inbound", true, Some(&first), "Hi, any 2BR?")]
    );
    assert_eq!(l["status"]["opted_out"], false);

    for _ in 0..2 {
        // STOP, and Twilio's retry of it.
        assert_eq!(app.post_sms_with_sid(&stop, lead, "STOP").await.0, 200);
    }
    let l = ledger(&app, lead).await;
    assert_eq!(
        events(&l),
        vec![
            ev("stop_keyword", false, Some(&stop), "STOP"),
            ev("first_inbound", true, Some(&first), "Hi, any 2BR?"),
        ]
    );
    assert_eq!(l["status"]["opted_out"], true);
    assert_eq!(l["status"]["since"], l["events"][0]["at"]);

    app.post_sms_with_sid(&start, lead, "START").await;
    let l = ledger(&app, lead).await;
    assert_eq!(
        events(&l)[0],
        ev("start_keyword", true, Some(&start), "START")
    );
    assert_eq!(events(&l).len(), 3);
    assert_eq!(l["status"]["opted_out"], false);
    assert_eq!(l["status"]["since"], l["events"][0]["at"]);
    app.stop().await;
}

#[tokio::test]
async fn a_revocation_in_plain_words_is_recorded_as_a_revocation() {
    let app = spawn_app().await;
    let lead = "+13125550812";
    app.post_sms_with_sid(&sid(8121), lead, "Is parking included?")
        .await;
    app.wait_for_sms(lead, 1).await;
    let words = "please stop texting me";
    app.post_sms_with_sid(&sid(8122), lead, words).await;
    let l = ledger(&app, lead).await;
    assert_eq!(
        events(&l),
        vec![
            ev("revocation", false, Some(&sid(8122)), words),
            ev(
                "first_inbound",
                true,
                Some(&sid(8121)),
                "Is parking included?"
            ),
        ]
    );
    assert_eq!(l["status"]["opted_out"], true);
    app.stop().await;
}

#[tokio::test]
async fn an_operator_revoke_passes_the_ops_guard_is_recorded_and_stops_a_due_followup() {
    let app = spawn_app_with(TestOptions {
        // A sweep every second, the first followup ~3.6 s after a reply.
        env: crate::scheduler::fast_followups("0.001"),
        ..TestOptions::default()
    })
    .await;
    let lead = LeadId::new("+13125550813");
    app.post_sms(lead.as_str(), "Hi, pets ok?").await;
    app.wait_for_sms(lead.as_str(), 1).await;
    app.wait_settled(lead.as_str()).await;

    // The ops guard is in front of it: no JSON, or another origin, records nothing.
    let url = format!("{}/ops/leads/{}/consent", app.ops_url, lead.as_str());
    let body = r#"{"action": "revoke", "note": "asked by phone"}"#;
    let r = app
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(events(&ledger(&app, lead.as_str()).await).len(), 1);

    let note = "called the office: no more texts, please";
    let (status, answer) = act(
        &app,
        lead.as_str(),
        json!({"action": "revoke", "note": note}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["event"]["method"], "operator");
    assert_eq!(answer["event"]["grants"], false);
    assert_eq!(answer["event"]["message_sid"], Value::Null);
    assert_eq!(answer["event"]["words"], note);
    assert_eq!(answer["status"]["opted_out"], true);

    // A followup falls due for the revoked lead: the sweep drops it, nothing is sent.
    app.store
        .arm_followup(&lead, Utc::now() - chrono::Duration::minutes(1))
        .await
        .unwrap();
    wait_until(
        10,
        "the sweep to drop the revoked lead's followup",
        || async { app.store.followup_of(&lead).await.unwrap().is_none() },
    )
    .await;
    // Another silent lead in the same app gets its followup: the sweep is running.
    let other = "+13125550814";
    app.post_sms(other, "Hi, any 1BR?").await;
    app.wait_for_sms(other, 2).await;
    assert_eq!(
        app.twilio.sent_to(lead.as_str()).len(),
        1,
        "only the first reply"
    );
    // The lead's own message is stored, not answered, while consent is revoked.
    app.post_sms(lead.as_str(), "one more question").await;
    app.wait_settled(lead.as_str()).await;
    assert_eq!(app.twilio.sent_to(lead.as_str()).len(), 1);

    // Restored (the lead asked again): recorded, opted in.
    let (status, answer) = act(
        &app,
        lead.as_str(),
        json!({"action": "restore", "note": "lead asked to get texts again"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let l = ledger(&app, lead.as_str()).await;
    let methods: Vec<(String, bool)> = events(&l).into_iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(
        methods,
        vec![
            ("operator".to_string(), true),
            ("operator".to_string(), false),
            ("first_inbound".to_string(), true),
        ]
    );
    assert_eq!(l["status"]["opted_out"], false);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_phone_is_400_an_unknown_lead_404_and_a_bad_action_400() {
    let app = spawn_app().await;
    let (status, body) = consent(&app, "not-a-phone").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("E.164"), "{body}");
    let (status, body) = consent(&app, "+13125550899").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = act(
        &app,
        "+13125550899",
        json!({"action": "revoke", "note": "asked by phone"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = act(
        &app,
        "12345",
        json!({"action": "revoke", "note": "asked by phone"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("E.164"), "{body}");

    let lead = "+13125550815";
    app.post_sms(lead, "Hi").await;
    app.wait_for_sms(lead, 1).await;
    for (body, says) in [
        (json!({"action": "pause", "note": "x"}), "unknown action"),
        (
            json!({"action": "revoke", "note": "  "}),
            "note must say why",
        ),
        (json!({"action": "revoke"}), "body must be JSON"),
        (
            json!({"action": "revoke", "note": "x", "extra": 1}),
            "body must be JSON",
        ),
    ] {
        let (status, answer) = act(&app, lead, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer.contains(says), "{answer}");
    }
    let l = ledger(&app, lead).await;
    assert_eq!(events(&l).len(), 1, "nothing refused was recorded");
    assert_eq!(l["status"]["opted_out"], false);
    app.stop().await;
}

#[tokio::test]
async fn the_export_cli_prints_every_event_since_as_quoted_csv() {
    let app = spawn_app().await;
    let lead = "+13125550816";
    let words = "Hi, is the \"2BR\" free?\nThanks";
    app.post_sms_with_sid(&sid(8161), lead, words).await;
    app.wait_for_sms(lead, 1).await;
    let note = "asked by phone, \"no texts\"";
    assert_eq!(
        act(&app, lead, json!({"action": "revoke", "note": note}))
            .await
            .0,
        StatusCode::OK
    );
    // The real binary against the app's database, as an operator's terminal would run it.
    let cli = |args: Vec<String>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_lead-agent"));
        command
            .args(["consent", "export"])
            .args(args)
            .env("DATABASE_URL", &app.database_url);
        async move {
            let out = command.output().await.unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        }
    };
    let yesterday = (Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let args = |since: &str, format: &str| -> Vec<String> {
        vec![
            "--since".into(),
            since.into(),
            "--format".into(),
            format.into(),
        ]
    };
    let (ok, out, err) = cli(args(&yesterday, "csv")).await;
    assert!(ok, "{err}");
    // Quoted as RFC 4180 says: the comma, the doubled quotes and the newline stay in the cell.
    assert!(
        out.contains(",\"Hi, is the \"\"2BR\"\" free?\nThanks\"\n"),
        "{out}"
    );
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        vec![
            "id",
            "lead",
            "at",
            "method",
            "consent",
            "message_sid",
            "words"
        ]
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(
        rows[0][1..].iter().map(String::as_str).collect::<Vec<_>>(),
        vec![
            lead,
            rows[0][2].as_str(),
            "first_inbound",
            "granted",
            sid(8161).as_str(),
            words
        ]
    );
    assert_eq!(
        rows[1][1..].iter().map(String::as_str).collect::<Vec<_>>(),
        vec![lead, rows[1][2].as_str(), "operator", "revoked", "", note]
    );
    assert!(chrono::DateTime::parse_from_rfc3339(&rows[0][2]).is_ok());

    // A moment after both: the header only.
    let later = (Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let (ok, out, err) = cli(args(&later, "csv")).await;
    assert!(ok, "{err}");
    assert_eq!(out, "id,lead,at,method,consent,message_sid,words\n");

    // An unknown format, or a --since that is no time: refused, saying what is accepted.
    let (ok, out, err) = cli(args(&yesterday, "json")).await;
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("json") && err.contains("csv"), "{err}");
    let (ok, _, err) = cli(args("last week", "csv")).await;
    assert!(!ok && err.contains("RFC 3339"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn the_ops_page_shows_each_leads_consent_with_a_link_to_its_ledger() {
    let app = spawn_app().await;
    let (kept, revoked) = ("+13125550817", "+13125550818");
    for lead in [kept, revoked] {
        app.post_sms(lead, "Hi, any 2BR?").await;
        app.wait_for_sms(lead, 1).await;
    }
    let (status, _) = act(
        &app,
        revoked,
        json!({"action": "revoke", "note": "asked in person"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The page is server-rendered HTML without script: what a browser shows is this text.
    let html = app
        .http
        .get(format!("{}/ops", app.ops_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = |lead: &str| {
        let at = html
            .find(&format!("<tr data-lead=\"{lead}\">"))
            .unwrap_or_else(|| panic!("no consent row for {lead}: {html}"));
        html[at..at + html[at..].find("</tr>").unwrap()].to_string()
    };
    let first = row(kept);
    assert!(
        first.contains("data-consent=\"status\">opted in<")
            && first.contains("first_inbound (grants)")
            && first.contains(&format!("href=\"/ops/leads/{kept}/consent\"")),
        "{first}"
    );
    let second = row(revoked);
    assert!(
        second.contains("data-consent=\"status\">opted out<")
            && second.contains("operator (revokes)"),
        "{second}"
    );
    // Newest change first.
    let at = |lead: &str| html.find(&format!("<tr data-lead=\"{lead}\">"));
    assert!(at(revoked) < at(kept), "{html}");
    // The link is the ledger's JSON.
    let l = app.get_json(&format!("/ops/leads/{revoked}/consent")).await;
    assert_eq!(l["events"][0]["method"], "operator");
    app.stop().await;
}
