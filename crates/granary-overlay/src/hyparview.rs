//! HyParView membership (Leitão, Pereira, Rodrigues, DSN 2007) as a sans-IO state
//! machine.
//!
//! Each node keeps a small symmetric **active view** (the members it holds open
//! connections to, and the only ones broadcasts travel over) and a larger **passive
//! view** (addresses it knows, kept fresh by shuffles, from which it replaces failed
//! active members). One job: keep the active views symmetric, bounded and connected.
//!
//! - A joining node sends `Join` to a contact; the contact adds it to its active view
//!   (dropping a random member if full), welcomes it, and sends `ForwardJoin` with
//!   time-to-live [`HyParViewConfig::active_walk`] (ARWL) to its other active members.
//!   A forward-join walks at random; it adds the joiner to the passive view where its
//!   TTL equals [`HyParViewConfig::passive_walk`] (PRWL) and to the active view where
//!   it ends (TTL 0, or a node with a single active member).
//! - `Welcome` tells a member "you are in my active view": it adds the sender too, so
//!   views stay symmetric. `Disconnect` is the opposite: the receiver moves the
//!   sender to its passive view.
//! - When an active member fails (connection lost, or no `KeepAlive` for
//!   [`HyParViewConfig::failure_timeout`]) the node asks a random passive member to
//!   become a `Neighbor`, with high priority when its active view is empty (always
//!   accepted, dropping a random member if full) and low priority otherwise (accepted
//!   only with a free slot). A refused or unreachable candidate is replaced by another.
//!   Below capacity it keeps asking, one request at a time, first after a keep-alive
//!   interval and, while requests are refused, at doubling intervals up to the shuffle
//!   interval (so a node that cannot fill its view does not keep dialling full ones).
//! - Every [`HyParViewConfig::shuffle_interval`] a node sends a `Shuffle` of itself,
//!   [`HyParViewConfig::shuffle_active`] active and [`HyParViewConfig::shuffle_passive`]
//!   passive members on a random walk; where it ends, the receiver answers with as many
//!   of its passive members and both merge what they got into their passive views.
//! - `KeepAlive` goes to every active member each
//!   [`HyParViewConfig::keepalive_interval`]; one from a node that is not in the
//!   receiver's active view is answered with `Disconnect`, which repairs the rare
//!   asymmetry a `Welcome` crossing a `Disconnect` leaves behind.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::overlay::PeerId;

/// HyParView's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HyParViewConfig {
    /// Most members in the active view (the paper: log10(n) + 1; here see
    /// [`Self::for_cluster_size`]).
    pub active_capacity: usize,
    /// Most members in the passive view (the paper: k · (log10(n) + 1), k = 6).
    pub passive_capacity: usize,
    /// ARWL: the forward-join random walk's length.
    pub active_walk: u8,
    /// PRWL: the walk step at which the joiner enters the passive view.
    pub passive_walk: u8,
    /// Active members sent in a shuffle (ka).
    pub shuffle_active: usize,
    /// Passive members sent in a shuffle (kp).
    pub shuffle_passive: usize,
    /// Time between two shuffles.
    pub shuffle_interval: Duration,
    /// Time between two keep-alives to each active member.
    pub keepalive_interval: Duration,
    /// An active member not heard from for this long has failed.
    pub failure_timeout: Duration,
    /// A neighbour request without an answer for this long is given up.
    pub neighbor_timeout: Duration,
}

impl Default for HyParViewConfig {
    /// The paper's values for about 10,000 nodes: active 5, passive 30, ARWL 6,
    /// PRWL 3; shuffles of 3 + 4 every 10 s; keep-alives every second, failure after 5 s.
    fn default() -> Self {
        Self {
            active_capacity: 5,
            passive_capacity: 30,
            active_walk: 6,
            passive_walk: 3,
            shuffle_active: 3,
            shuffle_passive: 4,
            shuffle_interval: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(1),
            failure_timeout: Duration::from_secs(5),
            neighbor_timeout: Duration::from_secs(2),
        }
    }
}

impl HyParViewConfig {
    /// Views sized for `n` members: active ⌈log2 n⌉ + 1 capped at 8 (so at 1,024 nodes
    /// no node holds more than 8 connections), passive 6 × active; other values as
    /// [`Default`].
    pub fn for_cluster_size(n: usize) -> Self {
        let log2 = usize::BITS - n.max(2).saturating_sub(1).leading_zeros();
        let active = (log2 as usize + 1).clamp(2, 8);
        Self {
            active_capacity: active,
            passive_capacity: 6 * active,
            ..Self::default()
        }
    }
}

/// HyParView's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HyParViewMessage {
    /// "Let me in": sent by a joining node to its contact.
    Join,
    /// A random walk spreading a joiner.
    ForwardJoin {
        /// The joining node.
        joiner: PeerId,
        /// Steps left.
        ttl: u8,
    },
    /// "You are in my active view": add the sender to yours.
    Welcome,
    /// "Take me into your active view".
    Neighbor {
        /// Must be accepted (the sender's active view is empty).
        high_priority: bool,
    },
    /// The answer to [`Self::Neighbor`].
    NeighborReply {
        /// Whether the sender added the requester to its active view.
        accepted: bool,
    },
    /// "You are no longer in my active view".
    Disconnect,
    /// "I am alive" to an active member.
    KeepAlive,
    /// A sample of members on a random walk.
    Shuffle {
        /// The node that started the shuffle (the reply goes there).
        origin: PeerId,
        /// Steps left.
        ttl: u8,
        /// The origin and some of its active and passive members.
        peers: Vec<PeerId>,
    },
    /// The answer to a shuffle: some of the receiver's passive members.
    ShuffleReply {
        /// The members.
        peers: Vec<PeerId>,
    },
}

/// What HyParView asks of its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HyParViewOutput {
    /// Send a message.
    Send {
        /// The receiver.
        to: PeerId,
        /// The message.
        message: HyParViewMessage,
    },
    /// A member entered the active view: keep a connection to it.
    NeighborUp(PeerId),
    /// A member left the active view.
    NeighborDown(PeerId),
}

/// The HyParView state of one node.
pub struct HyParView {
    me: PeerId,
    config: HyParViewConfig,
    active: Vec<PeerId>,
    passive: Vec<PeerId>,
    /// When each active member was last heard from.
    heard: BTreeMap<PeerId, Duration>,
    /// The neighbour request in flight and when it is given up.
    pending: Option<(PeerId, Duration)>,
    /// What the last shuffle sent (replaced first when the reply arrives).
    shuffled: Vec<PeerId>,
    next_shuffle: Duration,
    next_keepalive: Duration,
    next_fill: Duration,
    fill_backoff: Duration,
    contacts: Vec<PeerId>,
    rng: SmallRng,
    out: VecDeque<HyParViewOutput>,
}

impl HyParView {
    /// A node `me` with `config`; `seed` seeds its random choices (use a distinct seed
    /// per node, e.g. derived from the address, for reproducible simulations). View
    /// capacities below 1 are taken as 1.
    pub fn new(me: PeerId, mut config: HyParViewConfig, seed: u64) -> Self {
        config.active_capacity = config.active_capacity.max(1);
        config.passive_capacity = config.passive_capacity.max(1);
        let mut rng = SmallRng::seed_from_u64(seed);
        // Spread the first shuffles so a thousand nodes started together do not shuffle
        // in the same instant.
        let jitter = rng.random_range(0..=config.shuffle_interval.as_millis() as u64);
        Self {
            me,
            active: Vec::new(),
            passive: Vec::new(),
            heard: BTreeMap::new(),
            pending: None,
            shuffled: Vec::new(),
            next_shuffle: Duration::from_millis(jitter),
            next_keepalive: Duration::ZERO,
            next_fill: Duration::ZERO,
            fill_backoff: config.keepalive_interval,
            contacts: Vec::new(),
            rng,
            out: VecDeque::new(),
            config,
        }
    }

    /// This node.
    pub fn local(&self) -> PeerId {
        self.me
    }

    /// The parameters.
    pub fn config(&self) -> &HyParViewConfig {
        &self.config
    }

    /// The active view.
    pub fn active_view(&self) -> &[PeerId] {
        &self.active
    }

    /// The passive view.
    pub fn passive_view(&self) -> &[PeerId] {
        &self.passive
    }

    /// The next output, oldest first.
    pub fn poll_output(&mut self) -> Option<HyParViewOutput> {
        self.out.pop_front()
    }

    /// Joins through the first of `contacts` (none: this node is the first member).
    /// The others are kept in the passive view; all are retried when the views empty.
    pub fn join(&mut self, contacts: &[PeerId], now: Duration) {
        self.contacts = contacts.iter().copied().filter(|c| *c != self.me).collect();
        for c in self.contacts.clone().into_iter().skip(1) {
            self.add_passive(c);
        }
        if let Some(&first) = self.contacts.first() {
            self.send(first, HyParViewMessage::Join);
            self.pending = Some((first, now + self.config.neighbor_timeout));
        }
    }

    /// A message from `from` arrived.
    pub fn handle_message(&mut self, from: PeerId, message: HyParViewMessage, now: Duration) {
        if from == self.me {
            return;
        }
        if let Some(heard) = self.heard.get_mut(&from) {
            *heard = now;
        }
        match message {
            HyParViewMessage::Join => self.on_join(from, now),
            HyParViewMessage::ForwardJoin { joiner, ttl } => {
                self.on_forward_join(from, joiner, ttl, now)
            }
            HyParViewMessage::Welcome => {
                if self.pending.is_some_and(|(p, _)| p == from) {
                    self.pending = None;
                }
                self.add_active(from, now);
            }
            HyParViewMessage::Neighbor { high_priority } => {
                let accepted = self.active.contains(&from)
                    || high_priority
                    || self.active.len() < self.config.active_capacity;
                if accepted {
                    self.add_active(from, now);
                } else {
                    self.add_passive(from);
                }
                self.send(from, HyParViewMessage::NeighborReply { accepted });
            }
            HyParViewMessage::NeighborReply { accepted } => {
                if self.pending.is_some_and(|(p, _)| p == from) {
                    self.pending = None;
                }
                if accepted {
                    self.fill_backoff = self.config.keepalive_interval;
                    self.add_active(from, now);
                } else {
                    // Refused: the next candidate is asked on the fill timer, not at
                    // once, so full views do not bounce requests at network speed.
                    self.fill_backoff = (self.fill_backoff * 2).min(self.config.shuffle_interval);
                    self.add_passive(from);
                }
            }
            HyParViewMessage::Disconnect => {
                if self.remove_active(from) {
                    self.add_passive(from);
                }
            }
            HyParViewMessage::KeepAlive => {
                if !self.active.contains(&from) {
                    self.send(from, HyParViewMessage::Disconnect);
                }
            }
            HyParViewMessage::Shuffle { origin, ttl, peers } => {
                self.on_shuffle(from, origin, ttl, peers)
            }
            HyParViewMessage::ShuffleReply { peers } => {
                let sent = std::mem::take(&mut self.shuffled);
                self.merge_passive(&peers, &sent);
            }
        }
    }

    /// The connection to `peer` is gone (closed, timed out or never opened).
    pub fn connection_lost(&mut self, peer: PeerId, now: Duration) {
        self.passive.retain(|p| *p != peer);
        if self.pending.is_some_and(|(p, _)| p == peer) {
            self.pending = None;
        }
        self.remove_active(peer);
        self.request_neighbor(now);
    }

    /// Runs the timers: keep-alives and failure timeouts, shuffles, neighbour requests.
    pub fn tick(&mut self, now: Duration) {
        let timeout = self.config.failure_timeout;
        let silent: Vec<PeerId> = self
            .heard
            .iter()
            .filter(|(_, at)| now.saturating_sub(**at) > timeout)
            .map(|(p, _)| *p)
            .collect();
        for peer in silent {
            tracing::debug!(me = %self.me, %peer, "active member silent: failed");
            self.connection_lost(peer, now);
        }
        if now >= self.next_keepalive {
            self.next_keepalive = now + self.config.keepalive_interval;
            for to in self.active.clone() {
                self.send(to, HyParViewMessage::KeepAlive);
            }
        }
        if self.pending.is_some_and(|(_, deadline)| now >= deadline) {
            if let Some((peer, _)) = self.pending.take() {
                self.passive.retain(|p| *p != peer);
            }
        }
        if now >= self.next_shuffle {
            self.next_shuffle = now + self.config.shuffle_interval;
            self.start_shuffle();
        }
        if self.active.is_empty() && self.passive.is_empty() && self.pending.is_none() {
            // Alone: try the contacts again (a restarted cluster, or every member lost).
            if let Some(&contact) = self.contacts.choose(&mut self.rng) {
                self.send(contact, HyParViewMessage::Join);
                self.pending = Some((contact, now + self.config.neighbor_timeout));
            }
        }
        if now >= self.next_fill {
            self.next_fill = now + self.fill_backoff;
            self.request_neighbor(now);
        }
    }

    fn on_join(&mut self, joiner: PeerId, now: Duration) {
        self.add_active(joiner, now);
        self.send(joiner, HyParViewMessage::Welcome);
        let ttl = self.config.active_walk;
        for to in self.active.clone() {
            if to != joiner {
                self.send(to, HyParViewMessage::ForwardJoin { joiner, ttl });
            }
        }
    }

    fn on_forward_join(&mut self, from: PeerId, joiner: PeerId, ttl: u8, now: Duration) {
        if joiner == self.me {
            return;
        }
        if ttl == 0 || self.active.len() <= 1 {
            self.accept(joiner, now);
            return;
        }
        if ttl == self.config.passive_walk {
            self.add_passive(joiner);
        }
        let next: Vec<PeerId> = self
            .active
            .iter()
            .copied()
            .filter(|p| *p != from && *p != joiner)
            .collect();
        match next.choose(&mut self.rng) {
            Some(&to) => self.send(
                to,
                HyParViewMessage::ForwardJoin {
                    joiner,
                    ttl: ttl - 1,
                },
            ),
            None => self.accept(joiner, now),
        }
    }

    /// Ends a forward-join here: the joiner enters the active view and is told so.
    fn accept(&mut self, joiner: PeerId, now: Duration) {
        if !self.active.contains(&joiner) {
            self.add_active(joiner, now);
            self.send(joiner, HyParViewMessage::Welcome);
        }
    }

    fn on_shuffle(&mut self, from: PeerId, origin: PeerId, ttl: u8, peers: Vec<PeerId>) {
        if origin == self.me {
            return;
        }
        if ttl > 0 && self.active.len() > 1 {
            let next: Vec<PeerId> = self
                .active
                .iter()
                .copied()
                .filter(|p| *p != from && *p != origin)
                .collect();
            if let Some(&to) = next.choose(&mut self.rng) {
                let message = HyParViewMessage::Shuffle {
                    origin,
                    ttl: ttl - 1,
                    peers,
                };
                self.send(to, message);
                return;
            }
        }
        let reply: Vec<PeerId> = self
            .passive
            .choose_multiple(&mut self.rng, peers.len())
            .copied()
            .collect();
        self.send(
            origin,
            HyParViewMessage::ShuffleReply {
                peers: reply.clone(),
            },
        );
        self.merge_passive(&peers, &reply);
    }

    fn start_shuffle(&mut self) {
        let Some(&to) = self.active.choose(&mut self.rng) else {
            return;
        };
        let mut peers = vec![self.me];
        peers.extend(
            self.active
                .iter()
                .filter(|p| **p != to)
                .copied()
                .collect::<Vec<_>>()
                .choose_multiple(&mut self.rng, self.config.shuffle_active)
                .copied(),
        );
        peers.extend(
            self.passive
                .choose_multiple(&mut self.rng, self.config.shuffle_passive)
                .copied(),
        );
        self.shuffled = peers[1..].to_vec();
        let ttl = self.config.active_walk;
        self.send(
            to,
            HyParViewMessage::Shuffle {
                origin: self.me,
                ttl,
                peers,
            },
        );
    }

    /// Adds `peers` to the passive view; when full, evicts members of `sent` first
    /// (they went to the other side), then random ones.
    fn merge_passive(&mut self, peers: &[PeerId], sent: &[PeerId]) {
        let mut sent: Vec<PeerId> = sent.to_vec();
        for &peer in peers {
            if peer == self.me || self.active.contains(&peer) || self.passive.contains(&peer) {
                continue;
            }
            if self.passive.len() >= self.config.passive_capacity {
                let victim = sent
                    .iter()
                    .position(|s| self.passive.contains(s))
                    .map(|i| sent.swap_remove(i));
                match victim {
                    Some(v) => self.passive.retain(|p| *p != v),
                    None => {
                        let i = self.rng.random_range(0..self.passive.len());
                        self.passive.swap_remove(i);
                    }
                }
            }
            self.passive.push(peer);
        }
    }

    /// Asks a random passive member to become a neighbour if there is a free slot
    /// and no request in flight.
    fn request_neighbor(&mut self, now: Duration) {
        if self.pending.is_some() || self.active.len() >= self.config.active_capacity {
            return;
        }
        let Some(&candidate) = self.passive.choose(&mut self.rng) else {
            return;
        };
        let high_priority = self.active.is_empty();
        self.send(candidate, HyParViewMessage::Neighbor { high_priority });
        self.pending = Some((candidate, now + self.config.neighbor_timeout));
    }

    /// Puts `peer` in the active view, dropping a random member if full. Returns
    /// whether it was new.
    fn add_active(&mut self, peer: PeerId, now: Duration) -> bool {
        if peer == self.me || self.active.contains(&peer) {
            return false;
        }
        if self.active.len() >= self.config.active_capacity {
            let i = self.rng.random_range(0..self.active.len());
            let dropped = self.active[i];
            self.remove_active(dropped);
            self.send(dropped, HyParViewMessage::Disconnect);
            self.add_passive(dropped);
        }
        self.passive.retain(|p| *p != peer);
        self.active.push(peer);
        self.heard.insert(peer, now);
        self.out.push_back(HyParViewOutput::NeighborUp(peer));
        true
    }

    /// Takes `peer` out of the active view. Returns whether it was there.
    fn remove_active(&mut self, peer: PeerId) -> bool {
        let before = self.active.len();
        self.active.retain(|p| *p != peer);
        self.heard.remove(&peer);
        let removed = self.active.len() != before;
        if removed {
            self.out.push_back(HyParViewOutput::NeighborDown(peer));
        }
        removed
    }

    fn add_passive(&mut self, peer: PeerId) {
        if peer == self.me || self.active.contains(&peer) || self.passive.contains(&peer) {
            return;
        }
        if self.passive.len() >= self.config.passive_capacity {
            let i = self.rng.random_range(0..self.passive.len());
            self.passive.swap_remove(i);
        }
        self.passive.push(peer);
    }

    fn send(&mut self, to: PeerId, message: HyParViewMessage) {
        self.out.push_back(HyParViewOutput::Send { to, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(i: u16) -> PeerId {
        PeerId::from(([127, 0, 0, 1], i))
    }

    fn drain(hv: &mut HyParView) -> Vec<HyParViewOutput> {
        std::iter::from_fn(|| hv.poll_output()).collect()
    }

    #[test]
    fn view_sizes_follow_log2_and_stop_at_eight() {
        assert_eq!(HyParViewConfig::for_cluster_size(32).active_capacity, 6);
        assert_eq!(HyParViewConfig::for_cluster_size(64).active_capacity, 7);
        assert_eq!(HyParViewConfig::for_cluster_size(1024).active_capacity, 8);
        assert_eq!(HyParViewConfig::for_cluster_size(1).active_capacity, 2);
    }

    #[test]
    fn a_join_welcomes_the_joiner_and_walks_to_the_other_neighbours() {
        let mut hv = HyParView::new(peer(1), HyParViewConfig::default(), 1);
        let now = Duration::ZERO;
        hv.handle_message(peer(2), HyParViewMessage::Welcome, now);
        drain(&mut hv);
        hv.handle_message(peer(3), HyParViewMessage::Join, now);
        let out = drain(&mut hv);
        assert!(out.contains(&HyParViewOutput::NeighborUp(peer(3))));
        assert!(out.contains(&HyParViewOutput::Send {
            to: peer(3),
            message: HyParViewMessage::Welcome
        }));
        assert!(out.contains(&HyParViewOutput::Send {
            to: peer(2),
            message: HyParViewMessage::ForwardJoin {
                joiner: peer(3),
                ttl: 6
            }
        }));
    }

    #[test]
    fn a_full_active_view_drops_a_member_with_a_disconnect() {
        let config = HyParViewConfig {
            active_capacity: 2,
            ..HyParViewConfig::default()
        };
        let mut hv = HyParView::new(peer(1), config, 1);
        for i in 2..=4 {
            hv.handle_message(peer(i), HyParViewMessage::Welcome, Duration::ZERO);
        }
        assert_eq!(hv.active_view().len(), 2);
        let out = drain(&mut hv);
        let disconnects = out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    HyParViewOutput::Send {
                        message: HyParViewMessage::Disconnect,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(disconnects, 1);
        assert_eq!(hv.passive_view().len(), 1);
    }

    #[test]
    fn a_low_priority_neighbor_request_is_refused_when_full() {
        let config = HyParViewConfig {
            active_capacity: 1,
            ..HyParViewConfig::default()
        };
        let mut hv = HyParView::new(peer(1), config, 1);
        hv.handle_message(peer(2), HyParViewMessage::Welcome, Duration::ZERO);
        drain(&mut hv);
        let low = HyParViewMessage::Neighbor {
            high_priority: false,
        };
        hv.handle_message(peer(3), low, Duration::ZERO);
        assert!(drain(&mut hv).contains(&HyParViewOutput::Send {
            to: peer(3),
            message: HyParViewMessage::NeighborReply { accepted: false }
        }));
        let high = HyParViewMessage::Neighbor {
            high_priority: true,
        };
        hv.handle_message(peer(3), high, Duration::ZERO);
        assert_eq!(hv.active_view(), &[peer(3)]);
    }

    #[test]
    fn a_silent_neighbour_fails_and_a_passive_member_is_asked() {
        let mut hv = HyParView::new(peer(1), HyParViewConfig::default(), 1);
        hv.handle_message(peer(2), HyParViewMessage::Welcome, Duration::ZERO);
        hv.handle_message(
            peer(3),
            HyParViewMessage::ShuffleReply {
                peers: vec![peer(4)],
            },
            Duration::ZERO,
        );
        drain(&mut hv);
        hv.tick(Duration::from_secs(6));
        let out = drain(&mut hv);
        assert!(out.contains(&HyParViewOutput::NeighborDown(peer(2))));
        assert!(out.contains(&HyParViewOutput::Send {
            to: peer(4),
            message: HyParViewMessage::Neighbor {
                high_priority: true
            }
        }));
    }

    #[test]
    fn zero_capacities_are_taken_as_one_instead_of_panicking() {
        let config = HyParViewConfig {
            active_capacity: 0,
            passive_capacity: 0,
            ..HyParViewConfig::default()
        };
        let mut hv = HyParView::new(peer(1), config, 1);
        for i in 2..6 {
            hv.handle_message(peer(i), HyParViewMessage::Join, Duration::ZERO);
        }
        assert_eq!(hv.active_view().len(), 1);
        assert_eq!(hv.passive_view().len(), 1);
    }

    #[test]
    fn a_keepalive_from_a_stranger_is_answered_with_disconnect() {
        let mut hv = HyParView::new(peer(1), HyParViewConfig::default(), 1);
        hv.handle_message(peer(9), HyParViewMessage::KeepAlive, Duration::ZERO);
        assert_eq!(
            drain(&mut hv),
            vec![HyParViewOutput::Send {
                to: peer(9),
                message: HyParViewMessage::Disconnect
            }]
        );
    }
}
