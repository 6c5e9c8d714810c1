//! The host side of the runtime: activating an identity here for its directory owner
//! (the one start path, for activations and stateless workers alike), confirming one,
//! ending one (unregistering it), passivating idle ones and waiting for them all to
//! end. The activations themselves are kept by the [`super::catalog::Catalog`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use granary_storage::Identity;
use parking_lot::Mutex;

use super::catalog::{Current, LocalActivation, WorkerPick};
use super::{members, shrink_if_sparse, KindSlot, Runtime};
use crate::error::VirtualError;
use crate::protocol::{Failure, Location, Reply};

/// Per directory owner, the first of its request ids whose `Activate` this node still
/// serves: raised by the owner's `Confirm` (see [`Runtime::confirm_here`]), one entry
/// per member at most (pruned on membership changes).
#[derive(Default)]
pub(crate) struct Superseded {
    first_served: Mutex<HashMap<SocketAddr, u64>>,
}

impl Superseded {
    /// `owner`'s requests before `request` are no longer served.
    fn supersede(&self, owner: SocketAddr, request: u64) {
        let mut first_served = self.first_served.lock();
        let first = first_served.entry(owner).or_default();
        *first = (*first).max(request);
    }

    /// Whether `owner`'s request `request` came before one of its confirms.
    fn is_superseded(&self, owner: SocketAddr, request: u64) -> bool {
        (self.first_served.lock().get(&owner)).is_some_and(|&first| request < first)
    }

    /// Forgets owners that `alive` no longer accepts.
    pub(crate) fn retain_owners(&self, alive: impl Fn(&SocketAddr) -> bool) {
        let mut first_served = self.first_served.lock();
        first_served.retain(|owner, _| alive(owner));
        shrink_if_sparse(&mut first_served);
    }
}

impl Runtime {
    /// Starts an activation (or a stateless worker) of `identity` of the kind in
    /// `slot`: the one way either begins.
    async fn start_activation(
        self: &Arc<Self>,
        slot: &KindSlot,
        identity: &Identity,
        name: Arc<str>,
    ) -> Result<LocalActivation, VirtualError> {
        let store = slot.store.clone();
        (slot.kind)
            .start(self.clone(), identity.clone(), name, store)
            .await
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
        if let Some(refused) = self.refuse_start(identity, owner) {
            return refused;
        }
        let _locked = self.activating.lock(identity).await;
        if request.is_some_and(|id| self.superseded.is_superseded(owner, id)) {
            // The owner heard "not here" from a `Confirm` sent after this request: it
            // may have placed the identity elsewhere since.
            return Reply::Failed(Failure::Other(format!(
                "activation of {identity} superseded by its owner's later confirm"
            )));
        }
        let name = self.catalog.next_name(identity, false);
        self.start_locked(identity, owner, name).await
    }

    /// Starts the activation a claim of this node was granted (`claim.rs`): as
    /// [`Self::activate_here`] does for an owner's request, under the name the owner
    /// recorded.
    pub(crate) async fn start_granted(
        self: &Arc<Self>,
        identity: &Identity,
        owner: SocketAddr,
        name: Arc<str>,
    ) -> Reply {
        if let Some(refused) = self.refuse_start(identity, owner) {
            return refused;
        }
        let _locked = self.activating.lock(identity).await;
        self.start_locked(identity, owner, name).await
    }

    /// The answer refusing to start an activation of `identity` placed by `owner`,
    /// if this node may not: `owner` is not its owner in this node's ring, or this
    /// node is shutting down, Down on the minority side of a partition, or without
    /// a host lease (its activation would refuse every message).
    fn refuse_start(&self, identity: &Identity, owner: SocketAddr) -> Option<Reply> {
        if self.members.owner(identity) != Some(owner) {
            return Some(Reply::NotOwner);
        }
        (!self.can_host()).then_some(Reply::Failed(Failure::ShuttingDown))
    }

    /// The live activation of `identity`, else a new one named `name`, registered
    /// with `owner` if `owner` still owns the identity once it is in the local table;
    /// the identity's activation lock held.
    async fn start_locked(
        self: &Arc<Self>,
        identity: &Identity,
        owner: SocketAddr,
        name: Arc<str>,
    ) -> Reply {
        let Some(slot) = self.kinds.get(identity.kind()) else {
            return Reply::Failed(Failure::NoHost(identity.kind().to_owned()));
        };
        match self.catalog.current(identity) {
            Current::Live(name) => return self.here(name),
            // Deactivating: let it finish (and save) before the next one loads.
            Current::Closing(stopped) => stopped.await,
            Current::Nothing => {}
        }
        let activation = match self.start_activation(slot, identity, name).await {
            Ok(activation) => activation,
            Err(e) => return Reply::Failed(Failure::Other(e.to_string())),
        };
        let name = activation.name.clone();
        self.catalog.insert(identity.clone(), activation);
        if self.is_shutting_down() || !self.members.is_alive(self.me) {
            // Went Down (or began shutting down) while this one was starting, after
            // `deactivate_all` looked: stop it too.
            self.catalog.stop(identity, &name);
            Reply::Failed(Failure::ShuttingDown)
        } else if !self.note_registered(identity, &name, owner) {
            // The ring moved while it started: `owner` no longer owns it, and the
            // new owner has no entry for it.
            tracing::debug!(%identity, %owner, "owner changed during activation; stopping it");
            self.catalog.stop(identity, &name);
            Reply::NotOwner
        } else {
            self.here(name)
        }
    }

    /// The activation `name` on this node, as an answer.
    fn here(&self, name: Arc<str>) -> Reply {
        Reply::Located(Location {
            host: self.me,
            name,
        })
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
        let _locked = self.activating.lock(identity).await;
        self.superseded.supersede(owner, request);
        match self.find_settled(identity).await {
            Some(loc) => Reply::Located(loc),
            None => Reply::Bool(false),
        }
    }

    /// Records that the owner at `owner` (its incarnation on this node's current
    /// ring) holds the entry of the activation `name` of `identity`; `false` if
    /// `owner` does not own the identity on the current ring.
    ///
    /// Read after the activation is in the local table: if the ring changes later,
    /// the membership task sees the activation and its recorded owner and
    /// re-registers it.
    fn note_registered(&self, identity: &Identity, name: &str, owner: SocketAddr) -> bool {
        let position = members::ring_position(identity);
        match (self.members).with_ring(|ring| ring.owner_of_position(position)) {
            Some(current) if current.addr == owner => {
                self.catalog.note_registered_with(identity, name, current);
                true
            }
            _ => false,
        }
    }

    /// The pool size if `kind` is a stateless worker kind registered here.
    pub(crate) fn stateless_pool(&self, kind: &str) -> Option<usize> {
        (self.kinds.get(kind)).and_then(|s| s.kind.config().stateless_workers)
    }

    /// A stateless worker of `identity` here (seed 000 "hot stateless actor
    /// scaling"): an idle one, else a new one while the pool is not full, else the
    /// next live one in turn. Workers are not recorded in the directory: a node that
    /// hosts the kind serves its own calls with them, and the directory owner sends
    /// other callers to a host.
    pub(crate) async fn worker_here(self: &Arc<Self>, identity: &Identity) -> Reply {
        if self.is_shutting_down() || !self.members.is_alive(self.me) {
            return Reply::Failed(Failure::ShuttingDown);
        }
        let (Some(slot), Some(pool)) = (
            self.kinds.get(identity.kind()),
            self.stateless_pool(identity.kind()),
        ) else {
            return Reply::Failed(Failure::NoHost(identity.kind().to_owned()));
        };
        if let WorkerPick::Use(name) = self.catalog.pick_worker(identity, pool) {
            return self.here(name);
        }
        let name = self.catalog.next_name(identity, true);
        let worker = match self.start_activation(slot, identity, name).await {
            Ok(worker) => worker,
            Err(e) => return Reply::Failed(Failure::Other(e.to_string())),
        };
        match self.catalog.add_worker(identity, worker, pool) {
            Some(name) => self.here(name),
            None => Reply::Failed(Failure::Other("no worker".into())),
        }
    }

    /// Called by an activation once it stopped.
    pub(crate) fn activation_ended(self: &Arc<Self>, identity: &Identity, name: &Arc<str>) {
        super::heap_return::activation_ended_on_this_thread();
        self.note_activation(identity.kind(), crate::observe::Activation::Passivated);
        // Counted as unregistering before it leaves the local table, so `settled`
        // never sees it in neither place.
        self.unregistering.fetch_add(1, Ordering::AcqRel);
        let was_worker = self.catalog.remove(identity, name);
        let at = Location {
            host: self.me,
            name: name.clone(),
        };
        // A passivated identity leaves nothing behind in the cache.
        self.cache.forget_at(identity, &at);
        // Workers are not in the directory; a crashed node unregisters nothing.
        if was_worker || self.is_crashed() {
            self.unregistering.fetch_sub(1, Ordering::AcqRel);
            self.ends.send_modify(|n| *n += 1);
            return;
        }
        self.ends.send_modify(|n| *n += 1);
        match self.members.owner(identity) {
            Some(owner) if owner != self.me => self.unregister_later(owner, identity, at),
            owner => {
                if owner.is_some() {
                    self.directory.unregister(identity, &at);
                }
                self.unregistering.fetch_sub(1, Ordering::AcqRel);
                self.ends.send_modify(|n| *n += 1);
            }
        }
    }

    /// Whether no activation of `kind` is in this node's table (live or still
    /// deactivating) and every ended activation's unregistration has finished.
    fn is_settled(&self, kind: &str) -> bool {
        self.unregistering.load(Ordering::Acquire) == 0 && !self.catalog.holds_kind(kind)
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

    /// Passivates activations idle for longer than their kind's timeout, and hands
    /// the free heap back once a wave of ends has passed (`heap_return.rs`).
    ///
    /// The clock is read once per sweep and each kind's cut-off computed once, so a
    /// sweep costs one uncontended lock per activation, no system call.
    pub(crate) fn sweep_idle(&self) {
        let now = tokio::time::Instant::now();
        let idle_since: HashMap<&str, tokio::time::Instant> = (self.kinds.iter())
            .filter_map(|(kind, slot)| {
                let cut_off = now.checked_sub(slot.kind.config().idle_timeout)?;
                Some((*kind, cut_off))
            })
            .collect();
        let held = self
            .catalog
            .sweep_idle(|kind| idle_since.get(kind).copied());
        if self.waves.wave_passed(held) {
            super::heap_return::return_free_heap_soon();
        }
    }

    /// Stops every local activation (saving state unless crashed) and waits.
    pub(crate) async fn deactivate_all(&self) {
        futures::future::join_all(self.catalog.stop_all()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_s_requests_before_its_confirm_are_superseded() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let superseded = Superseded::default();
        assert!(!superseded.is_superseded(a, 5), "nothing confirmed yet");
        superseded.supersede(a, 10);
        superseded.supersede(a, 7);
        assert!(superseded.is_superseded(a, 9));
        assert!(
            !superseded.is_superseded(a, 10),
            "the latest confirm counts"
        );
        assert!(!superseded.is_superseded(b, 1), "per owner");
        superseded.retain_owners(|owner| *owner != a);
        assert!(
            !superseded.is_superseded(a, 9),
            "a departed owner is forgotten"
        );
    }
}
