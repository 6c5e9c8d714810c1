//! A kind's door shares its flow-control credits (`TransportConfig::inbound_capacity`,
//! 1,024 by default) among every activation of the kind on a node. Handlers that ask
//! other activations of their own kind and wait must not hold those credits: with more
//! of them waiting on one node than the door has credits, the asks they wait for could
//! never get in, and every call hung (`granary-bench sort` with 12,000 elements did).
//! So an ask's credit comes back when the activation takes it out of its mailbox.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use granary_virtual::{Placement, PlacementRequest, PlacementStrategy};
use serde::{Deserialize, Serialize};

/// More than the door's default credits.
const CHAINS: usize = 1_100;

/// One link of a three-link chain across two nodes: `top-i` on the higher address
/// asks `mid-i` on the lower one, which asks `end-i` on the higher one again.
struct Link;

impl VirtualActor for Link {
    const KIND: &'static str = "test.Link";
    type Key = String;
    type State = ();

    fn activate(_key: &String) -> Self {
        Link
    }
}

/// Asks the next link and answers how many links answered after this one.
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Down(usize);
impl Message for Down {
    type Reply = Result<usize, String>;
}
register_message!(Down, "test.door_credits.Down");
register_message!(Result<usize, String>, "test.door_credits.DownReply");

fn next_key(key: &str) -> Option<String> {
    let (link, chain) = key.split_once('-')?;
    let next = match link {
        "top" => "mid",
        "mid" => "end",
        _ => return None,
    };
    Some(format!("{next}-{chain}"))
}

impl VirtualHandler<Down> for Link {
    async fn handle(
        &mut self,
        msg: Down,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<usize, String> {
        let Some(next) = next_key(ctx.key()) else {
            return Ok(msg.0);
        };
        let below = ctx.get::<Link>(next);
        below
            .ask_timeout(Down(msg.0 + 1), Duration::from_secs(20))
            .await
            .map_err(|e| e.to_string())?
    }
}

/// `top-*` and `end-*` on the higher address, `mid-*` on the lower one, so that
/// every link's ask crosses the wire and every `top` waits in the higher node.
struct ByLink;

impl PlacementStrategy for ByLink {
    fn place(&self, req: &PlacementRequest<'_>) -> SocketAddr {
        let low = *req.candidates.iter().min().expect("a candidate");
        let high = *req.candidates.iter().max().expect("a candidate");
        if req.identity.key().starts_with("mid-") {
            low
        } else {
            high
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_waiting_on_their_own_kind_do_not_shut_its_door() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(2, &store, |_, b| {
        b.host(
            Kind::<Link>::new()
                .handles::<Down>()
                .placement(Placement::Custom(Arc::new(ByLink))),
        )
    })
    .await;
    let low = nodes.iter().min_by_key(|n| n.addr()).unwrap();
    // All chains at once, from the lower node: every `top` is asked over the wire and
    // waits for its `mid`, which waits for its `end` — behind the same door as the
    // `top`s. With credits held until the answer, the 1,024 first `top`s would hold
    // them all and no `end` could get in.
    let calls: Vec<_> = (0..CHAINS)
        .map(|i| {
            let top = low.get::<Link>(format!("top-{i}"));
            tokio::spawn(async move { top.ask_timeout(Down(0), Duration::from_secs(20)).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let answer = call.await.unwrap();
        assert_eq!(answer.unwrap(), Ok(2), "chain {i}");
    }
    for node in nodes {
        node.shutdown().await;
    }
}
