//! `counter-host BIND [SEED...]`: runs a node on `BIND` (e.g. `127.0.0.1:7000`) that
//! hosts the counter kind, with the in-memory store and the default cluster name and
//! secret, joining the cluster through the seeds; stops on Ctrl-C. Try it with
//! `counter-client 127.0.0.1:7000 alice 2`. Exit status 2 on bad arguments.

use std::net::SocketAddr;
use std::process::ExitCode;

use counter_host::Counter;
use granary::prelude::*;

#[tokio::main]
async fn main() -> ExitCode {
    let addrs: Result<Vec<SocketAddr>, _> = std::env::args().skip(1).map(|a| a.parse()).collect();
    let Ok([bind, seeds @ ..]) = addrs.as_deref() else {
        eprintln!("usage: counter-host BIND [SEED...]");
        return ExitCode::from(2);
    };
    let node = Node::builder()
        .bind(*bind)
        .seeds(seeds.iter().copied())
        .store("memory:")
        .host(Counter::kind())
        .start()
        .await;
    let node = match node {
        Ok(node) => node,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("hosting examples.Counter at {}", node.addr());
    let _ = tokio::signal::ctrl_c().await;
    node.shutdown().await;
    ExitCode::SUCCESS
}
