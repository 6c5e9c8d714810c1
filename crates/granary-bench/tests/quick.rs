//! Runs `granary-bench local --quick` through the built binary, so the benchmark
//! can't rot: every framework must produce every row, in each of its setups (the
//! peers' fastest idiomatic configurations beside today's), with sane numbers, on
//! stdout as JSON lines and in the CSV file.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const FRAMEWORKS: [&str; 4] = ["granary", "ractor", "actix", "kameo"];
const TESTS: [&str; 4] = ["tell", "pingpong", "fanin", "spawn"];

/// The setups each framework runs `test` in, and the threads each one uses.
fn setups(framework: &str, test: &str) -> &'static [(&'static str, u64)] {
    match (framework, test) {
        ("granary", "tell" | "fanin") => &[
            ("multi-thread", 2),
            ("current-thread", 1),
            ("actor-runtime", 2),
        ],
        ("granary" | "ractor" | "kameo", _) => &[("multi-thread", 2), ("current-thread", 1)],
        ("actix", "tell" | "fanin") => &[("cross-arbiter", 2), ("same-arbiter", 1)],
        ("actix", _) => &[("same-arbiter", 1)],
        _ => panic!("unknown framework {framework}"),
    }
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_granary-bench"))
        .args(args)
        .output()
        .expect("run granary-bench")
}

fn temp_csv(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("granary-bench-quick-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn number(row: &Value, field: &str) -> f64 {
    row[field]
        .as_f64()
        .unwrap_or_else(|| panic!("row has no number `{field}`: {row}"))
}

#[test]
fn local_quick_prints_one_sane_row_per_test_and_framework() {
    let csv = temp_csv("local.csv");
    let only = FRAMEWORKS.join(",");
    let output = bench(&[
        "local",
        "--quick",
        "--runs",
        "1",
        "--only",
        &only,
        "--tests",
        &TESTS.join(","),
        "--csv",
        csv.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed: {stderr}");

    let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
    let rows: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let expected: usize = TESTS
        .iter()
        .flat_map(|test| FRAMEWORKS.iter().map(|f| setups(f, test).len()))
        .sum();
    assert_eq!(rows.len(), expected, "{stdout}");

    let mut seen = BTreeSet::new();
    for row in &rows {
        assert_eq!(row["scenario"], "local");
        assert_eq!(row["mode"], "local");
        assert_eq!(row["nodes"], 1);
        let test = row["test"].as_str().expect("test").to_string();
        let framework = row["framework"].as_str().expect("framework").to_string();
        let setup = row["setup"].as_str().expect("setup").to_string();
        let threads = setups(&framework, &test)
            .iter()
            .find(|(name, _)| *name == setup)
            .map(|(_, threads)| *threads)
            .unwrap_or_else(|| panic!("unexpected setup: {row}"));
        assert_eq!(row["workers"], threads, "{row}");
        let seconds = number(row, "seconds");
        let messages = number(row, "messages");
        assert!(seconds > 0.0 && messages > 0.0, "{row}");
        let rate = number(row, "msgs_per_sec");
        assert!((rate - messages / seconds).abs() <= rate * 1e-9, "{row}");
        match test.as_str() {
            "pingpong" => {
                let [p50, p99, p999, max] =
                    ["p50_us", "p99_us", "p999_us", "max_us"].map(|f| number(row, f));
                assert!(
                    0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max,
                    "{row}"
                );
                assert!(number(row, "round_trips_per_sec") > 0.0, "{row}");
            }
            "spawn" => {
                assert!(number(row, "actors_per_sec") > 0.0, "{row}");
                // Growth can be a little negative if the allocator returned memory.
                assert!(number(row, "bytes_per_actor").is_finite(), "{row}");
            }
            "fanin" => assert_eq!(row["senders"], 8, "{row}"),
            _ => assert!(row.get("p50_us").is_none(), "{row}"),
        }
        assert!(rate.is_finite(), "{row}");
        assert!(seen.insert((test, framework, setup)), "duplicate row {row}");
    }
    for test in TESTS {
        for framework in FRAMEWORKS {
            for (setup, _) in setups(framework, test) {
                assert!(
                    seen.contains(&(test.to_string(), framework.to_string(), setup.to_string())),
                    "no row for {test}/{framework} ({setup})"
                );
            }
        }
    }
    // Each test's ratio lines name the best peer row, setup included.
    for test in TESTS {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&format!("ratio {test:<8}")) && l.contains(") = ")),
            "no ratio line for {test}: {stderr}"
        );
    }
    assert!(
        stderr.contains("(goal <= 2)"),
        "no p99 bar against actix: {stderr}"
    );
    assert!(
        stderr.contains("msgs_per_sec"),
        "no table on stderr: {stderr}"
    );

    let text = std::fs::read_to_string(&csv).expect("csv written");
    let mut lines = text.lines();
    assert!(lines
        .next()
        .expect("header")
        .starts_with("scenario,test,framework,"));
    assert_eq!(lines.count(), rows.len());
}

#[test]
fn local_runs_the_peers_fastest_setups_and_compares_with_the_best() {
    let output = bench(&[
        "local",
        "--quick",
        "--runs",
        "1",
        "--only",
        "granary,actix,kameo",
        "--tests",
        "tell",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed: {stderr}");
    let rows: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let rate = |framework: &str, setup: &str| {
        let row = rows
            .iter()
            .find(|r| r["framework"] == framework && r["setup"] == setup)
            .unwrap_or_else(|| panic!("no {framework} ({setup}) row: {rows:?}"));
        let rate = number(row, "msgs_per_sec");
        assert!(rate.is_finite() && rate > 0.0, "{row}");
        rate
    };
    let peers = [
        ("actix", "cross-arbiter"),
        ("actix", "same-arbiter"),
        ("kameo", "multi-thread"),
        ("kameo", "current-thread"),
    ];
    let (best, best_rate) = peers
        .iter()
        .map(|&(f, s)| (format!("{f} ({s})"), rate(f, s)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("peers");
    let ours = rate("granary", "multi-thread");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("ratio tell"))
        .unwrap_or_else(|| panic!("no ratio line: {stderr}"));
    assert!(
        line.contains(&format!(
            "granary (multi-thread)/{best} = {:.3}",
            ours / best_rate
        )),
        "{line} should compare with {best}"
    );
}

#[test]
fn local_activate_gives_rows_for_one_and_three_nodes_and_the_file_store() {
    let output = bench(&[
        "local", "--quick", "--runs", "1", "--only", "granary", "--tests", "activate",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
    let rows: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let nodes: Vec<u64> = rows
        .iter()
        .map(|row| row["nodes"].as_u64().expect("nodes"))
        .collect();
    assert_eq!(nodes, [1, 3, 1], "{stdout}");
    let modes: Vec<&str> = rows
        .iter()
        .map(|row| row["mode"].as_str().unwrap())
        .collect();
    assert_eq!(
        modes,
        ["virtual", "virtual", "virtual-file-store"],
        "{stdout}"
    );
    for row in &rows {
        assert_eq!(row["test"], "activate", "{row}");
        assert!(number(row, "actors_per_sec") > 0.0, "{row}");
    }
    // The one-node memory-store row carries the memory figures.
    assert!(
        number(&rows[0], "bytes_per_activation") > 0.0,
        "{}",
        rows[0]
    );
    for field in [
        "rss_before_mb",
        "rss_warm_mb",
        "rss_active_mb",
        "rss_after_mb",
        "rss_after_trim_mb",
    ] {
        assert!(number(&rows[0], field) > 0.0, "{field}: {}", rows[0]);
    }
}

#[test]
fn local_passes_the_worker_count_to_the_measuring_process() {
    let output = bench(&[
        "local",
        "--quick",
        "--runs",
        "1",
        "--only",
        "granary",
        "--tests",
        "pingpong",
        "--workers",
        "1",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One row per granary setup: multi-thread (with `--workers` workers) first.
    let rows: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON row"))
        .collect();
    let row = rows
        .iter()
        .find(|row| row["setup"] == "multi-thread")
        .expect("a multi-thread row");
    assert_eq!(row["workers"], 1);
    assert_eq!(row["test"], "pingpong");
}

#[test]
fn local_rejects_an_unknown_framework_with_a_clear_message() {
    let output = bench(&["local", "--quick", "--only", "akka"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("akka"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn local_refuses_to_append_to_a_csv_with_other_columns() {
    let csv = temp_csv("foreign.csv");
    std::fs::write(&csv, "a,b\n1,2\n").expect("write csv");
    let output = bench(&[
        "local",
        "--quick",
        "--runs",
        "1",
        "--only",
        "ractor",
        "--tests",
        "tell",
        "--csv",
        csv.to_str().expect("utf-8 path"),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has columns `a,b`"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&csv).expect("csv"), "a,b\n1,2\n");
}
