use granary::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
struct Add(u64);

struct Counter;

#[virtual_actor(kind = "demo.Counter", state = u64)]
impl Counter {
    fn add(&mut self, msg: Add, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        *ctx.state() + msg.0
    }
}

fn main() {}
