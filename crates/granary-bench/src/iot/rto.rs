//! The resend timeout of one device's report loop, following the measured round trip
//! the way TCP does (RFC 6298): `RTO = SRTT + 4·RTTVAR`, with a floor, doubled per
//! consecutive loss, capped.
//!
//! Every report request is its own ask with its own reply, so every answered request
//! is a clean round-trip sample (no retransmission ambiguity, Karn's rule is moot).

use std::time::Duration;

/// Lowest resend timeout: tokio's timers tick in milliseconds, so a shorter timeout
/// fires after a millisecond anyway (a loopback round trip is ~0.1 ms).
pub(super) const RTO_FLOOR: Duration = Duration::from_millis(1);

/// The timeout before the first sample: the paper's fixed 3 ms resend timeout
/// (seed 003 §5.4), or the cap if that is lower.
pub(super) const RTO_INITIAL: Duration = Duration::from_millis(3);

/// Round-trip estimator and resend timeout of one device.
#[derive(Debug, Clone)]
pub(super) struct Rto {
    /// Smoothed round trip, seconds; `None` before the first sample.
    srtt: Option<f64>,
    /// Round-trip variation, seconds.
    rttvar: f64,
    /// Losses since the last answered request.
    losses: u32,
    cap: Duration,
}

impl Rto {
    /// A fresh estimator whose timeouts never exceed `cap` (nor go below the floor,
    /// unless `cap` itself is lower).
    pub(super) fn new(cap: Duration) -> Self {
        Self {
            srtt: None,
            rttvar: 0.0,
            losses: 0,
            cap,
        }
    }

    /// The timeout for the next request.
    pub(super) fn timeout(&self) -> Duration {
        let base = match self.srtt {
            None => RTO_INITIAL,
            Some(srtt) => Duration::from_secs_f64(srtt + 4.0 * self.rttvar),
        }
        .max(RTO_FLOOR);
        // 2^losses, saturating long before it could overflow a Duration.
        let backed_off = base.saturating_mul(1u32 << self.losses.min(20));
        backed_off.min(self.cap)
    }

    /// A request was answered after `rtt` (RFC 6298 §2: α = 1/8, β = 1/4).
    pub(super) fn answered(&mut self, rtt: Duration) {
        let r = rtt.as_secs_f64();
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2.0;
            }
            Some(srtt) => {
                self.rttvar = 0.75 * self.rttvar + 0.25 * (srtt - r).abs();
                self.srtt = Some(0.875 * srtt + 0.125 * r);
            }
        }
        self.losses = 0;
    }

    /// A request went unanswered within its timeout.
    pub(super) fn lost(&mut self) {
        self.losses = self.losses.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_millis(50);

    #[test]
    fn starts_at_the_papers_timeout() {
        assert_eq!(Rto::new(CAP).timeout(), RTO_INITIAL);
        assert_eq!(
            Rto::new(Duration::from_millis(2)).timeout(),
            Duration::from_millis(2)
        );
    }

    #[test]
    fn follows_the_round_trip_above_the_floor() {
        let mut rto = Rto::new(CAP);
        rto.answered(Duration::from_micros(100));
        assert_eq!(rto.timeout(), RTO_FLOOR, "300 µs is below the floor");
        for _ in 0..50 {
            rto.answered(Duration::from_millis(4));
        }
        let t = rto.timeout();
        assert!(
            t >= Duration::from_millis(4) && t < Duration::from_millis(6),
            "{t:?}"
        );
    }

    #[test]
    fn doubles_per_consecutive_loss_up_to_the_cap_and_resets() {
        let mut rto = Rto::new(CAP);
        for _ in 0..50 {
            rto.answered(Duration::from_millis(2));
        }
        let base = rto.timeout();
        rto.lost();
        assert_eq!(rto.timeout(), (base * 2).min(CAP));
        rto.lost();
        assert_eq!(rto.timeout(), (base * 4).min(CAP));
        for _ in 0..40 {
            rto.lost();
        }
        assert_eq!(rto.timeout(), CAP);
        rto.answered(Duration::from_millis(2));
        assert!(rto.timeout() < Duration::from_millis(3));
    }
}
