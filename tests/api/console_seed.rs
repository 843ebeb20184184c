//! The console tests' data, written straight to the app's database (SQLite or PostgreSQL):
//! many leads with interleaved messages, and leads in each attention state.

/// No outbox sweep or response-gap watch during the test: seeded pending messages stay so.
pub fn quiet_clock() -> Vec<(&'static str, String)> {
    vec![
        ("OUTBOX_SWEEP_SECS", "3600".into()),
        ("SCHEDULE_RESPONSE_GAP_WATCH", "0 0 0 1 1 *".into()),
    ]
}

/// `+1312` and seven digits: the seeded lead number `i`.
pub fn seeded(i: u64) -> String {
    format!("+1312{i:07}")
}

/// Seeds `n` leads named `Lead {i}` with three messages each (in, out, in; all answered or
/// sent), written straight to the app's database. The messages of a lead are spread over
/// the table (lead `i`'s at about `i`, `i + n/10`, `i + n/5`), as real traffic interleaves
/// them, so the newest messages are not all their lead's newest. They span the last
/// 1.2 × `n` seconds up to now: with 100,000 leads, 33 hours, 216,000 of them in the last
/// 24 (the charts' window) — a very busy day.
pub async fn seed_leads(database_url: &str, n: u64) {
    let spread = (n / 10).max(1);
    if database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        sqlx::query(
            "INSERT INTO leads (phone, created_at, name)
             SELECT '+1312' || lpad(i::text, 7, '0'), now() - interval '30 days', 'Lead ' || i
             FROM generate_series(1, $1::bigint) AS i",
        )
        .bind(n as i64)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO messages (lead_phone, direction, body, message_sid, state, provider,
                                   created_at, updated_at)
             SELECT '+1312' || lpad(i::text, 7, '0'),
                    CASE WHEN k = 1 THEN 'outbound' ELSE 'inbound' END,
                    CASE WHEN k = 1 THEN 'Yes, the 2BR is available.' ELSE 'Is the 2BR still open?' END,
                    CASE WHEN k = 1 THEN NULL ELSE 'SMseed' || i || '_' || k END,
                    CASE WHEN k = 1 THEN 'sent' ELSE 'answered' END,
                    CASE WHEN k = 1 THEN 'anthropic' ELSE NULL END,
                    now() - make_interval(secs => (12 * $1 / 10 - (i + k * $2))::double precision),
                    now()
             FROM generate_series(1, $1::bigint) AS i, generate_series(0, 2) AS k
             ORDER BY i + k * $2, k",
        )
        .bind(n as i64)
        .bind(spread as i64)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    } else {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        sqlx::query(
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1)
             INSERT INTO leads (phone, created_at, name)
             SELECT printf('+1312%07d', i), strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-30 days'),
                    'Lead ' || i
             FROM seq",
        )
        .bind(n as i64)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1),
                  ks(k) AS (VALUES (0), (1), (2))
             INSERT INTO messages (lead_phone, direction, body, message_sid, state, provider,
                                   created_at, updated_at)
             SELECT printf('+1312%07d', i),
                    CASE WHEN k = 1 THEN 'outbound' ELSE 'inbound' END,
                    CASE WHEN k = 1 THEN 'Yes, the 2BR is available.' ELSE 'Is the 2BR still open?' END,
                    CASE WHEN k = 1 THEN NULL ELSE 'SMseed' || i || '_' || k END,
                    CASE WHEN k = 1 THEN 'sent' ELSE 'answered' END,
                    CASE WHEN k = 1 THEN 'anthropic' ELSE NULL END,
                    strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-' || (12 * $1 / 10 - (i + k * $2)) || ' seconds'),
                    strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
             FROM seq, ks ORDER BY i + k * $2, k",
        )
        .bind(n as i64)
        .bind(spread as i64)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    }
}

/// Puts seeded leads in each attention state, straight in the tables: 11 a held reply, 12
/// an overdue SLA, 13 a message waiting, 14 parked, 15 taken over.
pub async fn seed_attention(database_url: &str) {
    let statements = [
        format!(
            "INSERT INTO held_replies (lead_phone, body, provider, answered_ids, state, created_at)
             VALUES ('{}', 'Held draft', 'anthropic', '', 'held', $1)",
            seeded(11)
        ),
        format!(
            "INSERT INTO slas (lead_phone, kind, started_at, breached_at, created_at, updated_at)
             VALUES ('{}', 'doc_review', $2, $1, $2, $1)",
            seeded(12)
        ),
        format!(
            "INSERT INTO messages (lead_phone, direction, body, message_sid, state, created_at, updated_at)
             VALUES ('{}', 'inbound', 'hello?', 'SMwaiting', 'pending', $1, $1)",
            seeded(13)
        ),
        format!(
            "INSERT INTO lead_parks (lead_phone, reason, parked_at, expires_at)
             VALUES ('{}', 'reply_cap_hour', $1, $2)",
            seeded(14)
        ),
        format!(
            "INSERT INTO lead_takeovers (lead_phone, operator, via, taken_at, last_activity_at)
             VALUES ('{}', 'ana', 'ops', $1, $1)",
            seeded(15)
        ),
    ];
    let now = chrono::Utc::now() - chrono::Duration::hours(2);
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let days_ago = chrono::Utc::now() - chrono::Duration::days(3);
    if database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        for s in &statements {
            let q = sqlx::query(sqlx::AssertSqlSafe(s.clone())).bind(now);
            let q = match (s.contains("lead_parks"), s.contains("$2")) {
                (true, _) => q.bind(later),
                (false, true) => q.bind(days_ago),
                (false, false) => q,
            };
            q.execute(&pool).await.unwrap();
        }
    } else {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        for s in &statements {
            let q = sqlx::query(sqlx::AssertSqlSafe(s.clone())).bind(now);
            let q = match (s.contains("lead_parks"), s.contains("$2")) {
                (true, _) => q.bind(later),
                (false, true) => q.bind(days_ago),
                (false, false) => q,
            };
            q.execute(&pool).await.unwrap();
        }
    }
}
