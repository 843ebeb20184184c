//! The document intake's settings (issue 14, item 3): the Gmail and Drive service-account
//! keys (`GMAIL_SERVICE_ACCOUNT_JSON`, `GDRIVE_SERVICE_ACCOUNT_JSON`), the mailbox they read
//! (`BLUELAKE_STAFF_EMAIL`), the Drive folder the leads' folders go under
//! (`YGL_DRIVE_PARENT_FOLDER_ID`) and the APIs' base URLs.
//!
//! Owns: the rule that a key variable holds either the key file's JSON itself (it starts
//! with `{`) or the path of the file (the manifests mount the Secret `lead-agent-google` as
//! files under `/var/run/secrets/google`), and [`load_key`], which reads it at start. A path
//! whose file is absent or empty is "not configured" (the Secret is optional, as in the
//! seed): the step it serves is off, said in one log line. A key that is there but unreadable
//! stops the start, naming the variable, never quoting the key.
//! Must not: call Google, or keep a key outside a [`Secret`].

use super::reader::Reader;
use super::secret::Secret;
use crate::channels::google::auth::ServiceAccount;

#[derive(Debug, Clone)]
pub struct DocIntakeSettings {
    /// `GMAIL_SERVICE_ACCOUNT_JSON` as set: JSON or a path. `None`: the intake is off.
    pub gmail_key: Option<Secret>,
    /// `GDRIVE_SERVICE_ACCOUNT_JSON` as set. `None`: attachments are recorded by name only.
    pub drive_key: Option<Secret>,
    pub drive_parent: Option<String>,
    /// `BLUELAKE_STAFF_EMAIL`: the mailbox read (the token's `sub`). Required with Gmail.
    pub staff_email: Option<String>,
    pub gmail_api_base: String,
    pub drive_api_base: String,
}

pub(super) fn doc_intake_settings(r: &mut Reader<'_>) -> DocIntakeSettings {
    let gmail_key = r.raw("GMAIL_SERVICE_ACCOUNT_JSON").map(Secret::new);
    let staff_email = r
        .raw("BLUELAKE_STAFF_EMAIL")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    if let Some(e) = &staff_email
        && !e.contains('@')
    {
        r.problems.push(format!(
            "BLUELAKE_STAFF_EMAIL={e:?} is not an email address"
        ));
    }
    if gmail_key.is_some() && staff_email.is_none() {
        r.problems.push(
            "BLUELAKE_STAFF_EMAIL is required when GMAIL_SERVICE_ACCOUNT_JSON is set: it is the \
             mailbox the service account reads by domain-wide delegation"
                .into(),
        );
    }
    let base = |r: &mut Reader<'_>, name: &str| {
        let v = r.string(name).trim().trim_end_matches('/').to_string();
        if !matches!(url::Url::parse(&v), Ok(u) if u.scheme() == "https" || u.scheme() == "http") {
            r.problems
                .push(format!("{name}={v:?} is not an http(s) URL"));
        }
        v
    };
    let gmail_api_base = base(r, "GMAIL_API_BASE");
    let drive_api_base = base(r, "GDRIVE_API_BASE");
    DocIntakeSettings {
        gmail_key,
        drive_key: r.raw("GDRIVE_SERVICE_ACCOUNT_JSON").map(Secret::new),
        drive_parent: r
            .raw("YGL_DRIVE_PARENT_FOLDER_ID")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()),
        staff_email,
        gmail_api_base,
        drive_api_base,
    }
}

/// The key `var` holds (its value `value`): `Ok(None)` when a path names no file or an empty
/// one (said in the log), an error naming the variable when the key cannot be read.
pub fn load_key(var: &str, value: &Secret) -> anyhow::Result<Option<ServiceAccount>> {
    let raw = value.expose().trim();
    let text = if raw.starts_with('{') {
        raw.to_string()
    } else {
        match std::fs::read_to_string(raw) {
            Ok(t) if t.trim().is_empty() => {
                tracing::warn!("{var} names {raw}, which is empty: treated as not set");
                return Ok(None);
            }
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    "{var} names {raw}, which does not exist (the Secret lead-agent-google is not mounted): treated as not set"
                );
                return Ok(None);
            }
            Err(e) => anyhow::bail!("{var} names {raw}, which cannot be read: {e}"),
        }
    };
    ServiceAccount::from_json(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{var}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use testkit::fake_google::TestKey;

    use super::*;
    use crate::config::Settings;

    #[test]
    fn gmail_needs_the_staff_mailbox_and_bases_must_be_urls() {
        let e = Settings::from_map(&HashMap::from([("GMAIL_SERVICE_ACCOUNT_JSON", "{}")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("BLUELAKE_STAFF_EMAIL is required"), "{e}");
        let e = Settings::from_map(&HashMap::from([("GMAIL_API_BASE", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("GMAIL_API_BASE"), "{e}");
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert!(s.doc_intake.gmail_key.is_none());
        assert_eq!(s.doc_intake.gmail_api_base, "https://gmail.googleapis.com");
        assert_eq!(s.doc_intake.drive_api_base, "https://www.googleapis.com");
    }

    #[test]
    fn a_key_is_inline_json_or_a_file_and_an_absent_file_is_not_set() {
        let json = TestKey::generate().service_account_json("a@p", "https://t/token");
        let inline = load_key("GMAIL_SERVICE_ACCOUNT_JSON", &Secret::new(json.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(inline.client_email, "a@p");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("GMAIL_SERVICE_ACCOUNT_JSON");
        let p = Secret::new(path.display().to_string());
        assert!(load_key("X", &p).unwrap().is_none(), "absent");
        std::fs::write(&path, "\n").unwrap();
        assert!(load_key("X", &p).unwrap().is_none(), "empty");
        std::fs::write(&path, &json).unwrap();
        assert_eq!(load_key("X", &p).unwrap().unwrap().client_email, "a@p");
        std::fs::write(&path, "{\"private_key\": \"TOPSECRET\"}").unwrap();
        let e = load_key("GDRIVE_SERVICE_ACCOUNT_JSON", &p)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("GDRIVE_SERVICE_ACCOUNT_JSON"), "{e}");
        assert!(!e.contains("TOPSECRET"), "{e}");
    }
}
