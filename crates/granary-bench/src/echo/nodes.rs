//! The parent's side of the three `echo-node` processes: start them (the first forms
//! the cluster, the others join through it), on 127.0.0.1 or one on each host of a
//! chaos test bed, talk to them line by line with a time limit on every answer, kill
//! them when dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use granary_testbed::{HostId, Testbed};
use tokio::sync::mpsc;

use super::node::NodeArgs;
use super::wire::Options;
use super::EchoError;
use crate::child_process::ChildProcess;

/// One node process and the lines it prints.
struct NodeProcess {
    name: String,
    process: ChildProcess,
    lines: mpsc::UnboundedReceiver<String>,
}

impl NodeProcess {
    /// This binary with `args`, inside network namespace `namespace` when given
    /// (`ip netns exec` execs it, so killing the child kills the node).
    fn spawn(name: String, args: Vec<String>, namespace: Option<&str>) -> Result<Self, EchoError> {
        let exe = std::env::current_exe().map_err(EchoError::Runtime)?;
        let mut command = match namespace {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace]).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        command.args(args);
        let (tx, lines) = mpsc::unbounded_channel();
        let process =
            ChildProcess::spawn(command, move |line| tx.send(line).is_ok()).map_err(|source| {
                EchoError::Spawn {
                    what: name.clone(),
                    source,
                }
            })?;
        Ok(Self {
            name,
            process,
            lines,
        })
    }

    /// The next line that starts with `prefix` (its rest), within `timeout`; an
    /// `error ...` line or an exit is an error.
    async fn expect(&mut self, prefix: &str, timeout: Duration) -> Result<String, EchoError> {
        let line = match tokio::time::timeout(timeout, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => {
                let status = self.process.exit_status();
                return Err(EchoError::NodeExited {
                    what: self.name.clone(),
                    waiting_for: prefix.to_string(),
                    detail: status.map(|s| format!(" ({s})")).unwrap_or_default(),
                });
            }
            Err(_) => {
                return Err(EchoError::NodeTimeout {
                    what: self.name.clone(),
                    waiting_for: prefix.to_string(),
                    after: timeout,
                })
            }
        };
        match line.strip_prefix(prefix) {
            Some(rest) => Ok(rest.trim().to_string()),
            None => Err(EchoError::NodeAnswer {
                what: self.name.clone(),
                line,
            }),
        }
    }

    fn send(&mut self, line: &str) -> Result<(), EchoError> {
        self.process
            .send(line)
            .map_err(|source| EchoError::NodeStdin {
                what: self.name.clone(),
                source,
            })
    }
}

/// Three node processes forming one cluster with the same options.
pub(crate) struct Nodes {
    nodes: Vec<NodeProcess>,
    /// Where each node listens, in start order.
    pub(crate) addrs: Vec<SocketAddr>,
}

/// Limit for a node to start and for the cluster to form.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Nodes {
    /// Starts `count` nodes with `options` and waits until all are Up everywhere: on
    /// 127.0.0.1, or node `i` on host `i` of `bed` (which needs `count` hosts).
    pub(crate) async fn start(
        count: usize,
        options: Options,
        bed: Option<&Testbed>,
    ) -> Result<Self, EchoError> {
        let mut nodes = Vec::with_capacity(count);
        let mut addrs: Vec<SocketAddr> = Vec::with_capacity(count);
        for i in 0..count {
            let seed = addrs.first().copied();
            let (listen, namespace) = match bed {
                Some(bed) => {
                    let host = bed
                        .host(HostId(i))
                        .map_err(|e| EchoError::Node(format!("test bed: {e}")))?;
                    (
                        SocketAddr::from((host.addr, 0)),
                        Some(host.namespace.as_str()),
                    )
                }
                None => (SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), None),
            };
            let mut node = NodeProcess::spawn(
                format!("echo node {i}"),
                NodeArgs::command_line(options, listen, seed),
                namespace,
            )?;
            let addr = node.expect("listening", START_TIMEOUT).await?;
            addrs.push(addr.parse().map_err(|_| EchoError::NodeAnswer {
                what: node.name.clone(),
                line: format!("listening {addr}"),
            })?);
            nodes.push(node);
        }
        let mut nodes = Self { nodes, addrs };
        nodes
            .all(&format!("members {count}"), "members", START_TIMEOUT)
            .await?;
        Ok(nodes)
    }

    /// Sends `line` to every node and waits for each one's `prefix` answer.
    pub(crate) async fn all(
        &mut self,
        line: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<(), EchoError> {
        for node in &mut self.nodes {
            node.send(line)?;
        }
        for node in &mut self.nodes {
            node.expect(prefix, timeout).await?;
        }
        Ok(())
    }

    /// Sends `line` to the first node (the load driver) and returns its `result` line.
    pub(crate) async fn drive(
        &mut self,
        line: &str,
        timeout: Duration,
    ) -> Result<String, EchoError> {
        let driver = self
            .nodes
            .first_mut()
            .ok_or_else(|| EchoError::Node("no node processes".into()))?;
        driver.send(line)?;
        driver.expect("result", timeout).await
    }
}
