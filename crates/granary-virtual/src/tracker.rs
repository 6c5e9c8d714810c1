//! Per-activation bookkeeping that makes passivation safe: every message passes
//! [`Tracker::enter`] before it is enqueued and [`Tracker::started`] when its handler
//! begins, so "nothing queued" is `entered == started`. Closing happens under the
//! same lock as entering, so no message slips into an activation that decided to
//! deactivate: later senders are told "not here" and go back to the directory.

use parking_lot::Mutex;
use tokio::time::Instant;

pub(crate) struct Tracker {
    state: Mutex<TrackState>,
}

struct TrackState {
    entered: u64,
    started: u64,
    finished: u64,
    closed: bool,
    /// Whether it was closed for being idle (passivation).
    closed_idle: bool,
    /// When the last handler began (at first: when the activation started).
    last_active: Instant,
}

impl Tracker {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(TrackState {
                entered: 0,
                started: 0,
                finished: 0,
                closed: false,
                closed_idle: false,
                last_active: Instant::now(),
            }),
        }
    }

    /// Admits one message; `false` once the activation closed.
    ///
    /// It leaves `last_active` alone: an admitted message keeps the activation from
    /// closing for idleness (`entered > started`) until its handler begins, which is
    /// when [`Tracker::started`] reads the clock (once per message, not twice).
    pub(crate) fn enter(&self) -> bool {
        let mut s = self.state.lock();
        if s.closed {
            return false;
        }
        s.entered += 1;
        true
    }

    /// A message that was admitted could not be enqueued after all.
    pub(crate) fn abandon(&self) {
        let mut s = self.state.lock();
        s.entered = s.entered.saturating_sub(1);
    }

    /// A handler begins.
    pub(crate) fn started(&self) {
        let mut s = self.state.lock();
        s.started += 1;
        s.last_active = Instant::now();
    }

    /// Closes if nothing is queued and the activation was idle since `idle_since`
    /// (a sweep reads the clock once for all its activations).
    pub(crate) fn try_close_idle(&self, idle_since: Instant) -> bool {
        let mut s = self.state.lock();
        if !s.closed && s.entered <= s.started && s.last_active <= idle_since {
            s.closed = true;
            s.closed_idle = true;
            return true;
        }
        false
    }

    /// Closes if nothing is queued.
    pub(crate) fn try_close_drained(&self) -> bool {
        let mut s = self.state.lock();
        if !s.closed && s.entered <= s.started {
            s.closed = true;
            return true;
        }
        false
    }

    /// Closes unconditionally (conflict, shutdown).
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
    }

    /// A handler ended.
    pub(crate) fn finished(&self) {
        self.state.lock().finished += 1;
    }

    /// Nothing queued and no handler running.
    pub(crate) fn is_idle(&self) -> bool {
        let s = self.state.lock();
        s.entered <= s.finished
    }

    /// Whether it closed because the activation was idle (passivation).
    pub(crate) fn closed_for_idle(&self) -> bool {
        self.state.lock().closed_idle
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_tracker_admits_nothing_and_queued_work_blocks_closing() {
        let t = Tracker::new();
        assert!(t.enter());
        assert!(!t.try_close_drained(), "one message is queued");
        t.started();
        assert!(t.try_close_drained());
        assert!(!t.enter(), "closed activations admit nothing");
    }
}
