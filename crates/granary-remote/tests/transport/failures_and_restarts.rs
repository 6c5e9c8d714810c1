use std::time::Duration;

use bytes::Bytes;
use granary_remote::{PeerEvent, SendError, SendOptions, Transport};
use tokio::io::AsyncWriteExt;

use super::support::*;

#[tokio::test]
async fn oversized_frame_is_refused_at_the_sender() {
    let (b, _rx) = collecting(config()).await;
    let a = discard(config().with_max_frame(1024)).await;
    let err = a
        .send(
            b.local_addr(),
            tell("s", "r"),
            Bytes::from(vec![0; 2048]),
            SendOptions::data(),
        )
        .unwrap_err();
    assert!(
        matches!(err, SendError::FrameTooLarge { max: 1024, .. }),
        "{err:?}"
    );
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn peer_sending_an_oversized_frame_is_disconnected_and_the_node_keeps_running() {
    let (b, mut rx) = collecting(config().with_max_frame(64 * 1024)).await;
    let mut events = b.subscribe();
    // A allows bigger frames than B does.
    let a = discard(config().with_max_frame(1024 * 1024)).await;
    send(&a, b.local_addr(), "r", &vec![1u8; 100 * 1024]);
    let e = event(&mut events, "protocol violation", |e| {
        matches!(e, PeerEvent::ProtocolViolation { .. })
    })
    .await;
    assert!(matches!(
        e,
        PeerEvent::ProtocolViolation { node, error: granary_remote::FrameError::TooLarge { .. } }
            if node == a.node_id()
    ));
    // B still serves others, and A itself once it reconnects.
    let c = discard(config()).await;
    send(&c, b.local_addr(), "r", b"still alive");
    assert_eq!(&recv(&mut rx).await.1.body[..], b"still alive");
    a.shutdown();
    b.shutdown();
    c.shutdown();
}

#[tokio::test]
async fn garbage_bytes_are_refused_and_the_node_keeps_running() {
    let (b, mut rx) = collecting(config()).await;
    let mut events = b.subscribe();
    let mut raw = tokio::net::TcpStream::connect(b.local_addr())
        .await
        .unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    event(&mut events, "refused", |e| {
        matches!(e, PeerEvent::Refused { .. })
    })
    .await;
    let mut raw2 = tokio::net::TcpStream::connect(b.local_addr())
        .await
        .unwrap();
    raw2.write_all(&[0xff; 4096]).await.unwrap();
    event(&mut events, "refused", |e| {
        matches!(e, PeerEvent::Refused { .. })
    })
    .await;
    let a = discard(config()).await;
    send(&a, b.local_addr(), "r", b"ok");
    assert_eq!(&recv(&mut rx).await.1.body[..], b"ok");
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn wrong_secret_is_unauthorized_and_delivers_nothing() {
    let (b, mut rx) = collecting(config()).await;
    let mut b_events = b.subscribe();
    let a = discard(granary_remote::TransportConfig::new(
        "test-cluster",
        b"wrong".to_vec(),
    ))
    .await;
    let mut a_events = a.subscribe();
    send(&a, b.local_addr(), "r", b"sneaky");
    let e = event(&mut a_events, "refused", |e| {
        matches!(e, PeerEvent::Refused { .. })
    })
    .await;
    assert!(format!("{e:?}").contains("unauthorized"), "{e:?}");
    let e = event(&mut b_events, "refused", |e| {
        matches!(e, PeerEvent::Refused { .. })
    })
    .await;
    assert!(format!("{e:?}").contains("unauthorized"), "{e:?}");
    event(&mut a_events, "unreachable", |e| {
        matches!(e, PeerEvent::Unreachable { .. })
    })
    .await;
    assert_silent(&mut rx, Duration::from_millis(100)).await;
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn other_cluster_name_is_refused() {
    let (b, mut rx) = collecting(config()).await;
    let a = discard(granary_remote::TransportConfig::new(
        "other",
        b"cookie".to_vec(),
    ))
    .await;
    let mut a_events = a.subscribe();
    send(&a, b.local_addr(), "r", b"x");
    let e = event(&mut a_events, "refused", |e| {
        matches!(e, PeerEvent::Refused { .. })
    })
    .await;
    assert!(format!("{e:?}").contains("cluster name mismatch"), "{e:?}");
    assert_silent(&mut rx, Duration::from_millis(50)).await;
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn stopped_peer_becomes_unreachable_and_sends_fail_fast() {
    let (b, mut rx) = collecting(config()).await;
    let a = discard(config()).await;
    let mut events = a.subscribe();
    send(&a, b.local_addr(), "r", b"1");
    recv(&mut rx).await;
    let b_node = b.node_id();
    b.shutdown();
    let e = event(&mut events, "disconnected", |e| {
        matches!(e, PeerEvent::Disconnected { .. })
    })
    .await;
    assert!(matches!(e, PeerEvent::Disconnected { node, .. } if node == b_node));
    let e = event(&mut events, "unreachable", |e| {
        matches!(e, PeerEvent::Unreachable { .. })
    })
    .await;
    assert!(matches!(e, PeerEvent::Unreachable { node: Some(n), .. } if n == b_node));
    let err = a
        .send(
            b_node.addr(),
            tell("s", "r"),
            Bytes::new(),
            SendOptions::data(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        SendError::Unreachable {
            peer: b_node.addr()
        }
    );
    a.shutdown();
}

#[tokio::test]
async fn restarted_peer_is_detected_by_its_new_incarnation_and_traffic_resumes() {
    let (b, mut rx) = collecting(config()).await;
    let addr = b.local_addr();
    let a = discard(config()).await;
    let mut events = a.subscribe();
    send(&a, addr, "r", b"to the first incarnation");
    recv(&mut rx).await;
    let old = b.node_id();
    b.shutdown();
    event(&mut events, "disconnected", |e| {
        matches!(e, PeerEvent::Disconnected { .. })
    })
    .await;

    let (b2, mut rx2) = collecting(config().with_listen(addr)).await;
    let e = event(&mut events, "restarted", |e| {
        matches!(e, PeerEvent::Restarted { .. })
    })
    .await;
    assert_eq!(
        e,
        PeerEvent::Restarted {
            old,
            new: b2.node_id()
        }
    );
    // Sends may have failed fast while it was down; once it is back they work again.
    let resend = async {
        loop {
            match a.send(
                addr,
                tell("s", "r"),
                Bytes::from_static(b"again"),
                SendOptions::data(),
            ) {
                Ok(()) => break,
                Err(SendError::Unreachable { .. }) => {
                    event(&mut events, "connected", |e| {
                        matches!(e, PeerEvent::Connected { .. })
                    })
                    .await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    tokio::time::timeout(WAIT, resend).await.unwrap();
    let (from, frame) = recv(&mut rx2).await;
    assert_eq!((from, &frame.body[..]), (a.node_id(), &b"again"[..]));
    a.shutdown();
    b2.shutdown();
}

#[tokio::test]
async fn shut_down_transport_refuses_sends() {
    let a: Transport = discard(config()).await;
    a.shutdown();
    let err = a
        .send(
            "127.0.0.1:9".parse().unwrap(),
            tell("s", "r"),
            Bytes::new(),
            SendOptions::data(),
        )
        .unwrap_err();
    assert_eq!(err, SendError::Shutdown);
}
