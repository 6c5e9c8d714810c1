//! Messages of the system lane: stop, supervision and watch traffic.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::actor_ref::Recipient;
use crate::id::ActorId;
use crate::lifecycle::{Failure, StopReason, Terminated};
use crate::mailbox::SystemLane;

/// A message on the system lane, always served before user messages.
pub(crate) enum SystemMsg {
    /// Stop after the current message.
    Stop(StopReason),
    /// (child to parent) the child failed and waits for a directive on `lane`.
    ChildFailed {
        child: ActorId,
        failure: Failure,
        lane: Arc<dyn SystemLane>,
    },
    /// (child to parent) the child has fully stopped.
    ChildTerminated(ActorId),
    /// (parent to a failed, waiting child) what to do.
    Directive(ChildDirective),
    /// (parent to a running child) restart because a sibling failed (all-for-one).
    RestartSibling { delay: Duration, sibling: ActorId },
    /// Notify this watcher when the actor stops.
    Watch(Watcher),
    /// Forget the watcher with this id.
    Unwatch(ActorId),
}

/// A stop request that carries no failure, as a mailbox holds it: one byte, where
/// a [`SystemMsg`] in the system lane's `Vec` costs that `Vec`'s first allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlainStop {
    Normal,
    ParentStopped,
    Shutdown,
}

impl PlainStop {
    /// The plain stop request `msg` is, if it is one.
    pub(crate) fn of(msg: &SystemMsg) -> Option<Self> {
        match msg {
            SystemMsg::Stop(StopReason::Normal) => Some(PlainStop::Normal),
            SystemMsg::Stop(StopReason::ParentStopped) => Some(PlainStop::ParentStopped),
            SystemMsg::Stop(StopReason::Shutdown) => Some(PlainStop::Shutdown),
            _ => None,
        }
    }

    /// The message it stands for.
    fn into_msg(self) -> SystemMsg {
        SystemMsg::Stop(match self {
            PlainStop::Normal => StopReason::Normal,
            PlainStop::ParentStopped => StopReason::ParentStopped,
            PlainStop::Shutdown => StopReason::Shutdown,
        })
    }
}

/// The system messages taken from a mailbox in one go: its held stop request
/// first, then the others in the order they came.
pub(crate) struct SystemMsgs {
    pub(crate) stop: Option<PlainStop>,
    pub(crate) rest: Vec<SystemMsg>,
}

impl IntoIterator for SystemMsgs {
    type Item = SystemMsg;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<SystemMsg>, std::vec::IntoIter<SystemMsg>>;

    fn into_iter(self) -> Self::IntoIter {
        self.stop
            .map(PlainStop::into_msg)
            .into_iter()
            .chain(self.rest)
    }
}

/// The answer a parent sends to a failed child.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ChildDirective {
    Resume,
    Restart(Duration),
    Stop,
}

/// Someone to tell when an actor stops.
pub(crate) enum Watcher {
    /// An actor that handles [`Terminated`].
    Actor(Recipient<Terminated>),
    /// A one-shot waiter (`ActorRef::wait_stopped`).
    Waiter(oneshot::Sender<StopReason>),
    /// A callback (`ActorRef::on_stopped`).
    Callback(StopCallback),
}

/// A function run once when an actor stops; dropped without having run (the actor's
/// task was aborted), it runs with [`StopReason::Killed`], as a dropped waiter reads.
/// The mutex only makes it `Sync` (an actor's context, which holds its watchers, is
/// shared across awaits); it is never contended.
pub(crate) struct StopCallback(parking_lot::Mutex<Option<OnStop>>);

/// What [`StopCallback`] runs.
type OnStop = Box<dyn FnOnce(StopReason) + Send>;

impl StopCallback {
    pub(crate) fn new(f: impl FnOnce(StopReason) + Send + 'static) -> Self {
        Self(parking_lot::Mutex::new(Some(Box::new(f))))
    }

    fn run(self, reason: StopReason) {
        if let Some(f) = self.0.lock().take() {
            f(reason);
        }
    }
}

impl Drop for StopCallback {
    fn drop(&mut self) {
        if let Some(f) = self.0.get_mut().take() {
            f(StopReason::Killed);
        }
    }
}

impl Watcher {
    /// The watcher's actor id, for `unwatch`.
    pub(crate) fn id(&self) -> Option<ActorId> {
        match self {
            Watcher::Actor(r) => Some(r.id()),
            Watcher::Waiter(_) | Watcher::Callback(_) => None,
        }
    }

    /// Delivers the notification (a failure to deliver is a dead letter on the
    /// watcher's side, nothing more).
    pub(crate) fn notify(self, terminated: Terminated) {
        match self {
            Watcher::Actor(r) => {
                let _ = r.tell(terminated);
            }
            Watcher::Waiter(tx) => {
                let _ = tx.send(terminated.reason);
            }
            Watcher::Callback(f) => f.run(terminated.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    /// A context holds its watchers across awaits, so every watcher must be `Sync`.
    #[test]
    fn a_watcher_is_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<super::Watcher>();
    }
}
