//! granary-cluster: who is in the cluster, who is alive, and who owns which key.
//!
//! This crate runs the membership protocol of granary:
//!
//! - a **membership table** of [`Member`] rows (address + incarnation, status, roles,
//!   vnodes, metadata) merged like a CRDT, spread by **gossip** that sends deltas and a
//!   table hash instead of whole tables, biased toward ring neighbours, with digest-based
//!   anti-entropy when tables still differ ([`membership`], [`message`]);
//! - **phi-accrual failure detection** sharded on the ring: each node probes its `k`
//!   ring successors, and a member is Down only after a quorum of its monitors suspect
//!   it and the keep-majority **downing** rule agrees; the suspicions form a gossiped
//!   [`Reachability`] table from which nodes that are only *indirectly connected* (a cut
//!   link between members that still reach the rest) are told apart from clean
//!   partitions and the fewest of them are downed ([`phi`], docs/cluster.md);
//! - an **overlay** chosen in [`ClusterConfig::overlay`] ([`OverlayConfig`]: full mesh by
//!   default, static, client-server, peer-to-peer or the application's own, from
//!   granary-overlay): gossip and failure detection follow its connections, and on a
//!   cluster riding a granary-remote node the transport routes every actor message for
//!   a member outside them along the overlay (docs/overlays.md);
//! - a **consistent hash ring** with per-node vnodes ([`HashRing`]);
//! - **cluster events** for subscribers: a snapshot first, then every change in order
//!   ([`ClusterEvent`]);
//! - the [`Cluster`] handle: `start`, `join`, `leave`, `members`, `subscribe`, and
//!   `forward(node, actor, msg, options)` with Partisan's `channel`, `partition_key` and
//!   `transitive` options ([`forward`]);
//! - **membership providers** that tell a starting node whom to contact: seeds, a static
//!   list, DNS (A/SRV, e.g. a Kubernetes headless Service) and a PostgreSQL table
//!   ([`provider`]);
//! - a one-process **simulation** of hundreds to thousands of nodes (`sim`, behind the
//!   `sim` feature).
//!
//! It must not know about placement, virtual actors or the wire format: the protocol talks to a
//! [`ClusterTransport`] (fire-and-forget messages to an address, a stream of incoming
//! ones). [`transport::memory`] is an in-process implementation with per-link drops,
//! delays and partitions; [`transport::tcp`] runs the protocol on the control channel of
//! granary-remote's TCP transport (the crate below this one, whose handshake checks the
//! cluster name and secret); [`Cluster::start_tcp`] is the short way to use it.
//! [`transport::remote`] rides on a granary-remote `RemoteNode` instead, sharing its port
//! and connections with the application's actors ([`Cluster::start_on_remote`]); that is
//! the one place this crate touches actors (a small inbox actor, because a `RemoteNode`
//! hands frames only to exposed actors), and what lets [`Cluster::forward`] reach them.
//! The protocol core is a synchronous state machine driven
//! by one tokio task per node, with no global state, so many nodes share one process.
//!
//! Dependencies and why: `granary-overlay` the overlays' state machines, `imbl` gives the ring O(1) clones (events carry it), `xxhash-rust`
//! a hash that is identical on every platform, `postcard` the in-memory transport's
//! byte-accurate encoding, `hickory-resolver` and `tokio-postgres` the DNS and PostgreSQL
//! providers (features `dns` and `postgres`, on by default), `granary-core` the remote
//! transport's inbox actor and the `Message` bound of `forward`. The simulation uses
//! tokio's paused clock so 1,000 nodes run in virtual time,
//! deterministic and faster than real time; that needs tokio's `test-util`, so it sits
//! behind the `sim` feature and applications that only run a cluster do not get it.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

pub mod cluster;
pub mod config;
pub mod error;
pub mod event;
pub mod forward;
pub mod membership;
pub mod message;
mod node;
pub mod node_id;
mod overlay;
pub mod phi;
pub mod provider;
pub mod ring;
#[cfg(feature = "sim")]
pub mod sim;
pub mod transport;

pub use cluster::{Cluster, HandoffHook};
pub use config::{
    ClusterConfig, CustomOverlay, DowningConfig, JoinConfig, NoSeedPolicy, OverlayConfig,
};
pub use error::{ClusterError, ProviderError, TransportError};
pub use event::{ClusterEvent, ClusterSnapshot, MemberEvent};
pub use forward::{ForwardError, ForwardOptions, ForwardRoute};
/// The overlay types [`OverlayConfig`] names (from granary-overlay).
pub use granary_overlay::{DynOverlay, HyParViewConfig, PlumtreeConfig, Role};
pub use membership::{Member, MemberStatus, MembershipTable, Reachability};
pub use message::{ClusterMessage, Envelope};
pub use node::{ADMITTED_BY_METADATA_KEY, SEEN_METADATA_KEY};
pub use node_id::NodeId;
pub use ring::HashRing;
pub use transport::remote::RemoteClusterTransport;
pub use transport::tcp::TcpClusterTransport;
pub use transport::{ClusterTransport, TrafficCounter};
