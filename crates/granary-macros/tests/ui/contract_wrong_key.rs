use granary::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
pub struct Add(u64);

granary::contract! {
    pub contract CounterApi {
        kind = "demo.Counter";
        key = String;
        accepts = [Add];
    }
}

struct Counter;

// Written by hand, with another key type than the contract's.
#[virtual_actor(kind = "demo.Counter", key = i64)]
impl Counter {
    async fn add(&mut self, msg: Add) -> u64 {
        msg.0
    }
}

fn kind() -> Kind<Counter> {
    Kind::new().fulfilling::<CounterApi>()
}

fn main() {}
