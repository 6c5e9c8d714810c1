//! Runs `granary-bench cluster --quick` through the built binary: three node processes
//! on 127.0.0.x join, idle and lose one to `kill -9`, and the N = 100 simulation runs;
//! every row must be there with sane numbers and no false Down.

use std::process::Command;

use serde_json::Value;

fn number(row: &Value, field: &str) -> f64 {
    row[field]
        .as_f64()
        .unwrap_or_else(|| panic!("row has no number `{field}`: {row}"))
}

#[test]
fn cluster_quick_detects_a_killed_process_and_reports_the_simulation() {
    let output = Command::new(env!("CARGO_BIN_EXE_granary-bench"))
        .args(["cluster", "--quick"])
        .output()
        .expect("run granary-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
    let rows: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");

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
