//! An activation that is deactivating still runs the message it is handling (a node
//! shutting down drains its activations, one downing itself or losing its host lease
//! stops them). Until it has stopped, its host must not tell the directory owner "not
//! here": the owner would place a second activation beside the one still handling
//! (issue 13; seen on the chaos bed, where a host downing itself answered an owner's
//! `Find` so while a handler waited on a call across a cut).
//!
//! Here the host shuts down gracefully while a handler is in flight, and a caller on
//! a third node, finding the activation gone, asks the owner to replace it.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use granary_cluster::HashRing;
use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};

/// How long the in-flight handler runs after the shutdown began.
const LINGER: Duration = Duration::from_millis(1500);

static LIVE: AtomicUsize = AtomicUsize::new(0);
static MAX_LIVE: AtomicUsize = AtomicUsize::new(0);
static LINGERING: AtomicBool = AtomicBool::new(false);

/// An actor whose `Linger` handler takes a while.
struct Slow;

impl VirtualActor for Slow {
    const KIND: &'static str = "test.Slow";
    type Key = String;
    type State = ();

    fn activate(_key: &String) -> Self {
        Slow
    }

    async fn on_activate(
        &mut self,
        _ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<(), granary_core::BoxError> {
        let live = LIVE.fetch_add(1, Ordering::SeqCst) + 1;
        MAX_LIVE.fetch_max(live, Ordering::SeqCst);
        Ok(())
    }

    async fn on_deactivate(&mut self, _ctx: &mut VirtualContext<'_, Self>) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where the activation runs.
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Here;
impl Message for Here {
    type Reply = SocketAddr;
}
register_message!(Here, "test.virtual.draining.Here");
register_message!(SocketAddr, "test.virtual.draining.HereReply");

impl VirtualHandler<Here> for Slow {
    async fn handle(&mut self, _: Here, ctx: &mut VirtualContext<'_, Self>) -> SocketAddr {
        ctx.node_addr()
    }
}

/// Handles for `LINGER` (and says so when it starts).
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Linger;
impl Message for Linger {
    type Reply = ();
}
register_message!(Linger, "test.virtual.draining.Linger");

impl VirtualHandler<Linger> for Slow {
    async fn handle(&mut self, _: Linger, _ctx: &mut VirtualContext<'_, Self>) {
        LINGERING.store(true, Ordering::SeqCst);
        tokio::time::sleep(LINGER).await;
        LINGERING.store(false, Ordering::SeqCst);
    }
}

fn slow_kind() -> Kind<Slow> {
    Kind::<Slow>::new()
        .handles::<Here>()
        .handles::<Linger>()
        // Where the first call comes from: the host is the node that calls first,
        // the replacement the node that asks for it.
        .placement(Placement::PreferLocal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_draining_activation_is_not_replaced_while_it_still_handles() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(3, &store, |_, b| {
        b.host(slow_kind())
            // Longer than the linger: the owner's question to the host is answered
            // (once the activation stopped), not timed out.
            .rpc_timeout(Duration::from_secs(4))
            .ask_timeout(Duration::from_secs(20))
    })
    .await;
    let (owner, host, caller) = (&nodes[0], &nodes[1], &nodes[2]);
    let ring: HashRing = (*owner.cluster().ring()).clone();
    let key = (0..10_000)
        .map(|i| format!("draining-{i}"))
        .find(|k| {
            ring.owner(format!("{}/{k}", Slow::KIND).as_bytes())
                .map(|n| n.addr)
                == Some(owner.addr())
        })
        .expect("a key the first node owns");

    let first = host.get::<Slow>(key.clone()).ask(Here).await.unwrap();
    assert_eq!(first, host.addr(), "placed on the node that called first");
    let lingering = {
        let r = host.get::<Slow>(key.clone());
        tokio::spawn(async move { r.ask(Linger).await })
    };
    wait_for("the handler starts", || LINGERING.load(Ordering::SeqCst)).await;

    // The host drains: the activation is closing, its handler still running.
    let shutdown = {
        let host = host.clone();
        tokio::spawn(async move { host.shutdown().await })
    };
    wait_for("the host stops taking messages for it", || {
        host.activations(Slow::KIND) == 0
    })
    .await;
    assert!(
        LINGERING.load(Ordering::SeqCst),
        "the handler still runs while the activation closes"
    );

    // A caller elsewhere: the owner's entry names the closing activation; the
    // caller finds it gone and asks the owner to replace it.
    let now_at = caller.get::<Slow>(key.clone()).ask(Here).await.unwrap();
    assert_ne!(now_at, host.addr(), "the draining host takes nothing new");
    assert_eq!(
        MAX_LIVE.load(Ordering::SeqCst),
        1,
        "a second activation started while the first still handled a message"
    );
    lingering
        .await
        .unwrap()
        .expect("the in-flight message completes");
    shutdown.await.unwrap();
    for node in [owner, caller] {
        node.shutdown().await;
    }
}
