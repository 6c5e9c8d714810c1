//! granary-storage: the `StateStore` trait and its providers.
//!
//! This crate knows nothing about actors; virtual actors use it to load and save
//! their state.
#![deny(missing_docs, unreachable_pub, unsafe_code)]
