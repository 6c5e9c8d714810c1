//! What a server tells its subscribers about the devices it tracks.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::id::DeviceId;

/// A change in the set of devices one server heartbeats.
///
/// A subscriber first gets one [`TrackingEvent::Assigned`] per device tracked at the
/// time it subscribed, then every change in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackingEvent {
    /// This server now tracks the device (it registered, or the server took it over).
    Assigned {
        /// The device.
        device: DeviceId,
        /// Where its node listens.
        device_addr: SocketAddr,
    },
    /// Another server tracks the device now (ring change, or the device asked).
    Released {
        /// The device.
        device: DeviceId,
    },
    /// The device stopped answering; it is Down in the registry.
    Lost {
        /// The device.
        device: DeviceId,
    },
}

/// The tracked set, readable from outside the actor, and the subscribers.
#[derive(Default)]
pub(crate) struct Tracked {
    inner: Mutex<TrackedInner>,
}

#[derive(Default)]
struct TrackedInner {
    devices: BTreeMap<DeviceId, SocketAddr>,
    subscribers: Vec<mpsc::UnboundedSender<TrackingEvent>>,
}

impl Tracked {
    pub(crate) fn devices(&self) -> BTreeMap<DeviceId, SocketAddr> {
        self.inner.lock().devices.clone()
    }

    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<TrackingEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.inner.lock();
        for (device, addr) in &inner.devices {
            let _ = tx.send(TrackingEvent::Assigned {
                device: device.clone(),
                device_addr: *addr,
            });
        }
        inner.subscribers.push(tx);
        rx
    }

    /// Applies `event` to the set and passes it on (dropping closed subscribers).
    pub(crate) fn publish(&self, event: TrackingEvent) {
        let mut inner = self.inner.lock();
        match &event {
            TrackingEvent::Assigned {
                device,
                device_addr,
            } => {
                inner.devices.insert(device.clone(), *device_addr);
            }
            TrackingEvent::Released { device } | TrackingEvent::Lost { device } => {
                inner.devices.remove(device);
            }
        }
        inner.subscribers.retain(|s| s.send(event.clone()).is_ok());
    }
}
