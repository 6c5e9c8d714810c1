//! The real-socket driver: one overlay node as tokio tasks with its own TCP listener.
//!
//! [`OverlayNode::start`] binds a listener (give each node its own loopback address,
//! `127.0.0.x`, so a thousand nodes do not share one address's ports), builds the
//! overlay with the bound address as its [`PeerId`], and runs it:
//!
//! - **one task owns the overlay** and handles, in turn, commands from the handle,
//!   events from the connections and a tick every [`DriverConfig::tick`]; after each it
//!   carries out the overlay's outputs. Nothing else touches the overlay, so it needs no
//!   lock.
//! - **each connection** has a reader task (frames in, as events to the owner) and a
//!   writer task (frames out, from an unbounded queue, several frames per write when
//!   they are queued together). The dialer's first frame is `Hello` with its listen
//!   address. A send to a member with no connection dials one; frames queue while it
//!   connects.
//! - **at most one connection per member** is used for sending. When both sides dial at
//!   once, both keep the connection dialed by the lower address and close the other
//!   (frames already queued on it are still written and read).
//! - **failure detection**: a member the overlay asked to keep ([`Output::Connect`]) is
//!   reported lost ([`Overlay::connection_lost`]) when its connection closes, when a dial
//!   fails, or when nothing arrived from it for [`DriverConfig::heartbeat_timeout`]; a
//!   watched connection that sent nothing for [`DriverConfig::heartbeat_interval`] sends
//!   a `Ping`, answered with `Pong` (on peer-to-peer, HyParView's keep-alives already
//!   flow, so pings are rare). A connection nobody asked to keep (a shuffle reply, a
//!   neighbour request) is closed after [`DriverConfig::idle_timeout`] without traffic.
//! - **counters** ([`NodeStats`]): bytes and frames written, connections open now and
//!   opened in all.
//!
//! [`OverlayNode::kill`] aborts every task of the node at once, like a crashed process:
//! its sockets close and its peers see the connections end.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::error::DriverError;
use crate::frame::{self, Frame};
use crate::overlay::{Delivery, Output, Overlay, PeerId};

/// The driver's timers and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// How often the overlay's timers run.
    pub tick: Duration,
    /// A watched connection that sent nothing for this long sends a ping.
    pub heartbeat_interval: Duration,
    /// A watched member not heard from for this long is lost.
    pub heartbeat_timeout: Duration,
    /// An unwatched connection without traffic for this long is closed.
    pub idle_timeout: Duration,
    /// How long a dial may take.
    pub connect_timeout: Duration,
    /// The largest frame accepted.
    pub max_frame: usize,
}

impl Default for DriverConfig {
    /// Ticks every 100 ms, pings after 1.5 s idle, loss after 5 s silent, idle close
    /// after 2 s, dials time out after 2 s, frames up to 16 MiB.
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(100),
            heartbeat_interval: Duration::from_millis(1500),
            heartbeat_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            max_frame: 16 << 20,
        }
    }
}

/// Live counters of one node (cheap to read from any thread).
#[derive(Debug, Default)]
pub struct NodeStats {
    bytes_sent: AtomicU64,
    frames_sent: AtomicU64,
    bytes_received: AtomicU64,
    open_connections: AtomicU64,
    connections_opened: AtomicU64,
}

/// A snapshot of [`NodeStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Bytes written to sockets (length prefixes included).
    pub bytes_sent: u64,
    /// Frames written.
    pub frames_sent: u64,
    /// Bytes read from sockets.
    pub bytes_received: u64,
    /// Connections open now (dialed and accepted).
    pub open_connections: u64,
    /// Connections opened since start.
    pub connections_opened: u64,
}

impl NodeStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            open_connections: self.open_connections.load(Ordering::Relaxed),
            connections_opened: self.connections_opened.load(Ordering::Relaxed),
        }
    }
}

/// The tasks of one node, aborted together by [`OverlayNode::kill`].
#[derive(Default)]
struct Tasks {
    handles: Mutex<Vec<AbortHandle>>,
}

impl Tasks {
    fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(future).abort_handle();
        let mut handles = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        if handles.len() >= 64 && handles.len().is_power_of_two() {
            handles.retain(|h| !h.is_finished());
        }
        handles.push(handle);
    }

    fn abort_all(&self) {
        let handles =
            std::mem::take(&mut *self.handles.lock().unwrap_or_else(PoisonError::into_inner));
        for handle in handles {
            handle.abort();
        }
    }
}

/// A closure run on the overlay by [`OverlayNode::inspect`].
type Inspect<O> = Box<dyn FnOnce(&O) + Send>;

enum Command<O> {
    Join(Vec<PeerId>),
    Broadcast(Bytes),
    Forward(PeerId, Bytes),
    Inspect(Inspect<O>),
}

type ConnId = u64;

enum Event<M> {
    Accepted {
        conn: ConnId,
        peer: PeerId,
        writer: mpsc::UnboundedSender<Bytes>,
    },
    Frame {
        peer: PeerId,
        frame: Frame<M>,
    },
    Closed {
        conn: ConnId,
        peer: PeerId,
    },
    DialFailed {
        conn: ConnId,
        peer: PeerId,
    },
}

/// A connection the owner sends on.
struct Link {
    conn: ConnId,
    dialer: PeerId,
    writer: mpsc::UnboundedSender<Bytes>,
    last_sent: Instant,
    last_heard: Instant,
}

/// A running overlay node (see the [module docs](self)).
pub struct OverlayNode<O: Overlay> {
    addr: PeerId,
    commands: mpsc::UnboundedSender<Command<O>>,
    stats: Arc<NodeStats>,
    tasks: Arc<Tasks>,
}

impl<O: Overlay> OverlayNode<O> {
    /// Binds a listener on `bind` (port 0 picks one), builds the overlay with `make`
    /// from the bound address and starts the node. Deliveries to the application come
    /// out of the returned receiver.
    pub async fn start(
        bind: SocketAddr,
        make: impl FnOnce(PeerId) -> O,
        config: DriverConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Delivery>), DriverError> {
        let bind_error = |source| DriverError::Bind { addr: bind, source };
        let socket = match bind {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(bind_error)?;
        socket.set_reuseaddr(true).map_err(bind_error)?;
        socket.bind(bind).map_err(bind_error)?;
        let listener = socket.listen(1024).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let overlay = make(addr);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events, event_rx) = mpsc::unbounded_channel();
        let (deliveries, delivery_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(NodeStats::default());
        let tasks = Arc::new(Tasks::default());
        let shared = Shared {
            me: addr,
            config: config.clone(),
            events,
            stats: stats.clone(),
            tasks: tasks.clone(),
            next_conn: Arc::new(AtomicU64::new(0)),
        };
        tasks.spawn(accept_loop::<O::Message>(listener, shared.clone()));
        let owner = Owner {
            overlay,
            shared,
            links: HashMap::new(),
            watched: BTreeSet::new(),
            deliveries,
            epoch: Instant::now(),
        };
        tasks.spawn(owner.run(command_rx, event_rx));
        Ok((
            Self {
                addr,
                commands,
                stats,
                tasks,
            },
            delivery_rx,
        ))
    }

    /// The node's address, its [`PeerId`].
    pub fn addr(&self) -> PeerId {
        self.addr
    }

    /// The node's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    fn command(&self, command: Command<O>) -> Result<(), DriverError> {
        self.commands
            .send(command)
            .map_err(|_| DriverError::Stopped)
    }

    /// Joins the overlay through `contacts`.
    pub fn join(&self, contacts: Vec<PeerId>) -> Result<(), DriverError> {
        self.command(Command::Join(contacts))
    }

    /// Broadcasts `payload` ([`Overlay::broadcast`]).
    pub fn broadcast(&self, payload: Bytes) -> Result<(), DriverError> {
        self.command(Command::Broadcast(payload))
    }

    /// Sends `payload` to `to` ([`Overlay::forward`]).
    pub fn forward(&self, to: PeerId, payload: Bytes) -> Result<(), DriverError> {
        self.command(Command::Forward(to, payload))
    }

    /// Runs `f` on the overlay's state (in its task) and returns what it returns.
    pub async fn inspect<R: Send + 'static>(
        &self,
        f: impl FnOnce(&O) -> R + Send + 'static,
    ) -> Result<R, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Inspect(Box::new(move |o| {
            let _ = tx.send(f(o));
        })))?;
        rx.await.map_err(|_| DriverError::Stopped)
    }

    /// Stops the node at once, like a crash: every task is aborted, every socket
    /// closed.
    pub fn kill(&self) {
        self.tasks.abort_all();
    }
}

impl<O: Overlay> Drop for OverlayNode<O> {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// What the owner and the connection tasks share.
struct Shared<M> {
    me: PeerId,
    config: DriverConfig,
    events: mpsc::UnboundedSender<Event<M>>,
    stats: Arc<NodeStats>,
    tasks: Arc<Tasks>,
    next_conn: Arc<AtomicU64>,
}

impl<M> Clone for Shared<M> {
    fn clone(&self) -> Self {
        Self {
            me: self.me,
            config: self.config.clone(),
            events: self.events.clone(),
            stats: self.stats.clone(),
            tasks: self.tasks.clone(),
            next_conn: self.next_conn.clone(),
        }
    }
}

async fn accept_loop<M>(listener: TcpListener, shared: Shared<M>)
where
    M: serde::de::DeserializeOwned + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(me = %shared.me, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared2 = shared.clone();
        shared.tasks.spawn(inbound::<M>(stream, shared2));
    }
}

/// An accepted connection: read `Hello`, hand a writer to the owner, read frames.
async fn inbound<M>(stream: TcpStream, shared: Shared<M>)
where
    M: serde::de::DeserializeOwned + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let (mut read, write) = stream.into_split();
    let mut buf = Vec::new();
    let hello = tokio::time::timeout(
        shared.config.connect_timeout,
        frame::read::<M, _>(&mut read, shared.config.max_frame, &mut buf),
    )
    .await;
    let peer = match hello {
        Ok(Ok(Some((Frame::Hello { from }, _)))) => from,
        _ => return,
    };
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (writer, queue) = mpsc::unbounded_channel();
    if shared
        .events
        .send(Event::Accepted { conn, peer, writer })
        .is_err()
    {
        return;
    }
    let stats = shared.stats.clone();
    shared.tasks.spawn(write_loop(write, queue, stats));
    read_loop(read, conn, peer, shared, buf).await;
}

/// An outgoing connection: dial, say `Hello`, then write and read.
async fn outbound<M>(
    peer: PeerId,
    conn: ConnId,
    queue: mpsc::UnboundedReceiver<Bytes>,
    shared: Shared<M>,
) where
    M: serde::de::DeserializeOwned + Send + 'static,
{
    let dial = async {
        let socket = match peer {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // Dial from this node's own address, so the peer sees a distinct source.
        socket.bind(SocketAddr::new(shared.me.ip(), 0))?;
        socket.connect(peer).await
    };
    let stream = match tokio::time::timeout(shared.config.connect_timeout, dial).await {
        Ok(Ok(stream)) => stream,
        _ => {
            let _ = shared.events.send(Event::DialFailed { conn, peer });
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let hello = match frame::encode::<()>(&Frame::Hello { from: shared.me }) {
        Ok(hello) => hello,
        Err(_) => return,
    };
    if write.write_all(&hello).await.is_err() {
        let _ = shared.events.send(Event::DialFailed { conn, peer });
        return;
    }
    shared
        .stats
        .bytes_sent
        .fetch_add(hello.len() as u64, Ordering::Relaxed);
    let stats = shared.stats.clone();
    shared.tasks.spawn(write_loop(write, queue, stats));
    read_loop(read, conn, peer, shared, Vec::new()).await;
}

/// Writes queued frames, as many per write as are waiting; closes the write side when
/// the owner drops the queue.
async fn write_loop(
    mut write: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    stats: Arc<NodeStats>,
) {
    let mut batch = BytesMut::new();
    while let Some(first) = queue.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        let mut frames = 1;
        while batch.len() < 64 * 1024 {
            match queue.try_recv() {
                Ok(next) => {
                    batch.extend_from_slice(&next);
                    frames += 1;
                }
                Err(_) => break,
            }
        }
        if write.write_all(&batch).await.is_err() {
            return;
        }
        stats
            .bytes_sent
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.frames_sent.fetch_add(frames, Ordering::Relaxed);
    }
    let _ = write.shutdown().await;
}

/// Reads frames until the connection ends, then tells the owner.
async fn read_loop<M>(
    mut read: OwnedReadHalf,
    conn: ConnId,
    peer: PeerId,
    shared: Shared<M>,
    mut buf: Vec<u8>,
) where
    M: serde::de::DeserializeOwned + Send + 'static,
{
    shared
        .stats
        .open_connections
        .fetch_add(1, Ordering::Relaxed);
    shared
        .stats
        .connections_opened
        .fetch_add(1, Ordering::Relaxed);
    loop {
        match frame::read::<M, _>(&mut read, shared.config.max_frame, &mut buf).await {
            Ok(Some((frame, len))) => {
                shared
                    .stats
                    .bytes_received
                    .fetch_add(len as u64, Ordering::Relaxed);
                if shared.events.send(Event::Frame { peer, frame }).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(me = %shared.me, %peer, error = %e, "connection dropped");
                break;
            }
        }
    }
    shared
        .stats
        .open_connections
        .fetch_sub(1, Ordering::Relaxed);
    let _ = shared.events.send(Event::Closed { conn, peer });
}

/// The task that owns the overlay.
struct Owner<O: Overlay> {
    overlay: O,
    shared: Shared<O::Message>,
    links: HashMap<PeerId, Link>,
    watched: BTreeSet<PeerId>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    epoch: Instant,
}

impl<O: Overlay> Owner<O> {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command<O>>,
        mut events: mpsc::UnboundedReceiver<Event<O::Message>>,
    ) {
        let mut ticker = tokio::time::interval(self.shared.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(event) = events.recv() => self.on_event(event),
                _ = ticker.tick() => self.on_tick(),
            }
            self.carry_out();
        }
        self.shared.tasks.abort_all();
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn on_command(&mut self, command: Command<O>) {
        let now = self.now();
        match command {
            Command::Join(contacts) => self.overlay.join(&contacts, now),
            Command::Broadcast(payload) => self.overlay.broadcast(payload, now),
            Command::Forward(to, payload) => self.overlay.forward(to, payload, now),
            Command::Inspect(f) => f(&self.overlay),
        }
    }

    fn on_event(&mut self, event: Event<O::Message>) {
        let now = self.now();
        match event {
            Event::Accepted { conn, peer, writer } => {
                let link = Link {
                    conn,
                    dialer: peer,
                    writer,
                    last_sent: Instant::now(),
                    last_heard: Instant::now(),
                };
                // Both sides dialed: keep the connection the lower address dialed (both
                // sides decide alike); dropping the other's writer closes it. A new
                // connection from the same dialer replaces the old one.
                let me = self.shared.me;
                let keep_own = self
                    .links
                    .get(&peer)
                    .is_some_and(|existing| existing.dialer == me && me < peer);
                if !keep_own {
                    self.links.insert(peer, link);
                }
            }
            Event::Frame { peer, frame } => {
                if let Some(link) = self.links.get_mut(&peer) {
                    link.last_heard = Instant::now();
                }
                match frame {
                    Frame::Overlay(message) => self.overlay.handle_message(peer, message, now),
                    Frame::Ping => self.send_frame(peer, &Frame::Pong),
                    Frame::Pong | Frame::Hello { .. } => {}
                }
            }
            Event::Closed { conn, peer } => {
                if self.links.get(&peer).is_some_and(|l| l.conn == conn) {
                    self.links.remove(&peer);
                    if self.watched.contains(&peer) {
                        self.overlay.connection_lost(peer, now);
                    }
                }
            }
            Event::DialFailed { conn, peer } => {
                if self.links.get(&peer).is_some_and(|l| l.conn == conn) {
                    self.links.remove(&peer);
                }
                self.overlay.connection_lost(peer, now);
            }
        }
    }

    fn on_tick(&mut self) {
        self.overlay.tick(self.now());
        let config = &self.shared.config;
        let at = Instant::now();
        let mut lost = Vec::new();
        let mut idle = Vec::new();
        let mut ping = Vec::new();
        for (peer, link) in &self.links {
            let watched = self.watched.contains(peer);
            if watched && at.duration_since(link.last_heard) > config.heartbeat_timeout {
                lost.push(*peer);
            } else if watched && at.duration_since(link.last_sent) > config.heartbeat_interval {
                ping.push(*peer);
            } else if !watched
                && at.duration_since(link.last_sent.max(link.last_heard)) > config.idle_timeout
            {
                idle.push(*peer);
            }
        }
        for peer in ping {
            self.send_frame(peer, &Frame::Ping);
        }
        for peer in idle {
            self.links.remove(&peer);
        }
        let now = self.now();
        for peer in lost {
            tracing::debug!(me = %self.shared.me, %peer, "heartbeat timed out");
            self.links.remove(&peer);
            self.overlay.connection_lost(peer, now);
        }
    }

    /// Carries out the overlay's outputs until it has none.
    fn carry_out(&mut self) {
        while let Some(output) = self.overlay.poll_output() {
            match output {
                Output::Send { to, message } => {
                    self.send_frame(to, &Frame::Overlay(message));
                }
                Output::Connect(peer) => {
                    if peer != self.shared.me {
                        self.watched.insert(peer);
                        self.link(peer);
                    }
                }
                Output::Disconnect(peer) => {
                    self.watched.remove(&peer);
                }
                Output::Deliver(delivery) => {
                    let _ = self.deliveries.send(delivery);
                }
            }
        }
    }

    /// The link to `peer`, dialing one if there is none.
    fn link(&mut self, peer: PeerId) -> &mut Link {
        let shared = &self.shared;
        self.links.entry(peer).or_insert_with(|| {
            let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
            let (writer, queue) = mpsc::unbounded_channel();
            shared
                .tasks
                .spawn(outbound::<O::Message>(peer, conn, queue, shared.clone()));
            Link {
                conn,
                dialer: shared.me,
                writer,
                last_sent: Instant::now(),
                last_heard: Instant::now(),
            }
        })
    }

    fn send_frame(&mut self, to: PeerId, frame: &Frame<O::Message>) {
        if to == self.shared.me {
            return;
        }
        let bytes = match frame::encode(frame) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = %e, "frame not sent");
                return;
            }
        };
        let link = self.link(to);
        link.last_sent = Instant::now();
        // A closed queue means the connection just ended; its `Closed` event follows.
        let _ = link.writer.send(bytes);
    }
}
