//! A small cluster of virtual-actor nodes in one process (real TCP on 127.0.0.1),
//! each with its management endpoint, and a load generator.

#![allow(dead_code, unreachable_pub)]

pub mod browser;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use granary_admin::Admin;
use granary_cluster::phi::PhiConfig;
use granary_cluster::{ClusterConfig, DowningConfig};
use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};

/// The longest any test waits for a condition.
pub const WAIT: Duration = Duration::from_secs(30);

/// A visit counter per key, kept in memory.
pub struct Visits {
    n: u64,
}

impl VirtualActor for Visits {
    const KIND: &'static str = "admin.Visits";
    type Key = String;
    type State = ();

    fn activate(_key: &String) -> Self {
        Visits { n: 0 }
    }
}

/// Counts one visit; answers the node that handled it and the count.
#[derive(Clone, Serialize, Deserialize, Debug)]
pub struct Visit;
impl Message for Visit {
    type Reply = (SocketAddr, u64);
}
register_message!(Visit, "admin.test.Visit");
register_message!((SocketAddr, u64), "admin.test.VisitReply");

impl VirtualHandler<Visit> for Visits {
    async fn handle(&mut self, _: Visit, ctx: &mut VirtualContext<'_, Self>) -> (SocketAddr, u64) {
        self.n += 1;
        (ctx.node_addr(), self.n)
    }
}

/// Fast failure detection, as the other crates' tests use.
fn cluster_config() -> ClusterConfig {
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

/// One node and its endpoint.
pub struct Member {
    pub node: Node,
    pub admin: Admin,
}

impl Member {
    /// The endpoint as `host:port`.
    pub fn endpoint(&self) -> String {
        self.admin.local_addr().to_string()
    }

    /// Crashes the node and its endpoint, as a killed process would.
    pub async fn kill(self) {
        self.admin.shutdown(Duration::from_secs(2)).await;
        self.node.kill().await;
    }
}

/// Starts `n` nodes sharing a file store in `dir`, each with an endpoint sampling
/// every 200 ms, and waits until every node sees all of them Up and advertising
/// their endpoints.
pub async fn start_cluster(n: usize, dir: &tempfile::TempDir) -> Vec<Member> {
    let store = format!("file:{}", dir.path().join("state.db").display());
    let mut members: Vec<Member> = Vec::new();
    for _ in 0..n {
        let seeds: Vec<SocketAddr> = members.first().map(|m| m.node.addr()).into_iter().collect();
        let node = Node::builder()
            .store(store.clone())
            .seeds(seeds)
            .cluster_config(cluster_config())
            .host(Kind::<Visits>::new().handles::<Visit>())
            .start()
            .await
            .expect("node starts");
        let admin = Admin::builder(node.probe())
            .sample_every(Duration::from_millis(200))
            .start()
            .await
            .expect("endpoint starts");
        members.push(Member { node, admin });
    }
    for m in &members {
        let ready = wait_until(WAIT, || {
            let seen = m.node.cluster().members();
            seen.iter()
                .filter(|x| {
                    x.status == granary_cluster::MemberStatus::Up
                        && x.metadata.contains_key(granary_admin::ADMIN_METADATA_KEY)
                })
                .count()
                == n
        })
        .await;
        assert!(
            ready,
            "{} does not see {n} members Up with endpoints",
            m.node.addr()
        );
    }
    members
}

/// Polls `check` every 20 ms until it holds or `deadline` passes.
pub async fn wait_until(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Keeps asking `Visit` of `keys` keys from every node's refs until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub answered: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts one asking loop per node.
    pub fn start(members: &[Member], keys: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let tasks = members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let refs: Vec<_> = (0..keys)
                    .map(|k| m.node.get::<Visits>(format!("key-{k}")))
                    .collect();
                let stop = stop.clone();
                let answered = answered.clone();
                tokio::spawn(async move {
                    let mut k = i;
                    while !stop.load(Ordering::Relaxed) {
                        if refs[k % refs.len()].ask(Visit).await.is_ok() {
                            answered.fetch_add(1, Ordering::Relaxed);
                        } else {
                            // A killed node's refs fail at once: pace the retries.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        k += 1;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            answered,
            tasks,
        }
    }

    /// Stops the loops.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}
