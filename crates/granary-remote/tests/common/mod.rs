//! Shared by the tests that run a node in its own process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A `granary-remote-node` process, killed when dropped.
pub struct NodeProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl NodeProcess {
    /// Start a node listening on `listen` in `cluster` (secret "cookie") and wait for the
    /// address it prints.
    pub fn start(listen: &str, cluster: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_granary-remote-node"))
            .args([listen, cluster, "cookie"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn node process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("node prints its address");
        let addr = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Self { child, addr }
    }

    /// Kill the process and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
