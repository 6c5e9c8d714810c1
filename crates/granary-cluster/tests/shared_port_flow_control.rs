//! A port shared between the cluster and the application
//! ([`TcpClusterTransport::bind_with`]) keeps the application handler's flow control
//! (`docs/wire.md`, "Flow control"): when the handler holds a connection back, the
//! reader stops reading it, TCP pushes back and the sender sees `Backpressure`, while
//! the cluster's own frames (control channel) keep flowing.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{poll_until, wait_until};
use granary_cluster::transport::tcp::{TcpClusterTransport, TransportConfig};
use granary_cluster::{Cluster, ClusterConfig};
use granary_remote::wire::{Frame, FrameHeader, FrameKind};
use granary_remote::{InboundHandler, NodeId, SendError, SendOptions, Stall, Transport};
use tokio::sync::Semaphore;

const WAIT: Duration = Duration::from_secs(20);

/// Holds back every frame until the gate gives a permit for it; counts the frames
/// it was handed and the ones it let through.
struct Gated {
    gate: Arc<Semaphore>,
    handed: Arc<AtomicU64>,
    passed: Arc<AtomicU64>,
}

impl InboundHandler for Gated {
    /// Without a connection to hold back, the frame waits in a task of its own (that is
    /// what the reader would do without flow control: take everything it is sent).
    fn on_frame(&self, from: NodeId, frame: Frame) {
        if let Some(stall) = self.on_frame_paced(from, frame) {
            tokio::spawn(stall);
        }
    }

    fn on_frame_paced(&self, _from: NodeId, _frame: Frame) -> Option<Stall> {
        self.handed.fetch_add(1, Ordering::SeqCst);
        let (gate, passed) = (self.gate.clone(), self.passed.clone());
        Some(Box::pin(async move {
            gate.acquire().await.unwrap().forget();
            passed.fetch_add(1, Ordering::SeqCst);
        }))
    }
}

fn config() -> TransportConfig {
    TransportConfig::new("shared-port", b"secret".to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_back_application_frame_stops_the_reader_and_the_sender_sees_backpressure() {
    let gate = Arc::new(Semaphore::new(0));
    let handed = Arc::new(AtomicU64::new(0));
    let passed = Arc::new(AtomicU64::new(0));
    let shared = TcpClusterTransport::bind_with(
        config(),
        Arc::new(Gated {
            gate: gate.clone(),
            handed: handed.clone(),
            passed: passed.clone(),
        }),
    )
    .await
    .expect("bind");
    let to = shared.transport().local_addr();
    let cluster = Cluster::start_with_seeds(ClusterConfig::default(), shared, vec![])
        .await
        .expect("cluster on the shared port");

    let sender = Transport::bind(
        config()
            .with_parallelism(1)
            .with_queue_capacity(1024 * 1024),
        |_: NodeId, _: Frame| {},
    )
    .await
    .expect("sender");
    let header = FrameHeader {
        kind: FrameKind::Tell,
        channel: 0,
        type_tag: 1,
        correlation: 0,
        sender: "",
        recipient: "app",
        trace: None,
    };
    let body = Bytes::from(vec![7u8; 1024]);
    // One frame first, so the connection is up and its reader holds that frame back.
    sender
        .send(to, header, body.clone(), SendOptions::data())
        .expect("first frame queued");
    assert!(
        poll_until(WAIT, || handed.load(Ordering::SeqCst) == 1).await,
        "the first frame reaches the handler"
    );
    let mut sent = 1u64;
    // Send until the sender has been refused 200 times in a row, 1 ms apart. A held-back
    // reader refuses for good (the sender's queue and the socket buffers stay full);
    // without flow control the reader takes every frame it is sent and the handler's
    // memory grows, so a refusal lasts only until the writer catches up, and the
    // budget runs out instead.
    const BUDGET: u64 = 64 * 1024; // 64 MiB of bodies: more than queue and sockets hold.
    let mut refused_in_a_row = 0;
    let mut last_refusal = None;
    while refused_in_a_row < 200 {
        match sender.send(to, header, body.clone(), SendOptions::data()) {
            Ok(()) => {
                sent += 1;
                refused_in_a_row = 0;
                if sent.is_multiple_of(16) {
                    tokio::task::yield_now().await;
                }
            }
            Err(e) => {
                last_refusal = Some(e);
                refused_in_a_row += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        assert!(
            sent < BUDGET,
            "no lasting backpressure after {sent} sends; the handler was handed {} frames",
            handed.load(Ordering::SeqCst)
        );
    }
    assert!(
        matches!(last_refusal, Some(SendError::Backpressure { .. })),
        "{last_refusal:?}"
    );
    // The reader stopped at the first frame it could not hand on: everything else the
    // sender queued waits in the sockets and the sender's queue.
    assert_eq!(
        handed.load(Ordering::SeqCst),
        1,
        "frames handed to the held-back handler ({sent} sent)"
    );
    assert_eq!(passed.load(Ordering::SeqCst), 0);

    // The cluster on the same port still works: a second node joins through it.
    let joiner = Cluster::start_tcp(ClusterConfig::default(), config(), vec![to])
        .await
        .expect("a node joins through the shared port while it is held back");
    for node in [&cluster, &joiner] {
        assert!(
            wait_until(node, WAIT, |c| c.up_members().len() == 2).await,
            "{} sees both nodes Up",
            node.local_id()
        );
    }

    // Opening the gate lets every accepted frame through.
    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    assert!(
        poll_until(WAIT, || passed.load(Ordering::SeqCst) == sent).await,
        "every accepted frame passes once the gate opens: {} of {sent}",
        passed.load(Ordering::SeqCst)
    );
    assert_eq!(handed.load(Ordering::SeqCst), sent);
    sender.shutdown();
    joiner.stop().await;
    cluster.stop().await;
}
