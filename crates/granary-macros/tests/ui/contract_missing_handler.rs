use granary::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
pub struct Add(u64);

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
pub struct Get;

granary::contract! {
    /// A counter: add and read.
    pub contract CounterApi {
        kind = "demo.Counter";
        key = String;
        accepts = [Add, Get];
    }
}

struct Counter;

// No handler of `Get`: the kind does not fulfil its contract.
#[virtual_actor(contract = CounterApi, state = u64)]
impl Counter {
    async fn add(&mut self, msg: Add, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        *ctx.state() + msg.0
    }
}

fn main() {}
