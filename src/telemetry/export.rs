//! The span exporters: one OTLP/HTTP (protobuf) exporter per configured target — the
//! collector at `OTEL_EXPORTER_OTLP_ENDPOINT`, LangSmith with `LANGSMITH_TRACING=true` — each
//! behind a batch processor of its own, under one tracer provider; and the flush at shutdown.
//!
//! Owns: that exporting never costs a turn anything but a span's copy into a bounded queue
//! (the SDK's batch processor: its own thread, [`MAX_QUEUE`] spans, then new spans are
//! dropped), the export budget ([`EXPORT_TIMEOUT`], retries included), that one slow target
//! does not hold up the other (a processor and thread each), and recording each export's
//! outcome ([`super::export_health`]). The queue, batch, delay, sampler and resource are
//! given here, in code, over the SDK's own `OTEL_BSP_*`, `OTEL_TRACES_SAMPLER` and
//! `OTEL_RESOURCE_ATTRIBUTES`, so the variables that matter are the ones `config::ENV_VARS`
//! declares.
//! Must not: be built twice in one process (it is the process's, like the subscriber), or
//! block a tokio worker ([`flush`] runs on a blocking thread).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};

use super::export_health::HEALTH;
use super::http_client::RuntimeHttpClient;
use crate::config::{TraceTarget, TracingSettings};

/// Spans waiting for export per target; past it new spans are dropped, never waited for.
const MAX_QUEUE: usize = 2048;
/// Spans per export request.
const MAX_BATCH: usize = 512;
/// How often a batch goes out when it is not full.
const SCHEDULE_DELAY: Duration = Duration::from_secs(2);
/// One export, the exporter's retries included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The shutdown flush: inside the pod's grace, whatever the collector does.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// An exporter that tells [`HEALTH`] how each export went.
#[derive(Debug)]
struct Monitored {
    name: &'static str,
    inner: opentelemetry_otlp::SpanExporter,
}

impl SpanExporter for Monitored {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        let outcome = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        HEALTH.record(self.name, outcome, Instant::now());
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

fn exporter(
    target: &TraceTarget,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let client = RuntimeHttpClient::new(target, runtime, EXPORT_TIMEOUT)?;
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(target.url.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| anyhow::anyhow!("Failed to build the {} trace exporter: {e}", target.name))
}

/// The provider for `settings`' targets, installed as the process's; `None` when there is
/// no target, or no tokio runtime to send on. Problems are returned for the caller to log
/// once the subscriber is up (nothing logs before it).
pub(super) fn install(
    settings: &TracingSettings,
    instance: &str,
    problems: &mut Vec<String>,
) -> Option<SdkTracerProvider> {
    if settings.targets.is_empty() {
        return None;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        problems
            .push("tracing is configured but there is no runtime to export on: it is off".into());
        return None;
    };
    let resource = Resource::builder_empty()
        .with_service_name(settings.service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", instance.to_string()),
        ])
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOn)
        .with_resource(resource);
    for target in &settings.targets {
        let inner = match exporter(target, runtime.clone()) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("{e:#}: that exporter is off"));
                continue;
            }
        };
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUE)
            .with_max_export_batch_size(MAX_BATCH)
            .with_scheduled_delay(SCHEDULE_DELAY)
            .build();
        let processor = BatchSpanProcessor::builder(Monitored {
            name: target.name,
            inner,
        })
        .with_batch_config(config)
        .build();
        builder = builder.with_span_processor(processor);
    }
    let provider = builder.build();
    if PROVIDER.set(provider.clone()).is_err() {
        // A second init in one process (tests): the first provider stays the process's.
        return None;
    }
    Some(provider)
}

/// True when spans are exported anywhere (the export alert watch runs then).
pub fn exporting() -> bool {
    PROVIDER.get().is_some()
}

/// Exports what is queued, within [`FLUSH_TIMEOUT`]: the last step of the ordered stop.
/// A collector that does not answer costs the timeout, not the shutdown.
pub async fn flush() {
    let Some(provider) = PROVIDER.get().cloned() else {
        return;
    };
    let flushed = tokio::task::spawn_blocking(move || provider.force_flush());
    match tokio::time::timeout(FLUSH_TIMEOUT, flushed).await {
        Ok(Ok(Ok(()))) => tracing::info!("traces flushed"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "traces not all flushed at shutdown"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the trace flush did not finish"),
        Err(_) => tracing::warn!("the trace flush timed out; queued spans are dropped"),
    }
}
