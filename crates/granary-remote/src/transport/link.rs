//! How the transport's connections reach peers: TCP sockets (the default), or a broker
//! that carries each connection as messages (seed 002 §3.6, the publish-subscribe
//! overlay; `docs/overlays.md`).
//!
//! Everything above the byte stream (handshake, channels, lanes, heartbeats, framing,
//! chunks, flow control) is the same on both: a broker link only replaces
//! `TcpStream::connect` and `TcpListener::accept`. The choice is an enum, so the TCP path
//! does not go through a trait object; a broker connection is a
//! [`tokio::io::DuplexStream`], a concrete type too, whose other end the link pumps to
//! and from the broker.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::DuplexStream;

/// A boxed future returned by [`BrokerLink`] methods.
pub type LinkFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connection another node opened to this one through a broker: the byte stream and
/// the address that names the dialling node.
pub type BrokerConnection = (DuplexStream, SocketAddr);

/// Carries the transport's connections through a message broker instead of TCP
/// sockets: the node opens only outbound connections (to the broker) and listens
/// nowhere. `granary-amqp`'s `AmqpLink` implements it over AMQP 0-9-1 (RabbitMQ).
///
/// A connection is a duplex byte stream, ordered and reliable while it lasts, as a TCP
/// connection is; its end (a close, a lost broker) is the stream's end of file or an
/// error, which the transport reports as a lost connection.
pub trait BrokerLink: Send + Sync + 'static {
    /// The address that names this node to its peers (in its
    /// [`NodeId`](crate::NodeId)); nothing listens there.
    fn local_addr(&self) -> SocketAddr;

    /// Opens a connection to the node named `to`. An error when no such node is
    /// attached to the broker or the broker is gone.
    fn dial(&self, to: SocketAddr) -> LinkFuture<'_, io::Result<DuplexStream>>;

    /// The next connection another node opened to this one; `None` once the link is
    /// closed or lost the broker. Called by one task only.
    fn accept(&self) -> LinkFuture<'_, Option<BrokerConnection>>;

    /// Ends every connection and detaches this node from the broker; called by
    /// [`Transport::shutdown`](crate::Transport::shutdown).
    fn close(&self);
}

/// How a [`Transport`](crate::Transport) reaches its peers
/// ([`TransportConfig::link`](crate::TransportConfig::link)).
#[derive(Clone, Default)]
pub enum Link {
    /// TCP connections dialled to and accepted from the peers' addresses (optionally
    /// TLS). The default.
    #[default]
    Tcp,
    /// Every connection through a broker ([`BrokerLink`]): no listening socket, only
    /// outbound connections to the broker. TLS between nodes is not offered on it
    /// (secure the broker connection instead); the handshake still authenticates every
    /// connection with the cluster secret.
    Broker(Arc<dyn BrokerLink>),
}

impl Link {
    /// Whether this is a broker link.
    pub fn is_broker(&self) -> bool {
        matches!(self, Link::Broker(_))
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Link::Tcp => f.write_str("Tcp"),
            Link::Broker(link) => write!(f, "Broker({})", link.local_addr()),
        }
    }
}
