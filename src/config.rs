//! Settings: every environment variable the service reads, with its default or the rule
//! that makes it required, its meaning, and whether it is a secret.
//!
//! Owns: [`ENV_VARS`] (the one list README, the deploy manifests and their tests are checked
//! against) and [`Settings::from_env`], which reports every problem at once, by name.
//! Must not: read the environment anywhere else (all reads go through [`read_var`], which
//! refuses names missing from the list), or print a secret: [`Secret`]'s `Debug` redacts.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use actors::alert_router::AlertKind;
use actors::outbox::InDoubtPolicy;

/// One environment variable the code reads.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    pub name: &'static str,
    /// Shown in README; `None` when unset means "feature off" or the value is derived.
    pub default: Option<&'static str>,
    pub secret: bool,
    pub doc: &'static str,
}

const fn var(
    name: &'static str,
    default: Option<&'static str>,
    secret: bool,
    doc: &'static str,
) -> EnvVar {
    EnvVar {
        name,
        default,
        secret,
        doc,
    }
}

/// Every variable, in README order.
pub const ENV_VARS: &[EnvVar] = &[
    var(
        "PORT",
        Some("5012"),
        false,
        "Port of the public listener (the seed's 5012): `/twilio/sms`, `/discord/interactions`, `/health`, `/ready` — nothing else.",
    ),
    var(
        "BIND_ADDRESS",
        Some("127.0.0.1"),
        false,
        "Address the public listener binds. A non-loopback one (a container's `0.0.0.0`) needs TWILIO_AUTH_TOKEN and OPS_TOKEN, or `serve --insecure` / ALLOW_INSECURE.",
    ),
    var(
        "OPS_PORT",
        Some("5013"),
        false,
        "Port of the ops listener, which every role serves: `/ops`, `/ops/*`, `/metrics` (and `/health`, `/ready` for probes). Never routed by the public Service or Ingress.",
    ),
    var(
        "OPS_BIND_ADDRESS",
        Some("127.0.0.1"),
        false,
        "Address the ops listener binds: loopback by default (reach it with `kubectl port-forward`); `0.0.0.0` in a pod, for the kubelet's probes, Prometheus and the internal Service `lead-agent-ops`. Non-loopback needs OPS_TOKEN (web and all: TWILIO_AUTH_TOKEN too), or ALLOW_INSECURE.",
    ),
    var(
        "ALLOW_INSECURE",
        Some("false"),
        false,
        "`true` (like `serve --insecure`): start on a non-loopback BIND_ADDRESS or OPS_BIND_ADDRESS without TWILIO_AUTH_TOKEN and OPS_TOKEN — anyone who reaches the port may post webhooks and read /ops. For a throwaway test host only.",
    ),
    // --- The listener's limits (`http::server`, issue 12): every HTTP port of the binary ---
    var(
        "HTTP_HEADER_TIMEOUT_SECS",
        Some("10"),
        false,
        "A request head must be complete this long after its first byte (after the connection opens, for its first request); otherwise the connection is closed without an answer. Slow-loris clients are cut here.",
    ),
    var(
        "HTTP_BODY_TIMEOUT_SECS",
        Some("5"),
        false,
        "A request body must be complete this long after its head, however it trickles; otherwise 408 and the connection is closed (a webhook cut so stores nothing). At most HTTP_REQUEST_TIMEOUT_SECS.",
    ),
    var(
        "HTTP_IDLE_TIMEOUT_SECS",
        Some("60"),
        false,
        "A kept-alive connection with no next request this long after its last response is closed. Behind a proxy or load balancer that reuses connections, keep it above the proxy's own idle timeout.",
    ),
    var(
        "HTTP_REQUEST_TIMEOUT_SECS",
        Some("10"),
        false,
        "A request is answered within this long of its head: past it, 503 at once, and the handler finishes in the background (a webhook whose store write was slow is still stored and answered). Under Twilio's 15 s read timeout, above the webhook's store-then-fallback path (3 s + 5 s).",
    ),
    var(
        "HTTP_MAX_CONNECTIONS",
        Some("1024"),
        false,
        "Open connections per listener. When reached, the connection that has waited longest for a request head (idle, or a slow client) is closed to make room; when all have a request in progress, the newcomer gets 503 and is closed. Must fit under the file-descriptor limit (raised to the hard limit at start) with 256 to spare: a set value that does not stops the start, the default is lowered with a warning.",
    ),
    var(
        "HTTP_MAX_IN_FLIGHT",
        Some("128"),
        false,
        "Requests handled at once per listener; more are answered 503 at once and counted (`lead_agent_http_shed_total`) — never Twilio's webhook within its body limit, nor /health and /ready.",
    ),
    var(
        "HTTP_SHUTDOWN_SECS",
        Some("10"),
        false,
        "After SIGTERM, how long requests in progress get to finish; then every connection left is dropped and the ordered stop runs. HTTP_SHUTDOWN_SECS + SHUTDOWN_GRACE_SECS + a preStop sleep + 3 s must fit in terminationGracePeriodSeconds (`config check`).",
    ),
    var(
        "DATABASE_URL",
        Some("sqlite://lead-agent.db"),
        true,
        "Store: `sqlite://PATH` (created if missing; the embedded default) or `postgres://USER:PASS@HOST:PORT/DB` (production).",
    ),
    var(
        "READONLY_DATABASE_URL",
        None,
        true,
        "Optional read replica (same schemes) for reads that may lag: /ops conversation and turn views.",
    ),
    var(
        "AMQP_URL",
        None,
        true,
        "RabbitMQ work queue, `amqp://user:pass@host:port/vhost` (a trailing `/` or `//` means the vhost `/`). Unset: the embedded in-process queue.",
    ),
    var(
        "CELERY_BROKER_URL",
        None,
        true,
        "The seed's name for AMQP_URL, accepted as an alias (`pyamqp://` too).",
    ),
    var(
        "AMQP_QUEUE",
        Some("lead-agent.wake"),
        false,
        "Work queue name: a durable quorum queue; `<name>.dead` (through the exchange `<name>.dlx`) receives tasks handed out 21 times (delivery limit 20), and each one raises `task_dead_lettered`. `<name>.inbound` (quorum, no delivery limit) keeps verified webhooks the store could not take, until a worker writes them in.",
    ),
    var(
        "INBOUND_JOURNAL_PATH",
        None,
        false,
        "Local journal (JSON lines, fsynced before the 200) that keeps verified webhooks the store could not take, replayed into the store at start and as soon as it answers. Unset: `lead-agent.inbound.jsonl` in role `all` without AMQP_URL, none otherwise (RabbitMQ's `<AMQP_QUEUE>.inbound` is the fallback there); set: used in any role after RabbitMQ; `off`: never.",
    ),
    var(
        "PUBLIC_BASE_URL",
        Some("http://127.0.0.1:$PORT"),
        false,
        "Scheme, host and port Twilio uses to reach us; the signature is checked against it plus the request path.",
    ),
    var(
        "TWILIO_ACCOUNT_SID",
        None,
        false,
        "With TWILIO_AUTH_TOKEN and a sender, replies go out through Twilio; unset, the dry-run sender stores and logs them.",
    ),
    var(
        "TWILIO_AUTH_TOKEN",
        None,
        true,
        "Verifies X-Twilio-Signature and authenticates sends. Unset: only loopback peers may post webhooks.",
    ),
    var(
        "TWILIO_MESSAGING_SERVICE_SID",
        None,
        false,
        "Messaging service to send from (alias: the seed's TWILIO_SERVICE_HOMEEASY).",
    ),
    var(
        "TWILIO_SERVICE_HOMEEASY",
        None,
        false,
        "The seed's name for TWILIO_MESSAGING_SERVICE_SID, accepted as an alias.",
    ),
    var(
        "TWILIO_FROM_NUMBER",
        None,
        false,
        "Number to send from when no messaging service is set.",
    ),
    var(
        "TWILIO_API_BASE",
        Some("https://api.twilio.com"),
        false,
        "Twilio REST base URL; the client appends /2010-04-01/Accounts/{sid}/Messages.json.",
    ),
    var(
        "WEBHOOK_ALERT_SECS",
        Some("300"),
        false,
        "Refused webhooks are alerted at once, then at most one summary (with the count) per this many seconds and kind: UNAUTHORIZED for signature failures, ERROR for 503s.",
    ),
    var(
        "INBOUND_DOWN_SECS",
        Some("180"),
        false,
        "Signed webhooks refused (bad signature or 503) for this long with none accepted: one ERROR alert `inbound_down`, and one `inbound_recovered` when a webhook is accepted again.",
    ),
    var(
        "INBOUND_BODY_MAX_CHARS",
        Some("1600"),
        false,
        "Characters (not bytes) of an inbound SMS body that are stored and shown to the model (Twilio's own limit is 1,600). A longer body is accepted and stored cut to this, followed by `… [truncated: N characters]`.",
    ),
    var(
        "ANTHROPIC_API_KEY",
        None,
        true,
        "When set, Anthropic answers first and the rules responder is the fallback.",
    ),
    var(
        "ANTHROPIC_MODEL",
        Some("claude-opus-4-6"),
        false,
        "Anthropic model id (the seed's primary brain is Claude Opus 4.6).",
    ),
    var(
        "ANTHROPIC_BASE_URL",
        Some("https://api.anthropic.com"),
        false,
        "Anthropic base URL; the client appends /v1/messages.",
    ),
    var(
        "LLM_CONCURRENCY",
        Some("6"),
        false,
        "Most model calls at once in this process (the seed's -c 6).",
    ),
    var(
        "LLM_SOFT_TIMEOUT_SECS",
        Some("20"),
        false,
        "Budget of one provider call; past it the call is cancelled and the next provider asked.",
    ),
    var(
        "LLM_HARD_TIMEOUT_SECS",
        Some("45"),
        false,
        "Budget of the whole provider chain; past it the turn is abandoned, retried and alerted.",
    ),
    // --- The model chain's second voice and the brain (issue 5) ---
    var(
        "GOOGLE_API_KEY",
        None,
        true,
        "When set, Gemini answers when Anthropic cannot (or first, without ANTHROPIC_API_KEY); the rules responder stays last.",
    ),
    var(
        "MAY_AI_MODEL",
        Some("gemini-2.5-flash"),
        false,
        "Gemini model id (the seed's name for it).",
    ),
    var(
        "GEMINI_API_BASE",
        Some("https://generativelanguage.googleapis.com"),
        false,
        "Gemini base URL; the client appends /v1beta/models/{model}:generateContent.",
    ),
    var(
        "LLM_RETRY_AFTER_CAP_SECS",
        Some("5"),
        false,
        "A provider's 429 retry-after up to this is waited out once (within the budgets); a longer one fails over at once and skips the provider until then.",
    ),
    var(
        "LLM_BREAKER_FAILURES",
        Some("5"),
        false,
        "Consecutive failures of one provider that open its circuit breaker (calls skip it).",
    ),
    var(
        "LLM_BREAKER_OPEN_SECS",
        Some("30"),
        false,
        "How long an open breaker skips its provider before one probe call is let through.",
    ),
    var(
        "USE_AGENT_CORE",
        Some("false"),
        false,
        "`true`: the brain (tool-using leasing agent) answers; `false`: the plain model chain; `shadow`: the plain chain answers and the brain runs beside it with its tools disarmed, the difference posted to the agent-reasoning alerts.",
    ),
    var(
        "BUILDINGS_FILE",
        None,
        false,
        "The brain's building catalog, YAML (.yaml/.yml) or JSON (.json). Unset: the bundled sample (deploy/buildings.sample.yaml).",
    ),
    var(
        "FUB_API",
        None,
        true,
        "Follow Up Boss API key: the brain's CRM notes go to FUB. Unset: notes are logged (dry run).",
    ),
    var(
        "FUB_API_BASE",
        Some("https://api.followupboss.com"),
        false,
        "Follow Up Boss base URL; the client calls /v1/people and /v1/notes.",
    ),
    var(
        "LEAD_TURN_TIMEOUT_SECS",
        Some("90"),
        false,
        "Budget of one lead turn (model + send); past it the supervisor kills the lead actor and the task is retried.",
    ),
    var(
        "LEAD_IDLE_SECS",
        Some("900"),
        false,
        "A lead actor idle this long is stopped (its state is rebuilt from the store on demand).",
    ),
    var(
        "LEAD_MEMORY_BUDGET_BYTES",
        Some("65536"),
        false,
        "Bytes a lead actor's state may account for; over it the actor is stopped and rebuilt.",
    ),
    var(
        "LEAD_RESTART_MAX",
        Some("3"),
        false,
        "Restarts of one lead actor allowed within LEAD_RESTART_WINDOW_SECS; one more parks the lead with an alert.",
    ),
    var(
        "LEAD_RESTART_WINDOW_SECS",
        Some("60"),
        false,
        "Window of the restart intensity limit.",
    ),
    var(
        "REPLY_CAP_PER_HOUR",
        Some("20"),
        false,
        "Replies to one lead allowed in any hour (counted in the store, so every worker agrees; from the last unpark if later). One more would park the lead (reason `reply_cap_hour`) with an alert naming it: the guard against a bot-to-bot loop. Not applied to synthetic leads (the watch's and verify's probe number).",
    ),
    var(
        "REPLY_CAP_PER_DAY",
        Some("60"),
        false,
        "Replies to one lead allowed in any 24 hours, counted like REPLY_CAP_PER_HOUR; past it the lead is parked (reason `reply_cap_day`).",
    ),
    var(
        "PARK_SECS",
        Some("86400"),
        false,
        "How long a park lasts (reply cap, or more than LEAD_RESTART_MAX restarts): the park lives in the store and expires by itself; `POST /ops/leads/{phone}/unpark` or `lead-agent unpark` ends it sooner. A parked lead's messages are stored, not answered.",
    ),
    var(
        "ROOT_RESTART_MAX",
        Some("5"),
        false,
        "Restarts of the process's root actors (alert router, lead supervisor, scheduler), all together, allowed within ROOT_RESTART_WINDOW_SECS; one more and the process shuts down and exits non-zero, so Kubernetes restarts it.",
    ),
    var(
        "ROOT_RESTART_WINDOW_SECS",
        Some("60"),
        false,
        "Window of the root actors' restart intensity limit.",
    ),
    var(
        "OUTBOX_SWEEP_SECS",
        Some("60"),
        false,
        "How often the roles that own the clock (all, scheduler) resolve replies whose send was interrupted (asking Twilio) and wake leads whose stored work outlived its wake-up.",
    ),
    var(
        "OUTBOX_IN_DOUBT_WAIT_SECS",
        Some("300"),
        false,
        "How long a reply whose send outcome is unknown (in doubt) is left alone before Twilio's Messages list is first asked about it: Twilio may still be taking the timed-out request, and its list may lag.",
    ),
    var(
        "OUTBOX_RECHECK_SECS",
        Some("120"),
        false,
        "Least time between two checks of one in-doubt reply with Twilio. A reply is sent again only when two consecutive checks this far apart find no message to the lead; found is recorded sent, anything unclear stays in doubt with an alert.",
    ),
    var(
        "TWILIO_TIMEOUT_SECS",
        Some("15"),
        false,
        "Whole-request timeout of Twilio API calls (sending, listing). A send that times out after its request left is in doubt, never retried blindly.",
    ),
    var(
        "CHAT_WINDOW_MESSAGES",
        Some("40"),
        false,
        "Most conversation lines a lead actor keeps and shows the model.",
    ),
    var(
        "CHAT_WINDOW_BYTES",
        Some("8192"),
        false,
        "Most bytes of conversation text a lead actor keeps and shows the model.",
    ),
    var(
        "SHUTDOWN_GRACE_SECS",
        Some("25"),
        false,
        "After SIGTERM and the listener's drain (HTTP_SHUTDOWN_SECS), how long running turns get to finish before the rest are handed back to the queue. The sum with a preStop sleep and 3 s must fit in Kubernetes' terminationGracePeriodSeconds (`config check`).",
    ),
    var(
        "OFFICE_NAME",
        Some("the leasing office"),
        false,
        "How the agent names the office in its replies.",
    ),
    var(
        "DISCORD_BOT_TOKEN",
        None,
        true,
        "Discord bot token: alerts are posted by the bot to the channels below. Unset: alerts go to the log.",
    ),
    var(
        "DISCORD_API_BASE",
        Some("https://discord.com/api/v10"),
        false,
        "Discord REST base URL; the sender appends /channels/{id}/messages.",
    ),
    var(
        "DISCORD_DEFAULT_CHANNEL",
        None,
        false,
        "Channel id for every alert kind without its own DISCORD_CHANNEL_<KIND>; a small deployment can run on this one channel. A kind with neither goes to the log.",
    ),
    var(
        "DISCORD_CHANNEL_ERROR",
        None,
        false,
        "Channel id for ERROR alerts: Error alerts: parked leads, restarts, blown budgets, lost sends, expired HITL holds.",
    ),
    var(
        "DISCORD_CHANNEL_EVENT",
        None,
        false,
        "Channel id for EVENT alerts: The typed event stream of every turn (message_received, ai_response, sms_sent, error, …).",
    ),
    var(
        "DISCORD_CHANNEL_GENERAL",
        None,
        false,
        "Channel id for GENERAL alerts: General notices.",
    ),
    var(
        "DISCORD_CHANNEL_LOCATOR",
        None,
        false,
        "Channel id for LOCATOR alerts: Locator (apartment search) notices.",
    ),
    var(
        "DISCORD_CHANNEL_AGENT_REASONING",
        None,
        false,
        "Channel id for AGENT_REASONING alerts: The agent's reasoning and shadow-mode differences.",
    ),
    var(
        "DISCORD_CHANNEL_FOLLOWUP",
        None,
        false,
        "Channel id for FOLLOWUP alerts: Follow-ups.",
    ),
    var(
        "DISCORD_CHANNEL_DEAD_LEAD",
        None,
        false,
        "Channel id for DEAD_LEAD alerts: Leads marked dead.",
    ),
    var(
        "DISCORD_CHANNEL_TOUR_REQUEST",
        None,
        false,
        "Channel id for TOUR_REQUEST alerts: Tour requests.",
    ),
    var(
        "DISCORD_CHANNEL_BUILDING_OPTIONS",
        None,
        false,
        "Channel id for BUILDING_OPTIONS alerts: Building options offered.",
    ),
    var(
        "DISCORD_CHANNEL_REQUIREMENTS_CHECK",
        None,
        false,
        "Channel id for REQUIREMENTS_CHECK alerts: Requirements checks.",
    ),
    var(
        "DISCORD_CHANNEL_AGENT_RESPONSE",
        None,
        false,
        "Channel id for AGENT_RESPONSE alerts: Agent responses.",
    ),
    var(
        "DISCORD_CHANNEL_CHAT_HISTORY_NOT_FOUND",
        None,
        false,
        "Channel id for CHAT_HISTORY_NOT_FOUND alerts: Chat history not found.",
    ),
    var(
        "DISCORD_CHANNEL_UNAUTHORIZED",
        None,
        false,
        "Channel id for UNAUTHORIZED alerts: Unauthorized requests.",
    ),
    var(
        "DISCORD_CHANNEL_REQUIREMENTS_NOTE",
        None,
        false,
        "Channel id for REQUIREMENTS_NOTE alerts: CRM requirement notes.",
    ),
    var(
        "DISCORD_CHANNEL_STAGE_SUGGESTION",
        None,
        false,
        "Channel id for STAGE_SUGGESTION alerts: CRM stage suggestions.",
    ),
    var(
        "DISCORD_CHANNEL_SANITY_CHECK",
        None,
        false,
        "Channel id for SANITY_CHECK alerts: Sanity checks.",
    ),
    var(
        "DISCORD_CHANNEL_HITL_FEEDBACK",
        None,
        false,
        "Channel id for HITL_FEEDBACK alerts: Replies held for approval (HITL), with approve / edit / reject buttons.",
    ),
    var(
        "DISCORD_RETRY_MAX_SECS",
        Some("60"),
        false,
        "Longest pause between attempts while Discord is down or failing (5xx, timeouts); the pause starts at 0.25 s and doubles up to this. Spooled alerts wait in the store meanwhile.",
    ),
    var(
        "DISCORD_DIRECT_QUEUE_MAX",
        Some("500"),
        false,
        "Alerts a process keeps in memory to post to Discord directly while the store (the spool) cannot be written; they go to the spool once it answers. When full, the least important are shed first (EVENT info, then other info, then warnings), each counted in `lead_agent_alerts_shed_total` and logged.",
    ),
    var(
        "DISCORD_LEASE_SECS",
        Some("20"),
        false,
        "Every process with DISCORD_BOT_TOKEN posts the spool, one poster per channel at a time: a channel's lease (in the store) is renewed before each post and lasts this long, so a dead poster's channels are taken over by another process within it. A post times out after half of it (at most 10 s).",
    ),
    var(
        "DISCORD_PUBLIC_KEY",
        None,
        false,
        "The Discord application's public key (hex): verifies the Ed25519 signature of interactions posted to /discord/interactions (HITL buttons). Required when HITL_ENABLED is true.",
    ),
    var(
        "HITL_ENABLED",
        Some("false"),
        false,
        "Human in the loop: `true` holds every reply the agent writes and posts it to the HITL_FEEDBACK channel with approve / edit / reject buttons; it is sent only once approved. Needs DISCORD_BOT_TOKEN, DISCORD_PUBLIC_KEY and a channel for HITL_FEEDBACK.",
    ),
    var(
        "HITL_HOLD_TIMEOUT_SECS",
        Some("600"),
        false,
        "A held reply nobody decided on within this time is escalated: an ERROR alert with the held text, and the lead gets HITL_HOLDING_MESSAGE once. The reply stays held for a person.",
    ),
    var(
        "HITL_HOLDING_MESSAGE",
        Some("Thanks for your message! A member of our team will get back to you shortly."),
        false,
        "The neutral holding SMS sent once to a lead whose reply has been held past HITL_HOLD_TIMEOUT_SECS.",
    ),
    var(
        "OPS_TOKEN",
        None,
        true,
        "Bearer token for /ops endpoints. Unset: /ops answers loopback peers only.",
    ),
    var(
        "OPS_SESSION_SECS",
        Some("43200"),
        false,
        "How long the /ops page's browser cookie (traded once for `/ops?token=`) is honoured: it carries its issue time and the server refuses it after this many seconds.",
    ),
    var(
        "OWNER_PHONE",
        None,
        false,
        "E.164 number the SLA engine texts when it escalates to the owner (after 3 unanswered staff nags). Unset: escalations are alerts only (logged once at the first one).",
    ),
    var(
        "ASANA_ACCESS_TOKEN",
        None,
        true,
        "Asana personal access token: SLA staff nags are posted as comments (stories) on the SLA's Asana task. Unset: nags are logged (dry run). Ticket ids starting with `dry-run` are never commented on either way.",
    ),
    var(
        "ASANA_API_BASE",
        Some("https://app.asana.com/api/1.0"),
        false,
        "Asana REST base URL; the client appends /tasks/{task_gid}/stories.",
    ),
    var(
        "OWNER_TZ",
        Some("America/Chicago"),
        false,
        "IANA time zone of the office: the scheduler's cron times, the daily report's day, and quiet hours for leads without a zone of their own.",
    ),
    var(
        "SCHEDULE_FOLLOWUP_SWEEP",
        Some("0 */30 * * * *"),
        false,
        "Cron (6 fields, with seconds, in OWNER_TZ) of the followup sweep; `off` disables a job. Missed ticks: run once.",
    ),
    var(
        "SCHEDULE_STALE_CONTEXT_CLEANUP",
        Some("0 15 3 * * *"),
        false,
        "Cron of the clean-up of old scheduler bookkeeping (tick claims, heartbeats, reports). Missed ticks: skip.",
    ),
    var(
        "SCHEDULE_SLA_SWEEP",
        Some("0 */5 * * * *"),
        false,
        "Cron of the SLA sweep (staff nags, lead updates, owner escalations). Missed ticks: run once.",
    ),
    var(
        "SCHEDULE_OWNER_REPORT",
        Some("0 0 7 * * *"),
        false,
        "Cron of the daily owner report (07:00 OWNER_TZ). Missed ticks: run once.",
    ),
    var(
        "SCHEDULE_RESPONSE_GAP_WATCH",
        Some("0 * * * * *"),
        false,
        "Cron of the response-gap watch (every minute). Missed ticks: skip.",
    ),
    var(
        "SCHEDULE_HEARTBEAT",
        Some("*/15 * * * * *"),
        false,
        "Cron of the scheduler's heartbeat, which also checks that some worker is alive. Missed ticks: skip.",
    ),
    var(
        "SCHEDULER_LEASE_SECS",
        Some("30"),
        false,
        "The scheduler leader lease: renewed every third of it; a standby scheduler takes over at most this long (plus one renewal period) after the leader dies.",
    ),
    var(
        "HEARTBEAT_SECS",
        Some("15"),
        false,
        "How often worker and scheduler processes write their heartbeat (`/ops/heartbeats`).",
    ),
    var(
        "FOLLOWUP_HOURS",
        Some("24,72,168"),
        false,
        "Followup sequence: hours after our last reply until followup 1, then until followup 2, …; after the last, the last wait again, then the lead is marked dead. `off` disables followups.",
    ),
    var(
        "QUIET_HOURS",
        Some("21:00-09:00"),
        false,
        "Local time window (lead's zone, else OWNER_TZ) in which no followup is sent; a due followup waits for its end.",
    ),
    var(
        "FIRST_RESPONSE_SLA_SECS",
        Some("300"),
        false,
        "First-response SLA: an inbound message unanswered this long is re-driven once and alerted by the response-gap watch.",
    ),
    var(
        "RESPONSE_GAP_STALL_LEADS",
        Some("5"),
        false,
        "Leads waiting past the first-response SLA at once that make the watch declare the pipeline stalled (one loud alert, and one when it recovers).",
    ),
    var(
        "LOG_FORMAT",
        Some("pretty"),
        false,
        "`pretty` for a terminal, `json` for production log collectors.",
    ),
    var(
        "LOG_PHONE",
        Some("masked"),
        false,
        "How phone numbers appear in logs and spans: `masked` (`+1******4567`: country code guess and last four digits), `hash` (`#` + 12 hex digits of HMAC-SHA256 with LOG_PHONE_KEY: the same in every process, so a lead can be followed without its number) or `full` (debugging only: personal data in the logs). The store, /ops and Discord alerts always carry the full number.",
    ),
    var(
        "LOG_PHONE_KEY",
        None,
        true,
        "The HMAC key of LOG_PHONE=hash (required then; any string, the same in every process that should agree). Rotating it changes every lead's hash.",
    ),
    var(
        "RUST_LOG",
        Some("info,sqlx=warn,tokio_cron_scheduler=warn"),
        false,
        "Log filter (tracing-subscriber EnvFilter syntax).",
    ),
    // --- `lead-agent watch`, the watchdog outside the blast radius (issue 11) ---
    var(
        "WATCH_URL",
        None,
        false,
        "The watch: the service's public base URL (`watch --url` overrides it), where it asks /ready and posts the synthetic SMS. Best the address Twilio reaches (the Ingress's https URL), so the path in front of the service is probed too.",
    ),
    var(
        "WATCH_OPS_URL",
        None,
        false,
        "The watch: the service's ops listener (`watch --ops-url` overrides it), where it reads /ops/heartbeats, /ops/scheduled, /ops/discord and the synthetic SMS's reply; in the cluster the internal Service, `http://lead-agent-ops:5013`. Unset: WATCH_URL's scheme and host on port 5013 (the default OPS_PORT).",
    ),
    var(
        "WATCH_INTERVAL_SECS",
        Some("60"),
        false,
        "The watch: how often it checks /ready, worker and scheduler heartbeats, scheduler lateness and the alert spool.",
    ),
    var(
        "WATCH_E2E_SECS",
        Some("300"),
        false,
        "The watch: how often it texts the service a signed synthetic SMS from WATCH_TEST_PHONE and expects the reply; `off` disables the check.",
    ),
    var(
        "WATCH_E2E_TIMEOUT_SECS",
        Some("120"),
        false,
        "The watch: how long the reply to its synthetic SMS may take before the end-to-end check fails.",
    ),
    var(
        "WATCH_TEST_PHONE",
        None,
        false,
        "The watch: the E.164 number its synthetic SMS comes from. With Twilio configured the reply really goes there: use a phone the team owns. Required unless WATCH_E2E_SECS is `off`.",
    ),
    var(
        "WATCH_SCHEDULER_LATE_SECS",
        Some("120"),
        false,
        "The watch: a scheduled job whose next fire time is this far past, or whose last run was this late, means no scheduler is firing (a standby takes over within SCHEDULER_LEASE_SECS + a third of it).",
    ),
    var(
        "WATCH_SPOOL_AGE_SECS",
        Some("300"),
        false,
        "The watch: an alert spooled longer than this means alerts are not reaching Discord.",
    ),
    var(
        "DISCORD_WEBHOOK",
        None,
        true,
        "The watch: a Discord channel webhook URL (`https://discord.com/api/webhooks/{id}/{token}`, the seed's variable) it posts its own alerts to, no bot needed. Unset: the bot (DISCORD_BOT_TOKEN) posts them to DISCORD_CHANNEL_ERROR, else DISCORD_DEFAULT_CHANNEL.",
    ),
];

/// Reads one variable; empty counts as unset. Panics on a name missing from [`ENV_VARS`]:
/// an undeclared variable is a bug that the deploy manifests would not catch.
pub fn read_var(name: &str) -> Option<String> {
    assert!(
        ENV_VARS.iter().any(|v| v.name == name),
        "environment variable {name} is read but not declared in config::ENV_VARS"
    );
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

#[derive(Debug, Clone)]
pub enum TwilioSender {
    MessagingService(String),
    From(String),
}

/// Credentials and sender for real sends; absent means the dry-run sender.
#[derive(Debug, Clone)]
pub struct TwilioSettings {
    pub account_sid: String,
    pub auth_token: Secret,
    pub sender: TwilioSender,
}

#[derive(Debug, Clone)]
pub struct AnthropicSettings {
    pub api_key: Secret,
    pub model: String,
}

/// Discord: the bot that posts alerts and the application that receives HITL interactions.
#[derive(Debug, Clone)]
pub struct DiscordSettings {
    /// Unset: no alert goes to Discord (all to the log).
    pub bot_token: Option<Secret>,
    pub api_base: String,
    pub default_channel: Option<String>,
    /// `DISCORD_CHANNEL_<KEY>` of each kind that has its own.
    pub channels: HashMap<AlertKind, String>,
    /// `DISCORD_PUBLIC_KEY`, decoded: verifies interaction signatures.
    pub public_key: Option<[u8; 32]>,
    pub retry_max: Duration,
    /// `DISCORD_DIRECT_QUEUE_MAX`: alerts held in memory while the spool is unwritable.
    pub direct_queue_max: usize,
    /// `DISCORD_LEASE_SECS`: how long a process holds a channel between renewals.
    pub lease: Duration,
}

impl DiscordSettings {
    /// The channel a kind is posted to: its own, else the default; `None` (no channel or no
    /// token) means the log.
    pub fn channel_for(&self, kind: AlertKind) -> Option<&str> {
        self.bot_token.as_ref()?;
        self.channels
            .get(&kind)
            .or(self.default_channel.as_ref())
            .map(String::as_str)
    }

    /// The variable naming a kind's own channel.
    pub fn channel_var(kind: AlertKind) -> String {
        format!("DISCORD_CHANNEL_{}", kind.key())
    }
}

/// Human in the loop (`HITL_ENABLED`).
#[derive(Debug, Clone)]
pub struct HitlSettings {
    pub enabled: bool,
    pub hold_timeout: Duration,
    pub holding_message: String,
}

/// The second provider, the failure policy and the brain (issue 5).
#[derive(Debug, Clone)]
pub struct BrainSettings {
    /// `GOOGLE_API_KEY` with `MAY_AI_MODEL`.
    pub gemini: Option<AnthropicSettings>,
    pub gemini_base_url: String,
    pub retry_after_cap: Duration,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    pub agent_mode: actors::brain::AgentMode,
    pub buildings_file: Option<String>,
    pub fub_api: Option<Secret>,
    pub fub_api_base: String,
}

fn brain_settings(r: &mut Reader<'_>) -> BrainSettings {
    let agent_mode = match r.string("USE_AGENT_CORE").parse() {
        Ok(m) => m,
        Err(e) => {
            r.problems.push(format!("USE_AGENT_CORE: {e}"));
            actors::brain::AgentMode::Plain
        }
    };
    let buildings_file = r.raw("BUILDINGS_FILE").filter(|f| !f.trim().is_empty());
    if let Some(f) = &buildings_file
        && !crate::catalog::has_known_extension(f)
    {
        r.problems.push(format!(
            "BUILDINGS_FILE={f:?} must end in .yaml, .yml or .json"
        ));
    }
    BrainSettings {
        gemini: r.raw("GOOGLE_API_KEY").map(|key| AnthropicSettings {
            api_key: Secret::new(key),
            model: r.string("MAY_AI_MODEL"),
        }),
        gemini_base_url: r.string("GEMINI_API_BASE"),
        retry_after_cap: {
            let secs: f64 = r.parse("LLM_RETRY_AFTER_CAP_SECS");
            if secs.is_finite() && (0.0..=3600.0).contains(&secs) {
                Duration::from_secs_f64(secs)
            } else {
                r.problems
                    .push("LLM_RETRY_AFTER_CAP_SECS must be between 0 and 3600 seconds".into());
                Duration::from_secs(5)
            }
        },
        breaker_failures: r.positive("LLM_BREAKER_FAILURES"),
        breaker_open: r.seconds("LLM_BREAKER_OPEN_SECS"),
        agent_mode,
        buildings_file,
        fub_api: r.raw("FUB_API").map(Secret::new),
        fub_api_base: r.string("FUB_API_BASE"),
    }
}

/// The RabbitMQ work queue; absent means the in-process queue.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    pub url: Secret,
    pub queue: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub port: u16,
    pub bind_address: IpAddr,
    /// The ops listener (`/ops`, `/ops/*`, `/metrics`): `OPS_PORT`, `OPS_BIND_ADDRESS`.
    pub ops_port: u16,
    pub ops_bind_address: IpAddr,
    /// `ALLOW_INSECURE` (or `serve --insecure`): start exposed without the tokens
    /// (`crate::exposure`).
    pub allow_insecure: bool,
    /// `HTTP_*`: the listener's timeouts and caps.
    pub http: crate::http::server::HttpLimits,
    pub database_url: Secret,
    pub readonly_database_url: Option<Secret>,
    pub amqp: Option<AmqpSettings>,
    pub public_base_url: String,
    /// Verifies webhook signatures; independent of sending (a staging setup may verify
    /// real webhooks and still send dry-run).
    pub twilio_auth_token: Option<Secret>,
    pub twilio: Option<TwilioSettings>,
    pub twilio_api_base: String,
    /// `INBOUND_JOURNAL_PATH` as set; which process uses a journal depends on its role
    /// (`startup`).
    pub inbound_journal: JournalSetting,
    /// `WEBHOOK_ALERT_SECS`: one summary alert per kind per this period at most.
    pub webhook_alert_every: Duration,
    /// `INBOUND_DOWN_SECS`: refused with none accepted this long means inbound is down.
    pub inbound_down_after: Duration,
    /// `INBOUND_BODY_MAX_CHARS`: an inbound body is stored cut to this many characters.
    pub inbound_body_max_chars: usize,
    pub anthropic: Option<AnthropicSettings>,
    pub anthropic_base_url: String,
    pub llm_concurrency: usize,
    pub llm_soft_timeout: Duration,
    pub llm_hard_timeout: Duration,
    pub brain: BrainSettings,
    pub lead_turn_timeout: Duration,
    pub lead_idle: Duration,
    pub lead_memory_budget_bytes: usize,
    pub lead_restart_max: u32,
    pub lead_restart_window: Duration,
    /// `REPLY_CAP_PER_HOUR`, `REPLY_CAP_PER_DAY`, `PARK_SECS`: the reply-loop guard and how
    /// long a park lasts.
    pub parks: actors::park::ParkPolicy,
    pub root_restart_max: u32,
    pub root_restart_window: Duration,
    pub outbox_sweep_every: Duration,
    /// When in-doubt replies are checked with Twilio (`OUTBOX_IN_DOUBT_WAIT_SECS`,
    /// `OUTBOX_RECHECK_SECS`).
    pub in_doubt: InDoubtPolicy,
    pub twilio_timeout: Duration,
    pub shutdown_grace: Duration,
    pub chat_window_messages: usize,
    pub chat_window_bytes: usize,
    pub office_name: String,
    pub ops_token: Option<Secret>,
    /// `OPS_SESSION_SECS`: the /ops page's cookie is refused this long after it was issued.
    pub ops_session: Duration,
    /// Where SLA escalations are texted; `None`: alert only.
    pub owner_phone: Option<String>,
    /// Asana for SLA staff nags; `None`: the dry-run ticket log.
    pub asana_access_token: Option<Secret>,
    pub asana_api_base: String,
    pub scheduler: SchedulerSettings,
    pub log_format: LogFormat,
    /// `LOG_PHONE` (+ `LOG_PHONE_KEY`): set once at start by `main`.
    pub log_phone: actors::log_phone::LogPhoneMode,
    pub discord: DiscordSettings,
    pub hitl: HitlSettings,
}

/// `INBOUND_JOURNAL_PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalSetting {
    /// Unset: the default file in role `all` without RabbitMQ, none otherwise.
    Default,
    Off,
    Path(std::path::PathBuf),
}

impl JournalSetting {
    /// The file name used when the variable is unset (relative, like the SQLite default).
    pub const DEFAULT_FILE: &'static str = "lead-agent.inbound.jsonl";

    fn parse(raw: Option<String>) -> Self {
        match raw.map(|v| v.trim().to_string()) {
            None => JournalSetting::Default,
            Some(v) if v.eq_ignore_ascii_case("off") => JournalSetting::Off,
            Some(v) => JournalSetting::Path(v.into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Everything wrong with the environment, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<String>);

/// Collects values and problems; each getter records a problem instead of failing fast.
/// Also the watch's reader (`watch::settings`), which reads its own variables only.
pub(crate) struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) problems: Vec<String>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            get,
            problems: Vec::new(),
        }
    }
}

impl Reader<'_> {
    pub(crate) fn raw(&self, name: &str) -> Option<String> {
        (self.get)(name)
    }

    pub(crate) fn string(&self, name: &str) -> String {
        self.raw(name)
            .unwrap_or_else(|| default_of(name).to_string())
    }

    pub(crate) fn parse<T: std::str::FromStr>(&mut self, name: &str) -> T
    where
        T::Err: fmt::Display,
    {
        let text = self.string(name);
        match text.trim().parse::<T>() {
            Ok(v) => v,
            Err(e) => {
                self.problems
                    .push(format!("{name}={text:?} is not valid: {e}"));
                default_of(name)
                    .parse::<T>()
                    .unwrap_or_else(|_| panic!("default of {name} parses"))
            }
        }
    }

    fn positive<T>(&mut self, name: &str) -> T
    where
        T: std::str::FromStr + PartialOrd + Default,
        T::Err: fmt::Display,
    {
        let v: T = self.parse(name);
        if v <= T::default() {
            self.problems.push(format!("{name} must be greater than 0"));
        }
        v
    }

    /// `LOG_FORMAT`.
    pub(crate) fn log_format(&mut self) -> LogFormat {
        match self.string("LOG_FORMAT").as_str() {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => {
                self.problems
                    .push(format!("LOG_FORMAT={other:?} must be `pretty` or `json`"));
                LogFormat::Pretty
            }
        }
    }

    /// `LOG_PHONE`, with `LOG_PHONE_KEY` required for `hash`.
    pub(crate) fn log_phone(&mut self) -> actors::log_phone::LogPhoneMode {
        use actors::log_phone::LogPhoneMode;
        match self.string("LOG_PHONE").trim() {
            "masked" => LogPhoneMode::Masked,
            "full" => LogPhoneMode::Full,
            "hash" => match self.raw("LOG_PHONE_KEY").filter(|k| !k.is_empty()) {
                Some(key) => LogPhoneMode::Hash {
                    key: key.into_bytes(),
                },
                None => {
                    self.problems.push(
                        "LOG_PHONE_KEY is required when LOG_PHONE=hash (the HMAC key, the same in every process)".into(),
                    );
                    LogPhoneMode::Masked
                }
            },
            other => {
                self.problems.push(format!(
                    "LOG_PHONE={other:?} must be `masked`, `hash` or `full`"
                ));
                LogPhoneMode::Masked
            }
        }
    }

    /// A `true`/`false` variable (`1`/`0`, `yes`/`no` too).
    pub(crate) fn flag(&mut self, name: &str) -> bool {
        match self.string(name).trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" | "" => false,
            other => {
                self.problems
                    .push(format!("{name}={other:?} must be true or false"));
                false
            }
        }
    }

    pub(crate) fn seconds(&mut self, name: &str) -> Duration {
        let secs: f64 = self.parse(name);
        if !(secs.is_finite() && secs > 0.0) {
            self.problems
                .push(format!("{name} must be a positive number of seconds"));
            return Duration::from_secs(1);
        }
        Duration::from_secs_f64(secs)
    }
}

/// `OPS_PORT`'s default: where tools look for the ops listener when told only the public
/// URL (`crate::probe::ops_url_for`).
pub fn default_ops_port() -> u16 {
    default_of("OPS_PORT")
        .parse()
        .expect("OPS_PORT's default is a port")
}

/// `OPS_PORT` as this machine's environment has it, else its default: the tools that run
/// beside a local service (`sms`, `inspect`, `verify`) find its ops listener there.
pub fn local_ops_port() -> u16 {
    read_var("OPS_PORT")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(default_ops_port)
}

fn default_of(name: &str) -> &'static str {
    ENV_VARS
        .iter()
        .find(|v| v.name == name)
        .and_then(|v| v.default)
        .unwrap_or("")
}

/// `AMQP_URL` (or the seed's `CELERY_BROKER_URL`) and `AMQP_QUEUE`. A problem names the
/// variable, never its value: the URL carries the broker password.
fn amqp_settings(r: &mut Reader<'_>) -> Option<AmqpSettings> {
    use crate::queue::rabbitmq::{MAX_QUEUE_NAME, parse_amqp_url};

    let primary = r.raw("AMQP_URL");
    let alias = r.raw("CELERY_BROKER_URL");
    let (name, url) = match (primary, alias) {
        (None, None) => return None,
        (Some(p), Some(a)) if p.trim() != a.trim() => {
            r.problems.push(
                "AMQP_URL and CELERY_BROKER_URL are both set and differ; set one of them".into(),
            );
            return None;
        }
        (Some(p), _) => ("AMQP_URL", p),
        (None, Some(a)) => ("CELERY_BROKER_URL", a),
    };
    let mut ok = true;
    if let Err(e) = parse_amqp_url(&url) {
        r.problems.push(format!(
            "{name} is not a usable amqp://user:pass@host:port/vhost URL: {e}"
        ));
        ok = false;
    }
    let queue = r.string("AMQP_QUEUE").trim().to_string();
    if queue.is_empty() || queue.len() > MAX_QUEUE_NAME {
        r.problems.push(format!(
            "AMQP_QUEUE must be 1 to {MAX_QUEUE_NAME} bytes long"
        ));
        ok = false;
    } else if queue.starts_with("amq.") {
        r.problems
            .push("AMQP_QUEUE must not start with `amq.` (RabbitMQ reserves it)".into());
        ok = false;
    }
    ok.then(|| AmqpSettings {
        url: Secret::new(url),
        queue,
    })
}

/// A Discord id (snowflake) is a decimal number.
pub(crate) fn is_snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

fn decode_hex_32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// `DISCORD_*` and `HITL_*`. HITL without a way to reach a person would hold every reply
/// forever, so its prerequisites are problems, not warnings.
fn discord_and_hitl(r: &mut Reader<'_>) -> (DiscordSettings, HitlSettings) {
    let mut channels = HashMap::new();
    let check = |r: &mut Reader<'_>, name: &str| -> Option<String> {
        let v = r.raw(name)?.trim().to_string();
        if is_snowflake(&v) {
            Some(v)
        } else {
            r.problems
                .push(format!("{name}={v:?} is not a Discord channel id (digits)"));
            None
        }
    };
    let default_channel = check(r, "DISCORD_DEFAULT_CHANNEL");
    for kind in AlertKind::ALL {
        if let Some(id) = check(r, &DiscordSettings::channel_var(kind)) {
            channels.insert(kind, id);
        }
    }
    let public_key = r.raw("DISCORD_PUBLIC_KEY").and_then(|k| {
        let key = decode_hex_32(&k);
        if key.is_none() {
            r.problems.push(
                "DISCORD_PUBLIC_KEY must be 64 hex digits (the application's public key)".into(),
            );
        }
        key
    });
    let discord = DiscordSettings {
        bot_token: r.raw("DISCORD_BOT_TOKEN").map(Secret::new),
        api_base: r
            .string("DISCORD_API_BASE")
            .trim_end_matches('/')
            .to_string(),
        default_channel,
        channels,
        public_key,
        retry_max: r.seconds("DISCORD_RETRY_MAX_SECS"),
        direct_queue_max: r.positive("DISCORD_DIRECT_QUEUE_MAX"),
        lease: r.seconds("DISCORD_LEASE_SECS"),
    };
    if discord.lease < Duration::from_secs(1) {
        r.problems
            .push("DISCORD_LEASE_SECS must be at least 1 (a post must fit in half of it)".into());
    }
    let enabled = match r
        .string("HITL_ENABLED")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "true" | "1" | "yes" => true,
        "false" | "0" | "no" => false,
        other => {
            r.problems
                .push(format!("HITL_ENABLED={other:?} must be true or false"));
            false
        }
    };
    let hitl = HitlSettings {
        enabled,
        hold_timeout: r.seconds("HITL_HOLD_TIMEOUT_SECS"),
        holding_message: r.string("HITL_HOLDING_MESSAGE"),
    };
    if enabled {
        if discord.bot_token.is_none() {
            r.problems.push(
                "HITL_ENABLED=true needs DISCORD_BOT_TOKEN (held replies are posted to Discord)"
                    .into(),
            );
        }
        if discord.public_key.is_none() {
            r.problems.push(
                "HITL_ENABLED=true needs DISCORD_PUBLIC_KEY (to verify the approve/edit/reject interactions)"
                    .into(),
            );
        }
        if !discord.channels.contains_key(&AlertKind::HitlFeedback)
            && discord.default_channel.is_none()
        {
            r.problems.push(
                "HITL_ENABLED=true needs DISCORD_CHANNEL_HITL_FEEDBACK or DISCORD_DEFAULT_CHANNEL"
                    .into(),
            );
        }
        if hitl.holding_message.trim().is_empty() {
            r.problems
                .push("HITL_HOLDING_MESSAGE must not be empty".into());
        }
    }
    (discord, hitl)
}

/// `+` and 8 to 15 digits: the form Twilio sends and accepts phone numbers in.
pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

/// Declares the scheduler's jobs once. The same lines make the [`Job`] enum the scheduler
/// dispatches on (`scheduler::jobs::run_job` matches it exhaustively, so a job body cannot
/// exist without a variant) and [`Job::ALL`], the schedule every scheduler registers (so a
/// variant cannot exist without its schedule): the SLA sweep once had a body and a
/// `SCHEDULE_SLA_SWEEP` variable but no line in a hand-kept table, and never ran.
macro_rules! scheduler_jobs {
    ($($(#[$doc:meta])* $variant:ident => $name:literal, $var:literal, $missed:ident;)+) => {
        /// A periodic job of the scheduler.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Job {
            $($(#[$doc])* $variant),+
        }

        impl Job {
            /// Every job, in the order `inspect scheduled` lists them.
            pub const ALL: &'static [Job] = &[$(Job::$variant),+];

            /// The job's name in `/ops/scheduled`, the tick claims and the metrics.
            pub fn name(self) -> &'static str {
                match self {
                    $(Job::$variant => $name),+
                }
            }

            /// The variable that sets its cron (`off` disables it).
            pub fn schedule_var(self) -> &'static str {
                match self {
                    $(Job::$variant => $var),+
                }
            }

            /// What happens to ticks missed while no scheduler ran.
            pub fn missed(self) -> MissedTicks {
                match self {
                    $(Job::$variant => MissedTicks::$missed),+
                }
            }
        }
    };
}

scheduler_jobs! {
    /// Due followup timers: send, hold for quiet hours, or mark the lead dead.
    FollowupSweep => "followup_sweep", "SCHEDULE_FOLLOWUP_SWEEP", RunOnce;
    /// Old tick claims, heartbeats and reports.
    StaleContextCleanup => "stale_context_cleanup", "SCHEDULE_STALE_CONTEXT_CLEANUP", Skip;
    /// Open SLAs: staff nags, lead updates, owner escalations.
    SlaSweep => "sla_sweep", "SCHEDULE_SLA_SWEEP", RunOnce;
    /// The 07:00 owner report.
    OwnerReport => "owner_report", "SCHEDULE_OWNER_REPORT", RunOnce;
    /// Inbound messages unanswered past the first-response SLA.
    ResponseGapWatch => "response_gap_watch", "SCHEDULE_RESPONSE_GAP_WATCH", Skip;
    /// The scheduler's own heartbeat, and the check that some worker is alive.
    Heartbeat => "heartbeat", "SCHEDULE_HEARTBEAT", Skip;
}

/// What a new scheduler leader does with ticks nobody ran (the process was down, or the old
/// leader died). Never "all of them": beat's surprise catch-up of old ticks is what we avoid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissedTicks {
    /// Count them; the next regular tick runs.
    Skip,
    /// Count them and run the job once now.
    RunOnce,
}

impl MissedTicks {
    pub fn name(self) -> &'static str {
        match self {
            MissedTicks::Skip => "skip",
            MissedTicks::RunOnce => "run_once",
        }
    }
}

#[derive(Clone, Debug)]
pub struct JobSetting {
    pub job: Job,
    pub name: &'static str,
    /// Six fields, seconds first, in `SchedulerSettings::time_zone`.
    pub schedule: String,
    pub missed: MissedTicks,
}

#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    pub time_zone: chrono_tz::Tz,
    /// Enabled jobs only (`off` removes one).
    pub jobs: Vec<JobSetting>,
    pub lease: Duration,
    pub heartbeat_every: Duration,
    /// `None`: followups are off.
    pub followups: Option<actors::followup::FollowupPlan>,
    pub quiet_hours: actors::followup::QuietHours,
    pub first_response_sla: Duration,
    pub stall_leads: usize,
}

/// Parses a 6-field cron (seconds first), the one dialect the scheduler runs.
pub fn parse_cron(s: &str) -> Result<croner::Cron, String> {
    if s.split_whitespace().count() != 6 {
        return Err("needs 6 fields (sec min hour day month weekday)".into());
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(s)
        .map_err(|e| e.to_string())
}

fn scheduler_settings(r: &mut Reader<'_>) -> SchedulerSettings {
    let tz_name = r.string("OWNER_TZ");
    let time_zone = tz_name.trim().parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
        r.problems.push(format!(
            "OWNER_TZ={tz_name:?} is not an IANA time zone (e.g. America/Chicago)"
        ));
        chrono_tz::America::Chicago
    });
    let mut jobs = Vec::new();
    for &job in Job::ALL {
        let var = job.schedule_var();
        let schedule = r.string(var).trim().to_string();
        if schedule.eq_ignore_ascii_case("off") {
            continue;
        }
        match parse_cron(&schedule) {
            Ok(_) => jobs.push(JobSetting {
                job,
                name: job.name(),
                schedule,
                missed: job.missed(),
            }),
            Err(e) => r
                .problems
                .push(format!("{var}={schedule:?} is not a cron schedule: {e}")),
        }
    }
    let followups = {
        let v = r.string("FOLLOWUP_HOURS");
        if v.trim().eq_ignore_ascii_case("off") {
            None
        } else {
            actors::followup::FollowupPlan::parse_hours(&v)
                .map_err(|e| r.problems.push(format!("FOLLOWUP_HOURS: {e}")))
                .ok()
        }
    };
    let quiet_hours =
        actors::followup::QuietHours::parse(&r.string("QUIET_HOURS")).unwrap_or_else(|e| {
            r.problems.push(format!("QUIET_HOURS: {e}"));
            actors::followup::QuietHours::parse("21:00-09:00").expect("valid default")
        });
    SchedulerSettings {
        time_zone,
        jobs,
        lease: r.seconds("SCHEDULER_LEASE_SECS"),
        heartbeat_every: r.seconds("HEARTBEAT_SECS"),
        followups,
        quiet_hours,
        first_response_sla: r.seconds("FIRST_RESPONSE_SLA_SECS"),
        stall_leads: r.positive("RESPONSE_GAP_STALL_LEADS"),
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&read_var)
    }

    /// Builds settings from any lookup (tests pass a map). Reports all problems together.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            get,
            problems: Vec::new(),
        };
        let port: u16 = r.parse("PORT");
        let bind_address: IpAddr = r.parse("BIND_ADDRESS");
        let ops_port: u16 = r.parse("OPS_PORT");
        let ops_bind_address: IpAddr = r.parse("OPS_BIND_ADDRESS");
        if ops_port == port && port != 0 {
            r.problems.push(format!(
                "OPS_PORT and PORT are both {port}: the ops listener needs a port of its own"
            ));
        }
        let allow_insecure = r.flag("ALLOW_INSECURE");
        let public_base_url = r
            .raw("PUBLIC_BASE_URL")
            .unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
        let public_base_url = public_base_url.trim_end_matches('/').to_string();
        if url::Url::parse(&public_base_url).is_err() {
            r.problems
                .push(format!("PUBLIC_BASE_URL={public_base_url:?} is not a URL"));
        }
        let database_url = r.string("DATABASE_URL");
        let readonly_database_url = r.raw("READONLY_DATABASE_URL");
        for (name, url) in [
            ("DATABASE_URL", Some(&database_url)),
            ("READONLY_DATABASE_URL", readonly_database_url.as_ref()),
        ] {
            if let Some(url) = url
                && !(url.starts_with("sqlite:") || crate::store::is_postgres_url(url))
            {
                r.problems.push(format!(
                    "{name} must be a sqlite:, postgres: or postgresql: URL (got scheme {:?})",
                    url.split(':').next().unwrap_or("")
                ));
            }
        }

        let amqp = amqp_settings(&mut r);

        let auth_token = r.raw("TWILIO_AUTH_TOKEN").map(Secret::new);
        let account_sid = r.raw("TWILIO_ACCOUNT_SID");
        let service = r
            .raw("TWILIO_MESSAGING_SERVICE_SID")
            .or_else(|| r.raw("TWILIO_SERVICE_HOMEEASY"));
        let from = r.raw("TWILIO_FROM_NUMBER");
        let twilio = match (&account_sid, &auth_token) {
            (None, _) => None,
            (Some(_), None) => {
                r.problems
                    .push("TWILIO_AUTH_TOKEN is required when TWILIO_ACCOUNT_SID is set".into());
                None
            }
            (Some(sid), Some(token)) => {
                let sender = match (service, from) {
                    (Some(s), _) => Some(TwilioSender::MessagingService(s)),
                    (None, Some(f)) => Some(TwilioSender::From(f)),
                    (None, None) => {
                        r.problems.push(
                            "TWILIO_MESSAGING_SERVICE_SID (or TWILIO_SERVICE_HOMEEASY) or \
                             TWILIO_FROM_NUMBER is required when TWILIO_ACCOUNT_SID is set"
                                .into(),
                        );
                        None
                    }
                };
                sender.map(|sender| TwilioSettings {
                    account_sid: sid.clone(),
                    auth_token: token.clone(),
                    sender,
                })
            }
        };

        let anthropic = r.raw("ANTHROPIC_API_KEY").map(|key| AnthropicSettings {
            api_key: Secret::new(key),
            model: r.string("ANTHROPIC_MODEL"),
        });

        let owner_phone = r.raw("OWNER_PHONE").map(|p| p.trim().to_string());
        if let Some(p) = &owner_phone
            && !is_e164(p)
        {
            r.problems.push(format!(
                "OWNER_PHONE={p:?} must be an E.164 number like +13125550123"
            ));
        }
        let asana_api_base = r.string("ASANA_API_BASE");
        if url::Url::parse(&asana_api_base).is_err() {
            r.problems
                .push(format!("ASANA_API_BASE={asana_api_base:?} is not a URL"));
        }
        let brain = brain_settings(&mut r);

        let log_format = r.log_format();
        let log_phone = r.log_phone();

        let (discord, hitl) = discord_and_hitl(&mut r);

        let settings = Settings {
            port,
            bind_address,
            ops_port,
            ops_bind_address,
            allow_insecure,
            http: crate::http::server::HttpLimits::read(&mut r),
            database_url: Secret::new(database_url),
            readonly_database_url: readonly_database_url.map(Secret::new),
            amqp,
            public_base_url,
            twilio_auth_token: auth_token,
            twilio,
            twilio_api_base: r.string("TWILIO_API_BASE"),
            inbound_journal: JournalSetting::parse(r.raw("INBOUND_JOURNAL_PATH")),
            webhook_alert_every: r.seconds("WEBHOOK_ALERT_SECS"),
            inbound_down_after: r.seconds("INBOUND_DOWN_SECS"),
            inbound_body_max_chars: r.positive("INBOUND_BODY_MAX_CHARS"),
            anthropic,
            anthropic_base_url: r.string("ANTHROPIC_BASE_URL"),
            llm_concurrency: r.positive("LLM_CONCURRENCY"),
            llm_soft_timeout: r.seconds("LLM_SOFT_TIMEOUT_SECS"),
            llm_hard_timeout: r.seconds("LLM_HARD_TIMEOUT_SECS"),
            brain,
            lead_turn_timeout: r.seconds("LEAD_TURN_TIMEOUT_SECS"),
            lead_idle: r.seconds("LEAD_IDLE_SECS"),
            lead_memory_budget_bytes: r.positive("LEAD_MEMORY_BUDGET_BYTES"),
            lead_restart_max: r.parse("LEAD_RESTART_MAX"),
            lead_restart_window: r.seconds("LEAD_RESTART_WINDOW_SECS"),
            parks: actors::park::ParkPolicy {
                per_hour: r.positive("REPLY_CAP_PER_HOUR"),
                per_day: r.positive("REPLY_CAP_PER_DAY"),
                park_for: r.seconds("PARK_SECS"),
            },
            root_restart_max: r.parse("ROOT_RESTART_MAX"),
            root_restart_window: r.seconds("ROOT_RESTART_WINDOW_SECS"),
            outbox_sweep_every: r.seconds("OUTBOX_SWEEP_SECS"),
            in_doubt: InDoubtPolicy {
                wait: r.seconds("OUTBOX_IN_DOUBT_WAIT_SECS"),
                recheck: r.seconds("OUTBOX_RECHECK_SECS"),
            },
            twilio_timeout: r.seconds("TWILIO_TIMEOUT_SECS"),
            shutdown_grace: r.seconds("SHUTDOWN_GRACE_SECS"),
            chat_window_messages: r.positive("CHAT_WINDOW_MESSAGES"),
            chat_window_bytes: r.positive("CHAT_WINDOW_BYTES"),
            office_name: r.string("OFFICE_NAME"),
            ops_token: r.raw("OPS_TOKEN").map(Secret::new),
            ops_session: r.seconds("OPS_SESSION_SECS"),
            owner_phone,
            asana_access_token: r.raw("ASANA_ACCESS_TOKEN").map(Secret::new),
            asana_api_base,
            scheduler: scheduler_settings(&mut r),
            log_format,
            log_phone,
            discord,
            hitl,
        };
        if settings.llm_hard_timeout < settings.llm_soft_timeout {
            r.problems.push(
                "LLM_HARD_TIMEOUT_SECS must not be shorter than LLM_SOFT_TIMEOUT_SECS".into(),
            );
        }
        if settings.lead_turn_timeout <= settings.llm_hard_timeout {
            r.problems.push(
                "LEAD_TURN_TIMEOUT_SECS must be longer than LLM_HARD_TIMEOUT_SECS (a turn \
                 includes the model chain)"
                    .into(),
            );
        }
        if r.problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError(r.problems))
        }
    }

    /// Settings from a map, for tests and tools.
    pub fn from_map(map: &HashMap<&str, &str>) -> Result<Self, ConfigError> {
        let get = |name: &str| map.get(name).map(|v| v.to_string());
        Self::from_lookup(&get)
    }

    /// True when the work queue can be shared between processes (RabbitMQ); the in-process
    /// queue cannot.
    pub fn has_shared_queue(&self) -> bool {
        self.amqp.is_some()
    }

    /// `host:pid`: names this process in turn records and logs.
    pub fn worker_id() -> String {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "local".into());
        format!("{host}:{}", std::process::id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_environment_at_all() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.port, 5012);
        assert_eq!(s.public_base_url, "http://127.0.0.1:5012");
        assert!(s.twilio.is_none() && s.anthropic.is_none());
        assert_eq!(s.llm_concurrency, 6);
    }

    #[test]
    fn every_problem_is_reported_at_once_by_name() {
        let map = HashMap::from([
            ("PORT", "eighty"),
            ("TWILIO_ACCOUNT_SID", "AC123"),
            ("LLM_CONCURRENCY", "0"),
            ("LOG_FORMAT", "xml"),
        ]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        for name in ["PORT", "TWILIO_AUTH_TOKEN", "LLM_CONCURRENCY", "LOG_FORMAT"] {
            assert!(err.contains(name), "{name} missing from: {err}");
        }
    }

    #[test]
    fn twilio_needs_a_sender_and_accepts_the_seeds_alias() {
        let map = HashMap::from([
            ("TWILIO_ACCOUNT_SID", "AC123"),
            ("TWILIO_AUTH_TOKEN", "tok"),
        ]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        assert!(err.contains("TWILIO_FROM_NUMBER"));
        let map = HashMap::from([
            ("TWILIO_ACCOUNT_SID", "AC123"),
            ("TWILIO_AUTH_TOKEN", "tok"),
            ("TWILIO_SERVICE_HOMEEASY", "MG1"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        assert!(matches!(
            s.twilio.unwrap().sender,
            TwilioSender::MessagingService(ref m) if m == "MG1"
        ));
    }

    #[test]
    fn amqp_is_off_by_default_and_accepts_the_seeds_alias() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert!(
            s.amqp.is_none(),
            "unset AMQP_URL means the in-process queue"
        );
        let map = HashMap::from([("CELERY_BROKER_URL", "amqp://u:p@rabbit:5672//")]);
        let amqp = Settings::from_map(&map).unwrap().amqp.unwrap();
        assert_eq!(amqp.url.expose(), "amqp://u:p@rabbit:5672//");
        assert_eq!(amqp.queue, "lead-agent.wake");
        let map = HashMap::from([
            ("AMQP_URL", "amqp://u:p@rabbit:5672/%2f"),
            ("AMQP_QUEUE", "leads.test"),
        ]);
        assert_eq!(
            Settings::from_map(&map).unwrap().amqp.unwrap().queue,
            "leads.test"
        );
    }

    #[test]
    fn amqp_problems_are_reported_by_name_with_the_others_and_without_the_password() {
        let map = HashMap::from([
            ("AMQP_URL", "redis://u:hunter2@cache:6379"),
            ("AMQP_QUEUE", "amq.mine"),
            ("PORT", "eighty"),
        ]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        for name in ["AMQP_URL", "AMQP_QUEUE", "PORT"] {
            assert!(err.contains(name), "{name} missing from: {err}");
        }
        assert!(!err.contains("hunter2"), "{err}");

        let map = HashMap::from([
            ("AMQP_URL", "amqp://u:hunter2@a:5672/%2f"),
            ("CELERY_BROKER_URL", "amqp://u:hunter2@b:5672/%2f"),
        ]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        assert!(err.contains("AMQP_URL and CELERY_BROKER_URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn sla_settings_are_off_by_default_and_a_bad_owner_phone_is_named() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert!(s.owner_phone.is_none() && s.asana_access_token.is_none());
        assert_eq!(s.asana_api_base, "https://app.asana.com/api/1.0");
        let map = HashMap::from([
            ("OWNER_PHONE", "312-555-0123"),
            ("ASANA_API_BASE", "not a url"),
        ]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        assert!(
            err.contains("OWNER_PHONE") && err.contains("ASANA_API_BASE"),
            "{err}"
        );
        let map = HashMap::from([
            ("OWNER_PHONE", "+13125550123"),
            ("ASANA_ACCESS_TOKEN", "asana-secret"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        assert_eq!(s.owner_phone.as_deref(), Some("+13125550123"));
        assert!(!format!("{s:?}").contains("asana-secret"));
    }

    #[test]
    fn both_listeners_default_to_loopback_on_their_own_ports() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.bind_address.to_string(), "127.0.0.1");
        assert_eq!(s.ops_bind_address.to_string(), "127.0.0.1");
        assert_eq!((s.port, s.ops_port), (5012, 5013));
        assert_eq!(default_ops_port(), 5013);
        assert!(!s.allow_insecure);
        assert_eq!(s.ops_session, Duration::from_secs(43200));
        let err = Settings::from_map(&HashMap::from([
            ("PORT", "6000"),
            ("OPS_PORT", "6000"),
            ("ALLOW_INSECURE", "perhaps"),
            ("OPS_SESSION_SECS", "0"),
        ]))
        .unwrap_err()
        .to_string();
        for name in ["OPS_PORT and PORT", "ALLOW_INSECURE", "OPS_SESSION_SECS"] {
            assert!(err.contains(name), "{name}: {err}");
        }
        let s = Settings::from_map(&HashMap::from([("PORT", "0"), ("OPS_PORT", "0")])).unwrap();
        assert_eq!(
            (s.port, s.ops_port),
            (0, 0),
            "two ephemeral ports are two ports"
        );
        let s = Settings::from_map(&HashMap::from([("ALLOW_INSECURE", "true")])).unwrap();
        assert!(s.allow_insecure);
    }

    #[test]
    fn use_agent_core_accepts_true_false_shadow_and_names_itself_otherwise() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.brain.agent_mode, actors::brain::AgentMode::Plain);
        let s = Settings::from_map(&HashMap::from([("USE_AGENT_CORE", "shadow")])).unwrap();
        assert_eq!(s.brain.agent_mode, actors::brain::AgentMode::Shadow);
        let err = Settings::from_map(&HashMap::from([
            ("USE_AGENT_CORE", "sometimes"),
            ("BUILDINGS_FILE", "buildings.txt"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("USE_AGENT_CORE") && err.contains("true, false or shadow"),
            "{err}"
        );
        assert!(err.contains("BUILDINGS_FILE"), "{err}");
    }

    #[test]
    fn log_phone_is_masked_by_default_and_hash_needs_its_key() {
        use actors::log_phone::LogPhoneMode;
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.log_phone, LogPhoneMode::Masked);
        let s = Settings::from_map(&HashMap::from([("LOG_PHONE", "full")])).unwrap();
        assert_eq!(s.log_phone, LogPhoneMode::Full);
        let s = Settings::from_map(&HashMap::from([
            ("LOG_PHONE", "hash"),
            ("LOG_PHONE_KEY", "k3y"),
        ]))
        .unwrap();
        assert_eq!(
            s.log_phone,
            LogPhoneMode::Hash {
                key: b"k3y".to_vec()
            }
        );
        assert!(!format!("{s:?}").contains("k3y"), "the key is a secret");
        let err = Settings::from_map(&HashMap::from([("LOG_PHONE", "hash")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LOG_PHONE_KEY is required"), "{err}");
        let err = Settings::from_map(&HashMap::from([("LOG_PHONE", "plain")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LOG_PHONE=\"plain\""), "{err}");
    }

    #[test]
    fn gemini_is_configured_by_its_key_with_the_default_model() {
        let s = Settings::from_map(&HashMap::from([("GOOGLE_API_KEY", "g")])).unwrap();
        assert_eq!(s.brain.gemini.unwrap().model, "gemini-2.5-flash");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let map = HashMap::from([
            ("TWILIO_AUTH_TOKEN", "supersecret"),
            ("OPS_TOKEN", "tok2"),
            ("AMQP_URL", "amqp://u:brokerpass@rabbit:5672/%2f"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("supersecret") && !shown.contains("tok2"));
        assert!(!shown.contains("brokerpass"), "{shown}");
    }

    #[test]
    fn every_declared_variable_is_documented_in_the_readme() {
        let readme = include_str!("../README.md");
        for v in ENV_VARS {
            assert!(
                readme.contains(&format!("`{}`", v.name)),
                "README.md does not document {}",
                v.name
            );
        }
    }

    #[test]
    fn every_declared_variable_is_wired_into_the_deployment() {
        // The containers take every key of their ConfigMap and Secret (envFrom); the binds
        // are literal values of the service's shared Deployment.
        let service = [
            include_str!("../deploy/k8s/configmap.example.yaml"),
            include_str!("../deploy/k8s/secret.example.yaml"),
            include_str!("../deploy/k8s/base/deployment.yaml"),
        ]
        .concat();
        let watch = [
            include_str!("../deploy/k8s/watch-config.example.yaml"),
            include_str!("../deploy/k8s/watch.yaml"),
        ]
        .concat();
        for v in ENV_VARS {
            // What only the watch reads is in the watch's objects alone.
            let (manifest, file) = if crate::watch::settings::WATCH_ONLY.contains(&v.name) {
                (&watch, "watch-config.example.yaml")
            } else {
                (&service, "configmap.example.yaml / secret.example.yaml")
            };
            assert!(
                manifest.contains(&format!("\n  {}: ", v.name))
                    || manifest.contains(&format!("name: {}\n", v.name)),
                "deploy/k8s/{file} does not declare {}",
                v.name
            );
        }
    }

    #[test]
    fn every_schedule_variable_is_a_job_and_every_job_is_scheduled_by_default() {
        // Independent of the `Job` table: the declared variables are what operators set.
        let vars: Vec<&str> = ENV_VARS
            .iter()
            .map(|v| v.name)
            .filter(|n| n.starts_with("SCHEDULE_"))
            .collect();
        for var in &vars {
            assert!(
                Job::ALL.iter().any(|j| j.schedule_var() == *var),
                "{var} is declared but no scheduler job reads it"
            );
        }
        assert_eq!(
            vars.len(),
            Job::ALL.len(),
            "one SCHEDULE_* variable per job"
        );
        let s = Settings::from_map(&HashMap::new()).unwrap();
        let scheduled: Vec<&str> = s.scheduler.jobs.iter().map(|j| j.name).collect();
        for job in Job::ALL {
            assert!(
                scheduled.contains(&job.name()),
                "{} is not in the default schedule",
                job.name()
            );
            assert_eq!(
                job.name(),
                job.schedule_var()
                    .trim_start_matches("SCHEDULE_")
                    .to_ascii_lowercase(),
                "a job is named after its variable"
            );
        }
        let off = Settings::from_map(&HashMap::from([("SCHEDULE_SLA_SWEEP", "off")])).unwrap();
        assert!(off.scheduler.jobs.iter().all(|j| j.job != Job::SlaSweep));
    }

    #[test]
    fn every_alert_kind_has_a_declared_channel_variable() {
        for kind in AlertKind::ALL {
            let name = DiscordSettings::channel_var(kind);
            assert!(
                ENV_VARS.iter().any(|v| v.name == name),
                "{name} is not declared"
            );
        }
    }

    #[test]
    fn a_kind_uses_its_own_channel_then_the_default_then_the_log() {
        let map = HashMap::from([
            ("DISCORD_BOT_TOKEN", "tok"),
            ("DISCORD_CHANNEL_ERROR", "111"),
            ("DISCORD_DEFAULT_CHANNEL", "999"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        assert_eq!(s.discord.channel_for(AlertKind::Error), Some("111"));
        assert_eq!(s.discord.channel_for(AlertKind::Event), Some("999"));
        let map = HashMap::from([
            ("DISCORD_BOT_TOKEN", "tok"),
            ("DISCORD_CHANNEL_ERROR", "111"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        assert_eq!(s.discord.channel_for(AlertKind::Event), None);
        let map = HashMap::from([("DISCORD_CHANNEL_ERROR", "111")]);
        let s = Settings::from_map(&map).unwrap();
        assert_eq!(
            s.discord.channel_for(AlertKind::Error),
            None,
            "no token: the log"
        );
    }

    #[test]
    fn hitl_without_its_prerequisites_is_refused_by_name() {
        let map = HashMap::from([("HITL_ENABLED", "true"), ("DISCORD_CHANNEL_EVENT", "12x")]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        for name in [
            "DISCORD_BOT_TOKEN",
            "DISCORD_PUBLIC_KEY",
            "DISCORD_CHANNEL_HITL_FEEDBACK",
            "DISCORD_CHANNEL_EVENT",
        ] {
            assert!(err.contains(name), "{name} missing from {err}");
        }
        let key = "ab".repeat(32);
        let map = HashMap::from([
            ("HITL_ENABLED", "true"),
            ("DISCORD_BOT_TOKEN", "tok"),
            ("DISCORD_PUBLIC_KEY", key.as_str()),
            ("DISCORD_DEFAULT_CHANNEL", "42"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        assert!(s.hitl.enabled);
        assert_eq!(s.discord.public_key, Some([0xab; 32]));
        assert_eq!(s.hitl.hold_timeout, Duration::from_secs(600));
    }

    #[test]
    #[should_panic(expected = "not declared")]
    fn reading_an_undeclared_variable_is_refused() {
        read_var("SOMETHING_UNDECLARED");
    }
}
