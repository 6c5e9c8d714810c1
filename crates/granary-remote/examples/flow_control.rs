//! Flow control end to end: a sender tells a slow actor on another node as fast as it
//! can; the receiver keeps at most `inbound_capacity` of those messages, and the sender
//! gets `Backpressure`, backs off and retries, so every message arrives and memory stays
//! flat (`docs/wire.md`, "Flow control").
//!
//! Run: `cargo run -p granary-remote --example flow_control -- [N] [CAPACITY]`
//! (default 20,000 messages, capacity 256; the actor takes about 20 µs per message).

use std::time::{Duration, Instant};

use granary_core::prelude::*;
use granary_core::{RemoteError, SendError};
use granary_remote::{register_message, ActorRefRemoteExt, RemoteNode, TransportConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

#[derive(Serialize, Deserialize)]
struct Job(u64);
impl Message for Job {
    type Reply = ();
}
register_message!(Job, "example.Job");

struct Slow {
    seen: u64,
    expected: u64,
    done: Option<oneshot::Sender<()>>,
}
impl Actor for Slow {}
impl Handler<Job> for Slow {
    async fn handle(&mut self, msg: Job, _ctx: &mut Context<Self>) {
        assert_eq!(msg.0, self.seen, "in order");
        let until = Instant::now() + Duration::from_micros(20);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        self.seen += 1;
        if self.seen == self.expected {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let capacity: usize = args.next().map_or(Ok(256), |a| a.parse())?;

    let config = || {
        TransportConfig::new("example", "secret")
            .with_inbound_capacity(capacity)
            .with_queue_capacity(64 * 1024)
    };
    let receiver_system = ActorSystem::new();
    let receiver = RemoteNode::start(receiver_system.clone(), config()).await?;
    let (done, finished) = oneshot::channel();
    let slow = receiver_system.spawn(Slow {
        seen: 0,
        expected: n,
        done: Some(done),
    });
    receiver.expose("slow", &slow)?.accept::<Job>()?;

    let sender_system = ActorSystem::new();
    let sender = RemoteNode::start(sender_system.clone(), config()).await?;
    let to_slow = ActorRef::<Slow>::remote(&sender, receiver.local_addr(), "slow");

    let started = Instant::now();
    let (mut refused, mut peak) = (0u64, 0usize);
    let mut next = 0;
    while next < n {
        match to_slow.tell(Job(next)) {
            Ok(()) => next += 1,
            Err(SendError::Remote {
                error: RemoteError::Backpressure(_),
                ..
            }) => {
                // The receiver is behind: back off a little and send the same job again.
                refused += 1;
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            Err(e) => return Err(format!("send failed: {e:?}").into()),
        }
        peak = peak.max(receiver.inbound_backlog("slow").unwrap_or(0));
    }
    tokio::time::timeout(Duration::from_secs(60), finished).await??;
    println!(
        "{n} jobs handled in order in {:.2?}; sender refused with Backpressure {refused} times; \
         receiver backlog peaked at {peak} (capacity {capacity})",
        started.elapsed()
    );
    assert!(peak <= capacity);
    sender_system.shutdown().await;
    receiver_system.shutdown().await;
    Ok(())
}
