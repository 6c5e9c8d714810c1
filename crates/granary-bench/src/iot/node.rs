//! The hidden `iot-node` subcommand: one member of the `iot` scenario in a process of
//! its own, a server or a client, started by the harness ([`super::harness`]).
//!
//! What a member prints on stdout, one line each:
//! - a server: `listening ADDR` once it serves; `up N` whenever the number of Up
//!   cluster members it sees changes; `counts ID REPORTS CORRUPT RESENDS UNTRACKED RT`
//!   every `--report-every-ms` (ID 0) and in answer to `flush ID`
//!   ([`super::totals::Totals::line`]);
//! - a client: `ready` once a server tracks its device.
//!
//! What a server reads on stdin: `flush ID`, and `servers ADDR,ADDR,…` (every server's
//! address: from then on `--drop` and `--delay-us` apply to messages to every other
//! peer, the clients).
//! Either member exits when its stdin closes, which also covers a harness killed with
//! SIGKILL; the harness kills members with SIGKILL to inject failures.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use granary::devices::DeviceId;
use granary::remote::faults::{FaultInjector, Scope};
use tokio::sync::mpsc;

use super::clients::{Client, ClientSetup};
use super::servers::{client_link, fault_client_traffic, Server, DROPPED_CHANNEL};
use super::totals::Totals;
use super::IotBenchError;

/// What a member process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Role {
    /// A cluster member tracking devices and asking them for reports.
    Server,
    /// One device answering report requests.
    Client,
}

/// Options of the hidden `iot-node` subcommand.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// Server or client.
    #[arg(long, value_enum)]
    role: Role,
    /// A server's listen address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Servers to join through (a server) or to register with (a client).
    #[arg(long, value_delimiter = ',')]
    seeds: Vec<SocketAddr>,
    /// A server: every server's address, if known at start (else sent on stdin).
    #[arg(long, value_delimiter = ',')]
    servers: Vec<SocketAddr>,
    /// Probability of dropping each message between this member and a client or server
    /// on the other side.
    #[arg(long, default_value_t = 0.0)]
    drop: f64,
    /// One-way delay of each message between a client and a server, microseconds.
    #[arg(long, default_value_t = 0)]
    delay_us: u64,
    /// A server: the cap of the resend timeout, milliseconds.
    #[arg(long, default_value_t = 50)]
    resend_ms: u64,
    /// A client: the heartbeat interval, milliseconds.
    #[arg(long, default_value_t = 500)]
    heartbeat_ms: u64,
    /// A client: its device id.
    #[arg(long)]
    device: Option<String>,
    /// Seed of the drop decisions.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// A server: how often it prints its counts, milliseconds.
    #[arg(long, default_value_t = 100)]
    report_every_ms: u64,
}

/// Runs `granary-bench iot-node`.
pub(crate) fn run_node(args: NodeArgs) -> Result<(), IotBenchError> {
    let runtime = match args.role {
        Role::Server => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        Role::Client => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .map_err(IotBenchError::Runtime)?;
    let stdin = stdin_lines();
    let result = runtime.block_on(async move {
        match args.role {
            Role::Server => serve(args, stdin).await,
            Role::Client => report(args, stdin).await,
        }
    });
    // Do not wait for the nodes' tasks to wind down: the harness wants us gone.
    runtime.shutdown_background();
    result
}

/// Stdin's lines; `None` once it closes.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Prints one line to the harness; false if it is gone.
fn say(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

async fn serve(
    args: NodeArgs,
    mut stdin: mpsc::UnboundedReceiver<String>,
) -> Result<(), IotBenchError> {
    if !(0.0..1.0).contains(&args.drop) {
        return Err(IotBenchError::Options("--drop must be in [0, 1)".into()));
    }
    let faults = FaultInjector::new(args.seed);
    let link = client_link(args.drop, Duration::from_micros(args.delay_us));
    let totals = Arc::new(Totals::new());
    let server = Server::start(
        args.listen,
        args.seeds,
        &faults,
        &totals,
        Duration::from_millis(args.resend_ms.max(1)),
    )
    .await?;
    if !args.servers.is_empty() {
        fault_client_traffic(&faults, &args.servers, link.clone());
    }
    if !say(&format!("listening {}", server.addr())) {
        return Ok(());
    }
    let mut counts = tokio::time::interval(Duration::from_millis(args.report_every_ms.max(1)));
    let mut members = tokio::time::interval(Duration::from_millis(50));
    let mut up = 0;
    loop {
        let said = tokio::select! {
            line = stdin.recv() => {
                let Some(line) = line else { return Ok(()) };
                if let Some(id) = line.strip_prefix("flush ").and_then(|id| id.parse().ok()) {
                    say(&totals.line(id))
                } else if let Some(list) = line.strip_prefix("servers ") {
                    let servers: Vec<SocketAddr> =
                        list.split(',').filter_map(|a| a.parse().ok()).collect();
                    fault_client_traffic(&faults, &servers, link.clone());
                    true
                } else {
                    eprintln!("iot-node: unknown command {line:?}");
                    true
                }
            }
            _ = counts.tick() => say(&totals.line(0)),
            _ = members.tick() => {
                let now = server.up_members();
                if now != up {
                    up = now;
                    say(&format!("up {up}"))
                } else {
                    true
                }
            }
        };
        if !said {
            return Ok(());
        }
    }
}

async fn report(
    args: NodeArgs,
    mut stdin: mpsc::UnboundedReceiver<String>,
) -> Result<(), IotBenchError> {
    let device = args
        .device
        .ok_or_else(|| IotBenchError::Options("a client needs --device".into()))?;
    let id = DeviceId::new(device).map_err(|e| IotBenchError::Client(e.to_string()))?;
    let faults = FaultInjector::new(args.seed);
    if let Some(link) = client_link(args.drop, Duration::from_micros(args.delay_us)) {
        // A client talks to servers only.
        faults.set(Scope::all().on_channel(DROPPED_CHANNEL), link);
    }
    let setup = ClientSetup {
        seeds: args.seeds,
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(1)),
        faults,
    };
    let _client = Client::start(&id, &setup).await?;
    if !say("ready") {
        return Ok(());
    }
    // Serve until the harness closes stdin (or kills us).
    while stdin.recv().await.is_some() {}
    Ok(())
}
