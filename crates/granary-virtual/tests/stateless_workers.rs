//! Stateless workers: several activations of one identity on a node, up to the pool
//! size, created only when the others are busy.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use common::*;
use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Mutex};

static RUNNING: AtomicUsize = AtomicUsize::new(0);

struct Gate {
    started: mpsc::UnboundedSender<usize>,
    open: watch::Receiver<bool>,
}

fn gate() -> &'static Mutex<Option<Gate>> {
    static G: OnceLock<Mutex<Option<Gate>>> = OnceLock::new();
    G.get_or_init(Default::default)
}

struct Resizer;

impl VirtualActor for Resizer {
    const KIND: &'static str = "test.Resizer";
    type Key = String;
    type State = ();
    fn activate(_: &String) -> Self {
        Resizer
    }
}

#[derive(Clone, Serialize, Deserialize, Debug)]
struct Work;
impl Message for Work {
    type Reply = ();
}
register_message!(Work, "test.virtual.Work");

impl VirtualHandler<Work> for Resizer {
    async fn handle(&mut self, _: Work, _ctx: &mut VirtualContext<'_, Self>) {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        let mut open = {
            let g = gate().lock().await;
            let g = g.as_ref().expect("gate set");
            let _ = g.started.send(now);
            g.open.clone()
        };
        let _ = open.wait_for(|o| *o).await;
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_workers_grow_to_the_pool_size_and_no_further() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (open_tx, open_rx) = watch::channel(false);
    *gate().lock().await = Some(Gate {
        started: started_tx,
        open: open_rx,
    });
    let dir = tempfile::tempdir().unwrap();
    let store = store_url(&dir);
    let nodes = start_nodes(1, &store, |_, b| {
        b.host(Kind::<Resizer>::new().handles::<Work>().stateless_worker(3))
    })
    .await;
    let mut calls = Vec::new();
    for _ in 0..6 {
        let r = nodes[0].get::<Resizer>("img".to_string());
        calls.push(tokio::spawn(async move { r.ask(Work).await }));
    }
    // Three run at once (one per worker); the rest wait behind them.
    let mut max = 0;
    while max < 3 {
        let n = tokio::time::timeout(WAIT, started.recv())
            .await
            .unwrap()
            .unwrap();
        max = max.max(n);
    }
    assert_eq!(nodes[0].activations("test.Resizer"), 3);
    open_tx.send(true).unwrap();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(
        nodes[0].activations("test.Resizer"),
        3,
        "never more than the pool"
    );
    assert_eq!(
        nodes[0].directory_entries(),
        0,
        "workers are not in the directory"
    );
    for n in nodes {
        n.shutdown().await;
    }
}
