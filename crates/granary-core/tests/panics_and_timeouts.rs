//! A panic during an ask answers at once; asks time out; both are typed errors.

mod common;

use std::time::Duration;

use common::{within, Block};
use granary_core::prelude::*;

struct Fragile {
    handled: u32,
}
impl Actor for Fragile {}

struct Explode;
impl Message for Explode {
    type Reply = u32;
}
impl Handler<Explode> for Fragile {
    async fn handle(&mut self, _: Explode, _ctx: &mut Context<Self>) -> u32 {
        panic!("boom")
    }
}

struct ExplodeLater;
impl Message for ExplodeLater {
    type Reply = u32;
}
impl Handler<ExplodeLater> for Fragile {
    async fn handle(&mut self, _: ExplodeLater, _ctx: &mut Context<Self>) -> u32 {
        tokio::task::yield_now().await;
        panic!("boom after an await")
    }
}

struct Count;
impl Message for Count {
    type Reply = u32;
}
impl Handler<Count> for Fragile {
    async fn handle(&mut self, _: Count, _ctx: &mut Context<Self>) -> u32 {
        self.handled += 1;
        self.handled
    }
}
impl Handler<Block> for Fragile {
    async fn handle(&mut self, msg: Block, _ctx: &mut Context<Self>) {
        msg.park().await;
    }
}

#[tokio::test]
async fn a_panic_while_handling_an_ask_answers_actor_panicked_without_waiting_for_the_timeout() {
    let system = ActorSystem::new();
    let a = system.spawn(Fragile { handled: 0 });
    // A one-hour timeout: only the panic path can answer within `within`'s 10 s.
    let r = within(a.ask_timeout(Explode, Duration::from_secs(3600))).await;
    assert!(matches!(r, Err(AskError::ActorPanicked)), "{r:?}");
    let r = within(a.ask_timeout(ExplodeLater, Duration::from_secs(3600))).await;
    assert!(matches!(r, Err(AskError::ActorPanicked)), "{r:?}");
    // The process is fine and the actor was restarted by the root strategy.
    assert!(within(a.ask(Count)).await.is_ok());
    within(system.shutdown()).await;
}

#[tokio::test]
async fn an_ask_that_gets_no_reply_in_time_fails_with_timeout_and_a_dead_letter() {
    let system = ActorSystem::new();
    let mut dead = system.events().subscribe::<DeadLetter>();
    let a = system.spawn(Fragile { handled: 0 });
    let (block, entered, release) = Block::new();
    a.tell(block).unwrap();
    within(entered).await.unwrap();
    let r = within(a.ask_timeout(Count, Duration::from_millis(20))).await;
    assert!(matches!(r, Err(AskError::Timeout)), "{r:?}");
    let letter = within(dead.recv()).await.unwrap();
    assert_eq!(letter.recipient, a.id());
    assert_eq!(letter.reason, DeadLetterReason::Timeout);
    assert!(letter.message_type.ends_with("Count"));
    release.send(()).unwrap();
    within(system.shutdown()).await;
}

#[tokio::test(start_paused = true)]
async fn ask_uses_the_systems_default_timeout() {
    let system = ActorSystem::builder()
        .ask_timeout(Duration::from_secs(2))
        .build();
    let a = system.spawn(Fragile { handled: 0 });
    let (block, entered, release) = Block::new();
    a.tell(block).unwrap();
    entered.await.unwrap();
    let t0 = tokio::time::Instant::now();
    assert!(matches!(a.ask(Count).await, Err(AskError::Timeout)));
    assert_eq!(t0.elapsed(), Duration::from_secs(2));
    release.send(()).unwrap();
    system.shutdown().await;
}

#[tokio::test]
async fn an_ask_queued_when_the_actor_stops_answers_actor_stopped() {
    let system = ActorSystem::new();
    let a = system.spawn(Fragile { handled: 0 });
    let (block, entered, release) = Block::new();
    a.tell(block).unwrap();
    within(entered).await.unwrap();
    let mut pending = Box::pin(a.ask_timeout(Count, Duration::from_secs(3600)));
    // The first poll enqueues the request behind the blocked handler.
    assert!(futures::poll!(&mut pending).is_pending());
    a.stop();
    release.send(()).unwrap();
    let r = within(pending).await;
    assert!(matches!(r, Err(AskError::ActorStopped)), "{r:?}");
    within(system.shutdown()).await;
}
