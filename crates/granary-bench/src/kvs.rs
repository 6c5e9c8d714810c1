//! The `kvs` scenario (seed 002 §6.2.3): an in-memory key-value store over
//! granary-cluster's hash ring on the three `echo` node processes.
//!
//! Every get or put goes to the key's 3 replicas (its [`HashRing::preference_list`]:
//! the owner and the next distinct nodes clockwise) and completes when 2 have answered
//! (quorum); each replica waits a simulated 1 ms storage delay; reads merge the
//! answers last-writer-wins. Keys are drawn from a normal distribution over 10,000
//! keys, 10 reads per write. The sweep, rows and option sets are `echo`'s
//! ([`crate::echo`]); `msgs_per_sec` counts completed get/put requests.
//!
//! Example: `granary-bench kvs --payload 1048576 --rtt-ms 20 --concurrency 1,4,16`.
//!
//! [`HashRing::preference_list`]: granary_cluster::HashRing::preference_list

pub(crate) mod driver;
pub(crate) mod replica;

use crate::echo::{run_workload, EchoError, Workload, WorkloadArgs};

/// Runs `granary-bench kvs`.
pub(crate) fn run(args: WorkloadArgs) -> Result<(), EchoError> {
    run_workload(Workload::Kvs, args)
}
