use std::sync::Mutex;

use bytes::Bytes;
use granary_remote::wire::{channel_id, CONTROL_CHANNEL, DATA_CHANNEL};
use granary_remote::{SendError, SendOptions, Transport};
use tokio::sync::mpsc;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_peer_gives_backpressure_while_control_traffic_still_flows() {
    // B's handler stalls on the first data frame until the test opens the gate, so B's
    // data connection stops reading and A's bounded data queue fills up.
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(Some(gate_rx));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let b = Transport::bind(
        config(),
        move |_from, frame: granary_remote::wire::Frame| {
            if frame.channel == DATA_CHANNEL {
                if let Some(gate) = gate.lock().unwrap().take() {
                    tokio::task::block_in_place(|| gate.recv().ok());
                }
            }
            let _ = tx.send(frame);
        },
    )
    .await
    .unwrap();
    let a = discard(config().with_parallelism(1).with_queue_capacity(256 * 1024)).await;
    let body = Bytes::from(vec![0u8; 16 * 1024]);
    let mut refused = None;
    for i in 0..200_000 {
        match a.send(
            b.local_addr(),
            tell("s", "r"),
            body.clone(),
            SendOptions::data(),
        ) {
            Ok(()) => {}
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
        if i % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let (sent, err) = refused.expect("a stalled peer must eventually refuse with backpressure");
    assert!(matches!(err, SendError::Backpressure { .. }), "{err:?}");
    assert!(sent > 0);
    assert!(a.stats().backpressure >= 1);

    // The control channel has its own connection: it is not stuck behind the data.
    a.send(
        b.local_addr(),
        tell("sys", "node"),
        Bytes::from_static(b"ctl"),
        SendOptions::control(),
    )
    .unwrap();
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.channel, CONTROL_CHANNEL);
    assert_eq!(&first.body[..], b"ctl");

    gate_tx.send(()).unwrap();
    let next = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.channel, DATA_CHANNEL);
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn named_channel_frames_carry_their_channel_id_and_unknown_channels_are_refused() {
    let (b, mut rx) = collecting(config()).await;
    let a = discard(config().with_channel("bulk", 2)).await;
    a.send(
        b.local_addr(),
        tell("s", "r"),
        Bytes::from_static(b"x"),
        SendOptions::channel("bulk"),
    )
    .unwrap();
    let (_, frame) = recv(&mut rx).await;
    assert_eq!(frame.channel, channel_id("bulk"));
    let err = a
        .send(
            b.local_addr(),
            tell("s", "r"),
            Bytes::new(),
            SendOptions::channel("nope"),
        )
        .unwrap_err();
    assert!(matches!(err, SendError::UnknownChannel(_)));
    a.shutdown();
    b.shutdown();
}
