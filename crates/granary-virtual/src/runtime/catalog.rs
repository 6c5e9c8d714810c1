//! The activations this node hosts: one per identity of an ordinary kind, up to a pool
//! of stateless workers per identity of a worker kind. One lock over both tables; no
//! awaiting, no network, no knowledge of the directory — the host side of the runtime
//! (`hosting.rs`) decides what to start and stop, the catalog keeps track.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use granary_cluster::NodeId;
use granary_storage::{Identity, IdentityParts};
use parking_lot::Mutex;

use super::{shrink_if_sparse, IdentityMap};
use crate::tracked::ActivationDoor;
use crate::tracker::Tracker;

/// One live activation on this node, type-erased.
pub(crate) struct LocalActivation {
    pub(crate) name: Arc<str>,
    pub(crate) tracker: Arc<Tracker>,
    /// The tracked door to the activation (`Tracked<A>`): every local call, typed by
    /// an actor or by a contract, goes through it; it also stops the activation and
    /// waits for its end (one object, no closures).
    pub(crate) door: Arc<dyn ActivationDoor>,
    /// The directory owner (address and incarnation) that records this activation;
    /// `None` until one does. After a membership change every activation whose
    /// owner on the new ring differs is re-registered (`handoff.rs`).
    pub(crate) registered_with: Option<NodeId>,
}

impl LocalActivation {
    fn is_live(&self) -> bool {
        !self.tracker.is_closed()
    }

    fn stop(&self) {
        self.tracker.close();
        self.door.stop();
    }
}

/// What the catalog holds for an identity about to be activated.
pub(crate) enum Current {
    /// Nothing: start one.
    Nothing,
    /// A live activation, by name.
    Live(Arc<str>),
    /// One that is deactivating: resolves once it has stopped (and saved).
    Closing(BoxFuture<'static, ()>),
}

/// Which stateless worker of an identity serves a call.
pub(crate) enum WorkerPick {
    /// An existing live worker, by name.
    Use(Arc<str>),
    /// None is idle and the pool has room: start one.
    Start,
}

#[derive(Default)]
struct Tables {
    single: IdentityMap<LocalActivation>,
    workers: IdentityMap<Vec<LocalActivation>>,
}

/// The local activations and stateless workers, and the counters that name them.
#[derive(Default)]
pub(crate) struct Catalog {
    tables: Mutex<Tables>,
    /// Numbers activation names on this node (each name is unique in the process).
    names: AtomicU64,
    /// Turns of the round robin over an identity's busy workers.
    turns: AtomicUsize,
}

impl Catalog {
    /// A fresh name for an activation (or a stateless worker) of `identity`.
    pub(crate) fn next_name(&self, identity: &Identity, worker: bool) -> Arc<str> {
        let seq = self.names.fetch_add(1, Ordering::Relaxed) + 1;
        crate::door::activation_name(identity, worker, seq)
    }

    /// The door of the activation (or stateless worker) of `identity` whose name
    /// passes `is_named`, alive or closing.
    pub(crate) fn door(
        &self,
        identity: &dyn IdentityParts,
        is_named: impl Fn(&str) -> bool,
    ) -> Option<Arc<dyn ActivationDoor>> {
        let tables = self.tables.lock();
        if let Some(entry) = tables.single.get(identity) {
            if is_named(&entry.name) {
                return Some(entry.door.clone());
            }
        }
        (tables.workers.get(identity)?.iter())
            .find(|w| is_named(&w.name))
            .map(|w| w.door.clone())
    }

    /// The name of the live (not closing) activation of `identity`.
    pub(crate) fn live_name(&self, identity: &Identity) -> Option<Arc<str>> {
        let tables = self.tables.lock();
        let entry = tables.single.get(identity).filter(|a| a.is_live())?;
        Some(entry.name.clone())
    }

    /// What is there for `identity` (see [`Current`]).
    pub(crate) fn current(&self, identity: &Identity) -> Current {
        match self.tables.lock().single.get(identity) {
            None => Current::Nothing,
            Some(a) if a.is_live() => Current::Live(a.name.clone()),
            Some(a) => Current::Closing(a.door.wait_stopped()),
        }
    }

    /// Enters a started activation (replacing a stopped one of the same identity).
    pub(crate) fn insert(&self, identity: Identity, activation: LocalActivation) {
        self.tables.lock().single.insert(identity, activation);
    }

    /// Whether the activation or worker `name` of `identity` is here and live.
    pub(crate) fn is_live(&self, identity: &Identity, name: &str) -> bool {
        let alive = |a: &LocalActivation| *a.name == *name && a.is_live();
        let tables = self.tables.lock();
        tables.single.get(identity).is_some_and(alive)
            || (tables.workers.get(identity)).is_some_and(|ws| ws.iter().any(alive))
    }

    /// Live activations and workers of `kind`.
    pub(crate) fn live_count(&self, kind: &str) -> u64 {
        let tables = self.tables.lock();
        let single = (tables.single.iter())
            .filter(|(id, a)| id.kind() == kind && a.is_live())
            .count();
        let workers = (tables.workers.iter())
            .filter(|(id, _)| id.kind() == kind)
            .flat_map(|(_, ws)| ws.iter())
            .filter(|w| w.is_live())
            .count();
        (single + workers) as u64
    }

    /// Whether any activation or worker of `kind` is here, live or deactivating.
    pub(crate) fn holds_kind(&self, kind: &str) -> bool {
        let tables = self.tables.lock();
        tables.single.keys().any(|id| id.kind() == kind)
            || tables.workers.keys().any(|id| id.kind() == kind)
    }

    /// Records that `owner` holds the directory entry of the activation `name`.
    pub(crate) fn note_registered_with(&self, identity: &Identity, name: &str, owner: NodeId) {
        self.set_registered_with(identity, name, Some(owner));
    }

    /// Records that no owner is known to record the activation `name` of `identity`,
    /// so the next membership change registers it with its owner then, whoever that
    /// is (its range moved on before the new owner took the registration).
    pub(crate) fn note_registered_with_none(&self, identity: &Identity, name: &str) {
        self.set_registered_with(identity, name, None);
    }

    fn set_registered_with(&self, identity: &Identity, name: &str, owner: Option<NodeId>) {
        if let Some(a) = self.tables.lock().single.get_mut(identity) {
            if *a.name == *name {
                a.registered_with = owner;
            }
        }
    }

    /// Live activations whose owner by `owner_of` is not the one that records them:
    /// identity, name and that owner.
    pub(crate) fn registered_elsewhere(
        &self,
        owner_of: impl Fn(&Identity) -> Option<NodeId>,
    ) -> Vec<(Identity, Arc<str>, NodeId)> {
        let tables = self.tables.lock();
        (tables.single.iter())
            .filter(|(_, a)| a.is_live())
            .filter_map(|(identity, a)| {
                let owner = owner_of(identity)?;
                (a.registered_with != Some(owner))
                    .then(|| (identity.clone(), a.name.clone(), owner))
            })
            .collect()
    }

    /// Stops the activation of `identity` if it is the one named; resolves once it
    /// has stopped (`None` if it is not here).
    pub(crate) fn stop(&self, identity: &Identity, name: &str) -> Option<BoxFuture<'static, ()>> {
        let tables = self.tables.lock();
        let a = tables.single.get(identity).filter(|a| *a.name == *name)?;
        a.stop();
        Some(a.door.wait_stopped())
    }

    /// Forgets the activation or worker `name` of `identity`, which has stopped;
    /// `true` if it was a stateless worker (not in the directory).
    pub(crate) fn remove(&self, identity: &Identity, name: &str) -> bool {
        let mut tables = self.tables.lock();
        if (tables.single.get(identity)).is_some_and(|a| *a.name == *name) {
            tables.single.remove(identity);
            shrink_if_sparse(&mut tables.single);
            return false;
        }
        let Some(ws) = tables.workers.get_mut(identity) else {
            return false;
        };
        let before = ws.len();
        ws.retain(|w| *w.name != *name);
        let removed = ws.len() != before;
        if ws.is_empty() {
            tables.workers.remove(identity);
            shrink_if_sparse(&mut tables.workers);
        }
        removed
    }

    /// Stops every activation and worker whose kind's cut-off `idle_since` gives
    /// (`None`: the kind is never passivated) is later than its last call. Returns how
    /// many activations and workers the table held (those it stopped included).
    pub(crate) fn sweep_idle(
        &self,
        idle_since: impl Fn(&str) -> Option<tokio::time::Instant>,
    ) -> usize {
        // A node hosts few kinds and many activations: look each kind's cut-off up
        // once per sweep, not once per activation, while the table is locked.
        let mut cut_offs: Vec<(&str, Option<tokio::time::Instant>)> = Vec::new();
        let mut idle_since = |kind| match cut_offs.iter().find(|(k, _)| *k == kind) {
            Some((_, since)) => *since,
            None => {
                let since = idle_since(kind);
                cut_offs.push((kind, since));
                since
            }
        };
        let tables = self.tables.lock();
        for (identity, a) in &tables.single {
            if let Some(since) = idle_since(identity.kind()) {
                if a.tracker.try_close_idle(since) {
                    a.door.stop();
                }
            }
        }
        let mut held = tables.single.len();
        for (identity, ws) in &tables.workers {
            held += ws.len();
            if let Some(since) = idle_since(identity.kind()) {
                for w in ws {
                    if w.tracker.try_close_idle(since) {
                        w.door.stop();
                    }
                }
            }
        }
        held
    }

    /// Stops everything here; resolves once each has stopped.
    pub(crate) fn stop_all(&self) -> Vec<BoxFuture<'static, ()>> {
        let tables = self.tables.lock();
        let all = tables
            .single
            .values()
            .chain(tables.workers.values().flatten());
        all.map(|a| {
            a.stop();
            a.door.wait_stopped()
        })
        .collect()
    }

    /// The worker of `identity` to use with a pool of `pool`: an idle live one, else a
    /// new one while the pool has room, else the next live one in turn.
    pub(crate) fn pick_worker(&self, identity: &Identity, pool: usize) -> WorkerPick {
        let tables = self.tables.lock();
        let live: Vec<&LocalActivation> = (tables.workers.get(identity))
            .map(|ws| ws.iter().filter(|w| w.is_live()).collect())
            .unwrap_or_default();
        if let Some(idle) = live.iter().find(|w| w.tracker.is_idle()) {
            return WorkerPick::Use(idle.name.clone());
        }
        if live.len() < pool.max(1) {
            return WorkerPick::Start;
        }
        let turn = self.turns.fetch_add(1, Ordering::Relaxed);
        WorkerPick::Use(live[turn % live.len()].name.clone())
    }

    /// Enters a started worker of `identity` unless the pool of `pool` filled up
    /// meanwhile (the new one is stopped then): the name of the worker to use, `None`
    /// if the pool is full of workers that have all begun closing since.
    pub(crate) fn add_worker(
        &self,
        identity: &Identity,
        worker: LocalActivation,
        pool: usize,
    ) -> Option<Arc<str>> {
        let mut tables = self.tables.lock();
        let ws = tables.workers.entry(identity.clone()).or_default();
        if ws.iter().filter(|w| w.is_live()).count() < pool.max(1) {
            let name = worker.name.clone();
            ws.push(worker);
            return Some(name);
        }
        worker.stop();
        ws.iter().find(|w| w.is_live()).map(|w| w.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use granary_core::{
        ActorId, AskError, ErasedMessage, RemoteError, RemoteTarget, SendError, Terminated,
    };

    use super::*;

    /// A door that only records being stopped.
    #[derive(Default)]
    struct Door {
        stopped: AtomicBool,
    }

    impl RemoteTarget for Door {
        fn id(&self) -> ActorId {
            ActorId::new(1, 1)
        }
        fn tell_erased(
            &self,
            msg: ErasedMessage,
            _: &'static str,
        ) -> Result<(), SendError<ErasedMessage>> {
            Err(SendError::Remote {
                error: RemoteError::Unreachable,
                message: Some(msg),
            })
        }
        fn ask_erased(
            &self,
            _: ErasedMessage,
            _: &'static str,
            _: std::time::Duration,
        ) -> BoxFuture<'static, Result<ErasedMessage, AskError<ErasedMessage>>> {
            Box::pin(async { Err(AskError::Remote(RemoteError::Unreachable)) })
        }
        fn stop(&self) {
            self.stopped.store(true, Ordering::Release);
        }
        fn watch(&self, _: ActorId, _: Box<dyn FnOnce(Terminated) + Send>) {}
        fn unwatch(&self, _: ActorId) {}
    }

    impl ActivationDoor for Door {
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn wait_stopped(&self) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
    }

    fn activation(catalog: &Catalog, identity: &Identity, worker: bool) -> LocalActivation {
        LocalActivation {
            name: catalog.next_name(identity, worker),
            tracker: Arc::new(Tracker::new()),
            door: Arc::new(Door::default()),
            registered_with: None,
        }
    }

    fn door_stopped(door: &Arc<dyn ActivationDoor>) -> bool {
        let door = door.as_any().downcast_ref::<Door>().unwrap();
        door.stopped.load(Ordering::Acquire)
    }

    #[test]
    fn an_activation_is_found_by_name_until_it_closes_and_is_removed() {
        let catalog = Catalog::default();
        let id = Identity::new("account", "a");
        let first = activation(&catalog, &id, false);
        let name = first.name.clone();
        catalog.insert(id.clone(), first);
        assert_eq!(catalog.live_name(&id).as_deref(), Some(&*name));
        assert!(catalog.is_live(&id, &name));
        assert!(matches!(catalog.current(&id), Current::Live(n) if n == name));
        assert_eq!(catalog.live_count("account"), 1);
        assert!(catalog.door(&id, |n| n == &*name).is_some());
        assert!(catalog.door(&id, |n| n == "another").is_none());

        // Stopping closes it: no longer live, still held (deactivating).
        assert!(catalog.stop(&id, "another").is_none(), "only the one named");
        let door = catalog.door(&id, |_| true).unwrap();
        assert!(catalog.stop(&id, &name).is_some());
        assert!(door_stopped(&door));
        assert!(catalog.live_name(&id).is_none());
        assert!(matches!(catalog.current(&id), Current::Closing(_)));
        assert_eq!(catalog.live_count("account"), 0);
        assert!(catalog.holds_kind("account"));

        // Removing another name leaves it; its own name removes it.
        assert!(!catalog.remove(&id, "another"));
        assert!(catalog.holds_kind("account"));
        assert!(!catalog.remove(&id, &name), "not a worker");
        assert!(!catalog.holds_kind("account"));
        assert!(matches!(catalog.current(&id), Current::Nothing));
    }

    #[test]
    fn activations_registered_with_another_owner_are_listed_for_re_registration() {
        let catalog = Catalog::default();
        let owner = NodeId::new("127.0.0.1:1".parse().unwrap(), 1);
        let owner_later = NodeId::new("127.0.0.1:1".parse().unwrap(), 2);
        let id = Identity::new("account", "a");
        let a = activation(&catalog, &id, false);
        let name = a.name.clone();
        catalog.insert(id.clone(), a);
        let listed = catalog.registered_elsewhere(|_| Some(owner));
        assert_eq!(listed.len(), 1, "recorded by nobody yet");
        catalog.note_registered_with(&id, &name, owner);
        assert!(catalog.registered_elsewhere(|_| Some(owner)).is_empty());
        // The same address in a later incarnation is another owner.
        assert_eq!(catalog.registered_elsewhere(|_| Some(owner_later)).len(), 1);
        // Its range moved on before the owner took the registration: listed again
        // even if the range comes back to the owner it had.
        catalog.note_registered_with_none(&id, &name);
        assert_eq!(catalog.registered_elsewhere(|_| Some(owner)).len(), 1);
        catalog.note_registered_with(&id, &name, owner);
        // A closing activation is not re-registered.
        catalog.stop(&id, &name);
        assert!(catalog
            .registered_elsewhere(|_| Some(owner_later))
            .is_empty());
    }

    #[test]
    fn a_worker_pool_grows_only_while_every_worker_is_busy() {
        let catalog = Catalog::default();
        let id = Identity::new("resizer", "any");
        assert!(matches!(catalog.pick_worker(&id, 2), WorkerPick::Start));
        let first = activation(&catalog, &id, true);
        let first_name = catalog.add_worker(&id, first, 2).unwrap();
        // Idle: used again.
        assert!(matches!(catalog.pick_worker(&id, 2), WorkerPick::Use(n) if n == first_name));
        // Busy: a second one starts.
        let door = catalog.door(&id, |n| n == &*first_name).unwrap();
        let busy = {
            let tables = catalog.tables.lock();
            tables.workers[&id][0].tracker.clone()
        };
        assert!(busy.enter());
        assert!(matches!(catalog.pick_worker(&id, 2), WorkerPick::Start));
        let second = activation(&catalog, &id, true);
        let second_name = catalog.add_worker(&id, second, 2).unwrap();
        assert_ne!(first_name, second_name);
        assert_eq!(catalog.live_count("resizer"), 2);
        // Full: a third started meanwhile is stopped and an existing one used.
        let third = activation(&catalog, &id, true);
        let third_door = third.door.clone();
        let used = catalog.add_worker(&id, third, 2).unwrap();
        assert!(used == first_name || used == second_name);
        assert!(door_stopped(&third_door));
        assert!(!door_stopped(&door));
        // Removing a worker says it was one.
        assert!(catalog.remove(&id, &second_name));
        assert!(catalog.remove(&id, &first_name));
        assert!(!catalog.holds_kind("resizer"));
    }

    #[test]
    fn stop_all_stops_activations_and_workers() {
        let catalog = Catalog::default();
        let a = Identity::new("account", "a");
        let w = Identity::new("resizer", "any");
        catalog.insert(a.clone(), activation(&catalog, &a, false));
        catalog.add_worker(&w, activation(&catalog, &w, true), 1);
        assert_eq!(catalog.stop_all().len(), 2);
        assert_eq!(
            catalog.live_count("account") + catalog.live_count("resizer"),
            0
        );
    }
}
