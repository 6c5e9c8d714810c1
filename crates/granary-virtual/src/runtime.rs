//! The node's virtual-actor runtime, composed of parts with one job (and one lock)
//! each:
//!
//! - the **catalog** (`catalog.rs`): the activations and stateless workers hosted
//!   here; the **host side** (`hosting.rs`) starts, confirms, ends and passivates them,
//!   with one start path for both, and claims an identity a caller placed here
//!   (`claim.rs`);
//! - the **locator** (`locator.rs`, `locations.rs`): this node's activations, the
//!   bounded location cache, else the directory owner or a gateway;
//! - the **directory service**: the partition this node owns (`directory.rs`), the
//!   placements held back after a Down (`fence.rs`) and the hand-off of ranges on a
//!   membership change (`handoff.rs`);
//! - the membership view (`members.rs`), the host lease (`lease.rs`) and control
//!   requests between nodes (`control.rs`);
//! - the memory handed back as activations end (`heap_return.rs`).
//!
//! [`Runtime`] owns one of each and is what the rest of the crate holds.

mod catalog;
mod claim;
mod control;
mod directory;
mod fence;
mod handoff;
mod heap_return;
mod hosting;
mod keyed_locks;
mod lease;
mod locations;
mod locator;
mod members;
mod unregistrations;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use granary_core::ActorSystem;
use granary_remote::RemoteNode;
use granary_storage::{Identity, StateStore};
use parking_lot::Mutex;

use crate::error::VirtualError;
use crate::kind::ErasedKind;
use crate::protocol::Failure;

use catalog::Catalog;
pub(crate) use catalog::LocalActivation;
use claim::Claims;
pub(crate) use control::{fail_requests_to_lost_peers, ControlInbox, Rpc};
pub(crate) use directory::Directory;
use fence::Fence;
use handoff::RebuildProgress;
use hosting::Superseded;
use keyed_locks::KeyedLocks;
use lease::LeaseGrants;
pub(crate) use lease::{renew_loop, HostLease};
use locations::LocationCache;
pub(crate) use locator::Gone;
pub(crate) use members::Members;
use unregistrations::Unregistrations;

/// A kind hosted on this node: its type-erased entry, its store and its reminders.
pub(crate) struct KindSlot {
    pub(crate) kind: Arc<dyn ErasedKind>,
    pub(crate) store: Arc<dyn StateStore>,
    /// Delivers due reminders (kinds registered with `Kind::reminders`).
    pub(crate) fire: Option<crate::reminder::FireFn>,
}

/// Timeouts and retry bounds.
#[derive(Clone, Debug)]
pub(crate) struct RuntimeConfig {
    pub(crate) ask_timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) rpc_timeout: Duration,
    /// How long placements wait at least after a member departed (see [`Fence`]).
    pub(crate) down_margin: Duration,
    /// How long a host-lease renewal stays valid (see `runtime/lease.rs`); also how
    /// long placements wait after the last renewal the members that confirmed a
    /// departure granted (see [`Fence`]).
    pub(crate) host_lease: Duration,
    /// The most locations the cache keeps (0: none).
    pub(crate) location_cache: usize,
}

/// The node's virtual-actor runtime (see the module documentation for its parts).
pub(crate) struct Runtime {
    pub(crate) me: SocketAddr,
    system: ActorSystem,
    remote: RemoteNode,
    pub(crate) members: Members,
    pub(crate) kinds: KindMap<KindSlot>,
    /// The activations and stateless workers hosted here.
    catalog: Catalog,
    /// Orders the activations (and confirms) of one identity here.
    activating: KeyedLocks,
    /// Owners' requests a later `Confirm` of theirs overtook.
    superseded: Superseded,
    /// This node's claims in flight (caller placement, `claim.rs`).
    claims: Claims,
    pub(crate) directory: Directory,
    meters: crate::observe::DirectoryMeters,
    /// Each hosted kind's activation and store counters.
    kind_meters: KindMap<crate::observe::KindMeters>,
    /// Where identities were last found (bounded, see [`LocationCache`]).
    cache: LocationCache,
    pub(crate) rpc: Rpc,
    /// Turns of the random and round-robin placements.
    pub(crate) round_robin: AtomicUsize,
    pub(crate) config: RuntimeConfig,
    shutting_down: AtomicBool,
    /// Set by a simulated crash: activations stop without saving or unregistering.
    crashed: AtomicBool,
    /// Which hosts re-registered their activations for this node's ring.
    rebuild: RebuildProgress,
    fence: Mutex<Fence>,
    /// Bumped on every membership change this node processed (wakes calls waiting
    /// on a host that may have gone Down).
    views: tokio::sync::watch::Sender<u64>,
    /// Whether this node's activations may handle messages (see `lease.rs`).
    pub(crate) lease: HostLease,
    /// When this node last renewed each member's lease (see `lease.rs`).
    grants: LeaseGrants,
    /// Unregistrations of ended activations not yet acknowledged by their owner.
    unregistering: AtomicUsize,
    /// Those not sent yet, per owner (`unregistrations.rs`).
    unregistrations: Unregistrations,
    /// Bumped whenever an activation ended or its unregistration finished (wakes
    /// [`Runtime::settled`]).
    ends: tokio::sync::watch::Sender<u64>,
    /// The activation count's peak since the free heap was last handed back.
    waves: heap_return::Waves,
}

pub(crate) use granary_core::__tables::{shrink_if_sparse, SHRINK_FROM};

/// The hasher of the tables keyed by [`Identity`] (local activations, directory
/// entries, per-identity locks, the location cache): foldhash, seeded at random per
/// table, as hashbrown's default. Each activation hashes its identity a dozen times;
/// with std's SipHash that was 6 % of activating an identity. Identities come from
/// authenticated peers only, and a random seed per table keeps them from choosing
/// colliding keys without knowing it.
pub(crate) type IdentityHasher = foldhash::quality::RandomState;

/// A table keyed by identity, with [`IdentityHasher`].
pub(crate) type IdentityMap<V> = HashMap<Identity, V, IdentityHasher>;

/// A table keyed by the name of a kind this node hosts, read on every call (a ref's
/// kind), with [`IdentityHasher`] rather than SipHash, which was most of a lookup. Its
/// keys are the node's own kinds, fixed when it starts; nothing from the wire is
/// inserted.
pub(crate) type KindMap<V> = HashMap<&'static str, V, IdentityHasher>;

impl Runtime {
    pub(crate) fn new(
        remote: RemoteNode,
        members: Members,
        kinds: HashMap<&'static str, KindSlot>,
        config: RuntimeConfig,
    ) -> Self {
        let lease = HostLease::new(config.host_lease);
        let meters = crate::observe::DirectoryMeters::new(remote.local_addr());
        let kind_meters = kinds
            .keys()
            .map(|&kind| {
                let meters = crate::observe::KindMeters::new(remote.local_addr(), kind);
                (kind, meters)
            })
            .collect();
        Self {
            me: remote.local_addr(),
            system: remote.system().clone(),
            remote,
            members,
            kinds: kinds.into_iter().collect(),
            catalog: Catalog::default(),
            activating: KeyedLocks::default(),
            superseded: Superseded::default(),
            claims: Claims::default(),
            directory: Directory::default(),
            meters,
            kind_meters,
            cache: LocationCache::new(config.location_cache),
            rpc: Rpc::default(),
            round_robin: AtomicUsize::new(0),
            config,
            shutting_down: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
            rebuild: RebuildProgress::default(),
            fence: Mutex::new(Fence::default()),
            views: tokio::sync::watch::channel(0).0,
            lease,
            grants: LeaseGrants::default(),
            unregistering: AtomicUsize::new(0),
            unregistrations: Unregistrations::default(),
            waves: heap_return::Waves::default(),
            ends: tokio::sync::watch::channel(0).0,
        }
    }

    pub(crate) fn system(&self) -> &ActorSystem {
        &self.system
    }

    pub(crate) fn remote(&self) -> &RemoteNode {
        &self.remote
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Counts an activation event of a hosted `kind` (`granary_activations_*_total`).
    pub(crate) fn note_activation(&self, kind: &str, event: crate::observe::Activation) {
        if let Some(meters) = self.kind_meters.get(kind) {
            meters.activation(event);
        }
    }

    /// Counts a state-store operation of a hosted `kind` (`granary_store_*`).
    pub(crate) fn note_store<T>(
        &self,
        kind: &str,
        op: crate::observe::StoreOp,
        start: std::time::Instant,
        result: &Result<T, granary_storage::StorageError>,
    ) {
        if let Some(meters) = self.kind_meters.get(kind) {
            meters.store(op, start, result);
        }
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub(crate) fn is_crashed(&self) -> bool {
        self.crashed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_crashed(&self) {
        self.crashed.store(true, Ordering::Release);
        self.shutting_down.store(true, Ordering::Release);
    }
}

/// The error a caller gets for a failure its lookup or activation reported.
pub(crate) fn failure_error(identity: &Identity, f: Failure) -> VirtualError {
    match f {
        Failure::NoHost(kind) => VirtualError::NoHost(kind),
        Failure::ShuttingDown => VirtualError::Unavailable {
            identity: identity.to_string(),
            attempts: 1,
            last: "the chosen host is shutting down".into(),
        },
        Failure::Other(reason) => VirtualError::Unavailable {
            identity: identity.to_string(),
            attempts: 1,
            last: reason,
        },
    }
}
