//! granary-core: the local actor runtime of granary.
//!
//! Everything else in granary (remote actors, the cluster, virtual actors) sits on
//! this crate. It knows nothing about the network, the cluster or storage.
#![deny(missing_docs, unreachable_pub, unsafe_code)]
