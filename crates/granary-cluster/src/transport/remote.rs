//! The cluster protocol on a granary-remote [`RemoteNode`]: one listening port and one
//! set of authenticated connections for membership and application actors alike.
//!
//! A node that already serves actors through a [`RemoteNode`] should not open a second
//! port for [`TcpClusterTransport`](super::tcp::TcpClusterTransport). This transport
//! exposes a small inbox actor under [`CLUSTER_INBOX`] on the node and sends each
//! [`Envelope`] to the peer's inbox as one `Tell` frame **on the control channel**, so
//! heartbeats and gossip never queue behind application messages on the data
//! connections. The cluster name and secret are checked by the node's handshake before
//! any frame is read.
//!
//! The same inbox serves the relay hop of [`Cluster::forward`](crate::Cluster::forward)
//! with `transitive`: a [`RelayFrame`] carries an already encoded message (type tag and
//! body) for a named actor on a third node, and the relaying node sends it on unchanged,
//! on the channel and partition key the sender chose. Relaying is one hop: a relay that
//! cannot reach the target drops the frame (delivery is at most once).
//!
//! Why an actor: a [`RemoteNode`] owns its transport's inbound handler and hands frames
//! to exposed actors only, so the cluster receives through one like any other service.
//! The inbox only queues what it receives for the node's task (never blocking the
//! reader), as [`TcpClusterTransport`](super::tcp::TcpClusterTransport) does.

use std::net::SocketAddr;

use bytes::Bytes;
use granary_core::{Actor, ActorRef, Context, Handler, Message};
use granary_remote::wire::{FrameHeader, FrameKind, CONTROL_CHANNEL};
use granary_remote::{register_message, Registry, RemoteNode, SendOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{ClusterTransport, TrafficCounter};
use crate::error::TransportError;
use crate::message::{ClusterMessage, Envelope};

/// The name the cluster inbox is exposed under on every node.
pub const CLUSTER_INBOX: &str = "granary.cluster.inbox";

/// One cluster-protocol envelope as it travels between inboxes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterFrame(pub Envelope);

impl Message for ClusterFrame {
    type Reply = ();
}
register_message!(ClusterFrame, "granary.cluster.ClusterFrame");

/// A message for a named actor on `target`, already encoded, for a relay to send on
/// (the hop of a transitive [`Cluster::forward`](crate::Cluster::forward)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayFrame {
    /// The node the message is for.
    pub target: SocketAddr,
    /// The exposed name of the actor it is for.
    pub actor: String,
    /// The message's registered type tag.
    pub type_tag: u64,
    /// The message's encoded body.
    pub body: Vec<u8>,
    /// The named channel to use (`None`: the default data channel).
    pub channel: Option<String>,
    /// The partition key that picks the connection (`None`: by affinity).
    pub partition_key: Option<u64>,
}

impl Message for RelayFrame {
    type Reply = ();
}
register_message!(RelayFrame, "granary.cluster.RelayFrame");

impl RelayFrame {
    /// The send options this frame asks for.
    pub fn send_options(&self) -> SendOptions {
        send_options(self.channel.as_deref(), self.partition_key)
    }

    /// The header of the frame that delivers the carried message to its actor.
    pub fn delivery_header(&self) -> FrameHeader<'_> {
        FrameHeader {
            kind: FrameKind::Tell,
            channel: 0,
            type_tag: self.type_tag,
            correlation: 0,
            sender: "",
            recipient: &self.actor,
            trace: None,
        }
    }
}

/// The send options for a channel name (`None`: data) and partition key.
pub(crate) fn send_options(channel: Option<&str>, partition_key: Option<u64>) -> SendOptions {
    let options = match channel {
        Some(name) => SendOptions::channel(name),
        None => SendOptions::data(),
    };
    match partition_key {
        Some(key) => options.partition_key(key),
        None => options,
    }
}

/// What the inbox hands to the transport.
enum Inbound {
    Envelope(Envelope),
    Relay(RelayFrame),
}

/// The exposed actor: queues what arrives for the cluster's task.
struct ClusterInbox {
    tx: mpsc::UnboundedSender<Inbound>,
}

impl Actor for ClusterInbox {}

impl Handler<ClusterFrame> for ClusterInbox {
    async fn handle(&mut self, msg: ClusterFrame, ctx: &mut Context<Self>) {
        if self.tx.send(Inbound::Envelope(msg.0)).is_err() {
            // The transport is gone; stop so the name is free for the next one.
            ctx.stop();
        }
    }
}

impl Handler<RelayFrame> for ClusterInbox {
    async fn handle(&mut self, msg: RelayFrame, ctx: &mut Context<Self>) {
        if self.tx.send(Inbound::Relay(msg)).is_err() {
            ctx.stop();
        }
    }
}

/// A [`ClusterTransport`] riding on a [`RemoteNode`] (its port, handshake, TLS and
/// fault injection). Dropping it stops the inbox; the node itself keeps running.
///
/// ```no_run
/// // no_run: opens sockets; tests/remote_transport.rs runs the same flow.
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use granary_cluster::transport::remote::RemoteClusterTransport;
/// use granary_cluster::{Cluster, ClusterConfig};
/// use granary_core::ActorSystem;
/// use granary_remote::{RemoteNode, TransportConfig};
///
/// let node = RemoteNode::start(ActorSystem::new(), TransportConfig::new("c", "s")).await?;
/// let transport = RemoteClusterTransport::start(&node)?;
/// let traffic = transport.traffic();
/// let cluster = Cluster::start_with_seeds(ClusterConfig::default(), transport, vec![]).await?;
/// println!("{} members, {:?}", cluster.members().len(), traffic.snapshot());
/// # Ok(()) }
/// ```
pub struct RemoteClusterTransport {
    node: RemoteNode,
    inbox: ActorRef<ClusterInbox>,
    incoming: mpsc::UnboundedReceiver<Inbound>,
    counter: TrafficCounter,
}

impl std::fmt::Debug for RemoteClusterTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClusterTransport")
            .field("addr", &self.node.local_addr())
            .finish_non_exhaustive()
    }
}

impl RemoteClusterTransport {
    /// Exposes the cluster inbox on `node` and returns the transport. Fails with
    /// [`TransportError::Remote`] when the inbox name is taken (a cluster already runs
    /// on this node) or the message registry has conflicts.
    pub fn start(node: &RemoteNode) -> Result<Self, TransportError> {
        let (tx, incoming) = mpsc::unbounded_channel();
        let inbox = node.system().spawn(ClusterInbox { tx });
        let exposed = node
            .expose(CLUSTER_INBOX, &inbox)
            .and_then(|e| e.accept::<ClusterFrame>())
            .and_then(|e| e.accept::<RelayFrame>());
        if let Err(error) = exposed {
            inbox.stop();
            return Err(TransportError::Remote(error.to_string()));
        }
        Ok(Self {
            node: node.clone(),
            inbox,
            incoming,
            counter: TrafficCounter::default(),
        })
    }

    /// The node underneath.
    pub fn node(&self) -> &RemoteNode {
        &self.node
    }

    /// A handle on this endpoint's traffic counters (cluster envelopes only).
    pub fn traffic(&self) -> TrafficCounter {
        self.counter.clone()
    }

    /// Sends a relayed message on to its target.
    fn relay(&self, frame: &RelayFrame) {
        let result = self.node.transport().send(
            frame.target,
            frame.delivery_header(),
            Bytes::copy_from_slice(&frame.body),
            frame.send_options(),
        );
        if let Err(error) = result {
            tracing::debug!(target = %frame.target, actor = %frame.actor, %error, "relayed message not sent");
        }
    }
}

impl Drop for RemoteClusterTransport {
    fn drop(&mut self) {
        self.inbox.stop();
    }
}

impl ClusterTransport for RemoteClusterTransport {
    fn local_addr(&self) -> SocketAddr {
        self.node.local_addr()
    }

    fn send(&self, to: SocketAddr, envelope: Envelope) -> Result<(), TransportError> {
        // The overlay's own messages and the join go straight to their addressee (a
        // short-lived connection outside the overlay's, `docs/overlays.md`); the rest
        // is routed like any actor message when an overlay is configured.
        let direct = matches!(
            envelope.message,
            ClusterMessage::Overlay { .. }
                | ClusterMessage::JoinRequest { .. }
                | ClusterMessage::JoinAccept { .. }
        );
        let registry = Registry::global().map_err(|e| TransportError::Encode(e.to_string()))?;
        let (type_tag, body) = registry
            .encode(&ClusterFrame(envelope))
            .map_err(|e| TransportError::Encode(e.to_string()))?;
        let header = FrameHeader {
            kind: FrameKind::Tell,
            channel: CONTROL_CHANNEL,
            type_tag,
            correlation: 0,
            sender: "",
            recipient: CLUSTER_INBOX,
            trace: None,
        };
        self.counter
            .send_control(self.node.transport(), to, header, body, direct)
    }

    async fn recv(&mut self) -> Option<Envelope> {
        // Cancel-safe: the only await is `mpsc::UnboundedReceiver::recv`, and a relay
        // frame is handled completely before the next await.
        loop {
            match self.incoming.recv().await? {
                Inbound::Envelope(envelope) => {
                    self.counter.record_received();
                    return Some(envelope);
                }
                Inbound::Relay(frame) => self.relay(&frame),
            }
        }
    }

    fn remote_node(&self) -> Option<RemoteNode> {
        Some(self.node.clone())
    }
}
