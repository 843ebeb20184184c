//! Per-test databases: a fresh PostgreSQL database per call when `TEST_DATABASE_URL` is
//! set, a SQLite file in the test's directory otherwise.
//!
//! Owns: creating the databases tests (unit, `tests/api`, the fault suite, the scheduler
//! bench) run on. Must not: be used by the service to open its own store.

/// Test support: where tests keep their data. With `TEST_DATABASE_URL` set (a PostgreSQL
/// URL the tests may create databases through), each call creates a fresh database there
/// and returns its URL — and panics if the server cannot be reached, because a test must
/// fail, not quietly fall back, when its backend is missing. Unset: a SQLite file in `dir`.
pub async fn fresh_test_database_url(dir: &std::path::Path) -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin) => fresh_postgres_database(&admin).await,
        Err(_) => format!("sqlite://{}", dir.join("lead-agent.db").display()),
    }
}

/// Test support: creates a uniquely named database through `admin_url` and returns its URL.
/// Panics when PostgreSQL cannot be reached.
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    use sqlx::Connection;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let name = format!(
        "lead_agent_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is unreachable: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("could not create test database {name}: {e}"));
    let mut url = url::Url::parse(admin_url).expect("the admin URL is a URL");
    url.set_path(&name);
    url.to_string()
}
