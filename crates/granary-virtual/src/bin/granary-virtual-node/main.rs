//! A node process hosting the demo `demo.Counter` kind, for multi-process tests and
//! demos: `granary-virtual-node --store file:/tmp/s.db [--bind 127.0.0.1:0] [--seed ADDR]`.
//! Prints `listening <addr>` once it is a member, then runs until killed or until
//! its standard input closes (then it shuts down gracefully).

mod demo_counter;

use std::net::SocketAddr;

use demo_counter::{Counter, Increment};
use granary_virtual::prelude::*;
use tokio::io::AsyncReadExt;

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
