//! granary-storage: where actor state lives between activations.
//!
//! Virtual actors load their state when activated and write it back; a passivated
//! actor's state waits here until the next message wakes it, on any node (seed 001
//! §3, "State" and "Passivation"). Every write carries the version (ETag) the
//! writer last saw, so a stale activation can never overwrite newer state (seed 000,
//! Orleans' ETags).
//!
//! - [`StateStore`]: read → bytes + [`Version`]; write / clear with an expected
//!   version → new version or [`StorageError::Conflict`]; a durable reminder table
//!   listed by owner partition and due time.
//! - Providers, opened by URL with [`open`] / [`open_with`]:
//!   `memory:` ([`MemoryStore`]), `file:/path` ([`FileStore`], SQLite in WAL mode
//!   with group commit: the embedded default, shared by several processes),
//!   `postgres://…` (`PostgresStore`, feature `postgres`) and `redis://…`
//!   (`RedisStore`, feature `redis`). All pass one [`conformance`] suite.
//! - Typed state: [`PersistentState`] + [`StateStoreExt`] store serde types as JSON
//!   with a schema version, so old records load into newer structs.
//! - Identities are [`Identity`] (`kind` + `key`, shown as `kind/key`).
//!
//! This crate must not know about actors, nodes, the cluster or the wire: it
//! stores bytes under identities. It sits at the bottom of the stack with no
//! granary crate below it; `granary-virtual` uses it.
//!
//! Chosen crates: `rusqlite` (bundled SQLite, multi-process WAL), `tokio-postgres`
//! with `deadpool-postgres` (async pool with connect/wait timeouts), `redis` with its
//! tokio connection manager (reconnects, scripts via EVALSHA), `async-trait` (the
//! trait is used as `Arc<dyn StateStore>`, which native async trait methods cannot
//! be yet), `url` (URL parsing with errors we can attribute to a part).
//!
//! ```
//! # async fn demo() -> Result<(), granary_storage::StorageError> {
//! use granary_storage::{open, Identity};
//! let store = open("memory:").await?;
//! let id = Identity::new("Counter", "user-42");
//! assert!(store.read(&id).await?.is_none());
//! let v1 = store.write(&id, "1".into(), None).await?;
//! let got = store.read(&id).await?.unwrap();
//! assert_eq!((got.data.as_ref(), got.version), (&b"1"[..], v1));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
#![deny(missing_docs, unreachable_pub, unsafe_code)]

pub mod conformance;
mod error;
mod file;
mod identity;
mod memory;
mod open;
mod options;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod reminder;
mod store;
mod store_url;
mod typed;
mod version;

pub use error::{StorageError, UrlPart};
pub use file::FileStore;
pub use identity::{Identity, IdentityParts};
pub use memory::MemoryStore;
pub use open::{open, open_with};
pub use options::StoreOptions;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use reminder::Reminder;
pub use store::StateStore;
pub use typed::{
    decode_state, decode_state_compat, encode_state, encode_state_compat, PersistentState,
    StateStoreExt,
};
pub use version::{Stored, Version};
