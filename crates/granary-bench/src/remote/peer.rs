//! A peer process: started, talked to by lines on stdin/stdout, killed on drop.
//!
//! Every child is also listed in a process-wide registry so a Ctrl-C kills it
//! before the bench exits ([`kill_children_on_ctrl_c`]); granary's own peers
//! additionally exit when their stdin closes, which covers a parent killed with
//! SIGKILL.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

use super::RemoteError;

/// Children alive right now, for the Ctrl-C handler.
static CHILDREN: Mutex<Vec<Arc<Mutex<Child>>>> = Mutex::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// On Ctrl-C, kill every peer process still alive and exit with status 130.
pub(crate) fn kill_children_on_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            for child in lock(&CHILDREN).drain(..) {
                let mut child = lock(&child);
                let _ = child.kill();
                let _ = child.wait();
            }
            eprintln!("granary-bench: interrupted; peer processes killed");
            std::process::exit(130);
        }
    });
}

/// A running peer process.
pub(crate) struct Peer {
    what: String,
    child: Arc<Mutex<Child>>,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Peer {
    /// Starts `command` with piped stdin/stdout (stderr inherited, so its errors
    /// reach the user); `what` names it in errors.
    pub(crate) fn spawn(
        what: impl Into<String>,
        mut command: Command,
    ) -> Result<Peer, RemoteError> {
        let what = what.into();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| RemoteError::Spawn {
                what: what.clone(),
                source,
            })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (tx, lines) = mpsc::unbounded_channel();
        if let Some(stdout) = stdout {
            // A plain thread: the pipe is blocking, and the reader ends with the child.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let child = Arc::new(Mutex::new(child));
        lock(&CHILDREN).push(child.clone());
        Ok(Peer {
            what,
            child,
            stdin,
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
                let status = lock(&self.child).try_wait().ok().flatten();
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
        let what = self.what.clone();
        let stdin = self.stdin.as_mut().ok_or_else(|| RemoteError::PeerStdin {
            what: what.clone(),
            source: std::io::Error::other("stdin closed"),
        })?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|source| RemoteError::PeerStdin { what, source })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Closing stdin asks granary's peer to exit; the kill makes sure of it.
        drop(self.stdin.take());
        {
            let mut child = lock(&self.child);
            let _ = child.kill();
            let _ = child.wait();
        }
        lock(&CHILDREN).retain(|c| !Arc::ptr_eq(c, &self.child));
    }
}
