//! Rate limiting for log lines an unauthenticated peer can trigger.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Lets at most `burst` lines through per `window`; the lines held back are counted and the
/// count is reported with the next line let through, so a flood of refused connections
/// writes a bounded number of lines and still says how many there were.
pub(crate) struct LogLimit {
    burst: u32,
    window: Duration,
    state: Mutex<State>,
}

struct State {
    window_start: Instant,
    let_through: u32,
    suppressed: u64,
}

impl LogLimit {
    pub(crate) fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            state: Mutex::new(State {
                window_start: Instant::now(),
                let_through: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(lines held back since the last one let through)` if this line may be
    /// written, `None` if it is held back.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut s = self.state.lock();
        let now = Instant::now();
        if now.duration_since(s.window_start) >= self.window {
            s.window_start = now;
            s.let_through = 0;
        }
        if s.let_through < self.burst {
            s.let_through += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_a_burst_through_then_counts_the_rest() {
        let limit = LogLimit::new(3, Duration::from_secs(3600));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        let limit = LogLimit::new(1, Duration::ZERO);
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), Some(0));
    }
}
