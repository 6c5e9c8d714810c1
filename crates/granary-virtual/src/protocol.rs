//! The control messages nodes exchange (directory lookups, activation requests,
//! re-registration, load queries) and the reply correlation over one-way frames.
//!
//! Control requests travel as one-way [`ControlFrame`]s to the `granary.virtual.control`
//! actor of the peer, which serves each on its own task and answers with another frame,
//! so a slow activation never holds up the directory's other identities.

use std::net::SocketAddr;
use std::sync::Arc;

use granary_core::Message;
use granary_remote::register_message;
use serde::{Deserialize, Serialize};

use crate::placement::PlacementTag;

/// Where a live activation is: its node and the name it is exposed under.
///
/// The name is shared (`Arc<str>`, encoded as a string) by the local table, the
/// directory entry, the location caches and every reply that carries it, so an
/// activation's name is one allocation however many places record it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Location {
    pub(crate) host: SocketAddr,
    pub(crate) name: Arc<str>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// To the directory owner: where is `kind/key`? Activate it if nowhere.
    Lookup {
        kind: String,
        key: String,
        requester: SocketAddr,
        placement: PlacementTag,
        /// A location the requester found dead or empty.
        stale: Option<Location>,
    },
    /// From the directory owner `owner` to a host: activate `kind/key` here (or
    /// return the live activation). Refused (`NotOwner`) if the host's ring names
    /// another owner, so an owner that has not seen a membership change yet cannot
    /// place behind the new owner's back.
    Activate {
        kind: String,
        key: String,
        owner: SocketAddr,
    },
    /// To a host: a stateless worker of `kind/key` there.
    Worker { kind: String, key: String },
    /// To a host: do you hold a live activation of `kind/key`? (asked by a new
    /// directory owner before placing, while re-registrations may still be in flight)
    Find { kind: String, key: String },
    /// To a host: is this activation alive?
    Has {
        kind: String,
        key: String,
        name: String,
    },
    /// To the directory owner: this host holds this activation (rebuild after a
    /// membership change).
    Register {
        kind: String,
        key: String,
        at: Location,
    },
    /// To the directory owner: this activation ended.
    Unregister {
        kind: String,
        key: String,
        at: Location,
    },
    /// To every member: the sender re-registered its activations for the ring with
    /// this fingerprint.
    Rebuilt { ring: u64 },
    /// To a host: how many activations of `kind` live here?
    Load { kind: String },
    /// To a member (from a client): the Up members and their kinds.
    Members,
    /// To a member (from a client, its gateway): where is `kind/key`? The member
    /// locates it as for its own calls (its cache, else the directory owner, which
    /// activates it if needed); the client then sends through the same member.
    Locate {
        kind: String,
        key: String,
        placement: PlacementTag,
        /// A location the client found dead or empty.
        stale: Option<Location>,
    },
    /// To every Up member: do you still count the sender as Up? (the host lease,
    /// see `runtime/lease.rs`)
    Lease,
    /// From a directory owner to a host whose answer to an `Activate` it never got:
    /// do you hold a live activation of `kind/key`? Answered `Located` or
    /// `Bool(false)`, after any activation of it in progress there; and from then
    /// on the host refuses the sender's earlier requests still on their way, so a
    /// lost `Activate` cannot start after the owner heard "no" and placed elsewhere.
    Confirm { kind: String, key: String },
    /// From a directory owner to every member: is `host` gone from your ring (so you
    /// no longer grant it a lease), and when did you last grant it one? Answered
    /// `Bool(false)` (still in the ring) or `Count(µs since the last grant)`. The
    /// owner places `host`'s identities only once a majority said it is gone, one
    /// lease length after the latest of their last grants (`runtime/fence.rs`).
    Departed { host: SocketAddr },
    /// From a host to an identity's directory owner: a caller placed `kind/key`
    /// here; may this node start it as the activation `name`? Answered as a lookup
    /// from this host would be, except that an identity placed now is placed here
    /// under `name` (`runtime/claim.rs`).
    Claim {
        kind: String,
        key: String,
        name: String,
        /// An activation of this host that the owner's entry named and that has
        /// ended (as a lookup's `stale`).
        stale: Option<Location>,
    },
    /// To the directory owner: these activations ended (`Unregister` for each, in one
    /// request; `runtime/unregistrations.rs`).
    UnregisterAll { ends: Vec<Unregistration> },
}

/// One ended activation, as [`Request::UnregisterAll`] carries it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Unregistration {
    pub(crate) kind: String,
    pub(crate) key: String,
    pub(crate) at: Location,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MemberView {
    pub(crate) addr: SocketAddr,
    pub(crate) incarnation: u64,
    pub(crate) vnodes: u32,
    pub(crate) kinds: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Failure {
    NoHost(String),
    ShuttingDown,
    Other(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Located(Location),
    NotOwner,
    Failed(Failure),
    Bool(bool),
    Count(u64),
    Members(Vec<MemberView>),
    Done,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Body {
    Request(Request),
    Reply(Reply),
}

/// One control frame: a request or the reply to request `id` of node `from`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ControlFrame {
    pub(crate) from: SocketAddr,
    pub(crate) id: u64,
    pub(crate) body: Body,
}

impl Message for ControlFrame {
    type Reply = ();
}
register_message!(ControlFrame, "granary.virtual.ControlFrame");

/// The exposed name of the node-level control actor.
pub(crate) const CONTROL: &str = "granary.virtual.control";
