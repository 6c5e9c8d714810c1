//! granary-virtual: virtual actors — identity, single activation, placement,
//! passivation, persistent state and failover (seed 000 §2.2.1–2.2.2, seed 001 §2–3).
//!
//! A virtual actor kind is a type implementing [`VirtualActor`] (kind name, key
//! type, persisted state) and [`VirtualHandler<M>`] per message. A [`Node`] hosts the
//! kinds it lists; [`Node::get`] returns a [`VirtualRef`] valid on every node, and the
//! first message activates the actor. Nobody creates or destroys virtual actors.
//!
//! How a call finds its actor: the node's location cache → the identity's
//! **directory owner** on the hash ring (each node owns one partition of the
//! directory) → the owner returns the recorded activation, or, holding a per-identity
//! lock, places a new one ([`Placement`]) among the Up members hosting the kind and
//! records it. Concurrent first messages from many nodes therefore meet at one lock
//! and produce one activation. A "not here" answer (passivated, stale cache) or a
//! dead host drops the cache entry, tells the owner which location failed, and the
//! call is resent, within its timeout and a bounded number of attempts, then fails
//! with a typed [`VirtualError`]. After a membership change every host re-registers
//! its activations with their owners (directory rebuild, see `docs/semantics.md`);
//! a duplicate found then is deactivated. The state store's ETag is the last line
//! of defence: a stale activation's write gets a conflict and the activation stops.
//!
//! Also here: per-kind idle passivation and `ctx.deactivate_on_idle()`, graceful
//! node shutdown (save, then stop, then leave), durable reminders kept in the state
//! store ([`Kind::reminders`], [`ReminderFired`]), stateless workers
//! ([`Kind::stateless_worker`]), opt-in reentrant message types
//! ([`Kind::reentrant`], [`ReentrantHandler`]) and an external [`Client`] that is not
//! a member.
//! Timers tied to an activation are the actor context's timers
//! ([`VirtualContext::actor_context`]); they end with the activation.
//!
//! This crate must not know about the wire format or the membership protocol's
//! internals; it sits on `granary-cluster` (membership, hash ring; started with
//! `Cluster::start_on_remote`, so membership shares the node's one port),
//! `granary-remote` (exposed actors, remote refs), `granary-storage` (state, ETags) and `granary-core` (the activation is an
//! ordinary actor). State is JSON (`serde_json`) so stored records stay readable
//! and tolerant of added fields; `uuid` gives the UUID key type; `rand` random
//! placement.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

mod activation;
mod actor;
mod client;
mod config;
mod context;
mod error;
mod key;
mod kind;
mod node;
mod observe;
mod placement;
mod probe;
mod protocol;
mod reentrant;
mod reminder;
mod runtime;
mod tracked;
mod tracker;
mod vref;

pub use activation::Activation;
pub use actor::{VirtualActor, VirtualHandler};
pub use client::{Client, ClientBuilder};
pub use config::{
    ChannelSetting, ClientConfig, ConfigError, DnsRecord, MembershipSettings, NodeConfig,
    ProviderKind, Secret, StoreSettings, TlsSettings, TransportSettings, CLIENT_ENV,
    DEFAULT_SECRET, NODE_ENV,
};
pub use context::{DeactivationReason, VirtualContext};
pub use error::VirtualError;
pub use key::Key;
pub use kind::{Hosted, Kind, KindConfig, DEFAULT_IDLE_TIMEOUT};
pub use node::{Node, NodeBuilder, DEFAULT_LOCATION_CACHE};
pub use placement::{Placement, PlacementRequest, PlacementStrategy};
pub use probe::{NodeProbe, Whereabouts};
pub use protocol::ControlFrame;
pub use reentrant::{ReentrantContext, ReentrantHandler};
pub use reminder::{ReminderFired, PARTITIONS as REMINDER_PARTITIONS};
pub use vref::{VirtualId, VirtualRef};

/// The names most programs need, in one import.
pub mod prelude {
    pub use crate::{
        Client, Hosted, Kind, Node, Placement, VirtualActor, VirtualContext, VirtualError,
        VirtualHandler, VirtualRef,
    };
}
