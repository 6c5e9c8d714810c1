//! The actor behind a [`DeviceServer`](super::DeviceServer): takes devices over, sends
//! their heartbeat requests, runs phi accrual on the answers, forwards registrations to
//! the ring's owner and hands devices over when the ring changes.
//!
//! One actor per server serves every device it tracks (each device has its own
//! interval timer), so a device's state is only ever touched by one task and the
//! protocol needs no locks. Registry writes are local CRDT updates; replication
//! spreads them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use granary_cluster::{Cluster, MemberStatus};
use granary_core::{Actor, ActorRef, BoxError, Context, Handler, Message};
use granary_remote::RemoteNode;

use super::events::{Tracked, TrackingEvent};
use super::tracking::Tracking;
use super::ServerConfig;
use crate::device::actor::DeviceActor;
use crate::id::DeviceId;
use crate::protocol::{
    device_actor_name, Heartbeat, HeartbeatRequest, Register, StopIfNotDesignated, MAX_HOPS, SERVER,
};
use crate::record::{DeviceRecord, DeviceStatus};
use crate::registry::DeviceRegistry;

/// Time to send the next heartbeat request to a device (and to check its phi).
pub(crate) struct Tick(DeviceId);

impl Message for Tick {
    type Reply = ();
}

/// Compare the tracked set with the ring and the registry: take over the Up devices
/// this server owns that nobody here tracks; stop everything if this server is not Up.
pub(crate) struct Reconcile;

impl Message for Reconcile {
    type Reply = ();
}

pub(crate) struct ServerActor {
    me: SocketAddr,
    remote: RemoteNode,
    cluster: Cluster,
    registry: DeviceRegistry,
    config: ServerConfig,
    devices: HashMap<DeviceId, Tracking>,
    tracked: Arc<Tracked>,
    /// Set while a [`Reconcile`] is queued, so bursts of cluster and registry changes
    /// queue one scan, not one per change.
    reconcile_queued: Arc<AtomicBool>,
}

impl ServerActor {
    pub(crate) fn new(
        remote: RemoteNode,
        cluster: Cluster,
        registry: DeviceRegistry,
        config: ServerConfig,
        tracked: Arc<Tracked>,
        reconcile_queued: Arc<AtomicBool>,
    ) -> Self {
        Self {
            me: remote.local_addr(),
            remote,
            cluster,
            registry,
            config,
            devices: HashMap::new(),
            tracked,
            reconcile_queued,
        }
    }

    /// Only an Up member tracks devices: a node that is joining, leaving or Down (for
    /// example on the minority side of a partition) lets the ring's owners take over.
    fn hosting(&self) -> bool {
        self.cluster.local_status() == Some(MemberStatus::Up)
    }

    /// Servers this member's view has lost: Down, or gone from the table.
    fn lost_servers(&self) -> std::collections::BTreeSet<SocketAddr> {
        lost_servers(&self.cluster)
    }

    fn owner(&self, device: &DeviceId) -> Option<SocketAddr> {
        self.cluster.ring().owner(device.ring_key()).map(|n| n.addr)
    }

    fn write(&self, device: &DeviceId, tracking: &Tracking, status: DeviceStatus) {
        self.registry.put(
            device,
            DeviceRecord {
                status,
                server: self.me,
                device_addr: tracking.device_addr,
                incarnation: tracking.incarnation,
                heartbeat_interval_ms: tracking.interval.as_millis() as u64,
            },
        );
    }

    /// Starts heartbeating `device` (replacing an older life of it). A device that
    /// registered (`taken_over` is `None`) is recorded Up at once; one taken over from
    /// another server is recorded Up only when it answers, and Orphaned until then if
    /// its server was lost (`Some(Some(lost))`).
    fn track(
        &mut self,
        device: DeviceId,
        device_addr: SocketAddr,
        incarnation: u64,
        interval: Duration,
        taken_over: Option<Option<SocketAddr>>,
        ctx: &mut Context<Self>,
    ) {
        let interval = interval.clamp(
            self.config.min_heartbeat_interval,
            self.config.max_heartbeat_interval,
        );
        let tick_device = device.clone();
        let timer = ctx.interval(interval, move || Tick(tick_device.clone()));
        let device_ref: ActorRef<DeviceActor> = self
            .remote
            .remote_ref(device_addr, &device_actor_name(&device));
        let mut tracking = Tracking::new(
            device_ref,
            device_addr,
            incarnation,
            interval,
            self.config.phi_threshold,
            timer,
            Instant::now(),
        );
        tracking.confirmed = taken_over.is_none();
        match taken_over {
            None => self.write(&device, &tracking, DeviceStatus::Up),
            Some(Some(lost_server)) => self.registry.put(
                &device,
                DeviceRecord {
                    status: DeviceStatus::Orphaned { lost_server },
                    server: lost_server,
                    device_addr,
                    incarnation,
                    heartbeat_interval_ms: tracking.interval.as_millis() as u64,
                },
            ),
            // The old server is alive (the ring moved): its record stands until the
            // device answers here.
            Some(None) => {}
        }
        let replaced = self.devices.insert(device.clone(), tracking).is_some();
        if !replaced {
            tracing::debug!(%device, server = %self.me, "tracking device");
        }
        self.tracked.publish(TrackingEvent::Assigned {
            device: device.clone(),
            device_addr,
        });
        // The first request goes at once, so the device learns its server without
        // waiting one interval; and only now, so that by the time it has learned it
        // this server's tracked set (and its subscribers) already show the device.
        if let Some(tracking) = self.devices.get(&device) {
            let _ = tracking.device.tell(HeartbeatRequest { server: self.me });
        }
    }

    /// The device answered (or registered again): the first time after a take-over,
    /// record it Up here, which clears an Orphaned record.
    fn confirm(&mut self, device: &DeviceId) {
        let Some(tracking) = self.devices.get_mut(device) else {
            return;
        };
        if tracking.confirmed {
            return;
        }
        tracking.confirmed = true;
        let tracking = &self.devices[device];
        self.write(device, tracking, DeviceStatus::Up);
    }

    fn release(&mut self, device: &DeviceId) {
        if self.devices.remove(device).is_some() {
            tracing::debug!(%device, server = %self.me, "released device");
            self.tracked.publish(TrackingEvent::Released {
                device: device.clone(),
            });
        }
    }

    fn release_all(&mut self) {
        let all: Vec<DeviceId> = self.devices.keys().cloned().collect();
        for device in all {
            self.release(&device);
        }
    }
}

impl Actor for ServerActor {
    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        ctx.interval(self.config.reconcile_interval, || Reconcile);
        Ok(())
    }
}

impl Handler<Register> for ServerActor {
    async fn handle(&mut self, msg: Register, ctx: &mut Context<Self>) {
        if !self.hosting() {
            // The device keeps registering with its other seeds until one takes it.
            return;
        }
        if msg.hops < MAX_HOPS {
            if let Some(owner) = self.owner(&msg.device).filter(|o| *o != self.me) {
                let next: ActorRef<ServerActor> = self.remote.remote_ref(owner, SERVER);
                let _ = next.tell(Register {
                    hops: msg.hops + 1,
                    ..msg
                });
                return;
            }
        }
        let now = Instant::now();
        if let Some(current) = self.devices.get_mut(&msg.device) {
            if current.incarnation > msg.incarnation {
                return; // a late registration of an older life
            }
            if current.incarnation == msg.incarnation && current.device_addr == msg.device_addr {
                // A repeat (the device registered with several seeds, or again after
                // losing its server): proof of life.
                current.detector.heartbeat(now);
                self.confirm(&msg.device);
                return;
            }
        }
        self.track(
            msg.device,
            msg.device_addr,
            msg.incarnation,
            Duration::from_millis(msg.heartbeat_interval_ms),
            None,
            ctx,
        );
    }
}

impl Handler<Tick> for ServerActor {
    async fn handle(&mut self, Tick(device): Tick, _ctx: &mut Context<Self>) {
        let Some(tracking) = self.devices.get(&device) else {
            return;
        };
        if tracking.detector.is_available(Instant::now()) {
            let _ = tracking.device.tell(HeartbeatRequest { server: self.me });
            return;
        }
        tracing::info!(%device, server = %self.me, "device stopped answering: Down");
        if let Some(tracking) = self.devices.remove(&device) {
            self.write(&device, &tracking, DeviceStatus::Down);
        }
        self.tracked.publish(TrackingEvent::Lost { device });
    }
}

impl Handler<Heartbeat> for ServerActor {
    async fn handle(&mut self, msg: Heartbeat, _ctx: &mut Context<Self>) {
        if let Some(tracking) = self.devices.get_mut(&msg.device) {
            if tracking.incarnation == msg.incarnation {
                tracking.detector.heartbeat(Instant::now());
                self.confirm(&msg.device);
            }
        }
    }
}

impl Handler<StopIfNotDesignated> for ServerActor {
    async fn handle(&mut self, msg: StopIfNotDesignated, _ctx: &mut Context<Self>) {
        if !self.devices.contains_key(&msg.device) {
            return;
        }
        if !self.hosting() || self.owner(&msg.device) != Some(self.me) {
            self.release(&msg.device);
        }
    }
}

impl Handler<Reconcile> for ServerActor {
    async fn handle(&mut self, _msg: Reconcile, ctx: &mut Context<Self>) {
        self.reconcile_queued.store(false, Ordering::Release);
        if !self.hosting() {
            self.release_all();
            return;
        }
        let ring = self.cluster.ring();
        let lost = self.lost_servers();
        for (device, record) in self.registry.snapshot() {
            let orphaned = matches!(record.status, DeviceStatus::Orphaned { .. });
            if !(record.status.is_up() || orphaned) || self.devices.contains_key(&device) {
                continue;
            }
            if ring.owner(device.ring_key()).map(|n| n.addr) != Some(self.me) {
                continue;
            }
            let lost_server = match record.status {
                DeviceStatus::Orphaned { lost_server } => Some(lost_server),
                _ => lost.contains(&record.server).then_some(record.server),
            };
            tracing::debug!(%device, from = %record.server, to = %self.me, "taking device over");
            self.track(
                device,
                record.device_addr,
                record.incarnation,
                record.heartbeat_interval(),
                Some(lost_server),
                ctx,
            );
        }
    }
}

/// The servers `cluster` has lost: the members it sees Down. (A member it does not
/// list yet is not counted: it may be a server that joined moments ago.)
pub(crate) fn lost_servers(cluster: &Cluster) -> std::collections::BTreeSet<SocketAddr> {
    cluster
        .members()
        .into_iter()
        .filter(|m| m.status == MemberStatus::Down)
        .map(|m| m.id.addr)
        .collect()
}

/// Queues one [`Reconcile`] unless one is already queued.
pub(crate) fn queue_reconcile(actor: &ActorRef<ServerActor>, queued: &AtomicBool) -> bool {
    if queued.swap(true, Ordering::AcqRel) {
        return true;
    }
    actor.tell(Reconcile).is_ok()
}
