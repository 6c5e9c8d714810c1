//! The `failover` scenario (issue 6): three virtual node processes on 127.0.0.1
//! sharing the embedded file store, 64 client tasks incrementing 1,000 persisted
//! counters, one node killed with `kill -9` mid-run and restarted.
//!
//! The client tasks run in this process through an external `Client`; an increment
//! counts as acknowledged only when its reply came back, which the counter sends
//! only after `write_state` returned. Right after the kill, every counter is read
//! until it answers: the time from the kill to its first answer is the recovery
//! time (p50, p99, max). After the restart and more load, the clients stop and
//! every count is read back. A run fails (non-zero exit, after its row is written)
//! if an acknowledged increment is missing, a count is higher than the increments
//! sent, or two activations of one counter overlapped in the activation log (see
//! [`counter`], [`check`]).

pub(crate) mod check;
pub(crate) mod counter;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures::future::join_all;
use granary::virtual_actors::Client;
use serde::Serialize;

use crate::latency::Latencies;
use crate::report::{contract_columns, Reporter};
use crate::suite_node::harness::{SuiteCluster, SuiteError};
use crate::suite_node::rows::runtime;
use crate::suite_node::{Mode, CLUSTER, SECRET};
use counter::{now_micros, FailoverCounter, Increment, ReadCount};

/// How long one recovery probe waits for an answer before asking again.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the harness waits for every counter to answer after the kill.
const RECOVERY_LIMIT: Duration = Duration::from_secs(60);
/// The time limit of one increment (retries inside included).
const INCREMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of `granary-bench failover`.
#[derive(Debug, Args)]
pub(crate) struct FailoverArgs {
    /// Runs, each with fresh node processes and a fresh store.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// Client tasks (issue 6: 64; `--quick`: 16).
    #[arg(long)]
    clients: Option<u32>,
    /// Counters (issue 6: 1,000; `--quick`: 100).
    #[arg(long)]
    counters: Option<u32>,
    /// Seconds of load before the kill (default 3; `--quick`: 1.5).
    #[arg(long, value_parser = crate::seconds::parse_seconds)]
    before_kill: Option<f64>,
    /// Seconds of load after the restart (default 3; `--quick`: 1). A duplicate
    /// activation after a rejoin may appear only seconds later: use 30 to look for it.
    #[arg(long, value_parser = crate::seconds::parse_seconds)]
    after_restart: Option<f64>,
    /// Also increment this many more counters ("spread" keys, not read back),
    /// every other increment, so that identities keep being activated (looked up
    /// through the directory) while a node rejoins. Default 0.
    #[arg(long, default_value_t = 0)]
    spread: u32,
    /// External client connections the client tasks share round-robin (each has
    /// its own location cache, as separate front ends would). Default 1.
    #[arg(long, default_value_t = 1)]
    frontends: u32,
    /// Restart the killed node this many seconds after the kill, while the
    /// survivors may still be recovering (default: once every counter answered).
    #[arg(long, value_parser = crate::seconds::parse_seconds)]
    restart_after: Option<f64>,
    /// Small sizes, for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// This scenario's columns after the contract's ([`contract_columns`]).
const OWN_COLUMNS: &[&str] = &[
    "run",
    "clients",
    "acked",
    "unacked",
    "final_sum",
    "lost",
    "unexplained",
    "activations",
    "duplicates",
    "handling_overlaps",
    "recover_p50_ms",
    "recover_p99_ms",
    "recover_max_ms",
];

/// One run's row: increments per second and their latency, then the checks.
#[derive(Debug, Serialize)]
struct FailoverRow {
    scenario: &'static str,
    mode: &'static str,
    nodes: u64,
    actors: u64,
    payload_bytes: u64,
    messages: u64,
    seconds: f64,
    msgs_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    run: u32,
    clients: u32,
    acked: u64,
    unacked: u64,
    final_sum: u64,
    lost: u64,
    unexplained: u64,
    activations: u64,
    duplicates: u64,
    /// Pairs of activations of one counter that both handled messages in
    /// overlapping windows (two live copies serving requests).
    handling_overlaps: u64,
    recover_p50_ms: f64,
    recover_p99_ms: f64,
    recover_max_ms: f64,
}

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    clients: u32,
    counters: u32,
    before_kill: Duration,
    after_restart: Duration,
    spread: u32,
    frontends: u32,
    restart_after: Option<Duration>,
}

/// What the client tasks counted, per counter.
struct Counts {
    acked: Vec<AtomicU64>,
    unacked: Vec<AtomicU64>,
}

impl Counts {
    fn new(counters: u32) -> Self {
        let zeros = || (0..counters).map(|_| AtomicU64::new(0)).collect();
        Self {
            acked: zeros(),
            unacked: zeros(),
        }
    }

    fn snapshot(counts: &[AtomicU64]) -> Vec<u64> {
        counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

fn counter_key(index: u32) -> String {
    format!("counter-{index}")
}

/// Runs `granary-bench failover`.
pub(crate) fn run(args: FailoverArgs) -> Result<(), SuiteError> {
    let sizes = Sizes {
        clients: args
            .clients
            .unwrap_or(if args.quick { 16 } else { 64 })
            .max(1),
        counters: args
            .counters
            .unwrap_or(if args.quick { 100 } else { 1000 })
            .max(1),
        before_kill: Duration::from_secs_f64(
            args.before_kill
                .unwrap_or(if args.quick { 1.5 } else { 3.0 })
                .max(0.0),
        ),
        after_restart: Duration::from_secs_f64(
            args.after_restart
                .unwrap_or(if args.quick { 1.0 } else { 3.0 })
                .max(0.0),
        ),
        spread: args.spread,
        frontends: args.frontends.max(1),
        restart_after: args
            .restart_after
            .map(|s| Duration::from_secs_f64(s.max(0.0))),
    };
    runtime()?.block_on(async move {
        let mut reporter = Reporter::new(&contract_columns(OWN_COLUMNS), args.csv.as_deref(), u64::from(args.runs))?;
        let mut failures = Vec::new();
        for run in 1..=args.runs {
            let row = run_once(run, sizes, &reporter).await?;
            if row.lost > 0 || row.unexplained > 0 || row.duplicates > 0 || row.handling_overlaps > 0 {
                failures.push(format!(
                    "run {run}: {} lost acknowledged increments, {} unexplained, {} duplicate activations, {} overlapping handling",
                    row.lost, row.unexplained, row.duplicates, row.handling_overlaps
                ));
            }
            reporter.emit(&row)?;
            reporter.progress().inc(1);
        }
        reporter.finish();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(SuiteError::Check(failures.join("; ")))
        }
    })
}

/// A fresh directory for one run's store, removed when dropped.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn run_once(run: u32, sizes: Sizes, reporter: &Reporter) -> Result<FailoverRow, SuiteError> {
    let progress = reporter.progress();
    let dir = RunDir(std::env::temp_dir().join(format!(
        "granary-bench-failover-{}-{run}",
        std::process::id()
    )));
    std::fs::create_dir_all(&dir.0).map_err(SuiteError::Runtime)?;
    let store = format!("file:{}", dir.0.join("state.db").display());
    progress.set_message(format!("failover run {run}: starting 3 node processes"));
    let mut cluster = SuiteCluster::start(Mode::Virtual, 3, &store).await?;
    let mut frontends = Vec::new();
    for _ in 0..sizes.frontends {
        frontends.push(Arc::new(
            Client::connect_with(cluster.addrs().to_vec(), CLUSTER, SECRET.to_vec())
                .await
                .map_err(|e| SuiteError::Check(format!("client cannot connect: {e}")))?,
        ));
    }
    let client = frontends[0].clone();

    // Load.
    progress.set_message(format!(
        "failover run {run}: {} clients incrementing",
        sizes.clients
    ));
    let counts = Arc::new(Counts::new(sizes.counters));
    let stop = Arc::new(AtomicBool::new(false));
    let empty = Latencies::new(Duration::from_secs(60))
        .map_err(|e| SuiteError::Check(format!("histogram: {e}")))?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..sizes.clients)
        .map(|task| {
            tokio::spawn(increment_loop(
                task,
                sizes,
                frontends[task as usize % frontends.len()].clone(),
                counts.clone(),
                stop.clone(),
                empty.clone(),
            ))
        })
        .collect();
    // The load runs for a set time before the kill: this wait is the workload's
    // length, not a synchronization.
    tokio::time::sleep(sizes.before_kill).await;

    // Kill, then wait until every counter answers again.
    let victim = 1 + (run as usize % 2);
    let victim_addr = cluster.addrs()[victim];
    progress.set_message(format!(
        "failover run {run}: kill -9 node {victim} ({victim_addr})"
    ));
    let killed_at = now_micros();
    let kill_instant = Instant::now();
    cluster.kill(victim);
    // Restart: once every counter answered again, or `--restart-after` seconds
    // after the kill, whichever the options ask for (the restart may then overlap
    // the recovery, as an operator's quick restart does).
    let restart = async {
        if let Some(after) = sizes.restart_after {
            tokio::time::sleep_until((kill_instant + after).into()).await;
            progress.set_message(format!("failover run {run}: restarting node {victim}"));
            cluster.restart(victim, 3).await?;
        }
        Ok::<_, SuiteError>(())
    };
    let (recovered, restarted) =
        tokio::join!(recover(&client, sizes.counters, kill_instant), restart);
    let mut recovered_ms = recovered?;
    restarted?;
    recovered_ms.sort_by(f64::total_cmp);

    // Restart (unless done above), more load, stop.
    if sizes.restart_after.is_none() {
        progress.set_message(format!("failover run {run}: restarting node {victim}"));
        cluster.restart(victim, 3).await?;
    }
    let restarted_at = now_micros();
    tokio::time::sleep(sizes.after_restart).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = empty;
    for task in join_all(tasks).await {
        let task_latencies =
            task.map_err(|e| SuiteError::Check(format!("a client task failed: {e}")))?;
        latencies
            .merge(&task_latencies)
            .map_err(|e| SuiteError::Check(format!("histogram: {e}")))?;
    }
    let seconds = started.elapsed().as_secs_f64();

    // Read back and check.
    progress.set_message(format!("failover run {run}: reading every counter back"));
    let reads = join_all((0..sizes.counters).map(|index| {
        let counter = client.get::<FailoverCounter>(counter_key(index));
        async move {
            counter
                .ask_timeout(ReadCount, Duration::from_secs(10))
                .await
                .map_err(|e| SuiteError::Check(format!("counter {index} does not answer: {e}")))
        }
    }))
    .await;
    let finals: Vec<u64> = reads.into_iter().collect::<Result<_, _>>()?;
    let acked = Counts::snapshot(&counts.acked);
    let unacked = Counts::snapshot(&counts.unacked);
    let (lost, unexplained) = check::reconcile(&acked, &unacked, &finals);
    let log = cluster.take_log();
    let all = check::activations(
        log.iter().map(|(_, line)| line.as_str()),
        victim_addr,
        killed_at,
    );
    let duplicates = check::duplicates(&all);
    for (key, interval) in &duplicates {
        // On stderr even without a terminal (the bar's own println is hidden then).
        progress.suspend(|| eprintln!("duplicate activation of {key}: {interval:?}"));
    }
    let overlaps =
        check::handling_overlaps(&check::handling(log.iter().map(|(_, line)| line.as_str())));
    for (key, a, b) in &overlaps {
        progress.suspend(|| eprintln!(
            "two activations of {key} handled at once (killed at {killed_at}, restarted at {restarted_at}): {a:?} and {b:?}"
        ));
    }
    drop(client);
    for frontend in frontends {
        if let Ok(frontend) = Arc::try_unwrap(frontend) {
            frontend.close().await;
        }
    }
    drop(cluster);

    let acked_total: u64 = acked.iter().sum();
    let [p50, p99, p999, max] = latencies.summary_us();
    let quantile = |q: f64| {
        let i = ((recovered_ms.len() as f64 * q).ceil() as usize).saturating_sub(1);
        recovered_ms.get(i).copied().unwrap_or(0.0)
    };
    Ok(FailoverRow {
        scenario: "failover",
        mode: "virtual",
        nodes: 3,
        actors: u64::from(sizes.counters),
        payload_bytes: 0,
        messages: acked_total,
        seconds,
        msgs_per_sec: acked_total as f64 / seconds.max(f64::MIN_POSITIVE),
        p50_us: p50,
        p99_us: p99,
        p999_us: p999,
        max_us: max,
        run,
        clients: sizes.clients,
        acked: acked_total,
        unacked: unacked.iter().sum(),
        final_sum: finals.iter().sum(),
        lost,
        unexplained,
        activations: all.values().map(|v| v.len() as u64).sum(),
        duplicates: duplicates.len() as u64,
        handling_overlaps: overlaps.len() as u64,
        recover_p50_ms: quantile(0.5),
        recover_p99_ms: quantile(0.99),
        recover_max_ms: recovered_ms.last().copied().unwrap_or(0.0),
    })
}

/// One client task: increments random counters until told to stop; answers the
/// latencies of its acknowledged increments.
async fn increment_loop(
    task: u32,
    sizes: Sizes,
    client: Arc<Client>,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    mut latencies: Latencies,
) -> Latencies {
    let mut x = u64::from(task).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        seq += 1;
        if sizes.spread > 0 && seq.is_multiple_of(2) {
            // A spread key: not counted, only there to keep activations coming.
            let key = format!("spread-{}", x % u64::from(sizes.spread));
            let _ = client
                .get::<FailoverCounter>(key)
                .ask_timeout(Increment { client: task, seq }, INCREMENT_TIMEOUT)
                .await;
            continue;
        }
        let index = (x % u64::from(sizes.counters)) as usize;
        let counter = client.get::<FailoverCounter>(counter_key(index as u32));
        let sent = Instant::now();
        match counter
            .ask_timeout(Increment { client: task, seq }, INCREMENT_TIMEOUT)
            .await
        {
            Ok(Ok(_)) => {
                latencies.record(sent.elapsed());
                counts.acked[index].fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                counts.unacked[index].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    latencies
}

/// Reads every counter until it answers; the milliseconds from the kill to each
/// counter's first answer.
async fn recover(client: &Client, counters: u32, killed: Instant) -> Result<Vec<f64>, SuiteError> {
    let probes = (0..counters).map(|index| {
        let counter = client.get::<FailoverCounter>(counter_key(index));
        async move {
            while killed.elapsed() < RECOVERY_LIMIT {
                if counter.ask_timeout(ReadCount, PROBE_TIMEOUT).await.is_ok() {
                    return Ok(killed.elapsed().as_secs_f64() * 1e3);
                }
            }
            Err(SuiteError::Check(format!(
                "counter {index} did not answer within {RECOVERY_LIMIT:?} of the kill"
            )))
        }
    });
    join_all(probes).await.into_iter().collect()
}
