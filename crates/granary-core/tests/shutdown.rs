//! Graceful system shutdown: children before parents, queued messages
//! dead-lettered, bounded in time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{within, Block};
use granary_core::prelude::*;
use parking_lot::Mutex;

type Order = Arc<Mutex<Vec<String>>>;

/// Records its name when stopped; spawns `depth` levels of children below it.
struct Node {
    name: String,
    depth: u32,
    order: Order,
}
impl Actor for Node {
    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if self.depth > 0 {
            for i in 0..2 {
                ctx.spawn_child(Node {
                    name: format!("{}.{}", self.name, i),
                    depth: self.depth - 1,
                    order: self.order.clone(),
                });
            }
        }
        Ok(())
    }
    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.order.lock().push(self.name.clone());
    }
}
struct Ready;
impl Message for Ready {
    type Reply = ();
}
impl Handler<Ready> for Node {
    async fn handle(&mut self, _: Ready, _ctx: &mut Context<Self>) {}
}

#[tokio::test]
async fn shutdown_stops_children_before_their_parents() {
    let system = ActorSystem::new();
    let order: Order = Arc::default();
    let root = system.spawn(Node {
        name: "r".into(),
        depth: 2,
        order: order.clone(),
    });
    within(root.ask(Ready)).await.unwrap();
    assert_eq!(system.live_actors(), 7);
    let report = within(system.shutdown()).await;
    assert_eq!(report.aborted, 0);
    assert_eq!(system.live_actors(), 0);
    let order = order.lock().clone();
    assert_eq!(order.len(), 7, "{order:?}");
    let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
    for parent in ["r", "r.0", "r.1"] {
        for child in order
            .iter()
            .filter(|c| c.starts_with(&format!("{parent}.")) && c.len() == parent.len() + 2)
        {
            assert!(
                pos(child) < pos(parent),
                "{child} stopped after {parent}: {order:?}"
            );
        }
    }
    assert_eq!(order.last().unwrap(), "r");
}

#[tokio::test]
async fn stopping_a_parent_stops_its_children_first_with_parent_stopped() {
    let system = ActorSystem::new();
    let order: Order = Arc::default();
    let root = system.spawn(Node {
        name: "r".into(),
        depth: 1,
        order: order.clone(),
    });
    within(root.ask(Ready)).await.unwrap();
    root.stop();
    assert_eq!(within(root.wait_stopped()).await, StopReason::Normal);
    assert_eq!(order.lock().last().unwrap(), "r");
    assert_eq!(order.lock().len(), 3);
    within(system.shutdown()).await;
}

struct Stuck;
impl Actor for Stuck {}
impl Handler<Block> for Stuck {
    async fn handle(&mut self, msg: Block, _ctx: &mut Context<Self>) {
        msg.park().await;
    }
}
struct Later;
impl Message for Later {
    type Reply = ();
}
impl Handler<Later> for Stuck {
    async fn handle(&mut self, _: Later, _ctx: &mut Context<Self>) {}
}

#[tokio::test]
async fn shutdown_is_bounded_in_time_and_dead_letters_what_a_stuck_actor_still_holds() {
    let system = ActorSystem::builder()
        .shutdown_timeout(Duration::from_millis(100))
        .build();
    let mut dead = system.events().subscribe::<DeadLetter>();
    let stuck = system.spawn(Stuck);
    let (block, entered, _release_never) = Block::new();
    stuck.tell(block).unwrap();
    within(entered).await.unwrap();
    stuck.tell(Later).unwrap();
    let (told, mut stopped) = tokio::sync::mpsc::unbounded_channel();
    stuck.on_stopped(move |reason| {
        let _ = told.send(reason);
    });
    let report = within(system.shutdown()).await;
    assert_eq!(report.aborted, 1);
    // Its task was aborted: the stop callback still runs, with `Killed`.
    assert_eq!(within(stopped.recv()).await, Some(StopReason::Killed));
    assert_eq!(system.live_actors(), 0);
    let letter = within(dead.recv()).await.unwrap();
    assert_eq!(letter.reason, DeadLetterReason::ActorStopped);
    assert!(letter.message_type.ends_with("Later"));
    assert!(matches!(stuck.tell(Later), Err(SendError::ActorStopped(_))));
}

#[tokio::test]
async fn queued_messages_of_a_stopping_actor_become_dead_letters_at_shutdown() {
    let system = ActorSystem::new();
    let mut dead = system.events().subscribe::<DeadLetter>();
    let a = system.spawn(Stuck);
    let (block, entered, release) = Block::new();
    a.tell(block).unwrap();
    within(entered).await.unwrap();
    for _ in 0..3 {
        a.tell(Later).unwrap();
    }
    let mut shutdown = Box::pin(system.shutdown());
    // The first poll sends the stop; then shutdown waits for the handler.
    assert!(futures::poll!(&mut shutdown).is_pending());
    release.send(()).unwrap();
    assert_eq!(within(shutdown).await.aborted, 0);
    for _ in 0..3 {
        assert_eq!(
            within(dead.recv()).await.unwrap().reason,
            DeadLetterReason::ActorStopped
        );
    }
}

#[tokio::test]
async fn an_actor_spawned_during_shutdown_stops_at_once() {
    let system = ActorSystem::new();
    within(system.shutdown()).await;
    let late = system.spawn(Stuck);
    assert_eq!(within(late.wait_stopped()).await, StopReason::Shutdown);
}

/// Records the hooks it runs; its `stopping` waits (holding a large buffer across the
/// waits, so the hook's future is boxed) and its `stopped` is the default-size kind.
struct SlowStopper {
    order: Order,
}
impl Actor for SlowStopper {
    async fn stopping(&mut self, _ctx: &mut Context<Self>) {
        let buffer = [1u8; 1024];
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        self.order.lock().push(format!("stopping {}", buffer[1023]));
    }
    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.order.lock().push("stopped".into());
    }
}
impl Handler<Ready> for SlowStopper {
    async fn handle(&mut self, _: Ready, _ctx: &mut Context<Self>) {
        self.order.lock().push("handled".into());
    }
}

/// The last phase runs in the actor's task: a `stopping` hook that waits is awaited to
/// its end before the mailbox closes (a message told meanwhile is refused) and before
/// `stopped`, and the end is announced with its reason.
#[tokio::test]
async fn a_stopping_hook_that_waits_runs_to_its_end_before_stopped() {
    let system = ActorSystem::new();
    let order: Order = Arc::default();
    let actor = system.spawn(SlowStopper {
        order: order.clone(),
    });
    within(actor.ask(Ready)).await.unwrap();
    actor.stop();
    assert_eq!(within(actor.wait_stopped()).await, StopReason::Normal);
    assert!(actor.tell(Ready).is_err(), "a stopped actor took a message");
    assert_eq!(
        *order.lock(),
        vec!["handled".to_string(), "stopping 1".into(), "stopped".into()]
    );
    within(system.shutdown()).await;
}
