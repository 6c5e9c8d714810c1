//! Runs `granary-bench iot --quick` through the built binary: 2 servers and 4 devices,
//! each a process of its own on 127.0.0.1; a row without failures, one with 20 % of
//! the client↔server messages dropped, and one with clients killed (SIGKILL) by MTTF
//! and restarted. Every row must carry reports, and the failures must have happened.
//! Also: a member process exits by itself when its stdin closes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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
        assert_eq!(number(row, "processes"), 6.0, "{row}");
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
    assert!(
        number(killed, "client_uptime") < 1.0,
        "killed clients count as up all the time: {killed}"
    );
}

#[test]
fn a_member_process_exits_when_its_stdin_closes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_granary-bench"))
        .args(["iot-node", "--role", "server"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start iot-node");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let listening = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a `listening` line within 30 s");
    assert!(listening.starts_with("listening 127.0.0.1:"), "{listening}");
    drop(child.stdin.take());
    // The reader ends when the process (and so its stdout) is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exited = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            break None;
        }
        let _ = rx.recv_timeout(Duration::from_millis(100));
    };
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let status = exited.expect("iot-node still running 30 s after its stdin closed");
    assert!(status.success(), "{status}");
}
