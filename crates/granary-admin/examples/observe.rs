//! Metrics and traces of one node, from the public API: the Prometheus recorder
//! installed before the node starts, granary's `TraceLayer` on a tracing registry,
//! one traced ask, then the in-path families read from the endpoint's `/metrics`.
//!
//! `cargo run -p granary-admin --example observe`

use std::time::Duration;

use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

struct Greeter;

impl VirtualActor for Greeter {
    const KIND: &'static str = "example.Greeter";
    type Key = String;
    type State = u64;

    fn activate(_key: &String) -> Self {
        Greeter
    }
}

#[derive(Clone, Serialize, Deserialize, Debug)]
struct Greet;
impl Message for Greet {
    type Reply = u64;
}
register_message!(Greet, "example.Greet");

impl VirtualHandler<Greet> for Greeter {
    async fn handle(&mut self, _: Greet, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        *ctx.state_mut() += 1;
        let _ = ctx.write_state().await;
        *ctx.state()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Before any node starts: the recorder, then the subscriber.
    granary_admin::install_prometheus();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(granary_remote::trace::TraceLayer),
    )?;

    let node = Node::builder()
        .store("memory:")
        .host(Kind::<Greeter>::new().handles::<Greet>())
        .start()
        .await?;
    let admin = granary_admin::Admin::builder(node.probe()).start().await?;

    let request = tracing::info_span!("request");
    let trace = granary_remote::trace::context_of(&request).map(|cx| cx.to_string());
    let count = node
        .get::<Greeter>("ada")
        .ask(Greet)
        .instrument(request)
        .await?;
    println!("answer {count}, traceparent of the request {trace:?}");

    let endpoint = admin.local_addr();
    let mut s = tokio::net::TcpStream::connect(endpoint).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    for line in text.lines().filter(|l| {
        l.starts_with("granary_messages_handled_total")
            || l.starts_with("granary_activations_activated_total")
            || l.starts_with("granary_store_writes_total")
            || l.starts_with("granary_asks_total")
    }) {
        println!("{line}");
    }
    admin.shutdown(Duration::from_secs(1)).await;
    node.shutdown().await;
    Ok(())
}
