//! The `verifications` table: results of `lead-agent verify --record`, for the `/ops` page.
//!
//! Owns: storing a report as given (JSON text) and reading the latest. Must not: interpret
//! the report (that is `verify`'s), or be the only record — DEPLOYMENT_STATE.md is.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Pool, SqlStore, StoreError, store_err};

/// One stored verification.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationRecord {
    pub verified_at: DateTime<Utc>,
    pub url: String,
    pub passed: bool,
    /// The report as `verify` sent it (JSON).
    pub report: String,
}

impl SqlStore {
    pub async fn record_verification(&self, record: &VerificationRecord) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO verifications (verified_at, url, passed, report) VALUES ($1, $2, $3, $4)",
            )
            .bind(record.verified_at)
            .bind(&record.url)
            .bind(record.passed)
            .bind(&record.report)
            .execute(pool)
            .await
            .map_err(store_err("record_verification"))?;
            Ok(())
        })
    }

    /// The most recently stored verification, if any.
    pub async fn last_verification(&self) -> Result<Option<VerificationRecord>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT verified_at, url, passed, report FROM verifications ORDER BY id DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await
            .map_err(store_err("last_verification"))?;
            Ok(row.map(|r| VerificationRecord {
                verified_at: r.get("verified_at"),
                url: r.get("url"),
                passed: r.get("passed"),
                report: r.get("report"),
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fresh_test_database_url;

    #[tokio::test]
    async fn the_latest_recorded_verification_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&fresh_test_database_url(dir.path()).await)
            .await
            .unwrap();
        assert_eq!(store.last_verification().await.unwrap(), None);
        let at = DateTime::parse_from_rfc3339("2026-11-27T07:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let first = VerificationRecord {
            verified_at: at,
            url: "http://a".into(),
            passed: false,
            report: "{}".into(),
        };
        let second = VerificationRecord {
            url: "http://b".into(),
            passed: true,
            ..first.clone()
        };
        store.record_verification(&first).await.unwrap();
        store.record_verification(&second).await.unwrap();
        assert_eq!(store.last_verification().await.unwrap(), Some(second));
    }
}
