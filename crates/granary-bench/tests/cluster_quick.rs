//! Runs `granary-bench cluster --quick` through the built binary: three node processes
//! on 127.0.0.x join, idle and lose one to `kill -9`, and the N = 100 simulation runs;
//! every row must be there with sane numbers and no false Down.

mod common;

use common::{number, rows_of};

#[test]
fn cluster_quick_detects_a_killed_process_and_reports_the_simulation() {
    let rows = rows_of(&["cluster", "--quick"]);
    assert_eq!(rows.len(), 2, "{rows:?}");

    let processes = &rows[0];
    assert_eq!(processes["scenario"], "cluster");
    assert_eq!(processes["test"], "processes");
    assert_eq!(number(processes, "nodes"), 3.0);
    assert_eq!(number(processes, "false_downs"), 0.0, "{processes}");
    let down_max = number(processes, "down_max_ms");
    assert!(down_max > 0.0 && down_max < 30_000.0, "{processes}");
    assert!(number(processes, "down_p50_ms") <= down_max);
    assert!(number(processes, "join_up_ms") > 0.0, "{processes}");
    assert!(
        number(processes, "gossip_bytes_per_node_per_sec") > 0.0,
        "{processes}"
    );

    let sim = &rows[1];
    assert_eq!(sim["test"], "sim");
    assert_eq!(number(sim, "nodes"), 100.0);
    assert!(
        number(sim, "join_rounds") > 0.0 && number(sim, "join_rounds") <= 20.0,
        "{sim}"
    );
    assert!(number(sim, "failure_rounds") > 0.0, "{sim}");
}
