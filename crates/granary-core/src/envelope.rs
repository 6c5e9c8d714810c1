//! Type-erased messages in a mailbox: one boxed envelope per message.

use std::cell::Cell;

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::actor::{Actor, Handler, Message, Priority};
use crate::context::Context;
use crate::event::DeadLetterReason;

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
    /// The handler future for this message.
    fn handle<'a>(self: Box<Self>, actor: &'a mut A, ctx: &'a mut Context<A>) -> BoxFuture<'a, ()>;
    /// The rank in a priority mailbox.
    fn priority(&self) -> Priority;
    /// The message's Rust type name, for dead letters.
    fn message_type(&self) -> &'static str;
}

/// A boxed envelope as stored in the queue.
pub(crate) type Env<A> = Box<dyn Envelope<A>>;

/// A fire-and-forget message, with the span it was sent from when tracing is on.
pub(crate) struct TellEnvelope<M>(pub(crate) M, pub(crate) crate::observe::Parent);

impl<A, M> Envelope<A> for TellEnvelope<M>
where
    A: Handler<M>,
    M: Message,
{
    fn handle<'a>(self: Box<Self>, actor: &'a mut A, ctx: &'a mut Context<A>) -> BoxFuture<'a, ()> {
        let TellEnvelope(msg, parent) = *self;
        handle_tell(msg, parent, actor, ctx)
    }

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
) -> BoxFuture<'a, ()>
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
    fn handle<'a>(self: Box<Self>, actor: &'a mut A, ctx: &'a mut Context<A>) -> BoxFuture<'a, ()> {
        let AskEnvelope { msg, reply, parent } = *self;
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
