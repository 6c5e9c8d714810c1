//! The multi-process part of `cluster`: N node processes on 127.0.0.x, one join,
//! an idle window and a `kill -9`.
//!
//! Phases for one N (every wait has a limit; a node that dies or hangs fails the run):
//! 1. N − 1 nodes start (node i listens on 127.0.0.(i+2), all join through node 0) and
//!    wait until each sees N − 1 Up;
//! 2. the N-th node joins: time from its `Cluster::start` until every node has it Up;
//! 3. idle window: nothing happens; every Down reported is a false Down; gossip bytes
//!    per node per second are the nodes' own counters across the window;
//! 4. one node (not the seed) is killed with SIGKILL: time until each survivor reports
//!    it Down (p50 and max over survivors).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::child::{Child, Line};
use super::node::now_micros;
use super::{ClusterBenchError, NodeTransport};

/// What one N produced.
#[derive(Debug, Clone)]
pub(crate) struct ProcessResult {
    /// Nodes after the join (N).
    pub(crate) nodes: usize,
    /// Joining node's start until it was Up on every node, milliseconds.
    pub(crate) join_up_ms: f64,
    /// Per survivor: kill until it reported the victim Down, milliseconds, sorted.
    pub(crate) down_ms: Vec<f64>,
    /// Down reports about live nodes (before the kill, or about anyone but the victim).
    pub(crate) false_downs: u64,
    /// Length of the idle window, seconds.
    pub(crate) idle_secs: f64,
    /// Gossip frames sent by all nodes during the idle window.
    pub(crate) idle_messages: u64,
    /// Gossip bytes sent per node per second during the idle window.
    pub(crate) bytes_per_node_per_sec: f64,
}

/// What the parent knows about one node from its lines.
#[derive(Debug, Default)]
struct NodeView {
    starting: Option<u64>,
    up: Option<(u64, SocketAddr)>,
    /// Last status and the time it was reported, per member address.
    members: HashMap<SocketAddr, (String, u64)>,
    stats: Option<(u64, u64)>,
}

impl NodeView {
    fn sees_up(&self, addr: SocketAddr) -> bool {
        self.members.get(&addr).is_some_and(|(s, _)| s == "Up")
    }

    fn up_count(&self) -> usize {
        self.members.values().filter(|(s, _)| s == "Up").count()
    }
}

/// All nodes of one run and the lines they print.
struct Run {
    exe: std::path::PathBuf,
    transport: NodeTransport,
    children: Vec<Option<Child>>,
    views: Vec<NodeView>,
    tx: mpsc::UnboundedSender<Line>,
    rx: mpsc::UnboundedReceiver<Line>,
    /// Down reports so far: (observer, address, time).
    downs: Vec<(usize, SocketAddr, u64)>,
}

impl Run {
    fn new(transport: NodeTransport) -> Result<Self, ClusterBenchError> {
        let exe = std::env::current_exe().map_err(ClusterBenchError::Runtime)?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Self {
            exe,
            transport,
            children: Vec::new(),
            views: Vec::new(),
            tx,
            rx,
            downs: Vec::new(),
        })
    }

    fn spawn(&mut self, seed: Option<SocketAddr>) -> Result<usize, ClusterBenchError> {
        let index = self.children.len();
        let ip = u8::try_from(index + 2).map_err(|_| ClusterBenchError::TooManyNodes)?;
        let mut command = Command::new(&self.exe);
        command
            .arg("cluster-node")
            .arg("--listen")
            .arg(format!("127.0.0.{ip}:0"))
            .arg("--transport")
            .arg(self.transport.name());
        if let Some(seed) = seed {
            command.arg("--seed").arg(seed.to_string());
        }
        let child = Child::spawn(index, command, self.tx.clone())?;
        self.children.push(Some(child));
        self.views.push(NodeView::default());
        Ok(index)
    }

    fn addr(&self, index: usize) -> Option<SocketAddr> {
        self.views[index].up.map(|(_, a)| a)
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.children.len()).filter(|&i| self.children[i].is_some())
    }

    fn apply(&mut self, (index, line): Line) -> Result<(), ClusterBenchError> {
        let bad = || ClusterBenchError::Protocol {
            index,
            line: line.clone(),
        };
        let mut words = line.split_whitespace();
        let view = &mut self.views[index];
        match words.next() {
            Some("starting") => {
                view.starting = Some(words.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?);
            }
            Some("up") => {
                let t = words.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                let a = words.next().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
                view.up = Some((t, a));
            }
            Some("member") => {
                let t: u64 = words.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                let status = words.next().ok_or_else(bad)?.to_string();
                let a: SocketAddr = words.next().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
                if status == "Down" {
                    self.downs.push((index, a, t));
                }
                view.members.insert(a, (status, t));
            }
            Some("stats") => {
                let bytes = words.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                let msgs = words.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                view.stats = Some((bytes, msgs));
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    /// Reads lines until `done` holds, failing after `limit`.
    async fn until(
        &mut self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Run) -> bool,
    ) -> Result<(), ClusterBenchError> {
        let deadline = Instant::now() + limit;
        while !done(self) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(line)) => self.apply(line)?,
                // `self.tx` keeps the channel open, so `None` cannot happen.
                Ok(None) => return Err(ClusterBenchError::NodeExited(what.to_string())),
                Err(_) => {
                    return Err(ClusterBenchError::Timeout {
                        waiting_for: what.to_string(),
                        after: limit,
                    })
                }
            }
        }
        Ok(())
    }

    /// Reads lines for `window` (nothing is expected; they update the views).
    async fn idle(&mut self, window: Duration) -> Result<(), ClusterBenchError> {
        let deadline = Instant::now() + window;
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.apply(line)?;
        }
        Ok(())
    }

    /// Asks every live node for its counters; (bytes, messages) summed.
    async fn stats(&mut self, limit: Duration) -> Result<(u64, u64), ClusterBenchError> {
        let live: Vec<usize> = self.live().collect();
        for &i in &live {
            self.views[i].stats = None;
            if let Some(child) = self.children[i].as_mut() {
                child.send("stats")?;
            }
        }
        self.until("stats from every node", limit, |run| {
            live.iter().all(|&i| run.views[i].stats.is_some())
        })
        .await?;
        Ok(live
            .iter()
            .filter_map(|&i| self.views[i].stats)
            .fold((0, 0), |(b, m), (b2, m2)| (b + b2, m + m2)))
    }
}

/// Runs one N: see the module docs.
pub(crate) async fn measure(
    nodes: usize,
    transport: NodeTransport,
    idle: Duration,
    limit: Duration,
) -> Result<ProcessResult, ClusterBenchError> {
    if nodes < 3 {
        return Err(ClusterBenchError::TooFewNodes);
    }
    let mut run = Run::new(transport)?;
    // 1. N − 1 nodes.
    run.spawn(None)?;
    run.until("node 0 up", limit, |r| r.views[0].up.is_some())
        .await?;
    let seed = run.addr(0);
    for _ in 1..nodes - 1 {
        run.spawn(seed)?;
    }
    let first = nodes - 1;
    run.until("the first N-1 nodes to see each other Up", limit, |r| {
        (0..first).all(|i| r.views[i].up.is_some() && r.views[i].up_count() == first)
    })
    .await?;
    // 2. The measured join.
    let joiner = run.spawn(seed)?;
    run.until("the joiner to be Up everywhere", limit, |r| {
        r.addr(joiner)
            .is_some_and(|a| (0..nodes).all(|i| r.views[i].sees_up(a)))
    })
    .await?;
    let joiner_addr = run.addr(joiner).ok_or(ClusterBenchError::TooFewNodes)?;
    let started = run.views[joiner].starting.unwrap_or_default();
    let seen_everywhere = (0..nodes)
        .filter_map(|i| run.views[i].members.get(&joiner_addr).map(|(_, t)| *t))
        .max()
        .unwrap_or(started);
    let join_up_ms = seen_everywhere.saturating_sub(started) as f64 / 1e3;
    run.until("every node to see N Up", limit, |r| {
        (0..nodes).all(|i| r.views[i].up_count() == nodes)
    })
    .await?;
    // 3. Idle window.
    let (bytes0, msgs0) = run.stats(limit).await?;
    let idle_started = std::time::Instant::now();
    run.idle(idle).await?;
    let (bytes1, msgs1) = run.stats(limit).await?;
    let idle_secs = idle_started.elapsed().as_secs_f64();
    let idle_messages = msgs1.saturating_sub(msgs0);
    let bytes_per_node_per_sec = bytes1.saturating_sub(bytes0) as f64 / nodes as f64 / idle_secs;
    // 4. kill -9 a node that is not the seed.
    let victim = nodes / 2;
    let victim_addr = run.addr(victim).ok_or(ClusterBenchError::TooFewNodes)?;
    let killed_at = now_micros();
    if let Some(mut child) = run.children[victim].take() {
        child.kill();
    }
    let survivors: Vec<usize> = run.live().collect();
    run.until("every survivor to see the killed node Down", limit, |r| {
        survivors.iter().all(|&i| {
            r.views[i]
                .members
                .get(&victim_addr)
                .is_some_and(|(s, _)| s == "Down")
        })
    })
    .await?;
    let mut down_ms: Vec<f64> = survivors
        .iter()
        .filter_map(|&i| run.views[i].members.get(&victim_addr))
        .map(|(_, t)| t.saturating_sub(killed_at) as f64 / 1e3)
        .collect();
    down_ms.sort_by(f64::total_cmp);
    let false_downs = run
        .downs
        .iter()
        .filter(|(_, addr, t)| *addr != victim_addr || *t < killed_at)
        .count() as u64;
    Ok(ProcessResult {
        nodes,
        join_up_ms,
        down_ms,
        false_downs,
        idle_secs,
        idle_messages,
        bytes_per_node_per_sec,
    })
}
