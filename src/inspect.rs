//! `lead-agent inspect scheduled`: the `celery inspect scheduled` of this system. Asks a
//! running server's `/ops/scheduled` and prints every job with its schedule, next fire time,
//! last run, lateness and outcome — as a table, or as JSON for scripts.
//!
//! Owns: the client side and the table layout, and the pieces every ops-listener command
//! shares (`get_ops`, `post_lead_action`, `ops_base_url`, `text_table`: `parked`, `unpark`,
//! `takeovers`, `takeover`, `release` use them). Must not: read the database directly — the
//! server (any role) answers from the store, and the command works against a remote pod
//! the same way as against a local process.

use std::io::Write;

use crate::cli::InspectScheduledArgs;
use crate::store::JobView;

/// `GET url + path` on a running server's ops listener, with `token` as a bearer token,
/// decoded as `T`; every failure names the endpoint (and quotes the server's reason for a
/// refusal). The one client of the CLI commands that read `/ops` (`inspect scheduled`,
/// `parked`).
pub async fn get_ops<T: serde::de::DeserializeOwned>(
    url: &str,
    path: &str,
    token: Option<&str>,
    what: &str,
) -> anyhow::Result<T> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let endpoint = format!("{}{path}", url.trim_end_matches('/'));
    let mut req = client.get(&endpoint);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("could not reach {endpoint}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        anyhow::bail!("{endpoint} answered {status}: {}", body.trim());
    }
    resp.json()
        .await
        .map_err(|e| anyhow::anyhow!("{endpoint} did not answer {what}: {e}"))
}

/// `--url`, else this machine's ops listener (`OPS_PORT`), without a trailing slash.
pub fn ops_base_url(url: Option<String>) -> String {
    url.unwrap_or_else(|| format!("http://127.0.0.1:{}", crate::config::local_ops_port()))
        .trim_end_matches('/')
        .to_string()
}

/// `POST url/ops/leads/{phone}/{action}` with `body` as JSON and no Origin (what the ops
/// guard asks of a script), OPS_TOKEN as a bearer token when set: the endpoint, the status
/// and the answer's text. The one client of the CLI commands that act on a lead
/// (`unpark`, `takeover`, `release`).
pub async fn post_lead_action(
    url: &str,
    phone: &str,
    action: &str,
    body: serde_json::Value,
) -> anyhow::Result<(reqwest::Url, reqwest::StatusCode, String)> {
    let mut endpoint = reqwest::Url::parse(&format!("{url}/ops/leads"))
        .map_err(|e| anyhow::anyhow!("--url {url:?} is not a URL: {e}"))?;
    endpoint
        .path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--url cannot be a base URL"))?
        .push(phone)
        .push(action);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let mut req = client.post(endpoint.clone()).json(&body);
    if let Some(t) = crate::config::read_var("OPS_TOKEN") {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("could not reach {endpoint}: {e}"))?;
    let status = resp.status();
    Ok((endpoint, status, resp.text().await.unwrap_or_default()))
}

/// Columns padded to their widest cell, two spaces apart, each line trimmed: the tables of
/// `inspect scheduled`, `parked` and `takeovers`.
pub fn text_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        cells
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for r in rows {
        out += &line(&mut r.iter().map(String::as_str));
    }
    out
}

/// Fetches the jobs from `url`'s `/ops/scheduled`.
pub async fn fetch_scheduled(url: &str, token: Option<&str>) -> anyhow::Result<Vec<JobView>> {
    let list: Vec<JobViewIn> = get_ops(url, "/ops/scheduled", token, "a job list").await?;
    Ok(list.into_iter().map(JobView::from).collect())
}

/// The wire shape, tolerant of fields a newer server adds.
#[derive(serde::Deserialize)]
struct JobViewIn {
    name: String,
    schedule: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    missed_policy: String,
    next_fire_at: Option<String>,
    #[serde(default)]
    last_fire_at: Option<String>,
    last_run_at: Option<String>,
    last_lateness_ms: Option<i64>,
    #[serde(default)]
    last_duration_ms: Option<i64>,
    last_outcome: Option<String>,
    #[serde(default)]
    last_instance: Option<String>,
    #[serde(default)]
    runs: i64,
    #[serde(default)]
    missed: i64,
}

impl From<JobViewIn> for JobView {
    fn from(j: JobViewIn) -> Self {
        JobView {
            name: j.name,
            schedule: j.schedule,
            time_zone: j.time_zone,
            missed_policy: j.missed_policy,
            next_fire_at: j.next_fire_at,
            last_fire_at: j.last_fire_at,
            last_run_at: j.last_run_at,
            last_lateness_ms: j.last_lateness_ms,
            last_duration_ms: j.last_duration_ms,
            last_outcome: j.last_outcome,
            last_instance: j.last_instance,
            runs: j.runs,
            missed: j.missed,
        }
    }
}

/// Second precision is what an operator reads; the JSON keeps the full value.
fn short_time(t: &Option<String>) -> String {
    t.as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

pub fn render_table(jobs: &[JobView]) -> String {
    let header = [
        "JOB",
        "SCHEDULE",
        "TZ",
        "NEXT FIRE",
        "LAST RUN",
        "LATE ms",
        "RUNS",
        "MISSED",
        "LAST OUTCOME",
    ];
    let rows: Vec<[String; 9]> = jobs
        .iter()
        .map(|j| {
            let mut outcome = j.last_outcome.clone().unwrap_or_else(|| "-".into());
            if outcome.chars().count() > 60 {
                outcome = outcome.chars().take(57).collect::<String>() + "...";
            }
            [
                j.name.clone(),
                j.schedule.clone(),
                j.time_zone.clone(),
                short_time(&j.next_fire_at),
                short_time(&j.last_run_at),
                j.last_lateness_ms
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "-".into()),
                j.runs.to_string(),
                j.missed.to_string(),
                outcome,
            ]
        })
        .collect();
    let mut out = text_table(header, &rows);
    if jobs.is_empty() {
        out += "(no scheduled jobs: is a scheduler role running against this store?)\n";
    }
    out
}

pub async fn run_scheduled(args: InspectScheduledArgs) -> anyhow::Result<()> {
    let url = ops_base_url(args.url);
    let token = crate::config::read_var("OPS_TOKEN");
    let jobs = fetch_scheduled(&url, token.as_deref()).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&jobs)?)?;
    } else {
        write!(out, "{}", render_table(&jobs))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_job_and_says_when_there_are_none() {
        let job = JobView {
            name: "followup_sweep".into(),
            schedule: "0 */30 * * * *".into(),
            time_zone: "America/Chicago".into(),
            missed_policy: "run_once".into(),
            next_fire_at: Some("2026-11-27T07:00:00+00:00".into()),
            last_fire_at: None,
            last_run_at: None,
            last_lateness_ms: Some(12),
            last_duration_ms: None,
            last_outcome: Some("ok: ".to_string() + &"x".repeat(100)),
            last_instance: None,
            runs: 3,
            missed: 1,
        };
        let t = render_table(&[job]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("followup_sweep"));
        assert!(lines[1].contains("2026-11-27 07:00:00Z"));
        assert!(lines[1].contains("..."));
        assert!(render_table(&[]).contains("no scheduled jobs"));
    }
}
