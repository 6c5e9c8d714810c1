//! Memory handed back to the system as activations end, so a node that passivated a
//! burst of identities comes back close to its baseline by itself
//! (`granary_core::memory` explains glibc's side of it).
//!
//! - **Per thread:** every [`ENDS_PER_THREAD_RETURN`]th activation that ends on a
//!   thread returns the free top of that thread's arena
//!   (`granary_core::memory::return_thread_arena_top`). The ends of a burst free
//!   blocks small enough to wait in glibc's per-size lists, which never trims the top
//!   they border; at most that many ends' worth per thread is left for the thread's
//!   next larger free to hand back.
//! - **Per wave:** when a sweep finds the node's activations fell to half (or less)
//!   of their peak since the last return, and by at least [`WAVE_ENDS`], the free pages
//!   inside every arena go back too (`granary_core::memory::return_free_heap`, on a
//!   blocking thread: it walks every arena's free lists). Without it the node that
//!   passivated 50,000 identities stays at ~4× its baseline (`docs/BENCHMARKS.md`,
//!   session 34).

use std::cell::Cell;

use parking_lot::Mutex;

/// How many activation ends on one thread between two returns of its arena's top.
pub(crate) const ENDS_PER_THREAD_RETURN: u32 = 256;

/// The fewest activations a wave must have ended before the free heap is returned.
pub(crate) const WAVE_ENDS: usize = 4096;

thread_local! {
    /// Activation ends on this thread since its arena's top was last returned.
    static ENDS_HERE: Cell<u32> = const { Cell::new(0) };
}

/// Counts an activation that ended on this thread; every
/// [`ENDS_PER_THREAD_RETURN`]th returns the thread's arena top.
pub(crate) fn activation_ended_on_this_thread() {
    let due = ENDS_HERE.with(|ends| {
        let count = ends.get() + 1;
        let due = count >= ENDS_PER_THREAD_RETURN;
        ends.set(if due { 0 } else { count });
        due
    });
    if due {
        granary_core::memory::return_thread_arena_top();
    }
}

/// The activation count's peak since the free heap was last returned.
#[derive(Default)]
pub(crate) struct Waves {
    peak: Mutex<usize>,
}

impl Waves {
    /// Records the node's activation count at a sweep; `true` when a wave of ends
    /// has passed (the count fell to half its peak or less, by [`WAVE_ENDS`] or more)
    /// and the free heap should go back now. The peak then starts again from `live`.
    pub(crate) fn wave_passed(&self, live: usize) -> bool {
        let mut peak = self.peak.lock();
        if live >= *peak {
            *peak = live;
            return false;
        }
        let passed = *peak - live >= WAVE_ENDS && live <= *peak / 2;
        if passed {
            *peak = live;
        }
        passed
    }
}

/// Hands the free heap back on a blocking thread (see the module documentation), and
/// this thread's arena top at once.
pub(crate) fn return_free_heap_soon() {
    granary_core::memory::return_thread_arena_top();
    tokio::task::spawn_blocking(granary_core::memory::return_free_heap);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wave_passes_once_the_count_halved_by_enough_ends() {
        let waves = Waves::default();
        assert!(!waves.wave_passed(10_000), "rising");
        assert!(
            !waves.wave_passed(6_000),
            "down 4,000: fewer than WAVE_ENDS"
        );
        assert!(!waves.wave_passed(5_001), "down 4,999 but above half");
        assert!(waves.wave_passed(5_000), "half, by 5,000");
        assert!(
            !waves.wave_passed(1_000),
            "the peak starts again at 5,000: down 4,000"
        );
        assert!(waves.wave_passed(0), "down 5,000 from the new peak");
    }

    #[test]
    fn a_node_that_never_held_many_activations_never_returns_its_heap() {
        let waves = Waves::default();
        for _ in 0..3 {
            assert!(!waves.wave_passed(3_000));
            assert!(!waves.wave_passed(0), "3,000 ends: fewer than WAVE_ENDS");
        }
    }

    #[test]
    fn counting_ends_on_a_thread_returns_its_top_every_so_many() {
        std::thread::spawn(|| {
            for _ in 0..ENDS_PER_THREAD_RETURN - 1 {
                activation_ended_on_this_thread();
            }
            assert_eq!(ENDS_HERE.with(Cell::get), ENDS_PER_THREAD_RETURN - 1);
            activation_ended_on_this_thread();
            assert_eq!(ENDS_HERE.with(Cell::get), 0, "returned and started again");
        })
        .join()
        .expect("the counting thread");
    }
}
