//! Round-trip latencies in an HDR histogram (nanoseconds, 3 significant digits).

use std::time::Duration;

use hdrhistogram::Histogram;

use super::RemoteError;

/// The largest latency recorded exactly (one minute); longer ones are clamped.
const MAX_NANOS: u64 = 60_000_000_000;

/// Recorded round trips.
pub(crate) struct Latencies(Histogram<u64>);

impl Latencies {
    /// An empty record.
    pub(crate) fn new() -> Result<Self, RemoteError> {
        Histogram::new_with_bounds(1, MAX_NANOS, 3)
            .map(Self)
            .map_err(|e| RemoteError::Histogram(e.to_string()))
    }

    /// Records one round trip.
    pub(crate) fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.0.saturating_record(nanos.clamp(1, MAX_NANOS));
    }

    /// Adds another record to this one.
    pub(crate) fn merge(&mut self, other: &Latencies) -> Result<(), RemoteError> {
        self.0
            .add(&other.0)
            .map_err(|e| RemoteError::Histogram(e.to_string()))
    }

    /// How many round trips were recorded.
    pub(crate) fn len(&self) -> u64 {
        self.0.len()
    }

    /// p50, p99, p99.9 and max, in microseconds.
    pub(crate) fn summary_us(&self) -> [f64; 4] {
        let us = |nanos: u64| nanos as f64 / 1000.0;
        [
            us(self.0.value_at_quantile(0.5)),
            us(self.0.value_at_quantile(0.99)),
            us(self.0.value_at_quantile(0.999)),
            us(self.0.max()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_records_give_percentiles_of_both() {
        let mut a = Latencies::new().expect("histogram");
        let mut b = Latencies::new().expect("histogram");
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
}
