//! Exposure (issue 12, item 5): what a stranger on the network can reach. The public
//! listener serves only the webhooks, /health and /ready; /ops and /metrics are on the ops
//! listener. `serve` refuses to start exposed without its tokens unless told
//! `--insecure` (the real binary, its exit status and message). The /ops browser cookie
//! expires server-side and is `Secure` over https; a POST under /ops needs JSON and the
//! same origin.

use std::time::{Duration, Instant};

use actors::sla::SlaStore;
use lead_agent::http::ops_page::{COOKIE, session_cookie};
use reqwest::StatusCode;

use crate::helpers::*;
use crate::support::processes::Processes;

const TOKEN: &str = "exposure-test-token";

// --------------------------------------------------------------- two listeners ---------- //

#[tokio::test]
async fn the_public_listener_answers_404_for_ops_and_metrics_and_the_ops_listener_serves_them() {
    let app = spawn_app().await;
    assert_ne!(app.base_url, app.ops_url);
    let get = |url: String| {
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().status() }
    };
    for path in [
        "/ops",
        "/ops/status",
        "/ops/alerts",
        "/ops/heartbeats",
        "/ops/scheduled",
        "/ops/leads/+13125550100/messages",
        "/metrics",
    ] {
        assert_eq!(
            get(format!("{}{path}", app.base_url)).await,
            StatusCode::NOT_FOUND,
            "public {path}"
        );
        assert_eq!(
            get(format!("{}{path}", app.ops_url)).await,
            StatusCode::OK,
            "ops {path}"
        );
    }
    let post = app
        .http
        .post(format!("{}/ops/verifications", app.base_url))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    // Health and readiness on both (the Ingress checks one, the kubelet the other); the
    // webhook on the public one only. On RabbitMQ the consumer connects in the background:
    // ready within the bound first.
    wait_until(15, "/ready", || async {
        get(format!("{}/ready", app.ops_url)).await == StatusCode::OK
    })
    .await;
    for base in [&app.base_url, &app.ops_url] {
        for path in ["/health", "/ready"] {
            assert_eq!(
                get(format!("{base}{path}")).await,
                StatusCode::OK,
                "{base}{path}"
            );
        }
    }
    assert_eq!(app.post_sms("+13125550601", "Hi").await.0, 200);
    let on_ops = app
        .http
        .post(format!("{}/twilio/sms", app.ops_url))
        .form(&[("From", "+13125550602")])
        .send()
        .await
        .unwrap();
    assert_eq!(on_ops.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

// ----------------------------------------------------- refusing to run exposed ---------- //

/// The environment of a `serve` with embedded defaults in `dir`, bound as `binds` say.
fn serve_env(
    dir: &std::path::Path,
    binds: &[(&'static str, &'static str)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("lead-agent.db").display()),
        ),
        (
            "INBOUND_JOURNAL_PATH",
            dir.join("inbound.jsonl").display().to_string(),
        ),
        ("LOG_FORMAT", "json".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ];
    env.extend(binds.iter().map(|(k, v)| (*k, v.to_string())));
    env
}

/// Starts `serve` and waits (bounded) for it to exit; returns its exit code and log.
async fn refused(
    processes: &mut Processes,
    name: &str,
    env: &[(&'static str, String)],
) -> (Option<i32>, String) {
    processes.start(name, &["serve"], env.iter().map(|(k, v)| (*k, v.as_str())));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = processes.exit_status(name) {
            let log = std::fs::read_to_string(processes.log_path(name)).unwrap_or_default();
            return (status.code(), log);
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not refuse to start: it is still running\n{}",
            processes.log_tail(name, 20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serve_refuses_a_non_loopback_bind_without_both_tokens_naming_them_and_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut processes = Processes::new(env!("CARGO_BIN_EXE_lead-agent"));

    let env = serve_env(dir.path(), &[("BIND_ADDRESS", "0.0.0.0")]);
    let (code, log) = refused(&mut processes, "bare", &env).await;
    assert_eq!(code, Some(1), "{log}");
    for needle in [
        "refusing to start",
        "BIND_ADDRESS=0.0.0.0",
        "TWILIO_AUTH_TOKEN and OPS_TOKEN are not set",
        "127.0.0.1",
        "--insecure",
        "ALLOW_INSECURE=true",
    ] {
        assert!(log.contains(needle), "{needle:?} missing from:\n{log}");
    }

    // The ops listener counts too, and only what is missing is named.
    let mut env = serve_env(dir.path(), &[("OPS_BIND_ADDRESS", "0.0.0.0")]);
    env.push(("OPS_TOKEN", TOKEN.to_string()));
    let (code, log) = refused(&mut processes, "ops-bind", &env).await;
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("OPS_BIND_ADDRESS=0.0.0.0") && log.contains("TWILIO_AUTH_TOKEN is not set"),
        "{log}"
    );
    assert!(!log.contains("and OPS_TOKEN are"), "{log}");
}

#[tokio::test]
async fn serve_starts_exposed_with_the_insecure_flag_or_allow_insecure_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut processes = Processes::new(env!("CARGO_BIN_EXE_lead-agent"));
    let env = serve_env(dir.path(), &[("BIND_ADDRESS", "0.0.0.0")]);
    let url = processes
        .start_ready(
            "flag",
            &["serve", "--insecure"],
            env.iter().map(|(k, v)| (*k, v.as_str())),
        )
        .await;
    let health = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    processes.signal("flag", "-TERM");
    let log = std::fs::read_to_string(processes.log_path("flag")).unwrap();
    assert!(log.contains("INSECURE"), "the warning is logged:\n{log}");

    let mut env = serve_env(dir.path(), &[("OPS_BIND_ADDRESS", "0.0.0.0")]);
    env.push(("ALLOW_INSECURE", "true".to_string()));
    processes
        .start_ready("env", &["serve"], env.iter().map(|(k, v)| (*k, v.as_str())))
        .await;
    processes.signal("env", "-TERM");
}

// ------------------------------------------------------------ the ops cookie ---------- //

async fn app_with(env: Vec<(&'static str, String)>) -> TestApp {
    let mut all = vec![("OPS_TOKEN", TOKEN.to_string())];
    all.extend(env);
    spawn_app_with(TestOptions {
        env: all,
        ..TestOptions::default()
    })
    .await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn page_with_cookie(app: &TestApp, value: &str) -> StatusCode {
    no_redirects()
        .get(format!("{}/ops", app.ops_url))
        .header("cookie", format!("{COOKIE}={value}"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn an_expired_or_forged_ops_cookie_is_refused_and_a_fresh_one_accepted() {
    let app = app_with(vec![("OPS_SESSION_SECS", "3600".into())]).await;
    let now = chrono::Utc::now().timestamp();
    // The one the server issues for the token works, and lives as long as the server
    // honours it.
    let r = no_redirects()
        .get(format!("{}/ops?token={TOKEN}", app.ops_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("Max-Age=3600"), "{set}");
    let issued = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix(&format!("{COOKIE}="))
        .unwrap()
        .to_string();
    let (at, _) = issued.split_once('.').expect("issued_at.mac");
    assert!((at.parse::<i64>().unwrap() - now).abs() <= 5, "{issued}");
    assert_eq!(page_with_cookie(&app, &issued).await, StatusCode::OK);

    assert_eq!(
        page_with_cookie(&app, &session_cookie(TOKEN, now - 3500)).await,
        StatusCode::OK,
        "within OPS_SESSION_SECS"
    );
    assert_eq!(
        page_with_cookie(&app, &session_cookie(TOKEN, now - 3601)).await,
        StatusCode::UNAUTHORIZED,
        "past OPS_SESSION_SECS, whatever the browser kept"
    );
    assert_eq!(
        page_with_cookie(&app, &session_cookie("another-token", now)).await,
        StatusCode::UNAUTHORIZED,
        "signed with another token"
    );
    // A fresh time on an old signature: forged.
    let (_, old_mac) = session_cookie(TOKEN, now - 7200)
        .split_once('.')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    assert_eq!(
        page_with_cookie(&app, &format!("{now}.{old_mac}")).await,
        StatusCode::UNAUTHORIZED
    );
    let r = no_redirects()
        .get(format!("{}/ops", app.ops_url))
        .header(
            "cookie",
            format!("{COOKIE}={}", session_cookie(TOKEN, now - 3601)),
        )
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(
        body.contains("expired") && !body.contains("data-metric"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_ops_cookie_is_secure_when_the_public_url_is_https_and_only_then() {
    for (public, secure) in [
        (PUBLIC_URL.to_string(), true),
        ("http://127.0.0.1:5012".to_string(), false),
    ] {
        let app = app_with(vec![("PUBLIC_BASE_URL", public.clone())]).await;
        let r = no_redirects()
            .get(format!("{}/ops?token={TOKEN}", app.ops_url))
            .send()
            .await
            .unwrap();
        let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert_eq!(
            set.split(';').any(|a| a.trim() == "Secure"),
            secure,
            "PUBLIC_BASE_URL {public}: {set}"
        );
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        app.stop().await;
    }
}

// ------------------------------------------------------------- /ops POSTs ---------- //

const LEAD: &str = "+13125550640";

async fn open_sla(app: &TestApp, headers: &[(&str, &str)], body: &str) -> StatusCode {
    let mut request = app
        .http
        .post(format!("{}/ops/leads/{LEAD}/sla", app.ops_url))
        .bearer_auth(TOKEN)
        .body(body.to_string());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn an_ops_post_needs_json_and_the_same_origin_and_a_bearer_client_passes() {
    let app = app_with(Vec::new()).await;
    let json = ("content-type", "application/json");
    let body = r#"{"kind": "doc_review"}"#;

    let form = ("content-type", "application/x-www-form-urlencoded");
    assert_eq!(
        open_sla(&app, &[form], "kind=doc_review").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        open_sla(&app, &[], body).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        open_sla(&app, &[json, ("origin", "https://evil.example")], body).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        open_sla(&app, &[json, ("sec-fetch-site", "cross-site")], body).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        open_sla(&app, &[json, ("origin", "null")], body).await,
        StatusCode::FORBIDDEN
    );
    assert!(
        app.store.open_slas().await.unwrap().is_empty(),
        "nothing refused was stored"
    );
    // JSON with the bearer token and no Origin (a script, `verify --record`): passes.
    assert_eq!(open_sla(&app, &[json], body).await, StatusCode::CREATED);
    // The page's own origin, as a browser on it would say: passes (already open: 200).
    let origin = app.ops_url.clone();
    assert_eq!(
        open_sla(
            &app,
            &[
                json,
                ("origin", origin.as_str()),
                ("sec-fetch-site", "same-origin")
            ],
            body
        )
        .await,
        StatusCode::OK
    );

    // Every POST under /ops: the resolve and the verification record too.
    let resolve = format!("{}/ops/leads/{LEAD}/sla/doc_review/resolve", app.ops_url);
    let r = app
        .http
        .post(&resolve)
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = app
        .http
        .post(&resolve)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.store.open_slas().await.unwrap().len(), 1, "still open");
    let r = app
        .http
        .post(format!("{}/ops/verifications", app.ops_url))
        .bearer_auth(TOKEN)
        .form(&[("passed", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A cross-site form with the operator's cookie (what CSRF is): refused before it is read.
    let cookie = session_cookie(TOKEN, chrono::Utc::now().timestamp());
    let r = app
        .http
        .post(format!("{}/ops/verifications", app.ops_url))
        .header("cookie", format!("{COOKIE}={cookie}"))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("passed", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(app.store.last_verification().await.unwrap().is_none());
    app.stop().await;
}
