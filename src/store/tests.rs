//! Store tests against a real SQLite file in a temporary directory.

use actors::ports::{InDoubtLedger, LeadId, SendOutcome, Store};

use super::*;

/// SQLite, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set.
async fn store() -> (SqlStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_test_database_url(dir.path()).await;
    (SqlStore::connect(&url).await.unwrap(), dir)
}

fn inbound<'a>(sid: &'a str, from: &'a LeadId, body: &'a str) -> NewInbound<'a> {
    NewInbound {
        message_sid: sid,
        from,
        body,
        synthetic: false,
    }
}

/// The ids of `lead`'s messages waiting for a reply.
async fn pending_ids(s: &SqlStore, lead: &LeadId) -> Vec<i64> {
    let work = s.lead_work(lead).await.unwrap();
    work.pending.iter().map(|p| p.id).collect()
}

/// `lead` writes "Hi" (SM1) and its reply "Hello" is committed, not yet claimed: its id.
async fn answered_hi(s: &SqlStore, lead: &LeadId) -> i64 {
    s.accept_inbound(inbound("SM1", lead, "Hi"), InboundKind::Conversation)
        .await
        .unwrap();
    let ids = pending_ids(s, lead).await;
    s.commit_reply(lead, &ids, "Hello", "rules")
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_repeated_message_sid_stores_nothing_new() {
    let (s, _d) = store().await;
    let lead = LeadId::new("+13125550100");
    let first = s
        .accept_inbound(inbound("SM1", &lead, "Hi"), InboundKind::Conversation)
        .await
        .unwrap();
    assert_eq!(first, Accepted::New { needs_turn: true });
    let again = s
        .accept_inbound(inbound("SM1", &lead, "Hi"), InboundKind::Conversation)
        .await
        .unwrap();
    assert_eq!(
        again,
        Accepted::Duplicate {
            still_pending: true
        }
    );
    assert_eq!(s.conversation(&lead, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_alert_handed_to_the_spool_twice_is_spooled_once_with_its_nonce_and_raise_time() {
    let (s, _d) = store().await;
    let raised = chrono::DateTime::parse_from_rfc3339("2026-11-27T08:00:00.123Z")
        .unwrap()
        .with_timezone(&Utc);
    let alert = NewSpooledAlert {
        channel_id: "900",
        kind: "ERROR",
        payload: "{}",
        nonce: "lb-test-1",
        created_at: raised,
    };
    let id = s.spool_alert(alert).await.unwrap();
    assert!(id.is_some());
    assert_eq!(
        s.spool_alert(alert).await.unwrap(),
        None,
        "same nonce: stored once"
    );
    let other = s
        .spool_alert(NewSpooledAlert {
            nonce: "lb-test-2",
            ..alert
        })
        .await
        .unwrap();
    assert!(other > id, "a channel's order is the spool's");
    assert_eq!(s.spooled_count().await.unwrap(), 2);
    let first = s.next_spooled("900").await.unwrap().unwrap();
    assert_eq!(first.nonce.as_deref(), Some("lb-test-1"));
    assert_eq!(first.created_at, raised);
}

#[tokio::test]
async fn a_reply_is_committed_with_its_answers_and_sent_once() {
    let (s, _d) = store().await;
    let lead = LeadId::new("+13125550100");
    for (sid, body) in [("SM1", "Hi"), ("SM2", "2br?")] {
        s.accept_inbound(inbound(sid, &lead, body), InboundKind::Conversation)
            .await
            .unwrap();
    }
    let work = s.lead_work(&lead).await.unwrap();
    assert!(work.unsent.is_empty() && !work.opted_out);
    let ids: Vec<i64> = work.pending.iter().map(|p| p.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "in arrival order");
    assert_eq!(work.pending[0].body, "Hi");
    let reply = s
        .commit_reply(&lead, &ids, "Hello!", "rules")
        .await
        .unwrap()
        .unwrap();
    // A second commit for the same messages writes nothing.
    assert_eq!(
        s.commit_reply(&lead, &ids, "again", "rules").await.unwrap(),
        None
    );
    let work = s.lead_work(&lead).await.unwrap();
    assert!(work.pending.is_empty());
    assert_eq!(work.unsent.len(), 1);
    assert_eq!(
        (work.unsent[0].id, &*work.unsent[0].body),
        (reply, "Hello!")
    );
    assert_eq!(s.claim_send(reply).await.unwrap(), Claim::Send);
    assert_eq!(
        s.claim_send(reply).await.unwrap(),
        Claim::NotQueued,
        "a claimed reply cannot be claimed twice"
    );
    assert!(
        s.lead_work(&lead).await.unwrap().is_empty(),
        "a claimed reply is no longer unsent"
    );
    s.record_send(
        reply,
        &SendOutcome::Sent {
            provider_sid: "SMx".into(),
        },
    )
    .await
    .unwrap();
    let conv = s.conversation(&lead, 10).await.unwrap();
    assert_eq!(conv.len(), 3);
    assert_eq!(conv[2].state, "sent");
    assert_eq!(conv[0].reply_id, Some(reply));
    assert_eq!(
        s.load_history(&lead, 10).await.unwrap().len(),
        3,
        "answered messages and the sent reply are history"
    );
}

#[tokio::test]
async fn opt_out_and_opt_in_flip_the_lead_and_need_no_turn() {
    let (s, _d) = store().await;
    let lead = LeadId::new("+13125550100");
    let r = s
        .accept_inbound(inbound("SM1", &lead, "STOP"), InboundKind::OptOut)
        .await
        .unwrap();
    assert_eq!(r, Accepted::New { needs_turn: false });
    assert!(s.is_opted_out(&lead).await.unwrap());
    s.accept_inbound(inbound("SM2", &lead, "START"), InboundKind::OptIn)
        .await
        .unwrap();
    assert!(!s.is_opted_out(&lead).await.unwrap());
}

#[tokio::test]
async fn an_interrupted_send_becomes_in_doubt_and_is_not_resent() {
    let (s, _d) = store().await;
    let lead = LeadId::new("+13125550100");
    let reply = answered_hi(&s, &lead).await;
    assert_eq!(s.claim_send(reply).await.unwrap(), Claim::Send);
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    assert!(
        s.flag_stale_sends(an_hour_ago).await.unwrap().is_empty(),
        "a fresh claim may belong to a live sender"
    );
    let flagged = s.flag_stale_sends(chrono::Utc::now()).await.unwrap();
    assert_eq!(flagged.len(), 1);
    assert_eq!((flagged[0].id, &flagged[0].lead), (reply, &lead));
    assert_eq!(s.in_doubt_replies().await.unwrap()[0].body, "Hello");
    assert!(s.lead_work(&lead).await.unwrap().unsent.is_empty());
    assert!(s.leads_with_pending_work().await.unwrap().is_empty());
}

#[tokio::test]
async fn history_is_read_newest_first_within_the_limit() {
    let (s, _d) = store().await;
    let lead = LeadId::new("+13125550100");
    let lines: Vec<ChatLine> = (0..10_000u32)
        .map(|i| ChatLine {
            role: if i.is_multiple_of(2) {
                Role::Lead
            } else {
                Role::Agent
            },
            text: format!("line {i}"),
        })
        .collect();
    s.import_history(&lead, &lines).await.unwrap();
    let h = s.load_history(&lead, 40).await.unwrap();
    assert_eq!(h.len(), 40);
    assert_eq!(h.first().unwrap().text, "line 9960");
    assert_eq!(h.last().unwrap().text, "line 9999");
}

#[tokio::test]
async fn ops_views_read_from_the_replica_when_one_is_configured() {
    // Two separate databases stand in for a primary and a replica that lags behind it.
    let dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let primary_url = fresh_test_database_url(dir.path()).await;
    let replica_url = fresh_test_database_url(replica_dir.path()).await;
    let replica = SqlStore::connect(&replica_url).await.unwrap();
    let lead = LeadId::new("+13125550100");
    replica
        .accept_inbound(
            inbound("SM1", &lead, "seen on the replica"),
            InboundKind::Conversation,
        )
        .await
        .unwrap();

    let store = SqlStore::connect_with_reader(&primary_url, Some(&replica_url))
        .await
        .unwrap();
    store
        .accept_inbound(
            inbound("SM2", &lead, "written to the primary"),
            InboundKind::Conversation,
        )
        .await
        .unwrap();
    let view = store.conversation(&lead, 10).await.unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].body, "seen on the replica");
    // The actors' reads always go to the primary.
    let pending = store.lead_work(&lead).await.unwrap().pending;
    assert_eq!(pending[0].body, "written to the primary");
}

/// Always PostgreSQL: the lock only means something where several processes share a store.
async fn two_postgres_stores() -> (SqlStore, SqlStore) {
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let url = fresh_postgres_database(&admin).await;
    (
        SqlStore::connect(&url).await.unwrap(),
        SqlStore::connect(&url).await.unwrap(),
    )
}

#[tokio::test]
async fn a_lead_lock_excludes_other_processes_until_released() {
    let (a, b) = two_postgres_stores().await;
    let lead = LeadId::new("+13125550100");
    let other = LeadId::new("+13125550199");
    let held = a.try_lock_lead(&lead).await.unwrap().expect("free");
    assert!(b.try_lock_lead(&lead).await.unwrap().is_none(), "held by a");
    assert!(
        a.try_lock_lead(&lead).await.unwrap().is_none(),
        "not re-entrant across turns"
    );
    let o = b
        .try_lock_lead(&other)
        .await
        .unwrap()
        .expect("other leads are free");
    held.release().await;
    let again = b
        .try_lock_lead(&lead)
        .await
        .unwrap()
        .expect("free after release");
    again.release().await;
    o.release().await;
}

#[tokio::test]
async fn a_lead_lock_dies_with_its_holder() {
    let (a, b) = two_postgres_stores().await;
    let lead = LeadId::new("+13125550100");
    let held = a.try_lock_lead(&lead).await.unwrap().expect("free");
    // The holder's turn panics or is killed: the lock is dropped, never released.
    drop(held);
    let mut freed = None;
    for _ in 0..100 {
        if let Some(l) = b.try_lock_lead(&lead).await.unwrap() {
            freed = Some(l);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    freed
        .expect("the session closed and the lock went with it")
        .release()
        .await;
}

#[tokio::test]
async fn work_left_undone_past_the_cutoff_is_found_for_the_sweep() {
    let (s, _d) = store().await;
    let lead = LeadId::new("+13125550100");
    s.accept_inbound(inbound("SM1", &lead, "Hi"), InboundKind::Conversation)
        .await
        .unwrap();
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    assert!(
        s.leads_with_stale_work(an_hour_ago)
            .await
            .unwrap()
            .is_empty()
    );
    let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(
        s.leads_with_stale_work(soon).await.unwrap(),
        vec![lead.clone()]
    );
    let ids = pending_ids(&s, &lead).await;
    s.commit_reply(&lead, &ids, "Hello", "rules").await.unwrap();
    s.record_send(
        s.lead_work(&lead).await.unwrap().unsent[0].id,
        &SendOutcome::Sent {
            provider_sid: "SMx".into(),
        },
    )
    .await
    .unwrap();
    assert!(
        s.leads_with_stale_work(soon).await.unwrap().is_empty(),
        "done work is not stale"
    );
}

#[tokio::test]
async fn a_claim_on_a_reply_to_a_lead_who_opted_out_suppresses_it_instead() {
    let (s, _d) = store().await;
    let lead = LeadId::new("+13125550100");
    let reply = answered_hi(&s, &lead).await;
    // The STOP lands between the commit and the claim.
    s.accept_inbound(inbound("SM2", &lead, "STOP"), InboundKind::OptOut)
        .await
        .unwrap();
    let work = s.lead_work(&lead).await.unwrap();
    assert!(work.opted_out, "the turn's read sees the opt-out");
    assert_eq!(work.unsent.len(), 1);
    assert_eq!(s.claim_send(reply).await.unwrap(), Claim::Suppressed);
    assert_eq!(
        s.claim_send(reply).await.unwrap(),
        Claim::NotQueued,
        "a suppressed reply is never claimed"
    );
    let conv = s.conversation(&lead, 10).await.unwrap();
    let out = conv.iter().find(|m| m.id == reply).unwrap();
    assert_eq!(out.state, "suppressed");
    assert!(s.lead_work(&lead).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_turn_read_on_sqlite_goes_through_the_open_messages_index() {
    let (s, _d) = store().await;
    let Pool::Sqlite(pool) = &s.pool else {
        return; // PostgreSQL infers the partial index from `state = …` by itself.
    };
    let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {LEAD_WORK_SQL}"
    )))
    .bind("+13125550100")
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(3))
    .collect();
    assert!(
        plan.iter().any(|l| l.contains("messages_open")),
        "not the whole history: {plan:?}"
    );
}

#[test]
fn a_driver_error_is_kept_as_the_source_and_said_in_the_message() {
    let err = store_err("load lead work")(sqlx::Error::RowNotFound);
    assert!(err.message().starts_with("load lead work: "), "{err}");
    assert!(err.to_string().starts_with("store error: load lead work: "));
    let source = std::error::Error::source(&err).expect("the driver's error is kept");
    assert!(
        matches!(
            source.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::RowNotFound)
        ),
        "{source:?}"
    );
    // A clone (one failed group commit answers every webhook of its group) keeps it too.
    assert!(std::error::Error::source(&err.clone()).is_some());
    assert!(std::error::Error::source(&StoreError::new("found by the store")).is_none());
}

#[tokio::test]
async fn a_gmail_message_is_claimed_by_one_run_and_a_settled_one_by_none() {
    let (s, _dir) = store().await;
    let now = Utc::now();
    let until = now + chrono::Duration::minutes(10);
    assert!(s.claim_doc_intake("m1", now, until).await.unwrap());
    assert!(
        !s.claim_doc_intake("m1", now, until).await.unwrap(),
        "an overlapping run does not take it"
    );
    // A claim whose run died is taken again once it lapses.
    assert!(s.claim_doc_intake("m1", until, until).await.unwrap());
    let lead = LeadId::new("+13125550186");
    s.finish_doc_intake(
        "m1",
        1,
        &IntakeOutcome::Processed {
            lead: lead.clone(),
            files: "a.pdf\nb.jpg".into(),
        },
        now,
    )
    .await
    .unwrap();
    let later = now + chrono::Duration::days(1);
    assert!(
        !s.claim_doc_intake("m1", later, later).await.unwrap(),
        "settled"
    );
    let rows = s
        .doc_intake_since(now - chrono::Duration::days(8))
        .await
        .unwrap();
    let row = &rows["m1"];
    assert_eq!(row.state, "processed");
    assert_eq!(row.lead.as_deref(), Some("+13125550186"));
    assert_eq!(row.files.as_deref(), Some("a.pdf\nb.jpg"));
    assert!(row.is_resting(later));

    // A retry rests until its time, then is taken.
    assert!(s.claim_doc_intake("m2", now, until).await.unwrap());
    let at = now + chrono::Duration::seconds(30);
    s.finish_doc_intake(
        "m2",
        1,
        &IntakeOutcome::Retry {
            at,
            detail: "503".into(),
        },
        now,
    )
    .await
    .unwrap();
    let rows = s
        .doc_intake_since(now - chrono::Duration::days(8))
        .await
        .unwrap();
    assert!(rows["m2"].is_resting(now));
    assert!(!rows["m2"].is_resting(at));
    assert!(!s.claim_doc_intake("m2", now, until).await.unwrap());
    assert!(s.claim_doc_intake("m2", at, until).await.unwrap());

    // Known leads: a real lead who wrote, not a stranger, not a synthetic probe.
    s.accept_inbound(inbound("SM1", &lead, "Hi"), InboundKind::Conversation)
        .await
        .unwrap();
    let probe = LeadId::new("+13125550999");
    s.accept_inbound(
        NewInbound {
            synthetic: true,
            ..inbound("SM2", &probe, "probe")
        },
        InboundKind::Conversation,
    )
    .await
    .unwrap();
    assert!(s.is_known_lead("+13125550186").await.unwrap());
    assert!(!s.is_known_lead("+13125550999").await.unwrap());
    assert!(!s.is_known_lead("+17735550100").await.unwrap());
}
