//! The request/response layer the `echo` and `kvs` node processes share: raw frames
//! on granary-remote's [`Transport`], with Partisan's options chosen per send.
//!
//! Why raw frames and not remote actor refs: a remote `ActorRef` always travels on the
//! data channel, and seed 002's experiments are about choosing the *channel* and the
//! *connection* of each message (named channels, `partition_key`). The transport's
//! [`SendOptions`] expose exactly those, so requests, replies and the background
//! anti-entropy traffic are frames sent with the options of the run.
//!
//! Frames: an `Ask` to recipient [`ECHO`] is answered at once with its own body; an
//! `Ask` to [`KVS`] is a replica operation (see [`crate::kvs::replica`]) answered after
//! the simulated storage delay; a `Tell` to [`ANTI_ENTROPY`] is background traffic and
//! is dropped on arrival; a `Reply` completes the pending request with its correlation id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use granary_remote::wire::{Frame, FrameHeader, FrameKind};
use granary_remote::{InboundHandler, NodeId, SendError, SendOptions, Transport};
use tokio::sync::oneshot;

use crate::kvs::replica::Replica;

/// Recipient of echo requests.
pub(crate) const ECHO: &str = "echo";
/// Recipient of key-value replica operations.
pub(crate) const KVS: &str = "kvs";
/// Recipient of the background anti-entropy traffic.
pub(crate) const ANTI_ENTROPY: &str = "anti-entropy";
/// The named channel of request traffic when channels are on.
pub(crate) const REQUEST_CHANNEL: &str = "requests";
/// The named channel of background traffic when channels are on.
pub(crate) const GOSSIP_CHANNEL: &str = "gossip";

/// Partisan's options as one run uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    /// Parallel connections per peer for request traffic.
    pub(crate) parallelism: usize,
    /// Requests on their own named channel, background traffic on another.
    pub(crate) channels: bool,
    /// Requests carry their partition as `partition_key`, so one partition's
    /// traffic keeps one connection; off, connections are used round robin.
    pub(crate) affinity: bool,
}

impl Options {
    /// How a request (or its reply) for `partition` is sent.
    pub(crate) fn request(&self, partition: u64) -> SendOptions {
        let base = if self.channels {
            SendOptions::channel(REQUEST_CHANNEL)
        } else {
            SendOptions::data()
        };
        if self.affinity {
            base.partition_key(partition)
        } else {
            base
        }
    }

    /// How background traffic is sent.
    pub(crate) fn background(&self) -> SendOptions {
        if self.channels {
            SendOptions::channel(GOSSIP_CHANNEL)
        } else {
            SendOptions::data()
        }
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// The transport refused the frame.
    #[error("send to {to} failed: {source}")]
    Send {
        /// The peer.
        to: SocketAddr,
        /// Why.
        #[source]
        source: SendError,
    },
    /// No reply within the limit (lost frame or dead node).
    #[error("no reply from {to} within {after:?}")]
    Timeout {
        /// The peer.
        to: SocketAddr,
        /// The limit.
        after: Duration,
    },
    /// The node is shutting down.
    #[error("the node shut down")]
    Closed,
}

/// One node's sending side, pending requests and replica; also its inbound handler.
pub(crate) struct Wire {
    transport: OnceLock<Transport>,
    options: Options,
    pending: Mutex<HashMap<u64, oneshot::Sender<Bytes>>>,
    next_correlation: AtomicU64,
    replica: Arc<Replica>,
}

impl Wire {
    /// A wire with `options`; [`Wire::attach`] it to its transport once bound.
    pub(crate) fn new(options: Options, replica: Arc<Replica>) -> Arc<Self> {
        Arc::new(Self {
            transport: OnceLock::new(),
            options,
            pending: Mutex::new(HashMap::new()),
            next_correlation: AtomicU64::new(1),
            replica,
        })
    }

    /// Sets the transport replies and requests go out on.
    pub(crate) fn attach(&self, transport: Transport) {
        let _ = self.transport.set(transport);
    }

    /// This node's address (unspecified before [`Wire::attach`]).
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.transport.get().map(Transport::local_addr)
    }

    /// The replica this node hosts.
    pub(crate) fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Sends `body` as an `Ask` to `recipient` on `to` and waits for the reply.
    /// A full queue is retried until `timeout` (the transport never blocks).
    pub(crate) async fn request(
        &self,
        to: SocketAddr,
        recipient: &str,
        partition: u64,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, RequestError> {
        let transport = self.transport.get().ok_or(RequestError::Closed)?;
        let correlation = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(correlation, tx);
        let deadline = tokio::time::Instant::now() + timeout;
        let sender = format!("p{partition}");
        let header = FrameHeader {
            kind: FrameKind::Ask,
            channel: 0,
            type_tag: 0,
            correlation,
            sender: &sender,
            recipient,
            trace: None,
        };
        let result = async {
            loop {
                match transport.send(to, header, body.clone(), self.options.request(partition)) {
                    Ok(()) => break,
                    Err(SendError::Backpressure { .. })
                        if tokio::time::Instant::now() < deadline =>
                    {
                        // Pacing a retry of a full queue, not waiting for an event.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(source) => return Err(RequestError::Send { to, source }),
                }
            }
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(_)) => Err(RequestError::Closed),
                Err(_) => Err(RequestError::Timeout { to, after: timeout }),
            }
        }
        .await;
        lock(&self.pending).remove(&correlation);
        result
    }

    /// Sends one background frame to `to` (dropped on arrival); a full queue skips it.
    pub(crate) fn background(&self, to: SocketAddr, body: Bytes) {
        if let Some(transport) = self.transport.get() {
            let header = FrameHeader {
                kind: FrameKind::Tell,
                channel: 0,
                type_tag: 0,
                correlation: 0,
                sender: ANTI_ENTROPY,
                recipient: ANTI_ENTROPY,
                trace: None,
            };
            let _ = transport.send(to, header, body, self.options.background());
        }
    }

    /// Answers the `Ask` `frame` from `to` with `body`, on the request's options.
    pub(crate) fn reply(&self, to: SocketAddr, frame: &Frame, body: Bytes) {
        let Some(transport) = self.transport.get() else {
            return;
        };
        let partition = partition_of(frame.sender());
        let header = FrameHeader {
            kind: FrameKind::Reply,
            channel: 0,
            type_tag: 0,
            correlation: frame.correlation,
            sender: frame.recipient(),
            recipient: frame.sender(),
            trace: None,
        };
        // A lost reply shows as the requester's timeout, which fails the run.
        let _ = transport.send(to, header, body, self.options.request(partition));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The partition a requester named itself after (`p17` → 17).
fn partition_of(sender: &str) -> u64 {
    sender
        .strip_prefix('p')
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The handler given to the transport: it runs on reader tasks, so it never blocks.
pub(crate) struct Inbound(pub(crate) Arc<Wire>);

impl InboundHandler for Inbound {
    fn on_frame(&self, from: NodeId, frame: Frame) {
        let wire = &self.0;
        let to_echo = frame.recipient() == ECHO;
        let to_kvs = frame.recipient() == KVS;
        match frame.kind {
            FrameKind::Ask if to_echo => wire.reply(from.addr(), &frame, frame.body.clone()),
            FrameKind::Ask if to_kvs => {
                let wire = wire.clone();
                tokio::spawn(async move {
                    let answer = wire.replica.serve(&frame.body).await;
                    wire.reply(from.addr(), &frame, answer);
                });
            }
            FrameKind::Reply => {
                if let Some(tx) = lock(&wire.pending).remove(&frame.correlation) {
                    let _ = tx.send(frame.body);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_pick_channel_and_connection_per_paper() {
        let on = Options {
            parallelism: 4,
            channels: true,
            affinity: true,
        };
        let off = Options {
            parallelism: 1,
            channels: false,
            affinity: false,
        };
        // SendOptions has no accessors; its Debug output names channel and key.
        let text = |o: SendOptions| format!("{o:?}");
        assert!(text(on.request(7)).contains("Some(7)"));
        assert!(text(off.request(7)).contains("None"));
        assert_ne!(text(on.request(1)), text(off.request(1)));
        assert_ne!(text(on.background()), text(on.request(1)));
        assert_eq!(text(off.background()), text(SendOptions::data()));
        assert_eq!(partition_of("p17"), 17);
        assert_eq!(partition_of("client"), 0);
    }
}
