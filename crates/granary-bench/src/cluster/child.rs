//! Node processes of the `cluster` scenario: a [`ChildProcess`] tagged with its
//! index, so its lines and errors say which node they come from.

use std::process::Command;

use tokio::sync::mpsc;

use super::ClusterBenchError;
use crate::child_process::ChildProcess;

/// On Ctrl-C, kill every node process still alive and exit with status 130.
pub(crate) fn kill_children_on_ctrl_c() {
    crate::child_process::kill_children_on_ctrl_c("node processes");
}

/// One line a child printed, tagged with the child's index.
pub(crate) type Line = (usize, String);

/// A running node process; killed (SIGKILL) when dropped.
pub(crate) struct Child {
    index: usize,
    process: ChildProcess,
}

impl Child {
    /// Starts `command` with piped stdin/stdout (stderr inherited, so a node's errors
    /// reach the user). Every stdout line goes to `lines` tagged with `index`; the
    /// sender is dropped when the child's stdout closes.
    pub(crate) fn spawn(
        index: usize,
        command: Command,
        lines: mpsc::UnboundedSender<Line>,
    ) -> Result<Child, ClusterBenchError> {
        let process =
            ChildProcess::spawn(command, move |line| lines.send((index, line)).is_ok()).map_err(
                |source| crate::child_process::NodeProcessError::Spawn { index, source },
            )?;
        Ok(Child { index, process })
    }

    /// Writes one command line to the child's stdin.
    pub(crate) fn send(&mut self, line: &str) -> Result<(), ClusterBenchError> {
        let index = self.index;
        self.process.send(line).map_err(|source| {
            crate::child_process::NodeProcessError::Stdin { index, source }.into()
        })
    }

    /// `kill -9`: the node gets no chance to say goodbye.
    pub(crate) fn kill(&mut self) {
        self.process.kill();
    }
}
