use granary::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
pub struct Add(u64);

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
pub struct Get;

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
pub struct Sub(u64);

granary::contract! {
    /// A counter: add and read, no subtraction.
    pub contract CounterApi {
        kind = "demo.Counter";
        key = String;
        accepts = [Add, Get];
    }
}

// A client: it knows the contract, and sends a message the contract does not list.
async fn subtract(client: &Client) {
    let _ = client.contract::<CounterApi>("a".to_string()).ask(Sub(1)).await;
}

fn main() {}
