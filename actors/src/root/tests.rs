//! Root supervisor tests: fake children that panic, fail, stop or refuse to start, the real
//! alert router and lead supervisor as children, a recording sink, a manual clock for the
//! intensity window and a recording give-up hook.

use std::sync::atomic::{AtomicBool, AtomicU32};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::*;
use crate::alert_router::{AlertError, AlertKind, AlertRouterChild, AlertSink};
use crate::ports::{LeadId, ManualClock};
use crate::supervisor::LeadSupervisorChild;
use crate::supervisor::tests::{config as lead_config, test_ports};
use crate::testing::*;
use crate::window::WindowLimits;

// ------------------------------------------------------------ a child that dies ---------- //

enum FlakyMsg {
    Panic,
    Fail,
    Stop,
    /// Answers the incarnation's number (1 for the first start).
    Ping(RpcReplyPort<u32>),
}

struct Flaky;

impl Actor for Flaky {
    type Msg = FlakyMsg;
    type State = u32;
    type Arguments = u32;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        n: u32,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(n)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FlakyMsg::Panic => panic!("flaky panicked"),
            FlakyMsg::Fail => return Err("flaky returned an error".into()),
            FlakyMsg::Stop => myself.stop(Some("changed its mind".into())),
            FlakyMsg::Ping(reply) => {
                let _ = reply.send(*state);
            }
        }
        Ok(())
    }
}

/// The spec of a [`Flaky`] actor, and the handle its users hold (`current`).
#[derive(Default)]
struct FlakyChild {
    starts: AtomicU32,
    /// Its dependency refuses it: every start fails while set.
    refuse: AtomicBool,
    current: Mutex<Option<ActorRef<FlakyMsg>>>,
}

impl FlakyChild {
    const NAME: &'static str = "flaky";

    fn send(&self, msg: FlakyMsg) {
        let current = self.current.lock().unwrap().clone();
        current
            .expect("a flaky incarnation runs")
            .cast(msg)
            .unwrap();
    }

    async fn ping(&self) -> Option<u32> {
        let current = self.current.lock().unwrap().clone()?;
        ractor::call!(current, FlakyMsg::Ping).ok()
    }

    fn starts(&self) -> u32 {
        self.starts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl RootChild for FlakyChild {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn start(&self, root: ActorCell) -> Result<ActorCell, ActorProcessingErr> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err("its dependency refused it".into());
        }
        let n = self.starts.fetch_add(1, Ordering::SeqCst) + 1;
        let (actor, _join) = Actor::spawn_linked(None, Flaky, n, root).await?;
        *self.current.lock().unwrap() = Some(actor.clone());
        Ok(actor.get_cell())
    }

    fn gone(&self, _for_good: bool) {
        *self.current.lock().unwrap() = None;
    }
}

/// A child that does nothing: adding one is a round trip through the root's mailbox, so
/// every event sent to the root before it has been handled.
struct Barrier(&'static str);

#[async_trait]
impl RootChild for Barrier {
    fn name(&self) -> &'static str {
        self.0
    }
    async fn start(&self, _root: ActorCell) -> Result<ActorCell, ActorProcessingErr> {
        Err("a barrier never starts".into())
    }
}

// ------------------------------------------------------------------ harness ------------- //

struct Harness {
    root: RootHandle,
    alerts: AlertHandle,
    sink: Arc<RecordingAlertSink>,
    gave_up: Arc<Mutex<Vec<GiveUp>>>,
    clock: ManualClock,
}

fn test_config(restart_max: u32) -> RootConfig {
    RootConfig {
        restart_max,
        restart_window: Duration::from_secs(60),
        backoff_first: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        stop_timeout: Duration::from_secs(2),
    }
}

/// A root whose first child is the real alert router on `sink`.
async fn harness_with_sink(restart_max: u32, sink: Arc<dyn AlertSink>) -> Harness {
    let clock = ManualClock::new(Utc::now());
    let alerts = AlertHandle::new(Arc::new(clock.clone()));
    let gave_up = Arc::new(Mutex::new(Vec::new()));
    let record = gave_up.clone();
    let hook: GiveUpHook = Arc::new(move |g| record.lock().unwrap().push(g));
    let root = RootSupervisor::start(
        test_config(restart_max),
        alerts.clone(),
        Arc::new(clock.clone()),
        hook,
    )
    .await
    .unwrap();
    root.add(Arc::new(AlertRouterChild::new(sink, alerts.clone())))
        .await
        .unwrap();
    Harness {
        root,
        alerts,
        sink: Arc::new(RecordingAlertSink::default()),
        gave_up,
        clock,
    }
}

async fn harness(restart_max: u32) -> Harness {
    let sink = Arc::new(RecordingAlertSink::default());
    let mut h = harness_with_sink(restart_max, sink.clone()).await;
    h.sink = sink;
    h
}

impl Harness {
    async fn flaky(&self) -> Arc<FlakyChild> {
        let child = Arc::new(FlakyChild::default());
        self.root.add(child.clone()).await.unwrap();
        child
    }

    fn alerts_for(&self, event: &str) -> Vec<Alert> {
        self.sink
            .alerts()
            .into_iter()
            .filter(|a| a.event == event)
            .collect()
    }

    fn status(&self, name: &str) -> ChildStatus {
        self.root
            .status()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap()
    }

    /// Two round trips through the root's mailbox: whatever it was told before is handled.
    async fn settle(&self) {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        for _ in 0..2 {
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let name: &'static str = Box::leak(format!("barrier-{n}").into_boxed_str());
            self.root.add(Arc::new(Barrier(name))).await.unwrap();
        }
    }
}

async fn wait_for_incarnation(child: &FlakyChild, n: u32) {
    let start = tokio::time::Instant::now();
    while child.ping().await != Some(n) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "incarnation {n} never answered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// -------------------------------------------------------------------- tests ------------- //

#[tokio::test]
async fn a_child_that_panics_is_restarted_and_an_error_alert_raised() {
    let h = harness(5).await;
    let child = h.flaky().await;
    assert_eq!(child.ping().await, Some(1));
    assert!(h.status("flaky").up);

    child.send(FlakyMsg::Panic);
    wait_for_incarnation(&child, 2).await;
    wait_for(|| !h.alerts_for("root_child_restarted").is_empty()).await;
    let alert = &h.alerts_for("root_child_restarted")[0];
    assert_eq!(alert.kind, AlertKind::Error);
    assert!(
        alert.text.contains("flaky") && alert.text.contains("flaky panicked"),
        "{}",
        alert.text
    );
    let status = h.status("flaky");
    assert!(status.up);
    assert_eq!(status.restarts, 1);
    assert!(h.gave_up.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_child_that_returns_err_or_stops_on_its_own_is_restarted() {
    let h = harness(5).await;
    let child = h.flaky().await;
    child.send(FlakyMsg::Fail);
    wait_for_incarnation(&child, 2).await;
    child.send(FlakyMsg::Stop);
    wait_for_incarnation(&child, 3).await;
    wait_for(|| h.alerts_for("root_child_restarted").len() == 2).await;
    let texts: Vec<String> = h
        .alerts_for("root_child_restarted")
        .into_iter()
        .map(|a| a.text)
        .collect();
    assert!(texts[0].contains("flaky returned an error"), "{texts:?}");
    assert!(
        texts[1].contains("stopped unexpectedly: changed its mind"),
        "{texts:?}"
    );
}

#[tokio::test]
async fn a_child_stopped_through_the_root_is_not_restarted() {
    let h = harness(5).await;
    let child = h.flaky().await;
    h.root.stop_child(FlakyChild::NAME).await;
    h.settle().await;
    assert_eq!(child.starts(), 1);
    assert_eq!(
        child.ping().await,
        None,
        "the handle forgot the stopped actor"
    );
    let status = h.status("flaky");
    assert!(!status.up);
    assert_eq!(status.restarts, 0);
    assert!(h.alerts_for("root_child_restarted").is_empty());
}

#[tokio::test]
async fn a_child_that_dies_too_often_makes_the_root_give_up_through_the_hook() {
    let h = harness(2).await;
    let child = h.flaky().await;
    child.send(FlakyMsg::Panic);
    wait_for_incarnation(&child, 2).await;
    child.send(FlakyMsg::Panic);
    wait_for_incarnation(&child, 3).await;
    // The third death within the window is one more than the two restarts allowed.
    child.send(FlakyMsg::Panic);
    wait_for(|| !h.gave_up.lock().unwrap().is_empty()).await;
    {
        let gave_up = h.gave_up.lock().unwrap();
        assert_eq!(gave_up.len(), 1);
        assert_eq!(gave_up[0].child, "flaky");
        assert!(gave_up[0].reason.contains("flaky panicked"));
    }
    assert!(h.root.gave_up());
    wait_for(|| !h.alerts_for("root_gave_up").is_empty()).await;
    assert_eq!(h.alerts_for("root_gave_up")[0].kind, AlertKind::Error);

    // Nothing is restarted after the give-up, and the hook is not called again.
    h.settle().await;
    assert_eq!(child.starts(), 3);
    assert!(!h.status("flaky").up);
    let router = h.root.child(AlertRouterChild::NAME).unwrap();
    router.kill();
    h.settle().await;
    assert!(h.root.child(AlertRouterChild::NAME).is_none());
    assert_eq!(h.gave_up.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn restarts_further_apart_than_the_window_never_give_up() {
    let h = harness(1).await;
    let child = h.flaky().await;
    for n in 2..=4 {
        child.send(FlakyMsg::Panic);
        wait_for_incarnation(&child, n).await;
        h.clock.advance(Duration::from_secs(61));
    }
    assert!(h.gave_up.lock().unwrap().is_empty());
    assert_eq!(h.status("flaky").restarts, 3);
}

#[tokio::test]
async fn a_child_that_cannot_start_is_reported_down_and_retried_until_it_starts() {
    let h = harness(50).await;
    let child = Arc::new(FlakyChild::default());
    child.refuse.store(true, Ordering::SeqCst);
    h.root.add(child.clone()).await.unwrap();
    let status = h.status("flaky");
    assert!(!status.up);
    assert!(
        status
            .last_failure
            .as_deref()
            .unwrap()
            .contains("its dependency refused it")
    );
    assert_eq!(h.root.down().len(), 1);
    wait_for(|| h.alerts_for("root_child_start_failed").len() >= 2).await;
    assert!(
        h.alerts_for("root_child_start_failed")[1]
            .text
            .contains("next attempt in")
    );

    child.refuse.store(false, Ordering::SeqCst);
    wait_for_incarnation(&child, 1).await;
    assert!(h.status("flaky").up);
    assert!(h.root.down().is_empty());
    wait_for(|| !h.alerts_for("root_child_restarted").is_empty()).await;
}

#[tokio::test]
async fn alerts_raised_while_the_router_is_down_are_delivered_by_the_next_one_in_order() {
    let h = harness(5).await;
    h.alerts.raise(Alert::event("before", "0"));
    wait_for(|| h.sink.alerts().len() == 1).await;
    let router = h.root.child(AlertRouterChild::NAME).unwrap();
    router.kill();
    // Raised during the restart: none is lost.
    for i in 1..=20 {
        h.alerts.raise(Alert::event("during", i.to_string()));
    }
    wait_for(|| !h.alerts_for("root_child_restarted").is_empty()).await;
    wait_for(|| h.alerts_for("during").len() == 20).await;
    let during: Vec<String> = h.alerts_for("during").into_iter().map(|a| a.text).collect();
    assert_eq!(during, (1..=20).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(
        h.alerts_for("root_child_restarted")[0]
            .text
            .contains("alert_router")
    );
    assert_ne!(
        h.root.child(AlertRouterChild::NAME).unwrap().get_id(),
        router.get_id()
    );
    assert_eq!(h.alerts.undelivered(), 0);
}

/// Delivers each alert only when let through; panics on a text of "poison".
struct GatedSink {
    gate: Semaphore,
    inner: RecordingAlertSink,
}

#[async_trait]
impl AlertSink for GatedSink {
    async fn deliver(&self, alert: &Alert) -> Result<(), AlertError> {
        if alert.text == "poison" {
            panic!("the sink cannot take this alert");
        }
        self.gate.acquire().await.unwrap().forget();
        self.inner.deliver(alert).await
    }
}

#[tokio::test]
async fn alerts_waiting_in_a_dead_routers_mailbox_are_delivered_by_the_next_one() {
    let sink = Arc::new(GatedSink {
        gate: Semaphore::new(0),
        inner: RecordingAlertSink::default(),
    });
    let h = harness_with_sink(5, sink.clone()).await;
    for t in ["a", "b", "c"] {
        h.alerts.raise(Alert::event("queued", t));
    }
    // "a" is in the sink, "b" and "c" in the mailbox when the router dies.
    wait_for(|| h.alerts.undelivered() == 3).await;
    h.root.child(AlertRouterChild::NAME).unwrap().kill();
    wait_for(|| {
        h.root
            .status()
            .iter()
            .any(|s| s.name == AlertRouterChild::NAME && s.up && s.restarts == 1)
    })
    .await;
    sink.gate.add_permits(100);
    wait_for(|| {
        sink.inner
            .events()
            .contains(&"root_child_restarted".to_string())
    })
    .await;
    let texts: Vec<String> = sink.inner.alerts().into_iter().map(|a| a.text).collect();
    assert_eq!(&texts[..3], ["a", "b", "c"]);
}

#[tokio::test]
async fn an_alert_that_kills_two_routers_goes_to_the_log_and_the_others_are_delivered() {
    let sink = Arc::new(GatedSink {
        gate: Semaphore::new(1000),
        inner: RecordingAlertSink::default(),
    });
    let h = harness_with_sink(5, sink.clone()).await;
    h.alerts.raise(Alert::event("x", "poison"));
    h.alerts.raise(Alert::event("after", "fine"));
    wait_for(|| sink.inner.events().contains(&"after".to_string())).await;
    assert!(!sink.inner.alerts().iter().any(|a| a.text == "poison"));
    assert_eq!(h.status(AlertRouterChild::NAME).restarts, 2);
    assert!(h.gave_up.lock().unwrap().is_empty());
    wait_for(|| h.alerts.undelivered() == 0).await;
}

#[tokio::test]
async fn the_lead_registry_follows_a_restarted_supervisor_and_keeps_no_dead_actors() {
    let h = harness(5).await;
    let window = WindowLimits {
        max_messages: 20,
        max_bytes: 4096,
    };
    let ports = test_ports(
        FakeModel::answering("Hello!"),
        window,
        false,
        h.alerts.clone(),
    );
    let (child, registry) = LeadSupervisorChild::new(ports.deps.clone(), lead_config());
    h.root.add(Arc::new(child)).await.unwrap();
    let router = registry.clone();
    let acker = TestAcker::redelivering(move |d| router.dispatch(d));
    let lead = LeadId::new("+13125550001");

    assert!(ports.store.insert_inbound(&lead, "SM1", "Hi"));
    registry.dispatch(acker.delivery(&lead));
    wait_for(|| ports.sms.sent_to(&lead).len() == 1).await;
    assert!(registry.is_active(&lead));
    let before = registry.supervisor().unwrap().get_id();

    h.root.child(LeadSupervisorChild::NAME).unwrap().kill();
    wait_for(|| !h.alerts_for("root_child_restarted").is_empty()).await;
    assert!(
        !registry.is_active(&lead),
        "the dead tree's lead actor is not kept"
    );
    assert_ne!(registry.supervisor().unwrap().get_id(), before);

    assert!(ports.store.insert_inbound(&lead, "SM2", "Still there?"));
    registry.dispatch(acker.delivery(&lead));
    wait_for(|| ports.sms.sent_to(&lead).len() == 2).await;
    assert!(registry.snapshot().await.is_some());
}

#[tokio::test]
async fn a_dead_root_is_a_give_up() {
    let h = harness(5).await;
    h.root.actor.kill();
    wait_for(|| !h.gave_up.lock().unwrap().is_empty()).await;
    assert_eq!(h.gave_up.lock().unwrap()[0].child, "root");
    assert!(
        h.root
            .down()
            .iter()
            .any(|s| s.name == AlertRouterChild::NAME)
    );
}

#[tokio::test]
async fn shutdown_stops_every_child_without_restarting_or_giving_up() {
    let h = harness(5).await;
    let child = h.flaky().await;
    h.alerts.raise(Alert::event("last", "words"));
    h.root.shutdown().await;
    assert!(
        h.sink.events().contains(&"last".to_string()),
        "the router drained first"
    );
    assert_eq!(child.ping().await, None);
    assert_eq!(child.starts(), 1);
    assert_eq!(h.root.down().len(), 2);
    assert!(h.gave_up.lock().unwrap().is_empty());
}

#[test]
fn the_first_restart_is_immediate_and_later_ones_back_off_up_to_the_cap() {
    let c = test_config(5);
    let waits: Vec<u128> = (1..=6).map(|k| c.backoff(k).as_millis()).collect();
    assert_eq!(waits, [0, 20, 40, 80, 100, 100]);
}
