//! `lead-agent takeovers`, `lead-agent takeover <phone> --operator NAME` and `lead-agent
//! release <phone>`: the human takeover (issue 15 item 6) from a terminal.
//!
//! Owns: the client side — `GET /ops/takeovers` and `POST /ops/leads/{phone}/takeover` /
//! `…/release` on a running server's ops listener (any role; OPS_TOKEN as a bearer token
//! when set), like `lead-agent unpark` — and the table layout. Must not: read or write the
//! database directly: the server holds the rule (one takeover per lead, the alerts), and
//! the command works against a remote pod (through `kubectl port-forward`) the same way.

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{ReleaseArgs, TakeoverArgs, TakeoversArgs};

/// One takeover as `/ops/takeovers` answers it (tolerant of fields a newer server adds).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct TakeoverRow {
    pub lead: String,
    pub operator: String,
    pub via: String,
    pub taken_at: String,
    pub last_activity_at: String,
}

fn base_url(url: Option<String>) -> String {
    url.unwrap_or_else(|| format!("http://127.0.0.1:{}", crate::config::local_ops_port()))
        .trim_end_matches('/')
        .to_string()
}

/// POSTs `body` to `/ops/leads/{phone}/{action}`; the status and the answer's text.
async fn post(
    url: &str,
    phone: &str,
    action: &str,
    body: serde_json::Value,
) -> anyhow::Result<(reqwest::StatusCode, String)> {
    let mut endpoint = reqwest::Url::parse(&format!("{url}/ops/leads"))
        .map_err(|e| anyhow::anyhow!("--url {url:?} is not a URL: {e}"))?;
    endpoint
        .path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--url cannot be a base URL"))?
        .push(phone)
        .push(action);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    // JSON, and no Origin: what the ops guard asks of a script.
    let mut req = client.post(endpoint.clone()).json(&body);
    if let Some(t) = crate::config::read_var("OPS_TOKEN") {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("could not reach {endpoint}: {e}"))?;
    let status = resp.status();
    Ok((status, resp.text().await.unwrap_or_default()))
}

/// The server's own words for a refusal (`error` of its JSON), else its text.
fn reason(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string())
}

pub fn render_table(rows: &[TakeoverRow]) -> String {
    if rows.is_empty() {
        return "(no lead is taken over)\n".into();
    }
    let header = ["LEAD", "OPERATOR", "VIA", "TAKEN AT", "LAST ACTIVITY"].map(String::from);
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|t| {
            [
                t.lead.clone(),
                t.operator.clone(),
                t.via.clone(),
                t.taken_at.clone(),
                t.last_activity_at.clone(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String]| {
        row.iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    cells.iter().fold(line(&header), |out, r| out + &line(r))
}

pub async fn run_takeovers(args: TakeoversArgs) -> anyhow::Result<()> {
    let token = crate::config::read_var("OPS_TOKEN");
    let rows: Vec<TakeoverRow> = crate::inspect::get_ops(
        &base_url(args.url),
        "/ops/takeovers",
        token.as_deref(),
        "a list of takeovers",
    )
    .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        write!(out, "{}", render_table(&rows))?;
    }
    Ok(())
}

pub async fn run_takeover(args: TakeoverArgs) -> anyhow::Result<()> {
    let body = serde_json::json!({ "operator": args.operator });
    let (status, text) = post(&base_url(args.url), &args.phone, "takeover", body).await?;
    if !status.is_success() {
        anyhow::bail!(
            "{} not taken over ({status}): {}",
            args.phone,
            reason(&text)
        );
    }
    println!(
        "{} taken over by {}: the AI stops replying and following up; its messages go to the HITL channel",
        args.phone, args.operator
    );
    Ok(())
}

pub async fn run_release(args: ReleaseArgs) -> anyhow::Result<()> {
    let body = match &args.operator {
        Some(name) => serde_json::json!({ "operator": name }),
        None => serde_json::json!({}),
    };
    let (status, text) = post(&base_url(args.url), &args.phone, "release", body).await?;
    if !status.is_success() {
        anyhow::bail!("{} not released ({status}): {}", args.phone, reason(&text));
    }
    println!(
        "{} released: the AI answers its next message (not those of the takeover)",
        args.phone
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_takeover_and_says_when_there_are_none() {
        let t = render_table(&[TakeoverRow {
            lead: "+13125550100".into(),
            operator: "ana".into(),
            via: "ops".into(),
            taken_at: "2026-12-01T10:00:00Z".into(),
            last_activity_at: "2026-12-01T10:05:00Z".into(),
        }]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("LEAD"));
        assert!(lines[1].starts_with("+13125550100  ana"), "{t}");
        assert!(render_table(&[]).contains("no lead is taken over"));
        assert_eq!(
            reason(r#"{"error": "this lead is not taken over"}"#),
            "this lead is not taken over"
        );
        assert_eq!(reason("plain"), "plain");
    }
}
