//! Gmail's REST API (v1) on the staff mailbox, read as the mailbox's user by domain-wide
//! delegation (`users/me` is the token's `sub`): `messages.list` with a search query,
//! `messages.get` with `format=full` (headers, the MIME tree), `messages.attachments.get`
//! (the content, base64url).
//!
//! Owns: those calls, and reading a message's tree into a [`Mail`]: `From` and `Subject`,
//! the text (every `text/plain` part; the snippet when there is none) and the attachments
//! (parts with a file name; their ids, since Gmail issues a new `attachmentId` on every
//! read, are only good for the read that returned them — a part is named by its `partId`).
//! Must not: change the mailbox (read-only scope), retry, or decide what a message means.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::GoogleError;
use super::auth::TokenSource;

/// Read-only access to the mailbox: nothing here labels, moves or deletes mail.
pub const SCOPE: &str = "https://www.googleapis.com/auth/gmail.readonly";
/// Ids asked for per page of `messages.list` (Gmail's maximum is 500).
const PAGE: usize = 100;

/// One file attached to a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The MIME part's id (`0.1`…): stable across reads of the message.
    pub part_id: String,
    pub filename: String,
    pub mime_type: String,
    pub size: u64,
    /// The id to fetch it with in this read; `None` when the content came inline.
    pub attachment_id: Option<String>,
    /// Small parts come inline in the message (`body.data`).
    pub inline: Option<Vec<u8>>,
}

/// A message as the intake reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub id: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub attachments: Vec<Attachment>,
}

pub struct Gmail {
    http: reqwest::Client,
    base: String,
    token: TokenSource,
}

fn base64url(data: &str) -> Result<Vec<u8>, GoogleError> {
    // Gmail's base64url sometimes carries padding.
    URL_SAFE_NO_PAD
        .decode(data.trim_end_matches('='))
        .map_err(|e| GoogleError::Decode(format!("base64url data: {e}")))
}

impl Gmail {
    pub fn new(http: reqwest::Client, base: &str, token: TokenSource) -> Self {
        Self {
            http,
            base: format!("{}/gmail/v1/users/me", base.trim_end_matches('/')),
            token,
        }
    }

    async fn get_json(&self, url: String) -> Result<Value, GoogleError> {
        let token = self.token.token().await?;
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| GoogleError::Transport(format!("Gmail: {e}")))?;
        super::check(response, "Gmail")
            .await?
            .json()
            .await
            .map_err(|e| GoogleError::Decode(format!("Gmail: {e}")))
    }

    /// The ids of the messages matching `query`, newest first (Gmail's order), at most
    /// `limit`.
    pub async fn list(&self, query: &str, limit: usize) -> Result<Vec<String>, GoogleError> {
        let mut ids = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            // The serializer is not `Send`: it is finished before the request is awaited.
            let params = {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                q.append_pair("q", query)
                    .append_pair("maxResults", &PAGE.min(limit.max(1)).to_string());
                if let Some(t) = &page_token {
                    q.append_pair("pageToken", t);
                }
                q.finish()
            };
            let page = self
                .get_json(format!("{}/messages?{params}", self.base))
                .await?;
            for m in page["messages"].as_array().into_iter().flatten() {
                if let Some(id) = m["id"].as_str() {
                    ids.push(id.to_string());
                }
            }
            page_token = page["nextPageToken"].as_str().map(str::to_string);
            if page_token.is_none() || ids.len() >= limit {
                ids.truncate(limit);
                return Ok(ids);
            }
        }
    }

    /// One message, read whole (`format=full`).
    pub async fn get(&self, id: &str) -> Result<Mail, GoogleError> {
        let m = self
            .get_json(format!("{}/messages/{id}?format=full", self.base))
            .await?;
        read_mail(id, &m)
    }

    /// The content of an attachment found by the read that returned `attachment_id`.
    pub async fn attachment(
        &self,
        message: &str,
        attachment_id: &str,
    ) -> Result<Vec<u8>, GoogleError> {
        let a = self
            .get_json(format!(
                "{}/messages/{message}/attachments/{attachment_id}",
                self.base
            ))
            .await?;
        let data = a["data"]
            .as_str()
            .ok_or_else(|| GoogleError::Decode("attachment without data".into()))?;
        base64url(data)
    }
}

/// A `messages.get` answer as a [`Mail`].
pub fn read_mail(id: &str, m: &Value) -> Result<Mail, GoogleError> {
    let payload = &m["payload"];
    if !payload.is_object() {
        return Err(GoogleError::Decode(format!("message {id} has no payload")));
    }
    let header = |name: &str| -> String {
        payload["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| {
                h["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|h| h["value"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let mut mail = Mail {
        id: id.to_string(),
        from: header("From"),
        subject: header("Subject"),
        text: String::new(),
        attachments: Vec::new(),
    };
    walk(payload, &mut mail)?;
    if mail.text.trim().is_empty() {
        mail.text = m["snippet"].as_str().unwrap_or_default().to_string();
    }
    Ok(mail)
}

fn walk(part: &Value, mail: &mut Mail) -> Result<(), GoogleError> {
    let filename = part["filename"].as_str().unwrap_or_default();
    let mime = part["mimeType"].as_str().unwrap_or_default();
    let body = &part["body"];
    if !filename.is_empty() {
        let inline = match body["data"].as_str() {
            Some(d) if body["attachmentId"].is_null() => Some(base64url(d)?),
            _ => None,
        };
        mail.attachments.push(Attachment {
            part_id: part["partId"].as_str().unwrap_or_default().to_string(),
            filename: filename.to_string(),
            mime_type: if mime.is_empty() {
                "application/octet-stream".into()
            } else {
                mime.to_string()
            },
            size: body["size"].as_u64().unwrap_or(0),
            attachment_id: body["attachmentId"].as_str().map(str::to_string),
            inline,
        });
    } else if mime.eq_ignore_ascii_case("text/plain")
        && let Some(d) = body["data"].as_str()
    {
        if !mail.text.is_empty() {
            mail.text.push('\n');
        }
        mail.text.push_str(&String::from_utf8_lossy(&base64url(d)?));
    }
    for p in part["parts"].as_array().into_iter().flatten() {
        walk(p, mail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b64(s: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn a_full_message_is_read_into_headers_text_and_attachments() {
        let m = json!({
            "id": "m1",
            "snippet": "ignored when there is text",
            "payload": {
                "partId": "",
                "mimeType": "multipart/mixed",
                "filename": "",
                "headers": [
                    {"name": "From", "value": "Jane <jane@example.com>"},
                    {"name": "subject", "value": "My pay stubs"},
                ],
                "body": {"size": 0},
                "parts": [
                    {"partId": "0", "mimeType": "multipart/alternative", "filename": "", "body": {"size": 0},
                     "parts": [
                        {"partId": "0.0", "mimeType": "text/plain", "filename": "",
                         "body": {"size": 20, "data": b64(b"My number is (312) 555-0171")}},
                        {"partId": "0.1", "mimeType": "text/html", "filename": "",
                         "body": {"size": 20, "data": b64(b"<p>html</p>")}},
                     ]},
                    {"partId": "1", "mimeType": "application/pdf", "filename": "stub.pdf",
                     "body": {"size": 1234, "attachmentId": "ANGjdJ_x"}},
                    {"partId": "2", "mimeType": "image/png", "filename": "id.png",
                     "body": {"size": 3, "data": format!("{}==", b64(b"png"))}},
                ]
            }
        });
        let mail = read_mail("m1", &m).unwrap();
        assert_eq!(mail.from, "Jane <jane@example.com>");
        assert_eq!(mail.subject, "My pay stubs");
        assert_eq!(mail.text, "My number is (312) 555-0171");
        assert_eq!(mail.attachments.len(), 2);
        assert_eq!(mail.attachments[0].part_id, "1");
        assert_eq!(mail.attachments[0].filename, "stub.pdf");
        assert_eq!(
            mail.attachments[0].attachment_id.as_deref(),
            Some("ANGjdJ_x")
        );
        assert_eq!(mail.attachments[0].inline, None);
        assert_eq!(mail.attachments[1].inline.as_deref(), Some(&b"png"[..]));

        let bare = json!({"snippet": "call me 3125550171", "payload": {"mimeType": "text/html", "body": {"data": b64(b"<b>x</b>")}}});
        assert_eq!(read_mail("m2", &bare).unwrap().text, "call me 3125550171");
        assert!(read_mail("m3", &json!({})).is_err());
    }
}
