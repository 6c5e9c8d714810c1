//! `forward(node, actor, msg, options)`: Partisan's message forwarding (seed 002,
//! Tables 1–2) on the cluster handle.
//!
//! A registered message is encoded once and sent to the actor exposed under `actor` on a
//! member node, over the [`RemoteNode`] the cluster rides on,
//! on the channel and partition key of the [`ForwardOptions`]. Whether there is a direct
//! connection to the target is this node's own failure detector's view (the members it
//! monitors and currently suspects) plus the transport's (a peer it gave up dialling).
//! With [`ForwardOptions::transitive`] a message that cannot go directly is relayed by one
//! Up member that this node can reach and that does not suspect the target, preferring
//! the target's monitors (whose "not suspected" is first-hand). With an overlay other than
//! the full mesh, a target outside the overlay's connections is reached along the
//! overlay's route instead (the transport relays it hop by hop, `docs/overlays.md`), which
//! also needs `transitive`. Delivery is at most once,
//! like every tell. Forwarding to the local node works the same way (the transport
//! connects to itself).

use std::net::SocketAddr;

use bytes::Bytes;
use granary_core::Message;
use granary_remote::wire::FrameHeader;
use granary_remote::{Registry, RemoteNode, SendError};
use thiserror::Error;

use crate::cluster::Cluster;
use crate::membership::{Member, MemberStatus};
use crate::transport::remote::{send_options, RelayFrame, CLUSTER_INBOX};

/// How to forward one message (seed 002 Table 2).
///
/// ```
/// use granary_cluster::ForwardOptions;
/// let options = ForwardOptions::default()
///     .channel("bulk")
///     .partition_key(7)
///     .transitive();
/// assert!(options.transitive);
/// assert_eq!(options.channel.as_deref(), Some("bulk"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardOptions {
    /// A channel configured on the transports (`None`: the default data channel).
    pub channel: Option<String>,
    /// Picks the connection of the channel by `key % parallelism` instead of by
    /// affinity, so messages with one key keep their order.
    pub partition_key: Option<u64>,
    /// Relay through another member when there is no direct connection to the target.
    pub transitive: bool,
}

impl ForwardOptions {
    /// Use the named channel.
    pub fn channel(mut self, name: impl Into<String>) -> Self {
        self.channel = Some(name.into());
        self
    }

    /// Pick the connection by `key`.
    pub fn partition_key(mut self, key: u64) -> Self {
        self.partition_key = Some(key);
        self
    }

    /// Allow relaying through another member.
    pub fn transitive(mut self) -> Self {
        self.transitive = true;
        self
    }
}

/// The way a forwarded message left this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardRoute {
    /// Straight to the target.
    Direct,
    /// Through this relaying member.
    Via(SocketAddr),
}

/// Why a message could not be forwarded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ForwardError {
    /// The cluster was not started on a granary-remote node (see
    /// [`Cluster::start_on_remote`]), so it has no way to reach actors.
    #[error("the cluster does not ride on a RemoteNode; start it with Cluster::start_on_remote")]
    NoRemoteNode,
    /// No member has this address.
    #[error("no member at {0}")]
    UnknownNode(SocketAddr),
    /// The node is known but not a live member.
    #[error("{node} is not a live member (status {status:?})")]
    NotMember {
        /// The node.
        node: SocketAddr,
        /// Its status in this node's table.
        status: MemberStatus,
    },
    /// There is no direct connection to the node and the options do not allow relaying.
    #[error("no direct connection to {0} (forward with `transitive` to relay)")]
    Unreachable(SocketAddr),
    /// There is no direct connection to the node and no Up member can relay to it.
    #[error("no direct connection to {0} and no member to relay through")]
    NoRelay(SocketAddr),
    /// The message type is not registered, or encoding failed.
    #[error("cannot encode the message: {0}")]
    Encode(String),
    /// The transport refused the frame (backpressure, size, unknown channel, shut down).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The local cluster node has stopped.
    #[error("the cluster node has stopped")]
    Stopped,
}

impl Cluster {
    /// Sends `msg` to the actor exposed under `actor` on the member at `node` (seed 002
    /// Table 1 `forward_message`), returning the route it took. The type of `msg` must be
    /// registered with `register_message!` and accepted by that actor; a mismatch there
    /// becomes a dead letter on the target, as for any tell.
    ///
    /// ```no_run
    /// // no_run: needs running nodes; tests/forward.rs runs the same flow.
    /// # fn demo(cluster: &granary_cluster::Cluster, c: std::net::SocketAddr) {
    /// use granary_cluster::{ForwardOptions, ForwardRoute};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Note(String);
    /// impl granary_core::Message for Note { type Reply = (); }
    /// granary_remote::register_message!(Note, "doc.Note");
    ///
    /// let route = cluster.forward(c, "inbox", Note("hi".into()), &ForwardOptions::default().transitive());
    /// assert!(matches!(route, Ok(ForwardRoute::Direct | ForwardRoute::Via(_))));
    /// # }
    /// ```
    pub fn forward<M: Message>(
        &self,
        node: SocketAddr,
        actor: &str,
        msg: M,
        options: &ForwardOptions,
    ) -> Result<ForwardRoute, ForwardError> {
        let remote = self.remote_node().ok_or(ForwardError::NoRemoteNode)?;
        if !self.is_running() {
            return Err(ForwardError::Stopped);
        }
        let members = self.members_with_tombstones();
        let target = members
            .iter()
            .find(|m| m.id.addr == node)
            .ok_or(ForwardError::UnknownNode(node))?;
        if !target.status.is_live() {
            return Err(ForwardError::NotMember {
                node,
                status: target.status,
            });
        }
        let registry = Registry::global().map_err(|e| ForwardError::Encode(e.to_string()))?;
        let (type_tag, body) = registry
            .encode(&msg)
            .map_err(|e| ForwardError::Encode(e.to_string()))?;
        let me = self.local_id().addr;
        let suspected_here = |addr: SocketAddr| {
            members
                .iter()
                .find(|m| m.id.addr == me)
                .is_some_and(|own| own.suspects.iter().any(|s| s.addr == addr))
        };
        let header = FrameHeader::tell(type_tag, actor);
        let options_here = send_options(options.channel.as_deref(), options.partition_key);
        if let Some(hop) = self.overlay_next_hop(node) {
            // The overlay keeps no connection to `node`: its route is the relay, and
            // the transport takes it by itself (`docs/overlays.md`).
            if !options.transitive {
                return Err(ForwardError::Unreachable(node));
            }
            remote.transport().send(node, header, body, options_here)?;
            return Ok(ForwardRoute::Via(hop));
        }
        if !suspected_here(node) {
            match remote
                .transport()
                .send(node, header, body.clone(), options_here)
            {
                Ok(()) => return Ok(ForwardRoute::Direct),
                Err(SendError::Unreachable { .. }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        if !options.transitive {
            return Err(ForwardError::Unreachable(node));
        }
        let relay = pick_relay(&members, me, node, &suspected_here, &self.ring())
            .ok_or(ForwardError::NoRelay(node))?;
        let frame = RelayFrame {
            target: node,
            actor: actor.to_owned(),
            type_tag,
            body: body.to_vec(),
            channel: options.channel.clone(),
            partition_key: options.partition_key,
        };
        send_relay(&remote, relay, &frame)?;
        Ok(ForwardRoute::Via(relay))
    }
}

/// An Up member other than us and the target, not suspected by us, not suspecting the
/// target; the target's ring monitors first, then by address.
fn pick_relay(
    members: &[Member],
    me: SocketAddr,
    target: SocketAddr,
    suspected_here: &dyn Fn(SocketAddr) -> bool,
    ring: &crate::HashRing,
) -> Option<SocketAddr> {
    let monitors: Vec<SocketAddr> = ring
        .predecessors(target, ring.len())
        .into_iter()
        .map(|id| id.addr)
        .collect();
    members
        .iter()
        .filter(|m| m.status == MemberStatus::Up && m.id.addr != me && m.id.addr != target)
        .filter(|m| !suspected_here(m.id.addr))
        .filter(|m| !m.suspects.iter().any(|s| s.addr == target))
        .min_by_key(|m| {
            let rank = monitors
                .iter()
                .position(|a| *a == m.id.addr)
                .unwrap_or(usize::MAX);
            (rank, m.id.addr)
        })
        .map(|m| m.id.addr)
}

/// Sends the relay request to the relay's cluster inbox, on the caller's channel.
fn send_relay(
    remote: &RemoteNode,
    relay: SocketAddr,
    frame: &RelayFrame,
) -> Result<(), ForwardError> {
    let registry = Registry::global().map_err(|e| ForwardError::Encode(e.to_string()))?;
    let (type_tag, body): (u64, Bytes) = registry
        .encode(frame)
        .map_err(|e| ForwardError::Encode(e.to_string()))?;
    let header = FrameHeader::tell(type_tag, CLUSTER_INBOX);
    remote
        .transport()
        .send(relay, header, body, frame.send_options())
        .map_err(ForwardError::from)
}
