use granary::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
struct Add(u64);

struct Counter;

#[virtual_actor(kind = "demo.Counter", state = u64)]
impl Counter {
    async fn add(&mut self, msg: Add) -> String {
        msg.0.to_string()
    }
}

fn main() {}
