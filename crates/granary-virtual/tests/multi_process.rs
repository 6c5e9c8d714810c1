//! Three node processes (a majority must survive a crash) and this test process as an external client: kill -9 the
//! process hosting a counter and the next increment continues on the other process
//! from the stored state.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use granary_virtual::prelude::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(30);

// The same kind and messages as the `granary-virtual-node` binary (same names on the
// wire); this process only calls them.
#[path = "../src/bin/granary-virtual-node/demo_counter.rs"]
mod demo_counter;

use demo_counter::{Counter, Increment};

async fn spawn_node(store: &str, seed: Option<SocketAddr>) -> (Child, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_granary-virtual-node"));
    cmd.arg("--store").arg(store).arg("--watch-stdin");
    if let Some(seed) = seed {
        cmd.arg("--seed").arg(seed.to_string());
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node process starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("node announces its address in time")
        .unwrap()
        .expect("a line");
    let addr = line
        .strip_prefix("listening ")
        .expect("listening line")
        .parse()
        .unwrap();
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_node_process_fails_over_to_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("state.db").display());
    let (a, a_addr) = spawn_node(&store, None).await;
    let (b, b_addr) = spawn_node(&store, Some(a_addr)).await;
    let (c, c_addr) = spawn_node(&store, Some(a_addr)).await;
    let client = Client::connect([a_addr]).await.unwrap();
    let both = tokio::time::timeout(WAIT, async {
        // The client's view refreshes on its own; poll it.
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            if client.members().len() == 3 {
                return;
            }
        }
    })
    .await;
    assert!(both.is_ok(), "the client sees the three members");

    let counter = client.get::<Counter>("mp-1".to_string());
    let mut host = None;
    for i in 1..=3 {
        let (h, n) = counter.ask(Increment(1)).await.unwrap().unwrap();
        assert_eq!(n, i);
        host = Some(h);
    }
    let host = host.unwrap();
    let mut procs = vec![(a, a_addr), (b, b_addr), (c, c_addr)];
    let at = procs.iter().position(|(_, addr)| *addr == host).unwrap();
    let (mut victim, _) = procs.remove(at);
    victim.kill().await.unwrap(); // SIGKILL: nothing saved, nobody told
    let (h, n) = counter
        .ask_timeout(Increment(1), Duration::from_secs(25))
        .await
        .unwrap()
        .unwrap();
    assert!(
        h != host && procs.iter().any(|(_, a)| *a == h),
        "moved to a surviving process"
    );
    assert_eq!(n, 4, "continued from the last written state");
    client.close().await;
    drop(procs);
}
