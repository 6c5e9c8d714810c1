//! Runs `granary-bench remote --quick` through the built binary (two real processes
//! on 127.0.0.1), so the benchmark can't rot: granary, the blocking and tokio TCP
//! floors and ractor_cluster (the last two on multi-thread and current-thread
//! runtimes, ractor_cluster also as a cast ping-pong) must produce every row with
//! sane numbers, and no peer process may survive it.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

fn number(row: &Value, field: &str) -> f64 {
    row[field]
        .as_f64()
        .unwrap_or_else(|| panic!("row has no number `{field}`: {row}"))
}

#[test]
fn remote_quick_prints_sane_rows_for_granary_the_floors_and_ractor_cluster() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_granary-bench"))
        .args([
            "remote",
            "--quick",
            "--only",
            "granary,std-tcp,raw-tcp,ractor_cluster",
        ])
        .output()
        .expect("run granary-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );

    let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
    let rows: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let count = |test: &str, framework: &str, setup: &str| {
        rows.iter()
            .filter(|r| r["test"] == test && r["framework"] == framework && r["setup"] == setup)
            .count()
    };
    // 3 payloads of pingpong, 2 sizes of oneway each; 8 P/affinity/bulk configs of pairs.
    for (framework, setup) in [
        ("granary", "multi-thread"),
        // Protocol version 4 only: postcard bodies beside the versioned default.
        ("granary", "postcard"),
        // Both processes on current-thread runtimes.
        ("granary", "current-thread"),
        ("std-tcp", "blocking"),
        ("raw-tcp", "multi-thread"),
        ("raw-tcp", "current-thread"),
        ("ractor_cluster", "multi-thread"),
        ("ractor_cluster", "current-thread"),
    ] {
        assert_eq!(count("pingpong", framework, setup), 3, "{stdout}");
        assert_eq!(count("oneway", framework, setup), 2, "{stdout}");
    }
    // ractor_cluster's cast ping-pong: pingpong only (a one-way message is a cast anyway).
    assert_eq!(
        count("pingpong", "ractor_cluster", "current-thread-cast"),
        3,
        "{stdout}"
    );
    assert_eq!(
        count("oneway", "ractor_cluster", "current-thread-cast"),
        0,
        "{stdout}"
    );
    assert_eq!(count("pairs", "granary", "multi-thread"), 8, "{stdout}");
    assert_eq!(count("pairs", "granary", "postcard"), 0, "{stdout}");
    assert_eq!(count("pairs", "granary", "current-thread"), 0, "{stdout}");
    assert_eq!(rows.len(), 51, "{stdout}");

    for row in &rows {
        assert_eq!(row["scenario"], "remote");
        assert_eq!(row["mode"], "distributed");
        assert_eq!(number(row, "nodes"), 2.0);
        assert!(number(row, "messages") > 0.0, "{row}");
        assert!(number(row, "seconds") > 0.0, "{row}");
        assert!(number(row, "msgs_per_sec") > 0.0, "{row}");
        assert!(number(row, "msgs_per_sec").is_finite(), "{row}");
        if row["test"] != "oneway" {
            let p50 = number(row, "p50_us");
            let p99 = number(row, "p99_us");
            let max = number(row, "max_us");
            assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{row}");
        }
        if row["test"] == "pairs" {
            assert!(number(row, "bulk_mib") >= 4.0, "bulk pair idle: {row}");
            assert!(row["affinity"].is_boolean(), "{row}");
            assert!(row["bulk_lane"].is_boolean(), "{row}");
        }
    }
    // The comparison lines come after the table.
    assert!(stderr.contains("oneway 16 B: granary"), "{stderr}");
    assert!(
        stderr.contains("x ractor_cluster"),
        "no comparison with ractor_cluster: {stderr}"
    );
    assert!(
        stderr.contains("pingpong 0 B: granary (multi-thread) p50"),
        "{stderr}"
    );
    assert!(
        stderr.contains("x ractor_cluster (current-thread)"),
        "no comparison with ractor_cluster on current-thread runtimes: {stderr}"
    );
    // Issue 18's bars against the blocking floor, measured in the same run.
    assert!(
        stderr.contains("floor: pingpong 0 B p50 granary (multi-thread)/std-tcp = ")
            && stderr.contains("floor: pingpong 0 B p50 granary (current-thread)/std-tcp = ")
            && stderr.contains("(<= 2.0x)"),
        "no verdict against the blocking floor: {stderr}"
    );
    assert!(
        stderr.contains("floor: oneway 16 B granary (multi-thread)/std-tcp = "),
        "{stderr}"
    );
    assert!(
        stderr.contains("bar: oneway 16 B granary (multi-thread) "),
        "{stderr}"
    );
    assert!(
        stderr.contains("pairs (affinity on, bulk lane on)") && stderr.contains("bar "),
        "no pairs verdict: {stderr}"
    );
}

#[test]
fn remote_observe_alternates_off_and_on_in_fresh_processes_and_sums_them_up() {
    let output = Command::new(env!("CARGO_BIN_EXE_granary-bench"))
        .args([
            "remote",
            "--quick",
            "--only",
            "granary",
            "--tests",
            "oneway",
            "--observe",
            "--rounds",
            "2",
        ])
        .output()
        .expect("run granary-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
    let rows: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    // The plain jobs first, then per round each size off, then on.
    let order: Vec<(String, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["mode"].as_str().unwrap_or_default().to_string(),
                number(r, "payload_bytes"),
            )
        })
        .collect();
    let expected: Vec<(String, f64)> = [
        // The versioned default, postcard (protocol version 4), current-thread.
        ("distributed", 16.0),
        ("distributed", 1024.0),
        ("distributed", 16.0),
        ("distributed", 1024.0),
        ("distributed", 16.0),
        ("distributed", 1024.0),
        ("observe-off", 16.0),
        ("observe", 16.0),
        ("observe-off", 1024.0),
        ("observe", 1024.0),
        ("observe-off", 16.0),
        ("observe", 16.0),
        ("observe-off", 1024.0),
        ("observe", 1024.0),
    ]
    .into_iter()
    .map(|(mode, payload)| (mode.to_string(), payload))
    .collect();
    assert_eq!(order, expected, "{stdout}");
    for row in &rows {
        assert_eq!(row["test"], "oneway", "{row}");
        assert_eq!(row["framework"], "granary", "{row}");
        if row["mode"] != "distributed" {
            assert_eq!(
                row["setup"], "multi-thread",
                "observed on the default: {row}"
            );
        }
        // The quick sizes: 20,000 of 16 B, 4,000 of 1 KiB, every one counted.
        let messages = if number(row, "payload_bytes") == 16.0 {
            20_000.0
        } else {
            4_000.0
        };
        assert_eq!(number(row, "messages"), messages, "{row}");
        assert!(number(row, "msgs_per_sec") > 0.0, "{row}");
    }
    // Per size: the medians, their ratio, and every value in measurement order.
    for payload in [16.0, 1024.0] {
        let values = |mode: &str| {
            rows.iter()
                .filter(|r| r["mode"] == mode && number(r, "payload_bytes") == payload)
                .map(|r| format!("{:.0}", number(r, "msgs_per_sec")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&format!("oneway {payload} B observe/off: median ")))
            .unwrap_or_else(|| panic!("no observe summary for {payload} B: {stderr}"));
        let all = format!(
            "(2 rounds; off {}; on {})",
            values("observe-off"),
            values("observe")
        );
        assert!(line.ends_with(&all), "{line} should end with {all}");
        assert!(line.contains(" msgs/s = "), "{line}");
    }
}
