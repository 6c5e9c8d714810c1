//! A node process hosting the demo `demo.Counter` kind, for multi-process tests and
//! demos: `granary-virtual-node --store file:/tmp/s.db [--bind 127.0.0.1:0] [--seed ADDR]`.
//! Prints `listening <addr>` once it is a member, then runs until killed or until
//! its standard input closes (then it shuts down gracefully).

use std::net::SocketAddr;

use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

#[derive(Serialize, Deserialize, Default)]
struct Count {
    n: u64,
}

struct Counter;

impl VirtualActor for Counter {
    const KIND: &'static str = "demo.Counter";
    type Key = String;
    type State = Count;
    fn activate(_: &String) -> Self {
        Counter
    }
}

/// Adds to the counter and writes it; answers (node, new value).
#[derive(Clone, Serialize, Deserialize)]
struct Increment(u64);
impl Message for Increment {
    type Reply = Result<(SocketAddr, u64), String>;
}
register_message!(Increment, "demo.Increment");
register_message!(Result<(SocketAddr, u64), String>, "demo.IncrementReply");

impl VirtualHandler<Increment> for Counter {
    async fn handle(
        &mut self,
        msg: Increment,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<(SocketAddr, u64), String> {
        ctx.state_mut().n += msg.0;
        ctx.write_state().await.map_err(|e| e.to_string())?;
        Ok((ctx.node_addr(), ctx.state().n))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut bind: SocketAddr = "127.0.0.1:0".parse()?;
    let mut seeds = Vec::new();
    let mut store = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bind" => bind = value.parse()?,
            "--seed" => seeds.push(value.parse()?),
            "--store" => store = Some(value),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let mut builder = Node::builder()
        .bind(bind)
        .seeds(seeds)
        .host(Kind::<Counter>::new().handles::<Increment>());
    if let Some(store) = store {
        builder = builder.store(store);
    }
    let node = builder.start().await?;
    println!("listening {}", node.addr());
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while stdin.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
    node.shutdown().await;
    Ok(())
}
