//! The task that runs one actor: lifecycle, message loop, supervision, stop.
//!
//! One tokio task per actor. The task moves through phases:
//! `Start` (run `started`) → `Run` (serve messages) → on failure `Supervise`
//! (ask the parent, or the root strategy) → `Restart` or back to `Run` or
//! `Stop`; finally `terminate` (stop children, close and drain the mailbox,
//! notify watchers and parent).

mod panic;

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::time::Duration;

use smallbox::space::S1;
use smallbox::{smallbox, SmallBox};

use crate::actor::Actor;
use crate::context::Context;
use crate::event::DeadLetterReason;
use crate::lifecycle::{Failure, StopReason, Terminated};
use crate::mailbox::{Batch, ChildDirective, Mailbox, SystemLane, SystemMsg, SystemMsgs};
use crate::props::{Factory, Props};
use crate::supervision::{Decision, RestartStats, Scope};

pub(crate) use panic::catch_panic;

/// Messages handled between two voluntary yields to the scheduler, so a busy
/// actor cannot monopolize a worker thread.
const YIELD_EVERY: u32 = 1024;

enum Phase {
    Start,
    Run,
    // Boxed: a failure is rare, and the phase is part of every idle actor's task.
    Supervise(Box<Failure>),
    Restart {
        delay: Duration,
        failure: Box<Failure>,
    },
    Stop(StopReason),
}

enum Exit {
    Stop(StopReason),
    Failed(Failure),
    Restart { delay: Duration, failure: Failure },
}

pub(crate) struct Runner<A: Actor> {
    actor: A,
    ctx: Context<A>,
    batch: Batch<A>,
    /// What only restarts use, boxed: one pointer in every idle actor's task until
    /// the actor has a factory or fails.
    restarts: Option<Box<Restarts<A>>>,
}

/// The parts of a runner that only restarts use.
struct Restarts<A: Actor> {
    /// Builds the fresh instance on restart (`Props::with_factory`).
    factory: Option<Factory<A>>,
    /// Restart record used by the root strategy (top-level actors only).
    root_stats: RestartStats,
}

/// The restart parts of a runner, made on first use.
fn restarts_of<A: Actor>(restarts: &mut Option<Box<Restarts<A>>>) -> &mut Restarts<A> {
    restarts.get_or_insert_with(|| {
        Box::new(Restarts {
            factory: None,
            root_stats: RestartStats::default(),
        })
    })
}

/// Answers a failed child that nobody will supervise any more: stop.
fn stop_failed(lane: &Arc<dyn SystemLane>) {
    let _ = lane.push_system(SystemMsg::Directive(ChildDirective::Stop));
}

/// A lifecycle hook's future (`started`, `stopping`, `stopped`) as the actor's task
/// holds it: inline when it fits in one word, as the default hooks' do (they await
/// nothing), so spawning and stopping such an actor allocates nothing for them; in a
/// heap box when larger, so an actor whose hook awaits much does not carry that
/// future's size in its task for its whole life.
type Hook<'a, T> = SmallBox<dyn Future<Output = T> + Send + 'a, S1>;

/// Erases a hook's future (see [`Hook`]).
fn hook<'a, T, F>(fut: F) -> Hook<'a, T>
where
    F: Future<Output = T> + Send + 'a,
{
    smallbox!(fut)
}

/// Why the children of an actor that stops for `reason` stop: a shutdown is a
/// shutdown all the way down; anything else is their parent stopping.
fn children_stop_reason(reason: &StopReason) -> StopReason {
    match reason {
        StopReason::Shutdown => StopReason::Shutdown,
        _ => StopReason::ParentStopped,
    }
}

impl Phase {
    /// Why the actor stops, in the `Stop` phase (`Normal` in any other, which no
    /// caller asks).
    fn stop_reason(&self) -> &StopReason {
        match self {
            Phase::Stop(reason) => reason,
            _ => &StopReason::Normal,
        }
    }
}

/// Waits for system messages only.
async fn wait_system<A: Actor>(mailbox: &Mailbox<A>) -> SystemMsgs {
    poll_fn(|cx| mailbox.poll_system(cx)).await
}

impl<A: Actor> Runner<A> {
    pub(crate) fn new(props: Props<A>, ctx: Context<A>) -> Self {
        Self {
            actor: props.actor,
            ctx,
            batch: Batch::new(),
            restarts: props.factory.map(|factory| {
                Box::new(Restarts {
                    factory: Some(factory),
                    root_stats: RestartStats::default(),
                })
            }),
        }
    }

    /// The actor's task. The runner is captured once and driven by reference:
    /// an `async fn run(mut self)` would keep a second copy of it in the task.
    pub(crate) fn run(self) -> impl Future<Output = ()> + Send {
        let mut runner = self;
        async move { runner.drive().await }
    }

    async fn drive(&mut self) {
        let mut phase = Phase::Start;
        loop {
            phase = match phase {
                // A hook's future: `started` runs once, and an actor whose `started`
                // awaits much (granary-virtual's activations load state and run
                // `on_activate` there) would otherwise carry that future's size in
                // its task for its whole life.
                Phase::Start => {
                    match catch_panic(hook(self.actor.started(&mut self.ctx))).await {
                        // `Context::stop` in `started`: no message is coming to end it.
                        Ok(Ok(())) if self.ctx.stop_requested => Phase::Stop(StopReason::Normal),
                        Ok(Ok(())) => Phase::Run,
                        Ok(Err(e)) => Phase::Supervise(Box::new(Failure::Start(e.to_string()))),
                        Err(p) => Phase::Supervise(Box::new(Failure::Panic(p))),
                    }
                }
                Phase::Run => match self.run_messages().await {
                    Exit::Stop(r) => Phase::Stop(r),
                    Exit::Failed(f) => Phase::Supervise(Box::new(f)),
                    Exit::Restart { delay, failure } => Phase::Restart {
                        delay,
                        failure: Box::new(failure),
                    },
                },
                // The cold phases run boxed, so their futures do not add to the
                // size of every idle actor's task.
                Phase::Supervise(failure) => Box::pin(self.supervise(*failure)).await,
                Phase::Restart { delay, failure } => Box::pin(self.restart(delay, *failure)).await,
                // The last phase, in the task itself rather than in an `async fn`
                // of its own (boxed, it cost every stopping actor an allocation of a
                // few hundred bytes; inline as a call, its copies of `self` and of
                // the reason would grow every idle actor's task past a 128-byte
                // step): `stopping`, the children (boxed, and only an actor that has
                // children waits), the mailbox closed and drained, `stopped`, then
                // everyone who waits for the end is told. The reason stays in
                // `phase` and is read there after each wait: a copy or a reference
                // held across the waits would grow the task too.
                Phase::Stop(_) => {
                    let _ = catch_panic(hook(self.actor.stopping(&mut self.ctx))).await;
                    if self.has_children() {
                        let reason = children_stop_reason(phase.stop_reason());
                        let _ = Box::pin(self.stop_children(reason)).await;
                    }
                    self.close_mailbox();
                    let _ = catch_panic(hook(self.actor.stopped(&mut self.ctx))).await;
                    self.announce_end(phase.stop_reason());
                    return;
                }
            }
        }
    }

    /// The hot loop: serve the system lane first, then user messages in batches.
    async fn run_messages(&mut self) -> Exit {
        let mut since_yield = 0u32;
        let mut tally = crate::observe::Tally::new(self.ctx.id());
        loop {
            if self.ctx.mailbox.system_pending() {
                if let Some(exit) = self.serve_system() {
                    tally.flush(&self.ctx, None);
                    return exit;
                }
            }
            let Some(env) = self.batch.pop() else {
                tally.flush(&self.ctx, None);
                let mailbox = &self.ctx.mailbox;
                let batch = &mut self.batch;
                // Armed: the waker is registered (when the last message was taken,
                // or by an earlier poll) and nothing came since, so stay idle
                // without locking; the next message disarms and wakes the actor.
                // The registered waker is this poll's: the runner is its own tokio
                // task (`spawn_actor`), polled with one waker for its whole life.
                poll_fn(|cx| {
                    if mailbox.is_armed() {
                        std::task::Poll::Pending
                    } else {
                        mailbox.poll_fill(batch, cx)
                    }
                })
                .await;
                tally.flush(&self.ctx, Some(self.batch.len()));
                continue;
            };
            self.ctx.mailbox.release_slot();
            let handling = tally.wrap(env.handle(&mut self.actor, &mut self.ctx));
            if let Err(p) = catch_panic(handling).await {
                tally.flush(&self.ctx, None);
                return Exit::Failed(Failure::Panic(p));
            }
            tally.after();
            if self.ctx.stop_requested {
                tally.flush(&self.ctx, None);
                return Exit::Stop(StopReason::Normal);
            }
            since_yield += 1;
            if since_yield == YIELD_EVERY {
                since_yield = 0;
                tally.flush(&self.ctx, None);
                tokio::task::yield_now().await;
            }
        }
    }

    /// Serves the system lane while running. Returns how to leave the loop, if
    /// at all.
    fn serve_system(&mut self) -> Option<Exit> {
        let mut exit: Option<Exit> = None;
        for msg in self.ctx.mailbox.take_system() {
            match msg {
                SystemMsg::Stop(reason) => {
                    if !matches!(exit, Some(Exit::Stop(_))) {
                        exit = Some(Exit::Stop(reason));
                    }
                }
                SystemMsg::ChildFailed {
                    child,
                    failure,
                    lane,
                } => {
                    if let Some(escalated) = self.on_child_failed(child, failure, &lane) {
                        if !matches!(exit, Some(Exit::Stop(_))) {
                            exit = Some(Exit::Failed(escalated));
                        }
                    }
                }
                SystemMsg::RestartSibling { delay, sibling } => {
                    if exit.is_none() {
                        exit = Some(Exit::Restart {
                            delay,
                            failure: Failure::Sibling(sibling),
                        });
                    }
                }
                other => self.serve_common(other),
            }
        }
        exit
    }

    /// System messages served the same way in every phase.
    fn serve_common(&mut self, msg: SystemMsg) {
        match msg {
            SystemMsg::ChildTerminated(id) => {
                if let Some(extras) = self.ctx.extras.as_mut() {
                    extras.children.remove(&id);
                    extras.escalated.retain(|c| *c != id);
                }
            }
            SystemMsg::Watch(w) => self.ctx.extras().watchers.push(w),
            SystemMsg::Unwatch(id) => {
                if let Some(extras) = self.ctx.extras.as_mut() {
                    extras.watchers.retain(|w| w.id() != Some(id));
                }
            }
            // A child failure that the current phase cannot supervise.
            SystemMsg::ChildFailed { lane, .. } => stop_failed(&lane),
            // A directive with no failure pending, or a sibling restart while
            // not running: nothing to do.
            SystemMsg::Directive(_) | SystemMsg::RestartSibling { .. } | SystemMsg::Stop(_) => {}
        }
    }

    /// The parent's side of supervision: apply this actor's strategy to a
    /// failed child. Returns the failure to escalate, if the strategy says so.
    fn on_child_failed(
        &mut self,
        child: crate::ActorId,
        failure: Failure,
        lane: &Arc<dyn SystemLane>,
    ) -> Option<Failure> {
        let strategy = self.actor.supervisor_strategy();
        let extras = self.ctx.extras();
        let Some(entry) = extras.children.get_mut(&child) else {
            // Not (or no longer) our child: it must not wait forever.
            stop_failed(lane);
            return None;
        };
        let decision = strategy.decide(&failure, &mut entry.stats);
        let all = strategy.scope() == Scope::AllForOne;
        let send = |lane: &Arc<dyn SystemLane>, msg| {
            let _ = lane.push_system(msg);
        };
        match decision {
            Decision::Resume => send(&entry.lane, SystemMsg::Directive(ChildDirective::Resume)),
            Decision::Restart(delay) => {
                send(
                    &entry.lane,
                    SystemMsg::Directive(ChildDirective::Restart(delay)),
                );
                if all {
                    for (id, other) in extras.children.iter() {
                        if *id != child {
                            send(
                                &other.lane,
                                SystemMsg::RestartSibling {
                                    delay,
                                    sibling: child,
                                },
                            );
                        }
                    }
                }
            }
            Decision::Stop => {
                send(&entry.lane, SystemMsg::Directive(ChildDirective::Stop));
                if all {
                    for (id, other) in extras.children.iter() {
                        if *id != child {
                            send(&other.lane, SystemMsg::Stop(StopReason::ParentStopped));
                        }
                    }
                }
            }
            Decision::Escalate => {
                extras.escalated.push(child);
                return Some(Failure::Escalated {
                    child,
                    cause: Box::new(failure),
                });
            }
        }
        None
    }

    /// The failed actor's side: get a decision from the parent (or the root
    /// strategy) and turn it into the next phase.
    async fn supervise(&mut self, failure: Failure) -> Phase {
        let Some(parent) = self.ctx.parent.clone() else {
            let strategy = &self.ctx.system.inner.config.root_strategy;
            let stats = &mut restarts_of(&mut self.restarts).root_stats;
            return match strategy.decide(&failure, stats) {
                Decision::Resume => self.resumed(),
                Decision::Restart(delay) => Phase::Restart {
                    delay,
                    failure: Box::new(failure),
                },
                Decision::Stop | Decision::Escalate => Phase::Stop(StopReason::Failed(failure)),
            };
        };
        let report = SystemMsg::ChildFailed {
            child: self.ctx.id(),
            failure: failure.clone(),
            lane: self.ctx.mailbox.clone(),
        };
        if parent.push_system(report).is_err() {
            // The parent is gone; nobody can decide.
            return Phase::Stop(StopReason::Failed(failure));
        }
        let mut deferred = Vec::new();
        let next = loop {
            let mut next = None;
            for msg in wait_system(&self.ctx.mailbox).await {
                match msg {
                    SystemMsg::Stop(reason) => next = Some(Phase::Stop(reason)),
                    SystemMsg::Directive(d) if next.is_none() => {
                        next = Some(match d {
                            ChildDirective::Resume => Phase::Run,
                            ChildDirective::Restart(delay) => Phase::Restart {
                                delay,
                                failure: Box::new(failure.clone()),
                            },
                            ChildDirective::Stop => {
                                Phase::Stop(StopReason::Failed(failure.clone()))
                            }
                        })
                    }
                    // Our own children's failures wait until we know our fate.
                    m @ SystemMsg::ChildFailed { .. } => deferred.push(m),
                    other => self.serve_common(other),
                }
            }
            if let Some(next) = next {
                break next;
            }
        };
        for m in deferred {
            let _ = self.ctx.mailbox.push_system(m);
        }
        if matches!(next, Phase::Run) {
            return self.resumed();
        }
        next
    }

    /// Resuming also resumes the children whose failure this actor escalated.
    fn resumed(&mut self) -> Phase {
        if let Some(extras) = self.ctx.extras.as_mut() {
            for id in extras.escalated.drain(..) {
                if let Some(child) = extras.children.get(&id) {
                    let _ = child
                        .lane
                        .push_system(SystemMsg::Directive(ChildDirective::Resume));
                }
            }
        }
        Phase::Run
    }

    async fn restart(&mut self, delay: Duration, failure: Failure) -> Phase {
        let _ = catch_panic(self.actor.restarting(&failure, &mut self.ctx)).await;
        self.ctx.cancel_timers();
        if let Some(reason) = self.stop_children(StopReason::ParentStopped).await {
            return Phase::Stop(reason);
        }
        if !delay.is_zero() {
            if let Some(reason) = self.backoff(delay).await {
                return Phase::Stop(reason);
            }
        }
        if let Some(factory) = self.restarts.as_ref().and_then(|r| r.factory.as_ref()) {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(factory)) {
                Ok(fresh) => self.actor = fresh,
                Err(p) => {
                    let msg = panic::panic_message(p.as_ref());
                    return Phase::Stop(StopReason::Failed(Failure::Panic(msg)));
                }
            }
        }
        self.ctx.stop_requested = false;
        Phase::Start
    }

    /// Waits out a restart backoff while still serving the system lane; a stop
    /// ends the wait.
    async fn backoff(&mut self, delay: Duration) -> Option<StopReason> {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            let mailbox = &self.ctx.mailbox;
            let msgs = poll_fn(|cx| {
                if sleep.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(None);
                }
                mailbox.poll_system(cx).map(Some)
            })
            .await;
            let msgs = msgs?;
            let mut stop = None;
            for msg in msgs {
                match msg {
                    SystemMsg::Stop(reason) => stop = Some(reason),
                    SystemMsg::ChildFailed { lane, .. } => stop_failed(&lane),
                    other => self.serve_common(other),
                }
            }
            if stop.is_some() {
                return stop;
            }
        }
    }

    /// Stops all children and waits until each has terminated. Returns a stop
    /// request that arrived meanwhile.
    async fn stop_children(&mut self, reason: StopReason) -> Option<StopReason> {
        if !self.has_children() {
            return None;
        }
        if let Some(extras) = self.ctx.extras.as_ref() {
            for child in extras.children.values() {
                let _ = child.lane.push_system(SystemMsg::Stop(reason.clone()));
            }
        }
        let mut stop = None;
        while self.has_children() {
            for msg in wait_system(&self.ctx.mailbox).await {
                match msg {
                    SystemMsg::Stop(r) => {
                        stop.get_or_insert(r);
                    }
                    SystemMsg::ChildFailed { lane, .. } => stop_failed(&lane),
                    other => self.serve_common(other),
                }
            }
        }
        stop
    }

    /// Whether this actor has children that are still running.
    fn has_children(&self) -> bool {
        self.ctx
            .extras
            .as_ref()
            .is_some_and(|e| !e.children.is_empty())
    }

    /// Cancels the timers, closes the mailbox and dead-letters what it still held.
    fn close_mailbox(&mut self) {
        self.ctx.cancel_timers();
        let (queued, system) = self.ctx.mailbox.close();
        for env in self.batch.drain().chain(queued) {
            self.ctx
                .mailbox
                .dead_letter(env.message_type(), DeadLetterReason::ActorStopped);
            drop(env);
        }
        for msg in system {
            match msg {
                SystemMsg::Watch(w) => self.ctx.extras().watchers.push(w),
                SystemMsg::ChildFailed { lane, .. } => stop_failed(&lane),
                _ => {}
            }
        }
    }

    /// Tells the watchers and the parent that this actor has ended, and the system to
    /// forget it.
    fn announce_end(&mut self, reason: &StopReason) {
        let id = self.ctx.id();
        if let Some(extras) = self.ctx.extras.as_mut() {
            for w in extras.watchers.drain(..) {
                w.notify(Terminated {
                    id,
                    reason: reason.clone(),
                });
            }
        }
        if let Some(parent) = &self.ctx.parent {
            let _ = parent.push_system(SystemMsg::ChildTerminated(id));
        }
        self.ctx.system.inner.remove_actor(id);
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use crate::mailbox::MailboxConfig;
    use crate::system::ActorSystem;
    use std::sync::Arc;

    struct Empty;
    impl Actor for Empty {}

    /// The task of an idle actor is most of its memory; cold phases are boxed
    /// and the runner is stored once. This fails if the task future grows.
    ///
    /// The bound is a step, not a taste: tokio aligns a task's cell to 128 bytes on
    /// x86-64 and aarch64, and the cell is its header and trailer (about 96 bytes)
    /// plus the future. A spawned actor's future of 256 bytes makes a 384-byte cell;
    /// 288 bytes (as it was while `catch_panic` was an `async fn`) made it 512.
    #[tokio::test]
    async fn an_idle_actors_task_future_stays_small() {
        let system = ActorSystem::new();
        let mb = Arc::new(Mailbox::<Empty>::new(
            crate::ActorId::new(0, 1),
            &MailboxConfig::default(),
            Arc::downgrade(&system.inner),
        ));
        let ctx = Context::new(mb, system.clone(), None);
        let runner = Runner::new(Props::new(Empty), ctx);
        // What `spawn_actor` hands to tokio.
        let task = crate::actor_ref::as_sender(crate::ActorId::new(0, 1), runner.run());
        let size = std::mem::size_of_val(&task);
        assert!(size <= 256, "actor task future is {size} bytes");
        assert!(std::mem::size_of::<Mailbox<Empty>>() <= 152);
    }

    /// An actor whose `started` holds a large future across an await.
    struct HeavyStart;
    impl Actor for HeavyStart {
        async fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), crate::BoxError> {
            let buffer = [7u8; 2048];
            tokio::task::yield_now().await;
            assert_eq!(buffer[2047], 7);
            Ok(())
        }
    }

    /// `started` runs once: its future is boxed, so it does not add to the size the
    /// task keeps for the actor's whole life.
    #[tokio::test]
    async fn a_large_started_future_does_not_grow_the_task() {
        let system = ActorSystem::new();
        let mb = Arc::new(Mailbox::<HeavyStart>::new(
            crate::ActorId::new(0, 1),
            &MailboxConfig::default(),
            Arc::downgrade(&system.inner),
        ));
        let ctx = Context::new(mb, system.clone(), None);
        let runner = Runner::new(Props::new(HeavyStart), ctx);
        let size = std::mem::size_of_val(&runner.run());
        assert!(size <= 240, "actor task future is {size} bytes");
    }
}
