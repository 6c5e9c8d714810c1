//! The transport over a `Link::Broker`: connections come from the link instead of
//! sockets, and everything above the byte stream (handshake, channels, lanes,
//! heartbeats) is unchanged. The link here is an in-process switchboard of duplex
//! pipes, so this runs without a broker (granary-amqp's tests run RabbitMQ).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use granary_remote::wire::{Frame, FrameHeader, FrameKind};
use granary_remote::{
    BrokerConnection, BrokerLink, LinkFuture, NodeId, PeerEvent, SendOptions, TlsConfig, Transport,
    TransportConfig, TransportError,
};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;

/// Every node's accept queue, by name.
#[derive(Default)]
struct Switchboard {
    nodes: Mutex<HashMap<SocketAddr, mpsc::Sender<BrokerConnection>>>,
}

struct MemoryLink {
    board: Arc<Switchboard>,
    addr: SocketAddr,
    incoming: tokio::sync::Mutex<mpsc::Receiver<BrokerConnection>>,
}

impl MemoryLink {
    fn attach(board: &Arc<Switchboard>, port: u16) -> Arc<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let (tx, rx) = mpsc::channel(16);
        board.nodes.lock().unwrap().insert(addr, tx);
        Arc::new(Self {
            board: board.clone(),
            addr,
            incoming: tokio::sync::Mutex::new(rx),
        })
    }
}

impl BrokerLink for MemoryLink {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn dial(&self, to: SocketAddr) -> LinkFuture<'_, io::Result<DuplexStream>> {
        Box::pin(async move {
            let peer = self.board.nodes.lock().unwrap().get(&to).cloned();
            let peer = peer.ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            let (mine, theirs) = tokio::io::duplex(64 * 1024);
            peer.send((theirs, self.addr))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            Ok(mine)
        })
    }

    fn accept(&self) -> LinkFuture<'_, Option<BrokerConnection>> {
        Box::pin(async move { self.incoming.lock().await.recv().await })
    }

    fn close(&self) {
        self.board.nodes.lock().unwrap().remove(&self.addr);
    }
}

fn config(link: &Arc<MemoryLink>) -> TransportConfig {
    TransportConfig::new("broker-link-test", b"secret".to_vec())
        .with_link(granary_remote::Link::Broker(link.clone()))
        .with_heartbeat(Duration::from_millis(50), Duration::from_millis(400))
}

#[tokio::test]
async fn frames_travel_over_a_broker_link_and_the_node_binds_no_socket() {
    let board = Arc::new(Switchboard::default());
    let (a_link, b_link) = (
        MemoryLink::attach(&board, 4001),
        MemoryLink::attach(&board, 4002),
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let b = Transport::bind(config(&b_link), move |from: NodeId, frame: Frame| {
        let _ = tx.send((from, frame.body));
    })
    .await
    .unwrap();
    let a = Transport::bind(config(&a_link), |_: NodeId, _: Frame| {})
        .await
        .unwrap();
    // The link names the nodes; nothing listens at those addresses.
    assert_eq!(a.local_addr(), a_link.addr);
    assert_eq!(b.local_addr(), b_link.addr);
    assert!(tokio::net::TcpStream::connect(b.local_addr())
        .await
        .is_err());
    for i in 0..100u32 {
        let header = FrameHeader {
            kind: FrameKind::Tell,
            channel: 0,
            type_tag: 1,
            correlation: 0,
            sender: "s",
            recipient: "r",
            trace: None,
        };
        a.send(
            b.local_addr(),
            header,
            Bytes::from(i.to_be_bytes().to_vec()),
            SendOptions::data(),
        )
        .unwrap();
    }
    for i in 0..100u32 {
        let (from, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, a.node_id());
        assert_eq!(body, Bytes::from(i.to_be_bytes().to_vec()), "in order");
    }
    // The link goes away with the node: the other side loses it.
    let mut events = a.subscribe();
    b.shutdown();
    let lost = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(PeerEvent::Unreachable { addr, .. }) = events.recv().await {
                if addr == b_link.addr {
                    return;
                }
            }
        }
    })
    .await;
    assert!(
        lost.is_ok(),
        "the peer behind the closed link is unreachable"
    );
    a.shutdown();
}

#[tokio::test]
async fn tls_and_dial_out_are_refused_on_a_broker_link() {
    let board = Arc::new(Switchboard::default());
    let link = MemoryLink::attach(&board, 4003);
    let tls = TlsConfig {
        ca_pem: String::new(),
        cert_pem: String::new(),
        key_pem: String::new(),
        server_name: None,
    };
    let refused = Transport::bind(config(&link).with_tls(tls), |_: NodeId, _: Frame| {}).await;
    assert!(
        matches!(&refused, Err(TransportError::Config(m)) if m.contains("broker")),
        "TLS over a broker link is refused: {refused:?}"
    );
    let handler: Arc<dyn granary_remote::InboundHandler> = Arc::new(|_: NodeId, _: Frame| {});
    let refused = Transport::dial_out(config(&link), handler).await;
    assert!(
        matches!(&refused, Err(TransportError::Config(m)) if m.contains("broker")),
        "a dial-out transport is refused a broker link: {refused:?}"
    );
}
