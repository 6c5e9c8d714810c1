//! Running the built `granary-bench` and reading its JSON rows, for the `*_quick` tests.

use std::process::Command;

use serde_json::Value;

/// Runs `granary-bench args…`, which must succeed, and returns its stdout rows.
pub fn rows_of(args: &[&str]) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_granary-bench"))
        .args(args)
        .output()
        .expect("run granary-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?} failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The number in `field` of `row`; panics, naming the row, if there is none.
pub fn number(row: &Value, field: &str) -> f64 {
    row[field]
        .as_f64()
        .unwrap_or_else(|| panic!("row has no number `{field}`: {row}"))
}
