//! A deterministic one-process simulation of many overlay nodes on a virtual clock.
//!
//! Every node is an [`Overlay`] state machine; the network is an event queue. A message
//! arrives after [`Simulation::latency`] (the same for every link, so each link is
//! FIFO); ties are broken by the order events were scheduled, so a run depends only on
//! the nodes' seeds. Connections are what the overlays ask for ([`Output::Connect`]):
//! killing a node tells every node connected to it, one latency later, that the
//! connection is lost (a closed TCP connection), and a message to a dead node comes
//! back as a lost connection to its sender (a refused dial). Every message is encoded
//! with postcard to count its bytes as the TCP driver would put them on the wire
//! (with the 4-byte length prefix), per sender and per message kind.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

use crate::frame::LENGTH_PREFIX;
use crate::overlay::{Delivery, Output, Overlay, PeerId};

enum Event<M> {
    Message {
        from: PeerId,
        to: PeerId,
        message: M,
    },
    Lost {
        at: PeerId,
        peer: PeerId,
    },
}

/// The simulated network and its nodes.
pub struct Simulation<O: Overlay> {
    nodes: BTreeMap<PeerId, O>,
    dead: BTreeSet<PeerId>,
    /// One side of a network partition (empty: none).
    cut: BTreeSet<PeerId>,
    links: BTreeSet<(PeerId, PeerId)>,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    events: BTreeMap<u64, Event<O::Message>>,
    next_event: u64,
    now: Duration,
    next_tick: Duration,
    latency: Duration,
    tick: Duration,
    kind: fn(&O::Message) -> &'static str,
    bytes_by_kind: BTreeMap<&'static str, u64>,
    bytes_by_node: BTreeMap<PeerId, u64>,
    deliveries: Vec<(PeerId, Delivery)>,
}

impl<O: Overlay> Simulation<O> {
    /// An empty network: messages take `latency`, timers run every `tick`; `kind` names
    /// a message's kind for [`Self::bytes_by_kind`].
    pub fn new(latency: Duration, tick: Duration, kind: fn(&O::Message) -> &'static str) -> Self {
        Self {
            nodes: BTreeMap::new(),
            dead: BTreeSet::new(),
            cut: BTreeSet::new(),
            links: BTreeSet::new(),
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            next_event: 0,
            now: Duration::ZERO,
            next_tick: Duration::ZERO,
            latency,
            tick,
            kind,
            bytes_by_kind: BTreeMap::new(),
            bytes_by_node: BTreeMap::new(),
            deliveries: Vec::new(),
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// One link's latency.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Adds a node (not yet joined).
    pub fn add(&mut self, node: O) {
        self.nodes.insert(node.local(), node);
    }

    /// The live nodes' ids, in order.
    pub fn alive(&self) -> Vec<PeerId> {
        self.nodes.keys().copied().collect()
    }

    /// A live node.
    pub fn node(&self, id: PeerId) -> Option<&O> {
        self.nodes.get(&id)
    }

    /// All live nodes.
    pub fn nodes(&self) -> impl Iterator<Item = &O> {
        self.nodes.values()
    }

    /// Node `id` joins through `contacts`.
    pub fn join(&mut self, id: PeerId, contacts: &[PeerId]) {
        let now = self.now;
        if let Some(node) = self.nodes.get_mut(&id) {
            node.join(contacts, now);
        }
        self.drain(id);
    }

    /// Node `id` broadcasts `payload`.
    pub fn broadcast(&mut self, id: PeerId, payload: bytes::Bytes) {
        let now = self.now;
        if let Some(node) = self.nodes.get_mut(&id) {
            node.broadcast(payload, now);
        }
        self.drain(id);
    }

    /// Node `id` forwards `payload` to `to`.
    pub fn forward(&mut self, id: PeerId, to: PeerId, payload: bytes::Bytes) {
        let now = self.now;
        if let Some(node) = self.nodes.get_mut(&id) {
            node.forward(to, payload, now);
        }
        self.drain(id);
    }

    /// Kills node `id`: it stops at once; its connections close.
    pub fn kill(&mut self, id: PeerId) {
        if self.nodes.remove(&id).is_none() {
            return;
        }
        self.dead.insert(id);
        let holders: Vec<PeerId> = self
            .links
            .iter()
            .filter(|(_, to)| *to == id)
            .map(|(from, _)| *from)
            .collect();
        self.links.retain(|(from, to)| *from != id && *to != id);
        for at in holders {
            self.schedule(self.latency, Event::Lost { at, peer: id });
        }
    }

    /// Partitions the network: `side` on one side, every other node on the other.
    /// Connections across the cut are lost at both ends (one latency later, as if their
    /// heartbeats timed out at once); messages across it come back as lost connections.
    pub fn partition(&mut self, side: BTreeSet<PeerId>) {
        self.cut = side;
        let across: Vec<(PeerId, PeerId)> = self
            .links
            .iter()
            .copied()
            .filter(|(a, b)| self.across(*a, *b))
            .collect();
        for (at, peer) in across {
            self.links.remove(&(at, peer));
            self.schedule(self.latency, Event::Lost { at, peer });
        }
    }

    /// Ends the partition.
    pub fn heal_partition(&mut self) {
        self.cut.clear();
    }

    /// Whether `a` and `b` are on different sides of the partition.
    fn across(&self, a: PeerId, b: PeerId) -> bool {
        !self.cut.is_empty() && self.cut.contains(&a) != self.cut.contains(&b)
    }

    /// Runs the network for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        loop {
            let next_event = self.queue.peek().map(|Reverse((at, _))| *at);
            let next = match next_event {
                Some(at) if at <= self.next_tick => at,
                _ => self.next_tick,
            };
            if next > end {
                self.now = end;
                return;
            }
            self.now = next;
            if next_event == Some(next) {
                if let Some(Reverse((_, seq))) = self.queue.pop() {
                    if let Some(event) = self.events.remove(&seq) {
                        self.handle(event);
                    }
                }
            } else {
                self.next_tick = self.now + self.tick;
                let now = self.now;
                for id in self.alive() {
                    if let Some(node) = self.nodes.get_mut(&id) {
                        node.tick(now);
                    }
                    self.drain(id);
                }
            }
        }
    }

    /// Takes the deliveries made so far: (receiver, delivery).
    pub fn take_deliveries(&mut self) -> Vec<(PeerId, Delivery)> {
        std::mem::take(&mut self.deliveries)
    }

    /// Encoded bytes sent per message kind since the start (or the last reset).
    pub fn bytes_by_kind(&self) -> &BTreeMap<&'static str, u64> {
        &self.bytes_by_kind
    }

    /// Encoded bytes sent per node since the start (or the last reset).
    pub fn bytes_by_node(&self) -> &BTreeMap<PeerId, u64> {
        &self.bytes_by_node
    }

    /// Zeroes the byte counters.
    pub fn reset_bytes(&mut self) {
        self.bytes_by_kind.clear();
        self.bytes_by_node.clear();
    }

    /// Whether the live nodes' connections form one connected graph.
    pub fn connected(&self) -> bool {
        self.components() <= 1
    }

    /// How many connected components the live nodes' connections form.
    pub fn components(&self) -> usize {
        let mut seen = BTreeSet::new();
        let mut components = 0;
        for &start in self.nodes.keys() {
            if !seen.insert(start) {
                continue;
            }
            components += 1;
            let mut stack = vec![start];
            while let Some(id) = stack.pop() {
                if let Some(node) = self.nodes.get(&id) {
                    for peer in node.connections() {
                        if self.nodes.contains_key(&peer) && seen.insert(peer) {
                            stack.push(peer);
                        }
                    }
                }
            }
        }
        components
    }

    fn schedule(&mut self, after: Duration, event: Event<O::Message>) {
        let seq = self.next_event;
        self.next_event += 1;
        self.events.insert(seq, event);
        self.queue.push(Reverse((self.now + after, seq)));
    }

    fn handle(&mut self, event: Event<O::Message>) {
        let now = self.now;
        match event {
            Event::Message { from, to, message } => {
                if self.across(from, to) {
                    self.schedule(self.latency, Event::Lost { at: from, peer: to });
                } else if let Some(node) = self.nodes.get_mut(&to) {
                    node.handle_message(from, message, now);
                    self.drain(to);
                } else if self.nodes.contains_key(&from) {
                    self.schedule(self.latency, Event::Lost { at: from, peer: to });
                }
            }
            Event::Lost { at, peer } => {
                if let Some(node) = self.nodes.get_mut(&at) {
                    node.connection_lost(peer, now);
                    self.drain(at);
                }
            }
        }
    }

    /// Carries out node `id`'s outputs.
    fn drain(&mut self, id: PeerId) {
        loop {
            let Some(output) = self.nodes.get_mut(&id).and_then(|n| n.poll_output()) else {
                return;
            };
            match output {
                Output::Send { to, message } => {
                    // As the driver frames it: length prefix, `Frame::Overlay`'s tag byte.
                    let size = postcard::experimental::serialized_size(&message).unwrap_or(0)
                        + LENGTH_PREFIX
                        + 1;
                    *self.bytes_by_kind.entry((self.kind)(&message)).or_default() += size as u64;
                    *self.bytes_by_node.entry(id).or_default() += size as u64;
                    if self.dead.contains(&to)
                        || !self.nodes.contains_key(&to)
                        || self.across(id, to)
                    {
                        self.schedule(self.latency, Event::Lost { at: id, peer: to });
                    } else {
                        self.schedule(
                            self.latency,
                            Event::Message {
                                from: id,
                                to,
                                message,
                            },
                        );
                    }
                }
                Output::Connect(peer) => {
                    if self.nodes.contains_key(&peer) && !self.across(id, peer) {
                        self.links.insert((id, peer));
                    } else {
                        self.schedule(self.latency, Event::Lost { at: id, peer });
                    }
                }
                Output::Disconnect(peer) => {
                    self.links.remove(&(id, peer));
                }
                Output::Deliver(delivery) => self.deliveries.push((id, delivery)),
            }
        }
    }
}
