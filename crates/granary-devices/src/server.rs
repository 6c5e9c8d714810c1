//! [`DeviceServer`]: the cluster side of device tracking.
//!
//! Every cluster member that should serve devices starts one on its [`RemoteNode`]
//! (the one its [`Cluster`] runs on). The server
//!
//! - takes registrations from devices, forwarding each to the device's owner on the
//!   hash ring (at most [`MAX_HOPS`](crate::protocol) times);
//! - heartbeats every device it owns at the interval the device asked for and runs phi
//!   accrual on the answers; a silent device is marked Down in the registry;
//! - writes each change into the replicated registry, so every server knows every
//!   device;
//! - on every ring change (and every `reconcile_interval`) takes over the Up devices it
//!   now owns, which is how the devices of a Down server are reassigned;
//! - stops heartbeating a device when the device reports several servers and the ring
//!   does not make this one its server.

mod actor;
mod events;
mod tracking;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use granary_cluster::Cluster;
use granary_core::{Actor, ActorRef};
use granary_crdt::Replicator;
use granary_remote::RemoteNode;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

pub(crate) use actor::ServerActor;
pub use events::TrackingEvent;

use crate::error::DeviceError;
use crate::id::DeviceId;
use crate::protocol::{device_app_name, Heartbeat, Register, StopIfNotDesignated, SERVER};
use crate::record::DeviceRecord;
use crate::record::DeviceStatus;
use crate::registry::DeviceRegistry;
use actor::{lost_servers, queue_reconcile};
use events::Tracked;

/// Settings of a [`DeviceServer`].
///
/// ```
/// use std::time::Duration;
/// let config = granary_devices::ServerConfig {
///     reconcile_interval: Duration::from_millis(500),
///     ..Default::default()
/// };
/// assert_eq!(config.phi_threshold, 8.0);
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Phi above which a device is declared Down. Default 8.
    pub phi_threshold: f64,
    /// Devices asking for a shorter heartbeat interval get this one. Default 10 ms.
    pub min_heartbeat_interval: Duration,
    /// Devices asking for a longer heartbeat interval get this one. Default 60 s.
    pub max_heartbeat_interval: Duration,
    /// How often the tracked set is checked against the ring and the registry even
    /// when no change was announced. Default 1 s.
    pub reconcile_interval: Duration,
    /// The name of the registry CRDT on the replicator. Default `granary.devices`.
    pub registry_name: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            phi_threshold: 8.0,
            min_heartbeat_interval: Duration::from_millis(10),
            max_heartbeat_interval: Duration::from_secs(60),
            reconcile_interval: Duration::from_secs(1),
            registry_name: "granary.devices".into(),
        }
    }
}

/// The devices service of one cluster member.
///
/// ```no_run
/// // no_run: needs sockets; tests/failover.rs runs the same flow.
/// # async fn demo(
/// #     remote: granary_remote::RemoteNode,
/// #     cluster: granary_cluster::Cluster,
/// #     replicator: granary_crdt::Replicator,
/// # ) -> Result<(), granary_devices::DeviceError> {
/// use granary_devices::{DeviceServer, ServerConfig};
/// let server = DeviceServer::start(&remote, &cluster, &replicator, ServerConfig::default())?;
/// for (device, record) in server.devices() {
///     println!("{device}: {:?} at {}", record.status, record.server);
/// }
/// # Ok(()) }
/// ```
pub struct DeviceServer {
    remote: RemoteNode,
    cluster: Cluster,
    registry: DeviceRegistry,
    actor: ActorRef<ServerActor>,
    tracked: Arc<Tracked>,
    tasks: Vec<AbortHandle>,
}

impl std::fmt::Debug for DeviceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceServer")
            .field("addr", &self.remote.local_addr())
            .field("tracked", &self.tracked.devices().len())
            .finish_non_exhaustive()
    }
}

impl DeviceServer {
    /// Starts serving devices on `remote`, whose cluster membership is `cluster` (it
    /// must run on `remote`: `Cluster::start_on_remote`), with the registry replicated
    /// by `replicator` (started on the same node and cluster).
    pub fn start(
        remote: &RemoteNode,
        cluster: &Cluster,
        replicator: &Replicator,
        config: ServerConfig,
    ) -> Result<Self, DeviceError> {
        let cluster_addr = cluster.local_id().addr;
        if cluster_addr != remote.local_addr() {
            return Err(DeviceError::ClusterOnOtherNode {
                cluster: cluster_addr,
                remote: remote.local_addr(),
            });
        }
        let registry = DeviceRegistry::open(replicator, &config.registry_name)?;
        let mut changes = registry.changes()?;
        let tracked = Arc::new(Tracked::default());
        let queued = Arc::new(AtomicBool::new(false));
        let actor = remote.system().spawn(ServerActor::new(
            remote.clone(),
            cluster.clone(),
            registry.clone(),
            config,
            tracked.clone(),
            queued.clone(),
        ));
        remote
            .expose(SERVER, &actor)?
            .accept::<Register>()?
            .accept::<Heartbeat>()?
            .accept::<StopIfNotDesignated>()?;
        let mut tasks = Vec::new();
        // Ring changes: a Down server's devices get a new owner, a joining server
        // takes its share.
        let mut cluster_events = cluster.subscribe();
        let (on_ring, on_ring_queued) = (actor.clone(), queued.clone());
        tasks.push(
            tokio::spawn(async move {
                while cluster_events.recv().await.is_some() {
                    if !queue_reconcile(&on_ring, &on_ring_queued) {
                        return;
                    }
                }
            })
            .abort_handle(),
        );
        // Registry changes: a device registered elsewhere may be one this server owns.
        let (on_change, on_change_queued) = (actor.clone(), queued.clone());
        tasks.push(
            tokio::spawn(async move {
                while changes.changed().await.is_ok() {
                    if !queue_reconcile(&on_change, &on_change_queued) {
                        return;
                    }
                }
            })
            .abort_handle(),
        );
        Ok(Self {
            remote: remote.clone(),
            cluster: cluster.clone(),
            registry,
            actor,
            tracked,
            tasks,
        })
    }

    /// The address devices reach this server at.
    pub fn local_addr(&self) -> SocketAddr {
        self.remote.local_addr()
    }

    /// Every device the cluster knows, with its status and server (this server's
    /// replica of the registry, as this server's membership view makes it true now: a
    /// device recorded Up at a server this member sees Down is shown
    /// [`DeviceStatus::Orphaned`](crate::DeviceStatus::Orphaned) at once, before its new
    /// owner's write arrives).
    pub fn devices(&self) -> BTreeMap<DeviceId, DeviceRecord> {
        let lost = lost_servers(&self.cluster);
        let mut devices = self.registry.snapshot();
        for record in devices.values_mut() {
            orphan_if_lost(record, &lost);
        }
        devices
    }

    /// One device's record in this server's replica of the registry (shown as
    /// [`devices`](Self::devices) shows it).
    pub fn device(&self, device: &DeviceId) -> Option<DeviceRecord> {
        let mut record = self.registry.get(device)?;
        orphan_if_lost(&mut record, &lost_servers(&self.cluster));
        Some(record)
    }

    /// The devices this server heartbeats now, with their addresses.
    pub fn tracked(&self) -> BTreeMap<DeviceId, SocketAddr> {
        self.tracked.devices()
    }

    /// Follows the devices this server tracks: first the current ones as
    /// [`TrackingEvent::Assigned`], then every change.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<TrackingEvent> {
        self.tracked.subscribe()
    }

    /// A typed ref to the actor `device` exposed under `name` with
    /// [`Device::expose`](crate::Device::expose), at the address the registry has for
    /// it. Messages to a device that is gone fail like any remote message (a typed
    /// error on `ask`, a dead letter for `tell`).
    pub fn device_ref<A: Actor>(
        &self,
        device: &DeviceId,
        name: &str,
    ) -> Result<ActorRef<A>, DeviceError> {
        let record = self
            .registry
            .get(device)
            .ok_or_else(|| DeviceError::UnknownDevice(device.to_string()))?;
        Ok(self
            .remote
            .remote_ref(record.device_addr, &device_app_name(device, name)))
    }

    /// Stops tracking devices here (the ring's other members take them over once this
    /// member leaves the ring). The remote node and the cluster are the caller's.
    pub fn shutdown(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.actor.stop();
    }
}

impl Drop for DeviceServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Shows a device recorded Up at a server in `lost` as Orphaned by that server.
fn orphan_if_lost(record: &mut DeviceRecord, lost: &std::collections::BTreeSet<SocketAddr>) {
    if record.status.is_up() && lost.contains(&record.server) {
        record.status = DeviceStatus::Orphaned {
            lost_server: record.server,
        };
    }
}
