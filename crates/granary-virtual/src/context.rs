//! [`VirtualContext`]: what a virtual actor's handler can do besides handling.

use std::sync::Arc;

use granary_core::Context;
use granary_storage::{Identity, StateStore, StorageError, Version};
use tokio::sync::oneshot;

use crate::activation::Activation;
use crate::actor::VirtualActor;
use crate::error::VirtualError;
use crate::runtime::Runtime;
use crate::tracker::Tracker;
use crate::vref::VirtualRef;

/// The per-activation data kept beside the user's actor.
pub(crate) struct Cell<A: VirtualActor> {
    pub(crate) key: A::Key,
    pub(crate) identity: Identity,
    pub(crate) state: A::State,
    pub(crate) version: Option<Version>,
    pub(crate) dirty: bool,
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) name: String,
    pub(crate) deactivate_on_idle: bool,
    pub(crate) conflict: bool,
    /// Whether messages wait for the node's host lease (all but stateless workers).
    pub(crate) needs_lease: bool,
    pub(crate) activated: Option<oneshot::Sender<Result<(), String>>>,
}

/// A running virtual actor's view of its identity, state and node.
///
/// Given to [`crate::VirtualHandler::handle`] and the lifecycle hooks.
pub struct VirtualContext<'a, A: VirtualActor> {
    pub(crate) core: &'a mut Context<Activation<A>>,
    pub(crate) cell: &'a mut Cell<A>,
}

impl<A: VirtualActor> VirtualContext<'_, A> {
    /// This activation's key.
    pub fn key(&self) -> &A::Key {
        &self.cell.key
    }

    /// This actor's identity (`kind/key`).
    pub fn identity(&self) -> &Identity {
        &self.cell.identity
    }

    /// The state as loaded or last modified.
    pub fn state(&self) -> &A::State {
        &self.cell.state
    }

    /// Mutable state. Changes are written by [`VirtualContext::write_state`], and on
    /// deactivation if still unwritten.
    pub fn state_mut(&mut self) -> &mut A::State {
        self.cell.dirty = true;
        &mut self.cell.state
    }

    /// The stored version (ETag) this activation last read or wrote; `None` while
    /// nothing is stored.
    pub fn state_version(&self) -> Option<Version> {
        self.cell.version
    }

    /// Writes the state; durable when this returns `Ok`. The write carries the
    /// version this activation last saw: if another activation wrote since, the
    /// write is rejected with [`VirtualError::StateConflict`] and this activation
    /// deactivates after the current message (it is stale).
    pub async fn write_state(&mut self) -> Result<(), VirtualError> {
        match write_cell(self.cell).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if self.cell.conflict {
                    self.core.stop();
                }
                Err(e)
            }
        }
    }

    /// Deactivates this activation as soon as no message is queued for it (after
    /// this one at the earliest). The next message activates it again.
    pub fn deactivate_on_idle(&mut self) {
        self.cell.deactivate_on_idle = true;
    }

    /// A ref to another virtual actor (or this one).
    pub fn get<B: VirtualActor>(&self, key: B::Key) -> VirtualRef<B> {
        VirtualRef::new(self.cell.runtime.clone(), key)
    }

    /// Registers (or replaces) the durable reminder `name`: first due after
    /// `due_in`, then every `period` (`None`: once). Kept in the kind's store, it
    /// wakes this actor even when passivated or after a full cluster restart. The
    /// kind must be registered with [`crate::Kind::reminders`].
    pub async fn register_reminder(
        &self,
        name: &str,
        due_in: std::time::Duration,
        period: Option<std::time::Duration>,
    ) -> Result<(), VirtualError> {
        crate::reminder::upsert(&self.cell.store, &self.cell.identity, name, due_in, period).await
    }

    /// Removes the durable reminder `name`; `true` if it existed.
    pub async fn unregister_reminder(&self, name: &str) -> Result<bool, VirtualError> {
        Ok(self
            .cell
            .store
            .delete_reminder(&self.cell.identity, name)
            .await?)
    }

    /// The address of the node this activation runs on.
    pub fn node_addr(&self) -> std::net::SocketAddr {
        self.cell.runtime.me
    }

    /// The underlying actor context: timers (`send_after`, `interval`) on it are
    /// tied to this activation and end with it.
    pub fn actor_context(&mut self) -> &mut Context<Activation<A>> {
        self.core
    }
}

/// Writes the cell's state with its version; on a conflict marks the activation
/// stale and closes it.
pub(crate) async fn write_cell<A: VirtualActor>(cell: &mut Cell<A>) -> Result<(), VirtualError> {
    if has_no_state::<A>() {
        cell.dirty = false;
        return Ok(());
    }
    let data = serde_json::to_vec(&cell.state).map_err(|e| VirtualError::BadState {
        identity: cell.identity.to_string(),
        reason: e.to_string(),
    })?;
    match cell
        .store
        .write(&cell.identity, data.into(), cell.version)
        .await
    {
        Ok(v) => {
            cell.version = Some(v);
            cell.dirty = false;
            Ok(())
        }
        Err(StorageError::Conflict { .. }) => {
            cell.conflict = true;
            cell.tracker.close();
            Err(VirtualError::StateConflict(cell.identity.to_string()))
        }
        Err(e) => Err(VirtualError::Storage(e)),
    }
}

/// Whether `A` is a kind without state (`type State = ();`): nothing is read when it
/// activates and nothing is written, which saves a store round trip per activation.
pub(crate) fn has_no_state<A: VirtualActor>() -> bool {
    std::any::TypeId::of::<A::State>() == std::any::TypeId::of::<()>()
}
