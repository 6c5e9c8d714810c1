//! The `echo` scenario (seed 002 §6.2.2) and the harness it shares with `kvs`
//! (§6.2.3): three node processes on 127.0.0.1 forming a granary-cluster, load driven
//! from the first, with Partisan's options on and off.
//!
//! The node processes are this binary re-executed with the hidden `echo-node`
//! subcommand ([`node`]); they are killed when the run ends, fails or is interrupted
//! (Ctrl-C), and exit on their own when their stdin closes. Each sweep point is one
//! JSON row (requests per second, round-trip percentiles) with the scenario's own
//! fields `options`, `parallelism`, `channels`, `affinity`, `rtt_ms` and
//! `concurrency` (also in `actors`, as the number of concurrent requesters).
//!
//! Option sets (`--options`):
//! - `off`: one connection per peer, no named channels, no affinity: requests, replies
//!   and background anti-entropy share one TCP connection (Distributed Erlang's shape);
//! - `parallel`: 4 connections, used round robin, no named channels;
//! - `on`: 4 connections, requests on a named channel with their partition as the
//!   partition key (affinity), anti-entropy on a channel of its own.
//!
//! Simulated link latency: every frame is held back RTT/2 by the sending node's fault
//! injector (granary-remote's delay injection), on every channel.
//!
//! Real links (`--bed`): the three nodes run one on each host of a three-host chaos
//! test bed (granary-testbed: network namespaces on a bridge; needs root, `ip` and
//! `tc`), and `--bandwidth-mbit` puts a tbf limit on every host's link, so a large
//! object really queues on the wire and what shares a connection with it waits behind
//! it in the kernel, not in an injector. The kernel here has no netem, so latency stays
//! the in-process delay (`--rtt-ms`, which may be 0). Rows carry `link` (`loopback` or
//! `bed`) and `bandwidth_mbit` (null when unlimited).
//!
//! Example: `granary-bench echo --payload 1048576,8388608 --rtt-ms 1,20`;
//! on real links: `granary-bench kvs --bed --bandwidth-mbit 1000,100 --rtt-ms 1`.

pub(crate) mod driver;
pub(crate) mod node;
mod nodes;
pub(crate) mod wire;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::report::{contract_columns, ReportError, Reporter};
use crate::selection::dedup;
pub(crate) use node::{run_node, NodeArgs};
use nodes::Nodes;
use wire::Options;

/// Options of `granary-bench echo` and `granary-bench kvs`.
#[derive(Debug, Args)]
pub(crate) struct WorkloadArgs {
    /// Payload sizes in bytes, comma-separated (default 1 MiB and 8 MiB; `--quick`: 1 MiB).
    #[arg(long, value_delimiter = ',')]
    payload: Option<Vec<usize>>,
    /// Simulated round-trip times in milliseconds (default 1,20; `--quick`: 1).
    #[arg(long, value_delimiter = ',', value_parser = crate::seconds::parse_millis)]
    rtt_ms: Option<Vec<f64>>,
    /// Concurrent requesters, comma-separated (default 1,2,4,8,16; `--quick`: 1,4).
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// Option sets to compare (default off,parallel,on; `--quick`: off,on).
    #[arg(long, value_delimiter = ',')]
    options: Option<Vec<OptionSet>>,
    /// Seconds of load per sweep point (default 5; `--quick`: 0.4).
    #[arg(long, value_parser = crate::seconds::parse_seconds)]
    seconds: Option<f64>,
    /// Small sizes (seconds in all), for smoke tests.
    #[arg(long)]
    quick: bool,
    /// Run the nodes on a three-host chaos test bed (network namespaces on a bridge,
    /// one node per host; needs root, `ip`, `nft` and `tc`) instead of 127.0.0.1.
    #[arg(long)]
    bed: bool,
    /// With `--bed`: bandwidth limits in Mbit/s for every host's link (a tbf qdisc),
    /// comma-separated, 0 for none (default 1000,100; `--quick`: 100).
    #[arg(long, value_delimiter = ',', requires = "bed")]
    bandwidth_mbit: Option<Vec<u32>>,
    /// Append the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Draw PNG charts of the rows into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Which of Partisan's options are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OptionSet {
    /// One connection, no channels, no affinity.
    Off,
    /// Four connections round robin.
    Parallel,
    /// Four connections, named channels, affinity by partition key.
    On,
}

impl OptionSet {
    fn options(self) -> Options {
        match self {
            Self::Off => Options {
                parallelism: 1,
                channels: false,
                affinity: false,
            },
            Self::Parallel => Options {
                parallelism: 4,
                channels: false,
                affinity: false,
            },
            Self::On => Options {
                parallelism: 4,
                channels: true,
                affinity: true,
            },
        }
    }
}

/// Which load the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Request/response echo.
    Echo,
    /// Quorum key-value store.
    Kvs,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Kvs => "kvs",
        }
    }
}

/// Why `echo` or `kvs` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EchoError {
    /// The async runtime or this binary's path could not be had.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    /// A node process could not be started.
    #[error("cannot start {what}")]
    Spawn {
        /// Which node.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A node process ended before it answered.
    #[error("{what} exited while the bench waited for `{waiting_for}`{detail}")]
    NodeExited {
        /// Which node.
        what: String,
        /// The answer expected.
        waiting_for: String,
        /// Its exit status, when known.
        detail: String,
    },
    /// A node did not answer in time (lost message or dead node).
    #[error("{what} did not print `{waiting_for}` within {after:?} (lost message or dead node)")]
    NodeTimeout {
        /// Which node.
        what: String,
        /// The answer expected.
        waiting_for: String,
        /// The limit.
        after: Duration,
    },
    /// A node answered with an error or something unexpected.
    #[error("{what} answered `{line}`")]
    NodeAnswer {
        /// Which node.
        what: String,
        /// Its line.
        line: String,
    },
    /// Writing to a node's stdin failed.
    #[error("cannot write to {what}")]
    NodeStdin {
        /// Which node.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A node process failed inside (in the `echo-node` process itself).
    #[error("node: {0}")]
    Node(String),
    /// Writing results failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Drawing the charts failed.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    /// The chaos test bed could not be made, or a bandwidth limit set.
    #[error("test bed: {0}")]
    Bed(#[from] granary_testbed::BedError),
    /// `--bed` was asked for on a machine where the test bed cannot run.
    #[error("the test bed cannot run here: {0}")]
    BedUnavailable(String),
}

/// One output row.
#[derive(Debug, Clone, Serialize)]
struct WorkloadRow {
    scenario: &'static str,
    mode: &'static str,
    nodes: u32,
    actors: usize,
    payload_bytes: usize,
    messages: u64,
    seconds: f64,
    msgs_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    options: OptionSet,
    parallelism: usize,
    channels: bool,
    affinity: bool,
    rtt_ms: f64,
    concurrency: usize,
    /// `loopback` (127.0.0.1) or `bed` (one test bed host per node).
    link: &'static str,
    /// The tbf limit on every host's link, Mbit/s; `None` when unlimited.
    bandwidth_mbit: Option<u32>,
}

/// This scenario's columns after the contract's ([`contract_columns`]).
const OWN_COLUMNS: &[&str] = &[
    "options",
    "parallelism",
    "channels",
    "affinity",
    "rtt_ms",
    "concurrency",
    "link",
    "bandwidth_mbit",
];

/// Node processes per run (the paper's 3-node Riak Core cluster).
const NODES: usize = 3;

/// Runs `granary-bench echo`.
pub(crate) fn run(args: WorkloadArgs) -> Result<(), EchoError> {
    run_workload(Workload::Echo, args)
}

/// Runs `echo` or `kvs` with `args`.
pub(crate) fn run_workload(workload: Workload, args: WorkloadArgs) -> Result<(), EchoError> {
    let quick = args.quick;
    let payloads = dedup(args.payload.unwrap_or_else(|| {
        if quick {
            vec![1 << 20]
        } else {
            vec![1 << 20, 8 << 20]
        }
    }));
    let rtts = args
        .rtt_ms
        .unwrap_or_else(|| if quick { vec![1.0] } else { vec![1.0, 20.0] });
    let concurrency = dedup(args.concurrency.unwrap_or_else(|| {
        if quick {
            vec![1, 4]
        } else {
            vec![1, 2, 4, 8, 16]
        }
    }));
    let option_sets = dedup(args.options.unwrap_or_else(|| {
        if quick {
            vec![OptionSet::Off, OptionSet::On]
        } else {
            vec![OptionSet::Off, OptionSet::Parallel, OptionSet::On]
        }
    }));
    let seconds = args.seconds.unwrap_or(if quick { 0.4 } else { 5.0 });
    // `None`: no limit (and, without `--bed`, the only value).
    let bandwidths: Vec<Option<u32>> =
        if args.bed {
            dedup(args.bandwidth_mbit.unwrap_or_else(|| {
                if quick {
                    vec![100]
                } else {
                    vec![1000, 100]
                }
            }))
            .into_iter()
            .map(|mbit| (mbit > 0).then_some(mbit))
            .collect()
        } else {
            vec![None]
        };
    let bed = if args.bed {
        granary_testbed::available().map_err(EchoError::BedUnavailable)?;
        Some(granary_testbed::Testbed::new(NODES)?)
    } else {
        None
    };
    let link = if bed.is_some() { "bed" } else { "loopback" };
    if let Some(&big) = payloads.iter().find(|p| **p > node::MAX_PAYLOAD) {
        return Err(EchoError::Node(format!(
            "payload {big} B is above the largest supported {} B",
            node::MAX_PAYLOAD
        )));
    }
    let steps =
        option_sets.len() * bandwidths.len() * rtts.len() * payloads.len() * concurrency.len();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(EchoError::Runtime)?;
    let rows = runtime.block_on(async {
        crate::child_process::kill_children_on_ctrl_c("echo node processes");
        let mut reporter = Reporter::new(
            &contract_columns(OWN_COLUMNS),
            args.csv.as_deref(),
            steps as u64,
        )?;
        let mut rows: Vec<Map<String, Value>> = Vec::new();
        for &set in &option_sets {
            let options = set.options();
            reporter.progress().set_message(format!(
                "{} {set:?}: starting {NODES} nodes",
                workload.name()
            ));
            let mut nodes = Nodes::start(NODES, options, bed.as_ref()).await?;
            reporter.progress().println(format!(
                "{} {set:?}: nodes listening on {}",
                workload.name(),
                nodes
                    .addrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            for &bandwidth in &bandwidths {
                if let Some(bed) = &bed {
                    for host in bed.host_ids() {
                        match bandwidth {
                            Some(mbit) => bed.limit_bandwidth(host, mbit.saturating_mul(1000))?,
                            None => bed.clear_bandwidth(host)?,
                        }
                    }
                }
                for &rtt in &rtts {
                    nodes
                        .all(&format!("rtt {rtt}"), "ok", Duration::from_secs(10))
                        .await?;
                    for &payload in &payloads {
                        for &requesters in &concurrency {
                            reporter.progress().set_message(format!(
                                "{} {set:?} {} rtt {rtt} ms {payload} B x{requesters}",
                                workload.name(),
                                bandwidth
                                    .map_or("unlimited".to_string(), |m| format!("{m} Mbit/s")),
                            ));
                            let line =
                                format!("{} {payload} {requesters} {seconds}", workload.name());
                            let limit = Duration::from_secs_f64(seconds) + Duration::from_secs(120);
                            let result = nodes.drive(&line, limit).await?;
                            let point = Point {
                                set,
                                rtt_ms: rtt,
                                payload,
                                concurrency: requesters,
                                link,
                                bandwidth_mbit: bandwidth,
                            };
                            let row = parse_result(workload, point, &result).ok_or_else(|| {
                                EchoError::NodeAnswer {
                                    what: "echo node 0".into(),
                                    line: format!("result {result}"),
                                }
                            })?;
                            reporter.emit(&row)?;
                            if let Ok(Value::Object(map)) = serde_json::to_value(&row) {
                                rows.push(map);
                            }
                            reporter.progress().inc(1);
                        }
                    }
                }
            }
        }
        reporter.finish();
        Ok::<_, EchoError>(rows)
    })?;
    eprint!("{}", crate::plot::summary::options_effect(&rows));
    if let Some(dir) = &args.plot {
        for path in crate::plot::plot_rows(workload.name(), &rows, dir)? {
            eprintln!("chart: {}", path.display());
        }
    }
    Ok(())
}

/// One sweep point: what a row was measured with.
#[derive(Debug, Clone, Copy)]
struct Point {
    set: OptionSet,
    rtt_ms: f64,
    payload: usize,
    concurrency: usize,
    link: &'static str,
    bandwidth_mbit: Option<u32>,
}

/// The row of a `result REQUESTS SECONDS P50 P99 P999 MAX` answer.
fn parse_result(workload: Workload, point: Point, result: &str) -> Option<WorkloadRow> {
    let Point {
        set,
        rtt_ms,
        payload,
        concurrency,
        link,
        bandwidth_mbit,
    } = point;
    let fields: Vec<f64> = result
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [requests, seconds, p50, p99, p999, max] = fields.as_slice() else {
        return None;
    };
    let options = set.options();
    Some(WorkloadRow {
        scenario: workload.name(),
        mode: "distributed",
        nodes: NODES as u32,
        actors: concurrency,
        payload_bytes: payload,
        messages: *requests as u64,
        seconds: *seconds,
        msgs_per_sec: requests / seconds.max(f64::MIN_POSITIVE),
        p50_us: *p50,
        p99_us: *p99,
        p999_us: *p999,
        max_us: *max,
        options: set,
        parallelism: options.parallelism,
        channels: options.channels,
        affinity: options.affinity,
        rtt_ms,
        concurrency,
        link,
        bandwidth_mbit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_line_becomes_a_row_and_garbage_does_not() {
        let point = |set, rtt_ms, payload, concurrency| Point {
            set,
            rtt_ms,
            payload,
            concurrency,
            link: "loopback",
            bandwidth_mbit: None,
        };
        let row = parse_result(
            Workload::Kvs,
            point(OptionSet::On, 20.0, 1024, 4),
            "100 2 10 20 30 40",
        )
        .expect("row");
        assert_eq!(row.scenario, "kvs");
        assert_eq!(row.msgs_per_sec, 50.0);
        assert_eq!(row.parallelism, 4);
        assert!(row.channels && row.affinity);
        let off = point(OptionSet::Off, 1.0, 1, 1);
        assert!(parse_result(Workload::Echo, off, "1 2 3").is_none());
        assert!(parse_result(Workload::Echo, off, "a b c d e f").is_none());
    }
}
