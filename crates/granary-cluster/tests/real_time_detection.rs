//! The same protocol on the real clock (no paused time): a crash among 10 nodes is seen
//! Down by every survivor. The figure is printed; the bound is loose because this machine
//! is shared (the 3 s bar is measured by the multi-process benchmark).

mod common;

use std::time::{Duration, Instant};

use common::*;
use granary_cluster::transport::memory::MemoryNetwork;
use granary_cluster::MemberStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_on_the_real_clock_see_a_crash_down() {
    let net = MemoryNetwork::new(9);
    let nodes = start_cluster(&net, 10).await;
    let victim = addr(4);
    let crashed = Instant::now();
    nodes[4].stop().await;
    let mut slowest = Duration::ZERO;
    for (i, node) in nodes.iter().enumerate() {
        if i == 4 {
            continue;
        }
        assert!(
            wait_until(node, Duration::from_secs(20), |c| sees(
                c,
                victim,
                MemberStatus::Down
            ))
            .await,
            "{} never saw the crash",
            node.local_id()
        );
        slowest = slowest.max(crashed.elapsed());
    }
    println!("real clock, 10 nodes: every survivor saw the crash Down after {slowest:?}");
    assert!(slowest < Duration::from_secs(10), "{slowest:?}");
    for (i, node) in nodes.iter().enumerate() {
        if i != 4 {
            assert_eq!(node.up_members().len(), 9, "no false Downs");
        }
    }
}
