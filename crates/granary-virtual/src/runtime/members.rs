//! Who is alive, who hosts which kind and who owns which identity: from the
//! cluster on a member node, from a member's answer on an external client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use granary_cluster::{Cluster, HashRing, NodeId};
use granary_storage::Identity;
use parking_lot::Mutex;

use crate::protocol::MemberView;

pub(crate) enum Members {
    Cluster(Cluster),
    Client(Mutex<ClientView>),
}

#[derive(Default)]
pub(crate) struct ClientView {
    ring: Arc<HashRing>,
    kinds: HashMap<SocketAddr, Vec<String>>,
}

impl ClientView {
    fn from_views(views: Vec<MemberView>) -> Self {
        let mut ring = HashRing::new();
        let mut kinds = HashMap::new();
        for v in views {
            ring.insert(NodeId::new(v.addr, v.incarnation), v.vnodes);
            kinds.insert(v.addr, v.kinds);
        }
        Self {
            ring: Arc::new(ring),
            kinds,
        }
    }
}

/// The ring position key of an identity.
pub(crate) fn ring_key(identity: &Identity) -> Vec<u8> {
    identity.to_string().into_bytes()
}

impl Members {
    pub(crate) fn ring(&self) -> Arc<HashRing> {
        match self {
            Members::Cluster(c) => c.ring(),
            Members::Client(v) => v.lock().ring.clone(),
        }
    }

    /// The directory owner of `identity`.
    pub(crate) fn owner(&self, identity: &Identity) -> Option<SocketAddr> {
        self.ring().owner(&ring_key(identity)).map(|n| n.addr)
    }

    /// Up members hosting `kind`, sorted by address.
    pub(crate) fn hosts_of(&self, kind: &str) -> Vec<SocketAddr> {
        let mut hosts: Vec<SocketAddr> = match self {
            Members::Cluster(c) => c
                .up_members()
                .into_iter()
                .filter(|m| m.roles.contains(kind))
                .map(|m| m.id.addr)
                .collect(),
            Members::Client(v) => v
                .lock()
                .kinds
                .iter()
                .filter(|(_, k)| k.iter().any(|k| k == kind))
                .map(|(a, _)| *a)
                .collect(),
        };
        hosts.sort();
        hosts
    }

    /// Whether `addr` is an Up member.
    pub(crate) fn is_alive(&self, addr: SocketAddr) -> bool {
        match self {
            Members::Cluster(c) => c.up_members().iter().any(|m| m.id.addr == addr),
            Members::Client(v) => v.lock().kinds.contains_key(&addr),
        }
    }

    /// The Up members as a client sees them.
    pub(crate) fn views(&self) -> Vec<MemberView> {
        match self {
            Members::Cluster(c) => c
                .up_members()
                .into_iter()
                .map(|m| MemberView {
                    addr: m.id.addr,
                    incarnation: m.id.incarnation,
                    vnodes: m.vnodes,
                    kinds: m.roles.into_iter().collect(),
                })
                .collect(),
            Members::Client(_) => Vec::new(),
        }
    }

    /// Replaces a client's view.
    pub(crate) fn set_client_view(&self, views: Vec<MemberView>) {
        if let Members::Client(v) = self {
            *v.lock() = ClientView::from_views(views);
        }
    }

    /// The addresses in a client's view.
    pub(crate) fn client_addrs(&self) -> Vec<SocketAddr> {
        match self {
            Members::Client(v) => v.lock().kinds.keys().copied().collect(),
            Members::Cluster(_) => Vec::new(),
        }
    }
}
