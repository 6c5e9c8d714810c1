//! Failure injection by MTTF (seed 003 §5.4): each member lives a time drawn uniformly
//! from [0.25, 1.75] × MTTF, is killed, and is restarted after a fixed delay, until the
//! run ends (the harness does the killing, see `harness`).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Lifetimes of one member.
pub(super) struct Lifetimes {
    mttf: Duration,
    rng: StdRng,
}

impl Lifetimes {
    pub(super) fn new(mttf: Duration, seed: u64) -> Self {
        Self {
            mttf,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The next lifetime: uniform in [0.25, 1.75] × MTTF (mean MTTF).
    pub(super) fn next(&mut self) -> Duration {
        self.mttf.mul_f64(self.rng.random_range(0.25..1.75))
    }
}
