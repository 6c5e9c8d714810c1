//! The client-server overlay (seed 002 §3.4), full mesh as its all-server case, and
//! the static overlay (§3.2).
//!
//! Every node is tagged [`Role::Client`] or [`Role::Server`]. Clients keep connections
//! to every server and to nothing else; servers keep connections to each other (and
//! accept every client). Membership spreads through the servers: a joining node says
//! `Hello` (with its role) to its contacts, which must include a server; a server
//! answers with the servers it knows, and the newcomer greets those too.
//!
//! A client's broadcast goes to one server, which delivers it, relays it to every
//! client it holds (every client, once joins have settled) and to the other servers,
//! which only deliver it: one copy per node. A forward to a member a client is not
//! connected to goes through a server. With every node a server this is the
//! **full-mesh** overlay ([`ClientServer::full_mesh`]): every node connected to every
//! other, broadcasts sent directly to all.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::overlay::{Delivery, Output, Overlay, PeerId};

/// A node's tag on the client-server overlay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Connects only to servers.
    Client,
    /// Connects to the other servers and accepts clients.
    Server,
}

/// The client-server overlay's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientServerMessage {
    /// "I am here, with this role".
    Hello {
        /// The sender's role.
        role: Role,
    },
    /// A server's answer to a hello: the servers it knows.
    Servers {
        /// The servers.
        servers: Vec<PeerId>,
    },
    /// Application data.
    Data {
        /// The node that sent it.
        origin: PeerId,
        /// Only this member delivers it; `None`: a broadcast.
        to: Option<PeerId>,
        /// Set by the server that spread it: deliver, do not relay again.
        relayed: bool,
        /// The payload.
        payload: Bytes,
    },
}

/// One node of the client-server (or full-mesh) overlay.
pub struct ClientServer {
    me: PeerId,
    role: Role,
    servers: Vec<PeerId>,
    clients: Vec<PeerId>,
    out: VecDeque<Output<ClientServerMessage>>,
}

impl ClientServer {
    /// A node `me` with `role`.
    pub fn new(me: PeerId, role: Role) -> Self {
        Self {
            me,
            role,
            servers: Vec::new(),
            clients: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// A node of the full-mesh overlay: a server among servers.
    pub fn full_mesh(me: PeerId) -> Self {
        Self::new(me, Role::Server)
    }

    /// This node's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The servers this node knows (and is connected to).
    pub fn servers(&self) -> &[PeerId] {
        &self.servers
    }

    fn send(&mut self, to: PeerId, message: ClientServerMessage) {
        self.out.push_back(Output::Send { to, message });
    }

    fn add_server(&mut self, server: PeerId) {
        if server == self.me || self.servers.contains(&server) {
            return;
        }
        self.clients.retain(|c| *c != server);
        self.servers.push(server);
        self.servers.sort();
        self.out.push_back(Output::Connect(server));
    }

    /// A server spreads data from `origin` to every connected node but `origin` and
    /// `except`, marked relayed.
    fn spread(&mut self, origin: PeerId, payload: &Bytes, except: Option<PeerId>) {
        let targets: Vec<PeerId> = self
            .clients
            .iter()
            .chain(&self.servers)
            .copied()
            .filter(|p| *p != origin && Some(*p) != except)
            .collect();
        for to in targets {
            let message = ClientServerMessage::Data {
                origin,
                to: None,
                relayed: true,
                payload: payload.clone(),
            };
            self.send(to, message);
        }
    }
}

impl Overlay for ClientServer {
    type Message = ClientServerMessage;

    fn local(&self) -> PeerId {
        self.me
    }

    fn join(&mut self, contacts: &[PeerId], _now: Duration) {
        for &contact in contacts {
            if contact != self.me {
                // The contact says whether it is a server (it answers `Servers`); until
                // then it is only greeted.
                let role = self.role;
                self.send(contact, ClientServerMessage::Hello { role });
            }
        }
    }

    fn broadcast(&mut self, payload: Bytes, _now: Duration) {
        match self.role {
            Role::Server => self.spread(self.me, &payload, None),
            Role::Client => {
                if let Some(&server) = self.servers.first() {
                    let message = ClientServerMessage::Data {
                        origin: self.me,
                        to: None,
                        relayed: false,
                        payload,
                    };
                    self.send(server, message);
                }
            }
        }
    }

    fn forward(&mut self, to: PeerId, payload: Bytes, _now: Duration) {
        let origin = self.me;
        if to == self.me {
            self.out
                .push_back(Output::Deliver(Delivery { origin, payload }));
            return;
        }
        let direct = self.servers.contains(&to) || self.clients.contains(&to);
        let next = if direct {
            Some(to)
        } else {
            self.servers.first().copied()
        };
        if let Some(next) = next {
            let message = ClientServerMessage::Data {
                origin,
                to: Some(to),
                relayed: false,
                payload,
            };
            self.send(next, message);
        }
    }

    fn handle_message(&mut self, from: PeerId, message: ClientServerMessage, _now: Duration) {
        match message {
            ClientServerMessage::Hello { role } => {
                match role {
                    Role::Server => self.add_server(from),
                    Role::Client => {
                        if self.role == Role::Server && !self.clients.contains(&from) {
                            self.clients.push(from);
                        }
                    }
                }
                if self.role == Role::Server {
                    let mut servers = self.servers.clone();
                    servers.push(self.me);
                    self.send(from, ClientServerMessage::Servers { servers });
                }
            }
            ClientServerMessage::Servers { servers } => {
                for server in servers {
                    if server != self.me && !self.servers.contains(&server) {
                        self.add_server(server);
                        if server != from {
                            let role = self.role;
                            self.send(server, ClientServerMessage::Hello { role });
                        }
                    }
                }
            }
            ClientServerMessage::Data {
                origin,
                to,
                relayed,
                payload,
            } => {
                if to.is_none() || to == Some(self.me) {
                    self.out.push_back(Output::Deliver(Delivery {
                        origin,
                        payload: payload.clone(),
                    }));
                }
                if self.role == Role::Server && !relayed {
                    match to {
                        None => self.spread(origin, &payload, Some(from)),
                        Some(target) if target != self.me => {
                            let message = ClientServerMessage::Data {
                                origin,
                                to,
                                relayed: true,
                                payload,
                            };
                            self.send(target, message);
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }

    fn connection_lost(&mut self, peer: PeerId, _now: Duration) {
        self.servers.retain(|p| *p != peer);
        self.clients.retain(|p| *p != peer);
    }

    fn tick(&mut self, _now: Duration) {}

    fn connections(&self) -> Vec<PeerId> {
        match self.role {
            Role::Client => self.servers.clone(),
            Role::Server => self.servers.iter().chain(&self.clients).copied().collect(),
        }
    }

    fn members(&self) -> Vec<PeerId> {
        self.servers.iter().chain(&self.clients).copied().collect()
    }

    /// A connected member directly; anyone else through the first server (as
    /// [`Overlay::forward`]).
    fn next_hop(&self, to: PeerId) -> Option<PeerId> {
        if self.servers.contains(&to) || self.clients.contains(&to) {
            Some(to)
        } else {
            self.servers.first().copied()
        }
    }

    fn poll_output(&mut self) -> Option<Output<ClientServerMessage>> {
        self.out.pop_front()
    }
}

/// The static overlay's messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticMessage {
    /// The payload.
    pub payload: Bytes,
}

/// The static overlay (seed 002 §3.2): connections only to the peers configured at
/// start, no membership protocol; a broadcast reaches the configured peers, a forward
/// only a configured peer (others are dropped, counted in
/// [`StaticOverlay::unroutable`]).
pub struct StaticOverlay {
    me: PeerId,
    peers: Vec<PeerId>,
    unroutable: u64,
    out: VecDeque<Output<StaticMessage>>,
}

impl StaticOverlay {
    /// A node `me` that connects to `peers`.
    pub fn new(me: PeerId, peers: Vec<PeerId>) -> Self {
        let peers: Vec<PeerId> = peers.into_iter().filter(|p| *p != me).collect();
        Self {
            me,
            peers,
            unroutable: 0,
            out: VecDeque::new(),
        }
    }

    /// Forwards dropped because the target is not a configured peer.
    pub fn unroutable(&self) -> u64 {
        self.unroutable
    }
}

impl Overlay for StaticOverlay {
    type Message = StaticMessage;

    fn local(&self) -> PeerId {
        self.me
    }

    fn join(&mut self, _contacts: &[PeerId], _now: Duration) {
        for &peer in &self.peers {
            self.out.push_back(Output::Connect(peer));
        }
    }

    fn broadcast(&mut self, payload: Bytes, _now: Duration) {
        for &to in &self.peers {
            let message = StaticMessage {
                payload: payload.clone(),
            };
            self.out.push_back(Output::Send { to, message });
        }
    }

    fn forward(&mut self, to: PeerId, payload: Bytes, _now: Duration) {
        if self.peers.contains(&to) {
            self.out.push_back(Output::Send {
                to,
                message: StaticMessage { payload },
            });
        } else {
            self.unroutable += 1;
        }
    }

    fn handle_message(&mut self, from: PeerId, message: StaticMessage, _now: Duration) {
        self.out.push_back(Output::Deliver(Delivery {
            origin: from,
            payload: message.payload,
        }));
    }

    fn connection_lost(&mut self, _peer: PeerId, _now: Duration) {}

    fn tick(&mut self, _now: Duration) {}

    fn connections(&self) -> Vec<PeerId> {
        self.peers.clone()
    }

    fn members(&self) -> Vec<PeerId> {
        self.peers.clone()
    }

    /// A configured peer directly; anyone else through the first configured peer (a
    /// star's hub, say): the static overlay knows no other route, so a topology in
    /// which the first peer does not lead to every member leaves some unreachable.
    fn next_hop(&self, to: PeerId) -> Option<PeerId> {
        if self.peers.contains(&to) {
            Some(to)
        } else {
            self.peers.first().copied()
        }
    }

    fn poll_output(&mut self) -> Option<Output<StaticMessage>> {
        self.out.pop_front()
    }
}
