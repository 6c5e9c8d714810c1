//! Why actors fail and stop, and the [`Terminated`] notification watchers receive.

use crate::actor::Message;
use crate::id::ActorId;

/// Why an actor failed: what its supervisor is asked to decide about.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// A handler, a hook or a restart factory panicked; the panic message.
    #[error("panicked: {0}")]
    Panic(String),
    /// [`crate::Actor::started`] returned an error.
    #[error("start failed: {0}")]
    Start(String),
    /// A child failed and this actor's strategy escalated the failure.
    #[error("child {child} failed and the failure was escalated: {cause}")]
    Escalated {
        /// The child that failed.
        child: ActorId,
        /// Why it failed.
        cause: Box<Failure>,
    },
    /// A sibling failed under an all-for-one strategy, so this actor restarts too.
    #[error("sibling {0} failed (all-for-one)")]
    Sibling(ActorId),
}

/// Why an actor stopped.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Stopped on request (`ActorRef::stop` or `Context::stop`).
    Normal,
    /// Its parent stopped or restarted, which stops its children first.
    ParentStopped,
    /// The actor system shut down.
    Shutdown,
    /// It failed and its supervisor stopped it (or its restart budget ran out).
    Failed(Failure),
    /// The watched actor had already stopped when the watch was set up.
    NotAlive,
    /// It did not stop within the shutdown timeout and its task was aborted.
    Killed,
    /// It lived on another node, and that node was lost (unreachable or restarted):
    /// the actor counts as stopped.
    NodeLost,
}

/// Sent to watchers when an actor they watch stops (see
/// [`crate::Context::watch`]). The watcher handles it like any other message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    /// The actor that stopped.
    pub id: ActorId,
    /// Why it stopped.
    pub reason: StopReason,
}

impl Message for Terminated {
    type Reply = ();
}
