//! Tracing settings: where spans are exported — an OTLP/HTTP collector
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`), LangSmith (`LANGSMITH_TRACING=true`), both, or neither
//! (the default).
//!
//! Owns: each destination's full traces URL and its own headers, and the rule that a
//! destination's headers go to it alone (the collector's token never reaches LangSmith).
//! LangSmith's path and headers are its documented OTLP ingestion: `OTEL_EXPORTER_OTLP_ENDPOINT
//! = {LANGSMITH_ENDPOINT}/otel` with `x-api-key` and `Langsmith-Project` ("Trace with
//! OpenTelemetry", LangSmith docs), so traces go to `{LANGSMITH_ENDPOINT}/otel/v1/traces`.
//! Must not: export anything (`crate::telemetry` does) or keep a header value outside a
//! [`Secret`].

use std::time::Duration;

use super::reader::Reader;
use super::secret::Secret;

/// One place spans are sent.
#[derive(Debug, Clone)]
pub struct TraceTarget {
    /// `otlp` or `langsmith`: in logs, metrics and the alert.
    pub name: &'static str,
    /// The full URL of the traces endpoint.
    pub url: String,
    /// Sent with every export to this target only. Values may be credentials.
    pub headers: Vec<(String, Secret)>,
}

#[derive(Debug, Clone)]
pub struct TracingSettings {
    pub targets: Vec<TraceTarget>,
    /// `OTEL_SERVICE_NAME`.
    pub service_name: String,
    /// `TRACE_EXPORT_ALERT_SECS`: how long an exporter may keep failing before its alert.
    pub alert_after: Duration,
    /// `LANGSMITH_TRACING=true` without `LANGSMITH_API_KEY`: said once at start.
    pub langsmith_without_key: bool,
}

impl TracingSettings {
    /// No exporter: what the tests' in-process apps and `migrate` run with.
    pub fn off() -> Self {
        Self {
            targets: Vec::new(),
            service_name: "lead-agent".into(),
            alert_after: Duration::from_secs(300),
            langsmith_without_key: false,
        }
    }
}

/// `{base}/{path}` with exactly one slash between them.
fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// `key=value,key2=value2`, each value percent-decoded (the OpenTelemetry spec's format
/// for `OTEL_EXPORTER_OTLP_HEADERS`). A malformed entry is a problem naming its key only:
/// the value is a secret.
fn parse_headers(r: &mut Reader<'_>, name: &str, raw: &str) -> Vec<(String, Secret)> {
    let mut headers = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((key, value)) = entry.split_once('=') else {
            r.problems.push(format!(
                "{name}: an entry has no `=` (the format is key=value,key2=value2)"
            ));
            continue;
        };
        let key = key.trim();
        let value: String = url::form_urlencoded::parse(format!("v={}", value.trim()).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let valid_name = reqwest::header::HeaderName::from_bytes(key.as_bytes()).is_ok();
        if !valid_name || reqwest::header::HeaderValue::from_str(&value).is_err() {
            r.problems
                .push(format!("{name}: header {key:?} is not a valid HTTP header"));
            continue;
        }
        headers.push((key.to_string(), Secret::new(value)));
    }
    headers
}

pub(super) fn tracing_settings(r: &mut Reader<'_>) -> TracingSettings {
    let mut targets = Vec::new();
    if let Some(endpoint) = r
        .raw("OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|e| e.trim().to_string())
        && !endpoint.is_empty()
    {
        if url::Url::parse(&endpoint).is_err() {
            r.problems.push(format!(
                "OTEL_EXPORTER_OTLP_ENDPOINT={endpoint:?} is not a URL"
            ));
        }
        let headers = match r.raw("OTEL_EXPORTER_OTLP_HEADERS") {
            Some(raw) => parse_headers(r, "OTEL_EXPORTER_OTLP_HEADERS", &raw),
            None => Vec::new(),
        };
        targets.push(TraceTarget {
            name: "otlp",
            url: join(&endpoint, "v1/traces"),
            headers,
        });
    }
    let mut langsmith_without_key = false;
    if r.flag("LANGSMITH_TRACING") {
        let endpoint = r.string("LANGSMITH_ENDPOINT").trim().to_string();
        if url::Url::parse(&endpoint).is_err() {
            r.problems
                .push(format!("LANGSMITH_ENDPOINT={endpoint:?} is not a URL"));
        }
        match r.raw("LANGSMITH_API_KEY").filter(|k| !k.trim().is_empty()) {
            None => langsmith_without_key = true,
            Some(key) => {
                let mut headers = vec![("x-api-key".to_string(), Secret::new(key.trim()))];
                if let Some(project) = r
                    .raw("LANGSMITH_PROJECT")
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                {
                    headers.push(("Langsmith-Project".to_string(), Secret::new(project)));
                }
                targets.push(TraceTarget {
                    name: "langsmith",
                    url: join(&endpoint, "otel/v1/traces"),
                    headers,
                });
            }
        }
    }
    let service_name = r.string("OTEL_SERVICE_NAME").trim().to_string();
    TracingSettings {
        targets,
        service_name: if service_name.is_empty() {
            "lead-agent".into()
        } else {
            service_name
        },
        alert_after: r.seconds("TRACE_EXPORT_ALERT_SECS"),
        langsmith_without_key,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::Settings;

    fn tracing(vars: &[(&str, &str)]) -> super::TracingSettings {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        Settings::from_map(&map).unwrap().tracing
    }

    #[test]
    fn tracing_is_off_unless_a_variable_turns_it_on() {
        let t = tracing(&[]);
        assert!(t.targets.is_empty());
        assert!(!t.langsmith_without_key);
        assert_eq!(t.service_name, "lead-agent");
    }

    #[test]
    fn the_otlp_endpoint_is_a_base_url_and_its_headers_are_decoded() {
        let t = tracing(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20tok, x-team=leads",
            ),
        ]);
        assert_eq!(t.targets.len(), 1);
        assert_eq!(t.targets[0].url, "http://collector:4318/v1/traces");
        let headers: Vec<(&str, &str)> = t.targets[0]
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(
            headers,
            [("authorization", "Bearer tok"), ("x-team", "leads")]
        );
    }

    #[test]
    fn langsmith_uses_its_otel_path_and_headers_beside_the_collector() {
        let t = tracing(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=collector-only"),
            ("LANGSMITH_TRACING", "true"),
            ("LANGSMITH_API_KEY", "lsv2_key"),
            ("LANGSMITH_PROJECT", "landlord-rep"),
        ]);
        assert_eq!(t.targets.len(), 2);
        let ls = &t.targets[1];
        assert_eq!(ls.name, "langsmith");
        assert_eq!(ls.url, "https://api.smith.langchain.com/otel/v1/traces");
        let names: Vec<&str> = ls.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["x-api-key", "Langsmith-Project"]);
    }

    #[test]
    fn langsmith_without_a_key_stays_off_and_says_so() {
        let t = tracing(&[("LANGSMITH_TRACING", "true")]);
        assert!(t.targets.is_empty());
        assert!(t.langsmith_without_key);
    }

    #[test]
    fn a_malformed_header_is_a_problem_that_never_shows_its_value() {
        let map = HashMap::from([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "tok-s3cret"),
        ]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
