//! Shared test kinds and cluster helpers: several nodes in one process over real TCP
//! on 127.0.0.1, waiting on cluster events (never sleeping) for convergence.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use granary_cluster::phi::PhiConfig;
use granary_cluster::{ClusterConfig, DowningConfig};
use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};

pub const WAIT: Duration = Duration::from_secs(30);

/// Per-identity activation log: (activations ever, live now, max live at once).
#[derive(Default, Clone, Copy, Debug)]
pub struct Log {
    pub activations: usize,
    pub live: usize,
    pub max_live: usize,
}

pub fn log() -> &'static Mutex<HashMap<String, Log>> {
    static LOG: OnceLock<Mutex<HashMap<String, Log>>> = OnceLock::new();
    LOG.get_or_init(Default::default)
}

/// Every message a `Counter` handled: (identity, node, when).
pub fn handled() -> &'static Mutex<Vec<(String, SocketAddr, std::time::Instant)>> {
    static HANDLED: OnceLock<Mutex<Vec<(String, SocketAddr, std::time::Instant)>>> =
        OnceLock::new();
    HANDLED.get_or_init(Default::default)
}

fn note_handled(ctx: &VirtualContext<'_, Counter>) {
    handled().lock().unwrap().push((
        ctx.identity().to_string(),
        ctx.node_addr(),
        std::time::Instant::now(),
    ));
}

pub fn log_of(identity: &str) -> Log {
    log()
        .lock()
        .unwrap()
        .get(identity)
        .copied()
        .unwrap_or_default()
}

#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub struct CounterState {
    pub n: u64,
}

/// A counter that persists every increment.
pub struct Counter;

impl VirtualActor for Counter {
    const KIND: &'static str = "test.Counter";
    type Key = String;
    type State = CounterState;

    fn activate(_key: &String) -> Self {
        Counter
    }

    async fn on_activate(
        &mut self,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<(), granary_core::BoxError> {
        let mut log = log().lock().unwrap();
        let e = log.entry(ctx.identity().to_string()).or_default();
        e.activations += 1;
        e.live += 1;
        e.max_live = e.max_live.max(e.live);
        Ok(())
    }

    async fn on_deactivate(&mut self, ctx: &mut VirtualContext<'_, Self>) {
        if let Some(e) = log().lock().unwrap().get_mut(&ctx.identity().to_string()) {
            e.live = e.live.saturating_sub(1);
        }
    }
}

#[derive(Clone, Serialize, Deserialize, Debug)]
pub struct Add(pub u64);
impl Message for Add {
    type Reply = Result<u64, String>;
}
register_message!(Add, "test.virtual.Add");
register_message!(Result<u64, String>, "test.virtual.AddReply");

impl VirtualHandler<Add> for Counter {
    async fn handle(
        &mut self,
        msg: Add,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<u64, String> {
        note_handled(ctx);
        ctx.state_mut().n += msg.0;
        ctx.write_state().await.map_err(|e| e.to_string())?;
        Ok(ctx.state().n)
    }
}

/// Where the activation runs and its count.
#[derive(Clone, Serialize, Deserialize, Debug)]
pub struct Where;
impl Message for Where {
    type Reply = (SocketAddr, u64);
}
register_message!(Where, "test.virtual.Where");
register_message!((SocketAddr, u64), "test.virtual.WhereReply");

impl VirtualHandler<Where> for Counter {
    async fn handle(&mut self, _: Where, ctx: &mut VirtualContext<'_, Self>) -> (SocketAddr, u64) {
        note_handled(ctx);
        (ctx.node_addr(), ctx.state().n)
    }
}

/// Asks the activation to deactivate once idle.
#[derive(Clone, Serialize, Deserialize, Debug)]
pub struct Rest;
impl Message for Rest {
    type Reply = ();
}
register_message!(Rest, "test.virtual.Rest");

impl VirtualHandler<Rest> for Counter {
    async fn handle(&mut self, _: Rest, ctx: &mut VirtualContext<'_, Self>) {
        ctx.deactivate_on_idle();
    }
}

pub fn counter_kind() -> Kind<Counter> {
    Kind::<Counter>::new()
        .handles::<Add>()
        .handles::<Where>()
        .handles::<Rest>()
}

/// Fast failure detection for tests.
pub fn cluster_config() -> ClusterConfig {
    ClusterConfig {
        vnodes: 32,
        gossip_interval: Duration::from_millis(100),
        heartbeat_interval: Duration::from_millis(100),
        phi: PhiConfig {
            acceptable_heartbeat_pause: Duration::from_millis(200),
            first_heartbeat_estimate: Duration::from_millis(100),
            ..PhiConfig::default()
        },
        downing: DowningConfig {
            stable_after: Duration::from_millis(300),
            ..DowningConfig::default()
        },
        ..ClusterConfig::default()
    }
}

/// The test cluster's failure detection with heartbeats allowed to pause for
/// `pause`: dropped frames (heartbeats included) down nobody for that long, for tests
/// about a lost message or a silent host rather than a failover.
pub fn patient_cluster(pause: Duration) -> ClusterConfig {
    let base = cluster_config();
    ClusterConfig {
        phi: PhiConfig {
            acceptable_heartbeat_pause: pause,
            ..base.phi.clone()
        },
        ..base
    }
}

/// Polls `cond` (a cheap local read that no event announces, such as the
/// deactivation of every activation after a node saw itself Down) every 20 ms until
/// it holds; fails the test if it does not within `WAIT`.
pub async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let ok = tokio::time::timeout(WAIT, async {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if cond() {
                return;
            }
        }
    })
    .await;
    assert!(ok.is_ok(), "timed out waiting for {what}");
}

/// Addresses on 127.0.0.1 that were free a moment ago, for nodes whose address must
/// be known before they start (a static overlay's peers, a ring computed ahead).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr"))
        .collect()
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh shared store URL for one test.
pub fn store_url(dir: &tempfile::TempDir) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "file:{}",
        dir.path().join(format!("state-{n}.db")).display()
    )
}

/// Starts `n` nodes hosting the kinds `configure` adds, all sharing `store`, and
/// waits until every node sees all of them Up.
pub async fn start_nodes(
    n: usize,
    store: &str,
    configure: impl Fn(usize, granary_virtual::NodeBuilder) -> granary_virtual::NodeBuilder,
) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let seeds: Vec<SocketAddr> = nodes.first().map(|n| n.addr()).into_iter().collect();
        let builder = Node::builder()
            .store(store)
            .seeds(seeds)
            .cluster_config(cluster_config());
        nodes.push(configure(i, builder).start().await.expect("node starts"));
    }
    for node in &nodes {
        assert!(
            wait_members(node, n).await,
            "{} sees {} Up of {n}",
            node.addr(),
            node.cluster().up_members().len()
        );
    }
    // Up is not yet able to host: a node takes activations once it holds a lease, so
    // a test that counts where placement put identities waits for that too.
    for node in &nodes {
        node.ready(WAIT)
            .await
            .expect("every node holds a host lease");
    }
    nodes
}

/// Waits (on cluster events) until `node` sees exactly `n` Up members.
pub async fn wait_members(node: &Node, n: usize) -> bool {
    let mut events = node.cluster().subscribe();
    tokio::time::timeout(WAIT, async {
        loop {
            if node.cluster().up_members().len() == n {
                return true;
            }
            if events.recv().await.is_none() {
                return false;
            }
        }
    })
    .await
    .unwrap_or(false)
}

pub fn shared<T>(t: T) -> Arc<T> {
    Arc::new(t)
}
