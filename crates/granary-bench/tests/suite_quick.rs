//! Runs the virtual-actor suite at `--quick` sizes through the built binary: three
//! node processes per scenario on 127.0.0.1. `pingpong`, `big` and `sort` must give
//! a row per mode (and per virtual placement asked for) with every message
//! answered, and `--plot` must draw their charts; `failover` must kill and restart a
//! node without losing an acknowledged increment or activating a counter twice.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;

use common::{number, rows_of};

fn assert_both_modes(rows: &[Value], scenario: &str) {
    assert_modes(
        rows,
        scenario,
        &[("distributed", None), ("virtual", Some("random"))],
    );
}

/// One row per (mode, virtual placement), in that order, each with messages.
fn assert_modes(rows: &[Value], scenario: &str, expected: &[(&str, Option<&str>)]) {
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for (row, (mode, placement)) in rows.iter().zip(expected) {
        assert_eq!(row["scenario"], scenario);
        assert_eq!(row["mode"], *mode);
        assert_eq!(row["placement"].as_str(), *placement, "{row}");
        assert_eq!(number(row, "nodes"), 3.0);
        assert!(number(row, "messages") > 0.0, "{row}");
        assert!(number(row, "msgs_per_sec") > 0.0, "{row}");
    }
}

#[test]
fn pingpong_quick_answers_every_round_trip_in_both_modes() {
    let rows = rows_of(&["pingpong", "--quick"]);
    assert_both_modes(&rows, "pingpong");
    for row in &rows {
        assert_eq!(number(row, "messages"), 300.0, "{row}");
        assert!(number(row, "p50_us") <= number(row, "max_us"), "{row}");
    }
}

/// A fresh, empty directory for charts.
fn plot_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("granary-suite-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The names of the PNG files in `dir`, each checked to start like a PNG.
fn pngs(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the plot dir") {
        let path = entry.expect("dir entry").path();
        let bytes = std::fs::read(&path).expect("read a chart");
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{}",
            path.display()
        );
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    names
}

#[test]
fn big_quick_answers_every_ping_in_both_modes_and_charts_throughput_vs_actors() {
    let dir = plot_dir("big");
    let plot = dir.to_string_lossy().into_owned();
    let rows = rows_of(&["big", "--quick", "--actors", "3,4", "--plot", &plot]);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_both_modes(&[rows[0].clone(), rows[2].clone()], "big");
    for row in &rows {
        // 300 pings shared out among n(n-1) pairs: 50 each at 3 actors, 25 at 4.
        assert_eq!(number(row, "messages"), 300.0, "{row}");
    }
    let charts = pngs(&dir);
    assert!(
        charts.contains(&"big-throughput-vs-actors-0-b.png".to_string()),
        "{charts:?}"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn sort_quick_sorts_with_fresh_actors_in_both_modes_and_each_placement() {
    let rows = rows_of(&["sort", "--quick", "--placement", "random,hash"]);
    let expected = [
        ("distributed", None),
        ("virtual", Some("random")),
        ("virtual", Some("hash")),
    ];
    assert_modes(&rows, "sort", &expected);
    for row in &rows {
        assert_eq!(number(row, "list_len"), 1000.0);
        // A list of 1,000 splits into at least 500 leaves.
        assert!(number(row, "messages") >= 1000.0, "{row}");
    }
}

#[test]
fn failover_quick_loses_nothing_and_never_activates_twice() {
    let rows = rows_of(&["failover", "--quick"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["scenario"], "failover");
    assert!(number(row, "acked") > 0.0, "{row}");
    assert_eq!(number(row, "lost"), 0.0, "{row}");
    assert_eq!(number(row, "duplicates"), 0.0, "{row}");
    assert_eq!(number(row, "unexplained"), 0.0, "{row}");
    assert!(number(row, "final_sum") >= number(row, "acked"), "{row}");
    assert!(number(row, "recover_max_ms") > 0.0, "{row}");
}
