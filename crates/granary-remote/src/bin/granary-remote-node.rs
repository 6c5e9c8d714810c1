//! A minimal granary node in its own process, for multi-process tests and manual checks.
//!
//! `granary-remote-node [LISTEN_ADDR] [CLUSTER] [SECRET]` (defaults `127.0.0.1:0`,
//! `granary`, `cookie`) exposes a counter actor as `"counter"` that accepts
//! `node.Add(u64)` (reply: the new total, `u64`). It prints `listening <addr> <node id>`
//! on stdout and runs until killed or until its stdin closes.

use granary_core::prelude::*;
use granary_remote::{register_message, RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};

/// Add to the counter; replies with the new total.
#[derive(Serialize, Deserialize)]
struct Add(u64);
impl Message for Add {
    type Reply = u64;
}
register_message!(Add, "node.Add");

struct Counter(u64);
impl Actor for Counter {}
impl Handler<Add> for Counter {
    async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 {
        self.0 += msg.0;
        self.0
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let cluster = args.next().unwrap_or_else(|| "granary".into());
    let secret = args.next().unwrap_or_else(|| "cookie".into());
    let config = TransportConfig::new(cluster, secret.into_bytes()).with_listen(listen);
    let node = RemoteNode::start(ActorSystem::new(), config).await?;
    let counter = node.system().spawn(Counter(0));
    node.expose("counter", &counter)?.accept::<Add>()?;
    println!(
        "listening {} {}",
        node.local_addr(),
        node.transport().node_id()
    );
    // Run until stdin closes (the parent went away) or the process is killed.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
    })
    .await;
    node.shutdown();
    Ok(())
}
