//! Integration tests: the real application over real HTTP, with fake Twilio and Anthropic
//! servers on loopback. One binary, one module per feature.

mod helpers;

mod conversation;
mod embedded;
mod opt_out;
mod outbox;
mod postgres_outage;
mod supervision;
mod webhook;
