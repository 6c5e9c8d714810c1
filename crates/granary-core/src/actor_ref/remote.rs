//! The seam where the remote layer plugs a remote actor into [`crate::ActorRef`].

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::{AskError, SendError};
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
}
