//! granary-remote: wire format, transport and remote actor refs.
#![deny(missing_docs, unreachable_pub, unsafe_code)]
