//! Phi-accrual failure detector (Hayashibara et al.), computed the way Akka does.
//!
//! The detector keeps a sliding window of heartbeat inter-arrival times and models them
//! as a normal distribution. `phi(now)` is `-log10(P(a heartbeat arrives later than now))`:
//! phi = 1 means a 10% chance the node is still alive and the heartbeat is merely late,
//! phi = 8 about 10^-8. The time is always passed in, so the detector is a pure value
//! that tests drive with a synthetic clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Settings of a [`PhiAccrualDetector`].
#[derive(Clone, Debug, PartialEq)]
pub struct PhiConfig {
    /// Phi above which the monitored node is suspected.
    pub threshold: f64,
    /// How many inter-arrival samples are kept.
    pub max_sample_size: usize,
    /// Lower bound of the standard deviation, so a very regular heartbeat does not make
    /// the detector jumpy.
    pub min_std_deviation: Duration,
    /// Extra time a heartbeat may be late (GC pause, network hiccup) before phi rises.
    pub acceptable_heartbeat_pause: Duration,
    /// Assumed mean interval before the first real samples arrive.
    pub first_heartbeat_estimate: Duration,
}

impl Default for PhiConfig {
    fn default() -> Self {
        Self {
            threshold: 8.0,
            max_sample_size: 200,
            min_std_deviation: Duration::from_millis(100),
            acceptable_heartbeat_pause: Duration::from_millis(300),
            first_heartbeat_estimate: Duration::from_millis(250),
        }
    }
}

/// A phi-accrual failure detector for one monitored node.
///
/// ```
/// use std::time::{Duration, Instant};
/// use granary_cluster::phi::{PhiAccrualDetector, PhiConfig};
/// let t0 = Instant::now();
/// let mut fd = PhiAccrualDetector::new(PhiConfig::default(), t0);
/// for i in 1..=10 {
///     fd.heartbeat(t0 + Duration::from_millis(250 * i));
/// }
/// let last = t0 + Duration::from_millis(2500);
/// assert!(fd.is_available(last + Duration::from_millis(300)));
/// assert!(!fd.is_available(last + Duration::from_secs(5)));
/// ```
#[derive(Clone, Debug)]
pub struct PhiAccrualDetector {
    config: PhiConfig,
    intervals: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    last: Instant,
}

impl PhiAccrualDetector {
    /// Starts monitoring at `now`; the start counts as the first heartbeat, and the window
    /// is seeded with `first_heartbeat_estimate` (mean) and a quarter of it (std dev).
    pub fn new(config: PhiConfig, now: Instant) -> Self {
        let mean = config.first_heartbeat_estimate.as_secs_f64() * 1000.0;
        let std_dev = mean / 4.0;
        let mut fd = Self {
            config,
            intervals: VecDeque::new(),
            sum: 0.0,
            sum_sq: 0.0,
            last: now,
        };
        fd.push(mean - std_dev);
        fd.push(mean + std_dev);
        fd
    }

    /// The settings this detector uses.
    pub fn config(&self) -> &PhiConfig {
        &self.config
    }

    /// Records a heartbeat that arrived at `now`. Times earlier than the last heartbeat
    /// are ignored (they carry no information about the gap).
    pub fn heartbeat(&mut self, now: Instant) {
        if let Some(gap) = now.checked_duration_since(self.last) {
            self.push(gap.as_secs_f64() * 1000.0);
            self.last = now;
        }
    }

    /// When the last heartbeat arrived.
    pub fn last_heartbeat(&self) -> Instant {
        self.last
    }

    /// The suspicion level at `now`.
    pub fn phi(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64() * 1000.0;
        let n = self.intervals.len() as f64;
        let mean = self.sum / n;
        let variance = (self.sum_sq / n - mean * mean).max(0.0);
        let min_std = self.config.min_std_deviation.as_secs_f64() * 1000.0;
        let std_dev = variance.sqrt().max(min_std);
        let pause = self.config.acceptable_heartbeat_pause.as_secs_f64() * 1000.0;
        phi_of(elapsed, mean + pause, std_dev)
    }

    /// True while `phi(now)` is below the threshold.
    pub fn is_available(&self, now: Instant) -> bool {
        self.phi(now) < self.config.threshold
    }

    fn push(&mut self, interval_ms: f64) {
        if self.intervals.len() >= self.config.max_sample_size.max(1) {
            if let Some(old) = self.intervals.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        self.intervals.push_back(interval_ms);
        self.sum += interval_ms;
        self.sum_sq += interval_ms * interval_ms;
    }
}

/// Phi of an elapsed time against a normal distribution, with Akka's logistic
/// approximation of the cumulative distribution function (error below 0.00014).
fn phi_of(elapsed: f64, mean: f64, std_dev: f64) -> f64 {
    let y = (elapsed - mean) / std_dev;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    if elapsed > mean {
        -(e / (1.0 + e)).log10()
    } else {
        -(1.0 - 1.0 / (1.0 + e)).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regular(fd: &mut PhiAccrualDetector, t0: Instant, every_ms: u64, count: u64) -> Instant {
        for i in 1..=count {
            fd.heartbeat(t0 + Duration::from_millis(every_ms * i));
        }
        t0 + Duration::from_millis(every_ms * count)
    }

    #[test]
    fn phi_grows_monotonically_with_silence() {
        let t0 = Instant::now();
        let mut fd = PhiAccrualDetector::new(PhiConfig::default(), t0);
        let last = regular(&mut fd, t0, 200, 50);
        let mut prev = -1.0;
        for ms in (0..5000).step_by(100) {
            let phi = fd.phi(last + Duration::from_millis(ms));
            assert!(phi >= prev, "phi fell from {prev} to {phi} at {ms} ms");
            prev = phi;
        }
        assert!(prev > 16.0, "phi after 5 s of silence is {prev}");
    }

    #[test]
    fn regular_heartbeats_keep_node_available() {
        let t0 = Instant::now();
        let mut fd = PhiAccrualDetector::new(PhiConfig::default(), t0);
        for i in 1..=100u64 {
            let t = t0 + Duration::from_millis(200 * i);
            assert!(fd.is_available(t), "suspected at heartbeat {i}");
            fd.heartbeat(t);
        }
    }

    #[test]
    fn silence_beyond_pause_and_deviation_suspects() {
        let t0 = Instant::now();
        let cfg = PhiConfig::default();
        let mut fd = PhiAccrualDetector::new(cfg.clone(), t0);
        let last = regular(&mut fd, t0, 200, 50);
        // Within mean + pause: still available.
        assert!(fd.is_available(last + Duration::from_millis(450)));
        // Far beyond: suspected.
        assert!(!fd.is_available(last + Duration::from_millis(2000)));
    }

    #[test]
    fn acceptable_pause_delays_suspicion() {
        let t0 = Instant::now();
        let strict = PhiConfig {
            acceptable_heartbeat_pause: Duration::ZERO,
            ..PhiConfig::default()
        };
        let lenient = PhiConfig {
            acceptable_heartbeat_pause: Duration::from_secs(3),
            ..PhiConfig::default()
        };
        let mut a = PhiAccrualDetector::new(strict, t0);
        let mut b = PhiAccrualDetector::new(lenient, t0);
        let last = regular(&mut a, t0, 200, 20);
        regular(&mut b, t0, 200, 20);
        let probe = last + Duration::from_millis(1500);
        assert!(!a.is_available(probe));
        assert!(b.is_available(probe));
    }

    #[test]
    fn min_std_deviation_tolerates_jitter_after_perfectly_regular_beats() {
        let t0 = Instant::now();
        let tight = PhiConfig {
            min_std_deviation: Duration::from_millis(1),
            acceptable_heartbeat_pause: Duration::ZERO,
            max_sample_size: 10,
            ..PhiConfig::default()
        };
        let loose = PhiConfig {
            min_std_deviation: Duration::from_millis(200),
            ..tight.clone()
        };
        let mut a = PhiAccrualDetector::new(tight, t0);
        let mut b = PhiAccrualDetector::new(loose, t0);
        let last = regular(&mut a, t0, 200, 30);
        regular(&mut b, t0, 200, 30);
        let probe = last + Duration::from_millis(260);
        assert!(a.phi(probe) > 8.0, "tight phi {}", a.phi(probe));
        assert!(b.phi(probe) < 8.0, "loose phi {}", b.phi(probe));
    }

    #[test]
    fn threshold_is_configurable() {
        let t0 = Instant::now();
        let low = PhiConfig {
            threshold: 1.0,
            ..PhiConfig::default()
        };
        let mut fd = PhiAccrualDetector::new(low, t0);
        let last = regular(&mut fd, t0, 200, 20);
        let probe = last + Duration::from_millis(700);
        let phi = fd.phi(probe);
        assert!(phi > 1.0 && phi < 8.0, "phi {phi}");
        assert!(!fd.is_available(probe));
    }

    #[test]
    fn window_forgets_old_intervals() {
        let t0 = Instant::now();
        let cfg = PhiConfig {
            max_sample_size: 5,
            acceptable_heartbeat_pause: Duration::ZERO,
            ..PhiConfig::default()
        };
        let mut fd = PhiAccrualDetector::new(cfg, t0);
        // Slow beats first, then fast ones fill the window.
        let mid = regular(&mut fd, t0, 2000, 5);
        let last = regular(&mut fd, mid, 100, 5);
        assert!(!fd.is_available(last + Duration::from_millis(1500)));
    }

    #[test]
    fn out_of_order_time_is_ignored() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut fd = PhiAccrualDetector::new(PhiConfig::default(), t0);
        fd.heartbeat(t0 - Duration::from_secs(5));
        assert_eq!(fd.last_heartbeat(), t0);
        assert!(fd.phi(t0 - Duration::from_secs(1)) < 1.0);
    }
}
