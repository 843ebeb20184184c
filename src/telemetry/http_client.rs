//! The OTLP exporter's HTTP client: our reqwest 0.13 (rustls on aws-lc-rs, the binary's one
//! TLS stack), driven on the service's tokio runtime.
//!
//! Why not the exporter's own clients: its async `reqwest-client` needs a tokio reactor on the
//! thread that exports, and the SDK's batch processor exports on a plain thread of its own;
//! its `reqwest-blocking-client` brings reqwest's blocking runtime, one more thread and
//! runtime per exporter. Here the batch thread hands each request to the runtime
//! (`Handle::spawn`) and waits for the answer, so a slow collector holds that thread only —
//! never a tokio worker, never a turn.
//!
//! Owns: which headers reach the destination. The exporter adds `OTEL_EXPORTER_OTLP_HEADERS`
//! from the process environment to every exporter it builds, LangSmith's included; this
//! client keeps only the request's content headers and sets its target's own, so the
//! collector's token never reaches LangSmith nor LangSmith's key the collector.
//! Must not: retry (the exporter's policy does, on its thread) or read more than
//! [`MAX_RESPONSE_BYTES`] of an answer.

use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::config::TraceTarget;

/// An OTLP answer is a small `ExportTraceServiceResponse`; anything longer is not one.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Debug)]
pub(super) struct RuntimeHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// The target's own headers (credentials among them: never logged; `HeaderValue`s are
    /// marked sensitive so reqwest does not print them either).
    headers: HeaderMap,
}

impl RuntimeHttpClient {
    pub(super) fn new(
        target: &TraceTarget,
        runtime: tokio::runtime::Handle,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        for (name, value) in &target.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| anyhow::anyhow!("header {name:?} is not a valid name"))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| anyhow::anyhow!("header {name} has an invalid value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| {
                anyhow::anyhow!("Failed to build the trace exporter's HTTP client: {e}")
            })?;
        Ok(Self {
            client,
            runtime,
            headers,
        })
    }
}

#[async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut headers = self.headers.clone();
        for name in [CONTENT_TYPE, CONTENT_ENCODING] {
            if let Some(value) = parts.headers.get(&name) {
                headers.insert(name, value.clone());
            }
        }
        let call = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(headers)
            .body(body);
        let answer = self.runtime.spawn(async move {
            let mut response = call.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err::<_, HttpError>("the collector's answer is over 1 MiB".into());
                }
                bytes.extend_from_slice(&chunk);
            }
            let mut out = Response::builder()
                .status(status)
                .body(Bytes::from(bytes))?;
            *out.headers_mut() = headers;
            Ok(out)
        });
        answer
            .await
            .map_err(|e| -> HttpError { format!("the export task ended: {e}").into() })?
    }
}
