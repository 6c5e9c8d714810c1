//! Dead letters are never lost: counted exactly per reason, a subscriber that keeps
//! up receives every one, and one that lags is told exactly how many it missed.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::within;
use granary_core::prelude::*;
use granary_core::{DeadLetterCounts, EventRecvError, MailboxConfig};
use tokio::sync::{watch, Semaphore};

/// Blocks in its handler until the test releases it, so its bounded mailbox fills.
struct Stuck {
    gate: Arc<Semaphore>,
    entered: Arc<Semaphore>,
}
impl Actor for Stuck {}

struct Hold;
impl Message for Hold {
    type Reply = ();
}
impl Handler<Hold> for Stuck {
    async fn handle(&mut self, _: Hold, _ctx: &mut Context<Self>) {
        self.entered.add_permits(1);
        let _ = self.gate.acquire().await;
    }
}

struct Gone;
impl Actor for Gone {}
impl Handler<Hold> for Gone {
    async fn handle(&mut self, _: Hold, _ctx: &mut Context<Self>) {}
}

const TOTAL: u64 = 100_000;
const PRODUCERS: u64 = 4;
/// A producer never lets the subscriber fall further behind than this (a quarter
/// of the default capacity per producer): the subscriber "keeps up".
const SLACK: u64 = 256;

/// A full bounded mailbox (every further tell is a `MailboxFull` dead letter) and
/// a stopped actor (every tell is an `ActorStopped` one).
async fn targets(system: &ActorSystem) -> (ActorRef<Stuck>, ActorRef<Gone>, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Semaphore::new(0));
    let stuck = system.spawn_props(
        Props::new(Stuck {
            gate: gate.clone(),
            entered: entered.clone(),
        })
        .with_mailbox(MailboxConfig::bounded(1)),
    );
    // One in the handler, one queued: the mailbox is full from then on.
    stuck.tell(Hold).unwrap();
    within(entered.acquire()).await.unwrap().forget();
    stuck.tell(Hold).unwrap();
    let gone = system.spawn(Gone);
    gone.stop();
    within(gone.wait_stopped()).await;
    (stuck, gone, gate)
}

/// Publishes `n` dead letters, half `MailboxFull`, half `ActorStopped`, pausing
/// whenever the subscriber (its count in `received`) is more than `SLACK` behind.
async fn produce(
    stuck: ActorRef<Stuck>,
    gone: ActorRef<Gone>,
    n: u64,
    produced: Arc<AtomicU64>,
    received: Option<watch::Receiver<u64>>,
) {
    for i in 0..n {
        if i % 2 == 0 {
            assert!(stuck.tell(Hold).is_err());
        } else {
            assert!(gone.tell(Hold).is_err());
        }
        let sent = produced.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(received) = &received {
            if i % 64 == 0 {
                let mut received = received.clone();
                tokio::time::timeout(
                    Duration::from_secs(30),
                    received.wait_for(|r| r + SLACK >= sent),
                )
                .await
                .expect("the subscriber keeps up")
                .expect("the subscriber is alive");
            }
        }
    }
}

/// `TOTAL` dead letters from `PRODUCERS` tasks at once.
async fn produce_concurrently(
    stuck: &ActorRef<Stuck>,
    gone: &ActorRef<Gone>,
    received: Option<watch::Receiver<u64>>,
) {
    let produced = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            tokio::spawn(produce(
                stuck.clone(),
                gone.clone(),
                TOTAL / PRODUCERS,
                produced.clone(),
                received.clone(),
            ))
        })
        .collect();
    for p in producers {
        within(p).await.unwrap();
    }
}

fn expected_counts(before: DeadLetterCounts) -> (u64, u64) {
    (
        before.mailbox_full + TOTAL / 2,
        before.actor_stopped + TOTAL / 2,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_dead_letters_are_counted_exactly_and_a_subscriber_that_keeps_up_receives_all(
) {
    let system = ActorSystem::new();
    let (stuck, gone, gate) = targets(&system).await;
    let before = system.dead_letters();
    let mut sub = system.events().subscribe::<DeadLetter>();
    let (count_tx, count_rx) = watch::channel(0u64);
    let subscriber = tokio::spawn(async move {
        let (mut full, mut stopped) = (0u64, 0u64);
        while full + stopped < TOTAL {
            match sub.recv().await {
                Ok(d) if d.reason == DeadLetterReason::MailboxFull => full += 1,
                Ok(d) if d.reason == DeadLetterReason::ActorStopped => stopped += 1,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => panic!("a subscriber that keeps up missed events: {e}"),
            }
            count_tx.send_replace(full + stopped);
        }
        (full, stopped, sub.missed())
    });
    produce_concurrently(&stuck, &gone, Some(count_rx)).await;
    let (full, stopped, missed) = within(subscriber).await.unwrap();
    assert_eq!((full, stopped, missed), (TOTAL / 2, TOTAL / 2, 0));
    let counts = system.dead_letters();
    assert_eq!(
        (counts.mailbox_full, counts.actor_stopped),
        expected_counts(before),
        "exact count per reason: {counts:?}"
    );
    assert_eq!(counts.total(), before.total() + TOTAL);
    gate.add_permits(usize::MAX >> 4);
    within(system.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_lags_is_told_exactly_how_many_it_missed_and_the_counts_stay_exact() {
    let system = ActorSystem::new();
    let (stuck, gone, gate) = targets(&system).await;
    let before = system.dead_letters();
    let mut sub = system.events().subscribe::<DeadLetter>();
    produce_concurrently(&stuck, &gone, None).await;
    // Read only now: most were overwritten.
    let (mut received, mut lagged) = (0u64, 0u64);
    while received + lagged < TOTAL {
        match within(sub.recv()).await {
            Ok(_) => received += 1,
            Err(EventRecvError::Lagged(n)) => lagged += n,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(received + lagged, TOTAL, "told exactly how many it missed");
    assert_eq!(sub.missed(), lagged);
    assert!(lagged > 0, "the subscriber lagged");
    assert!(
        sub.try_recv().is_none(),
        "nothing beyond the published ones"
    );
    let counts = system.dead_letters();
    assert_eq!(
        (counts.mailbox_full, counts.actor_stopped),
        expected_counts(before),
        "exact count per reason although the subscriber lagged: {counts:?}"
    );
    gate.add_permits(usize::MAX >> 4);
    within(system.shutdown()).await;
}
