//! Type-erased messages in a mailbox: one envelope per message, inline in its queue
//! slot when it fits in two words (a told `u64` and its span pointer), boxed otherwise.
//!
//! One of the crate's two `unsafe` operations lives here (the other is the handler
//! future's recycled block, `handler_future.rs`): an inline envelope is moved out
//! of its slot ([`Envelope::handle_moved`]) and the slot is then forgotten, never
//! dropped, so the envelope is dropped exactly once (by its handler future). The tests
//! below count drops on every path (handled, dead-lettered, inline and boxed).

use std::cell::Cell;

use smallbox::space::S2;
use smallbox::{smallbox, SmallBox};
use tokio::sync::oneshot;

use crate::actor::{Actor, Handler, Message, Priority};
use crate::context::Context;
use crate::error::AskError;
use crate::event::DeadLetterReason;
use crate::handler_future::HandlerFuture;

thread_local! {
    /// Set while the runner drops a handler future that panicked, so a pending
    /// ask inside learns that its handler panicked (rather than that the actor
    /// stopped).
    static DROPPING_PANICKED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as dropping a panicked future for the duration of `f`.
pub(crate) fn while_dropping_panicked<R>(f: impl FnOnce() -> R) -> R {
    DROPPING_PANICKED.with(|flag| flag.set(true));
    let r = f();
    DROPPING_PANICKED.with(|flag| flag.set(false));
    r
}

/// One message for actor `A`, with its type erased.
pub(crate) trait Envelope<A: Actor>: Send {
    /// The handler future for this message, the envelope consumed.
    fn handle_owned<'a>(self, actor: &'a mut A, ctx: &'a mut Context<A>) -> HandlerFuture<'a>
    where
        Self: Sized;
    /// [`Envelope::handle_owned`] for a boxed envelope.
    fn handle<'a>(self: Box<Self>, actor: &'a mut A, ctx: &'a mut Context<A>) -> HandlerFuture<'a>;
    /// [`Envelope::handle_owned`] for an envelope stored in place: moves it out of
    /// `*self`.
    ///
    /// # Safety
    /// `*self` is moved out: the caller must neither use nor drop it afterwards.
    #[allow(unsafe_code)]
    unsafe fn handle_moved<'a>(
        &mut self,
        actor: &'a mut A,
        ctx: &'a mut Context<A>,
    ) -> HandlerFuture<'a>;
    /// The rank in a priority mailbox.
    fn priority(&self) -> Priority;
    /// The message's Rust type name, for dead letters.
    fn message_type(&self) -> &'static str;
}

/// Implements [`Envelope::handle`] and [`Envelope::handle_moved`] through
/// [`Envelope::handle_owned`].
macro_rules! handle_through_owned {
    ($a:ty) => {
        fn handle<'a>(
            self: Box<Self>,
            actor: &'a mut $a,
            ctx: &'a mut Context<$a>,
        ) -> HandlerFuture<'a> {
            (*self).handle_owned(actor, ctx)
        }

        #[allow(unsafe_code)]
        unsafe fn handle_moved<'a>(
            &mut self,
            actor: &'a mut $a,
            ctx: &'a mut Context<$a>,
        ) -> HandlerFuture<'a> {
            // SAFETY: the caller gives up `*self` (see the trait method).
            unsafe { std::ptr::read(self) }.handle_owned(actor, ctx)
        }
    };
}
pub(crate) use handle_through_owned;

/// An envelope as stored in the queue: inline when it fits in two words (a told
/// `u64` and its span pointer), in a heap box otherwise.
pub(crate) struct Env<A: Actor>(SmallBox<dyn Envelope<A>, S2>);

impl<A: Actor> Env<A> {
    /// Erases `envelope`, inline if it fits.
    #[inline]
    pub(crate) fn new<E: Envelope<A> + 'static>(envelope: E) -> Self {
        Env(smallbox!(envelope))
    }

    /// Erases an envelope that is already boxed (no copy, no allocation).
    #[inline]
    pub(crate) fn from_box<E: Envelope<A> + 'static>(envelope: Box<E>) -> Self {
        let erased: Box<dyn Envelope<A>> = envelope;
        Env(SmallBox::from_box(erased))
    }

    /// Whether an envelope of type `E` sits inline in a slot (else it is boxed).
    #[inline]
    pub(crate) const fn fits_inline<E>() -> bool {
        std::mem::size_of::<E>() <= std::mem::size_of::<S2>()
            && std::mem::align_of::<E>() <= std::mem::align_of::<S2>()
    }

    /// The handler future for this message, the envelope consumed.
    #[inline]
    #[allow(unsafe_code)]
    pub(crate) fn handle<'a>(self, actor: &'a mut A, ctx: &'a mut Context<A>) -> HandlerFuture<'a> {
        if self.0.is_heap() {
            return SmallBox::into_box(self.0).handle(actor, ctx);
        }
        // Inline: the envelope is moved out of the slot, which then owns nothing (no
        // heap memory), so it is forgotten rather than dropped.
        let mut slot = std::mem::ManuallyDrop::new(self.0);
        // SAFETY: `slot` is never used or dropped after the move.
        unsafe { slot.handle_moved(actor, ctx) }
    }

    /// The rank in a priority mailbox.
    #[inline]
    pub(crate) fn priority(&self) -> Priority {
        self.0.priority()
    }

    /// The message's Rust type name, for dead letters.
    pub(crate) fn message_type(&self) -> &'static str {
        self.0.message_type()
    }

    /// Whether the envelope sits in the slot itself (no heap box).
    #[cfg(test)]
    pub(crate) fn is_inline(&self) -> bool {
        !self.0.is_heap()
    }
}

/// A fire-and-forget message, with the span it was sent from when tracing is on.
pub(crate) struct TellEnvelope<M>(pub(crate) M, pub(crate) crate::observe::Parent);

impl<A, M> Envelope<A> for TellEnvelope<M>
where
    A: Handler<M>,
    M: Message,
{
    fn handle_owned<'a>(self, actor: &'a mut A, ctx: &'a mut Context<A>) -> HandlerFuture<'a> {
        let TellEnvelope(msg, parent) = self;
        handle_tell(msg, parent, actor, ctx)
    }

    handle_through_owned!(A);

    fn priority(&self) -> Priority {
        A::priority(&self.0)
    }

    fn message_type(&self) -> &'static str {
        std::any::type_name::<M>()
    }
}

/// Handles a told message: refused (a dead letter) unless the actor admits it, and
/// inside a `granary.handle` span when the sender's span came with it.
pub(crate) fn handle_tell<'a, A, M>(
    msg: M,
    parent: crate::observe::Parent,
    actor: &'a mut A,
    ctx: &'a mut Context<A>,
) -> HandlerFuture<'a>
where
    A: Handler<M>,
    M: Message,
{
    let fut = async move {
        if !actor.admits(ctx) {
            ctx.mailbox
                .dead_letter(std::any::type_name::<M>(), DeadLetterReason::Refused);
            return;
        }
        actor.handle(msg, ctx).await;
    };
    crate::observe::handled(parent, std::any::type_name::<M>(), fut)
}

/// Why an ask got no reply, as sent back on the reply channel.
#[derive(Debug)]
pub(crate) enum AskFailure {
    Panicked,
}

/// The reply channel of an ask.
pub(crate) type ReplySender<R> = oneshot::Sender<Result<R, AskFailure>>;

/// A request with a reply channel.
pub(crate) struct AskEnvelope<M: Message> {
    pub(crate) msg: M,
    pub(crate) reply: ReplySender<M::Reply>,
    /// The span the request was sent from, when tracing is on.
    pub(crate) parent: crate::observe::Parent,
}

/// Sends the reply, or on drop during a caught panic tells the asker so.
struct ReplyGuard<R>(Option<ReplySender<R>>);

impl<R> ReplyGuard<R> {
    fn send(mut self, reply: R) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(Ok(reply));
        }
    }
}

impl<R> Drop for ReplyGuard<R> {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            // A panic inside the handler drops this guard either while unwinding
            // (the async block drops its live locals) or when the runner drops
            // the half-run future afterwards.
            if std::thread::panicking() || DROPPING_PANICKED.with(|flag| flag.get()) {
                let _ = tx.send(Err(AskFailure::Panicked));
            }
            // Otherwise the sender just drops: the asker sees "actor stopped".
        }
    }
}

impl<A, M> Envelope<A> for AskEnvelope<M>
where
    A: Handler<M>,
    M: Message,
{
    handle_through_owned!(A);

    fn handle_owned<'a>(self, actor: &'a mut A, ctx: &'a mut Context<A>) -> HandlerFuture<'a> {
        let AskEnvelope { msg, reply, parent } = self;
        let fut = async move {
            let guard = ReplyGuard(Some(reply));
            if !actor.admits(ctx) {
                ctx.mailbox
                    .dead_letter(std::any::type_name::<M>(), DeadLetterReason::Refused);
                // The guard drops unsent: the asker sees "actor stopped".
                return;
            }
            let answer = actor.handle(msg, ctx).await;
            guard.send(answer);
        };
        crate::observe::handled(parent, std::any::type_name::<M>(), fut)
    }

    fn priority(&self) -> Priority {
        A::priority(&self.msg)
    }

    fn message_type(&self) -> &'static str {
        std::any::type_name::<M>()
    }
}

/// A request whose answer goes to a callback run on the actor's task (see
/// [`crate::ActorRef::ask_then`]): no reply channel, no waiting task, no timer.
pub(crate) struct ThenEnvelope<M: Message, F: AnswerFn<M>, T: Send + 'static = ()> {
    pub(crate) msg: M,
    pub(crate) then: Then<M, F>,
    /// The span the request was sent from, when tracing is on.
    pub(crate) parent: crate::observe::Parent,
    /// Dropped when the actor takes the request out of its mailbox
    /// ([`crate::ActorRef::ask_then_holding`]; `()` for a plain `ask_then`).
    pub(crate) token: T,
}

/// The callback of [`ThenEnvelope`].
pub(crate) trait AnswerFn<M: Message>:
    FnOnce(Result<M::Reply, AskError<M>>) + Send + 'static
{
}

impl<M: Message, F> AnswerFn<M> for F where F: FnOnce(Result<M::Reply, AskError<M>>) + Send + 'static
{}

/// Calls its callback exactly once: with the answer ([`Then::answer`]), or, when
/// dropped unanswered, with `ActorPanicked` during a caught handler panic and with
/// `ActorStopped` otherwise (the request was dead-lettered, refused, or dropped with
/// the mailbox or the half-run handler of a stopping actor).
pub(crate) struct Then<M: Message, F: AnswerFn<M>> {
    /// `None` once called (a closure capturing a pointer keeps its niche: the
    /// `Option` costs no word).
    f: Option<F>,
    _message: std::marker::PhantomData<fn(M)>,
}

impl<M: Message, F: AnswerFn<M>> Then<M, F> {
    /// Arms the callback.
    #[inline]
    pub(crate) fn new(f: F) -> Self {
        Self {
            f: Some(f),
            _message: std::marker::PhantomData,
        }
    }

    /// Calls back with `result` now (a request that could not be queued, or the
    /// answer).
    #[inline]
    pub(crate) fn call(mut self, result: Result<M::Reply, AskError<M>>) {
        if let Some(f) = self.f.take() {
            f(result);
        }
    }
}

impl<M: Message, F: AnswerFn<M>> Drop for Then<M, F> {
    fn drop(&mut self) {
        if let Some(f) = self.f.take() {
            // As for `ReplyGuard`: a handler panic drops the callback either while
            // unwinding or when the runner drops the half-run future afterwards.
            let failure = if std::thread::panicking() || DROPPING_PANICKED.with(|flag| flag.get()) {
                AskError::ActorPanicked
            } else {
                AskError::ActorStopped
            };
            f(Err(failure));
        }
    }
}

impl<A, M, F, T> Envelope<A> for ThenEnvelope<M, F, T>
where
    A: Handler<M>,
    M: Message,
    F: AnswerFn<M>,
    T: Send + 'static,
{
    handle_through_owned!(A);

    fn handle_owned<'a>(self, actor: &'a mut A, ctx: &'a mut Context<A>) -> HandlerFuture<'a> {
        let ThenEnvelope {
            msg,
            then,
            parent,
            token,
        } = self;
        // Taken out of the mailbox: the token goes now, before the handler runs.
        drop(token);
        let fut = async move {
            if !actor.admits(ctx) {
                ctx.mailbox
                    .dead_letter(std::any::type_name::<M>(), DeadLetterReason::Refused);
                // `then` drops uncalled: "actor stopped", as for a refused ask.
                drop(then);
                return;
            }
            let answer = actor.handle(msg, ctx).await;
            then.call(Ok(answer));
        };
        crate::observe::handled(parent, std::any::type_name::<M>(), fut)
    }

    fn priority(&self) -> Priority {
        A::priority(&self.msg)
    }

    fn message_type(&self) -> &'static str {
        std::any::type_name::<M>()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::{Env, TellEnvelope};
    use crate::{Actor, ActorSystem, Context, Handler, Message};

    /// Counts its drops; one word, so a told one fits inline.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Message for Counted {
        type Reply = ();
    }

    /// Too large for a slot: boxed. Its `Counted` only counts the drop.
    struct Large(#[allow(dead_code)] Counted, [u64; 8]);

    impl Message for Large {
        type Reply = ();
    }

    /// Counts the messages it handled.
    struct Sink(Arc<AtomicUsize>);

    impl Actor for Sink {}

    impl Handler<Counted> for Sink {
        async fn handle(&mut self, _msg: Counted, _ctx: &mut Context<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Handler<Large> for Sink {
        async fn handle(&mut self, msg: Large, _ctx: &mut Context<Self>) {
            assert_eq!(msg.1[7], 7);
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_small_told_message_is_inline_and_a_large_one_boxed() {
        let drops = Arc::new(AtomicUsize::new(0));
        let small = Env::<Sink>::new(TellEnvelope(Counted(drops.clone()), None));
        let large = Env::<Sink>::new(TellEnvelope(Large(Counted(drops.clone()), [7; 8]), None));
        assert!(small.is_inline());
        assert!(!large.is_inline());
        drop((small, large));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2,
            "each envelope dropped once"
        );
    }

    /// Handled inline and boxed envelopes are each dropped exactly once.
    #[tokio::test]
    async fn handled_envelopes_drop_their_message_once() {
        let system = ActorSystem::new();
        let handled = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let sink = system.spawn(Sink(handled.clone()));
        for _ in 0..100 {
            assert!(sink.tell(Counted(drops.clone())).is_ok());
            assert!(sink.tell(Large(Counted(drops.clone()), [7; 8])).is_ok());
        }
        sink.ask(Counted(drops.clone())).await.unwrap();
        assert_eq!(handled.load(Ordering::SeqCst), 201);
        assert_eq!(drops.load(Ordering::SeqCst), 201);
        system.shutdown().await;
    }

    /// Holds its actor in the handler until notified.
    struct Gate(Arc<tokio::sync::Notify>);

    impl Message for Gate {
        type Reply = ();
    }

    impl Handler<Gate> for Sink {
        async fn handle(&mut self, Gate(open): Gate, _ctx: &mut Context<Self>) {
            open.notified().await;
        }
    }

    /// Envelopes still queued when the actor stops become dead letters and are dropped
    /// exactly once, inline and boxed alike.
    #[tokio::test]
    async fn queued_envelopes_of_a_stopped_actor_drop_once() {
        let system = ActorSystem::new();
        let handled = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let sink = system.spawn(Sink(handled.clone()));
        let open = Arc::new(tokio::sync::Notify::new());
        assert!(sink.tell(Gate(open.clone())).is_ok());
        for _ in 0..50 {
            assert!(sink.tell(Counted(drops.clone())).is_ok());
            assert!(sink.tell(Large(Counted(drops.clone()), [7; 8])).is_ok());
        }
        sink.stop();
        open.notify_one();
        sink.wait_stopped().await;
        assert_eq!(handled.load(Ordering::SeqCst), 0, "stop came first");
        assert_eq!(drops.load(Ordering::SeqCst), 100);
        system.shutdown().await;
    }

    /// Doubles its number, or panics on zero (before or after an await).
    struct Double(u64, bool);

    impl Message for Double {
        type Reply = u64;
    }

    impl Handler<Double> for Sink {
        async fn handle(
            &mut self,
            Double(n, yield_first): Double,
            _ctx: &mut Context<Self>,
        ) -> u64 {
            if yield_first {
                tokio::task::yield_now().await;
            }
            assert!(n != 0, "zero");
            self.0.fetch_add(1, Ordering::SeqCst);
            n * 2
        }
    }

    /// What one `ask_then` callback got, as text (the message, when given back).
    type Outcome = Result<u64, String>;

    /// Asks `sink` to double `n`; every call of the callback lands in `calls`,
    /// tagged with `n`.
    fn double_then(
        sink: &crate::ActorRef<Sink>,
        n: u64,
        yield_first: bool,
        calls: &tokio::sync::mpsc::UnboundedSender<(u64, Outcome)>,
    ) {
        let calls = calls.clone();
        sink.ask_then(Double(n, yield_first), move |answer| {
            let outcome = answer.map_err(|e| match e {
                crate::AskError::Send(crate::SendError::ActorStopped(Double(m, _))) => {
                    format!("unsent {m}")
                }
                other => format!("{other:?}"),
            });
            let _ = calls.send((n, outcome));
        });
    }

    /// Every call so far, sorted by tag.
    fn calls_so_far(
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Outcome)>,
    ) -> Vec<(u64, Outcome)> {
        let mut calls = Vec::new();
        while let Ok(call) = rx.try_recv() {
            calls.push(call);
        }
        calls.sort_by_key(|(n, _)| *n);
        calls
    }

    #[tokio::test]
    async fn ask_then_calls_back_once_with_the_answer() {
        let system = ActorSystem::new();
        let handled = Arc::new(AtomicUsize::new(0));
        let sink = system.spawn(Sink(handled.clone()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for n in 1..=20 {
            double_then(&sink, n, n % 2 == 0, &tx);
        }
        // The actor serves in order: once this ask is answered, so are the others.
        sink.ask(Counted(Arc::new(AtomicUsize::new(0))))
            .await
            .unwrap();
        let calls = calls_so_far(&mut rx);
        let expected: Vec<(u64, Outcome)> = (1..=20).map(|n| (n, Ok(2 * n))).collect();
        assert_eq!(calls, expected);
        assert_eq!(handled.load(Ordering::SeqCst), 21);
        sink.stop();
        sink.wait_stopped().await;
        system.shutdown().await;
        assert!(calls_so_far(&mut rx).is_empty(), "no callback called again");
    }

    #[tokio::test]
    async fn ask_then_calls_back_once_with_panicked_when_the_handler_panics() {
        let system = ActorSystem::new();
        let sink = system.spawn(Sink(Arc::new(AtomicUsize::new(0))));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Tags 1 and 2 panic (2 after an await: the runner drops the half-run
        // future); 3 is served by the restarted actor.
        sink.ask_then(Double(0, false), {
            let tx = tx.clone();
            move |answer| drop(tx.send((1, answer.map_err(|e| format!("{e:?}")))))
        });
        sink.ask_then(Double(0, true), {
            let tx = tx.clone();
            move |answer| drop(tx.send((2, answer.map_err(|e| format!("{e:?}")))))
        });
        double_then(&sink, 3, false, &tx);
        sink.ask(Counted(Arc::new(AtomicUsize::new(0))))
            .await
            .unwrap();
        let calls = calls_so_far(&mut rx);
        assert_eq!(
            calls,
            vec![
                (1, Err("ActorPanicked".to_string())),
                (2, Err("ActorPanicked".to_string())),
                (3, Ok(6)),
            ]
        );
        system.shutdown().await;
        assert!(calls_so_far(&mut rx).is_empty(), "no callback called again");
    }

    #[tokio::test]
    async fn ask_then_to_a_stopped_actor_gives_the_message_back_at_once() {
        let system = ActorSystem::new();
        let handled = Arc::new(AtomicUsize::new(0));
        let sink = system.spawn(Sink(handled.clone()));
        sink.stop();
        sink.wait_stopped().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        double_then(&sink, 7, false, &tx);
        // Called before `ask_then` returned.
        assert_eq!(
            calls_so_far(&mut rx),
            vec![(7, Err("unsent 7".to_string()))]
        );
        assert_eq!(handled.load(Ordering::SeqCst), 0);
        system.shutdown().await;
        assert!(calls_so_far(&mut rx).is_empty(), "no callback called again");
    }

    #[tokio::test]
    async fn ask_then_queued_when_the_actor_stops_calls_back_once_with_stopped() {
        let system = ActorSystem::new();
        let handled = Arc::new(AtomicUsize::new(0));
        let sink = system.spawn(Sink(handled.clone()));
        let open = Arc::new(tokio::sync::Notify::new());
        assert!(sink.tell(Gate(open.clone())).is_ok());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for n in 1..=10 {
            double_then(&sink, n, false, &tx);
        }
        assert!(
            calls_so_far(&mut rx).is_empty(),
            "all queued behind the gate"
        );
        sink.stop();
        open.notify_one();
        sink.wait_stopped().await;
        let calls = calls_so_far(&mut rx);
        let expected: Vec<(u64, Outcome)> = (1..=10)
            .map(|n| (n, Err("ActorStopped".to_string())))
            .collect();
        assert_eq!(calls, expected);
        assert_eq!(handled.load(Ordering::SeqCst), 0, "stop came first");
        system.shutdown().await;
        assert!(calls_so_far(&mut rx).is_empty(), "no callback called again");
    }

    /// Says it is being handled, then never returns.
    struct Park(tokio::sync::oneshot::Sender<()>);

    impl Message for Park {
        type Reply = ();
    }

    impl Handler<Park> for Sink {
        async fn handle(&mut self, Park(entered): Park, _ctx: &mut Context<Self>) {
            let _ = entered.send(());
            std::future::pending::<()>().await;
        }
    }

    #[tokio::test]
    async fn ask_then_being_handled_when_the_actor_is_aborted_calls_back_with_stopped() {
        let system = ActorSystem::builder()
            .shutdown_timeout(std::time::Duration::from_millis(50))
            .build();
        let sink = system.spawn(Sink(Arc::new(AtomicUsize::new(0))));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // The handler never returns: shutdown aborts the actor in it.
        let (entered, in_handler) = tokio::sync::oneshot::channel();
        sink.ask_then(Park(entered), {
            let tx = tx.clone();
            move |answer| drop(tx.send((1, answer.map(|()| 0).map_err(|e| format!("{e:?}")))))
        });
        double_then(&sink, 2, false, &tx);
        drop(tx);
        in_handler.await.expect("the actor entered the handler");
        let report = system.shutdown().await;
        assert_eq!(report.aborted, 1);
        // The aborted task drops its handler future when the runtime next gets to
        // it: wait for both calls (the channel closes once both callbacks are gone).
        let mut calls = Vec::new();
        while let Some(call) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("every callback called or dropped within 10 s")
        {
            calls.push(call);
        }
        calls.sort_by_key(|(n, _)| *n);
        assert_eq!(
            calls,
            vec![
                (1, Err("ActorStopped".to_string())),
                (2, Err("ActorStopped".to_string())),
            ]
        );
    }

    #[test]
    fn an_ask_then_with_a_small_callback_is_inline() {
        use super::{Then, ThenEnvelope};
        struct Unit;
        impl Message for Unit {
            type Reply = ();
        }
        impl Handler<Unit> for Sink {
            async fn handle(&mut self, _msg: Unit, _ctx: &mut Context<Self>) {}
        }
        let called = Arc::new(AtomicUsize::new(0));
        let counter = called.clone();
        let callback = move |_: Result<(), crate::AskError<Unit>>| {
            counter.fetch_add(1, Ordering::SeqCst);
        };
        let env = Env::<Sink>::new(ThenEnvelope {
            token: (),
            msg: Unit,
            then: Then::new(callback),
            parent: None,
        });
        assert!(
            env.is_inline(),
            "a unit message and a one-pointer callback fit"
        );
        drop(env);
        assert_eq!(
            called.load(Ordering::SeqCst),
            1,
            "dropped unhandled: called"
        );
    }
}
