//! Telemetry: one tracing subscriber for the process — pretty in a terminal, JSON lines in
//! production — filtered by `RUST_LOG`, and, when configured, the same spans exported to
//! OpenTelemetry (an OTLP/HTTP collector, LangSmith, or both: `export`).
//!
//! Owns: what a field value may put on a log line. The pretty format writes values through
//! [`EscapedFields`]: every control character (newline and carriage return included), and
//! the Unicode characters that reorder or break a line on screen (bidi overrides and
//! isolates, line and paragraph separators), are written as escapes, so an SMS body
//! quoted in an alert or a span cannot start a forged log line or hide what follows.
//! tracing-subscriber's own pretty fields escape only ANSI sequences, and not in every
//! field. The JSON format needs no help: serde_json escapes every control character in a
//! string, so a value never ends its line (`telemetry::tests` checks both).
//! Also owns which spans are exported: those of this crate and the actor crate at `info`
//! and above ([`export_filter`]), whatever `RUST_LOG` says — each layer has its own filter,
//! so quieting the log does not blind the traces, and vendor crates' spans (HTTP clients,
//! the exporter's own requests) never enter a trace.
//! Must not: be initialised twice (tests build many apps in one process; `try_init` makes
//! the second call a no-op), or decide how phone numbers look (`actors::log_phone` does,
//! at the call site: a span's `lead` field is already masked when the exporter sees it).
//!
//! Layout: the subscriber and the escaping here; the exporters and the shutdown flush in
//! `export`, their HTTP client in `http_client`, the export failure streaks and their
//! alert in [`export_health`].

mod export;
pub mod export_health;
mod http_client;

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, TracingSettings, read_var};

pub use export::{exporting, flush};

/// The spans (and the events inside them) that are exported: ours, at `info` and above.
pub fn export_filter() -> Targets {
    Targets::new()
        .with_target("lead_agent", tracing::Level::INFO)
        .with_target("actors", tracing::Level::INFO)
}

/// Installs the process's subscriber: the log in `format`, and the span export of
/// `tracing` when it names a target (`instance` is the resource's `service.instance.id`).
/// `serve` says in one line what is off and which variable turns it on; the one-shot
/// commands and the watch pass `None`: they export nothing and say nothing of it.
pub fn init(format: LogFormat, tracing: Option<&TracingSettings>, instance: &str) {
    let off = TracingSettings::off();
    let (announce, tracing) = match tracing {
        Some(t) => (true, t),
        None => (false, &off),
    };
    let filter = read_var("RUST_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,tokio_cron_scheduler=warn"));
    let log = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .fmt_fields(EscapedFields)
            .boxed(),
    }
    .with_filter(filter);
    let mut problems = Vec::new();
    let provider = export::install(tracing, instance, &mut problems);
    let spans = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("lead-agent"))
            .with_filter(export_filter())
    });
    let installed = tracing_subscriber::registry()
        .with(log)
        .with(spans)
        .try_init()
        .is_ok();
    if !installed {
        return;
    }
    for problem in problems {
        tracing::error!("{problem}");
    }
    if tracing.langsmith_without_key {
        tracing::warn!(
            "LANGSMITH_TRACING=true but LANGSMITH_API_KEY is not set: LangSmith tracing is off"
        );
    }
    match provider {
        Some(_) => {
            let names: Vec<&str> = tracing.targets.iter().map(|t| t.name).collect();
            tracing::info!(exporters = ?names, service = %tracing.service_name, "tracing: spans are exported");
        }
        None if announce && tracing.targets.is_empty() => tracing::info!(
            "tracing export is off: set OTEL_EXPORTER_OTLP_ENDPOINT (a collector) or \
             LANGSMITH_TRACING=true with LANGSMITH_API_KEY to turn it on"
        ),
        None => {}
    }
}

/// True for a character that must not reach a log line as itself.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            // Bidi embeddings, overrides and isolates: reorder what follows on screen.
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
            // Line and paragraph separators: a line break to some viewers.
            | '\u{2028}' | '\u{2029}')
}

/// A `fmt::Write` that writes `\n`, `\r`, `\t` and `\u{..}` for [`needs_escape`]
/// characters and everything else as is.
pub struct Escaping<W>(pub W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut clean = 0;
        for (i, c) in s.char_indices() {
            if !needs_escape(c) {
                continue;
            }
            self.0.write_str(&s[clean..i])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            clean = i + c.len_utf8();
        }
        self.0.write_str(&s[clean..])
    }
}

/// `text` with [`needs_escape`] characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = Escaping(String::with_capacity(text.len()));
    let _ = out.write_str(text);
    out.0
}

/// The pretty format's fields: `message` first as text, then `name=value`, each value
/// escaped. Strings are shown as text (not quoted): they cannot break out of their line.
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.finish()
    }
}

struct EscapingVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // `log` records bridged into tracing carry their metadata as fields; shown already.
        if name.starts_with("log.") {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        let mut out = Escaping(&mut self.writer);
        self.result = match name {
            "message" => out.0.write_str(sep).and_then(|_| out.write_fmt(value)),
            name => write!(out.0, "{sep}{}=", name.strip_prefix("r#").unwrap_or(name))
                .and_then(|_| out.write_fmt(value)),
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, format_args!("{value}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.write(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for EscapingVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

/// A log captured in memory, for tests of what a sink writes.
#[cfg(test)]
pub(crate) mod capture {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }

        /// The process's pretty format (with [`super::EscapedFields`]), writing here.
        pub(crate) fn pretty(&self) -> tracing::Dispatch {
            tracing::Dispatch::new(
                tracing_subscriber::fmt()
                    .with_writer(self.clone())
                    .with_ansi(false)
                    .fmt_fields(super::EscapedFields)
                    .finish(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::capture::Captured;
    use super::*;

    const FORGED: &str =
        "hi\n2026-01-01T00:00:00.000000Z ERROR lead_agent: forged\r\u{1b}[2J\u{202E}gnp.exe";

    /// Logs one event with the hostile text in its message, a display field, a string
    /// field and a span field, through `subscriber`.
    fn log_hostile(captured: &Captured, json: bool) -> String {
        let dispatch = if json {
            let builder = tracing_subscriber::fmt()
                .with_writer(captured.clone())
                .with_ansi(false);
            tracing::Dispatch::new(builder.json().flatten_event(true).finish())
        } else {
            captured.pretty()
        };
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("turn", body = %FORGED);
            let _in = span.enter();
            tracing::info!(text = %FORGED, raw = FORGED, "{FORGED}");
        });
        captured.text()
    }

    #[test]
    fn the_pretty_format_escapes_control_characters_in_every_field_and_the_message() {
        let captured = Captured::default();
        let out = log_hostile(&captured, false);
        assert_eq!(out.lines().count(), 1, "one event, one line:\n{out}");
        assert!(!out.contains('\r') && !out.contains('\u{1b}') && !out.contains('\u{202E}'));
        // Four copies (span field, message, two fields), each escaped.
        assert_eq!(
            out.matches("hi\\n2026-01-01T00:00:00.000000Z ERROR")
                .count(),
            4,
            "{out}"
        );
        assert!(out.contains("\\r\\u{1b}[2J\\u{202e}gnp.exe"), "{out}");
    }

    #[test]
    fn the_json_format_keeps_a_value_on_its_line() {
        let captured = Captured::default();
        let out = log_hostile(&captured, true);
        assert_eq!(out.lines().count(), 1, "{out}");
        let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(
            line["text"], FORGED,
            "the value survives, escaped in transit"
        );
    }

    #[test]
    fn escape_writes_control_and_bidi_characters_as_escapes_and_leaves_the_rest() {
        assert_eq!(escape("a\nb\tc\r\0"), "a\\nb\\tc\\r\\u{0}");
        assert_eq!(
            escape("\u{2028}\u{2066}x\u{85}"),
            "\\u{2028}\\u{2066}x\\u{85}"
        );
        assert_eq!(escape("Olá 😀 +1312"), "Olá 😀 +1312");
    }
}
