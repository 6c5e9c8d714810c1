//! A `ClusterTransport` over granary-remote: cluster envelopes travel as
//! [`ClusterFrame`] messages to the peer's `granary.virtual.gossip` actor, on the same
//! port and authenticated connections as everything else. granary-cluster's
//! `TcpClusterTransport` needs a bare `Transport` of its own, while a virtual node's
//! transport belongs to its `RemoteNode`; riding on the `RemoteNode` keeps a node to
//! one listening port.

use std::net::SocketAddr;

use granary_cluster::{ClusterTransport, Envelope, TransportError};
use granary_core::{Actor, ActorRef, Context, Handler};
use granary_remote::RemoteNode;
use tokio::sync::mpsc;

use crate::protocol::{ClusterFrame, GOSSIP};

/// Receives frames and queues them for the cluster task.
pub(crate) struct GossipInbox {
    pub(crate) tx: mpsc::UnboundedSender<Envelope>,
}

impl Actor for GossipInbox {}

impl Handler<ClusterFrame> for GossipInbox {
    async fn handle(&mut self, msg: ClusterFrame, _ctx: &mut Context<Self>) {
        let _ = self.tx.send(msg.0);
    }
}

pub(crate) struct RemoteClusterTransport {
    node: RemoteNode,
    rx: mpsc::UnboundedReceiver<Envelope>,
}

impl RemoteClusterTransport {
    /// Exposes the inbox on `node` and returns the transport.
    pub(crate) fn start(node: &RemoteNode) -> Result<Self, granary_remote::RemoteSetupError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let inbox = node.system().spawn(GossipInbox { tx });
        node.expose(GOSSIP, &inbox)?.accept::<ClusterFrame>()?;
        Ok(Self {
            node: node.clone(),
            rx,
        })
    }
}

impl ClusterTransport for RemoteClusterTransport {
    fn local_addr(&self) -> SocketAddr {
        self.node.local_addr()
    }

    fn send(&self, to: SocketAddr, envelope: Envelope) -> Result<(), TransportError> {
        let peer: ActorRef<GossipInbox> = self.node.remote_ref(to, GOSSIP);
        // Loss is tolerated by the protocol; a failed send is just a dropped message.
        let _ = peer.tell(ClusterFrame(envelope));
        Ok(())
    }

    async fn recv(&mut self) -> Option<Envelope> {
        self.rx.recv().await
    }
}
