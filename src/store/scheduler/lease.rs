//! The leader lease: one replica at a time runs the scheduler, holding a row that expires
//! unless renewed.
//!
//! Owns: the `leases` table. Must not: choose the lease length or renewal period — that is
//! `crate::scheduler`.

use actors::ports::StoreError;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::super::{Pool, SqlStore, now, store_err};

impl SqlStore {
    /// Takes or renews the lease `name` for `holder` until `until`. True while `holder`
    /// holds it: a free or expired lease is taken, a live one of someone else's is not.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.try_lease_at(name, holder, now(), until).await
    }

    /// [`Self::try_lease`] as of `t` (the caller's clock: the Discord sender's channel
    /// leases are tested on a manual one).
    pub async fn try_lease_at(
        &self,
        name: &str,
        holder: &str,
        t: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO leases (name, holder, expires_at, acquired_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(t)
            .execute(pool)
            .await
            .map_err(store_err("insert lease"))?;
            // One statement decides: renew our own, or take an expired one.
            let held = sqlx::query(
                "UPDATE leases SET
                    acquired_at = CASE WHEN holder = $2 THEN acquired_at ELSE $4 END,
                    holder = $2, expires_at = $3
                 WHERE name = $1 AND (holder = $2 OR expires_at < $4)",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(t)
            .execute(pool)
            .await
            .map_err(store_err("take lease"))?
            .rows_affected()
                == 1;
            Ok(held)
        })
    }

    /// Gives the lease up at shutdown so a standby need not wait for it to expire.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await
                .map_err(store_err("release lease"))?;
            Ok(())
        })
    }

    pub async fn lease_holder(
        &self,
        name: &str,
    ) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT holder, expires_at FROM leases WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
                .map_err(store_err("lease holder"))?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }
}
