//! granary-overlay: which members a node keeps connections to, how membership spreads,
//! and how a message reaches a member it is not connected to (seed 002 §3, issue 16).
//!
//! - [`Overlay`]: the trait every overlay implements, as a sans-IO state machine
//!   (inputs: a received message, a lost connection, a timer tick; outputs: messages to
//!   send, connections to keep or drop, deliveries to the application).
//! - [`PeerToPeer`]: [`HyParView`] membership (active and passive partial views, join,
//!   forward-join, neighbour, shuffle, disconnect) with [`Plumtree`] broadcast over the
//!   active view (eager and lazy push, IHave, graft, prune, tree repair) and delivery
//!   to non-neighbours along the broadcast trees.
//! - [`ClientServer`] (clients connect to every server, servers to each other; full
//!   mesh when every node is a server) and [`StaticOverlay`] (configured peers only).
//! - [`DynOverlay`] and [`erase`]: any overlay behind one object-safe trait with its
//!   messages as bytes, for hosts that pick the overlay at run time.
//! - [`simulation`]: a deterministic one-process network on a virtual clock that runs
//!   any overlay at a thousand nodes and counts its bytes.
//! - [`driver`]: the real-socket driver, one node per TCP listener, framing, heartbeats,
//!   byte and connection counters.
//!
//! This crate sits beside granary-remote and below granary-cluster, and knows neither:
//! granary-cluster runs a [`DynOverlay`] chosen in its `ClusterConfig` and routes the
//! node's traffic by [`Overlay::next_hop`] (see `docs/overlays.md`). Its dependencies are the workspace's own: tokio for the
//! driver, postcard and serde for frames (the wire format of granary's other crates),
//! `rand`'s `SmallRng` for seeded, reproducible choices (HyParView's walks and
//! samples), bytes for payloads shared without copies, tracing and thiserror.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

pub mod client_server;
pub mod driver;
pub mod erased;
pub mod error;
pub mod frame;
pub mod hyparview;
pub mod overlay;
pub mod peer_to_peer;
pub mod plumtree;
pub mod simulation;

pub use client_server::{ClientServer, ClientServerMessage, Role, StaticMessage, StaticOverlay};
pub use driver::{DriverConfig, NodeStats, OverlayNode, StatsSnapshot};
pub use erased::{erase, DynOverlay};
pub use error::{DriverError, FrameError};
pub use hyparview::{HyParView, HyParViewConfig, HyParViewMessage, HyParViewOutput};
pub use overlay::{Delivery, Output, Overlay, PeerId};
pub use peer_to_peer::{PeerToPeer, PeerToPeerMessage};
pub use plumtree::{
    MessageId, Plumtree, PlumtreeConfig, PlumtreeMessage, PlumtreeOutput, PlumtreeStats,
};
pub use simulation::Simulation;
