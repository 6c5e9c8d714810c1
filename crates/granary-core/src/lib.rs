//! granary-core: the local actor runtime of granary.
//!
//! Everything else in granary (remote actors, the cluster, virtual actors) sits on
//! this crate. It knows nothing about the network, the cluster or storage; the
//! remote layer plugs in through [`RemoteTarget`] and [`ActorRef::from_remote`].
//! No granary crate sits below it; it builds on tokio (one task per actor),
//! `parking_lot` (the mailbox lock), `futures` (boxed futures off the hot path) and
//! `thiserror`. A handler's future, type-erased, lives in a heap block recycled through
//! a per-thread free list rather than in a `Box` of its own (`handler_future.rs`).
//!
//! # The model
//! - An [`Actor`] owns its state; it implements [`Handler<M>`] for each
//!   [`Message`] type it accepts, with a typed reply.
//! - An [`ActorRef<A>`] sends to it: `tell` (fire and forget), `ask`
//!   (request/response with a timeout), `send(..).await` (waits for room in a
//!   bounded mailbox). A [`Recipient<M>`] accepts one message type from any actor.
//! - Each actor has one mailbox with a system lane (stop, supervision, watch)
//!   served before user messages, optionally bounded and/or ranked by priority.
//! - Parents supervise children ([`SupervisorStrategy`]): resume, restart (with
//!   a budget and a backoff), stop or escalate; one-for-one or all-for-one. A
//!   panic in a handler or hook is caught; a pending `ask` gets
//!   [`AskError::ActorPanicked`].
//! - [`Context::watch`] delivers [`Terminated`]; [`ActorSystem::register`] names
//!   actors; [`EventStream`] carries typed events, including [`DeadLetter`]s.
//! - Timers ([`Context::send_after`], [`Context::interval`]) and
//!   [`Context::spawn_blocking`] for CPU-heavy work.
//!
//! The guarantees are written out in `docs/semantics.md`.
//!
//! ```
//! use granary_core::prelude::*;
//!
//! struct Counter { n: u64 }
//! impl Actor for Counter {}
//! struct Add(u64);
//! impl Message for Add { type Reply = u64; }
//! impl Handler<Add> for Counter {
//!     async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 {
//!         self.n += msg.0;
//!         self.n
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() {
//!     let system = ActorSystem::new();
//!     let counter = system.spawn(Counter { n: 0 });
//!     counter.tell(Add(1)).unwrap();
//!     assert_eq!(counter.ask(Add(2)).await.unwrap(), 3);
//!     system.shutdown().await;
//! }
//! ```
#![deny(missing_docs, unreachable_pub, unsafe_code)]

mod actor;
mod actor_ref;
mod context;
mod envelope;
mod error;
mod event;
mod handler_future;
mod id;
mod lifecycle;
mod mailbox;
pub mod memory;
mod observe;
mod props;
mod runner;
mod supervision;
mod system;
mod timer;

pub use actor::{Actor, BoxError, Handler, Message, Priority};
pub use actor_ref::{
    as_sender, ask_target, current_sender, tell_target, ActorRef, AsSender, ErasedMessage,
    Recipient, RemoteTarget, SendAttempt, DEFAULT_ASK_TIMEOUT,
};
pub use context::Context;
pub use error::{AskError, DeadlinePassed, RegistryError, RemoteError, SendError};
pub use event::{
    DeadLetter, DeadLetterCounts, DeadLetterReason, Event, EventRecvError, EventStream,
    EventSubscriber,
};
pub use id::ActorId;
pub use lifecycle::{Failure, StopReason, Terminated};
pub use mailbox::MailboxConfig;
pub use props::Props;
pub use supervision::{Backoff, Directive, Scope, SupervisorStrategy};
pub use system::{ActorSystem, ShutdownReport, SystemBuilder, Within};
pub use timer::TimerHandle;

/// Table upkeep shared by the granary crates; not a stable API.
#[doc(hidden)]
pub mod __tables {
    use std::collections::HashMap;
    use std::hash::{BuildHasher, Hash};

    /// Tables at least this large give their memory back when they become mostly
    /// empty. Small, so that what an emptied table keeps is small too: the actor
    /// table has 16 shards, and at 1,024 they kept ~670 kB after 50,000 activations
    /// had passivated (a heap profile of the `activate` benchmark's program); the
    /// factor of four below still keeps a table from shrinking and growing in turn.
    pub const SHRINK_FROM: usize = 64;

    /// Gives a mostly empty table's memory back: a map keeps the capacity of its
    /// largest size, so once 50,000 actors or activations have ended, the tables that
    /// held them would otherwise keep their buckets for good. Shrinks only below a
    /// quarter of the capacity, so each rehash is paid for by the removals before it.
    pub fn shrink_if_sparse<K: Hash + Eq, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
        if map.capacity() >= SHRINK_FROM && map.len() * 4 < map.capacity() {
            map.shrink_to_fit();
        }
    }
}

/// The names most programs need, in one import.
pub mod prelude {
    pub use crate::{
        Actor, ActorId, ActorRef, ActorSystem, AskError, Backoff, BoxError, Context, DeadLetter,
        DeadLetterReason, Directive, Failure, Handler, MailboxConfig, Message, Priority, Props,
        Recipient, SendError, StopReason, SupervisorStrategy, Terminated,
    };
}
