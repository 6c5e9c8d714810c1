//! The link's settings.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything an [`AmqpLink`](crate::AmqpLink) needs to know.
///
/// ```
/// use granary_amqp::AmqpConfig;
/// let config = AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", "my-cluster")
///     .with_node_addr("10.0.0.5:7100".parse().unwrap());
/// assert_eq!(config.node_addr.port(), 7100);
/// ```
#[derive(Clone)]
pub struct AmqpConfig {
    /// The broker, as an AMQP URI (`amqp://user:password@host:port/vhost`, the vhost
    /// percent-encoded: `%2f` is `/`).
    pub url: String,
    /// The cluster name: it scopes the node queues and the membership exchange, so
    /// several clusters share one broker.
    pub cluster: String,
    /// The address that names this node (its `NodeId`); nothing listens there. Port 0:
    /// a free name on that IP is picked (the first whose queue no other node holds).
    /// Default `127.0.0.1:0`.
    pub node_addr: SocketAddr,
    /// The most bytes one published message carries: a connection's writes are read
    /// in pieces of at most this size and each piece is one message. Also the size of
    /// the in-process pipe between the transport and the link, so a writer that got
    /// this far ahead waits (backpressure). Default 64 KiB.
    pub max_message: usize,
    /// Bytes received for one connection and not yet read by the transport. A sender
    /// that gets further ahead has its connection closed (reported as a lost
    /// connection, which the transport redials), so a reader held back by flow control
    /// never makes the link buffer without bound, and one slow connection never holds
    /// up the node's queue. Default 8 MiB.
    pub max_unconsumed: usize,
    /// Bytes received for all connections together and not yet read by the
    /// transport; the connection whose message would go over it is closed. Default
    /// 256 MiB.
    pub max_buffered: usize,
    /// Messages the broker sends ahead to this node's consumer before it acknowledges
    /// them (AMQP prefetch); the rest wait in the node's queue on the broker, so the
    /// client never buffers more than this many undelivered messages. Acknowledged a
    /// quarter of this at a time. At least 4. Default 1024.
    pub prefetch: u16,
    /// Connections (dialled and accepted) open at once; an `open` beyond it is refused.
    /// Default 4096.
    pub max_connections: usize,
    /// Connections opened by other nodes and not yet taken by the transport; one more
    /// is refused. Default 256.
    pub max_pending_accepts: usize,
    /// Members heard from in membership announcements are offered as contacts for this
    /// long after their last announcement (a node announces itself at every
    /// `provider_refresh_interval` of the cluster, 5 s by default). Default 30 s.
    pub member_ttl: Duration,
    /// The most members remembered from announcements. Default 4096.
    pub max_members: usize,
    /// How long `discover` waits for a member to answer before it returns what it
    /// heard (nothing: the node forms a new cluster). Default 1 s.
    pub discover_wait: Duration,
    /// How often the queues of the nodes this node has connections with (either way)
    /// are checked. A
    /// node whose process died sends no close marker, and what is published to its
    /// queue after the broker deleted it is dropped without a word; a check that finds
    /// the queue gone ends the connections to it, so the transport redials, is refused
    /// and declares the node unreachable, as it does when a TCP peer's host resets the
    /// connection. Default 1 s.
    pub peer_check_interval: Duration,
    /// Deadline for connecting to the broker and declaring the node's queue.
    /// Default 10 s.
    pub connect_timeout: Duration,
}

impl AmqpConfig {
    /// Defaults for the broker at `url` and the cluster `cluster`.
    pub fn new(url: impl Into<String>, cluster: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            cluster: cluster.into(),
            node_addr: ([127, 0, 0, 1], 0).into(),
            max_message: 64 * 1024,
            max_unconsumed: 8 * 1024 * 1024,
            max_buffered: 256 * 1024 * 1024,
            prefetch: 1024,
            max_connections: 4096,
            max_pending_accepts: 256,
            member_ttl: Duration::from_secs(30),
            max_members: 4096,
            discover_wait: Duration::from_secs(1),
            peer_check_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Set the address that names this node ([`AmqpConfig::node_addr`]).
    pub fn with_node_addr(mut self, addr: SocketAddr) -> Self {
        self.node_addr = addr;
        self
    }

    /// Set how long `discover` waits for an answer ([`AmqpConfig::discover_wait`]).
    pub fn with_discover_wait(mut self, wait: Duration) -> Self {
        self.discover_wait = wait;
        self
    }

    /// Set the cap on unread bytes per connection ([`AmqpConfig::max_unconsumed`]).
    pub fn with_max_unconsumed(mut self, bytes: usize) -> Self {
        self.max_unconsumed = bytes;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.cluster.is_empty() || self.cluster.len() > crate::names::MAX_CLUSTER {
            return Err(format!(
                "cluster name must be 1 to {} bytes",
                crate::names::MAX_CLUSTER
            ));
        }
        if self.node_addr.ip().is_unspecified() {
            return Err("node_addr must be a concrete address (it names the node)".into());
        }
        if self.max_message == 0
            || self.max_unconsumed < self.max_message
            || self.max_buffered < self.max_unconsumed
        {
            return Err("need 1 <= max_message <= max_unconsumed <= max_buffered".into());
        }
        if self.prefetch < 4 {
            return Err("prefetch must be at least 4".into());
        }
        if self.peer_check_interval.is_zero() {
            return Err("peer_check_interval must be above zero".into());
        }
        if self.max_connections == 0 || self.max_pending_accepts == 0 || self.max_members == 0 {
            return Err(
                "max_connections, max_pending_accepts and max_members must be at least 1".into(),
            );
        }
        Ok(())
    }
}

impl std::fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only its host part is printed.
        f.debug_struct("AmqpConfig")
            .field("broker", &crate::names::redact(&self.url))
            .field("cluster", &self.cluster)
            .field("node_addr", &self.node_addr)
            .field("max_message", &self.max_message)
            .field("max_unconsumed", &self.max_unconsumed)
            .field("max_connections", &self.max_connections)
            .field("member_ttl", &self.member_ttl)
            .finish_non_exhaustive()
    }
}
