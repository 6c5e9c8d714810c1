//! tell, ask, FIFO per sender/receiver pair, recipients, refs.

mod common;

use std::collections::HashSet;

use common::within;
use granary_core::prelude::*;

struct Counter {
    n: u64,
}
impl Actor for Counter {}

struct Add(u64);
impl Message for Add {
    type Reply = u64;
}
impl Handler<Add> for Counter {
    async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 {
        self.n += msg.0;
        self.n
    }
}

struct Log {
    seen: Vec<(u32, u32)>,
}
impl Actor for Log {}
struct Entry(u32, u32);
impl Message for Entry {
    type Reply = ();
}
impl Handler<Entry> for Log {
    async fn handle(&mut self, msg: Entry, _ctx: &mut Context<Self>) {
        self.seen.push((msg.0, msg.1));
    }
}
struct Dump;
impl Message for Dump {
    type Reply = Vec<(u32, u32)>;
}
impl Handler<Dump> for Log {
    async fn handle(&mut self, _: Dump, _ctx: &mut Context<Self>) -> Vec<(u32, u32)> {
        std::mem::take(&mut self.seen)
    }
}

#[tokio::test]
async fn tell_then_ask_sees_every_earlier_tell() {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter { n: 0 });
    for _ in 0..1000 {
        counter.tell(Add(1)).unwrap();
    }
    assert_eq!(within(counter.ask(Add(0))).await.unwrap(), 1000);
    within(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_one_sender_arrive_in_send_order_with_concurrent_senders() {
    let system = ActorSystem::new();
    let log = system.spawn(Log { seen: Vec::new() });
    let mut tasks = Vec::new();
    for sender in 0..4u32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5000u32 {
                log.tell(Entry(sender, i)).unwrap();
                if i % 512 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    let seen = within(log.ask(Dump)).await.unwrap();
    assert_eq!(seen.len(), 20_000);
    let mut next = [0u32; 4];
    for (sender, i) in seen {
        assert_eq!(i, next[sender as usize], "sender {sender} out of order");
        next[sender as usize] += 1;
    }
    within(system.shutdown()).await;
}

#[tokio::test]
async fn refs_are_equal_and_hash_by_actor_id() {
    let system = ActorSystem::new();
    let a = system.spawn(Counter { n: 0 });
    let b = system.spawn(Counter { n: 0 });
    assert_eq!(a, a.clone());
    assert_ne!(a, b);
    // Refs hash by their immutable id; the mailbox's interior mutability is not
    // part of the key.
    #[allow(clippy::mutable_key_type)]
    let set: HashSet<_> = [a.clone(), a.clone(), b.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    assert_ne!(a.id(), b.id());
    within(system.shutdown()).await;
}

struct Other;
impl Actor for Other {}
impl Handler<Add> for Other {
    async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 {
        msg.0 * 100
    }
}

#[tokio::test]
async fn recipients_of_different_actor_types_share_one_list() {
    let system = ActorSystem::new();
    let list: Vec<Recipient<Add>> = vec![
        system.spawn(Counter { n: 0 }).recipient(),
        system.spawn(Other).recipient(),
    ];
    let mut answers = Vec::new();
    for r in &list {
        r.tell(Add(1)).unwrap();
        answers.push(within(r.ask(Add(2))).await.unwrap());
    }
    assert_eq!(answers, vec![3, 200]);
    within(system.shutdown()).await;
}

#[tokio::test]
async fn tell_to_a_stopped_actor_gives_the_message_back() {
    let system = ActorSystem::new();
    let counter = system.spawn(Counter { n: 0 });
    counter.stop();
    assert_eq!(within(counter.wait_stopped()).await, StopReason::Normal);
    match counter.tell(Add(41)) {
        Err(SendError::ActorStopped(Add(41))) => {}
        other => panic!("expected ActorStopped(Add(41)), got {other:?}"),
    }
    match within(counter.ask(Add(5))).await {
        Err(AskError::Send(SendError::ActorStopped(Add(5)))) => {}
        other => panic!("expected Send(ActorStopped), got {other:?}"),
    }
    within(system.shutdown()).await;
}
