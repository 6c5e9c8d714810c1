//! Several processes on one `file:` store: kill -9 durability and sharing.
//!
//! The child processes are this test binary itself, re-run with `--ignored
//! --exact child_process` and a role in `GRANARY_STORAGE_CHILD`; they talk to the
//! parent over stdout/stdin lines, so the parent waits on events, never on sleeps.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use granary_storage::{open, Identity, StateStore, StorageError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

const ROLE: &str = "GRANARY_STORAGE_CHILD";
const URL: &str = "GRANARY_STORAGE_URL";
/// Writer tasks in the kill -9 child.
const WRITERS: usize = 16;
/// Increments each sharing process makes.
const INCREMENTS: u64 = 200;

/// Not a test on its own: the body of the child processes the tests below spawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for the kill -9 and sharing tests; does nothing unless they spawn it"]
async fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let url = std::env::var(URL).expect("child needs GRANARY_STORAGE_URL");
    let store = open(&url).await.expect("child opens the store");
    match role.as_str() {
        "writer" => acknowledging_writer(store).await,
        "sharer" => sharing_incrementer(store).await,
        other => panic!("unknown child role {other}"),
    }
}

/// 16 tasks, each rewriting its own identity; prints `ACK task seq version` after
/// each write returns. Runs until killed (bounded as a safety net).
async fn acknowledging_writer(store: Arc<dyn StateStore>) {
    let mut tasks = Vec::new();
    for t in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let id = Identity::new("Acked", format!("t{t}"));
            let mut expected = None;
            for seq in 0..1_000_000u64 {
                let v = store
                    .write(&id, format!("{t}:{seq}").into(), expected)
                    .await
                    .expect("child write");
                // println! goes through a line-buffered stdout: one line, one write.
                println!("ACK {t} {seq} {}", v.get());
                expected = Some(v);
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
}

/// Waits for `go` on stdin, then increments one shared counter INCREMENTS times
/// with compare-and-set, retrying on conflict; prints `DONE conflicts`.
async fn sharing_incrementer(store: Arc<dyn StateStore>) {
    let id = Identity::new("Shared", "counter");
    println!("READY");
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .expect("read go");
    assert_eq!(line.trim(), "go");
    let (mut done, mut conflicts) = (0, 0u64);
    while done < INCREMENTS {
        let current = store.read(&id).await.expect("read counter");
        let (value, expected) = match current {
            Some(s) => (
                std::str::from_utf8(&s.data)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
                Some(s.version),
            ),
            None => (0, None),
        };
        match store
            .write(&id, (value + 1).to_string().into(), expected)
            .await
        {
            Ok(_) => done += 1,
            Err(StorageError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("increment failed: {e}"),
        }
    }
    println!("DONE {conflicts}");
}

fn spawn_child(role: &str, url: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(URL, url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn child")
}

/// The child's message in `line`, if any: the test harness prints `test child_process
/// ... ` without a newline before the test body runs, so a message may follow it.
fn message<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.find(prefix).map(|at| &line[at..])
}

/// Reads lines until one carries a message starting with `prefix`.
async fn next_line_starting(
    lines: &mut tokio::io::Lines<BufReader<ChildStdout>>,
    prefix: &str,
) -> String {
    loop {
        match lines.next_line().await.expect("child stdout") {
            Some(line) => {
                if let Some(msg) = message(&line, prefix) {
                    return msg.to_owned();
                }
            }
            None => panic!("child exited before printing {prefix}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file:{}", dir.path().join("state.db").display());
    let mut child = spawn_child("writer", &url);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    // Highest acknowledged (seq, version) per writer task.
    let mut acked: HashMap<usize, (u64, u64)> = HashMap::new();
    let mut total = 0usize;
    let record = |line: &str, acked: &mut HashMap<usize, (u64, u64)>| {
        let mut parts = line
            .split_whitespace()
            .skip(1)
            .map(|p| p.parse::<u64>().unwrap());
        let (t, seq, v) = (
            parts.next().unwrap() as usize,
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let entry = acked.entry(t).or_insert((seq, v));
        if v >= entry.1 {
            *entry = (seq, v);
        }
    };
    timeout(Duration::from_secs(120), async {
        while total < 3000 {
            let line = next_line_starting(&mut lines, "ACK ").await;
            record(&line, &mut acked);
            total += 1;
        }
    })
    .await
    .expect("child acknowledged 3000 writes within 120 s");

    child.start_kill().expect("SIGKILL the child");
    // Every line the child printed before dying was an acknowledged write.
    timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("child stdout") {
            if let Some(msg) = message(&line, "ACK ") {
                record(msg, &mut acked);
                total += 1;
            }
        }
    })
    .await
    .expect("child stdout closes after the kill");
    let status = child.wait().await.unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the child must die by SIGKILL, got {status:?}"
    );

    let store = open(&url).await.expect("reopen after kill -9");
    assert_eq!(
        acked.len(),
        WRITERS,
        "every writer task acknowledged something"
    );
    for (t, (seq, version)) in acked {
        let stored = store
            .read(&Identity::new("Acked", format!("t{t}")))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("task {t}: acknowledged v{version} but nothing is stored"));
        assert!(
            stored.version.get() >= version,
            "task {t}: acknowledged v{version} but the store has {} after kill -9",
            stored.version
        );
        if stored.version.get() == version {
            assert_eq!(
                stored.data,
                format!("{t}:{seq}"),
                "task {t}: wrong bytes at v{version}"
            );
        }
    }
    eprintln!("kill -9: {total} acknowledged writes, all present after reopen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_one_file_store_and_see_each_others_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file:{}", dir.path().join("shared.db").display());
    // Create the schema once up front (each child would also do it).
    let store = open(&url).await.unwrap();

    let mut children = Vec::new();
    for _ in 0..3 {
        let mut child = spawn_child("sharer", &url);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        timeout(
            Duration::from_secs(60),
            next_line_starting(&mut lines, "READY"),
        )
        .await
        .expect("child ready within 60 s");
        children.push((child, lines));
    }
    // Start all three together so their increments overlap.
    for (child, _) in &mut children {
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").await.unwrap();
        stdin.flush().await.unwrap();
    }
    let mut conflicts = 0u64;
    for (child, lines) in &mut children {
        let done = timeout(Duration::from_secs(120), next_line_starting(lines, "DONE "))
            .await
            .expect("child finished within 120 s");
        conflicts += done["DONE ".len()..].parse::<u64>().unwrap();
        let status = timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "child failed: {status:?}");
    }

    let counter = store
        .read(&Identity::new("Shared", "counter"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        counter.data,
        (3 * INCREMENTS).to_string(),
        "lost updates: three processes made {} increments",
        3 * INCREMENTS
    );
    assert_eq!(counter.version.get(), 3 * INCREMENTS);
    assert!(
        conflicts > 0,
        "three overlapping processes must have seen conflicts from each other"
    );
    eprintln!(
        "sharing: {} increments, {conflicts} cross-process conflicts",
        3 * INCREMENTS
    );
}
