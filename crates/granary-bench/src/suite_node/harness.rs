//! The harness side of the virtual-actor suite: starts node processes (this binary
//! with the hidden `node` subcommand) on 127.0.0.1, sends them requests, collects
//! their replies and log lines, kills and restarts them.
//!
//! Every node process is a [`ChildProcess`]: killed when dropped (so every error
//! path cleans up), killed on Ctrl-C, and exiting by itself when its stdin closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command as Process;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::protocol::{parse_reply, Command, Measured, Request};
use super::{Mode, PlacementArg};
use crate::child_process::ChildProcess;
use crate::report::ReportError;

/// How long a node process may take to start and join.
const START_LIMIT: Duration = Duration::from_secs(120);

/// Why a suite scenario failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SuiteError {
    /// The async runtime (or the path of this binary) could not be had.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    /// A node process could not be started or fed.
    #[error(transparent)]
    NodeProcess(#[from] crate::child_process::NodeProcessError),
    /// A node process exited while the harness waited for it.
    #[error("node process {index} exited ({status}) while the harness waited for {waiting_for}")]
    NodeExited {
        /// Which node.
        index: usize,
        /// Its exit status.
        status: String,
        /// What was awaited.
        waiting_for: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        /// What was awaited.
        waiting_for: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// A node answered a request with an error.
    #[error("node process {index} failed: {message}")]
    Node {
        /// Which node.
        index: usize,
        /// What it said.
        message: String,
    },
    /// The scenario's own check failed (lost messages, duplicates, bad results).
    #[error("{0}")]
    Check(String),
    /// Bad command-line values.
    #[error("{0}")]
    Usage(String),
    /// Writing the results failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Drawing the charts (`--plot`) failed.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}

/// A line a node printed, tagged with the node's slot.
pub(crate) type Line = (usize, String);

/// Node processes of one scenario run.
pub(crate) struct SuiteCluster {
    mode: Mode,
    store: String,
    placement: PlacementArg,
    exe: PathBuf,
    nodes: Vec<Option<ChildProcess>>,
    addrs: Vec<SocketAddr>,
    tx: mpsc::UnboundedSender<Line>,
    rx: mpsc::UnboundedReceiver<Line>,
    replies: HashMap<u64, (usize, Result<Measured, String>)>,
    log: Vec<Line>,
    next_id: u64,
}

impl SuiteCluster {
    /// Starts `count` node processes in `mode` with the state store `store` (virtual
    /// mode) and waits until they serve (virtual mode: until each sees all Up).
    pub(crate) async fn start(mode: Mode, count: usize, store: &str) -> Result<Self, SuiteError> {
        Self::start_placed(mode, count, store, PlacementArg::default()).await
    }

    /// [`Self::start`] with the scenario kinds placed by `placement` (virtual mode).
    pub(crate) async fn start_placed(
        mode: Mode,
        count: usize,
        store: &str,
        placement: PlacementArg,
    ) -> Result<Self, SuiteError> {
        crate::child_process::kill_children_on_ctrl_c("node processes");
        let exe = std::env::current_exe().map_err(SuiteError::Runtime)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut cluster = Self {
            mode,
            store: store.to_string(),
            placement,
            exe,
            nodes: Vec::new(),
            addrs: Vec::new(),
            tx,
            rx,
            replies: HashMap::new(),
            log: Vec::new(),
            next_id: 1,
        };
        for index in 0..count {
            let seed = cluster.addrs.first().copied();
            cluster.nodes.push(None);
            cluster.addrs.push(([127, 0, 0, 1], 0).into());
            cluster.launch(index, seed).await?;
        }
        if mode == Mode::Virtual {
            for index in 0..count {
                cluster
                    .request(index, Command::AwaitMembers { members: count }, START_LIMIT)
                    .await?;
            }
        }
        Ok(cluster)
    }

    /// Starts the process of slot `index` (joining through `seed` in virtual mode)
    /// and waits for its `listening` line.
    async fn launch(&mut self, index: usize, seed: Option<SocketAddr>) -> Result<(), SuiteError> {
        let mut command = Process::new(&self.exe);
        command
            .arg("node")
            .arg("--mode")
            .arg(self.mode.name())
            .arg("--store")
            .arg(&self.store);
        if self.mode == Mode::Virtual {
            command.arg("--placement").arg(self.placement.name());
        }
        if let (Mode::Virtual, Some(seed)) = (self.mode, seed) {
            command.arg("--seed").arg(seed.to_string());
        }
        let tx = self.tx.clone();
        let child = ChildProcess::spawn(command, move |line| tx.send((index, line)).is_ok())
            .map_err(|source| crate::child_process::NodeProcessError::Spawn { index, source })?;
        self.nodes[index] = Some(child);
        let what = format!("node process {index} to listen");
        let addr = self
            .wait_for(&what, START_LIMIT, |cluster| {
                cluster.log.iter().rev().find_map(|(from, line)| {
                    let addr = line.strip_prefix("listening ")?;
                    (*from == index)
                        .then(|| addr.parse::<SocketAddr>().ok())
                        .flatten()
                })
            })
            .await?;
        self.log
            .retain(|(from, line)| !(*from == index && line.starts_with("listening ")));
        self.addrs[index] = addr;
        Ok(())
    }

    /// The nodes' listen addresses, by slot.
    pub(crate) fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Sends `command` to node `index` and waits up to `limit` for its reply.
    pub(crate) async fn request(
        &mut self,
        index: usize,
        command: Command,
        limit: Duration,
    ) -> Result<Measured, SuiteError> {
        let id = self.next_id;
        self.next_id += 1;
        let what = format!("node {index} to answer {command:?}");
        let line = serde_json::to_string(&Request { id, command })
            .map_err(|e| SuiteError::Usage(format!("cannot encode a request: {e}")))?;
        let child = self.nodes[index]
            .as_mut()
            .ok_or_else(|| SuiteError::Usage(format!("node {index} is not running")))?;
        child
            .send(&line)
            .map_err(|source| crate::child_process::NodeProcessError::Stdin { index, source })?;
        let (from, reply) = self
            .wait_for(&what, limit, |cluster| cluster.replies.remove(&id))
            .await?;
        reply.map_err(|message| SuiteError::Node {
            index: from,
            message,
        })
    }

    /// Reads node lines until `found` returns something, failing after `limit` or
    /// when a live node process exits.
    async fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut found: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<T, SuiteError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = found(self) {
                return Ok(value);
            }
            if let Some((index, status)) = self.exited() {
                return Err(SuiteError::NodeExited {
                    index,
                    status,
                    waiting_for: what.to_string(),
                });
            }
            if Instant::now() >= deadline {
                return Err(SuiteError::Timeout {
                    waiting_for: what.to_string(),
                    after: limit,
                });
            }
            // Wake at least every half second to notice a node that died.
            let slice = (Instant::now() + Duration::from_millis(500)).min(deadline);
            if let Ok(Some(line)) = tokio::time::timeout_at(slice, self.rx.recv()).await {
                self.take(line);
            }
        }
    }

    /// Files one line: a reply, or a log line.
    fn take(&mut self, (index, line): Line) {
        match line.strip_prefix("reply ").and_then(parse_reply) {
            Some((id, reply)) => {
                self.replies.insert(id, (index, reply));
            }
            None => self.log.push((index, line)),
        }
    }

    /// A live node process that has exited, with its status.
    fn exited(&self) -> Option<(usize, String)> {
        self.nodes.iter().enumerate().find_map(|(index, node)| {
            let status = node.as_ref()?.exit_status()?;
            Some((index, status.to_string()))
        })
    }

    /// `kill -9` of node `index`; its slot stays empty until [`Self::restart`].
    pub(crate) fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].take() {
            child.kill();
        }
    }

    /// Starts a fresh process in the empty slot `index`, joining through a live node;
    /// answers once it sees `members` Up members.
    pub(crate) async fn restart(&mut self, index: usize, members: usize) -> Result<(), SuiteError> {
        let seed = (0..self.nodes.len())
            .find(|&i| self.nodes[i].is_some())
            .map(|i| self.addrs[i]);
        self.launch(index, seed).await?;
        if self.mode == Mode::Virtual {
            self.request(index, Command::AwaitMembers { members }, START_LIMIT)
                .await?;
        }
        Ok(())
    }

    /// Every log line printed so far (lines that are not replies), in order.
    pub(crate) fn take_log(&mut self) -> Vec<Line> {
        while let Ok(line) = self.rx.try_recv() {
            self.take(line);
        }
        std::mem::take(&mut self.log)
    }
}
