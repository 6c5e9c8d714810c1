use granary::prelude::*;
use serde::{Deserialize, Serialize};

struct Total(u64);

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = Total)]
struct Add(u64);

fn main() {}
