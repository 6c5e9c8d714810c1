//! The one door into an activation: a `RemoteTarget` that admits each message
//! through the activation's [`Tracker`] and then hands it, typed again, to the local
//! actor. Local callers go through it as a `RemoteTarget`, and the kind's network
//! door (`door.rs`) through [`Tracked::deliver`], so an activation that closed for
//! passivation answers "not here" to everyone. Message types are routed by
//! `TypeId`, read from the erased message itself.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use granary_core::{
    ActorId, ActorRef, ActorSystem, AskError, ErasedMessage, Message, RemoteError, RemoteTarget,
    SendError, Terminated,
};
use granary_remote::{Delivery, Opened, Refused, Registry};
use parking_lot::Mutex;

use crate::activation::Activation;
use crate::actor::{VirtualActor, VirtualHandler};
use crate::reentrant::{ReentrantHandler, SharedActor};
use crate::tracker::Tracker;

/// A token the remote layer's flow control keeps with a message until the activation
/// takes it (one of the kind's door credits).
type Token = Box<dyn Any + Send>;

/// A local tell of one message type through the door (erased by `RemoteTarget`).
type TellFn<A> =
    fn(&Tracked<A>, ErasedMessage, Option<Token>) -> Result<(), SendError<ErasedMessage>>;
/// A local ask of one message type through the door.
type AskFn<A> = fn(
    &Tracked<A>,
    ErasedMessage,
    Duration,
) -> BoxFuture<'static, Result<ErasedMessage, AskError<ErasedMessage>>>;
/// A delivery of one message type from the wire, through the kind's door: admitted
/// by the tracker already.
type RemoteFn<A> = fn(&Tracked<A>, Opening) -> Result<(), Refused>;
/// The name of a message type, or of its reply type, that is not registered for
/// the wire.
type UnregisteredFn = fn(&Registry) -> Option<&'static str>;

/// How one accepted message type reaches an activation.
struct Route<A: VirtualActor> {
    /// Handled in the activation's mailbox (`Kind::handles`), not reentrant.
    in_mailbox: bool,
    tell: TellFn<A>,
    ask: AskFn<A>,
    remote: RemoteFn<A>,
    unregistered: UnregisteredFn,
}

/// The message types one kind accepts, keyed by `TypeId` (a type name is not
/// unique): the message itself, erased, says which route it takes.
pub(crate) struct Dispatch<A: VirtualActor> {
    by_type: HashMap<TypeId, Route<A>>,
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

/// `M` or its reply, if either is not registered for the wire.
fn unregistered<M: Message>(registry: &Registry) -> Option<&'static str> {
    if registry.by_type::<M>().is_none() {
        return Some(std::any::type_name::<M>());
    }
    if registry.by_type::<M::Reply>().is_none() {
        return Some(std::any::type_name::<M::Reply>());
    }
    None
}

impl<A: VirtualActor> Dispatch<A> {
    /// Whether `M` is accepted already.
    pub(crate) fn has<M: Message>(&self) -> bool {
        self.by_type.contains_key(&TypeId::of::<M>())
    }

    /// Accepts `M`, handled in the activation's mailbox.
    pub(crate) fn add<M>(&mut self)
    where
        A: VirtualHandler<M>,
        M: Message,
    {
        let route = Route {
            in_mailbox: true,
            tell: tell_exclusive::<A, M>,
            ask: ask_exclusive::<A, M>,
            remote: remote_exclusive::<A, M>,
            unregistered: unregistered::<M>,
        };
        self.by_type.insert(TypeId::of::<M>(), route);
    }

    /// Adds a reentrant message type: its handler runs beside the activation's
    /// mailbox, under the shared actor's read lock.
    pub(crate) fn add_reentrant<M>(&mut self)
    where
        A: ReentrantHandler<M>,
        M: Message,
    {
        let route = Route {
            in_mailbox: false,
            tell: tell_reentrant::<A, M>,
            ask: ask_reentrant::<A, M>,
            remote: remote_reentrant::<A, M>,
            unregistered: unregistered::<M>,
        };
        self.by_type.insert(TypeId::of::<M>(), route);
    }

    /// Whether `M` is accepted and handled in the activation's mailbox.
    fn in_mailbox<M: 'static>(&self) -> bool {
        self.by_type
            .get(&TypeId::of::<M>())
            .is_some_and(|route| route.in_mailbox)
    }

    /// The first accepted type (message or reply) not registered for the wire.
    pub(crate) fn unregistered(&self, registry: &Registry) -> Option<&'static str> {
        self.by_type
            .values()
            .find_map(|route| (route.unregistered)(registry))
    }
}

fn tell_exclusive<A, M>(
    door: &Tracked<A>,
    msg: ErasedMessage,
    token: Option<Token>,
) -> Result<(), SendError<ErasedMessage>>
where
    A: VirtualHandler<M>,
    M: Message,
{
    let msg = msg.downcast::<M>().map_err(|m| SendError::Remote {
        error: mismatch("another type"),
        message: Some(m),
    })?;
    // The token waits in the activation's mailbox with the message, so a remote
    // sender's credit comes back only when the activation takes it.
    match token {
        Some(token) => door.local.tell_holding(*msg, token),
        None => door.local.tell(*msg),
    }
    .map_err(|e| e.map_message(|m| Box::new(m) as ErasedMessage))
}

fn ask_exclusive<A, M>(
    door: &Tracked<A>,
    msg: ErasedMessage,
    timeout: Duration,
) -> BoxFuture<'static, Result<ErasedMessage, AskError<ErasedMessage>>>
where
    A: VirtualHandler<M>,
    M: Message,
{
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
}

/// A message from the wire into the activation's mailbox: a tell is one push (its
/// credit waits in the mailbox with it), an ask one push whose answer the activation's
/// task sends ([`ActorRef::ask_then`]).
fn remote_exclusive<A, M>(door: &Tracked<A>, opening: Opening) -> Result<(), Refused>
where
    A: VirtualHandler<M>,
    M: Message,
{
    let Opened {
        message,
        replier,
        credit,
    } = opening.open::<M>()?;
    let Some(replier) = replier else {
        let sent = match credit {
            Some(credit) => door.local.tell_holding(message, credit),
            None => door.local.tell(message),
        };
        // A failed local tell publishes its own dead letter in granary-core.
        if sent.is_err() {
            door.tracker.abandon();
        }
        return Ok(());
    };
    // One push: the answer is sent from the activation's task as its handler
    // returns, with no task waiting and no serve timer (the asker's timeout answers a
    // handler that never returns). An activation's mailbox is unbounded, so the ask is
    // queued unless the activation stopped: then it was never admitted after all.
    //
    // The door's credits are shared by every activation of the kind on this node, so
    // the credit comes back when the activation takes the ask out of its mailbox, not
    // when it answers: a handler that asks another activation of its kind (a tree of
    // sorters, a chain of accounts) and waits holds none, and a thousand such waiting
    // handlers cannot shut the door on the asks they wait for (they did: `sort` with
    // 12,000 elements hung, every credit held by a parent awaiting its children).
    let tracker = door.tracker.clone();
    door.local.ask_then_holding(message, credit, move |result| {
        if matches!(result, Err(AskError::Send(_))) {
            tracker.abandon();
        }
        replier.reply(result);
    });
    Ok(())
}

fn tell_reentrant<A, M>(
    door: &Tracked<A>,
    msg: ErasedMessage,
    token: Option<Token>,
) -> Result<(), SendError<ErasedMessage>>
where
    A: ReentrantHandler<M>,
    M: Message,
{
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
}

fn ask_reentrant<A, M>(
    door: &Tracked<A>,
    msg: ErasedMessage,
    timeout: Duration,
) -> BoxFuture<'static, Result<ErasedMessage, AskError<ErasedMessage>>>
where
    A: ReentrantHandler<M>,
    M: Message,
{
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
        reentrant_within::<A, M>(shared, *msg, tracker, timeout)
            .await
            .map(|reply| Box::new(reply) as ErasedMessage)
            .map_err(erase_ask_error)
    })
}

/// Runs a reentrant handler within `timeout`. Spawned, so that a caller giving up
/// does not cut the handler short.
async fn reentrant_within<A, M>(
    shared: Arc<SharedActor<A>>,
    msg: M,
    tracker: Arc<Tracker>,
    timeout: Duration,
) -> Result<M::Reply, AskError<M>>
where
    A: ReentrantHandler<M>,
    M: Message,
{
    let run = tokio::spawn(run_reentrant::<A, M>(shared, msg, tracker));
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(_)) => Err(AskError::ActorPanicked),
        Err(_) => Err(AskError::Timeout),
    }
}

/// A reentrant message from the wire: its handler runs beside the mailbox, holding
/// the credit while it runs.
fn remote_reentrant<A, M>(door: &Tracked<A>, opening: Opening) -> Result<(), Refused>
where
    A: ReentrantHandler<M>,
    M: Message,
{
    let Some(shared) = door.shared_actor() else {
        door.tracker.abandon();
        return Err(opening.refuse(mismatch(
            "a reentrant type on a kind without a shared actor",
        )));
    };
    let Opened {
        message,
        replier,
        credit,
    } = opening.open::<M>()?;
    let tracker = door.tracker.clone();
    let serve = async move {
        match replier {
            None => drop(run_reentrant::<A, M>(shared, message, tracker).await),
            Some(replier) => {
                let timeout = replier.serve_timeout();
                match reentrant_within::<A, M>(shared, message, tracker, timeout).await {
                    Ok(answer) => replier.answer(&answer),
                    Err(e) => replier.fail(e),
                }
            }
        }
        drop(credit);
    };
    tokio::spawn(tracing::Instrument::in_current_span(serve));
    Ok(())
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
    /// Actor watchers, each with the flag that [`RemoteTarget::unwatch`] sets (empty,
    /// and unallocated, unless someone watches through this door).
    pub(crate) watches: Mutex<Vec<(ActorId, Arc<AtomicBool>)>>,
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

    /// Admits a tell through the tracker and hands it to the activation, with the
    /// flow-control token when the remote layer gave one.
    fn tell_with(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
        token: Option<Token>,
    ) -> Result<(), SendError<ErasedMessage>> {
        let Some(route) = self.dispatch.by_type.get(&(*msg).type_id()) else {
            return Err(SendError::Remote {
                error: mismatch(type_name),
                message: Some(msg),
            });
        };
        if !self.tracker.enter() {
            return Err(self.not_here(msg));
        }
        (route.tell)(self, msg, token).inspect_err(|_| self.tracker.abandon())
    }

    /// A message from the wire, through the kind's door: admitted by the tracker and
    /// handed to the activation, or refused with "not here" once the activation
    /// closed for passivation (the caller locates the identity again and resends).
    pub(crate) fn deliver(&self, delivery: Delivery) -> Result<(), Refused> {
        let Some(route) = self.dispatch.by_type.get(&delivery.message().type_id()) else {
            return Err(Refused::new(
                delivery,
                mismatch("a type this kind does not handle"),
            ));
        };
        if !self.tracker.enter() {
            let id = self.local.id();
            return Err(Refused::new(delivery, RemoteError::NoSuchActor(id)));
        }
        (route.remote)(
            self,
            Opening {
                delivery,
                tracker: &self.tracker,
            },
        )
    }
}

/// A delivery from the wire that the tracker admitted: opening it as another type
/// than its route's, or refusing it, gives the admission back.
struct Opening<'t> {
    delivery: Delivery,
    tracker: &'t Tracker,
}

impl Opening<'_> {
    fn open<M: Send + 'static>(self) -> Result<Opened<M>, Refused> {
        self.delivery.open::<M>().map_err(|delivery| {
            self.tracker.abandon();
            Refused::new(delivery, mismatch("another type"))
        })
    }

    fn refuse(self, error: RemoteError) -> Refused {
        Refused::new(self.delivery, error)
    }
}

/// An activation's door as the runtime keeps it: the [`RemoteTarget`] every call goes
/// through (its `stop` stops the activation), and a wait for the activation's end.
pub(crate) trait ActivationDoor: RemoteTarget {
    /// The door as `Tracked<A>`, for the kind's network door (which knows `A`).
    fn as_any(&self) -> &dyn Any;

    /// Resolves once the activation has stopped.
    fn wait_stopped(&self) -> BoxFuture<'static, ()>;
}

impl<A: VirtualActor> ActivationDoor for Tracked<A> {
    fn as_any(&self) -> &dyn Any {
        self
    }

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
        let Some(route) = self.dispatch.by_type.get(&(*msg).type_id()) else {
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
        let fut = (route.ask)(self, msg, timeout);
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
            self.watches.lock().push((watcher, cancelled.clone()));
        }
        self.local.on_stopped(move |reason| {
            if !cancelled.load(Ordering::Acquire) {
                notify(Terminated { id, reason });
            }
        });
    }

    fn unwatch(&self, watcher: ActorId) {
        self.watches.lock().retain(|(id, cancelled)| {
            if *id == watcher {
                cancelled.store(true, Ordering::Release);
            }
            *id != watcher
        });
    }
}

impl<A: VirtualActor> Tracked<A> {
    /// A local ask typed end to end, for a caller on this node that knows `A` and `M`
    /// (`VirtualRef::ask`): admitted by the tracker, then one push into the mailbox —
    /// the message and its reply are not boxed, and no erased future is built. `Err`
    /// gives the message back when `M` does not go through the mailbox (reentrant, or
    /// not accepted): the erased path then serves it, or reports the mismatch.
    pub(crate) fn ask_in_mailbox<M>(
        &self,
        msg: M,
        timeout: Duration,
    ) -> Result<impl std::future::Future<Output = Result<M::Reply, AskError<M>>> + Send + '_, M>
    where
        A: VirtualHandler<M>,
        M: Message,
    {
        if !self.dispatch.in_mailbox::<M>() {
            return Err(msg);
        }
        Ok(async move {
            if !self.tracker.enter() {
                return Err(AskError::Send(SendError::Remote {
                    error: RemoteError::NoSuchActor(self.local.id()),
                    message: Some(msg),
                }));
            }
            let answer = self.local.ask_timeout(msg, timeout).await;
            if matches!(answer, Err(AskError::Send(_))) {
                self.tracker.abandon();
            }
            answer
        })
    }
}
