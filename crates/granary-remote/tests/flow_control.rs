//! Flow control from the receiving actor back to the sender, over real sockets
//! (`docs/wire.md`, "Flow control"): a fast authenticated sender cannot grow a slow
//! actor's mailbox on another node beyond `TransportConfig::inbound_capacity`; the sender
//! sees `Backpressure` instead, loses nothing, and other connections keep flowing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use granary_core::prelude::*;
use granary_core::RemoteError;
use granary_remote::wire::{Frame, FrameHeader, FrameKind};
use granary_remote::{
    register_message, ActorRefRemoteExt, InboundHandler, NodeId, RemoteNode, SendError,
    SendOptions, Stall, Transport, TransportConfig,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};

const CAPACITY: usize = 64;
const WAIT: Duration = Duration::from_secs(20);

#[derive(Serialize, Deserialize, Debug)]
struct Work(u64);
impl Message for Work {
    type Reply = ();
}
register_message!(Work, "flow.Work");

/// Takes one gate permit per message, then checks the order and counts it.
struct Slow {
    gate: Arc<Semaphore>,
    handled: Arc<AtomicU64>,
}
impl Actor for Slow {}
impl Handler<Work> for Slow {
    async fn handle(&mut self, msg: Work, _ctx: &mut Context<Self>) {
        self.gate.acquire().await.unwrap().forget();
        let seen = self.handled.fetch_add(1, Ordering::SeqCst);
        assert_eq!(msg.0, seen, "messages from one sender arrive in order");
    }
}

async fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Node `b` with the [`Slow`] actor exposed as "slow" (its gate closed), node `a` with
/// one data connection and a 64 KiB queue, and `a`'s ref to "slow".
struct SlowPair {
    gate: Arc<Semaphore>,
    handled: Arc<AtomicU64>,
    a_system: ActorSystem,
    a: RemoteNode,
    b_system: ActorSystem,
    b: RemoteNode,
    to_slow: ActorRef<Slow>,
}

async fn slow_pair() -> SlowPair {
    let gate = Arc::new(Semaphore::new(0));
    let handled = Arc::new(AtomicU64::new(0));
    let b_system = ActorSystem::new();
    let b = RemoteNode::start(
        b_system.clone(),
        TransportConfig::new("flow", "secret").with_inbound_capacity(CAPACITY),
    )
    .await
    .unwrap();
    let slow = b_system.spawn(Slow {
        gate: gate.clone(),
        handled: handled.clone(),
    });
    b.expose("slow", &slow).unwrap().accept::<Work>().unwrap();
    let a_system = ActorSystem::new();
    let a = RemoteNode::start(
        a_system.clone(),
        TransportConfig::new("flow", "secret")
            .with_parallelism(1)
            .with_queue_capacity(64 * 1024),
    )
    .await
    .unwrap();
    let to_slow = ActorRef::<Slow>::remote(&a, b.local_addr(), "slow");
    SlowPair {
        gate,
        handled,
        a_system,
        a,
        b_system,
        b,
        to_slow,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_sender_gets_backpressure_while_the_slow_actors_mailbox_stays_bounded() {
    let SlowPair {
        gate,
        handled,
        a_system,
        a,
        b_system,
        b,
        to_slow,
    } = slow_pair().await;

    // Send as fast as possible. Without flow control the receiver's reader moves every
    // frame into the unbounded mailbox and the sender never runs out of queue.
    let mut sent = 0u64;
    let mut peak_backlog = 0;
    let refused = loop {
        match to_slow.tell(Work(sent)) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        if sent.is_multiple_of(64) {
            peak_backlog = peak_backlog.max(b.inbound_backlog("slow").unwrap());
            tokio::task::yield_now().await;
        }
        assert!(
            sent < 2_000_000,
            "no backpressure after {sent} sends; receiver backlog {:?}",
            b.inbound_backlog("slow")
        );
    };
    assert!(
        matches!(
            &refused,
            granary_core::SendError::Remote {
                error: RemoteError::Backpressure(_),
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(sent > CAPACITY as u64, "only {sent} sends went out");
    // The receiver holds exactly its capacity, no more, while the sender is refused.
    poll_until("the slow actor's backlog to fill", || {
        b.inbound_backlog("slow") == Some(CAPACITY)
    })
    .await;
    peak_backlog = peak_backlog.max(b.inbound_backlog("slow").unwrap());
    assert!(peak_backlog <= CAPACITY, "backlog reached {peak_backlog}");
    assert!(a.transport().stats().backpressure >= 1);

    // Open the gate: everything the sender got `Ok` for arrives, in order, and the
    // backlog drains.
    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    poll_until("every accepted message to be handled", || {
        handled.load(Ordering::SeqCst) == sent
    })
    .await;
    poll_until("the backlog to drain", || {
        b.inbound_backlog("slow") == Some(0)
    })
    .await;
    // And the link works again.
    to_slow.tell(Work(sent)).unwrap();
    poll_until("a message after the drain", || {
        handled.load(Ordering::SeqCst) == sent + 1
    })
    .await;
    a_system.shutdown().await;
    b_system.shutdown().await;
}

/// Holds back frames for "slow" until the gate opens; the rest are passed on at once.
struct Gated {
    gate: Arc<Semaphore>,
    passed: mpsc::UnboundedSender<String>,
}

impl InboundHandler for Gated {
    fn on_frame(&self, from: NodeId, frame: Frame) {
        if let Some(stall) = self.on_frame_paced(from, frame) {
            tokio::spawn(stall);
        }
    }

    fn on_frame_paced(&self, _from: NodeId, frame: Frame) -> Option<Stall> {
        let recipient = frame.recipient().to_owned();
        if recipient != "slow" {
            let _ = self.passed.send(recipient);
            return None;
        }
        let gate = self.gate.clone();
        let passed = self.passed.clone();
        Some(Box::pin(async move {
            gate.acquire().await.unwrap().forget();
            let _ = passed.send(recipient);
        }))
    }
}

fn tell(recipient: &str) -> FrameHeader<'_> {
    FrameHeader {
        kind: FrameKind::Tell,
        channel: 0,
        type_tag: 1,
        correlation: 0,
        sender: "",
        recipient,
        trace: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_back_connection_stalls_only_the_pairs_on_it() {
    let gate = Arc::new(Semaphore::new(0));
    let (passed, mut arrived) = mpsc::unbounded_channel();
    let b = Transport::bind(
        TransportConfig::new("flow", "secret"),
        Gated {
            gate: gate.clone(),
            passed,
        },
    )
    .await
    .unwrap();
    let a = Transport::bind(
        TransportConfig::new("flow", "secret")
            .with_parallelism(2)
            .with_queue_capacity(64 * 1024),
        |_: NodeId, _: Frame| {},
    )
    .await
    .unwrap();
    let to = b.local_addr();
    let lane_0 = SendOptions::data().partition_key(0);
    let lane_1 = SendOptions::data().partition_key(1);
    let body = Bytes::from(vec![7u8; 1024]);

    // Fill data connection 0 with frames for the held-back recipient.
    let mut sent = 0u64;
    let refused = loop {
        match a.send(to, tell("slow"), body.clone(), lane_0) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        if sent.is_multiple_of(16) {
            tokio::task::yield_now().await;
        }
        assert!(sent < 1_000_000, "no backpressure after {sent} sends");
    };
    assert!(
        matches!(refused, SendError::Backpressure { .. }),
        "{refused:?}"
    );
    // Another recipient on the same connection waits too (head-of-line): the sender
    // sees it as backpressure on that connection.
    assert!(matches!(
        a.send(to, tell("fast"), body.clone(), lane_0),
        Err(SendError::Backpressure { .. })
    ));
    // The other data connection and the control connection are not held back.
    a.send(to, tell("fast"), body.clone(), lane_1).unwrap();
    a.send(to, tell("control"), body.clone(), SendOptions::control())
        .unwrap();
    let mut others = Vec::new();
    while others.len() < 2 {
        let got = tokio::time::timeout(WAIT, arrived.recv())
            .await
            .expect("frames on other connections arrive while one is held back")
            .unwrap();
        if got != "slow" {
            others.push(got);
        }
    }
    others.sort();
    assert_eq!(others, ["control", "fast"]);

    // Opening the gate lets everything that was accepted through.
    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let mut slow = 0;
    while slow < sent {
        let got = tokio::time::timeout(WAIT, arrived.recv())
            .await
            .expect("held-back frames arrive once the gate opens")
            .unwrap();
        if got == "slow" {
            slow += 1;
        }
    }
    a.shutdown();
    b.shutdown();
}

/// `ActorRef::send` to an actor on another node waits while the transport's queue is
/// full, where `tell` fails with `Backpressure`: the same full queue that refused a
/// tell holds a `send` until the receiver moves, then everything arrives in order and
/// nothing became a dead letter while it waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_waits_for_room_where_tell_is_refused_and_loses_nothing() {
    const MORE: u64 = 2_000;
    let SlowPair {
        gate,
        handled,
        a_system,
        a: _a,
        b_system,
        b,
        to_slow,
    } = slow_pair().await;

    // Fill the way until a tell is refused: the queue is full and stays full while
    // the gate is closed.
    let mut sent = 0u64;
    loop {
        match to_slow.tell(Work(sent)) {
            Ok(()) => sent += 1,
            Err(granary_core::SendError::Remote {
                error: RemoteError::Backpressure(_),
                ..
            }) => break,
            Err(other) => panic!("unexpected refusal: {other:?}"),
        }
        if sent.is_multiple_of(64) {
            tokio::task::yield_now().await;
        }
        assert!(sent < 2_000_000, "no backpressure after {sent} sends");
    }
    let dead_before = a_system.dead_letters().total();

    // `send` the next messages from a task: its first one meets the full queue, so
    // without waiting it would end at once with the same `Backpressure`.
    let sender = tokio::spawn({
        let to_slow = to_slow.clone();
        async move {
            for n in sent..sent + MORE {
                to_slow.send(Work(n)).await?;
            }
            Ok::<(), granary_core::SendError<Work>>(())
        }
    });
    poll_until("the slow actor's backlog to fill", || {
        b.inbound_backlog("slow") == Some(CAPACITY)
    })
    .await;
    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    tokio::time::timeout(WAIT, sender)
        .await
        .expect("the sends finish once the receiver moves")
        .expect("the sending task")
        .expect("send waits for room instead of failing");
    poll_until("every message to be handled", || {
        handled.load(Ordering::SeqCst) == sent + MORE
    })
    .await;
    assert_eq!(
        a_system.dead_letters().total(),
        dead_before,
        "a send that waited is not a dead letter"
    );
    a_system.shutdown().await;
    b_system.shutdown().await;
}
