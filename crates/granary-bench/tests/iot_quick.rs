//! Runs `granary-bench iot --quick` through the built binary: 2 servers and 4 devices
//! in one process over 127.0.0.1; a row without failures, one with 20 % of the
//! client↔server messages dropped, and one with clients killed by MTTF and restarted.
//! Every row must carry reports, and the failures must have happened.

mod common;

use common::{number, rows_of};

#[test]
fn iot_quick_reports_with_drops_and_client_kills() {
    let rows = rows_of(&["iot", "--quick"]);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        assert_eq!(row["scenario"], "iot");
        assert_eq!(row["mode"], "distributed");
        assert_eq!(number(row, "nodes"), 2.0);
        assert_eq!(number(row, "actors"), 4.0);
        assert_eq!(number(row, "payload_bytes"), 8000.0);
        assert!(number(row, "messages") > 0.0, "no reports: {row}");
        assert!(number(row, "msgs_per_sec") > 0.0, "{row}");
        assert!(number(row, "p50_us") <= number(row, "max_us"), "{row}");
    }
    let plain = rows
        .iter()
        .find(|r| number(r, "drop_probability") == 0.0 && number(r, "client_mttf_s") == 0.0)
        .expect("a row without failures");
    assert_eq!(number(plain, "client_kills"), 0.0);
    let dropped = rows
        .iter()
        .find(|r| number(r, "drop_probability") > 0.0)
        .expect("a row with drops");
    assert!(
        number(dropped, "resends") > 0.0,
        "20 % drops but no resend: {dropped}"
    );
    let killed = rows
        .iter()
        .find(|r| number(r, "client_mttf_s") > 0.0)
        .expect("a row with client kills");
    assert!(
        number(killed, "client_kills") > 0.0,
        "no client was killed: {killed}"
    );
}
