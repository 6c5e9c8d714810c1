//! granary-devices: external devices known to the cluster without joining it
//! (seed 003 §2.10, "External Node Tracking").
//!
//! IoT devices come and go, move between networks and fail often; they should not be
//! cluster members, yet every server should know at once whether a device is up and
//! who talks to it. This crate provides both ends:
//!
//! - [`Device`]: the device side. [`Device::connect`] registers with a list of seed
//!   servers, sending the heartbeat interval the device wants, and returns once a
//!   server took it over. The device answers its server's heartbeat requests and
//!   watches them with phi accrual; when the server falls silent it registers with the
//!   seeds again; when several servers heartbeat it, it orders them to stop unless the
//!   hash ring designates them.
//! - [`DeviceServer`]: the cluster side, one per member. The member owning a device id
//!   on the ring tracks it (other members forward registrations to it), heartbeats it
//!   and runs phi accrual on the answers. When a member goes Down, the ring's new owners
//!   take its devices over.
//! - The registry, device → [`DeviceRecord`] (status, server, address), is a
//!   delta-state CRDT (`ORMap<DeviceId, LWWRegister<DeviceRecord>>` from granary-crdt)
//!   replicated by granary-crdt's `Replicator` to every server, so every server knows
//!   every device ([`DeviceServer::devices`]).
//! - Application messages use typed refs like any actor: a device exposes actors with
//!   [`Device::expose`] and a server reaches them with [`DeviceServer::device_ref`];
//!   the device reaches actors on its server with [`Device::server_ref`].
//!
//! ```no_run
//! // no_run: opens sockets; tests/failover.rs runs the same flow.
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use granary_cluster::{Cluster, ClusterConfig};
//! use granary_core::ActorSystem;
//! use granary_crdt::{Replicator, ReplicatorConfig};
//! use granary_devices::{Device, DeviceConfig, DeviceServer, ServerConfig};
//! use granary_remote::{RemoteNode, TransportConfig};
//!
//! let transport = TransportConfig::new("granary", b"granary-dev-secret".to_vec());
//! let node = RemoteNode::start(ActorSystem::new(), transport).await?;
//! let cluster = Cluster::start_on_remote(ClusterConfig::default(), &node, vec![]).await?;
//! let replicator = Replicator::start(&node, &cluster, ReplicatorConfig::default())?;
//! let server = DeviceServer::start(&node, &cluster, &replicator, ServerConfig::default())?;
//!
//! let device = Device::connect([node.local_addr()], DeviceConfig::new("meter-1".parse()?)).await?;
//! assert_eq!(device.server(), Some(node.local_addr()));
//! # Ok(()) }
//! ```
//!
//! Where it sits: on granary-cluster (ring, membership, phi accrual), granary-remote
//! (remote refs, the wire) and granary-crdt (the registry's types); it knows nothing of
//! virtual actors or storage. Crates used: `tokio` (timers, watch channels), `serde`
//! (the wire messages), `parking_lot` (short locks), `thiserror` (typed errors).
#![deny(missing_docs, unreachable_pub, unsafe_code)]

mod detector;
mod device;
mod error;
mod id;
mod protocol;
mod record;
mod registry;
mod server;

pub use detector::detector_config;
pub use device::{Device, DeviceConfig, DeviceStats};
pub use error::DeviceError;
pub use id::{DeviceId, MAX_DEVICE_ID_LEN};
pub use record::{DeviceRecord, DeviceStatus};
pub use server::{DeviceServer, ServerConfig, TrackingEvent};
