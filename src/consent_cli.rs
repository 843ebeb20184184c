//! `lead-agent consent export --since <time> --format csv`: the consent ledger for an
//! auditor or a complaint file, every event since a moment, to stdout.
//!
//! Owns: reading `--since` (RFC 3339, or a day `YYYY-MM-DD` meaning its UTC midnight) and
//! writing the rows as CSV (RFC 4180 through the `csv` crate: the lead's own words may hold
//! commas, quotes and newlines) with a header row. Reads the store named by DATABASE_URL,
//! as `migrate` does (and like it brings the schema up to date first).
//! Must not: write anything but the CSV to stdout (no log lines: telemetry is not started,
//! so the output pipes straight into a file), or change the ledger.

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};

use crate::cli::{ConsentExportArgs, ExportFormat};
use crate::store::{ConsentEvent, SqlStore};

/// The export's columns, in order.
pub const HEADER: [&str; 7] = [
    "id",
    "lead",
    "at",
    "method",
    "consent",
    "message_sid",
    "words",
];

/// `--since`: an RFC 3339 time, or a day (UTC midnight).
pub fn parse_since(s: &str) -> anyhow::Result<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    anyhow::bail!(
        "--since {s:?} is neither an RFC 3339 time (2026-03-02T09:00:00Z) nor a day (2026-03-02)"
    )
}

/// The events as CSV with a header row.
pub fn write_csv(out: impl Write, events: &[ConsentEvent]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER)?;
    for e in events {
        w.write_record([
            e.id.to_string().as_str(),
            e.lead.as_str(),
            e.at.to_rfc3339().as_str(),
            e.method.as_str(),
            if e.grants { "granted" } else { "revoked" },
            e.message_sid.as_deref().unwrap_or(""),
            e.words.as_str(),
        ])?;
    }
    w.flush().context("Failed to write the CSV")?;
    Ok(())
}

pub async fn run_export(args: ConsentExportArgs) -> anyhow::Result<()> {
    let since = parse_since(&args.since)?;
    let settings = crate::config::Settings::from_env()?;
    let store = SqlStore::connect(settings.database_url.expose()).await?;
    let events = store
        .consent_events_since(since)
        .await
        .context("Failed to read the consent ledger")?;
    match args.format {
        ExportFormat::Csv => write_csv(std::io::stdout().lock(), &events),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ConsentMethod;

    #[test]
    fn since_is_a_time_or_a_day_and_anything_else_says_what_it_takes() {
        assert_eq!(
            parse_since("2026-03-02T09:00:00-06:00")
                .unwrap()
                .to_rfc3339(),
            "2026-03-02T15:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-03-02").unwrap().to_rfc3339(),
            "2026-03-02T00:00:00+00:00"
        );
        let e = parse_since("yesterday").unwrap_err().to_string();
        assert!(e.contains("RFC 3339") && e.contains("yesterday"), "{e}");
    }

    #[test]
    fn the_words_are_quoted_so_commas_quotes_and_newlines_stay_in_their_cell() {
        let event = ConsentEvent {
            id: 7,
            lead: "+13125550100".into(),
            at: parse_since("2026-03-02T09:00:00Z").unwrap(),
            method: ConsentMethod::Revocation,
            grants: false,
            message_sid: Some("SM1".into()),
            words: "stop, \"please\"\nno more".into(),
        };
        let mut out = Vec::new();
        write_csv(&mut out, &[event]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id,lead,at,method,consent,message_sid,words\n\
             7,+13125550100,2026-03-02T09:00:00+00:00,revocation,revoked,SM1,\"stop, \"\"please\"\"\nno more\"\n"
        );
    }
}
