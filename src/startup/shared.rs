//! What every role wires the same way: the root supervisor with its alert router and the
//! alert sink behind it (Discord or the log), the Discord sender, the SMS sender (Twilio or
//! dry run) and the work queue (in-process or RabbitMQ).
//!
//! Must not: start anything only one role needs (the worker's half is `super::worker`).

use std::sync::Arc;

use actors::alert_router::{AlertHandle, AlertKind, AlertRouterChild, AlertSink};
use actors::ports::{Clock, SmsSender};
use actors::root::{RootConfig, RootHandle, RootSupervisor};
use anyhow::Context;

use super::shutdown::{GiveUpWatch, give_up_hook};
use crate::channels::discord::sender::{DiscordInbox, DiscordSender, DiscordSpoolSink};
use crate::channels::dry_run::DryRunSms;
use crate::channels::log_alerts::LogAlertSink;
use crate::channels::twilio::TwilioClient;
use crate::config::Settings;
use crate::queue::rabbitmq::{DeadLetter, RabbitConfig};
use crate::queue::{InProcessQueue, RabbitQueue, WorkQueue};
use crate::store::SqlStore;

/// The root supervisor and its first child, the alert router. Everything raises alerts, so
/// the handle exists before anything else; alerts raised while no router runs (before the
/// first, or during a restart) wait in the handle for the next one.
pub(super) async fn start_roots(
    settings: &Settings,
    sink: Arc<dyn AlertSink>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(RootHandle, AlertHandle, GiveUpWatch)> {
    let alerts = AlertHandle::new(clock.clone());
    let (hook, watch) = give_up_hook(settings.shutdown_grace);
    let roots = RootSupervisor::start(
        RootConfig::new(settings.root_restart_max, settings.root_restart_window),
        alerts.clone(),
        clock,
        hook,
    )
    .await
    .context("Failed to start the root supervisor")?;
    roots
        .add(Arc::new(AlertRouterChild::new(sink, alerts.clone())))
        .await
        .context("Failed to start the alert router")?;
    Ok((roots, alerts, watch))
}

/// Discord (spooled, or posted directly while the store is down) when a bot token is set,
/// else the log.
pub(super) fn alert_sink(
    settings: &Settings,
    store: &SqlStore,
    inbox: &Arc<DiscordInbox>,
) -> Arc<dyn AlertSink> {
    crate::channels::feedback_link::FeedbackLinkSink::wrap(
        chosen_sink(settings, store, inbox),
        settings.feedback_form_url.as_deref(),
    )
}

fn chosen_sink(
    settings: &Settings,
    store: &SqlStore,
    inbox: &Arc<DiscordInbox>,
) -> Arc<dyn AlertSink> {
    if settings.discord.bot_token.is_none() {
        tracing::info!("alerts go to the log (DISCORD_BOT_TOKEN is not set)");
        return Arc::new(LogAlertSink);
    }
    let to_log: Vec<&str> = AlertKind::ALL
        .iter()
        .filter(|k| settings.discord.channel_for(**k).is_none())
        .map(|k| k.key())
        .collect();
    if !to_log.is_empty() {
        tracing::warn!(kinds = ?to_log, "these alert kinds have no Discord channel (DISCORD_CHANNEL_<KIND> or DISCORD_DEFAULT_CHANNEL) and go to the log");
    }
    crate::channels::identity::IdentitySink::wrap(
        Arc::new(DiscordSpoolSink::new(
            store.clone(),
            settings.discord.clone(),
            inbox.clone(),
        )),
        store.clone(),
        inbox.clone(),
    )
}

/// Every process that has the bot token posts: its own direct queue, and the spool under
/// per-channel leases named for `instance` (one poster per channel across processes), so a
/// process that raises alerts never depends on another one being alive to post them.
pub(super) fn start_discord_sender(
    settings: &Settings,
    store: &SqlStore,
    instance: &str,
    inbox: &Arc<DiscordInbox>,
) -> anyhow::Result<Option<DiscordSender>> {
    let Some(token) = &settings.discord.bot_token else {
        return Ok(None);
    };
    let (sender, _join) = DiscordSender::start(
        store.clone(),
        &settings.discord,
        token.clone(),
        inbox.clone(),
        instance,
    )
    .context("Failed to start the Discord sender")?;
    Ok(Some(sender))
}

/// Twilio when configured, else the dry-run sender.
pub(super) fn build_sms_sender(settings: &Settings) -> anyhow::Result<Arc<dyn SmsSender>> {
    Ok(match &settings.twilio {
        Some(t) => {
            tracing::info!(account = %t.account_sid, "replies go out through Twilio");
            Arc::new(TwilioClient::new(
                t,
                &settings.twilio_api_base,
                settings.twilio_timeout,
            )?)
        }
        None => {
            tracing::warn!(
                "Twilio is not configured: replies are stored and logged (dry run), not sent"
            );
            Arc::new(DryRunSms)
        }
    })
}

/// `AMQP_URL` set: RabbitMQ, with its dead letters raised as alerts (a task that reaches
/// them will not be retried by anything, so it must not pass silently). Unset: in-process.
/// The concrete RabbitMQ queue is returned beside the trait object: it is also the inbound
/// fallback (`<AMQP_QUEUE>.inbound`).
pub(super) async fn build_queue(
    settings: &Settings,
    alerts: &AlertHandle,
) -> anyhow::Result<(Arc<dyn WorkQueue>, Option<Arc<RabbitQueue>>)> {
    let Some(amqp) = &settings.amqp else {
        tracing::info!("work queue: in-process (AMQP_URL is not set)");
        return Ok((Arc::new(InProcessQueue::default()), None));
    };
    let config = RabbitConfig::new(
        amqp.url.expose(),
        &amqp.queue,
        &format!("lead-agent {}", Settings::worker_id()),
    )
    .context("Failed to read the RabbitMQ settings")?;
    let queue = RabbitQueue::connect(config)
        .await
        .context("Failed to connect to RabbitMQ (AMQP_URL)")?;
    let alerts = alerts.clone();
    // Detached: it ends with the queue (stop_consuming or drop), and its only output is alerts.
    let _watcher = queue.watch_dead_letters(Arc::new(move |dead: DeadLetter| {
        alerts.raise(dead.alert());
    }));
    let queue = Arc::new(queue);
    Ok((queue.clone(), Some(queue)))
}
