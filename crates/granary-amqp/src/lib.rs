//! granary-amqp: the publish-subscribe overlay of seed 002 §3.6 — a node's transport
//! connections and its membership carried by an AMQP 0-9-1 broker (RabbitMQ), so the
//! node opens only outbound connections (to the broker) and listens nowhere.
//!
//! - [`AmqpLink`]: one broker connection and one queue per node
//!   (`granary.<cluster>.node.<addr>`, exclusive, so the broker deletes it when the
//!   node's connection ends). It implements granary-remote's [`BrokerLink`]: a
//!   transport connection dialled to a peer is an in-process byte pipe whose writes
//!   are published, in order, to the peer's queue, tagged with the sender's queue and
//!   a connection id; the peer's router hands them to the matching accepted
//!   connection, which the transport serves exactly as an accepted socket (same
//!   handshake, channels, lanes, heartbeats, framing). Put it in
//!   `TransportConfig::link` with [`AmqpLink::link`].
//! - [`AmqpProvider`]: granary-cluster's `MembershipProvider` over the cluster's
//!   fanout exchange, to which every node queue is bound.
//!
//! Bounded memory: the broker sends at most `prefetch` unacknowledged messages (the
//! rest wait in the node's queue on the broker); a connection's unread bytes are capped (`max_unconsumed`, and
//! `max_buffered` for all together); a sender that gets further ahead has its
//! connection closed rather than the node's queue held up. Connections opened and
//! not yet taken by the transport are capped (`max_pending_accepts`), as are open
//! connections (`max_connections`) and remembered members (`max_members`); the
//! transport's handshake refuses connections that do not know the cluster secret.
//! A close marker ends a connection at the other end; the broker connection's loss
//! ends every connection (the transport sees connection loss, and its heartbeats and
//! the cluster's failure detector take it from there); a dial to a node whose queue is
//! gone is refused, as a TCP dial to a closed port is.
//!
//! # Why lapin
//!
//! lapin is the maintained, widely used AMQP 0-9-1 client for Rust (the amqp-rs
//! project; RabbitMQ's own documentation lists it), with a tokio runtime, publisher
//! flow control (a publish resolves once its frames are handed to the connection) and
//! consumers as streams. It is used without its default TLS backend.
//!
//! This crate sits on granary-remote (the [`BrokerLink`] seam) and granary-cluster
//! (the provider trait); nothing below it knows about AMQP.
//!
//! [`BrokerLink`]: granary_remote::BrokerLink
#![deny(missing_docs, unreachable_pub, unsafe_code)]

mod config;
mod connection;
mod error;
mod link;
mod members;
mod message;
mod names;
mod provider;

pub use config::AmqpConfig;
pub use error::AmqpError;
pub use link::{AmqpLink, AmqpLinkStats};
pub use provider::AmqpProvider;
