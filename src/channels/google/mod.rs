//! Google's REST APIs the document intake uses: the service-account token flow
//! ([`auth`]), Gmail's messages of the staff mailbox ([`gmail`]) and Drive's folders and
//! uploads ([`drive`]). Each client takes its base URL (`GMAIL_API_BASE`,
//! `GDRIVE_API_BASE`; the token endpoint is the key file's `token_uri`), so the tests point
//! all three at `testkit::fake_google`.
//!
//! Owns: the wire formats and the mapping of every failure onto [`GoogleError`]
//! (`is_retryable()`: transport errors, 408, 429 and 5xx are; other statuses and unreadable
//! answers are not).
//! Must not: retry, decide what a message means (`crate::doc_intake` does), or put a key,
//! a token or a file's content into an error or a log line.

pub mod auth;
pub mod drive;
pub mod gmail;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoogleError {
    #[error("Google unreachable: {0}")]
    Transport(String),
    #[error("{what} answered {status}: {message}")]
    Status {
        what: &'static str,
        status: u16,
        message: String,
    },
    #[error("unreadable answer from Google: {0}")]
    Decode(String),
}

impl GoogleError {
    pub fn is_retryable(&self) -> bool {
        match self {
            GoogleError::Transport(_) => true,
            GoogleError::Status { status, .. } => matches!(status, 408 | 429) || *status >= 500,
            GoogleError::Decode(_) => false,
        }
    }
}

/// The response when it succeeded; its status and the start of its body otherwise (Google's
/// error bodies name the problem, `{"error": "invalid_grant", …}`, and hold no secret).
pub(crate) async fn check(
    response: reqwest::Response,
    what: &'static str,
) -> Result<reqwest::Response, GoogleError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let message = super::error_excerpt(response).await;
    Err(GoogleError::Status {
        what,
        status: status.as_u16(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_say_whether_to_retry() {
        let status = |status| GoogleError::Status {
            what: "Gmail",
            status,
            message: String::new(),
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(403).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(GoogleError::Transport("refused".into()).is_retryable());
        assert!(!GoogleError::Decode("x".into()).is_retryable());
    }
}
