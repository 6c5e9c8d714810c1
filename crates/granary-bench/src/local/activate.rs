//! The `activate` test (granary only: the peers have no virtual actors): how many
//! new virtual-actor identities per second a cluster activates, on one node and on
//! three nodes in this process (TCP on 127.0.0.1, `memory:` stores, a kind without
//! state). Every identity gets one `ask`; the first message activates it.
//!
//! On three nodes the callers are spread over all three nodes, each activating its
//! own identities, so the figure is the cluster's rate with directory owners and
//! hosts on different nodes (about two thirds of the lookups cross the network).

use std::time::{Duration, Instant};

use ::granary::register_message;
use ::granary::virtual_actors::{
    Kind, Node, VirtualActor, VirtualContext, VirtualError, VirtualHandler,
};
use ::granary::Message;
use serde::{Deserialize, Serialize};

use super::support::{on_runtime, within};
use super::{Framework, LocalError, Test};

const FRAMEWORK: Framework = Framework::Granary;

/// Concurrent callers per node.
const CALLERS_PER_NODE: u64 = 128;

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
async fn start_nodes(count: usize, limit: Duration) -> Result<Vec<Node>, LocalError> {
    let mut nodes: Vec<Node> = Vec::new();
    for _ in 0..count {
        let seeds: Vec<_> = nodes.first().map(Node::addr).into_iter().collect();
        let node = Node::builder()
            .store("memory:")
            .seeds(seeds)
            .host(Kind::<Greeter>::new().handles::<Hello>())
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

/// Activates `identities` new identities through `nodes` (callers spread evenly)
/// and returns the time it took.
async fn activate_all(
    nodes: &[Node],
    identities: u64,
    limit: Duration,
) -> Result<Duration, LocalError> {
    let callers = CALLERS_PER_NODE * nodes.len() as u64;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(callers as usize);
    for caller in 0..callers {
        let node = &nodes[(caller % nodes.len() as u64) as usize];
        let refs: Vec<_> = (caller..identities)
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

/// `activate`: `identities` new identities on one node, then on three; the two
/// durations. Also prints (to stderr) the activations per CPU-second of this
/// process, a figure that other load on a shared machine does not shrink.
pub(crate) fn activate(identities: u64, limit: Duration) -> Result<[Duration; 2], LocalError> {
    on_runtime(async move {
        let mut out = [Duration::ZERO; 2];
        for (slot, count) in out.iter_mut().zip([1, 3]) {
            let nodes = start_nodes(count, limit).await?;
            let cpu_before = process_cpu();
            *slot = activate_all(&nodes, identities, limit).await?;
            if let (Some(before), Some(after)) = (cpu_before, process_cpu()) {
                let cpu = after.saturating_sub(before).as_secs_f64();
                eprintln!(
                    "activate, {count} node(s): {identities} in {:.3} s wall, {cpu:.2} CPU-s: \
                     {:.0} activations per CPU-second",
                    slot.as_secs_f64(),
                    identities as f64 / cpu.max(0.01)
                );
            }
            for node in nodes {
                node.shutdown().await;
            }
        }
        Ok(out)
    })
}
