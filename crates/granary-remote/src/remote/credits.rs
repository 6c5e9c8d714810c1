//! Flow-control credits of an exposed actor or a door: one per message from the wire
//! that may wait for it at once (`TransportConfig::inbound_capacity`).
//!
//! Every message from the wire takes one and gives it back once its recipient took it,
//! so taking and giving back sit on the inbound hot path. A `tokio::sync::Semaphore`
//! did the same with a mutex locked on every give-back (its waiter list); here a credit
//! is one atomic counter, and the waiter list is touched only while a reader actually
//! waits for a credit (a recipient that has fallen behind).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::waiters::Waiting;

/// A recipient's free credits.
pub(crate) struct Credits {
    free: AtomicUsize,
    /// Readers waiting in [`Credits::take`].
    waiting: AtomicUsize,
    /// Signalled when a credit comes back while someone waits.
    returned: Notify,
}

/// One credit, held until the message it came with was taken; dropping it gives it
/// back.
pub(crate) struct Credit(Arc<Credits>);

impl Credits {
    /// `capacity` free credits.
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            free: AtomicUsize::new(capacity),
            waiting: AtomicUsize::new(0),
            returned: Notify::new(),
        })
    }

    /// Credits free now.
    pub(crate) fn available(&self) -> usize {
        self.free.load(Ordering::Relaxed)
    }

    /// A credit if one is free.
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Credit> {
        self.free
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |free| {
                free.checked_sub(1)
            })
            .ok()?;
        Some(Credit(self.clone()))
    }

    /// A credit, once one is free.
    pub(crate) async fn take(self: Arc<Self>) -> Credit {
        let _counted = Waiting::enter(&self.waiting);
        loop {
            // A give-back after `waiting` went up either is seen by `try_take` below or
            // notifies (`notify_one` keeps the wake-up for a waiter not yet parked).
            if let Some(credit) = self.try_take() {
                return credit;
            }
            self.returned.notified().await;
        }
    }
}

impl Drop for Credit {
    fn drop(&mut self) {
        let credits = &self.0;
        credits.free.fetch_add(1, Ordering::SeqCst);
        if credits.waiting.load(Ordering::SeqCst) > 0 {
            credits.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn credits_run_out_and_come_back() {
        let credits = Credits::new(2);
        let a = credits.try_take().expect("first");
        let _b = credits.try_take().expect("second");
        assert!(credits.try_take().is_none());
        assert_eq!(credits.available(), 0);
        drop(a);
        assert_eq!(credits.available(), 1);
        assert!(credits.try_take().is_some());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_credit_given_back() {
        let credits = Credits::new(1);
        let held = credits.try_take().expect("the only credit");
        let waiter = tokio::spawn(credits.clone().take());
        // The waiter cannot finish while the credit is held.
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        let credit = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the give-back")
            .expect("the waiter task");
        assert_eq!(credits.available(), 0);
        drop(credit);
        assert_eq!(credits.available(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_waiters_on_two_threads_all_get_a_credit() {
        let credits = Credits::new(1);
        let mut waiters = Vec::new();
        for _ in 0..64 {
            let credits = credits.clone();
            waiters.push(tokio::spawn(async move {
                for _ in 0..100 {
                    let credit = credits.clone().take().await;
                    tokio::task::yield_now().await;
                    drop(credit);
                }
            }));
        }
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(20), waiter)
                .await
                .expect("no waiter is left asleep with a credit free")
                .expect("the waiter task");
        }
        assert_eq!(credits.available(), 1);
    }
}
