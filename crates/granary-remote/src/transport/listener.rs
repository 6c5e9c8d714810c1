//! Accepting connections: TLS, handshake, then a reader that hands frames to the handler.
//!
//! Until a connection is authenticated it holds one of `max_unauthenticated` permits and
//! at most a handshake frame (1 KiB) plus one read; TLS and the handshake share one
//! deadline. Refusals are logged at most 10 lines per 10 s (the rest are counted in the
//! next line's `held_back`), with reasons cut to 256 bytes.
//!
//! A connection whose handshake says `reply_here` (a dial-out peer, `docs/wire.md`,
//! "Dial-out peers") is also written on: it is attached to that peer's lane, and a writer
//! takes the lane's frames while the reader goes on reading.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};

use super::stream::Stream;
use super::{Inner, PeerEvent};
use crate::error::HandshakeError;
use crate::handshake::{self, Params};
use crate::node_id::NodeId;
use crate::wire::{FrameDecoder, Reassembler};

/// Read buffer growth step: large enough for many small frames per read.
const READ_CHUNK: usize = 64 * 1024;

pub(crate) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((tcp, remote)) => {
                // Over the limit of connections still authenticating: close it at once,
                // holding nothing for it.
                let Ok(permit) = inner.unauthenticated.clone().try_acquire_owned() else {
                    drop(tcp);
                    if let Some(held_back) = inner.refusal_log.admit() {
                        tracing::warn!(
                            %remote,
                            held_back,
                            limit = inner.config.max_unauthenticated,
                            "too many unauthenticated connections; closed a new one"
                        );
                    }
                    continue;
                };
                inner.spawn(serve(inner.clone(), Incoming::Tcp(tcp), remote, permit));
            }
            Err(e) => {
                // Out of file descriptors and similar: pause instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The accept side of a [`Link::Broker`](super::Link::Broker): every connection another
/// node opens through the broker goes through the same permit, TLS-less handshake and
/// reader as an accepted socket.
pub(crate) async fn broker_accept_loop(inner: Arc<Inner>, link: Arc<dyn super::BrokerLink>) {
    while let Some((stream, remote)) = link.accept().await {
        let Ok(permit) = inner.unauthenticated.clone().try_acquire_owned() else {
            drop(stream);
            if let Some(held_back) = inner.refusal_log.admit() {
                tracing::warn!(
                    %remote,
                    held_back,
                    limit = inner.config.max_unauthenticated,
                    "too many unauthenticated broker connections; closed a new one"
                );
            }
            continue;
        };
        inner.spawn(serve(
            inner.clone(),
            Incoming::Broker(stream),
            remote,
            permit,
        ));
    }
    tracing::debug!(node = %inner.node, "broker link accepts no more connections");
}

/// A connection accepted and not yet authenticated.
enum Incoming {
    Tcp(TcpStream),
    Broker(tokio::io::DuplexStream),
}

async fn serve(
    inner: Arc<Inner>,
    incoming: Incoming,
    remote: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    if let Incoming::Tcp(tcp) = &incoming {
        let end = super::stream::End::Accepted;
        if let Err(e) = super::stream::tune(
            tcp,
            inner.config.keepalive,
            inner.config.kernel_backlog,
            end,
        ) {
            tracing::debug!(%remote, error = %e, "could not tune socket");
        }
    }
    let params = Params {
        cluster: &inner.config.cluster,
        secret: &inner.config.secret,
        local: inner.node,
        timeout: inner.config.handshake_timeout,
        max_protocol: inner.config.max_protocol,
    };
    // One deadline for TLS and the handshake together.
    let accepted = async {
        let mut stream = match (incoming, &inner.tls) {
            (Incoming::Tcp(tcp), Some(tls)) => Stream::TlsServer(Box::new(
                tls.acceptor
                    .accept(tcp)
                    .await
                    .map_err(HandshakeError::from_tls)?,
            )),
            (Incoming::Tcp(tcp), None) => Stream::Plain(tcp),
            // TLS is refused with a broker link (`TransportConfig::validate`).
            (Incoming::Broker(duplex), _) => Stream::Broker(duplex),
        };
        let (agreed, lane, leftover) = handshake::accept(&mut stream, &params).await?;
        // Frames to the dialer (replies included) are encoded for the version agreed.
        inner.set_protocol(agreed.node.addr(), agreed.version);
        Ok::<_, HandshakeError>((stream, agreed.node, lane, leftover))
    };
    let accepted = tokio::time::timeout(inner.config.handshake_timeout, accepted)
        .await
        .unwrap_or(Err(HandshakeError::Timeout));
    // Authenticated (or gone): the connection no longer counts against the limit.
    drop(permit);
    let (stream, node, lane, buf) = match accepted {
        Ok(ok) => ok,
        Err(e) => {
            return refuse(&inner, remote, crate::error::bounded_reason(&e.to_string()));
        }
    };
    tracing::debug!(%node, channel = %lane.channel, index = lane.index, "accepted");
    if lane.reply_here {
        return serve_dial_out(&inner, stream, remote, node, lane, buf).await;
    }
    // Any authenticated connection shows the peer is up and listening: frames to it,
    // replies to what it sends on this connection included, must not fail as to an
    // unreachable peer, and lanes backing off from it dial now. Its lanes handshake
    // independently, so a data connection can carry an ask before its control
    // connection is accepted here. (On the control connection this also dials the peer
    // back, so it hears our heartbeats.)
    match inner.peer(node.addr()) {
        Ok(peer) => peer.redial_now(),
        Err(e) => tracing::debug!(%node, error = %e, "cannot dial the peer back"),
    }
    let mut stream = stream;
    read_frames(&inner, &mut stream, node, &lane, buf).await;
}

/// Log a refused inbound connection (rate-limited) and tell subscribers.
fn refuse(inner: &Inner, remote: SocketAddr, reason: String) {
    if let Some(held_back) = inner.refusal_log.admit() {
        tracing::warn!(%remote, error = %reason, held_back, "refused inbound connection");
    }
    inner.emit(PeerEvent::Refused {
        addr: remote,
        reason,
        inbound: true,
    });
}

/// A connection of a dial-out peer: read its frames and write ours on it, until either
/// side fails or the peer is forgotten (its control connection ended).
async fn serve_dial_out(
    inner: &Arc<Inner>,
    stream: Stream,
    remote: SocketAddr,
    node: NodeId,
    lane: handshake::Lane,
    buf: BytesMut,
) {
    // Only a made-up address can be a dial-out peer's: one that a real node listens at
    // would let this connection stand in for that node.
    if !super::is_dial_out_addr(node.addr()) {
        let reason = format!("{node} asked for replies on its connection from a dialable address");
        return refuse(inner, remote, reason);
    }
    let Some(peer) = inner.reverse_peer(node) else {
        return; // Shut down, or the address is taken by a dialled peer.
    };
    let is_control = lane.channel == "control";
    let control = is_control.then(|| peer.next_control());
    let attached = peer.attach(inner, &lane.channel, lane.index);
    if is_control {
        peer.on_connected(inner, node);
    }
    let queue = (inner.channels.iter())
        .position(|c| *c.name == *lane.channel)
        .filter(|&g| usize::from(lane.index) < inner.channels[g].lanes)
        .map(|g| peer.lane(g, usize::from(lane.index)).queue.clone());
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writing = async {
        match &queue {
            Some(queue) => super::lane::write_loop(inner, &mut wr, queue).await,
            // A lane this node does not have: frames only come in on it.
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = read_frames(inner, &mut rd, node, &lane, buf) => {}
        e = writing => tracing::debug!(%node, error = %e, "dial-out connection failed"),
        () = peer.closed() => {}
    }
    drop(attached);
    if let Some(n) = control {
        if peer.is_current_control(n) {
            // Its replies have no way back any more: fail them fast, never dial.
            peer.on_disconnected(inner, node, "dial-out control connection closed".into());
            peer.on_unreachable(inner);
            inner.remove_reverse_peer(&peer);
        }
    } else if peer.is_abandoned() {
        // A peer that opened only data connections, all closed now: nothing would
        // ever forget it, and every such peer would stay in the table.
        inner.remove_reverse_peer(&peer);
    }
}

/// Read frames from one authenticated connection of `node` and hand them on until it
/// closes, fails or breaks the protocol. `buf` holds bytes read past the handshake.
pub(crate) async fn read_frames<R: AsyncRead + Unpin>(
    inner: &Arc<Inner>,
    stream: &mut R,
    node: NodeId,
    lane: &handshake::Lane,
    mut buf: BytesMut,
) {
    // The peer's control connection carries its heartbeats: silence on it means the
    // peer is lost.
    let heartbeats = lane.channel == "control";
    // A bulk lane's socket is almost always readable, so its reads would never wait
    // and the task would keep a worker thread for its whole coop budget (128 reads of
    // 64 KiB, copied twice: milliseconds) while small frames of other connections
    // wait for that worker. It yields after every read instead.
    let bulk = lane.channel == super::bulk::LANE_NAME;
    let mut lost = false;
    // The peer this connection reads from, once a request looked it up.
    let mut asker = None;
    let meter = super::meter::InboundMeter::new(inner.node.addr(), node.addr(), &lane.channel);
    let decoder = FrameDecoder::new(inner.config.max_frame);
    let mut reassembler = Reassembler::new(inner.config.max_frame);
    // This connection's share of the node's budget for partial frames; counted before
    // the decoder reserves room for a frame, given back when the connection ends.
    let mut held = super::budget::Held::new(inner.reassembly.clone());
    loop {
        loop {
            // A chunk is buffered by the reassembler until its frame is whole.
            let decoded = held
                .set(decoder.pending(&buf) + reassembler.buffered())
                .and_then(|()| decoder.decode(&mut buf))
                .and_then(|f| f.map(|f| reassembler.push(f)).transpose());
            match decoded {
                // Fault injection (faults.rs): a partition drops what arrives too.
                Ok(Some(Some(_))) if inbound_blocked(inner, node) => {}
                Ok(Some(Some(frame))) if super::heartbeat::is_heartbeat(&frame) => {}
                Ok(Some(Some(frame))) if super::bulk::is_barrier(&frame) => {
                    // Every earlier frame of this connection was handed on above.
                    super::bulk::acknowledge(inner, node, &frame);
                }
                Ok(Some(Some(frame))) if super::bulk::is_barrier_ack(&frame) => {
                    super::bulk::acknowledged(inner, node, &frame);
                }
                Ok(Some(Some(frame))) => {
                    inner.count_received();
                    meter.received(frame.header().frame_len(frame.body.len()));
                    if frame.kind == crate::wire::FrameKind::Ask {
                        super::heartbeat::heard_asking(inner, node, &mut asker);
                    }
                    // Flow control: the handler may hold this connection back until
                    // the recipient has room; TCP then pushes back on the sender.
                    if let Some(stall) = inner.handler.on_frame_paced(node, frame) {
                        stall.await;
                    }
                }
                Ok(Some(None)) => {}
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%node, %error, "peer broke the wire protocol; disconnecting");
                    inner.emit(PeerEvent::ProtocolViolation { node, error });
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read = if heartbeats {
            match tokio::time::timeout(inner.config.heartbeat_timeout, stream.read_buf(&mut buf))
                .await
            {
                Ok(read) => read,
                Err(_silent) => {
                    if !lost {
                        lost = true;
                        super::heartbeat::lost(inner, node);
                    }
                    continue;
                }
            }
        } else {
            stream.read_buf(&mut buf).await
        };
        if lost && matches!(read, Ok(n) if n > 0) {
            lost = false;
            super::heartbeat::back(inner, node);
        }
        match read {
            Ok(0) => {
                tracing::debug!(%node, "inbound connection closed");
                return;
            }
            Ok(_) if bulk => tokio::task::yield_now().await,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(%node, error = %e, "inbound connection failed");
                return;
            }
        }
    }
}

/// Whether the fault injector's partitions drop frames from `from` arriving here.
fn inbound_blocked(inner: &Inner, from: NodeId) -> bool {
    inner
        .config
        .faults
        .as_ref()
        .is_some_and(|f| f.blocks_arrival(from.addr(), inner.node.addr()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::net::TcpStream;

    use crate::handshake::{self, Params};
    use crate::node_id::NodeId;
    use crate::transport::{dial_out_addr, InboundHandler, Transport, TransportConfig};
    use crate::wire::Frame;

    struct Ignore;
    impl InboundHandler for Ignore {
        fn on_frame(&self, _: NodeId, _: Frame) {}
    }

    /// Waits until `done` holds; `false` if it did not within five seconds.
    async fn eventually(mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// An authenticated dial-out peer that opens a data connection and never a
    /// control one is forgotten once that connection closes: otherwise every such
    /// peer (a new made-up address each time) stays in the table for good.
    #[tokio::test]
    async fn a_dial_out_peer_with_only_data_connections_is_forgotten_when_they_close() {
        let config = TransportConfig::new("reverse-test", b"secret".to_vec());
        let transport = Transport::bind(config.clone(), Ignore).await.unwrap();
        let me = NodeId::new(dial_out_addr());
        let params = Params {
            cluster: &config.cluster,
            secret: &config.secret,
            local: me,
            timeout: Duration::from_secs(5),
            max_protocol: crate::wire::PROTOCOL_VERSION,
        };
        let lane = handshake::Lane {
            channel: "data".to_owned(),
            index: 0,
            reply_here: true,
        };
        let mut tcp = TcpStream::connect(transport.local_addr()).await.unwrap();
        handshake::dial(&mut tcp, &params, lane).await.unwrap();
        let inner = transport.inner.clone();
        assert!(
            eventually(|| inner.existing_peer(me.addr()).is_some()).await,
            "the data connection made a peer"
        );
        drop(tcp);
        assert!(
            eventually(|| inner.existing_peer(me.addr()).is_none()).await,
            "the peer is forgotten once its only connection closed"
        );
        transport.shutdown();
    }
}
