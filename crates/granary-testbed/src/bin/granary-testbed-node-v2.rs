//! `granary-testbed-node` built with the `app-v2` feature: version 2 of the counter
//! workload's contract (see `granary_testbed::workload::counter`), for the rolling
//! upgrade test (`tests/rolling_upgrade_on_bed.rs`). Same commands and flags.

#[path = "granary-testbed-node.rs"]
mod node;

fn main() -> std::process::ExitCode {
    node::main()
}
