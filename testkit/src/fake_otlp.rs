//! A fake OTLP/HTTP trace receiver on loopback: `POST /v1/traces` (a collector, the standard
//! path under `OTEL_EXPORTER_OTLP_ENDPOINT`) and `POST /otel/v1/traces` (LangSmith's path
//! under its API base), protobuf bodies (`application/x-protobuf`, 415 otherwise), decoded
//! with the protocol's generated `ExportTraceServiceRequest` (400 when it does not decode).
//! Records every request's path and headers and every span with its attributes, events and
//! resource, each value as text; answers an empty `ExportTraceServiceResponse`. Can be told
//! to answer a status instead (an outage), recording the attempt but no spans.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

use super::serve;

/// One span as received, its ids in lowercase hex.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// The protocol's `SpanKind` number (3 is client).
    pub kind: i32,
    /// The status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    pub attributes: BTreeMap<String, String>,
    /// Each event's name and attributes.
    pub events: Vec<(String, BTreeMap<String, String>)>,
    pub resource: BTreeMap<String, String>,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// Every text of the span: its name, attribute keys and values, its events' and
    /// resource's — what a test searches for a value that must not be there.
    pub fn all_text(&self) -> Vec<&str> {
        let mut out = vec![self.name.as_str()];
        for map in std::iter::once(&self.attributes)
            .chain(self.events.iter().map(|(_, a)| a))
            .chain(std::iter::once(&self.resource))
        {
            for (k, v) in map {
                out.push(k);
                out.push(v);
            }
        }
        out.extend(self.events.iter().map(|(n, _)| n.as_str()));
        out
    }
}

/// One export request.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    pub path: String,
    /// Header names in lowercase.
    pub headers: HashMap<String, String>,
    /// The status answered.
    pub status: u16,
    pub spans: usize,
}

#[derive(Default)]
struct FakeState {
    requests: Mutex<Vec<ExportRequest>>,
    spans: Mutex<Vec<ReceivedSpan>>,
    /// While set, every request is answered with this status and its spans are not kept.
    down: Mutex<Option<u16>>,
}

#[derive(Clone)]
pub struct FakeOtlp {
    /// The base URL: a collector endpoint (`{url}/v1/traces`) or a LangSmith API base
    /// (`{url}/otel/v1/traces`).
    pub url: String,
    state: Arc<FakeState>,
}

impl FakeOtlp {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let router = Router::new()
            .route("/v1/traces", post(receive))
            .route("/otel/v1/traces", post(receive))
            .with_state(state.clone());
        Self {
            url: serve(router).await,
            state,
        }
    }

    /// Every export request so far, in arrival order.
    pub fn requests(&self) -> Vec<ExportRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.state.spans.lock().unwrap().clone()
    }

    /// Answers every request with `status` (e.g. 503) until [`Self::up`].
    pub fn down(&self, status: u16) {
        *self.state.down.lock().unwrap() = Some(status);
    }

    pub fn up(&self) {
        *self.state.down.lock().unwrap() = None;
    }
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn map(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn receive(
    State(state): State<Arc<FakeState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let record = |status: u16, spans: usize| {
        state.requests.lock().unwrap().push(ExportRequest {
            path: uri.path().to_string(),
            headers: recorded.clone(),
            status,
            spans,
        });
    };
    if let Some(status) = *state.down.lock().unwrap() {
        record(status, 0);
        return StatusCode::from_u16(status)
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            .into_response();
    }
    let content_type = recorded.get("content-type").map(String::as_str);
    if content_type != Some("application/x-protobuf") {
        record(415, 0);
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "protobuf only").into_response();
    }
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => {
            record(400, 0);
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    let mut received = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| map(&r.attributes))
            .unwrap_or_default();
        for scope in &resource_spans.scope_spans {
            for span in &scope.spans {
                received.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: span.kind,
                    status_code: span.status.as_ref().map_or(0, |s| s.code),
                    attributes: map(&span.attributes),
                    events: span
                        .events
                        .iter()
                        .map(|e| (e.name.clone(), map(&e.attributes)))
                        .collect(),
                    resource: resource.clone(),
                });
            }
        }
    }
    record(200, received.len());
    state.spans.lock().unwrap().extend(received);
    // An empty ExportTraceServiceResponse: full success.
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        Vec::<u8>::new(),
    )
        .into_response()
}
