//! The mailbox: one lock-guarded pair of queues (user and system) per actor.
//!
//! Why a `parking_lot::Mutex<VecDeque>` rather than a lock-free channel: a push is
//! one uncontended lock, one `VecDeque::push_back` and one unlock; the actor takes
//! *all* queued user messages in one lock by swapping buffers, so the consumer pays
//! one lock per batch, not per message. The waker lives under the same lock, so a
//! sender wakes the actor only when the actor asked to be woken, and there is no
//! separate atomic waker to pay for. The actor asks when it finds nothing to do,
//! and also when it takes a lone message (a conversation, not a stream): it then
//! marks the mailbox *armed*, an atomic flag a sender clears under the lock as it
//! wakes the actor, and having handled the message it finds the mark still set and
//! goes idle without locking a second time. The waker is cloned once, at the first
//! registration, and stays registered: a sender wakes the actor by reference under
//! the lock (one atomic update of the task's state), not by taking the waker, which
//! made the actor clone it again (a second atomic update) every time it waited. The
//! structure costs about 100 bytes per actor with nothing allocated until the first
//! message, where tokio's mpsc allocates a 32-slot block per channel up front. The
//! system lane shares the lock; an atomic flag lets the actor check it between user
//! messages without locking.

mod held;
mod queue;
mod system_msg;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll, Waker};

use parking_lot::Mutex;
use tokio::sync::{Semaphore, TryAcquireError};

use crate::actor::Actor;
use crate::envelope::{Env, Envelope};
use crate::event::{DeadLetter, DeadLetterReason};
use crate::id::ActorId;
use crate::system::SystemInner;

pub(crate) use held::HeldTellEnvelope;
pub(crate) use queue::{Batch, UserQueue};
use system_msg::PlainStop;
pub(crate) use system_msg::{ChildDirective, StopCallback, SystemMsg, SystemMsgs, Watcher};

/// How an actor's mailbox behaves.
///
/// ```
/// use granary_core::MailboxConfig;
/// let cfg = MailboxConfig::bounded(100).with_priority();
/// assert_eq!(cfg.capacity(), Some(100));
/// assert!(cfg.is_priority());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailboxConfig {
    capacity: Option<usize>,
    priority: bool,
}

impl MailboxConfig {
    /// Unbounded, FIFO (the default).
    pub fn unbounded() -> Self {
        Self::default()
    }

    /// At most `capacity` queued user messages (at least 1): `tell`/`try_tell`
    /// fail with `MailboxFull` when full, `send(..).await` waits for room.
    pub fn bounded(capacity: usize) -> Self {
        Self {
            capacity: Some(capacity.max(1)),
            priority: false,
        }
    }

    /// Serve user messages by the rank the actor gives them in
    /// [`crate::Handler::priority`], arrival order among equal ranks.
    pub fn with_priority(self) -> Self {
        Self {
            priority: true,
            ..self
        }
    }

    /// The bound, if any.
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// Whether user messages are ranked.
    pub fn is_priority(&self) -> bool {
        self.priority
    }
}

/// Why a push failed; carries the envelope back.
pub(crate) enum PushError<E> {
    Closed(E),
    Full(E),
}

struct State<A: Actor> {
    user: UserQueue<A>,
    /// Few and rare (stop, child events): a `Vec`, 8 bytes smaller than a `VecDeque`.
    system: Vec<SystemMsg>,
    /// The first stop request without a failure, held here rather than in `system`:
    /// stopping an actor is the one system message nearly every actor gets, and a first
    /// push into `system` allocates room for four messages (256 bytes).
    stop: Option<PlainStop>,
    /// The actor's waker, from its first registration until the mailbox closes (the
    /// actor's task polls with one waker for its whole life).
    waker: Option<Waker>,
    /// The actor asked to be woken and nobody has woken it since.
    wake_wanted: bool,
    closed: bool,
}

impl<A: Actor> State<A> {
    /// Whether system messages wait.
    fn system_waiting(&self) -> bool {
        self.stop.is_some() || !self.system.is_empty()
    }

    /// Takes the waiting system messages.
    fn take_system(&mut self) -> SystemMsgs {
        SystemMsgs {
            stop: self.stop.take(),
            rest: std::mem::take(&mut self.system),
        }
    }
}

/// An envelope on its way into the queue: as it will sit in its slot.
enum Pending<E> {
    Inline(E),
    Boxed(Box<E>),
}

impl<E> Pending<E> {
    /// The envelope itself (a refused push gives it back).
    fn into_inner(self) -> E {
        match self {
            Pending::Inline(env) => env,
            Pending::Boxed(env) => *env,
        }
    }

    /// The erased queue entry.
    fn erase<A: Actor>(self) -> Env<A>
    where
        E: Envelope<A> + 'static,
    {
        match self {
            Pending::Inline(env) => Env::new(env),
            Pending::Boxed(env) => Env::from_box(env),
        }
    }
}

/// The mailbox of one actor. Shared by its refs (`Arc`) and its task.
pub(crate) struct Mailbox<A: Actor> {
    /// The node-local part of the actor's id (a mailbox is always of this process).
    local_id: u64,
    system_pending: AtomicBool,
    /// The actor asked to be woken and no message has arrived since: set under the
    /// lock when the waker is registered, cleared under it by every push. Read
    /// without the lock by the actor, which may then go idle without locking again
    /// ([`Mailbox::is_armed`]).
    armed: AtomicBool,
    state: Mutex<State<A>>,
    /// Free slots of a bounded mailbox (one permit per free slot).
    slots: Option<Box<Semaphore>>,
    system: Weak<SystemInner>,
}

impl<A: Actor> Mailbox<A> {
    pub(crate) fn new(id: ActorId, config: &MailboxConfig, system: Weak<SystemInner>) -> Self {
        debug_assert!(id.is_local(), "a mailbox of another process: {id}");
        Self {
            local_id: id.local(),
            system_pending: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            state: Mutex::new(State {
                user: UserQueue::new(config.priority),
                system: Vec::new(),
                stop: None,
                waker: None,
                wake_wanted: false,
                closed: false,
            }),
            slots: config.capacity.map(|c| Box::new(Semaphore::new(c))),
            system,
        }
    }

    pub(crate) fn id(&self) -> ActorId {
        ActorId::new(0, self.local_id)
    }

    pub(crate) fn system(&self) -> Option<Arc<SystemInner>> {
        self.system.upgrade()
    }

    /// Publishes a dead letter for a message addressed to this actor.
    pub(crate) fn dead_letter(&self, message_type: &'static str, reason: DeadLetterReason) {
        if let Some(system) = self.system.upgrade() {
            system.events.publish(DeadLetter {
                recipient: self.id(),
                message_type,
                reason,
            });
        }
    }

    /// Enqueues a user message without waiting (a bounded mailbox that is full
    /// refuses it).
    pub(crate) fn push_user<E: Envelope<A> + 'static>(&self, env: E) -> Result<(), PushError<E>> {
        if let Some(slots) = &self.slots {
            match slots.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(TryAcquireError::NoPermits) => {
                    self.dead_letter(env.message_type(), DeadLetterReason::MailboxFull);
                    return Err(PushError::Full(env));
                }
                Err(TryAcquireError::Closed) => {
                    self.dead_letter(env.message_type(), DeadLetterReason::ActorStopped);
                    return Err(PushError::Closed(env));
                }
            }
        }
        self.enqueue(env)
    }

    /// Enqueues a user message, waiting for room in a bounded mailbox.
    pub(crate) async fn push_user_wait<E: Envelope<A> + 'static>(
        &self,
        env: E,
    ) -> Result<(), PushError<E>> {
        if let Some(slots) = &self.slots {
            match slots.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_closed) => {
                    self.dead_letter(env.message_type(), DeadLetterReason::ActorStopped);
                    return Err(PushError::Closed(env));
                }
            }
        }
        self.enqueue(env)
    }

    fn enqueue<E: Envelope<A> + 'static>(&self, env: E) -> Result<(), PushError<E>> {
        // An envelope too large for a slot is boxed here, before the lock: the actor
        // taking its messages never waits for the sender's allocation.
        let env = if Env::<A>::fits_inline::<E>() {
            Pending::Inline(env)
        } else {
            Pending::Boxed(Box::new(env))
        };
        let mut st = self.state.lock();
        if st.closed {
            drop(st);
            let env = env.into_inner();
            self.dead_letter(env.message_type(), DeadLetterReason::ActorStopped);
            return Err(PushError::Closed(env));
        }
        st.user.push(env.erase());
        self.wake(&mut st);
        Ok(())
    }

    /// Whether the mailbox is bounded.
    #[inline]
    pub(crate) fn is_bounded(&self) -> bool {
        self.slots.is_some()
    }

    /// Gives back one slot of a bounded mailbox (called as the actor takes a
    /// message).
    #[inline]
    pub(crate) fn release_slot(&self) {
        if let Some(slots) = &self.slots {
            slots.add_permits(1);
        }
    }

    /// Enqueues a system message; fails when the mailbox is closed.
    pub(crate) fn push_system(&self, msg: SystemMsg) -> Result<(), SystemMsg> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(msg);
        }
        match PlainStop::of(&msg) {
            Some(stop) if st.stop.is_none() => st.stop = Some(stop),
            _ => st.system.push(msg),
        }
        self.system_pending.store(true, Ordering::Release);
        self.wake(&mut st);
        Ok(())
    }

    /// Whether system messages wait (checked between user messages, no lock).
    #[inline]
    pub(crate) fn system_pending(&self) -> bool {
        self.system_pending.load(Ordering::Acquire)
    }

    /// Takes all waiting system messages.
    pub(crate) fn take_system(&self) -> SystemMsgs {
        let mut st = self.state.lock();
        self.system_pending.store(false, Ordering::Release);
        st.take_system()
    }

    /// Ready when system messages wait or user messages were moved into `batch`
    /// (which must be empty); otherwise registers the waker.
    ///
    /// Taking a lone message (the queue is then empty: the actor is in a
    /// conversation, not behind a stream) registers the waker too, in the same lock:
    /// once the actor has handled it, [`Mailbox::is_armed`] tells it whether it may
    /// go idle without locking again.
    pub(crate) fn poll_fill(&self, batch: &mut Batch<A>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let mut st = self.state.lock();
        if st.system_waiting() {
            return Poll::Ready(());
        }
        if st.user.take_into(batch) {
            if batch.len() == 1 && st.user.is_empty() {
                self.register(&mut st, cx);
            }
            return Poll::Ready(());
        }
        self.register(&mut st, cx);
        Poll::Pending
    }

    /// Whether the actor's waker is registered and nothing has arrived since: the
    /// queue is empty and the next message will wake the actor, so an actor that
    /// has handled its batch may return `Pending` without taking the lock.
    #[inline]
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// Wakes the actor if it asked to be (under the lock): the actor is no longer
    /// armed. By reference, under the lock: scheduling a task never takes a mailbox
    /// lock, and the registered waker stays for the next wait.
    #[inline]
    fn wake(&self, st: &mut State<A>) {
        self.armed.store(false, Ordering::Release);
        if std::mem::take(&mut st.wake_wanted) {
            if let Some(waker) = &st.waker {
                waker.wake_by_ref();
            }
        }
    }

    /// Ready with the waiting system messages; otherwise registers the waker.
    pub(crate) fn poll_system(&self, cx: &mut TaskContext<'_>) -> Poll<SystemMsgs> {
        let mut st = self.state.lock();
        if st.system_waiting() {
            self.system_pending.store(false, Ordering::Release);
            return Poll::Ready(st.take_system());
        }
        self.register(&mut st, cx);
        Poll::Pending
    }

    /// Registers the actor's waker (under the lock); arms the mailbox when nothing
    /// waits (the system lane registers while user messages may wait, during a
    /// restart's back-off say: those must still be taken).
    fn register(&self, st: &mut State<A>, cx: &mut TaskContext<'_>) {
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        st.wake_wanted = true;
        if st.user.is_empty() && !st.system_waiting() {
            self.armed.store(true, Ordering::Release);
        }
    }

    /// Closes the mailbox: later pushes fail. Returns what was still queued.
    pub(crate) fn close(&self) -> (Vec<Env<A>>, SystemMsgs) {
        let out = {
            let mut st = self.state.lock();
            st.closed = true;
            st.waker = None;
            st.wake_wanted = false;
            self.armed.store(false, Ordering::Release);
            self.system_pending.store(false, Ordering::Release);
            (st.user.drain_all(), st.take_system())
        };
        if let Some(slots) = &self.slots {
            slots.close();
        }
        out
    }

    /// Whether the mailbox still accepts messages.
    pub(crate) fn is_open(&self) -> bool {
        !self.state.lock().closed
    }
}

/// The type-erased face of a mailbox that parents, the system table and shutdown
/// use.
pub(crate) trait SystemLane: Send + Sync + 'static {
    fn id(&self) -> ActorId;
    fn push_system(&self, msg: SystemMsg) -> Result<(), SystemMsg>;
    /// Closes the mailbox of an actor whose task was aborted and dead-letters
    /// what it held.
    fn force_close(&self);
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
}

impl<A: Actor> SystemLane for Mailbox<A> {
    fn id(&self) -> ActorId {
        Mailbox::id(self)
    }

    fn push_system(&self, msg: SystemMsg) -> Result<(), SystemMsg> {
        Mailbox::push_system(self, msg)
    }

    fn force_close(&self) {
        let (user, _system) = self.close();
        for env in user {
            self.dead_letter(env.message_type(), DeadLetterReason::ActorStopped);
        }
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::StopReason;
    use crate::system::ActorSystem;

    struct Idle;
    impl Actor for Idle {}

    fn mailbox(system: &ActorSystem) -> Mailbox<Idle> {
        Mailbox::new(
            ActorId::new(0, 1),
            &MailboxConfig::default(),
            Arc::downgrade(&system.inner),
        )
    }

    fn reasons(msgs: SystemMsgs) -> Vec<StopReason> {
        msgs.into_iter()
            .map(|msg| match msg {
                SystemMsg::Stop(reason) => reason,
                _ => panic!("not a stop"),
            })
            .collect()
    }

    /// Stopping an actor is the system message nearly every actor gets: it must not
    /// allocate the system lane's `Vec` (which would make room for four messages).
    #[tokio::test]
    async fn a_plain_stop_is_held_without_allocating() {
        let system = ActorSystem::new();
        let mb = mailbox(&system);
        assert!(mb.push_system(SystemMsg::Stop(StopReason::Normal)).is_ok());
        assert!(mb.system_pending());
        assert_eq!(mb.state.lock().system.capacity(), 0);
        assert_eq!(reasons(mb.take_system()), vec![StopReason::Normal]);
        assert!(!mb.system_pending());
        assert!(reasons(mb.take_system()).is_empty());
        system.shutdown().await;
    }

    /// Counts the wake-ups of a waker.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl Wakes {
        /// A waker that counts its wake-ups, and the count.
        fn waker() -> (Arc<Self>, Waker) {
            let wakes = Arc::new(Wakes(std::sync::atomic::AtomicUsize::new(0)));
            (wakes.clone(), Waker::from(wakes))
        }

        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Note;
    impl crate::Message for Note {
        type Reply = ();
    }
    impl crate::Handler<Note> for Idle {
        async fn handle(&mut self, _msg: Note, _ctx: &mut crate::Context<Self>) {}
    }

    fn note() -> crate::envelope::TellEnvelope<Note> {
        crate::envelope::TellEnvelope(Note, None)
    }

    /// An actor that waits asks to be woken once: the first push wakes it, the rest of
    /// a burst does not; an actor that took a batch of messages is not woken while it
    /// runs (one that took a lone message is: the next test), and a system message
    /// wakes a waiting actor as a user message does.
    #[tokio::test]
    async fn a_waiting_actor_is_woken_once_and_a_running_one_not_at_all() {
        let system = ActorSystem::new();
        let mb = mailbox(&system);
        let (wakes, waker) = Wakes::waker();
        let mut cx = TaskContext::from_waker(&waker);
        let woken = || wakes.count();
        let mut batch = Batch::new();
        assert!(mb.poll_fill(&mut batch, &mut cx).is_pending());

        // A burst wakes it once.
        assert!(mb.push_user(note()).is_ok());
        assert!(mb.push_user(note()).is_ok());
        assert_eq!(woken(), 1);
        assert!(mb.poll_fill(&mut batch, &mut cx).is_ready());
        assert_eq!(batch.drain().count(), 2);

        // Running (it took a batch and has not waited since): not woken.
        assert!(mb.push_user(note()).is_ok());
        assert_eq!(woken(), 1);
        assert!(mb.poll_fill(&mut batch, &mut cx).is_ready());
        assert_eq!(batch.drain().count(), 1);

        // Waiting again: a system message wakes it; served, it waits and is woken
        // by the next message.
        assert!(mb.poll_fill(&mut batch, &mut cx).is_pending());
        assert!(mb
            .push_system(SystemMsg::Unwatch(ActorId::new(0, 9)))
            .is_ok());
        assert_eq!(woken(), 2);
        assert!(mb.poll_fill(&mut batch, &mut cx).is_ready());
        assert_eq!(mb.take_system().into_iter().count(), 1);
        assert!(mb.poll_fill(&mut batch, &mut cx).is_pending());
        assert!(mb.push_user(note()).is_ok());
        assert_eq!(woken(), 3);
        assert!(mb.poll_fill(&mut batch, &mut cx).is_ready());
        system.shutdown().await;
    }

    /// The waker is cloned once, when the actor first waits: a sender wakes it by
    /// reference and leaves it registered, so waiting again clones nothing; closing
    /// the mailbox lets it go.
    #[tokio::test]
    async fn the_waker_is_cloned_once_and_stays_registered_until_the_mailbox_closes() {
        let system = ActorSystem::new();
        let mb = mailbox(&system);
        let (wakes, waker) = Wakes::waker();
        let mut cx = TaskContext::from_waker(&waker);
        // `wakes` and `waker` here, one more for each clone the mailbox holds.
        let refs = || Arc::strong_count(&wakes);
        let mut batch = Batch::new();
        assert_eq!(refs(), 2);
        assert!(mb.poll_fill(&mut batch, &mut cx).is_pending());
        assert_eq!(refs(), 3);
        for round in 1..=3 {
            assert!(mb.push_user(note()).is_ok());
            assert_eq!(wakes.count(), round);
            assert_eq!(refs(), 3, "the wake kept the waker registered");
            assert!(mb.poll_fill(&mut batch, &mut cx).is_ready());
            assert_eq!(batch.drain().count(), 1);
            assert!(mb.poll_fill(&mut batch, &mut cx).is_pending());
            assert_eq!(refs(), 3, "waiting again cloned nothing");
        }
        let _ = mb.close();
        assert_eq!(refs(), 2);
        system.shutdown().await;
    }

    /// Taking a lone message arms the mailbox (the actor may then go idle without
    /// locking); any push disarms it and wakes the actor; and the mailbox is never
    /// armed while a message waits, even when the system lane registered the waker
    /// (a restart's back-off does): an actor that trusted it would never take the
    /// message.
    #[tokio::test]
    async fn armed_means_the_waker_is_registered_and_nothing_waits() {
        let mut batch = Batch::new();
        let system = ActorSystem::new();
        let mb = mailbox(&system);
        let (wakes, waker) = Wakes::waker();
        let mut cx = TaskContext::from_waker(&waker);
        assert!(!mb.is_armed());

        // A lone message: taken and armed in one lock; the next push disarms and wakes.
        assert!(mb.push_user(note()).is_ok());
        assert!(mb.poll_fill(&mut batch, &mut cx).is_ready());
        assert_eq!(batch.drain().count(), 1);
        assert!(mb.is_armed());
        assert!(mb.push_user(note()).is_ok());
        assert!(!mb.is_armed());
        assert_eq!(wakes.count(), 1);

        // Two messages taken at once: not armed (a stream, the actor locks again).
        assert!(mb.push_user(note()).is_ok());
        assert!(mb.poll_fill(&mut batch, &mut cx).is_ready());
        assert_eq!(batch.drain().count(), 2);
        assert!(!mb.is_armed());

        // The system lane registers while a user message waits: not armed.
        assert!(mb.push_user(note()).is_ok());
        assert!(mb.poll_system(&mut cx).is_pending());
        assert!(!mb.is_armed());
        assert!(mb.poll_fill(&mut batch, &mut cx).is_ready());
        assert_eq!(batch.drain().count(), 1);

        // A system message disarms too; closing leaves it disarmed.
        assert!(mb.is_armed());
        assert!(mb
            .push_system(SystemMsg::Unwatch(ActorId::new(0, 9)))
            .is_ok());
        assert!(!mb.is_armed());
        assert!(mb.poll_fill(&mut batch, &mut cx).is_ready());
        assert_eq!(mb.take_system().into_iter().count(), 1);
        assert!(mb.poll_fill(&mut batch, &mut cx).is_pending());
        assert!(mb.is_armed());
        let _ = mb.close();
        assert!(!mb.is_armed());
        system.shutdown().await;
    }

    /// A second stop request, and one with a failure, queue behind the held one.
    #[tokio::test]
    async fn later_stops_follow_the_held_one() {
        let system = ActorSystem::new();
        let mb = mailbox(&system);
        let failed = StopReason::Failed(crate::Failure::Panic("boom".into()));
        for reason in [StopReason::Shutdown, StopReason::Normal, failed.clone()] {
            assert!(mb.push_system(SystemMsg::Stop(reason)).is_ok());
        }
        assert_eq!(
            reasons(mb.take_system()),
            vec![StopReason::Shutdown, StopReason::Normal, failed]
        );
        let (_, system_msgs) = mb.close();
        assert!(reasons(system_msgs).is_empty());
        assert!(mb.push_system(SystemMsg::Stop(StopReason::Normal)).is_err());
        system.shutdown().await;
    }
}
