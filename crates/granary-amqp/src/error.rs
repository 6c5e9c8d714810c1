//! The link's errors.

use std::net::SocketAddr;

/// Why an [`AmqpLink`](crate::AmqpLink) could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// A setting is out of range.
    #[error("invalid amqp link configuration: {0}")]
    Config(String),
    /// The broker refused or failed an operation, or the connection to it broke.
    #[error("amqp broker: {0}")]
    Broker(#[from] lapin::Error),
    /// Connecting and declaring the node's queue took longer than `connect_timeout`.
    #[error("connecting to the amqp broker timed out")]
    Timeout,
    /// Another node holds the queue of this node name (the same `node_addr` twice).
    #[error("node name {addr} is held by another node on the broker")]
    NameTaken {
        /// The name asked for.
        addr: SocketAddr,
    },
    /// The link was closed or lost its broker.
    #[error("the amqp link is closed")]
    Closed,
}
