//! The deadlines of a system's local asks, kept by the system instead of one tokio
//! timer per ask.
//!
//! A tokio `Sleep` costs two acquisitions of the runtime's one timer lock per ask
//! (registering it when the reply is not there yet, and removing it when the reply
//! comes first, which is nearly always), and that lock is shared by every worker
//! and by the thread that runs the timer wheel. With two workers bouncing asks
//! those acquisitions were a tenth of an activation's cost (`docs/BENCHMARKS.md`,
//! session 18).
//!
//! Here an ask registers its deadline in one of [`SHARDS`] small tables, picked by
//! the registering thread (so two workers do not share a lock or a cache line), and
//! removes it when the reply comes. One sweeper task per system sleeps until the
//! earliest deadline any table holds and wakes the asks whose deadline passed. In
//! the common case (a reply within microseconds, a timeout of seconds) the sweeper
//! sleeps a whole timeout between wake-ups, however many asks come and go.
//!
//! Each table keeps its pending asks in a slab (the waker and whether it expired)
//! and their deadlines in a min-heap. A finished ask leaves its heap entry behind
//! (removing from the middle of a heap is costly); those are dropped when they reach
//! the top, and the heap is rebuilt from the live entries once it holds more than
//! twice as many as the slab, so its size stays bounded by the asks in flight.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use slab::Slab;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::DeadlinePassed;

/// Tables per system: enough that each worker thread of a runtime usually has one
/// to itself.
const SHARDS: usize = 16;

/// Heap entries allowed beyond twice the pending asks before a table is rebuilt.
const HEAP_SLACK: usize = 32;

/// "No deadline" for [`AskDeadlines::sweep_at`].
const NEVER: u64 = u64::MAX;

/// An ask's place in a table: its slab key and the sequence number that tells it
/// apart from a later ask given the same key.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    shard: usize,
    key: usize,
    seq: u64,
}

/// A pending ask: who to wake, and whether its deadline passed.
struct Pending {
    seq: u64,
    waker: Waker,
    expired: bool,
}

/// One table of pending asks.
#[derive(Default)]
struct Table {
    next_seq: u64,
    pending: Slab<Pending>,
    /// (deadline, seq, key) of every registered ask, finished ones included until
    /// they reach the top or the heap is rebuilt.
    deadlines: BinaryHeap<Reverse<(Instant, u64, usize)>>,
}

impl Table {
    fn is_live(&self, seq: u64, key: usize) -> bool {
        self.pending.get(key).is_some_and(|p| p.seq == seq)
    }

    /// Marks the asks due by `now` expired (pushing their wakers to `wake`) and
    /// returns the earliest deadline still pending.
    fn expire(&mut self, now: Instant, wake: &mut Vec<Waker>) -> Option<Instant> {
        while let Some(&Reverse((deadline, seq, key))) = self.deadlines.peek() {
            if !self.is_live(seq, key) {
                self.deadlines.pop();
                continue;
            }
            if deadline > now {
                return Some(deadline);
            }
            self.deadlines.pop();
            let pending = &mut self.pending[key];
            pending.expired = true;
            wake.push(pending.waker.clone());
        }
        None
    }
}

/// A table on its own cache line.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Table>);

/// The deadlines of one system's pending local asks (see the module docs).
pub(crate) struct AskDeadlines {
    shards: Box<[Shard]>,
    /// Where the deadlines are counted from (nanoseconds in `sweep_at`).
    epoch: Instant,
    /// When the sweeper wakes next (nanoseconds since `epoch`), or [`NEVER`]; an
    /// ask due earlier wakes it. [`NEVER`] while it scans, so an ask registered
    /// meanwhile wakes it again rather than being missed.
    sweep_at: AtomicU64,
    sweeper_started: AtomicBool,
    /// Wakes the sweeper: an earlier deadline, or this value being dropped.
    wake_sweeper: Arc<Notify>,
    runtime: tokio::runtime::Handle,
}

impl AskDeadlines {
    /// Deadlines whose sweeper (started with the first ask) runs on `runtime`.
    pub(crate) fn new(runtime: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            epoch: Instant::now(),
            sweep_at: AtomicU64::new(NEVER),
            sweeper_started: AtomicBool::new(false),
            wake_sweeper: Arc::new(Notify::new()),
            runtime,
        })
    }

    /// `future`, given up with `Err(DeadlinePassed)` at `deadline`.
    pub(crate) fn within<F: Future>(
        self: &Arc<Self>,
        deadline: Instant,
        future: F,
    ) -> Within<'_, F> {
        Within {
            future,
            deadlines: self,
            deadline,
            ticket: None,
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(NEVER - 1)
    }

    fn register(self: &Arc<Self>, deadline: Instant, waker: &Waker) -> Ticket {
        let shard = thread_shard();
        let ticket = {
            let mut table = self.shards[shard].0.lock();
            table.next_seq += 1;
            let seq = table.next_seq;
            let key = table.pending.insert(Pending {
                seq,
                waker: waker.clone(),
                expired: false,
            });
            table.deadlines.push(Reverse((deadline, seq, key)));
            if table.deadlines.len() > 2 * table.pending.len() + HEAP_SLACK {
                let Table {
                    pending, deadlines, ..
                } = &mut *table;
                deadlines.retain(|Reverse((_, seq, key))| {
                    pending.get(*key).is_some_and(|p| p.seq == *seq)
                });
            }
            Ticket { shard, key, seq }
        };
        if self.nanos(deadline) < self.sweep_at.load(Ordering::Acquire) {
            self.wake_sweeper();
        }
        ticket
    }

    /// Whether the ask's deadline passed (then it is forgotten); if not, `waker` is
    /// the one to wake when it does.
    fn poll_expired(&self, ticket: Ticket, waker: &Waker) -> bool {
        let mut table = self.shards[ticket.shard].0.lock();
        match table.pending.get_mut(ticket.key) {
            Some(p) if p.seq == ticket.seq => {
                if p.expired {
                    table.pending.remove(ticket.key);
                    return true;
                }
                if !p.waker.will_wake(waker) {
                    p.waker = waker.clone();
                }
                false
            }
            // Not registered any more: cannot happen (only `Within` removes it).
            _ => true,
        }
    }

    fn forget(&self, ticket: Ticket) {
        let mut table = self.shards[ticket.shard].0.lock();
        if table.is_live(ticket.seq, ticket.key) {
            table.pending.remove(ticket.key);
        }
    }

    /// Starts the sweeper on the first ask, else tells it of an earlier deadline.
    fn wake_sweeper(self: &Arc<Self>) {
        if !self.sweeper_started.swap(true, Ordering::AcqRel) {
            let deadlines = Arc::downgrade(self);
            let wake = self.wake_sweeper.clone();
            self.runtime.spawn(sweep(deadlines, wake));
        }
        self.wake_sweeper.notify_one();
    }

    /// Expires every ask due by `now`; returns the earliest deadline left.
    fn expire(&self, now: Instant) -> Option<Instant> {
        self.sweep_at.store(NEVER, Ordering::Release);
        let mut wake = Vec::new();
        let mut earliest: Option<Instant> = None;
        for shard in self.shards.iter() {
            if let Some(next) = shard.0.lock().expire(now, &mut wake) {
                earliest = Some(earliest.map_or(next, |e| e.min(next)));
            }
        }
        for waker in wake {
            waker.wake();
        }
        if let Some(next) = earliest {
            // An ask registered since the store above found `NEVER` and woke the
            // sweeper already; this one only lowers the bar for later ones.
            self.sweep_at.store(self.nanos(next), Ordering::Release);
        }
        earliest
    }

    /// Asks pending in all tables, and heap entries held (for tests).
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(p, h), shard| {
            let table = shard.0.lock();
            (p + table.pending.len(), h + table.deadlines.len())
        })
    }
}

impl Drop for AskDeadlines {
    fn drop(&mut self) {
        // The sweeper holds only a weak reference: woken, it finds it gone and ends.
        self.wake_sweeper.notify_one();
    }
}

/// The sweeper: wakes at the earliest deadline (or when told of an earlier one),
/// expires what is due, and ends once its system's deadlines are dropped.
async fn sweep(deadlines: Weak<AskDeadlines>, wake: Arc<Notify>) {
    loop {
        let next = match deadlines.upgrade() {
            Some(deadlines) => deadlines.expire(Instant::now()),
            None => return,
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

/// The table the current thread registers in: threads take tables in turn.
fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

pin_project_lite::pin_project! {
    /// A future given up at a deadline kept by its system's ask deadlines
    /// ([`crate::ActorSystem::within`]). It registers the deadline only if the
    /// future is not done on its first poll.
    pub struct Within<'a, F> {
        #[pin]
        future: F,
        deadlines: &'a Arc<AskDeadlines>,
        deadline: Instant,
        ticket: Option<Ticket>,
    }

    impl<'a, F> PinnedDrop for Within<'a, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(ticket) = this.ticket.take() {
                this.deadlines.forget(ticket);
            }
        }
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Result<F::Output, DeadlinePassed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            if let Some(ticket) = this.ticket.take() {
                this.deadlines.forget(ticket);
            }
            return Poll::Ready(Ok(output));
        }
        match *this.ticket {
            None => {
                *this.ticket = Some(this.deadlines.register(*this.deadline, cx.waker()));
                Poll::Pending
            }
            Some(ticket) => {
                if this.deadlines.poll_expired(ticket, cx.waker()) {
                    *this.ticket = None;
                    Poll::Ready(Err(DeadlinePassed))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A future that never completes.
    fn never() -> std::future::Pending<()> {
        std::future::pending()
    }

    /// An ask whose reply never comes gives up at its deadline, not before.
    #[tokio::test(start_paused = true)]
    async fn a_pending_future_is_given_up_at_its_deadline() {
        let deadlines = AskDeadlines::new(tokio::runtime::Handle::current());
        let start = Instant::now();
        let deadline = start + Duration::from_millis(250);
        assert!(deadlines.within(deadline, never()).await.is_err());
        let late = Instant::now() - deadline;
        assert!(late < Duration::from_millis(2), "{late:?} late");
        assert_eq!(deadlines.sizes(), (0, 0));
    }

    /// A short deadline registered after a long one fires on time (the sweeper is
    /// woken to sleep less), and the long one still fires at its own.
    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_registered_later_fires_first() {
        let deadlines = AskDeadlines::new(tokio::runtime::Handle::current());
        let start = Instant::now();
        let long = {
            let deadlines = deadlines.clone();
            tokio::spawn(async move {
                let r = deadlines
                    .within(start + Duration::from_secs(5), never())
                    .await;
                (r.is_err(), Instant::now())
            })
        };
        tokio::task::yield_now().await;
        let short = start + Duration::from_millis(100);
        assert!(deadlines.within(short, never()).await.is_err());
        assert!(Instant::now() - short < Duration::from_millis(2));
        let (elapsed, at) = long.await.unwrap();
        assert!(elapsed);
        let long_deadline = start + Duration::from_secs(5);
        assert!(at >= long_deadline && at - long_deadline < Duration::from_millis(2));
    }

    /// Futures that finish first leave nothing pending, and the heap entries they
    /// leave behind stay bounded however many come and go.
    #[tokio::test(start_paused = true)]
    async fn finished_futures_leave_a_bounded_heap() {
        let deadlines = AskDeadlines::new(tokio::runtime::Handle::current());
        let far = Instant::now() + Duration::from_secs(60);
        let mut outstanding = Vec::new();
        for _ in 0..5 {
            let d = deadlines.clone();
            outstanding.push(tokio::spawn(async move { d.within(far, never()).await }));
        }
        tokio::task::yield_now().await;
        for _ in 0..10_000 {
            let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
            let d = deadlines.clone();
            let waiting = tokio::spawn(async move { d.within(far, rx).await });
            tokio::task::yield_now().await;
            tx.send(7).unwrap();
            assert_eq!(waiting.await.unwrap().unwrap().unwrap(), 7);
        }
        let (pending, heap) = deadlines.sizes();
        assert_eq!(pending, 5);
        assert!(
            heap <= 2 * pending + (HEAP_SLACK + 1) * SHARDS,
            "heap holds {heap}"
        );
        for task in outstanding {
            task.abort();
        }
    }

    /// Dropping the deadlines ends the sweeper task.
    #[tokio::test]
    async fn the_sweeper_ends_with_its_deadlines() {
        let deadlines = AskDeadlines::new(tokio::runtime::Handle::current());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let d = deadlines.clone();
        let waiting = tokio::spawn(async move {
            d.within(Instant::now() + Duration::from_secs(60), rx)
                .await
                .is_ok()
        });
        tokio::task::yield_now().await;
        tx.send(()).unwrap();
        assert!(waiting.await.unwrap());
        let weak_wake = Arc::downgrade(&deadlines.wake_sweeper);
        drop(deadlines);
        // The sweeper held the only other reference to the notify; it is gone
        // once the sweeper returned.
        tokio::time::timeout(Duration::from_secs(5), async {
            while weak_wake.strong_count() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the sweeper ended");
    }
}
