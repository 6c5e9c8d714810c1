//! Node processes of the `cluster` scenario: started, read line by line, killed.
//!
//! Every child is listed in a process-wide registry so a Ctrl-C kills it before the
//! bench exits ([`kill_children_on_ctrl_c`]); a dropped [`Child`] is killed too (so
//! every error path cleans up), and a node exits by itself when its stdin closes,
//! which covers a parent killed with SIGKILL.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use super::ClusterBenchError;

/// Children alive right now, for the Ctrl-C handler.
static CHILDREN: Mutex<Vec<Arc<Mutex<std::process::Child>>>> = Mutex::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// On Ctrl-C, kill every node process still alive and exit with status 130.
pub(crate) fn kill_children_on_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            for child in lock(&CHILDREN).drain(..) {
                let mut child = lock(&child);
                let _ = child.kill();
                let _ = child.wait();
            }
            eprintln!("granary-bench: interrupted; node processes killed");
            std::process::exit(130);
        }
    });
}

/// One line a child printed, tagged with the child's index.
pub(crate) type Line = (usize, String);

/// A running node process; killed (SIGKILL) when dropped.
pub(crate) struct Child {
    index: usize,
    child: Arc<Mutex<std::process::Child>>,
    stdin: Option<ChildStdin>,
}

impl Child {
    /// Starts `command` with piped stdin/stdout (stderr inherited, so a node's errors
    /// reach the user). Every stdout line goes to `lines` tagged with `index`; the
    /// sender is dropped when the child's stdout closes.
    pub(crate) fn spawn(
        index: usize,
        mut command: Command,
        lines: mpsc::UnboundedSender<Line>,
    ) -> Result<Child, ClusterBenchError> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| ClusterBenchError::Spawn { index, source })?;
        let stdin = child.stdin.take();
        if let Some(stdout) = child.stdout.take() {
            // A plain thread: the pipe is blocking, and the reader ends with the child.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if lines.send((index, line)).is_err() {
                        break;
                    }
                }
            });
        }
        let child = Arc::new(Mutex::new(child));
        lock(&CHILDREN).push(child.clone());
        Ok(Child {
            index,
            child,
            stdin,
        })
    }

    /// Writes one command line to the child's stdin.
    pub(crate) fn send(&mut self, line: &str) -> Result<(), ClusterBenchError> {
        let index = self.index;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| ClusterBenchError::Stdin {
                index,
                source: std::io::Error::other("stdin closed"),
            })?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|source| ClusterBenchError::Stdin { index, source })
    }

    /// `kill -9`: the node gets no chance to say goodbye.
    pub(crate) fn kill(&mut self) {
        let mut child = lock(&self.child);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        drop(self.stdin.take());
        self.kill();
        lock(&CHILDREN).retain(|c| !Arc::ptr_eq(c, &self.child));
    }
}
