//! The seam where the remote layer plugs a remote actor into [`crate::ActorRef`].

use std::any::Any;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::{AskError, SendError};
use crate::id::ActorId;
use crate::lifecycle::Terminated;

/// A message with its type erased, as handed to a [`RemoteTarget`].
pub type ErasedMessage = Box<dyn Any + Send>;

/// An actor that lives elsewhere, implemented by the remote layer.
///
/// [`crate::ActorRef::from_remote`] wraps one; `tell`/`ask` on such a ref box the
/// message and call these methods with `std::any::type_name::<M>()`. Replies must
/// be the handler's `M::Reply`, boxed; anything else becomes
/// `RemoteError::TypeMismatch`. Errors carry the boxed message back when it was
/// not consumed.
pub trait RemoteTarget: Send + Sync + 'static {
    /// The remote actor's id (node part non-zero).
    fn id(&self) -> ActorId;

    /// Sends a message without waiting for a reply.
    fn tell_erased(
        &self,
        msg: ErasedMessage,
        type_name: &'static str,
    ) -> Result<(), SendError<ErasedMessage>>;

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
