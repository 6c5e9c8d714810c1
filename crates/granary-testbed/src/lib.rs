//! granary-testbed: the chaos test bed and the history checker.
//!
//! Every guarantee granary states (single activation, no lost or doubled writes,
//! fencing, failover) is proven here where it can break: several **hosts**, each a
//! Linux network namespace with its own address on a bridge; **faults as the kernel
//! sees them** (nft partitions, tbf bandwidth limits, `kill -9` and restart on the same
//! address, `SIGSTOP`/`SIGCONT` pauses); **real node processes**; and a **checker**
//! over the histories those processes record.
//!
//! - [`history`]: the events node and client processes append (activation start and
//!   end, handled operations, client invocations and completions), one JSON line each.
//! - [`Testbed`]: the hosts (network namespaces on a bridge), kernel-level faults
//!   between them ([`netfault`]) and processes on them ([`process`]).
//! - [`checker`]: reads histories and reports double activations, lost acknowledged
//!   writes, operations applied twice, stale reads and recovery times.
//! - [`run`]: whole runs — node processes, a load client, faults drawn from a seed
//!   ([`run::run_chaos`], [`schedule`]) or named by a test ([`run::run_schedule`]) —
//!   and the checker's verdict. `examples/partition_and_check.rs` drives the bed
//!   step by step, as a user's own test would.
//!
//! This crate sits beside the framework, not under it: it depends on `granary` (the
//! facade) only to run workloads, never the other way round.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

mod bed;
pub mod checker;
mod cmd;
pub mod history;
pub mod netfault;
pub mod process;
pub mod run;
pub mod schedule;
pub mod workload;

pub use bed::{
    available, available_or_skip, sweep_dead_runs, sweep_this_process, Host, HostId, Testbed,
    MAX_HOSTS,
};
pub use cmd::BedError;
