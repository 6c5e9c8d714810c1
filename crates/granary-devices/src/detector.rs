//! Phi-accrual settings derived from a heartbeat interval.
//!
//! Both ends use granary-cluster's [`PhiAccrualDetector`](granary_cluster::phi::PhiAccrualDetector):
//! the server on the device's answers, the device on the server's requests. The
//! interval is the device's choice, so the detector's settings follow from it rather
//! than from the cluster's own (much faster) member heartbeats.

use std::time::Duration;

use granary_cluster::phi::PhiConfig;

/// Settings for watching heartbeats that should arrive every `interval`: the first
/// estimate is the interval, one interval of lateness is accepted, and the standard
/// deviation is at least half an interval, so a device on a busy link is not declared
/// failed for one late beat. With phi threshold 8 a silent peer is suspected about
/// five intervals after its last beat.
///
/// ```
/// use std::time::Duration;
/// let config = granary_devices::detector_config(Duration::from_millis(200), 8.0);
/// assert_eq!(config.first_heartbeat_estimate, Duration::from_millis(200));
/// ```
pub fn detector_config(interval: Duration, threshold: f64) -> PhiConfig {
    let interval = interval.max(Duration::from_millis(1));
    PhiConfig {
        threshold,
        max_sample_size: 100,
        min_std_deviation: interval / 2,
        acceptable_heartbeat_pause: interval,
        first_heartbeat_estimate: interval,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use granary_cluster::phi::PhiAccrualDetector;

    use super::*;

    #[test]
    fn regular_beats_stay_available_and_silence_is_suspected_within_a_few_intervals() {
        let every = Duration::from_millis(100);
        let t0 = Instant::now();
        let mut fd = PhiAccrualDetector::new(detector_config(every, 8.0), t0);
        for i in 1..=50 {
            let t = t0 + every * i;
            assert!(fd.is_available(t), "suspected at beat {i}");
            fd.heartbeat(t);
        }
        let last = t0 + every * 50;
        assert!(fd.is_available(last + every * 2));
        assert!(!fd.is_available(last + every * 6));
    }
}
