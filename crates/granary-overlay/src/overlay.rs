//! The [`Overlay`] trait: what an overlay decides, as a sans-IO state machine.
//!
//! An overlay answers three questions for the node it runs on (seed 002 §3):
//!
//! 1. **Which members does this node keep connections to?** It says so with
//!    [`Output::Connect`] and [`Output::Disconnect`]; [`Overlay::connections`] is the
//!    current set. Full mesh keeps one to every member, client-server one to every
//!    server, peer-to-peer one to each member of its HyParView active view.
//! 2. **How does membership spread?** Through the overlay's own messages
//!    ([`Overlay::Message`]): full mesh and client-server tell the joining node the
//!    members they know, peer-to-peer uses HyParView's join, forward-join and shuffle.
//!    [`Overlay::members`] is what this node knows.
//! 3. **How does a message reach a member it is not connected to?**
//!    [`Overlay::forward`]: directly when connected, otherwise by the overlay's route
//!    (through a server on client-server; along the broadcast trees on peer-to-peer).
//!    [`Overlay::broadcast`] reaches every member.
//!
//! The overlay never touches a socket or a clock. A driver (the TCP one in
//! [`crate::driver`], or the deterministic [`crate::simulation`]) feeds it received
//! messages, lost connections and timer ticks, and carries out what it asks for,
//! taken one by one from [`Overlay::poll_output`]. So the same implementation runs on
//! real sockets and in a simulation of a thousand nodes, and a user can write an
//! overlay of their own without writing any I/O.
//!
//! # Example: a user-written overlay
//!
//! A "star" where every node connects to one hub and the hub relays everything:
//!
//! ```
//! use std::collections::VecDeque;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use granary_overlay::{Delivery, Overlay, Output, PeerId};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, Serialize, Deserialize)]
//! enum StarMessage { Hello, Data { origin: PeerId, to: Option<PeerId>, payload: Bytes } }
//!
//! struct Star { me: PeerId, hub: PeerId, spokes: Vec<PeerId>, out: VecDeque<Output<StarMessage>> }
//!
//! impl Overlay for Star {
//!     type Message = StarMessage;
//!     fn local(&self) -> PeerId { self.me }
//!     fn join(&mut self, _contacts: &[PeerId], _now: Duration) {
//!         if self.me != self.hub {
//!             self.out.push_back(Output::Connect(self.hub));
//!             self.out.push_back(Output::Send { to: self.hub, message: StarMessage::Hello });
//!         }
//!     }
//!     fn broadcast(&mut self, payload: Bytes, _now: Duration) {
//!         let message = StarMessage::Data { origin: self.me, to: None, payload };
//!         for to in self.connections() {
//!             self.out.push_back(Output::Send { to, message: message.clone() });
//!         }
//!     }
//!     fn forward(&mut self, to: PeerId, payload: Bytes, _now: Duration) {
//!         let next = if self.me == self.hub { to } else { self.hub };
//!         let message = StarMessage::Data { origin: self.me, to: Some(to), payload };
//!         self.out.push_back(Output::Send { to: next, message });
//!     }
//!     fn handle_message(&mut self, from: PeerId, message: StarMessage, _now: Duration) {
//!         match message {
//!             StarMessage::Hello => self.spokes.push(from),
//!             StarMessage::Data { origin, to, payload } => {
//!                 if to.is_none() || to == Some(self.me) {
//!                     self.out.push_back(Output::Deliver(Delivery { origin, payload: payload.clone() }));
//!                 }
//!                 if self.me == self.hub && to != Some(self.me) {
//!                     for &spoke in self.spokes.iter().filter(|s| **s != origin && to.is_none_or(|t| t == **s)) {
//!                         let message = StarMessage::Data { origin, to, payload: payload.clone() };
//!                         self.out.push_back(Output::Send { to: spoke, message });
//!                     }
//!                 }
//!             }
//!         }
//!     }
//!     fn connection_lost(&mut self, peer: PeerId, _now: Duration) { self.spokes.retain(|s| *s != peer); }
//!     fn tick(&mut self, _now: Duration) {}
//!     fn connections(&self) -> Vec<PeerId> {
//!         if self.me == self.hub { self.spokes.clone() } else { vec![self.hub] }
//!     }
//!     fn members(&self) -> Vec<PeerId> { self.connections() }
//!     fn poll_output(&mut self) -> Option<Output<StarMessage>> { self.out.pop_front() }
//! }
//! # let _ = Star { me: "127.0.0.1:1".parse().unwrap(), hub: "127.0.0.1:2".parse().unwrap(), spokes: vec![], out: VecDeque::new() };
//! ```

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A member of the overlay: the address its driver listens on.
///
/// granary-cluster's `NodeId` is this address plus an incarnation; the cluster maps one
/// to the other, and a new incarnation is a new peer to the overlay (the old life is
/// reported lost first).
pub type PeerId = SocketAddr;

/// A payload handed to the application: a broadcast, or a message forwarded to this
/// node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The member that broadcast or forwarded it.
    pub origin: PeerId,
    /// The application's bytes.
    pub payload: Bytes,
}

/// What an overlay asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<M> {
    /// Send `message` to `to`. If there is no connection to `to`, the driver opens a
    /// short-lived one (HyParView's shuffle replies and neighbour requests go to
    /// members outside the active view); if `to` cannot be reached the driver calls
    /// [`Overlay::connection_lost`].
    Send {
        /// The receiver.
        to: PeerId,
        /// The overlay's message.
        message: M,
    },
    /// Keep a connection to this member (open one if there is none) and watch it: its
    /// loss is reported with [`Overlay::connection_lost`].
    Connect(PeerId),
    /// Stop keeping a connection to this member: it is no longer watched, and the
    /// driver closes it once it has carried nothing for a while (the TCP driver's
    /// `idle_timeout`), so what was queued for it, and a last message from the other
    /// side, still get through.
    Disconnect(PeerId),
    /// Hand this payload to the application.
    Deliver(Delivery),
}

/// An overlay: which members a node keeps connections to, how membership spreads and
/// how a message reaches any member (see the [module docs](self)).
///
/// Every method takes the current time as a [`Duration`] since an arbitrary epoch
/// fixed by the driver, so a simulation can run on a virtual clock. Methods never
/// block and never fail: bad input from the network is dropped (and logged), never a
/// panic.
pub trait Overlay: Send + 'static {
    /// The overlay's own wire messages (encoded by the driver with postcard).
    type Message: Serialize + DeserializeOwned + Clone + Debug + Send + 'static;

    /// This node.
    fn local(&self) -> PeerId;

    /// Joins the overlay through these members (none: this node starts it).
    fn join(&mut self, contacts: &[PeerId], now: Duration);

    /// Sends `payload` to every member (best effort; on peer-to-peer, Plumtree's
    /// reliability under failures). The local node is not delivered to.
    fn broadcast(&mut self, payload: Bytes, now: Duration);

    /// Sends `payload` to member `to`, directly when connected, otherwise along the
    /// overlay's route (best effort, at most once).
    fn forward(&mut self, to: PeerId, payload: Bytes, now: Duration);

    /// A message from `from` arrived.
    fn handle_message(&mut self, from: PeerId, message: Self::Message, now: Duration);

    /// The connection to `peer` closed, its heartbeat timed out, or it could not be
    /// reached.
    fn connection_lost(&mut self, peer: PeerId, now: Duration);

    /// Time passed: run timers (call every few tens of milliseconds).
    fn tick(&mut self, now: Duration);

    /// The members this node keeps connections to now.
    fn connections(&self) -> Vec<PeerId>;

    /// The member a message for `to` goes to next: `to` itself when this node keeps a
    /// connection to it, the overlay's next hop otherwise (a server on client-server,
    /// the neighbour up `to`'s broadcast tree on peer-to-peer), `None` when the overlay
    /// knows no route. What [`Overlay::forward`] does with its own messages, as a
    /// question, so a host's transport can route traffic that is not the overlay's
    /// (granary-cluster routes every actor message this way). The default: `to` when
    /// it is one of [`Overlay::connections`], else `None`.
    fn next_hop(&self, to: PeerId) -> Option<PeerId> {
        self.connections().contains(&to).then_some(to)
    }

    /// The members this node knows of (on peer-to-peer: its active and passive views,
    /// a partial view by design).
    fn members(&self) -> Vec<PeerId>;

    /// The next thing to do, oldest first; `None` when there is nothing.
    fn poll_output(&mut self) -> Option<Output<Self::Message>>;
}
