//! The webhook's write with group commit: every inbound message a process accepts goes
//! through one writer task, which writes whatever has queued up since its last commit —
//! up to [`MAX_BATCH`] messages — in one transaction, then answers each caller.
//!
//! Owns: the batch's SQL (lead rows, message rows keyed by `MessageSid`, opt-out and
//! opt-in with their consent-ledger events, followup cancels), the per-item answer
//! ([`Accepted`]) and the fallback that writes the items of a failed batch one by one, so a
//! bad item fails only itself.
//! Must not: answer a caller before its row is committed (the webhook's 200 means
//! "durable"), wait for company when the writer is idle (a lone webhook is written at once:
//! a batch is what queued while the previous commit ran), or decide what a message means
//! (the webhook classifies it; this writes what it was told).
//!
//! Why: SQLite has one write lock. With one transaction per webhook, each of ~5 statements
//! a hand-off to sqlx's SQLite worker thread, the pool's connections took turns on that
//! lock and losers slept in SQLite's busy handler; a batch pays the statements and the
//! commit once for all its messages. PostgreSQL takes the same path: it has real
//! concurrency, but a commit is a WAL flush, and one flush for a batch is not slower than
//! one per webhook (docs/webhook-and-group-commit.md, "The webhook's write").

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use actors::ports::StoreError;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use super::consent::{self, ConsentMethod};
use super::{Accepted, InboundKind, Pool, in_list, now, store_err};

/// The most messages one transaction writes. Bounds a statement's parameters (5 per
/// message in each of the message and consent inserts, far below either engine's limit) and the time the write lock is held.
pub(super) const MAX_BATCH: usize = 128;

/// Requests that may wait for the writer. A webhook beyond it waits to enqueue — the HTTP
/// connections bound it long before, so this is a backstop, not a policy.
const QUEUE_DEPTH: usize = 4 * MAX_BATCH;

/// Batches up to this size keep their statements in the connection's prepared-statement
/// cache; larger ones are prepared each time, so 128 batch sizes cannot crowd the cache
/// the other queries on that connection rely on.
const CACHED_UP_TO: usize = 8;

/// One webhook's message, owned so it can cross to the writer task.
#[derive(Clone, Debug)]
pub(super) struct InboundItem {
    pub sid: String,
    pub from: String,
    pub body: String,
    pub kind: InboundKind,
    pub synthetic: bool,
}

struct Request {
    item: InboundItem,
    answer: oneshot::Sender<Result<Accepted, StoreError>>,
}

/// The handle every clone of a store shares. The writer task is started by the first
/// accept, on that caller's runtime (a store is built before, and may outlive, the runtime
/// of any one test or command).
pub(super) struct InboundWriter {
    pool: Pool,
    queue: OnceLock<mpsc::Sender<Request>>,
}

impl InboundWriter {
    pub(super) fn new(pool: Pool) -> Self {
        Self {
            pool,
            queue: OnceLock::new(),
        }
    }

    /// Writes `item` in the next batch and answers once that batch is committed.
    pub(super) async fn accept(&self, item: InboundItem) -> Result<Accepted, StoreError> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            tokio::spawn(run_writer(self.pool.clone(), rx));
            tx
        });
        let (answer, answered) = oneshot::channel();
        match queue.send(Request { item, answer }).await {
            Ok(()) => answered.await.map_err(|_| {
                // The writer's runtime ended mid-batch. Whether the row was committed is
                // unknown: 503, and Twilio's retry finds it (a Duplicate) or writes it.
                StoreError::new("the inbound writer stopped before answering")
            })?,
            // The runtime that ran the writer is gone (a store kept past it): write here.
            Err(mpsc::error::SendError(request)) => {
                let mut results = write_all(&self.pool, std::slice::from_ref(&request.item)).await;
                results.pop().expect("one result per item")
            }
        }
    }
}

async fn run_writer(pool: Pool, mut queue: mpsc::Receiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // `recv_many` waits only while the queue is empty, then takes everything there: the
    // batch grows with the load and is a single message when the service is quiet.
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (items, answers): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|r| (r.item, r.answer)).unzip();
        let results = write_all(&pool, &items).await;
        metrics::histogram!("lead_agent_inbound_batch_size").record(items.len() as f64);
        for (answer, result) in answers.into_iter().zip(results) {
            // A caller that went away (the client hung up) is no loss: its row is
            // committed, and a retry of it is answered as a Duplicate.
            let _ = answer.send(result);
        }
    }
}

/// Why a batch failed, and whether writing its items one by one could help.
struct BatchError {
    error: StoreError,
    /// The database refused a statement of the batch (a constraint, a trigger, a deadlock
    /// between two processes' batches): one item may be the cause, so each is retried on
    /// its own. Otherwise (no connection, the pool timed out, the write lock never came)
    /// every item would fail the same way, and retrying each would only make the 503 late.
    retry_each: bool,
}

/// Failed before the batch's first statement: nothing in it was to blame.
fn at_begin(context: &'static str) -> impl FnOnce(sqlx::Error) -> BatchError {
    move |e| BatchError {
        error: store_err(context)(e),
        retry_each: false,
    }
}

/// Failed on one of the batch's statements.
fn in_batch(context: &'static str) -> impl FnOnce(sqlx::Error) -> BatchError {
    move |e| BatchError {
        retry_each: matches!(e, sqlx::Error::Database(_)),
        error: store_err(context)(e),
    }
}

/// One result per item, in order. A batch that the database refuses is written again item
/// by item, so the one that broke it fails alone and the others are stored and answered.
pub(super) async fn write_all(
    pool: &Pool,
    items: &[InboundItem],
) -> Vec<Result<Accepted, StoreError>> {
    match write_batch(pool, items).await {
        Ok(accepted) => accepted.into_iter().map(Ok).collect(),
        Err(BatchError {
            error,
            retry_each: true,
        }) if items.len() > 1 => {
            tracing::warn!(%error, items = items.len(), "inbound batch refused; writing its messages one by one");
            let mut results = Vec::with_capacity(items.len());
            for item in items {
                results.push(
                    write_batch(pool, std::slice::from_ref(item))
                        .await
                        .map(|mut one| one.remove(0))
                        .map_err(|e| e.error),
                );
            }
            results
        }
        Err(BatchError { error, .. }) => items.iter().map(|_| Err(error.clone())).collect(),
    }
}

/// `(…), (…), …`: `rows` rows for a multi-row VALUES, each of `per_row` fresh numbered
/// placeholders from `$first` on, laid out by `row` (which adds the batch-wide `$1` and
/// literals).
fn values(first: usize, rows: usize, per_row: usize, row: impl Fn(&[String]) -> String) -> String {
    (0..rows)
        .map(|r| {
            let params: Vec<String> = (0..per_row)
                .map(|i| format!("${}", first + r * per_row + i))
                .collect();
            format!("({})", row(&params))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The batch in one transaction. Order inside the batch is arrival order: message ids
/// ascend in it, and a lead's last opt-out/opt-in keyword decides its final state, as if
/// each had been its own transaction in that order.
async fn write_batch(pool: &Pool, items: &[InboundItem]) -> Result<Vec<Accepted>, BatchError> {
    // SQLite: take the write lock at BEGIN, so a wait for it happens before any work and
    // never as a failed upgrade of a read transaction. PostgreSQL: an ordinary BEGIN.
    let begin = match pool {
        Pool::Sqlite(_) => "BEGIN IMMEDIATE",
        Pool::Postgres(_) => "BEGIN",
    };
    let cached = items.len() <= CACHED_UP_TO;
    // Lead phones sorted: two processes' batches on PostgreSQL lock the same rows in the
    // same order, so they queue instead of deadlocking.
    let mut phones: Vec<&str> = items.iter().map(|i| i.from.as_str()).collect();
    phones.sort_unstable();
    phones.dedup();

    with_pool!(@match pool, pool => {
        let at = now();
        let mut tx = pool.begin_with(begin).await.map_err(at_begin("begin inbound batch"))?;

        // RETURNING names the leads this batch created: their first message is the
        // ledger's `first_inbound`.
        let sql = format!(
            "INSERT INTO leads (phone, created_at) VALUES {} ON CONFLICT (phone) DO NOTHING RETURNING phone",
            values(2, phones.len(), 1, |p| format!("{}, $1", p[0])),
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(cached).bind(at);
        for phone in &phones {
            q = q.bind(*phone);
        }
        let created: HashSet<String> = q
            .fetch_all(&mut *tx)
            .await
            .map_err(in_batch("insert leads"))?
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();

        // Synthetic (the watch's probes): rare, so real traffic pays nothing for it. Once
        // marked, a lead stays marked: the watch's number never becomes a real lead.
        let mut synthetic: Vec<&str> = items
            .iter()
            .filter(|i| i.synthetic)
            .map(|i| i.from.as_str())
            .collect();
        synthetic.sort_unstable();
        synthetic.dedup();
        if !synthetic.is_empty() {
            let sql = format!(
                "UPDATE leads SET synthetic = 1 WHERE synthetic = 0 AND phone IN ({})",
                in_list(1, synthetic.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(cached);
            for phone in &synthetic {
                q = q.bind(*phone);
            }
            q.execute(&mut *tx).await.map_err(in_batch("mark synthetic"))?;
        }

        let sql = format!(
            "INSERT INTO messages (lead_phone, direction, body, message_sid, state, detail, created_at, updated_at)
             VALUES {} ON CONFLICT (message_sid) DO NOTHING RETURNING message_sid",
            values(2, items.len(), 5, |p| format!(
                "{}, 'inbound', {}, {}, {}, {}, $1, $1",
                p[0], p[1], p[2], p[3], p[4]
            )),
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(cached).bind(at);
        for item in items {
            let (state, detail) = state_of(item.kind);
            q = q
                .bind(item.from.as_str())
                .bind(item.body.as_str())
                .bind(item.sid.as_str())
                .bind(state)
                .bind(detail);
        }
        let stored: HashSet<String> = q
            .fetch_all(&mut *tx)
            .await
            .map_err(in_batch("insert inbound"))?
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();

        // The first item with a stored sid is the new one; any later item with the same sid
        // (a retry that landed in the same batch) and any sid stored before are duplicates.
        let mut taken: HashSet<&str> = HashSet::new();
        let is_new: Vec<bool> = items
            .iter()
            .map(|i| stored.contains(&i.sid) && taken.insert(i.sid.as_str()))
            .collect();

        let mut duplicate_sids: Vec<&str> = items
            .iter()
            .zip(&is_new)
            .filter(|(_, new)| !**new)
            .map(|(i, _)| i.sid.as_str())
            .collect();
        duplicate_sids.sort_unstable();
        duplicate_sids.dedup();
        let mut duplicate_state: HashMap<String, String> = HashMap::new();
        if !duplicate_sids.is_empty() {
            let sql = format!(
                "SELECT message_sid, state FROM messages WHERE message_sid IN ({})",
                in_list(1, duplicate_sids.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(cached);
            for sid in &duplicate_sids {
                q = q.bind(*sid);
            }
            for row in q.fetch_all(&mut *tx).await.map_err(in_batch("read duplicates"))? {
                duplicate_state.insert(row.get(0), row.get(1));
            }
        }

        // Each lead's last opt keyword in the batch is its final state.
        let mut opt: HashMap<&str, bool> = HashMap::new();
        let mut cancel: Vec<&str> = Vec::new();
        // The ledger's events, in arrival order; only new messages (a retry adds none).
        let mut consent: Vec<(&InboundItem, ConsentMethod)> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for (item, _) in items.iter().zip(&is_new).filter(|(_, new)| **new) {
            let first = seen.insert(item.from.as_str()) && created.contains(&item.from);
            if let Some(method) = consent::inbound_event(item.kind, first) {
                consent.push((item, method));
            }
            match item.kind {
                InboundKind::OptOut | InboundKind::Revocation => {
                    opt.insert(item.from.as_str(), true);
                }
                InboundKind::OptIn => {
                    opt.insert(item.from.as_str(), false);
                }
                InboundKind::Conversation | InboundKind::CarrierHelp => {}
            }
            // The lead wrote back (or opted out): the pending followup is cancelled. The
            // reply to this message arms a new one.
            if item.kind != InboundKind::CarrierHelp {
                cancel.push(item.from.as_str());
            }
        }
        for opted_out in [true, false] {
            let mut leads: Vec<&str> = opt
                .iter()
                .filter(|(_, out)| **out == opted_out)
                .map(|(lead, _)| *lead)
                .collect();
            if leads.is_empty() {
                continue;
            }
            leads.sort_unstable();
            let mut q = if opted_out {
                let sql = format!(
                    "UPDATE leads SET opted_out = 1, opted_out_at = $1 WHERE phone IN ({})",
                    in_list(2, leads.len())
                );
                sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(cached).bind(at)
            } else {
                let sql = format!(
                    "UPDATE leads SET opted_out = 0, opted_out_at = NULL WHERE phone IN ({})",
                    in_list(1, leads.len())
                );
                sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(cached)
            };
            for lead in &leads {
                q = q.bind(*lead);
            }
            q.execute(&mut *tx).await.map_err(in_batch("opt out or in"))?;
        }
        if !consent.is_empty() {
            let sql = format!(
                "INSERT INTO consent_events (lead_phone, at, method, grants, message_sid, words)
                 VALUES {} ON CONFLICT (message_sid) DO NOTHING",
                values(2, consent.len(), 5, |p| format!(
                    "{}, $1, {}, {}, {}, {}",
                    p[0], p[1], p[2], p[3], p[4]
                )),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(cached).bind(at);
            for (item, method) in &consent {
                q = q
                    .bind(item.from.as_str())
                    .bind(method.as_str())
                    .bind(i64::from(consent::grants(*method)))
                    .bind(item.sid.as_str())
                    .bind(item.body.as_str());
            }
            q.execute(&mut *tx).await.map_err(in_batch("record consent"))?;
        }
        cancel.sort_unstable();
        cancel.dedup();
        if !cancel.is_empty() {
            let sql = format!(
                "DELETE FROM followups WHERE lead_phone IN ({})",
                in_list(1, cancel.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(cached);
            for lead in &cancel {
                q = q.bind(*lead);
            }
            q.execute(&mut *tx).await.map_err(in_batch("cancel followups"))?;
        }

        tx.commit().await.map_err(in_batch("commit inbound batch"))?;

        Ok(items
            .iter()
            .zip(is_new)
            .map(|(item, new)| {
                if new {
                    Accepted::New {
                        needs_turn: item.kind == InboundKind::Conversation,
                    }
                } else {
                    Accepted::Duplicate {
                        still_pending: duplicate_state.get(&item.sid).map(String::as_str)
                            == Some("pending"),
                    }
                }
            })
            .collect())
    })
}

fn state_of(kind: InboundKind) -> (&'static str, Option<&'static str>) {
    match kind {
        InboundKind::Conversation => ("pending", None),
        InboundKind::OptOut => ("no_reply", Some("opt-out keyword")),
        InboundKind::Revocation => ("no_reply", Some("consent revoked")),
        InboundKind::OptIn => ("no_reply", Some("opt-in keyword")),
        InboundKind::CarrierHelp => ("no_reply", Some("carrier help keyword")),
    }
}

#[cfg(test)]
mod tests {
    use actors::ports::{LeadId, Store};

    use super::*;
    use crate::store::{NewInbound, SqlStore, fresh_test_database_url};

    async fn store() -> (SqlStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_test_database_url(dir.path()).await;
        (SqlStore::connect(&url).await.unwrap(), dir)
    }

    fn item(sid: &str, from: &str, body: &str, kind: InboundKind) -> InboundItem {
        InboundItem {
            sid: sid.into(),
            from: from.into(),
            body: body.into(),
            kind,
            synthetic: false,
        }
    }

    async fn count(s: &SqlStore, sql: &'static str, bind: &str) -> i64 {
        with_pool!(s, pool => {
            sqlx::query_scalar::<_, i64>(sql).bind(bind).fetch_one(pool).await.unwrap()
        })
    }

    async fn accept_concurrently(s: &SqlStore, messages: Vec<(String, String)>) -> Vec<Accepted> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (sid, from)) in messages.into_iter().enumerate() {
            let s = s.clone();
            tasks.spawn(async move {
                let lead = LeadId::new(&from);
                let r = s
                    .accept_inbound(
                        NewInbound {
                            message_sid: &sid,
                            from: &lead,
                            body: "Is the 2BR available?",
                            synthetic: false,
                        },
                        InboundKind::Conversation,
                    )
                    .await
                    .unwrap();
                (i, r)
            });
        }
        let mut results = tasks.join_all().await;
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_leads_accepted_at_once_are_all_stored_and_each_new() {
        let (s, _d) = store().await;
        let messages: Vec<(String, String)> = (0..300)
            .map(|i| (format!("SM{i:032}"), format!("+1312555{i:04}")))
            .collect();
        let results = accept_concurrently(&s, messages).await;
        assert!(
            results
                .iter()
                .all(|r| *r == Accepted::New { needs_turn: true }),
            "{results:?}"
        );
        let leads = s.leads_with_pending_work().await.unwrap();
        assert_eq!(leads.len(), 300);
        for i in [0, 150, 299] {
            let lead = LeadId::new(format!("+1312555{i:04}"));
            let conv = s.conversation(&lead, 10).await.unwrap();
            assert_eq!(conv.len(), 1);
            assert_eq!(conv[0].message_sid.as_deref(), Some(&*format!("SM{i:032}")));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_message_sid_accepted_many_times_at_once_is_new_exactly_once() {
        let (s, _d) = store().await;
        let sid = "SM0123456789abcdef0123456789abcdef".to_string();
        let lead = "+13125550100".to_string();
        let results = accept_concurrently(&s, vec![(sid.clone(), lead.clone()); 50]).await;
        let new = results
            .iter()
            .filter(|r| **r == Accepted::New { needs_turn: true })
            .count();
        let pending_duplicates = results
            .iter()
            .filter(|r| {
                **r == Accepted::Duplicate {
                    still_pending: true,
                }
            })
            .count();
        assert_eq!((new, pending_duplicates), (1, 49), "{results:?}");
        assert_eq!(
            count(
                &s,
                "SELECT COUNT(*) FROM messages WHERE message_sid = $1",
                &sid
            )
            .await,
            1
        );
    }

    #[tokio::test]
    async fn a_batch_is_written_in_arrival_order_as_separate_transactions_would_be() {
        let (s, _d) = store().await;
        let lead = "+13125550100";
        let other = "+13125550199";
        // A followup armed for the lead before: the batch's first message cancels it.
        with_pool!(s, pool => {
            sqlx::query("INSERT INTO leads (phone, created_at) VALUES ($1, $2)")
                .bind(lead)
                .bind(now())
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO followups (lead_phone, due_at, updated_at) VALUES ($1, $2, $2)")
                .bind(lead)
                .bind(now())
                .execute(pool)
                .await
                .unwrap();
        });
        let results = write_all(
            &s.pool,
            &[
                item("SM1", lead, "Hi", InboundKind::Conversation),
                item("SM2", lead, "STOP", InboundKind::OptOut),
                item("SM3", other, "HELP", InboundKind::CarrierHelp),
                item("SM4", lead, "one more thing", InboundKind::Conversation),
                // A retry of SM1 inside the same batch, with the same text.
                item("SM1", lead, "Hi", InboundKind::Conversation),
                item("SM5", other, "START", InboundKind::OptIn),
                item("SM6", other, "STOP", InboundKind::OptOut),
            ],
        )
        .await;
        let results: Vec<Accepted> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            results,
            vec![
                Accepted::New { needs_turn: true },
                Accepted::New { needs_turn: false },
                Accepted::New { needs_turn: false },
                Accepted::New { needs_turn: true },
                Accepted::Duplicate {
                    still_pending: true
                },
                Accepted::New { needs_turn: false },
                Accepted::New { needs_turn: false },
            ]
        );
        let conv = s.conversation(&LeadId::new(lead), 10).await.unwrap();
        let bodies: Vec<(&str, &str)> = conv
            .iter()
            .map(|m| (m.body.as_str(), m.state.as_str()))
            .collect();
        assert_eq!(
            bodies,
            vec![
                ("Hi", "pending"),
                ("STOP", "no_reply"),
                ("one more thing", "pending")
            ]
        );
        assert!(s.is_opted_out(&LeadId::new(lead)).await.unwrap());
        // START then STOP in one batch: the last word stands.
        assert!(s.is_opted_out(&LeadId::new(other)).await.unwrap());
        // The ledger, newest first: the lead existed before the batch (no first_inbound);
        // `other` was created by its HELP; the retry of SM1 added nothing.
        let ledger = |phone: &str| {
            let s = s.clone();
            let lead = LeadId::new(phone);
            async move {
                s.consent_events(&lead)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.method.as_str(), e.grants, e.message_sid.unwrap()))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            ledger(lead).await,
            vec![("stop_keyword", false, "SM2".to_string())]
        );
        assert_eq!(
            ledger(other).await,
            vec![
                ("stop_keyword", false, "SM6".to_string()),
                ("start_keyword", true, "SM5".to_string()),
                ("first_inbound", true, "SM3".to_string()),
            ]
        );
        assert_eq!(
            count(
                &s,
                "SELECT COUNT(*) FROM followups WHERE lead_phone = $1",
                lead
            )
            .await,
            0
        );

        // STOP then START: opted back in. A duplicate of an answered-for message is not
        // pending.
        let results = write_all(
            &s.pool,
            &[
                item("SM7", other, "STOP", InboundKind::OptOut),
                item("SM8", other, "START", InboundKind::OptIn),
                item("SM3", other, "HELP", InboundKind::CarrierHelp),
            ],
        )
        .await;
        assert_eq!(
            results.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            vec![
                Accepted::New { needs_turn: false },
                Accepted::New { needs_turn: false },
                Accepted::Duplicate {
                    still_pending: false
                },
            ]
        );
        assert!(!s.is_opted_out(&LeadId::new(other)).await.unwrap());
    }

    #[tokio::test]
    async fn a_message_that_breaks_its_batch_fails_alone() {
        let (s, _d) = store().await;
        // A trigger that rejects one body: the database itself refuses that row.
        match &s.pool {
            Pool::Sqlite(pool) => {
                sqlx::query(
                    "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.body = 'poison'
                     BEGIN SELECT RAISE(ABORT, 'poisoned message'); END",
                )
                .execute(pool)
                .await
                .unwrap();
            }
            Pool::Postgres(pool) => {
                sqlx::query(
                    "CREATE FUNCTION poison() RETURNS trigger AS $$
                     BEGIN
                       IF NEW.body = 'poison' THEN RAISE EXCEPTION 'poisoned message'; END IF;
                       RETURN NEW;
                     END $$ LANGUAGE plpgsql",
                )
                .execute(pool)
                .await
                .unwrap();
                sqlx::query(
                    "CREATE TRIGGER poison BEFORE INSERT ON messages
                     FOR EACH ROW EXECUTE FUNCTION poison()",
                )
                .execute(pool)
                .await
                .unwrap();
            }
        }
        let results = write_all(
            &s.pool,
            &[
                item("SM1", "+13125550101", "Hi", InboundKind::Conversation),
                item("SM2", "+13125550102", "poison", InboundKind::Conversation),
                item("SM3", "+13125550103", "STOP", InboundKind::OptOut),
            ],
        )
        .await;
        assert_eq!(
            results[0].as_ref().ok(),
            Some(&Accepted::New { needs_turn: true })
        );
        assert!(
            results[1]
                .as_ref()
                .is_err_and(|e| e.message().contains("poisoned message")),
            "{:?}",
            results[1]
        );
        assert_eq!(
            results[2].as_ref().ok(),
            Some(&Accepted::New { needs_turn: false })
        );
        for (sid, stored) in [("SM1", 1), ("SM2", 0), ("SM3", 1)] {
            assert_eq!(
                count(
                    &s,
                    "SELECT COUNT(*) FROM messages WHERE message_sid = $1",
                    sid
                )
                .await,
                stored,
                "{sid}"
            );
        }
        assert_eq!(
            count(
                &s,
                "SELECT COUNT(*) FROM leads WHERE phone = $1",
                "+13125550102"
            )
            .await,
            0,
            "a failed message stores nothing, not even its lead"
        );
        assert!(s.is_opted_out(&LeadId::new("+13125550103")).await.unwrap());
    }
}
