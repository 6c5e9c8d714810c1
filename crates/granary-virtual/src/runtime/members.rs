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
    Cluster {
        cluster: Cluster,
        /// Hosts per kind for the ring it was computed from: recomputed only when the
        /// cluster's ring (the Up members) changes, so the activation path does not
        /// copy the member table on every call.
        hosts: Mutex<Option<HostsView>>,
    },
    Client(Mutex<ClientView>),
}

/// The Up hosts of each kind, for one ring.
pub(crate) struct HostsView {
    ring: Arc<HashRing>,
    by_kind: HashMap<String, Arc<[SocketAddr]>>,
}

impl HostsView {
    fn of(cluster: &Cluster, ring: Arc<HashRing>) -> Self {
        let mut by_kind: HashMap<String, Vec<SocketAddr>> = HashMap::new();
        for m in cluster.up_members() {
            // The ring is the Up set this view stands for; a row that changed since
            // is picked up on the next ring change.
            if !ring.contains(m.id.addr) {
                continue;
            }
            for role in m.roles {
                by_kind.entry(role).or_default().push(m.id.addr);
            }
        }
        let by_kind = by_kind
            .into_iter()
            .map(|(kind, mut hosts)| {
                hosts.sort();
                (kind, Arc::from(hosts))
            })
            .collect();
        Self { ring, by_kind }
    }
}

#[derive(Default)]
pub(crate) struct ClientView {
    ring: Arc<HashRing>,
    kinds: HashMap<SocketAddr, Vec<String>>,
    /// The members the client talks to (its gateways), chosen by the client.
    gateways: Vec<SocketAddr>,
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
            gateways: Vec::new(),
        }
    }
}

/// The ring position of an identity: the position of the key `kind/key` (its
/// `Display` form), built on the stack when it is short (every lookup, activation and
/// membership check asks; a formatted string each time showed in the activation
/// profile).
pub(crate) fn ring_position(identity: &Identity) -> u64 {
    const SHORT: usize = 192;
    let (kind, key) = (identity.kind().as_bytes(), identity.key().as_bytes());
    let len = kind.len() + 1 + key.len();
    if len <= SHORT {
        let mut buf = [0u8; SHORT];
        buf[..kind.len()].copy_from_slice(kind);
        buf[kind.len()] = b'/';
        buf[kind.len() + 1..len].copy_from_slice(key);
        granary_cluster::ring::key_position(&buf[..len])
    } else {
        granary_cluster::ring::key_position(identity.to_string().as_bytes())
    }
}

/// A 64-bit fingerprint of a ring's members (addresses and incarnations), the same
/// on every node that sees the same ring (FNV-1a, not the std hasher, whose output
/// may differ between builds).
pub(crate) fn fingerprint(ring: &HashRing) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (node, vnodes) in ring.nodes() {
        feed(node.addr.to_string().as_bytes());
        feed(&node.incarnation.to_le_bytes());
        feed(&vnodes.to_le_bytes());
    }
    hash
}

impl Members {
    pub(crate) fn cluster(cluster: Cluster) -> Self {
        Members::Cluster {
            cluster,
            hosts: Mutex::new(None),
        }
    }

    pub(crate) fn ring(&self) -> Arc<HashRing> {
        match self {
            Members::Cluster { cluster, .. } => cluster.ring(),
            Members::Client(v) => v.lock().ring.clone(),
        }
    }

    /// Runs `f` on the current ring (for a lookup: no reference to the ring taken).
    pub(crate) fn with_ring<R>(&self, f: impl FnOnce(&HashRing) -> R) -> R {
        match self {
            Members::Cluster { cluster, .. } => cluster.with_ring(f),
            Members::Client(v) => f(&v.lock().ring),
        }
    }

    /// The directory owner of `identity`.
    pub(crate) fn owner(&self, identity: &Identity) -> Option<SocketAddr> {
        let position = ring_position(identity);
        self.with_ring(|ring| ring.owner_of_position(position).map(|n| n.addr))
    }

    /// Up members hosting `kind`, sorted by address.
    pub(crate) fn hosts_of(&self, kind: &str) -> Arc<[SocketAddr]> {
        match self {
            Members::Cluster { cluster, hosts } => {
                let mut cached = hosts.lock();
                let fresh = cached.as_ref().is_some_and(|v| {
                    cluster.with_ring(|ring| std::ptr::eq(Arc::as_ptr(&v.ring), ring))
                });
                if !fresh {
                    *cached = Some(HostsView::of(cluster, cluster.ring()));
                }
                cached
                    .as_ref()
                    .and_then(|v| v.by_kind.get(kind).cloned())
                    .unwrap_or_else(|| Arc::from(Vec::new()))
            }
            Members::Client(v) => {
                let mut hosts: Vec<SocketAddr> = v
                    .lock()
                    .kinds
                    .iter()
                    .filter(|(_, k)| k.iter().any(|k| k == kind))
                    .map(|(a, _)| *a)
                    .collect();
                hosts.sort();
                Arc::from(hosts)
            }
        }
    }

    /// Whether `addr` is an Up member (the ring holds exactly the Up members).
    /// Whether this member is Down in its own view (declared failed, or downed itself,
    /// and not rejoined yet); never on a client.
    pub(crate) fn is_down_self(&self) -> bool {
        match self {
            Members::Cluster { cluster, .. } => {
                cluster.local_status() == Some(granary_cluster::MemberStatus::Down)
            }
            Members::Client(_) => false,
        }
    }

    pub(crate) fn is_alive(&self, addr: SocketAddr) -> bool {
        match self {
            Members::Cluster { cluster, .. } => cluster.with_ring(|ring| ring.contains(addr)),
            Members::Client(v) => v.lock().kinds.contains_key(&addr),
        }
    }

    /// The members whose lease grants count: those every member is known to have seen
    /// (none on a member that has seen no agreement yet; `None`, every member's, on a
    /// client, which holds no lease).
    pub(crate) fn grant_voters(&self) -> Option<std::collections::HashSet<SocketAddr>> {
        match self {
            Members::Cluster { cluster, .. } => Some(
                (cluster.agreed_members().into_iter())
                    .map(|id| id.addr)
                    .collect(),
            ),
            Members::Client(_) => None,
        }
    }

    /// The Up members as a client sees them.
    pub(crate) fn views(&self) -> Vec<MemberView> {
        match self {
            Members::Cluster { cluster, .. } => cluster
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
            let mut v = v.lock();
            let gateways = std::mem::take(&mut v.gateways);
            *v = ClientView::from_views(views);
            v.gateways = gateways;
        }
    }

    /// A client's gateways, in order of preference.
    pub(crate) fn gateways(&self) -> Vec<SocketAddr> {
        match self {
            Members::Client(v) => v.lock().gateways.clone(),
            Members::Cluster { .. } => Vec::new(),
        }
    }

    /// Replaces a client's gateways.
    pub(crate) fn set_gateways(&self, gateways: Vec<SocketAddr>) {
        if let Members::Client(v) = self {
            v.lock().gateways = gateways;
        }
    }

    /// The addresses in a client's view.
    pub(crate) fn client_addrs(&self) -> Vec<SocketAddr> {
        match self {
            Members::Client(v) => v.lock().kinds.keys().copied().collect(),
            Members::Cluster { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identitys_ring_position_is_that_of_its_display_form_short_or_long() {
        let long_key = "k".repeat(500);
        for identity in [
            Identity::new("bank.Account", "a/b#1"),
            Identity::new("bank.Account", ""),
            Identity::new("x".repeat(191), ""),
            Identity::new("bank.Account", &long_key),
        ] {
            assert_eq!(
                ring_position(&identity),
                granary_cluster::ring::key_position(identity.to_string().as_bytes()),
                "{identity}"
            );
        }
    }
}
