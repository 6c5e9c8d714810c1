//! One-way remote `tell` throughput between two nodes over loopback, actor to actor.
//!
//! Run: `cargo run --release -p granary-remote --example remote_tell_throughput -- [N]`
//! (default 1,000,000 messages with a 16-byte payload). Counted by the receiving actor.

use std::time::{Duration, Instant};

use granary_core::prelude::*;
use granary_core::RemoteError;
use granary_remote::{register_message, ActorRefRemoteExt, RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

#[derive(Serialize, Deserialize)]
struct Ping([u8; 16]);
impl Message for Ping {
    type Reply = ();
}
register_message!(Ping, "example.Ping");

struct Sink {
    seen: u64,
    expected: u64,
    done: Option<oneshot::Sender<()>>,
}
impl Actor for Sink {}
impl Handler<Ping> for Sink {
    async fn handle(&mut self, _msg: Ping, _ctx: &mut Context<Self>) {
        self.seen += 1;
        if self.seen == self.expected {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let config = TransportConfig::new("bench", b"secret".to_vec()).with_parallelism(1);
    let server = RemoteNode::start(ActorSystem::new(), config.clone()).await?;
    let client = RemoteNode::start(ActorSystem::new(), config).await?;
    let (done_tx, done_rx) = oneshot::channel();
    let sink = server.system().spawn(Sink {
        seen: 0,
        expected: n + 1,
        done: Some(done_tx),
    });
    server.expose("sink", &sink)?.accept::<Ping>()?;
    let remote = ActorRef::<Sink>::remote(&client, server.local_addr(), "sink");
    // Warm-up message: connects and handshakes before the clock starts.
    remote.ask(Ping([0; 16])).await?;

    let start = Instant::now();
    let mut retries = 0u64;
    for i in 0..n {
        let mut msg = Ping([i as u8; 16]);
        loop {
            match remote.tell(msg) {
                Ok(()) => break,
                Err(granary_core::SendError::Remote {
                    error: RemoteError::Other(text),
                    message: Some(back),
                }) if text.starts_with("backpressure") => {
                    retries += 1;
                    msg = back;
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(e.to_string().into()),
            }
        }
        if i % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::timeout(Duration::from_secs(120), done_rx).await??;
    let elapsed = start.elapsed();
    println!(
        "remote tell: {n} msgs of 16 B: {:.0} msgs/s at the receiving actor ({elapsed:.2?}), \
         {retries} backpressure retries",
        n as f64 / elapsed.as_secs_f64()
    );
    client.shutdown();
    server.shutdown();
    Ok(())
}
