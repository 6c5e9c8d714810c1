//! [`ContractActorRef`]: a ref to a remote plain actor, typed by its contract.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use granary_core::{
    ask_target, tell_target, ActorId, AskError, Message, RemoteTarget, SendError,
    DEFAULT_ASK_TIMEOUT,
};

use crate::contract::{Accepts, Contract};

/// A ref to the actor exposed under a name on another node, typed by the contract `C`
/// it serves instead of by its actor type: the calling program links the contract and
/// its messages, not the actor. It sends exactly the messages `C` [`Accepts`]; another
/// message is a compile error.
///
/// Built without asking anyone by
/// [`RemoteNode::contract_ref`](crate::RemoteNode::contract_ref); messages go by their
/// registered wire names, the same frames an [`granary_core::ActorRef`] to that actor
/// sends, so the serving node cannot tell the two apart. Errors are those of a remote
/// `ActorRef`: an actor that does not serve the contract (exposed without
/// [`RemoteNode::expose_contract`](crate::RemoteNode::expose_contract) and missing a
/// message type) answers an ask with `RemoteError::TypeMismatch`, a name exposed by
/// nobody with `RemoteError::NoSuchActor`.
///
/// ```no_run
/// // no_run: opens sockets; tests/contract_refs.rs runs the same flow.
/// # use granary_core::{Actor, Handler, Message};
/// # use granary_remote::{Acceptance, Accepts, Contract, RemoteSetupError, ServedBy};
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// # struct Ping(u32);
/// # impl Message for Ping { type Reply = u32; }
/// # granary_remote::register_message!(Ping, "doc.contract_ref.Ping");
/// # struct EchoApi;
/// # impl Contract for EchoApi { const NAME: &'static str = "doc.contract_ref.Echo"; }
/// # impl Accepts<Ping> for EchoApi {}
/// # async fn demo(node: granary_remote::RemoteNode, server: std::net::SocketAddr)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// let echo = node.contract_ref::<EchoApi>(server, "echo");
/// assert_eq!(echo.ask(Ping(7)).await?, 7);
/// # Ok(()) }
/// ```
pub struct ContractActorRef<C: Contract> {
    target: Arc<dyn RemoteTarget>,
    addr: SocketAddr,
    name: Arc<str>,
    _contract: PhantomData<fn() -> C>,
}

impl<C: Contract> ContractActorRef<C> {
    pub(crate) fn new(target: Arc<dyn RemoteTarget>, addr: SocketAddr, name: &str) -> Self {
        Self {
            target,
            addr,
            name: name.into(),
            _contract: PhantomData,
        }
    }

    /// The serving node's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The name the actor is exposed under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The actor's id: the one an `ActorRef` forged to the same name at the same
    /// address carries.
    pub fn id(&self) -> ActorId {
        self.target.id()
    }

    /// Sends without waiting for the handler. `Ok` means handed to the transport; a
    /// message the serving node cannot deliver becomes a dead letter there.
    pub fn tell<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        C: Accepts<M>,
        M: Message,
    {
        tell_target(&*self.target, msg)
    }

    /// Request/response within [`DEFAULT_ASK_TIMEOUT`].
    pub async fn ask<M>(&self, msg: M) -> Result<M::Reply, AskError<M>>
    where
        C: Accepts<M>,
        M: Message,
    {
        self.ask_timeout(msg, DEFAULT_ASK_TIMEOUT).await
    }

    /// Request/response that gives up after `timeout` with [`AskError::Timeout`].
    pub async fn ask_timeout<M>(&self, msg: M, timeout: Duration) -> Result<M::Reply, AskError<M>>
    where
        C: Accepts<M>,
        M: Message,
    {
        ask_target(&*self.target, msg, timeout).await
    }

    /// Asks the actor to stop.
    pub fn stop(&self) {
        self.target.stop();
    }
}

impl<C: Contract> Clone for ContractActorRef<C> {
    fn clone(&self) -> Self {
        Self {
            target: self.target.clone(),
            addr: self.addr,
            name: self.name.clone(),
            _contract: PhantomData,
        }
    }
}

impl<C: Contract> fmt::Debug for ContractActorRef<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ContractActorRef<{}>({}/{})",
            C::NAME,
            self.addr,
            self.name
        )
    }
}
