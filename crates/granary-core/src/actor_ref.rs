//! [`ActorRef`]: the typed handle to an actor, local or remote.

mod recipient;
mod remote;

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::actor::{Actor, Handler, Message};
use crate::envelope::{AskEnvelope, AskFailure, TellEnvelope, Then, ThenEnvelope};
use crate::error::{AskError, SendError};
use crate::event::DeadLetterReason;
use crate::id::ActorId;
use crate::lifecycle::{StopReason, Terminated};
use crate::mailbox::{HeldTellEnvelope, Mailbox, PushError, StopCallback, SystemMsg, Watcher};
use crate::observe::AskOutcome;

pub use recipient::Recipient;
pub use remote::{
    as_sender, ask_target, current_sender, tell_target, AsSender, ErasedMessage, RemoteTarget,
    SendAttempt,
};

/// The ask timeout used when no actor system is at hand (remote refs).
pub const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(5);

enum Target<A: Actor> {
    Local(Arc<Mailbox<A>>),
    Remote(Arc<dyn RemoteTarget>),
}

/// A typed handle to an actor of type `A`.
///
/// Cheap to clone (one `Arc`), `Send + Sync`, equal and hashed by [`ActorId`].
/// A local ref pushes straight into the mailbox; a remote ref (built by the
/// remote layer with [`ActorRef::from_remote`]) goes through the wire.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use granary_core::prelude::*;
/// struct Counter { n: u64 }
/// impl Actor for Counter {}
/// struct Add(u64);
/// impl Message for Add { type Reply = u64; }
/// impl Handler<Add> for Counter {
///     async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 { self.n += msg.0; self.n }
/// }
/// let system = ActorSystem::new();
/// let counter = system.spawn(Counter { n: 0 });
/// counter.tell(Add(1)).unwrap();
/// assert_eq!(counter.ask(Add(2)).await.unwrap(), 3);
/// counter.stop();
/// system.shutdown().await;
/// # }
/// ```
pub struct ActorRef<A: Actor> {
    target: Target<A>,
}

/// Pushes into a bounded mailbox, waiting for room until `deadline`; `None`
/// when the deadline passed first.
async fn push_within<A: Actor, E: crate::envelope::Envelope<A> + 'static>(
    mb: &Mailbox<A>,
    env: E,
    deadline: Option<tokio::time::Instant>,
) -> Option<Result<(), PushError<E>>> {
    let wait = mb.push_user_wait(env);
    match deadline {
        Some(d) => tokio::time::timeout_at(d, wait).await.ok(),
        None => Some(wait.await),
    }
}

fn local_send_error<M, E>(e: PushError<E>, unwrap: impl FnOnce(E) -> M) -> SendError<M> {
    match e {
        PushError::Closed(env) => SendError::ActorStopped(unwrap(env)),
        PushError::Full(env) => SendError::MailboxFull(unwrap(env)),
    }
}

impl<A: Actor> ActorRef<A> {
    pub(crate) fn local(mailbox: Arc<Mailbox<A>>) -> Self {
        Self {
            target: Target::Local(mailbox),
        }
    }

    /// Wraps a remote actor (used by the remote layer).
    pub fn from_remote(target: Arc<dyn RemoteTarget>) -> Self {
        Self {
            target: Target::Remote(target),
        }
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        match &self.target {
            Target::Local(mb) => mb.id(),
            Target::Remote(t) => t.id(),
        }
    }

    /// Whether the actor lives in this process.
    pub fn is_local(&self) -> bool {
        matches!(self.target, Target::Local(_))
    }

    /// Whether a local actor's mailbox still accepts messages (a remote ref
    /// answers `true`: only a send can tell).
    pub fn is_alive(&self) -> bool {
        match &self.target {
            Target::Local(mb) => mb.is_open(),
            Target::Remote(_) => true,
        }
    }

    /// Whether a local actor's mailbox is bounded ([`crate::MailboxConfig::bounded`]):
    /// then [`ActorRef::ask_then`] fails at once on a full mailbox where
    /// [`ActorRef::ask`] waits for room. `false` for a remote ref.
    pub fn is_bounded(&self) -> bool {
        match &self.target {
            Target::Local(mb) => mb.is_bounded(),
            Target::Remote(_) => false,
        }
    }

    /// Sends a message without waiting. On a bounded mailbox that is full this
    /// fails with [`SendError::MailboxFull`]; every failure gives the message back
    /// (when local) and publishes a [`crate::DeadLetter`].
    #[inline]
    pub fn tell<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        M: Message,
    {
        match &self.target {
            Target::Local(mb) => mb
                .push_user(TellEnvelope(msg, crate::observe::capture()))
                .map_err(|e| local_send_error(e, |env| env.0)),
            Target::Remote(t) => tell_target(&**t, msg),
        }
    }

    /// Like [`ActorRef::tell`], with a `token` that is dropped once the actor has taken
    /// the message out of its mailbox (or the message became a dead letter, or the send
    /// failed). Whoever holds the other end of the token learns how many of its messages
    /// still wait in the mailbox; granary-remote uses it to bound the messages from the
    /// wire waiting for an exposed actor (flow control). For a ref built with
    /// [`ActorRef::from_remote`] the target decides
    /// ([`crate::RemoteTarget::tell_erased_holding`]): a ref to another node drops the
    /// token as soon as the message is handed to the transport.
    pub fn tell_holding<M, T>(&self, msg: M, token: T) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        M: Message,
        T: Send + 'static,
    {
        match &self.target {
            Target::Local(mb) => mb
                .push_user(HeldTellEnvelope {
                    tell: TellEnvelope(msg, crate::observe::capture()),
                    token,
                })
                .map_err(|e| local_send_error(e, |env| env.tell.0)),
            Target::Remote(t) => t
                .tell_erased_holding(Box::new(msg), std::any::type_name::<M>(), Box::new(token))
                .map_err(remote::downcast_message),
        }
    }

    /// The same as [`ActorRef::tell`]; the name says "never waits" at call sites
    /// that use bounded mailboxes.
    pub fn try_tell<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        M: Message,
    {
        self.tell(msg)
    }

    /// Sends a message, waiting for room when the mailbox is bounded and full
    /// (backpressure). Fails only when the actor has stopped.
    ///
    /// For an actor on another node, "full" is the transport's queue to that node
    /// (`TransportConfig::queue_capacity` in granary-remote): where
    /// [`ActorRef::tell`] fails with a backpressure error, `send` waits until the
    /// connection's writer has taken what was queued and sends again, so a fast
    /// producer is slowed to what the network and the receiver take instead of
    /// spinning on retries. It waits as long as the way stays full (a peer that stops
    /// reading); put a `tokio::time::timeout` around it to bound the wait. Any other
    /// failure (unreachable, stopped, shut down) ends it at once, as for `tell`.
    pub async fn send<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        M: Message,
    {
        match &self.target {
            Target::Local(mb) => mb
                .push_user_wait(TellEnvelope(msg, crate::observe::capture()))
                .await
                .map_err(|e| local_send_error(e, |env| env.0)),
            Target::Remote(t) => match t.send_erased(Box::new(msg), std::any::type_name::<M>()) {
                SendAttempt::Done(sent) => sent.map_err(remote::downcast_message),
                SendAttempt::Waiting(wait) => wait.await.map_err(remote::downcast_message),
            },
        }
    }

    /// Request/response with the system's default ask timeout (5 s unless
    /// configured with [`crate::SystemBuilder::ask_timeout`]).
    pub fn ask<M>(&self, msg: M) -> impl Future<Output = Result<M::Reply, AskError<M>>> + Send + '_
    where
        A: Handler<M>,
        M: Message,
    {
        let system = self.local_system();
        let timeout = system
            .as_ref()
            .map_or(DEFAULT_ASK_TIMEOUT, |s| s.config.ask_timeout);
        self.ask_metered(msg, timeout, system)
    }

    /// Request/response that gives up after `timeout` with [`AskError::Timeout`]
    /// (and a `Timeout` dead letter). On a full bounded mailbox the request
    /// waits for room within the same timeout. A handler panic answers
    /// [`AskError::ActorPanicked`] at once; a stop answers
    /// [`AskError::ActorStopped`].
    pub async fn ask_timeout<M>(&self, msg: M, timeout: Duration) -> Result<M::Reply, AskError<M>>
    where
        A: Handler<M>,
        M: Message,
    {
        self.ask_metered(msg, timeout, self.local_system()).await
    }

    /// The system of a local actor (`None` for a remote one, or once the system is
    /// gone).
    fn local_system(&self) -> Option<Arc<crate::system::SystemInner>> {
        match &self.target {
            Target::Local(mb) => mb.system(),
            Target::Remote(_) => None,
        }
    }

    /// [`ActorRef::ask_timeout`], counted in the asking system's meters (the
    /// unlabelled ones when it is not known). `system` is a local actor's.
    async fn ask_metered<M>(
        &self,
        msg: M,
        timeout: Duration,
        system: Option<Arc<crate::system::SystemInner>>,
    ) -> Result<M::Reply, AskError<M>>
    where
        A: Handler<M>,
        M: Message,
    {
        let meters = match &self.target {
            Target::Local(_) => system.as_ref().map(|s| s.meters.meters()),
            Target::Remote(t) => remote::meters_of(&**t),
        };
        let start = std::time::Instant::now();
        let result = self.ask_untimed(msg, timeout, system.as_ref()).await;
        crate::observe::ask_done(meters, start, ask_outcome(&result));
        result
    }

    /// [`ActorRef::ask_timeout`] without its metrics. A local ask's deadline is kept
    /// by its `system` ([`crate::system::AskDeadlines`]: no tokio timer per ask).
    async fn ask_untimed<M>(
        &self,
        msg: M,
        timeout: Duration,
        system: Option<&Arc<crate::system::SystemInner>>,
    ) -> Result<M::Reply, AskError<M>>
    where
        A: Handler<M>,
        M: Message,
    {
        match &self.target {
            Target::Local(mb) => {
                let (reply, rx) = oneshot::channel();
                let env = AskEnvelope {
                    msg,
                    reply,
                    parent: crate::observe::capture(),
                };
                let deadline = tokio::time::Instant::now().checked_add(timeout);
                let pushed = if mb.is_bounded() {
                    // A request on a full bounded mailbox waits for room, within
                    // the same timeout (boxed: the common unbounded path stays small).
                    match Box::pin(push_within(mb, env, deadline)).await {
                        Some(pushed) => pushed,
                        None => {
                            mb.dead_letter(
                                std::any::type_name::<M>(),
                                DeadLetterReason::MailboxFull,
                            );
                            return Err(AskError::Timeout);
                        }
                    }
                } else {
                    mb.push_user(env)
                };
                pushed.map_err(|e| AskError::Send(local_send_error(e, |env| env.msg)))?;
                // Waiting for the reply does not take part in tokio's cooperative
                // budget: the future completes once, when the reply is there, and
                // a budget-forced `Pending` makes large sets of concurrent asks
                // (e.g. in a `FuturesUnordered`) re-poll each other quadratically.
                let reply = tokio::task::unconstrained(async {
                    match (deadline, system) {
                        (Some(d), Some(system)) => {
                            system.ask_deadlines.within(d, rx).await.map_err(|_| ())
                        }
                        (Some(d), None) => tokio::time::timeout_at(d, rx).await.map_err(|_| ()),
                        (None, _) => Ok(rx.await),
                    }
                });
                match reply.await {
                    Ok(Ok(Ok(answer))) => Ok(answer),
                    Ok(Ok(Err(AskFailure::Panicked))) => Err(AskError::ActorPanicked),
                    Ok(Err(_closed)) => Err(AskError::ActorStopped),
                    Err(_elapsed) => {
                        mb.dead_letter(std::any::type_name::<M>(), DeadLetterReason::Timeout);
                        Err(AskError::Timeout)
                    }
                }
            }
            Target::Remote(t) => remote::ask_target_untimed(&**t, msg, timeout).await,
        }
    }

    /// Request/response without a waiting future: `then` is called exactly once with
    /// the answer or why there is none, and no reply channel, task or timer is made.
    /// The request is one push into the mailbox; the answer is handed to `then` on the
    /// actor's task right after the handler returns, so `then` must be short, must not
    /// block and must not panic (it may run while a handler panic unwinds).
    ///
    /// `then` gets, for a local actor:
    /// - `Ok(reply)` once the handler returned;
    /// - [`AskError::ActorPanicked`] if the handler panicked;
    /// - [`AskError::ActorStopped`] if the request was never handled: the actor
    ///   stopped with it queued (a dead letter), refused it ([`crate::Actor::admits`]),
    ///   or was stopped or aborted while handling it;
    /// - [`AskError::Send`] with the message inside if it could not be queued at all
    ///   (the actor had stopped, or its bounded mailbox was full: `ask_then` never
    ///   waits for room). This one is called on the caller's thread before `ask_then`
    ///   returns.
    ///
    /// There is no timeout: a handler that never returns holds `then` (and whatever
    /// it captured) until the actor stops, when `then` gets
    /// [`AskError::ActorStopped`]. Unlike [`ActorRef::ask`], a local `ask_then` is not
    /// counted in `granary_asks_total` (the request is counted as a handled message).
    ///
    /// For a remote ref (built with [`ActorRef::from_remote`]) the request goes
    /// through [`ActorRef::ask`] on a spawned task, with [`DEFAULT_ASK_TIMEOUT`]; `then`
    /// runs on that task ([`AskError::Send`] with a `RemoteError` at once if there is
    /// no tokio runtime to spawn it on).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use granary_core::prelude::*;
    /// struct Doubler;
    /// impl Actor for Doubler {}
    /// struct Double(u64);
    /// impl Message for Double { type Reply = u64; }
    /// impl Handler<Double> for Doubler {
    ///     async fn handle(&mut self, msg: Double, _ctx: &mut Context<Self>) -> u64 { msg.0 * 2 }
    /// }
    /// let system = ActorSystem::new();
    /// let doubler = system.spawn(Doubler);
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// doubler.ask_then(Double(21), move |answer| {
    ///     let _ = tx.send(answer.ok());
    /// });
    /// assert_eq!(rx.await.unwrap(), Some(42));
    /// system.shutdown().await;
    /// # }
    /// ```
    pub fn ask_then<M, F>(&self, msg: M, then: F)
    where
        A: Handler<M>,
        M: Message,
        F: FnOnce(Result<M::Reply, AskError<M>>) + Send + 'static,
    {
        self.ask_then_holding(msg, (), then);
    }

    /// [`ActorRef::ask_then`] with a `token` that is dropped once the actor has taken
    /// the request out of its mailbox (before its handler runs), or when the request
    /// is not queued or becomes a dead letter — as [`ActorRef::tell_holding`] does for
    /// a tell. granary-remote uses it to give a flow-control credit back as soon as an
    /// ask from the wire leaves the mailbox, so that a handler waiting on another
    /// actor behind the same credits holds none. For a remote ref the token is dropped
    /// once the request is handed on.
    pub fn ask_then_holding<M, T, F>(&self, msg: M, token: T, then: F)
    where
        A: Handler<M>,
        M: Message,
        T: Send + 'static,
        F: FnOnce(Result<M::Reply, AskError<M>>) + Send + 'static,
    {
        match &self.target {
            Target::Local(mb) => {
                let env = ThenEnvelope {
                    msg,
                    then: Then::new(then),
                    parent: crate::observe::capture(),
                    token,
                };
                if let Err(e) = mb.push_user(env) {
                    // Not queued (a dead letter is published already): the message
                    // goes back through the callback.
                    let (ThenEnvelope { msg, then, .. }, full) = match e {
                        PushError::Closed(env) => (env, false),
                        PushError::Full(env) => (env, true),
                    };
                    let unsent = if full {
                        SendError::MailboxFull(msg)
                    } else {
                        SendError::ActorStopped(msg)
                    };
                    then.call(Err(AskError::Send(unsent)));
                }
            }
            Target::Remote(t) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    drop(token);
                    let target = t.clone();
                    runtime.spawn(async move {
                        then(remote::ask_target(&*target, msg, DEFAULT_ASK_TIMEOUT).await);
                    });
                }
                Err(_) => then(Err(AskError::Send(SendError::Remote {
                    error: crate::error::RemoteError::Other(
                        "ask_then on a remote ref needs a tokio runtime".into(),
                    ),
                    message: Some(msg),
                }))),
            },
        }
    }

    /// Asks the actor to stop. The stop goes on the system lane, so it is served
    /// right after the message in progress; user messages still queued become
    /// dead letters. Stopping a stopped actor does nothing.
    pub fn stop(&self) {
        match &self.target {
            Target::Local(mb) => {
                let _ = mb.push_system(SystemMsg::Stop(StopReason::Normal));
            }
            Target::Remote(t) => t.stop(),
        }
    }

    /// Waits until the actor has stopped and returns why. Returns
    /// [`StopReason::NotAlive`] at once for an actor that had already stopped.
    pub async fn wait_stopped(&self) -> StopReason {
        let (tx, rx) = oneshot::channel();
        self.add_watcher(Watcher::Waiter(tx));
        rx.await.unwrap_or(StopReason::Killed)
    }

    /// Runs `f` once the actor has stopped, with why: at once with
    /// [`StopReason::NotAlive`] for an actor that had already stopped, and with
    /// [`StopReason::Killed`] if its task was aborted. Unlike
    /// [`ActorRef::wait_stopped`] no task waits, so it costs one small allocation per
    /// watched actor. `f` runs on the stopping actor's task (or the caller's, if the
    /// actor had stopped): keep it short, and never block in it.
    pub fn on_stopped(&self, f: impl FnOnce(StopReason) + Send + 'static) {
        self.add_watcher(Watcher::Callback(StopCallback::new(f)));
    }

    /// A ref that accepts only `M` (see [`Recipient`]).
    pub fn recipient<M>(&self) -> Recipient<M>
    where
        A: Handler<M>,
        M: Message,
    {
        Recipient::new(self.clone())
    }

    pub(crate) fn add_watcher(&self, watcher: Watcher) {
        match &self.target {
            Target::Local(mb) => {
                if let Err(SystemMsg::Watch(w)) = mb.push_system(SystemMsg::Watch(watcher)) {
                    w.notify(Terminated {
                        id: mb.id(),
                        reason: StopReason::NotAlive,
                    });
                }
            }
            Target::Remote(t) => {
                let id = watcher.id().unwrap_or(ActorId::new(0, 0));
                t.watch(id, Box::new(move |terminated| watcher.notify(terminated)));
            }
        }
    }

    pub(crate) fn remove_watcher(&self, watcher: ActorId) {
        match &self.target {
            Target::Local(mb) => {
                let _ = mb.push_system(SystemMsg::Unwatch(watcher));
            }
            Target::Remote(t) => t.unwatch(watcher),
        }
    }
}

impl<A: Actor> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        Self {
            target: match &self.target {
                Target::Local(mb) => Target::Local(mb.clone()),
                Target::Remote(t) => Target::Remote(t.clone()),
            },
        }
    }
}

impl<A: Actor> PartialEq for ActorRef<A> {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl<A: Actor> Eq for ActorRef<A> {}

impl<A: Actor> Hash for ActorRef<A> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

impl<A: Actor> fmt::Debug for ActorRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorRef<{}>({})", std::any::type_name::<A>(), self.id())
    }
}

/// The `outcome` label of `granary_asks_total`.
pub(crate) fn ask_outcome<R, M>(result: &Result<R, AskError<M>>) -> AskOutcome {
    match result {
        Ok(_) => AskOutcome::Ok,
        Err(AskError::Timeout) => AskOutcome::Timeout,
        Err(AskError::ActorPanicked) => AskOutcome::Panicked,
        Err(AskError::ActorStopped) => AskOutcome::Stopped,
        Err(AskError::Remote(_)) => AskOutcome::Remote,
        Err(AskError::Send(_)) => AskOutcome::Send,
    }
}
