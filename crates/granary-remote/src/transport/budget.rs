//! The node-wide budget for bytes held in partly received and chunked frames.
//!
//! Every connection may hold one partial frame (up to `max_frame`, reserved as soon as its
//! length prefix is read) and one chunked frame being rebuilt. Without a bound across
//! connections an authenticated peer could open many connections and park a largest
//! frame in each. Each connection's reader keeps a [`Held`] up to date before it lets the
//! decoder reserve room; the first [`FREE_PER_CONNECTION`] bytes of a connection are not
//! counted (every connection holds a read buffer about that size anyway, and this keeps
//! the shared counter out of the path of small frames).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::FrameError;

/// Bytes of a connection's partial frames that do not count against the budget.
pub(crate) const FREE_PER_CONNECTION: usize = 128 * 1024;

/// Bytes held across all connections, against `TransportConfig::max_reassembly_bytes`.
#[derive(Debug)]
pub(crate) struct ReassemblyBudget {
    limit: usize,
    held: AtomicUsize,
}

impl ReassemblyBudget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: AtomicUsize::new(0),
        })
    }

    /// Bytes counted right now, across all connections.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// One connection's share of the budget; given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<ReassemblyBudget>,
    bytes: usize,
}

impl Held {
    pub(crate) fn new(budget: Arc<ReassemblyBudget>) -> Self {
        Self { budget, bytes: 0 }
    }

    /// The connection now holds `bytes` in partial frames: count the change, or refuse
    /// with [`FrameError::ReassemblyBudget`] (the count stays as it was) when the node's
    /// total would go over the limit.
    pub(crate) fn set(&mut self, bytes: usize) -> Result<(), FrameError> {
        let bytes = bytes.saturating_sub(FREE_PER_CONNECTION);
        if bytes <= self.bytes {
            if bytes < self.bytes {
                self.budget
                    .held
                    .fetch_sub(self.bytes - bytes, Ordering::Relaxed);
                self.bytes = bytes;
            }
            return Ok(());
        }
        let more = bytes - self.bytes;
        let limit = self.budget.limit;
        self.budget
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(more).filter(|&total| total <= limit)
            })
            .map_err(|_| FrameError::ReassemblyBudget {
                wanted: (bytes + FREE_PER_CONNECTION) as u64,
                budget: limit as u64,
            })?;
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use bytes::{Bytes, BytesMut};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::mpsc;

    use super::*;
    use crate::handshake::{self, Lane, Params};
    use crate::transport::{PeerEvent, SendOptions, Transport, TransportConfig};
    use crate::wire::{encode_chunk_header, Frame, FrameHeader};
    use crate::NodeId;

    const WAIT: Duration = Duration::from_secs(10);
    const BUDGET: usize = 1024 * 1024;

    fn config() -> TransportConfig {
        TransportConfig::new("budget", "secret").with_max_reassembly_bytes(BUDGET)
    }

    /// A raw data connection that passed the handshake, as a peer's would.
    async fn authenticated(to: SocketAddr, port: u16) -> TcpStream {
        let mut tcp = TcpStream::connect(to).await.unwrap();
        let params = Params {
            cluster: "budget",
            secret: b"secret",
            local: NodeId::new(([127, 0, 0, 1], port).into()),
            timeout: WAIT,
            max_protocol: crate::wire::PROTOCOL_VERSION,
        };
        let lane = Lane {
            channel: "data".into(),
            index: 0,
            reply_here: false,
        };
        handshake::dial(&mut tcp, &params, lane).await.unwrap();
        tcp
    }

    fn tell(recipient: &str) -> FrameHeader<'_> {
        FrameHeader::tell(1, recipient)
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the node closes `tcp` (reads end or fail).
    async fn closed(tcp: &mut TcpStream) {
        let mut scratch = [0u8; 64];
        let read = tokio::time::timeout(WAIT, tcp.read(&mut scratch))
            .await
            .expect("the node closes the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }

    async fn violation(events: &mut tokio::sync::broadcast::Receiver<PeerEvent>) -> FrameError {
        loop {
            match tokio::time::timeout(WAIT, events.recv()).await {
                Ok(Ok(PeerEvent::ProtocolViolation { error, .. })) => return error,
                Ok(Ok(_)) => {}
                other => panic!("no protocol violation reported: {other:?}"),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_over_the_node_budget_is_closed_and_the_others_are_served() {
        let (tx, mut got) = mpsc::unbounded_channel();
        let node = Transport::bind(config(), move |_: NodeId, f: Frame| {
            let _ = tx.send((f.recipient().to_owned(), f.body.len()));
        })
        .await
        .unwrap();
        let mut events = node.subscribe();
        let budget = node.inner.reassembly.clone();

        // One peer parks most of the budget in a partial frame.
        let big = 700 * 1024;
        let frame = tell("big")
            .encode_with_body(&vec![1u8; FREE_PER_CONNECTION + big], 16 << 20)
            .unwrap();
        let mut first = authenticated(node.local_addr(), 1).await;
        first.write_all(&frame[..100]).await.unwrap();
        wait_for("the partial frame to be counted", || budget.held() > big).await;

        // A second one that would go over it is refused and closed.
        let mut second = authenticated(node.local_addr(), 2).await;
        second.write_all(&frame[..100]).await.unwrap();
        let error = violation(&mut events).await;
        assert!(
            matches!(error, FrameError::ReassemblyBudget { budget: b, .. } if b == BUDGET as u64),
            "{error:?}"
        );
        closed(&mut second).await;

        // The first is still served: its frame completes and is delivered.
        first.write_all(&frame[100..]).await.unwrap();
        let (to, len) = tokio::time::timeout(WAIT, got.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((to.as_str(), len), ("big", FREE_PER_CONNECTION + big));
        wait_for("the budget to be given back", || budget.held() == 0).await;

        // Chunks that never end are counted as they are rebuilt, and stopped too.
        let mut chunks = authenticated(node.local_addr(), 3).await;
        let piece = vec![0u8; 64 * 1024];
        let mut refused = false;
        for _ in 0..(BUDGET + FREE_PER_CONNECTION) / piece.len() + 2 {
            let mut out = BytesMut::new();
            encode_chunk_header(piece.len(), false, &mut out);
            out.extend_from_slice(&piece);
            if chunks.write_all(&out).await.is_err() {
                refused = true;
                break;
            }
        }
        let error = violation(&mut events).await;
        assert!(
            matches!(error, FrameError::ReassemblyBudget { .. }),
            "{error:?}"
        );
        if !refused {
            closed(&mut chunks).await;
        }
        wait_for("the budget to be given back", || budget.held() == 0).await;

        // A real peer is served throughout.
        let peer = Transport::bind(config(), |_: NodeId, _: Frame| {})
            .await
            .unwrap();
        peer.send(
            node.local_addr(),
            tell("real"),
            Bytes::from_static(b"hi"),
            SendOptions::data(),
        )
        .unwrap();
        let (to, _) = tokio::time::timeout(WAIT, got.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(to, "real");
        drop(first);
        peer.shutdown();
        node.shutdown();
    }

    #[test]
    fn connections_share_the_budget_and_give_it_back() {
        let budget = ReassemblyBudget::new(1000);
        let mut a = Held::new(budget.clone());
        let mut b = Held::new(budget.clone());
        // The free allowance is not counted.
        a.set(FREE_PER_CONNECTION).unwrap();
        assert_eq!(budget.held(), 0);
        a.set(FREE_PER_CONNECTION + 600).unwrap();
        assert_eq!(budget.held(), 600);
        assert!(matches!(
            b.set(FREE_PER_CONNECTION + 600),
            Err(FrameError::ReassemblyBudget { budget: 1000, .. })
        ));
        assert_eq!(budget.held(), 600);
        b.set(FREE_PER_CONNECTION + 400).unwrap();
        assert_eq!(budget.held(), 1000);
        a.set(0).unwrap();
        assert_eq!(budget.held(), 400);
        drop(b);
        assert_eq!(budget.held(), 0);
    }
}
