//! The `iot` scenario (seed 003 §5.3–5.4): external devices report to a cluster.
//!
//! Servers are cluster members running granary-devices' `DeviceServer`; clients are
//! devices, registered through every server as a seed. Every server and every client
//! is an OS process of its own: this binary's hidden `iot-node` subcommand, started
//! by the harness on 127.0.0.1 (so a killed member frees nothing but its own process,
//! and a restart pays for a real process start, connection and registration). For
//! each device it tracks, a server asks for a report (1,000 `i64` values), sums it and
//! asks again at once; a request unanswered within its resend timeout is sent again.
//! The harness adds up the servers' counts (they print them as `counts` lines, see
//! `harness`); a row gives reports per second and the report round trip (request
//! sent → report summed) percentiles.
//!
//! Resend timeout, adaptive as in TCP (RFC 6298, `rto`): per device, `SRTT + 4·RTTVAR`
//! of the measured report round trips, at least 1 ms (tokio's timer tick; a loopback
//! round trip is ~0.1 ms), doubled per consecutive loss, capped by `--resend-ms`. The
//! paper's fixed 3 ms (seed 003 §5.4) is the timeout before the first sample. A fixed
//! timeout costs a drop hundreds of round trips when the round trip is ~0.1 ms, and
//! resends answers that are merely queued when the machine is busy; a timeout that
//! follows the round trip costs a drop about one timeout, so throughput falls with
//! the delivery probability instead of off a cliff.
//!
//! Failure injection, as in the paper: `--drop` drops that fraction of the actor
//! messages between clients and servers, each way (never between servers; the
//! transport's own handshakes and connection heartbeats are not dropped); `--client-mttf` and
//! `--server-mttf` kill members with SIGKILL after a lifetime drawn uniformly from
//! [0.25, 1.75] × MTTF and restart them `--restart-delay` later (a server on its old
//! address, a client as a new process with a new node). One row per combination of
//! `--clients-per-server`, `--drop`, `--client-mttf` and `--server-mttf`.

mod chaos;
mod clients;
mod harness;
mod messages;
mod node;
mod rto;
mod servers;
mod totals;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::report::{contract_columns, ReportError, Reporter};
use harness::Harness;
pub(crate) use node::{run_node, NodeArgs};

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
    /// One-way delay of every message between a client and a server, milliseconds
    /// (a simulated network; servers among themselves are not delayed). Default 0, as
    /// the paper's drop test ("to keep the loads high, no delays were injected"); with
    /// a delay each device's loop waits on the network rather than on the two cores,
    /// as the paper's clients on their own machines did.
    #[arg(long, default_value_t = 0.0)]
    delay_ms: f64,
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
    /// Cap of the adaptive resend timeout, milliseconds (the timeout follows each
    /// device's round trip, from 1 ms up; the paper's fixed 3 ms is where it starts).
    /// Default 50: on a shared 2-core machine a round trip can exceed 3 ms while
    /// answers merely queue.
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
    /// A member process could not be started.
    #[error("cannot start a member process")]
    Spawn(#[source] std::io::Error),
    /// A member process exited while the harness waited for it to start.
    #[error(
        "member process {member} exited ({status}) while the harness waited for {waiting_for}"
    )]
    Exited {
        /// Which member (servers first, then clients).
        member: usize,
        /// Its exit status.
        status: String,
        /// What was awaited.
        waiting_for: String,
    },
    /// Something did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The servers did not form one cluster.
    #[error("the servers did not form one cluster within 60 s")]
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
    delay: Duration,
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
    delay_ms: f64,
    client_mttf_s: f64,
    server_mttf_s: f64,
    restart_delay_s: f64,
    heartbeat_ms: u64,
    resend_ms: u64,
    rto_initial_ms: f64,
    rto_floor_ms: f64,
    processes: usize,
    reports_per_sec: f64,
    delivery_probability: f64,
    resends: u64,
    resends_per_report: f64,
    untracked: u64,
    client_kills: u64,
    server_kills: u64,
    failed_restarts: u64,
    client_uptime: f64,
}

/// This scenario's columns after the contract's ([`contract_columns`]).
const OWN_COLUMNS: &[&str] = &[
    "servers",
    "clients_per_server",
    "drop_probability",
    "delay_ms",
    "client_mttf_s",
    "server_mttf_s",
    "restart_delay_s",
    "heartbeat_ms",
    "resend_ms",
    "rto_initial_ms",
    "rto_floor_ms",
    "processes",
    "reports_per_sec",
    "delivery_probability",
    "resends",
    "resends_per_report",
    "untracked",
    "client_kills",
    "server_kills",
    "failed_restarts",
    "client_uptime",
];

/// Runs `granary-bench iot`.
pub(crate) fn run(args: IotArgs) -> Result<(), IotBenchError> {
    let configs = configs(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(IotBenchError::Runtime)?;
    {
        let _runtime = runtime.enter();
        crate::child_process::kill_children_on_ctrl_c("iot member processes");
    }
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
    if !args.delay_ms.is_finite() || args.delay_ms < 0.0 {
        return Err(IotBenchError::Options(
            "--delay-ms must not be negative".into(),
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
                        delay: Duration::from_secs_f64(args.delay_ms / 1000.0),
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

/// Starts the member processes, measures one window, kills them all.
async fn measure(config: Config) -> Result<IotRow, IotBenchError> {
    let mut harness = Harness::start(config).await?;
    let window = harness.measure().await;
    // Every member process is killed here (also when measuring failed).
    drop(harness);
    let window = window?;

    let (counts, seconds) = (window.counts, window.seconds);
    if counts.corrupt > 0 {
        return Err(IotBenchError::Corrupt(counts.corrupt));
    }
    let failures = config.drop > 0.0 || config.client_mttf > 0.0 || config.server_mttf > 0.0;
    if counts.reports == 0 && !failures {
        return Err(IotBenchError::NoReports { seconds });
    }
    let devices = config.servers * config.clients_per_server;
    let [p50_us, p99_us, p999_us, max_us] = window.round_trips.summary_us();
    let rate = counts.reports as f64 / seconds;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(IotRow {
        scenario: "iot",
        mode: "distributed",
        nodes: config.servers,
        actors: devices,
        payload_bytes: (messages::REPORT_LEN as usize) * std::mem::size_of::<i64>(),
        messages: counts.reports,
        seconds,
        msgs_per_sec: rate,
        p50_us,
        p99_us,
        p999_us,
        max_us,
        servers: config.servers,
        clients_per_server: config.clients_per_server,
        drop_probability: config.drop,
        delay_ms: ms(config.delay),
        client_mttf_s: config.client_mttf,
        server_mttf_s: config.server_mttf,
        restart_delay_s: config.restart_delay,
        heartbeat_ms: config.heartbeat.as_millis() as u64,
        resend_ms: config.resend.as_millis() as u64,
        rto_initial_ms: ms(rto::RTO_INITIAL.min(config.resend)),
        rto_floor_ms: ms(rto::RTO_FLOOR.min(config.resend)),
        processes: config.servers + devices,
        reports_per_sec: rate,
        // A report needs its request and its answer through.
        delivery_probability: (1.0 - config.drop).powi(2),
        resends: counts.resends,
        resends_per_report: counts.resends as f64 / counts.reports.max(1) as f64,
        untracked: counts.untracked,
        client_kills: window.chaos.client_kills,
        server_kills: window.chaos.server_kills,
        failed_restarts: window.chaos.failed_restarts,
        client_uptime: window.chaos.client_alive_secs / (devices as f64 * seconds),
    })
}
