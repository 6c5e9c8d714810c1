//! The collector's view: reports counted across every server, their round trips, and
//! what went wrong.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::latency::{HistogramError, Latencies};

/// Longest round trip recorded exactly (longer ones are clamped).
const MAX_LATENCY: Duration = Duration::from_secs(30);

/// Shared by every server's report loops.
pub(super) struct Totals {
    reports: AtomicU64,
    /// Reports whose values did not sum to the expected total.
    corrupt: AtomicU64,
    /// Requests that got no report in time (or failed) and were sent again.
    resends: AtomicU64,
    latencies: Mutex<Latencies>,
}

/// A reading of [`Totals`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) reports: u64,
    pub(super) corrupt: u64,
    pub(super) resends: u64,
}

impl Totals {
    pub(super) fn new() -> Result<Self, HistogramError> {
        Ok(Self {
            reports: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            resends: AtomicU64::new(0),
            latencies: Mutex::new(Latencies::new(MAX_LATENCY)?),
        })
    }

    pub(super) fn report(&self, round_trip: Duration) {
        self.reports.fetch_add(1, Ordering::Relaxed);
        self.latencies().record(round_trip);
    }

    pub(super) fn corrupt(&self) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn resend(&self) {
        self.resends.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn counts(&self) -> Counts {
        Counts {
            reports: self.reports.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            resends: self.resends.load(Ordering::Relaxed),
        }
    }

    /// Takes the round trips recorded so far and starts a new record.
    pub(super) fn take_latencies(&self) -> Result<Latencies, HistogramError> {
        let fresh = Latencies::new(MAX_LATENCY)?;
        Ok(std::mem::replace(&mut *self.latencies(), fresh))
    }

    /// The record (a panicked recorder left nothing half-written: recording is one call).
    fn latencies(&self) -> MutexGuard<'_, Latencies> {
        self.latencies.lock().unwrap_or_else(|e| e.into_inner())
    }
}
