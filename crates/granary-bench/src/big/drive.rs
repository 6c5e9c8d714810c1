//! The node side of `big`: spawns this node's share of the big actors (distributed
//! mode) and drives a run from the node the harness chose, warm-up round first.

use std::net::SocketAddr;
use std::time::Instant;

use granary::prelude::*;
use granary::virtual_actors::Node;
use granary_remote::{RemoteNode, RemoteRef};
use tokio::sync::oneshot;

use super::actors::{big_key, BigActor, BigGo, BigPing, BigPong, Peers, VirtualBig, VirtualBigGo};
use crate::suite_node::collect::{Collector, Done};
use crate::suite_node::drive::{virtual_round, warm_then_measure};
use crate::suite_node::protocol::{Measured, Reply};
use crate::suite_node::{measured, within_run_limit};

fn actor_name(run: u64, index: u32) -> String {
    format!("big-{run}-{index}")
}

fn placed(index: u32, nodes: &[SocketAddr]) -> SocketAddr {
    nodes[index as usize % nodes.len()]
}

/// Distributed mode: spawns and exposes the big actors placed on this node (index
/// `i` on `nodes[i % 3]`), then gives each the table of all actors' refs (local
/// refs for the actors on this node).
pub(crate) fn spawn(
    remote: &RemoteNode,
    run: u64,
    actors: u32,
    nodes: &[SocketAddr],
) -> Result<(), String> {
    let me = remote.local_addr();
    let mut local = Vec::new();
    for index in (0..actors).filter(|&i| placed(i, nodes) == me) {
        let actor = remote.system().spawn(BigActor::new(index, remote.clone()));
        remote
            .expose(&actor_name(run, index), &actor)
            .and_then(|e| e.accept::<BigGo>())
            .and_then(|e| e.accept::<BigPing>())
            .and_then(|e| e.accept::<BigPong>())
            .map_err(|e| format!("cannot expose big actor {index}: {e}"))?;
        local.push(actor);
    }
    let table: Vec<ActorRef<BigActor>> = (0..actors)
        .map(|index| RemoteRef::new(placed(index, nodes), actor_name(run, index)).resolve(remote))
        .collect();
    for actor in &local {
        actor
            .tell(Peers(table.clone()))
            .map_err(|e| format!("big actor: {e}"))?;
    }
    Ok(())
}

/// Distributed mode, on the driving node (after [`spawn`] on every node): one
/// warm-up round, then the measured run.
pub(crate) async fn run_distributed(
    remote: &RemoteNode,
    run: u64,
    actors: u32,
    payload: usize,
    per_peer: u32,
    nodes: &[SocketAddr],
) -> Reply {
    let me = remote.local_addr();
    let round = |phase: &'static str, per_peer: u32| async move {
        let (done, wait) = oneshot::channel();
        let name = format!("big-{run}-collector-{phase}");
        let collector = remote.system().spawn(Collector::new(done));
        remote
            .expose(&name, &collector)
            .and_then(|e| e.accept::<Done>())
            .map_err(|e| format!("cannot expose the collector: {e}"))?;
        let go = BigGo {
            per_peer,
            payload_bytes: payload,
            expected: actors,
            collector: RemoteRef::new(me, name),
        };
        let started = Instant::now();
        for index in 0..actors {
            let actor: ActorRef<BigActor> =
                RemoteRef::new(placed(index, nodes), actor_name(run, index)).resolve(remote);
            actor
                .tell(go.clone())
                .map_err(|e| format!("big actor {index}: {e}"))?;
        }
        let latencies = within_run_limit(wait)
            .await?
            .map_err(|_| "the collector went away".to_string())?;
        collector.stop();
        Ok::<Measured, String>(measured(latencies, started.elapsed().as_secs_f64()))
    };
    warm_then_measure(1, per_peer, round).await
}

/// Virtual mode: the framework places the big actors of `run`; this node starts
/// each and waits for the collector, after a warm-up round.
pub(crate) async fn run_virtual(
    node: &Node,
    run: u64,
    actors: u32,
    payload: usize,
    per_peer: u32,
) -> Reply {
    warm_then_measure(1, per_peer, |phase, per_peer| {
        let collector = format!("big-{run}-{phase}");
        let go = VirtualBigGo {
            actors,
            per_peer,
            payload_bytes: payload,
            collector: collector.clone(),
        };
        let keys = (0..actors).map(move |index| big_key(run, index));
        async move { virtual_round::<VirtualBig, _>(node, &collector, keys, go).await }
    })
    .await
}
