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

// The kind's name comes from the contract.
#[virtual_actor(contract = CounterApi, kind = "demo.Other")]
impl Counter {
    async fn add(&mut self, msg: Add) -> u64 {
        msg.0
    }
}

fn main() {}
