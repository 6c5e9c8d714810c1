//! Running the configured overlay ([`OverlayConfig`](crate::OverlayConfig)) inside a
//! node: its messages ride the cluster transport, its connections steer gossip and
//! failure detection, and its next hops route the node's actor traffic.
//!
//! The node's task owns one [`OverlayDriver`]. It carries the overlay's frames as
//! [`ClusterMessage::Overlay`] envelopes (sent directly: an overlay opens short-lived
//! connections to members outside its connections, e.g. HyParView's shuffle replies),
//! ticks it every [`TICK`], and after each step
//!
//! - hands the overlay's connections to the protocol core (gossip targets, probes);
//! - broadcasts this node's own row through the overlay when it or the overlay's
//!   connections changed, and every [`PRESENCE_INTERVAL`]: other members merge it like gossip, and on peer-to-peer the
//!   broadcast is what builds the Plumtree tree rooted at this node, along which the
//!   others route to it;
//! - publishes [`Routes`], the next hop to each live member, which the granary-remote
//!   transport reads as its [`Router`] on every Tell and Ask;
//! - closes the transport's connections to members outside the overlay's connections
//!   once they have stayed outside for [`PRUNE_AFTER`] (short-lived ones the overlay or
//!   the join asked for, or a send before a route existed);
//! - joins the overlay again through a member whose broadcasts stopped arriving
//!   ([`UNHEARD_AFTER`]): the membership table still knows the members of a part of
//!   the overlay that split off.
//!
//! **Peers and incarnations.** The overlay knows a member by its address (a
//! [`PeerId`]); the cluster by address and incarnation ([`NodeId`]). The driver keeps
//! the incarnation each address spoke with: an overlay frame from a newer incarnation
//! makes the overlay forget the old life first (`connection_lost`), one from an older
//! incarnation is dropped, and a life the table marks Down or Removed is lost to the
//! overlay too. When this node itself comes back Up with a new incarnation (a rejoin
//! after Down), it starts a fresh overlay and joins it through the Up members it knows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use granary_overlay::{DynOverlay, Output, PeerId};
use granary_remote::{RemoteNode, Router};
use parking_lot::RwLock;

use crate::config::OverlayConfig;
use crate::membership::{Member, MemberStatus, MembershipTable};
use crate::message::ClusterMessage;
use crate::node_id::NodeId;

/// How often the overlay's timers run.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// How often a node broadcasts its own row through the overlay even when it did not
/// change: well inside Plumtree's memory of an origin (`PlumtreeConfig`, 120 s by
/// default), so the routes towards every member stay known.
pub(crate) const PRESENCE_INTERVAL: Duration = Duration::from_secs(15);

/// A live member whose own broadcasts have not arrived for this long is taken as cut
/// off from this node's part of the overlay (see [`OverlayDriver::reach_out`]).
pub(crate) const UNHEARD_AFTER: Duration = Duration::from_secs(45);

/// How long a connection to a member outside the overlay's connections is kept.
pub(crate) const PRUNE_AFTER: Duration = Duration::from_secs(3);

/// The next hop towards each member, as the overlay last said: the transport's
/// [`Router`]. Read on every routed send (one read lock and one hash lookup); written
/// by the node's task after each overlay step.
#[derive(Default)]
pub(crate) struct Routes {
    hops: RwLock<HashMap<SocketAddr, SocketAddr>>,
}

impl Routes {
    fn publish(&self, hops: HashMap<SocketAddr, SocketAddr>) {
        let mut current = self.hops.write();
        if *current != hops {
            *current = hops;
        }
    }
}

impl Router for Routes {
    fn next_hop(&self, to: SocketAddr) -> Option<SocketAddr> {
        self.hops.read().get(&to).copied()
    }
}

/// What one overlay step leaves for the node's task to do.
#[derive(Default)]
pub(crate) struct Step {
    /// Overlay frames to send.
    pub(crate) sends: Vec<(SocketAddr, ClusterMessage)>,
    /// Rows other members broadcast.
    pub(crate) rows: Vec<Member>,
}

/// The overlay of one node and what it steers (see the module docs).
pub(crate) struct OverlayDriver {
    config: OverlayConfig,
    overlay: Box<dyn DynOverlay>,
    me: NodeId,
    seed: u64,
    epoch: Instant,
    /// The incarnation each peer address last spoke to the overlay with.
    lives: HashMap<SocketAddr, u64>,
    routes: Arc<Routes>,
    remote: Option<RemoteNode>,
    /// Transport peers that are members outside the connections, since when.
    outside: HashMap<SocketAddr, Instant>,
    /// Own row last broadcast (its version) and when.
    presence: Option<(NodeId, u64, Instant)>,
    /// The connections when the own row was last broadcast.
    presence_links: Vec<SocketAddr>,
    /// The table's hash when the routes were last published.
    routed_table: u64,
    /// When each member's own broadcast last arrived (see [`OverlayDriver::reach_out`]).
    heard: HashMap<SocketAddr, Instant>,
    /// When it last looked for an unheard member.
    reached_out: Instant,
}

impl OverlayDriver {
    /// The driver of `config`'s overlay for the node `me`, or `None` for the full mesh.
    /// On a cluster riding a [`RemoteNode`], installs the routes as its transport's
    /// router.
    pub(crate) fn new(
        config: &OverlayConfig,
        me: NodeId,
        seed: u64,
        now: Instant,
        remote: Option<RemoteNode>,
    ) -> Option<Self> {
        let overlay = config.build(me.addr, seed)?;
        let routes = Arc::new(Routes::default());
        if let Some(remote) = &remote {
            remote
                .transport()
                .set_router(Some(routes.clone() as Arc<dyn Router>));
        }
        Some(Self {
            config: config.clone(),
            overlay,
            me,
            seed,
            epoch: now,
            lives: HashMap::new(),
            routes,
            remote,
            outside: HashMap::new(),
            presence: None,
            presence_links: Vec::new(),
            routed_table: 0,
            heard: HashMap::new(),
            reached_out: now,
        })
    }

    fn clock(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.epoch)
    }

    /// The routes this driver publishes.
    pub(crate) fn routes(&self) -> Arc<Routes> {
        self.routes.clone()
    }

    /// Joins the overlay through `contacts` (none: this node starts it).
    pub(crate) fn join(&mut self, contacts: &[SocketAddr], now: Instant) {
        let contacts: Vec<PeerId> = (contacts.iter().copied())
            .filter(|c| *c != self.me.addr)
            .collect();
        let at = self.clock(now);
        self.overlay.join(&contacts, at);
    }

    /// The members the overlay keeps connections to now.
    pub(crate) fn connections(&self) -> Vec<SocketAddr> {
        self.overlay.connections()
    }

    /// An overlay frame from `from`.
    pub(crate) fn on_frame(&mut self, from: NodeId, frame: &[u8], now: Instant) {
        let at = self.clock(now);
        match self.lives.get(&from.addr).copied() {
            Some(known) if from.incarnation < known => {
                tracing::debug!(%from, "overlay frame from an older life; dropped");
                return;
            }
            Some(known) if from.incarnation > known => {
                // A new incarnation is a new peer: forget the old life first.
                self.overlay.connection_lost(from.addr, at);
            }
            _ => {}
        }
        self.lives.insert(from.addr, from.incarnation);
        if let Err(error) = self.overlay.handle_frame(from.addr, frame, at) {
            tracing::debug!(%from, %error, "undecodable overlay frame dropped");
        }
    }

    /// Runs the overlay's timers.
    pub(crate) fn tick(&mut self, now: Instant) {
        let at = self.clock(now);
        self.overlay.tick(at);
    }

    /// After the protocol core ran: follow this node's incarnation, tell the overlay of
    /// lives the table ended, broadcast the own row when due, and collect what to send
    /// and what was delivered.
    pub(crate) fn step(&mut self, me: NodeId, table: &MembershipTable, now: Instant) -> Step {
        // A new incarnation rejoins the overlay once a member let it back in (Up):
        // after a partition that is a member of the majority, so the overlay is one
        // again whatever the passive views still knew.
        let rejoined = table
            .get(&me.addr)
            .is_some_and(|r| r.id == me && r.status == MemberStatus::Up);
        if me != self.me && rejoined {
            self.restart(me, table, now);
        }
        let at = self.clock(now);
        let ended: Vec<SocketAddr> = (self.lives.iter())
            .filter(|(addr, incarnation)| match table.get(addr) {
                Some(row) => {
                    (row.id.incarnation == **incarnation && !row.status.is_live())
                        || row.status == MemberStatus::Removed
                }
                None => false,
            })
            .map(|(addr, _)| *addr)
            .collect();
        for addr in ended {
            self.lives.remove(&addr);
            self.overlay.connection_lost(addr, at);
        }
        if let Some(own) = table.get(&me.addr).filter(|r| r.id == me) {
            // Also when the connections changed: a broadcast sent while the overlay had
            // no neighbour yet (just joined) reached no one, and a new neighbour is a
            // new branch of this node's tree.
            let mut links = self.overlay.connections();
            links.sort_unstable();
            let due = links != self.presence_links
                || match self.presence {
                    Some((id, version, at)) => {
                        id != own.id
                            || version != own.version
                            || now.saturating_duration_since(at) >= PRESENCE_INTERVAL
                    }
                    None => true,
                };
            if due && own.status.is_live() {
                match postcard::to_allocvec(own) {
                    Ok(bytes) => {
                        self.overlay.broadcast(Bytes::from(bytes), self.clock(now));
                        self.presence = Some((own.id, own.version, now));
                        self.presence_links = links;
                    }
                    Err(error) => tracing::warn!(%error, "own row not encoded for the overlay"),
                }
            }
        }
        let mut step = Step::default();
        let mut reconnected = false;
        while let Some(output) = self.overlay.poll_frame() {
            match output {
                Output::Send { to, message } => step.sends.push((
                    to,
                    ClusterMessage::Overlay {
                        frame: message.to_vec(),
                    },
                )),
                // The transport dials on the first send; the routes change with the
                // connections, so they are published at once.
                Output::Connect(_) | Output::Disconnect(_) => reconnected = true,
                Output::Deliver(delivery) => {
                    match postcard::from_bytes::<Member>(&delivery.payload) {
                        Ok(row) if row.id.addr == delivery.origin => {
                            self.heard.insert(row.id.addr, now);
                            step.rows.push(row);
                        }
                        Ok(row) => tracing::debug!(
                            origin = %delivery.origin, row = %row.id,
                            "overlay broadcast of another member's row; dropped"
                        ),
                        Err(error) => tracing::debug!(
                            origin = %delivery.origin, %error,
                            "undecodable overlay broadcast; dropped"
                        ),
                    }
                }
            }
        }
        if reconnected {
            self.publish_routes(table);
        }
        step
    }

    /// A changed table (a member joined or went Down, perhaps from the rows the last
    /// step delivered) means new routes: published at once, not at the next tick.
    pub(crate) fn table_changed(&mut self, table: &MembershipTable) {
        if table.state_hash() != self.routed_table {
            self.publish_routes(table);
        }
    }

    /// On the overlay's tick: forgets lives of non-members, publishes the routes, closes
    /// connections that stayed outside the overlay and reaches out to unheard members.
    pub(crate) fn maintain(&mut self, table: &MembershipTable, now: Instant) {
        // Only members' lives are remembered (a peer that is not one yet is recorded
        // again with its next frame).
        self.lives.retain(|addr, _| table.get(addr).is_some());
        self.publish_routes(table);
        self.prune(table, now);
        self.reach_out(table, now);
    }

    /// Joins the overlay again through a live member whose own broadcasts have not
    /// arrived for [`UNHEARD_AFTER`] (checked every [`PRESENCE_INTERVAL`]): the
    /// overlay may have split into parts that no longer know each other (a cut that
    /// healed before downing decided, views that lost every link across it), while the
    /// membership table still knows both sides. One join per check; on an overlay that
    /// is whole it never happens (every member broadcasts every
    /// [`PRESENCE_INTERVAL`]).
    fn reach_out(&mut self, table: &MembershipTable, now: Instant) {
        // The static overlay has no membership protocol: nothing to join again.
        if matches!(self.config, OverlayConfig::Static { .. })
            || now.saturating_duration_since(self.reached_out) < PRESENCE_INTERVAL
        {
            return;
        }
        self.reached_out = now;
        let me = self.me.addr;
        self.heard.retain(|addr, _| table.get(addr).is_some());
        let mut unheard = None;
        for member in table.iter() {
            if member.status != MemberStatus::Up || member.id.addr == me {
                continue;
            }
            // A member seen for the first time gets the full delay to be heard.
            let at = *self.heard.entry(member.id.addr).or_insert(now);
            if unheard.is_none() && now.saturating_duration_since(at) >= UNHEARD_AFTER {
                unheard = Some(member.id.addr);
            }
        }
        if let Some(contact) = unheard {
            tracing::info!(node = %self.me, %contact, "member unheard on the overlay: joining it again through it");
            let at = self.clock(now);
            self.overlay.join(&[contact], at);
            // Heard or not, the next try goes to another member.
            self.heard.insert(contact, now);
        }
    }

    /// This node took a new incarnation: a new peer to everyone, so a fresh overlay,
    /// joined through the members it knows.
    fn restart(&mut self, me: NodeId, table: &MembershipTable, now: Instant) {
        let Some(overlay) = self.config.build(me.addr, self.seed) else {
            return;
        };
        tracing::info!(node = %me, "new incarnation: rejoining the overlay");
        self.overlay = overlay;
        self.me = me;
        self.lives.clear();
        self.heard.clear();
        self.presence = None;
        let contacts: Vec<SocketAddr> = (table.iter())
            .filter(|m| m.status == MemberStatus::Up && m.id.addr != me.addr)
            .map(|m| m.id.addr)
            .collect();
        self.join(&contacts, now);
    }

    /// The next hop to every live member that is not a connection.
    fn publish_routes(&mut self, table: &MembershipTable) {
        self.routed_table = table.state_hash();
        let hops: HashMap<SocketAddr, SocketAddr> = (table.iter())
            .filter(|m| m.status.is_live() && m.id.addr != self.me.addr)
            .filter_map(|m| {
                let to = m.id.addr;
                self.overlay
                    .next_hop(to)
                    .filter(|hop| *hop != to)
                    .map(|hop| (to, hop))
            })
            .collect();
        self.routes.publish(hops);
    }

    /// Closes connections to members that stayed outside the overlay's connections.
    fn prune(&mut self, table: &MembershipTable, now: Instant) {
        let Some(remote) = &self.remote else {
            return;
        };
        let transport = remote.transport();
        let connections = self.overlay.connections();
        let me = self.me.addr;
        let outside: Vec<SocketAddr> = (transport.peers().into_iter())
            .filter(|p| *p != me && !connections.contains(p))
            .filter(|p| table.get(p).is_some())
            .collect();
        self.outside.retain(|p, _| outside.contains(p));
        for peer in outside {
            let since = *self.outside.entry(peer).or_insert(now);
            if now.saturating_duration_since(since) >= PRUNE_AFTER {
                tracing::debug!(%peer, "closing a connection outside the overlay");
                transport.disconnect(peer);
                self.outside.remove(&peer);
            }
        }
    }

    /// Removes the routes from the transport (the node stopped).
    pub(crate) fn close(&self) {
        if let Some(remote) = &self.remote {
            remote.transport().set_router(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(addr: &str, incarnation: u64) -> Member {
        let mut row = Member::new(NodeId::new(addr.parse().unwrap(), incarnation), 8);
        row.status = MemberStatus::Up;
        row.version = 1;
        row
    }

    /// The overlay's messages to `to` among what the last step sent.
    fn sent_to(step: &Step, to: SocketAddr) -> usize {
        step.sends.iter().filter(|(t, _)| *t == to).count()
    }

    #[test]
    fn a_member_unheard_on_the_overlay_is_joined_through_once_the_delay_passed() {
        let me = NodeId::new("127.0.0.1:7000".parse().unwrap(), 1);
        let t0 = Instant::now();
        let config = OverlayConfig::peer_to_peer(8);
        let mut driver = OverlayDriver::new(&config, me, 7, t0, None).expect("not the mesh");
        driver.join(&[], t0);
        let mut table = MembershipTable::new();
        table.merge(up("127.0.0.1:7000", 1));
        let far = up("127.0.0.1:7001", 1);
        table.merge(far.clone());
        driver.step(me, &table, t0);
        // Seen now: it gets the full delay before it counts as unheard.
        driver.maintain(&table, t0 + PRESENCE_INTERVAL);
        let step = driver.step(me, &table, t0 + PRESENCE_INTERVAL);
        assert_eq!(sent_to(&step, far.id.addr), 0, "not yet unheard");
        let late = t0 + PRESENCE_INTERVAL + UNHEARD_AFTER;
        driver.maintain(&table, late);
        let step = driver.step(me, &table, late);
        assert_eq!(
            sent_to(&step, far.id.addr),
            1,
            "a join to the unheard member"
        );
        // Its broadcast arriving would count as heard; the next check, one interval on,
        // does not join through it again.
        let next = late + PRESENCE_INTERVAL;
        driver.maintain(&table, next);
        let step = driver.step(me, &table, next);
        assert_eq!(
            sent_to(&step, far.id.addr),
            0,
            "one join per member per delay"
        );
    }

    #[test]
    fn routes_name_the_next_hop_only_for_members_that_are_not_connections() {
        let me = NodeId::new("127.0.0.1:7100".parse().unwrap(), 1);
        let server: SocketAddr = "127.0.0.1:7101".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:7102".parse().unwrap();
        let t0 = Instant::now();
        let config = OverlayConfig::ClientServer {
            role: granary_overlay::Role::Client,
        };
        let mut driver = OverlayDriver::new(&config, me, 7, t0, None).expect("not the mesh");
        driver.join(&[server], t0);
        let frame = postcard::to_allocvec(&granary_overlay::ClientServerMessage::Servers {
            servers: vec![server],
        })
        .unwrap();
        driver.on_frame(NodeId::new(server, 1), &frame, t0);
        let mut table = MembershipTable::new();
        for (addr, inc) in [
            ("127.0.0.1:7100", 1),
            ("127.0.0.1:7101", 1),
            ("127.0.0.1:7102", 1),
        ] {
            table.merge(up(addr, inc));
        }
        driver.step(me, &table, t0);
        driver.table_changed(&table);
        assert_eq!(driver.connections(), vec![server]);
        assert_eq!(
            driver.routes().next_hop(other),
            Some(server),
            "another client via the server"
        );
        assert_eq!(
            driver.routes().next_hop(server),
            None,
            "a connection goes directly"
        );
        // A frame that is not the overlay's is dropped, never a panic.
        driver.on_frame(NodeId::new(other, 1), &[0xff, 0xff, 0xff, 0xff], t0);
        // An older life of the server is ignored; a newer one is a new peer.
        driver.on_frame(NodeId::new(server, 0), &frame, t0);
        assert_eq!(driver.connections(), vec![server]);
    }

    #[test]
    fn a_custom_overlay_decides_the_connections_and_the_routes() {
        use crate::config::CustomOverlay;
        use granary_overlay::{erase, StaticOverlay};
        let hub: SocketAddr = "127.0.0.1:7201".parse().unwrap();
        let spoke: SocketAddr = "127.0.0.1:7202".parse().unwrap();
        let me = NodeId::new("127.0.0.1:7200".parse().unwrap(), 1);
        let star = CustomOverlay::new(move |me| erase(StaticOverlay::new(me, vec![hub])));
        let config = OverlayConfig::Custom(star);
        let t0 = Instant::now();
        let mut driver = OverlayDriver::new(&config, me, 7, t0, None).expect("not the mesh");
        driver.join(&[], t0);
        let mut table = MembershipTable::new();
        for (addr, inc) in [
            ("127.0.0.1:7200", 1),
            ("127.0.0.1:7201", 1),
            ("127.0.0.1:7202", 1),
        ] {
            table.merge(up(addr, inc));
        }
        driver.step(me, &table, t0);
        driver.table_changed(&table);
        assert_eq!(driver.connections(), vec![hub]);
        assert_eq!(driver.routes().next_hop(spoke), Some(hub));
    }
}
