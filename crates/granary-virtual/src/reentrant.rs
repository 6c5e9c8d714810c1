//! Reentrant message types (Orleans' `[Reentrant]`, per message type): handlers that
//! take `&self`, so several of them may be in flight on one activation at once and
//! interleave wherever one awaits (a call to another actor, a timer, I/O).
//!
//! An activation whose kind registers a reentrant message type keeps its actor in
//! a tokio `RwLock`: reentrant handlers run under the read lock, beside each other;
//! the ordinary (exclusive) handlers and the lifecycle hooks run under the write
//! lock, one at a time and never beside a reentrant one. Reentrant handlers do not
//! see the persisted state (it belongs to the exclusive handlers); they keep what
//! they share in fields with interior mutability (atomics, a `Mutex`).

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::DerefMut;
use std::sync::Arc;

use futures::future::BoxFuture;
use granary_core::Message;
use granary_storage::Identity;
use tokio::sync::RwLock;

use crate::actor::{VirtualActor, VirtualHandler};
use crate::context::VirtualContext;
use crate::runtime::Runtime;
use crate::vref::VirtualRef;

/// A handler that may run while other messages of the same activation are being
/// handled (register it with [`crate::Kind::reentrant`]).
///
/// It gets `&self`: the actor type must be `Sync`, and what handlers change goes
/// into fields with interior mutability. Every `ReentrantHandler<M>` is also a
/// [`VirtualHandler<M>`] (then it runs exclusively, as when the kind registers `M`
/// with [`crate::Kind::handles`]).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use granary_core::Message;
/// use granary_virtual::{Kind, ReentrantContext, ReentrantHandler, VirtualActor};
///
/// #[derive(Default)]
/// struct Catalog { lookups: AtomicU64 }
/// impl VirtualActor for Catalog {
///     const KIND: &'static str = "Catalog";
///     type Key = String;
///     type State = ();
///     fn activate(_key: &String) -> Self { Catalog::default() }
/// }
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Lookup(String);
/// impl Message for Lookup { type Reply = u64; }
/// granary_remote::register_message!(Lookup, "doc.Lookup");
///
/// impl ReentrantHandler<Lookup> for Catalog {
///     async fn handle(&self, _msg: Lookup, _ctx: &ReentrantContext<Self>) -> u64 {
///         // Awaiting here lets the activation's next message start.
///         self.lookups.fetch_add(1, Ordering::Relaxed) + 1
///     }
/// }
///
/// let kind = Kind::<Catalog>::new().reentrant::<Lookup>();
/// # let _ = kind;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no handler for `{M}`",
    label = "`{Self}` does not handle `{M}`"
)]
pub trait ReentrantHandler<M: Message>: VirtualActor + Sync {
    /// Handles one message; other messages may be handled while this one awaits.
    fn handle(&self, msg: M, ctx: &ReentrantContext<Self>)
        -> impl Future<Output = M::Reply> + Send;
}

impl<A, M> VirtualHandler<M> for A
where
    A: ReentrantHandler<M>,
    M: Message,
{
    async fn handle(&mut self, msg: M, ctx: &mut VirtualContext<'_, Self>) -> M::Reply {
        let rctx = ReentrantContext {
            key: ctx.key().clone(),
            identity: ctx.identity().clone(),
            runtime: ctx.cell.runtime.clone(),
        };
        ReentrantHandler::handle(&*self, msg, &rctx).await
    }
}

/// What a reentrant handler knows besides its message: the activation's identity
/// and node, and refs to other virtual actors.
pub struct ReentrantContext<A: VirtualActor> {
    key: A::Key,
    identity: Identity,
    runtime: Arc<Runtime>,
}

impl<A: VirtualActor> ReentrantContext<A> {
    /// This activation's key.
    pub fn key(&self) -> &A::Key {
        &self.key
    }

    /// This actor's identity (`kind/key`).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The address of the node this activation runs on.
    pub fn node_addr(&self) -> SocketAddr {
        self.runtime.me
    }

    /// A ref to another virtual actor (or this one: with reentrancy, calling
    /// yourself does not deadlock).
    pub fn get<B: VirtualActor>(&self, key: B::Key) -> VirtualRef<B> {
        VirtualRef::new(self.runtime.clone(), key)
    }
}

/// The actor of a reentrant activation and the context its reentrant handlers get.
pub(crate) struct SharedActor<A: VirtualActor> {
    pub(crate) actor: Arc<RwLock<A>>,
    pub(crate) context: ReentrantContext<A>,
}

/// Exclusive access to the actor, whatever its activation shares.
pub(crate) type Exclusive<A> = Box<dyn DerefMut<Target = A> + Send>;

/// Hands out exclusive access to a shared actor (erases the `A: Sync` bound, which
/// only reentrant kinds have).
pub(crate) trait ExclusiveAccess<A>: Send {
    fn exclusive(&self) -> BoxFuture<'static, Exclusive<A>>;
}

impl<A: VirtualActor + Sync> ExclusiveAccess<A> for Arc<RwLock<A>> {
    fn exclusive(&self) -> BoxFuture<'static, Exclusive<A>> {
        let lock = self.clone();
        Box::pin(async move { Box::new(lock.write_owned().await) as Exclusive<A> })
    }
}

/// Where an activation keeps its actor.
pub(crate) enum Slot<A> {
    /// Only exclusive handlers: the activation owns the actor.
    Owned(A),
    /// The kind has reentrant message types: the actor sits behind a read/write lock
    /// shared with the activation's door.
    Shared(Box<dyn ExclusiveAccess<A>>),
}

impl<A> Slot<A> {
    /// The actor, exclusively: at once when owned, else after the reentrant handlers
    /// in flight finished (the guard is kept in `guard`).
    pub(crate) async fn exclusive<'a>(
        &'a mut self,
        guard: &'a mut Option<Exclusive<A>>,
    ) -> &'a mut A {
        match self {
            Slot::Owned(actor) => actor,
            Slot::Shared(shared) => &mut **guard.insert(shared.exclusive().await),
        }
    }
}

/// Builds the shared slot of a reentrant kind's activation: the activation's half
/// and, erased, the door's half (a `SharedActor<A>`).
pub(crate) type ShareFn<A> = fn(A, ReentrantContext<A>) -> (Slot<A>, Arc<dyn Any + Send + Sync>);

pub(crate) fn share<A: VirtualActor + Sync>(
    actor: A,
    context: ReentrantContext<A>,
) -> (Slot<A>, Arc<dyn Any + Send + Sync>) {
    let actor = Arc::new(RwLock::new(actor));
    let door = Arc::new(SharedActor {
        actor: actor.clone(),
        context,
    });
    (Slot::Shared(Box::new(actor)), door)
}

impl<A: VirtualActor> ReentrantContext<A> {
    pub(crate) fn new(key: A::Key, identity: Identity, runtime: Arc<Runtime>) -> Self {
        Self {
            key,
            identity,
            runtime,
        }
    }
}
