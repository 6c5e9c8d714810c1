//! The one-process simulation: a fast N = 100 run by default, N = 1,000 on demand.

use std::time::Duration;

use granary_cluster::sim::{run, SimConfig};
use granary_cluster::transport::memory::LinkFaults;

#[test]
fn hundred_nodes_converge_after_join_and_failure() {
    let report = run(SimConfig::new(100)).expect("simulation");
    println!("{report:#?}");
    assert!(report.join_convergence_rounds <= 20.0, "{report:?}");
    assert!(
        report.failure_convergence_time.as_secs_f64() < 10.0,
        "{report:?}"
    );
    assert!(report.steady_bytes_per_node_per_sec > 0.0);
}

#[test]
#[ignore = "2-3 minutes in release mode; run with --ignored --release"]
fn thousand_nodes_converge_after_join_within_twenty_rounds() {
    let report = run(SimConfig::new(1000)).expect("simulation");
    println!("{report:#?}");
    assert!(report.join_convergence_rounds <= 20.0, "{report:?}");
}

#[test]
fn hundred_nodes_converge_with_five_percent_loss_and_delay() {
    let mut config = SimConfig::new(100);
    config.faults = LinkFaults {
        drop_probability: 0.05,
        delay: Duration::from_millis(10),
    };
    let report = run(config).expect("simulation");
    println!("{report:#?}");
    assert!(report.join_convergence_rounds <= 20.0, "{report:?}");
    assert!(
        report.failure_convergence_time.as_secs_f64() < 10.0,
        "{report:?}"
    );
}

#[tokio::test]
async fn run_called_inside_a_runtime_does_not_panic() {
    let report = run(SimConfig::new(3)).expect("simulation");
    assert_eq!(report.nodes, 3);
    assert!(matches!(
        run(SimConfig::new(1)),
        Err(granary_cluster::sim::SimError::TooSmall)
    ));
}
