//! Escalation and all-for-one.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::within;
use granary_core::prelude::*;

struct Leaf {
    starts: Arc<AtomicU32>,
}
impl Actor for Leaf {
    async fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
struct Crash;
impl Message for Crash {
    type Reply = ();
}
impl Handler<Crash> for Leaf {
    async fn handle(&mut self, _: Crash, _ctx: &mut Context<Self>) {
        panic!("leaf crash");
    }
}
struct Ping;
impl Message for Ping {
    type Reply = ();
}
impl Handler<Ping> for Leaf {
    async fn handle(&mut self, _: Ping, _ctx: &mut Context<Self>) {}
}

/// Supervises leaves with the given strategy; counts its own starts.
struct Middle {
    strategy: SupervisorStrategy,
    starts: Arc<AtomicU32>,
    leaf_starts: Arc<AtomicU32>,
}
impl Actor for Middle {
    async fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        self.strategy.clone()
    }
}
struct SpawnLeaf;
impl Message for SpawnLeaf {
    type Reply = ActorRef<Leaf>;
}
impl Handler<SpawnLeaf> for Middle {
    async fn handle(&mut self, _: SpawnLeaf, ctx: &mut Context<Self>) -> ActorRef<Leaf> {
        let starts = self.leaf_starts.clone();
        ctx.spawn_child_with(move || Leaf {
            starts: starts.clone(),
        })
    }
}
struct Children;
impl Message for Children {
    type Reply = usize;
}
impl Handler<Children> for Middle {
    async fn handle(&mut self, _: Children, ctx: &mut Context<Self>) -> usize {
        ctx.children().len()
    }
}

#[tokio::test]
async fn escalate_fails_the_parent_whose_own_supervisor_restarts_it_and_stops_its_children() {
    let system = ActorSystem::new();
    let middle_starts = Arc::new(AtomicU32::new(0));
    let leaf_starts = Arc::new(AtomicU32::new(0));
    // Top-level `middle` is supervised by the root strategy (restart).
    let middle = system.spawn(Middle {
        strategy: SupervisorStrategy::one_for_one().with_directive(Directive::Escalate),
        starts: middle_starts.clone(),
        leaf_starts: leaf_starts.clone(),
    });
    let leaf = within(middle.ask(SpawnLeaf)).await.unwrap();
    let _ = leaf.tell(Crash);
    // The leaf's failure escalates: middle restarts, which stops its children.
    assert_eq!(within(leaf.wait_stopped()).await, StopReason::ParentStopped);
    within(middle.ask(Children)).await.unwrap();
    assert_eq!(middle_starts.load(Ordering::SeqCst), 2, "middle restarted");
    assert_eq!(within(middle.ask(Children)).await.unwrap(), 0);
    assert_eq!(
        leaf_starts.load(Ordering::SeqCst),
        1,
        "leaf was not restarted"
    );
    within(system.shutdown()).await;
}

/// A top-level supervisor that stops any failing child (used as the grandparent).
struct Top {
    middle_starts: Arc<AtomicU32>,
    leaf_starts: Arc<AtomicU32>,
}
impl Actor for Top {
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::one_for_one().with_directive(Directive::Stop)
    }
}
struct SpawnMiddle;
impl Message for SpawnMiddle {
    type Reply = ActorRef<Middle>;
}
impl Handler<SpawnMiddle> for Top {
    async fn handle(&mut self, _: SpawnMiddle, ctx: &mut Context<Self>) -> ActorRef<Middle> {
        ctx.spawn_child(Middle {
            strategy: SupervisorStrategy::one_for_one().with_directive(Directive::Escalate),
            starts: self.middle_starts.clone(),
            leaf_starts: self.leaf_starts.clone(),
        })
    }
}

#[tokio::test]
async fn an_escalated_failure_reaches_the_grandparent_which_decides() {
    let system = ActorSystem::new();
    let top = system.spawn(Top {
        middle_starts: Arc::new(AtomicU32::new(0)),
        leaf_starts: Arc::new(AtomicU32::new(0)),
    });
    let middle = within(top.ask(SpawnMiddle)).await.unwrap();
    let leaf = within(middle.ask(SpawnLeaf)).await.unwrap();
    let _ = leaf.tell(Crash);
    match within(middle.wait_stopped()).await {
        StopReason::Failed(Failure::Escalated { child, cause }) => {
            assert_eq!(child, leaf.id());
            assert!(matches!(*cause, Failure::Panic(_)));
        }
        other => panic!("expected Failed(Escalated), got {other:?}"),
    }
    assert_eq!(within(leaf.wait_stopped()).await, StopReason::NotAlive);
    assert!(top.is_alive());
    within(system.shutdown()).await;
}

#[tokio::test]
async fn all_for_one_restarts_every_sibling_when_one_fails() {
    let system = ActorSystem::new();
    let leaf_starts = Arc::new(AtomicU32::new(0));
    let middle = system.spawn(Middle {
        strategy: SupervisorStrategy::all_for_one(),
        starts: Arc::new(AtomicU32::new(0)),
        leaf_starts: leaf_starts.clone(),
    });
    let a = within(middle.ask(SpawnLeaf)).await.unwrap();
    let b = within(middle.ask(SpawnLeaf)).await.unwrap();
    let c = within(middle.ask(SpawnLeaf)).await.unwrap();
    for r in [&a, &b, &c] {
        within(r.ask(Ping)).await.unwrap();
    }
    assert_eq!(leaf_starts.load(Ordering::SeqCst), 3);
    assert!(matches!(
        within(a.ask(Crash)).await,
        Err(AskError::ActorPanicked)
    ));
    // Each sibling's next answer comes after its restart (system lane first).
    for r in [&a, &b, &c] {
        within(r.ask(Ping)).await.unwrap();
    }
    assert_eq!(leaf_starts.load(Ordering::SeqCst), 6, "all three restarted");
    within(system.shutdown()).await;
}

#[tokio::test]
async fn one_for_one_restarts_only_the_failed_child() {
    let system = ActorSystem::new();
    let leaf_starts = Arc::new(AtomicU32::new(0));
    let middle = system.spawn(Middle {
        strategy: SupervisorStrategy::one_for_one(),
        starts: Arc::new(AtomicU32::new(0)),
        leaf_starts: leaf_starts.clone(),
    });
    let a = within(middle.ask(SpawnLeaf)).await.unwrap();
    let b = within(middle.ask(SpawnLeaf)).await.unwrap();
    within(b.ask(Ping)).await.unwrap();
    assert!(matches!(
        within(a.ask(Crash)).await,
        Err(AskError::ActorPanicked)
    ));
    within(a.ask(Ping)).await.unwrap();
    within(b.ask(Ping)).await.unwrap();
    assert_eq!(leaf_starts.load(Ordering::SeqCst), 3);
    within(system.shutdown()).await;
}
