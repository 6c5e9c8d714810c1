//! [`VirtualContext`]: what a virtual actor's handler can do besides handling.

use std::sync::Arc;

use granary_core::Context;
use granary_storage::{Identity, StateStore, StorageError, Version};
use tokio::sync::oneshot;
use tracing::Instrument;

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
    pub(crate) name: Arc<str>,
    pub(crate) deactivate_on_idle: bool,
    /// Whether a handler is running (still set in `stopping` or `restarting` if
    /// it panicked).
    pub(crate) handling: bool,
    /// Set when this activation's state no longer stands for the stored state (a
    /// conflict, a failed write, a handler that panicked): it is never written again
    /// and the activation ends after the current message, for this reason.
    pub(crate) discarded: Option<DeactivationReason>,
    /// Whether `on_activate` succeeded (only then does `on_deactivate` run).
    pub(crate) activated_ok: bool,
    /// Why the activation is ending; set just before `on_deactivate` runs.
    pub(crate) ending: Option<DeactivationReason>,
    /// The incarnation of this node's life in which the activation started.
    pub(crate) incarnation: u64,
    /// Whether messages wait for the node's host lease (all but stateless workers).
    pub(crate) needs_lease: bool,
    pub(crate) activated: Option<oneshot::Sender<Result<(), String>>>,
}

/// Why an activation ended, as [`VirtualContext::deactivation_reason`] tells
/// [`crate::VirtualActor::on_deactivate`].
///
/// After [`DeactivationReason::Idle`], [`DeactivationReason::Requested`],
/// [`DeactivationReason::NodeShutdown`], [`DeactivationReason::NodeDown`] and
/// [`DeactivationReason::Superseded`] modified state is written after
/// `on_deactivate`; after the others nothing is written (and `write_state` inside
/// `on_deactivate` is refused), because the in-memory state may not be the truth.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeactivationReason {
    /// Passivated: idle for the kind's `idle_timeout`.
    Idle,
    /// Asked for by the actor: [`VirtualContext::deactivate_on_idle`] or a stop on
    /// its actor context.
    Requested,
    /// The node is shutting down gracefully (`Node::shutdown`).
    NodeShutdown,
    /// This node was declared Down (failed, or the minority side of a partition):
    /// it stops hosting until it rejoins.
    NodeDown,
    /// This node no longer holds its host lease (it may be cut off from the
    /// majority, which may already host the identity): fenced, nothing is written.
    HostLeaseLost,
    /// A state write lost against a newer version ([`VirtualError::StateConflict`]):
    /// this activation is stale; nothing is written.
    StateConflict,
    /// A state write failed with a storage error ([`VirtualError::Storage`]): the
    /// in-memory state is discarded (the next activation loads what is stored);
    /// nothing is written.
    StorageFailure,
    /// A handler (or `on_activate` after a restart) panicked: its changes to the
    /// state are discarded; nothing is written.
    HandlerPanicked,
    /// Another activation of the identity was found after a membership change and
    /// kept; this one gives way.
    Superseded,
}

impl DeactivationReason {
    /// Whether modified state is written after `on_deactivate` for this reason.
    pub fn saves_state(self) -> bool {
        matches!(
            self,
            Self::Idle | Self::Requested | Self::NodeShutdown | Self::NodeDown | Self::Superseded
        )
    }
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
    /// deactivation if still unwritten (for the reasons whose
    /// [`DeactivationReason::saves_state`] holds).
    pub fn state_mut(&mut self) -> &mut A::State {
        self.cell.dirty = true;
        &mut self.cell.state
    }

    /// The stored version (ETag) this activation last read or wrote; `None` while
    /// nothing is stored.
    pub fn state_version(&self) -> Option<Version> {
        self.cell.version
    }

    /// Writes the state; durable when this returns `Ok`.
    ///
    /// The write carries the version this activation last saw: if another
    /// activation wrote since, the write is rejected with
    /// [`VirtualError::StateConflict`] and this activation deactivates after the
    /// current message (it is stale).
    ///
    /// **A failed write is never stored later.** On any other error
    /// ([`VirtualError::Storage`], e.g. `Unavailable`) the activation's state is
    /// discarded: it is not written by a later `write_state` (which fails with
    /// [`VirtualError::StateDiscarded`]) nor on deactivation, and the activation
    /// deactivates after the current message
    /// ([`DeactivationReason::StorageFailure`]); the next message activates a fresh
    /// one that loads what is stored. So a caller that saw the error may retry
    /// without the change being applied twice. (For a store whose error can follow
    /// a commit, such as a lost connection to PostgreSQL, the change may still be
    /// stored once: the error then means "unknown", never "will be stored later".)
    pub async fn write_state(&mut self) -> Result<(), VirtualError> {
        let result = write_cell(self.cell).await;
        if self.cell.discarded.is_some() {
            self.core.stop();
        }
        result
    }

    /// Why this activation is ending: `Some` inside
    /// [`crate::VirtualActor::on_deactivate`], `None` before.
    pub fn deactivation_reason(&self) -> Option<DeactivationReason> {
        self.cell.ending
    }

    /// The incarnation of this node's life in which this activation started (the
    /// node's cluster id is its address plus this number; it changes when the node
    /// restarts or rejoins). Together with [`VirtualContext::node_addr`] it tells two
    /// lives of one node apart.
    pub fn node_incarnation(&self) -> u64 {
        self.cell.incarnation
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

/// Writes the cell's state with its version. On a conflict or a storage error
/// marks the state discarded (never written again) and closes the activation's
/// tracker; a discarded state is refused.
pub(crate) async fn write_cell<A: VirtualActor>(cell: &mut Cell<A>) -> Result<(), VirtualError> {
    if let Some(reason) = cell.discarded {
        return Err(match reason {
            DeactivationReason::StateConflict => {
                VirtualError::StateConflict(cell.identity.to_string())
            }
            _ => VirtualError::StateDiscarded(cell.identity.to_string()),
        });
    }
    if has_no_state::<A>() {
        cell.dirty = false;
        return Ok(());
    }
    if cell.needs_lease && !cell.runtime.lease.holds_for_a_write() {
        // A handler admitted under the lease may still run when it lapses (it waited
        // on a call across a failure); the identity may be placed again from then on,
        // and a write landing after its successor loaded the state would win.
        cell.discard(DeactivationReason::HostLeaseLost);
        return Err(VirtualError::HostLeaseLapsing(cell.identity.to_string()));
    }
    let data = encode_state::<A>(&cell.state).map_err(|e| VirtualError::BadState {
        identity: cell.identity.to_string(),
        reason: e.to_string(),
    })?;
    let start = std::time::Instant::now();
    let written = cell
        .store
        .write(&cell.identity, data.into(), cell.version)
        .instrument(tracing::info_span!("granary.store_write", node = %cell.runtime.me, identity = %cell.identity))
        .await;
    cell.runtime.note_store(
        cell.identity.kind(),
        crate::observe::StoreOp::Write,
        start,
        &written,
    );
    match written {
        Ok(v) => {
            cell.version = Some(v);
            cell.dirty = false;
            Ok(())
        }
        Err(StorageError::Conflict { .. }) => {
            cell.discard(DeactivationReason::StateConflict);
            Err(VirtualError::StateConflict(cell.identity.to_string()))
        }
        Err(e) => {
            // The change may or may not have reached the store; either way this copy
            // is no longer the truth and must never be written later.
            cell.discard(DeactivationReason::StorageFailure);
            Err(VirtualError::Storage(e))
        }
    }
}

impl<A: VirtualActor> Cell<A> {
    /// Marks the state as no longer standing for the stored one and closes the
    /// tracker (no new message enters; the activation ends after the current one).
    pub(crate) fn discard(&mut self, reason: DeactivationReason) {
        self.discarded.get_or_insert(reason);
        self.tracker.close();
    }
}

/// Whether `A` is a kind without state (`type State = ();`): nothing is read when it
/// activates and nothing is written, which saves a store round trip per activation.
pub(crate) fn has_no_state<A: VirtualActor>() -> bool {
    std::any::TypeId::of::<A::State>() == std::any::TypeId::of::<()>()
}

/// The stored bytes of a kind's state: plain JSON at version 1, the envelope after
/// ([`granary_storage::encode_state_compat`]). Serializes without copying the state.
fn encode_state<A: VirtualActor>(
    state: &A::State,
) -> Result<Vec<u8>, granary_storage::StorageError> {
    #[derive(serde::Serialize)]
    #[serde(transparent)]
    #[serde(bound(serialize = ""))]
    struct Borrowed<'a, A: VirtualActor>(&'a A::State);
    if A::STATE_VERSION <= 1 {
        serde_json::to_vec(&Borrowed::<A>(state)).map_err(|e| {
            granary_storage::StorageError::Encode {
                reason: e.to_string(),
            }
        })
    } else {
        #[derive(serde::Serialize)]
        #[serde(bound(serialize = ""))]
        struct Envelope<'a, A: VirtualActor> {
            schema: u32,
            state: Borrowed<'a, A>,
        }
        serde_json::to_vec(&Envelope::<A> {
            schema: A::STATE_VERSION,
            state: Borrowed(state),
        })
        .map_err(|e| granary_storage::StorageError::Encode {
            reason: e.to_string(),
        })
    }
}
