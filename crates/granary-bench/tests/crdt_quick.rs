//! Runs `granary-bench crdt --quick` through the built binary: five in-process nodes
//! replicate an ORSet with delta gossip and with full-state gossip; both rows must be
//! there, and deltas must send at least 10× fewer bytes.

mod common;

use common::{number, rows_of};

#[test]
fn crdt_quick_reports_delta_and_full_state_bytes() {
    let rows = rows_of(&["crdt", "--quick"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (delta, full) = (&rows[0], &rows[1]);
    assert_eq!(delta["scenario"], "crdt");
    assert_eq!(delta["gossip"], "delta");
    assert_eq!(full["gossip"], "full_state");
    for row in &rows {
        assert_eq!(number(row, "nodes"), 5.0);
        assert_eq!(number(row, "messages"), 1500.0);
        assert!(number(row, "bytes_sent") > 0.0, "{row}");
        assert!(number(row, "final_elements") > 0.0, "{row}");
    }
    assert!(number(delta, "delta_payloads") > 0.0, "{delta}");
    assert!(number(full, "full_state_payloads") > 0.0, "{full}");
    let ratio = number(full, "full_over_delta_bytes");
    assert!(
        ratio >= 10.0,
        "full state / delta bytes = {ratio}: {rows:?}"
    );
}
