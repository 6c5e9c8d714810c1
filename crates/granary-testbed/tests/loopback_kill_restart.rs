//! End to end on 127.0.0.1, without namespaces: three `granary-testbed-node node`
//! processes, three clients (counters, register, saga) loading them, `kill -9` of one
//! node and its restart on the same address with a new incarnation, then the checker
//! over every process's history. The report must be clean.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use granary_testbed::checker::check;
use granary_testbed::history::{read_history, read_run, Event, HistoryWriter, Outcome, Stamp};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_granary-testbed-node");
/// The longest a process may take to say `ready` / `started`.
const STARTUP: Duration = Duration::from_secs(20);
/// The longest the load may take to reach an acknowledgement count.
const PROGRESS: Duration = Duration::from_secs(20);

struct Proc {
    child: Child,
    out: Lines<BufReader<ChildStdout>>,
}

impl Proc {
    fn spawn(args: &[String]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the test bed binary starts");
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Proc { child, out }
    }

    async fn line(&mut self, within: Duration) -> String {
        tokio::time::timeout(within, self.out.next_line())
            .await
            .expect("a line in time")
            .expect("stdout readable")
            .expect("a line before exit")
    }
}

async fn node(
    dir: &Path,
    name: &str,
    inc: u64,
    bind: SocketAddr,
    seed: Option<SocketAddr>,
) -> (Proc, SocketAddr) {
    let mut args = vec![
        "node".into(),
        "--name".into(),
        name.into(),
        "--incarnation".into(),
        inc.to_string(),
        "--bind".into(),
        bind.to_string(),
        "--store".into(),
        format!("file:{}", dir.join("state.db").display()),
        "--history".into(),
        dir.join(format!("{name}-{inc}.jsonl"))
            .display()
            .to_string(),
    ];
    if let Some(seed) = seed {
        args.extend(["--seed".into(), seed.to_string()]);
    }
    let mut p = Proc::spawn(&args);
    let line = p.line(STARTUP).await;
    let addr = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("`ready ADDR`, got {line:?}"))
        .parse()
        .unwrap();
    (p, addr)
}

async fn client(dir: &Path, name: &str, workload: &str, seeds: &[SocketAddr]) -> Proc {
    let mut args: Vec<String> = vec![
        "client".into(),
        "--name".into(),
        name.into(),
        "--bind".into(),
        "127.0.0.1:0".into(),
        "--workload".into(),
        workload.into(),
        "--keys".into(),
        "6".into(),
        "--concurrency".into(),
        "3".into(),
        "--rate".into(),
        "60".into(),
        "--history".into(),
        dir.join(format!("{name}.jsonl")).display().to_string(),
    ];
    for s in seeds {
        args.extend(["--seed".into(), s.to_string()]);
    }
    let mut p = Proc::spawn(&args);
    assert_eq!(p.line(STARTUP).await, "started");
    p
}

/// Acknowledged operations in the client histories so far.
fn acks(dir: &Path) -> usize {
    ["c1", "c2", "c3"]
        .iter()
        .filter_map(|c| read_history(&dir.join(format!("{c}.jsonl"))).ok())
        .flatten()
        .filter(|e| {
            matches!(
                e,
                Event::Complete {
                    outcome: Outcome::Ok { .. },
                    ..
                }
            )
        })
        .count()
}

/// Waits (bounded) until the clients have `n` more acknowledgements than now.
async fn wait_for_acks(dir: &Path, more: usize) {
    let target = acks(dir) + more;
    let reached = tokio::time::timeout(PROGRESS, async {
        while acks(dir) < target {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "the load reached {target} acks in time (at {})",
        acks(dir)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_of_a_node_process_leaves_a_clean_history() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let faults = HistoryWriter::open(&dir.join("testbed.jsonl")).unwrap();
    let fault = |what: &str| {
        faults
            .record(&Event::Fault {
                what: what.into(),
                at: Stamp::now(),
            })
            .unwrap()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (mut h1, a1) = node(dir, "h1", 0, any, None).await;
    let (h2, a2) = node(dir, "h2", 0, any, Some(a1)).await;
    let (mut h3, a3) = node(dir, "h3", 0, any, Some(a1)).await;
    let seeds = [a1, a2, a3];
    let mut clients = vec![
        client(dir, "c1", "counters", &seeds).await,
        client(dir, "c2", "register", &seeds).await,
        client(dir, "c3", "saga", &seeds).await,
    ];
    wait_for_acks(dir, 100).await;

    // kill -9: nothing saved, nobody told.
    let mut h2 = h2;
    fault("kill h2");
    h2.child.start_kill().unwrap();
    h2.child.wait().await.unwrap();
    wait_for_acks(dir, 100).await;

    // Back on the same address with a new incarnation.
    let (mut h2, _) = node(dir, "h2", 1, a2, Some(a1)).await;
    fault("restart h2");
    // Duplicates appear after a rejoin: keep the load on well past it.
    wait_for_acks(dir, 300).await;

    let mut summaries = Vec::new();
    for c in &mut clients {
        c.child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"stop\n")
            .await
            .unwrap();
    }
    for c in &mut clients {
        let line = c.line(Duration::from_secs(120)).await;
        let summary: serde_json::Value = serde_json::from_str(&line).expect("a JSON summary");
        assert!(summary["acked"].as_u64().unwrap() > 0, "{summary}");
        summaries.push(summary);
        let status = tokio::time::timeout(Duration::from_secs(10), c.child.wait()).await;
        assert!(
            matches!(status, Ok(Ok(s)) if s.success()),
            "the client exits 0"
        );
    }
    for n in [&mut h1, &mut h2, &mut h3] {
        drop(n.child.stdin.take()); // graceful shutdown
        let _ = tokio::time::timeout(Duration::from_secs(20), n.child.wait()).await;
    }

    let events = read_run(dir).unwrap();
    let report = check(&events);
    println!("{summaries:?}\n{report}");
    if !report.is_clean() {
        // Keep the histories of a failing run for its report.
        let kept = tmp.keep();
        println!("histories kept in {}", kept.display());
    }
    assert!(report.acked > 300, "{report}");
    assert!(report.recovery.samples > 0, "{report}");
    assert!(report.is_clean(), "{report}");
}
