//! The declared environment variables: [`ENV_VARS`], one entry per variable with its
//! default, whether it is a secret and what it means, and [`read_var`], the one place the
//! process environment is read.
//!
//! Owns: the list, in README order, and the defaults the reader falls back to.
//! Must not: parse or check values (`super::reader` does), or read a name the list lacks.

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
    // --- The agent profile (`config::profile`, issue 14 item 6): who this deployment is ---
    var(
        "AGENT_PROFILE",
        Some("landlord_rep"),
        false,
        "Which agent this deployment is: `landlord_rep` (the leasing rep, today's agent) or `locator` (the apartment Locator: its own prompt, tone, greeting, followups `24,72`, queue `lead-agent-locator.wake`, and its EVENT and AGENT_RESPONSE alerts to DISCORD_CHANNEL_LOCATOR). The profile's values are defaults of OFFICE_NAME, BUILDINGS_FILE, BUILDING_SERVICE_API, FOLLOWUP_HOURS and AMQP_QUEUE: a variable that is set still wins. An unknown name stops the start. Set in each agent's Deployment (deploy/agents/), not in a ConfigMap.",
    ),
    var(
        "AGENT_PROFILE_FILE",
        None,
        false,
        "A YAML profile laid over AGENT_PROFILE's built-in one, field by field: `office_name`, `prompt`, `tone`, `greeting`, `buildings_file`, `building_service_api`, `followup_hours`, `queue`, `alert_channels` (alert kind → the kind whose channel it goes to, e.g. `EVENT: LOCATOR`). Unknown fields, an unreadable file or an unknown kind stop the start. Unset: the built-in profile alone.",
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
        "OPENAI_API_KEY",
        None,
        true,
        "When set, OpenAI (Chat Completions) joins the model chain: after Gemini by default, or where LLM_PROVIDERS puts it.",
    ),
    var(
        "OPENAI_MODEL",
        Some("gpt-4o-mini"),
        false,
        "OpenAI model id.",
    ),
    var(
        "OPENAI_API_BASE",
        Some("https://api.openai.com"),
        false,
        "OpenAI base URL; the client appends /v1/chat/completions.",
    ),
    var(
        "LLM_PROVIDERS",
        None,
        false,
        "Order of the model chain, a comma list of `anthropic`, `gemini`, `openai` (a provider whose key is unset is skipped, with a log line). Unset: `anthropic,gemini`, then `openai` when OPENAI_API_KEY is set. The rules responder always answers last and cannot be removed (`rules` may close the list); an unknown name is a configuration error.",
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
        "The building catalog the brain and the rules responder answer from, YAML (.yaml/.yml) or JSON (.json). Unset: the bundled sample (deploy/buildings.sample.yaml).",
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
        "FUB_TEXTING_SERVICE",
        None,
        false,
        "Base URL the CRM texting log posts /v1/textMessages to (the seed's FUB texting endpoint). Unset: FUB_API_BASE. The log runs when FUB_API is set.",
    ),
    var(
        "FUB_SYSTEM",
        Some("lead-agent"),
        false,
        "The registered system's name Follow Up Boss knows us by (`X-System` header on every FUB request).",
    ),
    var(
        "FUB_SYSTEM_KEY",
        None,
        true,
        "The registered system's key (`X-System-Key` header): FUB accepts /v1/textMessages from registered systems only. Unset: the header is not sent (FUB refuses the text log; alerted).",
    ),
    var(
        "BUILDING_SERVICE_API",
        None,
        false,
        "URL of the building service: the catalog (the brain's and the rules responder's) is fetched from it (same schema as BUILDINGS_FILE; JSON, or YAML by content-type) at start and every BUILDING_SERVICE_REFRESH_SECS, the last good copy kept on failure (alerted). Unset: BUILDINGS_FILE or the sample.",
    ),
    var(
        "BUILDING_SERVICE_REFRESH_SECS",
        Some("300"),
        false,
        "How often each worker refreshes the catalog from BUILDING_SERVICE_API.",
    ),
    // --- The mailbox document intake (`crate::doc_intake`, issue 14 item 3) ---
    var(
        "GMAIL_SERVICE_ACCOUNT_JSON",
        None,
        true,
        "The Google service account (domain-wide delegation) that reads the staff mailbox BLUELAKE_STAFF_EMAIL (scope gmail.readonly): the key file's JSON itself, or its path (the manifests mount the Secret lead-agent-google at /var/run/secrets/google/GMAIL_SERVICE_ACCOUNT_JSON). Set: the scheduler's doc_intake job reads mail with attachments from known leads (a lead's phone number in the From, Subject or text), stores the files in Drive, opens the lead's doc_review SLA and alerts REQUIREMENTS_NOTE. Unset, or a path with no file: the intake is off (one log line).",
    ),
    var(
        "GDRIVE_SERVICE_ACCOUNT_JSON",
        None,
        true,
        "The Google service account that writes the leads' folders under YGL_DRIVE_PARENT_FOLDER_ID (scope drive; share the parent folder with its client_email): the key file's JSON or its path (/var/run/secrets/google/GDRIVE_SERVICE_ACCOUNT_JSON). Unset, or without YGL_DRIVE_PARENT_FOLDER_ID: attachments are recorded by name only (the SLA's note says so).",
    ),
    var(
        "YGL_DRIVE_PARENT_FOLDER_ID",
        None,
        false,
        "Id of the Drive folder (a shared drive's too) that holds one folder per lead, named by the lead's phone number, for the attachments the document intake stores.",
    ),
    var(
        "BLUELAKE_STAFF_EMAIL",
        None,
        false,
        "The staff mailbox the document intake reads (the service account acts as this user: the token's `sub`). Required with GMAIL_SERVICE_ACCOUNT_JSON.",
    ),
    var(
        "GMAIL_API_BASE",
        Some("https://gmail.googleapis.com"),
        false,
        "Gmail API base URL; the client calls /gmail/v1/users/me/messages…. The token endpoint is the key file's token_uri.",
    ),
    var(
        "GDRIVE_API_BASE",
        Some("https://www.googleapis.com"),
        false,
        "Google Drive API base URL; the client calls /drive/v3/files and /upload/drive/v3/files.",
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
        "TAKEOVER_IDLE_HOURS",
        Some("4"),
        false,
        "Hours (fractions allowed) a human takeover of a lead (`POST /ops/leads/{phone}/takeover`, the Discord \"Take over\" button) lasts without operator activity (the take, or an operator reply): then the scheduler's takeover_idle_release job releases it with a HITL_FEEDBACK alert, and the AI answers the lead's next message (not those that came during the takeover).",
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
        "OFFICE_CONTACT",
        None,
        false,
        "The support contact the HELP reply names (a phone number, email or URL), as CTIA asks. Unset: the HELP reply says to text the question instead.",
    ),
    var(
        "HELP_REPLY",
        None,
        false,
        "The answer to HELP or INFO. Must contain STOP (how to opt out) and fit one message body (1,600 characters). Unset: built from OFFICE_NAME and OFFICE_CONTACT with CTIA's parts: the program, \"Msg frequency varies\", \"Msg & data rates may apply\", \"Reply STOP to opt out\", the contact. Sent once per HELP; arms no followup.",
    ),
    var(
        "TWILIO_ADVANCED_OPT_OUT",
        Some("false"),
        false,
        "`true` when Twilio's Advanced Opt-Out is on for the Messaging Service and answers HELP and opt-outs itself: no HELP reply and no OPT_OUT_CONFIRMATION of ours (Twilio's would make two).",
    ),
    var(
        "ACCOMMODATION_REPLY",
        None,
        false,
        "The SMS a lead gets who asks about a housing voucher, accessibility, a disability or a reasonable accommodation (the AI answers nothing else on it; a person replies under the `accommodation_request` SLA). Default: \"Thanks for asking. A member of our team will get back to you about that personally, the same business day.\" Refused if it fails the fair-housing check or is longer than one SMS body.",
    ),
    var(
        "BUSINESS_HOURS",
        Some("mon-fri 09:00-17:00"),
        false,
        "The office's hours in OWNER_TZ (`DAYS HH:MM-HH:MM`, days as `mon-fri` or `mon,wed,fri`): an accommodation request is due by their close the same business day (the next business day's when it came after close or on a day off).",
    ),
    var(
        "OPT_OUT_CONFIRMATION",
        None,
        false,
        "The one SMS confirming a revocation in plain words (\"please stop texting me\", \"alto\": ones Twilio does not treat as STOP, so it neither blocks nor confirms them), sent once, arming no followup, never marketing. Unset: \"<OFFICE_NAME>: you are opted out and will get no more messages from us. Reply START to opt back in.\" Off with TWILIO_ADVANCED_OPT_OUT=true.",
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
        "Channel id for LOCATOR alerts: Locator agent events: a deployment with AGENT_PROFILE=locator posts its EVENT and AGENT_RESPONSE alerts here (the profile's alert_channels); unset: their own channels.",
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
        "Channel id for BUILDING_OPTIONS alerts: Building options offered: the brain's `record_requirements` found buildings matching the lead's needs and the set is new to the lead.",
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
        "Channel id for AGENT_RESPONSE alerts: Every reply that was sent, in full (the seed's all-agents stream).",
    ),
    var(
        "DISCORD_CHANNEL_CHAT_HISTORY_NOT_FOUND",
        None,
        false,
        "Channel id for CHAT_HISTORY_NOT_FOUND alerts: A message from a lead the store has no conversation with (first contact, or history lost).",
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
        "Channel id for SANITY_CHECK alerts: A reply that failed the per-reply check (empty, echoing the prompt, an unfilled placeholder: not sent; over one SMS: cut; a fair-housing finding: held for a person).",
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
        "ASANA_PROJECT_GID",
        None,
        false,
        "Asana project (gid) each SLA opened by an event gets its task in (`POST /tasks`); the task's gid is stored on the SLA and the nags comment on it. Unset (or no ASANA_ACCESS_TOKEN): tasks are not created and SLAs get `dry-run-…` ids (nothing posted).",
    ),
    var(
        "ASANA_SECTION_GID",
        None,
        false,
        "Section (gid) of ASANA_PROJECT_GID the SLA tasks are created in (`memberships`). Unset: the project's default section.",
    ),
    var(
        "HOMEEASY_DIALER_URL",
        None,
        false,
        "The operator's dialer: a lead who asks to be called (\"call me\") or whom the brain marks hot is posted here as JSON `{phone, name, summary, lead_id, client_id, reason}`, at most once per lead per day. Unset: the hand-off is logged and recorded (dry run), nothing is posted.",
    ),
    var(
        "VOICE_AI_API_KEY",
        None,
        true,
        "Bearer token of the dialer hand-off (`Authorization: Bearer …` on POST HOMEEASY_DIALER_URL). Unset: no Authorization header.",
    ),
    var(
        "FEEDBACK_FORM_URL",
        None,
        false,
        "Link to the office's feedback form, added to HITL held-reply and escalation alerts (\"Feedback: <url>\"). Unset: no link.",
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
        "SCHEDULE_SELF_CHECK",
        Some("0 30 6 * * *"),
        false,
        "Cron of the daily self-check (06:30 OWNER_TZ): one SANITY_CHECK alert on what is configured, each model provider answering its models list, the catalog, the queue, alerts owed to Discord, the last verify. Missed ticks: run once.",
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
        "SCHEDULE_CRM_TEXT_LOG",
        Some("*/10 * * * * *"),
        false,
        "Cron of the CRM texting log: inbound and sent SMS not yet on the lead's Follow Up Boss timeline are posted (at most 50 a run; retryable failures backed off 1 s → 5 min, 12 attempts, then alerted). Idle without FUB_API. Missed ticks: skip (the next run catches up).",
    ),
    var(
        "SCHEDULE_DOC_INTAKE",
        Some("0 * * * * *"),
        false,
        "Cron of the document intake: the staff mailbox's mail with attachments of the last 7 days not yet taken (at most 20 a run; each message once, by its Gmail id) is matched to a lead, stored in Drive, and opens doc_review; failures retried 1 s → 5 min, 12 attempts, then alerted. Idle without GMAIL_SERVICE_ACCOUNT_JSON. Missed ticks: skip (the next run catches up).",
    ),
    var(
        "SCHEDULE_TAKEOVER_IDLE_RELEASE",
        Some("*/30 * * * * *"),
        false,
        "Cron of the takeover idle release (every 30 s): takeovers with no operator activity for TAKEOVER_IDLE_HOURS are released and alerted (HITL_FEEDBACK takeover_idle_released). Missed ticks: run once.",
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
        "Local time window (lead's zone, else OWNER_TZ) in which no proactive message (followup, SLA update to the lead) is sent; a due one waits for its end. Narrows the federal 08:00-21:00 window and the state windows (SEND_WINDOWS_BY_STATE), never widens them.",
    ),
    var(
        "SEND_WINDOWS_BY_STATE",
        Some(""),
        false,
        "Overrides of the built-in sending windows by the lead's state (from its area code): `ST=HH:MM-HH:MM[,DAY=HH:MM-HH:MM|DAY=none];…` (DAY mon…sun) replaces a state's window, `ST=off` removes it, `FEDERAL=…` replaces the 08:00-21:00 window every lead has. Built in: FL, OK, MD, MS, NJ 08:00-20:00; TX 09:00-21:00, Sunday 12:00-21:00; CT 09:00-20:00. A proactive message outside the window waits for it; replies are not held. A combination that never opens is refused.",
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
    // --- Tracing (`src/telemetry/`, issue 14): OpenTelemetry spans, off by default ---
    var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        None,
        false,
        "OTLP/HTTP collector base URL (standard OpenTelemetry meaning): spans of each turn, model call, SMS send and scheduler job are POSTed as protobuf to `{endpoint}/v1/traces`. Unset: no OTLP export.",
    ),
    var(
        "OTEL_EXPORTER_OTLP_HEADERS",
        None,
        true,
        "Headers for the OTLP collector, `key=value,key2=value2` (values URL-encoded, as the OpenTelemetry spec says): usually its auth token. Sent to OTEL_EXPORTER_OTLP_ENDPOINT only, never to LangSmith.",
    ),
    var(
        "OTEL_SERVICE_NAME",
        Some("lead-agent"),
        false,
        "The `service.name` resource attribute of every exported span (both exporters); `service.instance.id` is the role, host and pid.",
    ),
    var(
        "LANGSMITH_TRACING",
        Some("false"),
        false,
        "`true`: spans also go to LangSmith's OTLP endpoint (`{LANGSMITH_ENDPOINT}/otel/v1/traces`, headers `x-api-key` and `Langsmith-Project`), as the seed traces every agent run. Needs LANGSMITH_API_KEY.",
    ),
    var(
        "LANGSMITH_ENDPOINT",
        Some("https://api.smith.langchain.com"),
        false,
        "LangSmith's API base URL (EU: `https://eu.api.smith.langchain.com`, or a self-hosted one).",
    ),
    var(
        "LANGSMITH_API_KEY",
        None,
        true,
        "LangSmith API key, sent as `x-api-key`. With LANGSMITH_TRACING=true and no key, LangSmith export stays off (one warning at start).",
    ),
    var(
        "LANGSMITH_PROJECT",
        None,
        false,
        "LangSmith project the traces land in (`Langsmith-Project` header). Unset: LangSmith's `default` project.",
    ),
    var(
        "TRACE_EXPORT_ALERT_SECS",
        Some("300"),
        false,
        "An exporter whose every export has failed for this long raises one `trace_export_failing` alert (kind ERROR), and one again only after it recovered. Turns never wait for an export.",
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

pub(super) fn default_of(name: &str) -> &'static str {
    ENV_VARS
        .iter()
        .find(|v| v.name == name)
        .and_then(|v| v.default)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_variable_is_documented_in_the_readme() {
        let readme = include_str!("../../README.md");
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
            include_str!("../../deploy/k8s/configmap.example.yaml"),
            include_str!("../../deploy/k8s/secret.example.yaml"),
            include_str!("../../deploy/k8s/base/deployment.yaml"),
        ]
        .concat();
        let watch = [
            include_str!("../../deploy/k8s/watch-config.example.yaml"),
            include_str!("../../deploy/k8s/watch.yaml"),
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
    #[should_panic(expected = "not declared")]
    fn reading_an_undeclared_variable_is_refused() {
        read_var("SOMETHING_UNDECLARED");
    }
}
