//! The `overlay` scenario: seed 002 §6.3, Lasp's advertisement counter on the
//! client-server and peer-to-peer overlays at 32 to 1,024 nodes (issue 16).
//!
//! Every node is a granary-overlay [`OverlayNode`] with its own TCP listener on its own
//! loopback address (127.1.x.y for peer-to-peer, 127.2.x.y for client-server), all in
//! this one process on one tokio runtime (2 worker threads): real sockets, shared
//! cores. Each node holds a replica of one grow-only counter per ad (a G-counter: one
//! slot per node, merged by maximum). Each propagation interval, `--impressions`
//! clients of a pool of `--active-clients` see an ad: it increments its own slot of a random ad and
//! propagates its slots (the part of the state only it writes, so merging them is the
//! full state merge) with [`OverlayNode::broadcast`]: over Plumtree on peer-to-peer,
//! through the server (which relays to every node) on client-server. Both overlays run
//! the same application code through the same [`Overlay`] interface.
//!
//! Measuring starts once the peer-to-peer views have stopped changing and the warm-up
//! round's updates have reached every node; each step's measurement ends once its
//! updates have reached every node, or none has arrived anywhere for 3 s (after
//! kills). Per size and overlay one row: bytes written by all nodes during the
//! measured rounds and that spread (membership upkeep included), connections per
//! node (open sockets, max and mean, and the overlay's own view), the time for an
//! update to reach every other node (p50 and max over the updates that did), and
//! whether every replica converged. On peer-to-peer the run goes on: 10 %, then
//! 30 %, then 50 % of the nodes are killed (tasks aborted, sockets closed), the
//! survivors get `--heal-secs` to heal, and a row per step gives the fraction of the
//! survivors that received each later update.
//!
//! The paper propagated the whole local store every 5 s for 30 minutes on 70 EC2
//! machines; this run is shorter (`--rounds` intervals of `--interval-ms`) and on one
//! machine, so compare the shape of Fig. 11 (bytes vs nodes, both overlays), not the
//! totals.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use granary_overlay::{
    ClientServer, Delivery, DriverConfig, Overlay, OverlayNode, PeerId, PeerToPeer, Role,
};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::report::{ReportError, Reporter};

/// Options of `granary-bench overlay`.
#[derive(Debug, Args)]
pub(crate) struct OverlayArgs {
    /// Cluster sizes. Default 32,64,128 (the paper's: 32,64,128,256,512,1024);
    /// `--quick`: 32.
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Overlays: `peer-to-peer`, `client-server`, comma-separated. Default both.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "client-server,peer-to-peer"
    )]
    overlays: Vec<String>,
    /// Servers of the client-server overlay.
    #[arg(long, default_value_t = 1)]
    servers: usize,
    /// Ads (counters).
    #[arg(long, default_value_t = 8)]
    ads: usize,
    /// Measured propagation rounds. Default 8; `--quick`: 4.
    #[arg(long)]
    rounds: Option<usize>,
    /// Propagation interval, milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Clients that see an ad in each interval (each then propagates its slots). A
    /// fixed number, so the work per interval grows with the nodes each update must
    /// reach, not also with the updates: 1,024 nodes share two cores here.
    #[arg(long, default_value_t = 16)]
    impressions: usize,
    /// The clients that see ads, a fixed random pool (the others only receive). The
    /// paper's clients all propagated every 5 s, so every node's broadcast tree formed
    /// in the first interval; a pool that all broadcast in the warm-up round stands in
    /// for that here, where 1,024 nodes share two cores.
    #[arg(long, default_value_t = 32)]
    active_clients: usize,
    /// Cumulative fractions of the nodes killed on peer-to-peer, comma-separated
    /// (empty: no kills).
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.3,0.5")]
    kills: Vec<f64>,
    /// Seconds the survivors get to heal after each kill step.
    #[arg(long, default_value_t = 5.0, value_parser = crate::seconds::parse_seconds)]
    heal_secs: f64,
    /// Seed of the impressions and kills.
    #[arg(long, default_value_t = 16)]
    seed: u64,
    /// A short run for tests.
    #[arg(long)]
    quick: bool,
    /// Append the rows to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write charts (bytes vs nodes, reach after kills) into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Why the scenario failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OverlayBenchError {
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// The async runtime could not start.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    /// A node could not start or answer.
    #[error(transparent)]
    Driver(#[from] granary_overlay::DriverError),
    /// The nodes did not join in time.
    #[error("{0}")]
    Join(String),
    /// Not enough file descriptors for the largest size.
    #[error("{needed} file descriptors needed for {nodes} nodes, the limit is {limit} (raise `ulimit -n`)")]
    Descriptors {
        /// Nodes of the size.
        nodes: usize,
        /// What it needs, roughly.
        needed: u64,
        /// RLIMIT_NOFILE.
        limit: u64,
    },
    /// Writing a row failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Drawing the charts failed.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}

/// One row.
#[derive(Debug, Serialize)]
struct Row {
    scenario: &'static str,
    mode: &'static str,
    nodes: usize,
    actors: usize,
    payload_bytes: usize,
    messages: usize,
    seconds: f64,
    msgs_per_sec: f64,
    processes: usize,
    servers: usize,
    rounds: usize,
    interval_ms: u64,
    killed_fraction: f64,
    bytes_sent: u64,
    bytes_per_node_per_round: f64,
    connections_max: u64,
    connections_mean: f64,
    view_max: usize,
    view_mean: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reach_all_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reach_all_max_ms: Option<f64>,
    updates_reaching_all: f64,
    receivers_fraction_min: f64,
    receivers_fraction_mean: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    converged_fraction: Option<f64>,
}

const COLUMNS: &[&str] = &[
    "scenario",
    "mode",
    "nodes",
    "actors",
    "payload_bytes",
    "messages",
    "seconds",
    "msgs_per_sec",
    "processes",
    "servers",
    "rounds",
    "interval_ms",
    "killed_fraction",
    "bytes_sent",
    "bytes_per_node_per_round",
    "connections_max",
    "connections_mean",
    "view_max",
    "view_mean",
    "reach_all_p50_ms",
    "reach_all_max_ms",
    "updates_reaching_all",
    "receivers_fraction_min",
    "receivers_fraction_mean",
    "converged_fraction",
];

/// An update on the wire: the sender's slots of every ad, and when it was sent.
#[derive(Debug, Serialize, Deserialize)]
struct Update {
    origin: u32,
    round: u32,
    sent_us: u64,
    slots: Vec<u64>,
}

/// One node's replica: every known node's slots, and their sum per ad.
struct Replica {
    slots: HashMap<u32, Vec<u64>>,
    totals: Vec<u64>,
}

impl Replica {
    fn new(ads: usize) -> Self {
        Self {
            slots: HashMap::new(),
            totals: vec![0; ads],
        }
    }

    /// Merges `origin`'s slots by maximum, keeping the totals.
    fn merge(&mut self, origin: u32, slots: &[u64]) {
        let mine = self
            .slots
            .entry(origin)
            .or_insert_with(|| vec![0; slots.len()]);
        for (ad, (have, got)) in mine.iter_mut().zip(slots).enumerate() {
            if *got > *have {
                if let Some(total) = self.totals.get_mut(ad) {
                    *total += *got - *have;
                }
                *have = *got;
            }
        }
    }
}

/// Who received each update: (origin, round) → (receivers, latest arrival after send).
type Arrivals = Arc<Mutex<HashMap<(u32, u32), (usize, Duration)>>>;

/// A node of either overlay, as the experiment drives it.
enum Node {
    P2p(OverlayNode<PeerToPeer>),
    Cs(OverlayNode<ClientServer>),
}

impl Node {
    fn addr(&self) -> PeerId {
        match self {
            Node::P2p(n) => n.addr(),
            Node::Cs(n) => n.addr(),
        }
    }

    fn broadcast(&self, payload: Bytes) -> Result<(), granary_overlay::DriverError> {
        match self {
            Node::P2p(n) => n.broadcast(payload),
            Node::Cs(n) => n.broadcast(payload),
        }
    }

    fn stats(&self) -> granary_overlay::StatsSnapshot {
        match self {
            Node::P2p(n) => n.stats(),
            Node::Cs(n) => n.stats(),
        }
    }

    async fn view(&self) -> Result<usize, granary_overlay::DriverError> {
        match self {
            Node::P2p(n) => n.inspect(|o| o.connections().len()).await,
            Node::Cs(n) => n.inspect(|o| o.connections().len()).await,
        }
    }

    fn kill(&self) {
        match self {
            Node::P2p(n) => n.kill(),
            Node::Cs(n) => n.kill(),
        }
    }
}

/// Runs `granary-bench overlay`.
pub(crate) fn run(args: OverlayArgs) -> Result<(), OverlayBenchError> {
    let sizes = args.sizes.clone().unwrap_or(if args.quick {
        vec![32]
    } else {
        vec![32, 64, 128]
    });
    let rounds = args.rounds.unwrap_or(if args.quick { 4 } else { 8 });
    if sizes.iter().any(|n| *n < 4 || *n > 60_000)
        || args.servers == 0
        || args.ads == 0
        || rounds == 0
        || args.impressions == 0
        || args.active_clients < args.impressions
        || args.kills.iter().any(|k| !(0.0..1.0).contains(k))
    {
        return Err(OverlayBenchError::Options(
            "sizes between 4 and 60,000, at least one server, ad, round and impression, \
             kills in [0, 1)"
                .into(),
        ));
    }
    let mut overlays: Vec<&'static str> = Vec::new();
    for name in &args.overlays {
        match name.as_str() {
            "peer-to-peer" => overlays.push("peer-to-peer"),
            "client-server" => overlays.push("client-server"),
            other => {
                return Err(OverlayBenchError::Options(format!(
                    "unknown overlay `{other}` (peer-to-peer, client-server)"
                )))
            }
        }
    }
    check_descriptors(sizes.iter().copied().max().unwrap_or(0), args.servers)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(OverlayBenchError::Runtime)?;
    let steps = (sizes.len() * overlays.len()) as u64;
    let mut reporter = Reporter::new(COLUMNS, args.csv.as_deref(), steps)?;
    for &n in &sizes {
        for &overlay in &overlays {
            reporter
                .progress()
                .set_message(format!("{overlay} at {n} nodes"));
            let rows = runtime.block_on(measure(&args, overlay, n, rounds))?;
            for row in rows {
                reporter.emit(&row)?;
            }
            reporter.progress().inc(1);
        }
    }
    let rows = reporter.finish_rows();
    if let Some(dir) = &args.plot {
        for path in crate::plot::plot_rows("overlay", &rows, dir)? {
            eprintln!("chart: {}", path.display());
        }
    }
    Ok(())
}

/// Refuses a size this process cannot hold open: each node has a listener, one socket
/// per connection it holds (peer-to-peer: at most 8 in its active view, plus a few
/// short-lived ones), and on client-server every client costs each server one more.
fn check_descriptors(n: usize, servers: usize) -> Result<(), OverlayBenchError> {
    let needed = (n as u64) * 14 + (n * servers) as u64 * 2 + 256;
    let limit = descriptor_limit();
    match limit {
        Some(limit) if limit < needed => Err(OverlayBenchError::Descriptors {
            nodes: n,
            needed,
            limit,
        }),
        _ => Ok(()),
    }
}

/// RLIMIT_NOFILE's soft limit, read from /proc (no unsafe code needed).
fn descriptor_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Node `i`'s listen address: its own loopback address.
fn bind(overlay: &str, i: usize) -> SocketAddr {
    let second = if overlay == "peer-to-peer" { 1 } else { 2 };
    SocketAddr::from((
        Ipv4Addr::new(127, second, (i / 250) as u8, (i % 250) as u8 + 1),
        0,
    ))
}

/// Starts `n` nodes of `overlay`, joined; returns them with their delivery inboxes.
async fn start_nodes(
    overlay: &str,
    n: usize,
    servers: usize,
) -> Result<(Vec<Node>, Vec<UnboundedReceiver<Delivery>>), OverlayBenchError> {
    let config = DriverConfig::default();
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    let mut inboxes = Vec::with_capacity(n);
    for i in 0..n {
        let (node, inbox) = if overlay == "peer-to-peer" {
            let (node, inbox) = OverlayNode::start(
                bind(overlay, i),
                |me| PeerToPeer::for_cluster_size(me, n, i as u64 + 1),
                config.clone(),
            )
            .await?;
            // Join through a random earlier node, as nodes arrive over time.
            let contacts = if i == 0 {
                vec![]
            } else {
                vec![nodes[(i * 7919) % i].addr()]
            };
            node.join(contacts)?;
            (Node::P2p(node), inbox)
        } else {
            let role = if i < servers {
                Role::Server
            } else {
                Role::Client
            };
            let (node, inbox) = OverlayNode::start(
                bind(overlay, i),
                |me| ClientServer::new(me, role),
                config.clone(),
            )
            .await?;
            let contacts = nodes.first().map(|s| vec![s.addr()]).unwrap_or_default();
            node.join(contacts)?;
            (Node::Cs(node), inbox)
        };
        nodes.push(node);
        inboxes.push(inbox);
        // Pace the joins a little, as the paper's nodes arrived over time.
        if i % 16 == 15 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Joined: every node has at least one connection in its view (client-server: a
    // client sees every server).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ready = true;
        for (i, node) in nodes.iter().enumerate() {
            let view = node.view().await?;
            let enough = match overlay {
                "client-server" if i >= servers => view == servers,
                "client-server" => view == n - 1,
                _ => view > 0,
            };
            if !enough {
                ready = false;
                break;
            }
        }
        if ready {
            break;
        }
        if Instant::now() >= deadline {
            return Err(OverlayBenchError::Join(format!(
                "{n} {overlay} nodes did not all join within 60 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((nodes, inboxes))
}

/// Runs one size on one overlay; the rows (one, plus one per kill step on
/// peer-to-peer).
async fn measure(
    args: &OverlayArgs,
    overlay: &'static str,
    n: usize,
    rounds: usize,
) -> Result<Vec<Row>, OverlayBenchError> {
    let servers = args.servers.min(n - 1);
    let (nodes, inboxes) = start_nodes(overlay, n, servers).await?;
    // Client-server views are whole once joined (`start_nodes`); HyParView's keep
    // changing while joins walk the overlay: measure once they have stopped.
    if overlay == "peer-to-peer" {
        views_settled(&nodes).await?;
    }

    let epoch = Instant::now();
    let arrivals: Arrivals = Arc::new(Mutex::new(HashMap::new()));
    let replicas: Vec<Arc<Mutex<Replica>>> = (0..n)
        .map(|_| Arc::new(Mutex::new(Replica::new(args.ads))))
        .collect();
    let mut apps = Vec::new();
    for (inbox, replica) in inboxes.into_iter().zip(&replicas) {
        apps.push(tokio::spawn(app(
            inbox,
            replica.clone(),
            arrivals.clone(),
            epoch,
        )));
    }

    let mut rng = StdRng::seed_from_u64(args.seed ^ n as u64);
    let mut alive: Vec<usize> = (0..n).collect();
    let mut truth = vec![0u64; args.ads];
    let clients: Vec<usize> = (servers..n).collect();
    let pool: Vec<usize> = clients
        .choose_multiple(&mut rng, args.active_clients)
        .copied()
        .collect();
    // One unmeasured round first in which every client of the pool propagates: on
    // peer-to-peer an origin's first broadcast floods every active link and shapes its
    // tree (duplicates prune links to lazy), as the first interval did in the paper's
    // 30-minute runs.
    let mut next_round = 0;
    let mut warm_up = Vec::new();
    propagate(
        args,
        &nodes,
        &replicas,
        &pool,
        pool.len(),
        1,
        &mut truth,
        &mut rng,
        epoch,
        &mut next_round,
        &mut warm_up,
    )
    .await?;
    // The trees are formed once the warm-up's updates have spread.
    spread(&arrivals, &warm_up, n - 1).await;
    let mut rows = Vec::new();
    let mut steps: Vec<f64> = vec![0.0];
    if overlay == "peer-to-peer" {
        steps.extend(args.kills.iter().copied());
    }
    for killed_fraction in steps {
        if killed_fraction > 0.0 {
            let target = (n as f64 * killed_fraction).round() as usize;
            let already = n - alive.len();
            alive.shuffle(&mut rng);
            for _ in already..target {
                if let Some(victim) = alive.pop() {
                    nodes[victim].kill();
                }
            }
            alive.sort_unstable();
            tokio::time::sleep(Duration::from_secs_f64(args.heal_secs)).await;
        }
        let bytes_before: u64 = alive.iter().map(|i| nodes[*i].stats().bytes_sent).sum();
        arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let started = Instant::now();
        let mut sent: Vec<(u32, u32)> = Vec::new();
        let live_pool: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|i| alive.binary_search(i).is_ok())
            .collect();
        let per_round = args.impressions.min(live_pool.len());
        let payload_bytes = propagate(
            args,
            &nodes,
            &replicas,
            &live_pool,
            per_round,
            rounds,
            &mut truth,
            &mut rng,
            epoch,
            &mut next_round,
            &mut sent,
        )
        .await?;
        // Until the updates have spread (or, after kills, stopped spreading).
        spread(&arrivals, &sent, alive.len() - 1).await;
        let seconds = started.elapsed().as_secs_f64();
        let bytes_sent: u64 = alive
            .iter()
            .map(|i| nodes[*i].stats().bytes_sent)
            .sum::<u64>()
            - bytes_before;
        let receivers = alive.len() - 1;
        let (mut reach_ms, mut fractions) = (Vec::new(), Vec::new());
        {
            let arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
            for key in &sent {
                let (count, latest) = arrivals.get(key).copied().unwrap_or_default();
                fractions.push(count as f64 / receivers as f64);
                if count >= receivers {
                    reach_ms.push(latest.as_secs_f64() * 1000.0);
                }
            }
        }
        reach_ms.sort_by(f64::total_cmp);
        let mut connections = Vec::new();
        let mut views = Vec::new();
        for &i in &alive {
            connections.push(nodes[i].stats().open_connections);
            views.push(nodes[i].view().await?);
        }
        let converged_fraction = (killed_fraction == 0.0).then(|| {
            let agree = alive
                .iter()
                .filter(|i| {
                    replicas[**i]
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .totals
                        == truth
                })
                .count();
            agree as f64 / alive.len() as f64
        });
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        rows.push(Row {
            scenario: "overlay",
            mode: overlay,
            nodes: n,
            actors: 0,
            payload_bytes,
            messages: sent.len(),
            seconds,
            msgs_per_sec: sent.len() as f64 / seconds,
            processes: 1,
            servers: if overlay == "client-server" {
                servers
            } else {
                0
            },
            rounds,
            interval_ms: args.interval_ms,
            killed_fraction,
            bytes_sent,
            bytes_per_node_per_round: bytes_sent as f64 / (alive.len() * rounds) as f64,
            connections_max: connections.iter().copied().max().unwrap_or(0),
            connections_mean: mean(&connections.iter().map(|c| *c as f64).collect::<Vec<_>>()),
            view_max: views.iter().copied().max().unwrap_or(0),
            view_mean: mean(&views.iter().map(|v| *v as f64).collect::<Vec<_>>()),
            reach_all_p50_ms: reach_ms.get(reach_ms.len() / 2).copied(),
            reach_all_max_ms: reach_ms.last().copied(),
            updates_reaching_all: reach_ms.len() as f64 / sent.len().max(1) as f64,
            receivers_fraction_min: fractions.iter().copied().fold(1.0, f64::min),
            receivers_fraction_mean: mean(&fractions),
            converged_fraction,
        });
    }
    for node in &nodes {
        node.kill();
    }
    for app in apps {
        app.abort();
    }
    Ok(rows)
}

/// How often the convergence waits below look.
const POLL: Duration = Duration::from_millis(100);

/// How long the view sizes must stay the same to count as settled.
const VIEWS_QUIET: Duration = Duration::from_secs(1);

/// How long no update may arrive anywhere before an update that has not reached
/// every node counts as lost: longer than Plumtree's repair of a missing update
/// (announced within 250 ms, grafted 750 ms later, then every 500 ms).
const SPREAD_QUIET: Duration = Duration::from_secs(3);

/// When a watched value last changed: what both waits below count their quiet from.
struct Settling<T> {
    last: Option<T>,
    since: Instant,
}

impl<T: PartialEq> Settling<T> {
    fn new() -> Self {
        Self {
            last: None,
            since: Instant::now(),
        }
    }

    /// Notes the value now; whether it has stayed the same for `quiet`.
    fn unchanged_for(&mut self, now: T, quiet: Duration) -> bool {
        if self.last.as_ref() != Some(&now) {
            self.last = Some(now);
            self.since = Instant::now();
            return false;
        }
        self.since.elapsed() >= quiet
    }
}

/// Waits until every peer-to-peer node's view size has stayed the same for
/// [`VIEWS_QUIET`] (joins forwarded, full views made room), at most 60 s.
async fn views_settled(nodes: &[Node]) -> Result<(), OverlayBenchError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut views = Settling::new();
    loop {
        let mut now = Vec::with_capacity(nodes.len());
        for node in nodes {
            now.push(node.view().await?);
        }
        if views.unchanged_for(now, VIEWS_QUIET) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(OverlayBenchError::Join(format!(
                "the views of {} peer-to-peer nodes kept changing for 60 s",
                nodes.len()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until each of `updates` has reached `receivers` nodes, or no update has
/// arrived anywhere for [`SPREAD_QUIET`] (after kills some never reach every
/// survivor: the row counts how many did), at most 60 s.
async fn spread(arrivals: &Arrivals, updates: &[(u32, u32)], receivers: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut delivered = Settling::new();
    while Instant::now() < deadline {
        let (everywhere, total) = {
            let arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
            let everywhere = updates.iter().all(|u| {
                arrivals
                    .get(u)
                    .is_some_and(|(count, _)| *count >= receivers)
            });
            let total: usize = arrivals.values().map(|(count, _)| count).sum();
            (everywhere, total)
        };
        if everywhere || delivered.unchanged_for(total, SPREAD_QUIET) {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `rounds` propagation intervals: in each, `per_round` of `clients` see an ad,
/// increment their slot and broadcast their slots. Appends (origin, round) of every
/// update to `sent` (rounds are numbered on from `next_round`); returns the largest update's size.
#[allow(clippy::too_many_arguments)]
async fn propagate(
    args: &OverlayArgs,
    nodes: &[Node],
    replicas: &[Arc<Mutex<Replica>>],
    clients: &[usize],
    per_round: usize,
    rounds: usize,
    truth: &mut [u64],
    rng: &mut StdRng,
    epoch: Instant,
    next_round: &mut u32,
    sent: &mut Vec<(u32, u32)>,
) -> Result<usize, OverlayBenchError> {
    let mut payload_bytes = 0;
    // The impressions of an interval are spread evenly over it, as ads are seen at
    // random moments (a burst of all of them at once would measure queueing instead).
    let gap = Duration::from_millis(args.interval_ms) / per_round.max(1) as u32;
    let mut pace = tokio::time::interval(gap);
    for _ in 0..rounds {
        let round = *next_round;
        *next_round += 1;
        for &i in clients.choose_multiple(rng, per_round) {
            pace.tick().await;
            let ad = rng.random_range(0..args.ads);
            truth[ad] += 1;
            let slots = {
                let mut replica = replicas[i].lock().unwrap_or_else(PoisonError::into_inner);
                let mut slots = replica
                    .slots
                    .get(&(i as u32))
                    .cloned()
                    .unwrap_or_else(|| vec![0; args.ads]);
                slots[ad] += 1;
                replica.merge(i as u32, &slots);
                slots
            };
            let update = Update {
                origin: i as u32,
                round,
                sent_us: epoch.elapsed().as_micros() as u64,
                slots,
            };
            let Ok(bytes) = postcard::to_allocvec(&update) else {
                continue;
            };
            payload_bytes = payload_bytes.max(bytes.len());
            nodes[i].broadcast(Bytes::from(bytes))?;
            sent.push((i as u32, round));
        }
    }
    Ok(payload_bytes)
}

/// One node's application: merges every update into its replica and records when it
/// arrived.
async fn app(
    mut inbox: UnboundedReceiver<Delivery>,
    replica: Arc<Mutex<Replica>>,
    arrivals: Arrivals,
    epoch: Instant,
) {
    while let Some(delivery) = inbox.recv().await {
        let Ok(update) = postcard::from_bytes::<Update>(&delivery.payload) else {
            continue;
        };
        replica
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .merge(update.origin, &update.slots);
        let after = epoch
            .elapsed()
            .saturating_sub(Duration::from_micros(update.sent_us));
        let mut arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = arrivals.entry((update.origin, update.round)).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(after);
    }
}
