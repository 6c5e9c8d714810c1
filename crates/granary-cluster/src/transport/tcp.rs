//! The cluster protocol over granary-remote's TCP [`Transport`], on its control channel.
//!
//! Every [`Envelope`] becomes one `System` frame addressed to [`CLUSTER_RECIPIENT`] with a
//! postcard body, sent with [`granary_remote::SendOptions::control()`]: membership traffic never queues
//! behind user messages on the data connections, and the cluster name and secret are
//! checked by the transport's handshake before any frame is read. Frames for the cluster
//! are picked out on the reader task and queued for the node's task; everything else goes
//! to an optional inner [`InboundHandler`], so an application can share one listening
//! port between the cluster and its own traffic ([`TcpClusterTransport::bind_with`]).
//!
//! Why a channel between reader and protocol: the reader must never block (see
//! [`InboundHandler`]), and an unbounded queue of small control frames is bounded in
//! practice by the peers' gossip rate; the protocol drains it on every turn of its loop.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use granary_remote::wire::{Frame, FrameHeader, FrameKind, CONTROL_CHANNEL};
use granary_remote::{InboundHandler, NodeId as RemoteNodeId, Transport};
use tokio::sync::mpsc;

use super::{ClusterTransport, TrafficCounter};
use crate::error::TransportError;
use crate::message::Envelope;

pub use granary_remote::TransportConfig;

/// The recipient name of cluster frames on the control channel.
pub const CLUSTER_RECIPIENT: &str = "granary.cluster";

/// Stable type tag of cluster frames (`type_tag("granary.cluster.Envelope")` would do
/// as well; a constant keeps this crate free of the message registry).
pub const CLUSTER_TYPE_TAG: u64 = 0x6772_616e_636c_7573; // "granclus"

/// Live traffic counters of a [`TcpClusterTransport`] (the shared
/// [`TrafficCounter`] type, under the name this module always had).
pub type TcpTrafficCounter = TrafficCounter;

/// Routes cluster frames to the protocol and the rest to the inner handler.
struct Router {
    tx: mpsc::UnboundedSender<Envelope>,
    inner: Option<Arc<dyn InboundHandler>>,
    counter: TrafficCounter,
}

impl Router {
    /// Takes a cluster frame for the protocol; gives back any other frame, for the
    /// inner handler.
    fn take_cluster(&self, from: RemoteNodeId, frame: Frame) -> Option<Frame> {
        let is_cluster = frame.kind == FrameKind::System
            && frame.channel == CONTROL_CHANNEL
            && frame.type_tag == CLUSTER_TYPE_TAG
            && frame.recipient() == CLUSTER_RECIPIENT;
        if !is_cluster {
            return Some(frame);
        }
        match postcard::from_bytes::<Envelope>(&frame.body) {
            // The handshake authenticated `from`; an envelope that claims another
            // address is forged or broken and must not move anyone's membership row.
            Ok(envelope) if envelope.from.addr == from.addr() => {
                self.counter.record_received();
                // The node's task is gone when this fails: nothing left to deliver to.
                let _ = self.tx.send(envelope);
            }
            Ok(envelope) => {
                tracing::warn!(peer = %from, claimed = %envelope.from, "cluster envelope with a forged sender dropped");
            }
            Err(error) => {
                tracing::warn!(peer = %from, %error, "undecodable cluster envelope dropped");
            }
        }
        None
    }
}

impl InboundHandler for Router {
    fn on_frame(&self, from: RemoteNodeId, frame: Frame) {
        if let (Some(frame), Some(inner)) = (self.take_cluster(from, frame), &self.inner) {
            inner.on_frame(from, frame);
        }
    }

    /// Cluster frames never hold the connection back (they come on the control
    /// channel, whose reader must not wait); the inner handler's frames keep its flow
    /// control: its [`Stall`](granary_remote::Stall) goes back to the reader
    /// (`docs/wire.md`, "Flow control").
    fn on_frame_paced(&self, from: RemoteNodeId, frame: Frame) -> Option<granary_remote::Stall> {
        match (self.take_cluster(from, frame), &self.inner) {
            (Some(frame), Some(inner)) => inner.on_frame_paced(from, frame),
            _ => None,
        }
    }
}

/// A [`ClusterTransport`] over TCP (optionally TLS) with granary-remote's authenticated
/// handshake. Dropping it shuts the underlying [`Transport`] down.
///
/// ```no_run
/// // no_run: opens sockets; tests/tcp_transport.rs runs the same flow.
/// # async fn demo() -> Result<(), granary_cluster::ClusterError> {
/// use granary_cluster::transport::tcp::{TcpClusterTransport, TransportConfig};
/// use granary_cluster::{Cluster, ClusterConfig};
///
/// let config = TransportConfig::new("my-cluster", b"secret".to_vec());
/// let first = Cluster::start_with_seeds(
///     ClusterConfig::default(),
///     TcpClusterTransport::bind(config.clone()).await?,
///     vec![],
/// )
/// .await?;
/// let seed = first.local_id().addr;
/// let second = Cluster::start_tcp(ClusterConfig::default(), config, vec![seed]).await?;
/// assert_eq!(second.up_members().len(), 2);
/// # Ok(()) }
/// ```
pub struct TcpClusterTransport {
    transport: Transport,
    incoming: mpsc::UnboundedReceiver<Envelope>,
    counter: TrafficCounter,
}

impl std::fmt::Debug for TcpClusterTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpClusterTransport")
            .field("addr", &self.transport.local_addr())
            .finish_non_exhaustive()
    }
}

impl TcpClusterTransport {
    /// Listens on `config.listen` for cluster traffic only.
    pub async fn bind(config: TransportConfig) -> Result<Self, TransportError> {
        Self::bind_router(config, None).await
    }

    /// Listens on `config.listen`; frames that are not cluster traffic go to `other`,
    /// so the application's own messages can share the port. `other` keeps its flow
    /// control: the transport calls its [`InboundHandler::on_frame_paced`], and a
    /// [`Stall`](granary_remote::Stall) it returns holds back that connection's reader
    /// (tests/shared_port_flow_control.rs).
    pub async fn bind_with(
        config: TransportConfig,
        other: Arc<dyn InboundHandler>,
    ) -> Result<Self, TransportError> {
        Self::bind_router(config, Some(other)).await
    }

    async fn bind_router(
        config: TransportConfig,
        inner: Option<Arc<dyn InboundHandler>>,
    ) -> Result<Self, TransportError> {
        let listen = config.listen;
        let (tx, incoming) = mpsc::unbounded_channel();
        let counter = TrafficCounter::default();
        let router = Router {
            tx,
            inner,
            counter: counter.clone(),
        };
        let transport =
            Transport::bind(config, router)
                .await
                .map_err(|e| TransportError::Bind {
                    addr: listen,
                    reason: e.to_string(),
                })?;
        Ok(Self {
            transport,
            incoming,
            counter,
        })
    }

    /// The underlying transport (to send the application's own frames, read its peer
    /// events, or shut it down abruptly as a crash would).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// A handle on this endpoint's traffic counters.
    pub fn traffic(&self) -> TcpTrafficCounter {
        self.counter.clone()
    }
}

impl Drop for TcpClusterTransport {
    fn drop(&mut self) {
        self.transport.shutdown();
    }
}

impl ClusterTransport for TcpClusterTransport {
    fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    fn send(&self, to: SocketAddr, envelope: Envelope) -> Result<(), TransportError> {
        let body =
            postcard::to_stdvec(&envelope).map_err(|e| TransportError::Encode(e.to_string()))?;
        let header = FrameHeader {
            kind: FrameKind::System,
            channel: CONTROL_CHANNEL,
            type_tag: CLUSTER_TYPE_TAG,
            correlation: 0,
            sender: "",
            recipient: CLUSTER_RECIPIENT,
            trace: None,
        };
        self.counter
            .send_control(&self.transport, to, header, Bytes::from(body), false)
    }

    async fn recv(&mut self) -> Option<Envelope> {
        // `mpsc::Receiver::recv` is cancel-safe, as the trait requires.
        self.incoming.recv().await
    }
}
