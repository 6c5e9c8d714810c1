//! Watch: `Terminated` messages to watchers, unwatch, watching a dead actor.

mod common;

use common::within;
use granary_core::prelude::*;
use tokio::sync::mpsc;

struct Target;
impl Actor for Target {}
struct Die;
impl Message for Die {
    type Reply = ();
}
impl Handler<Die> for Target {
    async fn handle(&mut self, _: Die, _ctx: &mut Context<Self>) {
        panic!("target dies");
    }
}

/// Reports every Terminated it receives on a channel.
struct Watcher {
    out: mpsc::UnboundedSender<Terminated>,
}
impl Actor for Watcher {}
impl Handler<Terminated> for Watcher {
    async fn handle(&mut self, msg: Terminated, _ctx: &mut Context<Self>) {
        let _ = self.out.send(msg);
    }
}
struct WatchIt(ActorRef<Target>);
impl Message for WatchIt {
    type Reply = ();
}
impl Handler<WatchIt> for Watcher {
    async fn handle(&mut self, msg: WatchIt, ctx: &mut Context<Self>) {
        ctx.watch(&msg.0);
    }
}
struct UnwatchIt(ActorRef<Target>);
impl Message for UnwatchIt {
    type Reply = ();
}
impl Handler<UnwatchIt> for Watcher {
    async fn handle(&mut self, msg: UnwatchIt, ctx: &mut Context<Self>) {
        ctx.unwatch(&msg.0);
    }
}

#[tokio::test]
async fn a_watcher_receives_terminated_with_the_stop_reason() {
    let system = ActorSystem::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = system.spawn(Watcher { out: tx });
    let target = system.spawn(Target);
    within(watcher.ask(WatchIt(target.clone()))).await.unwrap();
    target.stop();
    let t = within(rx.recv()).await.unwrap();
    assert_eq!(
        t,
        Terminated {
            id: target.id(),
            reason: StopReason::Normal
        }
    );
    within(system.shutdown()).await;
}

#[tokio::test]
async fn a_watcher_learns_that_a_failed_actor_was_stopped_by_its_supervisor() {
    let system = ActorSystem::builder()
        .root_strategy(SupervisorStrategy::one_for_one().with_directive(Directive::Stop))
        .build();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = system.spawn(Watcher { out: tx });
    let target = system.spawn(Target);
    within(watcher.ask(WatchIt(target.clone()))).await.unwrap();
    target.tell(Die).unwrap();
    let t = within(rx.recv()).await.unwrap();
    assert_eq!(t.id, target.id());
    assert!(
        matches!(t.reason, StopReason::Failed(Failure::Panic(_))),
        "{t:?}"
    );
    within(system.shutdown()).await;
}

#[tokio::test]
async fn watching_an_actor_that_already_stopped_delivers_not_alive_at_once() {
    let system = ActorSystem::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = system.spawn(Watcher { out: tx });
    let target = system.spawn(Target);
    target.stop();
    within(target.wait_stopped()).await;
    within(watcher.ask(WatchIt(target.clone()))).await.unwrap();
    let t = within(rx.recv()).await.unwrap();
    assert_eq!(t.reason, StopReason::NotAlive);
    within(system.shutdown()).await;
}

#[tokio::test]
async fn after_unwatch_no_terminated_arrives() {
    let system = ActorSystem::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = system.spawn(Watcher { out: tx });
    let target = system.spawn(Target);
    let other = system.spawn(Target);
    within(watcher.ask(WatchIt(target.clone()))).await.unwrap();
    within(watcher.ask(WatchIt(other.clone()))).await.unwrap();
    within(watcher.ask(UnwatchIt(target.clone())))
        .await
        .unwrap();
    target.stop();
    within(target.wait_stopped()).await;
    // `other` stops after `target`; its notification is the first to arrive.
    other.stop();
    let t = within(rx.recv()).await.unwrap();
    assert_eq!(t.id, other.id(), "got a Terminated for the unwatched actor");
    within(system.shutdown()).await;
}

#[tokio::test]
async fn on_stopped_runs_once_with_the_reason_and_at_once_for_a_stopped_actor() {
    let system = ActorSystem::new();
    let target = system.spawn(Target);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let first = tx.clone();
    target.on_stopped(move |reason| {
        let _ = first.send(reason);
    });
    target.stop();
    assert_eq!(within(rx.recv()).await, Some(StopReason::Normal));
    within(target.wait_stopped()).await;
    // Already stopped: the callback runs on the caller's side, before on_stopped returns.
    let later = tx.clone();
    target.on_stopped(move |reason| {
        let _ = later.send(reason);
    });
    assert_eq!(rx.try_recv().ok(), Some(StopReason::NotAlive));
    drop(tx);
    assert_eq!(within(rx.recv()).await, None, "each callback ran once");
}
