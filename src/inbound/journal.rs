//! The local inbound journal: the embedded mode's fallback when the store cannot take a
//! verified webhook (and an optional last fallback in any role, `INBOUND_JOURNAL_PATH`).
//!
//! Owns: appending one JSON line per message and fsyncing it before the webhook answers
//! 200; replaying the journal into the store — at start, and whenever the store answers
//! again — without blocking new appends (the journal is moved aside to `<path>.replaying`
//! first, so appends go to a fresh file); deleting a replayed file only once every one of
//! its entries is committed.
//! Must not: drop an entry it cannot store (the file stays and the next replay starts over:
//! entries already stored are duplicates, which the store's `MessageSid` key ignores), or
//! replay a torn last line as a message (a line cut by a crash was never answered 200: its
//! fsync had not returned).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{InboundFallback, InboundIntake, VerifiedInbound};

/// How often the replayer looks at a non-empty journal (it also tries once at start).
const REPLAY_EVERY: Duration = Duration::from_secs(1);

pub struct Journal {
    path: PathBuf,
    /// Serialises appends with each other and with the move-aside of a replay.
    lock: tokio::sync::Mutex<()>,
}

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    pub stored: usize,
    /// Lines that were not a message (a torn last line); skipped with a warning.
    pub skipped: usize,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`. Fails when the file cannot be
    /// created or written: a fallback that fails only during the outage it exists for would
    /// be found out too late.
    pub fn open(path: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create the inbound journal's directory {}: {e}",
                    dir.display()
                )
            })?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the inbound journal {} for writing: {e}",
                    path.display()
                )
            })?;
        Ok(Self {
            path,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn replaying_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".replaying");
        PathBuf::from(name)
    }

    /// Entries waiting to be replayed (both files), for `/ready` and tests.
    pub fn pending(&self) -> usize {
        [self.replaying_path(), self.path.clone()]
            .iter()
            .map(|p| read_entries(p).map(|(e, _)| e.len()).unwrap_or(0))
            .sum()
    }

    async fn append(&self, msg: &VerifiedInbound) -> Result<(), String> {
        let mut line = serde_json::to_vec(msg).map_err(|e| format!("encode: {e}"))?;
        line.push(b'\n');
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            file.write_all(&line)?;
            // The 200 promises the message survives a crash of this process and of the
            // machine: data on disk, not in the page cache.
            file.sync_data()
        })
        .await
        .map_err(|e| format!("journal writer: {e}"))?
        .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Writes every journalled message into the store (and wakes its lead). Stops at the
    /// first store error, leaving the rest for the next replay.
    pub async fn replay(&self, intake: &InboundIntake) -> Result<Replayed, String> {
        let replaying = self.replaying_path();
        let mut done = Replayed::default();
        // A replay cut short (store error, crash) left its file: finish it first.
        if !replaying.exists() {
            let _guard = self.lock.lock().await;
            let has_entries = std::fs::metadata(&self.path).is_ok_and(|m| m.len() > 0);
            if !has_entries {
                return Ok(done);
            }
            std::fs::rename(&self.path, &replaying)
                .map_err(|e| format!("move {} aside: {e}", self.path.display()))?;
            sync_dir(&self.path);
        }
        let (entries, skipped) =
            read_entries(&replaying).map_err(|e| format!("{}: {e}", replaying.display()))?;
        done.skipped = skipped;
        for msg in &entries {
            intake
                .store_and_wake(msg)
                .await
                .map_err(|e| format!("store: {e}"))?;
            done.stored += 1;
        }
        std::fs::remove_file(&replaying)
            .map_err(|e| format!("remove {}: {e}", replaying.display()))?;
        sync_dir(&self.path);
        if done.stored > 0 {
            metrics::counter!("lead_agent_inbound_drained_total", "path" => "journal")
                .increment(done.stored as u64);
            tracing::info!(
                stored = done.stored,
                skipped = done.skipped,
                "inbound journal replayed into the store"
            );
        }
        Ok(done)
    }

    /// Replays whenever the journal has entries, until the process ends.
    pub fn spawn_replayer(
        self: Arc<Self>,
        intake: Arc<InboundIntake>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(REPLAY_EVERY).await;
                match self.replay(&intake).await {
                    Ok(_) => {
                        if failing {
                            tracing::info!("inbound journal: the store answers again");
                        }
                        failing = false;
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "inbound journal not replayed yet; retrying every second");
                        }
                        failing = true;
                    }
                }
            }
        })
    }
}

#[async_trait]
impl InboundFallback for Journal {
    fn name(&self) -> &'static str {
        "journal"
    }

    async fn keep(&self, msg: &VerifiedInbound) -> Result<(), String> {
        self.append(msg).await
    }

    async fn is_ready(&self) -> bool {
        true
    }
}

/// The messages in `path` (none if it does not exist) and how many lines were not one.
fn read_entries(path: &Path) -> std::io::Result<(Vec<VerifiedInbound>, usize)> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    let mut skipped = 0;
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<VerifiedInbound>(&line) {
            Ok(msg) => entries.push(msg),
            Err(e) => {
                skipped += 1;
                tracing::warn!(path = %path.display(), error = %e, "inbound journal line is not a message (torn by a crash?); skipped");
            }
        }
    }
    Ok((entries, skipped))
}

/// Makes a rename or delete in the journal's directory durable. Best effort: where the
/// platform cannot open a directory the data itself is still fsynced.
fn sync_dir(path: &Path) {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn msg(n: u32) -> VerifiedInbound {
        VerifiedInbound {
            message_sid: format!("SM{n:032}"),
            from: "+13125550100".into(),
            body: format!("message {n}"),
            received_at: Utc::now(),
            synthetic: false,
        }
    }

    #[tokio::test]
    async fn appended_messages_are_read_back_in_order_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("j/inbound.jsonl")).unwrap();
        for n in 0..3 {
            journal.keep(&msg(n)).await.unwrap();
        }
        // A crash mid-append leaves a partial line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(journal.path())
            .unwrap();
        f.write_all(br#"{"message_sid":"SM0"#).unwrap();
        let (entries, skipped) = read_entries(journal.path()).unwrap();
        let sids: Vec<_> = entries.iter().map(|e| e.message_sid.clone()).collect();
        let expected: Vec<_> = (0..3).map(|n| msg(n).message_sid).collect();
        assert_eq!(sids, expected);
        assert_eq!(entries[2].body, "message 2");
        assert_eq!(skipped, 1);
        assert_eq!(journal.pending(), 3);
    }

    #[test]
    fn a_journal_that_cannot_be_written_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = Journal::open(file.join("inbound.jsonl")).err().unwrap();
        assert!(err.to_string().contains("inbound journal"), "{err}");
    }
}
