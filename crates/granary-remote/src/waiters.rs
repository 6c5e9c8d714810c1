//! A count of the tasks waiting on something, kept by a guard: whoever would wake them
//! reads the count and skips the wake-up (and its lock) while it is zero. Used by the
//! flow-control credits (`remote/credits.rs`) and by a peer's room
//! (`transport/room.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};

/// One waiter counted in; counted out when dropped (also when its wait is dropped
/// midway).
pub(crate) struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    /// Counts one waiter in `count` (sequentially consistent with the waker's load, so
    /// a waker that reads zero comes before the waiter's own check in every order).
    pub(crate) fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
