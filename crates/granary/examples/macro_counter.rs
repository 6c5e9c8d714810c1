//! The README's virtual counter, written with the macros, on one node.
//!
//! `cargo run --example macro_counter` starts a node on 127.0.0.1 with the in-memory
//! store, hosts `Counter` with the `Kind` that `#[virtual_actor]` generated (every
//! handler included), adds to two counters, checks the sums and exits by itself. The
//! hand-written form of the same actor is `quickstart.rs`.
use std::time::Duration;

use granary::prelude::*;
use serde::{Deserialize, Serialize};

// The README's counter, line for line.
#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
struct Add(u64);

struct Counter;
#[virtual_actor(kind = "demo.Counter", state = u64)]
impl Counter {
    async fn add(&mut self, msg: Add, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        *ctx.state_mut() += msg.0;
        ctx.write_state().await.expect("durable when this returns");
        *ctx.state()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::builder()
        .store("memory:")
        .host(Counter::kind())
        .start()
        .await?;
    node.ready(Duration::from_secs(10)).await?;
    let alice = node.get::<Counter>("alice".to_string());
    let bob = node.get::<Counter>("bob".to_string());
    alice.ask(Add(1)).await?;
    let n = alice.ask(Add(2)).await?;
    let m = bob.ask(Add(40)).await?;
    println!("alice: {n}, bob: {m}");
    assert_eq!((n, m), (3, 40), "each key counts on its own");
    node.shutdown().await;
    Ok(())
}
