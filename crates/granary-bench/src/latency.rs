//! Round-trip latencies in an HDR histogram (nanoseconds, 3 significant digits),
//! shared by the `local` and `remote` scenarios.
//!
//! Each scenario picks the largest latency it records exactly; longer ones are
//! clamped to it instead of failing.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The histogram could not be created or merged (hdrhistogram's error, as text).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HistogramError(String);

/// Recorded round trips.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    histogram: Histogram<u64>,
    max_nanos: u64,
}

impl Latencies {
    /// An empty record that tracks latencies up to `max` exactly.
    pub(crate) fn new(max: Duration) -> Result<Self, HistogramError> {
        let max_nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Histogram::new_with_bounds(1, max_nanos, 3)
            .map(|histogram| Self {
                histogram,
                max_nanos,
            })
            .map_err(|e| HistogramError(e.to_string()))
    }

    /// Records one round trip (clamped to between 1 ns and the record's maximum).
    pub(crate) fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(nanos.clamp(1, self.max_nanos));
    }

    /// Adds another record to this one.
    pub(crate) fn merge(&mut self, other: &Latencies) -> Result<(), HistogramError> {
        self.histogram
            .add(&other.histogram)
            .map_err(|e| HistogramError(e.to_string()))
    }

    /// How many round trips were recorded.
    pub(crate) fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// p50, p99, p99.9 and max, in microseconds.
    pub(crate) fn summary_us(&self) -> [f64; 4] {
        let us = |nanos: u64| nanos as f64 / 1000.0;
        [
            us(self.histogram.value_at_quantile(0.5)),
            us(self.histogram.value_at_quantile(0.99)),
            us(self.histogram.value_at_quantile(0.999)),
            us(self.histogram.max()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn latencies_report_percentiles_in_microseconds() {
        let mut latencies = Latencies::new(MINUTE).expect("histogram");
        for micros in 1..=1000 {
            latencies.record(Duration::from_micros(micros));
        }
        let [p50, p99, _, max] = latencies.summary_us();
        assert_eq!(latencies.len(), 1000);
        assert!((499.0..=501.0).contains(&p50), "p50 {p50}");
        assert!((989.0..=991.0).contains(&p99), "p99 {p99}");
        assert!((999.0..=1001.0).contains(&max), "max {max}");
    }

    #[test]
    fn merged_records_give_percentiles_of_both() {
        let mut a = Latencies::new(MINUTE).expect("histogram");
        let mut b = Latencies::new(MINUTE).expect("histogram");
        for micros in 1..=500 {
            a.record(Duration::from_micros(micros));
            b.record(Duration::from_micros(500 + micros));
        }
        a.merge(&b).expect("merge");
        let [p50, p99, _, max] = a.summary_us();
        assert_eq!(a.len(), 1000);
        assert!((499.0..=501.0).contains(&p50), "p50 {p50}");
        assert!((989.0..=991.0).contains(&p99), "p99 {p99}");
        assert!((999.0..=1001.0).contains(&max), "max {max}");
    }

    #[test]
    fn latencies_beyond_the_maximum_are_clamped_to_it() {
        let mut latencies = Latencies::new(MINUTE).expect("histogram");
        latencies.record(Duration::from_secs(3600));
        let [_, _, _, max] = latencies.summary_us();
        assert!((59_900_000.0..=60_100_000.0).contains(&max), "max {max}");
    }
}
