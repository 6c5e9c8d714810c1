//! granary: a distributed virtual actor framework for Rust.
//!
//! This is the facade crate users depend on. It re-exports the layers below it:
//! `granary-core` (the local actor runtime; its items are also at the crate root),
//! `granary-remote` (wire, transport and remote refs, as [`remote`]; its
//! [`register_message!`] is re-exported here), `granary-cluster` (membership, as
//! [`cluster`]), `granary-storage` and `granary-virtual` (virtual actors, as
//! [`virtual_actors`]; its prelude is part of [`prelude`]). It must not contain runtime logic of its own.
//!
//! Cargo features (all but `admin` on by default): `postgres` (PostgreSQL store and
//! membership table), `redis` (Redis store), `tls` (mutual TLS), `dns` (DNS
//! membership), `crdt` (`granary::crdt`), `devices` (`granary::devices`), `admin` (the
//! management endpoint). `default-features = false` is the smallest build: virtual
//! actors, the embedded file and memory stores, seeds or a static member list, plain
//! TCP with the shared-secret handshake. A setting that needs a missing feature is
//! refused at start with `ConfigError::FeatureDisabled`.
//!
//! ```
//! use granary::prelude::*;
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
//!     assert_eq!(counter.ask(Add(2)).await.unwrap(), 2);
//!     system.shutdown().await;
//! }
//! ```
#![deny(missing_docs, unreachable_pub, unsafe_code)]

/// The management endpoint and its views (feature `admin`, off by default).
#[cfg(feature = "admin")]
pub use granary_admin as admin;
pub use granary_cluster as cluster;
pub use granary_core as core;
pub use granary_core::*;
/// Replicated CRDTs (feature `crdt`, default).
#[cfg(feature = "crdt")]
pub use granary_crdt as crdt;
/// Device twins (feature `devices`, default).
#[cfg(feature = "devices")]
pub use granary_devices as devices;
pub use granary_remote as remote;
pub use granary_remote::register_message;
pub use granary_storage as storage;
pub use granary_virtual as virtual_actors;

/// The names most programs need, in one import.
pub mod prelude {
    pub use granary_core::prelude::*;
    pub use granary_virtual::prelude::*;
}
