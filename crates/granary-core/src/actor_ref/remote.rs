//! The seam where the remote layer plugs a remote actor into [`crate::ActorRef`].

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::actor::Message;
use crate::error::{AskError, RemoteError, SendError};
use crate::id::ActorId;
use crate::lifecycle::Terminated;

thread_local! {
    /// The actor on whose behalf the future being polled on this thread sends; set
    /// only while an [`AsSender`] polls its future.
    static SENDER: Cell<Option<ActorId>> = const { Cell::new(None) };
}

pin_project_lite::pin_project! {
    /// A future that runs as an actor: see [`as_sender`].
    ///
    /// It holds only the id beside the future (a `tokio::task_local!` scope around
    /// every actor's task made each idle actor 131 bytes bigger).
    pub struct AsSender<F> {
        sender: ActorId,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for AsSender<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let previous = SENDER.with(|s| s.replace(Some(*this.sender)));
        // Restored on the way out, also when the inner future panics.
        let _restore = Restore(previous);
        this.fut.poll(cx)
    }
}

/// Puts back the sender that was current before an [`AsSender`] poll.
struct Restore(Option<ActorId>);

impl Drop for Restore {
    fn drop(&mut self) {
        SENDER.with(|s| s.set(self.0));
    }
}

/// Runs `fut` as the actor `sender`: remote sends made inside it report `sender` in
/// [`current_sender`]. Every actor's own task already runs this way; use it for tasks
/// an actor spawns that should keep its (sender, recipient) order on the wire.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use granary_core::{as_sender, current_sender, ActorId};
/// assert_eq!(current_sender(), None);
/// let id = ActorId::new(0, 7);
/// assert_eq!(as_sender(id, async { current_sender() }).await, Some(id));
/// assert_eq!(current_sender(), None);
/// # }
/// ```
pub fn as_sender<F: Future>(sender: ActorId, fut: F) -> AsSender<F> {
    AsSender { sender, fut }
}

/// The actor on whose behalf the current task sends: inside an actor's handler that
/// actor, inside [`as_sender`] its id, elsewhere `None`. A [`RemoteTarget`] reads it to
/// keep each (sender, recipient) pair's messages in order on one connection (affinity).
pub fn current_sender() -> Option<ActorId> {
    SENDER.with(Cell::get)
}

/// A message with its type erased, as handed to a [`RemoteTarget`].
pub type ErasedMessage = Box<dyn Any + Send>;

/// An actor that lives elsewhere, implemented by the remote layer.
///
/// [`crate::ActorRef::from_remote`] wraps one; `tell`/`ask` on such a ref box the
/// message and call these methods with `std::any::type_name::<M>()`. Replies must
/// be the handler's `M::Reply`, boxed; anything else becomes
/// `RemoteError::TypeMismatch`. Errors carry the boxed message back when it was
/// not consumed. The sending actor, when there is one, is [`current_sender`].
pub trait RemoteTarget: Send + Sync + 'static {
    /// The remote actor's id (node part non-zero).
    fn id(&self) -> ActorId;

    /// Sends a message without waiting for a reply.
    fn tell_erased(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
    ) -> Result<(), SendError<ErasedMessage>>;

    /// Like [`RemoteTarget::tell_erased`], with a `token` to drop once the recipient
    /// has taken the message (see [`crate::ActorRef::tell_holding`]: granary-remote's
    /// flow control holds one of the recipient's credits in it). The default drops the
    /// token as soon as `tell_erased` returns, which is right for an actor on another
    /// node (its transport has flow control of its own). A target that hands the
    /// message to a mailbox in this process (such as granary-virtual's door to an
    /// activation) overrides it and keeps the token with the message, so the credit
    /// comes back only when the actor takes it.
    fn tell_erased_holding(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
        token: Box<dyn std::any::Any + Send>,
    ) -> Result<(), SendError<ErasedMessage>> {
        let sent = self.tell_erased(msg, type_name);
        drop(token);
        sent
    }

    /// Like [`RemoteTarget::tell_erased`] for [`crate::ActorRef::send`], which waits
    /// for room: a message refused only because the way to the actor is full
    /// (backpressure) is neither lost nor a dead letter; the target returns
    /// [`SendAttempt::Waiting`], a future that waits until there is room and sends it
    /// again, as often as it takes. Anything else ends the attempt as `tell_erased`
    /// would. The default waits for nothing: it is `tell_erased`.
    fn send_erased(&self, msg: ErasedMessage, type_name: &'static str) -> SendAttempt<'_> {
        SendAttempt::Done(self.tell_erased(msg, type_name))
    }

    /// Sends a request and waits at most `timeout` for the boxed reply.
    fn ask_erased(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<ErasedMessage, AskError<ErasedMessage>>>;

    /// Asks the remote actor to stop.
    fn stop(&self);

    /// Calls `notify` once when the remote actor stops (or is known unreachable).
    /// `watcher` identifies the registration for [`RemoteTarget::unwatch`].
    fn watch(&self, watcher: ActorId, notify: Box<dyn FnOnce(Terminated) + Send>);

    /// Drops the registration made by `watcher`.
    fn unwatch(&self, watcher: ActorId);

    /// The actor system of the node this ref was made on, when the target knows it:
    /// asks through the ref count in that system's metrics, under its node label
    /// ([`crate::ActorSystem::set_node_label`]). The default knows none, and such asks
    /// count in the series without a node label.
    fn system(&self) -> Option<&crate::ActorSystem> {
        None
    }
}

/// What became of a message handed to [`RemoteTarget::send_erased`].
pub enum SendAttempt<'a> {
    /// Sent, or refused for good (the error gives the message back when it can).
    Done(Result<(), SendError<ErasedMessage>>),
    /// Refused for backpressure: the future waits for room and sends the message
    /// again until it is sent or refused for another reason. Only this path
    /// allocates (the future), so a send that goes through at once costs what a tell
    /// does.
    Waiting(BoxFuture<'a, Result<(), SendError<ErasedMessage>>>),
}

/// The meters asks through `target` count in.
pub(crate) fn meters_of(target: &dyn RemoteTarget) -> Option<&'static crate::observe::NodeMeters> {
    target.system().map(|s| s.inner.meters.meters())
}

/// Tells `target` a typed message: boxes it and names it by
/// `std::any::type_name::<M>()`, as [`crate::ActorRef::tell`] does for a remote ref.
/// For refs that know the messages they may send but not the actor type behind them
/// (granary-remote's and granary-virtual's contract refs); an error gives the message
/// back when it was not consumed.
///
/// ```
/// # use std::sync::Arc;
/// # use granary_core::*;
/// # struct Nobody;
/// # impl RemoteTarget for Nobody {
/// #     fn id(&self) -> ActorId { ActorId::new(1, 1) }
/// #     fn tell_erased(&self, msg: ErasedMessage, _: &'static str) -> Result<(), SendError<ErasedMessage>> {
/// #         Err(SendError::Remote { error: RemoteError::Unreachable, message: Some(msg) })
/// #     }
/// #     fn ask_erased(&self, msg: ErasedMessage, _: &'static str, _: std::time::Duration)
/// #         -> futures::future::BoxFuture<'static, Result<ErasedMessage, AskError<ErasedMessage>>> {
/// #         Box::pin(async { Err(AskError::Remote(RemoteError::Unreachable)) })
/// #     }
/// #     fn stop(&self) {}
/// #     fn watch(&self, _: ActorId, _: Box<dyn FnOnce(Terminated) + Send>) {}
/// #     fn unwatch(&self, _: ActorId) {}
/// # }
/// struct Ping(u32);
/// impl Message for Ping { type Reply = (); }
/// let target: Arc<dyn RemoteTarget> = Arc::new(Nobody);
/// match tell_target(&*target, Ping(7)) {
///     Err(SendError::Remote { message: Some(Ping(n)), .. }) => assert_eq!(n, 7),
///     _ => unreachable!("Nobody refuses every message"),
/// }
/// ```
pub fn tell_target<M: Message>(target: &dyn RemoteTarget, msg: M) -> Result<(), SendError<M>> {
    target
        .tell_erased(Box::new(msg), std::any::type_name::<M>())
        .map_err(downcast_message)
}

/// Asks `target` with a typed message and waits at most `timeout` for the typed reply,
/// as [`crate::ActorRef::ask_timeout`] does for a remote ref (the same path and the
/// same `granary_asks_total` metrics). A reply of another type than `M::Reply` is
/// [`RemoteError::TypeMismatch`].
pub async fn ask_target<M: Message>(
    target: &dyn RemoteTarget,
    msg: M,
    timeout: Duration,
) -> Result<M::Reply, AskError<M>> {
    let start = std::time::Instant::now();
    let result = ask_target_untimed(target, msg, timeout).await;
    crate::observe::ask_done(meters_of(target), start, super::ask_outcome(&result));
    result
}

/// [`ask_target`] without its metrics.
pub(crate) async fn ask_target_untimed<M: Message>(
    target: &dyn RemoteTarget,
    msg: M,
    timeout: Duration,
) -> Result<M::Reply, AskError<M>> {
    let answer = target
        .ask_erased(Box::new(msg), std::any::type_name::<M>(), timeout)
        .await;
    match answer {
        Ok(boxed) => boxed.downcast::<M::Reply>().map(|b| *b).map_err(|_| {
            AskError::Remote(RemoteError::TypeMismatch {
                expected: std::any::type_name::<M::Reply>().to_string(),
                found: "another type".to_string(),
            })
        }),
        Err(AskError::Send(e)) => Err(AskError::Send(downcast_message(e))),
        Err(AskError::Timeout) => Err(AskError::Timeout),
        Err(AskError::ActorPanicked) => Err(AskError::ActorPanicked),
        Err(AskError::ActorStopped) => Err(AskError::ActorStopped),
        Err(AskError::Remote(e)) => Err(AskError::Remote(e)),
    }
}

/// A send error about a boxed message, with the message typed again (dropped if it is
/// of another type than `M`).
pub(crate) fn downcast_message<M: 'static>(e: SendError<ErasedMessage>) -> SendError<M> {
    let mismatch = |found: &'static str| RemoteError::TypeMismatch {
        expected: std::any::type_name::<M>().to_string(),
        found: found.to_string(),
    };
    match e.map_message(|b| b.downcast::<M>().map(|m| *m)) {
        SendError::ActorStopped(Ok(m)) => SendError::ActorStopped(m),
        SendError::MailboxFull(Ok(m)) => SendError::MailboxFull(m),
        SendError::Remote { error, message } => SendError::Remote {
            error,
            message: message.and_then(Result::ok),
        },
        _ => SendError::Remote {
            error: mismatch("another type"),
            message: None,
        },
    }
}
