//! Forgeable, serializable references to actors on other nodes.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;

use granary_core::{Actor, ActorRef};
use serde::{Deserialize, Serialize};

use super::RemoteNode;

/// A typed reference to the actor exposed under `name` on the node at `addr`, as data.
///
/// Put it inside messages: it serializes to the address and the name, and the receiving
/// node turns it back into an [`ActorRef`] with [`RemoteRef::resolve`]. A ref that points
/// at the resolving node itself resolves to the local ref (local sends never serialize).
///
/// ```
/// use granary_remote::RemoteRef;
/// # struct Counter;
/// # impl granary_core::Actor for Counter {}
/// let r: RemoteRef<Counter> = RemoteRef::new("127.0.0.1:4000".parse().unwrap(), "counter");
/// let bytes = postcard::to_allocvec(&r).unwrap();
/// let back: RemoteRef<Counter> = postcard::from_bytes(&bytes).unwrap();
/// assert_eq!(back, r);
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct RemoteRef<A> {
    addr: SocketAddr,
    name: String,
    #[serde(skip)]
    _actor: PhantomData<fn() -> A>,
}

impl<A> RemoteRef<A> {
    /// A reference to `name` at `addr` (nobody is asked: the ref is forged).
    pub fn new(addr: SocketAddr, name: impl Into<String>) -> Self {
        Self {
            addr,
            name: name.into(),
            _actor: PhantomData,
        }
    }

    /// The hosting node's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The exposed name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<A: Actor> RemoteRef<A> {
    /// A usable ref: local if it points at `node` and the name is registered there as an
    /// `A`, otherwise a remote ref through `node`.
    pub fn resolve(&self, node: &RemoteNode) -> ActorRef<A> {
        if self.addr == node.local_addr() {
            if let Some(local) = node.system().lookup::<A>(&self.name) {
                return local;
            }
        }
        node.remote_ref(self.addr, &self.name)
    }
}

impl<A> Clone for RemoteRef<A> {
    fn clone(&self) -> Self {
        Self::new(self.addr, self.name.clone())
    }
}

impl<A> PartialEq for RemoteRef<A> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr && self.name == other.name
    }
}

impl<A> Eq for RemoteRef<A> {}

impl<A> fmt::Debug for RemoteRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoteRef<{}>({}/{})",
            std::any::type_name::<A>(),
            self.addr,
            self.name
        )
    }
}

/// `ActorRef::<A>::remote(&node, addr, "name")`: forge a typed remote ref.
///
/// An extension trait because `ActorRef` lives in `granary-core`, which knows nothing of
/// the network.
pub trait ActorRefRemoteExt<A: Actor> {
    /// A typed ref to the actor exposed under `name` on the node at `addr`, built without
    /// asking anyone. Sending a message type the actor does not accept answers an ask
    /// with `RemoteError::TypeMismatch` and turns a tell into a dead letter there.
    fn remote(node: &RemoteNode, addr: SocketAddr, name: &str) -> ActorRef<A>;
}

impl<A: Actor> ActorRefRemoteExt<A> for ActorRef<A> {
    fn remote(node: &RemoteNode, addr: SocketAddr, name: &str) -> ActorRef<A> {
        node.remote_ref(addr, name)
    }
}
