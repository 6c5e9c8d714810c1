//! [`Recipient`]: a ref that accepts one message type, whatever the actor.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::actor::{Handler, Message};
use crate::actor_ref::ActorRef;
use crate::error::{AskError, SendError};
use crate::id::ActorId;

/// What a [`Recipient`] needs from the ref behind it.
pub(crate) trait MessageTarget<M: Message>: Send + Sync + 'static {
    fn tell(&self, msg: M) -> Result<(), SendError<M>>;
    fn send(&self, msg: M) -> BoxFuture<'static, Result<(), SendError<M>>>;
    fn ask(
        &self,
        msg: M,
        timeout: Option<Duration>,
    ) -> BoxFuture<'static, Result<M::Reply, AskError<M>>>;
}

impl<A, M> MessageTarget<M> for ActorRef<A>
where
    A: Handler<M>,
    M: Message,
{
    fn tell(&self, msg: M) -> Result<(), SendError<M>> {
        ActorRef::tell(self, msg)
    }

    fn send(&self, msg: M) -> BoxFuture<'static, Result<(), SendError<M>>> {
        let this = self.clone();
        Box::pin(async move { this.send(msg).await })
    }

    fn ask(
        &self,
        msg: M,
        timeout: Option<Duration>,
    ) -> BoxFuture<'static, Result<M::Reply, AskError<M>>> {
        let this = self.clone();
        Box::pin(async move {
            match timeout {
                Some(t) => this.ask_timeout(msg, t).await,
                None => this.ask(msg).await,
            }
        })
    }
}

/// A ref that accepts messages of type `M` only, from any actor that handles
/// `M` — for heterogeneous subscriber lists (actor interfaces). Cheap to clone;
/// equal and hashed by actor id.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use granary_core::prelude::*;
/// struct Ping;
/// impl Message for Ping { type Reply = &'static str; }
/// struct A; impl Actor for A {}
/// impl Handler<Ping> for A { async fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> &'static str { "a" } }
/// struct B; impl Actor for B {}
/// impl Handler<Ping> for B { async fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> &'static str { "b" } }
/// let system = ActorSystem::new();
/// let list: Vec<Recipient<Ping>> = vec![system.spawn(A).recipient(), system.spawn(B).recipient()];
/// for r in &list { r.ask(Ping).await.unwrap(); }
/// # }
/// ```
pub struct Recipient<M: Message> {
    id: ActorId,
    target: Arc<dyn MessageTarget<M>>,
}

impl<M: Message> Recipient<M> {
    pub(crate) fn new<A: Handler<M>>(actor_ref: ActorRef<A>) -> Self {
        Self {
            id: actor_ref.id(),
            target: Arc::new(actor_ref),
        }
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// Sends without waiting (fails with `MailboxFull` on a full bounded mailbox).
    pub fn tell(&self, msg: M) -> Result<(), SendError<M>> {
        self.target.tell(msg)
    }

    /// Sends, waiting for room in a bounded mailbox.
    pub async fn send(&self, msg: M) -> Result<(), SendError<M>> {
        self.target.send(msg).await
    }

    /// Request/response with the system's default timeout.
    pub async fn ask(&self, msg: M) -> Result<M::Reply, AskError<M>> {
        self.target.ask(msg, None).await
    }

    /// Request/response with an explicit timeout.
    pub async fn ask_timeout(&self, msg: M, timeout: Duration) -> Result<M::Reply, AskError<M>> {
        self.target.ask(msg, Some(timeout)).await
    }
}

impl<M: Message> Clone for Recipient<M> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            target: self.target.clone(),
        }
    }
}

impl<M: Message> PartialEq for Recipient<M> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<M: Message> Eq for Recipient<M> {}

impl<M: Message> Hash for Recipient<M> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}

impl<M: Message> fmt::Debug for Recipient<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient<{}>({})", std::any::type_name::<M>(), self.id)
    }
}
