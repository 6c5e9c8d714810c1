//! The `activate` test (granary only: the peers have no virtual actors): how many
//! new virtual-actor identities per second a cluster activates, on one node and on
//! three nodes in this process (TCP on 127.0.0.1, `memory:` stores, a kind without
//! state). Every identity gets one `ask`; the first message activates it.
//!
//! On three nodes the callers are spread over all three nodes, each activating its
//! own identities, so the figure is the cluster's rate with directory owners and
//! hosts on different nodes (about two thirds of the lookups cross the network).
//!
//! The one-node run with the memory store also measures memory: RSS before the
//! first activation, with every identity active (so the bytes each active virtual
//! actor costs, state excluded: the kind has none; counted from the warm baseline
//! below), and once every identity has
//! passivated (idle timeout 10 s; 2 s for `--quick`), before and after `malloc_trim(0)` hands free
//! heap pages back. Beside the RSS of the freshly started node it takes a *warm*
//! baseline: the same node after a warm-up of one identity in fifty (1,000 of 50,000)
//! was activated, passivated and the heap trimmed. The cold figure counts every code
//! page and runtime buffer the first activation touches; the warm one is what a node
//! that has served traffic comes back to, so "RSS after passivation against the warm
//! baseline" is what grows, or not, with the number of identities ever contacted. A third run repeats the one-node rate with the embedded file
//! store (`file:` in a temporary directory), where each activation reads its state.
//!
//! The process pins glibc's mmap threshold first, as `granary-virtual-node` does and
//! as `granary::memory` tells a program that embeds a node to do: with glibc's
//! default adjustment, freed table arrays raise the threshold and each worker thread's
//! arena then keeps its free top resident (+16 % to +42 % over the warm baseline after
//! passivation and trim; pinned, within +2 % in most runs: `docs/BENCHMARKS.md`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use ::granary::register_message;
use ::granary::virtual_actors::{
    Kind, Node, VirtualActor, VirtualContext, VirtualError, VirtualHandler,
};
use ::granary::Message;

use super::support::{on_runtime, rss_bytes, trim_heap, within};
use super::{Framework, LocalError, Test};

const FRAMEWORK: Framework = Framework::Granary;

/// Concurrent callers per node.
const CALLERS_PER_NODE: u64 = 128;

/// Idle timeout of the memory run's identities: long enough that none passivates
/// before the last one is activated, so "all active" is a real state (50,000 take
/// 1–4 s on a loaded 2-core machine; `--quick`'s 2,000 well under a second).
fn idle_for(identities: u64) -> Duration {
    if identities <= 10_000 {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    }
}

/// What one `activate` run measured (the child prints this as JSON).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct ActivateSample {
    /// Seconds to activate every identity on one node, memory store.
    pub(crate) one_node_seconds: f64,
    /// The same on three nodes.
    pub(crate) three_nodes_seconds: f64,
    /// The same on one node with the embedded file store.
    pub(crate) file_one_node_seconds: f64,
    /// RSS of the process with the one node started, before the first activation.
    pub(crate) rss_before_bytes: u64,
    /// RSS after the warm-up identities were activated and passivated and the heap
    /// trimmed, before the timed run (see the module documentation).
    pub(crate) rss_warm_bytes: u64,
    /// RSS with every identity active.
    pub(crate) rss_active_bytes: u64,
    /// RSS once every identity has passivated.
    pub(crate) rss_passivated_bytes: u64,
    /// The same after `malloc_trim(0)`.
    pub(crate) rss_trimmed_bytes: u64,
}

impl ActivateSample {
    /// RSS growth per active identity, in bytes, from the warm baseline (which
    /// holds what the warm-up left: counted from the cold one, that would be spread
    /// over the identities).
    pub(crate) fn bytes_per_activation(&self, identities: u64) -> f64 {
        (self.rss_active_bytes as f64 - self.rss_warm_bytes as f64) / identities as f64
    }
}

fn failed(operation: &'static str, reason: impl std::fmt::Display) -> LocalError {
    LocalError::framework(FRAMEWORK, operation, reason)
}

/// A virtual actor without state that answers one question.
struct Greeter;

impl VirtualActor for Greeter {
    const KIND: &'static str = "bench.Greeter";
    type Key = i64;
    type State = ();

    fn activate(_key: &i64) -> Self {
        Greeter
    }
}

/// The first (and only) message each identity gets.
#[derive(Clone, Serialize, Deserialize)]
struct Hello(u64);

impl Message for Hello {
    type Reply = u64;
}
register_message!(Hello, "granary.bench.activate.Hello");

impl VirtualHandler<Hello> for Greeter {
    async fn handle(&mut self, msg: Hello, _ctx: &mut VirtualContext<'_, Self>) -> u64 {
        msg.0 + 1
    }
}

/// Starts `count` nodes joined into one cluster and waits until each sees all Up.
async fn start_nodes(
    count: usize,
    store: &str,
    idle: Option<Duration>,
    limit: Duration,
) -> Result<Vec<Node>, LocalError> {
    let mut nodes: Vec<Node> = Vec::new();
    for _ in 0..count {
        let seeds: Vec<_> = nodes.first().map(Node::addr).into_iter().collect();
        let mut kind = Kind::<Greeter>::new().handles::<Hello>();
        if let Some(idle) = idle {
            kind = kind.idle_timeout(idle);
        }
        let node = Node::builder()
            .store(store)
            .seeds(seeds)
            .host(kind)
            .start()
            .await
            .map_err(|e| failed("start a node", e))?;
        nodes.push(node);
    }
    within(FRAMEWORK, Test::Activate, limit, async {
        for node in &nodes {
            let mut events = node.cluster().subscribe();
            while node.cluster().up_members().len() < count {
                if events.recv().await.is_none() {
                    return Err(failed("join", "the cluster stopped"));
                }
            }
        }
        Ok(())
    })
    .await?;
    Ok(nodes)
}

/// Activates the identities with keys `first..first + identities` through `nodes`
/// (callers spread evenly) and returns the time it took.
async fn activate_all(
    nodes: &[Node],
    first: u64,
    identities: u64,
    limit: Duration,
) -> Result<Duration, LocalError> {
    let callers = CALLERS_PER_NODE * nodes.len() as u64;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(callers as usize);
    for caller in 0..callers {
        let node = &nodes[(caller % nodes.len() as u64) as usize];
        let refs: Vec<_> = (first + caller..first + identities)
            .step_by(callers as usize)
            .map(|key| node.get::<Greeter>(key as i64))
            .collect();
        tasks.push(tokio::spawn(async move {
            for greeter in refs {
                let key = *greeter.key() as u64;
                if greeter.ask(Hello(key)).await? != key + 1 {
                    return Err(VirtualError::Setup(format!("wrong answer from {key}")));
                }
            }
            Ok::<(), VirtualError>(())
        }));
    }
    within(FRAMEWORK, Test::Activate, limit, async {
        for task in tasks {
            task.await
                .map_err(|e| LocalError::Task(e.to_string()))?
                .map_err(|e| failed("ask", e))?;
        }
        Ok(())
    })
    .await?;
    let elapsed = started.elapsed();
    let active: usize = nodes.iter().map(|n| n.activations(Greeter::KIND)).sum();
    if active as u64 != identities {
        return Err(failed(
            "count activations",
            format!("{active} live activations, expected {identities}"),
        ));
    }
    Ok(elapsed)
}

/// CPU time this process has used (user + system), from `/proc/self/stat` in
/// USER_HZ ticks (100 per second on Linux); `None` where that file is missing.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after it.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// The RSS of a node's process, cold and warm (see the module documentation).
#[derive(Clone, Copy, Default)]
struct Baselines {
    cold: u64,
    warm: u64,
}

/// One timed run: `count` nodes on `store`, every identity activated once, the
/// activations per CPU-second printed to stderr (a figure that other load on a
/// shared machine does not shrink). With `warm_up`, that many other identities are
/// activated and passivated first (the warm baseline). Returns the nodes, still
/// running.
async fn timed_run(
    count: usize,
    store: &str,
    idle: Option<Duration>,
    (identities, warm_up): (u64, u64),
    limit: Duration,
    label: &str,
) -> Result<(Vec<Node>, Duration, Baselines), LocalError> {
    let nodes = start_nodes(count, store, idle, limit).await?;
    let cold = rss_bytes()?;
    let mut warm = cold;
    if warm_up > 0 {
        activate_all(&nodes, identities, warm_up, limit).await?;
        for node in &nodes {
            node.passivated(Greeter::KIND, limit)
                .await
                .map_err(|e| failed("wait for the warm-up's passivation", e))?;
        }
        trim_heap();
        warm = rss_bytes()?;
    }
    let cpu_before = process_cpu();
    let elapsed = activate_all(&nodes, 0, identities, limit).await?;
    if let (Some(before), Some(after)) = (cpu_before, process_cpu()) {
        let cpu = after.saturating_sub(before).as_secs_f64();
        eprintln!(
            "activate, {count} node(s), {label}: {identities} in {:.3} s wall, {cpu:.2} CPU-s: \
             {:.0} activations per CPU-second",
            elapsed.as_secs_f64(),
            identities as f64 / cpu.max(0.01)
        );
    }
    Ok((nodes, elapsed, Baselines { cold, warm }))
}

/// `activate`: `identities` new identities on one node (memory store, with the
/// memory figures), on three nodes, and on one node with the file store.
pub(crate) fn activate(identities: u64, limit: Duration) -> Result<ActivateSample, LocalError> {
    // Before the runtime's threads allocate (see the module documentation).
    ::granary::memory::pin_malloc_mmap_threshold();
    on_runtime(async move {
        // One node, memory store: rate and memory.
        let (nodes, one, baselines) = timed_run(
            1,
            "memory:",
            Some(idle_for(identities)),
            (identities, (identities / 50).max(1)),
            limit,
            "memory store",
        )
        .await?;
        let rss_active = rss_bytes()?;
        nodes[0]
            .passivated(Greeter::KIND, limit)
            .await
            .map_err(|e| failed("wait for passivation", e))?;
        let rss_passivated = rss_bytes()?;
        trim_heap();
        let rss_trimmed = rss_bytes()?;
        for node in nodes {
            node.shutdown().await;
        }

        let (nodes, three, _) =
            timed_run(3, "memory:", None, (identities, 0), limit, "memory store").await?;
        for node in nodes {
            node.shutdown().await;
        }

        let dir = tempfile::tempdir().map_err(|e| failed("create a store directory", e))?;
        let store = format!("file:{}", dir.path().join("state.db").display());
        let (nodes, file, _) =
            timed_run(1, &store, None, (identities, 0), limit, "file store").await?;
        for node in nodes {
            node.shutdown().await;
        }

        Ok(ActivateSample {
            one_node_seconds: one.as_secs_f64(),
            three_nodes_seconds: three.as_secs_f64(),
            file_one_node_seconds: file.as_secs_f64(),
            rss_before_bytes: baselines.cold,
            rss_warm_bytes: baselines.warm,
            rss_active_bytes: rss_active,
            rss_passivated_bytes: rss_passivated,
            rss_trimmed_bytes: rss_trimmed,
        })
    })
}
