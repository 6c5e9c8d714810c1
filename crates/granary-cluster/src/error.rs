//! Typed errors of the cluster crate.

use std::net::SocketAddr;

use thiserror::Error;

/// Errors a transport reports when sending.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No endpoint is reachable at the address (or the link is known dead).
    #[error("no endpoint reachable at {0}")]
    Unreachable(SocketAddr),
    /// The address is already bound by another endpoint.
    #[error("address {0} is already bound")]
    AddrInUse(SocketAddr),
    /// The message could not be encoded.
    #[error("failed to encode a cluster message: {0}")]
    Encode(String),
    /// The transport is closed.
    #[error("transport closed")]
    Closed,
    /// The granary-remote node refused to serve the cluster (its inbox name is taken,
    /// or the message registry has conflicts).
    #[error("remote node: {0}")]
    Remote(String),
    /// The transport could not listen on its address.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Errors of membership providers.
#[derive(Debug, Error)]
pub enum ProviderError {
    /// DNS lookup failed.
    #[error("dns lookup of {name} failed: {source}")]
    Dns {
        /// The name looked up.
        name: String,
        /// The resolver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A PostgreSQL operation failed.
    #[cfg(feature = "postgres")]
    #[error("postgres membership table: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A message broker's provider (`granary-amqp`'s `AmqpProvider`) could not reach
    /// its broker or publish on it.
    #[error("membership broker: {0}")]
    Broker(String),
    /// A stored or configured value could not be parsed.
    #[error("invalid value {value:?}: {reason}")]
    Invalid {
        /// The offending value.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// Errors of the cluster handle.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// No seed answered within the join timeout and the policy is to fail.
    #[error("no seed node answered within {0:?}")]
    NoSeedAnswered(std::time::Duration),
    /// `join(addr)` got no answer from `addr` within the join timeout.
    #[error("node {0} did not accept the join within the timeout")]
    JoinTimeout(SocketAddr),
    /// The local cluster node has stopped (left, was downed without rejoin, or was stopped).
    #[error("the cluster node has stopped")]
    Stopped,
    /// The membership provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// `set_metadata` was given a key the cluster itself writes
    /// ([`crate::SEEN_METADATA_KEY`], [`crate::ADMITTED_BY_METADATA_KEY`]).
    #[error("metadata key {0:?} is reserved for the cluster")]
    ReservedMetadataKey(String),
}
