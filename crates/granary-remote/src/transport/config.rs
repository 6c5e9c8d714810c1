//! Transport configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::faults::FaultInjector;
use crate::tls::TlsConfig;
use crate::wire::DEFAULT_MAX_FRAME;

/// Smallest chunk size: below it the 32-byte chunk header costs more than it saves.
const MIN_CHUNK_SIZE: usize = 1024;

/// A user-named channel: its own connections, so its traffic never queues behind (or in
/// front of) other channels' traffic (seed 002 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The channel's name (not "control" or "data", which always exist).
    pub name: String,
    /// Parallel connections of this channel per peer (at least 1).
    pub parallelism: usize,
}

/// Everything a [`Transport`](crate::Transport) needs to know.
///
/// ```
/// use granary_remote::TransportConfig;
/// let config = TransportConfig::new("my-cluster", b"cookie".to_vec())
///     .with_parallelism(4)
///     .with_channel("gossip", 1);
/// assert_eq!(config.listen.ip().to_string(), "127.0.0.1");
/// ```
#[derive(Clone)]
pub struct TransportConfig {
    /// Address to listen on (port 0 picks a free port). It is also the node's address in
    /// its [`NodeId`](crate::NodeId), so it must be reachable by peers (not 0.0.0.0).
    pub listen: SocketAddr,
    /// The address peers and clients dial this node at, when it differs from `listen`
    /// (a wildcard bind such as `0.0.0.0`, NAT, a container). It becomes the node's
    /// address in its [`NodeId`](crate::NodeId); port 0 means the port actually bound.
    /// `None`: the bound address. Default `None`.
    pub advertise: Option<SocketAddr>,
    /// Cluster name; peers of another cluster are refused.
    pub cluster: String,
    /// Shared secret for the challenge–response (never sent).
    pub secret: Vec<u8>,
    /// Parallel data connections per peer (P, seed 002 §4.1). Default 2: one-way
    /// throughput of 16-byte frames over loopback on the 2-core development machine was
    /// the same within noise for P = 1, 2 and 4 (1.4–3.3 M frames/s, example
    /// `oneway_throughput`), so the default is the smallest P that lets one bulk pair
    /// not block every other pair.
    pub parallelism: usize,
    /// Choose the data connection by hashing (sender, recipient), so each pair keeps FIFO
    /// order (seed 002 §4.3). When off, connections are used round robin.
    pub affinity: bool,
    /// Send data-channel frames above `chunk_size` on a separate per-peer **bulk lane**
    /// (its own connection, dialled on first use, same handshake, TLS and keepalive as
    /// the data connections), so no small pair shares a connection with a large stream.
    /// A pair that sends a large frame moves to the bulk lane for good; with affinity on,
    /// its FIFO order survives the move by a barrier on its old connection that the peer
    /// acknowledges before the pair's frames go out on the bulk lane (`docs/wire.md`,
    /// "Bulk lane"). Frames sent with a `partition_key` and named channels are not
    /// affected. Default on: with P = 1 it lowered the small pairs' p99 beside a 1 MiB
    /// stream in each of three (heavily loaded) runs of the `pairs` benchmark; with
    /// P = 4 the runs were inconclusive (docs/BENCHMARKS.md, "Remote").
    pub bulk_lane: bool,
    /// User-named channels.
    pub channels: Vec<ChannelConfig>,
    /// Largest frame (after the length prefix) sent or accepted. Default 16 MiB.
    pub max_frame: u32,
    /// Frames longer than this (after the length prefix) are cut into chunks of this
    /// size, and the connection's writer sends one chunk per write beside every other
    /// frame queued meanwhile, so small messages of other pairs do not wait behind a
    /// large one (FIFO per pair holds; `docs/wire.md`, "Chunks"). Default 64 KiB.
    pub chunk_size: usize,
    /// About how many bytes of a connection the kernel may hold (unsent at the dialling
    /// end, `TCP_NOTSENT_LOWAT` on Linux; the receive buffer at the accepting end).
    /// Frames beyond it wait in the transport's queue, where small frames still pass a
    /// chunked large one; in kernel buffers (several MiB when left to autotuning) they
    /// cannot, so this bounds how long a small message waits behind a large one on the
    /// same connection. `None` leaves the buffers to the OS. Default 128 KiB.
    pub kernel_backlog: Option<usize>,
    /// Bytes that may wait in one connection's queue before sends fail with
    /// [`SendError::Backpressure`](crate::SendError::Backpressure). A frame is always
    /// accepted into an empty queue. Default 16 MiB.
    pub queue_capacity: usize,
    /// Messages from the wire that may wait for one exposed actor of a
    /// [`RemoteNode`](crate::RemoteNode) (in its mailbox, or as asks being served) before
    /// the connection that brings the next one is held back until the actor takes one,
    /// so TCP pushes back and the sender's queue fills up to
    /// [`SendError::Backpressure`](crate::SendError::Backpressure) (`docs/wire.md`,
    /// "Flow control"). At least 1. Default 1024.
    pub inbound_capacity: usize,
    /// Bytes all connections together may hold in partly received frames and in chunked
    /// frames being reassembled. A connection whose next frame would take the node over
    /// it gets [`FrameError::ReassemblyBudget`](crate::FrameError::ReassemblyBudget) and
    /// is closed; the other connections are served on. At least `max_frame` is
    /// sensible, so one largest frame always fits. Default 256 MiB.
    pub max_reassembly_bytes: usize,
    /// One deadline for connecting plus TLS plus the handshake, on both ends. Default 5 s.
    pub handshake_timeout: Duration,
    /// Inbound connections that may be in TLS or the handshake at once; one more is
    /// closed as soon as it is accepted. With the handshake's 1 KiB frame limit this
    /// bounds what unauthenticated peers can make the node hold. Default 256.
    pub max_unauthenticated: usize,
    /// First reconnect delay; doubles per failed attempt up to `backoff_max`. Default 50 ms.
    pub backoff_min: Duration,
    /// Largest reconnect delay. Default 2 s.
    pub backoff_max: Duration,
    /// Failed connection attempts of the control connection in a row after which the peer
    /// is declared unreachable: its queued frames are dropped and sends fail fast with
    /// [`SendError::Unreachable`](crate::SendError::Unreachable) until it answers again.
    /// Default 3.
    pub unreachable_after: u32,
    /// How often the control connection sends a heartbeat frame to the peer. Default
    /// 1 s.
    pub heartbeat_interval: Duration,
    /// A peer whose control connection has delivered nothing (no heartbeat, no other
    /// frame) for this long is treated as lost, as if it had stopped answering: a
    /// [`PeerEvent::Unreachable`](crate::PeerEvent::Unreachable) is broadcast (so
    /// watchers of its actors get `Terminated` with `NodeLost` and pending asks fail
    /// with `Unreachable`), frames queued for it are dropped and sends fail fast, until
    /// it is heard from again. Default 5 s.
    pub heartbeat_timeout: Duration,
    /// TCP keepalive idle time on every connection (probes every half of it, 3 probes),
    /// so a peer whose host vanished without closing its sockets is noticed even when
    /// nothing is being written. `None` turns keepalive off. Default 10 s.
    pub keepalive: Option<Duration>,
    /// TLS with mutual authentication; `None` for plain TCP.
    pub tls: Option<TlsConfig>,
    /// How connections reach peers: TCP (the default) or a broker
    /// ([`Link::Broker`](super::Link::Broker)), where the node listens nowhere (`listen`
    /// and `advertise` are not used: the link names the node) and `tls`, `keepalive`
    /// and `kernel_backlog` do not apply (TLS is refused).
    pub link: super::Link,
    /// Fault injection at the sending side; `None` costs nothing.
    pub faults: Option<Arc<FaultInjector>>,
    /// The highest protocol version to offer in handshakes
    /// ([`PROTOCOL_VERSION`](crate::wire::PROTOCOL_VERSION), 5, by default). 4 makes the
    /// node speak as a version-4 build does: postcard bodies, no contract versions (the
    /// bench's side-by-side comparison, tests of mixed clusters). Values outside
    /// [`MIN_PROTOCOL_VERSION`](crate::wire::MIN_PROTOCOL_VERSION)..=`PROTOCOL_VERSION`
    /// are clamped.
    pub max_protocol: u8,
}

impl TransportConfig {
    /// Defaults on 127.0.0.1 with a free port.
    pub fn new(cluster: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            listen: ([127, 0, 0, 1], 0).into(),
            advertise: None,
            cluster: cluster.into(),
            secret: secret.into(),
            parallelism: 2,
            affinity: true,
            bulk_lane: true,
            channels: Vec::new(),
            max_frame: DEFAULT_MAX_FRAME,
            chunk_size: 64 * 1024,
            kernel_backlog: Some(128 * 1024),
            queue_capacity: 16 * 1024 * 1024,
            inbound_capacity: 1024,
            max_reassembly_bytes: 256 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(5),
            max_unauthenticated: 256,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            unreachable_after: 3,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            keepalive: Some(Duration::from_secs(10)),
            tls: None,
            link: super::Link::Tcp,
            faults: None,
            max_protocol: crate::wire::PROTOCOL_VERSION,
        }
    }

    /// Set the highest protocol version offered in handshakes
    /// ([`TransportConfig::max_protocol`]).
    pub fn with_max_protocol(mut self, version: u8) -> Self {
        self.max_protocol = version;
        self
    }

    /// Set the listen address.
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// Set the address peers dial this node at (port 0: the bound port).
    ///
    /// ```
    /// use granary_remote::TransportConfig;
    /// let config = TransportConfig::new("c", "s")
    ///     .with_listen("0.0.0.0:7100".parse().unwrap())
    ///     .with_advertise("10.0.0.5:7100".parse().unwrap());
    /// assert_eq!(config.advertise.unwrap().port(), 7100);
    /// ```
    pub fn with_advertise(mut self, advertise: SocketAddr) -> Self {
        self.advertise = Some(advertise);
        self
    }

    /// Set P, the number of data connections per peer.
    pub fn with_parallelism(mut self, parallelism: usize) -> Self {
        self.parallelism = parallelism;
        self
    }

    /// Turn affinity on or off.
    pub fn with_affinity(mut self, affinity: bool) -> Self {
        self.affinity = affinity;
        self
    }

    /// Turn the bulk lane for large data frames on or off.
    ///
    /// ```
    /// use granary_remote::TransportConfig;
    /// let config = TransportConfig::new("c", "s").with_bulk_lane(false);
    /// assert!(!config.bulk_lane);
    /// ```
    pub fn with_bulk_lane(mut self, bulk_lane: bool) -> Self {
        self.bulk_lane = bulk_lane;
        self
    }

    /// Add a user-named channel with `parallelism` connections per peer.
    pub fn with_channel(mut self, name: impl Into<String>, parallelism: usize) -> Self {
        self.channels.push(ChannelConfig {
            name: name.into(),
            parallelism,
        });
        self
    }

    /// Set the maximum frame size.
    pub fn with_max_frame(mut self, max_frame: u32) -> Self {
        self.max_frame = max_frame;
        self
    }

    /// Set the size above which frames are sent in chunks (and the chunk size).
    pub fn with_chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Set (or with `None` lift) the kernel backlog per connection.
    pub fn with_kernel_backlog(mut self, bytes: Option<usize>) -> Self {
        self.kernel_backlog = bytes;
        self
    }

    /// Set how many inbound connections may be in TLS or the handshake at once.
    pub fn with_max_unauthenticated(mut self, connections: usize) -> Self {
        self.max_unauthenticated = connections;
        self
    }

    /// Set the per-connection queue capacity in bytes.
    pub fn with_queue_capacity(mut self, bytes: usize) -> Self {
        self.queue_capacity = bytes;
        self
    }

    /// Set how many messages from the wire may wait for one exposed actor.
    ///
    /// ```
    /// use granary_remote::TransportConfig;
    /// let config = TransportConfig::new("c", "s").with_inbound_capacity(64);
    /// assert_eq!(config.inbound_capacity, 64);
    /// ```
    pub fn with_inbound_capacity(mut self, messages: usize) -> Self {
        self.inbound_capacity = messages;
        self
    }

    /// Set how many bytes all connections together may hold in partial and chunked frames.
    pub fn with_max_reassembly_bytes(mut self, bytes: usize) -> Self {
        self.max_reassembly_bytes = bytes;
        self
    }

    /// Send heartbeats every `interval`; a peer silent for `timeout` is lost.
    pub fn with_heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.heartbeat_interval = interval;
        self.heartbeat_timeout = timeout;
        self
    }

    /// Enable TLS.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Carry every connection over `link` ([`TransportConfig::link`]).
    pub fn with_link(mut self, link: super::Link) -> Self {
        self.link = link;
        self
    }

    /// Attach a fault injector.
    pub fn with_faults(mut self, faults: Arc<FaultInjector>) -> Self {
        self.faults = Some(faults);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.parallelism == 0 || self.parallelism > usize::from(u16::MAX) {
            return Err("parallelism must be between 1 and 65535".into());
        }
        if self.max_frame < crate::wire::FIXED_HEADER as u32 {
            return Err("max_frame is smaller than the frame header".into());
        }
        if self.chunk_size < MIN_CHUNK_SIZE {
            return Err(format!(
                "chunk_size must be at least {MIN_CHUNK_SIZE} bytes"
            ));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(
                "heartbeat_interval must be non-zero and shorter than heartbeat_timeout".into(),
            );
        }
        if self.cluster.len() > crate::handshake::MAX_NAME {
            return Err(format!(
                "cluster name is longer than {} bytes",
                crate::handshake::MAX_NAME
            ));
        }
        if self.inbound_capacity == 0 || self.inbound_capacity > tokio::sync::Semaphore::MAX_PERMITS
        {
            return Err("inbound_capacity must be at least 1".into());
        }
        if self.max_unauthenticated == 0 {
            return Err("max_unauthenticated must be at least 1".into());
        }
        if self.link.is_broker() && self.tls.is_some() {
            return Err(
                "TLS between nodes is not offered over a broker link (secure the broker \
                 connection instead)"
                    .into(),
            );
        }
        match self.advertise {
            _ if self.link.is_broker() => {}
            Some(a) if a.ip().is_unspecified() => {
                return Err("advertise address must be a concrete address peers can dial".into());
            }
            None if self.listen.ip().is_unspecified() => {
                return Err(
                    "listen address must be a concrete address peers can dial (or set advertise)"
                        .into(),
                );
            }
            _ => {}
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.channels {
            if c.name == "control" || c.name == "data" || c.name == super::bulk::LANE_NAME {
                return Err(format!("channel name {:?} is reserved", c.name));
            }
            if c.name.len() > crate::handshake::MAX_NAME {
                return Err(format!(
                    "channel name {:?} is longer than {} bytes",
                    crate::error::bounded_reason(&c.name),
                    crate::handshake::MAX_NAME
                ));
            }
            if c.parallelism == 0 || c.parallelism > usize::from(u16::MAX) {
                return Err(format!(
                    "channel {:?}: parallelism must be 1..=65535",
                    c.name
                ));
            }
            let id = crate::wire::channel_id(&c.name);
            if id == crate::wire::CONTROL_CHANNEL || id == crate::wire::DATA_CHANNEL {
                return Err(format!(
                    "channel {:?} collides with a built-in channel id",
                    c.name
                ));
            }
            if !seen.insert(id) {
                return Err(format!("channel {:?} is configured twice", c.name));
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("TransportConfig")
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .field("cluster", &self.cluster)
            .field("parallelism", &self.parallelism)
            .field("affinity", &self.affinity)
            .field("bulk_lane", &self.bulk_lane)
            .field("channels", &self.channels)
            .field("max_frame", &self.max_frame)
            .field("chunk_size", &self.chunk_size)
            .field("kernel_backlog", &self.kernel_backlog)
            .field("queue_capacity", &self.queue_capacity)
            .field("inbound_capacity", &self.inbound_capacity)
            .field("max_reassembly_bytes", &self.max_reassembly_bytes)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("tls", &self.tls.is_some())
            .field("link", &self.link)
            .field("faults", &self.faults.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_configurations_are_refused_with_a_reason() {
        let base = || TransportConfig::new("c", "s");
        assert!(base().validate().is_ok());
        assert!(base().with_parallelism(0).validate().is_err());
        assert!(base().with_channel("data", 1).validate().is_err());
        assert!(base().with_channel("data.bulk", 1).validate().is_err());
        assert!(base()
            .with_channel("bulk", 1)
            .with_channel("bulk", 2)
            .validate()
            .is_err());
        assert!(base().with_channel("bulk", 0).validate().is_err());
        assert!(base().with_max_frame(8).validate().is_err());
        assert!(base().with_chunk_size(10).validate().is_err());
        assert!(base().with_inbound_capacity(0).validate().is_err());
        let second = Duration::from_secs(1);
        assert!(base().with_heartbeat(second, second).validate().is_err());
        assert!(base()
            .with_heartbeat(Duration::ZERO, second)
            .validate()
            .is_err());
        assert!(base()
            .with_listen("0.0.0.0:0".parse().unwrap())
            .validate()
            .is_err());
        assert!(base()
            .with_listen("0.0.0.0:0".parse().unwrap())
            .with_advertise("10.0.0.5:0".parse().unwrap())
            .validate()
            .is_ok());
        assert!(base()
            .with_advertise("0.0.0.0:7100".parse().unwrap())
            .validate()
            .is_err());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let text = format!("{:?}", TransportConfig::new("c", b"top-secret".to_vec()));
        assert!(!text.contains("top-secret"));
    }
}
