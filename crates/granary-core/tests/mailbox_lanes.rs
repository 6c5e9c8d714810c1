//! Bounded mailboxes (backpressure), the system lane, and priority mailboxes.

mod common;

use std::time::Duration;

use common::{within, Block};
use granary_core::prelude::*;

struct Recorder {
    seen: Vec<&'static str>,
}
impl Actor for Recorder {}

struct Note(&'static str, Priority);
impl Message for Note {
    type Reply = ();
}
impl Handler<Note> for Recorder {
    async fn handle(&mut self, msg: Note, _ctx: &mut Context<Self>) {
        self.seen.push(msg.0);
    }
    fn priority(msg: &Note) -> Priority {
        msg.1
    }
}
struct Seen;
impl Message for Seen {
    type Reply = Vec<&'static str>;
}
impl Handler<Seen> for Recorder {
    async fn handle(&mut self, _: Seen, _ctx: &mut Context<Self>) -> Vec<&'static str> {
        std::mem::take(&mut self.seen)
    }
    fn priority(_: &Seen) -> Priority {
        Priority::LOWEST
    }
}
impl Handler<Block> for Recorder {
    async fn handle(&mut self, msg: Block, _ctx: &mut Context<Self>) {
        msg.park().await;
    }
}

fn note(s: &'static str) -> Note {
    Note(s, Priority::NORMAL)
}

#[tokio::test]
async fn a_full_bounded_mailbox_refuses_tell_with_the_message_and_a_dead_letter() {
    let system = ActorSystem::new();
    let mut dead = system.events().subscribe::<DeadLetter>();
    let r = system
        .spawn_props(Props::new(Recorder { seen: vec![] }).with_mailbox(MailboxConfig::bounded(2)));
    let (block, entered, release) = Block::new();
    r.tell(block).unwrap();
    within(entered).await.unwrap();
    r.try_tell(note("a")).unwrap();
    r.try_tell(note("b")).unwrap();
    match r.try_tell(note("c")) {
        Err(SendError::MailboxFull(Note("c", _))) => {}
        other => panic!("expected MailboxFull(c), got {other:?}"),
    }
    let letter = within(dead.recv()).await.unwrap();
    assert_eq!(letter.reason, DeadLetterReason::MailboxFull);
    release.send(()).unwrap();
    assert_eq!(within(r.ask(Seen)).await.unwrap(), vec!["a", "b"]);
    within(system.shutdown()).await;
}

#[tokio::test]
async fn send_waits_for_room_in_a_bounded_mailbox_and_then_delivers_in_order() {
    let system = ActorSystem::new();
    let r = system
        .spawn_props(Props::new(Recorder { seen: vec![] }).with_mailbox(MailboxConfig::bounded(1)));
    let (block, entered, release) = Block::new();
    r.tell(block).unwrap();
    within(entered).await.unwrap();
    r.send(note("first")).await.unwrap();
    let mut waiting = Box::pin(r.send(note("second")));
    // The mailbox is full: the send cannot complete yet.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), &mut waiting)
            .await
            .is_err(),
        "send completed although the mailbox was full"
    );
    release.send(()).unwrap();
    within(waiting).await.unwrap();
    assert_eq!(within(r.ask(Seen)).await.unwrap(), vec!["first", "second"]);
    within(system.shutdown()).await;
}

#[tokio::test]
async fn send_to_a_bounded_mailbox_fails_when_the_actor_stops_instead_of_hanging() {
    let system = ActorSystem::new();
    let r = system
        .spawn_props(Props::new(Recorder { seen: vec![] }).with_mailbox(MailboxConfig::bounded(1)));
    let (block, entered, release) = Block::new();
    r.tell(block).unwrap();
    within(entered).await.unwrap();
    r.send(note("fills")).await.unwrap();
    let waiting = tokio::spawn({
        let r = r.clone();
        async move { r.send(note("waits")).await }
    });
    r.stop();
    release.send(()).unwrap();
    match within(waiting).await.unwrap() {
        Err(SendError::ActorStopped(Note("waits", _))) => {}
        Ok(()) => {} // it got in before the stop: also a valid outcome
        other => panic!("unexpected {other:?}"),
    }
    within(system.shutdown()).await;
}

#[tokio::test]
async fn stop_on_the_system_lane_overtakes_queued_user_messages() {
    let system = ActorSystem::new();
    let mut dead = system.events().subscribe::<DeadLetter>();
    let r = system.spawn(Recorder { seen: vec![] });
    let (block, entered, release) = Block::new();
    r.tell(block).unwrap();
    within(entered).await.unwrap();
    for _ in 0..10 {
        r.tell(note("queued")).unwrap();
    }
    r.stop();
    release.send(()).unwrap();
    assert_eq!(within(r.wait_stopped()).await, StopReason::Normal);
    // None of the ten queued messages was handled: all are dead letters.
    for _ in 0..10 {
        let letter = within(dead.recv()).await.unwrap();
        assert_eq!(letter.reason, DeadLetterReason::ActorStopped);
        assert!(letter.message_type.ends_with("Note"));
    }
    within(system.shutdown()).await;
}

#[tokio::test]
async fn a_priority_mailbox_serves_higher_ranks_first_and_equal_ranks_in_order() {
    let system = ActorSystem::new();
    let r = system.spawn_props(
        Props::new(Recorder { seen: vec![] })
            .with_mailbox(MailboxConfig::unbounded().with_priority()),
    );
    let (block, entered, release) = Block::new();
    r.tell(block).unwrap();
    within(entered).await.unwrap();
    r.tell(Note("low-1", Priority::LOW)).unwrap();
    r.tell(Note("normal-1", Priority::NORMAL)).unwrap();
    r.tell(Note("high-1", Priority::HIGH)).unwrap();
    r.tell(Note("low-2", Priority::LOW)).unwrap();
    r.tell(Note("high-2", Priority::HIGH)).unwrap();
    r.tell(Note("normal-2", Priority::NORMAL)).unwrap();
    release.send(()).unwrap();
    // `Seen` ranks LOWEST, so it is served after every note above.
    assert_eq!(
        within(r.ask(Seen)).await.unwrap(),
        vec!["high-1", "high-2", "normal-1", "normal-2", "low-1", "low-2"]
    );
    within(system.shutdown()).await;
}

#[tokio::test]
async fn a_fifo_mailbox_ignores_priorities() {
    let system = ActorSystem::new();
    let r = system.spawn(Recorder { seen: vec![] });
    let (block, entered, release) = Block::new();
    r.tell(block).unwrap();
    within(entered).await.unwrap();
    r.tell(Note("low", Priority::LOW)).unwrap();
    r.tell(Note("high", Priority::HIGH)).unwrap();
    release.send(()).unwrap();
    assert_eq!(within(r.ask(Seen)).await.unwrap(), vec!["low", "high"]);
    within(system.shutdown()).await;
}
