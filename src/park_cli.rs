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

/// The parks in force on the server at `url` (its ops listener).
pub async fn fetch_parked(url: &str) -> anyhow::Result<Vec<ParkRow>> {
    let token = crate::config::read_var("OPS_TOKEN");
    crate::inspect::get_ops(url, "/ops/parked", token.as_deref(), "a list of parks").await
}

/// Ends the lead's park on the server at `url`; `Ok(false)` when it was not parked.
pub async fn request_unpark(url: &str, phone: &str) -> anyhow::Result<bool> {
    let (endpoint, status, body) =
        crate::inspect::post_lead_action(url, phone, "unpark", serde_json::json!({})).await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(false);
    }
    if !status.is_success() {
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
    crate::inspect::text_table(header, &rows)
}

pub async fn run_parked(args: ParkedArgs) -> anyhow::Result<()> {
    let parks = fetch_parked(&crate::inspect::ops_base_url(args.url)).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&parks)?)?;
    } else {
        write!(out, "{}", render_table(&parks))?;
    }
    Ok(())
}

pub async fn run_unpark(args: UnparkArgs) -> anyhow::Result<()> {
    if request_unpark(&crate::inspect::ops_base_url(args.url), &args.phone).await? {
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
