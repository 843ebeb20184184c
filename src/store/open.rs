//! Opening a pool: the PostgreSQL and SQLite connection options, and the migrations run at
//! start.
//!
//! Owns: pool sizes, timeouts, the acquire-time ping policy and SQLite's durability mode.
//! Must not: run a query of the service's own — it hands back a pool and nothing else.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Pool, busy, is_postgres_url};

/// Opens a pool on `url`; runs the migrations when `migrate` (never on a replica).
pub(super) async fn open_pool(url: &str, migrate: bool) -> anyhow::Result<Pool> {
    Ok(if is_postgres_url(url) {
        let options = PgConnectOptions::from_str(url)
            .context("Failed to parse DATABASE_URL as a PostgreSQL URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(20)
            // Each running turn holds one connection for its lead lock and borrows another
            // for its queries: 20 covers the prefetch of LLM_CONCURRENCY 6 (8 tasks) with
            // room for the webhook.
            // Fail fast while the database is away: the webhook answers 503 (Twilio
            // retries) instead of holding the request past Twilio's 15 s.
            .acquire_timeout(Duration::from_secs(3))
            // sqlx pings every connection it hands out by default: one more round trip per
            // query, about twenty per turn, which on a loaded machine was a good part of the
            // batch drop's overhead (BENCHMARKS.md). A connection used within the last
            // seconds is taken as it is — if PostgreSQL went away since, the query fails
            // like any query during an outage (503 or a handed-back turn) and sqlx drops
            // the broken connection; one idle longer is still pinged.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .context("Failed to connect to PostgreSQL")?;
        if migrate {
            sqlx::migrate!("./migrations/postgres")
                .run(&pool)
                .await
                .context("Failed to run the PostgreSQL migrations")?;
        }
        Pool::Postgres(pool)
    } else {
        let options = SqliteConnectOptions::from_str(url)
            .context("Failed to parse DATABASE_URL as a SQLite URL")?
            .create_if_missing(true)
            // WAL lets the webhook's reads and the actors' writes proceed side by side;
            // NORMAL sync in WAL mode keeps committed transactions across a process
            // crash (the failure this mode must survive).
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A connection to a local file does not go stale, and the liveness ping sqlx
            // sends on every acquire is one more hand-off to the connection's worker thread:
            // a round trip on every query, for nothing.
            .test_before_acquire(false)
            // Poll for the write lock in sub-millisecond steps, not SQLite's 1–100 ms sleeps
            // (`busy.rs`); the same 5 s limit as `busy_timeout` above.
            .after_connect(|conn, _| Box::pin(busy::install(conn)))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .context("Failed to open the SQLite database")?;
        if migrate {
            sqlx::migrate!("./migrations/sqlite")
                .run(&pool)
                .await
                .context("Failed to run the SQLite migrations")?;
        }
        Pool::Sqlite(pool)
    })
}

/// A pooled PostgreSQL connection idle this long is pinged before use (see `open_pool`).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(5);
