//! The test bed's process: a granary node hosting the workload kinds, or the
//! workload client. The test bed launches it inside each host's network namespace.
//!
//! ```text
//! granary-testbed-node node --name h1 --incarnation 0 --bind 10.x.y.2:7100 [--seed ADDR]... \
//!     --store URL --history FILE [--idle-timeout-ms N] [--handler-delay-ms N] \
//!     [--detector default|fast-failover] [--placement random|hash]
//!   prints `ready ADDR` once the node is Up; runs until killed, or until stdin
//!   closes (then shuts down gracefully); records its lease transitions and the
//!   members it sees go Down or Up
//! granary-testbed-node client --name c1 --bind 10.x.y.9:0 --seed ADDR [--seed ADDR]... \
//!     --workload counters|register|saga --keys N --concurrency N --rate OPS_PER_SEC --history FILE \
//!     [--key-prefix P] [--detector default|fast-failover]
//!   prints `started`; loads until a line `stop` on stdin (or stdin closes); then
//!   finishes, reads every final state and prints one JSON summary line
//! granary-testbed-node check DIR
//!   runs the history checker over a run directory (every `*.jsonl` in it, as a
//!   failing run keeps it) and prints the report; exits 1 when it is not clean
//! ```
//!
//! With `RUST_LOG` set to a list of targets and levels (`granary_remote=debug,
//! granary_cluster=info`, tracing's `Targets` syntax), the process logs those to
//! stderr, which the test bed keeps as `<host>-<incarnation>.log` in the run directory
//! (`granary-bench chaos --keep-run-dirs`): how a run's detector and transport saw a
//! fault. Without it, nothing is logged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use granary::cluster::{ClusterEvent, MemberEvent};
use granary::virtual_actors::{Node, NodeBuilder, TransportSettings};
use granary_testbed::history::{HistoryWriter, Stamp, LEASE_POLL};
use granary_testbed::run::Detector;
use granary_testbed::workload::{self, driver, Workload, WorkloadPlacement};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
#[command(about = "a granary test bed node or workload client")]
struct Cli {
    /// The cluster's name (transport handshake).
    #[arg(long, global = true, default_value = "granary-testbed")]
    cluster: String,
    /// The cluster's shared secret.
    #[arg(long, global = true, default_value = "granary-testbed-secret")]
    secret: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A cluster member hosting every workload kind.
    Node {
        /// The host's name (in the history).
        #[arg(long)]
        name: String,
        /// Distinct across restarts of one host.
        #[arg(long)]
        incarnation: u64,
        /// The address to listen on.
        #[arg(long)]
        bind: SocketAddr,
        /// Members to join through (none: form a new cluster).
        #[arg(long = "seed")]
        seeds: Vec<SocketAddr>,
        /// The state store URL (shared by every node of the run).
        #[arg(long)]
        store: String,
        /// The history file to append to.
        #[arg(long)]
        history: PathBuf,
        /// Idle passivation of every kind, in milliseconds.
        #[arg(long, default_value_t = 60_000)]
        idle_timeout_ms: u64,
        /// How long each counter increment waits before its state write, in
        /// milliseconds (slow handlers; 0: none).
        #[arg(long, default_value_t = 0)]
        handler_delay_ms: u64,
        /// The failure-detection profile: `default` (`ClusterConfig::default`) or
        /// `fast-failover` (`ClusterConfig::fast_failover`).
        #[arg(long, value_enum, default_value_t = Detector::Default)]
        detector: Detector,
        /// How the workload kinds place new activations.
        #[arg(long, value_enum, default_value_t = WorkloadPlacement::Random)]
        placement: WorkloadPlacement,
    },
    /// The workload client.
    Client {
        /// The client's name (in the history and op ids).
        #[arg(long)]
        name: String,
        /// The address to listen on (port 0 picks one).
        #[arg(long)]
        bind: SocketAddr,
        /// Members to learn the cluster from.
        #[arg(long = "seed", required = true)]
        seeds: Vec<SocketAddr>,
        /// Which workload.
        #[arg(long, value_enum)]
        workload: Workload,
        /// Identities per kind.
        #[arg(long, default_value_t = 16)]
        keys: usize,
        /// Concurrent tasks.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Target operations per second (0: unpaced).
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// The history file to append to.
        #[arg(long)]
        history: PathBuf,
        /// Prepended to every key (clients with different prefixes load disjoint
        /// identities).
        #[arg(long, default_value = "")]
        key_prefix: String,
        /// The nodes' failure-detection profile: `fast-failover` also shortens the
        /// client's heartbeat timeout (see `Detector::transport_heartbeat`).
        #[arg(long, value_enum, default_value_t = Detector::Default)]
        detector: Detector,
    },
    /// Checks a run directory's histories and prints the report.
    Check {
        /// The run directory (holds the `*.jsonl` histories).
        dir: PathBuf,
    },
}

/// Logs what `RUST_LOG` names to stderr (see the module documentation); a value that
/// does not parse is reported and ignored.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let Ok(spec) = std::env::var("RUST_LOG") else {
        return;
    };
    match spec.parse::<tracing_subscriber::filter::Targets>() {
        Ok(targets) => {
            let fmt = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false);
            let _ = tracing_subscriber::registry()
                .with(fmt)
                .with(targets)
                .try_init();
        }
        Err(e) => eprintln!("granary-testbed-node: RUST_LOG={spec:?} ignored: {e}"),
    }
}

#[tokio::main]
pub(crate) async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { dir } => {
            return match granary_testbed::history::read_run(&dir) {
                Ok(events) => {
                    let report = granary_testbed::checker::check(&events);
                    println!("{report}");
                    if report.is_clean() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("granary-testbed-node: reading {}: {e}", dir.display());
                    ExitCode::FAILURE
                }
            };
        }
        Command::Node {
            name,
            incarnation,
            bind,
            seeds,
            store,
            history,
            idle_timeout_ms,
            handler_delay_ms,
            detector,
            placement,
        } => {
            workload::set_handler_delay(Duration::from_millis(handler_delay_ms));
            let builder = Node::builder()
                .bind(bind)
                .seeds(seeds)
                .store(store)
                .cluster_secret(cli.cluster, cli.secret.into_bytes())
                .cluster_config(detector.cluster_config())
                .transport(transport_settings(detector));
            let builder =
                workload::host_all(builder, Duration::from_millis(idle_timeout_ms), placement);
            run_node(builder, name, incarnation, history).await
        }
        Command::Client {
            name,
            bind,
            seeds,
            workload,
            keys,
            concurrency,
            rate,
            history,
            key_prefix,
            detector,
        } => {
            let options = driver::ClientOptions {
                name,
                bind,
                seeds,
                cluster: (cli.cluster, cli.secret.into_bytes()),
                workload,
                keys,
                concurrency,
                rate,
                history,
                key_prefix,
                heartbeat: detector.transport_heartbeat(),
            };
            run_client(options).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("granary-testbed-node: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The nodes' transport settings: the defaults with the detector's heartbeats.
fn transport_settings(detector: Detector) -> TransportSettings {
    let (interval, timeout) = detector.transport_heartbeat();
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    TransportSettings {
        heartbeat_interval_ms: millis(interval),
        heartbeat_timeout_ms: millis(timeout),
        ..TransportSettings::default()
    }
}

/// Runs the node `builder` describes as process `name` (life `incarnation`),
/// recording its history to `history`.
async fn run_node(
    builder: NodeBuilder,
    name: String,
    incarnation: u64,
    history: PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    workload::install_recorder(name, incarnation, HistoryWriter::open(&history)?);
    let node = builder.start().await?;
    // Members seen going Down or Up (when a fault was detected and resolved).
    let mut events = node.cluster().subscribe();
    let me = node.addr();
    let members = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let ClusterEvent::Change { event, .. } = event else {
                continue;
            };
            let (member, status) = match &event {
                MemberEvent::Down(m) => (m, "down"),
                MemberEvent::Up(m) => (m, "up"),
                _ => continue,
            };
            workload::record_member(member.id.addr.to_string(), member.id.addr == me, status);
        }
    });
    // Lease transitions into the history (the bed's host-lease proof reads them):
    // polled, since the lease is a clock the runtime reads before each message.
    let probe = node.probe();
    let watcher = tokio::spawn(async move {
        let mut last = None;
        // When the lease runs out unless renewed, as of the last poll that saw it.
        let mut deadline: Option<Stamp> = None;
        loop {
            let now = Stamp::now();
            let remaining = probe.lease_remaining();
            let held = remaining.is_some();
            if last != Some(held) {
                // The deadline the last poll read (never later than now). A renewal
                // that landed after that poll and lapsed before this one would put
                // the true lapse later, by less than one poll interval.
                let lapsed_at = if held {
                    None
                } else {
                    deadline.map(|d| d.min(now))
                };
                workload::record_lease(held, lapsed_at);
                last = Some(held);
            }
            deadline = remaining.map(|r| Stamp {
                mono_us: now.mono_us + r.as_micros() as u64,
                wall_us: now.wall_us + r.as_micros() as u64,
            });
            tokio::time::sleep(LEASE_POLL).await;
        }
    });
    eprintln!(
        "granary-testbed-node: application version {}",
        granary_testbed::workload::APP_VERSION
    );
    println!("ready {}", node.addr());
    // Runs until killed, or until stdin closes: then a graceful shutdown.
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
    watcher.abort();
    members.abort();
    node.shutdown().await;
    Ok(())
}

async fn run_client(options: driver::ClientOptions) -> Result<(), Box<dyn std::error::Error>> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let driver = driver::connect(options).await?;
    let run = tokio::spawn(driver.run(stop_rx));
    println!("started");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line.trim() == "stop" => break,
            Ok(Some(_)) => continue,
            // Stdin closed (or unreadable): stop as well.
            Ok(None) | Err(_) => break,
        }
    }
    let _ = stop_tx.send(true);
    let summary = run.await?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
