//! One chaos run: node processes on the test bed's hosts, a workload client on a
//! host of its own, a fault schedule drawn from a seed, then the checker over every
//! process's history.
//!
//! The run directory keeps every process's log (`<host>-<incarnation>.log`) and
//! history (`<host>-<incarnation>.jsonl`), the client's (`c1-0.*`), the faults
//! applied (`faults.jsonl`), and the shared store (`state.db`). A run with an
//! anomaly keeps it ([`RunOutcome::kept_run_dir`]); a clean run removes it unless
//! [`ChaosConfig::keep_run_dir`] is set, or its longest recovery gap is above
//! [`ChaosConfig::keep_if_recovery_over`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::bed::{HostId, Testbed};
use crate::checker::{check, Report};
use crate::cmd::BedError;
use crate::history::{read_run, Event, HistoryWriter, Stamp};
use crate::process::{Launch, Process};
use crate::schedule::{draw, Fault, FaultMix, FaultTimes};
use crate::workload::WorkloadPlacement;

/// The port every node listens on (each host has its own address).
pub const NODE_PORT: u16 = 7100;
/// How long a node may take to print `ready` (a slow start's delay comes on top).
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// How long the client may take to print `started`.
const STARTED_DEADLINE: Duration = Duration::from_secs(60);
/// How long the client may take, after `stop`, to finish and print its summary.
const SUMMARY_DEADLINE: Duration = Duration::from_secs(180);
/// How long a node may take to exit after its stdin closed.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(15);

/// The failure-detection profile of a run's nodes (`--detector` of the node binary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Detector {
    /// `ClusterConfig::default()`: a silent node is Down ~2.2 s after its last
    /// answer, its identities placed elsewhere ~1 s later (`down_margin`).
    #[default]
    Default,
    /// `ClusterConfig::fast_failover()`: Down after ~1.5 s, placed ~0.5 s later;
    /// a node silent for ~1 s under load may be downed (and rejoins).
    FastFailover,
}

impl Detector {
    /// The cluster settings of this profile.
    pub fn cluster_config(self) -> granary::cluster::ClusterConfig {
        match self {
            Detector::Default => granary::cluster::ClusterConfig::default(),
            Detector::FastFailover => granary::cluster::ClusterConfig::fast_failover(),
        }
    }

    /// The transport heartbeat interval and timeout of the run's nodes and clients:
    /// the transport's defaults (1 s, 5 s), or 500 ms and 2 s with the fast-failover
    /// profile, so that a client drops a paused or cut-off gateway about as soon as the
    /// members down its node, and a gateway fails the asks it relays over a link that
    /// went silent (an A–C or one-way cut, where nobody is downed) after 2 s, not 5 s.
    pub fn transport_heartbeat(self) -> (Duration, Duration) {
        match self {
            Detector::Default => (Duration::from_secs(1), Duration::from_secs(5)),
            Detector::FastFailover => (Duration::from_millis(500), Duration::from_secs(2)),
        }
    }

    /// The node binary's spelling (`default`, `fast-failover`).
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Default => "default",
            Detector::FastFailover => "fast-failover",
        }
    }
}

/// What a chaos run does.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// The node binary (`granary-testbed-node`).
    pub node_program: PathBuf,
    /// Node hosts (the client gets one more host).
    pub nodes: usize,
    /// The schedule's seed.
    pub seed: u64,
    /// Which workload the client runs (`counters`, `register`, `saga`).
    pub workload: String,
    /// Which faults.
    pub mix: FaultMix,
    /// How many faults, one after the other.
    pub faults: usize,
    /// Fault durations.
    pub times: FaultTimes,
    /// Load before the first fault.
    pub warmup: Duration,
    /// Quiet load between one fault's heal (or restart ready) and the next fault.
    pub gap: Duration,
    /// Load after the last fault healed or the last restart is ready (the issue:
    /// ≥ 30 s, since duplicates appear after a rejoin).
    pub settle: Duration,
    /// Identities per kind.
    pub keys: usize,
    /// Concurrent client tasks.
    pub concurrency: usize,
    /// Client operations per second.
    pub rate: f64,
    /// Where run directories are created.
    pub parent_dir: PathBuf,
    /// More clients, one on each of these node hosts (in that host's namespace, so
    /// on its side of a partition), each named `c2`, `c3`, ... and loading its own
    /// keys (prefix `c2-`, ...) with the same workload, keys, concurrency and rate.
    /// Empty by default: one client, on a host of its own.
    pub clients_on: Vec<HostId>,
    /// How long each counter increment waits before its state write on every node
    /// (slow handlers, so a pause or kill catches some in flight). Zero by default.
    pub handler_delay: Duration,
    /// The nodes' failure-detection profile: [`Detector::FastFailover`] for the
    /// issue's run ([`ChaosConfig::new`]), [`Detector::Default`] for short runs.
    pub detector: Detector,
    /// How the workload kinds place new activations. Random by default.
    pub placement: WorkloadPlacement,
    /// Keep the run directory even when the report is clean (logs and histories for
    /// analysis of a clean run's recovery times). `false` by default.
    pub keep_run_dir: bool,
    /// Keep the run directory of a clean run whose longest recovery gap
    /// ([`crate::checker::Recovery::max_ms`]) is above this, to study a slow recovery
    /// that broke no rule. `None` by default.
    pub keep_if_recovery_over: Option<Duration>,
}

impl ChaosConfig {
    /// The run: `nodes` node hosts, counters, mixed faults (4), 5 s
    /// pauses, 30 s of load after the last fault, the fast-failover detector.
    pub fn new(node_program: PathBuf, nodes: usize, seed: u64) -> ChaosConfig {
        ChaosConfig {
            node_program,
            nodes,
            seed,
            workload: "counters".into(),
            mix: FaultMix::Mixed,
            faults: 4,
            times: FaultTimes::default(),
            warmup: Duration::from_secs(3),
            gap: Duration::from_secs(3),
            settle: Duration::from_secs(30),
            keys: 32,
            concurrency: 8,
            rate: 200.0,
            parent_dir: std::env::temp_dir().join("granary-testbed"),
            clients_on: Vec::new(),
            handler_delay: Duration::ZERO,
            detector: Detector::FastFailover,
            placement: WorkloadPlacement::Random,
            keep_run_dir: false,
            keep_if_recovery_over: None,
        }
    }

    /// A short run for CI: 3 nodes, 2 faults of ~2 s, 5 s of load after, the
    /// default detector.
    pub fn short(node_program: PathBuf, seed: u64) -> ChaosConfig {
        ChaosConfig {
            nodes: 3,
            faults: 2,
            times: FaultTimes {
                max_hold: Duration::from_secs(2),
                pause: Duration::from_secs(2),
                max_down: Duration::from_secs(1),
                max_slow_start: Duration::from_secs(1),
            },
            warmup: Duration::from_secs(2),
            gap: Duration::from_secs(1),
            settle: Duration::from_secs(5),
            keys: 8,
            concurrency: 4,
            rate: 100.0,
            detector: Detector::Default,
            ..ChaosConfig::new(node_program, 3, seed)
        }
    }
}

/// The client's summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct ClientSummary {
    /// Operations sent.
    pub invoked: u64,
    /// Operations acknowledged.
    pub acked: u64,
    /// Operations refused.
    pub failed: u64,
    /// Operations with an unknown outcome.
    pub indeterminate: u64,
}

/// What a chaos run found.
#[derive(Debug)]
pub struct RunOutcome {
    /// The seed (replays the schedule).
    pub seed: u64,
    /// The faults applied, in order, as text.
    pub faults: Vec<String>,
    /// The client's summary (`c1`, on its own host).
    pub client: ClientSummary,
    /// The summaries of the clients of [`ChaosConfig::clients_on`], in that order.
    pub other_clients: Vec<ClientSummary>,
    /// The checker's report.
    pub report: Report,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The run directory, kept because the report is not clean, or
    /// [`ChaosConfig::keep_run_dir`] or [`ChaosConfig::keep_if_recovery_over`] asked
    /// for it (`None`: removed).
    pub kept_run_dir: Option<PathBuf>,
    /// Every process's history and the faults, merged in time order: for a test's
    /// own checks beyond the checker's (who handled what while a fault held).
    pub events: Vec<Event>,
}

/// A node of the run: its host, incarnation and process.
struct NodeSlot {
    host: HostId,
    incarnation: u64,
    process: Option<Process>,
}

/// Runs one chaos run. Errors are the test bed's (a node that never became ready,
/// a tool that failed); anomalies are in the outcome's report. On an error the run
/// directory is kept and named in the error's log line on stderr.
pub fn run_chaos(config: &ChaosConfig) -> Result<RunOutcome, BedError> {
    let schedule = draw(
        config.seed,
        config.nodes,
        config.mix,
        config.faults,
        config.times,
    );
    run_schedule(config, &schedule)
}

/// Runs one chaos run with a fixed `schedule` instead of one drawn from the seed
/// (`config.seed`, `mix`, `faults` and `times` are not read): a test that proves one
/// behaviour names its faults. Node hosts are `HostId(0)..HostId(config.nodes)`.
pub fn run_schedule(config: &ChaosConfig, schedule: &[Fault]) -> Result<RunOutcome, BedError> {
    if config.nodes < 2 {
        return Err(BedError::Invalid(
            "a chaos run needs at least 2 node hosts".into(),
        ));
    }
    if let Some(bad) = config.clients_on.iter().find(|h| h.0 >= config.nodes) {
        return Err(BedError::Invalid(format!(
            "clients_on names h{}, not a node host (h1..h{})",
            bad.0 + 1,
            config.nodes
        )));
    }
    let started = Instant::now();
    let bed = Testbed::new_in(config.nodes + 1, &config.parent_dir)?;
    let result = drive(&bed, config, schedule);
    let (faults, client, other_clients) = match result {
        Ok(done) => done,
        Err(err) => {
            bed.keep_run_dir();
            eprintln!(
                "chaos seed {}: run failed ({err}); run directory kept: {}",
                config.seed,
                bed.run_dir().display()
            );
            return Err(err);
        }
    };
    let events = read_run(bed.run_dir()).map_err(|source| BedError::File {
        path: bed.run_dir().to_path_buf(),
        source,
    })?;
    let report = check(&events);
    let slow = (config.keep_if_recovery_over)
        .is_some_and(|over| report.recovery.max_ms > over.as_secs_f64() * 1000.0);
    let kept_run_dir = if report.is_clean() && !config.keep_run_dir && !slow {
        None
    } else {
        bed.keep_run_dir();
        Some(bed.run_dir().to_path_buf())
    };
    Ok(RunOutcome {
        seed: config.seed,
        faults,
        client,
        other_clients,
        report,
        elapsed: started.elapsed(),
        kept_run_dir,
        events,
    })
}

fn drive(
    bed: &Testbed,
    config: &ChaosConfig,
    schedule: &[Fault],
) -> Result<(Vec<String>, ClientSummary, Vec<ClientSummary>), BedError> {
    let dir = bed.run_dir();
    let fault_log_path = dir.join("faults.jsonl");
    let fault_log = HistoryWriter::open(&fault_log_path).map_err(|source| BedError::File {
        path: fault_log_path.clone(),
        source,
    })?;
    let record = |what: String| {
        fault_log
            .record(&Event::Fault {
                what,
                at: Stamp::now(),
            })
            .map_err(|source| BedError::File {
                path: fault_log_path.clone(),
                source,
            })
    };
    let addr = |host: HostId| -> Result<SocketAddr, BedError> {
        Ok(SocketAddr::new(bed.host(host)?.addr.into(), NODE_PORT))
    };
    let node_hosts: Vec<HostId> = (0..config.nodes).map(HostId).collect();
    let client_host = HostId(config.nodes);
    let store = format!("file:{}", dir.join("state.db").display());

    // The seed node first, then the others join it.
    let mut nodes: Vec<NodeSlot> = Vec::with_capacity(config.nodes);
    for &host in &node_hosts {
        let seeds = if host == node_hosts[0] {
            vec![]
        } else {
            vec![addr(node_hosts[0])?]
        };
        let mut slot = NodeSlot {
            host,
            incarnation: 0,
            process: None,
        };
        start_node(
            bed,
            config,
            &config.node_program,
            &mut slot,
            &seeds,
            &store,
            Duration::ZERO,
        )?;
        nodes.push(slot);
    }

    let launch_client =
        |host: HostId, client_name: &str, key_prefix: &str| -> Result<Process, BedError> {
            let mut client_args = vec![
                "client".to_string(),
                "--name".into(),
                client_name.into(),
                "--bind".into(),
                SocketAddr::new(bed.host(host)?.addr.into(), 0).to_string(),
                "--workload".into(),
                config.workload.clone(),
                "--keys".into(),
                config.keys.to_string(),
                "--concurrency".into(),
                config.concurrency.to_string(),
                "--rate".into(),
                config.rate.to_string(),
                "--history".into(),
                dir.join(format!("{client_name}-0.jsonl"))
                    .display()
                    .to_string(),
            ];
            for &node in &node_hosts {
                client_args.push("--seed".into());
                client_args.push(addr(node)?.to_string());
            }
            if config.detector != Detector::Default {
                client_args.push("--detector".into());
                client_args.push(config.detector.as_str().into());
            }
            if !key_prefix.is_empty() {
                client_args.push("--key-prefix".into());
                client_args.push(key_prefix.into());
            }
            let mut client = bed.spawn(
                host,
                &Launch::new(
                    format!("{client_name}-0"),
                    &config.node_program,
                    client_args,
                ),
            )?;
            client.wait_for_line("started", STARTED_DEADLINE)?;
            Ok(client)
        };
    let mut client = launch_client(client_host, "c1", "")?;
    let mut others = Vec::with_capacity(config.clients_on.len());
    for (i, host) in config.clients_on.iter().enumerate() {
        let name = format!("c{}", i + 2);
        others.push(launch_client(*host, &name, &format!("{name}-"))?);
    }
    std::thread::sleep(config.warmup);

    let mut applied = Vec::with_capacity(schedule.len());
    for (index, fault) in schedule.iter().enumerate() {
        if index > 0 {
            std::thread::sleep(config.gap);
        }
        eprintln!("chaos seed {}: fault {}: {fault}", config.seed, index + 1);
        apply(
            bed,
            config,
            fault,
            &mut nodes,
            &node_hosts,
            client_host,
            &store,
            &record,
            &addr,
        )?;
        applied.push(fault.to_string());
    }
    std::thread::sleep(config.settle);

    // Every client stops its load first, then each finishes and reads its finals.
    client.send_line("stop")?;
    for other in &mut others {
        other.send_line("stop")?;
    }
    let summary = finish_client(&mut client)?;
    let mut other_summaries = Vec::with_capacity(others.len());
    for other in &mut others {
        other_summaries.push(finish_client(other)?);
    }
    for slot in &mut nodes {
        if let Some(process) = slot.process.as_mut() {
            process.close_stdin();
            if process.wait(SHUTDOWN_DEADLINE).is_err() {
                eprintln!(
                    "chaos seed {}: {} did not shut down within {SHUTDOWN_DEADLINE:?}; killed",
                    config.seed,
                    process.name()
                );
            }
        }
    }
    Ok((applied, summary, other_summaries))
}

/// Waits for a stopped client's summary line and its exit.
fn finish_client(client: &mut Process) -> Result<ClientSummary, BedError> {
    let summary_line = client.wait_for_line("{", SUMMARY_DEADLINE)?;
    let summary: ClientSummary =
        serde_json::from_str(&format!("{{{summary_line}")).map_err(|e| {
            BedError::Invalid(format!(
                "the client's summary `{{{summary_line}` is not valid: {e}"
            ))
        })?;
    client.wait(SHUTDOWN_DEADLINE)?;
    Ok(summary)
}

/// Starts (or restarts) the node of `slot` at its current incarnation and waits
/// for its `ready` line.
fn start_node(
    bed: &Testbed,
    config: &ChaosConfig,
    program: &Path,
    slot: &mut NodeSlot,
    seeds: &[SocketAddr],
    store: &str,
    slow_start: Duration,
) -> Result<(), BedError> {
    let host = bed.host(slot.host)?;
    let name = format!("{}-{}", host.name, slot.incarnation);
    let mut args = vec![
        "node".to_string(),
        "--name".into(),
        host.name.clone(),
        "--incarnation".into(),
        slot.incarnation.to_string(),
        "--bind".into(),
        SocketAddr::new(host.addr.into(), NODE_PORT).to_string(),
        "--store".into(),
        store.to_string(),
        "--history".into(),
        bed.run_dir()
            .join(format!("{name}.jsonl"))
            .display()
            .to_string(),
    ];
    for seed in seeds {
        args.push("--seed".into());
        args.push(seed.to_string());
    }
    if config.detector != Detector::Default {
        args.push("--detector".into());
        args.push(config.detector.as_str().into());
    }
    if config.placement != WorkloadPlacement::Random {
        args.push("--placement".into());
        args.push(config.placement.as_str().into());
    }
    if !config.handler_delay.is_zero() {
        args.push("--handler-delay-ms".into());
        args.push(config.handler_delay.as_millis().to_string());
    }
    let launch = Launch::new(name, program, args).delayed(slow_start);
    let mut process = bed.spawn(slot.host, &launch)?;
    process.wait_for_line("ready", READY_DEADLINE + slow_start)?;
    slot.process = Some(process);
    Ok(())
}

/// Applies one fault, holds it, heals it (a restarted node is ready when this
/// returns), recording each step in `faults.jsonl`.
#[allow(clippy::too_many_arguments)]
fn apply(
    bed: &Testbed,
    config: &ChaosConfig,
    fault: &Fault,
    nodes: &mut [NodeSlot],
    node_hosts: &[HostId],
    client_host: HostId,
    store: &str,
    record: &dyn Fn(String) -> Result<(), BedError>,
    addr: &dyn Fn(HostId) -> Result<SocketAddr, BedError>,
) -> Result<(), BedError> {
    let name = |id: HostId| format!("h{}", id.0 + 1);
    let kill = |slot: &mut NodeSlot| -> Result<(), BedError> {
        record(format!("kill {}", name(slot.host)))?;
        if let Some(mut process) = slot.process.take() {
            process.kill()?;
        }
        Ok(())
    };
    // Starts the killed or stopped node of `slot` again with its next incarnation
    // (`as_program`: a record suffix naming another build), seeded with the other
    // node hosts; returns once it is ready.
    let restart = |slot: &mut NodeSlot,
                   program: &Path,
                   as_program: String,
                   slow_start: Duration|
     -> Result<(), BedError> {
        slot.incarnation += 1;
        record(format!(
            "restart {} incarnation {}{as_program}",
            name(slot.host),
            slot.incarnation
        ))?;
        let seeds = node_hosts
            .iter()
            .filter(|h| **h != slot.host)
            .map(|h| addr(*h))
            .collect::<Result<Vec<_>, _>>()?;
        start_node(bed, config, program, slot, &seeds, store, slow_start)?;
        record(format!("ready {}", name(slot.host)))
    };
    match fault {
        Fault::KillRestart {
            host,
            down_for,
            slow_start,
        } => {
            let slot = slot_of(nodes, *host)?;
            kill(slot)?;
            std::thread::sleep(*down_for);
            restart(slot, &config.node_program, String::new(), *slow_start)?;
        }
        Fault::RejoinBehindCut {
            host,
            silent,
            down_for,
            hold,
        } => {
            let slot = slot_of(nodes, *host)?;
            kill(slot)?;
            std::thread::sleep(*down_for);
            bed.cut_one_way(*silent, *host)?;
            record(format!("one-way cut {}->{}", name(*silent), name(*host)))?;
            restart(slot, &config.node_program, String::new(), Duration::ZERO)?;
            std::thread::sleep(*hold);
            bed.heal()?;
            record("heal".into())?;
        }
        Fault::Upgrade { host, program } => {
            let slot = slot_of(nodes, *host)?;
            record(format!("stop {}", name(*host)))?;
            if let Some(mut process) = slot.process.take() {
                // Graceful: the node shuts down when its stdin closes.
                process.close_stdin();
                if process.wait(SHUTDOWN_DEADLINE).is_err() {
                    eprintln!(
                        "chaos: {} did not shut down within {SHUTDOWN_DEADLINE:?}; killed",
                        process.name()
                    );
                }
            }
            record(format!("stopped {}", name(*host)))?;
            let as_program = format!(" as {}", program.display());
            restart(slot, program, as_program, Duration::ZERO)?;
        }
        Fault::Partition { minority, hold } => {
            let majority: Vec<HostId> = node_hosts
                .iter()
                .copied()
                .filter(|h| !minority.contains(h))
                .chain([client_host])
                .collect();
            // Recorded once the rules are in place (one `nft` per host takes a
            // while): a fence measured from the record is measured from the cut.
            bed.partition(&[minority.clone(), majority])?;
            record(fault.to_string())?;
            std::thread::sleep(*hold);
            bed.heal()?;
            record("heal".into())?;
        }
        Fault::Scatter { hold } => {
            bed.cut_all_between(node_hosts)?;
            record(fault.to_string())?;
            std::thread::sleep(*hold);
            bed.heal()?;
            record("heal".into())?;
        }
        Fault::PartialCut { a, c, hold } => {
            bed.cut(*a, *c)?;
            record(fault.to_string())?;
            std::thread::sleep(*hold);
            bed.heal()?;
            record("heal".into())?;
        }
        Fault::OneWay { from, to, hold } => {
            bed.cut_one_way(*from, *to)?;
            record(fault.to_string())?;
            std::thread::sleep(*hold);
            bed.heal()?;
            record("heal".into())?;
        }
        Fault::Pause { host, hold } => {
            let slot = slot_of(nodes, *host)?;
            let process = slot
                .process
                .as_ref()
                .ok_or_else(|| BedError::Invalid(format!("no node runs on {}", name(*host))))?;
            record(format!("pause {}", name(*host)))?;
            process.pause()?;
            std::thread::sleep(*hold);
            // Recorded before `SIGCONT`: whatever the woken process records comes
            // after it.
            record(format!("resume {}", name(*host)))?;
            process.resume()?;
        }
    }
    Ok(())
}

fn slot_of(nodes: &mut [NodeSlot], host: HostId) -> Result<&mut NodeSlot, BedError> {
    nodes
        .iter_mut()
        .find(|s| s.host == host)
        .ok_or_else(|| BedError::NoSuchHost(format!("h{}", host.0 + 1)))
}

/// The node binary next to the running executable (`target/<profile>/`), as
/// `cargo build -p granary-testbed` leaves it; `GRANARY_TESTBED_NODE` overrides.
pub fn find_node_program() -> Result<PathBuf, BedError> {
    if let Some(path) = std::env::var_os("GRANARY_TESTBED_NODE") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|source| BedError::File {
        path: PathBuf::from("the current executable"),
        source,
    })?;
    let mut dir: Option<&Path> = exe.parent();
    // The binary itself is in target/<profile>/; tests run from target/<profile>/deps/.
    for _ in 0..2 {
        if let Some(d) = dir {
            let candidate = d.join("granary-testbed-node");
            if candidate.is_file() {
                return Ok(candidate);
            }
            dir = d.parent();
        }
    }
    Err(BedError::Invalid(format!(
        "granary-testbed-node not found next to {} (build it: cargo build --release -p granary-testbed, \
         or set GRANARY_TESTBED_NODE)",
        exe.display()
    )))
}
