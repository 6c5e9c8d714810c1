//! Plumtree, epidemic broadcast trees (Leitão, Pereira, Rodrigues, SRDS 2007), as a
//! sans-IO state machine over the neighbours its owner gives it.
//!
//! One job: deliver every broadcast to every node, sending the payload about once per
//! node. For each origin (the root of a tree, as in Partisan's and Riak's plumtree)
//! each node splits its neighbours into **eager** ones (the payload is pushed to them
//! at once) and **lazy** ones (they only get the message's id in an `IHave`).
//!
//! - A new neighbour starts eager in every tree, and a new origin's tree starts with
//!   every neighbour eager. A payload received a second time means a cycle: the sender
//!   becomes lazy for that origin and is told `Prune`, so the eager links settle into a
//!   spanning tree per origin and a payload crosses about n − 1 links. Trees are kept
//!   per origin because one shared set of eager links, pruned by concurrent broadcasts
//!   from different origins, falls apart: two prunes on one cycle disconnect it, and
//!   the broadcasts then crawl along grafts (measured: at 1,024 nodes with 16
//!   concurrent origins a second, hundreds of grafts per broadcast and 3 s to reach
//!   everyone; per-origin trees need none once formed). The price: an origin's first
//!   broadcast floods every active link.
//! - Ids for lazy neighbours are queued and sent in one `IHave` per neighbour every
//!   [`PlumtreeConfig::lazy_interval`] (batched, so their cost per message is a few
//!   bytes, not a frame).
//! - An id announced but not received within [`PlumtreeConfig::graft_timeout`] starts
//!   the repair: the node sends `Graft` to the first announcer, which makes that link
//!   eager and resends the payload; if that does not arrive within
//!   [`PlumtreeConfig::graft_retry`], the next announcer is asked. This is how the tree
//!   heals when a node on it fails.
//! - Received payloads are kept for [`PlumtreeConfig::cache_ttl`] to answer grafts;
//!   received ids for [`PlumtreeConfig::seen_ttl`] to recognise duplicates. An origin's
//!   tree (and its upstream) is forgotten once none of its ids is remembered any more,
//!   so origins a neighbour names (in gossip, grafts or prunes) cannot grow the state
//!   without bound; an origin that broadcasts again after that builds its tree anew.
//!
//! The node also remembers, per origin, the neighbour that first delivered that
//! origin's payloads ([`Plumtree::upstream`]): the next hop towards the origin along its
//! tree, which [`crate::PeerToPeer`] uses to forward a message to a member it is not
//! connected to.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::overlay::PeerId;

/// Plumtree's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlumtreeConfig {
    /// How often queued ids are sent to lazy neighbours.
    pub lazy_interval: Duration,
    /// How long an announced id may stay missing before the first graft.
    pub graft_timeout: Duration,
    /// How long a graft may go unanswered before the next announcer is asked.
    pub graft_retry: Duration,
    /// How long received payloads are kept for grafts.
    pub cache_ttl: Duration,
    /// How long received ids are remembered to drop duplicates.
    pub seen_ttl: Duration,
}

impl Default for PlumtreeConfig {
    /// IHaves every 250 ms, graft after 750 ms (then 500 ms per further announcer),
    /// payloads kept 30 s and ids 120 s. The IHave interval trades repair time for
    /// frames: each lazy link carries at most one IHave per interval, so at 1,024 nodes
    /// with ~7 lazy links each, 100 ms meant ~70,000 IHave frames a second.
    fn default() -> Self {
        Self {
            lazy_interval: Duration::from_millis(250),
            graft_timeout: Duration::from_millis(750),
            graft_retry: Duration::from_millis(500),
            cache_ttl: Duration::from_secs(30),
            seen_ttl: Duration::from_secs(120),
        }
    }
}

/// A broadcast's identity: its origin and the origin's sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId {
    /// The node that broadcast it.
    pub origin: PeerId,
    /// Its number among the origin's broadcasts.
    pub seq: u64,
}

/// Plumtree's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlumtreeMessage {
    /// Eager push of a payload.
    Gossip {
        /// The broadcast.
        id: MessageId,
        /// Hops from the origin.
        round: u16,
        /// Only this member delivers it (the others relay it); `None`: everyone.
        to: Option<PeerId>,
        /// The payload.
        payload: Bytes,
    },
    /// Lazy push: ids the sender has, with their rounds.
    IHave {
        /// The announcements.
        ids: Vec<(MessageId, u16)>,
    },
    /// "Send me this payload, and push eagerly to me from now on".
    Graft {
        /// The missing broadcast.
        id: MessageId,
    },
    /// "Stop pushing this origin's broadcasts eagerly to me".
    Prune {
        /// The tree's root.
        origin: PeerId,
    },
}

/// What Plumtree asks of its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlumtreeOutput {
    /// Send a message to a neighbour.
    Send {
        /// The neighbour.
        to: PeerId,
        /// The message.
        message: PlumtreeMessage,
    },
    /// A broadcast arrived for the first time.
    Deliver {
        /// The broadcast.
        id: MessageId,
        /// Its addressee, if it was forwarded to one member.
        to: Option<PeerId>,
        /// The payload.
        payload: Bytes,
    },
}

/// Counters of one node's Plumtree traffic (messages, not bytes: the owner encodes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlumtreeStats {
    /// Payloads pushed eagerly (including answers to grafts).
    pub gossip_sent: u64,
    /// IHave messages sent.
    pub ihave_sent: u64,
    /// Grafts sent.
    pub graft_sent: u64,
    /// Prunes sent.
    pub prune_sent: u64,
    /// Payloads received that were already delivered.
    pub duplicates: u64,
}

/// A broadcast announced by lazy neighbours but not received yet.
struct Missing {
    announcers: VecDeque<PeerId>,
    deadline: Duration,
}

/// One origin's tree at this node: which neighbours get its payloads, which its ids.
struct Tree {
    eager: Vec<PeerId>,
    lazy: Vec<PeerId>,
}

/// A received broadcast.
struct Received {
    at: Duration,
    round: u16,
    to: Option<PeerId>,
    payload: Option<Bytes>,
}

/// The Plumtree state of one node.
pub struct Plumtree {
    me: PeerId,
    config: PlumtreeConfig,
    neighbors: Vec<PeerId>,
    trees: HashMap<PeerId, Tree>,
    received: HashMap<MessageId, Received>,
    missing: BTreeMap<MessageId, Missing>,
    lazy_queue: BTreeMap<PeerId, Vec<(MessageId, u16)>>,
    upstream: HashMap<PeerId, PeerId>,
    next_seq: u64,
    next_flush: Duration,
    next_gc: Duration,
    stats: PlumtreeStats,
    out: VecDeque<PlumtreeOutput>,
}

impl Plumtree {
    /// A node `me` with no neighbours yet.
    pub fn new(me: PeerId, config: PlumtreeConfig) -> Self {
        Self {
            me,
            config,
            neighbors: Vec::new(),
            trees: HashMap::new(),
            received: HashMap::new(),
            missing: BTreeMap::new(),
            lazy_queue: BTreeMap::new(),
            upstream: HashMap::new(),
            next_seq: 0,
            next_flush: Duration::ZERO,
            next_gc: Duration::ZERO,
            stats: PlumtreeStats::default(),
            out: VecDeque::new(),
        }
    }

    /// The neighbours.
    pub fn neighbors(&self) -> &[PeerId] {
        &self.neighbors
    }

    /// The eager-push neighbours of `origin`'s tree (all neighbours until its first
    /// broadcast shapes it).
    pub fn eager_peers(&self, origin: PeerId) -> Vec<PeerId> {
        match self.trees.get(&origin) {
            Some(tree) => tree.eager.clone(),
            None => self.neighbors.clone(),
        }
    }

    /// The lazy-push neighbours of `origin`'s tree.
    pub fn lazy_peers(&self, origin: PeerId) -> Vec<PeerId> {
        self.trees
            .get(&origin)
            .map(|tree| tree.lazy.clone())
            .unwrap_or_default()
    }

    /// How many origins' trees this node keeps (its own included once it broadcast).
    pub fn origins(&self) -> usize {
        self.trees.len()
    }

    /// The traffic counters.
    pub fn stats(&self) -> PlumtreeStats {
        self.stats
    }

    /// The neighbour that first delivered `origin`'s latest broadcast: the next hop
    /// towards `origin` along its tree, if it is still a neighbour.
    pub fn upstream(&self, origin: PeerId) -> Option<PeerId> {
        self.upstream
            .get(&origin)
            .copied()
            .filter(|p| self.neighbors.contains(p))
    }

    /// The next output, oldest first.
    pub fn poll_output(&mut self) -> Option<PlumtreeOutput> {
        self.out.pop_front()
    }

    /// A new neighbour: pushed to eagerly in every tree until it prunes.
    pub fn neighbor_up(&mut self, peer: PeerId) {
        if peer != self.me && !self.neighbors.contains(&peer) {
            self.neighbors.push(peer);
            for tree in self.trees.values_mut() {
                tree.eager.push(peer);
            }
        }
    }

    /// A neighbour is gone: forget it, and its announcements.
    pub fn neighbor_down(&mut self, peer: PeerId) {
        self.neighbors.retain(|p| *p != peer);
        for tree in self.trees.values_mut() {
            tree.eager.retain(|p| *p != peer);
            tree.lazy.retain(|p| *p != peer);
        }
        self.lazy_queue.remove(&peer);
        for missing in self.missing.values_mut() {
            missing.announcers.retain(|p| *p != peer);
        }
    }

    /// Broadcasts `payload` from this node (to `to` only, if given; the others relay).
    /// Returns its id.
    pub fn broadcast(&mut self, payload: Bytes, to: Option<PeerId>, now: Duration) -> MessageId {
        let id = MessageId {
            origin: self.me,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.received.insert(
            id,
            Received {
                at: now,
                round: 0,
                to,
                payload: Some(payload.clone()),
            },
        );
        self.push(id, 0, to, &payload, None);
        id
    }

    /// A message from neighbour `from` arrived.
    pub fn handle_message(&mut self, from: PeerId, message: PlumtreeMessage, now: Duration) {
        match message {
            PlumtreeMessage::Gossip {
                id,
                round,
                to,
                payload,
            } => self.on_gossip(from, id, round, to, payload, now),
            PlumtreeMessage::IHave { ids } => {
                for (id, _round) in ids {
                    if self.received.contains_key(&id) {
                        continue;
                    }
                    let deadline = now + self.config.graft_timeout;
                    let missing = self.missing.entry(id).or_insert_with(|| Missing {
                        announcers: VecDeque::new(),
                        deadline,
                    });
                    if !missing.announcers.contains(&from) {
                        missing.announcers.push_back(from);
                    }
                }
            }
            PlumtreeMessage::Graft { id } => {
                self.make_eager(id.origin, from);
                if let Some(r) = self.received.get(&id) {
                    if let Some(payload) = r.payload.clone() {
                        let message = PlumtreeMessage::Gossip {
                            id,
                            round: r.round.saturating_add(1),
                            to: r.to,
                            payload,
                        };
                        self.stats.gossip_sent += 1;
                        self.send(from, message);
                    }
                }
            }
            PlumtreeMessage::Prune { origin } => self.make_lazy(origin, from),
        }
    }

    /// Runs the timers: flushes IHaves, grafts missing broadcasts, forgets old ones.
    pub fn tick(&mut self, now: Duration) {
        if now >= self.next_flush {
            self.next_flush = now + self.config.lazy_interval;
            for (to, ids) in std::mem::take(&mut self.lazy_queue) {
                if !ids.is_empty() {
                    self.stats.ihave_sent += 1;
                    self.send(to, PlumtreeMessage::IHave { ids });
                }
            }
        }
        let due: Vec<MessageId> = self
            .missing
            .iter()
            .filter(|(_, m)| now >= m.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(missing) = self.missing.get_mut(&id) else {
                continue;
            };
            match missing.announcers.pop_front() {
                Some(peer) => {
                    missing.deadline = now + self.config.graft_retry;
                    self.make_eager(id.origin, peer);
                    self.stats.graft_sent += 1;
                    self.send(peer, PlumtreeMessage::Graft { id });
                }
                None => {
                    self.missing.remove(&id);
                }
            }
        }
        if now >= self.next_gc {
            self.next_gc = now + Duration::from_secs(1);
            let (cache, seen) = (self.config.cache_ttl, self.config.seen_ttl);
            self.received.retain(|_, r| {
                if now.saturating_sub(r.at) > cache {
                    r.payload = None;
                }
                now.saturating_sub(r.at) <= seen
            });
            let live: std::collections::HashSet<PeerId> =
                self.received.keys().map(|id| id.origin).collect();
            let me = self.me;
            self.trees
                .retain(|origin, _| *origin == me || live.contains(origin));
            self.upstream.retain(|origin, _| live.contains(origin));
        }
    }

    fn on_gossip(
        &mut self,
        from: PeerId,
        id: MessageId,
        round: u16,
        to: Option<PeerId>,
        payload: Bytes,
        now: Duration,
    ) {
        if self.received.contains_key(&id) || id.origin == self.me {
            self.stats.duplicates += 1;
            if self.tree(id.origin).eager.contains(&from) {
                self.make_lazy(id.origin, from);
                self.stats.prune_sent += 1;
                let origin = id.origin;
                self.send(from, PlumtreeMessage::Prune { origin });
            }
            return;
        }
        self.missing.remove(&id);
        self.make_eager(id.origin, from);
        self.upstream.insert(id.origin, from);
        self.received.insert(
            id,
            Received {
                at: now,
                round,
                to,
                payload: Some(payload.clone()),
            },
        );
        self.out.push_back(PlumtreeOutput::Deliver {
            id,
            to,
            payload: payload.clone(),
        });
        if to != Some(self.me) {
            self.push(id, round.saturating_add(1), to, &payload, Some(from));
        }
    }

    /// Eager push to the eager neighbours, ids queued for the lazy ones (`except` the
    /// one it came from).
    fn push(
        &mut self,
        id: MessageId,
        round: u16,
        to: Option<PeerId>,
        payload: &Bytes,
        except: Option<PeerId>,
    ) {
        let tree = self.tree(id.origin);
        let (eager, lazy) = (tree.eager.clone(), tree.lazy.clone());
        for peer in eager {
            if Some(peer) != except {
                self.stats.gossip_sent += 1;
                let message = PlumtreeMessage::Gossip {
                    id,
                    round,
                    to,
                    payload: payload.clone(),
                };
                self.send(peer, message);
            }
        }
        for peer in lazy {
            if Some(peer) != except {
                self.lazy_queue.entry(peer).or_default().push((id, round));
            }
        }
    }

    /// `origin`'s tree, made with every neighbour eager if new.
    fn tree(&mut self, origin: PeerId) -> &mut Tree {
        let neighbors = &self.neighbors;
        self.trees.entry(origin).or_insert_with(|| Tree {
            eager: neighbors.clone(),
            lazy: Vec::new(),
        })
    }

    fn make_eager(&mut self, origin: PeerId, peer: PeerId) {
        if !self.neighbors.contains(&peer) {
            return;
        }
        let tree = self.tree(origin);
        tree.lazy.retain(|p| *p != peer);
        if !tree.eager.contains(&peer) {
            tree.eager.push(peer);
        }
    }

    fn make_lazy(&mut self, origin: PeerId, peer: PeerId) {
        if !self.neighbors.contains(&peer) {
            return;
        }
        let tree = self.tree(origin);
        tree.eager.retain(|p| *p != peer);
        if !tree.lazy.contains(&peer) {
            tree.lazy.push(peer);
        }
    }

    fn send(&mut self, to: PeerId, message: PlumtreeMessage) {
        self.out.push_back(PlumtreeOutput::Send { to, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(i: u16) -> PeerId {
        PeerId::from(([127, 0, 0, 1], i))
    }

    fn drain(pt: &mut Plumtree) -> Vec<PlumtreeOutput> {
        std::iter::from_fn(|| pt.poll_output()).collect()
    }

    fn gossip(origin: u16, seq: u64) -> PlumtreeMessage {
        PlumtreeMessage::Gossip {
            id: MessageId {
                origin: peer(origin),
                seq,
            },
            round: 0,
            to: None,
            payload: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn origins_a_neighbour_names_are_forgotten_with_their_ids() {
        let config = PlumtreeConfig::default();
        let mut pt = Plumtree::new(peer(1), config.clone());
        pt.neighbor_up(peer(2));
        for origin in 100..1_100 {
            pt.handle_message(peer(2), gossip(origin, 0), Duration::ZERO);
            pt.handle_message(
                peer(2),
                PlumtreeMessage::Prune {
                    origin: peer(origin + 2_000),
                },
                Duration::ZERO,
            );
        }
        drain(&mut pt);
        assert_eq!(pt.origins(), 2_000);
        assert!(pt.upstream(peer(100)).is_some());
        // Within the seen window the gossiped origins stay; the pruned-only ones, with
        // no id remembered, go at the first collection.
        pt.tick(Duration::from_secs(1));
        assert_eq!(pt.origins(), 1_000);
        pt.tick(config.seen_ttl + Duration::from_secs(2));
        drain(&mut pt);
        assert_eq!(pt.origins(), 0);
        assert_eq!(pt.upstream(peer(100)), None);
    }

    #[test]
    fn a_duplicate_prunes_its_sender_to_lazy() {
        let mut pt = Plumtree::new(peer(1), PlumtreeConfig::default());
        pt.neighbor_up(peer(2));
        pt.neighbor_up(peer(3));
        pt.handle_message(peer(2), gossip(9, 0), Duration::ZERO);
        let out = drain(&mut pt);
        assert!(matches!(out[0], PlumtreeOutput::Deliver { .. }));
        assert!(out.contains(&PlumtreeOutput::Send {
            to: peer(3),
            message: gossip_round(9, 0, 1)
        }));
        pt.handle_message(peer(3), gossip(9, 0), Duration::ZERO);
        assert_eq!(
            drain(&mut pt),
            vec![PlumtreeOutput::Send {
                to: peer(3),
                message: PlumtreeMessage::Prune { origin: peer(9) }
            }]
        );
        assert_eq!(pt.eager_peers(peer(9)), vec![peer(2)]);
        assert_eq!(pt.lazy_peers(peer(9)), vec![peer(3)]);
        // Another origin's tree is untouched.
        assert_eq!(pt.eager_peers(peer(8)), vec![peer(2), peer(3)]);
    }

    fn gossip_round(origin: u16, seq: u64, round: u16) -> PlumtreeMessage {
        match gossip(origin, seq) {
            PlumtreeMessage::Gossip {
                id, to, payload, ..
            } => PlumtreeMessage::Gossip {
                id,
                round,
                to,
                payload,
            },
            other => other,
        }
    }

    #[test]
    fn ihaves_are_batched_per_lazy_neighbour() {
        let mut pt = Plumtree::new(peer(1), PlumtreeConfig::default());
        pt.neighbor_up(peer(2));
        let prune = PlumtreeMessage::Prune { origin: peer(1) };
        pt.handle_message(peer(2), prune, Duration::ZERO);
        for _ in 0..3 {
            pt.broadcast(Bytes::from_static(b"p"), None, Duration::ZERO);
        }
        assert!(drain(&mut pt).is_empty());
        pt.tick(Duration::ZERO);
        let out = drain(&mut pt);
        assert_eq!(out.len(), 1);
        assert!(
            matches!(&out[0], PlumtreeOutput::Send { message: PlumtreeMessage::IHave { ids }, .. } if ids.len() == 3)
        );
    }

    #[test]
    fn a_missing_announced_id_is_grafted_from_the_announcer() {
        let mut pt = Plumtree::new(peer(1), PlumtreeConfig::default());
        pt.neighbor_up(peer(2));
        let prune = PlumtreeMessage::Prune { origin: peer(7) };
        pt.handle_message(peer(2), prune, Duration::ZERO);
        let id = MessageId {
            origin: peer(7),
            seq: 4,
        };
        pt.handle_message(
            peer(2),
            PlumtreeMessage::IHave { ids: vec![(id, 3)] },
            Duration::ZERO,
        );
        pt.tick(Duration::from_millis(100));
        drain(&mut pt);
        pt.tick(Duration::from_millis(800));
        assert!(drain(&mut pt).contains(&PlumtreeOutput::Send {
            to: peer(2),
            message: PlumtreeMessage::Graft { id }
        }));
        assert_eq!(pt.eager_peers(peer(7)), vec![peer(2)]);
    }
}
