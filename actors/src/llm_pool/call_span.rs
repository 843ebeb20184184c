//! The span of one provider call, in OpenTelemetry's GenAI semantic conventions: named
//! `chat {model}`, kind client, with `gen_ai.operation.name`, `gen_ai.system`,
//! `gen_ai.request.model`, and — once the call ended — `gen_ai.usage.input_tokens`,
//! `gen_ai.usage.output_tokens`, the outcome, the latency and, on failure, `error.type`.
//! `langsmith.span.kind = llm` makes LangSmith show it as a model run.
//!
//! Owns: those field names (the exporter, in the binary, turns every span field into an
//! attribute as named) and the provider-to-`gen_ai.system` mapping.
//! Must not: carry the prompt, the reply or a raw phone number — the lead is the masked
//! `LogPhone` rendering, as on every log line.

use std::time::Duration;

use tracing::Span;
use tracing::field::Empty;

use crate::conversation::AgentReply;
use crate::ports::{LeadId, ModelError};

use super::policy::outcome_label;

/// `gen_ai.system` for a provider name (the convention's well-known values where one
/// applies; our own name otherwise: the rules responder is `rules`).
pub(crate) fn gen_ai_system(provider: &str) -> &str {
    match provider {
        "gemini" => "gcp.gemini",
        other => other,
    }
}

/// A span for one call of `provider` (asking `model`) for `lead`.
pub(crate) fn start(provider: &str, model: &str, lead: &LeadId, retry: bool) -> Span {
    tracing::info_span!(
        "llm_call",
        otel.name = %format_args!("chat {model}"),
        otel.kind = "client",
        otel.status_code = Empty,
        provider,
        lead = %lead.log(),
        retry,
        gen_ai.operation.name = "chat",
        gen_ai.system = gen_ai_system(provider),
        gen_ai.request.model = model,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        "error.type" = Empty,
        outcome = Empty,
        latency_ms = Empty,
        langsmith.span.kind = "llm",
    )
}

/// Records how the call ended: `Ok(reply)`, a provider error, or `None` for a call cut by
/// its budget.
pub(crate) fn finish(
    span: &Span,
    elapsed: Duration,
    outcome: Result<&AgentReply, Option<&ModelError>>,
) {
    span.record("latency_ms", elapsed.as_millis() as u64);
    match outcome {
        Ok(reply) => {
            span.record("gen_ai.usage.input_tokens", reply.input_tokens);
            span.record("gen_ai.usage.output_tokens", reply.output_tokens);
            span.record("outcome", "ok");
        }
        Err(error) => {
            let label = error.map_or("timeout", outcome_label);
            span.record("outcome", label);
            span.record("error.type", label);
            span.record("otel.status_code", "ERROR");
        }
    }
}
