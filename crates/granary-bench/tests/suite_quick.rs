//! Runs the virtual-actor suite at `--quick` sizes through the built binary: three
//! node processes per scenario on 127.0.0.1. `pingpong`, `big` and `sort` must give
//! a row per mode with every message answered; `failover` must kill and restart a
//! node without losing an acknowledged increment or activating a counter twice.

use serde_json::Value;

mod common;

use common::{number, rows_of};

fn assert_both_modes(rows: &[Value], scenario: &str) {
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, mode) in rows.iter().zip(["distributed", "virtual"]) {
        assert_eq!(row["scenario"], scenario);
        assert_eq!(row["mode"], mode);
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

#[test]
fn big_quick_answers_every_ping_in_both_modes() {
    let rows = rows_of(&["big", "--quick"]);
    assert_both_modes(&rows, "big");
    for row in &rows {
        assert_eq!(number(row, "messages"), 300.0, "{row}");
    }
}

#[test]
fn sort_quick_sorts_with_fresh_actors_in_both_modes() {
    let rows = rows_of(&["sort", "--quick"]);
    assert_both_modes(&rows, "sort");
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
