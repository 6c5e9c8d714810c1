//! Room on the way to one peer: what a sender refused for backpressure waits for.
//!
//! Every queue of a peer (its lanes and its bulk lane) tells the peer's `Room` when its
//! writer has taken a batch off it, or when it was cleared; `ActorRef::send` to an actor
//! on that peer, refused because a queue was full, waits here for the next such moment
//! and tries again ([`crate::remote`]'s outbound ref). Nothing is locked while nobody
//! waits: a batch taken costs one atomic increment and one load.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::waiters::Waiting;

/// Counts the batches taken off a peer's queues and wakes whoever waits for one.
#[derive(Default)]
pub(crate) struct Room {
    /// Batches taken (or queues cleared) so far.
    drained: AtomicU64,
    /// Senders in [`Room::wait`].
    waiting: AtomicUsize,
    notify: Notify,
}

impl Room {
    /// The count of batches taken, to pass to [`Room::wait`]: read it *before* the send
    /// attempt, so a batch taken between the attempt and the wait is not missed.
    pub(crate) fn mark(&self) -> u64 {
        self.drained.load(Ordering::SeqCst)
    }

    /// A queue of the peer had a batch taken or was cleared: there is room.
    pub(crate) fn drained(&self) {
        self.drained.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.notify.notify_waiters();
        }
    }

    /// Waits until a batch has been taken since `mark` (at once if one has).
    pub(crate) async fn wait(&self, mark: u64) {
        let _counted = Waiting::enter(&self.waiting);
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check: a `drained` after it wakes this wait, and
            // one before it is seen by the check.
            notified.as_mut().enable();
            if self.drained.load(Ordering::SeqCst) != mark {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_wait_ends_with_the_next_batch_and_not_before() {
        let room = Arc::new(Room::default());
        let mark = room.mark();
        let waiter = tokio::spawn({
            let room = room.clone();
            async move { room.wait(mark).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "nothing was taken yet");
        room.drained();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the batch taken")
            .expect("the waiter task");
    }

    #[tokio::test]
    async fn a_batch_taken_before_the_wait_is_not_missed() {
        let room = Room::default();
        let mark = room.mark();
        room.drained();
        tokio::time::timeout(Duration::from_secs(5), room.wait(mark))
            .await
            .expect("returns at once");
    }
}
