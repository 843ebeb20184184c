//! The HTTP exchange every model adapter shares: send one request, map a transport
//! failure or a non-2xx answer onto [`ModelError`] with the provider's own classifier,
//! decode the 2xx body; and a plain completion answered by one tool-less `converse` step.
//!
//! Owns: the order of those steps. Must not: know any provider's wire format or status
//! meanings (each adapter's `classify` does), or retry (the LLM pool does).

use actors::conversation::{AgentRequest, turns_from_prompt};
use actors::ports::{ChatModel, Completion, ModelError, Prompt};
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

/// A provider's mapping of a failed answer (status, headers, body text) onto the pool's
/// error classes.
pub type Classify = fn(u16, &HeaderMap, &str) -> ModelError;

/// Sends `request` and decodes its 2xx body as `T`.
pub async fn send<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    classify: Classify,
) -> Result<T, ModelError> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    if !response.status().is_success() {
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        return Err(classify(status, &headers, &text));
    }
    response
        .json()
        .await
        .map_err(|e| ModelError::BadResponse(e.to_string()))
}

/// A timeout is its own class: the pool's budget, not the provider, decides what is next.
pub fn transport(e: reqwest::Error) -> ModelError {
    if e.is_timeout() {
        ModelError::Timeout
    } else {
        ModelError::Transport(e.to_string())
    }
}

/// The error message of an `{"error": {"message": …}}` body (OpenAI's and Google's
/// shape), else the raw text; at most 300 characters, for the alert. Also the parsed body
/// (`Null` when it is not JSON), for the provider's own fields.
pub fn error_message(text: &str) -> (serde_json::Value, String) {
    let body: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or(text)
        .chars()
        .take(300)
        .collect();
    (body, message)
}

/// A plain completion by an adapter whose native call is `converse`: one step with no
/// tools, whose text is the reply (an empty one is a bad response, so the chain moves on).
pub async fn complete_by_converse<M: ChatModel + ?Sized>(
    model: &M,
    system: &str,
    prompt: &Prompt,
) -> Result<Completion, ModelError> {
    let request = AgentRequest {
        prompt: prompt.clone(),
        system: system.to_string(),
        turns: turns_from_prompt(prompt),
        tools: Vec::new(),
        allow_tools: false,
    };
    let reply = model.converse(&request).await?;
    let text = reply.text();
    if text.trim().is_empty() {
        return Err(ModelError::BadResponse("no text in the reply".into()));
    }
    Ok(Completion {
        text,
        provider: reply.provider,
        input_tokens: reply.input_tokens,
        output_tokens: reply.output_tokens,
    })
}
