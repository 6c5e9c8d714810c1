//! The messages devices and servers exchange, and the names their actors are exposed
//! under.
//!
//! Every message is a one-way tell on granary-remote's data channel; loss is tolerated
//! by design (heartbeats repeat, registrations are retried, stop orders are re-sent
//! while the device still sees two servers).

use std::net::SocketAddr;

use granary_core::Message;
use granary_remote::register_message;
use serde::{Deserialize, Serialize};

use crate::id::DeviceId;

/// The name of the devices actor on every server.
pub(crate) const SERVER: &str = "granary.devices.server";

/// The name of a device's own actor on its node (several devices may share a node).
pub(crate) fn device_actor_name(device: &DeviceId) -> String {
    format!("granary.devices/{device}")
}

/// The name an application actor of `device` is exposed under on its node.
pub(crate) fn device_app_name(device: &DeviceId, name: &str) -> String {
    format!("granary.devices/{device}/{name}")
}

/// Registrations are forwarded at most this many times, so servers whose rings
/// disagree cannot pass one back and forth; the last one takes the device itself.
pub(crate) const MAX_HOPS: u8 = 2;

/// Device → seed server (→ owning server): "track me".
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Register {
    pub(crate) device: DeviceId,
    pub(crate) incarnation: u64,
    pub(crate) heartbeat_interval_ms: u64,
    pub(crate) device_addr: SocketAddr,
    /// How many times this registration was forwarded already.
    pub(crate) hops: u8,
}

impl Message for Register {
    type Reply = ();
}
register_message!(Register, "granary.devices.Register");

/// Server → device: "are you there?" (the device watches these with phi accrual).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct HeartbeatRequest {
    /// The requesting server, where the answer goes.
    pub(crate) server: SocketAddr,
}

impl Message for HeartbeatRequest {
    type Reply = ();
}
register_message!(HeartbeatRequest, "granary.devices.HeartbeatRequest");

/// Device → server: the answer to a [`HeartbeatRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    pub(crate) device: DeviceId,
    pub(crate) incarnation: u64,
}

impl Message for Heartbeat {
    type Reply = ();
}
register_message!(Heartbeat, "granary.devices.Heartbeat");

/// Device → every server heartbeating it, when there are several: "stop unless the
/// ring makes you my server".
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StopIfNotDesignated {
    pub(crate) device: DeviceId,
}

impl Message for StopIfNotDesignated {
    type Reply = ();
}
register_message!(StopIfNotDesignated, "granary.devices.StopIfNotDesignated");
