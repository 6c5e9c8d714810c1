//! A peer process: started, talked to by lines on stdin/stdout, killed on drop.
//!
//! The process handling (Ctrl-C registry, kill on drop) is the shared
//! [`ChildProcess`]; this module adds the line protocol with timeouts.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use tokio::sync::mpsc;

use super::RemoteError;
use crate::child_process::ChildProcess;

/// On Ctrl-C, kill every peer process still alive and exit with status 130.
pub(crate) fn kill_children_on_ctrl_c() {
    crate::child_process::kill_children_on_ctrl_c("peer processes");
}

/// Starts this program's `remote-node` subcommand with `args` as the peer `what` and
/// waits for its `listening ADDR` line: the peer and the address it listens on.
pub(crate) async fn start_remote_node(
    what: &str,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
) -> Result<(Peer, SocketAddr), RemoteError> {
    let exe = std::env::current_exe().map_err(|source| RemoteError::Spawn {
        what: what.into(),
        source,
    })?;
    let mut command = Command::new(exe);
    command.arg("remote-node").args(args);
    let mut peer = Peer::spawn(what, command)?;
    let line = peer.expect("listening", Duration::from_secs(30)).await?;
    let addr = line.parse().map_err(|_| RemoteError::PeerProtocol {
        what: what.into(),
        line: line.clone(),
        expected: "listening ADDR",
    })?;
    Ok((peer, addr))
}

/// A running peer process.
pub(crate) struct Peer {
    what: String,
    process: ChildProcess,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Peer {
    /// Starts `command` with piped stdin/stdout (stderr inherited, so its errors
    /// reach the user); `what` names it in errors.
    pub(crate) fn spawn(what: impl Into<String>, command: Command) -> Result<Peer, RemoteError> {
        let what = what.into();
        let (tx, lines) = mpsc::unbounded_channel();
        let process =
            ChildProcess::spawn(command, move |line| tx.send(line).is_ok()).map_err(|source| {
                RemoteError::Spawn {
                    what: what.clone(),
                    source,
                }
            })?;
        Ok(Peer {
            what,
            process,
            lines,
        })
    }

    /// The next line the peer prints, within `timeout`.
    pub(crate) async fn line(
        &mut self,
        waiting_for: &str,
        timeout: Duration,
    ) -> Result<String, RemoteError> {
        match tokio::time::timeout(timeout, self.lines.recv()).await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => {
                let status = self.process.exit_status();
                Err(RemoteError::PeerExited {
                    what: self.what.clone(),
                    waiting_for: waiting_for.to_string(),
                    detail: status.map(|s| format!(" ({s})")).unwrap_or_default(),
                })
            }
            Err(_) => Err(RemoteError::PeerTimeout {
                what: self.what.clone(),
                waiting_for: waiting_for.to_string(),
                after: timeout,
            }),
        }
    }

    /// Waits for a line that starts with `prefix` and returns the rest of it
    /// (other lines before it are an error).
    pub(crate) async fn expect(
        &mut self,
        prefix: &'static str,
        timeout: Duration,
    ) -> Result<String, RemoteError> {
        let line = self.line(prefix, timeout).await?;
        match line.strip_prefix(prefix) {
            Some(rest) => Ok(rest.trim().to_string()),
            None => Err(RemoteError::PeerProtocol {
                what: self.what.clone(),
                line,
                expected: prefix,
            }),
        }
    }

    /// Writes one command line to the peer's stdin.
    pub(crate) fn send(&mut self, line: &str) -> Result<(), RemoteError> {
        self.process
            .send(line)
            .map_err(|source| RemoteError::PeerStdin {
                what: self.what.clone(),
                source,
            })
    }
}
