//! One call through the chain, run in the caller's task: take a permit, ask each provider
//! the actor admits, within the budgets, and report each outcome back.
//!
//! Owns: the budgets (the soft one per provider call, the hard one for the chain), the
//! once-only wait for a short retry-after, which provider answered (metrics, tokens, the
//! fallback alerts), and the last resort when no incarnation of the actor runs.
//! Must not: change a breaker or take a permit itself — those are the actor's — or keep
//! its permit past the end of the call.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::{Instant, timeout};
use tracing::Instrument;

use super::call_span;
use super::route::Unavailable;
use super::{PoolError, Shared};
use crate::alert_router::{Alert, AlertKind, Severity};
use crate::breaker::Admission;
use crate::conversation::{AgentReply, AgentRequest, Block};
use crate::ports::{ChatModel, LeadId, ModelError, Prompt};

use super::policy::outcome_label;

/// What the chain is asked: a plain reply, or one step of the brain's tool loop.
#[derive(Clone, Copy)]
pub(super) enum Ask<'a> {
    Plain(&'a Prompt),
    Agent(&'a AgentRequest),
}

impl Ask<'_> {
    fn lead(&self) -> &LeadId {
        match self {
            Ask::Plain(p) => &p.lead,
            Ask::Agent(r) => &r.prompt.lead,
        }
    }

    async fn call(self, model: &dyn ChatModel) -> Result<AgentReply, ModelError> {
        match self {
            Ask::Plain(prompt) => {
                let c = model.complete(prompt).await?;
                Ok(AgentReply {
                    blocks: vec![Block::Text(c.text)],
                    provider: c.provider,
                    input_tokens: c.input_tokens,
                    output_tokens: c.output_tokens,
                })
            }
            Ask::Agent(request) => model.converse(request).await,
        }
    }
}

pub(super) async fn ask(
    shared: &Arc<Shared>,
    ask: Ask<'_>,
    deadline: &mut Option<Instant>,
) -> Result<AgentReply, PoolError> {
    let _permit = match shared.acquire().await {
        Ok(permit) => permit,
        Err(down) => return last_resort(shared, ask, deadline, down).await,
    };
    shared.stats.calls.fetch_add(1, Ordering::Relaxed);
    let hard = shared.config.hard_timeout;
    let deadline = *deadline.get_or_insert(Instant::now() + hard);
    let budget = deadline.saturating_duration_since(Instant::now());
    match timeout(budget, run_chain(shared, ask, deadline)).await {
        Ok(result) => result,
        Err(_) => {
            shared.stats.hard_timeouts.fetch_add(1, Ordering::Relaxed);
            Err(PoolError::HardTimeout(hard))
        }
    }
}

async fn run_chain(
    shared: &Shared,
    ask: Ask<'_>,
    deadline: Instant,
) -> Result<AgentReply, PoolError> {
    let lead = ask.lead();
    let mut failures: Vec<String> = Vec::new();
    let last = shared.chain.len() - 1;
    // Set when the actor went away mid-call and did not come back within a soft budget:
    // the remaining links but the last are skipped, and the last is asked unadmitted.
    let mut pool_gone = false;
    for (i, model) in shared.chain.iter().enumerate() {
        let name = shared.names[i].as_str();
        let admitted = if pool_gone {
            Err(Unavailable("the pool is restarting"))
        } else {
            shared.admit(i).await
        };
        let actor = match admitted {
            Ok((_, Admission::Refuse)) => {
                failures.push(format!("{name}: circuit open"));
                continue;
            }
            Ok((actor, _)) => Some(actor),
            Err(Unavailable(why)) if i < last => {
                pool_gone = true;
                failures.push(format!("{name}: not asked, {why}"));
                continue;
            }
            Err(_) => None,
        };
        let mut waited_once = false;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let clamped = remaining < shared.config.soft_timeout;
            let started = Instant::now();
            let span = call_span::start(name, &shared.models[i], lead, waited_once);
            let outcome = timeout(
                remaining.min(shared.config.soft_timeout),
                ask.call(model.as_ref()),
            )
            .instrument(span.clone())
            .await;
            metrics::histogram!("lead_agent_llm_latency_seconds", "provider" => name.to_string())
                .record(started.elapsed().as_secs_f64());
            call_span::finish(&span, started.elapsed(), span_outcome(&outcome));
            let error = match outcome {
                // Cut by the chain's deadline rather than its own soft budget: the hard
                // budget is spent. Not the provider's fault, so the breaker is not told.
                Err(_) if clamped => {
                    return Err(PoolError::HardTimeout(shared.config.hard_timeout));
                }
                Err(_) => ModelError::Timeout,
                Ok(Ok(reply)) => {
                    shared.report(actor.as_ref(), i, Ok(())).await;
                    record_success(name, &reply);
                    if i > 0 {
                        record_fallback(shared, lead, name, i == last, &failures);
                    }
                    return Ok(reply);
                }
                Ok(Err(e)) => e,
            };
            metrics::counter!("lead_agent_llm_calls_total", "provider" => name.to_string(), "outcome" => outcome_label(&error)).increment(1);
            tracing::warn!(provider = name, error = %error, lead = %lead.log(), "model call failed");
            shared.report(actor.as_ref(), i, Err(error.clone())).await;
            if let ModelError::RateLimited {
                retry_after: Some(after),
            } = &error
            {
                let after = *after;
                let left = deadline.saturating_duration_since(Instant::now());
                // Wait once, and only if the retry still gets a useful share of the
                // budget; otherwise the next provider is the retry. (A retry-after past
                // the cap is the actor's: it holds the breaker open until then.)
                if !waited_once
                    && after <= shared.policy.retry_after_cap
                    && after + shared.config.soft_timeout / 2 < left
                {
                    waited_once = true;
                    tracing::info!(
                        provider = name,
                        ?after,
                        "rate limited: waiting as asked, then retrying once"
                    );
                    tokio::time::sleep(after).await;
                    continue;
                }
            }
            failures.push(format!("{name}: {error}"));
            break;
        }
    }
    Err(chain_failed(shared, lead, &failures))
}

/// No incarnation of the actor runs: no permit, no breaker to ask. The chain's last link
/// (the rules responder, local and unfailing) answers within the soft budget, so the lead
/// is answered and the operator alerted as when every model failed.
async fn last_resort(
    shared: &Shared,
    ask: Ask<'_>,
    deadline: &mut Option<Instant>,
    Unavailable(why): Unavailable,
) -> Result<AgentReply, PoolError> {
    shared.stats.calls.fetch_add(1, Ordering::Relaxed);
    let hard = shared.config.hard_timeout;
    let deadline = *deadline.get_or_insert(Instant::now() + hard);
    let lead = ask.lead();
    let last = shared.chain.len() - 1;
    let name = shared.names[last].as_str();
    let remaining = deadline.saturating_duration_since(Instant::now());
    let started = Instant::now();
    let span = call_span::start(name, &shared.models[last], lead, false);
    let outcome = timeout(
        remaining.min(shared.config.soft_timeout),
        ask.call(shared.chain[last].as_ref()),
    )
    .instrument(span.clone())
    .await;
    metrics::histogram!("lead_agent_llm_latency_seconds", "provider" => name.to_string())
        .record(started.elapsed().as_secs_f64());
    call_span::finish(&span, started.elapsed(), span_outcome(&outcome));
    let error = match outcome {
        Ok(Ok(reply)) => {
            record_success(name, &reply);
            shared.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("lead_agent_llm_fallbacks_total").increment(1);
            tracing::error!(provider = name, reason = why, lead = %lead.log(), "no LLM pool runs: the last resort answered");
            shared.alerts.raise(
                Alert::new(
                    AlertKind::Error,
                    Severity::Critical,
                    "model_fallback",
                    format!(
                        "No model was asked for {lead}: {why}; the last resort `{name}` answered"
                    ),
                )
                .for_lead(lead),
            );
            return Ok(reply);
        }
        Ok(Err(e)) => e,
        Err(_) if remaining < shared.config.soft_timeout => {
            shared.stats.hard_timeouts.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::HardTimeout(hard));
        }
        Err(_) => ModelError::Timeout,
    };
    metrics::counter!("lead_agent_llm_calls_total", "provider" => name.to_string(), "outcome" => outcome_label(&error)).increment(1);
    Err(chain_failed(
        shared,
        lead,
        &[format!("pool: {why}"), format!("{name}: {error}")],
    ))
}

/// A call's result as its span records it: the reply, the provider's error, or `None` for
/// a call cut by its budget.
fn span_outcome<T>(
    outcome: &Result<Result<AgentReply, ModelError>, T>,
) -> Result<&AgentReply, Option<&ModelError>> {
    match outcome {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

fn chain_failed(shared: &Shared, lead: &LeadId, failures: &[String]) -> PoolError {
    let all = failures.join("; ");
    shared.alerts.raise(
        Alert::error(
            "model_chain_failed",
            format!("No model answered {lead}: {all}"),
        )
        .for_lead(lead),
    );
    PoolError::AllFailed(all)
}

fn record_success(name: &str, reply: &AgentReply) {
    metrics::counter!("lead_agent_llm_calls_total", "provider" => name.to_string(), "outcome" => "ok").increment(1);
    metrics::counter!("lead_agent_llm_tokens_total", "provider" => name.to_string(), "kind" => "input")
        .increment(reply.input_tokens);
    metrics::counter!("lead_agent_llm_tokens_total", "provider" => name.to_string(), "kind" => "output")
        .increment(reply.output_tokens);
}

/// A provider other than the first answered. When it is the chain's last link (the
/// rules responder) every model failed: that is critical, since leads are now getting
/// canned replies.
fn record_fallback(
    shared: &Shared,
    lead: &LeadId,
    name: &str,
    last_resort: bool,
    failures: &[String],
) {
    shared.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("lead_agent_llm_fallbacks_total").increment(1);
    let (severity, text) = if last_resort {
        (
            Severity::Critical,
            format!(
                "Every model failed for {lead}; the last resort `{name}` answered. Failures: {}",
                failures.join("; ")
            ),
        )
    } else {
        (
            Severity::Warning,
            format!(
                "Reply for {lead} came from `{name}` after: {}",
                failures.join("; ")
            ),
        )
    };
    shared
        .alerts
        .raise(Alert::new(AlertKind::Error, severity, "model_fallback", text).for_lead(lead));
}
