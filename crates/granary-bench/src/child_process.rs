//! Child processes of the multi-process scenarios (`cluster`, `remote`): started
//! with piped stdin/stdout, fed command lines, read line by line, killed.
//!
//! Every child is listed in a process-wide registry so a Ctrl-C kills it before
//! the bench exits ([`kill_children_on_ctrl_c`]); a dropped [`ChildProcess`] is
//! killed too (so every error path cleans up). granary-bench's own children also
//! exit when their stdin closes, which covers a parent killed with SIGKILL.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Children alive right now, for the Ctrl-C handler.
static CHILDREN: Mutex<Vec<Arc<Mutex<Child>>>> = Mutex::new(Vec::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A numbered node process of a multi-process scenario could not be started or
/// fed (the scenarios' own error types wrap it).
#[derive(Debug, thiserror::Error)]
pub(crate) enum NodeProcessError {
    /// A node process could not be started.
    #[error("cannot start node process {index}")]
    Spawn {
        /// Which node.
        index: usize,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing to a node's stdin failed (it died).
    #[error("cannot write to node process {index}")]
    Stdin {
        /// Which node.
        index: usize,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// On Ctrl-C, kill every child process still alive, say so naming them `what`
/// (for example "node processes"), and exit with status 130.
pub(crate) fn kill_children_on_ctrl_c(what: &'static str) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            for child in lock(&CHILDREN).drain(..) {
                let mut child = lock(&child);
                let _ = child.kill();
                let _ = child.wait();
            }
            eprintln!("granary-bench: interrupted; {what} killed");
            std::process::exit(130);
        }
    });
}

/// A running child process; killed (SIGKILL) when dropped.
pub(crate) struct ChildProcess {
    child: Arc<Mutex<Child>>,
    stdin: Option<ChildStdin>,
}

impl ChildProcess {
    /// Starts `command` with piped stdin/stdout (stderr inherited, so the child's
    /// errors reach the user). Every stdout line is passed to `on_line` on a
    /// reader thread, until the child's stdout closes or `on_line` returns false.
    pub(crate) fn spawn(
        mut command: Command,
        mut on_line: impl FnMut(String) -> bool + Send + 'static,
    ) -> std::io::Result<ChildProcess> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        if let Some(stdout) = child.stdout.take() {
            // A plain thread: the pipe is blocking, and the reader ends with the child.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if !on_line(line) {
                        break;
                    }
                }
            });
        }
        let child = Arc::new(Mutex::new(child));
        lock(&CHILDREN).push(child.clone());
        Ok(ChildProcess { child, stdin })
    }

    /// Writes one command line to the child's stdin.
    pub(crate) fn send(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin closed"))?;
        writeln!(stdin, "{line}").and_then(|()| stdin.flush())
    }

    /// The child's exit status, if it has exited.
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        lock(&self.child).try_wait().ok().flatten()
    }

    /// `kill -9`: the child gets no chance to say goodbye.
    pub(crate) fn kill(&mut self) {
        let mut child = lock(&self.child);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // Closing stdin asks our own children to exit; the kill makes sure of it.
        drop(self.stdin.take());
        self.kill();
        lock(&CHILDREN).retain(|c| !Arc::ptr_eq(c, &self.child));
    }
}
