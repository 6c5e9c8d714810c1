//! The actors of `sort` (seed 000 §3.3.3–4, Listing 2), in both modes.
//!
//! A sort actor takes a list; up to two numbers it sorts itself, otherwise it splits
//! the list in two, asks two **new** sort actors to sort the halves, and merges their
//! answers. Creating actors is what the scenario measures.
//! - Distributed: every node runs a spawner (`sort-spawner`); a sort actor on node
//!   k has its two children created explicitly on the two other nodes (each node
//!   with its own sort actors, as the paper's three pods with "sort A/B/C").
//! - Virtual: the children are fresh identities of the sort kind; the framework
//!   activates them wherever the kind's placement says (`--placement`, default
//!   random as Orleans'; `hash` activates on the identity's directory owner). Each
//!   deactivates once it has answered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use granary::prelude::*;
use granary::virtual_actors::{Node, NodeBuilder};
use granary_remote::{register_message, RemoteNode, RemoteRef};
use serde::{Deserialize, Serialize};

use crate::suite_node::protocol::{Measured, Reply};
use crate::suite_node::{within_run_limit, RUN_LIMIT};

/// Name of every node's spawner in the distributed mode.
const SPAWNER: &str = "sort-spawner";

/// Sort these numbers; `nodes` is the distributed mode's node list (empty in the
/// virtual mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SortList {
    /// The numbers.
    pub(crate) values: Vec<i64>,
    /// Distributed mode: every node, in order.
    pub(crate) nodes: Vec<SocketAddr>,
}
impl Message for SortList {
    type Reply = Result<Sorted, String>;
}
register_message!(SortList, "granary-bench.sort.SortList");
register_message!(Result<Sorted, String>, "granary-bench.sort.SortReply");

/// A sorted list and how many sort actors took part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Sorted {
    /// The numbers, ascending.
    pub(crate) values: Vec<i64>,
    /// Sort actors that worked on it (this one included).
    pub(crate) actors: u64,
}

/// Merges two ascending lists.
pub(crate) fn merge(left: Vec<i64>, right: Vec<i64>) -> Vec<i64> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (left.into_iter().peekable(), right.into_iter().peekable());
    loop {
        let take_left = match (l.peek(), r.peek()) {
            (Some(a), Some(b)) => a <= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        out.extend(if take_left { l.next() } else { r.next() });
    }
}

/// The whole of one sort actor's work given a way to sort a half with a new actor.
async fn sort_with<F, Fut>(mut values: Vec<i64>, sort_half: F) -> Result<Sorted, String>
where
    F: Fn(Vec<i64>, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Sorted, String>>,
{
    if values.len() <= 2 {
        values.sort_unstable();
        return Ok(Sorted { values, actors: 1 });
    }
    let right = values.split_off(values.len() / 2);
    let (left, right) = futures::future::join(sort_half(values, 1), sort_half(right, 2)).await;
    let (left, right) = (left?, right?);
    Ok(Sorted {
        actors: 1 + left.actors + right.actors,
        values: merge(left.values, right.values),
    })
}

/// Distributed mode: create a sort actor on this node; answers its name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SpawnSorter;
impl Message for SpawnSorter {
    type Reply = Result<String, String>;
}
register_message!(SpawnSorter, "granary-bench.sort.SpawnSorter");
register_message!(Result<String, String>, "granary-bench.sort.SpawnReply");

/// Distributed mode: creates and exposes sort actors on its node.
pub(crate) struct Spawner {
    remote: RemoteNode,
    created: u64,
}

impl Actor for Spawner {}

impl Handler<SpawnSorter> for Spawner {
    async fn handle(
        &mut self,
        _msg: SpawnSorter,
        _ctx: &mut Context<Self>,
    ) -> Result<String, String> {
        self.created += 1;
        let name = format!("sorter-{}", self.created);
        let sorter = self.remote.system().spawn(Sorter {
            remote: self.remote.clone(),
        });
        self.remote
            .expose(&name, &sorter)
            .and_then(|e| e.accept::<SortList>())
            .map_err(|e| format!("cannot expose {name}: {e}"))?;
        Ok(name)
    }
}

/// Starts and exposes this node's spawner (distributed mode).
pub(crate) fn expose_spawner(remote: &RemoteNode) -> Result<(), String> {
    let spawner = remote.system().spawn(Spawner {
        remote: remote.clone(),
        created: 0,
    });
    remote
        .expose(SPAWNER, &spawner)
        .and_then(|e| e.accept::<SpawnSorter>())
        .map(|_| ())
        .map_err(|e| format!("cannot expose the sort spawner: {e}"))
}

/// Distributed mode: a sort actor; stops once it has answered.
pub(crate) struct Sorter {
    remote: RemoteNode,
}

impl Actor for Sorter {}

impl Handler<SortList> for Sorter {
    async fn handle(&mut self, msg: SortList, ctx: &mut Context<Self>) -> Result<Sorted, String> {
        let remote = &self.remote;
        let nodes = msg.nodes.clone();
        let me = nodes
            .iter()
            .position(|&n| n == remote.local_addr())
            .unwrap_or(0);
        let sort_half = |values: Vec<i64>, hop: usize| {
            let nodes = nodes.clone();
            async move {
                let node = nodes[(me + hop) % nodes.len()];
                let spawner: ActorRef<Spawner> = RemoteRef::new(node, SPAWNER).resolve(remote);
                let name = spawner
                    .ask_timeout(SpawnSorter, RUN_LIMIT)
                    .await
                    .map_err(|e| format!("spawner on {node}: {e}"))??;
                let sorter: ActorRef<Sorter> = RemoteRef::new(node, name).resolve(remote);
                sorter
                    .ask_timeout(SortList { values, nodes }, RUN_LIMIT)
                    .await
                    .map_err(|e| format!("sorter on {node}: {e}"))?
            }
        };
        let sorted = sort_with(msg.values, sort_half).await;
        ctx.stop();
        sorted
    }
}

/// Virtual mode: a sort actor with a fresh key; deactivates once it has answered.
pub(crate) struct VirtualSorter;

impl VirtualActor for VirtualSorter {
    const KIND: &'static str = "granary-bench.Sorter";
    type Key = String;
    type State = ();
    fn activate(_key: &String) -> Self {
        VirtualSorter
    }
}

/// Fresh sort-actor keys made in this process.
static FRESH: AtomicU64 = AtomicU64::new(0);

/// A key no sort actor had before: this node's address and a counter.
fn fresh_key(node: SocketAddr) -> String {
    format!("sort-{node}-{}", FRESH.fetch_add(1, Ordering::Relaxed))
}

impl VirtualHandler<SortList> for VirtualSorter {
    async fn handle(
        &mut self,
        msg: SortList,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<Sorted, String> {
        let node = ctx.node_addr();
        // Refs are only names: making them activates nothing.
        let children = [
            ctx.get::<VirtualSorter>(fresh_key(node)),
            ctx.get::<VirtualSorter>(fresh_key(node)),
        ];
        let sort_half = |values: Vec<i64>, hop: usize| {
            let child = children[hop - 1].clone();
            async move {
                child
                    .ask_timeout(
                        SortList {
                            values,
                            nodes: Vec::new(),
                        },
                        RUN_LIMIT,
                    )
                    .await
                    .map_err(|e| format!("sorter {}: {e}", child.identity()))?
            }
        };
        let sorted = sort_with(msg.values, sort_half).await;
        ctx.deactivate_on_idle();
        sorted
    }
}

/// The kind a virtual node hosts for `sort`, placed by `placement`.
pub(crate) fn kinds(builder: NodeBuilder, placement: &Placement) -> NodeBuilder {
    builder.host(
        Kind::<VirtualSorter>::new()
            .placement(placement.clone())
            .handles::<SortList>(),
    )
}

/// `len` pseudo-random integers (xorshift seeded by `run`, so runs differ but are
/// reproducible).
fn random_list(run: u64, len: usize) -> Vec<i64> {
    let mut x = run.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1_000_000) as i64
        })
        .collect()
}

/// Checks the answer against a local sort and makes the measured figures.
fn check(run: u64, len: usize, sorted: Sorted, seconds: f64) -> Reply {
    let mut expected = random_list(run, len);
    expected.sort_unstable();
    if sorted.values != expected {
        return Err(format!("the sort actors returned a wrong list of {len}"));
    }
    Ok(Measured {
        messages: sorted.actors,
        seconds,
        latency_us: None,
    })
}

/// Distributed mode: sorts a random list with a root sort actor on this node.
pub(crate) async fn run_distributed(
    remote: &RemoteNode,
    run: u64,
    len: usize,
    nodes: &[SocketAddr],
) -> Reply {
    let values = random_list(run, len);
    let started = Instant::now();
    let root = remote.system().spawn(Sorter {
        remote: remote.clone(),
    });
    let msg = SortList {
        values,
        nodes: nodes.to_vec(),
    };
    let sorted = within_run_limit(root.ask(msg))
        .await?
        .map_err(|e| format!("root sorter: {e}"))??;
    check(run, len, sorted, started.elapsed().as_secs_f64())
}

/// Virtual mode: sorts a random list with a root sort actor of a fresh key.
pub(crate) async fn run_virtual(node: &Node, run: u64, len: usize) -> Reply {
    let values = random_list(run, len);
    let started = Instant::now();
    let root = node.get::<VirtualSorter>(fresh_key(node.addr()));
    let msg = SortList {
        values,
        nodes: Vec::new(),
    };
    let sorted = root
        .ask_timeout(msg, RUN_LIMIT)
        .await
        .map_err(|e| format!("root sorter: {e}"))??;
    check(run, len, sorted, started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_order_and_every_element() {
        assert_eq!(
            merge(vec![1, 4, 9], vec![2, 4, 10, 11]),
            vec![1, 2, 4, 4, 9, 10, 11]
        );
        assert_eq!(merge(vec![], vec![3]), vec![3]);
    }

    #[test]
    fn sorting_by_halves_sorts_and_counts_every_actor() {
        let values = random_list(3, 10);
        let sorted = futures::executor::block_on(sort_with(values.clone(), |half, _| {
            futures::future::ready(Ok(Sorted {
                values: {
                    let mut h = half;
                    h.sort_unstable();
                    h
                },
                actors: 1,
            }))
        }))
        .expect("sorts");
        let mut expected = values;
        expected.sort_unstable();
        assert_eq!(sorted.values, expected);
        assert_eq!(sorted.actors, 3);
    }
}
