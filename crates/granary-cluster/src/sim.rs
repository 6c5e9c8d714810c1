//! A one-process simulation of a large cluster over the in-memory transport.
//!
//! Every node runs the real protocol (the same [`Cluster`] and core as production) on
//! one current-thread tokio runtime with a **paused clock**: time advances only when
//! every node is idle, so a 1,000-node run measures protocol time (gossip rounds), not
//! how fast this machine is, and is deterministic for a given seed.
//!
//! [`run`] bootstraps `nodes` members, measures steady-state traffic, then one join and
//! one crash:
//! - join: from the moment the new node is Up locally until every other node has seen it
//!   Up (in virtual time and in gossip rounds);
//! - failure: from the crash until every survivor has marked the node Down (this includes
//!   the failure detector's threshold and the downing rule's `stable_after`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::config::ClusterConfig;
use crate::error::ClusterError;
use crate::event::{ClusterEvent, MemberEvent};
use crate::transport::memory::{LinkFaults, MemoryNetwork, TrafficStats};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Cluster size before the measured join.
    pub nodes: usize,
    /// Protocol settings of every node (incarnation and rng seed are set per node).
    pub cluster: ClusterConfig,
    /// Faults on every link.
    pub faults: LinkFaults,
    /// Seed of the network's random drops.
    pub seed: u64,
    /// Length of the steady-state traffic measurement.
    pub steady_window: Duration,
    /// Give up waiting for any phase after this much virtual time.
    pub phase_timeout: Duration,
}

impl SimConfig {
    /// `nodes` members with default protocol settings (8 vnodes each) and no faults.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            cluster: ClusterConfig {
                vnodes: 8,
                ..ClusterConfig::default()
            },
            faults: LinkFaults::default(),
            seed: 1,
            steady_window: Duration::from_secs(10),
            phase_timeout: Duration::from_secs(600),
        }
    }
}

/// Measurements of one simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct SimReport {
    /// Cluster size before the join.
    pub nodes: usize,
    /// The gossip interval the rounds are counted in.
    pub gossip_interval: Duration,
    /// Virtual time until all `nodes` saw each other Up after starting together.
    pub bootstrap_time: Duration,
    /// Virtual time from the joiner being Up locally until every node saw it Up.
    pub join_convergence_time: Duration,
    /// The same in gossip rounds.
    pub join_convergence_rounds: f64,
    /// Virtual time from a crash until every survivor saw the node Down.
    pub failure_convergence_time: Duration,
    /// The same in gossip rounds.
    pub failure_convergence_rounds: f64,
    /// Bytes sent per node per (virtual) second in steady state.
    pub steady_bytes_per_node_per_sec: f64,
    /// Messages sent per node per second in steady state.
    pub steady_messages_per_node_per_sec: f64,
    /// Bytes sent per node per second from the join until the crash was fully seen.
    pub churn_bytes_per_node_per_sec: f64,
    /// Real time the whole simulation took.
    pub wall_time: Duration,
}

/// Why a simulation could not finish.
#[derive(Debug, Error)]
pub enum SimError {
    /// A node failed to start.
    #[error("node failed to start: {0}")]
    Start(#[from] ClusterError),
    /// A phase did not converge within `phase_timeout`.
    #[error("phase {0} did not converge in time")]
    NoConvergence(&'static str),
    /// The runtime could not be built.
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The simulation thread panicked.
    #[error("the simulation thread panicked")]
    Panicked,
    /// Fewer than two nodes were asked for.
    #[error("a simulation needs at least 2 nodes")]
    TooSmall,
}

/// Runs a simulation on a fresh current-thread runtime with a paused clock.
///
/// Blocks the caller. Called from inside a tokio runtime, it runs on a thread of its own
/// (a runtime cannot be started within another).
pub fn run(config: SimConfig) -> Result<SimReport, SimError> {
    if config.nodes < 2 {
        return Err(SimError::TooSmall);
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        return std::thread::scope(|scope| {
            scope
                .spawn(|| run_here(config))
                .join()
                .unwrap_or(Err(SimError::Panicked))
        });
    }
    run_here(config)
}

fn run_here(config: SimConfig) -> Result<SimReport, SimError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    let wall = std::time::Instant::now();
    let mut report = runtime.block_on(simulate(config))?;
    report.wall_time = wall.elapsed();
    Ok(report)
}

fn sim_addr(i: usize) -> SocketAddr {
    // 127.0.0.0/8 only; the in-memory network never opens a socket anyway.
    let i = i as u32 + 1;
    SocketAddr::from((Ipv4Addr::new(127, 1, (i >> 8) as u8, i as u8), 7000))
}

fn node_config(config: &SimConfig, i: usize) -> ClusterConfig {
    let mut cfg = config.cluster.clone();
    cfg.incarnation = Some(1);
    cfg.rng_seed = Some(config.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
    cfg.join.timeout = config.phase_timeout;
    cfg
}

async fn start_node(
    net: &MemoryNetwork,
    config: &SimConfig,
    i: usize,
) -> Result<Cluster, SimError> {
    let seeds = if i == 0 { vec![] } else { vec![sim_addr(0)] };
    let transport = net.bind(sim_addr(i)).map_err(ClusterError::from)?;
    Ok(Cluster::start_with_seeds(node_config(config, i), transport, seeds).await?)
}

/// Waits (sampling once per gossip round) until every node's ring has `size` members.
async fn wait_ring_size(nodes: &[Cluster], size: usize, every: Duration, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if nodes.iter().all(|n| n.ring().len() == size) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// Follows every node's events; returns when all have reported the matching event for
/// `target`, with the virtual time of the last one.
async fn last_to_see(
    nodes: &[Cluster],
    target: SocketAddr,
    want_down: bool,
    limit: Duration,
    act: impl std::future::Future<Output = Result<Instant, SimError>>,
) -> Result<(Instant, Instant), SimError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let mut forwarders = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut events = node.subscribe();
        let tx = tx.clone();
        forwarders.push(tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let ClusterEvent::Change { event, .. } = event {
                    let hit = match &event {
                        MemberEvent::Up(m) => !want_down && m.id.addr == target,
                        MemberEvent::Down(m) => want_down && m.id.addr == target,
                        _ => false,
                    };
                    if hit {
                        let _ = tx.send(Instant::now());
                        return;
                    }
                }
            }
        }));
    }
    drop(tx);
    let start = act.await?;
    let mut last = start;
    let collected = tokio::time::timeout(limit, async {
        for _ in 0..nodes.len() {
            match rx.recv().await {
                Some(t) => last = last.max(t),
                None => return false,
            }
        }
        true
    })
    .await;
    for f in forwarders {
        f.abort();
    }
    match collected {
        Ok(true) => Ok((start, last)),
        _ => Err(SimError::NoConvergence(if want_down {
            "failure"
        } else {
            "join"
        })),
    }
}

fn per_node_rate(before: TrafficStats, after: TrafficStats, nodes: usize, secs: f64) -> (f64, f64) {
    let bytes = (after.sent_bytes - before.sent_bytes) as f64;
    let msgs = (after.sent_messages - before.sent_messages) as f64;
    let denom = nodes as f64 * secs.max(1e-9);
    (bytes / denom, msgs / denom)
}

async fn simulate(config: SimConfig) -> Result<SimReport, SimError> {
    let net = MemoryNetwork::new(config.seed);
    net.set_default_faults(config.faults);
    let round = config.cluster.gossip_interval;
    let n = config.nodes;

    // Bootstrap: node 0 forms the cluster, the others join through it all at once.
    let t0 = Instant::now();
    let mut nodes = vec![start_node(&net, &config, 0).await?];
    let mut starting = tokio::task::JoinSet::new();
    for i in 1..n {
        let (net, config) = (net.clone(), config.clone());
        starting.spawn(async move { (i, start_node(&net, &config, i).await) });
    }
    let mut rest = Vec::with_capacity(n - 1);
    while let Some(joined) = starting.join_next().await {
        if let Ok((i, node)) = joined {
            rest.push((i, node?));
        }
    }
    rest.sort_by_key(|(i, _)| *i);
    nodes.extend(rest.into_iter().map(|(_, c)| c));
    if !wait_ring_size(&nodes, n, round, config.phase_timeout).await {
        return Err(SimError::NoConvergence("bootstrap"));
    }
    let bootstrap_time = t0.elapsed();

    // Let the bootstrap's deltas drain before measuring steady-state traffic: every node
    // re-sends each of the n new rows `limit` times, `fanout × max_deltas` rows per round.
    let cfg = &config.cluster;
    let limit =
        cfg.retransmit_multiplier.max(1) as usize * (usize::BITS - n.leading_zeros()) as usize;
    let per_round = (cfg.gossip_fanout.max(1) * cfg.max_deltas_per_message.max(1)).max(1);
    let drain_rounds = (limit * n).div_ceil(per_round) + 20;
    tokio::time::sleep(round * drain_rounds as u32).await;
    let before = net.total_stats();
    tokio::time::sleep(config.steady_window).await;
    let (steady_bytes, steady_msgs) = per_node_rate(
        before,
        net.total_stats(),
        n,
        config.steady_window.as_secs_f64(),
    );

    // One join.
    let churn_start = (Instant::now(), net.total_stats());
    let joiner_addr = sim_addr(n);
    let (net2, config2) = (net.clone(), config.clone());
    let mut joiner = None;
    let (join_up, join_last) =
        last_to_see(&nodes, joiner_addr, false, config.phase_timeout, async {
            let node = start_node(&net2, &config2, n).await?;
            joiner = Some(node);
            Ok(Instant::now())
        })
        .await?;
    nodes.extend(joiner);

    // One crash (the node in the middle of the address range).
    let victim = nodes.remove(n / 2);
    let victim_addr = victim.local_id().addr;
    let (crash, down_last) = last_to_see(&nodes, victim_addr, true, config.phase_timeout, async {
        victim.stop().await;
        Ok(Instant::now())
    })
    .await?;
    let churn_secs = churn_start.0.elapsed().as_secs_f64();
    let (churn_bytes, _) = per_node_rate(churn_start.1, net.total_stats(), n, churn_secs);

    for node in &nodes {
        node.stop().await;
    }
    let join_time = join_last - join_up;
    let failure_time = down_last - crash;
    Ok(SimReport {
        nodes: n,
        gossip_interval: round,
        bootstrap_time,
        join_convergence_time: join_time,
        join_convergence_rounds: join_time.as_secs_f64() / round.as_secs_f64(),
        failure_convergence_time: failure_time,
        failure_convergence_rounds: failure_time.as_secs_f64() / round.as_secs_f64(),
        steady_bytes_per_node_per_sec: steady_bytes,
        steady_messages_per_node_per_sec: steady_msgs,
        churn_bytes_per_node_per_sec: churn_bytes,
        wall_time: Duration::ZERO,
    })
}
