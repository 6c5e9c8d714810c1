//! What the cluster knows about one device: a [`DeviceRecord`] in the registry.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Whether a device answers its server's heartbeat requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DeviceStatus {
    /// Its server hears from it (or it registered, or a server just took it over).
    Up,
    /// Its server's phi-accrual detector suspected it; nobody tracks it until it
    /// registers again.
    Down,
    /// Its server went Down in the cluster: nobody has heard from the device since.
    /// Shown by every server as soon as it sees `lost_server` Down, and written into
    /// the registry by the device's new owner on the ring; cleared (back to `Up`) when
    /// the device answers its new server or registers again.
    Orphaned {
        /// The server that tracked the device when it was lost.
        lost_server: SocketAddr,
    },
}

impl DeviceStatus {
    /// True for `Up`: a server hears from the device.
    ///
    /// ```
    /// use granary_devices::DeviceStatus;
    /// assert!(DeviceStatus::Up.is_up());
    /// let lost = DeviceStatus::Orphaned { lost_server: "127.0.0.1:7000".parse().unwrap() };
    /// assert!(!lost.is_up());
    /// ```
    pub fn is_up(self) -> bool {
        self == DeviceStatus::Up
    }
}

/// One device's row in the cluster-wide registry.
///
/// Written only by the server that tracks the device (when it takes the device over,
/// and when it sees the device fail), read by every server.
///
/// ```
/// use granary_devices::{DeviceRecord, DeviceStatus};
/// let record = DeviceRecord {
///     status: DeviceStatus::Up,
///     server: "127.0.0.1:7000".parse().unwrap(),
///     device_addr: "127.0.0.1:9000".parse().unwrap(),
///     incarnation: 1,
///     heartbeat_interval_ms: 500,
/// };
/// assert_eq!(record.heartbeat_interval().as_millis(), 500);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Up, Down or Orphaned.
    pub status: DeviceStatus,
    /// The server that tracks the device (for a Down device: the one that saw it fail;
    /// for an Orphaned one: the server that was lost).
    pub server: SocketAddr,
    /// Where the device's node listens (its actors are reached there).
    pub device_addr: SocketAddr,
    /// Which life of the device this is (the wall clock in ms at its start); a newer
    /// life replaces an older one.
    pub incarnation: u64,
    /// The heartbeat interval the device asked for, in milliseconds.
    pub heartbeat_interval_ms: u64,
}

impl DeviceRecord {
    /// The heartbeat interval the device asked for.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }
}
