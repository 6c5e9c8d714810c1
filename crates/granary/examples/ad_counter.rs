//! The advertisement counter of Lasp and Rovio (seed 002 §6.3.1), on replicated CRDTs.
//!
//! Run with `cargo run --release --example ad_counter`. Three nodes start in this
//! process on 127.0.0.1, each with a granary-crdt `Replicator`. Every node holds:
//!
//! - `active-ads`, an `ORSet<String>` of the ads that may still be shown;
//! - `views/<ad>`, one `GCounter` per ad, counting how often it was shown.
//!
//! Two clients per node show ads from their node's *local* view of `active-ads` and
//! count each view on their node's counter — no coordination on the hot path. On
//! every node an enforcer watches the counters and removes an ad from `active-ads`
//! once its count reaches the threshold. Because removals take a push round to reach
//! the other nodes, a few views more than the threshold can be served (the trade-off
//! the Lasp paper measures); the example prints how many. It ends when every node sees
//! no active ad and all counts agree, and exits non-zero on a wrong result; every wait
//! is bounded.
use std::process::ExitCode;
use std::time::Duration;

use granary::cluster::{Cluster, ClusterConfig};
use granary::crdt::{GCounter, ORSet, Replicator, ReplicatorConfig};
use granary::remote::{RemoteNode, TransportConfig};
use granary::ActorSystem;

const ADS: [&str; 4] = ["shoes", "coffee", "bikes", "books"];
const THRESHOLD: u64 = 200;
const CLIENTS_PER_NODE: usize = 2;

struct Node {
    remote: RemoteNode,
    cluster: Cluster,
    replicator: Replicator,
}

async fn start_node(seeds: Vec<std::net::SocketAddr>) -> Result<Node, Box<dyn std::error::Error>> {
    let remote = RemoteNode::start(
        ActorSystem::new(),
        TransportConfig::new("ad-counter", b"example-secret".to_vec()),
    )
    .await?;
    let cluster = Cluster::start_on_remote(ClusterConfig::default(), &remote, seeds).await?;
    let config = ReplicatorConfig {
        delta_interval: Duration::from_millis(20),
        ..ReplicatorConfig::default()
    };
    let replicator = Replicator::start(&remote, &cluster, config)?;
    Ok(Node {
        remote,
        cluster,
        replicator,
    })
}

/// Shows ads from the node's local view until none is left, counting each view.
async fn client(
    replicator: Replicator,
    id: usize,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let ads = replicator.crdt::<ORSet<String>>("active-ads")?;
    let mut shown = 0;
    // One view every 2 ms: a client, not a busy loop.
    let mut pace = tokio::time::interval(Duration::from_millis(2));
    loop {
        pace.tick().await;
        let active = ads.value()?;
        if active.is_empty() {
            return Ok(shown);
        }
        // Rotate through the active ads, each client starting elsewhere.
        let ad = active
            .iter()
            .nth((shown as usize + id) % active.len())
            .cloned();
        if let Some(ad) = ad {
            let views = replicator.crdt::<GCounter>(&format!("views/{ad}"))?;
            views.update(|count, me| count.increment(me, 1))?;
            shown += 1;
        }
    }
}

/// Removes `ad` from the active set once its (replicated) count reaches the threshold.
async fn enforcer(
    replicator: Replicator,
    ad: &'static str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let ads = replicator.crdt::<ORSet<String>>("active-ads")?;
    let views = replicator.crdt::<GCounter>(&format!("views/{ad}"))?;
    let mut count = views.subscribe()?;
    loop {
        if *count.borrow_and_update() >= THRESHOLD {
            ads.update(|set, _| set.remove(&ad.to_string()))?;
            return Ok(());
        }
        count.changed().await?;
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let first = start_node(vec![]).await?;
    let seed = first.remote.local_addr();
    let nodes = vec![
        first,
        start_node(vec![seed]).await?,
        start_node(vec![seed]).await?,
    ];
    println!(
        "3 nodes up: {:?}",
        nodes
            .iter()
            .map(|n| n.remote.local_addr())
            .collect::<Vec<_>>()
    );

    // The campaign: every ad active, announced from node 0.
    let active = nodes[0].replicator.crdt::<ORSet<String>>("active-ads")?;
    for ad in ADS {
        active.update(|set, me| set.add(me, ad.to_string()))?;
    }
    let mut enforcers = tokio::task::JoinSet::new();
    for node in &nodes {
        let view = node.replicator.crdt::<ORSet<String>>("active-ads")?;
        let mut watch = view.subscribe()?;
        // Clients start once their node has heard of the campaign.
        tokio::time::timeout(
            Duration::from_secs(10),
            watch.wait_for(|ads| ads.len() == ADS.len()),
        )
        .await??;
        for ad in ADS {
            enforcers.spawn(enforcer(node.replicator.clone(), ad));
        }
    }
    let mut clients = tokio::task::JoinSet::new();
    for (n, node) in nodes.iter().enumerate() {
        for c in 0..CLIENTS_PER_NODE {
            clients.spawn(client(node.replicator.clone(), n * CLIENTS_PER_NODE + c));
        }
    }
    let mut shown = 0;
    let all_clients = async {
        while let Some(result) = clients.join_next().await {
            shown += result
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    };
    tokio::time::timeout(Duration::from_secs(30), all_clients).await??;
    // Every node's enforcers finish once the counts they watch have arrived.
    let all_enforcers = async {
        while let Some(result) = enforcers.join_next().await {
            result
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    };
    tokio::time::timeout(Duration::from_secs(10), all_enforcers).await??;

    // Wait until every node agrees on every count.
    let counters: Vec<Vec<_>> = ADS
        .iter()
        .map(|ad| {
            nodes
                .iter()
                .map(|n| n.replicator.crdt::<GCounter>(&format!("views/{ad}")))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    let agreed = async {
        let mut poll = tokio::time::interval(Duration::from_millis(10));
        loop {
            poll.tick().await;
            let same = counters.iter().all(|per_node| {
                let first = per_node[0].value().ok();
                per_node.iter().all(|c| c.value().ok() == first)
            });
            if same {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), agreed).await?;

    println!(
        "{shown} views served by {} clients",
        nodes.len() * CLIENTS_PER_NODE
    );
    let mut total = 0;
    for (ad, per_node) in ADS.iter().zip(&counters) {
        let views = per_node[0].value()?;
        total += views;
        println!(
            "  {ad:<7} {views} views (threshold {THRESHOLD}, {} over while the removal travelled)",
            views.saturating_sub(THRESHOLD)
        );
        if views < THRESHOLD {
            return Err(format!("{ad} was disabled at {views} views, below the threshold").into());
        }
    }
    if total != shown {
        return Err(format!("the counters hold {total} views, the clients served {shown}").into());
    }
    for node in &nodes {
        node.replicator.stop();
        node.cluster.stop().await;
        node.remote.shutdown();
    }
    println!("every ad disabled on every node; counts agree");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ad_counter failed: {e}");
            ExitCode::FAILURE
        }
    }
}
