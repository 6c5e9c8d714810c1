//! A read-only handle on a running node for management tools (health checks,
//! metrics collectors, dashboards): it can be cloned into background tasks and
//! outlives neither more nor less than what it reads.

use std::net::SocketAddr;
use std::sync::Arc;

use granary_cluster::Cluster;
use granary_core::ActorSystem;
use granary_storage::Identity;

use crate::error::VirtualError;
use crate::runtime::Runtime;

/// A cloneable, read-only view of a [`crate::Node`] ([`crate::Node::probe`]).
///
/// It never activates anything and never changes the node. After the node is shut
/// down or killed its answers describe a stopped node (no activations, no lease).
#[derive(Clone)]
pub struct NodeProbe {
    runtime: Arc<Runtime>,
    cluster: Cluster,
}

/// Where an identity lives, as far as one node can find out without activating it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Whereabouts {
    /// The member owning the identity's directory partition (its hash-ring owner);
    /// `None` when the ring is empty.
    pub directory_owner: Option<SocketAddr>,
    /// The member hosting its live activation; `None` when it is not active (or its
    /// host did not answer).
    pub host: Option<SocketAddr>,
}

impl std::fmt::Debug for NodeProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeProbe")
            .field("addr", &self.runtime.me)
            .finish()
    }
}

impl NodeProbe {
    pub(crate) fn new(runtime: Arc<Runtime>, cluster: Cluster) -> Self {
        NodeProbe { runtime, cluster }
    }

    /// The address peers and clients reach the node at.
    pub fn addr(&self) -> SocketAddr {
        self.runtime.me
    }

    /// The node's cluster handle (membership, ring, events).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The actor system the node's activations run in (its event stream carries
    /// the dead letters).
    pub fn system(&self) -> &ActorSystem {
        self.runtime.system()
    }

    /// The kinds this node hosts, sorted by name.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<&'static str> = self.runtime.kinds.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }

    /// Live activations of `kind` on this node.
    pub fn activations(&self, kind: &str) -> usize {
        self.runtime.load(kind) as usize
    }

    /// Actors the node's remote layer exposes under their own name (the node's
    /// control actor and the like). Activations are not among them: each hosted kind
    /// has one door for all of its activations ([`NodeProbe::doors`]), so this count
    /// does not grow with them.
    pub fn exposed_actors(&self) -> usize {
        self.runtime.remote().exposed_count()
    }

    /// The name prefixes of the node's network doors, longest first: one per kind
    /// activated here since the node started (`granary.v/<kind>/`, or
    /// `granary.w/<kind>/` for a stateless worker kind).
    pub fn doors(&self) -> Vec<String> {
        self.runtime.remote().door_prefixes()
    }

    /// Entries in the directory partition this node owns.
    pub fn directory_entries(&self) -> usize {
        self.runtime.directory.len()
    }

    /// Whether the node's host lease is valid: its activations may handle messages
    /// (a node cut off from the majority lets it lapse).
    pub fn lease_held(&self) -> bool {
        !self.runtime.is_crashed() && self.runtime.lease.is_valid()
    }

    /// How long the node's host lease still holds if no renewal succeeds from now:
    /// `None` when it does not hold. A lease that lapses lapses at exactly this
    /// moment, so a watcher polling it knows when, not just that, it lapsed.
    pub fn lease_remaining(&self) -> Option<std::time::Duration> {
        if self.runtime.is_crashed() {
            return None;
        }
        self.runtime.lease.remaining()
    }

    /// Reads one (absent) identity from every store the node's kinds use, so a
    /// store that cannot be reached is an error here rather than at the next
    /// activation.
    pub async fn check_stores(&self) -> Result<(), VirtualError> {
        let probe = Identity::new("granary.probe", "reachable");
        for slot in self.runtime.kinds.values() {
            slot.store.read(&probe).await?;
        }
        Ok(())
    }

    /// Where `kind`/`key` lives, without activating it: the directory owner from the
    /// ring; the host from this node's own activations, from its directory partition
    /// when it owns the identity, else by asking the kind's hosts.
    pub async fn where_is(&self, kind: &str, key: &str) -> Whereabouts {
        let identity = Identity::new(kind, key);
        let rt = &self.runtime;
        let directory_owner = rt.members.owner(&identity);
        let host = if let Some(here) = rt.find_local(&identity) {
            Some(here.host)
        } else if directory_owner == Some(rt.me) {
            rt.directory.get(&identity).map(|loc| loc.host)
        } else {
            let hosts = rt.members.hosts_of(kind);
            rt.find_on_hosts(&identity, &hosts)
                .await
                .location()
                .map(|loc| loc.host)
        };
        Whereabouts {
            directory_owner,
            host,
        }
    }
}
