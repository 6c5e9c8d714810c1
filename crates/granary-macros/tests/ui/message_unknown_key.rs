use granary::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64, nmae = "demo.Add")]
struct Add(u64);

fn main() {}
