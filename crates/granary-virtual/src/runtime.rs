//! The node's virtual-actor runtime: the local activation table, the directory
//! partition this node owns, the location cache, control requests, passivation
//! and the reaction to membership changes.

mod control;
mod directory;
mod lease;
mod locations;
mod members;
mod workers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use granary_cluster::{HashRing, NodeId};
use granary_core::{ActorSystem, RemoteTarget};
use granary_remote::RemoteNode;
use granary_storage::{Identity, StateStore};
use parking_lot::Mutex;

use crate::error::VirtualError;
use crate::kind::ErasedKind;
use crate::protocol::{Failure, Location, Reply, Request};
use crate::tracker::Tracker;

pub(crate) use control::{fail_requests_to_lost_peers, ControlInbox, Rpc};
pub(crate) use directory::Directory;
pub(crate) use lease::{renew_loop, HostLease};
use locations::LocationCache;
pub(crate) use members::Members;

/// One live activation on this node, type-erased.
pub(crate) struct LocalActivation {
    pub(crate) name: Arc<str>,
    pub(crate) tracker: Arc<Tracker>,
    /// The tracked door to the activation (`Tracked<A>`): every local call, typed by
    /// an actor or by a contract, goes through it by message type name; it also
    /// stops the activation and waits for its end (one object, no closures).
    pub(crate) door: Arc<dyn crate::tracked::ActivationDoor>,
    /// The directory owner (address and incarnation) that records this activation;
    /// `None` until one does. After a membership change every activation whose
    /// owner on the new ring differs is re-registered (see
    /// [`Runtime::on_membership_change`]).
    pub(crate) registered_with: Option<NodeId>,
}

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
    /// How long placements wait after a member went Down (see [`Fence`]).
    pub(crate) down_margin: Duration,
    /// How long a host-lease renewal stays valid (see `runtime/lease.rs`): at most
    /// the time from a partition to the majority's first placement.
    pub(crate) host_lease: Duration,
    /// The most locations the cache keeps (0: none).
    pub(crate) location_cache: usize,
}

pub(crate) struct Runtime {
    pub(crate) me: SocketAddr,
    system: ActorSystem,
    remote: RemoteNode,
    pub(crate) members: Members,
    pub(crate) kinds: HashMap<&'static str, KindSlot>,
    local: Mutex<HashMap<Identity, LocalActivation>>,
    /// Stateless-worker activations: several per identity on this node.
    workers: Mutex<HashMap<Identity, Vec<LocalActivation>>>,
    activating: Mutex<HashMap<Identity, Arc<tokio::sync::Mutex<()>>>>,
    /// Per directory owner, the first of its request ids whose `Activate` this node
    /// still serves: set by the owner's `Confirm` (see [`Runtime::confirm_here`]),
    /// one entry per member at most (pruned on membership changes).
    superseded: Mutex<HashMap<SocketAddr, u64>>,
    pub(crate) directory: Directory,
    meters: crate::observe::DirectoryMeters,
    /// Each hosted kind's activation and store counters.
    kind_meters: HashMap<&'static str, crate::observe::KindMeters>,
    /// Where identities were last found (bounded, see [`LocationCache`]).
    cache: LocationCache,
    pub(crate) rpc: Rpc,
    pub(crate) round_robin: AtomicUsize,
    pub(crate) config: RuntimeConfig,
    shutting_down: AtomicBool,
    /// Set by a simulated crash: activations stop without saving or unregistering.
    crashed: AtomicBool,
    seq: AtomicU64,
    rebuild: Mutex<Rebuild>,
    fence: Mutex<Fence>,
    /// Bumped on every membership change this node processed (wakes calls waiting
    /// on a host that may have gone Down).
    views: tokio::sync::watch::Sender<u64>,
    /// Whether this node's activations may handle messages (see `lease.rs`).
    pub(crate) lease: HostLease,
    /// Unregistrations of ended activations not yet acknowledged by their owner.
    unregistering: AtomicUsize,
    /// Bumped whenever an activation ended or its unregistration finished (wakes
    /// [`Runtime::settled`]).
    ends: tokio::sync::watch::Sender<u64>,
}

/// Placements held back after a member went Down: a node declared Down may be the
/// minority side of a partition that downs itself only about as late as the
/// majority downed it, so its activations can be live for a moment longer. Until
/// `down_margin` after the Down, the owner does not place an identity that was
/// recorded on the downed node, nor one whose directory owner was the downed node
/// (its entry is lost, so it may have been anywhere).
#[derive(Default)]
struct Fence {
    /// Identities whose recorded host went Down, and until when they wait.
    recorded: HashMap<Identity, tokio::time::Instant>,
    /// The earliest wait in `recorded`: expired entries are dropped once it passes,
    /// not on every placement (a Down can fence every identity its host had).
    recorded_earliest: Option<tokio::time::Instant>,
    /// Rings from before a member went missing, each with until when the identities
    /// its missing owners held wait. Every such ring is kept until its margin passes:
    /// two members of a minority may be downed one after the other, and the ring
    /// before the second Down no longer names the first one's identities' owner.
    owners: Vec<(Arc<HashRing>, tokio::time::Instant)>,
    /// The ring the last placement saw. The ring changes as soon as the cluster's
    /// view does, before the membership task gets to [`Runtime::note_down`]; a
    /// placement that finds members gone from it since fences their identities itself.
    seen: Option<Arc<HashRing>>,
}

impl Fence {
    /// Fences, until `until`, the identities whose owner on `ring` is no longer alive.
    fn fence_owners_of(&mut self, ring: Arc<HashRing>, until: tokio::time::Instant) {
        let now = tokio::time::Instant::now();
        self.owners.retain(|(_, until)| *until > now);
        self.owners.push((ring, until));
    }

    /// `identity` waits until at least `until` (its recorded host went Down).
    fn record(&mut self, identity: Identity, until: tokio::time::Instant) {
        let entry = self.recorded.entry(identity).or_insert(until);
        *entry = (*entry).max(until);
        self.recorded_earliest = Some(self.recorded_earliest.map_or(until, |e| e.min(until)));
    }

    /// Until when `identity` waits at `now` (forgetting what has passed), if at all:
    /// its recorded host went Down, or its owner on a ring kept here is not alive.
    fn until(
        &mut self,
        identity: &Identity,
        now: tokio::time::Instant,
        is_alive: impl Fn(SocketAddr) -> bool,
    ) -> Option<tokio::time::Instant> {
        if self
            .recorded_earliest
            .is_some_and(|earliest| earliest <= now)
        {
            self.recorded.retain(|_, until| *until > now);
            self.recorded_earliest = self.recorded.values().min().copied();
            crate::runtime::shrink_if_sparse(&mut self.recorded);
        }
        self.owners.retain(|(_, until)| *until > now);
        let recorded = self.recorded.get(identity).copied();
        let owned = self
            .owners
            .iter()
            .filter(|(ring, _)| {
                ring.owner_of_position(members::ring_position(identity))
                    .is_some_and(|owner| !is_alive(owner.addr))
            })
            .map(|(_, until)| *until)
            .max();
        recorded.max(owned)
    }
}

pub(crate) use granary_core::__tables::{shrink_if_sparse, SHRINK_FROM};

/// How long a host keeps retrying the re-registration of an activation with an
/// owner that has not seen the membership change yet (answers `NotOwner`); after
/// that the activation is deactivated rather than left unrecorded.
const REBUILD_GRACE: Duration = Duration::from_secs(5);

/// Attempts at delivering a "re-registered" notice to one member.
const REBUILT_NOTICE_ATTEMPTS: u32 = 3;

/// Re-registrations in flight at once after a membership change.
const REREGISTER_CONCURRENCY: usize = 64;

/// Progress of the directory rebuild after the last membership change this node saw.
struct Rebuild {
    /// Fingerprint of this node's current ring.
    ring: u64,
    /// The latest ring fingerprint each host said it finished re-registering for.
    done: HashMap<SocketAddr, u64>,
}

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
            kinds,
            local: Mutex::new(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
            activating: Mutex::new(HashMap::new()),
            superseded: Mutex::new(HashMap::new()),
            directory: Directory::default(),
            meters,
            kind_meters,
            cache: LocationCache::new(config.location_cache),
            rpc: Rpc::default(),
            round_robin: AtomicUsize::new(0),
            config,
            shutting_down: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
            seq: AtomicU64::new(1),
            rebuild: Mutex::new(Rebuild {
                ring: 0,
                done: HashMap::new(),
            }),
            fence: Mutex::new(Fence::default()),
            views: tokio::sync::watch::channel(0).0,
            lease,
            unregistering: AtomicUsize::new(0),
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

    /// Where `identity` lives: the cache, else its directory owner (which activates
    /// it if needed). `stale` is a location the caller found dead.
    pub(crate) async fn locate(
        self: &Arc<Self>,
        identity: &Identity,
        stale: Option<Location>,
        placement: crate::placement::PlacementTag,
    ) -> Result<Location, VirtualError> {
        if self.stateless_pool(identity.kind()).is_some() {
            // A stateless worker kind hosted here: served by a local worker.
            return match self.worker_here(identity).await {
                Reply::Located(loc) => Ok(loc),
                Reply::Failed(f) => Err(failure_error(identity, f)),
                other => Err(VirtualError::Setup(format!("unexpected reply {other:?}"))),
            };
        }
        if stale.is_none() {
            // An activation here is found in the local table; the cache holds only
            // locations on other nodes, so a node's own activations cost it no entry.
            if let Some(loc) = self.find_local(identity) {
                self.meters.cache_hit();
                return Ok(loc);
            }
            if let Some(loc) = self.cache.get(identity) {
                self.meters.cache_hit();
                return Ok(loc);
            }
        }
        if let Members::Client(_) = self.members {
            return self
                .locate_through_gateway(identity, stale, placement)
                .await;
        }
        let owner = self
            .members
            .owner(identity)
            .ok_or(VirtualError::NoMembers)?;
        self.meters.lookup();
        let reply = if owner == self.me {
            self.serve_lookup(identity, self.me, placement, stale).await
        } else {
            let req = Request::Lookup {
                kind: identity.kind().to_owned(),
                key: identity.key().to_owned(),
                requester: self.me,
                placement,
                stale,
            };
            tokio::select! {
                reply = self.rpc.call(self, owner, req) => reply?,
                // The owner went Down while we waited (paused, cut off): its answer
                // would come at the RPC timeout at best; the caller asks the new owner.
                () = self.host_lost(owner) => {
                    return Err(VirtualError::Unavailable {
                        identity: identity.to_string(),
                        attempts: 1,
                        last: format!("directory owner {owner} went Down during the lookup"),
                    })
                }
            }
        };
        match reply {
            Reply::Located(loc) => {
                if loc.host != self.me {
                    self.cache.insert(identity.clone(), loc.clone());
                }
                Ok(loc)
            }
            Reply::NotOwner => Err(VirtualError::Unavailable {
                identity: identity.to_string(),
                attempts: 1,
                last: format!("{owner} does not own the identity yet (membership changing)"),
            }),
            Reply::Failed(f) => Err(failure_error(identity, f)),
            other => Err(VirtualError::Setup(format!("unexpected reply {other:?}"))),
        }
    }

    /// A client's lookup: its gateway locates the identity (a client has no
    /// connection to the directory owners, only to its gateways).
    async fn locate_through_gateway(
        self: &Arc<Self>,
        identity: &Identity,
        stale: Option<Location>,
        placement: crate::placement::PlacementTag,
    ) -> Result<Location, VirtualError> {
        let gateway = (self.gateway(&identity.to_string())).ok_or(VirtualError::NoMembers)?;
        self.meters.lookup();
        let req = Request::Locate {
            kind: identity.kind().to_owned(),
            key: identity.key().to_owned(),
            placement,
            stale,
        };
        match self.rpc.call(self, gateway, req).await? {
            Reply::Located(loc) => {
                if loc.host != self.me {
                    self.cache.insert(identity.clone(), loc.clone());
                }
                Ok(loc)
            }
            Reply::Failed(f) => Err(failure_error(identity, f)),
            other => Err(VirtualError::Setup(format!("unexpected reply {other:?}"))),
        }
    }

    /// The gateway a client sends `target`'s calls through now: one whose connection
    /// is up, chosen by a hash of `target` (so the calls spread over the gateways while
    /// one target's messages keep one path, and their order), else the first it has.
    /// `None` on a member.
    pub(crate) fn gateway(&self, target: &str) -> Option<SocketAddr> {
        let gateways = self.members.gateways();
        let transport = self.remote.transport();
        let up: Vec<SocketAddr> = (gateways.iter().copied())
            .filter(|g| transport.is_connected(*g))
            .collect();
        if up.is_empty() {
            return gateways.first().copied();
        }
        let hash = (target.bytes()).fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Some(up[(hash % up.len() as u64) as usize])
    }

    /// The activation at `loc`, type erased: straight to its host from a member,
    /// through a gateway from a client.
    pub(crate) fn activation_target(&self, loc: &Location) -> Arc<dyn RemoteTarget> {
        match self.gateway(&loc.name) {
            Some(gateway) => self.remote.remote_target_via(gateway, loc.host, &loc.name),
            None => self.remote.remote_target(loc.host, &loc.name),
        }
    }

    pub(crate) fn invalidate(&self, identity: &Identity) {
        self.cache.remove(identity);
    }

    /// The tracked door of an activation here, if it is the one named.
    pub(crate) fn local_door(
        &self,
        identity: &Identity,
        name: &str,
    ) -> Option<Arc<dyn crate::tracked::ActivationDoor>> {
        self.activation_door(identity, |n| n == name)
    }

    /// The door of the activation (or stateless worker) of `identity` here whose
    /// name passes `is_named`, alive or closing.
    pub(crate) fn activation_door(
        &self,
        identity: &dyn granary_storage::IdentityParts,
        is_named: impl Fn(&str) -> bool,
    ) -> Option<Arc<dyn crate::tracked::ActivationDoor>> {
        if let Some(entry) = self.local.lock().get(identity) {
            if is_named(&entry.name) {
                return Some(entry.door.clone());
            }
        }
        let workers = self.workers.lock();
        workers
            .get(identity)?
            .iter()
            .find(|w| is_named(&w.name))
            .map(|w| w.door.clone())
    }

    /// Locations in this node's cache.
    pub(crate) fn cached_locations(&self) -> usize {
        self.cache.len()
    }

    /// Live activations of `kind` here.
    pub(crate) fn load(&self, kind: &str) -> u64 {
        self.local
            .lock()
            .iter()
            .filter(|(id, a)| id.kind() == kind && !a.tracker.is_closed())
            .count() as u64
            + self
                .workers
                .lock()
                .iter()
                .filter(|(id, _)| id.kind() == kind)
                .flat_map(|(_, ws)| ws.iter())
                .filter(|w| !w.tracker.is_closed())
                .count() as u64
    }

    pub(crate) fn has_local(&self, identity: &Identity, name: &str) -> bool {
        let alive = |a: &LocalActivation| *a.name == *name && !a.tracker.is_closed();
        self.local.lock().get(identity).is_some_and(alive)
            || self
                .workers
                .lock()
                .get(identity)
                .is_some_and(|ws| ws.iter().any(alive))
    }

    /// The live (not closing) activation of `identity` here.
    pub(crate) fn find_local(&self, identity: &Identity) -> Option<Location> {
        self.local
            .lock()
            .get(identity)
            .filter(|a| !a.tracker.is_closed())
            .map(|a| Location {
                host: self.me,
                name: a.name.clone(),
            })
    }

    /// Notes a membership change to `ring`: until each host says it re-registered
    /// for this ring, this node asks it before placing (see [`Self::rebuild_pending`]).
    fn note_ring_change(&self, ring: &HashRing) {
        self.rebuild.lock().ring = members::fingerprint(ring);
    }

    /// `host` finished re-registering its activations for the ring `ring`.
    pub(crate) fn note_rebuilt(&self, host: SocketAddr, ring: u64) {
        self.rebuild.lock().done.insert(host, ring);
    }

    /// The view of the members changed (a membership event, a client's refresh).
    pub(crate) fn view_changed(&self) {
        self.views.send_modify(|n| *n += 1);
    }

    /// Completes once `host` is no longer an Up member in this node's view: a call
    /// waiting for a reply from it gives up then instead of at its timeout (a
    /// partition or a dead process drops packets silently).
    ///
    /// Only a member trusts its view for this: its ring is the cluster's own
    /// decision. A client's view is a copy of whichever member answered last, and a
    /// member that has not yet seen a join can leave out a live host; giving up on
    /// that host would resend a request it is handling. A client learns that a host
    /// is gone from its transport instead (the ask fails with `Unreachable` once the
    /// connection is lost or heartbeats stop).
    pub(crate) async fn host_lost(&self, host: SocketAddr) {
        if matches!(self.members, Members::Client(_)) {
            return std::future::pending().await;
        }
        let mut changes = self.views.subscribe();
        while self.members.is_alive(host) {
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A member went Down; `before` is the ring before that change.
    pub(crate) fn note_down(&self, before: Arc<HashRing>) {
        let until = tokio::time::Instant::now() + self.config.down_margin;
        self.fence.lock().fence_owners_of(before, until);
    }

    /// `identity`'s entry names a host this node no longer counts alive, and the
    /// entry was still here: the membership task has not handled that Down yet (it
    /// would have dropped the entry and fenced the identity). Fence it now, for the
    /// whole margin: the host may be the minority side of a partition that stops
    /// hosting only about as late as it was downed.
    pub(crate) fn fence_entry_of_dead_host(&self, identity: &Identity) {
        let until = tokio::time::Instant::now() + self.config.down_margin;
        let mut fence = self.fence.lock();
        if !fence.recorded.contains_key(identity) {
            fence.record(identity.clone(), until);
        }
    }

    /// Notes the current ring for [`Fence::seen`] (every lookup does, so a placement
    /// compares with a recent one): members gone since the last look fence the
    /// identities they owned, from now (later than the Down itself, so never too
    /// short), even before the membership task gets to [`Runtime::note_down`].
    pub(crate) fn note_ring_seen(&self) {
        let ring = self.members.ring();
        let mut fence = self.fence.lock();
        if fence
            .seen
            .as_ref()
            .is_some_and(|seen| Arc::ptr_eq(seen, &ring))
        {
            return;
        }
        if let Some(seen) = fence.seen.replace(ring.clone()) {
            if seen.nodes().any(|(node, _)| !ring.contains(node.addr)) {
                let until = tokio::time::Instant::now() + self.config.down_margin;
                fence.fence_owners_of(seen, until);
            }
        }
    }

    /// Until when a new activation of `identity` must wait (see [`Fence`]).
    pub(crate) fn placement_fence(&self, identity: &Identity) -> Option<tokio::time::Instant> {
        self.note_ring_seen();
        let now = tokio::time::Instant::now();
        let mut fence = self.fence.lock();
        fence.until(identity, now, |host| self.members.is_alive(host))
    }

    /// Hosts among `hosts` that have not said they re-registered their activations
    /// for this node's current ring: one of them may hold an activation this node
    /// has no entry for yet, so a placement asks them first. Every host says so once
    /// it handled the change (it deactivates what it could not register), so the
    /// set empties as the views converge; there is no time limit after which an
    /// owner places without asking.
    pub(crate) fn rebuild_pending(&self, hosts: &[SocketAddr]) -> Vec<SocketAddr> {
        let rebuild = self.rebuild.lock();
        hosts
            .iter()
            .copied()
            .filter(|h| rebuild.done.get(h) != Some(&rebuild.ring))
            .collect()
    }

    /// Activates `identity` here for the directory owner `owner`, or returns the
    /// live activation.
    ///
    /// `owner` must be the identity's owner in this node's view both before the
    /// activation starts and once it is in the local table: if the ring moved in
    /// between, the activation is stopped and the owner told `NotOwner` (its caller
    /// retries with the new owner). An activation that entered the table while
    /// `owner` was still the owner is in the table when this node handles the ring
    /// change, so it is re-registered with the new owner; one that started for an
    /// old owner after that would be registered with nobody (the duplicate
    /// activation after a rejoin, issue 13).
    pub(crate) async fn activate_here(
        self: &Arc<Self>,
        identity: &Identity,
        owner: SocketAddr,
        request: Option<u64>,
    ) -> Reply {
        if self.members.owner(identity) != Some(owner) {
            return Reply::NotOwner;
        }
        if self.is_shutting_down() || !self.members.is_alive(self.me) || !self.lease.is_valid() {
            // Shutting down, Down on the minority side of a partition, or without a
            // host lease (its activation would refuse every message): host nothing.
            return Reply::Failed(Failure::ShuttingDown);
        }
        let Some(slot) = self.kinds.get(identity.kind()) else {
            return Reply::Failed(Failure::NoHost(identity.kind().to_owned()));
        };
        let lock = self.activation_lock(identity);
        let reply = {
            let _guard = lock.lock().await;
            if request.is_some_and(|id| self.is_superseded(owner, id)) {
                // The owner heard "not here" from a `Confirm` sent after this
                // request: it may have placed the identity elsewhere since.
                drop(_guard);
                self.release_activation_lock(identity, lock);
                return Reply::Failed(Failure::Other(format!(
                    "activation of {identity} superseded by its owner's later confirm"
                )));
            }
            let existing = self
                .local
                .lock()
                .get(identity)
                .map(|a| (a.name.clone(), a.tracker.is_closed(), a.wait_fn()));
            let mut answer = None;
            if let Some((name, closed, wait)) = existing {
                if !closed {
                    answer = Some(Reply::Located(Location {
                        host: self.me,
                        name,
                    }));
                } else {
                    // Deactivating: let it finish (and save) before the next one loads.
                    wait.await;
                }
            }
            match answer {
                Some(a) => a,
                None => {
                    let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                    let name = crate::door::activation_name(identity, false, seq);
                    match slot
                        .kind
                        .start(
                            self.clone(),
                            identity.clone(),
                            name.clone(),
                            slot.store.clone(),
                        )
                        .await
                    {
                        Ok(activation) => {
                            self.local.lock().insert(identity.clone(), activation);
                            if self.is_shutting_down() || !self.members.is_alive(self.me) {
                                // Went Down (or began shutting down) while this one was
                                // starting, after `deactivate_all` looked: stop it too.
                                self.stop_local(identity, &name);
                                Reply::Failed(Failure::ShuttingDown)
                            } else if !self.note_registered(identity, &name, owner) {
                                // The ring moved while it started: `owner` no longer
                                // owns it, and the new owner has no entry for it.
                                tracing::debug!(%identity, %owner, "owner changed during activation; stopping it");
                                self.stop_local(identity, &name);
                                Reply::NotOwner
                            } else {
                                Reply::Located(Location {
                                    host: self.me,
                                    name,
                                })
                            }
                        }
                        Err(e) => Reply::Failed(Failure::Other(e.to_string())),
                    }
                }
            }
        };
        self.release_activation_lock(identity, lock);
        reply
    }

    /// The lock that orders the activations (and confirms) of `identity` here.
    fn activation_lock(&self, identity: &Identity) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.activating.lock();
        map.entry(identity.clone()).or_default().clone()
    }

    /// Gives back a lock from [`Self::activation_lock`] (unlocked), forgetting it
    /// when nobody else holds it.
    fn release_activation_lock(&self, identity: &Identity, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.activating.lock();
        if map.get(identity).is_some_and(|l| Arc::strong_count(l) == 2) {
            map.remove(identity);
            shrink_if_sparse(&mut map);
        }
        drop(lock);
    }

    fn is_superseded(&self, owner: SocketAddr, request: u64) -> bool {
        self.superseded
            .lock()
            .get(&owner)
            .is_some_and(|&first| request < first)
    }

    /// Answers an owner's [`crate::protocol::Request::Confirm`] (request `request`
    /// from `owner`): the live activation of `identity` here, or `Bool(false)`.
    /// Taken under the identity's activation lock, so an activation in progress is
    /// seen; and from now on `owner`'s earlier requests are refused, so an
    /// `Activate` still on its way cannot start after this "no".
    pub(crate) async fn confirm_here(
        self: &Arc<Self>,
        identity: &Identity,
        owner: SocketAddr,
        request: u64,
    ) -> Reply {
        let lock = self.activation_lock(identity);
        let reply = {
            let _guard = lock.lock().await;
            {
                let mut superseded = self.superseded.lock();
                let first = superseded.entry(owner).or_default();
                *first = (*first).max(request);
            }
            match self.find_local(identity) {
                Some(loc) => Reply::Located(loc),
                None => Reply::Bool(false),
            }
        };
        self.release_activation_lock(identity, lock);
        reply
    }

    /// Records that the owner at `owner` (its incarnation on this node's current
    /// ring) holds the entry of the activation `name` of `identity`; `false` if
    /// `owner` does not own the identity on the current ring.
    ///
    /// Read after the activation is in the local table: if the ring changes later,
    /// the membership task sees the activation and its recorded owner and
    /// re-registers it.
    fn note_registered(&self, identity: &Identity, name: &str, owner: SocketAddr) -> bool {
        let ring = self.members.ring();
        let Some(current) = ring.owner_of_position(members::ring_position(identity)) else {
            return false;
        };
        if current.addr != owner {
            return false;
        }
        if let Some(a) = self.local.lock().get_mut(identity) {
            if *a.name == *name {
                a.registered_with = Some(current);
            }
        }
        true
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

    /// Called by an activation once it stopped.
    pub(crate) fn activation_ended(self: &Arc<Self>, identity: &Identity, name: &Arc<str>) {
        self.note_activation(identity.kind(), crate::observe::Activation::Passivated);
        // Counted as unregistering before it leaves the local table, so `settled`
        // never sees it in neither place.
        self.unregistering.fetch_add(1, Ordering::AcqRel);
        {
            let mut local = self.local.lock();
            if local.get(identity).is_some_and(|a| a.name == *name) {
                local.remove(identity);
                shrink_if_sparse(&mut local);
            }
        }
        let at = Location {
            host: self.me,
            name: name.clone(),
        };
        // A passivated identity leaves nothing behind in the cache.
        self.cache.forget_at(identity, &at);
        // Workers are not in the directory; a crashed node unregisters nothing.
        if self.remove_worker(identity, name) || self.crashed.load(Ordering::Acquire) {
            self.unregistering.fetch_sub(1, Ordering::AcqRel);
            self.ends.send_modify(|n| *n += 1);
            return;
        }
        self.ends.send_modify(|n| *n += 1);
        let rt = self.clone();
        let identity = identity.clone();
        tokio::spawn(async move {
            rt.unregister(&identity, at).await;
            rt.unregistering.fetch_sub(1, Ordering::AcqRel);
            rt.ends.send_modify(|n| *n += 1);
        });
    }

    /// Removes the directory entry of the ended activation `at` of `identity`.
    async fn unregister(self: &Arc<Self>, identity: &Identity, at: Location) {
        let Some(owner) = self.members.owner(identity) else {
            return;
        };
        if owner == self.me {
            self.directory.unregister(identity, &at);
            return;
        }
        let req = Request::Unregister {
            kind: identity.kind().to_owned(),
            key: identity.key().to_owned(),
            at,
        };
        if let Err(e) = self.rpc.call(self, owner, req).await {
            tracing::debug!(%identity, error = %e, "unregister not acknowledged");
        }
    }

    /// Whether no activation of `kind` is in this node's table (live or still
    /// deactivating) and every ended activation's unregistration has finished.
    fn is_settled(&self, kind: &str) -> bool {
        self.unregistering.load(Ordering::Acquire) == 0
            && !self.local.lock().keys().any(|id| id.kind() == kind)
            && !self.workers.lock().keys().any(|id| id.kind() == kind)
    }

    /// Completes once no activation of `kind` is left on this node: each one's
    /// `on_deactivate` has run and its directory entry is gone (or its owner did not
    /// answer the unregistration). `Err(Timeout)` if that is not so by `timeout`.
    pub(crate) async fn settled(&self, kind: &str, timeout: Duration) -> Result<(), VirtualError> {
        let mut ends = self.ends.subscribe();
        let wait = async {
            while !self.is_settled(kind) {
                if ends.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| VirtualError::Timeout)
    }

    /// Whether this node is Up in its own view and holds a host lease: it can host
    /// activations.
    pub(crate) fn can_host(&self) -> bool {
        !self.is_shutting_down() && self.members.is_alive(self.me) && self.lease.is_valid()
    }

    /// Completes once [`Self::can_host`]; `Err(Timeout)` if not by `timeout`.
    pub(crate) async fn ready(&self, timeout: Duration) -> Result<(), VirtualError> {
        let mut views = self.views.subscribe();
        // The lease is renewed every quarter of its length without a membership
        // event: look again at that pace too.
        let recheck = (self.config.host_lease / 4).max(Duration::from_millis(10));
        let wait = async {
            while !self.can_host() {
                let _ = tokio::time::timeout(recheck, views.changed()).await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| VirtualError::Timeout)
    }

    /// Stops the activation of `identity` if it is the one named.
    pub(crate) fn stop_local(&self, identity: &Identity, name: &str) {
        if let Some(a) = self.local.lock().get(identity) {
            if *a.name == *name {
                a.tracker.close();
                a.door.stop();
            }
        }
    }

    /// Passivates activations idle for longer than their kind's timeout.
    ///
    /// The clock is read once per sweep and each kind's cut-off computed once, so a
    /// sweep costs one uncontended lock per activation, no system call.
    pub(crate) fn sweep_idle(&self) {
        let now = tokio::time::Instant::now();
        let idle_since: HashMap<&str, tokio::time::Instant> = self
            .kinds
            .iter()
            .filter_map(|(kind, slot)| {
                let cut_off = now.checked_sub(slot.kind.config().idle_timeout)?;
                Some((*kind, cut_off))
            })
            .collect();
        let local = self.local.lock();
        for (identity, a) in local.iter() {
            let Some(&since) = idle_since.get(identity.kind()) else {
                continue;
            };
            if a.tracker.try_close_idle(since) {
                a.door.stop();
            }
        }
        drop(local);
        for (identity, ws) in self.workers.lock().iter() {
            let Some(&since) = idle_since.get(identity.kind()) else {
                continue;
            };
            for w in ws {
                if w.tracker.try_close_idle(since) {
                    w.door.stop();
                }
            }
        }
    }

    /// Stops every local activation (saving state unless crashed) and waits.
    pub(crate) async fn deactivate_all(&self) {
        let stop = |a: &LocalActivation| {
            a.tracker.close();
            a.door.stop();
            a.door.wait_stopped()
        };
        let mut waits: Vec<BoxFuture<'static, ()>> = self.local.lock().values().map(stop).collect();
        waits.extend(self.workers.lock().values().flatten().map(stop));
        futures::future::join_all(waits).await;
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

    /// After a membership change: forget locations on nodes that are gone, drop
    /// directory entries this node no longer owns, and register every local
    /// activation whose recorded owner (address and incarnation) is not its owner on
    /// the current ring. An activation that cannot be registered is stopped (and
    /// waited for): a live activation no owner records is how a second one gets
    /// placed. Then tells every member this node is done for the ring.
    pub(crate) async fn on_membership_change(self: &Arc<Self>) {
        let ring = self.members.ring();
        self.note_ring_change(&ring);
        self.view_changed();
        let alive = |host: &SocketAddr| self.members.is_alive(*host);
        self.cache.retain_hosts(|h| alive(h));
        self.superseded.lock().retain(|h, _| alive(h));
        let lost = self.directory.retain_hosts(|h| alive(h));
        if !lost.is_empty() {
            let until = tokio::time::Instant::now() + self.config.down_margin;
            let mut fence = self.fence.lock();
            for identity in lost {
                fence.record(identity, until);
            }
        }
        // Entries of ranges that moved away: their new owner rebuilds them from the
        // hosts; kept here they would be served again, stale, if the range came back.
        self.directory.retain_identities(|identity| {
            ring.owner_of_position(members::ring_position(identity))
                .map(|n| n.addr)
                == Some(self.me)
        });
        let moved: Vec<(Identity, Arc<str>, NodeId)> = self
            .local
            .lock()
            .iter()
            .filter(|(_, a)| !a.tracker.is_closed())
            .filter_map(|(identity, a)| {
                let owner = ring.owner_of_position(members::ring_position(identity))?;
                (a.registered_with != Some(owner))
                    .then(|| (identity.clone(), a.name.clone(), owner))
            })
            .collect();
        // Concurrently (bounded), so that one unreachable owner does not hold up the
        // rest for its RPC timeout each.
        let unregistered: Vec<(Identity, Arc<str>)> = futures::stream::iter(moved)
            .map(|(identity, name, owner)| async move {
                let registered = self
                    .reregister(identity.clone(), name.clone(), owner.addr)
                    .await;
                let still_owner = self.members.owner(&identity) == Some(owner.addr);
                if registered && still_owner {
                    if let Some(a) = self.local.lock().get_mut(&identity) {
                        if a.name == name {
                            a.registered_with = Some(owner);
                        }
                    }
                }
                (!registered).then_some((identity, name))
            })
            .buffer_unordered(REREGISTER_CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        if !unregistered.is_empty() {
            tracing::info!(
                count = unregistered.len(),
                "activations could not be registered with their new owner; deactivating them"
            );
            let waits: Vec<_> = unregistered
                .iter()
                .filter_map(|(identity, name)| {
                    let wait = self
                        .local
                        .lock()
                        .get(identity)
                        .filter(|a| a.name == *name)
                        .map(LocalActivation::wait_fn)?;
                    self.stop_local(identity, name);
                    Some(wait)
                })
                .collect();
            futures::future::join_all(waits).await;
        }
        self.announce_rebuilt(&ring);
    }

    /// Registers the live activation `name` of `identity` with its new owner; stops
    /// it if the owner already records another live one. Retries while the owner has
    /// not seen the membership change yet; `false` if the owner never accepted and
    /// the ring did not move on (a later change registers it again otherwise).
    async fn reregister(
        self: &Arc<Self>,
        identity: Identity,
        name: Arc<str>,
        owner: SocketAddr,
    ) -> bool {
        self.meters.handoff();
        let deadline = tokio::time::Instant::now() + REBUILD_GRACE;
        let mut pause = Duration::from_millis(5);
        loop {
            let at = Location {
                host: self.me,
                name: name.clone(),
            };
            let kept = if owner == self.me {
                self.serve_register(&identity, at).await
            } else {
                let req = Request::Register {
                    kind: identity.kind().to_owned(),
                    key: identity.key().to_owned(),
                    at,
                };
                match self.rpc.call(self, owner, req).await {
                    Ok(reply) => reply,
                    Err(_) => return false,
                }
            };
            match kept {
                Reply::Bool(false) => {
                    tracing::info!(%identity, "duplicate activation found on re-registration; deactivating it");
                    self.stop_local(&identity, &name);
                    return true;
                }
                Reply::NotOwner if self.members.owner(&identity) != Some(owner) => {
                    // The ring moved on again: the next change registers it with
                    // the owner then (its recorded owner stays the old one).
                    return true;
                }
                Reply::NotOwner if tokio::time::Instant::now() + pause < deadline => {
                    // Backoff while the owner's view catches up with ours.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Reply::NotOwner => return false,
                _ => return true,
            }
        }
    }

    /// Tells every member that this node's activations are registered with their
    /// owners on `ring` (or deactivated), so owners stop asking it before placing.
    fn announce_rebuilt(self: &Arc<Self>, ring: &HashRing) {
        let print = members::fingerprint(ring);
        self.note_rebuilt(self.me, print);
        for (node, _) in ring.nodes() {
            if node.addr == self.me {
                continue;
            }
            let rt = self.clone();
            tokio::spawn(async move {
                for attempt in 1..=REBUILT_NOTICE_ATTEMPTS {
                    let req = Request::Rebuilt { ring: print };
                    match rt.rpc.call(&rt, node.addr, req).await {
                        Ok(_) => return,
                        Err(e) => {
                            tracing::debug!(to = %node.addr, attempt, error = %e, "rebuild notice not acknowledged");
                        }
                    }
                    if !rt.members.is_alive(node.addr) {
                        return;
                    }
                }
            });
        }
    }
}

impl LocalActivation {
    fn wait_fn(&self) -> BoxFuture<'static, ()> {
        self.door.wait_stopped()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(addrs: &[SocketAddr]) -> Arc<HashRing> {
        let mut ring = HashRing::new();
        for addr in addrs {
            ring.insert(NodeId::new(*addr, 1), 64);
        }
        Arc::new(ring)
    }

    /// Two minority members downed one after the other: the ring before the second
    /// Down no longer names the first one, yet the identities the first one owned
    /// stay fenced for the first Down's whole margin.
    #[test]
    fn a_second_down_keeps_the_fence_of_the_first() {
        let addrs: Vec<SocketAddr> = (1..=5)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 7000 + i)))
            .collect();
        let (first, second) = (addrs[3], addrs[4]);
        let before_first = ring(&addrs);
        let before_second = ring(&[addrs[0], addrs[1], addrs[2], second]);
        let identity = (0..1000)
            .map(|i| Identity::new("test.Counter", format!("k{i}")))
            .find(|id| {
                let pos = members::ring_position(id);
                before_first.owner_of_position(pos).map(|n| n.addr) == Some(first)
                    && before_second.owner_of_position(pos).map(|n| n.addr) != Some(second)
            })
            .expect("some key the first downed member owned");
        let now = tokio::time::Instant::now();
        let first_until = now + Duration::from_secs(1);
        let second_until = now + Duration::from_millis(1200);
        let mut fence = Fence::default();
        fence.fence_owners_of(before_first, first_until);
        fence.fence_owners_of(before_second, second_until);
        let alive = |host: SocketAddr| host != first && host != second;
        assert_eq!(fence.until(&identity, now, alive), Some(first_until));
        assert_eq!(fence.until(&identity, first_until, alive), None);
    }

    /// A recorded identity waits until its deadline and is forgotten after it; the
    /// later of two deadlines counts.
    #[test]
    fn a_recorded_identity_waits_for_its_latest_deadline_then_is_forgotten() {
        let identity = Identity::new("test.Counter", "k");
        let now = tokio::time::Instant::now();
        let (early, late) = (now + Duration::from_secs(1), now + Duration::from_secs(2));
        let mut fence = Fence::default();
        fence.record(identity.clone(), early);
        fence.record(identity.clone(), late);
        let alive = |_: SocketAddr| true;
        assert_eq!(fence.until(&identity, now, alive), Some(late));
        assert_eq!(fence.until(&identity, early, alive), Some(late));
        assert_eq!(fence.until(&identity, late, alive), None);
        assert!(fence.recorded.is_empty());
    }
}
