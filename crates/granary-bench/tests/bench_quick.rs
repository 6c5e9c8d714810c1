//! Runs `echo`, `kvs` and `counter` once at `--quick` size through the built binary
//! (so none of them can rot), checks their rows, and checks that `--plot` and
//! `granary-bench plot` write non-empty PNG files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_granary-bench"))
        .args(args)
        .output()
        .expect("run granary-bench")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("granary-bench-quick-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The JSON rows on stdout of a successful run.
fn rows(output: &Output) -> Vec<Value> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "failed: {stderr}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn number(row: &Value, field: &str) -> f64 {
    row[field]
        .as_f64()
        .unwrap_or_else(|| panic!("row has no number `{field}`: {row}"))
}

/// The PNG files in `dir`, each checked to be a non-empty PNG.
fn pngs(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read plot dir") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "png") {
            let bytes = std::fs::read(&path).expect("read png");
            assert!(
                bytes.len() > 1000,
                "{} is only {} bytes",
                path.display(),
                bytes.len()
            );
            assert_eq!(
                &bytes[..8],
                b"\x89PNG\r\n\x1a\n",
                "{} is not a PNG",
                path.display()
            );
            found.push(path);
        }
    }
    found
}

/// Checks the rows of a quick `echo` or `kvs` run (with `extra` arguments): both
/// option sets, both concurrencies, sane numbers, no lost request (a lost one fails
/// the run). Returns the rows.
fn check_workload(scenario: &str, extra: &[&str]) -> Vec<Value> {
    let plot = temp_dir(scenario);
    let mut args = vec![scenario, "--quick", "--plot", plot.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let output = bench(&args);
    let rows = rows(&output);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for row in &rows {
        assert_eq!(row["scenario"], scenario);
        assert_eq!(row["nodes"], 3);
        assert!(number(row, "messages") >= 1.0, "{row}");
        assert!(number(row, "msgs_per_sec") > 0.0, "{row}");
        assert!(number(row, "p50_us") <= number(row, "p99_us"), "{row}");
        assert!(number(row, "p99_us") <= number(row, "max_us"), "{row}");
        assert_eq!(number(row, "rtt_ms"), 1.0);
        // The injected 1 ms RTT is a floor under any remote round trip.
        assert!(number(row, "max_us") >= 1000.0, "{row}");
    }
    let on: Vec<&Value> = rows.iter().filter(|r| r["options"] == "on").collect();
    assert_eq!(on.len(), 2);
    assert!(on
        .iter()
        .all(|r| r["parallelism"] == 4 && r["channels"] == true && r["affinity"] == true));
    assert!(rows
        .iter()
        .any(|r| r["options"] == "off" && r["parallelism"] == 1));
    // Throughput and latency charts for the one payload/RTT facet.
    assert_eq!(pngs(&plot).len(), 2, "charts in {}", plot.display());
    let _ = std::fs::remove_dir_all(&plot);
    rows
}

#[test]
fn echo_quick_runs_both_option_sets_and_plots() {
    let rows = check_workload("echo", &[]);
    assert!(rows
        .iter()
        .all(|r| r["link"] == "loopback" && r["bandwidth_mbit"].is_null()));
}

#[test]
fn kvs_quick_runs_both_option_sets_and_plots() {
    check_workload("kvs", &[]);
}

/// `echo` with one node on each host of a chaos test bed and a real 100 Mbit/s limit
/// (tbf) on every host's link: a 1 MiB request and its reply cross two limited links,
/// so a remote round trip takes at least 2 x 8 Mbit / 100 Mbit/s = 168 ms on the wire.
/// On loopback it takes a few milliseconds, so the slowest request of each row shows
/// whether the limit really applied.
#[test]
fn echo_on_the_test_bed_queues_on_a_limited_link() {
    if !granary_testbed::available_or_skip("echo_on_the_test_bed_queues_on_a_limited_link") {
        return;
    }
    let rows = check_workload("echo", &["--bed", "--bandwidth-mbit", "100"]);
    for row in &rows {
        assert_eq!(row["link"], "bed", "{row}");
        assert_eq!(number(row, "bandwidth_mbit"), 100.0, "{row}");
        assert!(
            number(row, "max_us") >= 160_000.0,
            "no queueing on the wire: {row}"
        );
    }
}

#[test]
fn counter_quick_counts_exactly_and_plot_redraws_saved_rows() {
    let dir = temp_dir("counter");
    let output = bench(&["counter", "--quick"]);
    let rows = rows(&output);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let variant = |name: &str| {
        rows.iter()
            .find(|r| r["variant"] == name)
            .unwrap_or_else(|| panic!("no {name} row: {rows:?}"))
    };
    let function = variant("function");
    for row in [variant("actor"), variant("actor-memory"), function] {
        assert_eq!(row["store"], "file");
        assert_eq!(number(row, "messages"), 50.0);
        assert!(number(row, "msgs_per_sec") > 0.0);
    }
    assert!(function.get("actor_over_function").is_none());
    for actor in [variant("actor"), variant("actor-memory")] {
        let ratio = number(actor, "actor_over_function");
        let expected = number(actor, "msgs_per_sec") / number(function, "msgs_per_sec");
        assert!(
            (ratio - expected).abs() < 1e-9 * expected.max(1.0),
            "{ratio} vs {expected}"
        );
    }

    // `plot` draws the same rows from a saved file.
    let saved = dir.join("counter.jsonl");
    std::fs::write(&saved, &output.stdout).expect("save rows");
    let charts = dir.join("charts");
    let plotted = bench(&[
        "plot",
        "--rows",
        saved.to_str().expect("utf-8"),
        "--out",
        charts.to_str().expect("utf-8"),
    ]);
    assert!(
        plotted.status.success(),
        "{}",
        String::from_utf8_lossy(&plotted.stderr)
    );
    assert_eq!(pngs(&charts).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn counter_refuses_an_unknown_store_with_a_typed_error() {
    let output = bench(&["counter", "--quick", "--store", "nosuch://x"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("store nosuch://x"), "{stderr}");
}
