//! [`ActorSystem`]: spawns actors, keeps the table of live actors, the name
//! registry and the event stream, and shuts everything down.

mod ask_deadlines;
mod builder;
mod id_hasher;
mod registry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::actor::Actor;
use crate::actor_ref::ActorRef;
use crate::context::Context;
use crate::event::{DeadLetterCounts, EventStream};
use crate::id::ActorId;
use crate::lifecycle::StopReason;
use crate::mailbox::{Mailbox, SystemLane, SystemMsg};
use crate::props::Props;
use crate::runner::Runner;
use crate::supervision::SupervisorStrategy;

pub(crate) use ask_deadlines::AskDeadlines;
pub use ask_deadlines::Within;
pub use builder::SystemBuilder;
pub(crate) use id_hasher::IdHash;
use registry::NameTable;

/// Settings of one actor system (see [`SystemBuilder`]).
#[derive(Clone, Debug)]
pub(crate) struct SystemConfig {
    pub(crate) ask_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) root_strategy: SupervisorStrategy,
    pub(crate) event_capacity: usize,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            ask_timeout: crate::actor_ref::DEFAULT_ASK_TIMEOUT,
            shutdown_timeout: Duration::from_secs(10),
            root_strategy: SupervisorStrategy::default(),
            event_capacity: 1024,
        }
    }
}

/// A live actor in the system table.
struct LiveEntry {
    lane: Arc<dyn SystemLane>,
    abort: AbortHandle,
    top_level: bool,
}

/// Shards of the live-actor table: actors stop on both workers at once, and
/// one lock for all of them would be contended.
const SHARDS: usize = 16;

type Shard = Mutex<HashMap<u64, LiveEntry, IdHash>>;

pub(crate) struct SystemInner {
    next_id: AtomicU64,
    pub(crate) runtime: tokio::runtime::Handle,
    live: Box<[Shard]>,
    live_count: AtomicUsize,
    names: Mutex<NameTable>,
    /// Whether any name was ever registered (lets `remove_actor` skip the
    /// name table).
    named: AtomicBool,
    all_stopped: Notify,
    shutting_down: AtomicBool,
    pub(crate) events: EventStream,
    pub(crate) config: SystemConfig,
    /// Where the system's metrics go (with its node label, once set).
    pub(crate) meters: crate::observe::MeterSlot,
    /// The deadlines of local asks to this system's actors.
    pub(crate) ask_deadlines: Arc<AskDeadlines>,
}

/// What [`ActorSystem::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Actors whose task was aborted because they did not stop within the
    /// shutdown timeout (0 when everything stopped gracefully).
    pub aborted: usize,
}

/// A set of actors sharing a runtime, a name registry and an event stream.
///
/// Cheap to clone (one `Arc`). Create it inside a tokio runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use granary_core::prelude::*;
/// struct Idle;
/// impl Actor for Idle {}
/// let system = ActorSystem::new();
/// let a = system.spawn(Idle);
/// system.register("idle", &a).unwrap();
/// assert_eq!(system.lookup::<Idle>("idle"), Some(a));
/// system.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct ActorSystem {
    pub(crate) inner: Arc<SystemInner>,
}

impl ActorSystem {
    /// A system with default settings on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime; use [`SystemBuilder::runtime`] to pass a handle.
    pub fn new() -> Self {
        SystemBuilder::default().build()
    }

    /// A builder for non-default settings.
    pub fn builder() -> SystemBuilder {
        SystemBuilder::default()
    }

    /// Spawns a top-level actor (supervised by the root strategy; restarts reuse
    /// this instance, see [`Props`]).
    pub fn spawn<A: Actor>(&self, actor: A) -> ActorRef<A> {
        self.spawn_props(Props::new(actor))
    }

    /// Spawns a top-level actor built by `factory`, which also builds a fresh
    /// instance on each restart.
    pub fn spawn_with<A, F>(&self, factory: F) -> ActorRef<A>
    where
        A: Actor,
        F: Fn() -> A + Send + Sync + 'static,
    {
        self.spawn_props(Props::from_factory(factory))
    }

    /// Spawns a top-level actor from [`Props`].
    pub fn spawn_props<A: Actor>(&self, props: Props<A>) -> ActorRef<A> {
        ActorRef::local(self.inner.spawn_actor(props, None))
    }

    /// `future`, given up at `deadline` with [`crate::DeadlinePassed`]: what
    /// `tokio::time::timeout_at` does, with the deadline kept by the system (the
    /// same as its local asks' deadlines) instead of by a tokio timer per call.
    ///
    /// A tokio timer takes the runtime's one timer lock when it is armed and again
    /// when it is dropped, from every worker; the system keeps deadlines in
    /// per-thread tables and wakes the waits that are due from one task. Use it for
    /// many short waits that usually finish long before their deadline (requests,
    /// replies). Nothing is registered if `future` is ready on its first poll. The
    /// wait ends at `deadline` or a little after (never before), as with tokio.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use granary_core::{ActorSystem, DeadlinePassed};
    ///
    /// let system = ActorSystem::new();
    /// let soon = tokio::time::Instant::now() + Duration::from_millis(20);
    /// let never = std::future::pending::<()>();
    /// assert_eq!(system.within(soon, never).await, Err(DeadlinePassed));
    /// // Ready on its first poll: done, even past the deadline (as with tokio).
    /// assert_eq!(system.within(soon, async { 7 }).await, Ok(7));
    /// # }
    /// ```
    pub fn within<F: std::future::Future>(
        &self,
        deadline: tokio::time::Instant,
        future: F,
    ) -> ask_deadlines::Within<'_, F> {
        self.inner.ask_deadlines.within(deadline, future)
    }

    /// The event stream (dead letters and any events you publish).
    pub fn events(&self) -> &EventStream {
        &self.inner.events
    }

    /// How many dead letters this system published so far, per reason. Exact, even
    /// when no one subscribed or subscribers lag (see [`EventStream`]).
    pub fn dead_letters(&self) -> DeadLetterCounts {
        self.inner.events.dead_letters()
    }

    /// Names the node this system runs on in its metrics: from now on every series
    /// granary-core records for it (`granary_messages_handled_total`,
    /// `granary_message_handling_seconds`, `granary_mailbox_depth`, `granary_asks_total`,
    /// `granary_ask_seconds`; `docs/admin.md`) carries `node = label`, so several nodes
    /// in one process keep apart. Until then they carry no `node` label, and what they
    /// recorded stays there. The remote layer labels the system of a node with the
    /// node's address when it starts. Set once: `false` (and nothing changes) when the
    /// system has a label already.
    ///
    /// An actor takes its kind's handles, label included, on its first flush and keeps
    /// them, so the label costs nothing per message. The process keeps one set of
    /// handles per label and actor kind for its life, as the recorder keeps the series.
    pub fn set_node_label(&self, label: &str) -> bool {
        self.inner.meters.label(label)
    }

    /// The label set with [`ActorSystem::set_node_label`], if any.
    pub fn node_label(&self) -> Option<&str> {
        self.inner.meters.node()
    }

    /// How many actors are alive.
    pub fn live_actors(&self) -> usize {
        self.inner.live_count.load(Ordering::Acquire)
    }

    /// A typed ref to the live local actor with this id, if it exists and is an `A`.
    pub fn actor_ref_by_id<A: Actor>(&self, id: ActorId) -> Option<ActorRef<A>> {
        if !id.is_local() {
            return None;
        }
        let lane = self.inner.shard(id).lock().get(&id.local())?.lane.clone();
        lane.into_any()
            .downcast::<Mailbox<A>>()
            .ok()
            .map(ActorRef::local)
    }

    /// Stops every actor — children before their parents — and waits until all
    /// have stopped or the shutdown timeout passes; stragglers are aborted and
    /// their queued messages dead-lettered. Actors spawned during shutdown stop
    /// at once.
    pub async fn shutdown(&self) -> ShutdownReport {
        let inner = &self.inner;
        inner.shutting_down.store(true, Ordering::Release);
        let top: Vec<Arc<dyn SystemLane>> = inner
            .live
            .iter()
            .flat_map(|shard| {
                shard
                    .lock()
                    .values()
                    .filter(|e| e.top_level)
                    .map(|e| e.lane.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        for lane in top {
            let _ = lane.push_system(SystemMsg::Stop(StopReason::Shutdown));
        }
        let deadline = tokio::time::Instant::now() + inner.config.shutdown_timeout;
        loop {
            let notified = inner.all_stopped.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if inner.live_count.load(Ordering::Acquire) == 0 {
                return ShutdownReport { aborted: 0 };
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        let stragglers: Vec<LiveEntry> = inner
            .live
            .iter()
            .flat_map(|shard| shard.lock().drain().map(|(_, e)| e).collect::<Vec<_>>())
            .collect();
        inner
            .live_count
            .fetch_sub(stragglers.len(), Ordering::AcqRel);
        for entry in &stragglers {
            entry.abort.abort();
            entry.lane.force_close();
        }
        inner.all_stopped.notify_waiters();
        ShutdownReport {
            aborted: stragglers.len(),
        }
    }
}

impl Default for ActorSystem {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ActorSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorSystem")
            .field("live_actors", &self.live_actors())
            .finish()
    }
}

impl SystemInner {
    pub(crate) fn new(config: SystemConfig, runtime: tokio::runtime::Handle) -> Self {
        Self {
            next_id: AtomicU64::new(1),
            live: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::with_hasher(IdHash)))
                .collect(),
            live_count: AtomicUsize::new(0),
            names: Mutex::new(NameTable::default()),
            named: AtomicBool::new(false),
            all_stopped: Notify::new(),
            shutting_down: AtomicBool::new(false),
            events: EventStream::new(config.event_capacity),
            config,
            meters: crate::observe::MeterSlot::default(),
            ask_deadlines: AskDeadlines::new(runtime.clone()),
            runtime,
        }
    }

    /// Creates the mailbox, registers the actor and starts its task.
    pub(crate) fn spawn_actor<A: Actor>(
        self: &Arc<Self>,
        props: Props<A>,
        parent: Option<Arc<dyn SystemLane>>,
    ) -> Arc<Mailbox<A>> {
        let id = ActorId::new(0, self.next_id.fetch_add(1, Ordering::Relaxed));
        let mailbox = Arc::new(Mailbox::new(id, &props.mailbox, Arc::downgrade(self)));
        if self.shutting_down.load(Ordering::Acquire) {
            let _ = mailbox.push_system(SystemMsg::Stop(StopReason::Shutdown));
        }
        let top_level = parent.is_none();
        let ctx = Context::new(
            mailbox.clone(),
            ActorSystem {
                inner: self.clone(),
            },
            parent,
        );
        let runner = Runner::new(props, ctx);
        let lane: Arc<dyn SystemLane> = mailbox.clone();
        // Spawn under the shard lock so the actor cannot remove its entry before
        // it is inserted.
        self.live_count.fetch_add(1, Ordering::AcqRel);
        let mut shard = self.shard(id).lock();
        // The actor's task sends as the actor (remote affinity by sender, recipient).
        let task = self
            .runtime
            .spawn(crate::actor_ref::as_sender(id, runner.run()));
        shard.insert(
            id.local(),
            LiveEntry {
                lane,
                abort: task.abort_handle(),
                top_level,
            },
        );
        drop(shard);
        mailbox
    }

    fn shard(&self, id: ActorId) -> &Shard {
        &self.live[(id.local() % SHARDS as u64) as usize]
    }

    /// Forgets a stopped actor (table entry and names).
    pub(crate) fn remove_actor(&self, id: ActorId) {
        let removed = {
            let mut shard = self.shard(id).lock();
            let removed = shard.remove(&id.local()).is_some();
            crate::__tables::shrink_if_sparse(&mut shard);
            removed
        };
        if self.named.load(Ordering::Acquire) {
            self.names.lock().remove_actor(id);
        }
        if removed && self.live_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_stopped.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Actor;

    struct Idle;
    impl Actor for Idle {}

    /// Stops every actor of `refs` and waits until the system has forgotten them all.
    async fn stop_all(system: &ActorSystem, refs: &[crate::ActorRef<Idle>]) {
        for r in refs {
            r.stop();
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while system.live_actors() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "actors did not stop"
            );
            tokio::task::yield_now().await;
        }
    }

    fn capacity(system: &ActorSystem) -> usize {
        system.inner.live.iter().map(|s| s.lock().capacity()).sum()
    }

    /// The live-actor table gives its memory back once most of its actors stopped,
    /// instead of keeping the buckets of its largest size.
    #[tokio::test]
    async fn the_actor_table_shrinks_after_most_actors_stopped() {
        let system = ActorSystem::new();
        let refs: Vec<_> = (0..40_000).map(|_| system.spawn(Idle)).collect();
        let full = capacity(&system);
        assert!(full >= 40_000, "capacity {full} for 40,000 actors");
        stop_all(&system, &refs).await;
        let empty = capacity(&system);
        // Each shard keeps at most the size below which tables are left alone.
        assert!(
            empty <= SHARDS * crate::__tables::SHRINK_FROM,
            "the table kept {empty} buckets of {full} with no actor left"
        );
        system.shutdown().await;
    }

    /// The name registry gives its memory back once the named actors stopped.
    #[tokio::test]
    async fn the_name_table_shrinks_after_its_actors_stopped() {
        let system = ActorSystem::new();
        let refs: Vec<_> = (0..20_000).map(|_| system.spawn(Idle)).collect();
        for (i, r) in refs.iter().enumerate() {
            system.register(format!("idle-{i}"), r).unwrap();
        }
        let full = system.inner.names.lock().capacity();
        assert!(full >= 40_000, "capacity {full} for 20,000 names");
        stop_all(&system, &refs).await;
        let empty = system.inner.names.lock().capacity();
        assert!(
            empty <= 2 * crate::__tables::SHRINK_FROM,
            "the name table kept {empty} buckets of {full} with no name left"
        );
        system.shutdown().await;
    }
}
