//! `lead-agent parked` and `lead-agent unpark <phone>`: the operator's view of parked leads
//! and the way to end a park, from a terminal.
//!
//! Owns: the client side — `GET /ops/parked` and `POST /ops/leads/{phone}/unpark` on a
//! running server's ops listener (any role; OPS_TOKEN as a bearer token when set), like
//! `inspect scheduled` — and the table layout. Must not: read or write the database
//! directly: the server answers from the store and wakes the lead after an unpark, which a
//! process without the work queue could not, and the command works against a remote pod
//! (through `kubectl port-forward`) the same way as against a local process.

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{ParkedArgs, UnparkArgs};

/// One park as `/ops/parked` answers it (tolerant of fields a newer server adds).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct ParkRow {
    pub lead: String,
    pub reason: String,
    pub parked_at: String,
    pub expires_at: String,
}

fn base_url(url: Option<String>) -> String {
    url.unwrap_or_else(|| format!("http://127.0.0.1:{}", crate::config::local_ops_port()))
        .trim_end_matches('/')
        .to_string()
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?)
}

fn with_token(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match crate::config::read_var("OPS_TOKEN") {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

/// The parks in force on the server at `url` (its ops listener).
pub async fn fetch_parked(url: &str) -> anyhow::Result<Vec<ParkRow>> {
    let token = crate::config::read_var("OPS_TOKEN");
    crate::inspect::get_ops(url, "/ops/parked", token.as_deref(), "a list of parks").await
}

/// Ends the lead's park on the server at `url`; `Ok(false)` when it was not parked.
pub async fn request_unpark(url: &str, phone: &str) -> anyhow::Result<bool> {
    let mut endpoint = reqwest::Url::parse(&format!("{url}/ops/leads"))
        .map_err(|e| anyhow::anyhow!("--url {url:?} is not a URL: {e}"))?;
    endpoint
        .path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--url cannot be a base URL"))?
        .push(phone)
        .push("unpark");
    // JSON, and no Origin: what the ops guard asks of a script.
    let resp = with_token(
        client()?
            .post(endpoint.clone())
            .json(&serde_json::json!({})),
    )
    .send()
    .await
    .map_err(|e| anyhow::anyhow!("could not reach {endpoint}: {e}"))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(false);
    }
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        anyhow::bail!("{endpoint} answered {status}: {}", body.trim());
    }
    Ok(true)
}

pub fn render_table(parks: &[ParkRow]) -> String {
    if parks.is_empty() {
        return "(no lead is parked)\n".into();
    }
    let header = ["LEAD", "REASON", "PARKED AT", "EXPIRES AT"];
    let rows: Vec<[String; 4]> = parks
        .iter()
        .map(|p| {
            [
                p.lead.clone(),
                p.reason.clone(),
                p.parked_at.clone(),
                p.expires_at.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(&header.map(String::from));
    for r in &rows {
        out += &line(r);
    }
    out
}

pub async fn run_parked(args: ParkedArgs) -> anyhow::Result<()> {
    let parks = fetch_parked(&base_url(args.url)).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&parks)?)?;
    } else {
        write!(out, "{}", render_table(&parks))?;
    }
    Ok(())
}

pub async fn run_unpark(args: UnparkArgs) -> anyhow::Result<()> {
    if request_unpark(&base_url(args.url), &args.phone).await? {
        println!(
            "{} unparked; its waiting messages get a turn now",
            args.phone
        );
        Ok(())
    } else {
        anyhow::bail!("{} is not parked", args.phone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_park_and_says_when_there_are_none() {
        let t = render_table(&[ParkRow {
            lead: "+13125550100".into(),
            reason: "reply_cap_hour".into(),
            parked_at: "2026-12-01T10:00:00Z".into(),
            expires_at: "2026-12-02T10:00:00Z".into(),
        }]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("LEAD"));
        assert!(lines[1].starts_with("+13125550100  reply_cap_hour"));
        assert!(render_table(&[]).contains("no lead is parked"));
    }
}
