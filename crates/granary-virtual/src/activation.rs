//! [`Activation`]: the granary-core actor that runs one virtual actor instance,
//! and the code that loads state and starts it.

use std::any::Any;
use std::sync::Arc;

use granary_core::{Actor, ActorRef, BoxError, Context, Handler, Message};
use granary_storage::{Identity, StateStore};
use tokio::sync::oneshot;

use crate::actor::{VirtualActor, VirtualHandler};
use crate::context::{has_no_state, write_cell, Cell, DeactivationReason, VirtualContext};
use crate::error::VirtualError;
use crate::reentrant::{ReentrantContext, ShareFn, Slot};
use crate::runtime::{Members, Runtime};
use crate::tracker::Tracker;

/// One live activation of the virtual actor `A`: the user's instance plus its
/// identity, state and bookkeeping. Spawned by the node; user code meets it only as
/// the actor type of [`VirtualContext::actor_context`].
pub struct Activation<A: VirtualActor> {
    actor: Slot<A>,
    cell: Cell<A>,
}

impl<A: VirtualActor> Actor for Activation<A> {
    /// Handles a message only while the node holds its host lease (stateless
    /// workers excepted: several of them may live at once anyway).
    fn admits(&mut self, _ctx: &mut Context<Self>) -> bool {
        !self.cell.needs_lease || self.cell.runtime.lease.is_valid()
    }

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        if let Some(reason) = self.cell.discarded {
            // Restarted after a panic (see `restarting`): end instead of running on.
            ctx.stop();
            if let Some(tx) = self.cell.activated.take() {
                let _ = tx.send(Err(format!("on_activate did not finish: {reason:?}")));
            }
            return Ok(());
        }
        let mut guard = None;
        let actor = self.actor.exclusive(&mut guard).await;
        let mut vctx = VirtualContext {
            core: ctx,
            cell: &mut self.cell,
        };
        let result = actor.on_activate(&mut vctx).await;
        drop(guard);
        let answer = match result {
            Ok(()) => {
                self.cell.activated_ok = true;
                Ok(())
            }
            Err(e) => {
                // Never activated: no on_deactivate and no final save.
                self.cell.tracker.close();
                ctx.stop();
                Err(e.to_string())
            }
        };
        if let Some(tx) = self.cell.activated.take() {
            let _ = tx.send(answer);
        }
        Ok(())
    }

    async fn restarting(&mut self, _failure: &granary_core::Failure, _ctx: &mut Context<Self>) {
        // A handler or `on_activate` panicked: whatever it changed in the state is
        // not to be trusted, so the state is discarded and the activation ends
        // (`started` stops it); the next message loads what is stored.
        self.cell.discard(DeactivationReason::HandlerPanicked);
    }

    async fn stopping(&mut self, ctx: &mut Context<Self>) {
        let closed_by_runtime = self.cell.tracker.is_closed();
        self.cell.tracker.close();
        if self.cell.handling {
            // A handler began and never finished: it panicked (the supervisor
            // stopped the activation instead of restarting it).
            self.cell.discard(DeactivationReason::HandlerPanicked);
        }
        if !self.cell.activated_ok || self.cell.runtime.is_crashed() {
            // Never activated, or the node is simulating a crash (nothing may run or
            // be saved, as in a real crash).
            return;
        }
        let reason = self.ending_reason(closed_by_runtime);
        self.cell.ending = Some(reason);
        if !reason.saves_state() {
            // Also refuses `write_state` inside on_deactivate.
            self.cell.discarded.get_or_insert(reason);
        }
        // Waits for reentrant handlers still in flight.
        let mut guard = None;
        let actor = self.actor.exclusive(&mut guard).await;
        let mut vctx = VirtualContext {
            core: ctx,
            cell: &mut self.cell,
        };
        actor.on_deactivate(&mut vctx).await;
        drop(guard);
        if self.cell.dirty && self.cell.discarded.is_none() {
            if let Err(e) = write_cell(&mut self.cell).await {
                tracing::warn!(identity = %self.cell.identity, error = %e, "state not saved on deactivation");
            }
        }
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.cell
            .runtime
            .activation_ended(&self.cell.identity, &self.cell.name);
    }
}

impl<A: VirtualActor> Activation<A> {
    /// Why this activation is ending. `closed_by_runtime`: its tracker was closed
    /// before `stopping` (by the node, not by a stop the actor asked for).
    fn ending_reason(&self, closed_by_runtime: bool) -> DeactivationReason {
        if let Some(reason) = self.cell.discarded {
            return reason;
        }
        let runtime = &self.cell.runtime;
        if self.cell.needs_lease && !runtime.lease.is_valid() {
            // The identity may already live elsewhere: fenced.
            return DeactivationReason::HostLeaseLost;
        }
        if runtime.is_shutting_down() {
            return DeactivationReason::NodeShutdown;
        }
        if !runtime.members.is_alive(runtime.me) {
            return DeactivationReason::NodeDown;
        }
        if self.cell.deactivate_on_idle || !closed_by_runtime {
            return DeactivationReason::Requested;
        }
        if self.cell.tracker.closed_for_idle() {
            return DeactivationReason::Idle;
        }
        DeactivationReason::Superseded
    }
}

impl<A, M> Handler<M> for Activation<A>
where
    A: VirtualHandler<M>,
    M: Message,
{
    async fn handle(&mut self, msg: M, ctx: &mut Context<Self>) -> M::Reply {
        self.cell.tracker.started();
        self.cell.handling = true;
        let reply = {
            let mut guard = None;
            let actor = self.actor.exclusive(&mut guard).await;
            let mut vctx = VirtualContext {
                core: ctx,
                cell: &mut self.cell,
            };
            actor.handle(msg, &mut vctx).await
        };
        self.cell.handling = false;
        self.cell.tracker.finished();
        if self.cell.deactivate_on_idle && self.cell.tracker.try_close_drained() {
            ctx.stop();
        }
        reply
    }
}

/// A started activation: its local ref, its tracker and, for a kind with reentrant
/// message types, the door's half of the shared actor.
pub(crate) struct Started<A: VirtualActor> {
    pub(crate) local: ActorRef<Activation<A>>,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) shared: Option<Arc<dyn Any + Send + Sync>>,
}

/// Loads the state of `key`, spawns the activation and waits for `on_activate`.
/// `share` is set for kinds with reentrant message types.
pub(crate) async fn start<A: VirtualActor>(
    runtime: Arc<Runtime>,
    key: A::Key,
    identity: Identity,
    name: Arc<str>,
    store: Arc<dyn StateStore>,
    share: Option<ShareFn<A>>,
) -> Result<Started<A>, VirtualError> {
    let stored = if has_no_state::<A>() {
        None
    } else {
        let start = std::time::Instant::now();
        let read = store.read(&identity).await;
        runtime.note_store(identity.kind(), crate::observe::StoreOp::Read, start, &read);
        read?
    };
    let (state, version) = match stored {
        Some(stored) => {
            // Plain JSON (version 1, or a build before versioned state) or the
            // envelope; older versions through the kind's upgrade hook.
            let state: A::State =
                granary_storage::decode_state_compat::<crate::actor::StoredState<A>>(&stored.data)
                    .map(|s| s.0)
                    .map_err(|e| VirtualError::BadState {
                        identity: identity.to_string(),
                        reason: e.to_string(),
                    })?;
            (state, Some(stored.version))
        }
        None => (A::State::default(), None),
    };
    let tracker = Arc::new(Tracker::new());
    let (tx, rx) = oneshot::channel();
    let actor = A::activate(&key);
    let (actor, shared) = match share {
        Some(share) => {
            let context = ReentrantContext::new(key.clone(), identity.clone(), runtime.clone());
            let (slot, door) = share(actor, context);
            (slot, Some(door))
        }
        None => (Slot::Owned(actor), None),
    };
    let activation = Activation {
        actor,
        cell: Cell {
            key,
            identity: identity.clone(),
            state,
            version,
            dirty: false,
            store,
            runtime: runtime.clone(),
            tracker: tracker.clone(),
            name,
            deactivate_on_idle: false,
            handling: false,
            discarded: None,
            activated_ok: false,
            ending: None,
            incarnation: node_incarnation(&runtime),
            needs_lease: runtime.stateless_pool(identity.kind()).is_none(),
            activated: Some(tx),
        },
    };
    let actor_ref = runtime.system().spawn(activation);
    let started = rx.await;
    let event = match &started {
        Ok(Ok(())) => crate::observe::Activation::Activated,
        _ => crate::observe::Activation::Failed,
    };
    runtime.note_activation(identity.kind(), event);
    match started {
        Ok(Ok(())) => Ok(Started {
            local: actor_ref,
            tracker,
            shared,
        }),
        Ok(Err(reason)) => Err(VirtualError::ActivationFailed {
            identity: identity.to_string(),
            reason,
        }),
        Err(_) => Err(VirtualError::ActivationFailed {
            identity: identity.to_string(),
            reason: "the activation stopped before on_activate finished".into(),
        }),
    }
}

/// The incarnation of this node's current life (0 on an external client, which
/// hosts nothing).
fn node_incarnation(runtime: &Runtime) -> u64 {
    match &runtime.members {
        Members::Cluster { cluster, .. } => cluster.local_id().incarnation,
        Members::Client(_) => 0,
    }
}
