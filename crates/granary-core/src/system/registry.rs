//! The local name registry: `register`, `lookup`, `unregister`. Names are
//! dropped automatically when their actor stops.

use std::any::Any;
use std::sync::atomic::Ordering;

use crate::actor::Actor;
use crate::actor_ref::ActorRef;
use crate::error::RegistryError;
use crate::id::ActorId;
use crate::system::ActorSystem;

pub(crate) struct NameEntry {
    pub(crate) id: ActorId,
    actor_ref: Box<dyn Any + Send + Sync>,
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
        if names.contains_key(&name) {
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
            .get(name)?
            .actor_ref
            .downcast_ref::<ActorRef<A>>()
            .cloned()
    }

    /// Removes `name`; returns the id it pointed to.
    pub fn unregister(&self, name: &str) -> Option<ActorId> {
        self.inner.names.lock().remove(name).map(|e| e.id)
    }
}
