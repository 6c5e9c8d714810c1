//! [`Activation`]: the granary-core actor that runs one virtual actor instance,
//! and the code that loads state and starts it.

use std::sync::Arc;

use granary_core::{Actor, ActorRef, BoxError, Context, Handler, Message};
use granary_storage::{Identity, StateStore};
use tokio::sync::oneshot;

use crate::actor::{VirtualActor, VirtualHandler};
use crate::context::{write_cell, Cell, VirtualContext};
use crate::error::VirtualError;
use crate::runtime::Runtime;
use crate::tracker::Tracker;

/// One live activation of the virtual actor `A`: the user's instance plus its
/// identity, state and bookkeeping. Spawned by the node; user code meets it only as
/// the actor type of [`VirtualContext::actor_context`].
pub struct Activation<A: VirtualActor> {
    actor: A,
    cell: Cell<A>,
}

impl<A: VirtualActor> Activation<A> {
    fn split(&mut self) -> (&mut A, &mut Cell<A>) {
        (&mut self.actor, &mut self.cell)
    }
}

impl<A: VirtualActor> Actor for Activation<A> {
    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
        let (actor, cell) = self.split();
        let mut vctx = VirtualContext { core: ctx, cell };
        let result = actor.on_activate(&mut vctx).await;
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
        let (actor, cell) = self.split();
        let mut vctx = VirtualContext { core: ctx, cell };
        actor.on_deactivate(&mut vctx).await;
        if self.cell.dirty {
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
        let (actor, cell) = self.split();
        let reply = {
            let mut vctx = VirtualContext { core: ctx, cell };
            actor.handle(msg, &mut vctx).await
        };
        self.cell.tracker.finished();
        if self.cell.deactivate_on_idle && self.cell.tracker.try_close_drained() {
            ctx.stop();
        }
        reply
    }
}

/// Loads the state of `key`, spawns the activation and waits for `on_activate`.
pub(crate) async fn start<A: VirtualActor>(
    runtime: Arc<Runtime>,
    key: A::Key,
    identity: Identity,
    name: String,
    store: Arc<dyn StateStore>,
) -> Result<(ActorRef<Activation<A>>, Arc<Tracker>), VirtualError> {
    let (state, version) = match store.read(&identity).await? {
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
    let activation = Activation {
        actor: A::activate(&key),
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
            activated: Some(tx),
        },
    };
    let actor_ref = runtime.system().spawn(activation);
    match rx.await {
        Ok(Ok(())) => Ok((actor_ref, tracker)),
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
