//! [`Activation`]: the granary-core actor that runs one virtual actor instance,
//! and the code that loads state and starts it.

use std::any::Any;
use std::sync::Arc;

use granary_core::{Actor, ActorRef, BoxError, Context, Handler, Message};
use granary_storage::{Identity, StateStore};
use tokio::sync::oneshot;

use crate::actor::{VirtualActor, VirtualHandler};
use crate::context::{has_no_state, write_cell, Cell, VirtualContext};
use crate::error::VirtualError;
use crate::reentrant::{ReentrantContext, ShareFn, Slot};
use crate::runtime::Runtime;
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
        let mut guard = None;
        let actor = self.actor.exclusive(&mut guard).await;
        let mut vctx = VirtualContext {
            core: ctx,
            cell: &mut self.cell,
        };
        let result = actor.on_activate(&mut vctx).await;
        drop(guard);
        let answer = match result {
            Ok(()) => Ok(()),
            Err(e) => {
                self.cell.tracker.close();
                // Never activated: skip on_deactivate and the final save.
                self.cell.conflict = true;
                ctx.stop();
                Err(e.to_string())
            }
        };
        if let Some(tx) = self.cell.activated.take() {
            let _ = tx.send(answer);
        }
        Ok(())
    }

    async fn stopping(&mut self, ctx: &mut Context<Self>) {
        self.cell.tracker.close();
        if self.cell.conflict || self.cell.activated.is_some() || self.cell.runtime.is_crashed() {
            // Stale (another activation owns the state), never activated, or the node
            // is simulating a crash (nothing may be saved).
            return;
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
        // A node without its host lease saves nothing: the identity may already live
        // elsewhere (every write a handler made was durable when it returned).
        let fenced = self.cell.needs_lease && !self.cell.runtime.lease.is_valid();
        if self.cell.dirty && !fenced {
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

impl<A, M> Handler<M> for Activation<A>
where
    A: VirtualHandler<M>,
    M: Message,
{
    async fn handle(&mut self, msg: M, ctx: &mut Context<Self>) -> M::Reply {
        self.cell.tracker.started();
        let reply = {
            let mut guard = None;
            let actor = self.actor.exclusive(&mut guard).await;
            let mut vctx = VirtualContext {
                core: ctx,
                cell: &mut self.cell,
            };
            actor.handle(msg, &mut vctx).await
        };
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
    name: String,
    store: Arc<dyn StateStore>,
    share: Option<ShareFn<A>>,
) -> Result<Started<A>, VirtualError> {
    let stored = if has_no_state::<A>() {
        None
    } else {
        store.read(&identity).await?
    };
    let (state, version) = match stored {
        Some(stored) => {
            let state: A::State =
                serde_json::from_slice(&stored.data).map_err(|e| VirtualError::BadState {
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
            conflict: false,
            needs_lease: runtime.stateless_pool(identity.kind()).is_none(),
            activated: Some(tx),
        },
    };
    let actor_ref = runtime.system().spawn(activation);
    match rx.await {
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
