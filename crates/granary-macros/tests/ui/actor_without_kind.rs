use granary::prelude::*;

struct Counter;

#[virtual_actor(state = u64)]
impl Counter {}

fn main() {}
