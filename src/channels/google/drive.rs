//! Google Drive's REST API (v3): a folder per lead under the office's parent folder
//! (`YGL_DRIVE_PARENT_FOLDER_ID`), found by `files.list` or made by `files.create`, and each
//! attachment uploaded into it (`uploadType=multipart`: the metadata and the content in one
//! `multipart/related` request). Shared drives are supported (`supportsAllDrives`).
//!
//! Owns: those calls, the search queries (values quoted, `'` and `\` escaped), and the
//! marks that make an upload findable again: each file carries the Gmail message and part
//! it came from as `appProperties`, so a retried message uploads only what is missing.
//! Must not: delete or overwrite anything, retry, or read the mailbox.

use serde_json::{Value, json};

use super::GoogleError;
use super::auth::TokenSource;

/// Drive's full scope: the parent folder is the office's, shared with the service account,
/// and `drive.file` reaches only files the app itself created.
pub const SCOPE: &str = "https://www.googleapis.com/auth/drive";
pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// `appProperties` keys of an uploaded attachment.
pub const PROP_MESSAGE: &str = "gmail_message_id";
pub const PROP_PART: &str = "gmail_part_id";

pub struct Drive {
    http: reqwest::Client,
    base: String,
    token: TokenSource,
}

/// A Drive query's string literal.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The link a person opens a folder with.
pub fn folder_link(id: &str) -> String {
    format!("https://drive.google.com/drive/folders/{id}")
}

impl Drive {
    pub fn new(http: reqwest::Client, base: &str, token: TokenSource) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, GoogleError> {
        let token = self.token.token().await?;
        let response = request
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| GoogleError::Transport(format!("Drive: {e}")))?;
        super::check(response, "Drive")
            .await?
            .json()
            .await
            .map_err(|e| GoogleError::Decode(format!("Drive: {e}")))
    }

    async fn list(&self, q: &str) -> Result<Vec<Value>, GoogleError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", q)
            .append_pair("fields", "files(id,name,appProperties)")
            .append_pair("pageSize", "100")
            .append_pair("supportsAllDrives", "true")
            .append_pair("includeItemsFromAllDrives", "true")
            .finish();
        let answer = self
            .send(
                self.http
                    .get(format!("{}/drive/v3/files?{query}", self.base)),
            )
            .await?;
        Ok(answer["files"].as_array().cloned().unwrap_or_default())
    }

    /// The id of the folder `name` directly under `parent`, made when there is none.
    pub async fn folder(&self, parent: &str, name: &str) -> Result<String, GoogleError> {
        let q = format!(
            "name = {} and {} in parents and mimeType = {} and trashed = false",
            quoted(name),
            quoted(parent),
            quoted(FOLDER_MIME)
        );
        if let Some(id) = self.list(&q).await?.first().and_then(|f| f["id"].as_str()) {
            return Ok(id.to_string());
        }
        let created = self
            .send(
                self.http
                    .post(format!(
                        "{}/drive/v3/files?supportsAllDrives=true&fields=id",
                        self.base
                    ))
                    .json(&json!({"name": name, "mimeType": FOLDER_MIME, "parents": [parent]})),
            )
            .await?;
        created["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| GoogleError::Decode("files.create answered no id".into()))
    }

    /// The parts of Gmail message `message` already uploaded into `folder`.
    pub async fn uploaded_parts(
        &self,
        folder: &str,
        message: &str,
    ) -> Result<Vec<String>, GoogleError> {
        let q = format!(
            "{} in parents and appProperties has {{ key={} and value={} }} and trashed = false",
            quoted(folder),
            quoted(PROP_MESSAGE),
            quoted(message)
        );
        Ok(self
            .list(&q)
            .await?
            .iter()
            .filter_map(|f| f["appProperties"][PROP_PART].as_str().map(str::to_string))
            .collect())
    }

    /// Uploads one file into `folder`, marked with the message and part it came from;
    /// returns its id.
    pub async fn upload(
        &self,
        folder: &str,
        name: &str,
        mime_type: &str,
        content: Vec<u8>,
        marks: (&str, &str),
    ) -> Result<String, GoogleError> {
        let metadata = json!({
            "name": name,
            "parents": [folder],
            "mimeType": mime_type,
            "appProperties": {PROP_MESSAGE: marks.0, PROP_PART: marks.1},
        });
        let boundary = format!("lead-agent-{:016x}", rand::random::<u64>());
        let mut body = format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n--{boundary}\r\nContent-Type: {mime_type}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let created = self
            .send(
                self.http
                    .post(format!(
                        "{}/upload/drive/v3/files?uploadType=multipart&supportsAllDrives=true&fields=id",
                        self.base
                    ))
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        format!("multipart/related; boundary={boundary}"),
                    )
                    .body(body),
            )
            .await?;
        created["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| GoogleError::Decode("upload answered no id".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_quoted_and_escaped() {
        assert_eq!(quoted("+13125550171"), "'+13125550171'");
        assert_eq!(quoted("O'Hara \\ co"), "'O\\'Hara \\\\ co'");
    }
}
