//! One virtual-actor ask round trip to an identity on the other node: two nodes over
//! TCP on 127.0.0.1, then two nodes whose connections go through the RabbitMQ broker
//! at 127.0.0.1:5672 (`transport.link = "amqp"`, `docs/overlays.md`,
//! "Publish-subscribe"). Sequential asks from one caller; prints p50, p99 and mean.
//!
//! `cargo run --release -p granary-virtual --example amqp_latency -- [asks] [amqp-url]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use granary_virtual::{LinkKind, MembershipSettings, ProviderKind, TransportSettings};
use serde::{Deserialize, Serialize};

struct Echo;

impl VirtualActor for Echo {
    const KIND: &'static str = "latency.Echo";
    type Key = i64;
    type State = ();
    fn activate(_: &i64) -> Self {
        Echo
    }
}

/// Answers with the node it runs on.
#[derive(Clone, Serialize, Deserialize)]
struct Ping;
impl Message for Ping {
    type Reply = SocketAddr;
}
register_message!(Ping, "latency.Ping");
register_message!(SocketAddr, "latency.Pong");

impl VirtualHandler<Ping> for Echo {
    async fn handle(&mut self, _: Ping, ctx: &mut VirtualContext<'_, Self>) -> SocketAddr {
        ctx.node_addr()
    }
}

async fn two_nodes(broker: Option<&str>, cluster: &str) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    for _ in 0..2 {
        let mut builder = Node::builder()
            .store("memory:")
            .cluster_secret(cluster, "latency-secret")
            .host(Kind::<Echo>::new().handles::<Ping>());
        builder = match broker {
            Some(url) => builder
                .transport(TransportSettings {
                    link: LinkKind::Amqp,
                    amqp_url: Some(url.into()),
                    ..TransportSettings::default()
                })
                .membership(MembershipSettings {
                    provider: ProviderKind::Amqp,
                    ..MembershipSettings::default()
                }),
            None => builder.seeds(out.first().map(|n| n.addr())),
        };
        out.push(builder.start().await.expect("node starts"));
    }
    for node in &out {
        while node.cluster().up_members().len() < 2 {
            let mut ev = node.cluster().subscribe();
            let _ = tokio::time::timeout(Duration::from_secs(1), ev.recv()).await;
        }
        node.ready(Duration::from_secs(30)).await.expect("ready");
    }
    out
}

/// Round trips of `asks` sequential asks from the first node to an identity on the
/// second.
async fn round_trips(nodes: &[Node], asks: usize) -> Vec<Duration> {
    let caller = &nodes[0];
    let mut key = 0i64;
    let remote = loop {
        let r = caller.get::<Echo>(key);
        if r.ask(Ping).await.expect("activation") != caller.addr() {
            break r;
        }
        key += 1;
    };
    for _ in 0..100 {
        remote.ask(Ping).await.expect("warm-up");
    }
    let mut out = Vec::with_capacity(asks);
    for _ in 0..asks {
        let start = Instant::now();
        remote.ask(Ping).await.expect("ask");
        out.push(start.elapsed());
    }
    out.sort();
    out
}

fn report(name: &str, times: &[Duration]) {
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{name:<6} {} asks: p50 {:?}  p99 {:?}  mean {:?}",
        times.len(),
        at(0.5),
        at(0.99),
        mean
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let asks: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let url = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let tag = std::process::id();

    let tcp = two_nodes(None, &format!("latency-tcp-{tag}")).await;
    report("tcp", &round_trips(&tcp, asks).await);
    for n in tcp {
        n.shutdown().await;
    }

    let amqp = two_nodes(Some(&url), &format!("latency-amqp-{tag}")).await;
    report("amqp", &round_trips(&amqp, asks).await);
    for n in amqp {
        n.shutdown().await;
    }
}
