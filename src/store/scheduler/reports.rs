//! The owner's daily report: the period's counts, tour requests, and the saved reports.
//!
//! Owns: the `owner_reports` table and the counting queries. Must not: word the report —
//! that is `crate::scheduler`'s report job.

use std::collections::BTreeMap;

use actors::ports::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::super::{Pool, SqlStore, now, store_err};

/// The counts behind the owner's daily report.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ReportCounts {
    pub leads_in: i64,
    pub messages_in: i64,
    pub replies_out: i64,
    pub replies_failed: i64,
    pub followups_sent: i64,
    pub dead_leads: i64,
    pub opted_out: i64,
    /// Sent replies by the model (or `followup`) that wrote them.
    pub replies_by_provider: BTreeMap<String, i64>,
    /// Inbound messages still waiting for a reply at the end of the period.
    pub waiting_now: i64,
    /// Inbound messages the response-gap watch had to re-drive (first-response breaches).
    pub first_response_redrives: i64,
}

impl SqlStore {
    /// What happened in `[from, to)`.
    pub async fn report_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<ReportCounts, StoreError> {
        with_pool!(self, pool => {
            let count = |sql: &'static str| {
                sqlx::query_scalar::<_, i64>(sql).bind(from).bind(to).fetch_one(pool)
            };
            // Synthetic leads (the watch's and verify's probes) are not business: every
            // count leaves them out.
            let leads_in = count("SELECT COUNT(*) FROM leads WHERE synthetic = 0 AND created_at >= $1 AND created_at < $2")
                .await
                .map_err(store_err("report leads"))?;
            let messages_in = count(
                "SELECT COUNT(*) FROM messages WHERE direction = 'inbound' AND created_at >= $1 AND created_at < $2
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)",
            )
            .await
            .map_err(store_err("report inbound"))?;
            let replies_failed = count(
                "SELECT COUNT(*) FROM messages WHERE direction = 'outbound' AND state IN ('failed', 'in_doubt')
                 AND updated_at >= $1 AND updated_at < $2
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)",
            )
            .await
            .map_err(store_err("report failed"))?;
            let dead_leads = count("SELECT COUNT(*) FROM leads WHERE synthetic = 0 AND dead_at >= $1 AND dead_at < $2")
                .await
                .map_err(store_err("report dead"))?;
            let opted_out = count("SELECT COUNT(*) FROM leads WHERE synthetic = 0 AND opted_out_at >= $1 AND opted_out_at < $2")
                .await
                .map_err(store_err("report opted out"))?;
            let first_response_redrives = count(
                "SELECT COUNT(*) FROM messages WHERE redriven_at >= $1 AND redriven_at < $2
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)",
            )
            .await
            .map_err(store_err("report redrives"))?;
            let rows = sqlx::query(
                "SELECT COALESCE(provider, 'unknown'), COUNT(*) FROM messages
                 WHERE direction = 'outbound' AND state = 'sent' AND updated_at >= $1 AND updated_at < $2
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)
                 GROUP BY COALESCE(provider, 'unknown')",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await
            .map_err(store_err("report providers"))?;
            let waiting_now: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages WHERE state = 'pending' AND direction = 'inbound'
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)",
            )
            .fetch_one(pool)
            .await
            .map_err(store_err("report waiting"))?;
            let replies_by_provider: BTreeMap<String, i64> =
                rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
            let followups_sent = replies_by_provider.get("followup").copied().unwrap_or(0);
            let replies_out = replies_by_provider.values().sum::<i64>() - followups_sent;
            Ok(ReportCounts {
                leads_in,
                messages_in,
                replies_out,
                replies_failed,
                followups_sent,
                dead_leads,
                opted_out,
                replies_by_provider,
                waiting_now,
                first_response_redrives,
            })
        })
    }

    /// Tours the brain recorded as requested in `[from, to)` (from each lead's context
    /// document; only documents touched since `from` can hold one).
    pub async fn tours_requested(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        with_pool!(self, pool => {
            let docs: Vec<String> = sqlx::query_scalar(
                "SELECT context FROM lead_context WHERE updated_at >= $1
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)",
            )
            .bind(from)
            .fetch_all(pool)
            .await
            .map_err(store_err("report tours"))?;
            Ok(docs
                .iter()
                .filter_map(|d| serde_json::from_str::<actors::brain::context::LeadContext>(d).ok())
                .filter_map(|c| c.tour)
                .filter(|t| t.requested_at >= from && t.requested_at < to)
                .count() as i64)
        })
    }

    pub async fn save_report(&self, day: &str, body: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO owner_reports (day, generated_at, body) VALUES ($1, $2, $3)
                 ON CONFLICT (day) DO UPDATE SET generated_at = excluded.generated_at, body = excluded.body",
            )
            .bind(day)
            .bind(now())
            .bind(body)
            .execute(pool)
            .await
            .map_err(store_err("save report"))?;
            Ok(())
        })
    }

    /// The newest report: `(day, body)`.
    pub async fn latest_report(&self) -> Result<Option<(String, String)>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT day, body FROM owner_reports ORDER BY day DESC LIMIT 1")
                .fetch_optional(pool)
                .await
                .map_err(store_err("latest report"))?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }
}
