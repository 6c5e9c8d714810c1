//! The `iot` scenario (seed 003 §5.3–5.4): external devices report to a cluster.
//!
//! Servers are cluster members running granary-devices' `DeviceServer`; clients are
//! devices, each on a node of its own, registered through every server as a seed. For
//! each device it tracks, a server asks for a report (1,000 `i64` values), sums it and
//! asks again at once; a request without an answer within `--resend-ms` is sent again.
//! The collector counts reports over every server; a row gives reports per second and
//! the report round trip (request sent → report summed) percentiles.
//!
//! Failure injection, as in the paper: `--drop` drops that fraction of the messages
//! between clients and servers (never between servers); `--client-mttf` and
//! `--server-mttf` kill members after a lifetime drawn uniformly from
//! [0.25, 1.75] × MTTF and restart them `--restart-delay` later (a server on its old
//! address, a client on a new node with a new incarnation).
//!
//! Everything runs in this one process on 127.0.0.1 over real TCP: a kill shuts a
//! member's node (its sockets close at once, nobody is told), as a crashed process
//! would. One row per combination of `--clients-per-server`, `--drop`,
//! `--client-mttf` and `--server-mttf`.

mod chaos;
mod clients;
mod messages;
mod servers;
mod totals;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use granary::devices::DeviceId;
use granary::remote::faults::{FaultInjector, LinkFaults, Scope};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::latency::HistogramError;
use crate::report::{contract_columns, ReportError, Reporter};
use chaos::{live, ChaosCounts, Lifetimes, Member};
use clients::{Client, ClientSetup};
use servers::Server;
use totals::Totals;

/// Options of `granary-bench iot`.
#[derive(Debug, Args)]
pub(crate) struct IotArgs {
    /// Servers (cluster members). Default 3; `--quick`: 2.
    #[arg(long)]
    servers: Option<usize>,
    /// Clients (devices) per server, comma-separated; one row each.
    /// Default 1,2,4,8; `--quick`: 2.
    #[arg(long, value_delimiter = ',')]
    clients_per_server: Option<Vec<usize>>,
    /// Probability that a message between a client and a server is dropped,
    /// comma-separated (0 to 1). Default 0; `--quick`: 0,0.2.
    #[arg(long = "drop", value_delimiter = ',')]
    drops: Option<Vec<f64>>,
    /// Mean time to failure of each client in seconds, comma-separated; 0 = no kills.
    /// Default 0; `--quick`: 0 and one run at 1.5.
    #[arg(long, value_delimiter = ',')]
    client_mttf: Option<Vec<f64>>,
    /// Mean time to failure of each server in seconds, comma-separated; 0 = no kills.
    /// Default 0.
    #[arg(long, value_delimiter = ',')]
    server_mttf: Option<Vec<f64>>,
    /// Seconds a killed member stays dead before its restart (paper: 5).
    /// Default 5; `--quick`: 0.5.
    #[arg(long)]
    restart_delay: Option<f64>,
    /// Measured seconds per row (after the warm-up). Default 10; `--quick`: 2.
    #[arg(long)]
    seconds: Option<f64>,
    /// The devices' heartbeat interval, milliseconds. Default 500.
    #[arg(long, default_value_t = 500)]
    heartbeat_ms: u64,
    /// A report request unanswered for this long is sent again, milliseconds
    /// (paper: 3). Default 50: on a shared 2-core machine a 3 ms limit resends
    /// answers that are merely queued.
    #[arg(long, default_value_t = 50)]
    resend_ms: u64,
    /// Seed of the drop decisions and lifetimes.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Small sizes (well under a minute), for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// Why the `iot` scenario failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IotBenchError {
    /// The async runtime could not start.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    /// A server could not start.
    #[error("a server could not start: {0}")]
    Server(String),
    /// A client could not start.
    #[error("a client could not start: {0}")]
    Client(String),
    /// The options make no sense.
    #[error("{0}")]
    Options(String),
    /// The servers did not form one cluster.
    #[error("the servers did not form one cluster within 30 s")]
    NoCluster,
    /// A report arrived with wrong values.
    #[error("{0} reports arrived corrupted")]
    Corrupt(u64),
    /// Without failures or drops every device must report.
    #[error("no report arrived in {seconds} s without any failure injected")]
    NoReports {
        /// The measured window.
        seconds: f64,
    },
    /// The latency histogram failed.
    #[error("latency histogram: {0}")]
    Histogram(#[from] HistogramError),
    /// Writing a row failed.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// One measured configuration.
#[derive(Debug, Clone, Copy)]
struct Config {
    servers: usize,
    clients_per_server: usize,
    drop: f64,
    client_mttf: f64,
    server_mttf: f64,
    restart_delay: f64,
    seconds: f64,
    warmup: f64,
    heartbeat: Duration,
    resend: Duration,
    seed: u64,
}

#[derive(Debug, Serialize)]
struct IotRow {
    scenario: &'static str,
    mode: &'static str,
    nodes: usize,
    actors: usize,
    payload_bytes: usize,
    messages: u64,
    seconds: f64,
    msgs_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    servers: usize,
    clients_per_server: usize,
    drop_probability: f64,
    client_mttf_s: f64,
    server_mttf_s: f64,
    restart_delay_s: f64,
    heartbeat_ms: u64,
    resend_ms: u64,
    reports_per_sec: f64,
    resends: u64,
    client_kills: u64,
    server_kills: u64,
    failed_restarts: u64,
}

/// This scenario's columns after the contract's ([`contract_columns`]).
const OWN_COLUMNS: &[&str] = &[
    "servers",
    "clients_per_server",
    "drop_probability",
    "client_mttf_s",
    "server_mttf_s",
    "restart_delay_s",
    "heartbeat_ms",
    "resend_ms",
    "reports_per_sec",
    "resends",
    "client_kills",
    "server_kills",
    "failed_restarts",
];

/// Runs `granary-bench iot`.
pub(crate) fn run(args: IotArgs) -> Result<(), IotBenchError> {
    let configs = configs(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(IotBenchError::Runtime)?;
    let mut reporter = Reporter::new(
        &contract_columns(OWN_COLUMNS),
        args.csv.as_deref(),
        configs.len() as u64,
    )?;
    for config in configs {
        reporter.progress().set_message(format!(
            "{} clients/server, drop {}, client MTTF {} s, server MTTF {} s",
            config.clients_per_server, config.drop, config.client_mttf, config.server_mttf
        ));
        let row = runtime.block_on(measure(config))?;
        reporter.emit(&row)?;
        reporter.progress().inc(1);
    }
    reporter.finish();
    Ok(())
}

/// Every combination of the swept options.
fn configs(args: &IotArgs) -> Result<Vec<Config>, IotBenchError> {
    let quick = args.quick;
    let servers = args.servers.unwrap_or(if quick { 2 } else { 3 });
    let clients =
        args.clients_per_server
            .clone()
            .unwrap_or(if quick { vec![2] } else { vec![1, 2, 4, 8] });
    let drops = args
        .drops
        .clone()
        .unwrap_or(if quick { vec![0.0, 0.2] } else { vec![0.0] });
    let client_mttfs =
        args.client_mttf
            .clone()
            .unwrap_or(if quick { vec![0.0, 1.5] } else { vec![0.0] });
    let server_mttfs = args.server_mttf.clone().unwrap_or(vec![0.0]);
    let restart_delay = args.restart_delay.unwrap_or(if quick { 0.5 } else { 5.0 });
    let seconds = args.seconds.unwrap_or(if quick { 2.0 } else { 10.0 });
    if servers == 0 || clients.contains(&0) {
        return Err(IotBenchError::Options(
            "need at least one server and one client per server".into(),
        ));
    }
    if drops.iter().any(|d| !(0.0..1.0).contains(d)) {
        return Err(IotBenchError::Options("--drop must be in [0, 1)".into()));
    }
    let bad_time = |t: &f64| !t.is_finite() || *t < 0.0;
    if client_mttfs.iter().chain(&server_mttfs).any(bad_time)
        || bad_time(&restart_delay)
        || seconds <= 0.0
    {
        return Err(IotBenchError::Options(
            "times must be finite and not negative".into(),
        ));
    }
    let mut configs = Vec::new();
    for &clients_per_server in &clients {
        for &drop in &drops {
            for &client_mttf in &client_mttfs {
                for &server_mttf in &server_mttfs {
                    // --quick: one failure row (client MTTF) without drops, not the
                    // full cross product.
                    if quick && client_mttf > 0.0 && drop > 0.0 {
                        continue;
                    }
                    configs.push(Config {
                        servers,
                        clients_per_server,
                        drop,
                        client_mttf,
                        server_mttf,
                        restart_delay,
                        seconds,
                        warmup: if quick { 0.5 } else { 2.0 },
                        heartbeat: Duration::from_millis(args.heartbeat_ms.max(1)),
                        resend: Duration::from_millis(args.resend_ms.max(1)),
                        seed: args.seed,
                    });
                }
            }
        }
    }
    Ok(configs)
}

/// Sets up servers and clients, measures one window, tears everything down.
async fn measure(config: Config) -> Result<IotRow, IotBenchError> {
    let totals = Arc::new(Totals::new()?);
    let server_faults = FaultInjector::new(config.seed);
    let client_faults = FaultInjector::new(config.seed.wrapping_add(1));
    if config.drop > 0.0 {
        client_faults.set(
            Scope::all(),
            LinkFaults {
                drop_probability: config.drop,
                delay: None,
            },
        );
    }

    // Servers: the first forms the cluster, the others join it.
    let mut servers: Vec<Server> = Vec::new();
    let any_port = ([127, 0, 0, 1], 0).into();
    for _ in 0..config.servers {
        let seeds = servers.first().map(|s| vec![s.addr()]).unwrap_or_default();
        servers.push(Server::start(any_port, seeds, &server_faults, &totals, config.resend).await?);
    }
    let formed = Instant::now() + Duration::from_secs(30);
    while servers.iter().any(|s| s.up_members() != config.servers) {
        if Instant::now() > formed {
            return Err(IotBenchError::NoCluster);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addrs: Vec<_> = servers.iter().map(|s| s.addr()).collect();

    // Clients: all connected before the window opens.
    let setup = ClientSetup {
        seeds: addrs.clone(),
        heartbeat: config.heartbeat,
        client_faults: client_faults.clone(),
        server_faults: server_faults.clone(),
        drop_probability: config.drop,
    };
    let devices = config.servers * config.clients_per_server;
    let mut clients = Vec::new();
    for i in 0..devices {
        let id = DeviceId::new(format!("device-{i}"))
            .map_err(|e| IotBenchError::Client(e.to_string()))?;
        let client = Client::start(&id, &setup).await?;
        clients.push((id, client));
    }

    // Every member lives under a supervisor from now on (killing it by MTTF if asked).
    let (stop, stopped) = watch::channel(false);
    let client_counts = Arc::new(ChaosCounts::default());
    let server_counts = Arc::new(ChaosCounts::default());
    let mut lives: Vec<JoinHandle<()>> = Vec::new();
    let restart_delay = Duration::from_secs_f64(config.restart_delay);
    for (i, (id, client)) in clients.into_iter().enumerate() {
        let lifetimes = (config.client_mttf > 0.0).then(|| {
            Lifetimes::new(
                Duration::from_secs_f64(config.client_mttf),
                config.seed ^ ((i as u64) << 8),
            )
        });
        let member = Member::Client {
            id,
            setup: setup.clone(),
            running: Some(client),
        };
        lives.push(tokio::spawn(live(
            member,
            lifetimes,
            restart_delay,
            client_counts.clone(),
            stopped.clone(),
        )));
    }
    for (i, server) in servers.into_iter().enumerate() {
        let lifetimes = (config.server_mttf > 0.0).then(|| {
            Lifetimes::new(
                Duration::from_secs_f64(config.server_mttf),
                !config.seed ^ ((i as u64) << 8),
            )
        });
        let addr = server.addr();
        let seeds: Vec<_> = addrs.iter().copied().filter(|a| *a != addr).collect();
        let (faults, totals, resend) = (server_faults.clone(), totals.clone(), config.resend);
        let member = Member::Server {
            restart: Box::new(move || {
                let (seeds, faults, totals) = (seeds.clone(), faults.clone(), totals.clone());
                Box::pin(async move { Server::start(addr, seeds, &faults, &totals, resend).await })
            }),
            running: Some(server),
        };
        lives.push(tokio::spawn(live(
            member,
            lifetimes,
            restart_delay,
            server_counts.clone(),
            stopped.clone(),
        )));
    }

    tokio::time::sleep(Duration::from_secs_f64(config.warmup)).await;
    let before = totals.counts();
    totals.take_latencies()?;
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(config.seconds)).await;
    let after = totals.counts();
    let seconds = opened.elapsed().as_secs_f64();
    let latencies = totals.take_latencies()?;

    let _ = stop.send(true);
    for life in lives {
        // Each supervisor kills its member and ends; a stuck one is abandoned.
        if tokio::time::timeout(Duration::from_secs(15), life)
            .await
            .is_err()
        {
            eprintln!("iot: a member did not stop within 15 s");
        }
    }

    let reports = after.reports - before.reports;
    if after.corrupt > 0 {
        return Err(IotBenchError::Corrupt(after.corrupt));
    }
    let failures = config.drop > 0.0 || config.client_mttf > 0.0 || config.server_mttf > 0.0;
    if reports == 0 && !failures {
        return Err(IotBenchError::NoReports { seconds });
    }
    let [p50_us, p99_us, p999_us, max_us] = latencies.summary_us();
    let rate = reports as f64 / seconds;
    Ok(IotRow {
        scenario: "iot",
        mode: "distributed",
        nodes: config.servers,
        actors: devices,
        payload_bytes: (messages::REPORT_LEN as usize) * std::mem::size_of::<i64>(),
        messages: reports,
        seconds,
        msgs_per_sec: rate,
        p50_us,
        p99_us,
        p999_us,
        max_us,
        servers: config.servers,
        clients_per_server: config.clients_per_server,
        drop_probability: config.drop,
        client_mttf_s: config.client_mttf,
        server_mttf_s: config.server_mttf,
        restart_delay_s: config.restart_delay,
        heartbeat_ms: config.heartbeat.as_millis() as u64,
        resend_ms: config.resend.as_millis() as u64,
        reports_per_sec: rate,
        resends: after.resends - before.resends,
        client_kills: client_counts.kills.load(Ordering::Relaxed),
        server_kills: server_counts.kills.load(Ordering::Relaxed),
        failed_restarts: client_counts.failed_restarts.load(Ordering::Relaxed)
            + server_counts.failed_restarts.load(Ordering::Relaxed),
    })
}
