//! granary's macros: `#[derive(Message)]` and `#[virtual_actor]`.
//!
//! They write what a virtual actor otherwise spells out by hand: the `Message` impl,
//! the wire registration of a message and of its reply type, the `VirtualActor` and
//! `VirtualHandler<M>` impls, and a [`Hosted`] impl whose `kind()` lists every handled
//! message, so a node hosts the kind with `.host(Counter::kind())` and no
//! `.handles::<M>()` list can miss a handler. `docs/macros.md` shows what each macro
//! generates, the reply registration rule and the errors.
//!
//! ```
//! use granary::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize, Message)]
//! #[message(reply = u64)]
//! struct Add(u64);
//!
//! struct Counter;
//! #[virtual_actor(kind = "demo.Counter", state = u64)]
//! impl Counter {
//!     async fn add(&mut self, msg: Add, ctx: &mut VirtualContext<'_, Self>) -> u64 {
//!         *ctx.state_mut() += msg.0;
//!         ctx.write_state().await.expect("durable when this returns");
//!         *ctx.state()
//!     }
//! }
//!
//! // On every node: Node::builder().host(Counter::kind()).start().await?
//! let kind: Kind<Counter> = Counter::kind();
//! # let _ = kind;
//! ```
//!
//! The generated code names the facade, `::granary` (package `granary-rs`), through its
//! hidden `granary::__macros` module; use the macros through `granary::prelude`.
//! This crate knows nothing of the runtime: it depends on no granary crate and only
//! rewrites tokens.
//!
//! `syn` parses the items and attributes and `quote` writes the output: they are what
//! nearly every derive in the ecosystem is built on (serde, tokio, thiserror), already
//! in granary's dependency tree through those, and `syn`'s spans let every error point
//! at the token that caused it. A hand-written parser over `proc_macro` tokens would
//! save nothing at build time and give worse errors.
//!
//! [`Hosted`]: https://docs.rs/granary-virtual/latest/granary_virtual/trait.Hosted.html
#![deny(missing_docs, unreachable_pub, unsafe_code)]

mod actor;
mod message;

use proc_macro::TokenStream;

/// The error for a key `meta` that attribute `attribute` does not know; `expected`
/// lists the keys it takes.
fn unknown_key(
    meta: &syn::meta::ParseNestedMeta<'_>,
    attribute: &str,
    expected: &str,
) -> syn::Error {
    let key = meta
        .path
        .get_ident()
        .map_or_else(|| "?".to_owned(), ToString::to_string);
    meta.error(format!(
        "unknown key `{key}` in #[{attribute}(...)]: expected {expected}"
    ))
}

/// Implements `Message` for a struct or enum and registers it, and its reply type,
/// for the wire.
///
/// ```ignore
/// #[derive(Serialize, Deserialize, Message)]
/// #[message(reply = u64, name = "demo.Add")]
/// struct Add(u64);
/// ```
///
/// - `reply = Type` (required): `Message::Reply`.
/// - `name = "..."` (optional): the stable wire name; by default
///   `module_path!()::TypeName`, which changes if the type moves, so give a name to a
///   message that peers built from other versions must understand.
/// - `version = N` (optional, default 1): the message's contract version. A node
///   decodes its own version and the one before and answers `MessageTooNew` /
///   `MessageTooOld` otherwise (`docs/upgrade.md`).
///
/// The message is registered under its name; the reply type under a name derived from
/// the type alone (its `std::any::type_name`), so any number of messages, in any
/// crates, may share a reply type. Generic messages are refused: register each
/// instantiation with `register_message!`.
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    message::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes the type of an `impl` block a virtual actor whose `async fn`s are its message
/// handlers.
///
/// ```ignore
/// struct Counter;
/// #[virtual_actor(kind = "demo.Counter", key = String, state = u64)]
/// impl Counter {
///     async fn add(&mut self, msg: Add, ctx: &mut VirtualContext<'_, Self>) -> u64 { .. }
///     async fn get(&mut self, _: Get, ctx: &mut VirtualContext<'_, Self>) -> u64 { .. }
/// }
/// // On every node: Node::builder().host(Counter::kind())...
/// ```
///
/// - `kind = "..."` (required unless `contract` is given): `VirtualActor::KIND`. It
///   names stored state and directory entries, so it has no default derived from the
///   module path.
/// - `key = Type` (default `String`), `state = Type` (default `()`).
/// - `contract = Contract` (instead of `kind` and `key`): the contract the kind
///   fulfils (declared with `granary::contract!`). Its name and key type become the
///   kind's, and the generated `Hosted::kind()` calls `Kind::fulfilling`, so a
///   message of the contract without a handler here is a compile error naming it.
///
/// In the block, `fn activate(key: &Key) -> Self`, `async fn on_activate(&mut self, ctx)`
/// and `async fn on_deactivate(&mut self, ctx)` become the `VirtualActor` hooks (without
/// `activate`, the actor must be a struct without fields, built as `Self {}`). Every other item must be
/// a handler, `async fn name(&mut self, msg: M, ctx: &mut VirtualContext<'_, Self>) -> M::Reply`
/// (`ctx` may be left out); it stays an inherent method and gets a
/// `VirtualHandler<M>` impl. A handler of `ReminderFired` turns on the kind's
/// reminders. The generated `Hosted::kind()` handles every message of the block.
#[proc_macro_attribute]
pub fn virtual_actor(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemImpl);
    actor::expand(args.into(), item)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
