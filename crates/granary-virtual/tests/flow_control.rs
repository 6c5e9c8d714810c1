//! Flow control reaches virtual actors (`docs/wire.md`, "Flow control"): a fast sender
//! on another node cannot grow a slow activation's mailbox beyond the transport's
//! `inbound_capacity`. The message's credit stays with it in the activation's mailbox,
//! so the host's reader holds the connection back, TCP pushes back, and the sender's
//! tells are refused (retried, then failed with `Backpressure`) instead of piling up
//! on the host. While
//! that data connection is held back, the host keeps its host lease (the virtual
//! control protocol goes on the control channel): every accepted tell is handled once
//! the activation speeds up, none is refused by a fenced activation.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use granary_core::{Message, RemoteError};
use granary_remote::register_message;
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// `TransportConfig::inbound_capacity`'s default: credits per exposed activation.
const CAPACITY: u64 = 1024;

/// Messages decoded on the host (every decode of a `Work` is one held in memory there
/// until it is handled) and messages handled.
static DECODED: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// Each handled message takes one permit; none are given until the test says so.
fn gate() -> &'static Semaphore {
    static GATE: OnceLock<Semaphore> = OnceLock::new();
    GATE.get_or_init(|| Semaphore::new(0))
}

#[derive(Clone, Serialize, Deserialize)]
struct WorkWire {
    n: u64,
    pad: Vec<u8>,
}

/// One unit of work with a 4 KiB body; decoding it is counted.
#[derive(Clone, Serialize, Deserialize, Debug)]
#[serde(from = "WorkWire", into = "WorkWire")]
struct Work {
    n: u64,
    pad: Vec<u8>,
}
impl From<WorkWire> for Work {
    fn from(w: WorkWire) -> Self {
        DECODED.fetch_add(1, Ordering::SeqCst);
        Work { n: w.n, pad: w.pad }
    }
}
impl From<Work> for WorkWire {
    fn from(w: Work) -> Self {
        WorkWire { n: w.n, pad: w.pad }
    }
}
impl Message for Work {
    type Reply = ();
}
register_message!(Work, "test.flow.Work");

struct Slow;

impl VirtualActor for Slow {
    const KIND: &'static str = "test.flow.Slow";
    type Key = String;
    type State = ();
    fn activate(_key: &String) -> Self {
        Slow
    }
}

impl VirtualHandler<Work> for Slow {
    async fn handle(&mut self, msg: Work, _ctx: &mut VirtualContext<'_, Self>) {
        gate().acquire().await.unwrap().forget();
        assert_eq!(msg.pad.len(), 4096);
        HANDLED.fetch_add(1, Ordering::SeqCst);
    }
}

/// Messages held on the host: decoded there and not handled yet.
fn held() -> u64 {
    DECODED.load(Ordering::SeqCst) - HANDLED.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_remote_sender_cannot_grow_a_slow_activations_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_nodes(2, &store_url(&dir), |i, b| {
        if i == 0 {
            b.host(Kind::<Slow>::new().handles::<Work>())
        } else {
            // The sender: it hosts nothing, so the activation is on node 0; a short
            // deadline, so a refused tell fails soon.
            b.ask_timeout(Duration::from_secs(2))
        }
    })
    .await;
    let slow = nodes[1].get::<Slow>("slow-1".to_string());
    // Bound per connection: the credits in the mailbox, the one being handled, and one
    // decoded message a held-back reader waits with (a few data connections).
    let bound = CAPACITY + 1 + 8;
    let mut sent = 0u64;
    let mut peak = 0;
    let refused = loop {
        let work = Work {
            n: sent,
            pad: vec![7; 4096],
        };
        match slow.tell(work).await {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        peak = peak.max(held());
        // Without flow control the activation's mailbox takes every message.
        assert!(
            peak <= bound,
            "the host holds {peak} messages (bound {bound}) after {sent} tells"
        );
        assert!(sent < 100_000, "no refusal after {sent} tells");
    };
    assert!(
        matches!(&refused, VirtualError::Remote(RemoteError::Backpressure(_))),
        "{refused:?}"
    );
    assert!(sent > CAPACITY, "only {sent} tells went out");
    assert_eq!(nodes[0].activations(Slow::KIND), 1);
    assert!(peak <= bound, "peak {peak}");
    eprintln!("{sent} tells accepted; the host held at most {peak} (bound {bound}); refused with {refused}");

    // Open the gate: every accepted tell is handled, nothing more is held.
    gate().add_permits(Semaphore::MAX_PERMITS / 2);
    let deadline = tokio::time::Instant::now() + WAIT;
    while HANDLED.load(Ordering::SeqCst) < sent {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {sent} accepted tells handled",
            HANDLED.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(HANDLED.load(Ordering::SeqCst), sent);
    assert_eq!(held(), 0);
    for node in &nodes {
        node.shutdown().await;
    }
}
