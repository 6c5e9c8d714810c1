//! The node side of `pingpong`: sets up the actors of one run and drives it from
//! the node the harness chose, first a short warm-up rally, then the measured one.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use futures::future::try_join_all;
use granary::virtual_actors::Node;
use granary_remote::RemoteNode;
use tokio::sync::oneshot;

use super::actors::{Ball, Go, Pinger, Ponger, VirtualGo, VirtualPinger};
use crate::suite_node::drive::{virtual_round, warm_then_measure};
use crate::suite_node::protocol::Reply;
use crate::suite_node::{measured, within_run_limit};

/// Round trips per ping actor in the warm-up rally (connections, caches,
/// activations), not measured.
const WARMUP_ROUNDS: u32 = 20;

fn ping_name(run: u64, i: u32) -> String {
    format!("pingpong-{run}-ping-{i}")
}

fn pong_name(run: u64, i: u32) -> String {
    format!("pingpong-{run}-pong-{i}")
}

/// Distributed mode, on the pong node: spawns and exposes the pong actors of `run`.
pub(crate) fn spawn_pongs(
    remote: &RemoteNode,
    run: u64,
    actors: u32,
    ping_node: SocketAddr,
) -> Result<(), String> {
    for i in 0..actors {
        let ping = remote.remote_ref::<Pinger>(ping_node, &ping_name(run, i));
        let pong = remote.system().spawn(Ponger::new(ping));
        remote
            .expose(&pong_name(run, i), &pong)
            .and_then(|e| e.accept::<Ball>())
            .map_err(|e| format!("cannot expose pong {i}: {e}"))?;
    }
    Ok(())
}

/// Distributed mode, on the ping node: spawns the ping actors of `run` against the
/// pong actors on `pong_node`, warms up, then measures.
pub(crate) async fn run_distributed(
    remote: &RemoteNode,
    run: u64,
    actors: u32,
    payload: usize,
    rounds: u32,
    pong_node: SocketAddr,
) -> Reply {
    let mut pings = Vec::new();
    for i in 0..actors {
        let pong = remote.remote_ref::<Ponger>(pong_node, &pong_name(run, i));
        let ping = remote.system().spawn(Pinger::new(pong));
        remote
            .expose(&ping_name(run, i), &ping)
            .and_then(|e| e.accept::<Ball>())
            .map_err(|e| format!("cannot expose ping {i}: {e}"))?;
        pings.push(ping);
    }
    let payload = Bytes::from(vec![0u8; payload]);
    let rally = |rounds: u32| {
        let pings = &pings;
        let payload = payload.clone();
        async move {
            let waits = pings.iter().map(|ping| {
                let (done, wait) = oneshot::channel();
                let go = Go {
                    rounds,
                    payload: payload.clone(),
                    done,
                };
                let sent = ping.tell(go).map_err(|e| format!("ping actor: {e}"));
                async move {
                    sent?;
                    wait.await.map_err(|_| "a ping actor stopped".to_string())
                }
            });
            within_run_limit(try_join_all(waits)).await?
        }
    };
    let result = warm_then_measure(WARMUP_ROUNDS.min(rounds), rounds, |_, rounds| {
        let rally = &rally;
        async move {
            let started = Instant::now();
            let latencies: Vec<u32> = rally(rounds).await?.into_iter().flatten().collect();
            Ok(measured(latencies, started.elapsed().as_secs_f64()))
        }
    })
    .await;
    for ping in &pings {
        ping.stop();
    }
    result
}

/// Virtual mode: the framework places the ping and pong actors of `run`; this node
/// starts every ping actor and waits for the collector, warm-up first.
pub(crate) async fn run_virtual(
    node: &Node,
    run: u64,
    actors: u32,
    payload: usize,
    rounds: u32,
) -> Reply {
    warm_then_measure(WARMUP_ROUNDS.min(rounds), rounds, |phase, rounds| {
        let collector = format!("pingpong-{run}-{phase}");
        let go = VirtualGo {
            rounds,
            payload_bytes: payload,
            collector: collector.clone(),
            expected: actors,
        };
        let keys = (0..actors).map(move |i| format!("pingpong-{run}-{i}"));
        async move { virtual_round::<VirtualPinger, _>(node, &collector, keys, go).await }
    })
    .await
}
