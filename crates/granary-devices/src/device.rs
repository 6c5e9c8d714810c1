//! [`Device`]: an external process (or one of many in a process) known to the cluster
//! without joining it (seed 003 §2.10).
//!
//! A device is not a member: it takes no part in gossip and owns nothing on the ring.
//! It registers with its seed servers, sending the heartbeat interval it wants; the
//! server that owns its id on the ring takes it over and heartbeats it. The device
//! watches those requests with phi accrual; when its server falls silent it registers
//! with the seeds again, and when more than one server heartbeats it, it tells them to
//! stop unless the ring designates them.
//!
//! Servers reach the device's node, so a device listens like any granary node
//! ([`RemoteNode`]); several devices may share one node ([`Device::connect_on`]), each
//! under its own actor names.

pub(crate) mod actor;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use granary_core::{Actor, ActorRef, ActorSystem};
use granary_remote::{Exposure, RemoteNode, RemoteSetupError, TransportConfig};
use tokio::sync::watch;

use crate::error::DeviceError;
use crate::id::DeviceId;
use crate::protocol::{device_actor_name, device_app_name, HeartbeatRequest};
use actor::{DeviceActor, Servers};

/// Settings of one device.
///
/// ```
/// use std::time::Duration;
/// use granary_devices::{DeviceConfig, DeviceId};
/// let config = DeviceConfig {
///     heartbeat_interval: Duration::from_millis(250),
///     ..DeviceConfig::new("thermostat-3".parse::<DeviceId>().unwrap())
/// };
/// assert_eq!(config.id.as_str(), "thermostat-3");
/// ```
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    /// The device's id (its key on the servers' hash ring).
    pub id: DeviceId,
    /// How often the device wants its server to heartbeat it (and how often it checks
    /// its servers). Default 1 s.
    pub heartbeat_interval: Duration,
    /// Phi above which the device gives its server up. Default 8.
    pub phi_threshold: f64,
    /// While no server heartbeats it, the device registers with its seeds this often.
    /// Default 1 s.
    pub registration_retry: Duration,
    /// How long [`Device::connect`] waits for a server to take the device over.
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// The transport of the device's own node, used by [`Device::connect`] (cluster
    /// name and secret must match the servers'). Default: 127.0.0.1, a free port, the
    /// cluster `granary` with granary's development secret.
    pub transport: TransportConfig,
}

impl DeviceConfig {
    /// Defaults for the device `id`.
    pub fn new(id: DeviceId) -> Self {
        Self {
            id,
            heartbeat_interval: Duration::from_secs(1),
            phi_threshold: 8.0,
            registration_retry: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
            transport: TransportConfig::new("granary", b"granary-dev-secret".to_vec()),
        }
    }
}

/// Counters of what a device's protocol did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Rounds of registrations sent to the seeds.
    pub registrations: u64,
    /// Servers given up after their heartbeat requests stopped.
    pub servers_lost: u64,
    /// "Stop unless designated" orders sent.
    pub stop_orders: u64,
}

#[derive(Default)]
pub(crate) struct DeviceCounters {
    registrations: AtomicU64,
    servers_lost: AtomicU64,
    stop_orders: AtomicU64,
}

impl DeviceCounters {
    pub(crate) fn add_registration(&self) {
        self.registrations.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_server_lost(&self) {
        self.servers_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_stop_order(&self) {
        self.stop_orders.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> DeviceStats {
        DeviceStats {
            registrations: self.registrations.load(Ordering::Relaxed),
            servers_lost: self.servers_lost.load(Ordering::Relaxed),
            stop_orders: self.stop_orders.load(Ordering::Relaxed),
        }
    }
}

/// A connected device.
///
/// ```no_run
/// // no_run: needs running servers; tests/failover.rs runs the same flow.
/// # async fn demo() -> Result<(), granary_devices::DeviceError> {
/// use granary_devices::{Device, DeviceConfig};
/// let seeds = ["127.0.0.1:7000".parse().unwrap()];
/// let device = Device::connect(seeds, DeviceConfig::new("meter-1".parse()?)).await?;
/// println!("tracked by {:?}", device.server());
/// device.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Device {
    id: DeviceId,
    remote: RemoteNode,
    actor: ActorRef<DeviceActor>,
    server: watch::Receiver<Option<SocketAddr>>,
    counters: Arc<DeviceCounters>,
    /// Set when [`Device::connect`] made the node, so shutdown closes it.
    owned_node: bool,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("addr", &self.remote.local_addr())
            .field("server", &*self.server.borrow())
            .finish()
    }
}

impl Device {
    /// Starts a node of its own for the device (per `config.transport`), registers with
    /// `seeds` and waits until a server takes the device over.
    pub async fn connect(
        seeds: impl IntoIterator<Item = SocketAddr>,
        config: DeviceConfig,
    ) -> Result<Device, DeviceError> {
        let remote = RemoteNode::start(ActorSystem::new(), config.transport.clone()).await?;
        match Self::start(&remote, seeds.into_iter().collect(), config, true).await {
            Ok(device) => Ok(device),
            Err(e) => {
                remote.shutdown();
                remote.system().shutdown().await;
                Err(e)
            }
        }
    }

    /// Like [`Device::connect`] on an existing node, which may carry other devices
    /// (a gateway process). [`Device::shutdown`] leaves the node running.
    pub async fn connect_on(
        remote: &RemoteNode,
        seeds: impl IntoIterator<Item = SocketAddr>,
        config: DeviceConfig,
    ) -> Result<Device, DeviceError> {
        Self::start(remote, seeds.into_iter().collect(), config, false).await
    }

    async fn start(
        remote: &RemoteNode,
        seeds: Vec<SocketAddr>,
        config: DeviceConfig,
        owned_node: bool,
    ) -> Result<Device, DeviceError> {
        if seeds.is_empty() {
            return Err(DeviceError::NoSeeds);
        }
        let id = config.id.clone();
        let timeout = config.connect_timeout;
        let (current, server) = watch::channel(None);
        let counters = Arc::new(DeviceCounters::default());
        let incarnation = wall_clock_millis();
        let actor = remote.system().spawn(DeviceActor::new(
            remote.clone(),
            seeds.clone(),
            config,
            incarnation,
            current,
            counters.clone(),
        ));
        if let Err(e) = remote
            .expose(&device_actor_name(&id), &actor)
            .and_then(|e| e.accept::<HeartbeatRequest>())
        {
            actor.stop();
            return Err(e.into());
        }
        let device = Device {
            id,
            remote: remote.clone(),
            actor,
            server,
            counters,
            owned_node,
        };
        if device.wait_for_server(timeout).await.is_err() {
            device.actor.stop();
            let _ = device.actor.wait_stopped().await;
            return Err(DeviceError::NoServer {
                device: device.id.to_string(),
                seeds,
                timeout,
            });
        }
        Ok(device)
    }

    /// The device's id.
    pub fn id(&self) -> &DeviceId {
        &self.id
    }

    /// The address of the device's node.
    pub fn local_addr(&self) -> SocketAddr {
        self.remote.local_addr()
    }

    /// The server heartbeating this device, if any.
    pub fn server(&self) -> Option<SocketAddr> {
        *self.server.borrow()
    }

    /// Waits until some server heartbeats the device (at once if one does).
    pub async fn wait_for_server(&self, timeout: Duration) -> Result<SocketAddr, DeviceError> {
        let mut server = self.server.clone();
        let waited = tokio::time::timeout(timeout, server.wait_for(|s| s.is_some())).await;
        match waited {
            Ok(Ok(current)) => current.ok_or_else(|| self.disconnected()),
            _ => Err(self.disconnected()),
        }
    }

    /// Every server that sent this device a heartbeat request within the last two
    /// intervals (normally one; two or more while a hand-over is being settled).
    pub async fn heartbeating_servers(&self) -> Vec<SocketAddr> {
        self.actor.ask(Servers).await.unwrap_or_default()
    }

    /// What the device's protocol did so far.
    pub fn stats(&self) -> DeviceStats {
        self.counters.snapshot()
    }

    /// Exposes an application actor of this device under `name`, for
    /// [`DeviceServer::device_ref`](crate::DeviceServer::device_ref). List the
    /// accepted message types on the returned [`Exposure`].
    pub fn expose<A: Actor>(
        &self,
        name: &str,
        actor: &ActorRef<A>,
    ) -> Result<Exposure<A>, RemoteSetupError> {
        self.remote.expose(&device_app_name(&self.id, name), actor)
    }

    /// A typed ref to the actor exposed under `name` on this device's current server
    /// (with `RemoteNode::expose` there).
    pub fn server_ref<A: Actor>(&self, name: &str) -> Result<ActorRef<A>, DeviceError> {
        let server = self.server().ok_or_else(|| self.disconnected())?;
        Ok(self.remote.remote_ref(server, name))
    }

    /// The node the device runs on (for spawning its actors).
    pub fn remote(&self) -> &RemoteNode {
        &self.remote
    }

    /// Stops the device (its servers see it fail); closes its node if
    /// [`Device::connect`] made it.
    pub async fn shutdown(self) {
        self.actor.stop();
        let _ = self.actor.wait_stopped().await;
        if self.owned_node {
            self.remote.shutdown();
            self.remote.system().shutdown().await;
        }
    }

    fn disconnected(&self) -> DeviceError {
        DeviceError::Disconnected(self.id.to_string())
    }
}

/// The incarnation of a device's life: the wall clock in milliseconds, so a restarted
/// device is newer than its previous life.
fn wall_clock_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}
