//! [`Context`]: what a running actor can do besides handling its message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::actor::{Actor, Handler, Message};
use crate::actor_ref::ActorRef;
use crate::id::ActorId;
use crate::lifecycle::Terminated;
use crate::mailbox::{Mailbox, SystemLane, Watcher};
use crate::props::Props;
use crate::supervision::RestartStats;
use crate::system::ActorSystem;
use crate::timer::TimerHandle;

/// A child as its parent sees it.
pub(crate) struct ChildEntry {
    pub(crate) lane: Arc<dyn SystemLane>,
    pub(crate) stats: RestartStats,
}

/// Per-actor state most actors never need; allocated on first use so an idle
/// actor stays small.
#[derive(Default)]
pub(crate) struct Extras {
    pub(crate) children: HashMap<ActorId, ChildEntry>,
    pub(crate) watchers: Vec<Watcher>,
    pub(crate) timers: Vec<AbortHandle>,
    /// Children whose failure this actor escalated; they wait for a directive.
    pub(crate) escalated: Vec<ActorId>,
}

/// The running actor's view of itself and the system, passed to every handler
/// and hook.
pub struct Context<A: Actor> {
    pub(crate) mailbox: Arc<Mailbox<A>>,
    pub(crate) system: ActorSystem,
    pub(crate) parent: Option<Arc<dyn SystemLane>>,
    pub(crate) extras: Option<Box<Extras>>,
    pub(crate) stop_requested: bool,
}

impl<A: Actor> Context<A> {
    pub(crate) fn new(
        mailbox: Arc<Mailbox<A>>,
        system: ActorSystem,
        parent: Option<Arc<dyn SystemLane>>,
    ) -> Self {
        Self {
            mailbox,
            system,
            parent,
            extras: None,
            stop_requested: false,
        }
    }

    pub(crate) fn extras(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Default::default)
    }

    /// This actor's id.
    pub fn id(&self) -> ActorId {
        self.mailbox.id()
    }

    /// A ref to this actor.
    pub fn actor_ref(&self) -> ActorRef<A> {
        ActorRef::local(self.mailbox.clone())
    }

    /// The actor system this actor runs in.
    pub fn system(&self) -> &ActorSystem {
        &self.system
    }

    /// The parent's id (`None` for a top-level actor).
    pub fn parent(&self) -> Option<ActorId> {
        self.parent.as_ref().map(|p| p.id())
    }

    /// The ids of the live children.
    pub fn children(&self) -> Vec<ActorId> {
        self.extras
            .as_ref()
            .map(|e| e.children.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Stops this actor once the current message is handled (called in
    /// [`Actor::started`]: before any message); queued user messages become dead
    /// letters.
    pub fn stop(&mut self) {
        self.stop_requested = true;
    }

    /// Spawns a child supervised by this actor (restarts reuse the instance;
    /// see [`Props`]).
    pub fn spawn_child<C: Actor>(&mut self, child: C) -> ActorRef<C> {
        self.spawn_child_props(Props::new(child))
    }

    /// Spawns a child that restarts from `factory`.
    pub fn spawn_child_with<C, F>(&mut self, factory: F) -> ActorRef<C>
    where
        C: Actor,
        F: Fn() -> C + Send + Sync + 'static,
    {
        self.spawn_child_props(Props::from_factory(factory))
    }

    /// Spawns a child from [`Props`].
    pub fn spawn_child_props<C: Actor>(&mut self, props: Props<C>) -> ActorRef<C> {
        let parent: Arc<dyn SystemLane> = self.mailbox.clone();
        let child = self.system.inner.spawn_actor(props, Some(parent));
        let lane: Arc<dyn SystemLane> = child.clone();
        self.extras().children.insert(
            child.id(),
            ChildEntry {
                lane,
                stats: RestartStats::default(),
            },
        );
        ActorRef::local(child)
    }

    /// Watches `target`: when it stops, this actor receives a [`Terminated`]
    /// message (at once, with reason `NotAlive`, if it already stopped).
    pub fn watch<B: Actor>(&mut self, target: &ActorRef<B>)
    where
        A: Handler<Terminated>,
    {
        target.add_watcher(Watcher::Actor(self.actor_ref().recipient()));
    }

    /// Stops watching `target`.
    pub fn unwatch<B: Actor>(&mut self, target: &ActorRef<B>) {
        target.remove_watcher(self.id());
    }

    fn track_timer(&mut self, abort: AbortHandle) -> TimerHandle {
        let timers = &mut self.extras().timers;
        timers.retain(|t| !t.is_finished());
        timers.push(abort.clone());
        TimerHandle::new(abort)
    }

    /// Sends `msg` to this actor after `delay`. Cancelled if the actor stops or
    /// restarts first.
    pub fn send_after<M>(&mut self, delay: Duration, msg: M) -> TimerHandle
    where
        A: Handler<M>,
        M: Message,
    {
        let me = self.actor_ref();
        let task = self.system.inner.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = me.tell(msg);
        });
        self.track_timer(task.abort_handle())
    }

    /// Sends `make()` to this actor every `period` (first after one period)
    /// until cancelled, or until the actor stops or restarts.
    pub fn interval<M, F>(&mut self, period: Duration, mut make: F) -> TimerHandle
    where
        A: Handler<M>,
        M: Message,
        F: FnMut() -> M + Send + 'static,
    {
        let me = self.actor_ref();
        let period = period.max(Duration::from_millis(1));
        let task = self.system.inner.runtime.spawn(async move {
            let start = tokio::time::Instant::now() + period;
            let mut ticks = tokio::time::interval_at(start, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if me.tell(make()).is_err() {
                    break;
                }
            }
        });
        self.track_timer(task.abort_handle())
    }

    /// Runs CPU-heavy or blocking `work` on tokio's blocking pool and sends its
    /// result to this actor as a message, so neither this actor nor any other
    /// waits for it. If the actor has stopped by then, the result becomes a dead
    /// letter.
    pub fn spawn_blocking<M, F>(&mut self, work: F)
    where
        A: Handler<M>,
        M: Message,
        F: FnOnce() -> M + Send + 'static,
    {
        let me = self.actor_ref();
        self.system.inner.runtime.spawn_blocking(move || {
            let _ = me.tell(work());
        });
    }

    pub(crate) fn cancel_timers(&mut self) {
        if let Some(extras) = self.extras.as_mut() {
            for t in extras.timers.drain(..) {
                t.abort();
            }
        }
    }
}
