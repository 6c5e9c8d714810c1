//! The typed errors of the devices layer.

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

/// What can go wrong when connecting a device, starting a device server or looking up a
/// device.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// The id is empty, too long, or contains `/` or a control character.
    #[error("invalid device id {0:?}: 1 to 256 bytes, no '/' and no control characters")]
    InvalidId(String),
    /// `Device::connect` was given no seed servers.
    #[error("a device needs at least one seed server")]
    NoSeeds,
    /// No server took the device over in time.
    #[error("no server took device {device} over within {timeout:?} (seeds {seeds:?})")]
    NoServer {
        /// The device.
        device: String,
        /// The seeds it registered with.
        seeds: Vec<SocketAddr>,
        /// How long it waited.
        timeout: Duration,
    },
    /// The device is not connected to any server right now.
    #[error("device {0} has no server at the moment")]
    Disconnected(String),
    /// The registry does not know this device.
    #[error("no device {0} in the registry")]
    UnknownDevice(String),
    /// The cluster handle given to a device server does not run on its `RemoteNode`
    /// (start it with `Cluster::start_on_remote`): the ring's addresses must be the
    /// addresses devices reach servers at.
    #[error("the cluster runs at {cluster}, the remote node at {remote}: start the cluster on the remote node")]
    ClusterOnOtherNode {
        /// The cluster's address.
        cluster: SocketAddr,
        /// The remote node's address.
        remote: SocketAddr,
    },
    /// Setting up the remote layer (node, exposed actors) failed.
    #[error(transparent)]
    Remote(#[from] granary_remote::RemoteSetupError),
    /// Setting up the replicated registry failed.
    #[error("device registry: {0}")]
    Registry(String),
}
