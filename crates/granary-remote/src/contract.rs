//! Contracts: an actor's public face — a name and the messages it accepts, with their
//! replies — declared apart from its implementation.
//!
//! A caller that holds an `ActorRef<A>` names the actor type `A`, so it links the
//! actor's code. A contract is a marker type that lists messages instead: a crate with
//! the contract and the message types is all a client depends on, and a
//! [`ContractActorRef<C>`](crate::ContractActorRef) sends exactly the messages `C`
//! [`Accepts`] (another is a compile error). The serving side proves that its actor
//! implements the contract when it exposes it:
//! [`RemoteNode::expose_contract`](crate::RemoteNode::expose_contract) requires
//! `C: ServedBy<A>`, which holds only when `A` has a handler for every message.
//!
//! The impls are written by `granary_virtual::contract!` (re-exported as
//! `granary::contract!`), which also writes the virtual-actor side
//! (`granary_virtual::VirtualContract`); by hand they are three short impls, see
//! [`ServedBy`]. `docs/contracts.md` explains the design.
//!
//! Why these traits live here and not beside virtual actors: a contract of a plain
//! remote actor needs nothing above this crate, and a virtual contract is a contract
//! with a key type added one layer up, so both share [`Contract`] and [`Accepts`].

use granary_core::{Actor, Message};

use crate::remote::{Acceptance, RemoteSetupError};

/// A public face: a name and, through [`Accepts`], the messages accepted.
///
/// Implemented by a marker type (usually a unit struct) in a crate that holds only the
/// contract and its message types.
pub trait Contract: Send + Sync + 'static {
    /// The contract's name. For a virtual actor contract it is the kind's name
    /// (`VirtualActor::KIND`), which names stored state and directory entries.
    const NAME: &'static str;
}

/// The contract accepts messages of type `M`: a contract ref can send them.
#[diagnostic::on_unimplemented(
    message = "contract `{Self}` does not accept `{M}`",
    label = "`{Self}` has no `{M}` in its list of messages",
    note = "a contract ref sends only the messages its contract lists in `accepts = [...]`"
)]
pub trait Accepts<M: Message>: Contract {}

/// The plain actor `A` serves the contract: it has a handler for every message the
/// contract accepts. Required by
/// [`RemoteNode::expose_contract`](crate::RemoteNode::expose_contract).
///
/// `contract!` writes it as one generic impl whose bounds are the handlers, which
/// Rust's orphan rules allow because the contract is the local `Self` type:
///
/// ```
/// use granary_core::{Actor, Handler, Message};
/// use granary_remote::{Acceptance, Accepts, Contract, RemoteSetupError, ServedBy};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Ping(u32);
/// impl Message for Ping { type Reply = u32; }
/// granary_remote::register_message!(Ping, "doc.contract.Ping");
///
/// /// The public face of an echo service.
/// struct EchoApi;
/// impl Contract for EchoApi { const NAME: &'static str = "doc.contract.Echo"; }
/// impl Accepts<Ping> for EchoApi {}
/// impl<A: Actor + Handler<Ping>> ServedBy<A> for EchoApi {
///     fn accept_messages(acceptance: Acceptance<A>) -> Result<Acceptance<A>, RemoteSetupError> {
///         acceptance.accept::<Ping>()
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{A}` does not serve contract `{Self}`",
    label = "`{A}` lacks a handler of one of `{Self}`'s messages",
    note = "the actor needs a `Handler<M>` impl for every message the contract accepts"
)]
pub trait ServedBy<A: Actor>: Contract {
    /// Adds every message of the contract to `acceptance` (the table of message types
    /// an exposed actor takes from the wire). `Err` if one of them or its reply is not
    /// registered for the wire.
    fn accept_messages(acceptance: Acceptance<A>) -> Result<Acceptance<A>, RemoteSetupError>;
}
