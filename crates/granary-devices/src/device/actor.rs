//! The actor of one device: answers its servers' heartbeat requests, watches them with
//! phi accrual, registers with the seeds while it has no server, and tells the extra
//! servers to stop when more than one heartbeats it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use granary_cluster::phi::PhiAccrualDetector;
use granary_core::{Actor, ActorRef, BoxError, Context, Handler, Message};
use granary_remote::RemoteNode;
use tokio::sync::watch;

use super::{DeviceConfig, DeviceCounters};
use crate::detector::detector_config;
use crate::id::DeviceId;
use crate::protocol::{Heartbeat, HeartbeatRequest, Register, StopIfNotDesignated, SERVER};
use crate::server::ServerActor;

/// Time to check the servers' detectors (every heartbeat interval).
pub(crate) struct Check;

impl Message for Check {
    type Reply = ();
}

/// Which servers heartbeat this device right now (asked by [`super::Device`]).
pub(crate) struct Servers;

impl Message for Servers {
    type Reply = Vec<SocketAddr>;
}

/// A server heartbeating this device, as the device sees it.
struct Watched {
    detector: PhiAccrualDetector,
    last_request: Instant,
    server: ActorRef<ServerActor>,
}

pub(crate) struct DeviceActor {
    id: DeviceId,
    incarnation: u64,
    me: SocketAddr,
    remote: RemoteNode,
    seeds: Vec<SocketAddr>,
    config: DeviceConfig,
    servers: HashMap<SocketAddr, Watched>,
    current: watch::Sender<Option<SocketAddr>>,
    last_registration: Option<Instant>,
    counters: Arc<DeviceCounters>,
}

impl DeviceActor {
    pub(crate) fn new(
        remote: RemoteNode,
        seeds: Vec<SocketAddr>,
        config: DeviceConfig,
        incarnation: u64,
        current: watch::Sender<Option<SocketAddr>>,
        counters: Arc<DeviceCounters>,
    ) -> Self {
        Self {
            id: config.id.clone(),
            incarnation,
            me: remote.local_addr(),
            remote,
            seeds,
            config,
            servers: HashMap::new(),
            current,
            last_registration: None,
            counters,
        }
    }

    /// Sends a registration to every seed (and to every server heard from before, in
    /// case the seeds are gone).
    fn register(&mut self, now: Instant) {
        self.last_registration = Some(now);
        self.counters.add_registration();
        let message = Register {
            device: self.id.clone(),
            incarnation: self.incarnation,
            heartbeat_interval_ms: self.config.heartbeat_interval.as_millis().max(1) as u64,
            device_addr: self.me,
            hops: 0,
        };
        for seed in &self.seeds {
            let server: ActorRef<ServerActor> = self.remote.remote_ref(*seed, SERVER);
            let _ = server.tell(message.clone());
        }
    }

    fn set_current(&self, server: Option<SocketAddr>) {
        self.current.send_if_modified(|current| {
            if *current == server {
                false
            } else {
                *current = server;
                true
            }
        });
    }

    /// Servers that sent a request within the last two intervals.
    fn active(&self, now: Instant) -> Vec<SocketAddr> {
        let window = self.config.heartbeat_interval * 2;
        let mut active: Vec<SocketAddr> = self
            .servers
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.last_request) <= window)
            .map(|(addr, _)| *addr)
            .collect();
        active.sort();
        active
    }
}

impl Actor for DeviceActor {
    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        self.register(Instant::now());
        ctx.interval(self.config.heartbeat_interval, || Check);
        Ok(())
    }
}

impl Handler<HeartbeatRequest> for DeviceActor {
    async fn handle(&mut self, msg: HeartbeatRequest, _ctx: &mut Context<Self>) {
        let now = Instant::now();
        let config = detector_config(self.config.heartbeat_interval, self.config.phi_threshold);
        let remote = &self.remote;
        let watched = self.servers.entry(msg.server).or_insert_with(|| Watched {
            detector: PhiAccrualDetector::new(config, now),
            last_request: now,
            server: remote.remote_ref(msg.server, SERVER),
        });
        watched.detector.heartbeat(now);
        watched.last_request = now;
        let _ = watched.server.tell(Heartbeat {
            device: self.id.clone(),
            incarnation: self.incarnation,
        });
        if self.current.borrow().is_none() {
            self.set_current(Some(msg.server));
        }
    }
}

impl Handler<Check> for DeviceActor {
    async fn handle(&mut self, _msg: Check, _ctx: &mut Context<Self>) {
        let now = Instant::now();
        let before = self.servers.len();
        self.servers.retain(|addr, w| {
            let alive = w.detector.is_available(now);
            if !alive {
                tracing::debug!(server = %addr, "device lost a server");
            }
            alive
        });
        for _ in self.servers.len()..before {
            self.counters.add_server_lost();
        }
        let current = *self.current.borrow();
        if current.is_none_or(|c| !self.servers.contains_key(&c)) {
            // Keep a live server if there is one (the most recently heard).
            let next = self
                .servers
                .iter()
                .max_by_key(|(_, w)| w.last_request)
                .map(|(addr, _)| *addr);
            self.set_current(next);
        }
        let active = self.active(now);
        if active.len() > 1 {
            // Every server gets the order; only those the ring does not designate obey.
            for addr in &active {
                if let Some(w) = self.servers.get(addr) {
                    let _ = w.server.tell(StopIfNotDesignated {
                        device: self.id.clone(),
                    });
                    self.counters.add_stop_order();
                }
            }
        }
        if self.servers.is_empty() {
            let due = self
                .last_registration
                .is_none_or(|t| now.saturating_duration_since(t) >= self.config.registration_retry);
            if due {
                self.register(now);
            }
        }
    }
}

impl Handler<Servers> for DeviceActor {
    async fn handle(&mut self, _msg: Servers, _ctx: &mut Context<Self>) -> Vec<SocketAddr> {
        self.active(Instant::now())
    }
}
