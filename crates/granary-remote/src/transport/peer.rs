//! One remote node as seen by the dialling side: its lanes and its liveness.
//!
//! A dial-out peer (an external client, `docs/wire.md`, "Dial-out peers") is a peer too,
//! but a *reverse* one: nothing dials it; each connection it opened here gets a writer
//! that takes from the matching lane's queue, and sends pick a lane that has one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::bulk::{self, Held, PairLane, Switches};
use super::lane::{self, Lane};
use super::room::Room;
use super::{Inner, PeerEvent};
use crate::error::SendError;
use crate::handshake;
use crate::node_id::NodeId;
use crate::wire::FrameHeader;

/// Where [`Peer::route`] sent a data frame.
pub(crate) enum Route {
    /// Its pair is not bulk-affine: the data connection chosen by affinity.
    Data,
    /// The bulk lane.
    Bulk,
    /// Held until its pair's barrier is acknowledged (already queued there).
    Held,
}

pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// `groups[channel][index]`, in the order of `Inner::channels`.
    groups: Vec<Vec<Arc<Lane>>>,
    /// The bulk lane (`TransportConfig::bulk_lane`); its task is spawned on first use.
    bulk: Arc<Lane>,
    /// Told by every queue above when its writer takes a batch: senders refused for
    /// backpressure wait here (`ActorRef::send`).
    pub(crate) room: Arc<Room>,
    bulk_started: AtomicBool,
    /// Whether any pair is bulk-affine (so small frames need a look at `switches`).
    any_bulk: AtomicBool,
    switches: Mutex<Switches>,
    node: Mutex<Option<NodeId>>,
    unreachable: AtomicBool,
    tasks: Mutex<Vec<AbortHandle>>,
    /// Per-channel counters, in the order of `Inner::channels`.
    meters: Vec<super::meter::OutboundMeter>,
    /// Whether the control connection is up.
    connected: tokio::sync::watch::Sender<bool>,
    /// Counts the times the peer connected to us while we could not reach it: a lane
    /// waiting out a redial backoff dials at once when it moves. A count, not a bare
    /// wake-up, so a lane that was dialling (or had just failed) when the peer
    /// connected sees it on entering its backoff instead of missing it.
    redial: tokio::sync::watch::Sender<u64>,
    /// Counts the times the peer's control connection to us went silent: each lane
    /// drops the connection it serves and dials a new one when it moves (see
    /// [`Peer::reconnect`]).
    silences: tokio::sync::watch::Sender<u64>,
    /// Set for a dial-out peer: its lanes are the connections it opened.
    reverse: Option<Reverse>,
}

/// The lanes of a dial-out peer: which have a connection it opened (that connection's
/// writer takes from the lane's queue), and a signal that closes them all.
struct Reverse {
    /// Connections attached per lane, `[group][index]` as `Peer::groups`.
    attached: Vec<Vec<AtomicUsize>>,
    /// Every open connection of the peer, on any lane (the bulk lane, a lane this
    /// node does not have, the control lane).
    connections: AtomicUsize,
    /// Bumped by every control connection, so that a replaced one, ending late, does
    /// not forget the peer.
    control: AtomicU64,
    /// Flips to `true` when the peer is forgotten: its connections close.
    closed: tokio::sync::watch::Sender<bool>,
}

/// One connection of a dial-out peer attached to lane `[group][index]`; detached when
/// dropped.
pub(crate) struct Attached {
    peer: Arc<Peer>,
    slot: Option<(usize, usize)>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(rev) = &self.peer.reverse {
            if let Some((g, i)) = self.slot {
                rev.attached[g][i].fetch_sub(1, Ordering::AcqRel);
            }
            rev.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Peer {
    fn new(inner: &Arc<Inner>, addr: SocketAddr, reverse: bool) -> Arc<Self> {
        let room = Arc::new(Room::default());
        let groups: Vec<Vec<Arc<Lane>>> = inner
            .channels
            .iter()
            .map(|c| {
                (0..c.lanes)
                    .map(|_| {
                        Arc::new(Lane::new(
                            inner.config.queue_capacity,
                            inner.config.max_frame,
                            inner.config.chunk_size,
                            room.clone(),
                        ))
                    })
                    .collect()
            })
            .collect();
        Arc::new(Self {
            addr,
            groups,
            bulk: Arc::new(Lane::new(
                inner.config.queue_capacity,
                inner.config.max_frame,
                inner.config.chunk_size,
                room.clone(),
            )),
            room,
            bulk_started: AtomicBool::new(false),
            any_bulk: AtomicBool::new(false),
            switches: Mutex::new(Switches::default()),
            node: Mutex::new(None),
            unreachable: AtomicBool::new(false),
            redial: tokio::sync::watch::Sender::new(0),
            silences: tokio::sync::watch::Sender::new(0),
            tasks: Mutex::new(Vec::new()),
            meters: (inner.channels.iter())
                .map(|c| super::meter::OutboundMeter::new(inner.node.addr(), addr, &c.name))
                .collect(),
            connected: tokio::sync::watch::channel(false).0,
            reverse: reverse.then(|| Reverse {
                attached: (inner.channels.iter())
                    .map(|c| (0..c.lanes).map(|_| AtomicUsize::new(0)).collect())
                    .collect(),
                connections: AtomicUsize::new(0),
                control: AtomicU64::new(0),
                closed: tokio::sync::watch::channel(false).0,
            }),
        })
    }

    /// The peer of a dial-out node: no dialling task, only its heartbeats (written on
    /// its control connection once it is attached); `None` after shutdown.
    pub(crate) fn start_reverse(inner: &Arc<Inner>, addr: SocketAddr) -> Option<Arc<Self>> {
        let peer = Self::new(inner, addr, true);
        let heartbeats = inner.spawn(super::heartbeat::send_loop(inner.clone(), peer.clone()))?;
        peer.tasks.lock().push(heartbeats);
        Some(peer)
    }

    /// Create the peer and spawn one dialling task per lane; `None` after shutdown.
    pub(crate) fn start(inner: &Arc<Inner>, addr: SocketAddr) -> Option<Arc<Self>> {
        let peer = Self::new(inner, addr, false);
        let mut handles =
            vec![inner.spawn(super::heartbeat::send_loop(inner.clone(), peer.clone()))?];
        for (g, spec) in inner.channels.iter().enumerate() {
            for i in 0..spec.lanes {
                let id = handshake::Lane {
                    channel: spec.name.to_string(),
                    index: i as u16,
                    reply_here: inner.dial_out,
                };
                let task = lane::run(inner.clone(), peer.clone(), peer.lane(g, i).clone(), id);
                handles.push(inner.spawn(task)?);
            }
        }
        *peer.tasks.lock() = handles;
        Some(peer)
    }

    /// The counters of channel group `group`.
    pub(crate) fn meter(&self, group: usize) -> &super::meter::OutboundMeter {
        &self.meters[group]
    }

    pub(crate) fn lane(&self, group: usize, index: usize) -> &Arc<Lane> {
        &self.groups[group][index]
    }

    /// Whether some pair of this peer uses the bulk lane (then every data frame must be
    /// [`routed`](Peer::route)).
    pub(crate) fn has_bulk_pairs(&self) -> bool {
        self.any_bulk.load(Ordering::Acquire)
    }

    /// The bulk lane, its connection dialled on first use.
    pub(crate) fn bulk_lane(self: &Arc<Self>, inner: &Arc<Inner>) -> &Arc<Lane> {
        if !self.bulk_started.swap(true, Ordering::AcqRel) {
            let id = handshake::Lane {
                channel: bulk::LANE_NAME.to_owned(),
                index: 0,
                reply_here: inner.dial_out,
            };
            let task = lane::run(inner.clone(), self.clone(), self.bulk.clone(), id);
            if let Some(handle) = inner.spawn(task) {
                self.tasks.lock().push(handle);
            }
        }
        &self.bulk
    }

    /// Choose the lane of a data frame of `pair` when the bulk lane is on and affinity
    /// put the pair on data connection `index`. A large frame of a pair that is not
    /// bulk-affine yet starts its switch: a barrier on `index`, and the frame is held.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn route(
        self: &Arc<Self>,
        inner: &Arc<Inner>,
        pair: u64,
        large: bool,
        index: usize,
        header: &FrameHeader<'_>,
        body: &Bytes,
        delay: Option<Duration>,
    ) -> Result<Route, SendError> {
        let mut s = self.switches.lock();
        let encode = || {
            header
                .encode_with_body(body, inner.config.max_frame)
                .map_err(SendError::from)
        };
        match s.pairs.get(&pair) {
            Some(PairLane::Bulk) => Ok(Route::Bulk),
            Some(PairLane::Switching { .. }) => {
                let held = Held {
                    frame: encode()?,
                    delay,
                };
                s.hold(pair, held, inner.config.queue_capacity)
                    .map_err(|()| bulk::backpressure(inner, self.addr))?;
                Ok(Route::Held)
            }
            None if !large => Ok(Route::Data),
            None if !inner.config.affinity => {
                // Without affinity a pair's frames are spread over every connection and
                // keep no order to protect: large frames just take the bulk lane.
                Ok(Route::Bulk)
            }
            None => {
                let frame = encode()?;
                let id = s.last_id + 1;
                let lane = self.lane(super::DATA_GROUP, index);
                inner.enqueue(
                    self.addr,
                    lane,
                    &bulk::barrier_header(id),
                    &bulk::barrier_body(inner.node),
                    pair,
                    delay,
                )?;
                s.last_id = id;
                s.barriers.insert(id, pair);
                s.pairs.insert(
                    pair,
                    PairLane::Switching {
                        id,
                        lane: index,
                        held: Vec::new(),
                        sent: Instant::now(),
                    },
                );
                // The first frame is always held, whatever the bound.
                s.held_bytes += frame.len();
                if let Some(PairLane::Switching { held, .. }) = s.pairs.get_mut(&pair) {
                    held.push(Held { frame, delay });
                }
                self.any_bulk.store(true, Ordering::Release);
                drop(s);
                // Dial the bulk lane now, so its handshake overlaps the barrier's trip.
                self.bulk_lane(inner);
                Ok(Route::Held)
            }
        }
    }

    /// The peer acknowledged barrier `id`: queue its pair's held frames on the bulk lane,
    /// in order, and send the pair's later frames there.
    pub(crate) fn on_barrier_ack(self: &Arc<Self>, inner: &Arc<Inner>, id: u64) {
        let bulk = self.bulk_lane(inner).clone();
        let mut s = self.switches.lock();
        let Some(pair) = s.barriers.remove(&id) else {
            return; // A second ack of a resent barrier.
        };
        let Some(PairLane::Switching { held, .. }) = s.pairs.insert(pair, PairLane::Bulk) else {
            return;
        };
        let bytes: usize = held.iter().map(|h| h.frame.len()).sum();
        s.held_bytes -= bytes;
        // Released under the lock, so a frame sent now cannot pass a held one.
        for Held { frame, delay } in held {
            match delay {
                Some(delay) => {
                    if bulk.delay(inner, delay, pair, frame).is_err() {
                        tracing::debug!(addr = %self.addr, "held frame dropped: delay line full");
                    }
                }
                // Held frames were accepted already (and bounded while held).
                None => bulk.queue.push_encoded_unbounded(frame, pair),
            }
        }
    }

    /// Send again every barrier that got no ack for `after` (lost with its connection,
    /// dropped by fault injection, or its ack lost); the receiver acks each copy and
    /// the second ack releases nothing.
    pub(crate) fn resend_barriers(&self, inner: &Arc<Inner>, after: Duration) {
        let mut s = self.switches.lock();
        for (&pair, state) in s.pairs.iter_mut() {
            if let PairLane::Switching { id, lane, sent, .. } = state {
                if sent.elapsed() < after {
                    continue;
                }
                *sent = Instant::now();
                let lane = self.lane(super::DATA_GROUP, *lane);
                let header = bulk::barrier_header(*id);
                let body = bulk::barrier_body(inner.node);
                if let Err(error) = inner.enqueue(self.addr, lane, &header, &body, pair, None) {
                    tracing::debug!(addr = %self.addr, %error, "barrier not resent");
                }
            }
        }
    }

    /// Whether this is a dial-out peer (nothing dials it).
    pub(crate) fn is_reverse(&self) -> bool {
        self.reverse.is_some()
    }

    /// For a dial-out peer, the lane a frame chosen for `[group][index]` goes to: that
    /// one if a connection of the peer is attached to it, else another of the group,
    /// else a data lane, else the control lane; `Some(None)` when none is attached.
    /// `None` for a dialled peer (every lane has its connection).
    pub(crate) fn reverse_lane(
        &self,
        group: usize,
        index: usize,
    ) -> Option<Option<(usize, usize)>> {
        let rev = self.reverse.as_ref()?;
        let up = |g: usize, i: usize| {
            (rev.attached.get(g).and_then(|l| l.get(i)))
                .is_some_and(|n| n.load(Ordering::Acquire) > 0)
        };
        let any_in = |g: usize| {
            let lanes = rev.attached.get(g).map_or(0, Vec::len);
            (0..lanes).find(|&i| up(g, i)).map(|i| (g, i))
        };
        Some(if up(group, index) {
            Some((group, index))
        } else {
            any_in(group)
                .or_else(|| any_in(super::DATA_GROUP))
                .or_else(|| any_in(0))
        })
    }

    /// Attach a connection the dial-out peer opened for `channel`'s lane `index`: frames
    /// for that lane may go out on it while the returned guard lives. A lane this node
    /// does not have (another channel set, the bulk lane) attaches nothing.
    pub(crate) fn attach(self: &Arc<Self>, inner: &Inner, channel: &str, index: u16) -> Attached {
        if let Some(rev) = &self.reverse {
            rev.connections.fetch_add(1, Ordering::AcqRel);
        }
        let slot = (self.reverse.as_ref()).and_then(|rev| {
            let g = inner.channels.iter().position(|c| *c.name == *channel)?;
            let n = rev.attached.get(g)?.get(usize::from(index))?;
            n.fetch_add(1, Ordering::AcqRel);
            Some((g, usize::from(index)))
        });
        Attached {
            peer: self.clone(),
            slot,
        }
    }

    /// A new control connection of this dial-out peer: its number, for
    /// [`Peer::is_current_control`].
    pub(crate) fn next_control(&self) -> u64 {
        (self.reverse.as_ref()).map_or(0, |r| r.control.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Whether this dial-out peer has no connection open and no control connection
    /// up: nothing can reach it, so it can be forgotten. `false` for a dialled peer.
    pub(crate) fn is_abandoned(&self) -> bool {
        (self.reverse.as_ref())
            .is_some_and(|r| r.connections.load(Ordering::Acquire) == 0 && !self.is_connected())
    }

    /// Whether control connection `n` is still the latest one.
    pub(crate) fn is_current_control(&self, n: u64) -> bool {
        (self.reverse.as_ref()).is_some_and(|r| r.control.load(Ordering::Acquire) == n)
    }

    /// Resolves once this dial-out peer is forgotten (never for a dialled peer).
    pub(crate) async fn closed(&self) {
        match &self.reverse {
            Some(rev) => {
                let mut rx = rev.closed.subscribe();
                // The sender lives as long as the peer: an error cannot happen here.
                let _ = rx.wait_for(|closed| *closed).await;
            }
            None => std::future::pending().await,
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Resolves once the control connection is up.
    pub(crate) async fn control_up(&self) {
        let mut rx = self.connected.subscribe();
        // The sender lives as long as the peer: an error cannot happen here.
        let _ = rx.wait_for(|up| *up).await;
    }

    pub(crate) fn node(&self) -> Option<NodeId> {
        *self.node.lock()
    }

    pub(crate) fn is_unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Acquire)
    }

    /// Bytes waiting in each channel group's queues (the bulk lane counts as data).
    pub(crate) fn bytes_pending(&self) -> Vec<usize> {
        let mut pending: Vec<usize> = (self.groups.iter())
            .map(|g| g.iter().map(|l| l.queue.bytes_pending()).sum())
            .collect();
        if let Some(data) = pending.get_mut(super::DATA_GROUP) {
            *data += self.bulk.queue.bytes_pending();
        }
        pending
    }

    pub(crate) fn frames_queued(&self) -> u64 {
        self.groups
            .iter()
            .flatten()
            .chain([&self.bulk])
            .map(|l| l.queue.frames_queued())
            .sum()
    }

    /// The control connection came up with `node`.
    pub(crate) fn on_connected(&self, inner: &Inner, node: NodeId) {
        let old = self.node.lock().replace(node);
        if old.is_some() {
            self.meters[0].reconnected(); // channel 0 is control
        }
        self.unreachable.store(false, Ordering::Release);
        self.connected.send_replace(true);
        if let Some(old) = old.filter(|old| *old != node) {
            tracing::info!(%old, new = %node, "peer restarted with a new incarnation");
            inner.emit(PeerEvent::Restarted { old, new: node });
        }
        inner.emit(PeerEvent::Connected { node });
    }

    /// The peer opened an authenticated connection here, so it is up and listening: it
    /// is no longer unreachable (frames to it queue again instead of failing), and lanes
    /// that are waiting out a backoff after failed dials (it was not up yet, or
    /// restarting) dial at once. Without this, a peer marked unreachable while it started
    /// stayed so for up to the backoff (seconds) after it joined, and every frame to it,
    /// replies to its own asks included, was dropped meanwhile.
    pub(crate) fn redial_now(&self) {
        if !*self.connected.borrow() {
            self.unreachable.store(false, Ordering::Release);
            self.redial
                .send_modify(|count| *count = count.wrapping_add(1));
        }
    }

    /// How many times [`Peer::redial_now`] has run: read before a dial, passed to
    /// [`Peer::backoff`] after it.
    pub(crate) fn redials(&self) -> u64 {
        *self.redial.borrow()
    }

    /// The peer's heartbeats stopped reaching us: our connections to it are likely cut
    /// too (a kernel-level partition drops both ways). Each lane drops the connection it
    /// serves and dials anew. Kept, a connection cut for seconds came back only when
    /// TCP retransmitted its unacknowledged bytes, and TCP backs that off exponentially:
    /// seconds after the heal, while the cluster went on seeing the peer as cut (on the
    /// test bed, a member downed a second time 2.6 s after its cut healed). A new dial's
    /// SYN is retried within a second or two of the heal instead.
    pub(crate) fn reconnect(&self) {
        self.silences
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// How many times [`Peer::reconnect`] has run: read when a connection comes up,
    /// passed to [`Peer::silenced`].
    pub(crate) fn silences(&self) -> u64 {
        *self.silences.borrow()
    }

    /// Resolves once [`Peer::reconnect`] runs after `silences` was read.
    pub(crate) async fn silenced(&self, silences: u64) {
        let mut moved = self.silences.subscribe();
        // The sender lives as long as the peer: `wait_for` cannot fail here.
        let _ = moved.wait_for(|count| *count != silences).await;
    }

    /// Waits out `backoff`, or less if [`Peer::redial_now`] runs meanwhile or has run
    /// since `redials` was read (during the dial that failed).
    pub(crate) async fn backoff(&self, backoff: std::time::Duration, redials: u64) {
        let mut moved = self.redial.subscribe();
        if *moved.borrow_and_update() != redials {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            // The sender lives as long as the peer: `changed` cannot fail here.
            _ = moved.changed() => {}
        }
    }

    /// The control connection to `node` was lost.
    pub(crate) fn on_disconnected(&self, inner: &Inner, node: NodeId, reason: String) {
        self.connected.send_replace(false);
        inner.emit(PeerEvent::Disconnected { node, reason });
    }

    /// The control connection failed too often: drop queued frames, fail sends fast.
    pub(crate) fn on_unreachable(&self, inner: &Inner) {
        self.connected.send_replace(false);
        if self.unreachable.swap(true, Ordering::AcqRel) {
            return;
        }
        let queued: usize = self
            .groups
            .iter()
            .flatten()
            .chain([&self.bulk])
            .map(|l| l.queue.clear())
            .sum();
        let dropped_bytes = queued + self.switches.lock().drop_held();
        let node = self.node();
        if self.is_reverse() {
            // A client that went away: nothing wrong with this node.
            tracing::info!(addr = %self.addr, ?node, dropped_bytes, "dial-out peer gone");
        } else {
            tracing::warn!(addr = %self.addr, ?node, dropped_bytes, "peer unreachable");
        }
        inner.emit(PeerEvent::Unreachable {
            addr: self.addr,
            node,
            dropped_bytes,
        });
    }

    /// Stop every lane task.
    pub(crate) fn stop(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        if let Some(rev) = &self.reverse {
            rev.closed.send_replace(true);
        }
        for lane in self.groups.iter().flatten().chain([&self.bulk]) {
            lane.queue.clear();
        }
        self.switches.lock().drop_held();
    }
}
