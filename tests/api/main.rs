//! Integration tests: the real application over real HTTP, with fake Twilio and Anthropic
//! servers on loopback (and, for `rabbitmq`, the real broker on 127.0.0.1:5672). One
//! binary, one module per feature.

#[path = "../support/mod.rs"]
mod support;

mod helpers;
use support::fake_discord;
use testkit::fake_providers as llm_fakes;

mod agent_profiles;
mod alert_kinds;
mod alerts_outage;
mod brain;
mod browser;
mod building_service;
mod consent;
mod console;
mod console_seed;
mod conversation;
mod crm_texts;
mod dialer;
mod discord;
mod doc_intake;
mod embedded;
mod exposure;
mod fair_housing;
mod hitl;
mod input_rules;
mod listener;
mod log_safety;
mod model_chain;
mod multiprocess;
mod multiprocess_alerts;
mod openai;
mod openapi;
mod ops_page;
mod opt_out;
mod outbox;
mod parks;
mod postgres_outage;
mod properties;
mod rabbitmq;
mod refused;
mod rules_catalog;
mod scheduler;
mod send_windows;
mod simulate;
mod sla;
mod sla_events;
mod supervision;
mod takeover;
mod tracing;
mod verify;
mod watch;
mod webhook;
