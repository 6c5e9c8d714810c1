//! TCP transport with channels, parallelism and affinity (seed 002 §4).
//!
//! Per peer the transport dials:
//! - one **control** connection (handshake, system traffic, later membership), kept apart
//!   from data so it never queues behind user messages;
//! - `P` **data** connections; a frame's connection is chosen by hashing its (sender,
//!   recipient) pair (**affinity**), so a pair keeps FIFO order while other pairs do not
//!   queue behind it, or by an explicit `partition_key`;
//! - the connections of every user-named **channel**;
//! - with `bulk_lane`, one **bulk** connection, dialled on first use, for data frames
//!   above `chunk_size` and the later frames of their pairs, moved there in order by a
//!   barrier the peer acknowledges (`docs/wire.md`, "Bulk lane").
//!
//! Connections are one-directional between nodes: a node writes on the connections it
//! dialled and reads on the ones it accepted, so two nodes dialling each other at once
//! need no tie-break. A transport started with [`Transport::dial_out`] (an external
//! client) has no listener: its connections carry frames both ways, and the node that
//! accepted them writes its frames for that peer on them instead of dialling it
//! (`docs/wire.md`, "Dial-out peers").
//! Each dialled connection has a writer task that takes *every* queued frame at once and
//! writes them with one vectored write, flushing when the queue is empty; frames above
//! `chunk_size` go out one chunk per write, between the other frames (`docs/wire.md`,
//! "Chunks"), so a large message does not hold up the pairs behind it. Each accepted
//! connection has a reader task that splits frames off its buffer and hands them,
//! undecoded, to the [`InboundHandler`]: bodies are decoded on the recipient's side.
//!
//! Failures: lost connections are redialled with exponential backoff; a peer whose control
//! connection fails `unreachable_after` times in a row, or whose heartbeats stop for
//! `heartbeat_timeout` (a blackholed or frozen peer whose sockets stay open), is declared
//! unreachable (queued frames dropped, sends fail fast); a peer that comes back with a new incarnation is
//! reported as [`PeerEvent::Restarted`]; a peer that sends a malformed or oversized frame
//! is disconnected and logged while the node keeps running.

mod budget;
mod bulk;
mod config;
mod heartbeat;
mod lane;
mod link;
mod listener;
mod log_limit;
mod meter;
mod peer;
mod queue;
mod room;
mod route;
mod stream;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinSet;

pub use config::{ChannelConfig, TransportConfig};
pub use link::{BrokerConnection, BrokerLink, Link, LinkFuture};
pub(crate) use route::{parse_via, via_name};
pub use route::{Router, MAX_HOPS};

use crate::error::{FrameError, SendError, TransportError};
use crate::faults::Verdict;
use crate::node_id::NodeId;
use crate::registry::Encoding;
use crate::tls::Tls;
use crate::wire::{channel_id, Frame, FrameHeader, FrameKind};
use lane::Lane;
use peer::{Peer, Route};
use queue::PushError;

/// Index of the default data channel in `Inner::channels` (after control).
pub(crate) const DATA_GROUP: usize = 1;

/// Something the connection's reader awaits before it reads on (flow control): while it
/// is pending, nothing more is read from that one connection, so TCP pushes back on the
/// sender (`docs/wire.md`, "Flow control").
pub type Stall = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// Receives every frame that arrives on an accepted connection.
///
/// Called on the connection's reader task, in arrival order per connection: keep it short
/// (hand the frame to a mailbox or channel) and never block.
pub trait InboundHandler: Send + Sync + 'static {
    /// One frame from the authenticated node `from`.
    fn on_frame(&self, from: NodeId, frame: Frame);

    /// One frame, with the option to hold back the connection it came on: the reader
    /// awaits the returned [`Stall`] before it reads the next frame of that connection
    /// (other connections go on). The transport calls this; the default hands the frame
    /// to [`InboundHandler::on_frame`] and never stalls. A handler that wraps another
    /// should forward this method so the inner one's flow control keeps working.
    fn on_frame_paced(&self, from: NodeId, frame: Frame) -> Option<Stall> {
        self.on_frame(from, frame);
        None
    }
}

impl<F> InboundHandler for F
where
    F: Fn(NodeId, Frame) + Send + Sync + 'static,
{
    fn on_frame(&self, from: NodeId, frame: Frame) {
        self(from, frame)
    }
}

/// Something that happened to a peer, broadcast to [`Transport::subscribe`]rs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// The control connection to this node is up (first time or again).
    Connected {
        /// The peer.
        node: NodeId,
    },
    /// The peer's address answered with a new incarnation: the old node is gone.
    Restarted {
        /// The incarnation that is gone.
        old: NodeId,
        /// The one that answered now.
        new: NodeId,
    },
    /// The control connection to this node was lost; reconnecting.
    Disconnected {
        /// The peer.
        node: NodeId,
        /// Why.
        reason: String,
    },
    /// The peer did not answer `unreachable_after` times in a row, or sent nothing on its
    /// control connection (not even a heartbeat) for `heartbeat_timeout`: frames queued
    /// for it were dropped and sends fail with [`SendError::Unreachable`] until it
    /// answers (then [`PeerEvent::Connected`] follows).
    Unreachable {
        /// The peer's address.
        addr: SocketAddr,
        /// The last incarnation seen there, if any.
        node: Option<NodeId>,
        /// Frames dropped from its queues.
        dropped_bytes: usize,
    },
    /// A connection was refused during TLS or the handshake (either direction).
    Refused {
        /// The remote socket address (for an inbound connection, the dialler's ephemeral
        /// port).
        addr: SocketAddr,
        /// The reason, cut to at most 256 bytes.
        reason: String,
        /// Whether the refused connection was dialled by the other side.
        inbound: bool,
    },
    /// A peer sent a frame that broke the protocol (malformed, oversized); it was
    /// disconnected.
    ProtocolViolation {
        /// The peer.
        node: NodeId,
        /// What was wrong.
        error: FrameError,
    },
}

/// How to send one frame.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions {
    channel: u32,
    partition_key: Option<u64>,
    sender: Option<u64>,
    direct: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self::data()
    }
}

impl SendOptions {
    /// The default data channel, connection chosen by affinity.
    pub const fn data() -> Self {
        Self {
            channel: crate::wire::DATA_CHANNEL,
            partition_key: None,
            sender: None,
            direct: false,
        }
    }

    /// The control channel (system traffic).
    pub const fn control() -> Self {
        Self {
            channel: crate::wire::CONTROL_CHANNEL,
            partition_key: None,
            sender: None,
            direct: false,
        }
    }

    /// A named channel (seed 002 Table 2 `{channel, Channel}`).
    pub const fn channel(name: &str) -> Self {
        Self {
            channel: channel_id(name),
            partition_key: None,
            sender: None,
            direct: false,
        }
    }

    /// Send straight to the addressee even when a [`Router`] would route it through
    /// another node: for an overlay's own messages, which open short-lived
    /// connections to members outside its connections (`docs/overlays.md`).
    pub const fn direct(mut self) -> Self {
        self.direct = true;
        self
    }

    /// Pick the connection by `key % P` instead of by affinity (`{partition_key, N}`).
    pub const fn partition_key(mut self, key: u64) -> Self {
        self.partition_key = Some(key);
        self
    }

    /// The sending actor's id, for affinity: the connection is chosen by hashing
    /// (`sender`, recipient) instead of (the header's sender name, recipient), without
    /// sending the id. [`RemoteNode`](crate::RemoteNode) sets it from
    /// `granary_core::current_sender`.
    ///
    /// ```
    /// use granary_remote::SendOptions;
    /// let opts = SendOptions::data().sender(42);
    /// # let _ = opts;
    /// ```
    pub const fn sender(mut self, sender: u64) -> Self {
        self.sender = Some(sender);
        self
    }
}

/// Bytes waiting to be written to one peer on one channel
/// ([`Transport::queue_depths`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The channel's name.
    pub channel: Arc<str>,
    /// Bytes queued and not yet written.
    pub bytes: usize,
}

/// Counters of a transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Frames accepted into connection queues.
    pub frames_queued: u64,
    /// Frames handed to the inbound handler.
    pub frames_received: u64,
    /// Vectored writes issued by writers.
    pub writes: u64,
    /// Sends refused because a queue was full.
    pub backpressure: u64,
    /// Frames dropped or blocked by fault injection.
    pub fault_drops: u64,
    /// Connection attempts this node started (every dial, redials included).
    pub dials: u64,
}

#[derive(Default)]
struct Counters {
    frames_received: AtomicU64,
    writes: AtomicU64,
    backpressure: AtomicU64,
    fault_drops: AtomicU64,
    dials: AtomicU64,
}

/// A channel and its connection count, shared by every peer.
pub(crate) struct ChannelSpec {
    pub(crate) id: u32,
    pub(crate) name: Arc<str>,
    pub(crate) lanes: usize,
}

pub(crate) struct Inner {
    pub(crate) config: TransportConfig,
    pub(crate) node: NodeId,
    /// Started with [`Transport::dial_out`]: no listener, and every dialled connection
    /// also carries the peer's frames back.
    pub(crate) dial_out: bool,
    pub(crate) tls: Option<Tls>,
    pub(crate) handler: Arc<dyn InboundHandler>,
    pub(crate) channels: Vec<ChannelSpec>,
    peers: RwLock<foldhash::HashMap<SocketAddr, Arc<Peer>>>,
    /// The protocol version last agreed with each address (dialled or dialling in);
    /// kept after a peer is gone, so a peer that comes back is first sent what it spoke.
    protocols: RwLock<foldhash::HashMap<SocketAddr, u8>>,
    /// How many entries of `protocols` agreed on a version other than this build's
    /// highest: while there are none (a cluster of one build), the encoding of every
    /// send is known without taking the lock ([`Transport::encoding_for`]).
    older_peers: AtomicUsize,
    events: broadcast::Sender<PeerEvent>,
    tasks: Mutex<Option<JoinSet<()>>>,
    closed: AtomicBool,
    round_robin: AtomicUsize,
    counters: Counters,
    /// One permit per inbound connection still in TLS or the handshake
    /// (`TransportConfig::max_unauthenticated`).
    pub(crate) unauthenticated: Arc<tokio::sync::Semaphore>,
    /// Limits the warn lines for refused inbound connections (anyone can cause those).
    pub(crate) refusal_log: log_limit::LogLimit,
    /// Bytes held in partial and chunked frames across all connections
    /// (`TransportConfig::max_reassembly_bytes`).
    pub(crate) reassembly: Arc<budget::ReassemblyBudget>,
    /// Set while a [`Router`] is installed: without one (full mesh), a send reads this
    /// flag and nothing else of routing.
    routed: AtomicBool,
    router: RwLock<Option<Arc<dyn Router>>>,
}

impl Inner {
    /// Spawn a task owned by the transport (aborted on shutdown).
    pub(crate) fn spawn<F>(&self, fut: F) -> Option<tokio::task::AbortHandle>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.tasks.lock();
        let set = tasks.as_mut()?;
        // Reap finished tasks so the set does not grow with every closed connection.
        while set.try_join_next().is_some() {}
        Some(set.spawn(fut))
    }

    pub(crate) fn emit(&self, event: PeerEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    pub(crate) fn count_received(&self) {
        self.counters
            .frames_received
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_write(&self) {
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_dial(&self) {
        self.counters.dials.fetch_add(1, Ordering::Relaxed);
    }

    /// The peer at `addr`, started (dialling) on first use. A dial-out peer's address
    /// is never dialled: without a connection it opened, it is
    /// [`SendError::Unreachable`].
    pub(crate) fn peer(self: &Arc<Self>, addr: SocketAddr) -> Result<Arc<Peer>, SendError> {
        if let Some(peer) = self.peers.read().get(&addr) {
            return Ok(peer.clone());
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(SendError::Shutdown);
        }
        if is_dial_out_addr(addr) {
            return Err(SendError::Unreachable { peer: addr });
        }
        let mut peers = self.peers.write();
        if let Some(peer) = peers.get(&addr) {
            return Ok(peer.clone());
        }
        let peer = Peer::start(self, addr).ok_or(SendError::Shutdown)?;
        peers.insert(addr, peer.clone());
        Ok(peer)
    }

    /// The peer of a dial-out node that opened a connection here, created on its first
    /// connection. `None` after shutdown, or if a dialled peer holds that address.
    pub(crate) fn reverse_peer(self: &Arc<Self>, node: NodeId) -> Option<Arc<Peer>> {
        let addr = node.addr();
        if let Some(peer) = self.peers.read().get(&addr) {
            return peer.is_reverse().then(|| peer.clone());
        }
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let mut peers = self.peers.write();
        if let Some(peer) = peers.get(&addr) {
            return peer.is_reverse().then(|| peer.clone());
        }
        let peer = Peer::start_reverse(self, addr)?;
        peers.insert(addr, peer.clone());
        Some(peer)
    }

    /// Forget the dial-out peer `peer` (its control connection ended): later sends to
    /// its address fail fast, and its other connections are closed.
    pub(crate) fn remove_reverse_peer(&self, peer: &Arc<Peer>) {
        let mut peers = self.peers.write();
        if peers.get(&peer.addr).is_some_and(|p| Arc::ptr_eq(p, peer)) {
            peers.remove(&peer.addr);
            // A dial-out peer's address is random and never comes back: forget what
            // it agreed, so a server that sees many clients does not keep one entry
            // per client ever connected.
            let forgotten = self.protocols.write().remove(&peer.addr);
            self.count_protocol_change(forgotten, None);
        }
        drop(peers);
        peer.stop();
    }

    /// The peer at `addr` if it was ever dialled.
    pub(crate) fn existing_peer(&self, addr: SocketAddr) -> Option<Arc<Peer>> {
        self.peers.read().get(&addr).cloned()
    }

    /// Record the protocol version a handshake with `addr` agreed.
    pub(crate) fn set_protocol(&self, addr: SocketAddr, version: u8) {
        let known = self.protocols.read().get(&addr).copied();
        if known != Some(version) {
            let mut protocols = self.protocols.write();
            let replaced = protocols.insert(addr, version);
            self.count_protocol_change(replaced, Some(version));
            drop(protocols);
            if let Some(known) = replaced {
                tracing::info!(%addr, from = known, to = version, "peer's protocol version changed");
            }
        }
    }

    /// Keeps `older_peers` in step with one entry of `protocols` going from `before` to
    /// `after` (called under its write lock).
    fn count_protocol_change(&self, before: Option<u8>, after: Option<u8>) {
        let older = |v: Option<u8>| v.is_some_and(|v| v != self.config.max_protocol);
        match (older(before), older(after)) {
            (false, true) => {
                self.older_peers.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.older_peers.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    pub(crate) fn count_backpressure(&self) {
        self.counters.backpressure.fetch_add(1, Ordering::Relaxed);
    }

    /// Queue one frame for `peer` (size and reachability already checked), through
    /// fault injection and, for large data frames, the bulk lane.
    pub(crate) fn send_to(
        self: &Arc<Self>,
        peer: &Arc<Peer>,
        mut header: FrameHeader<'_>,
        body: Bytes,
        opts: SendOptions,
    ) -> Result<(), SendError> {
        let to = peer.addr;
        let (group, spec) = self
            .channels
            .iter()
            .enumerate()
            .find(|(_, c)| c.id == opts.channel)
            .ok_or_else(|| SendError::UnknownChannel(format!("{:#010x}", opts.channel)))?;
        header.channel = spec.id;
        let pair = match opts.sender {
            Some(sender) => pair_hash(&sender.to_le_bytes(), header.recipient.as_bytes()),
            None => pair_hash(header.sender.as_bytes(), header.recipient.as_bytes()),
        };
        let index = self.lane_index(spec.lanes, pair, opts.partition_key);
        let delay = match &self.config.faults {
            None => None,
            Some(faults) => match faults.decide(self.node.addr(), to, &spec.name) {
                Verdict::Deliver => None,
                Verdict::Drop | Verdict::Blocked => {
                    self.counters.fault_drops.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Verdict::Delay(delay) => Some(delay),
            },
        };
        let mut lane = match peer.reverse_lane(group, index) {
            Some(Some((group, index))) => peer.lane(group, index),
            // A dial-out peer with no connection open here.
            Some(None) => return Err(SendError::Unreachable { peer: to }),
            None => peer.lane(group, index),
        };
        if self.config.bulk_lane
            && group == DATA_GROUP
            && opts.partition_key.is_none()
            && !peer.is_reverse()
        {
            let large = header.frame_len(body.len()) > self.config.chunk_size as u64;
            if large || peer.has_bulk_pairs() {
                match peer.route(self, pair, large, index, &header, &body, delay)? {
                    Route::Data => {}
                    Route::Bulk => lane = peer.bulk_lane(self),
                    Route::Held => return Ok(()),
                }
            }
        }
        let len = header.frame_len(body.len());
        let queued = self.enqueue(to, lane, &header, &body, pair, delay);
        peer.meter(group).sent(len, &queued);
        queued
    }

    /// Queue one frame on `lane` of the peer at `to`, now or after `delay`.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        to: SocketAddr,
        lane: &Lane,
        header: &FrameHeader<'_>,
        body: &Bytes,
        pair: u64,
        delay: Option<std::time::Duration>,
    ) -> Result<(), SendError> {
        if let Some(delay) = delay {
            let frame = header.encode_with_body(body, self.config.max_frame)?;
            return lane.delay(self, delay, pair, frame).map_err(|()| {
                self.count_backpressure();
                SendError::Backpressure { peer: to }
            });
        }
        lane.queue.push(header, body, pair).map_err(|e| match e {
            PushError::Full => {
                self.count_backpressure();
                SendError::Backpressure { peer: to }
            }
            PushError::Frame(e) => e.into(),
        })
    }

    fn lane_index(&self, lanes: usize, pair: u64, key: Option<u64>) -> usize {
        if lanes <= 1 {
            return 0;
        }
        if let Some(key) = key {
            return (key % lanes as u64) as usize;
        }
        if self.config.affinity {
            return (pair % lanes as u64) as usize;
        }
        self.round_robin.fetch_add(1, Ordering::Relaxed) % lanes
    }
}

/// A node's network endpoint: listens, dials peers on demand, sends and receives frames.
///
/// Cloning is cheap; all clones share one endpoint. Call [`Transport::shutdown`] to close
/// every connection.
///
/// ```no_run
/// // no_run: opens sockets; the integration tests run the same thing.
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use bytes::Bytes;
/// use granary_remote::{SendOptions, Transport, TransportConfig};
/// use granary_remote::wire::{Frame, FrameHeader, FrameKind};
/// use granary_remote::NodeId;
///
/// let b = Transport::bind(TransportConfig::new("c", "s"), |from: NodeId, frame: Frame| {
///     println!("{from} sent {} bytes", frame.body.len());
/// })
/// .await?;
/// let a = Transport::bind(TransportConfig::new("c", "s"), |_, _| {}).await?;
/// let header = FrameHeader {
///     kind: FrameKind::Tell, channel: 0, type_tag: 1, correlation: 0,
///     sender: "alice", recipient: "bob", trace: None,
/// };
/// a.send(b.local_addr(), header, Bytes::from_static(b"hi"), SendOptions::data())?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Listen on `config.listen` and start accepting authenticated peers.
    pub async fn bind(
        config: TransportConfig,
        handler: impl InboundHandler,
    ) -> Result<Self, TransportError> {
        Self::bind_arc(config, Arc::new(handler)).await
    }

    /// [`Transport::bind`] with a shared handler.
    pub async fn bind_arc(
        config: TransportConfig,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<Self, TransportError> {
        config.validate().map_err(TransportError::Config)?;
        if let Link::Broker(link) = &config.link {
            // No socket: the broker link names the node and brings its connections.
            let link = link.clone();
            let transport = Self::start(config, handler, None, link.local_addr(), false);
            (transport.inner).spawn(listener::broker_accept_loop(transport.inner.clone(), link));
            tracing::info!(node = %transport.inner.node, "transport attached to a broker");
            return Ok(transport);
        }
        let tls = config.tls.as_ref().map(Tls::new).transpose()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| TransportError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let bound = listener
            .local_addr()
            .map_err(|source| TransportError::Bind {
                addr: config.listen,
                source,
            })?;
        // The node's identity is the address peers dial: the advertised one if set.
        let addr = match config.advertise {
            Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), bound.port()),
            Some(a) => a,
            None => bound,
        };
        let transport = Self::start(config, handler, tls, addr, false);
        transport
            .inner
            .spawn(listener::accept_loop(transport.inner.clone(), listener));
        tracing::info!(node = %transport.inner.node, %bound, "transport listening");
        Ok(transport)
    }

    /// A transport that listens nowhere and only dials out (an external client behind a
    /// firewall that drops inbound connections): every connection it opens carries
    /// frames both ways, and the nodes it reaches write their frames for it (replies,
    /// control requests) on those connections (`docs/wire.md`, "Dial-out peers").
    ///
    /// Its [`NodeId`] address is a made-up one in `0.0.0.0/8`, which no host can be
    /// dialled at: it only names this transport to its peers. A peer never dials it;
    /// frames for it while none of its connections is open fail with
    /// [`SendError::Unreachable`]. `listen` and `advertise` in `config` are not used.
    pub async fn dial_out(
        config: TransportConfig,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<Self, TransportError> {
        config.validate().map_err(TransportError::Config)?;
        if config.link.is_broker() {
            return Err(TransportError::Config(
                "a dial-out transport dials TCP; a broker link is for bound transports".into(),
            ));
        }
        let tls = config.tls.as_ref().map(Tls::new).transpose()?;
        let transport = Self::start(config, handler, tls, dial_out_addr(), true);
        tracing::info!(node = %transport.inner.node, "transport started, dialling out only");
        Ok(transport)
    }

    fn start(
        config: TransportConfig,
        handler: Arc<dyn InboundHandler>,
        tls: Option<Tls>,
        addr: SocketAddr,
        dial_out: bool,
    ) -> Self {
        let mut channels = vec![
            ChannelSpec {
                id: crate::wire::CONTROL_CHANNEL,
                name: "control".into(),
                lanes: 1,
            },
            ChannelSpec {
                id: crate::wire::DATA_CHANNEL,
                name: "data".into(),
                lanes: config.parallelism,
            },
        ];
        channels.extend(config.channels.iter().map(|c| ChannelSpec {
            id: channel_id(&c.name),
            name: c.name.as_str().into(),
            lanes: c.parallelism,
        }));
        let (events, _) = broadcast::channel(1024);
        let max_unauthenticated = config.max_unauthenticated;
        let max_reassembly_bytes = config.max_reassembly_bytes;
        let inner = Arc::new(Inner {
            node: NodeId::new(addr),
            dial_out,
            config,
            tls,
            handler,
            channels,
            peers: RwLock::new(foldhash::HashMap::default()),
            protocols: RwLock::new(foldhash::HashMap::default()),
            older_peers: AtomicUsize::new(0),
            events,
            tasks: Mutex::new(Some(JoinSet::new())),
            closed: AtomicBool::new(false),
            round_robin: AtomicUsize::new(0),
            counters: Counters::default(),
            unauthenticated: Arc::new(tokio::sync::Semaphore::new(max_unauthenticated)),
            refusal_log: log_limit::LogLimit::new(10, std::time::Duration::from_secs(10)),
            reassembly: budget::ReassemblyBudget::new(max_reassembly_bytes),
            routed: AtomicBool::new(false),
            router: RwLock::new(None),
        });
        Self { inner }
    }

    /// This node's identity.
    pub fn node_id(&self) -> NodeId {
        self.inner.node
    }

    /// The address peers reach this node at: the advertised address if one is set,
    /// otherwise the one it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.node.addr()
    }

    /// The configuration in force.
    pub fn config(&self) -> &TransportConfig {
        &self.inner.config
    }

    /// Receive peer events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PeerEvent> {
        self.inner.events.subscribe()
    }

    /// The incarnation last seen at `addr`, if its control connection ever came up.
    pub fn peer_node(&self, addr: SocketAddr) -> Option<NodeId> {
        self.inner.peers.read().get(&addr).and_then(|p| p.node())
    }

    /// The protocol version last agreed with the node at `addr`, if a handshake with it
    /// finished.
    pub fn peer_protocol(&self, addr: SocketAddr) -> Option<u8> {
        self.inner.protocols.read().get(&addr).copied()
    }

    /// The encoding of message bodies sent to `addr`: postcard to a peer that agreed on
    /// protocol version 4, the versioned encoding otherwise (a peer not yet met is
    /// assumed to be of this build's version, unless `max_protocol` is 4). A version-4
    /// peer that is sent a versioned body before its first handshake answers "unknown
    /// type tag" (`docs/wire.md`, "Version negotiation").
    pub fn encoding_for(&self, addr: SocketAddr) -> Encoding {
        let max = self.inner.config.max_protocol;
        // Every peer met agreed on this build's version (a cluster of one build): no
        // lookup, no lock on the message path.
        let version = if self.inner.older_peers.load(Ordering::Relaxed) == 0 {
            max
        } else {
            self.peer_protocol(addr).unwrap_or(max)
        };
        if version >= 5 {
            Encoding::Versioned
        } else {
            Encoding::Postcard
        }
    }

    /// Whether the control connection with `addr` is up right now (dialled by this
    /// node, or, for a dial-out peer, opened by it).
    pub fn is_connected(&self, addr: SocketAddr) -> bool {
        (self.inner.peers.read().get(&addr)).is_some_and(|p| p.is_connected())
    }

    /// Whether `addr` was declared unreachable and has not answered since.
    pub fn is_unreachable(&self, addr: SocketAddr) -> bool {
        (self.inner.peers.read().get(&addr)).is_some_and(|p| p.is_unreachable())
    }

    /// Whether this transport was started with [`Transport::dial_out`].
    pub fn is_dial_out(&self) -> bool {
        self.inner.dial_out
    }

    /// Start dialling `addr` now (sends do this on demand).
    pub fn connect(&self, addr: SocketAddr) -> Result<(), SendError> {
        self.inner.peer(addr).map(|_| ())
    }

    /// Stop dialling `addr` and drop its queues; a later send dials it again.
    pub fn disconnect(&self, addr: SocketAddr) {
        if let Some(peer) = self.inner.peers.write().remove(&addr) {
            peer.stop();
        }
    }

    /// Queue one frame for the peer listening at `to`.
    ///
    /// Never blocks and never waits for the connection: a full queue is
    /// [`SendError::Backpressure`], a frame above `max_frame` is
    /// [`SendError::FrameTooLarge`] (checked before anything else), a peer declared
    /// unreachable is [`SendError::Unreachable`]. The header's `channel` is set from
    /// `opts`. Delivery is at most once.
    ///
    /// With a [`Router`] installed ([`Transport::set_router`]), a Tell or Ask for a node
    /// the router routes goes to the router's next hop instead, which relays it
    /// (`docs/overlays.md`).
    pub fn send(
        &self,
        to: SocketAddr,
        header: FrameHeader<'_>,
        body: Bytes,
        opts: SendOptions,
    ) -> Result<(), SendError> {
        self.send_relayed(to, header, body, opts, 0)
    }

    /// The room of the peer at `addr`, whose queues were full when a send failed with
    /// [`SendError::Backpressure`] naming it: `ActorRef::send` waits there for a batch
    /// to be taken. `None` if no peer is kept for `addr` (any more).
    pub(crate) fn room(&self, addr: SocketAddr) -> Option<Arc<room::Room>> {
        Some(self.inner.existing_peer(addr)?.room.clone())
    }

    /// [`Transport::send`] of a frame that has passed `relayed` relays.
    pub(crate) fn send_relayed(
        &self,
        to: SocketAddr,
        header: FrameHeader<'_>,
        body: Bytes,
        opts: SendOptions,
        relayed: u8,
    ) -> Result<(), SendError> {
        if self.inner.routed.load(Ordering::Relaxed)
            && !opts.direct
            && matches!(header.kind, FrameKind::Tell | FrameKind::Ask)
        {
            if let Some(hop) = self.next_hop(to) {
                if relayed >= MAX_HOPS {
                    tracing::debug!(%to, relayed, "routed frame passed too many relays; dropped");
                    return Err(SendError::Unreachable { peer: to });
                }
                let name = via_name(to, header.recipient, relayed);
                let header = FrameHeader {
                    recipient: &name,
                    ..header
                };
                return self.send_direct(hop, header, body, opts);
            }
        }
        self.send_direct(to, header, body, opts)
    }

    /// The relay a frame for `to` goes through, `None` for straight to `to`.
    fn next_hop(&self, to: SocketAddr) -> Option<SocketAddr> {
        let me = self.inner.node.addr();
        if to == me {
            return None;
        }
        let router = self.inner.router.read().clone()?;
        router.next_hop(to).filter(|hop| *hop != to && *hop != me)
    }

    /// Installs (`Some`) or removes (`None`) the router that sends Tells and Asks for
    /// nodes without a connection through another node (see [`Router`]). A transport
    /// starts without one: every node is dialled directly (full mesh).
    pub fn set_router(&self, router: Option<Arc<dyn Router>>) {
        let routed = router.is_some();
        *self.inner.router.write() = router;
        self.inner.routed.store(routed, Ordering::Relaxed);
    }

    /// The addresses this transport keeps a peer for (dialled, or a dial-out node
    /// that connected here), whether or not its connection is up right now.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.inner.peers.read().keys().copied().collect()
    }

    fn send_direct(
        &self,
        to: SocketAddr,
        header: FrameHeader<'_>,
        body: Bytes,
        opts: SendOptions,
    ) -> Result<(), SendError> {
        let inner = &self.inner;
        let len = header.frame_len(body.len());
        if len > u64::from(inner.config.max_frame) {
            return Err(SendError::FrameTooLarge {
                len,
                max: inner.config.max_frame,
            });
        }
        let peer = inner.peer(to)?;
        if peer.is_unreachable() {
            return Err(SendError::Unreachable { peer: to });
        }
        inner.send_to(&peer, header, body, opts)
    }

    /// Bytes queued per peer and channel right now (one lock per connection queue);
    /// the management endpoint samples it as `granary_peer_queue_bytes`.
    pub fn queue_depths(&self) -> Vec<QueueDepth> {
        let peers: Vec<Arc<Peer>> = self.inner.peers.read().values().cloned().collect();
        let mut out = Vec::new();
        for peer in peers {
            for (spec, bytes) in self.inner.channels.iter().zip(peer.bytes_pending()) {
                out.push(QueueDepth {
                    peer: peer.addr,
                    channel: spec.name.clone(),
                    bytes,
                });
            }
        }
        out
    }

    /// Counters so far.
    pub fn stats(&self) -> TransportStats {
        let c = &self.inner.counters;
        let frames_queued = self
            .inner
            .peers
            .read()
            .values()
            .map(|p| p.frames_queued())
            .sum();
        TransportStats {
            frames_queued,
            frames_received: c.frames_received.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            backpressure: c.backpressure.load(Ordering::Relaxed),
            fault_drops: c.fault_drops.load(Ordering::Relaxed),
            dials: c.dials.load(Ordering::Relaxed),
        }
    }

    /// Close the listener and every connection; later sends fail with
    /// [`SendError::Shutdown`].
    pub fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::Release);
        if let Link::Broker(link) = &self.inner.config.link {
            link.close();
        }
        let tasks = self.inner.tasks.lock().take();
        if let Some(mut tasks) = tasks {
            tasks.abort_all();
            // Dropping the set detaches nothing: aborted tasks drop their sockets.
        }
        self.inner.peers.write().clear();
        tracing::info!(node = %self.inner.node, "transport shut down");
    }
}

/// Whether `addr` names a dial-out transport ([`Transport::dial_out`]): an IPv4 address
/// in `0.0.0.0/8` other than `0.0.0.0` itself, which no host can be dialled at.
pub(crate) fn is_dial_out_addr(addr: SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.octets()[0] == 0 && !ip.is_unspecified(),
        IpAddr::V6(_) => false,
    }
}

/// A fresh random dial-out address (24 random bits of host and a random non-zero
/// port: two clients picking the same one is about one chance in 2^40).
fn dial_out_addr() -> SocketAddr {
    let [_, a, b, c] = crate::random::random::<u32>().to_be_bytes();
    let ip = Ipv4Addr::new(0, a, b, c.max(1));
    SocketAddr::new(IpAddr::V4(ip), crate::random::random::<u16>().max(1))
}

/// FNV-1a over sender, a separator and recipient: cheap and stable.
fn pair_hash(sender: &[u8], recipient: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in sender.iter().chain(&[0xff]).chain(recipient) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
