//! What a server keeps for each device it heartbeats.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use granary_cluster::phi::PhiAccrualDetector;
use granary_core::{ActorRef, TimerHandle};

use crate::detector::detector_config;
use crate::device::actor::DeviceActor;

/// One tracked device: where it is, its life, its detector and its heartbeat timer.
pub(crate) struct Tracking {
    pub(crate) device_addr: SocketAddr,
    pub(crate) incarnation: u64,
    pub(crate) interval: Duration,
    pub(crate) detector: PhiAccrualDetector,
    pub(crate) device: ActorRef<DeviceActor>,
    /// Cancelled when the device is released; the timer also ends with the actor.
    pub(crate) timer: TimerHandle,
    /// The device has answered this server (or registered with it): the registry says
    /// `Up` here. False after a take-over until the first answer.
    pub(crate) confirmed: bool,
}

impl Tracking {
    pub(crate) fn new(
        device: ActorRef<DeviceActor>,
        device_addr: SocketAddr,
        incarnation: u64,
        interval: Duration,
        threshold: f64,
        timer: TimerHandle,
        now: Instant,
    ) -> Self {
        Self {
            device_addr,
            incarnation,
            interval,
            detector: PhiAccrualDetector::new(detector_config(interval, threshold), now),
            device,
            timer,
            confirmed: true,
        }
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        self.timer.cancel();
    }
}
