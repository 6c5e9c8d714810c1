//! Helpers: a collecting handler, event waits with timeouts, frame builders.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use granary_remote::wire::{Frame, FrameHeader, FrameKind};
use granary_remote::{NodeId, PeerEvent, SendOptions, Transport, TransportConfig};
use tokio::sync::{broadcast, mpsc};

pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn config() -> TransportConfig {
    TransportConfig::new("test-cluster", b"cookie".to_vec())
}

/// A transport whose inbound frames go to the returned receiver.
pub(crate) async fn collecting(
    config: TransportConfig,
) -> (Transport, mpsc::UnboundedReceiver<(NodeId, Frame)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let t = Transport::bind(config, move |from, frame| {
        let _ = tx.send((from, frame));
    })
    .await
    .expect("bind");
    (t, rx)
}

pub(crate) async fn discard(config: TransportConfig) -> Transport {
    Transport::bind(config, |_, _| {}).await.expect("bind")
}

pub(crate) fn tell<'a>(sender: &'a str, recipient: &'a str) -> FrameHeader<'a> {
    FrameHeader {
        kind: FrameKind::Tell,
        channel: 0,
        type_tag: 1,
        correlation: 0,
        sender,
        recipient,
        trace: None,
    }
}

pub(crate) fn send(from: &Transport, to: SocketAddr, recipient: &str, body: &[u8]) {
    from.send(
        to,
        tell("s", recipient),
        Bytes::copy_from_slice(body),
        SendOptions::data(),
    )
    .expect("send");
}

pub(crate) async fn recv(rx: &mut mpsc::UnboundedReceiver<(NodeId, Frame)>) -> (NodeId, Frame) {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("frame within timeout")
        .expect("handler alive")
}

/// Wait for the first event matching `pred`.
pub(crate) async fn event(
    events: &mut broadcast::Receiver<PeerEvent>,
    what: &str,
    pred: impl Fn(&PeerEvent) -> bool,
) -> PeerEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("events closed"),
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no {what} event within {WAIT:?}"))
}

/// Assert that nothing arrives within `within` (used after events prove the frame had its
/// chance: never as synchronisation).
pub(crate) async fn assert_silent(
    rx: &mut mpsc::UnboundedReceiver<(NodeId, Frame)>,
    within: Duration,
) {
    if let Ok(Some((from, frame))) = tokio::time::timeout(within, rx.recv()).await {
        panic!("unexpected frame from {from}: {frame:?}");
    }
}
