//! The node's virtual-actor runtime: the local activation table, the directory
//! partition this node owns, the location cache, control requests, passivation
//! and the reaction to membership changes.

mod control;
mod directory;
mod members;
mod workers;

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use granary_cluster::HashRing;
use granary_core::{ActorRef, ActorSystem};
use granary_remote::RemoteNode;
use granary_storage::{Identity, StateStore};
use parking_lot::Mutex;

use crate::activation::Activation;
use crate::actor::VirtualActor;
use crate::error::VirtualError;
use crate::kind::ErasedKind;
use crate::protocol::{Failure, Location, Reply, Request};
use crate::tracker::Tracker;

pub(crate) use control::{ControlInbox, Rpc};
pub(crate) use directory::Directory;
pub(crate) use members::Members;

/// One live activation on this node, type-erased.
pub(crate) struct LocalActivation {
    pub(crate) name: String,
    pub(crate) tracker: Arc<Tracker>,
    /// The tracked `ActorRef<Activation<A>>`.
    pub(crate) handle: Box<dyn Any + Send + Sync>,
    pub(crate) stop: Box<dyn Fn() + Send + Sync>,
    pub(crate) wait: Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>,
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
    pub(crate) directory: Directory,
    cache: Mutex<HashMap<Identity, Location>>,
    pub(crate) rpc: Rpc,
    pub(crate) round_robin: AtomicUsize,
    pub(crate) config: RuntimeConfig,
    shutting_down: AtomicBool,
    /// Set by a simulated crash: activations stop without saving or unregistering.
    crashed: AtomicBool,
    seq: AtomicU64,
    ring_changed_at: Mutex<tokio::time::Instant>,
}

/// How long after a membership change a directory owner asks every host of the
/// kind before placing an identity it has no entry for (the hosts' re-registrations
/// may not have arrived yet).
const REBUILD_GRACE: Duration = Duration::from_secs(5);

impl Runtime {
    pub(crate) fn new(
        remote: RemoteNode,
        members: Members,
        kinds: HashMap<&'static str, KindSlot>,
        config: RuntimeConfig,
    ) -> Self {
        Self {
            me: remote.local_addr(),
            system: remote.system().clone(),
            remote,
            members,
            kinds,
            local: Mutex::new(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
            activating: Mutex::new(HashMap::new()),
            directory: Directory::default(),
            cache: Mutex::new(HashMap::new()),
            rpc: Rpc::default(),
            round_robin: AtomicUsize::new(0),
            config,
            shutting_down: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
            seq: AtomicU64::new(1),
            ring_changed_at: Mutex::new(tokio::time::Instant::now()),
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
            if let Some(loc) = self.cache.lock().get(identity) {
                return Ok(loc.clone());
            }
        }
        let owner = self
            .members
            .owner(identity)
            .ok_or(VirtualError::NoMembers)?;
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
            self.rpc.call(self, owner, req).await?
        };
        match reply {
            Reply::Located(loc) => {
                self.cache.lock().insert(identity.clone(), loc.clone());
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

    pub(crate) fn invalidate(&self, identity: &Identity) {
        self.cache.lock().remove(identity);
    }

    /// The tracked local ref of an activation here, if it is the one named.
    pub(crate) fn local_ref<A: VirtualActor>(
        &self,
        identity: &Identity,
        name: &str,
    ) -> Option<ActorRef<Activation<A>>> {
        let found = |entry: &LocalActivation| {
            entry
                .handle
                .downcast_ref::<ActorRef<Activation<A>>>()
                .cloned()
        };
        if let Some(entry) = self.local.lock().get(identity) {
            if entry.name == name {
                return found(entry);
            }
        }
        let workers = self.workers.lock();
        workers
            .get(identity)?
            .iter()
            .find(|w| w.name == name)
            .and_then(found)
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

    /// Every live activation here (kind, key).
    pub(crate) fn local_identities(&self) -> Vec<Identity> {
        self.local.lock().keys().cloned().collect()
    }

    pub(crate) fn has_local(&self, identity: &Identity, name: &str) -> bool {
        let alive = |a: &LocalActivation| a.name == name && !a.tracker.is_closed();
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

    /// Notes a membership change (starts the re-registration grace period).
    pub(crate) fn note_ring_change(&self) {
        *self.ring_changed_at.lock() = tokio::time::Instant::now();
    }

    /// Whether re-registrations after the last membership change may still be in
    /// flight.
    pub(crate) fn in_rebuild_grace(&self) -> bool {
        self.ring_changed_at.lock().elapsed() < REBUILD_GRACE
    }

    /// Activates `identity` here, or returns the live activation.
    pub(crate) async fn activate_here(self: &Arc<Self>, identity: &Identity) -> Reply {
        if self.is_shutting_down() || !self.members.is_alive(self.me) {
            // Shutting down, or Down on the minority side of a partition: host nothing.
            return Reply::Failed(Failure::ShuttingDown);
        }
        let Some(slot) = self.kinds.get(identity.kind()) else {
            return Reply::Failed(Failure::NoHost(identity.kind().to_owned()));
        };
        let lock = {
            let mut map = self.activating.lock();
            map.entry(identity.clone()).or_default().clone()
        };
        let reply = {
            let _guard = lock.lock().await;
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
                    let name = format!(
                        "granary.v/{identity}#{}",
                        self.seq.fetch_add(1, Ordering::Relaxed)
                    );
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
                            Reply::Located(Location {
                                host: self.me,
                                name,
                            })
                        }
                        Err(e) => Reply::Failed(Failure::Other(e.to_string())),
                    }
                }
            }
        };
        let mut map = self.activating.lock();
        if map.get(identity).is_some_and(|l| Arc::strong_count(l) == 2) {
            map.remove(identity);
        }
        drop(lock);
        reply
    }

    /// Called by an activation once it stopped.
    pub(crate) fn activation_ended(self: &Arc<Self>, identity: &Identity, name: &str) {
        {
            let mut local = self.local.lock();
            if local.get(identity).is_some_and(|a| a.name == name) {
                local.remove(identity);
            }
        }
        if self.remove_worker(identity, name) {
            // Workers are not in the directory.
            return;
        }
        if self.crashed.load(Ordering::Acquire) {
            return;
        }
        let at = Location {
            host: self.me,
            name: name.to_owned(),
        };
        let rt = self.clone();
        let identity = identity.clone();
        tokio::spawn(async move {
            if let Some(owner) = rt.members.owner(&identity) {
                if owner == rt.me {
                    rt.directory.unregister(&identity, &at);
                } else {
                    let req = Request::Unregister {
                        kind: identity.kind().to_owned(),
                        key: identity.key().to_owned(),
                        at,
                    };
                    if let Err(e) = rt.rpc.call(&rt, owner, req).await {
                        tracing::debug!(%identity, error = %e, "unregister not acknowledged");
                    }
                }
            }
        });
    }

    /// Stops the activation of `identity` if it is the one named.
    pub(crate) fn stop_local(&self, identity: &Identity, name: &str) {
        if let Some(a) = self.local.lock().get(identity) {
            if a.name == name {
                a.tracker.close();
                (a.stop)();
            }
        }
    }

    /// Passivates activations idle for longer than their kind's timeout.
    pub(crate) fn sweep_idle(&self) {
        let local = self.local.lock();
        for (identity, a) in local.iter() {
            let Some(slot) = self.kinds.get(identity.kind()) else {
                continue;
            };
            if a.tracker.try_close_idle(slot.kind.config().idle_timeout) {
                (a.stop)();
            }
        }
        drop(local);
        for (identity, ws) in self.workers.lock().iter() {
            let Some(slot) = self.kinds.get(identity.kind()) else {
                continue;
            };
            for w in ws {
                if w.tracker.try_close_idle(slot.kind.config().idle_timeout) {
                    (w.stop)();
                }
            }
        }
    }

    /// Stops every local activation (saving state unless crashed) and waits.
    pub(crate) async fn deactivate_all(&self) {
        let stop = |a: &LocalActivation| {
            a.tracker.close();
            (a.stop)();
            (a.wait)()
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

    /// After a membership change: forget locations on nodes that are gone and
    /// re-register every local activation with its (possibly new) directory owner.
    ///
    /// Only activations whose owner (address and incarnation) differs between
    /// `previous` and the current ring are re-registered: the others' entries are
    /// where they were.
    pub(crate) async fn on_membership_change(self: &Arc<Self>, previous: &HashRing) {
        self.note_ring_change();
        let alive = |host: &SocketAddr| self.members.is_alive(*host);
        self.cache.lock().retain(|_, loc| alive(&loc.host));
        self.directory.retain_hosts(|h| alive(h));
        let ring = self.members.ring();
        for identity in self.local_identities() {
            let name = match self.local.lock().get(&identity) {
                Some(a) if !a.tracker.is_closed() => a.name.clone(),
                _ => continue,
            };
            let key = members::ring_key(&identity);
            let Some(owner_id) = ring.owner(&key) else {
                continue;
            };
            if previous.owner(&key) == Some(owner_id) {
                continue;
            }
            let owner = owner_id.addr;
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
                    Err(_) => continue,
                }
            };
            if matches!(kept, Reply::Bool(false)) {
                tracing::info!(%identity, "duplicate activation found on re-registration; deactivating it");
                self.stop_local(&identity, &name);
            }
        }
    }
}

impl LocalActivation {
    fn wait_fn(&self) -> BoxFuture<'static, ()> {
        (self.wait)()
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
