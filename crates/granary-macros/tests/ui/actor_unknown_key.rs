use granary::prelude::*;

struct Counter;

#[virtual_actor(kind = "demo.Counter", stat = u64)]
impl Counter {}

fn main() {}
