//! `openapi.yaml` stays the router's description (issue 12, item 6): its paths, methods and
//! listeners are exactly `lead_agent::http::ROUTES` — the table both routers are built
//! from — and every route of the table answers on its listener (not 404 or 405) and not on
//! the other.

use std::collections::BTreeSet;

use lead_agent::http::{Listener, ROUTES};
use reqwest::{Method, StatusCode};

use crate::helpers::*;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

type Triple = (String, String, &'static str);

/// `(METHOD, path, listener)` for every operation of `openapi.yaml`.
fn described() -> BTreeSet<Triple> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml at the repository root");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("openapi.yaml is YAML");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document"
    );
    let mut out = BTreeSet::new();
    let paths = doc["paths"].as_mapping().expect("paths");
    for (path, item) in paths {
        let path = path.as_str().unwrap().to_string();
        let listeners: Vec<&'static str> = item["x-listeners"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{path} has no x-listeners"))
            .iter()
            .map(|l| match l.as_str() {
                Some("public") => "public",
                Some("ops") => "ops",
                other => panic!("{path}: unknown listener {other:?}"),
            })
            .collect();
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            let tags: BTreeSet<&str> = op["tags"]
                .as_sequence()
                .map(|t| t.iter().filter_map(|t| t.as_str()).collect())
                .unwrap_or_default();
            assert_eq!(
                tags,
                listeners.iter().copied().collect(),
                "{method} {path}: its tags name its listeners"
            );
            for listener in &listeners {
                out.insert((method.to_ascii_uppercase(), path.clone(), *listener));
            }
        }
    }
    out
}

fn routed() -> BTreeSet<Triple> {
    ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string(), r.listener.name()))
        .collect()
}

#[test]
fn openapi_yaml_describes_exactly_the_routes_of_both_listeners() {
    let described = described();
    let routed = routed();
    let missing: Vec<_> = routed.difference(&described).collect();
    let extra: Vec<_> = described.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "openapi.yaml and http::ROUTES differ.\nrouted but not described: {missing:?}\ndescribed but not routed: {extra:?}"
    );
}

#[tokio::test]
async fn every_route_of_the_table_answers_on_its_listener_and_only_there() {
    let app = spawn_app().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for r in ROUTES {
        let path = r
            .path
            .replace("{phone}", "%2B13125550100")
            .replace("{kind}", "first_response");
        let (here, there) = match r.listener {
            Listener::Public => (&app.base_url, &app.ops_url),
            Listener::Ops => (&app.ops_url, &app.base_url),
        };
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        let send = |base: &String| {
            http.request(method.clone(), format!("{base}{path}"))
                .header("content-type", "application/json")
                .body("{}")
                .send()
        };
        // A route that is mounted reaches its handler: whatever it answers, it is not the
        // router's "no such path" (404 with an empty body) or "no such method" (405).
        let answer = send(here).await.unwrap();
        let status = answer.status();
        let empty_404 = status == StatusCode::NOT_FOUND && answer.text().await.unwrap().is_empty();
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && !empty_404,
            "{} {} on {:?}: {status}",
            r.method,
            r.path,
            r.listener
        );
        let served_there = ROUTES
            .iter()
            .any(|o| o.path == r.path && o.method == r.method && o.listener != r.listener);
        if !served_there {
            let status = send(there).await.unwrap().status();
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{} {} is not on the other listener",
                r.method,
                r.path
            );
        }
    }
}
