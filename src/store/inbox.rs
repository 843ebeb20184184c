//! The operator console's reads (`/ops`, `src/http/console/`): which leads need a person
//! now, the most recent conversations a page at a time, a search by phone or name, and the
//! rows those lists show.
//!
//! Owns: queries whose cost is the page, not the table, so the inbox stays fast with
//! 100,000 leads (BENCHMARKS.md "Console inbox"). The recent list is keyset-paged on each
//! lead's newest message id: the messages are walked newest first through the primary key
//! and a message is kept only when no newer one of its lead exists (a probe of the
//! `(lead_phone, id)` index), so page *n* reads about a page of rows, whatever *n* is. The
//! attention set reads only partial indexes of what is open (pending messages, holds,
//! takeovers and parks in force, breached SLAs; migration 0103 adds the last two).
//! Must not: write anything, or decide what a state means for an operator (the console's
//! view does).

use actors::ports::{LeadId, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Pool, SqlStore, in_list, store_err};

/// Why a lead needs a person, in the order the inbox ranks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attention {
    /// A reply drafted and held for a person (HITL).
    Held,
    /// An open SLA past its deadline, as the sweep marked it.
    SlaOverdue,
    /// Messages stored and not answered yet (a turn may be running).
    Waiting,
    /// Parked (reply cap, restarts): its messages wait for the park's end or an unpark.
    Parked,
    /// An operator holds the conversation.
    TakenOver,
}

impl Attention {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "held" => Self::Held,
            "sla_overdue" => Self::SlaOverdue,
            "waiting" => Self::Waiting,
            "parked" => Self::Parked,
            "taken_over" => Self::TakenOver,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Held => "reply held",
            Self::SlaOverdue => "SLA overdue",
            Self::Waiting => "waiting for a reply",
            Self::Parked => "parked",
            Self::TakenOver => "taken over",
        }
    }
}

/// One lead as an inbox row shows it (its newest message, who it is, what the brain thinks
/// its stage is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxLead {
    pub lead: LeadId,
    pub name: Option<String>,
    pub synthetic: bool,
    pub dead: bool,
    /// `lead_context.stage`, read from its JSON document.
    pub stage: Option<String>,
    pub last: Option<LastMessage>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastMessage {
    pub id: i64,
    pub direction: String,
    pub body: String,
    pub state: String,
    pub at: DateTime<Utc>,
}

/// The `LIKE` pattern of a search: a phone fragment (digits, `+`, spaces, dashes, dots,
/// brackets) matches the number's digits anywhere; anything else matches the name, case
/// folded. `%`, `_` and `\` in the text are escaped.
pub fn search_pattern(q: &str) -> Option<(bool, String)> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let phoneish = q
        .chars()
        .all(|c| c.is_ascii_digit() || " +-.()".contains(c))
        && q.chars().any(|c| c.is_ascii_digit());
    if phoneish {
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        return Some((true, format!("%{digits}%")));
    }
    let mut escaped = String::with_capacity(q.len() + 2);
    escaped.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    Some((false, escaped))
}

impl SqlStore {
    /// Every lead needing a person as of `now`, with its reasons (at most `limit` leads,
    /// and whether there were more). Reads the partial indexes of what is open only. The
    /// pending messages' term repeats `messages_open`'s own `state IN (…)`: SQLite uses a
    /// partial index only when the query holds its WHERE term as written (`state =
    /// 'pending'` alone scans the table; PostgreSQL proves the implication either way).
    pub async fn inbox_attention(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<(Vec<(LeadId, Vec<Attention>)>, bool), StoreError> {
        let rows: Vec<(String, String)> = with_pool!(reader of self, pool => {
            sqlx::query_as(
                "SELECT DISTINCT lead_phone, why FROM (
                     SELECT lead_phone, 'waiting' AS why FROM messages
                         WHERE state IN ('pending', 'queued', 'sending') AND state = 'pending'
                     UNION ALL SELECT lead_phone, 'held' FROM held_replies WHERE state = 'held'
                     UNION ALL SELECT lead_phone, 'taken_over' FROM lead_takeovers
                         WHERE released_at IS NULL
                     UNION ALL SELECT lead_phone, 'parked' FROM lead_parks
                         WHERE unparked_at IS NULL AND expires_at > $1
                     UNION ALL SELECT lead_phone, 'sla_overdue' FROM slas
                         WHERE resolved_at IS NULL AND breached_at IS NOT NULL
                 ) AS open_work",
            )
            .bind(now)
            .fetch_all(pool)
            .await
            .map_err(store_err("inbox attention"))?
        });
        let mut by_lead: std::collections::BTreeMap<String, Vec<Attention>> = Default::default();
        for (lead, why) in rows {
            if let Some(a) = Attention::parse(&why) {
                by_lead.entry(lead).or_default().push(a);
            }
        }
        let mut leads: Vec<(LeadId, Vec<Attention>)> = by_lead
            .into_iter()
            .map(|(lead, mut why)| {
                why.sort();
                (LeadId(lead), why)
            })
            .collect();
        // The most urgent reason first; ties keep the phone order (stable across reloads).
        leads.sort_by_key(|(_, why)| why.first().copied());
        let more = leads.len() > limit;
        leads.truncate(limit);
        Ok((leads, more))
    }

    /// The next `limit` leads by newest message, strictly older than `before` (a message
    /// id; `None`: from the newest), synthetic leads left out. Returns `(lead, newest
    /// message id)`: the id of the last one is the next page's `before`.
    pub async fn inbox_recent(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(LeadId, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(reader of self, pool => {
            sqlx::query_as(
                "SELECT m.lead_phone, m.id FROM messages m JOIN leads l ON l.phone = m.lead_phone
                 WHERE m.id < $1 AND l.synthetic = 0
                   AND NOT EXISTS (SELECT 1 FROM messages n
                                   WHERE n.lead_phone = m.lead_phone AND n.id > m.id)
                 ORDER BY m.id DESC LIMIT $2",
            )
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit as i64)
            .fetch_all(pool)
            .await
            .map_err(store_err("inbox recent"))?
        });
        Ok(rows.into_iter().map(|(l, id)| (LeadId(l), id)).collect())
    }

    /// Leads matching `q` (see [`search_pattern`]) in phone order after `after`, at most
    /// `limit`. A scan of `leads` (a substring cannot use a b-tree), one row per lead.
    pub async fn inbox_search(
        &self,
        q: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LeadId>, StoreError> {
        let Some((phone, pattern)) = search_pattern(q) else {
            return Ok(Vec::new());
        };
        let sql = if phone {
            "SELECT phone FROM leads WHERE phone LIKE $1 AND phone > $2 ORDER BY phone LIMIT $3"
        } else {
            "SELECT phone FROM leads WHERE lower(name) LIKE $1 ESCAPE '\\' AND phone > $2
             ORDER BY phone LIMIT $3"
        };
        let rows: Vec<(String,)> = with_pool!(reader of self, pool => {
            sqlx::query_as(sql)
                .bind(pattern)
                .bind(after.unwrap_or(""))
                .bind(limit as i64)
                .fetch_all(pool)
                .await
                .map_err(store_err("inbox search"))?
        });
        Ok(rows.into_iter().map(|(l,)| LeadId(l)).collect())
    }

    /// The rows of `leads` (in no particular order; a lead the store lacks is absent): one
    /// query, each lead's newest message through the `(lead_phone, id)` index.
    pub async fn inbox_leads(&self, leads: &[LeadId]) -> Result<Vec<InboxLead>, StoreError> {
        if leads.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT l.phone, l.name, l.synthetic, l.dead_at IS NOT NULL AS dead, c.context,
                    m.id, m.direction, m.body, m.state, m.created_at
             FROM leads l
             LEFT JOIN lead_context c ON c.lead_phone = l.phone
             LEFT JOIN messages m ON m.id = (SELECT max(x.id) FROM messages x
                                             WHERE x.lead_phone = l.phone)
             WHERE l.phone IN ({})",
            in_list(1, leads.len())
        );
        with_pool!(reader of self, pool => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for lead in leads {
                query = query.bind(lead.as_str());
            }
            let rows = query.fetch_all(pool).await.map_err(store_err("inbox rows"))?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let context: Option<String> = r.get(4);
                    let stage = context
                        .and_then(|c| serde_json::from_str::<serde_json::Value>(&c).ok())
                        .and_then(|v| v.get("stage")?.as_str().map(str::to_string));
                    let id: Option<i64> = r.get(5);
                    InboxLead {
                        lead: LeadId(r.get(0)),
                        name: r.get(1),
                        synthetic: r.get::<i64, _>(2) != 0,
                        dead: r.get::<bool, _>(3),
                        stage,
                        last: id.map(|id| LastMessage {
                            id,
                            direction: r.get(6),
                            body: r.get(7),
                            state: r.get(8),
                            at: r.get(9),
                        }),
                    }
                })
                .collect())
        })
    }

    /// What changes when the console would show something new: the newest message id, how
    /// many messages are still open (pending, queued, sending) and the attention set. Two
    /// index reads and the attention query; the console's script compares it to the one its
    /// page was rendered with (`GET /ops/changes`).
    pub async fn console_stamp(&self, now: DateTime<Utc>) -> Result<String, StoreError> {
        let (newest, open): (Option<i64>, i64) = with_pool!(reader of self, pool => {
            sqlx::query_as(
                "SELECT (SELECT max(id) FROM messages),
                        (SELECT count(*) FROM messages
                          WHERE state IN ('pending', 'queued', 'sending'))",
            )
            .fetch_one(pool)
            .await
            .map_err(store_err("console stamp"))?
        });
        let (attention, _) = self.inbox_attention(now, usize::MAX).await?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&attention, &mut h);
        Ok(format!(
            "{}.{open}.{:x}",
            newest.unwrap_or(0),
            std::hash::Hasher::finish(&h)
        ))
    }
}
