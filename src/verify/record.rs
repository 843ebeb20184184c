//! `verify --record`: the dated result appended to the state file (DEPLOYMENT_STATE.md by
//! default) and reported to the service (`POST /ops/verifications`, shown on `/ops`).
//! Must not: rewrite what the file held before.

use std::path::Path;

use anyhow::Context;

use super::{Report, VerifyOptions};

/// The heading under which `--record` appends; created at the end when missing.
pub const LOG_HEADING: &str = "## Verification log";

/// Appends the report to the state file under [`LOG_HEADING`].
pub fn append_record(file: &Path, report: &Report, commit: Option<&str>) -> anyhow::Result<()> {
    let mut text = std::fs::read_to_string(file).unwrap_or_default();
    if !text.contains(LOG_HEADING) {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "\n{LOG_HEADING}\n\nAppended by `lead-agent verify --record`, newest last.\n"
        ));
    }
    text.push_str(&report.record_text(commit));
    std::fs::write(file, text).with_context(|| format!("Failed to write {}", file.display()))
}

/// Tells the service the result, for the `/ops` page; failure to do so is reported, not
/// fatal (the file is the record).
pub async fn post_record(options: &VerifyOptions, report: &Report) -> Result<(), String> {
    let http = reqwest::Client::new();
    let mut request = http
        .post(format!("{}/ops/verifications", options.ops_url))
        .json(report);
    if let Some(token) = &options.ops_token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the service answered {}", r.status())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    #[test]
    fn record_appends_under_the_log_heading_and_keeps_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("DEPLOYMENT_STATE.md");
        std::fs::write(&file, "# DEPLOYMENT_STATE\n\nhand-written truth\n").unwrap();
        let report = Report::new(
            "http://x",
            Utc::now(),
            vec![step("health", Status::Fail, "down")],
        );
        append_record(&file, &report, Some("abc123")).unwrap();
        append_record(&file, &report, None).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("# DEPLOYMENT_STATE\n\nhand-written truth\n"));
        assert_eq!(text.matches(LOG_HEADING).count(), 1);
        assert_eq!(text.matches("— FAIL — http://x").count(), 2);
        assert!(text.contains("(commit abc123)") && text.contains("- health: FAIL — down"));
    }
}
