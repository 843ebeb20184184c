//! `lead-agent takeovers`, `lead-agent takeover <phone> --operator NAME` and `lead-agent
//! release <phone>`: the human takeover (issue 15 item 6) from a terminal.
//!
//! Owns: the client side — `GET /ops/takeovers` and `POST /ops/leads/{phone}/takeover` /
//! `…/release` on a running server's ops listener (any role; OPS_TOKEN as a bearer token
//! when set), like `lead-agent unpark` — and the table layout. Must not: read or write the
//! database directly: the server holds the rule (one takeover per lead, the alerts), and
//! the command works against a remote pod (through `kubectl port-forward`) the same way.

use std::io::Write;

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
    let header = ["LEAD", "OPERATOR", "VIA", "TAKEN AT", "LAST ACTIVITY"];
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
    crate::inspect::text_table(header, &cells)
}

pub async fn run_takeovers(args: TakeoversArgs) -> anyhow::Result<()> {
    let token = crate::config::read_var("OPS_TOKEN");
    let rows: Vec<TakeoverRow> = crate::inspect::get_ops(
        &crate::inspect::ops_base_url(args.url),
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
    let (_, status, text) = crate::inspect::post_lead_action(
        &crate::inspect::ops_base_url(args.url),
        &args.phone,
        "takeover",
        body,
    )
    .await?;
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
    let (_, status, text) = crate::inspect::post_lead_action(
        &crate::inspect::ops_base_url(args.url),
        &args.phone,
        "release",
        body,
    )
    .await?;
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
