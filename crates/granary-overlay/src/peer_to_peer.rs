//! The peer-to-peer overlay: HyParView membership with Plumtree broadcast over its
//! active view (seed 002 §3.5).
//!
//! [`HyParView`] decides the connections (the active view) and spreads membership;
//! [`Plumtree`] broadcasts over exactly those connections. A message for a member this
//! node is not connected to travels **along the trees**: each node remembers which
//! neighbour first delivered a given origin's broadcasts ([`Plumtree::upstream`]), the
//! next hop towards that origin, so `forward` hands the message to that neighbour, which
//! does the same, hop by hop (a `Routed` message). A node with no route yet (the target
//! never broadcast, or the tree changed under it) falls back, at the sender, to a
//! Plumtree broadcast addressed to the target: every node relays it, only the target
//! delivers it. A relay without a route drops the message (best effort, as Partisan's
//! transitive forwarding; [`PeerToPeer::unroutable`] counts them).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::hyparview::{HyParView, HyParViewConfig, HyParViewMessage, HyParViewOutput};
use crate::overlay::{Delivery, Output, Overlay, PeerId};
use crate::plumtree::{Plumtree, PlumtreeConfig, PlumtreeMessage, PlumtreeOutput};

/// The most hops a routed message takes before it is dropped (a loop guard; trees are
/// shallow: ~log n).
const MAX_HOPS: u8 = 32;

/// The peer-to-peer overlay's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerToPeerMessage {
    /// Membership.
    Membership(HyParViewMessage),
    /// Broadcast.
    Broadcast(PlumtreeMessage),
    /// A message on its way to one member along the trees.
    Routed {
        /// The sender.
        origin: PeerId,
        /// The addressee.
        to: PeerId,
        /// Hops taken so far.
        hops: u8,
        /// The payload.
        payload: Bytes,
    },
}

impl PeerToPeerMessage {
    /// A short name of the message's kind, for traffic accounting
    /// (`gossip`, `ihave`, `graft`, `prune`, `routed`, or HyParView's).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Membership(m) => match m {
                HyParViewMessage::Join => "join",
                HyParViewMessage::ForwardJoin { .. } => "forward_join",
                HyParViewMessage::Welcome => "welcome",
                HyParViewMessage::Neighbor { .. } => "neighbor",
                HyParViewMessage::NeighborReply { .. } => "neighbor_reply",
                HyParViewMessage::Disconnect => "disconnect",
                HyParViewMessage::KeepAlive => "keepalive",
                HyParViewMessage::Shuffle { .. } => "shuffle",
                HyParViewMessage::ShuffleReply { .. } => "shuffle_reply",
            },
            Self::Broadcast(m) => match m {
                PlumtreeMessage::Gossip { .. } => "gossip",
                PlumtreeMessage::IHave { .. } => "ihave",
                PlumtreeMessage::Graft { .. } => "graft",
                PlumtreeMessage::Prune { .. } => "prune",
            },
            Self::Routed { .. } => "routed",
        }
    }
}

/// One node of the peer-to-peer overlay.
pub struct PeerToPeer {
    membership: HyParView,
    broadcast: Plumtree,
    unroutable: u64,
    out: VecDeque<Output<PeerToPeerMessage>>,
}

impl PeerToPeer {
    /// A node `me`; `seed` seeds HyParView's random choices.
    pub fn new(
        me: PeerId,
        membership: HyParViewConfig,
        broadcast: PlumtreeConfig,
        seed: u64,
    ) -> Self {
        Self {
            membership: HyParView::new(me, membership, seed),
            broadcast: Plumtree::new(me, broadcast),
            unroutable: 0,
            out: VecDeque::new(),
        }
    }

    /// A node with views sized for `n` members
    /// ([`HyParViewConfig::for_cluster_size`]) and default Plumtree timers.
    pub fn for_cluster_size(me: PeerId, n: usize, seed: u64) -> Self {
        Self::new(
            me,
            HyParViewConfig::for_cluster_size(n),
            PlumtreeConfig::default(),
            seed,
        )
    }

    /// The membership state.
    pub fn hyparview(&self) -> &HyParView {
        &self.membership
    }

    /// The broadcast state.
    pub fn plumtree(&self) -> &Plumtree {
        &self.broadcast
    }

    /// Routed messages this node dropped for want of a route.
    pub fn unroutable(&self) -> u64 {
        self.unroutable
    }

    /// Moves the state machines' outputs into this overlay's queue, wiring HyParView's
    /// neighbour changes into Plumtree.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(output) = self.membership.poll_output() {
                progressed = true;
                match output {
                    HyParViewOutput::Send { to, message } => self.out.push_back(Output::Send {
                        to,
                        message: PeerToPeerMessage::Membership(message),
                    }),
                    HyParViewOutput::NeighborUp(peer) => {
                        self.broadcast.neighbor_up(peer);
                        self.out.push_back(Output::Connect(peer));
                    }
                    HyParViewOutput::NeighborDown(peer) => {
                        self.broadcast.neighbor_down(peer);
                        self.out.push_back(Output::Disconnect(peer));
                    }
                }
            }
            while let Some(output) = self.broadcast.poll_output() {
                progressed = true;
                match output {
                    PlumtreeOutput::Send { to, message } => self.out.push_back(Output::Send {
                        to,
                        message: PeerToPeerMessage::Broadcast(message),
                    }),
                    PlumtreeOutput::Deliver { id, to, payload } => {
                        if to.is_none() || to == Some(self.local()) {
                            self.out.push_back(Output::Deliver(Delivery {
                                origin: id.origin,
                                payload,
                            }));
                        }
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// The next hop of a `Routed` message towards `to`: itself if connected, else up
    /// `to`'s tree.
    fn tree_hop(&self, to: PeerId) -> Option<PeerId> {
        if self.membership.active_view().contains(&to) {
            Some(to)
        } else {
            self.broadcast.upstream(to)
        }
    }

    fn route(&mut self, origin: PeerId, to: PeerId, hops: u8, payload: Bytes, now: Duration) {
        match self.tree_hop(to) {
            Some(next) if hops < MAX_HOPS => self.out.push_back(Output::Send {
                to: next,
                message: PeerToPeerMessage::Routed {
                    origin,
                    to,
                    hops: hops + 1,
                    payload,
                },
            }),
            None if origin == self.local() => {
                self.broadcast.broadcast(payload, Some(to), now);
            }
            _ => {
                self.unroutable += 1;
                tracing::debug!(me = %self.local(), %to, "no route: routed message dropped");
            }
        }
    }
}

impl Overlay for PeerToPeer {
    type Message = PeerToPeerMessage;

    fn local(&self) -> PeerId {
        self.membership.local()
    }

    fn join(&mut self, contacts: &[PeerId], now: Duration) {
        self.membership.join(contacts, now);
        self.pump();
    }

    fn broadcast(&mut self, payload: Bytes, now: Duration) {
        self.broadcast.broadcast(payload, None, now);
        self.pump();
    }

    fn forward(&mut self, to: PeerId, payload: Bytes, now: Duration) {
        if to == self.local() {
            let origin = self.local();
            self.out
                .push_back(Output::Deliver(Delivery { origin, payload }));
            return;
        }
        self.route(self.local(), to, 0, payload, now);
        self.pump();
    }

    fn handle_message(&mut self, from: PeerId, message: PeerToPeerMessage, now: Duration) {
        match message {
            PeerToPeerMessage::Membership(m) => self.membership.handle_message(from, m, now),
            PeerToPeerMessage::Broadcast(m) => self.broadcast.handle_message(from, m, now),
            PeerToPeerMessage::Routed {
                origin,
                to,
                hops,
                payload,
            } => {
                if to == self.local() {
                    self.out
                        .push_back(Output::Deliver(Delivery { origin, payload }));
                } else {
                    self.route(origin, to, hops, payload, now);
                }
            }
        }
        self.pump();
    }

    fn connection_lost(&mut self, peer: PeerId, now: Duration) {
        self.membership.connection_lost(peer, now);
        self.pump();
    }

    fn tick(&mut self, now: Duration) {
        self.membership.tick(now);
        self.broadcast.tick(now);
        self.pump();
    }

    fn connections(&self) -> Vec<PeerId> {
        self.membership.active_view().to_vec()
    }

    /// Itself if it is in the active view, else the neighbour up `to`'s tree (the one
    /// that first delivered `to`'s broadcasts) while it is still a neighbour, else the
    /// first active neighbour: a default route, as a node that joined after `to`'s last
    /// broadcast knows no tree towards it yet while its older neighbours do (a host
    /// bounds such walks by a hop count; granary-remote's relay does, at 16).
    fn next_hop(&self, to: PeerId) -> Option<PeerId> {
        let active = self.membership.active_view();
        if active.contains(&to) {
            return Some(to);
        }
        match self.broadcast.upstream(to) {
            Some(up) if active.contains(&up) => Some(up),
            _ => active.first().copied(),
        }
    }

    fn members(&self) -> Vec<PeerId> {
        let mut all = self.membership.active_view().to_vec();
        all.extend_from_slice(self.membership.passive_view());
        all
    }

    fn poll_output(&mut self) -> Option<Output<PeerToPeerMessage>> {
        self.out.pop_front()
    }
}
