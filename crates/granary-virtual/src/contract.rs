//! Contracts of virtual actors: a kind's public face — its name, its key type, the
//! messages it accepts and their replies — declared apart from its implementation.
//!
//! A [`VirtualRef<A>`](crate::VirtualRef) names the actor type `A`, so its caller
//! links the actor's code. A contract is a marker type declared with [`contract!`](crate::contract!) in
//! a crate that holds only the contract and its message types; a client depends on
//! that crate alone and calls through a [`ContractRef<C>`] from
//! [`Node::contract`](crate::Node::contract) or
//! [`Client::contract`](crate::Client::contract), which sends exactly the messages the
//! contract [`Accepts`] (another one is a compile error). The hosting side proves at
//! compile time that its actor implements the contract: [`Kind::fulfilling`] (and
//! `#[virtual_actor(contract = ...)]`, which calls it) requires
//! [`FulfilledBy<Actor>`](FulfilledBy), which holds only when the actor has a handler of
//! every message and the contract's key type.
//!
//! The same contract serves plain remote actors too:
//! [`RemoteNode::contract_ref`](granary_remote::RemoteNode::contract_ref) and
//! [`RemoteNode::expose_contract`](granary_remote::RemoteNode::expose_contract) (its
//! [`ServedBy`] impl is written by [`contract!`](crate::contract!) as well).
//!
//! ```
//! use granary_core::Message;
//! use granary_virtual::{contract, Kind, VirtualActor, VirtualContext, VirtualHandler};
//!
//! // The contract crate: messages and the contract, no actor.
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! pub struct Add(pub u64);
//! impl Message for Add { type Reply = u64; }
//! granary_remote::register_message!(Add, "doc.contract.Add");
//!
//! contract! {
//!     /// A counter per key: add to it and read the total.
//!     pub contract CounterApi {
//!         kind = "doc.contract.Counter";
//!         key = String;
//!         accepts = [Add];
//!     }
//! }
//!
//! // The hosting crate: the implementation, proved against the contract.
//! struct Counter;
//! impl VirtualActor for Counter {
//!     const KIND: &'static str = "doc.contract.Counter";
//!     type Key = String;
//!     type State = u64;
//!     fn activate(_: &String) -> Self { Counter }
//! }
//! impl VirtualHandler<Add> for Counter {
//!     async fn handle(&mut self, m: Add, ctx: &mut VirtualContext<'_, Self>) -> u64 {
//!         *ctx.state_mut() += m.0;
//!         *ctx.state()
//!     }
//! }
//! // Handles every message of the contract; does not compile without `VirtualHandler<Add>`.
//! let kind = Kind::<Counter>::new().fulfilling::<CounterApi>();
//! # let _ = kind;
//!
//! // A client crate: `node.contract::<CounterApi>("a".to_string()).ask(Add(1)).await`.
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use granary_core::Message;
use granary_remote::{Accepts, Contract};
use granary_storage::Identity;

use crate::actor::VirtualActor;
use crate::error::VirtualError;
use crate::key::Key;
use crate::kind::Kind;
use crate::runtime::Runtime;
use crate::vref::Callee;

/// A contract of a virtual actor kind: its [`Contract::NAME`] is the kind's name
/// (`VirtualActor::KIND`) and [`VirtualContract::Key`] its key type. Written by
/// [`contract!`](crate::contract!) with `kind = ...; key = ...;`.
pub trait VirtualContract: Contract {
    /// The kind's key type: `String`, `i64` or `uuid::Uuid`.
    type Key: Key;
}

/// The virtual actor `A` fulfils the contract: it has the contract's key type and a
/// handler of every message the contract accepts. Required by [`Kind::fulfilling`].
///
/// [`contract!`](crate::contract!) writes it as one generic impl whose bounds are the handlers (Rust's
/// orphan rules allow it because the contract is the local `Self` type):
///
/// ```ignore
/// impl<A> FulfilledBy<A> for CounterApi
/// where
///     A: VirtualActor<Key = String> + VirtualHandler<Add> + VirtualHandler<Get>,
/// {
///     fn host(kind: Kind<A>) -> Kind<A> { kind.handles::<Add>().handles::<Get>() }
/// }
/// ```
///
/// So a missing handler is reported as the unmet bound, naming the message:
/// "`Counter` has no handler for `Get`", "required for `CounterApi` to implement
/// `FulfilledBy<Counter>`".
#[diagnostic::on_unimplemented(
    message = "`{A}` does not fulfil contract `{Self}`",
    label = "`{Self}` is not fulfilled by `{A}`",
    note = "declare the contract with `contract!`: it implements `FulfilledBy` for every kind with its key type and a handler of each of its messages"
)]
pub trait FulfilledBy<A: VirtualActor>: VirtualContract {
    /// Adds every message of the contract to `kind` (as [`Kind::handles`] does).
    fn host(kind: Kind<A>) -> Kind<A>;
}

/// Whether two names are equal, in a `const` context (where `==` on `str` is not
/// available): [`Kind::fulfilling`] checks the contract's name against the kind's at
/// compile time.
pub(crate) const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A typed ref to the virtual actor with one key of the kind that the contract `C`
/// describes; valid on every node and client. It names no actor type, so a program
/// that holds one depends on the contract's crate only, and it sends exactly the
/// messages `C` [`Accepts`]: another message does not compile.
///
/// Calls behave as [`VirtualRef`](crate::VirtualRef)'s, through the same code: the
/// first message activates the actor, a call that finds the activation gone is
/// located again and resent (same delivery guarantees, timeouts and errors). On the
/// wire a message goes by its registered name, so the hosting node cannot tell a
/// contract ref from a `VirtualRef`; on a node that hosts the activation itself the
/// message goes through the activation's door by its type, as a `VirtualRef`'s does.
///
/// Errors besides those of a `VirtualRef`: a kind hosted by no live member fails with
/// [`VirtualError::NoHost`]; a host whose kind does not handle a message of the
/// contract (built from another version, or hosted without [`Kind::fulfilling`])
/// answers `VirtualError::Remote(RemoteError::TypeMismatch)`.
pub struct ContractRef<C: VirtualContract> {
    callee: Callee,
    key: C::Key,
    _contract: PhantomData<fn() -> C>,
}

impl<C: VirtualContract> ContractRef<C> {
    pub(crate) fn new(runtime: Arc<Runtime>, key: C::Key) -> Self {
        let identity = Identity::new(C::NAME, key.to_key_string());
        Self {
            callee: Callee::new(runtime, identity),
            key,
            _contract: PhantomData,
        }
    }

    /// The key.
    pub fn key(&self) -> &C::Key {
        &self.key
    }

    /// The identity (`kind/key`).
    pub fn identity(&self) -> &Identity {
        &self.callee.identity
    }

    /// Request/response with the node's (or client's) default ask timeout.
    pub async fn ask<M>(&self, msg: M) -> Result<M::Reply, VirtualError>
    where
        C: Accepts<M>,
        M: Message + Clone,
    {
        self.ask_timeout(msg, self.callee.runtime.config.ask_timeout)
            .await
    }

    /// Request/response within `timeout`, retries included.
    pub async fn ask_timeout<M>(&self, msg: M, timeout: Duration) -> Result<M::Reply, VirtualError>
    where
        C: Accepts<M>,
        M: Message + Clone,
    {
        self.callee.ask(msg, timeout).await
    }

    /// Sends without waiting for the handler: resolves the activation (activating it
    /// if needed) and enqueues the message there. At most once; `Ok` means enqueued.
    pub async fn tell<M>(&self, msg: M) -> Result<(), VirtualError>
    where
        C: Accepts<M>,
        M: Message + Clone,
    {
        self.callee.tell(msg).await
    }
}

impl<C: VirtualContract> Clone for ContractRef<C> {
    fn clone(&self) -> Self {
        Self {
            callee: self.callee.clone(),
            key: self.key.clone(),
            _contract: PhantomData,
        }
    }
}

impl<C: VirtualContract> fmt::Debug for ContractRef<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContractRef({})", self.callee.identity)
    }
}

/// Declares a contract: a marker type with the name, the key type (for a virtual
/// actor kind) and the messages a kind or an actor accepts, and the impls of
/// [`Contract`], [`Accepts`] per message, [`VirtualContract`] and [`FulfilledBy`] (for
/// a kind) and [`ServedBy`](granary_remote::ServedBy) (for plain remote actors).
/// Doc comments and attributes on the contract pass through to the type, which
/// derives `Clone`, `Copy` and `Debug`.
///
/// A virtual actor kind's contract, for [`ContractRef`] and [`Kind::fulfilling`]:
///
/// ```
/// # use granary_core::Message;
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct Add(pub u64);
/// # impl Message for Add { type Reply = u64; }
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct Get;
/// # impl Message for Get { type Reply = u64; }
/// # granary_remote::register_message!(Add, "doc.macro.Add");
/// # granary_remote::register_message!(Get, "doc.macro.Get");
/// granary_virtual::contract! {
///     /// A counter per key.
///     pub contract CounterApi {
///         kind = "doc.macro.Counter";
///         key = String;
///         accepts = [Add, Get];
///     }
/// }
/// use granary_remote::Contract;
/// assert_eq!(CounterApi::NAME, "doc.macro.Counter");
/// ```
///
/// A plain remote actor's contract, for
/// [`RemoteNode::contract_ref`](granary_remote::RemoteNode::contract_ref) and
/// [`RemoteNode::expose_contract`](granary_remote::RemoteNode::expose_contract) (no key):
///
/// ```
/// # use granary_core::Message;
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)] pub struct Ping;
/// # impl Message for Ping { type Reply = (); }
/// # granary_remote::register_message!(Ping, "doc.macro.Ping");
/// granary_virtual::contract! {
///     /// Answers pings.
///     pub contract PingApi {
///         name = "doc.macro.Pinger";
///         accepts = [Ping];
///     }
/// }
/// ```
///
/// The messages must implement `Message`, `Serialize` and `Deserialize` and be
/// registered for the wire (`#[derive(Message)]` or `register_message!`), as must
/// their replies; a contract ref also wants them `Clone` (a call may be resent).
#[macro_export]
macro_rules! contract {
    (@common
        $(#[$meta:meta])*
        $vis:vis $name:ident, $contract_name:expr, [$($msg:ty),+]
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        $vis struct $name;

        impl $crate::__private::Contract for $name {
            const NAME: &'static str = $contract_name;
        }

        $(impl $crate::__private::Accepts<$msg> for $name {})+

        impl<A> $crate::__private::ServedBy<A> for $name
        where
            A: $crate::__private::Actor $(+ $crate::__private::Handler<$msg>)+,
        {
            fn accept_messages(
                acceptance: $crate::__private::Acceptance<A>,
            ) -> ::core::result::Result<
                $crate::__private::Acceptance<A>,
                $crate::__private::RemoteSetupError,
            > {
                $(let acceptance = acceptance.accept::<$msg>()?;)+
                ::core::result::Result::Ok(acceptance)
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis contract $name:ident {
            kind = $kind:expr;
            key = $key:ty;
            accepts = [$($msg:ty),+ $(,)?];
        }
    ) => {
        $crate::contract!(@common $(#[$meta])* $vis $name, $kind, [$($msg),+]);

        impl $crate::VirtualContract for $name {
            type Key = $key;
        }

        impl<A> $crate::FulfilledBy<A> for $name
        where
            A: $crate::VirtualActor<Key = $key> $(+ $crate::VirtualHandler<$msg>)+,
        {
            fn host(kind: $crate::Kind<A>) -> $crate::Kind<A> {
                kind $(.handles::<$msg>())+
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis contract $name:ident {
            name = $contract_name:expr;
            accepts = [$($msg:ty),+ $(,)?];
        }
    ) => {
        $crate::contract!(@common $(#[$meta])* $vis $name, $contract_name, [$($msg),+]);
    };
}
