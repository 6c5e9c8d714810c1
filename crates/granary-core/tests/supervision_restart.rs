//! Restart directives: fresh instance from a factory, in-place without one,
//! restart budget within a window, backoff, resume, stop.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::within;
use granary_core::prelude::*;

struct Worker {
    n: u64,
    starts: Arc<AtomicU32>,
}
impl Actor for Worker {
    async fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
struct Add(u64);
impl Message for Add {
    type Reply = u64;
}
impl Handler<Add> for Worker {
    async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 {
        self.n += msg.0;
        self.n
    }
}
struct Crash;
impl Message for Crash {
    type Reply = ();
}
impl Handler<Crash> for Worker {
    async fn handle(&mut self, _: Crash, _ctx: &mut Context<Self>) {
        panic!("crash on request");
    }
}

/// A parent whose strategy is given at construction and which spawns one
/// worker child from a factory.
struct Parent {
    strategy: SupervisorStrategy,
    starts: Arc<AtomicU32>,
}
impl Actor for Parent {
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        self.strategy.clone()
    }
}
struct SpawnWorker;
impl Message for SpawnWorker {
    type Reply = ActorRef<Worker>;
}
impl Handler<SpawnWorker> for Parent {
    async fn handle(&mut self, _: SpawnWorker, ctx: &mut Context<Self>) -> ActorRef<Worker> {
        let starts = self.starts.clone();
        ctx.spawn_child_with(move || Worker {
            n: 0,
            starts: starts.clone(),
        })
    }
}

async fn worker_under(
    system: &ActorSystem,
    strategy: SupervisorStrategy,
) -> (ActorRef<Worker>, Arc<AtomicU32>) {
    let starts = Arc::new(AtomicU32::new(0));
    let parent = system.spawn(Parent {
        strategy,
        starts: starts.clone(),
    });
    let worker = within(parent.ask(SpawnWorker)).await.unwrap();
    (worker, starts)
}

#[tokio::test]
async fn restart_with_a_factory_builds_a_fresh_instance() {
    let system = ActorSystem::new();
    let (worker, starts) = worker_under(&system, SupervisorStrategy::one_for_one()).await;
    assert_eq!(within(worker.ask(Add(5))).await.unwrap(), 5);
    assert!(matches!(
        within(worker.ask(Crash)).await,
        Err(AskError::ActorPanicked)
    ));
    assert_eq!(
        within(worker.ask(Add(1))).await.unwrap(),
        1,
        "state was reset"
    );
    assert_eq!(starts.load(Ordering::SeqCst), 2, "started ran again");
    within(system.shutdown()).await;
}

#[tokio::test]
async fn restart_without_a_factory_reuses_the_instance_and_reruns_started() {
    let system = ActorSystem::new();
    let starts = Arc::new(AtomicU32::new(0));
    let worker = system.spawn(Worker {
        n: 0,
        starts: starts.clone(),
    });
    assert_eq!(within(worker.ask(Add(5))).await.unwrap(), 5);
    assert!(matches!(
        within(worker.ask(Crash)).await,
        Err(AskError::ActorPanicked)
    ));
    assert_eq!(
        within(worker.ask(Add(1))).await.unwrap(),
        6,
        "same instance"
    );
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    within(system.shutdown()).await;
}

#[tokio::test]
async fn more_failures_than_the_restart_budget_within_the_window_stop_the_child() {
    let system = ActorSystem::new();
    let strategy =
        SupervisorStrategy::one_for_one().with_max_restarts(3, Duration::from_secs(3600));
    let (worker, starts) = worker_under(&system, strategy).await;
    for _ in 0..3 {
        assert!(matches!(
            within(worker.ask(Crash)).await,
            Err(AskError::ActorPanicked)
        ));
        within(worker.ask(Add(0))).await.expect("restarted");
    }
    assert_eq!(starts.load(Ordering::SeqCst), 4);
    // The fourth failure within the window exceeds the budget of 3.
    let _ = worker.tell(Crash);
    match within(worker.wait_stopped()).await {
        StopReason::Failed(Failure::Panic(msg)) => assert!(msg.contains("crash on request")),
        other => panic!("expected Failed(Panic), got {other:?}"),
    }
    assert_eq!(starts.load(Ordering::SeqCst), 4, "no fifth start");
    within(system.shutdown()).await;
}

#[tokio::test(start_paused = true)]
async fn failures_outside_the_window_do_not_count_against_the_budget() {
    let system = ActorSystem::new();
    let strategy = SupervisorStrategy::one_for_one().with_max_restarts(1, Duration::from_secs(10));
    let (worker, starts) = worker_under(&system, strategy).await;
    for _ in 0..3 {
        assert!(matches!(
            within(worker.ask(Crash)).await,
            Err(AskError::ActorPanicked)
        ));
        within(worker.ask(Add(0))).await.expect("restarted");
        // Step past the window (paused clock: advances instantly).
        tokio::time::advance(Duration::from_secs(11)).await;
    }
    assert_eq!(starts.load(Ordering::SeqCst), 4);
    assert!(worker.is_alive());
    within(system.shutdown()).await;
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_delays_each_restart_in_the_window() {
    let system = ActorSystem::new();
    let strategy = SupervisorStrategy::one_for_one()
        .with_max_restarts(10, Duration::from_secs(3600))
        .with_backoff(Backoff::Exponential {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(250),
        });
    let (worker, _starts) = worker_under(&system, strategy).await;
    let mut waited = Vec::new();
    for _ in 0..3 {
        let _ = within(worker.ask(Crash)).await;
        let t0 = tokio::time::Instant::now();
        within(worker.ask(Add(0))).await.unwrap();
        waited.push(t0.elapsed());
    }
    assert!(
        waited[0] >= Duration::from_millis(100) && waited[0] < Duration::from_millis(200),
        "{waited:?}"
    );
    assert!(
        waited[1] >= Duration::from_millis(200) && waited[1] < Duration::from_millis(250),
        "{waited:?}"
    );
    assert!(
        waited[2] >= Duration::from_millis(250) && waited[2] < Duration::from_millis(350),
        "{waited:?}"
    );
    within(system.shutdown()).await;
}

#[tokio::test]
async fn resume_keeps_the_instance_and_its_state_without_restarting() {
    let system = ActorSystem::new();
    let strategy = SupervisorStrategy::one_for_one().with_directive(Directive::Resume);
    let (worker, starts) = worker_under(&system, strategy).await;
    within(worker.ask(Add(7))).await.unwrap();
    assert!(matches!(
        within(worker.ask(Crash)).await,
        Err(AskError::ActorPanicked)
    ));
    assert_eq!(within(worker.ask(Add(1))).await.unwrap(), 8);
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    within(system.shutdown()).await;
}

#[tokio::test]
async fn stop_directive_stops_the_failed_child() {
    let system = ActorSystem::new();
    let strategy = SupervisorStrategy::one_for_one().with_directive(Directive::Stop);
    let (worker, _) = worker_under(&system, strategy).await;
    let _ = worker.tell(Crash);
    assert!(matches!(
        within(worker.wait_stopped()).await,
        StopReason::Failed(Failure::Panic(_))
    ));
    within(system.shutdown()).await;
}

struct FailsToStart {
    attempts: Arc<AtomicU32>,
}
impl Actor for FailsToStart {
    async fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        Err("no database".into())
    }
}

#[tokio::test]
async fn a_started_hook_error_is_a_failure_the_root_strategy_restarts_then_stops() {
    let system = ActorSystem::builder()
        .root_strategy(
            SupervisorStrategy::one_for_one().with_max_restarts(2, Duration::from_secs(3600)),
        )
        .build();
    let attempts = Arc::new(AtomicU32::new(0));
    let a = system.spawn(FailsToStart {
        attempts: attempts.clone(),
    });
    match within(a.wait_stopped()).await {
        StopReason::Failed(Failure::Start(msg)) => assert_eq!(msg, "no database"),
        other => panic!("expected Failed(Start), got {other:?}"),
    }
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "first start + 2 restarts"
    );
    within(system.shutdown()).await;
}
