//! Counting reports: each server process keeps [`Totals`] and prints them as
//! `counts` lines ([`Totals::line`]); the harness parses them ([`CountsLine`]) and
//! adds up every server incarnation's round trips in a [`RoundTrips`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Longest round trip recorded exactly (longer ones are clamped).
const MAX_LATENCY: Duration = Duration::from_secs(30);

/// Round trips in nanoseconds, 3 significant digits.
pub(super) struct RoundTrips(Histogram<u64>);

impl RoundTrips {
    pub(super) fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts.
        Self(
            Histogram::new_with_bounds(1, MAX_LATENCY.as_nanos() as u64, 3)
                .expect("valid histogram bounds"),
        )
    }

    fn record_n(&mut self, nanos: u64, count: u64) {
        self.0
            .saturating_record_n(nanos.clamp(1, MAX_LATENCY.as_nanos() as u64), count);
    }

    /// p50, p99, p99.9 and max, in microseconds.
    pub(super) fn summary_us(&self) -> [f64; 4] {
        let us = |nanos: u64| nanos as f64 / 1000.0;
        [
            us(self.0.value_at_quantile(0.5)),
            us(self.0.value_at_quantile(0.99)),
            us(self.0.value_at_quantile(0.999)),
            us(self.0.max()),
        ]
    }

    /// `value:count,…` of the recorded buckets, `-` when empty.
    fn encode(&self) -> String {
        let pairs: Vec<String> = self
            .0
            .iter_recorded()
            .map(|v| format!("{}:{}", v.value_iterated_to(), v.count_at_value()))
            .collect();
        if pairs.is_empty() {
            "-".into()
        } else {
            pairs.join(",")
        }
    }

    /// Adds the buckets of an [`Self::encode`]d record; false if it is malformed.
    pub(super) fn add_encoded(&mut self, text: &str) -> bool {
        if text == "-" {
            return true;
        }
        for pair in text.split(',') {
            let Some((value, count)) = pair.split_once(':') else {
                return false;
            };
            let (Ok(value), Ok(count)) = (value.parse(), count.parse()) else {
                return false;
            };
            self.record_n(value, count);
        }
        true
    }
}

/// A server process's counters, shared by its report loops.
pub(super) struct Totals {
    reports: AtomicU64,
    /// Reports whose values did not sum to the expected total.
    corrupt: AtomicU64,
    /// Requests that got no report in time (or failed) and were sent again.
    resends: AtomicU64,
    /// Devices this server stopped tracking (declared Down by the failure detector, or
    /// handed to another server).
    untracked: AtomicU64,
    /// Round trips since the last [`Self::line`].
    round_trips: Mutex<RoundTrips>,
}

/// Cumulative counts of one server incarnation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) reports: u64,
    pub(super) corrupt: u64,
    pub(super) resends: u64,
    pub(super) untracked: u64,
}

impl Counts {
    pub(super) fn add(self, other: Counts) -> Counts {
        Counts {
            reports: self.reports + other.reports,
            corrupt: self.corrupt + other.corrupt,
            resends: self.resends + other.resends,
            untracked: self.untracked + other.untracked,
        }
    }

    /// The later of two readings of the same cumulative counters.
    pub(super) fn latest(self, other: Counts) -> Counts {
        Counts {
            reports: self.reports.max(other.reports),
            corrupt: self.corrupt.max(other.corrupt),
            resends: self.resends.max(other.resends),
            untracked: self.untracked.max(other.untracked),
        }
    }

    pub(super) fn minus(self, earlier: Counts) -> Counts {
        Counts {
            reports: self.reports.saturating_sub(earlier.reports),
            corrupt: self.corrupt.saturating_sub(earlier.corrupt),
            resends: self.resends.saturating_sub(earlier.resends),
            untracked: self.untracked.saturating_sub(earlier.untracked),
        }
    }
}

impl Totals {
    pub(super) fn new() -> Self {
        Self {
            reports: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            resends: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
            round_trips: Mutex::new(RoundTrips::new()),
        }
    }

    pub(super) fn report(&self, round_trip: Duration) {
        let mut round_trips = self.round_trips();
        self.reports.fetch_add(1, Ordering::Relaxed);
        round_trips.record_n(u64::try_from(round_trip.as_nanos()).unwrap_or(u64::MAX), 1);
    }

    pub(super) fn corrupt(&self) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn resend(&self) {
        self.resends.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn untracked(&self) {
        self.untracked.fetch_add(1, Ordering::Relaxed);
    }

    /// `counts ID REPORTS CORRUPT RESENDS UNTRACKED ROUND_TRIPS`: the cumulative counts and the
    /// round trips recorded since the previous line (which this line takes).
    pub(super) fn line(&self, id: u64) -> String {
        let mut round_trips = self.round_trips();
        let taken = std::mem::replace(&mut *round_trips, RoundTrips::new());
        // Read under the lock: no report is counted here but recorded in the next line.
        let (reports, corrupt, resends, untracked) = (
            self.reports.load(Ordering::Relaxed),
            self.corrupt.load(Ordering::Relaxed),
            self.resends.load(Ordering::Relaxed),
            self.untracked.load(Ordering::Relaxed),
        );
        drop(round_trips);
        format!(
            "counts {id} {reports} {corrupt} {resends} {untracked} {}",
            taken.encode()
        )
    }

    fn round_trips(&self) -> MutexGuard<'_, RoundTrips> {
        self.round_trips.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A parsed `counts` line.
pub(super) struct CountsLine<'a> {
    /// 0 for a periodic line, else the id of the `flush` it answers.
    pub(super) id: u64,
    pub(super) counts: Counts,
    /// The encoded round trips, for [`RoundTrips::add_encoded`].
    pub(super) round_trips: &'a str,
}

impl<'a> CountsLine<'a> {
    pub(super) fn parse(line: &'a str) -> Option<Self> {
        let mut fields = line.strip_prefix("counts ")?.split(' ');
        let mut number = || fields.next()?.parse::<u64>().ok();
        let (id, reports, corrupt, resends, untracked) =
            (number()?, number()?, number()?, number()?, number()?);
        let round_trips = fields.next()?;
        Some(Self {
            id,
            counts: Counts {
                reports,
                corrupt,
                resends,
                untracked,
            },
            round_trips,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counts_line_round_trips() {
        let totals = Totals::new();
        totals.report(Duration::from_micros(120));
        totals.report(Duration::from_micros(120));
        totals.report(Duration::from_millis(3));
        totals.resend();
        let line = totals.line(9);
        let parsed = CountsLine::parse(&line).expect("parses");
        assert_eq!(parsed.id, 9);
        assert_eq!(
            parsed.counts,
            Counts {
                reports: 3,
                corrupt: 0,
                resends: 1,
                untracked: 0,
            }
        );
        let mut merged = RoundTrips::new();
        assert!(merged.add_encoded(parsed.round_trips));
        assert_eq!(merged.0.len(), 3);
        let [p50, _, _, max] = merged.summary_us();
        assert!((p50 - 120.0).abs() < 1.0, "{p50}");
        assert!((max - 3000.0).abs() < 5.0, "{max}");
        // The next line carries only what came after.
        let empty = totals.line(0);
        assert!(empty.ends_with(" -"), "{empty}");
        assert!(!merged.add_encoded("1:x"));
    }
}
