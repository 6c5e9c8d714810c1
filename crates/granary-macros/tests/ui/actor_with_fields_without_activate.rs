use granary::prelude::*;

struct Counter {
    calls: u64,
}

#[virtual_actor(kind = "demo.Counter", state = u64)]
impl Counter {}

fn main() {}
