use granary::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
struct Add(u64);

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
struct Get;

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
struct Sub(u64);

struct Counter;

#[virtual_actor(kind = "demo.Counter", state = u64)]
impl Counter {
    async fn add(&mut self, msg: Add, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        *ctx.state() + msg.0
    }

    async fn get(&mut self, _: Get, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        *ctx.state()
    }
}

async fn subtract(node: &Node) {
    let _ = node.get::<Counter>("a".to_string()).ask(Sub(1)).await;
}

fn main() {}
