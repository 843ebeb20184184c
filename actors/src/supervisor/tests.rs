//! Supervisor tests: a whole tree on in-memory ports and a manual clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::*;
use crate::alert_router::AlertHandle;
use crate::lead::LeadDeps;
use crate::llm_pool::{LlmPool, LlmPoolConfig};
use crate::park::ParkStore;
use crate::ports::{ChatModel, Clock, ManualClock};
use crate::testing::*;
use crate::window::WindowLimits;

pub(crate) struct TestTree {
    pub registry: LeadRegistry,
    pub store: Arc<MemStore>,
    pub sms: Arc<FakeSms>,
    pub model: Arc<FakeModel>,
    pub sink: Arc<RecordingAlertSink>,
    pub acker: TestAcker,
    pub clock: ManualClock,
}

pub(crate) fn config() -> SupervisorConfig {
    SupervisorConfig {
        restart_max: 2,
        restart_window: Duration::from_secs(60),
        idle_after: Duration::from_secs(900),
        memory_budget_bytes: 1 << 20,
        turn_budget: Duration::from_secs(90),
        sweep_every: None,
    }
}

pub(crate) async fn tree_with(
    model: FakeModel,
    config: SupervisorConfig,
    window: WindowLimits,
) -> TestTree {
    tree_built(model, config, window, false).await
}

/// A tree whose replies are held for a person (HITL) in the in-memory store.
pub(crate) async fn hitl_tree(model: FakeModel) -> TestTree {
    let window = WindowLimits {
        max_messages: 20,
        max_bytes: 4096,
    };
    tree_built(model, config(), window, true).await
}

/// The ports a tree runs on, in memory, and the deps built from them.
pub(crate) struct TestPorts {
    pub deps: Arc<LeadDeps>,
    pub store: Arc<MemStore>,
    pub sms: Arc<FakeSms>,
    pub model: Arc<FakeModel>,
    pub clock: ManualClock,
}

pub(crate) fn test_ports(
    model: FakeModel,
    window: WindowLimits,
    hitl: bool,
    alerts: AlertHandle,
) -> TestPorts {
    let model = Arc::new(model);
    let clock = ManualClock::new(Utc::now());
    let store = Arc::new(MemStore::default());
    let sms = Arc::new(FakeSms::default());
    let pool = LlmPool::new(
        vec![model.clone() as Arc<dyn ChatModel>],
        LlmPoolConfig {
            concurrency: 4,
            soft_timeout: Duration::from_secs(5),
            hard_timeout: Duration::from_secs(10),
        },
        alerts.clone(),
    );
    let deps = Arc::new(LeadDeps {
        store: store.clone(),
        parks: store.clone(),
        park_policy: crate::park::ParkPolicy {
            per_hour: 20,
            per_day: 60,
            park_for: Duration::from_secs(3600),
        },
        sms: sms.clone(),
        pool,
        alerts,
        clock: Arc::new(clock.clone()) as Arc<dyn Clock>,
        window,
        worker_id: "test".into(),
        sms_attempts: 3,
        responder: None,
        retry_delay: Duration::from_millis(10),
        holds: hitl.then(|| store.clone() as Arc<dyn crate::hitl::ReplyHolds>),
        guard_holds: Some(store.clone() as Arc<dyn crate::hitl::ReplyHolds>),
        accommodation: None,
        revocations: None,
    });
    TestPorts {
        deps,
        store,
        sms,
        model,
        clock,
    }
}

async fn tree_built(
    model: FakeModel,
    config: SupervisorConfig,
    window: WindowLimits,
    hitl: bool,
) -> TestTree {
    let (alerts, sink) = test_alerts().await;
    let ports = test_ports(model, window, hitl, alerts);
    let (registry, _join) = LeadSupervisor::start(ports.deps, config).await.unwrap();
    let router = registry.clone();
    let acker = TestAcker::redelivering(move |d| router.dispatch(d));
    TestTree {
        registry,
        store: ports.store,
        sms: ports.sms,
        model: ports.model,
        sink,
        acker,
        clock: ports.clock,
    }
}

pub(crate) async fn tree(model: FakeModel) -> TestTree {
    tree_with(
        model,
        config(),
        WindowLimits {
            max_messages: 20,
            max_bytes: 4096,
        },
    )
    .await
}

impl TestTree {
    pub fn inbound(&self, lead: &LeadId, sid: &str, body: &str) {
        assert!(self.store.insert_inbound(lead, sid, body));
        self.registry.dispatch(self.acker.delivery(lead));
    }
}

fn lead(n: u32) -> LeadId {
    LeadId::new(format!("+1312555{n:04}"))
}

#[tokio::test]
async fn a_task_activates_the_leads_actor_and_the_reply_is_sent() {
    let t = tree(FakeModel::answering("Hello!")).await;
    t.inbound(&lead(1), "SM1", "Hi");
    wait_for(|| t.sms.sent_to(&lead(1)).len() == 1).await;
    wait_for(|| t.acker.acks() == 1).await;
    assert!(t.registry.is_active(&lead(1)));
    assert_eq!(t.store.inbound_states(&lead(1)), vec!["answered"]);
}

#[tokio::test]
async fn a_panicking_actor_is_restarted_and_answers_the_next_message() {
    let t = tree(FakeModel::panicking_on("boom", "fine")).await;
    t.inbound(&lead(2), "SM1", "boom");
    wait_for(|| t.sink.events().contains(&"lead_restarted".to_string())).await;
    // The poisoned message keeps failing; once the budget is spent the lead is parked.
    wait_for(|| t.sink.events().contains(&"lead_parked".to_string())).await;
    let snap = t.registry.snapshot().await.unwrap();
    assert_eq!(snap.restarts, 2, "restart_max restarts, then parked");
    assert!(t.sms.sent_to(&lead(2)).is_empty());
    // The park is in the store, with its reason and expiry, for every worker to see.
    let parks = t.store.parked(t.clock.now()).await.unwrap();
    assert_eq!(parks.len(), 1);
    assert_eq!(parks[0].lead, lead(2));
    assert_eq!(parks[0].reason, crate::park::ParkReason::Restarts);
    assert_eq!(
        parks[0].expires_at,
        parks[0].parked_at + chrono::Duration::hours(1)
    );
}

#[tokio::test]
async fn a_restart_park_holds_across_a_new_tree_and_expires_by_itself() {
    let t = tree(FakeModel::panicking_on("boom", "fine")).await;
    t.inbound(&lead(7), "SM1", "boom");
    wait_for(|| t.sink.events().contains(&"lead_parked".to_string())).await;
    let calls = t.model.calls();
    // Another worker (a second tree on the same store) sees the park: a new message is
    // stored and its task settled without a model call.
    let (alerts, _sink) = test_alerts().await;
    let mut ports = test_ports(
        FakeModel::answering("second worker"),
        WindowLimits {
            max_messages: 20,
            max_bytes: 4096,
        },
        false,
        alerts,
    );
    let deps = Arc::get_mut(&mut ports.deps).unwrap();
    deps.store = t.store.clone() as Arc<dyn crate::ports::Store>;
    deps.parks = t.store.clone() as Arc<dyn crate::park::ParkStore>;
    deps.clock = Arc::new(t.clock.clone()) as Arc<dyn Clock>;
    let (other, _join) = LeadSupervisor::start(ports.deps, config()).await.unwrap();
    let router = other.clone();
    let acker = TestAcker::redelivering(move |d| router.dispatch(d));
    assert!(t.store.insert_inbound(&lead(7), "SM2", "still there?"));
    other.dispatch(acker.delivery(&lead(7)));
    wait_for(|| acker.acks() == 1).await;
    assert_eq!(ports.model.calls(), 0);
    assert_eq!(t.model.calls(), calls);
    assert_eq!(t.store.inbound_states(&lead(7)), vec!["pending", "pending"]);
    // Past PARK_SECS the park is over by itself: the next task gets a turn.
    t.clock.advance(Duration::from_secs(3601));
    assert!(t.store.parked(t.clock.now()).await.unwrap().is_empty());
    other.dispatch(acker.delivery(&lead(7)));
    wait_for(|| ports.sms.sent_to(&lead(7)) == vec!["second worker".to_string()]).await;
    assert_eq!(
        t.store.inbound_states(&lead(7)),
        vec!["answered", "answered"]
    );
}

#[tokio::test]
async fn a_reply_loop_stops_at_the_hourly_cap_with_an_alert_and_messages_kept() {
    let (alerts, sink) = test_alerts().await;
    let mut ports = test_ports(
        FakeModel::answering("Thanks for your message!"),
        WindowLimits {
            max_messages: 20,
            max_bytes: 4096,
        },
        false,
        alerts,
    );
    Arc::get_mut(&mut ports.deps).unwrap().park_policy.per_hour = 3;
    let (registry, _join) = LeadSupervisor::start(ports.deps.clone(), config())
        .await
        .unwrap();
    let router = registry.clone();
    let acker = TestAcker::redelivering(move |d| router.dispatch(d));
    let bot = lead(8);
    // The other side's auto-responder answers every reply of ours.
    for n in 1..=6 {
        assert!(
            ports
                .store
                .insert_inbound(&bot, &format!("SM{n}"), "Auto-reply: got it")
        );
        registry.dispatch(acker.delivery(&bot));
        wait_for(|| acker.acks() == n).await;
    }
    assert_eq!(ports.sms.sent_to(&bot).len(), 3, "the cap");
    assert_eq!(ports.model.calls(), 3, "no model call past the cap");
    wait_for(|| sink.events().contains(&"lead_parked".to_string())).await;
    let alert = sink
        .alerts()
        .into_iter()
        .find(|a| a.event == "lead_parked")
        .unwrap();
    assert_eq!(alert.lead.as_ref(), Some(&bot));
    assert!(alert.text.contains("reply_cap_hour") && alert.text.contains("cap of 3"));
    assert_eq!(
        ports.store.inbound_states(&bot),
        vec![
            "answered", "answered", "answered", "pending", "pending", "pending"
        ],
        "every message stored"
    );
    let parks = ports.store.parked(ports.clock.now()).await.unwrap();
    assert_eq!(parks[0].reason, crate::park::ParkReason::ReplyCapHour);
    // An unpark wakes the lead: the waiting messages get one turn, and the counters start
    // again from the unpark, so that turn is not parked again.
    ports.clock.advance(Duration::from_secs(60));
    ports.store.unpark(&bot, ports.clock.now()).await.unwrap();
    registry.dispatch(acker.delivery(&bot));
    wait_for(|| ports.sms.sent_to(&bot).len() == 4).await;
    assert_eq!(ports.store.inbound_states(&bot), vec!["answered"; 6]);
}

#[tokio::test]
async fn a_lead_whose_actor_panicked_once_is_answered_after_the_restart() {
    let t = tree(FakeModel::panicking_once_on("boom", "fine")).await;
    t.inbound(&lead(3), "SM1", "boom");
    wait_for(|| t.sink.events().contains(&"lead_restarted".to_string())).await;
    // The handed-back task reaches the restarted actor, which answers the message.
    wait_for(|| t.sms.sent_to(&lead(3)) == vec!["fine".to_string()]).await;
    t.inbound(&lead(3), "SM2", "hello again");
    wait_for(|| t.sms.sent_to(&lead(3)).len() == 2).await;
    assert!(t.store.parked(t.clock.now()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_turn_past_its_time_budget_is_killed_and_the_task_handed_back() {
    let t = tree(FakeModel::hanging()).await;
    t.inbound(&lead(4), "SM1", "Hi");
    wait_for(|| t.model.in_flight() == 1).await;
    t.clock.advance(Duration::from_secs(91));
    t.registry
        .supervisor()
        .unwrap()
        .cast(SupervisorMsg::Sweep)
        .unwrap();
    wait_for(|| {
        t.sink
            .events()
            .contains(&"turn_budget_exceeded".to_string())
    })
    .await;
    wait_for(|| t.acker.requeues() >= 1).await;
    wait_for(|| t.model.in_flight() == 0).await;
    wait_for(|| t.sink.events().contains(&"lead_restarted".to_string())).await;
}

#[tokio::test]
async fn an_idle_actor_is_stopped_and_reactivated_on_demand() {
    let t = tree(FakeModel::answering("ok")).await;
    t.inbound(&lead(5), "SM1", "Hi");
    wait_for(|| t.acker.acks() == 1).await;
    t.clock.advance(Duration::from_secs(901));
    t.registry
        .supervisor()
        .unwrap()
        .cast(SupervisorMsg::Sweep)
        .unwrap();
    wait_for(|| !t.registry.is_active(&lead(5))).await;
    t.inbound(&lead(5), "SM2", "Still there?");
    wait_for(|| t.sms.sent_to(&lead(5)).len() == 2).await;
    assert_eq!(t.registry.snapshot().await.unwrap().idle_stops, 1);
}

#[tokio::test]
async fn an_actor_over_its_memory_budget_is_stopped_and_rebuilt() {
    let mut cfg = config();
    cfg.memory_budget_bytes = 64;
    cfg.restart_max = 10;
    let t = tree_with(
        FakeModel::answering("a reply long enough to blow a tiny budget"),
        cfg,
        WindowLimits {
            max_messages: 20,
            max_bytes: 4096,
        },
    )
    .await;
    t.inbound(&lead(6), "SM1", "Hi");
    wait_for(|| {
        t.sink
            .events()
            .contains(&"memory_budget_exceeded".to_string())
    })
    .await;
    wait_for(|| !t.registry.is_active(&lead(6))).await;
    t.inbound(&lead(6), "SM2", "again");
    wait_for(|| t.sms.sent_to(&lead(6)).len() == 2).await;
}
