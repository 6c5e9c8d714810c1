//! The local name registry: `register`, `lookup`, `unregister`. Names are
//! dropped automatically when their actor stops.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::actor::Actor;
use crate::actor_ref::ActorRef;
use crate::error::RegistryError;
use crate::id::ActorId;
use crate::system::ActorSystem;

struct NameEntry {
    id: ActorId,
    actor_ref: Box<dyn Any + Send + Sync>,
}

/// Names both ways: name → actor for lookups, actor → names so that forgetting a
/// stopped actor costs its own names, not a scan of every name (a node with many
/// named actors stops them all at shutdown).
#[derive(Default)]
pub(crate) struct NameTable {
    by_name: HashMap<String, NameEntry>,
    by_actor: HashMap<ActorId, Vec<String>>,
}

impl NameTable {
    fn insert(&mut self, name: String, entry: NameEntry) {
        self.by_actor
            .entry(entry.id)
            .or_default()
            .push(name.clone());
        self.by_name.insert(name, entry);
    }

    fn remove_name(&mut self, name: &str) -> Option<ActorId> {
        let entry = self.by_name.remove(name)?;
        if let Some(names) = self.by_actor.get_mut(&entry.id) {
            names.retain(|n| n != name);
            if names.is_empty() {
                self.by_actor.remove(&entry.id);
            }
        }
        self.shrink_if_sparse();
        Some(entry.id)
    }

    /// Drops every name of `id`.
    pub(crate) fn remove_actor(&mut self, id: ActorId) {
        for name in self.by_actor.remove(&id).unwrap_or_default() {
            self.by_name.remove(&name);
        }
        self.shrink_if_sparse();
    }

    /// Buckets held by the two maps (for tests).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.by_name.capacity() + self.by_actor.capacity()
    }

    /// Gives the memory of many forgotten names back (a node's activations are
    /// named while they live).
    fn shrink_if_sparse(&mut self) {
        crate::__tables::shrink_if_sparse(&mut self.by_name);
        crate::__tables::shrink_if_sparse(&mut self.by_actor);
    }
}

impl ActorSystem {
    /// Registers `actor_ref` under `name`. Fails if the name is taken or a local
    /// actor has already stopped.
    pub fn register<A: Actor>(
        &self,
        name: impl Into<String>,
        actor_ref: &ActorRef<A>,
    ) -> Result<(), RegistryError> {
        let name = name.into();
        let id = actor_ref.id();
        // Hold the actor's shard while naming it, so a concurrent stop either
        // comes first (NotAlive) or removes the name after us.
        let shard = self.inner.shard(id).lock();
        if id.is_local() && actor_ref.is_local() && !shard.contains_key(&id.local()) {
            return Err(RegistryError::NotAlive(id));
        }
        let mut names = self.inner.names.lock();
        if names.by_name.contains_key(&name) {
            return Err(RegistryError::NameTaken(name));
        }
        self.inner.named.store(true, Ordering::Release);
        names.insert(
            name,
            NameEntry {
                id,
                actor_ref: Box::new(actor_ref.clone()),
            },
        );
        drop(names);
        drop(shard);
        Ok(())
    }

    /// The ref registered under `name`, if there is one and it is an `A`.
    pub fn lookup<A: Actor>(&self, name: &str) -> Option<ActorRef<A>> {
        let names = self.inner.names.lock();
        names
            .by_name
            .get(name)?
            .actor_ref
            .downcast_ref::<ActorRef<A>>()
            .cloned()
    }

    /// Removes `name`; returns the id it pointed to.
    pub fn unregister(&self, name: &str) -> Option<ActorId> {
        self.inner.names.lock().remove_name(name)
    }
}
