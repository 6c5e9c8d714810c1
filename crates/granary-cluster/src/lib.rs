//! granary-cluster: membership, failure detection and the hash ring.
#![deny(missing_docs, unreachable_pub, unsafe_code)]
