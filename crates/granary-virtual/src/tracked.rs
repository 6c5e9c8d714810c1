//! The one door into an activation: a `RemoteTarget` that admits each message
//! through the activation's [`Tracker`] and then hands it, typed again, to the local
//! actor. Both local callers and the remote layer's exposure go through it, so an
//! activation that closed for passivation answers "not here" to everyone.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use granary_core::{
    ActorId, ActorRef, ActorSystem, AskError, ErasedMessage, Message, RemoteError, RemoteTarget,
    SendError, Terminated,
};
use parking_lot::Mutex;

use crate::activation::Activation;
use crate::actor::{VirtualActor, VirtualHandler};
use crate::reentrant::{ReentrantHandler, SharedActor};
use crate::tracker::Tracker;

/// A token the remote layer's flow control keeps with a message until the activation
/// takes it (one of the exposed activation's credits).
type Token = Box<dyn Any + Send>;

type TellFn<A> = Arc<
    dyn Fn(&Tracked<A>, ErasedMessage, Option<Token>) -> Result<(), SendError<ErasedMessage>>
        + Send
        + Sync,
>;
type AskFn<A> = Arc<
    dyn Fn(
            &Tracked<A>,
            ErasedMessage,
            Duration,
        ) -> BoxFuture<'static, Result<ErasedMessage, AskError<ErasedMessage>>>
        + Send
        + Sync,
>;

/// The message types one kind accepts, erased, keyed by `type_name::<M>()`.
pub(crate) struct Dispatch<A: VirtualActor> {
    by_type: HashMap<&'static str, (TellFn<A>, AskFn<A>)>,
}

impl<A: VirtualActor> Default for Dispatch<A> {
    fn default() -> Self {
        Self {
            by_type: HashMap::new(),
        }
    }
}

fn mismatch(found: &'static str) -> RemoteError {
    RemoteError::TypeMismatch {
        expected: "a message type registered with Kind::handles".into(),
        found: found.into(),
    }
}

fn erase_ask_error<M: Send + 'static>(e: AskError<M>) -> AskError<ErasedMessage> {
    match e {
        AskError::Send(s) => AskError::Send(s.map_message(|m| Box::new(m) as ErasedMessage)),
        AskError::Timeout => AskError::Timeout,
        AskError::ActorPanicked => AskError::ActorPanicked,
        AskError::ActorStopped => AskError::ActorStopped,
        AskError::Remote(r) => AskError::Remote(r),
        _ => AskError::Remote(RemoteError::Other("ask failed".into())),
    }
}

impl<A: VirtualActor> Dispatch<A> {
    /// Whether `M` is accepted already.
    pub(crate) fn has<M: Message>(&self) -> bool {
        self.by_type.contains_key(std::any::type_name::<M>())
    }

    pub(crate) fn add<M>(&mut self)
    where
        A: VirtualHandler<M>,
        M: Message,
    {
        let tell: TellFn<A> = Arc::new(|door, msg, token| {
            let msg = msg.downcast::<M>().map_err(|m| SendError::Remote {
                error: mismatch("another type"),
                message: Some(m),
            })?;
            // The token waits in the activation's mailbox with the message, so a
            // remote sender's credit comes back only when the activation takes it.
            match token {
                Some(token) => door.local.tell_holding(*msg, token),
                None => door.local.tell(*msg),
            }
            .map_err(|e| e.map_message(|m| Box::new(m) as ErasedMessage))
        });
        let ask: AskFn<A> = Arc::new(|door, msg, timeout| {
            let actor = door.local.clone();
            Box::pin(async move {
                let msg = msg.downcast::<M>().map_err(|m| {
                    AskError::Send(SendError::Remote {
                        error: mismatch("another type"),
                        message: Some(m),
                    })
                })?;
                actor
                    .ask_timeout(*msg, timeout)
                    .await
                    .map(|r| Box::new(r) as ErasedMessage)
                    .map_err(erase_ask_error)
            })
        });
        self.by_type.insert(std::any::type_name::<M>(), (tell, ask));
    }

    /// Adds a reentrant message type: its handler runs beside the activation's
    /// mailbox, under the shared actor's read lock.
    pub(crate) fn add_reentrant<M>(&mut self)
    where
        A: ReentrantHandler<M>,
        M: Message,
    {
        let tell: TellFn<A> = Arc::new(|door, msg, token| {
            let Some(shared) = door.shared_actor() else {
                return Err(SendError::Remote {
                    error: mismatch("a reentrant type on a kind without a shared actor"),
                    message: Some(msg),
                });
            };
            let msg = msg.downcast::<M>().map_err(|m| SendError::Remote {
                error: mismatch("another type"),
                message: Some(m),
            })?;
            let tracker = door.tracker.clone();
            // A reentrant handler has no mailbox: the token is held while it runs.
            tokio::spawn(async move {
                run_reentrant::<A, M>(shared, *msg, tracker).await;
                drop(token);
            });
            Ok(())
        });
        let ask: AskFn<A> = Arc::new(|door, msg, timeout| {
            let shared = door.shared_actor();
            let tracker = door.tracker.clone();
            Box::pin(async move {
                let Some(shared) = shared else {
                    return Err(AskError::Send(SendError::Remote {
                        error: mismatch("a reentrant type on a kind without a shared actor"),
                        message: Some(msg),
                    }));
                };
                let msg = msg.downcast::<M>().map_err(|m| {
                    AskError::Send(SendError::Remote {
                        error: mismatch("another type"),
                        message: Some(m),
                    })
                })?;
                // Spawned, so that a caller giving up does not cut a handler short.
                let run = tokio::spawn(run_reentrant::<A, M>(shared, *msg, tracker));
                match tokio::time::timeout(timeout, run).await {
                    Ok(Ok(reply)) => Ok(Box::new(reply) as ErasedMessage),
                    Ok(Err(_)) => Err(AskError::ActorPanicked),
                    Err(_) => Err(AskError::Timeout),
                }
            })
        });
        self.by_type.insert(std::any::type_name::<M>(), (tell, ask));
    }
}

/// Runs one reentrant handler under the read lock, counted by the tracker.
async fn run_reentrant<A, M>(shared: Arc<SharedActor<A>>, msg: M, tracker: Arc<Tracker>) -> M::Reply
where
    A: ReentrantHandler<M>,
    M: Message,
{
    tracker.started();
    let reply = {
        let actor = shared.actor.read().await;
        ReentrantHandler::handle(&*actor, msg, &shared.context).await
    };
    tracker.finished();
    reply
}

/// The tracked door to one activation.
pub(crate) struct Tracked<A: VirtualActor> {
    pub(crate) local: ActorRef<Activation<A>>,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) dispatch: Arc<Dispatch<A>>,
    /// The shared actor (`SharedActor<A>`) of a kind with reentrant message types.
    pub(crate) shared: Option<Arc<dyn Any + Send + Sync>>,
    /// Actor watchers, each with the flag that [`RemoteTarget::unwatch`] sets.
    pub(crate) watches: Mutex<HashMap<ActorId, Arc<AtomicBool>>>,
    /// The node's actor system: asks through the door count under its node label.
    pub(crate) system: ActorSystem,
}

impl<A: VirtualActor + Sync> Tracked<A> {
    /// The shared actor, for the reentrant message types of this kind.
    fn shared_actor(&self) -> Option<Arc<SharedActor<A>>> {
        self.shared.clone()?.downcast::<SharedActor<A>>().ok()
    }
}

impl<A: VirtualActor> Tracked<A> {
    fn not_here(&self, msg: ErasedMessage) -> SendError<ErasedMessage> {
        SendError::Remote {
            error: RemoteError::NoSuchActor(self.local.id()),
            message: Some(msg),
        }
    }
}

impl<A: VirtualActor> Tracked<A> {
    /// Admits a tell through the tracker and hands it to the activation, with the
    /// flow-control token when the remote layer gave one.
    fn tell_with(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
        token: Option<Token>,
    ) -> Result<(), SendError<ErasedMessage>> {
        let Some((tell, _)) = self.dispatch.by_type.get(type_name) else {
            return Err(SendError::Remote {
                error: mismatch(type_name),
                message: Some(msg),
            });
        };
        if !self.tracker.enter() {
            return Err(self.not_here(msg));
        }
        tell(self, msg, token).inspect_err(|_| self.tracker.abandon())
    }
}

/// An activation's door as the runtime keeps it: the [`RemoteTarget`] every call goes
/// through (its `stop` stops the activation), and a wait for the activation's end.
pub(crate) trait ActivationDoor: RemoteTarget {
    /// Resolves once the activation has stopped.
    fn wait_stopped(&self) -> BoxFuture<'static, ()>;
}

impl<A: VirtualActor> ActivationDoor for Tracked<A> {
    fn wait_stopped(&self) -> BoxFuture<'static, ()> {
        let local = self.local.clone();
        Box::pin(async move {
            local.wait_stopped().await;
        })
    }
}

impl<A: VirtualActor> RemoteTarget for Tracked<A> {
    fn id(&self) -> ActorId {
        self.local.id()
    }

    fn system(&self) -> Option<&ActorSystem> {
        Some(&self.system)
    }

    fn tell_erased(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
    ) -> Result<(), SendError<ErasedMessage>> {
        self.tell_with(msg, type_name, None)
    }

    fn tell_erased_holding(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
        token: Token,
    ) -> Result<(), SendError<ErasedMessage>> {
        self.tell_with(msg, type_name, Some(token))
    }

    fn ask_erased(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<ErasedMessage, AskError<ErasedMessage>>> {
        let Some((_, ask)) = self.dispatch.by_type.get(type_name) else {
            let e = AskError::Send(SendError::Remote {
                error: mismatch(type_name),
                message: Some(msg),
            });
            return Box::pin(async move { Err(e) });
        };
        if !self.tracker.enter() {
            let e = AskError::Send(self.not_here(msg));
            return Box::pin(async move { Err(e) });
        }
        let tracker = self.tracker.clone();
        let fut = ask(self, msg, timeout);
        Box::pin(async move {
            let r = fut.await;
            if matches!(r, Err(AskError::Send(_))) {
                tracker.abandon();
            }
            r
        })
    }

    fn stop(&self) {
        self.local.stop();
    }

    fn watch(&self, watcher: ActorId, notify: Box<dyn FnOnce(Terminated) + Send>) {
        let id = self.local.id();
        // Only an actor watcher can unwatch; a waiter (id 0) needs no entry.
        let cancelled = Arc::new(AtomicBool::new(false));
        if watcher != ActorId::new(0, 0) {
            self.watches.lock().insert(watcher, cancelled.clone());
        }
        self.local.on_stopped(move |reason| {
            if !cancelled.load(Ordering::Acquire) {
                notify(Terminated { id, reason });
            }
        });
    }

    fn unwatch(&self, watcher: ActorId) {
        if let Some(cancelled) = self.watches.lock().remove(&watcher) {
            cancelled.store(true, Ordering::Release);
        }
    }
}
