//! The traits a virtual actor implements: [`VirtualActor`] and [`VirtualHandler`].

use std::future::Future;

use granary_core::{BoxError, Message};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::VirtualContext;
use crate::key::Key;

/// A virtual actor kind: a type with a kind name, a key type and a persisted state.
///
/// Nobody creates or destroys virtual actors: [`crate::Node::get`] returns a ref
/// and the first message activates the actor (built by [`VirtualActor::activate`],
/// state loaded, then [`VirtualActor::on_activate`]). It deactivates when idle, when
/// asked to ([`VirtualContext::deactivate_on_idle`]), when its node shuts down, and
/// after a failed state write or a panic; [`VirtualActor::on_deactivate`] then runs
/// with the [`crate::DeactivationReason`].
///
/// Use `type State = ();` for a kind without state: then nothing is read when it
/// activates and `write_state` writes nothing.
///
/// ```
/// use granary_core::Message;
/// use granary_virtual::{VirtualActor, VirtualContext, VirtualHandler};
///
/// #[derive(serde::Serialize, serde::Deserialize, Default)]
/// struct Balance { cents: i64 }
///
/// struct Account;
/// impl VirtualActor for Account {
///     const KIND: &'static str = "Account";
///     type Key = String;
///     type State = Balance;
///     fn activate(_key: &String) -> Self { Account }
/// }
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Deposit(i64);
/// impl Message for Deposit { type Reply = Result<i64, String>; }
///
/// impl VirtualHandler<Deposit> for Account {
///     async fn handle(&mut self, msg: Deposit, ctx: &mut VirtualContext<'_, Self>) -> Result<i64, String> {
///         ctx.state_mut().cents += msg.0;
///         ctx.write_state().await.map_err(|e| e.to_string())?;
///         Ok(ctx.state().cents)
///     }
/// }
/// ```
pub trait VirtualActor: Sized + Send + 'static {
    /// The kind's name: stable across versions and processes (it names stored state
    /// and directory entries).
    const KIND: &'static str;
    /// The key type: `String`, `i64` or `uuid::Uuid`.
    type Key: Key;
    /// The persisted state, loaded before `on_activate` (`Default` when none is stored).
    type State: Serialize + DeserializeOwned + Default + Send + Sync + 'static;

    /// The version of [`VirtualActor::State`]'s stored shape this build writes (default
    /// 1). Adding a field with `#[serde(default)]` needs no bump: JSON fills it when it
    /// is missing and an older build skips it. Bump it when stored state must be
    /// rewritten, in [`VirtualActor::upgrade_state`]. Version 1 is stored as plain JSON
    /// (what builds before versioned state wrote); from 2 on in granary-storage's
    /// envelope `{"schema": N, "state": ...}` ([`granary_storage::encode_state_compat`]).
    /// A node reads state of an older version through the hook and of a newer one as it
    /// is when it fits (a rolling upgrade; `docs/upgrade.md`).
    const STATE_VERSION: u32 = 1;

    /// Rewrites stored state of version `from` (older than
    /// [`VirtualActor::STATE_VERSION`]) into the current shape, as JSON. The default
    /// leaves it as it is, which is right for added fields with defaults. An `Err`
    /// fails the activation with [`crate::VirtualError::BadState`].
    fn upgrade_state(from: u32, state: serde_json::Value) -> Result<serde_json::Value, String> {
        let _ = from;
        Ok(state)
    }

    /// Builds the instance for `key` (state is loaded separately).
    fn activate(key: &Self::Key) -> Self;

    /// Runs after the state is loaded, before the first message. An `Err` fails the
    /// activation; the caller sees [`crate::VirtualError::Unavailable`] after retries.
    fn on_activate(
        &mut self,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs on every end of an activation that activated, with the reason in
    /// [`VirtualContext::deactivation_reason`]: idle, requested, node shutdown, node
    /// Down, host lease lost, state conflict, storage failure, handler panic,
    /// superseded by another activation. Modified, unwritten state is written after
    /// it returns only when [`crate::DeactivationReason::saves_state`] holds;
    /// otherwise the in-memory state is not the truth and `write_state` is refused
    /// here. It does not run when `on_activate` failed, nor when the process dies or
    /// the node is killed (`Node::kill` models a crash).
    fn on_deactivate(
        &mut self,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }
}

/// A virtual actor that accepts messages of type `M` (the virtual counterpart of
/// `granary_core::Handler`; the context gives state and identity besides the usual
/// actor context).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no handler for `{M}`",
    label = "`{Self}` does not handle `{M}`",
    note = "add `async fn name(&mut self, msg: {M}, ctx: &mut VirtualContext<'_, Self>) -> Reply` to its #[virtual_actor] block, or `impl VirtualHandler<{M}> for {Self}`"
)]
pub trait VirtualHandler<M: Message>: VirtualActor {
    /// Handles one message and returns the reply.
    fn handle(
        &mut self,
        msg: M,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> impl Future<Output = M::Reply> + Send;
}

/// A kind's state as granary-storage's [`PersistentState`](granary_storage::PersistentState):
/// its version and upgrade hook are the kind's.
#[derive(Serialize, serde::Deserialize)]
#[serde(transparent)]
#[serde(bound(serialize = "", deserialize = ""))]
pub(crate) struct StoredState<A: VirtualActor>(pub(crate) A::State);

impl<A: VirtualActor> granary_storage::PersistentState for StoredState<A> {
    const SCHEMA_VERSION: u32 = A::STATE_VERSION;

    fn upgrade(from: u32, state: serde_json::Value) -> Result<serde_json::Value, String> {
        A::upgrade_state(from, state)
    }
}
