//! The link: one broker connection per node, one queue per node, the transport's
//! connections carried as messages.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use granary_remote::{BrokerConnection, BrokerLink, Link, LinkFuture};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use parking_lot::Mutex;
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::connection::{self, Side, Table};
use crate::members::MemberTable;
use crate::message::{self, Kind};
use crate::names;
use crate::{AmqpConfig, AmqpError};

/// The AMQP reply code of "no such queue".
const NOT_FOUND: u16 = 404;
/// The AMQP reply code of "exclusive to another connection".
const RESOURCE_LOCKED: u16 = 405;
/// Names tried for a node address with port 0 before giving up.
const NAME_ATTEMPTS: usize = 16;
/// Broker replies (membership answers, refusals) being published at once; more are
/// dropped, so a flood of requests cannot pile up tasks.
const MAX_REPLIES: usize = 64;
/// How long a closing link waits for its connections' close markers to go out before
/// it closes the broker connection.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Counters of an [`AmqpLink`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AmqpLinkStats {
    /// Messages published (connection bytes, opens, closes, membership).
    pub published: u64,
    /// Payload bytes published.
    pub published_bytes: u64,
    /// Messages taken from this node's queue.
    pub consumed: u64,
    /// Connections this node opened.
    pub dialled: u64,
    /// Connections other nodes opened that were handed to the transport.
    pub accepted: u64,
    /// Connections open now (both sides).
    pub open_connections: usize,
    /// Connections closed because more unread bytes arrived than allowed.
    pub overruns: u64,
    /// Connections refused (link full, transport not taking more).
    pub refused: u64,
    /// Messages dropped as malformed or for no open connection.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    published_bytes: AtomicU64,
    consumed: AtomicU64,
    dialled: AtomicU64,
    accepted: AtomicU64,
    overruns: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
}

/// What the link's tasks share.
pub(crate) struct Shared {
    pub(crate) config: AmqpConfig,
    addr: SocketAddr,
    /// This node's queue.
    queue: String,
    exchange: String,
    connection: Connection,
    publisher: Channel,
    pub(crate) table: Mutex<Table>,
    /// Unread bytes of every connection together (capped at `max_buffered`).
    pub(crate) buffered: AtomicUsize,
    next_id: AtomicU64,
    accepts_tx: Mutex<Option<mpsc::Sender<BrokerConnection>>>,
    accepts_rx: tokio::sync::Mutex<mpsc::Receiver<BrokerConnection>>,
    members: MemberTable,
    announcing: AtomicBool,
    /// The epoch of this node's last announcement or leave on the membership exchange
    /// (`MemberTable::heard`): seeded from the wall clock, one more at each.
    member_epoch: AtomicU64,
    closed: AtomicBool,
    /// Connection tasks running, and a wake-up when the last one ends.
    live: AtomicUsize,
    idle: Notify,
    replies: Arc<Semaphore>,
    /// A channel kept for passive declarations (a refused one is closed by the
    /// broker, and replaced).
    probe_channel: Mutex<Option<Channel>>,
    /// The consumer and the peer check.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    counters: Counters,
}

/// A node's attachment to an AMQP broker (seed 002 §3.6): the transport's connections
/// ride on it ([`AmqpLink::link`] for `TransportConfig::with_link`), and
/// [`AmqpProvider`](crate::AmqpProvider) finds members through it.
///
/// It opens one connection to the broker and declares the node's queue
/// (`granary.<cluster>.node.<addr>`, exclusive: the broker deletes it when the
/// connection ends, and no second node can take the same name), bound to the
/// cluster's membership exchange. Cloning is cheap; clones share one attachment.
///
/// ```no_run
/// // no_run: needs a broker; the integration tests run the same thing.
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use granary_amqp::{AmqpConfig, AmqpLink};
/// use granary_remote::TransportConfig;
///
/// let link = AmqpLink::connect(AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", "c"))
///     .await?;
/// let config = TransportConfig::new("c", "secret").with_link(link.link());
/// # let _ = config;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AmqpLink {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AmqpLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpLink")
            .field("node", &self.shared.addr)
            .field("queue", &self.shared.queue)
            .finish_non_exhaustive()
    }
}

impl AmqpLink {
    /// Connects to the broker, declares this node's queue and binds it to the
    /// membership exchange, and starts consuming it.
    pub async fn connect(config: AmqpConfig) -> Result<Self, AmqpError> {
        config.validate().map_err(AmqpError::Config)?;
        tokio::time::timeout(config.connect_timeout, Self::attach(config))
            .await
            .map_err(|_| AmqpError::Timeout)?
    }

    async fn attach(config: AmqpConfig) -> Result<Self, AmqpError> {
        let properties = ConnectionProperties::default().with_connection_name(
            lapin::types::LongString::from(format!("granary {}", config.cluster)),
        );
        let connection = Connection::connect(&config.url, properties).await?;
        let (addr, queue, consuming) = declare_own_queue(&connection, &config).await?;
        let exchange = names::members_exchange(&config.cluster);
        consuming
            .exchange_declare(
                ShortString::from(exchange.clone()),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        consuming
            .queue_bind(
                ShortString::from(queue.clone()),
                ShortString::from(exchange.clone()),
                ShortString::from(""),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        // The broker sends at most `prefetch` unacknowledged messages; the router takes
        // each at once and never waits (caps per connection bound what it holds), and
        // the consumer acknowledges them in batches.
        consuming
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await?;
        let consumer = consuming
            .basic_consume(
                ShortString::from(queue.clone()),
                ShortString::from(""),
                BasicConsumeOptions {
                    exclusive: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let publisher = connection.create_channel().await?;
        let (accepts_tx, accepts_rx) = mpsc::channel(config.max_pending_accepts);
        let members = MemberTable::new(config.member_ttl, config.max_members);
        let shared = Arc::new(Shared {
            addr,
            queue,
            exchange,
            connection,
            publisher,
            table: Mutex::new(Table::default()),
            buffered: AtomicUsize::new(0),
            next_id: AtomicU64::new(random_u64()),
            accepts_tx: Mutex::new(Some(accepts_tx)),
            accepts_rx: tokio::sync::Mutex::new(accepts_rx),
            members,
            announcing: AtomicBool::new(false),
            member_epoch: AtomicU64::new(wall_clock_millis()),
            closed: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            idle: Notify::new(),
            replies: Arc::new(Semaphore::new(MAX_REPLIES)),
            probe_channel: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            counters: Counters::default(),
            config,
        });
        let consuming = tokio::spawn(consume(Arc::downgrade(&shared), consumer, consuming));
        let checking = tokio::spawn(check_peers(Arc::downgrade(&shared)));
        *shared.tasks.lock() = vec![consuming, checking];
        tracing::info!(node = %shared.addr, queue = %shared.queue, "attached to the amqp broker");
        Ok(Self { shared })
    }

    /// The transport link to put in `TransportConfig::link`.
    pub fn link(&self) -> Link {
        Link::Broker(Arc::new(self.clone()))
    }

    /// The address that names this node.
    pub fn node_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// This node's queue on the broker.
    pub fn queue_name(&self) -> &str {
        &self.shared.queue
    }

    /// Whether the link was closed or lost its broker.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Counters so far.
    pub fn stats(&self) -> AmqpLinkStats {
        let c = &self.shared.counters;
        AmqpLinkStats {
            published: c.published.load(Ordering::Relaxed),
            published_bytes: c.published_bytes.load(Ordering::Relaxed),
            consumed: c.consumed.load(Ordering::Relaxed),
            dialled: c.dialled.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            open_connections: self.shared.table.lock().len(),
            overruns: c.overruns.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// Asks the cluster's members to announce themselves and returns the members
    /// heard within `member_ttl`, other than this node: at once if some are known,
    /// otherwise after the first answer or `discover_wait`.
    pub async fn discover(&self) -> Result<Vec<SocketAddr>, AmqpError> {
        let shared = &self.shared;
        let heard = shared.members.notify().notified();
        tokio::pin!(heard);
        heard.as_mut().enable();
        shared.publish_members(Kind::Discover, 0).await?;
        let deadline = tokio::time::Instant::now() + shared.config.discover_wait;
        loop {
            let known = shared.members.fresh(shared.addr);
            if !known.is_empty() {
                return Ok(known);
            }
            if tokio::time::timeout_at(deadline, heard.as_mut())
                .await
                .is_err()
            {
                return Ok(known);
            }
            heard.set(shared.members.notify().notified());
            heard.as_mut().enable();
        }
    }

    /// Announces this node on the membership exchange, and from now on answers
    /// members that ask.
    pub async fn announce(&self) -> Result<(), AmqpError> {
        let epoch = self.shared.next_member_epoch();
        self.shared.announcing.store(true, Ordering::Release);
        self.shared.publish_members(Kind::Announce, epoch).await
    }

    /// Tells the members this node left, and stops answering.
    pub async fn leave(&self) -> Result<(), AmqpError> {
        self.shared.announcing.store(false, Ordering::Release);
        // After `announcing` is cleared: an answer to a discover that still saw it set
        // carries this epoch or an earlier one, and members ignore it once they heard
        // this leave.
        let epoch = self.shared.next_member_epoch();
        self.shared.publish_members(Kind::Leave, epoch).await
    }

    /// Ends every connection (each peer gets a close marker), then closes the broker
    /// connection, which deletes this node's queue. Returns at once; the markers and
    /// the close go out on the runtime within about a second.
    pub fn close(&self) {
        self.shared.close();
    }
}

impl BrokerLink for AmqpLink {
    fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    fn dial(&self, to: SocketAddr) -> LinkFuture<'_, io::Result<DuplexStream>> {
        Box::pin(self.shared.clone().dial(to))
    }

    fn accept(&self) -> LinkFuture<'_, Option<BrokerConnection>> {
        Box::pin(async move { self.shared.accepts_rx.lock().await.recv().await })
    }

    fn close(&self) {
        self.shared.close();
    }
}

/// Declares the node's exclusive queue; with port 0, the first free name on the IP.
/// Returns the name, the queue and the channel it was declared on (to consume it).
async fn declare_own_queue(
    connection: &Connection,
    config: &AmqpConfig,
) -> Result<(SocketAddr, String, Channel), AmqpError> {
    let picks_port = config.node_addr.port() == 0;
    for _ in 0..if picks_port { NAME_ATTEMPTS } else { 1 } {
        let mut addr = config.node_addr;
        if picks_port {
            addr.set_port((random_u64() % 64_511) as u16 + 1025);
        }
        let queue = names::node_queue(&config.cluster, addr);
        // A refused declaration closes its channel: one channel per attempt.
        let channel = connection.create_channel().await?;
        let declared = channel
            .queue_declare(
                ShortString::from(queue.clone()),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(_) => return Ok((addr, queue, channel)),
            Err(e) if reply_code(&e) == Some(RESOURCE_LOCKED) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AmqpError::NameTaken {
        addr: config.node_addr,
    })
}

fn reply_code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn wall_clock_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A random u64 from the standard library's randomly keyed hasher.
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

/// Takes every delivery of the node's queue and routes it, until the broker
/// connection ends or the link is dropped; then every connection is ended.
async fn consume(shared: Weak<Shared>, mut consumer: lapin::Consumer, _channel: Channel) {
    let ack_every = match shared.upgrade() {
        Some(s) => usize::from(s.config.prefetch / 4),
        None => return,
    };
    let mut unacked = 0;
    while let Some(delivery) = consumer.next().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match delivery {
            Ok(delivery) => {
                let acker = delivery.acker.clone();
                shared.route(delivery);
                unacked += 1;
                if unacked >= ack_every {
                    unacked = 0;
                    // Acknowledges this delivery and every earlier one.
                    let multiple = BasicAckOptions { multiple: true };
                    if let Err(error) = acker.ack(multiple).await {
                        tracing::warn!(node = %shared.addr, %error, "amqp acknowledgement failed");
                        break;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(node = %shared.addr, %error, "amqp broker connection lost");
                break;
            }
        }
    }
    if let Some(shared) = shared.upgrade() {
        shared.lost();
    }
}

/// Every `peer_check_interval`, ends the connections with nodes whose queue is gone
/// (both the ones this node dialled and the ones they dialled).
async fn check_peers(shared: Weak<Shared>) {
    let every = match shared.upgrade() {
        Some(s) => s.config.peer_check_interval,
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let mut peers: Vec<Arc<str>> = {
            let table = shared.table.lock();
            (table.dialled.values())
                .chain(table.accepted.values())
                .map(|e| e.peer.clone())
                .collect()
        };
        peers.sort();
        peers.dedup();
        for peer in peers {
            match shared.probe(&peer).await {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => shared.peer_gone(&peer),
                _ => {}
            }
        }
    }
}

impl Shared {
    /// The queue of `peer` is gone (the node died): the connections with it end as if
    /// it had closed them.
    fn peer_gone(&self, peer: &str) {
        let mut table = self.table.lock();
        let ids: Vec<u64> = (table.dialled.iter())
            .filter(|(_, e)| &*e.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(end) = table.dialled.remove(id) {
                end.peer_closed();
            }
        }
        let keys: Vec<(Arc<str>, u64)> = (table.accepted.keys())
            .filter(|(from, _)| &**from == peer)
            .cloned()
            .collect();
        for key in &keys {
            if let Some(end) = table.accepted.remove(key) {
                end.peer_closed();
            }
        }
        let connections = ids.len() + keys.len();
        tracing::debug!(node = %self.addr, peer, connections, "peer's queue is gone");
    }

    /// Publishes one message of a connection (or a control message) to `to`'s queue.
    pub(crate) async fn publish(
        &self,
        to: &str,
        kind: Kind,
        id: u64,
        body: &[u8],
    ) -> Result<(), lapin::Error> {
        self.publish_to("", to, kind, id, body).await
    }

    async fn publish_to(
        &self,
        exchange: &str,
        routing_key: &str,
        kind: Kind,
        id: u64,
        body: &[u8],
    ) -> Result<(), lapin::Error> {
        // Resolves once the frames are handed to the connection's writer: awaiting it
        // is the backpressure of the pipe behind it.
        self.publisher
            .basic_publish(
                ShortString::from(exchange),
                ShortString::from(routing_key),
                BasicPublishOptions::default(),
                body,
                message::properties(kind, &self.queue, id),
            )
            .await?;
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        (self.counters.published_bytes).fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Publishes `kind` on the membership exchange; `epoch` travels in the header's
    /// connection field (0 for a discover).
    async fn publish_members(&self, kind: Kind, epoch: u64) -> Result<(), AmqpError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(AmqpError::Closed);
        }
        Ok(self
            .publish_to(&self.exchange, "", kind, epoch, &[])
            .await?)
    }

    /// The epoch for this node's next announcement or leave.
    fn next_member_epoch(&self) -> u64 {
        self.member_epoch.fetch_add(1, Ordering::AcqRel) + 1
    }

    async fn dial(self: Arc<Self>, to: SocketAddr) -> io::Result<DuplexStream> {
        if self.closed.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "amqp link closed",
            ));
        }
        let peer: Arc<str> = names::node_queue(&self.config.cluster, to).into();
        self.probe(&peer).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (app, pipe) = tokio::io::duplex(self.config.max_message);
        let (end, task) = connection::pair(peer.clone());
        {
            let mut table = self.table.lock();
            if table.len() >= self.config.max_connections {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                return Err(io::Error::other("amqp link: too many connections"));
            }
            table.dialled.insert(id, end);
        }
        self.spawn_connection(Side::Dialled, peer.clone(), id, pipe, task);
        // The open goes out before any byte of the connection: the connection's task
        // publishes only what the transport writes into `app`, which it cannot do
        // before this returns.
        if let Err(e) = self.publish(&peer, Kind::Open, id, &[]).await {
            self.table.lock().dialled.remove(&id);
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, e));
        }
        self.counters.dialled.fetch_add(1, Ordering::Relaxed);
        Ok(app)
    }

    /// Whether a node holds `queue`: a passive declaration answers "locked" (the
    /// owner's exclusive queue) or "not found" (no such node: the dial is refused, as
    /// a TCP dial to a closed port is).
    async fn probe(&self, queue: &str) -> io::Result<()> {
        let broken = |e: lapin::Error| io::Error::new(io::ErrorKind::BrokenPipe, e);
        let kept = self.probe_channel.lock().take();
        let channel = match kept {
            Some(channel) if channel.status().connected() => channel,
            _ => self.connection.create_channel().await.map_err(broken)?,
        };
        let declared = channel
            .queue_declare(
                ShortString::from(queue),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(_) => {
                // Kept for the next probe, unless a concurrent one was kept already.
                let spare = self.probe_channel.lock().replace(channel);
                if let Some(spare) = spare {
                    let _ = spare.close(200, ShortString::from("spare")).await;
                }
                Ok(())
            }
            // A refusal closed the channel; the next probe opens another.
            Err(e) if reply_code(&e) == Some(RESOURCE_LOCKED) => Ok(()),
            Err(e) if reply_code(&e) == Some(NOT_FOUND) => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("no node holds the queue {queue}"),
            )),
            Err(e) => Err(broken(e)),
        }
    }

    fn spawn_connection(
        self: &Arc<Self>,
        side: Side,
        peer: Arc<str>,
        id: u64,
        pipe: DuplexStream,
        task: connection::ConnTask,
    ) {
        self.live.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(connection::run(self.clone(), side, peer, id, pipe, task));
    }

    pub(crate) fn connection_ended(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn count_overrun(&self) {
        self.counters.overruns.fetch_add(1, Ordering::Relaxed);
    }

    /// Hands one delivery on; never waits.
    fn route(self: &Arc<Self>, delivery: lapin::message::Delivery) {
        self.counters.consumed.fetch_add(1, Ordering::Relaxed);
        let Some(header) = message::header(&delivery.properties) else {
            self.count_dropped("malformed properties");
            return;
        };
        let Some(sender) = names::node_of_queue(&self.config.cluster, header.sender) else {
            self.count_dropped("sender is no node queue of this cluster");
            return;
        };
        let id = header.connection;
        match header.kind {
            Kind::Open => self.on_open(header.sender, sender, id),
            Kind::ToAcceptor => {
                let mut table = self.table.lock();
                let key = (Arc::<str>::from(header.sender), id);
                match table.accepted.get(&key) {
                    Some(end) => {
                        if end
                            .deliver(delivery.data, self.cap(), &self.buffered, self.cap_total())
                            .is_err()
                        {
                            table.accepted.remove(&key);
                        }
                    }
                    None => {
                        // As a TCP reset: the dialler's connection is gone here (this
                        // node restarted under the same name, or closed it), so it
                        // must stop writing into nothing and redial.
                        drop(table);
                        self.count_dropped("no such accepted connection");
                        self.reply(header.sender, Kind::CloseToDialler, id);
                    }
                }
            }
            Kind::ToDialler => {
                let mut table = self.table.lock();
                match table.dialled.get(&id) {
                    Some(end) if &*end.peer == header.sender => {
                        if end
                            .deliver(delivery.data, self.cap(), &self.buffered, self.cap_total())
                            .is_err()
                        {
                            table.dialled.remove(&id);
                        }
                    }
                    _ => {
                        drop(table);
                        self.count_dropped("no such dialled connection");
                        self.reply(header.sender, Kind::CloseToAcceptor, id);
                    }
                }
            }
            Kind::CloseToAcceptor => {
                let key = (Arc::<str>::from(header.sender), id);
                if let Some(end) = self.table.lock().accepted.remove(&key) {
                    end.peer_closed();
                }
            }
            Kind::CloseToDialler => {
                let mut table = self.table.lock();
                if table
                    .dialled
                    .get(&id)
                    .is_some_and(|e| &*e.peer == header.sender)
                {
                    if let Some(end) = table.dialled.remove(&id) {
                        end.peer_closed();
                    }
                }
            }
            Kind::Announce => self.members.heard(sender, id),
            Kind::Leave => self.members.left(sender, id),
            Kind::Discover => {
                if sender != self.addr && self.announcing.load(Ordering::Acquire) {
                    let epoch = self.member_epoch.load(Ordering::Acquire);
                    self.reply(header.sender, Kind::Announce, epoch);
                }
            }
        }
    }

    fn cap(&self) -> usize {
        self.config.max_unconsumed
    }

    /// The link's cap on unread bytes of all connections together.
    fn cap_total(&self) -> usize {
        self.config.max_buffered
    }

    fn count_dropped(&self, why: &'static str) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(node = %self.addr, why, "amqp message dropped");
    }

    /// Another node opens a connection: hand it to the transport, or refuse it.
    fn on_open(self: &Arc<Self>, sender_queue: &str, sender: SocketAddr, id: u64) {
        let peer: Arc<str> = sender_queue.into();
        let key = (peer.clone(), id);
        let mut table = self.table.lock();
        if table.accepted.contains_key(&key) {
            return self.count_dropped("duplicate open");
        }
        let full = table.len() >= self.config.max_connections;
        let accepts = self.accepts_tx.lock().clone();
        let (app, pipe) = tokio::io::duplex(self.config.max_message);
        let handed = match accepts {
            Some(tx) if !full => tx.try_send((app, sender)).is_ok(),
            _ => false,
        };
        if !handed {
            drop(table);
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(node = %self.addr, %sender, "refused a broker connection");
            return self.reply(sender_queue, Kind::CloseToDialler, id);
        }
        let (end, task) = connection::pair(peer.clone());
        table.accepted.insert(key, end);
        drop(table);
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        self.spawn_connection(Side::Accepted, peer, id, pipe, task);
    }

    /// Publishes a short control message to `to` from a task of its own, if fewer than
    /// `MAX_REPLIES` are under way; otherwise it is dropped.
    fn reply(self: &Arc<Self>, to: &str, kind: Kind, id: u64) {
        let Ok(permit) = self.replies.clone().try_acquire_owned() else {
            return self.count_dropped("too many replies under way");
        };
        let shared = self.clone();
        let to = to.to_owned();
        tokio::spawn(async move {
            let _ = shared.publish(&to, kind, id, &[]).await;
            drop(permit);
        });
    }

    /// Stop accepting and end every connection (their tasks send close markers).
    fn end_all(&self) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.announcing.store(false, Ordering::Release);
        self.accepts_tx.lock().take();
        let table = std::mem::take(&mut *self.table.lock());
        drop(table);
        true
    }

    fn close(self: &Arc<Self>) {
        if !self.end_all() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = self.clone();
        runtime.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_GRACE, shared.all_connections_ended()).await;
            for task in shared.tasks.lock().drain(..) {
                task.abort();
            }
            // Ending the broker connection deletes the exclusive queue.
            let _ = shared
                .connection
                .close(200, ShortString::from("node closed"))
                .await;
            tracing::info!(node = %shared.addr, "detached from the amqp broker");
        });
    }

    /// The broker connection broke: every connection ends, dials fail from now on.
    fn lost(&self) {
        self.end_all();
    }

    async fn all_connections_ended(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}
