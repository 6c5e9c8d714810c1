//! Runs `granary-bench overlay` at 32 nodes through the built binary: one
//! client-server row and peer-to-peer rows before and after half the nodes are
//! killed; every update reaches every (surviving) node, the peer-to-peer views stay
//! within 6 members, and client-server sends fewer bytes (seed 002 §6.3, issue 16).

mod common;

use common::{number, rows_of};

#[test]
fn overlay_at_32_nodes_reaches_everyone_and_client_server_sends_fewer_bytes() {
    let rows = rows_of(&[
        "overlay",
        "--quick",
        "--rounds",
        "2",
        "--kills",
        "0.5",
        // The bench gives the survivors this long, then measures: 3 s was not always
        // enough with half the nodes gone while the rest of CI loaded the machine (one
        // run in session 29: an update reached 0 survivors, the mean 87 %; 3 of 3 passed
        // alone). The bar is that they heal, not how fast on a busy 2-core machine.
        "--heal-secs",
        "6",
    ]);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let (cs, p2p, killed) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(cs["mode"], "client-server");
    assert_eq!(p2p["mode"], "peer-to-peer");
    assert_eq!(number(killed, "killed_fraction"), 0.5);
    for row in &rows {
        assert_eq!(row["scenario"], "overlay");
        assert_eq!(number(row, "nodes"), 32.0);
        assert!(number(row, "messages") > 0.0, "{row}");
        assert_eq!(number(row, "updates_reaching_all"), 1.0, "{row}");
        assert_eq!(number(row, "receivers_fraction_min"), 1.0, "{row}");
    }
    for row in [cs, p2p] {
        assert_eq!(number(row, "converged_fraction"), 1.0, "{row}");
    }
    assert!(number(p2p, "view_max") <= 6.0, "{p2p}");
    assert!(number(killed, "view_max") <= 6.0, "{killed}");
    assert_eq!(
        number(cs, "view_max"),
        31.0,
        "the server holds every client: {cs}"
    );
    assert!(
        number(cs, "bytes_sent") < number(p2p, "bytes_sent"),
        "client-server {cs} vs peer-to-peer {p2p}"
    );
}
