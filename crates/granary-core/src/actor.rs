//! The traits an actor implements: [`Actor`], [`Message`] and [`Handler`].

use std::future::Future;

use crate::context::Context;
use crate::supervision::{Failure, SupervisorStrategy};

/// A boxed error, returned by [`Actor::started`] when an actor cannot start.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A message type: anything `Send + 'static` with a typed reply.
///
/// Use `()` as the reply for tell-only messages.
///
/// ```
/// use granary_core::prelude::*;
/// struct Add(u64);
/// impl Message for Add { type Reply = u64; }
/// ```
pub trait Message: Send + 'static {
    /// What a handler of this message answers to an `ask`.
    type Reply: Send + 'static;
}

/// An actor: state owned by one task, driven by messages.
///
/// Every hook has a default, so `impl Actor for MyActor {}` is enough. Hooks are
/// written as `async fn` in the impl. A panic in any hook is caught like a panic in
/// a handler.
///
/// ```
/// use granary_core::prelude::*;
/// struct Greeter;
/// impl Actor for Greeter {
///     async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), BoxError> {
///         println!("{} started", ctx.id());
///         Ok(())
///     }
/// }
/// ```
pub trait Actor: Sized + Send + 'static {
    /// Runs before the first message (and again after each restart). An `Err`
    /// counts as a failure, which the supervisor handles.
    fn started(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs once when the actor begins to stop, before its children are stopped.
    fn stopping(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// Runs once after the children have stopped and the mailbox is closed.
    fn stopped(&mut self, ctx: &mut Context<Self>) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// Runs on the failed instance when its supervisor restarts it, before the
    /// children are stopped and the fresh instance (or, without a factory, this same
    /// instance) runs [`Actor::started`] again.
    fn restarting(
        &mut self,
        failure: &Failure,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (failure, ctx);
        async {}
    }

    /// How this actor supervises its children. Asked each time a child fails.
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::default()
    }

    /// Whether the actor takes its next message now; asked before each message's
    /// handler runs (default: always). A refused message is not handled: an `ask`
    /// ends with [`AskError::ActorStopped`](crate::AskError::ActorStopped) at once, and
    /// every refused message is published as a [`DeadLetter`](crate::DeadLetter) with
    /// reason [`Refused`](crate::DeadLetterReason::Refused). The actor keeps running.
    /// granary-virtual uses it to fence activations whose node lost its host lease.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use granary_core::prelude::*;
    /// struct Gate { open: bool }
    /// impl Actor for Gate {
    ///     fn admits(&mut self, _ctx: &mut Context<Self>) -> bool { self.open }
    /// }
    /// struct Ping;
    /// impl Message for Ping { type Reply = (); }
    /// impl Handler<Ping> for Gate {
    ///     async fn handle(&mut self, _: Ping, _: &mut Context<Self>) {}
    /// }
    /// let system = ActorSystem::new();
    /// let gate = system.spawn(Gate { open: false });
    /// assert!(matches!(gate.ask(Ping).await, Err(AskError::ActorStopped)));
    /// system.shutdown().await;
    /// # }
    /// ```
    fn admits(&mut self, ctx: &mut Context<Self>) -> bool {
        let _ = ctx;
        true
    }
}

/// The rank of a message in a priority mailbox; higher is served first.
///
/// Ranks apply only to actors spawned with [`crate::MailboxConfig::with_priority`]; the
/// actor ranks each message type (or each message) in [`Handler::priority`].
/// Messages of equal rank keep their arrival order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Priority(pub u8);

impl Priority {
    /// Served last.
    pub const LOWEST: Priority = Priority(0);
    /// Below normal.
    pub const LOW: Priority = Priority(64);
    /// The default rank.
    pub const NORMAL: Priority = Priority(128);
    /// Above normal.
    pub const HIGH: Priority = Priority(192);
    /// Served first (after the system lane, which always comes first).
    pub const HIGHEST: Priority = Priority(255);
}

impl Default for Priority {
    fn default() -> Self {
        Priority::NORMAL
    }
}

/// An actor that accepts messages of type `M`.
///
/// Implement `handle` as an `async fn`. The future must be `Send`.
///
/// ```
/// use granary_core::prelude::*;
/// struct Counter { n: u64 }
/// impl Actor for Counter {}
/// struct Add(u64);
/// impl Message for Add { type Reply = u64; }
/// impl Handler<Add> for Counter {
///     async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 {
///         self.n += msg.0;
///         self.n
///     }
/// }
/// ```
pub trait Handler<M: Message>: Actor {
    /// Handles one message and returns the reply (sent back to `ask`, dropped for
    /// `tell`).
    fn handle(&mut self, msg: M, ctx: &mut Context<Self>) -> impl Future<Output = M::Reply> + Send;

    /// The rank of `msg` in a priority mailbox. Called on the sender's side when
    /// the message is enqueued, and only when the actor has a priority mailbox.
    fn priority(msg: &M) -> Priority {
        let _ = msg;
        Priority::NORMAL
    }
}
