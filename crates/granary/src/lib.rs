//! granary: a distributed virtual actor framework for Rust.
//!
//! This is the facade crate users depend on. It re-exports the layers below it.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

pub use granary_core as core;
pub use granary_storage as storage;

/// The names most programs need, in one import.
pub mod prelude {}
