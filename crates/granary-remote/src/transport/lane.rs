//! One dialled connection: connect, handshake, write batches, redial with backoff.

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::peer::Peer;
use super::queue::OutboundQueue;
use super::room::Room;
use super::stream::Stream;
use super::Inner;
use crate::error::HandshakeError;
use crate::handshake::{self, Params};
use crate::node_id::NodeId;

/// Frames that may wait in one lane's fault-injection delay line.
const DELAY_LINE_CAPACITY: usize = 65_536;

/// Slices handed to one vectored write (the OS limit is at least 1024).
const MAX_IOVECS: usize = 64;

/// The sending side of one connection: its queue and, when faults delay frames, its delay
/// line.
pub(crate) struct Lane {
    pub(crate) queue: Arc<OutboundQueue>,
    delay: Mutex<Option<DelayLine>>,
}

/// A delayed frame: when to queue it, its pair and its bytes.
type Delayed = (Instant, u64, Bytes);

struct DelayLine {
    tx: mpsc::Sender<Delayed>,
    last: Instant,
}

impl Lane {
    /// A lane whose queue holds `capacity` bytes and tells `room` (its peer's) when
    /// its writer takes a batch.
    pub(crate) fn new(capacity: usize, max_frame: u32, chunk_size: usize, room: Arc<Room>) -> Self {
        Self {
            queue: Arc::new(OutboundQueue::new(capacity, max_frame, chunk_size, room)),
            delay: Mutex::new(None),
        }
    }

    /// Queue `frame` after `delay`, never before a frame delayed earlier on this lane
    /// (so delays keep per-connection FIFO order). `Err` when the delay line is full.
    pub(crate) fn delay(
        &self,
        inner: &Arc<Inner>,
        delay: Duration,
        pair: u64,
        frame: Bytes,
    ) -> Result<(), ()> {
        let mut guard = self.delay.lock();
        if guard.as_ref().is_none_or(|d| d.tx.is_closed()) {
            let (tx, rx) = mpsc::channel(DELAY_LINE_CAPACITY);
            inner.spawn(release(rx, self.queue.clone())).ok_or(())?;
            *guard = Some(DelayLine {
                tx,
                last: Instant::now(),
            });
        }
        let line = guard.as_mut().ok_or(())?;
        let at = (Instant::now() + delay).max(line.last);
        line.tx.try_send((at, pair, frame)).map_err(|_| ())?;
        line.last = at;
        Ok(())
    }
}

async fn release(mut rx: mpsc::Receiver<Delayed>, queue: Arc<OutboundQueue>) {
    while let Some((at, pair, frame)) = rx.recv().await {
        tokio::time::sleep_until(at).await;
        if queue.push_encoded(frame, pair).is_err() {
            tracing::debug!("delayed frame dropped: queue full");
        }
    }
}

/// The lane's task: forever connect, serve, and back off. `id` names the connection in
/// the handshake (channel and index, or the bulk lane).
pub(crate) async fn run(
    inner: Arc<Inner>,
    peer: Arc<Peer>,
    lane: Arc<Lane>,
    lane_id: handshake::Lane,
) {
    let is_control = lane_id.channel == "control";
    let name = lane_id.channel.clone();
    let index = lane_id.index;
    let queue = lane.queue.clone();
    let mut failures: u32 = 0;
    loop {
        if inner.dial_out && !is_control {
            // A client's other lanes wait for its control connection: a peer that
            // refuses it (wrong secret, another CA) is dialled, and refuses, once per
            // attempt instead of once per lane.
            peer.control_up().await;
        }
        let redials = peer.redials();
        match dial(&inner, &peer, lane_id.clone()).await {
            Ok((stream, node, leftover)) => {
                // Silences before this connection came up are not its own.
                let silences = peer.silences();
                failures = 0;
                tracing::debug!(%node, channel = %name, index, "connected");
                if is_control {
                    peer.on_connected(&inner, node);
                }
                let served = async {
                    if inner.dial_out {
                        serve_both_ways(&inner, stream, &queue, node, &lane_id, leftover).await
                    } else {
                        serve(&inner, stream, &queue).await
                    }
                };
                let reason = tokio::select! {
                    reason = served => reason,
                    () = peer.silenced(silences) => io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer's heartbeats stopped; dialling a new connection",
                    ),
                };
                tracing::debug!(%node, channel = %name, index, %reason, "connection lost");
                if is_control {
                    peer.on_disconnected(&inner, node, reason.to_string());
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                match &e {
                    HandshakeError::Io(_) | HandshakeError::Timeout => {
                        tracing::debug!(addr = %peer.addr, error = %e, "dial failed")
                    }
                    _ => {
                        let reason = crate::error::bounded_reason(&e.to_string());
                        // Once per streak of refusals, on the control lane: redials
                        // every backoff and the other lanes would repeat the line.
                        if failures == 1 && is_control {
                            tracing::warn!(addr = %peer.addr, error = %reason, "peer refused");
                        } else {
                            tracing::debug!(addr = %peer.addr, error = %reason, "peer refused");
                        }
                        if is_control {
                            inner.emit(super::PeerEvent::Refused {
                                addr: peer.addr,
                                reason,
                                inbound: false,
                            });
                        }
                    }
                }
                if is_control && failures >= inner.config.unreachable_after {
                    peer.on_unreachable(&inner);
                }
            }
        }
        peer.backoff(backoff(&inner, failures), redials).await;
    }
}

/// Exponential backoff with ±25 % jitter, so peers that lost each other do not redial in
/// lock step.
fn backoff(inner: &Inner, failures: u32) -> Duration {
    let min = inner.config.backoff_min;
    let base = min
        .saturating_mul(1u32 << failures.min(16))
        .min(inner.config.backoff_max);
    let jitter: f64 = crate::random::random_range(0.75..1.25);
    base.mul_f64(jitter)
}

async fn dial(
    inner: &Inner,
    peer: &Peer,
    lane: handshake::Lane,
) -> Result<(Stream, NodeId, bytes::BytesMut), HandshakeError> {
    inner.count_dial();
    let params = Params {
        cluster: &inner.config.cluster,
        secret: &inner.config.secret,
        local: inner.node,
        timeout: inner.config.handshake_timeout,
        max_protocol: inner.config.max_protocol,
    };
    let connect = async {
        if let super::Link::Broker(link) = &inner.config.link {
            // TLS is refused with a broker link (`TransportConfig::validate`).
            return Ok(Stream::Broker(link.dial(peer.addr).await?));
        }
        let tcp = TcpStream::connect(peer.addr).await?;
        let end = super::stream::End::Dialled;
        super::stream::tune(
            &tcp,
            inner.config.keepalive,
            inner.config.kernel_backlog,
            end,
        )?;
        Ok::<_, HandshakeError>(match &inner.tls {
            Some(tls) => Stream::TlsClient(Box::new(
                tls.connector
                    .connect(tls.server_name_for(peer.addr), tcp)
                    .await
                    .map_err(HandshakeError::from_tls)?,
            )),
            None => Stream::Plain(tcp),
        })
    };
    // One deadline for connecting, TLS and the handshake together.
    let tls = inner.tls.is_some();
    let dialled = async {
        let mut stream = connect.await?;
        // Between nodes the acceptor never writes after Welcome; to a dial-out peer it
        // may (a heartbeat, a reply), and those bytes are the start of its frames.
        let (agreed, leftover) = handshake::dial(&mut stream, &params, lane)
            .await
            .map_err(|e| tls_failure(tls, e))?;
        // Frames to this address are encoded for the version agreed from now on.
        inner.set_protocol(peer.addr, agreed.version);
        let node = agreed.node;
        Ok::<_, HandshakeError>((stream, node, leftover))
    };
    let (stream, node, leftover) = tokio::time::timeout(inner.config.handshake_timeout, dialled)
        .await
        .map_err(|_| HandshakeError::Timeout)??;
    if node.addr() != peer.addr {
        tracing::debug!(dialled = %peer.addr, node = %node, "peer advertises another address");
    }
    Ok((stream, node, leftover))
}

/// With TLS 1.3 the acceptor checks our certificate after our side of the TLS handshake
/// finished, so its rejection (a TLS alert) surfaces on the first read of our handshake:
/// that is a TLS failure, not a broken socket.
fn tls_failure(tls: bool, e: HandshakeError) -> HandshakeError {
    match e {
        HandshakeError::Io(io) if tls && io.kind() == io::ErrorKind::InvalidData => {
            HandshakeError::Tls(io)
        }
        other => other,
    }
}

/// Write batches until the connection fails; returns why it ended.
async fn serve(inner: &Inner, stream: Stream, queue: &OutboundQueue) -> io::Error {
    let (mut rd, mut wr) = tokio::io::split(stream);
    tokio::select! {
        e = write_loop(inner, &mut wr, queue) => e,
        e = watch_closed(&mut rd) => e,
    }
}

/// A dial-out transport's connection: write our frames and read the peer's (replies,
/// heartbeats, requests) on the same connection, until either side fails.
async fn serve_both_ways(
    inner: &Arc<Inner>,
    stream: Stream,
    queue: &OutboundQueue,
    node: NodeId,
    lane: &handshake::Lane,
    leftover: bytes::BytesMut,
) -> io::Error {
    let (mut rd, mut wr) = tokio::io::split(stream);
    tokio::select! {
        e = write_loop(inner, &mut wr, queue) => e,
        () = super::listener::read_frames(inner, &mut rd, node, lane, leftover) => {
            io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed or broke the protocol")
        }
    }
}

/// Take every queued frame, write it, flush once the queue is empty; repeat.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    inner: &Inner,
    wr: &mut W,
    queue: &OutboundQueue,
) -> io::Error {
    loop {
        let chunks = queue.take().await;
        if let Err(e) = write_chunks(wr, chunks).await {
            return e;
        }
        inner.count_write();
        if queue.is_empty() {
            if let Err(e) = wr.flush().await {
                return e;
            }
        }
    }
}

/// The acceptor never sends after the handshake: reading only notices that the peer closed
/// (or that TLS needs post-handshake records processed), so a dead peer is seen even when
/// there is nothing to write.
async fn watch_closed<R: AsyncRead + Unpin>(rd: &mut R) -> io::Error {
    let mut scratch = [0u8; 512];
    loop {
        match rd.read(&mut scratch).await {
            Ok(0) => return io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed"),
            Ok(_) => continue,
            Err(e) => return e,
        }
    }
}

/// Write every chunk with as few vectored writes as the OS allows.
async fn write_chunks<W: AsyncWrite + Unpin>(wr: &mut W, mut chunks: Vec<Bytes>) -> io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<IoSlice<'_>> = chunks[first..]
            .iter()
            .take(MAX_IOVECS)
            .map(|c| IoSlice::new(c))
            .collect();
        let mut written = wr.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let chunk = &mut chunks[first];
            if written >= chunk.len() {
                written -= chunk.len();
                first += 1;
            } else {
                chunk.advance(written);
                written = 0;
            }
        }
        while first < chunks.len() && chunks[first].is_empty() {
            first += 1;
        }
    }
    Ok(())
}
