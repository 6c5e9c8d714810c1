//! Timers scheduled by an actor for itself: [`crate::Context::send_after`] and
//! [`crate::Context::interval`]. Each timer is a small tokio task that tells the
//! actor; all of an actor's timers are cancelled when it stops or restarts.

use tokio::task::AbortHandle;

/// A scheduled timer; [`TimerHandle::cancel`] stops it. Dropping the handle
/// does not cancel the timer.
#[derive(Debug, Clone)]
pub struct TimerHandle {
    abort: AbortHandle,
}

impl TimerHandle {
    pub(crate) fn new(abort: AbortHandle) -> Self {
        Self { abort }
    }

    /// Cancels the timer; a message not yet sent will not be sent.
    pub fn cancel(&self) {
        self.abort.abort();
    }

    /// Whether the timer is finished (fired for the last time, or cancelled).
    pub fn is_finished(&self) -> bool {
        self.abort.is_finished()
    }
}
